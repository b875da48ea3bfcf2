//! Prometheus metrics (README.md, "Operating it"), registered once in a registry of
//! the proxy's own, with the process collector (`process_*`). The request
//! path only increments counters; the `/metrics` listener (`listeners::metrics`)
//! renders them in the text format. Label values are bounded: app names
//! come from the loaded state (anything else is `""`), reasons and kinds
//! from fixed lists.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{LazyLock, Mutex};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use portal_core::app_meta::Access;
use portal_core::caller::Caller;
use portal_core::decide::CORE_APP_LABEL;
use portal_core::signature::SignatureError;
use portal_core::snapshot::Snapshot;

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
    pub certificate_reloads: IntCounterVec,
    /// `portal_proxy_outbound_requests_total{peer,status_class}`.
    pub outbound_requests: IntCounterVec,
    /// `portal_proxy_access_log_dropped_total`.
    pub access_log_dropped: IntCounter,
    /// `portal_proxy_connections_refused_total`.
    pub connections_refused: IntCounter,
    /// `portal_proxy_connections_shed_total`.
    pub connections_shed: IntCounter,
    /// `portal_proxy_slow_clients_total{phase}`.
    pub slow_clients: IntCounterVec,
    /// `portal_proxy_requests_revoked_total`.
    pub requests_revoked: IntCounter,
    /// `portal_proxy_outbound_unverified_total{peer}`.
    pub outbound_unverified: IntCounterVec,
    /// `portal_proxy_dns_lookups_total{result}`.
    pub dns_lookups: IntCounterVec,
    /// `portal_proxy_peer_handshakes_total{result}`.
    pub peer_handshakes: IntCounterVec,
    /// `portal_proxy_rate_limited_total{limit}`.
    pub rate_limited: IntCounterVec,
    /// `portal_proxy_proxy_protocol_total{result}`.
    pub proxy_protocol: IntCounterVec,
    /// `portal_proxy_compressed_responses_total{coding}`.
    pub compressed_responses: IntCounterVec,
    /// `portal_proxy_compression_bytes_total{coding,side}`.
    pub compression_bytes: IntCounterVec,
    /// `portal_proxy_compression_skipped_total{reason}`.
    pub compression_skipped: IntCounterVec,
}

/// The results of `portal_proxy_peer_handshakes_total{result}`.
pub(crate) const PEER_HANDSHAKE_RESULTS: [&str; 3] = ["verified", "unknown_key", "bad_certificate"];

/// The state file kinds of `portal_proxy_state_reloads_total{file}`.
pub(crate) const STATE_FILE_KINDS: [&str; 6] = [
    "state_dir",
    "app",
    "terminals",
    "terminal_jwt_secret",
    "peers",
    "app_addresses",
];

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
    for reason in SignatureError::REASONS {
        signature_refusals.with_label_values(&[reason]);
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
    for file in STATE_FILE_KINDS {
        for result in ["ok", "error"] {
            state_reloads.with_label_values(&[file, result]);
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
    let certificate_reloads = counter_vec(
        &registry,
        "portal_proxy_certificate_reloads_total",
        "Loads of a changed certificate, by result (ok, or error: the previous certificate kept serving).",
        &["result"],
    );
    for result in ["ok", "error"] {
        certificate_reloads.with_label_values(&[result]);
    }
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
    let slow_clients = counter_vec(
        &registry,
        "portal_proxy_slow_clients_total",
        "Client connections closed for being too slow, by phase: handshake (TLS), head (request head), mqtt_idle (MQTT relay idle).",
        &["phase"],
    );
    for phase in ["handshake", "head", "mqtt_idle"] {
        slow_clients.with_label_values(&[phase]);
    }
    let requests_revoked = register(
        &registry,
        IntCounter::new(
            "portal_proxy_requests_revoked_total",
            "Requests in flight (WebSockets, streams) closed after a state reload: their caller could no longer open them.",
        )
        .expect("valid metric definition"),
    );
    let outbound_unverified = counter_vec(
        &registry,
        "portal_proxy_outbound_unverified_total",
        "Answers of peers without a valid response signature (502 peer_unverified to the app, or let through when peering.require_response_signature is false).",
        &["peer"],
    );
    let dns_lookups = counter_vec(
        &registry,
        "portal_proxy_dns_lookups_total",
        "Upstream names asked of the resolver (a cached answer asks nothing), by result: ok, stale (the resolver failed and the last good answer was served), error (no address: 502).",
        &["result"],
    );
    for result in ["ok", "stale", "error"] {
        dns_lookups.with_label_values(&[result]);
    }
    let peer_handshakes = counter_vec(
        &registry,
        "portal_proxy_peer_handshakes_total",
        "TLS handshakes in which a calling Portal presented its identity key (pinned peer TLS), by result: verified (a peer of peers.json), unknown_key (no peer's: refused at the handshake), bad_certificate (no ed25519 key: refused).",
        &["result"],
    );
    for result in PEER_HANDSHAKE_RESULTS {
        peer_handshakes.with_label_values(&[result]);
    }
    let rate_limited = counter_vec(
        &registry,
        "portal_proxy_rate_limited_total",
        "Requests refused with 429 by a rate limit: anonymous (a client address over limits.anonymous_requests_per_second), peer (a peer over limits.peer_requests_per_second), failed_authentications (an address locked out after too many failed authentications).",
        &["limit"],
    );
    for limit in ["anonymous", "peer", "failed_authentications"] {
        rate_limited.with_label_values(&[limit]);
    }
    let proxy_protocol = counter_vec(
        &registry,
        "portal_proxy_proxy_protocol_total",
        "PROXY protocol headers on the TLS listeners, by result: accepted (from listen.proxy_protocol_from, naming the client), local (naming none: the balancer's own connection), missing, malformed or closed (from a trusted address: refused), untrusted (a header from any other address: refused).",
        &["result"],
    );
    for result in [
        "accepted",
        "local",
        "missing",
        "malformed",
        "closed",
        "untrusted",
    ] {
        proxy_protocol.with_label_values(&[result]);
    }
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
    let compression_skipped = counter_vec(
        &registry,
        "portal_proxy_compression_skipped_total",
        "Answers that would have been compressed but went as sent, by reason: max_concurrent (compression.max_concurrent encoders were at work).",
        &["reason"],
    );
    compression_skipped.with_label_values(&["max_concurrent"]);
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
        requests,
        request_duration,
        signature_refusals,
        upstream_errors,
        state_reloads,
        state_entries,
        certificate_expiry,
        certificate_reloads,
        outbound_requests,
        access_log_dropped,
    }
});

/// The `kind` values of `portal_proxy_upstream_errors_total`
/// (`listeners::respond::error_kind` gives one of them).
pub(crate) const UPSTREAM_ERROR_KINDS: [&str; 8] = [
    "connect_refused",
    "connect_timeout",
    "unresolvable",
    "tls",
    "timeout",
    "connection_closed",
    "protocol",
    "other",
];

/// The `status_class` values of `portal_proxy_outbound_requests_total`
/// ([`status_class`]).
pub(crate) const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// The series of apps and peers that [`align_series`] made, to drop them
/// when their app or peer is gone.
#[derive(Default)]
struct Aligned {
    /// By app label: the label values of its `requests_total` series.
    apps: BTreeMap<String, Vec<[&'static str; 3]>>,
    peers: BTreeSet<String>,
}

static ALIGNED: LazyLock<Mutex<Aligned>> = LazyLock::new(Mutex::default);

/// The `(access, client_type)` pairs a request forwarded on a path of
/// `access` can have: the access rule itself tells (`portal_core::access`).
fn forwarded_labels(access: Access) -> impl Iterator<Item = [&'static str; 3]> {
    let callers = [
        Caller::Anonymous,
        Caller::Terminal {
            id: String::new(),
            name: String::new(),
        },
        Caller::Peer {
            id: String::new(),
            name: String::new(),
        },
    ];
    callers
        .into_iter()
        .filter(move |c| portal_core::access::decide(access, c).is_ok())
        .map(move |c| [access.as_str(), c.client_type(), "2xx"])
}

/// Exports the series of the state's apps and peers from 0, so that a
/// scrape of a fresh proxy (or one after a reload) has them before their
/// first event and `rate()`/`increase()` see the first one (Prometheus's
/// instrumentation guidance): per app (and the Portal core), its request
/// duration, its forwarded requests (each access of its rules, each
/// client type that access admits, `2xx`) and its upstream errors of
/// every kind; per peer, its calls of every status class and its
/// unverified answers. The series of apps and peers no longer in the
/// state are dropped. Called at start and after each state reload.
pub(crate) fn align_series(snapshot: &Snapshot) {
    let m = &*METRICS;
    let mut apps: BTreeMap<String, Vec<[&'static str; 3]>> = BTreeMap::new();
    for (name, app) in &snapshot.apps {
        let mut accesses: Vec<Access> = app.meta.paths.iter().map(|r| r.access).collect();
        accesses.sort_by_key(|a| a.as_str());
        accesses.dedup();
        apps.insert(
            name.clone(),
            accesses.into_iter().flat_map(forwarded_labels).collect(),
        );
    }
    apps.insert(
        CORE_APP_LABEL.to_string(),
        [Access::Public, Access::Private]
            .into_iter()
            .flat_map(forwarded_labels)
            .collect(),
    );
    let peers: BTreeSet<String> = snapshot.peers.iter().map(|p| p.id.clone()).collect();

    let mut aligned = ALIGNED.lock().unwrap_or_else(|e| e.into_inner());
    for (app, labels) in &aligned.apps {
        let kept = apps.get(app);
        for l in labels {
            if !kept.is_some_and(|k| k.contains(l)) {
                let _ = m
                    .requests
                    .remove_label_values(&[app, l[0], l[1], "forward", l[2]]);
            }
        }
        if kept.is_none() {
            let _ = m.request_duration.remove_label_values(&[app]);
            for kind in UPSTREAM_ERROR_KINDS {
                let _ = m.upstream_errors.remove_label_values(&[app, kind]);
            }
        }
    }
    for peer in aligned.peers.difference(&peers) {
        for class in STATUS_CLASSES {
            let _ = m.outbound_requests.remove_label_values(&[peer, class]);
        }
        let _ = m.outbound_unverified.remove_label_values(&[peer]);
    }
    for (app, labels) in &apps {
        m.request_duration.with_label_values(&[app]);
        for l in labels {
            m.requests
                .with_label_values(&[app, l[0], l[1], "forward", l[2]]);
        }
        for kind in UPSTREAM_ERROR_KINDS {
            m.upstream_errors.with_label_values(&[app, kind]);
        }
    }
    for peer in &peers {
        for class in STATUS_CLASSES {
            m.outbound_requests.with_label_values(&[peer, class]);
        }
        m.outbound_unverified.with_label_values(&[peer]);
    }
    *aligned = Aligned { apps, peers };
}

/// Counts a refused peer request by its reason (one of
/// `SignatureError::REASONS`).
pub(crate) fn signature_refused(reason: &str) {
    METRICS
        .signature_refusals
        .with_label_values(&[reason])
        .inc();
}

/// Counts a request sent to a peer (`peer` is its Portal ID, from
/// `peers.json`: a bounded set).
pub(crate) fn outbound(peer: &str, status_class: &str) {
    METRICS
        .outbound_requests
        .with_label_values(&[peer, status_class])
        .inc();
}

/// `1xx` to `5xx`; `none` when no response was sent.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
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
mod tests {
    use super::*;

    #[test]
    fn every_design_series_is_exported() {
        METRICS
            .requests
            .with_label_values(&["a", "public", "anonymous", "forward", "2xx"])
            .inc();
        METRICS
            .request_duration
            .with_label_values(&["a"])
            .observe(0.01);
        METRICS
            .upstream_errors
            .with_label_values(&["a", "connect_refused"])
            .inc();
        METRICS
            .state_reloads
            .with_label_values(&["app", "ok"])
            .inc();
        METRICS.state_entries.with_label_values(&["apps"]).set(1);
        METRICS.certificate_expiry.set(1.0);
        outbound("p", "2xx");
        let text = String::from_utf8(render()).unwrap();
        for series in [
            "portal_proxy_requests_total{",
            "portal_proxy_request_duration_seconds_bucket{",
            "portal_proxy_signature_refusals_total{reason=\"replayed\"} 0",
            "portal_proxy_upstream_errors_total{",
            "portal_proxy_state_reloads_total{",
            "portal_proxy_state_entries{",
            "portal_proxy_certificate_expiry_timestamp_seconds 1",
            "portal_proxy_outbound_requests_total{",
            "portal_proxy_dns_lookups_total{result=\"stale\"}",
            "portal_proxy_peer_handshakes_total{result=\"unknown_key\"} 0",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_cpu_seconds_total",
        ] {
            assert!(text.contains(series), "{series} missing");
        }
    }
}

#[cfg(test)]
mod align_tests {
    use std::sync::Arc;

    use super::*;
    use portal_core::app_meta::AppMeta;
    use portal_core::headers::AppHeaders;
    use portal_core::identity::Identity;
    use portal_core::peers::Peers;
    use portal_core::snapshot::App;

    fn snapshot(apps: &[&str], peer: Option<&Identity>) -> Snapshot {
        let json = br#"{"port":80,"paths":{"":{"access":"private"},"/pub/":{"access":"public"}}}"#;
        let apps = apps
            .iter()
            .map(|name| {
                let meta = AppMeta::parse(name, json).unwrap();
                let headers = AppHeaders::compile(&meta).unwrap();
                (name.to_string(), Arc::new(App { meta, headers }))
            })
            .collect();
        let peers = peer.map_or(String::from("[]"), |p| {
            serde_json::json!([{"id": p.id, "name": "p", "public_key": p.public_key_pem}])
                .to_string()
        });
        Snapshot {
            apps,
            peers: Arc::new(Peers::parse(peers.as_bytes()).unwrap().0),
            ..Snapshot::default()
        }
    }

    #[test]
    fn series_of_apps_and_peers_start_at_zero_and_leave_with_them() {
        let peer = Identity::from_signing_key(ed25519_dalek::SigningKey::from_bytes(&[5; 32]));
        align_series(&snapshot(&["align-a", "align-b"], Some(&peer)));
        let text = String::from_utf8(render()).unwrap();
        let wanted = [
            "portal_proxy_upstream_errors_total{app=\"align-a\",kind=\"connect_refused\"} 0".to_string(),
            "portal_proxy_upstream_errors_total{app=\"/core\",kind=\"other\"} 0".to_string(),
            "portal_proxy_request_duration_seconds_count{app=\"align-b\"} 0".to_string(),
            // Private: terminals only; public: every client type.
            "portal_proxy_requests_total{access=\"private\",app=\"align-a\",client_type=\"terminal\",decision=\"forward\",status_class=\"2xx\"} 0".to_string(),
            "portal_proxy_requests_total{access=\"public\",app=\"align-a\",client_type=\"peer\",decision=\"forward\",status_class=\"2xx\"} 0".to_string(),
            format!("portal_proxy_outbound_requests_total{{peer=\"{}\",status_class=\"5xx\"}} 0", peer.id),
            format!("portal_proxy_outbound_unverified_total{{peer=\"{}\"}} 0", peer.id),
        ];
        for series in &wanted {
            assert!(text.contains(series.as_str()), "{series} missing");
        }
        assert!(!text.contains("access=\"private\",app=\"align-a\",client_type=\"anonymous\""));

        // align-a and the peer leave: their series go, align-b's stay.
        align_series(&snapshot(&["align-b"], None));
        let text = String::from_utf8(render()).unwrap();
        assert!(!text.contains("app=\"align-a\""), "align-a's series stayed");
        assert!(!text.contains(&peer.id), "the peer's series stayed");
        assert!(text.contains("portal_proxy_request_duration_seconds_count{app=\"align-b\"} 0"));
    }
}
