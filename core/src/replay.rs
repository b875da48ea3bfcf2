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

/// The signatures this process can tell are fresh across restarts and
/// graceful upgrades (docs/signing.md, "Restarts and upgrades"): each
/// process has its own replay cache, so a signature a previous process
/// accepted, or one the next process accepts while this one still serves,
/// could be accepted twice. A process accepts, on connections not
/// authenticated by pinned TLS, only signatures `created` from the second
/// it began serving (its listening sockets in hand: after the previous
/// process handed them over) and, once it hands them over in turn
/// (SIGQUIT), before that second: the two processes accept disjoint
/// `created` seconds, and a signature falls to at most one. What falls
/// between (the handover's second or two) is refused by both with 503 and
/// `Retry-After: 1`: a new call is signed anew. A pinned connection needs
/// none of this: only the peer holding its key can open one, and it could
/// as well sign anew.
#[derive(Debug)]
pub struct Handover {
    since: AtomicI64,
    until: AtomicI64,
}

impl Handover {
    /// A process that has not yet begun serving: it accepts from `now`,
    /// moved on by [`Handover::serving`].
    pub fn new(now: i64) -> Self {
        Handover {
            since: AtomicI64::new(now),
            until: AtomicI64::new(i64::MAX),
        }
    }

    /// The process has its listening sockets, at `now`: signatures created
    /// earlier may have been another process's.
    pub fn serving(&self, now: i64) {
        self.since.fetch_max(now, Ordering::AcqRel);
    }

    /// The process handed its listening sockets over at `now`: signatures
    /// created from then on are the next process's.
    pub fn handed_over(&self, now: i64) {
        self.until.fetch_min(now, Ordering::AcqRel);
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
mod tests {
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

    /// Two processes around a handover accept disjoint `created` seconds,
    /// whatever the moments: no signature is accepted by both, and only
    /// what was signed between the two moments is refused by both.
    #[test]
    fn a_handover_splits_the_seconds() {
        for (start, quit, taken) in [(0, 10, 10), (0, 10, 11), (5, 5, 5), (0, 100, 103)] {
            let old = Handover::new(start);
            old.serving(start);
            // Launched before the handover, serving once it has the sockets.
            let new = Handover::new(start);
            old.handed_over(quit);
            new.serving(taken);
            for created in start - 10..taken + 400 {
                let (a, b) = (old.admits(created).is_ok(), new.admits(created).is_ok());
                assert!(!(a && b), "{created} accepted by both");
                assert_eq!(
                    a || b,
                    created >= start && !(quit..taken).contains(&created),
                    "{created} ({start}, {quit}, {taken})"
                );
            }
        }
        assert_eq!(Handover::new(7).admits(6), Err(ReplayError::Handover));
    }

}
