use super::*;
use proptest::prelude::*;

#[test]
fn names_in_order_once_lower_case() {
    assert_eq!(
        certificate_names("abc.portal.example", &[]),
        ["abc.portal.example", "*.abc.portal.example"]
    );
    assert_eq!(
        certificate_names(
            "abc.portal.example",
            &["Other.Example".into(), "*.ABC.portal.example".into()]
        ),
        [
            "abc.portal.example",
            "*.abc.portal.example",
            "other.example"
        ]
    );
}

#[test]
fn coverage_table() {
    let wanted = certificate_names("d.example", &[]);
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (sans, expected) in [
        (s(&["d.example", "*.d.example"]), true),
        (s(&["*.D.EXAMPLE", "D.example", "x.example"]), true),
        (s(&["d.example"]), false),
        (s(&["*.d.example"]), false),
        (s(&["a.d.example", "b.d.example", "d.example"]), false),
        (s(&["*.example", "d.example"]), false),
        (s(&[]), false),
    ] {
        assert_eq!(covers(&sans, &wanted), expected, "{sans:?}");
    }
}

#[test]
fn due_table() {
    let held = |covers| Held::Certificate {
        not_before: 0,
        not_after: 90,
        covers,
    };
    assert_eq!(due(&Held::Nothing, None), Err(Why::Missing));
    assert_eq!(due(&held(false), Some(10)), Err(Why::Names));
    assert_eq!(due(&held(true), None), Ok(60));
    // The CA's window: earlier is taken, later is not waited for.
    assert_eq!(due(&held(true), Some(20)), Ok(20));
    assert_eq!(due(&held(true), Some(-5)), Ok(-5));
    assert_eq!(due(&held(true), Some(75)), Ok(60));
    // Dates the wrong way round: due at once (at its notAfter, past).
    assert_eq!(third_left(100, 50), 50);
}

#[test]
fn a_ninety_day_certificate_renews_with_thirty_days_left() {
    let day = 86_400;
    assert_eq!(third_left(0, 90 * day), 60 * day);
    // A certificate a day from its end (of a 90-day life) is overdue.
    assert!(third_left(-89 * day, day) < 0);
}

#[test]
fn retry_table() {
    // No jitter drawn (random 0): the full doubling.
    for (failures, expected) in [(1, 60), (2, 120), (3, 240), (9, 15_360), (10, 21_600)] {
        assert_eq!(retry_delay(failures, 60, 0), expected, "{failures}");
    }
    assert_eq!(retry_delay(u32::MAX, 60, 0), MAX_RETRY_SECONDS);
    // An initial wait above the cap is kept.
    assert_eq!(retry_delay(3, 30_000, 0), 30_000);
    assert_eq!(retry_delay(1, 0, 0), 1);
}

#[test]
fn budget_table() {
    let mut b = OrderBudget::new(3);
    assert_eq!(b.next_allowed(1000), 1000);
    for t in [1000, 1100, 1200] {
        b.record(t);
    }
    // The fourth waits until the first leaves the hour.
    assert_eq!(b.next_allowed(1300), 4600);
    assert_eq!(b.next_allowed(4600), 4600);
    b.record(4600);
    assert_eq!(b.next_allowed(4650), 4700);
}

#[test]
fn challenge_names() {
    assert_eq!(challenge_fqdn("d.example"), "_acme-challenge.d.example.");
    assert_eq!(challenge_fqdn("*.d.example"), "_acme-challenge.d.example.");
    assert_eq!(challenge_fqdn("d.example."), "_acme-challenge.d.example.");
}

proptest! {
    #[test]
    fn retry_is_bounded_and_never_shorter_than_half(failures in 1u32..100, initial in 1u64..100_000, random: u64) {
        let d = retry_delay(failures, initial, random);
        let full = retry_delay(failures, initial, 0);
        prop_assert!(d >= 1 && d <= full);
        prop_assert!(d >= full / 2);
        prop_assert!(full <= MAX_RETRY_SECONDS.max(initial));
        // More failures never wait less (without jitter).
        prop_assert!(retry_delay(failures + 1, initial, 0) >= full);
    }

    #[test]
    fn ari_time_is_in_the_window(start in -1_000_000i64..1_000_000, width in -10i64..1_000_000, random: u64) {
        let t = ari_time(start, start + width, random);
        if width > 0 {
            prop_assert!(t >= start && t < start + width);
        } else {
            prop_assert_eq!(t, start);
        }
    }

    #[test]
    fn the_budget_holds_in_every_hour(per_hour in 1usize..8, gaps in proptest::collection::vec(0i64..2000, 1..60)) {
        // Orders placed as soon as the budget allows, after each gap.
        let mut b = OrderBudget::new(per_hour);
        let mut now = 0;
        let mut placed = Vec::new();
        for gap in gaps {
            now = b.next_allowed(now + gap);
            b.record(now);
            placed.push(now);
        }
        for &t in &placed {
            let in_hour = placed.iter().filter(|&&u| u >= t && u < t + 3600).count();
            prop_assert!(in_hour <= per_hour, "{placed:?}");
        }
    }

    #[test]
    fn renewal_is_inside_the_lifetime(not_before in -1_000_000_000i64..1_000_000_000, life in 1i64..400_000_000) {
        let t = third_left(not_before, not_before + life);
        prop_assert!(t > not_before && t <= not_before + life);
        prop_assert!((not_before + life - t) * 3 <= life + 2);
    }
}
