//! On the way to the upstream and back (DESIGN sections 3, 6 and 8): what
//! is removed from requests, how upstream names resolve, and which refusal
//! answers a failure to proxy.

use std::net::{IpAddr, SocketAddr};

use pingora::http::RequestHeader;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::caller::{bearer_token, cookie_values, remove_cookie, Terminals, TERMINAL_COOKIE};
use crate::config::HostPort;
use crate::error_page::Refusal;
use crate::headers::{is_portal_header, AppHeaders};

/// Removes what must never reach an upstream (DESIGN section 6): client
/// `X-Ptl-*` headers (any spelling), the headers the app's rules set, and
/// the terminal credential (the `authorization` cookie, a bearer token
/// signed with the terminal secret).
pub(super) fn strip_client_headers(
    req: &mut RequestHeader,
    app: Option<&AppHeaders>,
    terminals: &Terminals,
) {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| match app {
            Some(app) => app.strips(name.as_str()),
            None => is_portal_header(name.as_str()),
        })
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
    let cookies: Vec<http::HeaderValue> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if cookies.iter().any(|v| {
        v.to_str()
            .map_or(true, |v| cookie_values(v, TERMINAL_COOKIE).next().is_some())
    }) {
        req.remove_header(&http::header::COOKIE);
        for value in cookies {
            // A Cookie header that is not text cannot be parsed: dropped.
            let Ok(text) = value.to_str() else { continue };
            if let Some(kept) = remove_cookie(text, TERMINAL_COOKIE) {
                let _ = req.append_header(http::header::COOKIE, kept);
            }
        }
    }
    let credential = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()))
        .is_some_and(|token| terminals.is_credential(token));
    if credential {
        req.remove_header(&http::header::AUTHORIZATION);
    }
}

/// Resolves an upstream for one connection attempt. Container addresses
/// change when containers restart, so names are looked up each time (the
/// system resolver caches as configured).
pub(super) async fn resolve(upstream: &HostPort) -> Result<SocketAddr> {
    if let Ok(ip) = upstream.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, upstream.port));
    }
    let mut addrs = tokio::net::lookup_host((upstream.host.as_str(), upstream.port))
        .await
        .map_err(|e| {
            let mut err = Error::because(
                ErrorType::ConnectNoRoute,
                format!("cannot resolve {upstream}"),
                e,
            );
            err.esource = ErrorSource::Upstream;
            err
        })?;
    addrs.next().ok_or_else(|| {
        let mut err = Error::explain(
            ErrorType::ConnectNoRoute,
            format!("{upstream} resolves to no address"),
        );
        err.esource = ErrorSource::Upstream;
        err
    })
}

/// The refusal for a failure to proxy, by what failed.
pub(super) fn refusal_for(e: &Error, what: &str) -> Option<Refusal> {
    use ErrorType::*;
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) if *code >= 500 => {
            Some(Refusal::BadGateway(format!("{what} failed")))
        }
        (ErrorSource::Upstream, ConnectTimedout | TLSHandshakeTimedout) => Some(
            Refusal::GatewayTimeout(format!("{what} did not accept the connection in time")),
        ),
        (ErrorSource::Upstream, ReadTimedout | WriteTimedout) => Some(Refusal::GatewayTimeout(
            format!("{what} did not answer in time"),
        )),
        (ErrorSource::Upstream, ConnectRefused) => Some(Refusal::BadGateway(format!(
            "{what} is not running (connection refused)"
        ))),
        (ErrorSource::Upstream, ConnectNoRoute) => Some(Refusal::BadGateway(format!(
            "{what} cannot be found (no address)"
        ))),
        (ErrorSource::Upstream, _) => Some(Refusal::BadGateway(format!(
            "{what} failed: {}",
            e.etype().as_str()
        ))),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => None,
        (ErrorSource::Downstream, _) => Some(Refusal::BadRequest(format!(
            "malformed request: {}",
            e.etype().as_str()
        ))),
        (ErrorSource::Internal | ErrorSource::Unset, _) => Some(Refusal::BadGateway(
            "the proxy failed to handle the request".into(),
        )),
    }
}

/// The `kind` label of `portal_proxy_upstream_errors_total`.
pub(super) fn error_kind(e: &Error) -> &'static str {
    use ErrorType::*;
    match e.etype() {
        ConnectRefused => "connect_refused",
        ConnectTimedout => "connect_timeout",
        ConnectNoRoute => "unresolvable",
        TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError => "tls",
        ReadTimedout | WriteTimedout => "timeout",
        ReadError | WriteError | ConnectionClosed => "connection_closed",
        InvalidHTTPHeader | H1Error | H2Error | InvalidH2 | H2Downgrade => "protocol",
        _ => "other",
    }
}
