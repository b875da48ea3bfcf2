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

use crate::config::{AppUpstreams, HostPort, Limits};
use crate::error_page::Refusal;
use crate::route::{normalize_host, strip_core_prefix, CoreAccess, RouteError, Router, Target};
use crate::state::SharedState;

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
    /// Decides where the request goes, or the refusal to answer with.
    fn decide(&self, req: &RequestHeader, ctx: &mut RequestCtx) -> Result<(), Refusal> {
        let host = request_host(req)
            .and_then(normalize_host)
            .ok_or_else(|| Refusal::BadRequest(RouteError::NoHost.to_string()))?;
        let snapshot = self.portal.state.load();
        let router = Router {
            domain: &self.portal.domain,
            home_app: &self.portal.home_app,
        };
        let target = router
            .route(&host, req.uri.path(), |app| {
                snapshot.http_app(app).is_some()
            })
            .map_err(|e| match e {
                RouteError::NoHost => Refusal::BadRequest(e.to_string()),
                RouteError::UnknownApp(_) => Refusal::NotFound(e.to_string()),
                RouteError::Misdirected(_) => Refusal::Misdirected(e.to_string()),
            })?;
        let upstream = match &target {
            Target::Core(CoreAccess::Public) => self.portal.core_upstream.clone(),
            Target::Core(CoreAccess::Protected) => {
                // Terminal identification lands with DESIGN section 4; until
                // then nobody is a terminal, so this fails closed.
                return Err(Refusal::Unauthorized(
                    "this path is for the Portal owner's devices only".into(),
                ));
            }
            Target::Core(CoreAccess::Internal) => {
                return Err(Refusal::NotFound(
                    "this path is not served from outside".into(),
                ))
            }
            Target::App(app) => {
                let from_config = self.portal.upstreams.get(app).and_then(|u| u.http.clone());
                let from_meta = || {
                    let ep = snapshot.http_app(app)?.http.as_ref()?;
                    Some(HostPort {
                        host: ep.host.clone(),
                        port: ep.port,
                    })
                };
                from_config
                    .or_else(from_meta)
                    .expect("routing only picks apps with an http entrypoint")
            }
        };
        ctx.target = Some(target);
        ctx.upstream = Some(upstream);
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
        }
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<()> {
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
        if let Some(Target::Core(_)) = ctx.target {
            let stripped = upstream_request
                .uri
                .path_and_query()
                .map(|pq| strip_core_prefix(pq.as_str()).to_owned())
                .unwrap_or_else(|| "/".to_owned());
            let mut parts = upstream_request.uri.clone().into_parts();
            parts.path_and_query = Some(stripped.parse().map_err(|e| {
                Error::because(ErrorType::InternalError, "rewriting the core path", e)
            })?);
            let uri = http::Uri::from_parts(parts).map_err(|e| {
                Error::because(ErrorType::InternalError, "rewriting the core path", e)
            })?;
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
