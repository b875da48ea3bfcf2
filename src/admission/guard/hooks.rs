//! Where the [`Guard`] meets Pingora: the rustls listeners' pre-TLS hook
//! ([`HandshakeGuard`]: admission and the handshake deadline) and the
//! wrapper of every listener's app ([`Guarded`]: admission of plain
//! connections, the head deadline, release at the end).

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, Peek, SocketDigest, Stream};
use pingora::server::ShutdownWatch;

use super::watched::Watched;
use super::{Guard, ACTIVE, CLOSED, HANDSHAKE, WAITING};
use crate::admission::proxy_protocol::{read_header, source, starts_a_header, BadHeader, Trusted};
use crate::observe::metrics::{ProxyHeader, SlowPhase, METRICS};

/// The key of a connection in [`Guard`]: its socket digest's address.
pub(crate) fn digest_key(digest: &Arc<pingora::protocols::SocketDigest>) -> usize {
    Arc::as_ptr(digest) as usize
}

/// The client address of a socket (Pingora sets the socket digest only
/// after the pre-TLS hook, so it is asked of the socket itself).
fn peer_ip(fd: BorrowedFd<'_>) -> Option<IpAddr> {
    let addr = socket2::SockRef::from(&fd).peer_addr().ok()?.as_socket()?;
    Some(portal_core::outbound::canonical_ip(addr.ip()))
}

/// The rustls listeners' pre-TLS hook: the PROXY protocol header from
/// trusted addresses, admission and the handshake timer.
pub(crate) struct HandshakeGuard {
    pub guard: Arc<Guard>,
    /// `listen.proxy_protocol_from`: connections from these start with a
    /// PROXY header naming the client; from any other a PROXY header is
    /// refused.
    pub proxy_protocol: Option<Arc<Trusted>>,
}

fn accept_error(why: impl ToString) -> Box<pingora::Error> {
    pingora::Error::explain(pingora::ErrorType::AcceptError, why.to_string())
}

fn count_proxy_protocol(result: ProxyHeader) {
    METRICS.proxy_protocol.inc(result);
}

impl HandshakeGuard {
    /// Reads the PROXY header of a connection from a trusted address, and
    /// makes the client it names the connection's peer address (the
    /// socket digest that `client_addr()` reads). Returns the client's
    /// address, `None` for a header that names none (`LOCAL`, `UNKNOWN`).
    async fn take_proxy_header(&self, stream: &mut L4Stream) -> pingora::Result<Option<IpAddr>> {
        let limit = self.guard.limits.handshake;
        let header = match tokio::time::timeout(limit, read_header(stream)).await {
            Ok(read) => read,
            Err(_) => Err(BadHeader::Closed),
        };
        match header.and_then(|h| source(&h)) {
            Ok(Some(client)) => {
                let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
                let _ = digest.peer_addr.set(Some(client.into()));
                stream.set_socket_digest(digest);
                count_proxy_protocol(ProxyHeader::Accepted);
                Ok(Some(client.ip()))
            }
            Ok(None) => {
                count_proxy_protocol(ProxyHeader::Local);
                Ok(None)
            }
            Err(refused) => {
                count_proxy_protocol(refused.label());
                Err(accept_error(refused))
            }
        }
    }
}

#[async_trait]
impl PreTlsProcess for HandshakeGuard {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let guard = &self.guard;
        let socket_ip = peer_ip(crate::sys::borrow_socket(&*stream));
        let trusted = self.proxy_protocol.as_deref();
        let from_balancer = trusted.is_some_and(|t| socket_ip.is_some_and(|ip| t.trusts(ip)));
        // Behind a load balancer, the client it names counts (its share,
        // its rate); the header is read before admission, within the
        // handshake's time, from a trusted address only.
        let client_ip = if from_balancer {
            self.take_proxy_header(stream).await?.or(socket_ip)
        } else {
            socket_ip
        };
        let conn = guard
            .admit(
                crate::sys::borrow_socket(&*stream),
                client_ip,
                HANDSHAKE,
                true,
            )
            .map_err(accept_error)?;
        let timer_guard = guard.clone();
        let timer_conn = conn.clone();
        let limit = guard.limits.handshake;
        tokio::spawn(async move {
            let (guard, conn) = (timer_guard, timer_conn);
            tokio::select! {
                _ = tokio::time::sleep(limit) => {}
                _ = conn.handshaken.notified() => return,
            }
            if conn
                .state
                .compare_exchange(HANDSHAKE, CLOSED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                METRICS.slow_clients.inc(SlowPhase::Handshake);
                conn.close();
            }
            // A handshake that failed ends here too (Pingora dropped it).
            if conn.state.load(Ordering::Relaxed) == CLOSED {
                guard.release(&conn, None);
            }
        });
        // Where a load balancer sends PROXY headers, nobody else may: the
        // first byte of anyone else's connection must not start one (the
        // handshake timer bounds the wait for it).
        if trusted.is_some() && !from_balancer {
            let mut first = [0u8; 1];
            let peeked = stream.try_peek(&mut first).await.unwrap_or(false);
            if peeked && starts_a_header(first[0]) {
                // Closed now: the guard's copy of the descriptor would keep
                // the socket open until the handshake deadline.
                conn.state.store(CLOSED, Ordering::Relaxed);
                conn.close();
                guard.release(&conn, None);
                count_proxy_protocol(ProxyHeader::Untrusted);
                return Err(accept_error(
                    "a PROXY protocol header from an address not in listen.proxy_protocol_from",
                ));
            }
        }
        Ok(())
    }
}

/// What a guarded listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serves {
    /// Requests with heads: the head deadline applies.
    Http,
    /// Bytes relayed (MQTT): no head, its own idle timeout; idle for the
    /// cap once quiet both ways for [`super::RELAY_QUIET`].
    Relay,
}

/// A listener's app behind the [`Guard`].
pub(crate) struct Guarded<A> {
    pub inner: Arc<A>,
    pub guard: Arc<Guard>,
    pub serves: Serves,
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
        // Only a TLS connection is registered at its handshake. A plain
        // one never takes the registration found on its descriptor's
        // number: that is a TLS handshake that failed (a port probe), its
        // number freed and reused by this connection, which admission
        // forgets below. Taken, it let a plain connection past its own
        // listener's limits, counted as another address's.
        let tls = match stream.get_ssl_digest() {
            Some(_) => guard.registry().handshaking.remove(&fd),
            None => None,
        };
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
                let borrowed = crate::sys::borrow_socket(&stream);
                let ip = peer_ip(borrowed);
                guard.admit(borrowed, ip, WAITING, self.capped).ok()?
            }
        };
        let key = stream.get_socket_digest().map(|d| digest_key(&d));
        if let Some(key) = key {
            conn.digest.store(key, Ordering::Relaxed);
            guard.registry().serving.insert(key, conn.clone());
        }
        let stream: Stream = match self.serves {
            Serves::Relay => {
                conn.state.store(ACTIVE, Ordering::Relaxed);
                Box::new(Watched::relay(stream, conn.clone()))
            }
            Serves::Http => {
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
