//! The replay cache of peer signatures (DESIGN section 5): each
//! `(keyid, nonce)` is accepted once while its signature can be valid.
//! Memory is bounded per peer, so a peer flooding unique nonces only ever
//! fills its own share; a peer whose share is full of unexpired nonces is
//! refused (fail closed) until entries expire. Used by `request_filter`
//! after the signature verified (only verified nonces are recorded).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Mutex;

/// The default number of live nonces kept per peer: at the longest validity
/// (300 s plus skew), about 160 signed requests a second, sustained.
pub const DEFAULT_PER_PEER: usize = 50_000;

#[derive(Default)]
struct PeerNonces {
    live: HashSet<String>,
    /// (forget at, nonce), soonest first.
    by_expiry: BinaryHeap<Reverse<(i64, String)>>,
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
    peers: Mutex<HashMap<String, PeerNonces>>,
}

impl ReplayCache {
    pub fn new(per_peer: usize) -> Self {
        ReplayCache {
            per_peer,
            peers: Mutex::new(HashMap::new()),
        }
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
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match peers.get_mut(keyid) {
            Some(e) => e,
            None => peers.entry(keyid.to_string()).or_default(),
        };
        entry.prune(now);
        if entry.live.contains(nonce) {
            return Err(ReplayError::Seen);
        }
        if entry.live.len() >= self.per_peer {
            return Err(ReplayError::Full);
        }
        entry.live.insert(nonce.to_string());
        entry
            .by_expiry
            .push(Reverse((forget_at, nonce.to_string())));
        Ok(())
    }

    /// Forgets the peers not in `keep` (removed from `peers.json`) and every
    /// expired nonce; called on state reload.
    pub fn retain_peers(&self, keep: impl Fn(&str) -> bool, now: i64) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|k, _| keep(k));
        for p in peers.values_mut() {
            p.prune(now);
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
        c.retain_peers(|k| k == "p2", 0);
        assert_eq!(c.len(), 1);
        c.retain_peers(|_| true, 101);
        assert!(c.is_empty());
    }
}
