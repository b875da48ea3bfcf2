//! The replay cache of peer signatures (docs/signing.md): each
//! `(keyid, nonce)` is accepted once while its signature can be valid.
//! Memory is bounded in bytes: nonces are at most
//! [`crate::signature::MAX_NONCE_BYTES`] long and kept as a
//! 64-bit keyed hash, and the cache's fixed budget ([`BUDGET_BYTES`]) is
//! shared among the peers of `peers.json`, so a peer flooding unique
//! nonces only ever fills its own share; a peer whose share is full of
//! unexpired nonces is refused (fail closed) until entries expire. The
//! HTTPS shell claims nonces after a signature verified (only verified
//! nonces are recorded).

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The default number of live nonces kept per peer: at the longest validity
/// (300 s plus skew), about 160 signed requests a second, sustained.
pub const DEFAULT_PER_PEER: usize = 50_000;

/// The memory of the whole cache, all peers together.
pub const BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// What one live nonce costs at most: its hash in the set (9 bytes a slot)
/// and in the expiry heap (16 bytes), with both tables at their worst
/// just after growing.
pub const ENTRY_BYTES: usize = 64;

#[derive(Default)]
struct PeerNonces {
    live: HashSet<u64>,
    /// (forget at, nonce hash), soonest first.
    by_expiry: BinaryHeap<Reverse<(i64, u64)>>,
}

impl PeerNonces {
    fn prune(&mut self, now: i64) {
        while let Some(Reverse((at, _))) = self.by_expiry.peek() {
            if *at >= now {
                break;
            }
            let Reverse((_, nonce)) = self.by_expiry.pop().expect("peeked");
            self.live.remove(&nonce);
        }
    }
}

/// Why a nonce is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Seen before within its validity.
    Seen,
    /// The peer's share is full of live nonces.
    Full,
    /// Signed when another process of this proxy may have accepted it: a
    /// request this process cannot know to be fresh ([`Handover`]).
    Handover,
}

/// The signatures this process can tell are fresh across a graceful
/// upgrade (docs/signing.md, "Restarts and upgrades"): each process has
/// its own replay cache, so a signature the old process accepted could be
/// accepted again by the new one, or the other way round while both
/// serve. The two processes accept disjoint `created` seconds instead, on
/// connections not authenticated by pinned TLS: the old one, before it
/// hands its sockets over (SIGQUIT, at `q`), accepts `created` up to
/// `q + skew` (the clock difference allowed), and after it below
/// `q + margin`; the new one, which has the sockets at `t >= q`, from
/// `t + margin` on, `margin` being the skew plus one second. What falls
/// between is refused by both (503, `Retry-After: 1`): for `margin`
/// seconds after an upgrade, a peer over CA TLS signs anew. A pinned
/// connection needs none of this: only the peer holding its key can open
/// one, and it could as well sign anew.
#[derive(Debug)]
pub struct Handover {
    margin: i64,
    since: AtomicI64,
    until: AtomicI64,
}

impl Handover {
    /// A process started afresh (`upgrading` false: it accepts every
    /// `created`), or by an upgrade (nothing until [`Handover::took_over`]).
    pub fn new(margin: i64, upgrading: bool) -> Self {
        Handover {
            margin,
            since: AtomicI64::new(if upgrading { i64::MAX } else { i64::MIN }),
            until: AtomicI64::new(i64::MAX),
        }
    }

    /// An upgrade's new process has the listening sockets, at `now`.
    pub fn took_over(&self, now: i64) {
        self.since
            .store(now.saturating_add(self.margin), Ordering::Release);
    }

    /// The process handed its listening sockets over at `now`.
    pub fn handed_over(&self, now: i64) {
        self.until
            .fetch_min(now.saturating_add(self.margin), Ordering::AcqRel);
    }

    /// Whether a signature `created` then is this process's to accept.
    pub fn admits(&self, created: i64) -> Result<(), ReplayError> {
        let since = self.since.load(Ordering::Acquire);
        let until = self.until.load(Ordering::Acquire);
        if (since..until).contains(&created) {
            Ok(())
        } else {
            Err(ReplayError::Handover)
        }
    }
}

/// Seen nonces, per peer.
pub struct ReplayCache {
    per_peer: usize,
    /// Peers in `peers.json`, among whom the budget is shared.
    peer_count: AtomicUsize,
    /// Keyed per process: a peer cannot choose nonces that collide.
    hasher: RandomState,
    peers: Mutex<HashMap<String, PeerNonces>>,
}

impl ReplayCache {
    /// At most `per_peer` live nonces a peer, and at most its share of
    /// [`BUDGET_BYTES`].
    pub fn new(per_peer: usize) -> Self {
        ReplayCache {
            per_peer,
            peer_count: AtomicUsize::new(1),
            hasher: RandomState::new(),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// The live nonces one peer may have now.
    pub fn share(&self) -> usize {
        let peers = self.peer_count.load(Ordering::Relaxed).max(1);
        (BUDGET_BYTES / ENTRY_BYTES / peers).clamp(1, self.per_peer)
    }

    /// Records `nonce` of `keyid` until `forget_at` (Unix seconds: the
    /// signature's `expires` plus the allowed skew), unless it is already
    /// there or the peer's share is full.
    pub fn check_and_insert(
        &self,
        keyid: &str,
        nonce: &str,
        forget_at: i64,
        now: i64,
    ) -> Result<(), ReplayError> {
        let hash = self.hasher.hash_one(nonce);
        let share = self.share();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match peers.get_mut(keyid) {
            Some(e) => e,
            None => peers.entry(keyid.to_string()).or_default(),
        };
        entry.prune(now);
        if entry.live.contains(&hash) {
            return Err(ReplayError::Seen);
        }
        if entry.live.len() >= share {
            return Err(ReplayError::Full);
        }
        entry.live.insert(hash);
        entry.by_expiry.push(Reverse((forget_at, hash)));
        Ok(())
    }

    /// Forgets the peers not in `keep` (removed from `peers.json`) and every
    /// expired nonce, and shares the budget among `peer_count` peers; called
    /// on state reload.
    pub fn retain_peers(&self, keep: impl Fn(&str) -> bool, peer_count: usize, now: i64) {
        self.peer_count.store(peer_count.max(1), Ordering::Relaxed);
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|k, _| keep(k));
        for p in peers.values_mut() {
            p.prune(now);
            p.live.shrink_to_fit();
            p.by_expiry.shrink_to_fit();
        }
        peers.retain(|_, p| !p.live.is_empty());
    }

    /// Live nonces, all peers together.
    pub fn len(&self) -> usize {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.values().map(|p| p.live.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
