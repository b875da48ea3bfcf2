//! Prometheus metrics (DESIGN section 8), registered once in a registry of
//! the proxy's own. The request path only increments counters; the
//! `/metrics` listener renders them.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts, Registry};

use crate::signature::SignatureError;

/// Every series of the proxy.
pub struct Metrics {
    pub registry: Registry,
    /// `portal_proxy_signature_refusals_total{reason}`.
    pub signature_refusals: IntCounterVec,
    /// `portal_proxy_outbound_requests_total{peer,status_class}`.
    pub outbound_requests: IntCounterVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let signature_refusals = counter_vec(
        &registry,
        "portal_proxy_signature_refusals_total",
        "Peer requests refused because their signature failed, by reason.",
        &["reason"],
    );
    // Every reason is exported from the start, at zero.
    for reason in SignatureError::REASONS {
        signature_refusals.with_label_values(&[reason]);
    }
    let outbound_requests = counter_vec(
        &registry,
        "portal_proxy_outbound_requests_total",
        "Requests apps sent to peer Portals through the internal listener, by peer and by the status class returned to the app.",
        &["peer", "status_class"],
    );
    Metrics {
        registry,
        signature_refusals,
        outbound_requests,
    }
});

/// Counts a refused peer request.
pub fn signature_refused(e: &SignatureError) {
    METRICS
        .signature_refusals
        .with_label_values(&[e.reason()])
        .inc();
}

/// Counts a request sent to a peer (`peer` is its Portal ID, from
/// `peers.json`: a bounded set).
pub fn outbound(peer: &str, status_class: &str) {
    METRICS
        .outbound_requests
        .with_label_values(&[peer, status_class])
        .inc();
}
