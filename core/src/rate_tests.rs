use super::*;

/// A case: the caller, the pinned TLS peer, locked out, a failed
/// authentication; then the plan's failure count and limit.
type Case<'a> = (&'a Caller, Option<&'a str>, bool, bool, bool, Counted<'a>);

#[test]
fn who_counts_where() {
    let terminal = Caller::Terminal {
        id: "t1".into(),
        name: "phone".into(),
    };
    let peer = Caller::Peer {
        id: "p1".into(),
        name: "friend".into(),
    };
    let anonymous = Caller::Anonymous;
    use Counted::*;
    // (caller, tls peer, locked out, failed authentication) -> plan
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (&terminal, None, false, false, false, Not),
        (&terminal, None, true, false, false, Not),
        (&peer, None, false, false, false, Peer("p1")),
        (&peer, None, true, false, false, Peer("p1")),
        (&anonymous, None, false, false, false, Anonymous),
        (&anonymous, None, false, true, true, Anonymous),
        (&anonymous, None, true, false, false, LockedOut),
        (&anonymous, None, true, true, true, LockedOut),
        // Pinned peer TLS: that peer's rate alone, no failure counted,
        // never locked out with its address.
        (&anonymous, Some("p2"), true, true, false, Peer("p2")),
        (&peer, Some("p2"), false, false, false, Peer("p2")),
        (&terminal, Some("p2"), true, false, false, Peer("p2")),
    ];
    for (caller, tls, locked, failed, count_failure, counted) in cases {
        assert_eq!(
            plan(caller, tls, locked, failed),
            RatePlan {
                count_failure,
                counted
            },
            "{caller:?} tls {tls:?} locked {locked} failed {failed}"
        );
    }
}
