//! Health checks on the metrics listener (README.md, "Operating it"): `/healthz`
//! while the process serves, `/readyz` while its certificate is valid.

use std::net::SocketAddr;

use crate::common::*;

fn start(test: &str, expired: bool) -> (PortalFiles, Proxy, SocketAddr) {
    let files = PortalFiles::new(test);
    if expired {
        use rcgen::{CertificateParams, KeyPair};
        let mut params = CertificateParams::new(vec![format!("*.{}", files.domain)]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(files.dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(files.dir.join("key.pem"), key.serialize_pem()).unwrap();
    }
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = Proxy::start(
        &files,
        &format!("core: {{ upstream: \"127.0.0.1:1\" }}\nmetrics: {{ listen: \"{metrics}\" }}\n"),
    );
    (files, proxy, metrics)
}

async fn get(metrics: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("http://{metrics}{path}"))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_and_ready_with_a_valid_certificate() {
    let (_files, _proxy, metrics) = start("health-ok", false);
    assert_eq!(
        get(metrics, "/healthz").await,
        (200, serde_json::json!({"status": "ok"}))
    );
    assert_eq!(
        get(metrics, "/readyz").await,
        (200, serde_json::json!({"status": "ready"}))
    );
    let (status, body) = get(metrics, "/nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_with_an_expired_certificate() {
    let (_files, _proxy, metrics) = start("health-expired", true);
    // Alive, but not ready, and it says why.
    assert_eq!(get(metrics, "/healthz").await.0, 200);
    let (status, body) = get(metrics, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not_ready");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("expired"), "{reason}");
}
