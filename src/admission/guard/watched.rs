//! The stream wrapper of the head deadline (see [`super`]): reads fail
//! once the current request head is late, the wrapper polling its own
//! timer so that a silent client is caught too. On HTTP/2 it follows the
//! frames read, so that a header block started on a connection already
//! in use (HEADERS without END_HEADERS, CONTINUATION never ending it) has
//! the same deadline. For a relay (MQTT) it only notes when bytes move.

#![forbid(unsafe_code)]

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::h2_frames::H2Frames;
use super::{Conn, ACTIVE, CLOSED, WAITING};
use crate::observe::metrics::METRICS;

/// A client stream whose reads fail once its head deadline passed. On
/// HTTP/1 it also sees where a head ends (the empty line), so it needs no
/// word from the listener to lift the deadline; HTTP/2 heads are told by
/// the request filter ([`Guard::head_complete`]).
pub(super) struct Watched {
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
    /// HTTP/2: where the frames read stand.
    frames: Option<H2Frames>,
    /// Relays bytes: no deadline, only activity.
    relay: bool,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Watched {
    pub(super) fn new(inner: Stream, conn: Arc<Conn>, head: Duration) -> Self {
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
            frames: h2.then(H2Frames::default),
            relay: false,
        }
    }

    /// A relay's stream: no deadline; every byte either way marks the
    /// connection busy for [`super::RELAY_QUIET`].
    pub(super) fn relay(inner: Stream, conn: Arc<Conn>) -> Self {
        conn.relay.store(true, Ordering::Relaxed);
        conn.touch();
        Watched {
            relay: true,
            in_head: false,
            started: true,
            frames: None,
            ..Watched::new(inner, conn, Duration::ZERO)
        }
    }
}

impl Watched {
    fn timed_out(&self) -> std::io::Error {
        if self.conn.state.swap(CLOSED, Ordering::Relaxed) != CLOSED {
            METRICS
                .slow_clients
                .inc(crate::observe::metrics::SlowPhase::Head);
        }
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request head was not complete in time",
        )
    }
}

/// Follows the bytes of an HTTP/1 head; `true` at its end (`\r\n\r\n`,
/// or `\n\n` as parsers also accept). `tail` holds the last bytes read,
/// for an end split across reads. Only the line feeds are visited
/// (`memchr`): this runs over every byte of every head.
fn head_ends(tail: &mut [u8; 2], bytes: &[u8]) -> bool {
    // The byte `back` places before `bytes[i]`, reaching into `tail`.
    let before = |i: usize, back: usize| match i.checked_sub(back) {
        Some(j) => bytes[j],
        None => tail[2 + i - back],
    };
    for i in memchr::memchr_iter(b'\n', bytes) {
        let d = before(i, 1);
        if d == b'\n' || (d == b'\r' && before(i, 2) == b'\n') {
            *tail = [0; 2];
            return true;
        }
    }
    *tail = match bytes {
        [] => *tail,
        [b] => [tail[1], *b],
        [.., a, b] => [*a, *b],
    };
    false
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.relay {
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                this.conn.touch();
            }
            return polled;
        }
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
                if let Some(frames) = this.frames.as_mut() {
                    // HTTP/2 on a connection past its first request: a
                    // header block has the head's time from its start.
                    let was_open = frames.open_block;
                    frames.feed(read);
                    if this.conn.state.load(Ordering::Relaxed) == ACTIVE {
                        match (was_open, frames.open_block) {
                            (false, true) => {
                                this.conn.set_deadline(Some(Instant::now() + this.head))
                            }
                            (true, false) => this.conn.set_deadline(None),
                            _ => {}
                        }
                    }
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
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if this.relay && matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.touch();
        }
        written
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

#[cfg(test)]
#[path = "watched_tests.rs"]
mod tests;
