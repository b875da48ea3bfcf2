//! The identity assertion (docs/access.md, "Verifying the assertion"): the
//! Python and Node apps of the docs, run exactly as written behind the real
//! proxy, know terminals, peers and anonymous callers by it, and refuse
//! what the proxy did not make (forged, altered, for another app, from a
//! forged key set, expired); the header as apps and the core receive it.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::Signer;
use portal_core::assertion::Assertions;
use portal_core::caller::Caller;
use portal_core::identity::Identity;
use portal_core::signature::{signed_headers, Outgoing};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::python::{node_modules, python_package};
use crate::common::*;

const PATHS: &str = r#"{
  "": {"access": "public"},
  "/private/": {"access": "private"},
  "/peer/": {"access": "peer"}
}"#;

/// The code block of docs/access.md that the marker line names `file`.
fn doc_example(file: &str) -> String {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/access.md")).unwrap();
    let marker = format!("<!-- tests/proxy/assertion.rs runs this block as {file} -->\n");
    let after = docs
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/access.md has no block for {file}"))
        .1;
    let body = after.split_once('\n').unwrap().1;
    body.split_once("\n```\n").unwrap().0.to_string() + "\n"
}

/// One of the docs' example apps, running on a loopback port; killed on
/// drop.
struct ExampleApp {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ExampleApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, Debug)]
enum Language {
    Python,
    Node,
}

impl ExampleApp {
    /// Starts the example of `language` as app `app` of the Portal
    /// `portal_id`, its keys fetched from `keys_url`.
    fn start(
        language: Language,
        dir: &std::path::Path,
        app: &str,
        portal_id: &str,
        keys_url: &str,
    ) -> ExampleApp {
        let (file, mut command) = match language {
            Language::Python => {
                python_package();
                let mut c = Command::new("python3");
                c.env("PYTHONDONTWRITEBYTECODE", "1");
                ("app.py", c)
            }
            Language::Node => {
                let mut c = Command::new("node");
                c.env("NODE_PATH", node_modules());
                ("app.cjs", c)
            }
        };
        let path = dir.join(format!("{app}-{file}"));
        std::fs::write(&path, doc_example(file)).unwrap();
        let mut child = command
            .arg(&path)
            .env("PORTAL_ID", portal_id)
            .env("APP_NAME", app)
            .env("ASSERTION_KEYS_URL", keys_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(format!("{app}-{file}.log"))).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(port) = line.trim().strip_prefix("listening on ") else {
            let _ = child.wait();
            let err =
                std::fs::read_to_string(dir.join(format!("{app}-{file}.log"))).unwrap_or_default();
            panic!("the {language:?} example did not start: {line:?}\n{err}");
        };
        ExampleApp {
            addr: SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())),
            child,
        }
    }

    /// Sends `token` (or none) straight to the app, as another container
    /// on its network could: its status and JSON answer.
    async fn direct(&self, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().get(format!("http://{}/", self.addr));
        if let Some(token) = token {
            request = request.header("X-Ptl-Assertion", token);
        }
        let resp = request.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    /// Sends `token` straight to the app and requires a 401 whose error
    /// (the library's message or code, lower-cased) names one of
    /// `reasons`: refused for that reason, not another. `case` names the
    /// attempt in a failure.
    async fn refuses(&self, token: &str, reasons: &[&str], case: &str) {
        let (status, body) = self.direct(Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        let error = body["error"].as_str().unwrap().to_lowercase();
        assert!(
            reasons.iter().any(|r| error.contains(r)),
            "{case}: refused for another reason: {body}"
        );
    }
}

/// A server answering every request with `body` (a key set), on loopback.
fn serve_fixed(body: String) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn terminal() -> Caller {
    Caller::Terminal {
        id: "t1".into(),
        name: "Phone".into(),
    }
}

/// The claims of `token`, unverified (the tests that read them verify the
/// token elsewhere).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    peer: Identity,
    echo: Upstream,
    core: Upstream,
    apps: Vec<(Language, &'static str, ExampleApp)>,
}

/// A Portal with the Python example as `pyapp`, the Node one as `nodeapp`
/// (each fetching its keys from the internal listener), an echo app
/// `echo`, a terminal `t1` and a peer `Friend`.
fn setup(test: &str) -> Setup {
    let files = PortalFiles::new(test);
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let keys_url = format!("http://{internal}/internal/assertion-keys");
    let peer = portal_proxy::identity::generate();
    let apps: Vec<_> = [(Language::Python, "pyapp"), (Language::Node, "nodeapp")]
        .into_iter()
        .map(|(language, name)| {
            let app = ExampleApp::start(language, &files.dir, name, &files.identity.id, &keys_url);
            (language, name, app)
        })
        .collect();
    let echo = Upstream::start("echo");
    let core = Upstream::start("core");
    for name in ["pyapp", "nodeapp", "echo"] {
        files.app(name, &app_meta(PATHS));
    }
    files.terminals(&[("t1", "Phone")]).state_file(
        "peers.json",
        &json!([{"id": peer.id, "name": "Friend", "public_key": peer.public_key_pem}]).to_string(),
    );
    let mut upstreams = format!("  echo: \"{}\"\n", echo.addr);
    for (_, name, app) in &apps {
        upstreams += &format!("  {name}: \"{}\"\n", app.addr);
    }
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"{}\" }}\nupstreams:\n{upstreams}internal: {{ listen: \"{internal}\" }}\npeering: {{ transport: ca }}\n",
            core.addr
        ),
    );
    Setup {
        files,
        proxy,
        peer,
        echo,
        core,
        apps,
    }
}

impl Setup {
    fn url(&self, app: &str, path: &str) -> String {
        self.proxy.url(&self.files.host(app), path)
    }

    /// A GET of `path` on `app` signed by the peer.
    fn signed(&self, client: &reqwest::Client, app: &str, path: &str) -> reqwest::RequestBuilder {
        let authority = format!("{}:{}", self.files.host(app), self.proxy.https.port());
        let request = Outgoing {
            method: "GET",
            authority: &authority,
            path_and_query: path,
            body: None,
        };
        let headers = signed_headers(
            &self.peer.signing_key,
            &self.peer.id,
            &request,
            now() as i64,
            60,
            &portal_proxy::clock::fresh_nonce(),
        )
        .unwrap();
        let mut builder = client.get(format!("https://{authority}{path}"));
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder
    }

    /// The assertion the echo app received for a request.
    async fn echoed(&self, request: reqwest::RequestBuilder) -> String {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let echo: Echo = resp.json().await.unwrap();
        assert_eq!(echo.upstream, self.echo.name);
        echo.headers["x-ptl-assertion"].clone()
    }
}

async fn answer(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_apps_know_each_caller_by_the_assertion() {
    let s = setup("assert-callers");
    let token = s.files.terminal_token("t1");
    for (i, (language, app, _)) in s.apps.iter().enumerate() {
        let protocol = [Protocol::Http1, Protocol::Http2][i % 2];
        let client = client(&s.files.ca_pem, protocol);
        let case = format!("{language:?} over {protocol:?}");
        let anonymous = answer(client.get(s.url(app, "/")).send().await.unwrap()).await;
        assert_eq!(
            anonymous,
            (
                StatusCode::OK,
                json!({"type": "anonymous", "id": null, "name": null})
            ),
            "{case}"
        );
        let by_cookie = client
            .get(s.url(app, "/private/x"))
            .header("cookie", format!("theme=dark; authorization={token}"))
            .send()
            .await
            .unwrap();
        let want = json!({"type": "terminal", "id": "t1", "name": "Phone"});
        assert_eq!(
            answer(by_cookie).await,
            (StatusCode::OK, want.clone()),
            "{case}"
        );
        let by_bearer = client
            .get(s.url(app, "/private/x"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer(by_bearer).await, (StatusCode::OK, want), "{case}");
        let by_peer = s.signed(&client, app, "/peer/x").send().await.unwrap();
        assert_eq!(
            answer(by_peer).await,
            (
                StatusCode::OK,
                json!({"type": "peer", "id": s.peer.id, "name": "Friend"})
            ),
            "{case}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_assertion_never_reaches_an_app_or_the_core() {
    let s = setup("assert-spoof");
    let http1 = client(&s.files.ca_pem, Protocol::Http1);
    // A genuine assertion of the terminal, for the echo app.
    let stolen = s
        .echoed(
            http1
                .get(s.url("echo", "/private/x"))
                .bearer_auth(s.files.terminal_token("t1")),
        )
        .await;
    assert_eq!(claims(&stolen)["sub"], "t1");
    // An anonymous client sends it in every spelling: the echo app gets
    // the proxy's anonymous assertion, and no copy.
    let spellings = [
        vec![("X-Ptl-Assertion", stolen.as_str())],
        vec![("x_ptl_assertion", stolen.as_str())],
        vec![
            ("X-PTL-ASSERTION", stolen.as_str()),
            ("X-Ptl-Assertion", stolen.as_str()),
        ],
    ];
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let client = client(&s.files.ca_pem, protocol);
        for headers in &spellings {
            for (app, path, audience) in [
                ("echo", "/".to_string(), "echo"),
                ("", "/core/public/x".to_string(), "core"),
            ] {
                let mut request = client.get(s.url(app, &path));
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let resp = request.send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                let echo: Echo = resp.json().await.unwrap();
                let case = format!("{protocol:?} {headers:?} to {app:?}");
                let upstream = if audience == "core" { &s.core } else { &s.echo };
                assert_eq!(echo.upstream, upstream.name, "{case}");
                let got = &echo.headers["x-ptl-assertion"];
                assert!(!got.contains(','), "{case}: two copies: {got}");
                assert_ne!(got, &stolen, "{case}");
                let c = claims(got);
                assert_eq!(
                    (c["ptl_type"].as_str(), c["aud"].as_str()),
                    (Some("anonymous"), Some(audience)),
                    "{case}"
                );
                assert!(!echo.headers.contains_key("x_ptl_assertion"), "{case}");
            }
        }
    }
    // The docs' apps, sent it through the proxy, see the anonymous caller;
    // sent it straight, refuse it: it was made for another app.
    for (language, app, example) in &s.apps {
        let resp = http1
            .get(s.url(app, "/"))
            .header("X-Ptl-Assertion", &stolen)
            .send()
            .await
            .unwrap();
        assert_eq!(answer(resp).await.1["type"], "anonymous", "{language:?}");
        let reasons = ["audience", "err_jwt_claim_validation_failed"];
        let case = format!("{language:?}, another app's token");
        example.refuses(&stolen, &reasons, &case).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_apps_refuse_forged_altered_and_expired_assertions() {
    let s = setup("assert-forged");
    let ours = Assertions::new(&s.files.identity, 60);
    let stranger = Assertions::new(&portal_proxy::identity::generate(), 60);
    let kid = ours.key().kid.clone();
    let now = now();
    for (language, app, example) in &s.apps {
        let sign = |a: &Assertions, at: u64| {
            a.sign(app, &terminal(), None, at)
                .to_str()
                .unwrap()
                .to_string()
        };
        // What the proxy makes now passes (so each refusal below is for
        // what was changed).
        let (status, body) = example.direct(Some(&sign(&ours, now))).await;
        assert_eq!(
            (status, body["id"].as_str()),
            (StatusCode::OK, Some("t1")),
            "{language:?}: {body}"
        );
        let genuine = sign(&ours, now);
        let parts: Vec<&str> = genuine.split('.').collect();
        let header_of = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let forged_claims = URL_SAFE_NO_PAD.encode(
            json!({"iss": s.files.identity.id, "aud": app, "sub": "owner", "ptl_type": "terminal",
                   "iat": now, "exp": now + 60})
            .to_string(),
        );
        let stranger_token = sign(&stranger, now);
        let stranger_parts: Vec<&str> = stranger_token.split('.').collect();
        let hs256 = {
            use ring::hmac;
            let key = hmac::Key::new(hmac::HMAC_SHA256, &ours.key().public_key());
            let input = format!(
                "{}.{forged_claims}",
                header_of(json!({"alg": "HS256", "kid": kid}))
            );
            let tag = hmac::sign(&key, input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
        };
        let cases: Vec<(&str, String, &[&str])> = vec![
            (
                "no assertion",
                String::new(),
                &[
                    "not enough segments",
                    "invalid token or protected header formatting",
                ],
            ),
            (
                "expired",
                sign(&ours, now - 120),
                &["expired", "err_jwt_expired"],
            ),
            (
                "another Portal's",
                stranger_token.clone(),
                &["not signed by this portal", "err_jwks_no_matching_key"],
            ),
            (
                "another Portal's signature under our kid",
                format!("{}.{}.{}", parts[0], stranger_parts[1], stranger_parts[2]),
                &[
                    "signature verification failed",
                    "err_jws_signature_verification_failed",
                ],
            ),
            (
                "claims altered",
                format!("{}.{forged_claims}.{}", parts[0], parts[2]),
                &[
                    "signature verification failed",
                    "err_jws_signature_verification_failed",
                ],
            ),
            (
                "alg none",
                format!(
                    "{}.{forged_claims}.",
                    header_of(json!({"alg": "none", "kid": kid}))
                ),
                &[
                    "the specified alg value is not allowed",
                    "err_jose_alg_not_allowed",
                ],
            ),
            (
                "HS256 keyed with the public key",
                hs256,
                &[
                    "the specified alg value is not allowed",
                    "err_jose_alg_not_allowed",
                    "err_jwks_no_matching_key",
                ],
            ),
        ];
        for (case, token, reasons) in cases {
            let case = format!("{language:?} {case}");
            example.refuses(&token, reasons, &case).await;
        }
    }
}

/// A key set as an attacker on the apps' network could serve it: a key
/// of its own, said to be certified by `claimed`'s identity key, the
/// certificate made by `certifier`; and a token it signs for the terminal
/// `t1` of `portal`'s app `app`.
fn key_set_of(
    portal: &Identity,
    claimed: &Identity,
    certifier: &Identity,
    app: &str,
) -> (String, String) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let certificate = certifier
        .signing_key
        .sign(format!("ptl-assertion-key-v1\n{x}").as_bytes());
    let set = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "forged",
        "alg": "EdDSA", "use": "sig",
        "ptl_portal_key": URL_SAFE_NO_PAD.encode(claimed.signing_key.verifying_key().to_bytes()),
        "ptl_certificate": URL_SAFE_NO_PAD.encode(certificate.to_bytes())}]});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("forged".into());
    let now = now();
    let token = jsonwebtoken::encode(
        &header,
        &json!({"iss": portal.id, "aud": app, "sub": "t1", "ptl_type": "terminal",
                "ptl_name": "Phone", "iat": now, "exp": now + 60}),
        &jsonwebtoken::EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes()),
    )
    .unwrap();
    (set.to_string(), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_apps_take_no_key_their_portal_did_not_certify() {
    let files = PortalFiles::new("assert-keyset");
    let portal = &files.identity;
    let stranger = portal_proxy::identity::generate();
    // A certificate forged: the set names this Portal's identity key, the
    // stranger signed it. Another Portal's: named and signed by the
    // stranger. The control: the same key certified by this Portal's key
    // passes, so the two refusals are for the certificate and the ID.
    let forged_cert = key_set_of(portal, portal, &stranger, "app");
    let wrong_portal = key_set_of(portal, &stranger, &stranger, "app");
    let certified = key_set_of(portal, portal, portal, "app");
    for language in [Language::Python, Language::Node] {
        for (case, (set, token), accepted) in [
            ("certified by this Portal", &certified, true),
            ("certificate forged", &forged_cert, false),
            ("another Portal's key set", &wrong_portal, false),
        ] {
            let keys = serve_fixed(set.clone());
            let app = ExampleApp::start(
                language,
                &files.dir,
                "app",
                &portal.id,
                &format!("http://{keys}/internal/assertion-keys"),
            );
            let case = format!("{language:?} {case}");
            if accepted {
                let (status, body) = app.direct(Some(token)).await;
                assert_eq!(status, StatusCode::OK, "{case}: {body}");
            } else {
                let reasons = ["not signed by this portal", "err_jwks_no_matching_key"];
                app.refuses(token, &reasons, &case).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assertion_is_reused_then_renewed_and_the_key_set_is_served() {
    let files = PortalFiles::new("assert-cache");
    let echo = Upstream::start("echo");
    files.app("echo", &app_meta(PATHS));
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams:\n  echo: \"{}\"\ninternal: {{ listen: \"{internal}\" }}\n\
             metrics: {{ listen: \"{metrics}\" }}\nassertion: {{ ttl_seconds: 3 }}\n",
            echo.addr
        ),
    );
    let signed = || async {
        series_value(
            &metrics_text(metrics).await,
            "portal_proxy_assertions_signed_total",
        )
    };
    assert_eq!(signed().await, Some(0.0), "exported from 0");
    let client = client(&files.ca_pem, Protocol::Http2);
    let get = || async {
        let resp = client
            .get(proxy.url(&files.host("echo"), "/"))
            .send()
            .await
            .unwrap();
        let echo: Echo = resp.json().await.unwrap();
        echo.headers["x-ptl-assertion"].clone()
    };
    let first = get().await;
    let c = claims(&first);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 3);
    assert_eq!(
        get().await,
        first,
        "reused while two thirds of its life are left"
    );
    assert_eq!(signed().await, Some(1.0), "two requests, one signature");
    // Renewed once a third of it is left: within 3 s, never expired when
    // handed out.
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let renewed = loop {
        let token = get().await;
        let exp = claims(&token)["exp"].as_u64().unwrap();
        assert!(exp > now(), "an expired assertion was handed out");
        if token != first {
            break token;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not renewed within 4 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(claims(&renewed)["iat"].as_u64() >= Some(c["iat"].as_u64().unwrap() + 2));
    assert_eq!(signed().await, Some(2.0), "many requests, one renewal");
    // The key set: the key that signed them, certified by the identity key.
    let resp = reqwest::get(format!("http://{internal}/internal/assertion-keys"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/jwk-set+json");
    let set: Value = resp.json().await.unwrap();
    let jwk = &set["keys"][0];
    let x = jwk["x"].as_str().unwrap();
    let key = jsonwebtoken::DecodingKey::from_ed_components(x).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["echo"]);
    validation.set_issuer(&[&files.identity.id]);
    jsonwebtoken::decode::<Value>(&renewed, &key, &validation)
        .expect("verifies with the published key");
    assert_eq!(jwk["ptl_portal_id"], files.identity.id);
    let post = reqwest::Client::new()
        .post(format!("http://{internal}/internal/assertion-keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    // The first token, replayed to the docs' apps once its `exp` has
    // passed, is refused as expired; the renewed one still passes.
    let keys_url = format!("http://{internal}/internal/assertion-keys");
    let apps = [Language::Python, Language::Node].map(|l| {
        (
            l,
            ExampleApp::start(l, &files.dir, "echo", &files.identity.id, &keys_url),
        )
    });
    let exp = c["exp"].as_u64().unwrap();
    while now() < exp + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (language, app) in &apps {
        let case = format!("{language:?}, replayed after its exp");
        app.refuses(&first, &["expired", "err_jwt_expired"], &case)
            .await;
    }
    let fresh = get().await;
    for (language, app) in &apps {
        let (status, body) = app.direct(Some(&fresh)).await;
        assert_eq!(
            (status, &body["type"]),
            (StatusCode::OK, &json!("anonymous")),
            "{language:?}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_header_name_or_none_at_all() {
    let files = PortalFiles::new("assert-config");
    let echo = Upstream::start("echo");
    // `templated` sets a header of the assertion's name itself; `plain`
    // sets none, so that only the assertion's rule removes a client's copy.
    files
        .app(
            "templated",
            &app_meta(
                r#"{"": {"access": "public", "headers": {"X-Portal-Assertion": "{{ auth.client_type }}"}}}"#,
            ),
        )
        .app("plain", &app_meta(r#"{"": {"access": "public"}}"#));
    let base = format!(
        "core: {{ upstream: \"{0}\" }}\nupstreams:\n  templated: \"{0}\"\n  plain: \"{0}\"\n",
        echo.addr
    );
    for (config, header) in [
        (
            "assertion: { header: X_Portal_Assertion }\n",
            Some("x-portal-assertion"),
        ),
        ("assertion: { enabled: false }\n", None),
    ] {
        let proxy = Proxy::start(&files, &format!("{base}{config}"));
        let client = client(&files.ca_pem, Protocol::Http1);
        for (app, path) in [("templated", "/"), ("plain", "/"), ("", "/core/public/x")] {
            let resp = client
                .get(proxy.url(&files.host(app), path))
                .header("X-Portal-Assertion", "forged")
                .header("X_Portal_Assertion", "forged")
                .header("X-Ptl-Assertion", "forged")
                .send()
                .await
                .unwrap();
            let echo: Echo = resp.json().await.unwrap();
            let h = &echo.headers;
            let case = format!("{config} to {app:?}");
            assert!(!h.contains_key("x-ptl-assertion"), "{case}: {h:?}");
            match (header, app) {
                // The proxy's token, not the client's (in any spelling)
                // nor the template's.
                (Some(name), _) => {
                    assert!(!h.contains_key("x_portal_assertion"), "{case}: {h:?}");
                    assert_eq!(claims(&h[name])["ptl_type"], "anonymous", "{case}")
                }
                // Off: no assertion; the template's value is the app's.
                (None, "templated") => {
                    assert_eq!(h["x-portal-assertion"], "anonymous", "{case}")
                }
                (None, _) => {}
            }
        }
    }
}

/// `-t` names a bad `assertion:` key.
#[test]
fn the_config_check_names_a_bad_assertion_key() {
    let files = PortalFiles::new("assert-check");
    std::fs::write(
        files.config_file(),
        format!(
            "portal: {{ key_file: identity.pem, base_domain: {BASE_DOMAIN} }}\nstate_dir: state\n\
             listen: {{ https: \"127.0.0.1:1\" }}\ntls: {{ cert_file: cert.pem, key_file: key.pem }}\n\
             core: {{ upstream: \"127.0.0.1:1\" }}\nassertion: {{ header: Cookie, ttl_seconds: 600 }}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portal-proxy"))
        .arg("-t")
        .arg("-c")
        .arg(files.config_file())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("assertion.header: \"Cookie\" is a header"),
        "{text}"
    );
    assert!(
        text.contains("assertion.ttl_seconds: 600 is not from 3 to 60"),
        "{text}"
    );
}
