use super::registry::PUSH_PERIOD;
use super::*;

/// A connection for the registry alone (no socket).
fn conn(id: u64, ip: [u8; 4], inflight: u32, idle_ms_ago: u64) -> Arc<Conn> {
    let accepted = Instant::now() - Duration::from_secs(100);
    let c = Conn {
        id,
        fd: -1,
        dup: Mutex::new(None),
        ip: Some(IpAddr::from(ip)),
        capped: true,
        accepted,
        state: AtomicU8::new(if inflight > 0 { ACTIVE } else { WAITING }),
        deadline_ms: AtomicU64::new(0),
        between_requests: AtomicBool::new(false),
        released: AtomicBool::new(false),
        handshaken: tokio::sync::Notify::new(),
        digest: std::sync::atomic::AtomicUsize::new(0),
        inflight: AtomicU32::new(inflight),
        connecting: AtomicU32::new(0),
        quiet_since_ms: AtomicU64::new(100_000 - idle_ms_ago),
        relay: AtomicBool::new(false),
    };
    Arc::new(c)
}

fn registry(conns: &[Arc<Conn>]) -> Registry {
    let mut reg = Registry::default();
    for c in conns {
        reg.serving.insert(c.id as usize, c.clone());
        *reg.per_client.entry(c.ip.unwrap()).or_default() += 1;
    }
    reg
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [10, 0, 0, 3];

#[test]
fn who_gives_at_the_cap() {
    let new = Some(IpAddr::from(C));
    type Case = (&'static str, Vec<Arc<Conn>>, Option<u64>);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("the oldest idle of the most loaded address",
         vec![conn(1, A, 0, 50_000), conn(2, B, 0, 90_000), conn(3, B, 0, 10_000), conn(4, B, 1, 0)], Some(2)),
        ("idle before busy, whatever the load",
         vec![conn(1, A, 0, 1), conn(2, B, 1, 0), conn(3, B, 1, 0), conn(4, B, 1, 0)], Some(1)),
        ("all busy: the address over its share gives its oldest",
         vec![conn(1, A, 1, 0), conn(2, B, 1, 0), conn(3, B, 1, 0), conn(4, B, 1, 0), conn(5, B, 1, 0)], Some(2)),
        ("all busy, one connection an address: the oldest of them gives",
         vec![conn(1, A, 1, 0), conn(2, B, 1, 0)], Some(1)),
        ("all busy, the newcomer already over its share: nobody",
         vec![conn(1, A, 1, 0), conn(2, B, 1, 0), conn(3, C, 1, 0), conn(4, C, 1, 0)], None),
        ("nothing open", vec![], None),
    ];
    for (what, conns, want) in cases {
        let reg = registry(&conns);
        assert_eq!(reg.victim(new, None).map(|c| c.id), want, "{what}");
    }
    // A connection asking for room for its own request is never its own
    // victim, nor weighed against its address: judged as at admission.
    let asking = conn(3, C, 1, 0);
    let conns = [conn(1, A, 1, 0), conn(2, B, 1, 0), asking.clone()];
    let reg = registry(&conns);
    assert_eq!(reg.victim(new, Some(&asking)).map(|c| c.id), Some(1));
    let alone = registry(std::slice::from_ref(&asking));
    assert!(alone.victim(new, Some(&asking)).is_none());
    // Two addresses holding alike: the one that pushed connections in
    // past the cap lately gives first, its older idle connection or not;
    // its pushes forgotten two periods later.
    let probe = conn(1, A, 0, 90_000);
    let flooder = conn(2, B, 0, 1);
    let mut reg = registry(&[probe, flooder]);
    assert_eq!(reg.victim(new, None).map(|c| c.id), Some(1));
    let now = Instant::now();
    reg.pushed_in(Some(IpAddr::from(B)), now);
    assert_eq!(reg.victim(new, None).map(|c| c.id), Some(2));
    reg.age_pushes(now + PUSH_PERIOD);
    assert_eq!(reg.victim(new, None).map(|c| c.id), Some(2));
    reg.age_pushes(now + PUSH_PERIOD * 2);
    assert_eq!(reg.victim(new, None).map(|c| c.id), Some(1));
    // A relay is idle only once quiet for RELAY_QUIET: before, an idle
    // connection idle for less time gives instead.
    let relay = conn(1, A, 0, 100);
    relay.relay.store(true, Ordering::Relaxed);
    let other = conn(2, B, 0, 1);
    let both = [relay.clone(), other];
    assert_eq!(registry(&both).victim(new, None).map(|c| c.id), Some(2));
    relay.quiet_since_ms.store(0, Ordering::Relaxed);
    assert_eq!(registry(&both).victim(new, None).map(|c| c.id), Some(1));
}

proptest::proptest! {
    /// The connection shed is idle whenever one is, of an address
    /// holding the most descriptors among idle ones; a busy one only
    /// from an address at or over its fair share of the descriptors the
    /// connections hold (upstream sockets of requests in flight
    /// included), for an address under it.
    #[test]
    fn the_victim_is_fair(
        conns in proptest::collection::vec((0u8..4, 0u32..3, 0u64..90_000), 0..30),
        new in 0u8..5,
    ) {
        let conns: Vec<Arc<Conn>> = conns
            .iter()
            .enumerate()
            .map(|(i, (ip, inflight, idle))| conn(i as u64 + 1, [10, 0, 0, *ip], *inflight, *idle))
            .collect();
        let reg = registry(&conns);
        let new_ip = IpAddr::from([10, 0, 0, new]);
        let now = Instant::now();
        let idle: Vec<&Arc<Conn>> = conns.iter().filter(|c| c.idle_since(now).is_some()).collect();
        // Descriptors by address: two a connection, one a request.
        let held = |ip: IpAddr| -> usize {
            conns.iter().filter(|c| c.ip == Some(ip)).map(|c| 2 + c.inflight.load(Ordering::Relaxed) as usize).sum()
        };
        match reg.victim(Some(new_ip), None) {
            Some(v) if v.idle_since(now).is_some() => {
                let most = idle.iter().map(|c| held(c.ip.unwrap())).max().unwrap();
                proptest::prop_assert_eq!(held(v.ip.unwrap()), most);
            }
            Some(v) => {
                proptest::prop_assert!(idle.is_empty());
                let addresses = reg.per_client.len() + usize::from(!reg.per_client.contains_key(&new_ip));
                let all: usize = conns.iter().map(|c| 2 + c.inflight.load(Ordering::Relaxed) as usize).sum();
                let share = all / addresses;
                proptest::prop_assert!(held(v.ip.unwrap()) >= share);
                proptest::prop_assert!(held(new_ip) < share);
            }
            None => proptest::prop_assert!(idle.is_empty()),
        }
    }
}
