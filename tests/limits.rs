//! Edge limits end to end (DESIGN section 8): oversized request heads,
//! `Content-Length` with `Transfer-Encoding`, and the cap on open client
//! connections.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;

const APP: &str = r#"{"": {"access": "public"}}"#;

fn setup(test: &str, extra: &str) -> (PortalFiles, Proxy) {
    let files = PortalFiles::new(test);
    let alpha = Upstream::start("alpha");
    files.app("alpha", &app_meta(APP));
    let config = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ alpha: \"{}\" }}\n{extra}",
        alpha.addr
    );
    let proxy = Proxy::start(&files, &config);
    (files, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_431() {
    let (files, proxy) = setup("limits-head", "");
    let client = client(&files.ca_pem, Protocol::Http1);
    let url = proxy.url(&files.host("alpha"), "/");
    let mut many = client.get(&url);
    for i in 0..100 {
        many = many.header(format!("x-h{i}"), "v");
    }
    // 100 fields of the client's plus its own few: over 100.
    let resp = many.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "request_header_fields_too_large");
    let resp = client
        .get(&url)
        .header("x-big", "v".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    // Within the limits, all is well.
    let mut some = client.get(&url);
    for i in 0..50 {
        some = some.header(format!("x-h{i}"), "v".repeat(100));
    }
    assert_eq!(some.send().await.unwrap().status(), StatusCode::OK);
    // The same over HTTP/2.
    let h2 = client_h2(&files);
    let resp = h2
        .get(&url)
        .header("x-big", "v".repeat(70 * 1024))
        .send()
        .await;
    // h2 refuses a header list over its SETTINGS_MAX_HEADER_LIST_SIZE
    // before the proxy sees it: either a 431 or a refused stream.
    match resp {
        Ok(r) => assert_eq!(r.status().as_u16(), 431),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
}

fn client_h2(files: &PortalFiles) -> reqwest::Client {
    client(&files.ca_pem, Protocol::Http2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_400() {
    let (files, proxy) = setup("limits-smuggle", "");
    let host = files.host("alpha");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
    );
    let response = raw_exchange(proxy.https, &host, &files.ca_pem, &request)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("Transfer-Encoding together"),
        "{response}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    // 16 descriptors are fewer than the proxy holds at rest (listeners,
    // epoll, log): every new connection is over the cap.
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (files, proxy) = setup(
        "limits-cap",
        &format!(
            "limits: {{ max_client_connections: 16 }}\nmetrics: {{ listen: \"{metrics}\" }}\n"
        ),
    );
    let host = files.host("alpha");
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    // The descriptors are recounted every 250 ms, and each connection
    // admitted in between counts as one more: refusals start at once or
    // within a few attempts.
    let refused = eventually(Duration::from_secs(5), || async {
        let result = raw_exchange(proxy.https, &host, &files.ca_pem, &request).await;
        result.is_err() || result.as_deref() == Ok("")
    })
    .await;
    assert!(refused, "no connection was refused over the cap");
    let text = metrics_text(metrics).await;
    let refused = series_value(&text, "portal_proxy_connections_refused_total");
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
}
