//! Slow and idle clients never lock others out (README.md, "Operating it"), on
//! every listener. Each client connection is known from its accept to its
//! end, with:
//!
//! - a TLS handshake deadline ([`GuardLimits::handshake`], 10 s): the
//!   rustls listeners' pre-TLS hook registers the connection and keeps a
//!   duplicate of its socket, so a timer can `shutdown(2)` a handshake that
//!   takes too long (Pingora's own bound is a fixed 60 s);
//! - a request head deadline ([`GuardLimits::head`], 10 s): the stream is
//!   wrapped ([`Watched`]) so that its reads fail once the first byte of a
//!   new connection, or a head after its first byte, takes longer; the
//!   wrapper polls its own timer, so a silent client is caught too. The
//!   request filters say when a head is complete ([`Guard::head_complete`])
//!   and when the request is done ([`Guard::request_done`]: the next
//!   HTTP/1 head's first byte starts a new deadline; between requests the
//!   keep-alive idle limit applies);
//! - a share per client address ([`GuardLimits::per_client`], 256) on
//!   the public listeners: its connections, plus every HTTP/2 stream in
//!   flight beyond the first of a connection (each holds an upstream
//!   socket and buffers); a request past the share gets 503;
//! - at the overall cap ([`ConnectionCap`]), an idle public connection is
//!   shed to admit a new one: one in its handshake or waiting for its
//!   first request, an HTTP/1 keep-alive or HTTP/2 connection with no
//!   request in flight, an MQTT relay quiet both ways for [`RELAY_QUIET`].
//!   What an address holds is counted in descriptors: two a connection
//!   (its socket and the guard's duplicate) and one a request in flight
//!   (its upstream socket), and a new connection is admitted only with
//!   room for three. The address holding the most gives first (what it
//!   pushed in past the cap in the last 5 to 10 s counted beside what it
//!   holds: a flood whose connections are each shed for its next gives
//!   before a client holding as much), its oldest idle connection first; a connection with a request in flight is shed
//!   only from an address at or over its fair share (the descriptors
//!   the public connections hold, divided among the addresses, the
//!   newcomer's included) for an address under it. So neither a flood of idle connections nor connections that each
//!   hold a request and its upstream socket can keep another client out;
//! - the private listeners (metrics, internal) have limits of their own
//!   ([`PRIVATE_PER_CLIENT`], [`PRIVATE_TOTAL`]): they neither count
//!   against the public share and cap nor are refused by them.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::limits::ConnectionCap;
use crate::observe::metrics::METRICS;

/// The bounds of [`Guard`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardLimits {
    /// From accept to the end of the TLS handshake.
    pub handshake: Duration,
    /// For a new connection's first byte, and for a request head from its
    /// first byte to its end.
    pub head: Duration,
    /// Open connections per client address.
    pub per_client: usize,
}

/// Connections per client address on the private listeners (an app's
/// calls to the internal listener, a scraper).
pub(crate) const PRIVATE_PER_CLIENT: usize = 64;
/// Connections on the private listeners in all.
pub(crate) const PRIVATE_TOTAL: usize = 512;
/// Descriptors a private connection may hold: its socket, the guard's
/// duplicate, one upstream socket.
const PRIVATE_FDS: usize = 3;
/// An MQTT relay with no byte either way for this long is idle: it may be
/// shed at the cap (its client reconnects).
pub(crate) const RELAY_QUIET: Duration = Duration::from_secs(2);

/// Where a connection stands.
const HANDSHAKE: u8 = 0;
/// Past TLS, no complete request yet: sheddable.
const WAITING: u8 = 1;
/// Has sent a complete request (or relays MQTT): never shed.
const ACTIVE: u8 = 2;
/// Closed by the guard.
const CLOSED: u8 = 3;

/// Why a connection is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotAdmitted {
    #[error("the client has {0} connections open (limits.max_connections_per_client)")]
    PerClient(usize),
    #[error("over the connection cap (limits.max_client_connections) and none to shed")]
    Cap,
    #[error("{0} connections open on the metrics and internal listeners")]
    Private(usize),
}

/// Every client connection of the process, on every listener.
pub(crate) struct Guard {
    limits: GuardLimits,
    cap: Arc<ConnectionCap>,
    next_id: AtomicU64,
    registry: Mutex<Registry>,
}

impl Guard {
    pub(crate) fn new(limits: GuardLimits, cap: Arc<ConnectionCap>) -> Arc<Guard> {
        Arc::new(Guard {
            limits,
            cap,
            next_id: AtomicU64::new(1),
            registry: Mutex::new(Registry::default()),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection on socket `fd` from `ip`: within the
    /// client's limit, and, when `capped` (a public listener), within the
    /// cap, shedding the oldest public connection that has not sent a
    /// complete request if the cap is reached.
    pub(crate) fn admit(
        &self,
        fd: BorrowedFd<'_>,
        ip: Option<IpAddr>,
        state: u8,
        capped: bool,
    ) -> Result<Arc<Conn>, NotAdmitted> {
        let refused = |r| {
            METRICS.connections_refused.inc();
            Err(r)
        };
        let dup = match fd.try_clone_to_owned() {
            Ok(dup) => dup,
            // Out of descriptors: that is the cap.
            Err(_) => return refused(NotAdmitted::Cap),
        };
        let mut reg = self.registry();
        // A connection still registered on this descriptor is one whose
        // handshake failed: its number was freed and reused by this one.
        if let Some(old) = reg.handshaking.get(&fd.as_raw_fd()).cloned() {
            old.state.store(CLOSED, Ordering::Relaxed);
            Self::release_locked(&mut reg, &old, None);
        }
        if !capped {
            // The private listeners: limits of their own, never the
            // public share or cap.
            let open = ip.map_or(0, |ip| {
                reg.private_per_client.get(&ip).copied().unwrap_or(0)
            });
            if open >= PRIVATE_PER_CLIENT {
                return refused(NotAdmitted::PerClient(open));
            }
            if reg.private_open >= PRIVATE_TOTAL {
                return refused(NotAdmitted::Private(reg.private_open));
            }
        } else if let Some(ip) = ip {
            let mut open = reg.load(ip);
            if open >= self.limits.per_client {
                // Handshakes that failed are only forgotten at their
                // deadline: forget this client's now, then count again.
                Self::forget_failed_handshakes(&mut reg, |c| c.ip == Some(ip));
                open = reg.load(ip);
            }
            if open >= self.limits.per_client {
                return refused(NotAdmitted::PerClient(open));
            }
        }
        // The descriptors of private connections (each with its socket,
        // the guard's duplicate and an upstream socket) are not the
        // public cap's.
        let excluded = reg.private_open * PRIVATE_FDS;
        if capped && !self.cap.try_admit(excluded, || reg.awaiting_upstream()) {
            // A private listener's connection (metrics, internal) is never
            // shed for a public one: the cap keeps them reachable.
            // Counted in descriptors, upstream sockets included.
            match reg.victim(ip, None) {
                Some(victim) if self.cap.admit_past() => {
                    Self::shed_locked(&mut reg, &victim);
                    reg.pushed_in(ip, Instant::now());
                }
                _ => return refused(NotAdmitted::Cap),
            }
        }
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            fd: fd.as_raw_fd(),
            dup: Mutex::new(Some(dup)),
            ip,
            capped,
            accepted: Instant::now(),
            state: AtomicU8::new(state),
            deadline_ms: AtomicU64::new(0),
            between_requests: AtomicBool::new(false),
            released: AtomicBool::new(false),
            handshaken: tokio::sync::Notify::new(),
            digest: std::sync::atomic::AtomicUsize::new(0),
            inflight: AtomicU32::new(0),
            connecting: AtomicU32::new(0),
            quiet_since_ms: AtomicU64::new(0),
            relay: AtomicBool::new(false),
        });
        if capped {
            if let Some(ip) = ip {
                *reg.per_client.entry(ip).or_default() += 1;
            }
        } else {
            reg.private_open += 1;
            if let Some(ip) = ip {
                *reg.private_per_client.entry(ip).or_default() += 1;
            }
        }
        if state == HANDSHAKE {
            reg.handshaking.insert(conn.fd, conn.clone());
        }
        Ok(conn)
    }

    /// Forgets a connection that ended (once).
    fn release(&self, conn: &Conn, digest: Option<usize>) {
        let mut reg = self.registry();
        Self::release_locked(&mut reg, conn, digest);
    }

    fn release_locked(reg: &mut Registry, conn: &Conn, digest: Option<usize>) {
        if conn.released.swap(true, Ordering::AcqRel) {
            return;
        }
        if reg
            .handshaking
            .get(&conn.fd)
            .is_some_and(|c| c.id == conn.id)
        {
            reg.handshaking.remove(&conn.fd);
        }
        if let Some(key) = digest {
            if reg.serving.get(&key).is_some_and(|c| c.id == conn.id) {
                reg.serving.remove(&key);
            }
        }
        let counts = if conn.capped {
            &mut reg.per_client
        } else {
            reg.private_open -= 1;
            &mut reg.private_per_client
        };
        if let Some(ip) = conn.ip {
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }

    /// Releases the handshaking connections (those `which` picks) whose
    /// socket Pingora has already dropped: the handshake failed or the
    /// client left.
    fn forget_failed_handshakes(reg: &mut Registry, which: impl Fn(&Conn) -> bool) {
        let gone: Vec<Arc<Conn>> = reg
            .handshaking
            .values()
            .filter(|c| which(c) && c.dropped_by_pingora())
            .cloned()
            .collect();
        for conn in gone {
            conn.state.store(CLOSED, Ordering::Relaxed);
            Self::release_locked(reg, &conn, None);
        }
    }

    fn serving(&self, digest: usize) -> Option<Arc<Conn>> {
        self.registry().serving.get(&digest).cloned()
    }

    /// Frees descriptors when one was missing for an upstream socket
    /// (`EMFILE` at connect: more sockets open than the cap's last recount
    /// saw, on a machine too busy to have closed the shed ones yet): sheds
    /// one public connection as admission at the cap does, for the request
    /// of the connection whose socket digest is `digest` (itself never
    /// shed, nor counted against its address: it was admitted). The
    /// victim's duplicate is closed at once, its socket as soon as Pingora
    /// sees the shutdown. True when one was shed.
    pub(crate) fn make_room(&self, digest: Option<usize>) -> bool {
        let mut reg = self.registry();
        let asking = digest.and_then(|d| reg.serving.get(&d).cloned());
        let ip = asking.as_ref().and_then(|c| c.ip);
        let Some(victim) = reg.victim(ip, asking.as_ref()) else {
            return false;
        };
        Self::shed_locked(&mut reg, &victim);
        true
    }

    /// Sheds `victim`: closed now, its client slot and its place free from
    /// now on, counted.
    fn shed_locked(reg: &mut Registry, victim: &Conn) {
        victim.state.store(CLOSED, Ordering::Relaxed);
        victim.close();
        Self::release_locked(reg, victim, victim.digest());
        METRICS.connections_shed.inc();
    }

    /// Recounts the cap's descriptors (the reload service's every tick):
    /// those open, and the upstream sockets the public connections will
    /// open ([`Registry::awaiting_upstream`]); old pushes past the cap are
    /// aged on the way.
    pub(crate) fn recount_cap(&self) {
        let reserved = {
            let mut reg = self.registry();
            reg.age_pushes(Instant::now());
            reg.awaiting_upstream()
        };
        self.cap.recount(reserved);
    }

    /// A request head of the connection whose socket digest is `digest`
    /// is complete: no deadline until the request is done, and the
    /// connection is busy until the [`InFlight`] returned is dropped. A
    /// second request in flight on one connection (an HTTP/2 stream)
    /// counts in its client's share: refused past it.
    pub(crate) fn request_started(
        self: &Arc<Self>,
        digest: usize,
    ) -> Result<Option<InFlight>, NotAdmitted> {
        let Some(conn) = self.serving(digest) else {
            return Ok(None);
        };
        conn.set_deadline(None);
        conn.between_requests.store(false, Ordering::Relaxed);
        let _ = conn
            .state
            .compare_exchange(WAITING, ACTIVE, Ordering::AcqRel, Ordering::Relaxed);
        conn.connecting.fetch_add(1, Ordering::AcqRel);
        let extra = conn.inflight.fetch_add(1, Ordering::AcqRel) > 0 && conn.capped;
        let mut in_flight = InFlight {
            conn: conn.clone(),
            guard: self.clone(),
            extra: false,
            upstream: false,
        };
        let (true, Some(ip)) = (extra, conn.ip) else {
            return Ok(Some(in_flight));
        };
        let mut reg = self.registry();
        let load = reg.load(ip);
        if load >= self.limits.per_client {
            drop(reg);
            METRICS.connections_refused.inc();
            return Err(NotAdmitted::PerClient(load));
        }
        *reg.extra_streams.entry(ip).or_default() += 1;
        in_flight.extra = true;
        Ok(Some(in_flight))
    }

    /// Whether the connection whose socket digest is `digest` is reading
    /// a request head now: its first byte read, not yet its end (the
    /// head's deadline runs). A stopping process reads such a head on and
    /// answers it instead of dropping the connection (the vendored
    /// pingora-proxy's patch "next head at shutdown").
    pub(crate) fn head_in_progress(&self, digest: usize) -> bool {
        self.serving(digest)
            .is_some_and(|conn| conn.deadline_ms.load(Ordering::Relaxed) != 0)
    }

    /// A request of an HTTP/1 connection is done: the next byte read
    /// starts the next head's deadline.
    pub(crate) fn request_done(&self, digest: usize) {
        if let Some(conn) = self.serving(digest) {
            conn.between_requests.store(true, Ordering::Relaxed);
        }
    }

    /// Closes the connection whose socket digest is `digest` (a revoked
    /// request's).
    pub(crate) fn close_connection(&self, digest: usize) {
        if let Some(conn) = self.serving(digest) {
            conn.state.store(CLOSED, Ordering::Relaxed);
            conn.close();
        }
    }
}

mod conn;
mod h2_frames;
mod hooks;
mod registry;
mod watched;

pub(crate) use conn::{Conn, InFlight};
use registry::Registry;

pub(crate) use hooks::{digest_key, Guarded, HandshakeGuard, Serves};

#[cfg(test)]
mod tests;
