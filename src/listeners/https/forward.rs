//! On the way to the upstream (docs/access.md): the forwarding headers, the identity headers of the plan's rule and the identity assertion, what is removed from
//! the client's request, and how upstream names resolve.

use std::net::{IpAddr, SocketAddr};

use log::warn;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::dns::Dns;
use portal_core::assertion::{Assertions, CORE_AUDIENCE};
use portal_core::caller::TERMINAL_COOKIE;
use portal_core::credentials::{remove_cookie, Credentials};
use portal_core::decide::Plan;
use portal_core::headers::{is_never_forwarded, same_name, AppHeaders};
use portal_core::names::HostPort;
use portal_core::refusal::{Kind, Refusal};
use portal_core::trace::{Trace, TRACEPARENT, TRACESTATE};

/// Why a request is not sent upstream after all.
pub(super) enum NotSent {
    /// The proxy's own answer.
    Rejected(Refusal),
    Failed(Box<Error>),
}
use NotSent::Rejected;

impl From<Box<Error>> for NotSent {
    fn from(e: Box<Error>) -> Self {
        NotSent::Failed(e)
    }
}

/// The identity assertion of a request (docs/access.md): its header, in
/// any spelling never the client's, and the token, unless assertions are
/// off.
pub(super) struct Assertion<'a> {
    pub header: &'a http::HeaderName,
    pub token: Option<http::HeaderValue>,
}

/// Rewrites the request that goes upstream as the plan says.
pub(super) fn prepare(
    req: &mut RequestHeader,
    plan: &Plan,
    client_ip: Option<IpAddr>,
    host: Option<&str>,
    trace: Option<&Trace>,
    template_portal: &minijinja::Value,
    assertion: Assertion<'_>,
) -> Result<(), NotSent> {
    let app = plan.rule.as_ref().map(|r| (&r.app, r.index));
    strip_client_headers(
        req,
        app.map(|(a, _)| &a.headers),
        assertion.header,
        &plan.credentials,
        trace,
    );
    // The proxy's alone: the client's copies, in any spelling, are gone
    // (docs/access.md).
    if let Some(ip) = client_ip {
        let mut buf = [0; IP_TEXT_MAX];
        req.insert_header("x-forwarded-for", ip_text(ip, &mut buf))?;
    }
    req.insert_header("x-forwarded-proto", http::HeaderValue::from_static("https"))?;
    if let Some(host) = host {
        req.insert_header("x-forwarded-host", host.to_owned())?;
    }
    if let Some(trace) = trace {
        if !trace.kept {
            req.remove_header(TRACESTATE);
        }
        req.insert_header(TRACEPARENT, trace.parent.as_str())?;
    }
    match app {
        Some((app, rule)) => {
            let (headers, problems) = app
                .headers
                .render(rule, plan.caller(), template_portal)
                .map_err(|e| {
                    let refusal = Refusal::new(
                        Kind::BadGateway,
                        format!("the header templates of app {:?} failed", app.meta.name),
                    );
                    warn!("app {:?}: {e}: answered 502", app.meta.name);
                    Rejected(refusal)
                })?;
            for (name, value) in headers {
                req.insert_header(name, value)?;
            }
            for p in problems {
                warn!("app {:?}: header left out: {p}", app.meta.name);
            }
        }
        None => {
            // The core learns who is calling from fixed headers.
            let (client_type, client_id, client_name) = plan.caller().parts();
            req.insert_header("x-ptl-client-type", client_type)?;
            req.insert_header("x-ptl-client-id", client_id)?;
            if let Ok(name) = http::HeaderValue::from_bytes(client_name.as_bytes()) {
                req.insert_header("x-ptl-client-name", name)?;
            }
        }
    }
    // Last: an app template of the same name does not replace it.
    if let Some(token) = assertion.token {
        req.insert_header(assertion.header.clone(), token)?;
    }
    if let Some(path) = &plan.path {
        let mut parts = req.uri.clone().into_parts();
        parts.path_and_query = Some(
            path.parse()
                .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the path", e))?,
        );
        let uri = http::Uri::from_parts(parts)
            .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the path", e))?;
        req.set_uri(uri);
    }
    Ok(())
}

/// Room for any address's text: IPv6 needs 39 bytes at most.
const IP_TEXT_MAX: usize = 48;

/// `ip` as text in `buf`, without the growing `String` of `to_string`
/// (two allocations per request where the header value's copy will do).
fn ip_text(ip: IpAddr, buf: &mut [u8; IP_TEXT_MAX]) -> &[u8] {
    use std::io::Write;
    let mut rest = &mut buf[..];
    let written = write!(rest, "{ip}");
    debug_assert!(written.is_ok(), "{ip} does not fit in {IP_TEXT_MAX} bytes");
    let n = IP_TEXT_MAX - rest.len();
    &buf[..n]
}

/// The assertion of a forwarded request: its audience is the app (or
/// the core), its caller and a peer's proof the plan's.
pub(super) fn assertion_token(assertions: &Assertions, plan: &Plan) -> http::HeaderValue {
    let audience = plan
        .rule
        .as_ref()
        .map_or(CORE_AUDIENCE, |r| r.app.meta.name.as_str());
    let now = u64::try_from(crate::clock::unix_now()).unwrap_or(0);
    let (token, signed) = assertions.for_caller(audience, plan.caller(), plan.peer_proof, now);
    if signed {
        crate::observe::metrics::METRICS.assertions_signed.inc();
    }
    token
}

/// Removes what must never reach an upstream (docs/access.md): client
/// `X-Ptl-*` and forwarding headers (any spelling), `Cookie2`, an
/// anonymous caller's other trace headers (`b3`, `x-datadog-*`, ...), the headers
/// the app's rules set, and the terminal credentials the decision found
/// (the `authorization` cookie, `Authorization` headers carrying a token
/// signed with the terminal secret), and the assertion's header (an
/// `X-Ptl-*` name already is a Portal header; `assertion.header` may name
/// another).
fn strip_client_headers(
    req: &mut RequestHeader,
    app: Option<&AppHeaders>,
    assertion: &http::HeaderName,
    found: &Credentials,
    trace: Option<&Trace>,
) {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            trace.is_some_and(|t| t.strips(name))
                || same_name(name.as_bytes(), assertion.as_str())
                || match app {
                    Some(app) => app.strips(name),
                    None => is_never_forwarded(name),
                }
        })
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
    if found.terminal_cookie {
        let cookies: Vec<http::HeaderValue> = req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .cloned()
            .collect();
        req.remove_header(&http::header::COOKIE);
        for value in cookies {
            // Read as bytes: the app's cookies in any encoding stay as sent.
            let kept = remove_cookie(value.as_bytes(), TERMINAL_COOKIE)
                .and_then(|kept| http::HeaderValue::from_bytes(&kept).ok());
            if let Some(kept) = kept {
                let _ = req.append_header(http::header::COOKIE, kept);
            }
        }
    }
    if !found.terminal_authorization.is_empty() {
        let kept: Vec<http::HeaderValue> = req
            .headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .enumerate()
            .filter(|(i, _)| !found.terminal_authorization.contains(i))
            .map(|(_, v)| v.clone())
            .collect();
        req.remove_header(&http::header::AUTHORIZATION);
        for value in kept {
            let _ = req.append_header(http::header::AUTHORIZATION, value);
        }
    }
}

/// Resolves an upstream for one connection attempt, through the DNS
/// cache: container addresses change when containers restart, so a name's
/// answer is kept for its TTL only (see `dns`). A name without an
/// address is `ConnectNoRoute`, a 502.
pub(super) async fn resolve(dns: &Dns, upstream: &HostPort) -> Result<SocketAddr> {
    dns.resolve(&upstream.host, upstream.port)
        .await
        .map_err(|e| {
            let mut err = Error::because(
                ErrorType::ConnectNoRoute,
                format!("cannot resolve {upstream}"),
                e,
            );
            err.esource = ErrorSource::Upstream;
            err
        })
}

/// Whether connecting to the upstream failed for want of a descriptor
/// (`EMFILE`), anywhere down the error's causes.
pub(super) fn out_of_descriptors(e: &Error) -> bool {
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.raw_os_error() == Some(libc::EMFILE))
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
