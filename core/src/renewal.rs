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
#[path = "renewal_tests.rs"]
mod tests;
