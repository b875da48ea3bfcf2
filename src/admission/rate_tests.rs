use super::*;

#[test]
fn ipv6_clients_are_their_64_prefix_and_mapped_v4_is_v4() {
    let key = |s: &str| ClientKey::from(s.parse::<IpAddr>().unwrap());
    assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
    assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
}

#[test]
fn one_client_over_its_limit_leaves_the_others_alone() {
    let limits = RateLimits::new(RateSettings {
        anonymous_per_second: 10,
        peer_per_second: 5,
        failed_authentications_per_minute: 3,
    });
    let (a, b) = (ClientKey::V4(1), ClientKey::V4(2));
    let refused = (0..50).filter(|_| limits.anonymous(a).is_some()).count();
    // Within one window (or two, if it turned): 10 or 20 pass.
    assert!((30..=40).contains(&refused), "{refused}");
    assert!(limits.anonymous(b).is_none());
    let refused = (0..20).filter(|_| limits.peer("p1").is_some()).count();
    assert!((5..=15).contains(&refused), "{refused}");
    assert!(limits.peer("p2").is_none());

    assert!(!limits.locked_out(a));
    for _ in 0..3 {
        limits.failed(a);
    }
    assert!(limits.locked_out(a));
    assert!(!limits.locked_out(b));
    let r = limits.lockout();
    assert_eq!((r.status(), r.retry_after()), (429, Some(60)));
}

#[test]
fn zero_turns_a_limit_off() {
    let limits = RateLimits::new(RateSettings {
        anonymous_per_second: 0,
        peer_per_second: 0,
        failed_authentications_per_minute: 0,
    });
    let a = ClientKey::V4(1);
    for _ in 0..1000 {
        assert!(limits.anonymous(a).is_none());
        assert!(limits.peer("p").is_none());
        limits.failed(a);
    }
    assert!(!limits.locked_out(a));
}
