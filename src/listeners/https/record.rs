//! The end of a request: its place among the connection's requests given
//! back, its counters and its access log line (docs/metrics.md). Never
//! waits.

use pingora::proxy::Session;

use super::context::Stage;
use super::{client_ip, connection_key, Portal, RequestCtx};
use crate::observe::access_log::Entry;
use crate::observe::metrics;
use portal_core::caller::Caller;
use portal_core::decide::Facts;
use portal_core::refusal::Refusal;

/// Counts the request and writes its access log line.
pub(super) fn record(portal: &Portal, session: &mut Session, ctx: &mut RequestCtx) {
    drop(ctx.received.in_flight.take());
    // HTTP/1: the next head's first byte starts its deadline (HTTP/2
    // streams share a connection that other streams keep busy).
    if !session.as_downstream().is_http2() {
        if let Some(key) = connection_key(session) {
            portal.guard.request_done(key);
        }
    }
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let duration = ctx.received.started.elapsed();
    let facts = ctx.facts();
    let app = facts.map_or("", Facts::app_label);
    let decision = match &ctx.stage {
        Stage::Answered { refusal, .. } => refusal.code(),
        Stage::Forwarded(_) => "forward",
        // The client went away or sent garbage before a decision.
        Stage::Undecided => "none",
    };
    if let Some(reason) = ctx.refusal().and_then(Refusal::signature_reason) {
        metrics::signature_refused(reason);
    }
    let access = facts.and_then(|f| f.access).map_or("", |a| a.as_str());
    let (client_type, client_id, _) = facts.map_or(&Caller::Anonymous, |f| &f.caller).parts();
    let m = &metrics::METRICS;
    m.requests
        .with_label_values(&[
            app,
            access,
            client_type,
            decision,
            metrics::StatusClass::of(status).as_str(),
        ])
        .inc();
    m.request_duration
        .with_label_values(&[app])
        .observe(duration.as_secs_f64());
    if !portal.access_log.is_enabled() {
        return;
    }
    let req = session.req_header();
    let upstream = ctx.upstream().map(ToString::to_string).unwrap_or_default();
    let client = client_ip(session)
        .map(|ip| portal_core::outbound::canonical_ip(ip).to_string())
        .unwrap_or_default();
    portal.access_log.log(&Entry {
        time: crate::observe::access_log::now_rfc3339(),
        client: &client,
        host: ctx.received.host.as_deref().unwrap_or(""),
        app,
        method: req.method.as_str(),
        path: &crate::listeners::logged_path(req),
        status,
        client_type,
        client_id,
        decision,
        upstream: &upstream,
        trace_id: ctx
            .received
            .trace
            .as_ref()
            .map_or("", |t| t.parent.trace_id()),
        duration_ms: duration.as_secs_f64() * 1000.0,
    });
}
