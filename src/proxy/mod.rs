//! The Pingora shell (STYLE: a pure core inside a thin shell): each phase
//! gathers its inputs from the session, calls the pure modules and applies
//! what they decide. `decide` holds `request_filter`'s decision (route,
//! caller, access), `forward` what is done to requests on their way to an
//! upstream and to failures on their way back.

mod decide;
mod forward;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use log::warn;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use crate::access_log::{AccessLog, Entry};
use crate::app_meta::Access;
use crate::caller::Caller;
use crate::config::{AppUpstreams, HostPort, Limits, Peering};
use crate::error_page::Refusal;
use crate::replay::ReplayCache;
use crate::route::Target;
use crate::signature::{ContentDigest, SignatureError};
use crate::state::{App, SharedState, Snapshot};
pub(crate) use decide::request_host;
use forward::{refusal_for, resolve, strip_client_headers};

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
    pub peering: Peering,
    /// Nonces of peer signatures; outlives state reloads.
    pub replay: Arc<ReplayCache>,
    pub access_log: AccessLog,
}

/// The body of a signed request, held back until its digest is checked.
pub struct BodyCheck {
    digest: ContentDigest,
    body: BytesMut,
}

impl BodyCheck {
    fn new(digest: ContentDigest) -> Self {
        BodyCheck {
            digest,
            body: BytesMut::new(),
        }
    }
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
    /// Set for a signed request with a body (DESIGN section 5).
    pub body_check: Option<BodyCheck>,
}

impl PortalProxy {
    /// Writes a refusal as the whole response.
    async fn refuse(&self, session: &mut Session, refusal: Refusal) -> Result<()> {
        write_refusal(session.as_downstream_mut(), &refusal).await
    }
}

/// Writes a refusal as the whole response, JSON or HTML by the request's
/// `Accept` (every listener's one way of answering by itself).
pub(crate) async fn write_refusal(session: &mut ServerSession, refusal: &Refusal) -> Result<()> {
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
    session.write_response_header(Box::new(resp)).await?;
    session.write_response_body(Bytes::from(body), true).await?;
    Ok(())
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
            body_check: None,
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Idle timeouts on the client's body and on writes to it, never a
        // total one: uploads and event streams may last hours.
        let limits = &self.portal.limits;
        session.set_read_timeout(Some(limits.downstream_idle_timeout));
        session.set_write_timeout(Some(limits.downstream_idle_timeout));
        let raw_head = session
            .as_downstream()
            .as_http1()
            .map(|h1| h1.get_headers_raw_bytes());
        let req = session.req_header();
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Err(refusal) = crate::limits::check_head(
            req.method.as_str(),
            target,
            &req.headers,
            raw_head.as_deref(),
            limits.max_request_headers,
            limits.max_request_header_bytes,
        ) {
            // Answered by `request_filter`; what follows such a head on
            // this connection cannot be trusted.
            session.set_keepalive(None);
            ctx.refusal = Some(refusal);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if let Some(refusal) = ctx.refusal.clone() {
            self.refuse(session, refusal).await?;
            return Ok(true);
        }
        let has_body = !session.is_body_empty();
        match self.decide(session.req_header(), has_body, ctx) {
            Ok(()) => Ok(false),
            Err(refusal) => {
                ctx.refusal = Some(refusal.clone());
                self.refuse(session, refusal).await?;
                Ok(true)
            }
        }
    }

    /// Holds back a signed request's body until its digest is checked: the
    /// request head has gone upstream, but the body's last byte goes only
    /// if the digest matches; otherwise the upstream request is aborted
    /// before it is complete (DESIGN section 5).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(check) = ctx.body_check.as_mut() else {
            return Ok(());
        };
        if let Some(chunk) = body.take() {
            if check.body.len() + chunk.len() > self.portal.peering.max_signed_body {
                ctx.refusal = Some(Refusal::PayloadTooLarge(format!(
                    "a signed body is checked in memory, up to {} bytes",
                    self.portal.peering.max_signed_body
                )));
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "signed body over the limit",
                ));
            }
            check.body.extend_from_slice(&chunk);
        }
        if !end_of_stream {
            // Empty, not `None`: `None` would tell the upstream the body ended.
            *body = Some(Bytes::new());
            return Ok(());
        }
        let check = ctx.body_check.take().expect("checked above");
        if check.digest.matches(&check.body) {
            *body = Some(check.body.freeze());
            Ok(())
        } else {
            ctx.refusal = Some(decide::signature_refusal(SignatureError::DigestMismatch));
            Err(Error::explain(
                ErrorType::HTTPStatus(401),
                "Content-Digest does not match the signed body",
            ))
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
        if *e.esource() == pingora::ErrorSource::Upstream {
            let app = match &ctx.target {
                Some(Target::App(app)) => app.as_str(),
                Some(Target::Core(_)) => crate::metrics::CORE_APP_LABEL,
                None => "",
            };
            crate::metrics::METRICS
                .upstream_errors
                .with_label_values(&[app, forward::error_kind(e)])
                .inc();
        }
        // A refusal decided while streaming the body (a digest mismatch, a
        // body over the limit) wins over what the error says.
        let refusal = ctx.refusal.clone().or_else(|| refusal_for(e, &what));
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

    /// Counts the request and writes its access log line (DESIGN
    /// section 8); never waits.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let duration = ctx.started.elapsed();
        let app = match &ctx.target {
            Some(Target::App(app)) => app.as_str(),
            Some(Target::Core(_)) => crate::metrics::CORE_APP_LABEL,
            None => "",
        };
        let decision = match (&ctx.refusal, &ctx.target) {
            (Some(refusal), _) => refusal.code(),
            (None, Some(_)) => "forward",
            // The client went away or sent garbage before a decision.
            (None, None) => "none",
        };
        let access = ctx.access.map_or("", |a| a.as_str());
        let (client_type, client_id, _) = ctx.caller.parts();
        let m = &crate::metrics::METRICS;
        m.requests
            .with_label_values(&[
                app,
                access,
                client_type,
                decision,
                crate::metrics::status_class(status),
            ])
            .inc();
        m.request_duration
            .with_label_values(&[app])
            .observe(duration.as_secs_f64());
        if !self.portal.access_log.is_enabled() {
            return;
        }
        let req = session.req_header();
        let upstream = ctx
            .upstream
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        self.portal.access_log.log(&Entry {
            time: crate::access_log::now_rfc3339(),
            host: request_host(req).unwrap_or(""),
            app,
            method: req.method.as_str(),
            path: req.uri.path(),
            status,
            client_type,
            client_id,
            decision,
            upstream: &upstream,
            duration_ms: duration.as_secs_f64() * 1000.0,
        });
    }
}
