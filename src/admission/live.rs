//! The requests in flight, for revocation (docs/access.md): every
//! forwarded request is known from its decision to its end, with what it
//! was decided as and the connection that carries it. After each state
//! reload, [`LiveRequests::revoke`] decides each again
//! ([`portal_core::revoke::still_allowed`]); one its caller could no
//! longer open gets [`GRACE`] to finish on its own (a short request in
//! flight during the reload is not cut), then [`LiveRequests::sweep`],
//! run at every poll (250 ms), closes its connection: within about 1.25 s
//! of the reload, inside the 2 s of the contract. Closing the connection is
//! the one way to end an upgraded or streaming request in Pingora; on
//! HTTP/2 it also ends the connection's other streams (the same client's,
//! refused the same way if they are revoked too, else retried).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::admission::guard::Guard;
use portal_core::revoke::{still_allowed, Opened};
use portal_core::snapshot::Snapshot;

/// How long a revoked request may still finish on its own.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// One request in flight.
struct Live {
    /// Its connection's key in [`Guard`].
    conn: usize,
    opened: Arc<Opened>,
    /// Revoked: closed if still open then.
    doomed_at: Option<Instant>,
}

/// A request in flight: it is one of [`LiveRequests`] until this is
/// dropped (with the request's context, whichever way the request ends).
pub(crate) struct LiveRequest {
    requests: Arc<LiveRequests>,
    id: u64,
}

impl Drop for LiveRequest {
    fn drop(&mut self) {
        self.requests.open_map().remove(&self.id);
    }
}

/// Requests in flight, by a number of their own.
#[derive(Default)]
pub(crate) struct LiveRequests {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Live>>,
}

impl LiveRequests {
    fn open_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request carried by the connection `conn` (its key in
    /// [`Guard`]) until the returned guard is dropped.
    pub(crate) fn open(self: &Arc<Self>, conn: usize, opened: Arc<Opened>) -> LiveRequest {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open_map().insert(
            id,
            Live {
                conn,
                opened,
                doomed_at: None,
            },
        );
        LiveRequest {
            requests: self.clone(),
            id,
        }
    }

    /// Dooms the requests `snapshot` no longer allows at `now` (Unix
    /// seconds): they have [`GRACE`] to end; returns how many were doomed.
    pub(crate) fn revoke(&self, snapshot: &Snapshot, now: i64) -> usize {
        let at = Instant::now() + GRACE;
        let mut doomed = 0;
        for live in self.open_map().values_mut() {
            if live.doomed_at.is_none() && !still_allowed(&live.opened, snapshot, now) {
                live.doomed_at = Some(at);
                doomed += 1;
            }
        }
        doomed
    }

    /// Dooms the terminal requests whose token has expired at `now` (Unix
    /// seconds, with their fraction), without waiting for a reload;
    /// returns how many.
    pub(crate) fn expire(&self, now: f64) -> usize {
        let at = Instant::now() + GRACE;
        let mut doomed = 0;
        for live in self.open_map().values_mut() {
            if live.doomed_at.is_none() && live.opened.credential.is_some_and(|c| c.expired(now)) {
                live.doomed_at = Some(at);
                doomed += 1;
            }
        }
        doomed
    }

    /// Closes the connections of doomed requests whose grace is over;
    /// returns how many requests were closed.
    pub(crate) fn sweep(&self, guard: &Guard) -> usize {
        let now = Instant::now();
        let mut map = self.open_map();
        let due: Vec<u64> = map
            .iter()
            .filter(|(_, live)| live.doomed_at.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            if let Some(live) = map.remove(id) {
                guard.close_connection(live.conn);
            }
        }
        if !due.is_empty() {
            crate::observe::metrics::METRICS
                .requests_revoked
                .inc_by(due.len() as u64);
        }
        due.len()
    }
}
