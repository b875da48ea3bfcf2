//! The rate limits (docs/config.md, `limits`) through the real binary:
//! one client address over its anonymous rate is answered 429 while
//! another is served in full, terminals are never limited, and an address
//! that fails to authenticate too often is locked out of everything that
//! does not authenticate. Distinct 127.0.0.x source addresses stand for
//! distinct clients.

use std::net::IpAddr;
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;

const APP: &str = r#"{"": {"access": "public"}, "/private/": {"access": "private"}}"#;

fn setup(test: &str, limits: &str) -> (PortalFiles, Proxy, Upstream) {
    let files = PortalFiles::new(test);
    let app = Upstream::start("app");
    files
        .app("app", &app_meta(APP))
        .terminals(&[("t1", "Laptop")]);
    let metrics = free_port();
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ app: \"{}\" }}\n\
             metrics: {{ listen: \"127.0.0.1:{metrics}\" }}\nlimits: {{ {limits} }}\n",
            app.addr
        ),
    );
    (files, proxy, app)
}

/// An HTTPS client whose connections come from `source`.
fn from(files: &PortalFiles, source: &str) -> reqwest::Client {
    client_builder(&files.ca_pem, Protocol::Http1)
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// The statuses of `n` requests of `path` by `client`, `concurrency` at a
/// time, with `cookie` if given.
async fn statuses(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    cookie: Option<&str>,
) -> Vec<(StatusCode, Option<String>, Option<String>)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = client.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body = resp.text().await.unwrap();
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string));
        out.push((status, retry, reason));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_limited_while_another_is_served() {
    let (files, proxy, _app) = setup("rate-flood", "anonymous_requests_per_second: 20");
    let url = proxy.url(&files.host("app"), "/x");
    let (flooder, other) = (from(&files, "127.0.0.2"), from(&files, "127.0.0.3"));
    let cookie = format!("authorization={}", files.terminal_token("t1"));
    // The flood, and meanwhile, from elsewhere, requests under the limit
    // and, from the flooding address itself, the owner's device.
    let (flood, others, terminal) = tokio::join!(
        statuses(&flooder, &url, 200, None),
        async {
            let mut all = Vec::new();
            // 4 every 350 ms: at most 12 in any second, under the 20.
            for _ in 0..6 {
                all.extend(statuses(&other, &url, 4, None).await);
                tokio::time::sleep(Duration::from_millis(350)).await;
            }
            all
        },
        statuses(&flooder, &url, 100, Some(&cookie)),
    );
    let limited: Vec<_> = flood.iter().filter(|(s, ..)| *s == 429).collect();
    assert!(
        limited.len() >= 100,
        "only {} of 200 flooding requests were limited",
        limited.len()
    );
    for (_, retry, reason) in &limited {
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(reason.as_deref(), Some("anonymous_rate"));
    }
    let served = flood.iter().filter(|(s, ..)| *s == 200).count();
    assert!(served >= 20, "{served} of the flood were served");
    assert!(
        others.iter().all(|(s, ..)| *s == 200),
        "another address was limited: {others:?}"
    );
    assert!(
        terminal.iter().all(|(s, ..)| *s == 200),
        "the owner's device was limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_fails_to_authenticate_is_locked_out() {
    let (files, proxy, app) = setup("rate-failures", "failed_authentications_per_minute: 5");
    let private = proxy.url(&files.host("app"), "/private/x");
    let public = proxy.url(&files.host("app"), "/x");
    let (attacker, other) = (from(&files, "127.0.0.4"), from(&files, "127.0.0.5"));
    let bad = format!("authorization={}x", files.terminal_token("t1"));
    let good = format!("authorization={}", files.terminal_token("t1"));
    // Five bad tokens where one is needed: refused as such (401).
    let tries = statuses(&attacker, &private, 5, Some(&bad)).await;
    assert!(tries.iter().all(|(s, ..)| *s == 401), "{tries:?}");
    // Then 429 for a minute or two, with a public page too...
    for url in [&private, &public] {
        let (status, retry, reason) = statuses(&attacker, url, 1, Some(&bad)).await.remove(0);
        assert_eq!(status, 429, "{url}");
        assert_eq!(retry.as_deref(), Some("60"));
        assert_eq!(reason.as_deref(), Some("failed_authentications"));
    }
    let (status, ..) = statuses(&attacker, &public, 1, None).await.remove(0);
    assert_eq!(status, 429);
    // ...but what authenticates passes, and other addresses are untouched.
    let served = app.received.lock().unwrap().len();
    let (status, ..) = statuses(&attacker, &private, 1, Some(&good))
        .await
        .remove(0);
    assert_eq!(status, 200);
    assert_eq!(app.received.lock().unwrap().len(), served + 1);
    let (status, ..) = statuses(&other, &public, 1, None).await.remove(0);
    assert_eq!(status, 200);
    // A stale cookie on public pages is no failure: a browser sends it
    // with every request.
    let (status, ..) = statuses(&other, &public, 20, Some(&bad)).await.remove(19);
    assert_eq!(status, 200);
}
