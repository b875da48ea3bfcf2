//! The certificate's life cycle under `tls.acme` (docs/certificates.md,
//! "Life cycle"): which names it must cover, when it is due, how long to
//! wait after a failure, and how many orders an hour the CA may see. Pure
//! decisions over times (Unix seconds) and random numbers passed in; the
//! shell (`src/acme/`) reads the clock, the files and the CA.

use std::collections::VecDeque;

/// The longest wait between two attempts after failures: 6 hours.
pub const MAX_RETRY_SECONDS: u64 = 6 * 3600;

/// The names the Portal's certificate covers, in order: `<domain>`,
/// `*.<domain>`, then `extra`; lower case, each once.
pub fn certificate_names(domain: &str, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(2 + extra.len());
    let wanted = [domain.to_string(), format!("*.{domain}")];
    for name in wanted.iter().chain(extra) {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Whether a certificate naming `sans` (its DNS subject alternative
/// names) covers every one of `wanted`. Names compare without regard to
/// case, and a wildcard only as itself: `*.d` is what the order asks for,
/// and a certificate for `a.d` and `b.d` does not stand in for it.
pub fn covers(sans: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| sans.iter().any(|s| s.eq_ignore_ascii_case(w)))
}

/// The certificate in `tls.cert_file`, as far as renewal cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// None that loads (missing, unreadable, or not matching its key).
    Nothing,
    /// One that loads: its validity and whether it names every name.
    Certificate {
        not_before: i64,
        not_after: i64,
        covers: bool,
    },
}

/// Why a certificate is to be ordered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// `tls.cert_file` holds no certificate that loads.
    Missing,
    /// The certificate does not name every name (a new `extra_names`).
    Names,
    /// A third of its lifetime, or less, is left.
    Renewal,
    /// The CA's renewal window (ARI) has come.
    Suggested,
}

impl Why {
    pub fn describe(self) -> &'static str {
        match self {
            Why::Missing => {
                "the files hold no certificate that loads (none yet, or one not matching its key)"
            }
            Why::Names => "the certificate does not name every name of the order",
            Why::Renewal => "the certificate is due for renewal",
            Why::Suggested => "the CA's renewal window has come",
        }
    }
}

/// When the certificate held is next to be renewed: `Err(why)` when at
/// once. It is due when a third of its lifetime is left, or earlier at
/// `window_pick`: the point drawn by the caller ([`ari_time`]) in the
/// renewal window the CA suggests where it offers one (ACME Renewal
/// Information, RFC 9773; a CA that must revoke moves it forward). A
/// window later than the third is not waited for.
pub fn due(held: &Held, window_pick: Option<i64>) -> Result<i64, Why> {
    match *held {
        Held::Nothing => Err(Why::Missing),
        Held::Certificate { covers: false, .. } => Err(Why::Names),
        Held::Certificate {
            not_before,
            not_after,
            ..
        } => {
            let third = third_left(not_before, not_after);
            Ok(window_pick.map_or(third, |pick| pick.min(third)))
        }
    }
}

/// When a third of the lifetime `[not_before, not_after]` is left (at
/// once for a certificate whose dates are the wrong way round).
pub fn third_left(not_before: i64, not_after: i64) -> i64 {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    not_after - lifetime / 3
}

/// A point of the CA's renewal window `[start, end)` chosen uniformly by
/// `random` (RFC 9773, section 4.2: clients spread their renewals over
/// the window); `start` for an empty or reversed window.
pub fn ari_time(start: i64, end: i64, random: u64) -> i64 {
    match end.checked_sub(start) {
        Some(width) if width > 0 => start + (random % width as u64) as i64,
        _ => start,
    }
}

/// The wait before the next attempt after `failures` consecutive failed
/// orders (1 or more): `initial` doubled each time, at most
/// [`MAX_RETRY_SECONDS`] (or `initial` when larger), less up to a half
/// drawn by `random` (jitter: Portals that failed together do not all
/// come back together). At least one second.
pub fn retry_delay(failures: u32, initial: u64, random: u64) -> u64 {
    let doublings = failures.saturating_sub(1).min(32);
    let full = initial
        .saturating_mul(1u64 << doublings)
        .min(MAX_RETRY_SECONDS.max(initial))
        .max(1);
    let jitter = random % (full / 2 + 1);
    (full - jitter).max(1)
}

/// At most `per_hour` orders in any hour (a CA counts failed validations
/// per account and name per hour; Let's Encrypt allows 5).
#[derive(Debug, Clone)]
pub struct OrderBudget {
    per_hour: usize,
    recent: VecDeque<i64>,
}

impl OrderBudget {
    pub fn new(per_hour: usize) -> OrderBudget {
        OrderBudget {
            per_hour: per_hour.max(1),
            recent: VecDeque::new(),
        }
    }

    /// The earliest time from `now` at which an order fits the budget.
    pub fn next_allowed(&self, now: i64) -> i64 {
        let in_last_hour = self.recent.iter().filter(|&&t| t > now - 3600).count();
        if in_last_hour < self.per_hour {
            return now;
        }
        // The oldest order of the hour that must leave it first.
        let oldest = self
            .recent
            .iter()
            .filter(|&&t| t > now - 3600)
            .nth(in_last_hour - self.per_hour)
            .copied()
            .unwrap_or(now);
        oldest + 3600
    }

    /// Counts an order placed at `now`.
    pub fn record(&mut self, now: i64) {
        self.recent.retain(|&t| t > now - 3600);
        self.recent.push_back(now);
    }
}

/// The `_acme-challenge` name of the TXT record proving `identifier` (a
/// DNS name of the order, `*.` removed), fully qualified with its dot.
pub fn challenge_fqdn(identifier: &str) -> String {
    let base = identifier.strip_prefix("*.").unwrap_or(identifier);
    format!("_acme-challenge.{}.", base.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
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
}
