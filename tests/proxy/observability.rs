//! What an operator sees (README.md, "Operating it"): `/metrics` parsed by a
//! Prometheus text-format parser after known traffic, the JSON access log,
//! and certificate hot reload.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;

const APP: &str = r#"{"": {"access": "private"}, "/open/": {"access": "public"}}"#;

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    metrics: SocketAddr,
}

fn setup(test: &str, extra: &str) -> Setup {
    let files = PortalFiles::new(test);
    let alpha = Upstream::start("alpha");
    files
        .app("alpha", &app_meta(APP))
        .app("down", &app_meta(APP));
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ alpha: \"{}\", down: \"127.0.0.1:{}\" }}\n\
         metrics: {{ listen: \"{metrics}\" }}\n{extra}",
        alpha.addr,
        free_port()
    );
    let proxy = Proxy::start(&files, &config);
    std::mem::forget(alpha); // its thread serves for the whole test process
    Setup {
        files,
        proxy,
        metrics,
    }
}

async fn scrape(addr: SocketAddr) -> Scrape {
    let text = metrics_text(addr).await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the sample of `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
        .reduce(|a, b| a + b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic() {
    let s = setup("metrics", "");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let url = |app: &str, path: &str| s.proxy.url(&s.files.host(app), path);
    for _ in 0..3 {
        assert_eq!(
            client
                .get(url("alpha", "/open/x"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        assert_eq!(
            client
                .get(url("alpha", "/private"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        client.get(url("nope", "/")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client
            .get(url("down", "/open/"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_GATEWAY
    );
    let resp = client
        .get(url("alpha", "/open/"))
        .header("signature-input", "portal=(\"@method\");created=1")
        .header("signature", "portal=:AAAA:")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The counts land once each response is done: poll.
    let requests = "portal_proxy_requests_total";
    let expected: [(&[(&str, &str)], f64); 5] = [
        (
            &[
                ("app", "alpha"),
                ("access", "public"),
                ("client_type", "anonymous"),
                ("decision", "forward"),
                ("status_class", "2xx"),
            ],
            3.0,
        ),
        (
            &[
                ("app", "alpha"),
                ("access", "private"),
                ("client_type", "anonymous"),
                ("decision", "unauthorized"),
                ("status_class", "4xx"),
            ],
            2.0,
        ),
        (
            &[
                ("app", ""),
                ("decision", "not_found"),
                ("status_class", "4xx"),
            ],
            1.0,
        ),
        (
            &[
                ("app", "down"),
                ("access", "public"),
                ("decision", "bad_gateway"),
                ("status_class", "5xx"),
            ],
            1.0,
        ),
        (
            &[
                ("app", "alpha"),
                ("decision", "unauthorized"),
                ("status_class", "4xx"),
                ("access", ""),
            ],
            1.0,
        ),
    ];
    let settled = eventually(Duration::from_secs(5), || async {
        let m = scrape(s.metrics).await;
        expected
            .iter()
            .all(|(labels, want)| value(&m, requests, labels) == Some(*want))
    })
    .await;
    let m = scrape(s.metrics).await;
    for (labels, want) in &expected {
        assert_eq!(
            value(&m, requests, labels),
            Some(*want),
            "{requests} {labels:?} (settled: {settled})"
        );
    }
    assert_eq!(
        value(
            &m,
            "portal_proxy_request_duration_seconds_count",
            &[("app", "alpha")]
        ),
        Some(6.0)
    );
    assert_eq!(
        value(
            &m,
            "portal_proxy_upstream_errors_total",
            &[("app", "down"), ("kind", "connect_refused")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "portal_proxy_signature_refusals_total",
            &[("reason", "malformed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "portal_proxy_signature_refusals_total",
            &[("reason", "replayed")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "portal_proxy_state_entries", &[("kind", "apps")]),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "portal_proxy_state_entries", &[("kind", "terminals")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            "portal_proxy_state_reloads_total",
            &[("file", "app"), ("result", "ok")]
        ),
        Some(1.0)
    );
    let cert = portal_proxy::tls::certificates::load_certified_key(
        &s.files.dir.join("cert.pem"),
        &s.files.dir.join("key.pem"),
    )
    .unwrap();
    let expiry = portal_proxy::tls::certificates::expiry(&cert).unwrap() as f64;
    assert_eq!(
        value(&m, "portal_proxy_certificate_expiry_timestamp_seconds", &[]),
        Some(expiry)
    );
    for process in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            value(&m, process, &[]).is_some_and(|v| v > 0.0),
            "{process}"
        );
    }
    assert!(value(&m, "process_cpu_seconds_total", &[]).is_some_and(|v| v >= 0.0));
    // Only /metrics is served there.
    let resp = reqwest::get(format!("http://{}/other", s.metrics))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_app_meta_is_counted_and_the_rest_serves() {
    let s = setup("metrics-broken", "");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    std::fs::write(
        s.files.dir.join("state/apps/down/app_meta.json"),
        "{ broken",
    )
    .unwrap();
    let counted = eventually(Duration::from_secs(5), || async {
        let m = scrape(s.metrics).await;
        value(
            &m,
            "portal_proxy_state_reloads_total",
            &[("file", "app"), ("result", "error")],
        ) == Some(1.0)
    })
    .await;
    assert!(counted, "the broken file was not counted");
    let resp = client
        .get(s.proxy.url(&s.files.host("alpha"), "/open/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        s.proxy.log_text().contains("down/app_meta.json"),
        "{}",
        s.proxy.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_json_line_per_request() {
    let s = setup("access-log", "access_log: { file: access.log }\n");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let token = s.files.terminal_token("t1");
    s.files.terminals(&[("t1", "Laptop")]);
    // Wait for the terminal to be loaded.
    let loaded = eventually(Duration::from_secs(5), || async {
        client
            .get(s.proxy.url(&s.files.host("alpha"), "/private"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
    })
    .await;
    assert!(loaded);
    client
        .get(s.proxy.url(&s.files.host("alpha"), "/open/a?secret=1"))
        .send()
        .await
        .unwrap();
    let path = s.files.dir.join("access.log");
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            lines().iter().any(|l| l["path"] == "/open/a")
        })
        .await
    );
    let all = lines();
    let open = all.iter().find(|l| l["path"] == "/open/a").unwrap();
    assert_eq!(open["app"], "alpha");
    assert_eq!(open["method"], "GET");
    assert_eq!(open["status"], 200);
    assert_eq!(open["client_type"], "anonymous");
    assert_eq!(open["decision"], "forward");
    assert_eq!(
        open["host"],
        format!("{}:{}", s.files.host("alpha"), s.proxy.https.port())
    );
    assert!(open["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(open["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(open["time"].as_str().unwrap().ends_with('Z'));
    let terminal = all
        .iter()
        .find(|l| l["status"] == 200 && l["path"] == "/private")
        .unwrap();
    assert_eq!(terminal["client_type"], "terminal");
    assert_eq!(terminal["client_id"], "t1");
    for line in &all {
        for field in [
            "time",
            "host",
            "app",
            "method",
            "path",
            "status",
            "client_type",
            "client_id",
            "decision",
            "upstream",
            "duration_ms",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        assert!(
            !line["path"].as_str().unwrap().contains('?'),
            "the query is never logged"
        );
    }
}

/// The DER of the certificate a new TLS client is served, trusting `ca_pem`.
async fn served_certificate(addr: SocketAddr, host: &str, ca_pem: &str) -> Result<Vec<u8>, String> {
    let tls = tls_connect(addr, host, ca_pem).await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_swapped_without_dropping_connections() {
    let s = setup("cert-swap", "");
    let host = s.files.host("alpha");
    let old_cert = std::fs::read_to_string(s.files.dir.join("cert.pem")).unwrap();
    // An HTTP/2 client that trusts only the old CA: after the swap it can
    // only succeed on the connection it already has.
    let old_client = client(&s.files.ca_pem, Protocol::Http2);
    let get = |c: &reqwest::Client| c.get(s.proxy.url(&host, "/open/")).send();
    assert_eq!(get(&old_client).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        served_certificate(s.proxy.https, &host, &s.files.ca_pem)
            .await
            .unwrap(),
        der_of(&old_cert)
    );

    // A bad new certificate keeps the old one serving, and is reported.
    std::fs::write(
        s.files.dir.join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let reported = eventually(Duration::from_secs(5), || async {
        let m = scrape(s.metrics).await;
        value(
            &m,
            "portal_proxy_certificate_reloads_total",
            &[("result", "error")],
        )
        .is_some_and(|v| v >= 1.0)
    })
    .await;
    assert!(reported, "the bad certificate was not reported");
    assert_eq!(
        served_certificate(s.proxy.https, &host, &s.files.ca_pem)
            .await
            .unwrap(),
        der_of(&old_cert)
    );
    assert!(s
        .proxy
        .log_text()
        .contains("previous certificate keeps serving"));

    // A good new certificate from another CA: key first, then the
    // certificate, each renamed into place.
    let new = portal_proxy::tls::certificates::demo_certificate(&s.files.domain).unwrap();
    for (name, content) in [("key.pem", &new.key_pem), ("cert.pem", &new.cert_pem)] {
        let tmp = s.files.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, s.files.dir.join(name)).unwrap();
    }
    let swapped = eventually(Duration::from_secs(5), || async {
        served_certificate(s.proxy.https, &host, &new.ca_pem)
            .await
            .ok()
            == Some(der_of(&new.cert_pem))
    })
    .await;
    assert!(swapped, "new clients are not served the new certificate");
    // New clients that only trust the old CA now fail...
    assert!(served_certificate(s.proxy.https, &host, &s.files.ca_pem)
        .await
        .is_err());
    // ...while the connection opened before the swap keeps working.
    for _ in 0..3 {
        assert_eq!(get(&old_client).await.unwrap().status(), StatusCode::OK);
    }
    let new_client = client(&new.ca_pem, Protocol::Http2);
    assert_eq!(get(&new_client).await.unwrap().status(), StatusCode::OK);
    let m = scrape(s.metrics).await;
    let new_expiry = portal_proxy::tls::certificates::expiry(
        &portal_proxy::tls::certificates::load_certified_key(
            &s.files.dir.join("cert.pem"),
            &s.files.dir.join("key.pem"),
        )
        .unwrap(),
    )
    .unwrap() as f64;
    assert_eq!(
        value(&m, "portal_proxy_certificate_expiry_timestamp_seconds", &[]),
        Some(new_expiry)
    );
}
