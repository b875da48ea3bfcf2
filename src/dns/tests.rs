//! The cache's logic over a fake resolver and a fake clock.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::*;

/// Time that moves only when told.
struct FakeClock {
    start: Instant,
    millis: AtomicU64,
}

impl FakeClock {
    fn new() -> Arc<FakeClock> {
        Arc::new(FakeClock {
            start: Instant::now(),
            millis: AtomicU64::new(0),
        })
    }

    fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// What the fake resolver does for one lookup.
#[derive(Clone)]
enum Step {
    Answer(Vec<IpAddr>, u64),
    Fail,
    NotFound,
    /// Never answers (the cache's timeout must end it).
    Hang,
}

/// Plays its steps in order (the last one again when they run out), and
/// counts the lookups per name.
struct FakeLookup {
    steps: Mutex<VecDeque<Step>>,
    asked: Mutex<Vec<String>>,
    /// Each lookup takes this long (real time).
    delay: Duration,
}

impl FakeLookup {
    fn new(steps: &[Step]) -> Arc<FakeLookup> {
        Arc::new(FakeLookup {
            steps: Mutex::new(steps.iter().cloned().collect()),
            asked: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
        })
    }

    fn then(&self, step: Step) {
        let mut steps = self.steps.lock().unwrap();
        steps.clear();
        steps.push_back(step);
    }

    fn asked(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

#[async_trait]
impl Lookup for FakeLookup {
    async fn lookup(&self, name: &str) -> Result<Answer, LookupError> {
        self.asked.lock().unwrap().push(name.to_string());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let step = {
            let mut steps = self.steps.lock().unwrap();
            if steps.len() > 1 {
                steps.pop_front().unwrap()
            } else {
                steps.front().cloned().expect("a step")
            }
        };
        match step {
            Step::Answer(addrs, ttl) => Ok(Answer {
                addrs,
                ttl: Duration::from_secs(ttl),
            }),
            Step::Fail => Err(LookupError::Failed("SERVFAIL".into())),
            Step::NotFound => Err(LookupError::NotFound("NXDOMAIN".into())),
            Step::Hang => std::future::pending().await,
        }
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn settings() -> Settings {
    Settings {
        nameservers: Vec::new(),
        min_ttl: Duration::from_secs(1),
        max_ttl: Duration::from_secs(300),
        stale_max: Duration::from_secs(3600),
        timeout: Duration::from_millis(200),
    }
}

fn dns(lookup: &Arc<FakeLookup>, clock: &Arc<FakeClock>) -> Dns {
    Dns::new(settings(), lookup.clone(), clock.clone())
}

async fn resolved(dns: &Dns, name: &str) -> Result<IpAddr, DnsError> {
    dns.resolve(name, 80).await.map(|a| a.ip())
}

#[tokio::test]
async fn ip_literals_never_reach_the_resolver() {
    let lookup = FakeLookup::new(&[Step::Fail]);
    let dns = dns(&lookup, &FakeClock::new());
    assert_eq!(
        dns.resolve("127.0.0.1", 8080).await.unwrap(),
        "127.0.0.1:8080".parse().unwrap()
    );
    assert_eq!(
        dns.resolve("::1", 443).await.unwrap(),
        "[::1]:443".parse().unwrap()
    );
    assert_eq!(
        dns.resolve_all("10.1.2.3", 443).await.unwrap(),
        vec!["10.1.2.3:443".parse().unwrap()]
    );
    assert_eq!(
        dns.cached("192.168.1.1", 1),
        Some("192.168.1.1:1".parse().unwrap())
    );
    assert_eq!(lookup.asked(), 0);
}

#[tokio::test]
async fn an_answer_is_kept_for_its_ttl_then_asked_again() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 30), Step::Answer(vec![ip(2)], 30)]);
    let clock = FakeClock::new();
    let dns = dns(&lookup, &clock);
    assert_eq!(dns.cached("app", 80), None, "nothing cached yet");
    assert_eq!(resolved(&dns, "app").await.unwrap(), ip(1));
    for _ in 0..100 {
        assert_eq!(resolved(&dns, "app").await.unwrap(), ip(1));
    }
    clock.advance(Duration::from_millis(29_900));
    assert_eq!(dns.cached("app", 80).unwrap().ip(), ip(1));
    assert_eq!(lookup.asked(), 1, "fresh answers ask nothing");
    clock.advance(Duration::from_millis(100));
    assert_eq!(dns.cached("app", 80), None, "expired at its TTL");
    assert_eq!(resolved(&dns, "app").await.unwrap(), ip(2));
    assert_eq!(lookup.asked(), 2);
    assert_eq!(
        dns.cached("app", 8080).unwrap(),
        SocketAddr::new(ip(2), 8080)
    );
}

#[tokio::test]
async fn ttls_are_clamped_to_the_settings() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 0)]);
    let clock = FakeClock::new();
    let dns = dns(&lookup, &clock);
    resolved(&dns, "zero").await.unwrap();
    clock.advance(Duration::from_millis(999));
    assert!(
        dns.cached("zero", 80).is_some(),
        "TTL 0 is kept min_ttl (1 s)"
    );
    clock.advance(Duration::from_millis(1));
    assert!(dns.cached("zero", 80).is_none());

    lookup.then(Step::Answer(vec![ip(1)], 86_400));
    resolved(&dns, "long").await.unwrap();
    clock.advance(Duration::from_secs(299));
    assert!(dns.cached("long", 80).is_some());
    clock.advance(Duration::from_secs(1));
    assert!(
        dns.cached("long", 80).is_none(),
        "a day's TTL is kept max_ttl (300 s)"
    );
}

#[tokio::test]
async fn the_last_good_answer_is_served_while_the_resolver_fails() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 10), Step::Fail]);
    let clock = FakeClock::new();
    let dns = dns(&lookup, &clock);
    let stale_before = stale_count();
    resolved(&dns, "app").await.unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(resolved(&dns, "app").await.unwrap(), ip(1), "stale served");
    assert_eq!(lookup.asked(), 2);
    assert!(stale_count() > stale_before);
    // Asked again only after min_ttl; in between, served at once.
    for _ in 0..10 {
        assert_eq!(resolved(&dns, "app").await.unwrap(), ip(1));
    }
    assert_eq!(lookup.asked(), 2);
    clock.advance(Duration::from_secs(1));
    assert_eq!(resolved(&dns, "app").await.unwrap(), ip(1));
    assert_eq!(lookup.asked(), 3);
    // The resolver is back: its answer replaces the stale one.
    lookup.then(Step::Answer(vec![ip(2)], 10));
    clock.advance(Duration::from_secs(1));
    assert_eq!(resolved(&dns, "app").await.unwrap(), ip(2));
}

#[tokio::test]
async fn a_timeout_is_a_failure_and_serves_the_last_answer() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 5), Step::Hang]);
    let clock = FakeClock::new();
    let dns = dns(&lookup, &clock);
    resolved(&dns, "app").await.unwrap();
    clock.advance(Duration::from_secs(5));
    let started = Instant::now();
    assert_eq!(resolved(&dns, "app").await.unwrap(), ip(1));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
        "bounded by timeout_ms: {waited:?}"
    );
    // A name never resolved gets the timeout as its error.
    let e = dns.resolve("other", 80).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot resolve other: no answer within 200 ms"
    );
}

#[tokio::test]
async fn stale_answers_end_at_the_stale_limit() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 10), Step::Fail]);
    let clock = FakeClock::new();
    let dns = dns(&lookup, &clock);
    resolved(&dns, "app").await.unwrap();
    // TTL 10 s, then stale for at most 3600 s.
    clock.advance(Duration::from_secs(10 + 3599));
    assert_eq!(resolved(&dns, "app").await.unwrap(), ip(1));
    clock.advance(Duration::from_secs(1));
    let e = dns.resolve("app", 80).await.unwrap_err();
    assert_eq!(e.to_string(), "cannot resolve app: SERVFAIL");
    // The error is kept min_ttl, then asked again.
    let asked = lookup.asked();
    assert!(dns.resolve("app", 80).await.is_err());
    assert_eq!(lookup.asked(), asked);
    clock.advance(Duration::from_secs(1));
    assert!(dns.resolve("app", 80).await.is_err());
    assert_eq!(lookup.asked(), asked + 1);
}

#[tokio::test]
async fn no_stale_answer_with_a_stale_limit_of_zero() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 10), Step::Fail]);
    let clock = FakeClock::new();
    let dns = Dns::new(
        Settings {
            stale_max: Duration::ZERO,
            ..settings()
        },
        lookup.clone(),
        clock.clone(),
    );
    resolved(&dns, "app").await.unwrap();
    clock.advance(Duration::from_secs(10));
    assert!(dns.resolve("app", 80).await.is_err());
}

#[tokio::test]
async fn no_such_name_forgets_the_last_answer() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 10), Step::NotFound]);
    let clock = FakeClock::new();
    let dns = dns(&lookup, &clock);
    resolved(&dns, "app").await.unwrap();
    clock.advance(Duration::from_secs(10));
    let e = dns.resolve("app", 80).await.unwrap_err();
    assert_eq!(e.to_string(), "cannot resolve app: NXDOMAIN");
    // Gone for good: a later failure has nothing stale to serve.
    lookup.then(Step::Fail);
    clock.advance(Duration::from_secs(1));
    assert!(dns.resolve("app", 80).await.is_err());
    // An empty answer is no such name too.
    lookup.then(Step::Answer(Vec::new(), 10));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        dns.resolve("app", 80).await.unwrap_err().detail,
        "no address"
    );
}

#[tokio::test]
async fn a_name_never_resolved_is_an_error() {
    let lookup = FakeLookup::new(&[Step::Fail]);
    let dns = dns(&lookup, &FakeClock::new());
    let e = dns.resolve("nowhere", 80).await.unwrap_err();
    assert_eq!(
        e,
        DnsError {
            name: "nowhere".into(),
            detail: "SERVFAIL".into()
        }
    );
}

#[tokio::test]
async fn several_addresses_are_served_in_rotation() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1), ip(2), ip(3)], 60)]);
    let dns = dns(&lookup, &FakeClock::new());
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(resolved(&dns, "app").await.unwrap());
    }
    assert_eq!(seen, [ip(1), ip(2), ip(3), ip(1), ip(2), ip(3)]);
    let all = dns.resolve_all("app", 443).await.unwrap();
    assert_eq!(
        all,
        [ip(1), ip(2), ip(3)].map(|ip| SocketAddr::new(ip, 443)),
        "every address, from the rotation's next"
    );
    assert_eq!(lookup.asked(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_lookup() {
    let lookup = Arc::new(FakeLookup {
        steps: Mutex::new([Step::Answer(vec![ip(1)], 60)].into_iter().collect()),
        asked: Mutex::new(Vec::new()),
        delay: Duration::from_millis(100),
    });
    let dns = Arc::new(Dns::new(settings(), lookup.clone(), FakeClock::new()));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let dns = dns.clone();
            tokio::spawn(async move { dns.resolve("app", 80).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().ip(), ip(1));
    }
    assert_eq!(lookup.asked(), 1, "one lookup for 20 concurrent requests");
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let lookup = FakeLookup::new(&[Step::Answer(vec![ip(1)], 60)]);
    let dns = dns(&lookup, &FakeClock::new());
    for i in 0..MAX_NAMES + 10 {
        dns.resolve(&format!("app{i}"), 80).await.unwrap();
    }
    let kept = dns.names.read().unwrap().len();
    assert_eq!(kept, MAX_NAMES);
    assert!(dns.cached(&format!("app{}", MAX_NAMES + 9), 80).is_some());
}

fn stale_count() -> u64 {
    crate::observe::metrics::METRICS
        .dns_lookups
        .get(crate::observe::metrics::DnsLookup::Stale)
}
