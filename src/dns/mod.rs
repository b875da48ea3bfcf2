//! Upstream names by DNS, cached (issue 11): apps' containers are named
//! (`http://myapp:8080`), and asking the resolver for every request costs
//! a round trip each time and fails every request while the resolver is
//! down. Every place that connects to a name asks one shared [`Dns`]:
//!
//! - an IP literal never reaches the resolver;
//! - an answer is kept for its TTL, clamped to
//!   `resolver.min_ttl_seconds`..`max_ttl_seconds`; while it is fresh a
//!   request reads it under a read lock, with no I/O and no allocation;
//! - the first request after the TTL asks again (one lookup per name at
//!   a time: concurrent requests wait for it), within
//!   `resolver.timeout_ms`;
//! - when the resolver fails (times out, SERVFAIL, unreachable), the last
//!   good answer is served ("stale") for at most
//!   `resolver.stale_answer_max_seconds` after its TTL ran out, asked
//!   again every `min_ttl_seconds`, with a warning at most once a minute
//!   per name; a name never resolved gives the resolver's error (502);
//! - a definitive "no such name" (NXDOMAIN, or no address) is an answer,
//!   not a failure: the name's addresses are forgotten at once, since a
//!   removed container's address may soon belong to another container;
//!   that negative answer, and any error for a name without a stale
//!   answer, is kept for `min_ttl_seconds`;
//! - a name with several addresses is served in rotation, one address per
//!   new connection ([`Dns::resolve`]); the peer client gets all of them,
//!   starting at the rotation's next ([`Dns::resolve_all`]);
//! - at most [`MAX_NAMES`] names are kept (only names from the config and
//!   the state are looked up, but the cache is bounded anyway).
//!
//! The lookup itself is a [`Lookup`] and the time a [`Clock`], so that
//! the cache's logic is tested without a resolver or waiting
//! (`tests.rs`); [`system`] is the real one, over `hickory-resolver`.
//!
//! May import: `observe`, `clock`.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::observe::metrics::DnsLookup;
use async_trait::async_trait;
use log::{info, warn};

pub mod system;
#[cfg(test)]
mod tests;

/// Names kept at most; past that, a new name evicts the entries that
/// can no longer be served, then any one.
pub const MAX_NAMES: usize = 4096;

/// A failed refresh warns at most this often per name.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The `resolver:` section of the config, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Name servers in place of `/etc/resolv.conf`'s (empty: the system's).
    pub nameservers: Vec<SocketAddr>,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// How long after its TTL a last good answer may still be served
    /// while the resolver fails.
    pub stale_max: Duration,
    /// One lookup, all attempts and search domains included.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nameservers: Vec::new(),
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(300),
            stale_max: Duration::from_secs(86_400),
            timeout: Duration::from_millis(2000),
        }
    }
}

/// A resolver's answer: the name's addresses and how long they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addrs: Vec<IpAddr>,
    pub ttl: Duration,
}

/// Why a lookup gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The resolver answered that the name has no address (NXDOMAIN or
    /// no record): the last good answer is dropped.
    NotFound(String),
    /// No answer (timeout, SERVFAIL, refused, I/O): the last good answer
    /// may be served.
    Failed(String),
}

/// Asks a resolver for a name's addresses.
#[async_trait]
pub trait Lookup: Send + Sync {
    async fn lookup(&self, name: &str) -> Result<Answer, LookupError>;
}

/// The time of the cache's decisions.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// [`Instant::now`].
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A name that gave no address: the text of the 502's log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve {name}: {detail}")]
pub struct DnsError {
    pub name: String,
    pub detail: String,
}

/// What is known of one name.
#[derive(Debug, Clone)]
struct State {
    /// The last good answer (empty: none).
    addrs: Arc<[IpAddr]>,
    /// Served (or the error given) without asking until then.
    fresh_until: Instant,
    /// The last good answer may be served until then (while it fails).
    stale_until: Instant,
    /// The last error, given while there is no answer and it is fresh.
    error: Option<Arc<str>>,
    /// When a failure was last logged as a warning.
    warned: Option<Instant>,
}

struct Slot {
    state: RwLock<State>,
    /// Held by the one request that asks the resolver for this name.
    refresh: tokio::sync::Mutex<()>,
    /// The rotation among several addresses.
    next: AtomicUsize,
}

/// What the state says for a request at a given time, without asking.
enum Settled {
    Addrs(Arc<[IpAddr]>),
    Error(Arc<str>),
}

/// The shared cache of name lookups. See the module's documentation.
pub struct Dns {
    settings: Settings,
    lookup: Arc<dyn Lookup>,
    clock: Arc<dyn Clock>,
    names: RwLock<HashMap<Box<str>, Arc<Slot>>>,
}

fn metric(result: DnsLookup) {
    crate::observe::metrics::METRICS.dns_lookups.inc(result);
}

impl Dns {
    /// The cache over `lookup`, deciding by `clock`.
    pub fn new(settings: Settings, lookup: Arc<dyn Lookup>, clock: Arc<dyn Clock>) -> Dns {
        Dns {
            settings,
            lookup,
            clock,
            names: RwLock::new(HashMap::new()),
        }
    }

    /// The cache over the system's resolver (`/etc/resolv.conf`,
    /// `/etc/hosts`), or the name servers of `settings`.
    pub fn system(settings: Settings) -> Dns {
        let lookup = Arc::new(system::Hickory::new(&settings));
        Dns::new(settings, lookup, Arc::new(SystemClock))
    }

    /// One address of `host` to connect to on `port`: the address itself
    /// for an IP literal, else the next of the name's addresses in
    /// rotation, looked up only when its answer is no longer fresh.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, DnsError> {
        if let Some(addr) = self.cached(host, port) {
            return Ok(addr);
        }
        let slot = self.slot_or_insert(host);
        let addrs = self.refresh(host, &slot).await?;
        Ok(SocketAddr::new(pick(&slot, &addrs), port))
    }

    /// Every address of `host` on `port`, starting at the rotation's next.
    pub async fn resolve_all(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let now = self.clock.now();
        let fresh = self.slot(host).and_then(|slot| match settled(&slot, now) {
            Some(Settled::Addrs(addrs)) => Some((slot, addrs)),
            _ => None,
        });
        let (slot, addrs) = match fresh {
            Some(found) => found,
            None => {
                let slot = self.slot_or_insert(host);
                let addrs = self.refresh(host, &slot).await?;
                (slot, addrs)
            }
        };
        let first = slot.next.fetch_add(1, Ordering::Relaxed);
        Ok((0..addrs.len())
            .map(|i| SocketAddr::new(addrs[(first + i) % addrs.len()], port))
            .collect())
    }

    /// The hot path: an IP literal, or a fresh cached answer; `None` when
    /// the resolver must be asked (or its recent error given).
    pub fn cached(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        let slot = names.get(host)?;
        let state = slot.state.read().unwrap_or_else(|e| e.into_inner());
        if state.addrs.is_empty() || self.clock.now() >= state.fresh_until {
            return None;
        }
        let ip = pick(slot, &state.addrs);
        Some(SocketAddr::new(ip, port))
    }

    fn slot(&self, host: &str) -> Option<Arc<Slot>> {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        names.get(host).cloned()
    }

    /// The name's slot, added (evicting if full) when new.
    fn slot_or_insert(&self, host: &str) -> Arc<Slot> {
        if let Some(slot) = self.slot(host) {
            return slot;
        }
        let now = self.clock.now();
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = names.get(host) {
            return slot.clone();
        }
        if names.len() >= MAX_NAMES {
            names.retain(|_, slot| {
                let state = slot.state.read().unwrap_or_else(|e| e.into_inner());
                now < state.fresh_until || now < state.stale_until
            });
            if names.len() >= MAX_NAMES {
                if let Some(any) = names.keys().next().cloned() {
                    names.remove(&any);
                }
            }
        }
        let slot = Arc::new(Slot {
            state: RwLock::new(State {
                addrs: Arc::from([]),
                fresh_until: now,
                stale_until: now,
                error: None,
                warned: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
            next: AtomicUsize::new(0),
        });
        names.insert(host.into(), slot.clone());
        slot
    }

    /// Asks the resolver for `host`, once at a time per name: a request
    /// that waited for another's lookup takes its outcome.
    async fn refresh(&self, host: &str, slot: &Slot) -> Result<Arc<[IpAddr]>, DnsError> {
        let _only_one = slot.refresh.lock().await;
        let fail = |detail: &str| DnsError {
            name: host.to_string(),
            detail: detail.to_string(),
        };
        match settled(slot, self.clock.now()) {
            Some(Settled::Addrs(addrs)) => return Ok(addrs),
            Some(Settled::Error(e)) => return Err(fail(&e)),
            None => {}
        }
        let timeout = self.settings.timeout;
        let outcome = match tokio::time::timeout(timeout, self.lookup.lookup(host)).await {
            Ok(Ok(answer)) if answer.addrs.is_empty() => {
                Err(LookupError::NotFound("no address".into()))
            }
            Ok(outcome) => outcome,
            Err(_) => Err(LookupError::Failed(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        };
        let now = self.clock.now();
        let mut state = slot.state.write().unwrap_or_else(|e| e.into_inner());
        let retry = now + self.settings.min_ttl;
        match outcome {
            Ok(answer) => {
                metric(DnsLookup::Ok);
                let ttl = answer
                    .ttl
                    .clamp(self.settings.min_ttl, self.settings.max_ttl);
                if state.warned.take().is_some() {
                    info!("DNS: {host} resolves again");
                }
                state.addrs = answer.addrs.into();
                state.fresh_until = now + ttl;
                state.stale_until = now + ttl + self.settings.stale_max;
                state.error = None;
                Ok(state.addrs.clone())
            }
            Err(LookupError::Failed(e)) if !state.addrs.is_empty() && now < state.stale_until => {
                metric(DnsLookup::Stale);
                if state.warned.is_none_or(|at| now >= at + WARN_EVERY) {
                    state.warned = Some(now);
                    let expired = state.stale_until - self.settings.stale_max;
                    warn!(
                        "DNS: cannot resolve {host} ({e}): serving its last answer, expired {} s ago (served for at most {} s after its TTL)",
                        now.saturating_duration_since(expired).as_secs(),
                        self.settings.stale_max.as_secs()
                    );
                }
                state.fresh_until = retry.min(state.stale_until);
                Ok(state.addrs.clone())
            }
            Err(LookupError::Failed(e) | LookupError::NotFound(e)) => {
                metric(DnsLookup::Error);
                state.addrs = Arc::from([]);
                state.fresh_until = retry;
                state.stale_until = now;
                let e: Arc<str> = e.into();
                state.error = Some(e.clone());
                Err(fail(&e))
            }
        }
    }
}

/// The state's verdict at `now`, if it is still fresh.
fn settled(slot: &Slot, now: Instant) -> Option<Settled> {
    let state = slot.state.read().unwrap_or_else(|e| e.into_inner());
    if now >= state.fresh_until {
        return None;
    }
    if !state.addrs.is_empty() {
        return Some(Settled::Addrs(state.addrs.clone()));
    }
    state.error.clone().map(Settled::Error)
}

/// The next address in rotation (`addrs` is never empty here).
fn pick(slot: &Slot, addrs: &[IpAddr]) -> IpAddr {
    if addrs.len() == 1 {
        return addrs[0];
    }
    addrs[slot.next.fetch_add(1, Ordering::Relaxed) % addrs.len()]
}
