//! The plain-HTTP listeners' common ground (port 80, metrics, the
//! internal listener): a request head read strictly (README.md, "How requests are handled", 7
//! and 8). A malformed head gets 400, never a silent close, and its bytes
//! never reach a log (Pingora's own `ServeHttp` glue logs them at error
//! level, credentials included); both `Content-Length` and
//! `Transfer-Encoding` on one request is 400 as on the edge, and so is a
//! request-target that is not a path starting with `/` (or an absolute
//! URL for the Host): see [`portal_core::target`].

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::ErrorType;

use super::respond::write_refusal;
use portal_core::head::check_head;
use portal_core::refusal::Refusal;
use portal_core::target::{parse_target, RequestTarget};

/// The limits the plain listeners hold request heads to (those of the
/// edge's defaults: these listeners have no settings of their own).
const MAX_HEADERS: usize = portal_core::head::DEFAULT_MAX_HEADERS;
const MAX_HEAD_BYTES: usize = portal_core::head::DEFAULT_MAX_HEADER_BYTES;

/// Reads the next request head of `session`. `true` when there is a
/// request to serve; otherwise the connection is done (a malformed or
/// refused head was answered with 400, `OPTIONS *` with 200, or the
/// client went away).
pub(crate) async fn read_head(session: &mut ServerSession, listener: &str) -> bool {
    match session.read_request().await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            let peer = session.client_addr().map(ToString::to_string);
            if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                // The error's text holds the raw head: never logged.
                log::debug!(
                    "{listener}: malformed request head from {}: 400",
                    peer.unwrap_or_default()
                );
                let _ = session.respond_error(400).await;
            }
            session.shutdown().await;
            return false;
        }
    }
    let raw = session.as_http1().map(|h1| h1.get_headers_raw_bytes());
    let req = session.req_header();
    let checked = check_head(
        req.method.as_str(),
        req.raw_path(),
        &req.headers,
        raw.as_deref(),
        MAX_HEADERS,
        MAX_HEAD_BYTES,
    )
    .map_err(Refusal::from)
    .and_then(|()| {
        let target = parse_target(req.method.as_str(), req.raw_path())?;
        target.host(super::request_host(req))?;
        match target {
            RequestTarget::Asterisk => Err(Refusal::options()),
            RequestTarget::Path { .. } => Ok(()),
        }
    });
    if let Err(refusal) = checked {
        session.set_keepalive(None);
        let _ = write_refusal(session, &refusal).await;
        session.shutdown().await;
        return false;
    }
    true
}

/// A `ServeHttp` app (its whole answer made at once) behind
/// [`read_head`].
pub(crate) struct Strict<T>(pub T);

#[async_trait]
impl<T: ServeHttp + Send + Sync> HttpServerApp for Strict<T> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !read_head(&mut session, "plain listener").await {
            return None;
        }
        session.set_keepalive((!*shutdown.borrow()).then_some(super::parked::KEEPALIVE_SECONDS));
        let response: Response<Vec<u8>> = self.0.response(&mut session).await;
        let (parts, body) = response.into_parts();
        let head: ResponseHeader = parts.into();
        session.write_response_header(Box::new(head)).await.ok()?;
        session.write_response_body(body.into(), true).await.ok()?;
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}
