//! Request rate limits (docs/config.md, `limits`): per client address for
//! anonymous callers, per peer for peers, and a much lower rate of failed
//! authentications per client address, after which the address is locked
//! out for a while. Counted with `pingora-limits` (count-min sketches over
//! fixed windows: fixed memory whatever the number of addresses; an
//! estimate is never below the true count, so a client is never let
//! through over its limit, and with the sketch sized here an innocent
//! address is overestimated only when tens of thousands of others flood
//! at once).
//!
//! A client address is its IPv4 address, or the /64 prefix of its IPv6
//! address (one subscriber's network: an attacker holds a whole /64).

#![forbid(unsafe_code)]

use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

use pingora_limits::rate::Rate;

use crate::observe::metrics::{RateLimit, METRICS};
use portal_core::refusal::{Reason, Refusal};

/// The window of the request rates.
const SECOND: Duration = Duration::from_secs(1);
/// The window of failed authentications; a lockout lasts one to two of
/// them after the last failure over the limit.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Count-min sketch size: 4 hashes of 16,384 counters (512 KiB per window
/// slot, two slots per rate).
const HASHES: usize = 4;
const SLOTS: usize = 16_384;

/// The limits, per second or per minute; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    pub anonymous_per_second: u32,
    pub peer_per_second: u32,
    pub failed_authentications_per_minute: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            anonymous_per_second: 200,
            peer_per_second: 100,
            failed_authentications_per_minute: 30,
        }
    }
}

/// Who a request is counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    /// The /64 prefix.
    V6(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.into()),
                None => ClientKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The three rates.
pub struct RateLimits {
    settings: RateSettings,
    anonymous: Rate,
    peers: Rate,
    failures: Rate,
}

impl RateLimits {
    pub fn new(settings: RateSettings) -> Self {
        let rate = |window| Rate::new_with_estimator_config(window, HASHES, SLOTS);
        RateLimits {
            settings,
            anonymous: rate(SECOND),
            peers: rate(SECOND),
            failures: rate(FAILURE_WINDOW),
        }
    }

    /// Whether `client` failed to authenticate more often than allowed,
    /// in this window or the one before: it is then refused everything
    /// but what authenticates.
    pub fn locked_out(&self, client: ClientKey) -> bool {
        let limit = self.settings.failed_authentications_per_minute;
        limit > 0
            && self.failures.rate_with(&client, |r| {
                r.prev_samples.max(r.curr_samples) >= limit as isize
            })
    }

    /// Counts a failed authentication of `client`.
    pub(crate) fn failed(&self, client: ClientKey) {
        if self.settings.failed_authentications_per_minute > 0 {
            self.failures.observe(&client, 1);
        }
    }

    /// Counts an anonymous request of `client`; `Some` refusal when it is
    /// over the limit.
    pub fn anonymous(&self, client: ClientKey) -> Option<Refusal> {
        over(&self.anonymous, &client, self.settings.anonymous_per_second).then(|| {
            METRICS.rate_limited.inc(RateLimit::Anonymous);
            Refusal::too_many(
                Reason::AnonymousRate,
                format!(
                    "more than {} requests a second from this address without signing in",
                    self.settings.anonymous_per_second
                ),
                1,
            )
        })
    }

    /// Counts a request of the peer `id`; `Some` refusal when it is over
    /// the limit.
    pub(crate) fn peer(&self, id: &str) -> Option<Refusal> {
        over(&self.peers, &id, self.settings.peer_per_second).then(|| {
            METRICS.rate_limited.inc(RateLimit::Peer);
            Refusal::too_many(
                Reason::PeerRate,
                format!(
                    "more than {} requests a second from this peer",
                    self.settings.peer_per_second
                ),
                1,
            )
        })
    }

    /// The refusal of a locked-out client's request.
    pub(crate) fn lockout(&self) -> Refusal {
        METRICS.rate_limited.inc(RateLimit::FailedAuthentications);
        Refusal::too_many(
            Reason::FailedAuthentications,
            format!(
                "more than {} failed authentications a minute from this address",
                self.settings.failed_authentications_per_minute
            ),
            FAILURE_WINDOW.as_secs() as u32,
        )
    }
}

/// Counts one event for `key`: whether the window's count is over `limit`
/// (never, when `limit` is 0).
fn over<K: Hash>(rate: &Rate, key: &K, limit: u32) -> bool {
    limit > 0 && rate.observe(key, 1) > limit as isize
}

#[cfg(test)]
#[path = "rate_tests.rs"]
mod tests;
