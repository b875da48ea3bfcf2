//! One client connection as the guard knows it ([`Conn`]), and a request
//! in flight on it ([`InFlight`]).

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Guard, RELAY_QUIET};

/// One client connection.
pub(crate) struct Conn {
    pub(super) id: u64,
    pub(super) fd: RawFd,
    /// A duplicate of the socket: `shutdown(2)` on it ends the connection
    /// whatever Pingora is doing with it, and holding it means the fd
    /// number cannot be reused meanwhile.
    /// Dropped (closed) once the connection is shut down: what it guards
    /// is over, and its descriptor is given back at once.
    pub(super) dup: Mutex<Option<OwnedFd>>,
    pub(super) ip: Option<IpAddr>,
    /// On a public listener, under the cap: the only kind ever shed.
    pub(super) capped: bool,
    pub(super) accepted: Instant,
    pub(super) state: AtomicU8,
    /// Milliseconds after `accepted` by which the current head must be
    /// complete; 0 for none.
    pub(super) deadline_ms: AtomicU64,
    /// Set when a request is done: the next byte read starts a head.
    pub(super) between_requests: AtomicBool,
    pub(super) released: AtomicBool,
    pub(super) handshaken: tokio::sync::Notify,
    /// Its key in `Registry::serving`, once past the handshake (0: none).
    pub(super) digest: std::sync::atomic::AtomicUsize,
    /// Requests in flight: 0 or 1 on HTTP/1, open streams on HTTP/2.
    pub(super) inflight: AtomicU32,
    /// Requests in flight whose upstream socket is not open yet: the cap
    /// counts each ahead, as it counts one for a connection between
    /// requests.
    pub(super) connecting: AtomicU32,
    /// Milliseconds after `accepted` of its last request's end, or for a
    /// relay of its last byte either way: idle since then.
    pub(super) quiet_since_ms: AtomicU64,
    /// Relays bytes (MQTT): idle once quiet for [`RELAY_QUIET`].
    pub(super) relay: AtomicBool,
}

impl Conn {
    pub(super) fn dup(&self) -> std::sync::MutexGuard<'_, Option<OwnedFd>> {
        self.dup.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the connection, whatever Pingora is doing with it, and closes
    /// the duplicate.
    pub(super) fn close(&self) {
        if let Some(dup) = self.dup().take() {
            let _ = socket2::SockRef::from(&dup).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether Pingora has closed its descriptor of the socket (its number
    /// is free, or now names another socket than the duplicate's).
    pub(super) fn dropped_by_pingora(&self) -> bool {
        // What a descriptor number names now (`socket:[inode]`), read
        // from /proc: no descriptor is borrowed that may be closed.
        fn names(fd: RawFd) -> Option<std::path::PathBuf> {
            std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
        }
        match self.dup().as_ref() {
            Some(dup) => names(self.fd) != names(dup.as_raw_fd()),
            None => true,
        }
    }

    pub(super) fn digest(&self) -> Option<usize> {
        Some(self.digest.load(Ordering::Relaxed)).filter(|&d| d != 0)
    }

    pub(super) fn set_deadline(&self, at: Option<Instant>) {
        let ms = at.map_or(0, |at| {
            at.saturating_duration_since(self.accepted)
                .as_millis()
                .max(1) as u64
        });
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.deadline_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.accepted + Duration::from_millis(ms)),
        }
    }

    /// Something happened on it now (a request ended, a relay moved a
    /// byte): idle from here.
    pub(super) fn touch(&self) {
        let ms = self.accepted.elapsed().as_millis() as u64;
        self.quiet_since_ms.store(ms, Ordering::Relaxed);
    }

    /// Since when it has been idle, or `None` while it is busy: a request
    /// in flight, or a relay that moved a byte within [`RELAY_QUIET`].
    pub(super) fn idle_since(&self, now: Instant) -> Option<Instant> {
        if self.inflight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since =
            self.accepted + Duration::from_millis(self.quiet_since_ms.load(Ordering::Relaxed));
        if self.relay.load(Ordering::Relaxed) && now.saturating_duration_since(since) < RELAY_QUIET
        {
            return None;
        }
        Some(since)
    }
}

/// A request in flight on a connection, from its complete head to the
/// end of its handling (dropped with the request's context): the
/// connection is busy meanwhile.
pub(crate) struct InFlight {
    pub(super) conn: Arc<Conn>,
    pub(super) guard: Arc<Guard>,
    /// Counted in its client's share (an HTTP/2 stream beyond the first).
    pub(super) extra: bool,
    /// Its upstream socket is open (or a pooled one reused).
    pub(super) upstream: bool,
}

impl InFlight {
    /// Its upstream socket is open: counted by the cap's recount from now
    /// on, no longer ahead of it.
    pub(crate) fn upstream_open(&mut self) {
        if !std::mem::replace(&mut self.upstream, true) {
            self.conn.connecting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream_open();
        self.conn.inflight.fetch_sub(1, Ordering::AcqRel);
        self.conn.touch();
        if self.extra {
            if let Some(ip) = self.conn.ip {
                let mut reg = self.guard.registry();
                if let Some(n) = reg.extra_streams.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        reg.extra_streams.remove(&ip);
                    }
                }
            }
        }
    }
}
