//! Prometheus metrics (README.md, "Operating it"), registered once in a registry of
//! the proxy's own, with the process collector (`process_*`). The request
//! path only increments counters; the `/metrics` listener (`listeners::metrics`)
//! renders them in the text format. Label values are bounded: app names
//! come from the loaded state (anything else is `""`), reasons and kinds
//! from fixed lists.

#![forbid(unsafe_code)]

mod align;
mod labels;

pub(crate) use align::align_series;
pub(crate) use labels::{
    AcmeOrder, CompressionSkipped, Counted, DnsLookup, LabelValue, PeerHandshake, ProxyHeader,
    RateLimit, Reload, SlowPhase, StateFile, StatusClass, UpstreamError,
};

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use portal_core::refusal::Reason;

/// Every series of the proxy.
pub(crate) struct Metrics {
    pub registry: Registry,
    /// `portal_proxy_requests_total{app,access,client_type,decision,status_class}`.
    pub requests: IntCounterVec,
    /// `portal_proxy_request_duration_seconds{app}`.
    pub request_duration: HistogramVec,
    /// `portal_proxy_signature_refusals_total{reason}`.
    pub signature_refusals: IntCounterVec,
    /// `portal_proxy_upstream_errors_total{app,kind}`.
    pub upstream_errors: IntCounterVec,
    /// `portal_proxy_state_reloads_total{file,result}`.
    pub state_reloads: IntCounterVec,
    /// `portal_proxy_state_entries{kind}`.
    pub state_entries: IntGaugeVec,
    /// `portal_proxy_certificate_expiry_timestamp_seconds`.
    pub certificate_expiry: Gauge,
    /// `portal_proxy_certificate_reloads_total{result}`.
    pub certificate_reloads: Counted<Reload>,
    /// `portal_proxy_acme_orders_total{result}`.
    pub acme_orders: Counted<AcmeOrder>,
    /// `portal_proxy_acme_next_renewal_timestamp_seconds`.
    pub acme_next_renewal: Gauge,
    /// `portal_proxy_acme_consecutive_failures`.
    pub acme_failures: IntGauge,
    /// `portal_proxy_outbound_requests_total{peer,status_class}`.
    pub outbound_requests: IntCounterVec,
    /// `portal_proxy_access_log_dropped_total`.
    pub access_log_dropped: IntCounter,
    /// `portal_proxy_connections_refused_total`.
    pub connections_refused: IntCounter,
    /// `portal_proxy_connections_shed_total`.
    pub connections_shed: IntCounter,
    /// `portal_proxy_slow_clients_total{phase}`.
    pub slow_clients: Counted<SlowPhase>,
    /// `portal_proxy_requests_revoked_total`.
    pub requests_revoked: IntCounter,
    /// `portal_proxy_assertions_signed_total`.
    pub assertions_signed: IntCounter,
    /// `portal_proxy_handover_refusals_total`.
    pub handover_refusals: IntCounter,
    /// `portal_proxy_outbound_unverified_total{peer}`.
    pub outbound_unverified: IntCounterVec,
    /// `portal_proxy_dns_lookups_total{result}`.
    pub dns_lookups: Counted<DnsLookup>,
    /// `portal_proxy_peer_handshakes_total{result}`.
    pub peer_handshakes: Counted<PeerHandshake>,
    /// `portal_proxy_rate_limited_total{limit}`.
    pub rate_limited: Counted<RateLimit>,
    /// `portal_proxy_proxy_protocol_total{result}`.
    pub proxy_protocol: Counted<ProxyHeader>,
    /// `portal_proxy_compressed_responses_total{coding}`.
    pub compressed_responses: IntCounterVec,
    /// `portal_proxy_compression_bytes_total{coding,side}`.
    pub compression_bytes: IntCounterVec,
    /// `portal_proxy_compression_skipped_total{reason}`.
    pub compression_skipped: Counted<CompressionSkipped>,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

/// The process's metrics.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("the process collector is registered once");
    let requests = counter_vec(
        &registry,
        "portal_proxy_requests_total",
        "Requests handled, by app (\"\" for hosts that are no app, \"/core\" for the Portal core), access of the matched path rule, client type, decision (\"forward\" or the code of the proxy's own answer) and status class.",
        &["app", "access", "client_type", "decision", "status_class"],
    );
    let request_duration = register(
        &registry,
        HistogramVec::new(
            HistogramOpts::new(
                "portal_proxy_request_duration_seconds",
                "Time from the request's arrival to the end of its response, by app.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["app"],
        )
        .expect("valid metric definition"),
    );
    let signature_refusals = counter_vec(
        &registry,
        "portal_proxy_signature_refusals_total",
        "Peer requests refused because their signature failed, by reason.",
        &["reason"],
    );
    // Every reason is exported from the start, at zero.
    for reason in Reason::SIGNATURE {
        signature_refusals.with_label_values(&[reason.as_str()]);
    }
    let upstream_errors = counter_vec(
        &registry,
        "portal_proxy_upstream_errors_total",
        "Failures to reach or read an upstream, by app and kind.",
        &["app", "kind"],
    );
    let state_reloads = counter_vec(
        &registry,
        "portal_proxy_state_reloads_total",
        "Loads of the state files, by kind of file and result (ok, or error: the last good version was kept).",
        &["file", "result"],
    );
    // Exported from 0, so that alerts on increase() see the first error.
    for file in StateFile::ALL {
        for result in Reload::ALL {
            state_reloads.with_label_values(&[file.as_str(), result.as_str()]);
        }
    }
    let state_entries = register(
        &registry,
        IntGaugeVec::new(
            Opts::new(
                "portal_proxy_state_entries",
                "Entries of the state in use, by kind (apps, peers, terminals, app_addresses).",
            ),
            &["kind"],
        )
        .expect("valid metric definition"),
    );
    let certificate_expiry = register(
        &registry,
        Gauge::new(
            "portal_proxy_certificate_expiry_timestamp_seconds",
            "When the serving certificate expires (its notAfter), in Unix seconds.",
        )
        .expect("valid metric definition"),
    );
    let certificate_reloads: Counted<Reload> = Counted::new(
        &registry,
        "portal_proxy_certificate_reloads_total",
        "Loads of a changed certificate, by result (ok, or error: the previous certificate kept serving).",
        "result",
    );
    let acme_orders: Counted<AcmeOrder> = Counted::new(
        &registry,
        "portal_proxy_acme_orders_total",
        "ACME orders placed under tls.acme, by result: issued, or where it failed (account_error, ca_error, solver_error, propagation_timeout, write_error). All 0 without tls.acme.",
        "result",
    );
    let acme_next_renewal = register(
        &registry,
        Gauge::new(
            "portal_proxy_acme_next_renewal_timestamp_seconds",
            "When the next ACME order is due (renewal, or retry after a failure), in Unix seconds; 0 without tls.acme.",
        )
        .expect("valid metric definition"),
    );
    let acme_failures = register(
        &registry,
        IntGauge::new(
            "portal_proxy_acme_consecutive_failures",
            "ACME orders failed in a row since the last success (0 when the last one succeeded or nothing was due).",
        )
        .expect("valid metric definition"),
    );
    let outbound_requests = counter_vec(
        &registry,
        "portal_proxy_outbound_requests_total",
        "Requests apps sent to peer Portals through the internal listener, by peer and by the status class returned to the app.",
        &["peer", "status_class"],
    );
    let access_log_dropped = register(
        &registry,
        IntCounter::new(
            "portal_proxy_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind (the request path never waits for it).",
        )
        .expect("valid metric definition"),
    );
    let connections_refused = register(
        &registry,
        IntCounter::new(
            "portal_proxy_connections_refused_total",
            "Client connections closed at once: the cap on open connections (limits.max_client_connections) was reached with none to shed, or the client's own limit (limits.max_connections_per_client).",
        )
        .expect("valid metric definition"),
    );
    let connections_shed = register(
        &registry,
        IntCounter::new(
            "portal_proxy_connections_shed_total",
            "Connections that had not sent a complete request, closed at the connection cap to admit new ones.",
        )
        .expect("valid metric definition"),
    );
    let slow_clients: Counted<SlowPhase> = Counted::new(
        &registry,
        "portal_proxy_slow_clients_total",
        "Client connections closed for being too slow, by phase: handshake (TLS), head (request head), mqtt_idle (MQTT relay idle), body_rate (a request body under limits.min_body_bytes_per_second).",
        "phase",
    );
    let requests_revoked = register(
        &registry,
        IntCounter::new(
            "portal_proxy_requests_revoked_total",
            "Requests in flight (WebSockets, streams) closed after a state reload: their caller could no longer open them.",
        )
        .expect("valid metric definition"),
    );
    let assertions_signed = register(
        &registry,
        IntCounter::new(
            "portal_proxy_assertions_signed_total",
            "Identity assertions signed (docs/access.md): a request reuses the token of its caller and app until a third of its life is left, so this grows by about one per caller and app every 40 s.",
        )
        .expect("valid metric definition"),
    );
    let handover_refusals = register(
        &registry,
        IntCounter::new(
            "portal_proxy_handover_refusals_total",
            "Verified peer requests over CA TLS answered 503 because they were signed across a restart or graceful upgrade of the proxy, which each process's own replay cache cannot tell fresh (docs/signing.md, Restarts and upgrades).",
        )
        .expect("valid metric definition"),
    );
    let outbound_unverified = counter_vec(
        &registry,
        "portal_proxy_outbound_unverified_total",
        "Answers of peers without a valid response signature (502 peer_unverified to the app, or let through when peering.require_response_signature is false).",
        &["peer"],
    );
    let dns_lookups: Counted<DnsLookup> = Counted::new(
        &registry,
        "portal_proxy_dns_lookups_total",
        "Upstream names asked of the resolver (a cached answer asks nothing), by result: ok, stale (the resolver failed and the last good answer was served), error (no address: 502).",
        "result",
    );
    let peer_handshakes: Counted<PeerHandshake> = Counted::new(
        &registry,
        "portal_proxy_peer_handshakes_total",
        "TLS handshakes in which a calling Portal presented its identity key (pinned peer TLS), by result: verified (a peer of peers.json, counted once the handshake proved the key), unknown_key (no peer's: refused at the handshake), bad_certificate (no ed25519 key: refused), bad_proof (a listed key's certificate, the handshake signed by another key: refused).",
        "result",
    );
    let rate_limited: Counted<RateLimit> = Counted::new(
        &registry,
        "portal_proxy_rate_limited_total",
        "Requests refused with 429 by a rate limit: anonymous (a client address over limits.anonymous_requests_per_second), peer (a peer over limits.peer_requests_per_second), failed_authentications (an address locked out after too many failed authentications), peer_nonces (a verified peer holding its whole share of the replay cache).",
        "limit",
    );
    let proxy_protocol: Counted<ProxyHeader> = Counted::new(
        &registry,
        "portal_proxy_proxy_protocol_total",
        "PROXY protocol headers on the TLS listeners, by result: accepted (from listen.proxy_protocol_from, naming the client), local (naming none: the balancer's own connection), missing, malformed or closed (from a trusted address: refused), untrusted (a header from any other address: refused).",
        "result",
    );
    let compressed_responses = counter_vec(
        &registry,
        "portal_proxy_compressed_responses_total",
        "Answers compressed on their way to the client, by coding: zstd, br, gzip.",
        &["coding"],
    );
    let compression_bytes = counter_vec(
        &registry,
        "portal_proxy_compression_bytes_total",
        "Bytes of compressed answers, by coding and side: in (as the app sent them), out (as the client got them).",
        &["coding", "side"],
    );
    for coding in portal_core::encoding::Coding::PREFERENCE {
        compressed_responses.with_label_values(&[coding.token()]);
        for side in ["in", "out"] {
            compression_bytes.with_label_values(&[coding.token(), side]);
        }
    }
    let compression_skipped: Counted<CompressionSkipped> = Counted::new(
        &registry,
        "portal_proxy_compression_skipped_total",
        "Answers that would have been compressed but went as sent, by reason: max_concurrent (compression.max_concurrent encoders were at work).",
        "reason",
    );
    Metrics {
        registry,
        peer_handshakes,
        rate_limited,
        proxy_protocol,
        compressed_responses,
        compression_bytes,
        compression_skipped,
        dns_lookups,
        outbound_unverified,
        connections_refused,
        connections_shed,
        slow_clients,
        requests_revoked,
        assertions_signed,
        handover_refusals,
        requests,
        request_duration,
        signature_refusals,
        upstream_errors,
        state_reloads,
        state_entries,
        certificate_expiry,
        certificate_reloads,
        acme_orders,
        acme_next_renewal,
        acme_failures,
        outbound_requests,
        access_log_dropped,
    }
});

/// Counts a refused peer request by its reason (one of
/// [`Reason::SIGNATURE`]).
pub(crate) fn signature_refused(reason: Reason) {
    METRICS
        .signature_refusals
        .with_label_values(&[reason.as_str()])
        .inc();
}

/// Counts a request sent to a peer (`peer` is its Portal ID, from
/// `peers.json`: a bounded set).
pub(crate) fn outbound(peer: &str, status_class: StatusClass) {
    METRICS
        .outbound_requests
        .with_label_values(&[peer, status_class.as_str()])
        .inc();
}

/// The registry in the Prometheus text format.
pub(crate) fn render() -> Vec<u8> {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("the text encoder writes to memory");
    out
}

#[cfg(test)]
mod tests;
