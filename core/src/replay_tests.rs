use super::*;

#[test]
fn a_nonce_is_accepted_once_while_valid() {
    let c = ReplayCache::new(10);
    assert_eq!(c.check_and_insert("p1", "n1", 100, 0), Ok(()));
    assert_eq!(
        c.check_and_insert("p1", "n1", 100, 50),
        Err(ReplayError::Seen)
    );
    // Nonces are per peer.
    assert_eq!(c.check_and_insert("p2", "n1", 100, 50), Ok(()));
    // After its signature expired, the nonce is forgotten (a replay then
    // fails the time window instead).
    assert_eq!(c.check_and_insert("p1", "n1", 200, 101), Ok(()));
}

#[test]
fn memory_stays_bounded_under_a_flood() {
    let c = ReplayCache::new(1000);
    let mut refused = 0;
    for i in 0..100_000 {
        if c.check_and_insert("flooder", &format!("n{i}"), 300, 0)
            .is_err()
        {
            refused += 1;
        }
    }
    assert_eq!(c.len(), 1000);
    assert_eq!(refused, 99_000);
    // Other peers keep their own share.
    assert_eq!(c.check_and_insert("honest", "n", 300, 0), Ok(()));
    // Once the flood's signatures expire, the flooder is served again.
    assert_eq!(c.check_and_insert("flooder", "new", 600, 301), Ok(()));
    assert_eq!(c.len(), 2);
}

#[test]
fn removed_peers_are_forgotten() {
    let c = ReplayCache::new(10);
    c.check_and_insert("p1", "a", 100, 0).unwrap();
    c.check_and_insert("p2", "a", 100, 0).unwrap();
    c.retain_peers(|k| k == "p2", 1, 0);
    assert_eq!(c.len(), 1);
    c.retain_peers(|_| true, 1, 101);
    assert!(c.is_empty());
}

#[test]
fn the_budget_is_shared_among_peers() {
    let c = ReplayCache::new(DEFAULT_PER_PEER);
    assert_eq!(c.share(), DEFAULT_PER_PEER.min(BUDGET_BYTES / ENTRY_BYTES));
    c.retain_peers(|_| true, 1000, 0);
    let share = BUDGET_BYTES / ENTRY_BYTES / 1000;
    assert_eq!(c.share(), share);
    // However long the nonces, however many peers flood at once, the
    // cache holds at most its budget's worth of entries.
    let long = "n".repeat(128);
    for peer in 0..1000 {
        for i in 0..share + 5 {
            let _ = c.check_and_insert(&format!("p{peer}"), &format!("{long}{i}"), 300, 0);
        }
    }
    assert_eq!(c.len(), share * 1000);
    assert!(c.len() * ENTRY_BYTES <= BUDGET_BYTES);
}

/// Two processes around an upgrade never accept the same `created`
/// second, whatever the moments and the skew: the old one before its
/// handover accepts up to `now + skew`, after it what `admits` says;
/// the new one what `admits` says once it took over. Only a few
/// seconds around the handover are refused by both.
#[test]
fn an_upgrade_splits_the_seconds() {
    let skew = 5;
    for (quit, taken) in [(10, 10), (10, 11), (100, 103), (7, 9)] {
        let old = Handover::new(skew + 1, false);
        let new = Handover::new(skew + 1, true);
        assert_eq!(
            new.admits(quit),
            Err(ReplayError::Handover),
            "before it has the sockets"
        );
        old.handed_over(quit);
        new.took_over(taken);
        let mut refused_by_both = 0;
        for created in -10..taken + 400 {
            // Before the handover, any time up to it: the skew allowed.
            let old_before = created <= quit + skew;
            let old_after = old.admits(created).is_ok();
            let by_new = new.admits(created).is_ok();
            assert!(
                !((old_before || old_after) && by_new),
                "{created} accepted by both"
            );
            if !(old_before || old_after || by_new) {
                refused_by_both += 1;
            }
        }
        assert!(
            refused_by_both <= taken - quit + skew + 1,
            "{refused_by_both}"
        );
    }
    // A process started afresh accepts every second.
    assert_eq!(Handover::new(6, false).admits(i64::MIN + 1), Ok(()));
}
