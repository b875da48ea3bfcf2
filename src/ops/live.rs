//! The requests in flight, for revocation (DESIGN section 4): every
//! forwarded request is known from its decision to its end, with what it
//! was decided as and the connection that carries it. After each state
//! reload, [`LiveRequests::revoke`] decides each again
//! ([`crate::decision::revoke::still_allowed`]) and closes the connection
//! of any its caller could no longer open: within one poll of the reload
//! (250 ms), far inside the 2 s of the contract. Closing the connection is
//! the one way to end an upgraded or streaming request in Pingora; on
//! HTTP/2 it also ends the connection's other streams (the same client's,
//! refused the same way if they are revoked too, else retried).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::decision::revoke::{still_allowed, Opened};
use crate::ops::guard::Guard;
use crate::state::Snapshot;

/// Requests in flight, by a number of their own.
#[derive(Default)]
pub struct LiveRequests {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (usize, Arc<Opened>)>>,
}

impl LiveRequests {
    fn open_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (usize, Arc<Opened>)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request carried by the connection `conn` (its key in
    /// [`Guard`]); returns its number for [`LiveRequests::close`].
    pub fn open(&self, conn: usize, opened: Arc<Opened>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open_map().insert(id, (conn, opened));
        id
    }

    /// The request ended.
    pub fn close(&self, id: u64) {
        self.open_map().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.open_map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connections of the requests `snapshot` no longer allows;
    /// returns how many requests were revoked.
    pub fn revoke(&self, snapshot: &Snapshot, guard: &Guard) -> usize {
        let revoked: Vec<(u64, usize)> = self
            .open_map()
            .iter()
            .filter(|(_, (_, opened))| !still_allowed(opened, snapshot))
            .map(|(id, (conn, _))| (*id, *conn))
            .collect();
        for (id, conn) in &revoked {
            guard.close_connection(*conn);
            self.close(*id);
        }
        if !revoked.is_empty() {
            crate::ops::metrics::METRICS
                .requests_revoked
                .inc_by(revoked.len() as u64);
        }
        revoked.len()
    }
}
