//! Hostile clients, end to end (SECURITY.md; docs/access.md): path forms
//! that app servers read as a private path, forwarding headers and
//! terminal credentials in odd spellings, malformed requests on every
//! plain listener, and credentials in the log. Each test asserts the
//! answer and what reached the upstream.

use std::net::SocketAddr;

use crate::common::*;
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
    setup_for(test, log_level, None)
}

/// [`setup`], with the app served by `app_server` instead of the echo
/// upstream (which still records nothing then).
fn setup_for(test: &str, log_level: &str, app_server: Option<SocketAddr>) -> Setup {
    let files = PortalFiles::new(test);
    let (app, core) = (Upstream::start("files"), Upstream::start("core"));
    files
        .app("files", &app_meta(APP))
        .terminals(&[("t1", "Laptop")]);
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Hundreds of variants from one address, many of them bad tokens:
    // the rate limits (ratelimits.rs) would answer them all with 429.
    let extra = format!(
        "core: {{ upstream: \"{}\" }}\nupstreams:\n  files: \"{}\"\ninternal: {{ listen: \"{internal}\" }}\n\
         limits: {{ anonymous_requests_per_second: 0, failed_authentications_per_minute: 0 }}\n",
        core.addr,
        app_server.unwrap_or(app.addr)
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
        status_of(&self.raw_request("GET", path, headers).await)
    }

    /// Sends `<method> <target>` to the app's host over TLS as written;
    /// returns the whole answer.
    async fn raw_request(&self, method: &str, target: &str, headers: &str) -> String {
        let host = self.files.host("files");
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
        );
        raw_exchange(self.proxy.https, &host, &self.files.ca_pem, &request)
            .await
            .unwrap()
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
    // The same forms as HTTP/2 `:path`s, on one connection (a stream
    // refused leaves it usable): each one sent, each one refused alike.
    let host = s.files.host("files");
    let mut h2 = h2_connect(s.proxy.https, &host, &s.files.ca_pem).await;
    let authority = format!("{host}:{}", s.proxy.https.port());
    for (path, status) in refused {
        let (got, body) = h2_exchange(&mut h2, "GET", &authority, path).await;
        assert_eq!(got, status, "h2 {path}: {body}");
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

/// Request-targets that are not a path starting with `/`: app servers
/// resolve them against `/` (`admin` is `/admin`), so each is one way to
/// a private path. `{host}` stands for the app's host.
const NOT_PATHS: &[&str] = &[
    "admin",
    "admin/x",
    "./admin",
    "../admin",
    "x/../admin",
    ";/admin",
    ";x/admin",
    "%2fadmin",
    "%2Fadmin",
    "%5cadmin",
    "\\admin",
    "foo:/admin",
    "foo://{host}/admin",
    "ftp://{host}/admin",
    "https:/admin",
    "https://evil.example/admin",
    "https://x@{host}/admin",
    "?admin",
    "{host}:443",
    "*",
    "private/x",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_targets_that_are_not_paths_are_refused_on_every_listener() {
    let s = setup("target-forms", "");
    let host = s.files.host("files");
    let token = s.files.terminal_token("t1");
    let as_terminal = format!("Authorization: Bearer {token}\r\n");
    for target in NOT_PATHS {
        let target = target.replace("{host}", &host);
        // HTTPS over HTTP/1.1, anonymous and as the owner's device, with
        // the methods app servers route alike.
        for (method, headers) in [
            ("GET", ""),
            ("OPTIONS", ""),
            ("POST", ""),
            ("GET", &as_terminal[..]),
        ] {
            if (method, target.as_str()) == ("OPTIONS", "*") {
                continue; // answered: below
            }
            let answer = s
                .raw_request(method, &target, &format!("{headers}Content-Length: 0\r\n"))
                .await;
            assert_eq!(status_of(&answer), 400, "{method} {target}: {answer}");
        }
        // Port 80 and the internal listener read targets the same way.
        for addr in [s.proxy.http, s.internal] {
            let answer = plain_exchange(
                addr,
                format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
            assert_eq!(status_of(&answer), 400, "{addr} {target}: {answer}");
        }
    }
    // HTTP/2: the same forms as `:path`, one connection for them all (a
    // stream refused with 400 leaves it usable).
    let mut h2 = h2_connect(s.proxy.https, &host, &s.files.ca_pem).await;
    let authority = format!("{host}:{}", s.proxy.https.port());
    // The ones the h2 crate cannot send as `:path` go as frames written by
    // hand. A `:path` that does not start with `/` is a malformed request
    // to the HTTP/2 layer, which resets the stream (PROTOCOL_ERROR) before
    // the proxy sees it: as much a refusal as the 400.
    let mut by_hand = Vec::new();
    for target in NOT_PATHS {
        let target = target.replace("{host}", &host);
        if target.parse::<http::uri::PathAndQuery>().is_ok() {
            let (status, body) = h2_exchange(&mut h2, "GET", &authority, &target).await;
            assert_eq!(status, 400, "h2 {target}: {body}");
        } else {
            let answer =
                h2_raw_answer(s.proxy.https, &host, &s.files.ca_pem, &authority, &target).await;
            by_hand.push((target, answer));
        }
    }
    // Every form was sent one way or the other (all but `?admin` and `*`
    // by hand), and each was refused.
    assert_eq!(by_hand.len(), NOT_PATHS.len() - 2, "{by_hand:?}");
    for (target, answer) in &by_hand {
        assert!(
            matches!(answer, Ok(H2Answer::Status(400) | H2Answer::Reset(1))),
            "h2 by hand {target}: {answer:?}"
        );
    }
    assert!(
        s.app_targets().is_empty(),
        "reached the app: {:?}",
        s.app_targets()
    );
    // The hand-written client reads statuses right: a private path is
    // 401 (a Huffman literal), a dot segment 400 (an indexed field).
    for (path, expected) in [("/admin", 401), ("/public/..;/x", 400)] {
        let answer = h2_raw_answer(s.proxy.https, &host, &s.files.ca_pem, &authority, path).await;
        assert_eq!(answer, Ok(H2Answer::Status(expected)), "h2 by hand {path}");
    }

    assert!(s.core.received.lock().unwrap().is_empty());

    // A relative target over the head limit: 431, as any other.
    let long = format!("admin{}", "a".repeat(70_000));
    let answer = s.raw_request("GET", &long, "").await;
    assert_eq!(
        status_of(&answer),
        431,
        "{}",
        &answer[..answer.len().min(200)]
    );

    // `OPTIONS *`: answered by the proxy on every listener, never forwarded.
    let answer = s.raw_request("OPTIONS", "*", "").await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let (status, _) = h2_exchange(&mut h2, "OPTIONS", &authority, "*").await;
    assert_eq!(status, 200);
    for addr in [s.proxy.http, s.internal] {
        let answer = plain_exchange(
            addr,
            format!("OPTIONS * HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status_of(&answer), 200, "{addr}: {answer}");
    }
    assert!(s.app_targets().is_empty());
    assert!(s.core.received.lock().unwrap().is_empty());

    // Absolute-form for the app's own host: decided on its path, which
    // alone is forwarded.
    let own = |path: &str| format!("https://{host}{path}");
    assert_eq!(
        status_of(&s.raw_request("GET", &own("/admin"), "").await),
        401
    );
    assert_eq!(status_of(&s.raw_request("GET", &own(""), "").await), 200);
    assert_eq!(s.app_targets(), ["/"]);
    let answer = s.raw_request("GET", &own("//public//x?a=1"), "").await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(s.app_targets().last().unwrap(), "/public/x?a=1");
    let answer = s.raw_request("GET", &own("/admin/x"), &as_terminal).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(s.app_targets().last().unwrap(), "/admin/x");
    // Port 80 redirects to the path, never to the target as sent.
    let answer = plain_exchange(
        s.proxy.http,
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            own("/x?y")
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status_of(&answer), 308, "{answer}");
    assert!(
        answer.contains(&format!("https://{host}:{}/x?y\r\n", s.proxy.https.port())),
        "{answer}"
    );
}

/// A real static file server (Python's `http.server`) behind the proxy,
/// serving a private file: no request-target form gets it to an anonymous
/// client, though the server itself serves `admin` for each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_file_server_never_serves_a_private_file_by_another_target_form() {
    let root = std::env::temp_dir().join(format!("pp-it-{}-static-root", std::process::id()));
    std::fs::create_dir_all(root.join("private")).unwrap();
    std::fs::write(root.join("admin"), "PRIVATE-ADMIN\n").unwrap();
    std::fs::write(root.join("private/x"), "PRIVATE-X\n").unwrap();
    std::fs::write(root.join("index.html"), "public\n").unwrap();
    let port = free_port();
    let server = FileServer(
        std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(&root)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs http.server"),
    );
    let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(server_addr).await.is_ok()
        })
        .await,
        "http.server did not start"
    );
    // The server reads each form as the private file (sent to it directly).
    for target in ["admin", "./admin", "x/../admin", "%2fadmin"] {
        let answer = plain_exchange(
            server_addr,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(
            answer.contains("PRIVATE-ADMIN"),
            "http.server reads {target} as /admin: {answer}"
        );
    }
    let s = setup_for("file-server", "", Some(server_addr));
    let host = s.files.host("files");
    for target in NOT_PATHS {
        let target = target.replace("{host}", &host);
        let answer = s.raw_request("GET", &target, "").await;
        assert!(!answer.contains("PRIVATE"), "{target}: {answer}");
        assert_eq!(status_of(&answer), 400, "{target}: {answer}");
    }
    assert_eq!(s.raw_get("/admin", "").await, 401);
    // The owner's device reads it: the server does serve the file.
    let token = s.files.terminal_token("t1");
    let answer = s
        .raw_request(
            "GET",
            "/admin",
            &format!("Authorization: Bearer {token}\r\n"),
        )
        .await;
    assert!(answer.contains("PRIVATE-ADMIN"), "{answer}");
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// Kills the file server when the test ends, passed or not.
struct FileServer(std::process::Child);

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
            .header("X-Host", "evil.example")
            .header("X_Original_Host", "evil.example")
            .header("X-Original-URI", "/evil")
            .header("X-Url-Scheme", "evil")
            .header("Front-End-Https", "evil")
            .header("front_end_https", "evil")
            .header("X-HTTP-Host-Override", "evil.example")
            .header("X-Envoy-Original-Path", "/evil")
            .header("X-Scheme", "evil")
            .header("X-Script-Name", "/evil")
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
            "x-host",
            "x_original_host",
            "x-original-uri",
            "x-url-scheme",
            "front-end-https",
            "front_end_https",
            "x-http-host-override",
            "x-envoy-original-path",
            "x-scheme",
            "x-script-name",
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
        credential_bytes_never_reach_the_app(&s, token).await;
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

/// Over HTTP/1.1 and HTTP/2, `token` respelled as JWT libraries still
/// accept it (padding, the standard alphabet, bytes skipped inside its
/// signature, trailing bits) or with bytes that are not UTF-8 around it
/// in an `Authorization` header never reaches the app: no header the app
/// gets holds its signed part.
async fn credential_bytes_never_reach_the_app(s: &Setup, token: &str) {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (message, signature) = token.rsplit_once('.').unwrap();
    let last = ALPHABET.find(&signature[42..]).unwrap();
    let spellings: Vec<Vec<u8>> = vec![
        format!("Bearer {token}=").into_bytes(),
        format!("Bearer {token}==").into_bytes(),
        format!(
            "Bearer {message}.{}",
            signature.replace('-', "+").replace('_', "/")
        )
        .into_bytes(),
        format!("Bearer {message}.{} {}", &signature[..21], &signature[21..]).into_bytes(),
        format!(
            "Bearer {message}.{}\"{}",
            &signature[..10],
            &signature[10..]
        )
        .into_bytes(),
        format!(
            "Bearer {message}.{}{}",
            &signature[..42],
            &ALPHABET[last | 1..(last | 1) + 1]
        )
        .into_bytes(),
        [b"\xffBearer ", token.as_bytes()].concat(),
        [b"Bearer ", token.as_bytes(), b" \xfe\x80"].concat(),
        [b"Bearer\xa0", token.as_bytes()].concat(),
        [
            b"Bearer ",
            message.as_bytes(),
            b".",
            &signature.as_bytes()[..5],
            b"\xe9",
            &signature.as_bytes()[5..],
        ]
        .concat(),
    ];
    for protocol in [Protocol::Http1, Protocol::Http2] {
        for value in &spellings {
            let resp = client(&s.files.ca_pem, protocol)
                .get(s.proxy.url(&s.files.host("files"), "/x"))
                .header(
                    "authorization",
                    http::HeaderValue::from_bytes(value).unwrap(),
                )
                .send()
                .await
                .unwrap();
            let shown = String::from_utf8_lossy(value);
            assert_eq!(resp.status(), StatusCode::OK, "{shown}");
            let echo: Echo = resp.json().await.unwrap();
            for (name, got) in &echo.headers {
                assert!(
                    !got.contains(message),
                    "{protocol:?} {shown:?}: the token reached the app in {name}"
                );
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
