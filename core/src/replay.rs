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
use std::sync::atomic::{AtomicUsize, Ordering};
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
}
