//! The Pingora shell (STYLE: a pure core inside a thin shell): each phase
//! gathers its inputs from the session, calls the pure modules (`route`,
//! `error_page`) and applies what they decide. DESIGN sections 3 and 6
//! (forwarding headers) and 8 (error pages, timeouts).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use log::{info, warn};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::access::{check_path, decide, match_rule};
use crate::app_meta::Access;
use crate::caller::{
    bearer_token, cookie_values, remove_cookie, Caller, Terminals, TERMINAL_COOKIE,
};
use crate::config::{AppUpstreams, HostPort, Limits};
use crate::error_page::Refusal;
use crate::headers::{normalize_name, AppHeaders};
use crate::route::{normalize_host, strip_core_prefix, CoreAccess, RouteError, Router, Target};
use crate::state::{App, SharedState, Snapshot};

/// What the proxy knows of its Portal; shared by every request.
pub struct Portal {
    /// `<short_id>.<base_domain>`.
    pub domain: String,
    pub home_app: String,
    pub core_upstream: HostPort,
    /// `upstreams.<app>` overrides from the config.
    pub upstreams: BTreeMap<String, AppUpstreams>,
    pub limits: Limits,
    pub state: Arc<SharedState>,
    /// The `portal` object of header templates.
    pub template_portal: minijinja::Value,
}

/// The HTTPS listener's request handling.
pub struct PortalProxy {
    portal: Arc<Portal>,
}

impl PortalProxy {
    pub fn new(portal: Arc<Portal>) -> Self {
        PortalProxy { portal }
    }
}

/// Carried from phase to phase of one request.
pub struct RequestCtx {
    pub started: Instant,
    pub target: Option<Target>,
    /// Where the request is sent: set by `request_filter` once routed.
    pub upstream: Option<HostPort>,
    /// What the proxy answered itself, if it did.
    pub refusal: Option<Refusal>,
    pub caller: Caller,
    /// The state the request was decided with, used in every later phase.
    pub snapshot: Option<Arc<Snapshot>>,
    /// The app and the index of its matched path rule.
    pub app: Option<(Arc<App>, usize)>,
    /// The access of the matched rule (core paths included).
    pub access: Option<Access>,
    /// The path to forward when it differs from the one received (the core
    /// prefix stripped, unreserved characters decoded), query included.
    pub forward_path: Option<String>,
}

/// The host a request names: the `:authority` (HTTP/2) or absolute-form
/// target, else the `Host` header.
fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
}

impl PortalProxy {
    /// Decides where the request goes and as whom, or the refusal to answer
    /// with: route (section 3), path check, caller (section 4), rule and
    /// access (section 6).
    fn decide(&self, req: &RequestHeader, ctx: &mut RequestCtx) -> Result<(), Refusal> {
        let host = request_host(req)
            .and_then(normalize_host)
            .ok_or_else(|| Refusal::BadRequest(RouteError::NoHost.to_string()))?;
        let snapshot = self.portal.state.load();
        let router = Router {
            domain: &self.portal.domain,
            home_app: &self.portal.home_app,
        };
        let raw_path = req.uri.path();
        let target = router
            .route(&host, raw_path, |app| snapshot.http_app(app).is_some())
            .map_err(|e| match e {
                RouteError::NoHost => Refusal::BadRequest(e.to_string()),
                RouteError::UnknownApp(_) => Refusal::NotFound(e.to_string()),
                RouteError::Misdirected(_) => Refusal::Misdirected(e.to_string()),
            })?;
        let path = check_path(raw_path).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        ctx.caller = identify(req, &snapshot.terminals);

        let (upstream, access, app) = match &target {
            Target::Core(CoreAccess::Public) => {
                (self.portal.core_upstream.clone(), Access::Public, None)
            }
            Target::Core(CoreAccess::Protected) => {
                (self.portal.core_upstream.clone(), Access::Private, None)
            }
            Target::Core(CoreAccess::Internal) => {
                return Err(Refusal::NotFound(
                    "this path is not served from outside".into(),
                ))
            }
            Target::App(name) => {
                let app = snapshot
                    .http_app(name)
                    .expect("routing only picks loaded apps with an http entrypoint")
                    .clone();
                let rule = match_rule(&app.meta.paths, &path)
                    .expect("every app has the \"\" rule, which matches every path");
                let upstream = match self.portal.upstreams.get(name).and_then(|u| u.http.clone()) {
                    Some(configured) => configured,
                    None => {
                        let ep = app.meta.http.as_ref().expect("checked by http_app");
                        HostPort {
                            host: ep.host.clone(),
                            port: ep.port,
                        }
                    }
                };
                (upstream, app.meta.paths[rule].access, Some((app, rule)))
            }
        };
        ctx.access = Some(access);
        ctx.target = Some(target.clone());
        decide(access, &ctx.caller).map_err(|denied| Refusal::Unauthorized(denied.to_string()))?;

        let forward = match target {
            Target::Core(_) => Some(strip_core_prefix(&path).to_string()),
            Target::App(_) => matches!(path, std::borrow::Cow::Owned(_)).then(|| path.to_string()),
        };
        ctx.forward_path = forward.map(|p| match req.uri.query() {
            Some(q) => format!("{p}?{q}"),
            None => p,
        });
        ctx.upstream = Some(upstream);
        ctx.app = app;
        ctx.snapshot = Some(snapshot);
        Ok(())
    }

    /// Writes a refusal as the whole response.
    async fn refuse(&self, session: &mut Session, refusal: Refusal) -> Result<()> {
        let accept = session
            .req_header()
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let (content_type, body) = refusal.render(accept);
        let mut resp = ResponseHeader::build(refusal.status(), Some(4))?;
        resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
        Ok(())
    }
}

/// The caller of a request: a terminal when the `authorization` cookie or a
/// bearer token proves one, else anonymous (peers come with section 5).
fn identify(req: &RequestHeader, terminals: &Terminals) -> Caller {
    if terminals.is_empty() {
        return Caller::Anonymous;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cookies = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie_values(v, TERMINAL_COOKIE));
    let bearer = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()));
    cookies
        .chain(bearer)
        .find_map(|token| terminals.identify(token, now))
        .unwrap_or(Caller::Anonymous)
}

/// Removes what must never reach an upstream (DESIGN section 6): client
/// `X-Ptl-*` headers (any spelling), the headers the app's rules set, and
/// the terminal credential (the `authorization` cookie, a bearer token
/// signed with the terminal secret).
fn strip_client_headers(req: &mut RequestHeader, app: Option<&AppHeaders>, terminals: &Terminals) {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| match app {
            Some(app) => app.strips(name.as_str()),
            None => normalize_name(name.as_str()).starts_with("x-ptl-"),
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
async fn resolve(upstream: &HostPort) -> Result<SocketAddr> {
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
fn refusal_for(e: &Error, what: &str) -> Option<Refusal> {
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

#[async_trait]
impl ProxyHttp for PortalProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            target: None,
            upstream: None,
            refusal: None,
            caller: Caller::Anonymous,
            snapshot: None,
            app: None,
            access: None,
            forward_path: None,
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Idle timeouts on the client's body and on writes to it, never a
        // total one: uploads and event streams may last hours.
        let idle = self.portal.limits.downstream_idle_timeout;
        session.set_read_timeout(Some(idle));
        session.set_write_timeout(Some(idle));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        match self.decide(session.req_header(), ctx) {
            Ok(()) => Ok(false),
            Err(refusal) => {
                ctx.refusal = Some(refusal.clone());
                self.refuse(session, refusal).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let upstream = ctx
            .upstream
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
        let addr = resolve(upstream).await?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        let limits = &self.portal.limits;
        peer.options.connection_timeout = Some(limits.upstream_connect_timeout);
        // Idle timeouts only: a body may stream for hours (DESIGN section 8).
        peer.options.read_timeout = Some(limits.upstream_idle_timeout);
        peer.options.write_timeout = Some(limits.upstream_idle_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Set, never appended to what the client sent (DESIGN section 6).
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            upstream_request.insert_header("x-forwarded-for", ip.to_string())?;
        } else {
            upstream_request.remove_header("x-forwarded-for");
        }
        upstream_request.insert_header("x-forwarded-proto", "https")?;
        if let Some(host) = request_host(session.req_header()).map(str::to_owned) {
            upstream_request.insert_header("x-forwarded-host", host)?;
        }
        let snapshot = ctx
            .snapshot
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "request not decided"))?;
        let app = ctx.app.as_ref();
        strip_client_headers(
            upstream_request,
            app.map(|(a, _)| &a.headers),
            &snapshot.terminals,
        );
        match app {
            Some((app, rule)) => {
                let (headers, problems) =
                    app.headers
                        .render(*rule, &ctx.caller, &self.portal.template_portal);
                for (name, value) in headers {
                    upstream_request.insert_header(name, value)?;
                }
                for p in problems {
                    warn!("app {:?}: header left out: {p}", app.meta.name);
                }
            }
            None => {
                // The core learns who is calling from fixed headers.
                let (client_type, client_id, client_name) = ctx.caller.parts();
                upstream_request.insert_header("x-ptl-client-type", client_type)?;
                upstream_request.insert_header("x-ptl-client-id", client_id)?;
                if let Ok(name) = http::HeaderValue::from_bytes(client_name.as_bytes()) {
                    upstream_request.insert_header("x-ptl-client-name", name)?;
                }
            }
        }
        if let Some(path) = &ctx.forward_path {
            let mut parts = upstream_request.uri.clone().into_parts();
            parts.path_and_query =
                Some(path.parse().map_err(|e| {
                    Error::because(ErrorType::InternalError, "rewriting the path", e)
                })?);
            let uri = http::Uri::from_parts(parts)
                .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the path", e))?;
            upstream_request.set_uri(uri);
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let what = match &ctx.target {
            Some(Target::App(app)) => format!("app {app:?}"),
            Some(Target::Core(_)) => "the Portal core".to_string(),
            None => "the upstream".to_string(),
        };
        let refusal = refusal_for(e, &what);
        let code = match refusal {
            // Headers already sent: the connection is closed mid-response.
            Some(_) if session.response_written().is_some() => 0,
            Some(refusal) => {
                warn!(
                    "{} {}: {} (upstream {})",
                    refusal.status(),
                    what,
                    e,
                    ctx.upstream
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
                let status = refusal.status();
                ctx.refusal = Some(refusal.clone());
                match self.refuse(session, refusal).await {
                    Ok(()) => status,
                    Err(_) => 0,
                }
            }
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        info!(
            "{} {} {} -> {} {}ms",
            session.req_header().method,
            request_host(session.req_header()).unwrap_or("-"),
            session.req_header().uri.path(),
            status,
            ctx.started.elapsed().as_millis()
        );
    }
}
