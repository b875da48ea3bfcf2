//! The one way every listener answers by itself (STYLE: errors become
//! responses in exactly one place at the edge). Errors of the pure core
//! become [`Refusal`]s by the `From` impls beside `Refusal`; the failures
//! of the network that only the shell sees (Pingora's errors) become
//! refusals here; and every refusal is written here, JSON or HTML by the
//! request's `Accept`.

use bytes::Bytes;
use http::Response;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::observe::metrics::UpstreamError;
use portal_core::refusal::{Kind, Refusal};

/// The request's `Accept` header, which picks JSON or HTML.
pub(crate) fn accept(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

/// Writes a refusal as the whole response on a session.
pub(crate) async fn write_refusal(session: &mut ServerSession, refusal: &Refusal) -> Result<()> {
    write_refusal_with(session, refusal, |_| Ok(())).await
}

/// [`write_refusal`], with `finish` adding to the head before it is sent
/// (the HTTPS listener signs its answers to peers).
pub(crate) async fn write_refusal_with(
    session: &mut ServerSession,
    refusal: &Refusal,
    finish: impl FnOnce(&mut ResponseHeader) -> Result<()>,
) -> Result<()> {
    let (parts, body) = refusal_response(refusal, accept(session.req_header())).into_parts();
    let mut resp: ResponseHeader = parts.into();
    finish(&mut resp)?;
    session.write_response_header(Box::new(resp)).await?;
    session.write_response_body(Bytes::from(body), true).await?;
    Ok(())
}

/// A refusal as the response of a `ServeHttp` app (port 80, metrics).
pub(crate) fn refusal_response(refusal: &Refusal, accept: Option<&str>) -> Response<Vec<u8>> {
    let (content_type, body) = refusal.render(accept);
    let mut response = uncached(refusal.status(), content_type, body);
    if let Some(seconds) = refusal.retry_after() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, seconds.into());
    }
    response
}

/// An answer of the proxy's own, never stored by a cache: the response of
/// a `ServeHttp` app (port 80, metrics).
pub(crate) fn uncached(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static header names and checked values")
}

/// The refusal for a failure to proxy to `what` (an app, the core), by
/// what failed; `None` when the client went away (nobody to answer).
pub(crate) fn proxy_failure(e: &Error, what: &str) -> Option<Refusal> {
    use ErrorType::*;
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) if *code >= 500 => {
            Some(Refusal::new(Kind::BadGateway, format!("{what} failed")))
        }
        (ErrorSource::Upstream, ConnectTimedout | TLSHandshakeTimedout) => Some(Refusal::new(
            Kind::GatewayTimeout,
            format!("{what} did not accept the connection in time"),
        )),
        (ErrorSource::Upstream, ReadTimedout | WriteTimedout) => Some(Refusal::new(
            Kind::GatewayTimeout,
            format!("{what} did not answer in time"),
        )),
        (ErrorSource::Upstream, ConnectRefused) => Some(Refusal::new(
            Kind::BadGateway,
            format!("{what} is not running (connection refused)"),
        )),
        (ErrorSource::Upstream, ConnectNoRoute) => Some(Refusal::new(
            Kind::BadGateway,
            format!("{what} cannot be found (no address)"),
        )),
        (ErrorSource::Upstream, _) => Some(Refusal::new(
            Kind::BadGateway,
            format!("{what} failed: {}", e.etype().as_str()),
        )),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => None,
        (ErrorSource::Downstream, _) => Some(Refusal::new(
            Kind::BadRequest,
            format!("malformed request: {}", e.etype().as_str()),
        )),
        (ErrorSource::Internal | ErrorSource::Unset, _) => Some(Refusal::new(
            Kind::BadGateway,
            "the proxy failed to handle the request",
        )),
    }
}

/// The `kind` label of `portal_proxy_upstream_errors_total`.
pub(crate) fn error_kind(e: &Error) -> UpstreamError {
    use ErrorType::*;
    match e.etype() {
        ConnectRefused => UpstreamError::ConnectRefused,
        ConnectTimedout => UpstreamError::ConnectTimeout,
        ConnectNoRoute => UpstreamError::Unresolvable,
        TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError => {
            UpstreamError::Tls
        }
        ReadTimedout | WriteTimedout => UpstreamError::Timeout,
        ReadError | WriteError | ConnectionClosed => UpstreamError::ConnectionClosed,
        InvalidHTTPHeader | H1Error | H2Error | InvalidH2 | H2Downgrade => UpstreamError::Protocol,
        _ => UpstreamError::Other,
    }
}

/// An error the shell raises to abort a request whose refusal it already
/// recorded (a signed body over the limit, a digest mismatch).
pub(crate) fn abort(refusal: &Refusal) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(refusal.status()), refusal.code())
}

#[cfg(test)]
#[path = "respond_tests.rs"]
mod tests;
