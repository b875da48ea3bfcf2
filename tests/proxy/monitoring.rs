//! The shipped dashboard and alerting rules (`monitoring/`) use only
//! metrics the proxy exports: every metric name in them is checked on a
//! live `/metrics` after traffic of every kind. (`promtool check rules`
//! checks the rules' syntax in CI.)

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::common::*;

/// The metric names of ours in a PromQL text (`up` is Prometheus's own).
fn metric_names(promql: &str, into: &mut BTreeSet<String>) {
    let bytes = promql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &promql[i..];
        let at_word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if at_word_start && (rest.starts_with("portal_proxy_") || rest.starts_with("process_")) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            i += name.len();
            into.insert(name);
        } else {
            i += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_the_rules_is_exported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring");
    let mut names = BTreeSet::new();
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("alerts.yml")).unwrap()).unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            metric_names(rule["expr"].as_str().unwrap(), &mut names);
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            metric_names(target["expr"].as_str().unwrap(), &mut names);
        }
    }
    assert!(names.len() > 10, "{names:?}");

    // Traffic of every kind: forwarded, refused, an app that is down, a
    // call to a peer that does not answer.
    let files = PortalFiles::new("monitoring");
    let app = Upstream::start("web");
    files
        .app(
            "web",
            &app_meta(r#"{"": {"access": "public"}, "/private/": {"access": "private"}}"#),
        )
        .app("down", &app_meta(r#"{"": {"access": "public"}}"#));
    let peer = portal_proxy::identity::generate();
    files.state_file(
        "peers.json",
        &serde_json::json!([{"id": peer.id, "name": "peer", "public_key": peer.public_key_pem, "address": "127.0.0.1:1"}])
            .to_string(),
    );
    files.state_file("app_addresses.json", r#"{"web": ["127.0.0.1"]}"#);
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ web: \"{}\", down: \"127.0.0.1:1\" }}\n\
             metrics: {{ listen: \"{metrics}\" }}\ninternal: {{ listen: \"{internal}\" }}\n",
            app.addr
        ),
    );
    // A fresh proxy, before any traffic: every series the rules and the
    // dashboard use is already there, the apps' and the peer's at 0, so
    // that `increase()` sees the first error.
    let fresh = metrics_text(metrics).await;
    let missing = missing_from(&names, &fresh);
    assert!(
        missing.is_empty(),
        "not exported by a fresh proxy: {missing:?}"
    );
    for series in [
        "portal_proxy_upstream_errors_total{app=\"down\",kind=\"connect_refused\"}".to_string(),
        format!(
            "portal_proxy_outbound_requests_total{{peer=\"{}\",status_class=\"5xx\"}}",
            peer.id
        ),
    ] {
        assert_eq!(series_value(&fresh, &series), Some(0.0), "{series}");
    }

    let client = client(&files.ca_pem, Protocol::Http1);
    for (host, path) in [("web", "/"), ("web", "/private/x"), ("down", "/")] {
        client
            .get(proxy.url(&files.host(host), path))
            .send()
            .await
            .unwrap();
    }
    let call = format!("http://{internal}/internal/call_peer/{}/x", &peer.id[..8]);
    let status = reqwest::get(&call).await.unwrap().status();
    assert_eq!(status, 502);

    let text = metrics_text(metrics).await;
    let missing = missing_from(&names, &text);
    assert!(missing.is_empty(), "used but not exported: {missing:?}");
    // The first error counted from the 0 before it.
    let series = "portal_proxy_upstream_errors_total{app=\"down\",kind=\"connect_refused\"}";
    assert_eq!(series_value(&text, series), Some(1.0), "{series}");
}

/// The metric names of `names` that the scrape `text` has no series of.
fn missing_from<'a>(names: &'a BTreeSet<String>, text: &str) -> Vec<&'a String> {
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    names
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect()
}
