use std::sync::Arc;

use super::*;
use crate::observe::metrics::render;
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
        serde_json::json!([{"id": p.id, "name": "p", "public_key": p.public_key_pem}]).to_string()
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
