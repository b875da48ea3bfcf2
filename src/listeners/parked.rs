//! Idle kept-alive HTTP/1 connections parked small.
//!
//! Pingora runs a kept-alive HTTP/1 connection as a loop (its `ServerApp`
//! for every `HttpServerApp`) that calls `process_new_http` for the next
//! request as soon as the previous one is answered. That call's future is
//! the whole request-handling state machine (about 14 KiB in a release
//! build, boxed) and it allocates the 4 KiB buffer the head is read into,
//! both made before the next request's first byte and kept for as long as
//! the client leaves the connection idle: two fifths of what an idle
//! connection held (benches/README.md, "Idle connections").
//!
//! [`Parked`] runs the same loop itself, and between two requests waits
//! for the next request's first byte with nothing but the stream. The
//! request's future and head buffer are made once the request arrives;
//! that byte is handed to the session as the start of its head (Pingora's
//! pipelined-prefix path). What Pingora did with an idle connection it
//! still does: closed when the client closes it, when the keep-alive time
//! passes, and when the service shuts down (a connection whose next head
//! has started is read on and answered, as before: the guard saw the
//! byte). HTTP/2, h2c and custom protocols go to Pingora's loop as they
//! are.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::AsyncReadExt;

/// How long a kept-alive connection may wait for its next request, in
/// seconds (Pingora's own default, which this loop replaces).
pub(crate) const KEEPALIVE_SECONDS: u64 = 60;

/// The buffer a head is read into (Pingora's first allocation for one).
const HEAD_BUFFER: usize = 4096;

/// An HTTP app whose idle HTTP/1 connections wait for their next request
/// without its future (see the module's text).
pub(crate) struct Parked<A>(pub Arc<A>);

impl<A> Parked<A> {
    pub(crate) fn new(app: A) -> Self {
        Parked(Arc::new(app))
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Parked<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let app = &self.0;
        let options = app.server_options();
        // Pingora's choice of protocol, of which only plain HTTP/1 stays.
        let h2c = stream.get_ssl_digest().is_none() && options.is_some_and(|o| o.h2c);
        let custom = options.is_some_and(|o| o.force_custom);
        if h2c || custom || !matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1)) {
            return ServerApp::process_new(app, stream, shutdown).await;
        }
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE_SECONDS));
        session.set_keepalive_reuses_remaining(options.and_then(|o| o.keepalive_request_limit));
        let mut served = app.process_new_http(session, shutdown).await;
        while let Some((mut stream, settings)) = served.map(ReusedHttpStream::consume) {
            let first = next_head(&mut stream, shutdown).await?;
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                // Nothing here enables pipelining, so the settings carry
                // no prefix of their own (Pingora asserts it in debug).
                settings.apply_to_session(&mut session);
            }
            session.set_pipelined_prefix(first);
            served = app.process_new_http(session, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.0.http_cleanup().await
    }
}

/// Waits for the first byte of a kept-alive connection's next request and
/// returns it in the buffer its head will be read into. `None` (the
/// connection is closed) when the client closes it or fails, when the
/// keep-alive time passes, or when the service shuts down first.
async fn next_head(stream: &mut Stream, shutdown: &ShutdownWatch) -> Option<BytesMut> {
    let mut first = [0u8; 1];
    let mut shutdown = shutdown.clone();
    let read = tokio::select! {
        // A byte already there is read even at shutdown (its head has
        // started); Pingora's read came first too.
        biased;
        // Pingora's timer for the same wait (cheaper than tokio's).
        read = pingora::time::timeout(
            Duration::from_secs(KEEPALIVE_SECONDS),
            stream.read(&mut first),
        ) => read,
        _ = shutdown.wait_for(|down| *down) => return None,
    };
    match read {
        Ok(Ok(1)) => {
            let mut head = BytesMut::with_capacity(HEAD_BUFFER);
            head.put_u8(first[0]);
            Some(head)
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "parked_tests.rs"]
mod tests;
