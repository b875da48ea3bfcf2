//! Who may reach what, end to end (docs/access.md): terminals by
//! JWT cookie or bearer token, anonymous callers, path rules, identity
//! headers, spoofed headers and credentials stripped, unsafe paths refused.

use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::StatusCode;

const FILES_APP: &str = r#"{
  "": {"access": "private", "headers": {
      "X-Ptl-Client-Id": "{{ auth.client_id }}",
      "X-Ptl-Client-Name": "{{ auth.client_name }}",
      "X-Ptl-Client-Type": "{{ auth.client_type }}",
      "X-Ptl-User": "{{ portal.id[:6] }}@example.com",
      "Remote-User": "{{ client_id }}"}},
  "/share/": {"access": "public", "headers": {"X-Ptl-Client-Type": "{{ auth.client_type }}"}},
  "/peer/": {"access": "peer"}
}"#;

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    core: Upstream,
}

fn setup(test: &str) -> Setup {
    let files = PortalFiles::new(test);
    let (app, core) = (Upstream::start("files"), Upstream::start("core"));
    files
        .app("files", &app_meta(FILES_APP))
        .terminals(&[("t1", "Laptop"), ("t2", "Phone")]);
    let extra = format!(
        "home_app: files\ncore: {{ upstream: \"{}\" }}\nupstreams:\n  files: \"{}\"\n",
        core.addr, app.addr
    );
    let proxy = Proxy::start(&files, &extra);
    Setup { files, proxy, core }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        self.proxy.url(&self.files.host("files"), path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_reaches_private_paths_with_rendered_headers() {
    let s = setup("terminal");
    let token = s.files.terminal_token("t1");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let client = client(&s.files.ca_pem, protocol);
        for request in [
            client
                .get(s.url("/docs/a?b=1"))
                .header("cookie", format!("theme=dark; authorization={token}")),
            client.get(s.url("/docs/a?b=1")).bearer_auth(&token),
        ] {
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{protocol:?}");
            let echo: Echo = resp.json().await.unwrap();
            let h = &echo.headers;
            assert_eq!(h["x-ptl-client-id"], "t1");
            assert_eq!(h["x-ptl-client-name"], "Laptop");
            assert_eq!(h["x-ptl-client-type"], "terminal");
            assert_eq!(
                h["x-ptl-user"],
                format!("{}@example.com", s.files.identity.short_id())
            );
            assert_eq!(h["remote-user"], "t1");
            // The credential never reaches the app; other cookies do.
            assert!(!h.contains_key("authorization"), "{h:?}");
            assert!(
                !h.get("cookie").is_some_and(|c| c.contains("authorization")),
                "{h:?}"
            );
        }
        let resp = client
            .get(s.url("/"))
            .header("cookie", format!("theme=dark; authorization={token}"))
            .send()
            .await
            .unwrap();
        let echo: Echo = resp.json().await.unwrap();
        assert_eq!(echo.headers["cookie"], "theme=dark");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_gets_401_on_private_and_200_on_public() {
    let s = setup("anonymous");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let resp = client.get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    // Browsers get a page.
    let resp = client
        .get(s.url("/docs/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.unwrap().contains("401 Unauthorized"));
    // Public paths are open, and say who is calling.
    let resp = client.get(s.url("/share/x")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.headers["x-ptl-client-type"], "anonymous");
    // Invalid tokens make the caller anonymous, never an error.
    for token in [
        "garbage".to_string(),
        s.files.terminal_token("unknown-terminal"),
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "t1", "exp": 1}),
            &jsonwebtoken::EncodingKey::from_secret(TERMINAL_SECRET.as_bytes()),
        )
        .unwrap(),
    ] {
        let resp = client
            .get(s.url("/share/"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let echo: Echo = resp.json().await.unwrap();
        assert_eq!(echo.headers["x-ptl-client-type"], "anonymous");
        let resp = client
            .get(s.url("/docs/"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // A terminal is no peer.
    let resp = client
        .get(s.url("/peer/x"))
        .bearer_auth(s.files.terminal_token("t1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_never_reach_the_app() {
    let s = setup("forged");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let resp = client
        .get(s.url("/share/"))
        .header("X-Ptl-Client-Id", "t1")
        .header("X_Ptl_Client_Id", "t1")
        .header("x-ptl-client-type", "terminal")
        .header("X-Ptl-Anything", "x")
        .header("Remote-User", "t1")
        .header("Remote_User", "t1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    let h = &echo.headers;
    assert_eq!(h["x-ptl-client-type"], "anonymous", "set by the proxy only");
    for name in [
        "x-ptl-client-id",
        "x_ptl_client_id",
        "x-ptl-anything",
        "remote-user",
        "remote_user",
    ] {
        assert!(!h.contains_key(name), "{name} reached the app: {h:?}");
    }
    // The core gets the same protection.
    let resp = client
        .get(s.proxy.url(&s.files.domain, "/core/public/x"))
        .header("X_Ptl_Client_Type", "terminal")
        .send()
        .await
        .unwrap();
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.upstream, s.core.name);
    assert_eq!(echo.headers["x-ptl-client-type"], "anonymous");
    assert!(!echo.headers.contains_key("x_ptl_client_type"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_protected_needs_a_terminal() {
    let s = setup("core-protected");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let url = s.proxy.url(&s.files.domain, "/core/protected/settings");
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client
        .get(&url)
        .bearer_auth(s.files.terminal_token("t2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.target, "/protected/settings");
    assert_eq!(echo.headers["x-ptl-client-id"], "t2");
    assert_eq!(echo.headers["x-ptl-client-name"], "Phone");
    assert!(!echo.headers.contains_key("authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_terminal_loses_access() {
    let s = setup("revoked");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let token = s.files.terminal_token("t1");
    let get = || client.get(s.url("/docs/")).bearer_auth(&token).send();
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    s.files.terminals(&[("t2", "Phone")]);
    let removed = Instant::now();
    let revoked = eventually(Duration::from_secs(5), || async {
        get().await.unwrap().status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(revoked, "t1 still has access 5 s after its removal");
    // docs/state.md: changes apply within 1 s (with slack for a loaded CI machine).
    assert!(
        removed.elapsed() < Duration::from_secs(2),
        "took {:?}",
        removed.elapsed()
    );
    // The other terminal keeps its access.
    let resp = client
        .get(s.url("/docs/"))
        .bearer_auth(s.files.terminal_token("t2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_paths_are_refused() {
    let s = setup("paths");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    for path in [
        "/share/../docs/",
        "/share/%2e%2e/docs/",
        "/share/%2E%2e/docs/",
        "/share/.%2e/docs/",
        "/share/./x",
        "/share/..%2fdocs/",
        "/share/a%2Fb",
        "/share/a%5cb",
        "/share/a%00b",
    ] {
        // reqwest would normalize dot segments; send the path as written.
        let status = raw_status(&s, path).await;
        assert_eq!(status, 400, "{path}");
    }
    // Encoded unreserved characters are matched as what they mean:
    // `/%73hare/` is `/share/`, and `/%64ocs/` is the private `/docs/`.
    let resp = client.get(s.url("/%73hare/x")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.target, "/share/x");
    let resp = client.get(s.url("/share%2Fx")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// Sends `GET <path>` over TLS with the path exactly as written (HTTP
/// clients normalize dot segments) and returns the status code.
async fn raw_status(s: &Setup, path: &str) -> u16 {
    let host = s.files.host("files");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let text = raw_exchange(s.proxy.https, &host, &s.files.ca_pem, &request)
        .await
        .unwrap();
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}
