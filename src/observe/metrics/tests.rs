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
    outbound("p", StatusClass::Success);
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
