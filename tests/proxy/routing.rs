//! Routing end to end (README.md, "How requests are handled"): the real proxy process, real TLS
//! with a test CA, HTTP/1.1 and HTTP/2 clients, upstreams on loopback.

use crate::common::*;
use reqwest::{StatusCode, Version};

const PUBLIC: &str = r#"{"":{"access":"public"}}"#;

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    alpha: Upstream,
    core: Upstream,
}

/// Two apps (`alpha`, home app; `beta`), an app whose upstream is down
/// (`down`), an app with only an mqtt entrypoint (`broker`), and the core.
fn setup(test: &str) -> Setup {
    let files = PortalFiles::new(test);
    let (alpha, beta, core) = (
        Upstream::start("alpha"),
        Upstream::start("beta"),
        Upstream::start("core"),
    );
    let down_port = free_port();
    files
        .app("alpha", &app_meta(PUBLIC))
        .app("beta", &app_meta(PUBLIC))
        .app("down", &app_meta(PUBLIC))
        .app(
            "broker",
            r#"{"entrypoints":[{"container_port":1883,"entrypoint_port":"mqtt"}],"paths":{"":{"access":"public"}}}"#,
        );
    let extra = format!(
        "home_app: alpha\ncore: {{ upstream: \"{}\" }}\nupstreams:\n  alpha: \"{}\"\n  beta: \"{}\"\n  down: \"127.0.0.1:{down_port}\"\n",
        core.addr, alpha.addr, beta.addr
    );
    let proxy = Proxy::start(&files, &extra);
    Setup {
        files,
        proxy,
        alpha,
        core,
    }
}

async fn get_echo(client: &reqwest::Client, url: &str) -> (Version, Echo) {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    let version = resp.version();
    (version, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_by_subdomain_over_http1_and_http2() {
    let s = setup("subdomains");
    for (protocol, version) in [
        (Protocol::Http1, Version::HTTP_11),
        (Protocol::Http2, Version::HTTP_2),
    ] {
        let client = client(&s.files.ca_pem, protocol);
        for app in ["alpha", "beta"] {
            let host = s.files.host(app);
            let (v, echo) = get_echo(&client, &s.proxy.url(&host, "/some/path?x=1&y=%20")).await;
            assert_eq!(v, version, "{protocol:?}");
            assert_eq!(echo.upstream, app);
            assert_eq!(echo.target, "/some/path?x=1&y=%20");
            assert_eq!(
                echo.headers["host"],
                format!("{host}:{}", s.proxy.https.port())
            );
        }
        // Host names are case-insensitive.
        let host = s.files.host("BETA").to_uppercase();
        let (_, echo) = get_echo(&client, &s.proxy.url(&host, "/")).await;
        assert_eq!(echo.upstream, "beta");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_domain_is_the_home_app() {
    let s = setup("home");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let (_, echo) = get_echo(&client, &s.proxy.url(&s.files.domain, "/")).await;
    assert_eq!(echo.upstream, s.alpha.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_prefix_is_stripped_and_guarded() {
    let s = setup("core");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let client = client(&s.files.ca_pem, protocol);
        for host in [s.files.domain.clone(), s.files.host("beta")] {
            let (_, echo) = get_echo(&client, &s.proxy.url(&host, "/core/public/info?a=1")).await;
            assert_eq!(echo.upstream, s.core.name);
            assert_eq!(echo.target, "/public/info?a=1");
        }
        // Only terminals may reach /core/protected/ (none exist yet).
        let resp = client
            .get(s.proxy.url(&s.files.domain, "/core/protected/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        // The rest of the core is never reachable from outside.
        for path in ["/core/", "/core/internal/stop", "/core/publicx"] {
            let resp = client
                .get(s.proxy.url(&s.files.domain, path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        }
        // `/core` without the slash is the app's own path.
        let (_, echo) = get_echo(&client, &s.proxy.url(&s.files.host("beta"), "/core")).await;
        assert_eq!(
            (echo.upstream.as_str(), echo.target.as_str()),
            ("beta", "/core")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_is_404_with_a_clear_body() {
    let s = setup("unknown");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    for app in ["nope", "broker"] {
        let resp = client
            .get(s.proxy.url(&s.files.host(app), "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{app}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
        assert!(body["message"].as_str().unwrap().contains(app), "{body}");
    }
    // Browsers get a page.
    let resp = client
        .get(s.proxy.url(&s.files.host("nope"), "/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.text().await.unwrap().contains("404 Not Found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_is_421() {
    let s = setup("misdirected");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    for host in ["example.com", "alpha.other.portal.test", BASE_DOMAIN] {
        let resp = client
            .get(s.proxy.url(&s.files.host("alpha"), "/"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "misdirected_request");
    }
    // Deeper names under the Portal's domain are no app: 404, not 421.
    let resp = client
        .get(s.proxy.url(&s.files.host("alpha"), "/"))
        .header("host", s.files.host("a.beta"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_80_redirects_to_https() {
    let s = setup("redirect");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let host = s.files.host("alpha");
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let url = format!("http://{host}:{}/a/b?c=d", s.proxy.http.port());
        let resp = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT, "{method}");
        assert_eq!(
            resp.headers()["location"],
            format!("https://{host}:{}/a/b?c=d", s.proxy.https.port()).as_str()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_with_a_clear_body() {
    let s = setup("down");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let client = client(&s.files.ca_pem, protocol);
        let resp = client
            .get(s.proxy.url(&s.files.host("down"), "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "bad_gateway");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("\"down\"") && message.contains("not running"),
            "{message}"
        );
        // The other apps keep serving.
        get_echo(&client, &s.proxy.url(&s.files.host("alpha"), "/")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_set_not_appended() {
    let s = setup("forwarded");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let host = s.files.host("beta");
    let resp = client
        .get(s.proxy.url(&host, "/"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo.headers["x-forwarded-proto"], "https");
    assert_eq!(
        echo.headers["x-forwarded-host"],
        format!("{host}:{}", s.proxy.https.port())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_error_responses_reach_the_client_unchanged() {
    let s = setup("app-errors");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    for code in [404u16, 500, 502, 503] {
        let resp = client
            .get(
                s.proxy
                    .url(&s.files.host("beta"), &format!("/status/{code}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code);
        assert_eq!(
            resp.text().await.unwrap(),
            format!("upstream beta says {code}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_forwarded() {
    let s = setup("bodies");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let body = vec![b'x'; 3 * 1024 * 1024 + 7];
    let resp = client
        .post(s.proxy.url(&s.files.host("alpha"), "/upload"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!((echo.method.as_str(), echo.body_len), ("POST", body.len()));
}
