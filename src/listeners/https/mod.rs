//! The HTTPS listener's `ProxyHttp` shell (a pure core inside a thin
//! shell). `request_filter` gathers the request head, calls [`decide`]
//! once and keeps the decision's facts and [`Verdict`] in the request's
//! context (its `Stage`); every later phase applies it: `limit` the rate
//! limits, `forward` what is done to a request on its way to the upstream
//! and to failures on their way back, `answer` what is done to the app's
//! answer (signed for a peer, or compressed).

mod answer;
mod build;
mod claim;
mod context;
mod forward;
mod held;
mod limit;
mod record;

use std::sync::Arc;
use std::time::Instant;

pub(crate) use build::build;
pub(crate) use context::RequestCtx;
use context::{Forwarding, Received, Stage};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::tls::SslDigest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};

use super::request_host;
use super::respond::write_refusal_with;
use crate::admission::guard::{digest_key, Guard};
use crate::admission::live::LiveRequests;
use crate::admission::rate::RateLimits;
use crate::config::Limits;
use crate::observe::access_log::AccessLog;
use crate::observe::metrics;
use crate::state::SharedState;
use crate::tls::peer::TlsPeer;
use portal_core::assertion::Assertions;
use portal_core::body::BodyRate;
use portal_core::decide::{decide, Decision, Facts, Policy, Verdict};
use portal_core::identity::Identity;
use portal_core::refusal::{Kind, Refusal};
use portal_core::replay::{Handover, ReplayCache};
use portal_core::route::Target;
use portal_core::trace::Trace;

/// What the HTTPS listener knows of its Portal; shared by every request.
pub(crate) struct Portal {
    pub policy: Policy,
    pub limits: Limits,
    pub state: Arc<SharedState>,
    /// The `portal` object of header templates.
    pub template_portal: minijinja::Value,
    /// Nonces of peer signatures; outlives state reloads.
    pub replay: Arc<ReplayCache>,
    /// Which signatures' `created` this process may accept across a
    /// graceful upgrade (over CA TLS).
    pub handover: Arc<Handover>,
    pub access_log: AccessLog,
    /// Client connections: told when a head is complete and a request
    /// done.
    pub guard: Arc<Guard>,
    /// Requests in flight, decided again on each state reload.
    pub live: Arc<LiveRequests>,
    /// This Portal's identity: answers to verified peer requests are
    /// signed with it.
    pub identity: Arc<Identity>,
    /// Upstream names, cached (shared with every listener).
    pub dns: Arc<crate::dns::Dns>,
    /// Request rates per client address and per peer.
    pub rate: RateLimits,
    /// The encoders of compressed answers.
    pub compression: crate::compress::Compressors,
    /// The identity assertion's settings and signer.
    pub assertion: crate::config::Assertion,
    pub assertions: Arc<Assertions>,
}

/// The HTTPS listener's request handling.
pub(crate) struct PortalProxy {
    portal: Arc<Portal>,
}

impl PortalProxy {
    pub(crate) fn new(portal: Arc<Portal>) -> Self {
        PortalProxy { portal }
    }
}

/// The connection's key in the [`Guard`].
pub(super) fn connection_key(session: &Session) -> Option<usize> {
    session
        .as_downstream()
        .digest()?
        .socket_digest
        .as_ref()
        .map(digest_key)
}

/// The TLS digest of the connection (pinned peer TLS records the peer's
/// ID in it: [`TlsPeer`]).
fn ssl_digest(session: &Session) -> Option<Arc<SslDigest>> {
    session.as_downstream().digest()?.ssl_digest.clone()
}

#[async_trait]
impl ProxyHttp for PortalProxy {
    type CTX = RequestCtx;

    /// A kept-alive connection whose next head has started when a
    /// graceful upgrade's old process stops is answered, not dropped: the
    /// guard knows (the head's deadline runs).
    fn head_in_progress(
        &self,
        session: &pingora::protocols::http::ServerSession,
    ) -> Option<Box<dyn Fn() -> bool + Send + Sync>> {
        let key = session.digest()?.socket_digest.as_ref().map(digest_key)?;
        let guard = self.portal.guard.clone();
        Some(Box::new(move || guard.head_in_progress(key)))
    }

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            received: Received {
                started: Instant::now(),
                host: None,
                binding: None,
                in_flight: None,
                trace: None,
            },
            stage: Stage::Undecided,
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
        if let Some(key) = connection_key(session) {
            match self.portal.guard.request_started(key) {
                Ok(in_flight) => ctx.received.in_flight = in_flight,
                // An HTTP/2 stream past its client's share.
                Err(e) => {
                    ctx.fail(Refusal::new(Kind::Unavailable, e.to_string()));
                }
            }
        }
        let req = session.req_header();
        ctx.received.host = request_host(req).map(str::to_owned);
        if ctx.refusal().is_some() {
            return Ok(());
        }
        // The target counted as received, whatever its form (a relative
        // one has no path in the `Uri`).
        if let Err(e) = portal_core::head::check_head(
            req.method.as_str(),
            req.raw_path(),
            &req.headers,
            raw_head.as_deref(),
            limits.max_request_headers,
            limits.max_request_header_bytes,
        ) {
            // Answered by `request_filter`; what follows such a head on
            // this connection cannot be trusted.
            session.set_keepalive(None);
            ctx.fail(e.into());
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let client = limit::client_key(session);
        if let Stage::Undecided = ctx.stage {
            let now = crate::clock::unix_now();
            let snapshot = self.portal.state.load();
            let has_body = !session.is_body_empty();
            let ssl = ssl_digest(session);
            let tls_peer = ssl.as_deref().and_then(|d| d.extension.get::<TlsPeer>());
            let tls_peer = tls_peer.map(|p| p.0.as_str());
            let host = ctx.received.host.as_deref();
            let head = context::head(session.req_header(), host, has_body, tls_peer);
            let decision = decide(&head, &snapshot, &self.portal.policy, now);
            let claim = claim::nonce(&self.portal, decision.nonce.as_ref(), tls_peer, now);
            let decision = decision.settle(claim);
            let verdict = match limit::rate_limit(&self.portal.rate, client, tls_peer, &decision) {
                Some(refusal) => Verdict::Refuse(refusal),
                None => decision.verdict,
            };
            let Decision { facts, nonce, .. } = decision;
            let headers = &session.req_header().headers;
            ctx.received.trace = Some(Trace::of(headers, facts.chooses_trace(), rand::random()));
            ctx.received.binding = nonce.map(|n| n.binding);
            ctx.stage = match verdict {
                Verdict::Refuse(refusal) => Stage::Answered {
                    facts,
                    refusal,
                    upstream: None,
                },
                Verdict::Forward(plan) => {
                    let live = connection_key(session)
                        .map(|key| self.portal.live.open(key, plan.opened.clone()));
                    Stage::Forwarded(Box::new(Forwarding {
                        facts,
                        plan,
                        _live: live,
                        body_rate: None,
                        compressing: None,
                    }))
                }
            };
        }
        // A small signed body is checked before the head goes upstream.
        let refused = match &mut ctx.stage {
            Stage::Forwarded(f) => {
                held::check_before_the_head(session, &mut f.plan.body_check).await?
            }
            _ => None,
        };
        if let Some(refusal) = refused {
            ctx.fail(refusal);
        }
        match &ctx.stage {
            Stage::Answered { refusal, .. } => {
                let binding = ctx.received.binding.as_deref();
                let sign =
                    |head: &mut ResponseHeader| answer::sign(&self.portal.identity, binding, head);
                write_refusal_with(session.as_downstream_mut(), refusal, sign).await?;
                Ok(true)
            }
            Stage::Forwarded(_) | Stage::Undecided => Ok(false),
        }
    }

    /// Holds back a signed request's body until its digest is checked: the
    /// request head has gone upstream, but the body's last byte goes only
    /// if the digest matches; otherwise the upstream request is aborted
    /// before it is complete (docs/signing.md).
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Stage::Forwarded(forwarding) = &mut ctx.stage else {
            return Ok(());
        };
        // A trickled upload ends once under the minimum rate.
        let limits = &self.portal.limits;
        if limits.min_body_bytes_per_second > 0 && !session.is_upgrade_req() {
            let (rate, started) = forwarding.body_rate.get_or_insert_with(|| {
                let rate = BodyRate::new(
                    limits.min_body_bytes_per_second,
                    limits.min_body_rate_grace.as_secs_f64(),
                );
                (rate, Instant::now())
            });
            let n = body.as_ref().map_or(0, Bytes::len);
            if let Err(e) = rate.push(n, started.elapsed().as_secs_f64()) {
                metrics::METRICS
                    .slow_clients
                    .inc(metrics::SlowPhase::BodyRate);
                return Err(ctx.fail(e.into()));
            }
        }
        let Some(check) = forwarding.plan.body_check.as_mut() else {
            return Ok(());
        };
        match check.push(body.take().as_deref(), end_of_stream) {
            Ok(Some(whole)) => *body = Some(whole),
            // Empty, not `None`: `None` would tell the upstream the body ended.
            Ok(None) => *body = Some(Bytes::new()),
            Err(e) => return Err(ctx.fail(e.into())),
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let addr = forward::resolve(&self.portal.dns, &ctx.plan()?.upstream).await?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        let limits = &self.portal.limits;
        peer.options.connection_timeout = Some(limits.upstream_connect_timeout);
        // Idle timeouts only: a body may stream for hours (README.md, "Operating it").
        peer.options.read_timeout = Some(limits.upstream_idle_timeout);
        peer.options.write_timeout = Some(limits.upstream_idle_timeout);
        peer.options.tcp_recv_buf = Some(crate::admission::limits::UPSTREAM_RECV_BUFFER);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let client_ip = client_ip(session);
        let plan = ctx.plan()?;
        let assertion = forward::Assertion {
            header: &self.portal.assertion.header,
            token: self
                .portal
                .assertion
                .enabled
                .then(|| forward::assertion_token(&self.portal.assertions, plan)),
        };
        let prepared = forward::prepare(
            upstream_request,
            plan,
            client_ip,
            ctx.received.host.as_deref(),
            ctx.received.trace.as_ref(),
            &self.portal.template_portal,
            assertion,
        );
        match prepared {
            Ok(()) => Ok(()),
            Err(forward::NotSent::Failed(e)) => Err(e),
            Err(forward::NotSent::Rejected(refusal)) => Err(ctx.fail(refusal)),
        }
    }

    /// Signs the app's answer to a verified peer request (docs/signing.md):
    /// the peer checks it before its app sees the answer.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let binding = ctx.received.binding.as_deref();
        answer::sign(&self.portal.identity, binding, upstream_response)?;
        let signed = binding.is_some();
        if let Stage::Forwarded(forwarding) = &mut ctx.stage {
            let compression = &self.portal.compression;
            forwarding.compressing =
                answer::compress(compression, session, upstream_response, signed)?;
        }
        Ok(())
    }

    /// Compresses the answer's body as it streams, when `response_filter`
    /// chose to.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Stage::Forwarded(forwarding) = &mut ctx.stage {
            if let Some(compressing) = forwarding.compressing.as_mut() {
                *body = Some(compressing.encode(body.as_deref(), end_of_stream)?);
            }
        }
        Ok(None)
    }

    /// The request's upstream socket is open: the connection cap's
    /// recount sees it from now on, no longer counted ahead.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(in_flight) = ctx.received.in_flight.as_mut() {
            in_flight.upstream_open();
        }
        Ok(())
    }

    /// A connection to the app that failed for want of a descriptor
    /// (`EMFILE`) is tried again once a connection has been shed for it
    /// (`Guard::make_room`), as admission at the cap would have: a new
    /// client is not turned away with 502 because the cap's recount lags.
    /// Each try sheds at most one; Pingora bounds the tries.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if forward::out_of_descriptors(&e) && self.portal.guard.make_room(connection_key(session)) {
            e.set_retry(true);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let app = ctx.facts().map_or("", Facts::app_label);
        let what = match ctx.facts().and_then(|f| f.target.as_ref()) {
            Some(Target::App(name)) => format!("app {name:?}"),
            Some(Target::Core(_)) => "the Portal core".to_string(),
            None => "the upstream".to_string(),
        };
        if *e.esource() == pingora::ErrorSource::Upstream {
            metrics::METRICS
                .upstream_errors
                .with_label_values(&[app, super::respond::error_kind(e).as_str()])
                .inc();
        }
        // A refusal decided while streaming the body (a digest mismatch, a
        // body over the limit) wins over what the error says.
        let refusal = ctx
            .refusal()
            .cloned()
            .or_else(|| super::respond::proxy_failure(e, &what));
        let code = match refusal {
            // Headers already sent: the connection is closed mid-response.
            Some(_) if session.response_written().is_some() => 0,
            Some(refusal) => {
                let upstream = ctx.upstream().map(ToString::to_string);
                log::warn!(
                    "{} {}: {} (upstream {})",
                    refusal.status(),
                    what,
                    e,
                    upstream.unwrap_or_default()
                );
                let status = refusal.status();
                // The connection is not reused after a failure
                // (`can_reuse_downstream: false` below): the answer says
                // so, or a client could send its next request on it as it
                // closes (seen: a peer's next body write reset).
                session.set_keepalive(None);
                let binding = ctx.received.binding.as_deref();
                let sign =
                    |head: &mut ResponseHeader| answer::sign(&self.portal.identity, binding, head);
                let written = write_refusal_with(session.as_downstream_mut(), &refusal, sign).await;
                // Recorded for the access log.
                let _ = ctx.fail(refusal);
                if written.is_ok() {
                    status
                } else {
                    0
                }
            }
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Counts the request and writes its access log line (docs/metrics.md);
    /// never waits.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        record::record(&self.portal, session, ctx);
    }
}

/// The client's IP address (none over a Unix socket).
pub(super) fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session.client_addr()?.as_inet().map(|a| a.ip())
}
