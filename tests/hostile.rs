//! Hostile clients, end to end (DESIGN sections 3 and 6 to 8): path forms
//! that app servers read as a private path, forwarding headers and
//! terminal credentials in odd spellings, malformed requests on every
//! plain listener, and credentials in the log. Each test asserts the
//! answer and what reached the upstream.

mod common;

use std::net::SocketAddr;

use common::*;
use reqwest::StatusCode;

const APP: &str = r#"{
  "": {"access": "public"},
  "/admin": {"access": "private"},
  "/private/": {"access": "private"}
}"#;

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    app: Upstream,
    core: Upstream,
    internal: SocketAddr,
}

fn setup(test: &str, log_level: &str) -> Setup {
    let files = PortalFiles::new(test);
    let (app, core) = (Upstream::start("files"), Upstream::start("core"));
    files
        .app("files", &app_meta(APP))
        .terminals(&[("t1", "Laptop")]);
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra = format!(
        "core: {{ upstream: \"{}\" }}\nupstreams:\n  files: \"{}\"\ninternal: {{ listen: \"{internal}\" }}\n",
        core.addr, app.addr
    );
    let layout = Layout {
        log_level: log_level.into(),
        ..Layout::default()
    };
    let proxy = Proxy::start_with(&files, &layout, &extra);
    Setup {
        files,
        proxy,
        app,
        core,
        internal,
    }
}

impl Setup {
    /// What the app received: the request targets.
    fn app_targets(&self) -> Vec<String> {
        let got = self.app.received.lock().unwrap();
        got.iter().map(|(target, _, _)| target.clone()).collect()
    }

    /// Sends `GET <path>` to the app's host over TLS as written; returns
    /// the status.
    async fn raw_get(&self, path: &str, headers: &str) -> u16 {
        let host = self.files.host("files");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
        let text = raw_exchange(self.proxy.https, &host, &self.files.ca_pem, &request)
            .await
            .unwrap();
        status_of(&text)
    }
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

/// Sends `bytes` over plain TCP and returns the whole answer as text.
async fn plain_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    tcp_exchange(None, addr, bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_forms_never_reach_a_private_path() {
    let s = setup("path-forms", "");
    // Each form is one a common app server reads as `/admin` (or under
    // `/private/`): merged slashes (most servers), `;parameters` (Tomcat,
    // Jetty, Spring), `..;` (the same, as `..`).
    let refused = [
        ("//admin", 401),
        ("///admin/users", 401),
        ("/./admin", 400),
        ("/;/admin", 401),
        ("/;x=1/admin", 401),
        ("/%3b/admin", 401),
        ("/admin;jsessionid=1", 401),
        ("//private//x", 401),
        ("/public/..;/admin", 400),
        ("/public/..;x/admin", 400),
        ("/public/.;/admin", 400),
        ("/public/..%3b/admin", 400),
        ("/public/%2e%2e;/admin", 400),
        ("/public/%2e%2e%3B/admin", 400),
        ("/%61dmin", 401),
        ("/public/%0a/admin", 400),
    ];
    for (path, status) in refused {
        assert_eq!(s.raw_get(path, "").await, status, "{path}");
    }
    assert!(
        s.app_targets().is_empty(),
        "reached the app: {:?}",
        s.app_targets()
    );
    // A terminal gets through, with the path as matched.
    let token = s.files.terminal_token("t1");
    let auth = format!("Authorization: Bearer {token}\r\n");
    assert_eq!(s.raw_get("//admin//x", &auth).await, 200);
    assert_eq!(s.app_targets(), ["/admin/x"]);
    // Public paths in odd forms arrive in the canonical one.
    assert_eq!(s.raw_get("//public//x?a=1", "").await, 200);
    assert_eq!(s.app_targets().last().unwrap(), "/public/x?a=1");
    // The core, over HTTP/2 too: `..;` never reaches it.
    let client = client(&s.files.ca_pem, Protocol::Http2);
    for path in ["/core/public/..;/internal", "/core/public/..%3b/internal"] {
        let resp = client
            .get(s.proxy.url(&s.files.domain, path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let resp = client
        .get(s.proxy.url(&s.files.domain, "/core//public//x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.target, "/public/x");
    let core = s.core.received.lock().unwrap();
    assert_eq!(core.len(), 1, "{core:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_the_proxys_alone() {
    let s = setup("forwarding", "");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let resp = client(&s.files.ca_pem, protocol)
            .get(s.proxy.url(&s.files.host("files"), "/x"))
            .header("X_Forwarded_For", "7.7.7.7")
            .header("x-forwarded-for", "7.7.7.7")
            .header("X-Forwarded-Host", "evil.example")
            .header("x_forwarded_proto", "http")
            .header("X-Forwarded-Port", "1")
            .header("X-Forwarded-Prefix", "/evil")
            .header("Forwarded", "for=7.7.7.7;host=evil.example")
            .header("X-Real-IP", "7.7.7.7")
            .header("X_Real_Ip", "7.7.7.7")
            .header("X-Client-IP", "7.7.7.7")
            .header("True-Client-IP", "7.7.7.7")
            .header("CF-Connecting-IP", "7.7.7.7")
            .header("X-Original-URL", "/evil")
            .header("X_Rewrite_URL", "/evil")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let echo: Echo = resp.json().await.unwrap();
        let h = &echo.headers;
        assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{protocol:?}");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["x-forwarded-host"],
            format!("{}:{}", s.files.host("files"), s.proxy.https.port())
        );
        for (name, value) in h {
            assert!(
                !value.contains("7.7.7.7") && !value.contains("evil"),
                "{protocol:?}: {name}: {value} reached the app"
            );
        }
        for name in [
            "x_forwarded_for",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "forwarded",
            "x-real-ip",
            "x_real_ip",
            "x-client-ip",
            "true-client-ip",
            "cf-connecting-ip",
            "x-original-url",
            "x_rewrite_url",
        ] {
            assert!(
                !h.contains_key(name),
                "{protocol:?}: {name} reached the app"
            );
        }
    }
}

/// A compact JWS of these header and claims bytes, HMAC-SHA256-signed with
/// the terminal secret whatever the header says (`jsonwebtoken`'s signer).
fn signed_with_terminal_secret(header: &str, claims: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(TERMINAL_SECRET.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_credential_never_reaches_an_app() {
    let s = setup("credentials", "");
    // A valid one, and tokens signed with the secret that prove no
    // terminal: credentials all the same, never the app's.
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let tokens = [
        s.files.terminal_token("t1"),
        s.files.terminal_token("no-such-terminal"),
        signed_with_terminal_secret(hs256, r#"{"sub":"t1","exp":1}"#),
        signed_with_terminal_secret(hs256, r#"{"sub":["t1"]}"#),
        signed_with_terminal_secret(hs256, "not json"),
        signed_with_terminal_secret(r#"{"alg":"HS512"}"#, r#"{"sub":"t1"}"#),
        signed_with_terminal_secret(r#"{"alg":"HS256","crit":["x"]}"#, r#"{"sub":"t1"}"#),
    ];
    for token in &tokens {
        credential_spellings_never_reach_the_app(&s, token).await;
    }
    // An app's own bearer token (not signed with the terminal secret) is
    // the app's business.
    let resp = client(&s.files.ca_pem, Protocol::Http1)
        .get(s.proxy.url(&s.files.host("files"), "/x"))
        .bearer_auth("the-apps-own-api-token")
        .send()
        .await
        .unwrap();
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(
        echo.headers["authorization"],
        "Bearer the-apps-own-api-token"
    );
}

/// Over HTTP/1.1 and HTTP/2, `token` in every spelling of a cookie or an
/// `Authorization` header never reaches the app; the app's own
/// credentials and cookies beside it do.
async fn credential_spellings_never_reach_the_app(s: &Setup, token: &str) {
    let spellings: Vec<Vec<(&str, String)>> = vec![
        vec![("authorization", format!("Bearer {token}"))],
        vec![("authorization", format!("bearer\t{token} "))],
        vec![("authorization", format!("BEARER   {token}"))],
        vec![("authorization", format!("Token {token}"))],
        vec![("authorization", format!("Bearer={token}"))],
        vec![("authorization", format!("Custom a=1, t=\"{token}\""))],
        vec![
            ("authorization", "Basic dXNlcjpwYXNz".into()),
            ("authorization", format!("Bearer {token}")),
        ],
        vec![("cookie", format!("AUTHORIZATION={token}"))],
        vec![("cookie", format!("a=1, authorization={token}"))],
        vec![("cookie", format!("a=1; Authorization=\"{token}\"; b=2"))],
        vec![
            ("cookie", "a=1".into()),
            ("cookie", format!("authorization={token}")),
        ],
        vec![("cookie2", format!("authorization={token}"))],
    ];
    for protocol in [Protocol::Http1, Protocol::Http2] {
        for headers in &spellings {
            let mut request =
                client(&s.files.ca_pem, protocol).get(s.proxy.url(&s.files.host("files"), "/x"));
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{headers:?}");
            let echo: Echo = resp.json().await.unwrap();
            for (name, value) in &echo.headers {
                assert!(
                    !value.contains(token),
                    "{protocol:?} {headers:?}: the token reached the app in {name}"
                );
            }
            // The app's own credentials and cookies are kept.
            let all: Vec<&str> = headers.iter().map(|(_, v)| v.as_str()).collect();
            if all.contains(&"Basic dXNlcjpwYXNz") {
                assert_eq!(echo.headers["authorization"], "Basic dXNlcjpwYXNz");
            }
            if all.iter().any(|v| v.starts_with("a=1")) {
                assert!(echo.headers["cookie"].contains("a=1"), "{headers:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_listeners_answer_malformed_requests_and_keep_credentials_out_of_the_log() {
    // Debug level: what Pingora prints there must not carry credentials.
    let s = setup("plain-listeners", "debug");
    let token = s.files.terminal_token("t1");
    let portal_host = s.files.host("files");

    // Port 80: only Portal hosts are redirected.
    let answer = plain_exchange(
        s.proxy.http,
        format!("GET /x HTTP/1.1\r\nHost: {portal_host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&answer), 308, "{answer}");
    for host in ["evil.com", "evil.com:80", "a.b.portal.test", "127.0.0.1"] {
        let answer = plain_exchange(
            s.proxy.http,
            format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status_of(&answer), 421, "{host}: {answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("location:"),
            "{answer}"
        );
    }

    // Malformed heads, with the terminal cookie: 400, never a silent close.
    let malformed = [
        format!("GET /x HTTP/1.1\r\nHost: {portal_host}\r\nCookie: authorization={token}\r\nBad Header\r\n\r\n"),
        format!("GET /\x01x HTTP/1.1\r\nHost: {portal_host}\r\nCookie: authorization={token}\r\nConnection: close\r\n\r\n"),
        format!("GET /x HTTP/1.1\r\nHost: {portal_host}\r\nCookie: authorization={token}\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ];
    for request in &malformed {
        for addr in [s.proxy.http, s.internal] {
            let answer = plain_exchange(addr, request.as_bytes()).await;
            assert_eq!(status_of(&answer), 400, "{addr} {request:?}: {answer:?}");
        }
        let answer = raw_exchange(s.proxy.https, &portal_host, &s.files.ca_pem, request)
            .await
            .unwrap();
        assert_eq!(status_of(&answer), 400, "https {request:?}: {answer:?}");
    }
    // A call to a peer with both framings is refused before anything is
    // sent (the source is no app's either, but framing comes first).
    let answer = plain_exchange(
        s.internal,
        b"POST /internal/call_peer/abcdef/x HTTP/1.1\r\nHost: i\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(s.app_targets().is_empty());

    let log = s.proxy.log_text();
    assert!(!log.is_empty());
    assert!(!log.contains(&token), "the token reached the log:\n{log}");
    let signature_part = token.rsplit('.').next().unwrap();
    assert!(
        !log.contains(signature_part),
        "part of the token reached the log"
    );
}
