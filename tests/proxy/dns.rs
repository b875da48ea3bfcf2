//! Upstreams by name (issue 11): the real proxy asks a DNS server of the
//! test's own (`resolver.nameservers`, a minimal A-record responder on a
//! loopback UDP port), caches its answers for their TTL, follows a
//! changed answer after the TTL, and keeps serving the last good answer
//! while the server fails or stays silent. Two upstreams on one port, at
//! 127.0.0.1 and 127.0.0.2, tell which address a request went to.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// What the test DNS server does with a query for its name.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// An A record with this address and TTL.
    Answer(Ipv4Addr, u32),
    /// SERVFAIL.
    Fail,
    /// NXDOMAIN: the name no longer exists (a removed container's).
    Gone,
    /// No answer at all.
    Silent,
}

/// A DNS server on 127.0.0.1 that knows one name; every other name is
/// NXDOMAIN. Counts the queries for its name.
struct DnsServer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    fn start(name: &str, mode: Mode) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let server = DnsServer {
            addr: socket.local_addr().unwrap(),
            mode: Arc::new(Mutex::new(mode)),
            queries: Arc::default(),
            stop: Arc::default(),
        };
        let (mode, queries, stop) = (
            server.mode.clone(),
            server.queries.clone(),
            server.stop.clone(),
        );
        let name = name.to_ascii_lowercase();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some((qname, qtype, question_end)) = parse_query(&buf[..n]) else {
                    continue;
                };
                let mode = *mode.lock().unwrap();
                let reply = if qname != name {
                    reply(&buf[..question_end], 3, None)
                } else {
                    queries.fetch_add(1, Ordering::SeqCst);
                    match mode {
                        // A: the address; AAAA and the rest: no record.
                        Mode::Answer(ip, ttl) if qtype == 1 => {
                            reply(&buf[..question_end], 0, Some((ip, ttl)))
                        }
                        Mode::Answer(..) => reply(&buf[..question_end], 0, None),
                        Mode::Fail => reply(&buf[..question_end], 2, None),
                        Mode::Gone => reply(&buf[..question_end], 3, None),
                        Mode::Silent => continue,
                    }
                };
                let _ = socket.send_to(&reply, from);
            }
        });
        server
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The query's name (lower case, no final dot), type, and where its
/// question ends.
fn parse_query(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

/// A response to the query whose header and question are `question`:
/// `rcode`, and the A record when given.
fn reply(question: &[u8], rcode: u8, answer: Option<(Ipv4Addr, u32)>) -> Vec<u8> {
    let mut out = question.to_vec();
    out[2] = 0x80 | (question[2] & 0x01); // QR, RD as asked
    out[3] = 0x80 | rcode; // RA
    out[6..12].copy_from_slice(&[0, answer.is_some() as u8, 0, 0, 0, 0]);
    if let Some((ip, ttl)) = answer {
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // the question's name, A, IN
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&[0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    out
}

/// Two echo upstreams on one port: "one" at 127.0.0.1, "two" at 127.0.0.2.
fn two_upstreams() -> (Upstream, Upstream) {
    for _ in 0..5 {
        let one = Upstream::start("one");
        let at = SocketAddr::new([127, 0, 0, 2].into(), one.addr.port());
        if let Ok(two) = Upstream::start_at("two", at) {
            return (one, two);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// The upstream that answered `GET /` on `host`, or the status when
/// the proxy answered itself.
async fn answered_by(client: &reqwest::Client, url: &str) -> Result<String, u16> {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    Ok(response.json::<Echo>().await.unwrap().upstream)
}

/// `portal_proxy_dns_lookups_total{result}` on the metrics listener.
async fn lookups(metrics: SocketAddr, result: &str) -> u64 {
    let series = format!("portal_proxy_dns_lookups_total{{result=\"{result}\"}}");
    let value = series_value(&metrics_text(metrics).await, &series);
    value.unwrap_or_else(|| panic!("{series} missing")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_cached_for_their_ttl_and_served_stale_while_dns_fails() {
    const TTL: Duration = Duration::from_secs(1);
    let (one, _two) = two_upstreams();
    let port = one.addr.port();
    let dns = DnsServer::start("alpha.test", Mode::Answer(Ipv4Addr::LOCALHOST, 1));
    let files = PortalFiles::new("dns");
    files
        .app("alpha", &app_meta(r#"{"": {"access": "public"}}"#))
        .app("gone", &app_meta(r#"{"": {"access": "public"}}"#));
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\n\
             upstreams: {{ alpha: \"alpha.test:{port}\", gone: \"gone.test:{port}\" }}\n\
             metrics: {{ listen: \"{metrics}\" }}\n\
             resolver: {{ nameservers: [\"{}\"], min_ttl_seconds: 1, timeout_ms: 300 }}\n",
            dns.addr
        ),
    );
    let client = client(&files.ca_pem, Protocol::Http1);
    let url = proxy.url(&files.host("alpha"), "/");
    let mut requests = 0usize;

    // The answer is cached: many requests, one query.
    let first = Instant::now();
    for _ in 0..30 {
        assert_eq!(answered_by(&client, &url).await.as_deref(), Ok("one"));
        requests += 1;
    }
    // At most one query per TTL begun, however slow the machine: 30
    // requests within the first TTL ask once.
    let windows = 1 + (first.elapsed().as_secs_f64() / TTL.as_secs_f64()) as usize;
    assert!(
        (1..=windows).contains(&dns.queries()),
        "{} queries for 30 requests in {:?}",
        dns.queries(),
        first.elapsed()
    );

    // A new answer is followed after the TTL, not before.
    dns.set(Mode::Answer(Ipv4Addr::new(127, 0, 0, 2), 1));
    let switched = loop {
        let by = answered_by(&client, &url).await;
        requests += 1;
        if by.as_deref() == Ok("two") {
            break first.elapsed();
        }
        assert_eq!(by.as_deref(), Ok("one"));
        assert!(first.elapsed() < Duration::from_secs(5), "never switched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        switched >= TTL,
        "switched after {switched:?}, within the TTL"
    );

    // The server fails (SERVFAIL), then goes silent: the last good answer
    // keeps serving, and the server is asked again about once a second.
    let stale_before = lookups(metrics, "stale").await;
    let before = dns.queries();
    for mode in [Mode::Fail, Mode::Silent] {
        dns.set(mode);
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            assert_eq!(
                answered_by(&client, &url).await.as_deref(),
                Ok("two"),
                "{mode:?}"
            );
            requests += 1;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let asked = dns.queries() - before;
    assert!(
        (2..=12).contains(&asked),
        "{asked} queries in 5 s of failure"
    );
    assert!(lookups(metrics, "stale").await >= stale_before + 2);
    assert!(
        proxy.log_text().contains("DNS: cannot resolve alpha.test"),
        "a warning is logged"
    );

    // The server is back with a new answer: followed again.
    dns.set(Mode::Answer(Ipv4Addr::LOCALHOST, 1));
    assert!(
        eventually(Duration::from_secs(4), || async {
            answered_by(&client, &url).await.as_deref() == Ok("one")
        })
        .await
    );

    // The cache is what spared the server: far fewer queries than requests.
    let queries = dns.queries();
    assert!(
        requests >= 100 && queries * 5 < requests,
        "{queries} queries for {requests} requests"
    );

    // The name is removed (NXDOMAIN, as for a container that is gone): once
    // its TTL is over, the last answer is forgotten, never served stale,
    // and the app answers 502 from then on.
    // (A new connection each time: the proxy may close one after a 502.)
    let fresh = client_builder(&files.ca_pem, Protocol::Http1)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    dns.set(Mode::Gone);
    let forgotten = eventually(Duration::from_secs(4), || async {
        answered_by(&fresh, &url).await == Err(502)
    })
    .await;
    assert!(forgotten, "the last answer kept serving after NXDOMAIN");
    for _ in 0..3 {
        assert_eq!(answered_by(&fresh, &url).await, Err(502));
    }

    // A name that never resolved (NXDOMAIN) is a 502.
    let gone = proxy.url(&files.host("gone"), "/");
    assert_eq!(answered_by(&client, &gone).await, Err(502));
    assert!(lookups(metrics, "error").await >= 1);
    assert!(lookups(metrics, "ok").await >= 2);
}
