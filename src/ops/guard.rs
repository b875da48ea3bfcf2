//! Slow and idle clients never lock others out (DESIGN section 8), on
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
//! - a limit of connections per client address
//!   ([`GuardLimits::per_client`], 256);
//! - at the overall cap ([`ConnectionCap`]), connections that have not yet
//!   sent a complete request are shed, the oldest first, to admit new
//!   ones: a flood of idle connections cannot keep a real client out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::limits::ConnectionCap;
use super::metrics::METRICS;

/// The bounds of [`Guard`].
#[derive(Debug, Clone, Copy)]
pub struct GuardLimits {
    /// From accept to the end of the TLS handshake.
    pub handshake: Duration,
    /// For a new connection's first byte, and for a request head from its
    /// first byte to its end.
    pub head: Duration,
    /// Open connections per client address.
    pub per_client: usize,
}

/// Where a connection stands.
const HANDSHAKE: u8 = 0;
/// Past TLS, no complete request yet: sheddable.
const WAITING: u8 = 1;
/// Has sent a complete request (or relays MQTT): never shed.
const ACTIVE: u8 = 2;
/// Closed by the guard.
const CLOSED: u8 = 3;

/// One client connection.
pub struct Conn {
    id: u64,
    fd: RawFd,
    /// A duplicate of the socket: `shutdown(2)` on it ends the connection
    /// whatever Pingora is doing with it, and holding it means the fd
    /// number cannot be reused meanwhile.
    /// Dropped (closed) once the connection is shut down: what it guards
    /// is over, and its descriptor is given back at once.
    dup: Mutex<Option<OwnedFd>>,
    ip: Option<IpAddr>,
    accepted: Instant,
    state: AtomicU8,
    /// Milliseconds after `accepted` by which the current head must be
    /// complete; 0 for none.
    deadline_ms: AtomicU64,
    /// Set when a request is done: the next byte read starts a head.
    between_requests: AtomicBool,
    released: AtomicBool,
    handshaken: tokio::sync::Notify,
    /// Its key in `Registry::serving`, once past the handshake (0: none).
    digest: std::sync::atomic::AtomicUsize,
}

impl Conn {
    fn dup(&self) -> std::sync::MutexGuard<'_, Option<OwnedFd>> {
        self.dup.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the connection, whatever Pingora is doing with it, and closes
    /// the duplicate.
    fn close(&self) {
        if let Some(dup) = self.dup().take() {
            // SAFETY: shutdown(2) on a descriptor we own.
            unsafe {
                libc::shutdown(dup.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
    }

    /// Whether Pingora has closed its descriptor of the socket (its number
    /// is free, or now names another socket than the duplicate's).
    fn dropped_by_pingora(&self) -> bool {
        fn inode(fd: RawFd) -> Option<(u64, u64)> {
            // SAFETY: fstat writes into the struct we own; a closed fd
            // only makes it fail.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
        }
        match self.dup().as_ref() {
            Some(dup) => inode(self.fd) != inode(dup.as_raw_fd()),
            None => true,
        }
    }

    fn digest(&self) -> Option<usize> {
        Some(self.digest.load(Ordering::Relaxed)).filter(|&d| d != 0)
    }

    fn set_deadline(&self, at: Option<Instant>) {
        let ms = at.map_or(0, |at| {
            at.saturating_duration_since(self.accepted)
                .as_millis()
                .max(1) as u64
        });
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    fn deadline(&self) -> Option<Instant> {
        match self.deadline_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.accepted + Duration::from_millis(ms)),
        }
    }
}

#[derive(Default)]
struct Registry {
    /// In their TLS handshake, by socket.
    handshaking: HashMap<RawFd, Arc<Conn>>,
    /// Past it, by the address of their socket digest (what the request
    /// filters see, for HTTP/1 and HTTP/2 alike).
    serving: HashMap<usize, Arc<Conn>>,
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the client has {0} connections open (limits.max_connections_per_client)")]
    PerClient(usize),
    #[error("over the connection cap (limits.max_client_connections) and none to shed")]
    Cap,
}

/// Every client connection of the process, on every listener.
pub struct Guard {
    limits: GuardLimits,
    cap: Arc<ConnectionCap>,
    next_id: AtomicU64,
    registry: Mutex<Registry>,
}

impl Guard {
    pub fn new(limits: GuardLimits, cap: Arc<ConnectionCap>) -> Arc<Guard> {
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
    /// client's limit, and within the cap (shedding the oldest connection
    /// that has not sent a complete request, if the cap is reached).
    pub fn admit(
        &self,
        fd: BorrowedFd<'_>,
        ip: Option<IpAddr>,
        state: u8,
        capped: bool,
    ) -> Result<Arc<Conn>, Refused> {
        let refused = |r| {
            METRICS.connections_refused.inc();
            Err(r)
        };
        let dup = match fd.try_clone_to_owned() {
            Ok(dup) => dup,
            // Out of descriptors: that is the cap.
            Err(_) => return refused(Refused::Cap),
        };
        let mut reg = self.registry();
        // A connection still registered on this descriptor is one whose
        // handshake failed: its number was freed and reused by this one.
        if let Some(old) = reg.handshaking.get(&fd.as_raw_fd()).cloned() {
            old.state.store(CLOSED, Ordering::Relaxed);
            Self::release_locked(&mut reg, &old, None);
        }
        if let Some(ip) = ip {
            let mut open = reg.per_client.get(&ip).copied().unwrap_or(0);
            if open >= self.limits.per_client {
                // Handshakes that failed are only forgotten at their
                // deadline: forget this client's now, then count again.
                Self::forget_failed_handshakes(&mut reg, |c| c.ip == Some(ip));
                open = reg.per_client.get(&ip).copied().unwrap_or(0);
            }
            if open >= self.limits.per_client {
                return refused(Refused::PerClient(open));
            }
        }
        if capped && !self.cap.try_admit() {
            let oldest = reg
                .handshaking
                .values()
                .chain(reg.serving.values())
                .filter(|c| c.state.load(Ordering::Relaxed) <= WAITING)
                .min_by_key(|c| c.accepted)
                .cloned();
            match oldest {
                Some(victim) => {
                    victim.state.store(CLOSED, Ordering::Relaxed);
                    victim.close();
                    // Its client slot and its place are free from now on.
                    Self::release_locked(&mut reg, &victim, victim.digest());
                    METRICS.connections_shed.inc();
                }
                None => return refused(Refused::Cap),
            }
        }
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            fd: fd.as_raw_fd(),
            dup: Mutex::new(Some(dup)),
            ip,
            accepted: Instant::now(),
            state: AtomicU8::new(state),
            deadline_ms: AtomicU64::new(0),
            between_requests: AtomicBool::new(false),
            released: AtomicBool::new(false),
            handshaken: tokio::sync::Notify::new(),
            digest: std::sync::atomic::AtomicUsize::new(0),
        });
        if let Some(ip) = ip {
            *reg.per_client.entry(ip).or_default() += 1;
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
        if let Some(ip) = conn.ip {
            if let Some(n) = reg.per_client.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    reg.per_client.remove(&ip);
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

    /// A request head of the connection whose socket digest is `digest`
    /// is complete: no deadline until the request is done, and the
    /// connection is never shed.
    pub fn head_complete(&self, digest: usize) {
        if let Some(conn) = self.serving(digest) {
            conn.set_deadline(None);
            conn.between_requests.store(false, Ordering::Relaxed);
            let _ =
                conn.state
                    .compare_exchange(WAITING, ACTIVE, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A request of an HTTP/1 connection is done: the next byte read
    /// starts the next head's deadline.
    pub fn request_done(&self, digest: usize) {
        if let Some(conn) = self.serving(digest) {
            conn.between_requests.store(true, Ordering::Relaxed);
        }
    }

    /// Closes the connection whose socket digest is `digest` (a revoked
    /// request's).
    pub fn close_connection(&self, digest: usize) {
        if let Some(conn) = self.serving(digest) {
            conn.state.store(CLOSED, Ordering::Relaxed);
            conn.close();
        }
    }

    /// Open connections per client address, for tests and metrics.
    pub fn per_client(&self, ip: IpAddr) -> usize {
        self.registry().per_client.get(&ip).copied().unwrap_or(0)
    }
}

/// The key of a connection in [`Guard`]: its socket digest's address.
pub fn digest_key(digest: &Arc<pingora::protocols::SocketDigest>) -> usize {
    Arc::as_ptr(digest) as usize
}

/// The client address of a socket (Pingora sets the socket digest only
/// after the pre-TLS hook, so it is asked of the socket itself).
fn peer_ip(fd: BorrowedFd<'_>) -> Option<IpAddr> {
    use std::os::fd::FromRawFd;
    // SAFETY: the descriptor is open for the borrow; ManuallyDrop never
    // closes it.
    let socket =
        std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd.as_raw_fd()) });
    socket
        .peer_addr()
        .ok()
        .map(|a| crate::decision::outbound::canonical_ip(a.ip()))
}

/// The rustls listeners' pre-TLS hook: admission and the handshake timer.
pub struct HandshakeGuard(pub Arc<Guard>);

#[async_trait]
impl PreTlsProcess for HandshakeGuard {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let guard = &self.0;
        // SAFETY: the stream owns the descriptor for this whole call.
        let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        let conn = guard.admit(fd, peer_ip(fd), HANDSHAKE, true).or_else(|e| {
            pingora::Error::e_explain(pingora::ErrorType::AcceptError, e.to_string())
        })?;
        let guard = guard.clone();
        let limit = guard.limits.handshake;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(limit) => {}
                _ = conn.handshaken.notified() => return,
            }
            if conn
                .state
                .compare_exchange(HANDSHAKE, CLOSED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                METRICS.slow_clients.with_label_values(&["handshake"]).inc();
                conn.close();
            }
            // A handshake that failed ends here too (Pingora dropped it).
            if conn.state.load(Ordering::Relaxed) == CLOSED {
                guard.release(&conn, None);
            }
        });
        Ok(())
    }
}

/// What a guarded listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Requests with heads: the head deadline applies.
    Http,
    /// Bytes relayed (MQTT): active from the start, its own idle timeout.
    Relay,
}

/// A listener's app behind the [`Guard`].
pub struct Guarded<A> {
    pub inner: Arc<A>,
    pub guard: Arc<Guard>,
    pub kind: Kind,
    /// Under the overall cap: the public listeners. The private ones
    /// (metrics, internal) stay reachable at the cap, so that an operator
    /// can see what is going on and apps keep their core.
    pub capped: bool,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let guard = &self.guard;
        let fd = stream.id() as RawFd;
        let tls = guard.registry().handshaking.remove(&fd);
        let conn = match tls {
            Some(conn) => {
                if conn
                    .state
                    .compare_exchange(HANDSHAKE, WAITING, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    // Timed out just now.
                    return None;
                }
                conn.handshaken.notify_one();
                conn
            }
            // A TLS connection the guard no longer knows was shed or timed
            // out during its handshake: its socket is shut down already.
            None if stream.get_ssl_digest().is_some() => return None,
            None => {
                // A plain listener: admitted here.
                // SAFETY: the stream owns the descriptor for this whole call.
                let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
                let ip = peer_ip(borrowed);
                guard.admit(borrowed, ip, WAITING, self.capped).ok()?
            }
        };
        let key = stream.get_socket_digest().map(|d| digest_key(&d));
        if let Some(key) = key {
            conn.digest.store(key, Ordering::Relaxed);
            guard.registry().serving.insert(key, conn.clone());
        }
        let stream: Stream = match self.kind {
            Kind::Relay => {
                conn.state.store(ACTIVE, Ordering::Relaxed);
                stream
            }
            Kind::Http => {
                conn.set_deadline(Some(Instant::now() + guard.limits.head));
                Box::new(Watched::new(stream, conn.clone(), guard.limits.head))
            }
        };
        let out = ServerApp::process_new(&self.inner, stream, shutdown).await;
        guard.release(&conn, key);
        out
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// A client stream whose reads fail once its head deadline passed. On
/// HTTP/1 it also sees where a head ends (the empty line), so it needs no
/// word from the listener to lift the deadline; HTTP/2 heads are told by
/// the request filter ([`Guard::head_complete`]).
pub struct Watched {
    inner: Stream,
    conn: Arc<Conn>,
    head: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// HTTP/1, reading a head: looking for its end.
    in_head: bool,
    /// The current head's first byte was read.
    started: bool,
    /// The last bytes read, for an end of head split across reads.
    tail: [u8; 2],
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Watched {
    fn new(inner: Stream, conn: Arc<Conn>, head: Duration) -> Self {
        let h2 = matches!(
            inner.selected_alpn_proto(),
            Some(pingora::protocols::ALPN::H2)
        );
        Watched {
            inner,
            conn,
            head,
            timer: None,
            in_head: !h2,
            started: false,
            tail: [0; 2],
        }
    }
}

impl Watched {
    fn timed_out(&self) -> std::io::Error {
        if self.conn.state.swap(CLOSED, Ordering::Relaxed) != CLOSED {
            METRICS.slow_clients.with_label_values(&["head"]).inc();
        }
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request head was not complete in time",
        )
    }
}

/// Follows the bytes of an HTTP/1 head; `true` at its end (`\r\n\r\n`,
/// or `\n\n` as parsers also accept). `tail` holds the last bytes read,
/// for an end split across reads.
fn head_ends(tail: &mut [u8; 2], bytes: &[u8]) -> bool {
    for &b in bytes {
        let [c, d] = *tail;
        *tail = [d, b];
        if b == b'\n' && (d == b'\n' || (d == b'\r' && c == b'\n')) {
            *tail = [0; 2];
            return true;
        }
    }
    false
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let deadline = this.conn.deadline();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Poll::Ready(Err(this.timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if read.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                if this.conn.between_requests.swap(false, Ordering::Relaxed) {
                    this.in_head = true;
                    this.started = false;
                }
                if !this.started {
                    // A head's first byte: it has its own time from here.
                    this.started = true;
                    this.conn.set_deadline(Some(Instant::now() + this.head));
                }
                if this.in_head && head_ends(&mut this.tail, read) {
                    this.in_head = false;
                    this.conn.set_deadline(None);
                    let _ = this.conn.state.compare_exchange(
                        WAITING,
                        ACTIVE,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = deadline else {
                    this.timer = None;
                    return Poll::Pending;
                };
                let at = tokio::time::Instant::from_std(deadline);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(this.timed_out())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

use std::future::Future;

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Watched {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Watched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Watched {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Watched {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Watched {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Watched {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for Watched {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
