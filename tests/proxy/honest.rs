//! Refuse only what is ours to refuse (docs/access.md, "Who is calling";
//! docs/config.md, "What counts as a failed authentication"), through the
//! real binary: the owner's cookie is found beside any other cookie, other
//! applications' signatures (ActivityPub deliveries signed by a real
//! ActivityPub library, Web Bot Auth) reach the app untouched and never
//! count against their sender, and only a credential of ours proven wrong
//! locks an address out. Distinct 127.0.0.x source addresses stand for
//! distinct clients; the failed authentication limit is 3 a minute.

use std::net::IpAddr;
use std::sync::Arc;

use crate::common::python::python;
use crate::common::*;
use portal_core::identity::Identity;
use portal_core::signature::{signed_headers, Outgoing};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = r#"{"": {"access": "public", "headers": {"X-Ptl-Client-Type": "{{ auth.client_type }}"}},
  "/private/": {"access": "private"}, "/peer/": {"access": "peer"}}"#;

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    app: Upstream,
    peer: Identity,
}

/// One Portal whose peer `peer` may call over CA TLS (`ca` transport) or
/// pinned TLS, with the failed authentication limit at 3 a minute.
fn setup(test: &str) -> Setup {
    let files = PortalFiles::new(test);
    let app = Upstream::start("app");
    let peer = portal_proxy::identity::generate();
    files
        .app("app", &app_meta(APP))
        .terminals(&[("t1", "Laptop")])
        .state_file(
            "peers.json",
            &serde_json::json!([{"id": peer.id, "name": "Friend", "public_key": peer.public_key_pem}])
                .to_string(),
        );
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ app: \"{}\" }}\n\
             peering: {{ transport: ca }}\nlimits: {{ failed_authentications_per_minute: 3 }}\n",
            app.addr
        ),
    );
    Setup {
        files,
        proxy,
        app,
        peer,
    }
}

impl Setup {
    /// The authority clients send: the app's host and the listener's port.
    fn authority(&self) -> String {
        format!("{}:{}", self.files.host("app"), self.proxy.https.port())
    }

    fn client(&self, source: &str, protocol: Protocol) -> reqwest::Client {
        client_builder(&self.files.ca_pem, protocol)
            .local_address(source.parse::<IpAddr>().unwrap())
            .build()
            .unwrap()
    }

    /// `GET https://<app><path>` from `source` with `headers` (raw bytes):
    /// the status and the app's echo, if it was reached.
    async fn get(
        &self,
        source: &str,
        protocol: Protocol,
        path: &str,
        headers: &[(&str, Vec<u8>)],
    ) -> (StatusCode, Option<Echo>) {
        let mut req = self
            .client(source, protocol)
            .get(format!("https://{}{path}", self.authority()));
        for (name, value) in headers {
            req = req.header(
                *name,
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let echo = resp.json::<Echo>().await.ok();
        (status, echo)
    }

    /// Whether `source` is locked out now: an anonymous request for a
    /// public page is then 429.
    async fn locked_out(&self, source: &str) -> bool {
        let (status, _) = self.get(source, Protocol::Http1, "/x", &[]).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
        status == StatusCode::TOO_MANY_REQUESTS
    }

    /// Headers signing `GET https://<authority><path>` as `who` (keyid
    /// `keyid`), created `age` seconds ago.
    fn signed(
        &self,
        who: &Identity,
        keyid: &str,
        path: &str,
        age: i64,
    ) -> Vec<(&'static str, Vec<u8>)> {
        let outgoing = Outgoing {
            method: "GET",
            authority: &self.authority(),
            path_and_query: path,
            body: None,
        };
        let now = portal_proxy::clock::unix_now();
        signed_headers(
            &who.signing_key,
            keyid,
            &outgoing,
            now - age,
            60,
            &portal_proxy::clock::fresh_nonce(),
        )
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect()
    }
}

/// A cookie header: `pairs` joined by `; `, as bytes.
fn cookies(pairs: &[&[u8]]) -> Vec<u8> {
    pairs.join(&b"; "[..])
}

/// Cookie headers an app under the Portal's domain may make every browser
/// send beside the owner's token: Latin-1, UTF-8, an emoji, bytes that
/// are no UTF-8, quotes.
fn odd_cookies(token: &str) -> Vec<(&'static str, Vec<u8>)> {
    let owner = format!("authorization={token}").into_bytes();
    vec![
        ("latin-1", cookies(&[b"name=Jos\xe9", &owner])),
        ("utf-8", cookies(&["name=José".as_bytes(), &owner, b"x=1"])),
        ("emoji", cookies(&["fav=🍪".as_bytes(), &owner])),
        ("not utf-8", cookies(&[&owner, b"z=\xff\xfe", b"q=\"a b\""])),
    ]
}

/// Issue 26, item 1: the owner's valid token beside any cookie, over
/// HTTP/1.1, one HTTP/2 `cookie` field and a WebSocket upgrade, is the
/// owner, never a failed login; the app gets every other cookie and never
/// the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_is_found_beside_any_cookie() {
    let s = setup("honest-cookies");
    let token = s.files.terminal_token("t1");
    let source = "127.0.0.21";
    // More than the limit of failed authentications, had they counted.
    for round in 0..2 {
        for (what, cookie) in odd_cookies(&token) {
            for protocol in [Protocol::Http1, Protocol::Http2] {
                let headers = [("cookie", cookie.clone())];
                let (status, echo) = s.get(source, protocol, "/private/x", &headers).await;
                assert_eq!(status, StatusCode::OK, "{what} {protocol:?} round {round}");
                let got = echo
                    .unwrap()
                    .headers
                    .get("cookie")
                    .cloned()
                    .unwrap_or_default();
                assert!(!got.contains(&token), "{what}: the token reached the app");
                let want = String::from_utf8_lossy(&cookie)
                    .replace(&format!("authorization={token}; "), "")
                    .replace(&format!("; authorization={token}"), "");
                assert_eq!(got, want, "{what} {protocol:?}: the other cookies");
            }
            // A WebSocket upgrade with the same Cookie header.
            let mut tls = tls_connect_from(
                Some(source.parse().unwrap()),
                s.proxy.https,
                &s.files.host("app"),
                &s.files.ca_pem,
            )
            .await
            .unwrap();
            let request = upgrade_request(&s.authority(), "/private/ws", "");
            let mut bytes = request.trim_end_matches("\r\n").as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\nCookie: ");
            bytes.extend_from_slice(&cookie);
            bytes.extend_from_slice(b"\r\n\r\n");
            tls.write_all(&bytes).await.unwrap();
            let head = read_response_head(&mut tls).await;
            assert!(head.starts_with("HTTP/1.1 101"), "{what}: {head}");
            tls.write_all(b"ping").await.unwrap();
            let mut echoed = [0u8; 4];
            tls.read_exact(&mut echoed).await.unwrap();
            assert_eq!(&echoed, b"ping");
        }
    }
    assert!(
        !s.locked_out(source).await,
        "the owner was counted as failing"
    );
}

/// Issue 26, item 2: ActivityPub deliveries signed by `apsig` (draft-cavage
/// `Signature`, no `Signature-Input`), Web Bot Auth requests signed by
/// `http-message-signatures`, an app's own RFC 9421 label and a bare
/// `Signature` reach the app untouched as anonymous requests (they still
/// verify there), are refused only by the path's rule, and never count
/// as failed authentications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_applications_signatures_reach_the_app_untouched() {
    let s = setup("honest-signatures");
    let source = "127.0.0.22";
    let client = s.client(source, Protocol::Http1);
    let host = s.authority();
    // More of each than the limit of failed authentications.
    for i in 0..4 {
        // A Mastodon-style delivery to a public inbox.
        let body = format!(r#"{{"type":"Follow","id":"https://social.example/f/{i}"}}"#);
        let request =
            serde_json::json!({"method": "POST", "host": host, "path": "/inbox", "body": body});
        let sent = sign_with("activitypub", &request);
        let resp = send(&client, "POST", &host, "/inbox", &sent, Some(&body)).await;
        assert_eq!(resp.status(), StatusCode::OK, "delivery {i}");
        let echo = verified_at_app("activitypub", &request, &sent, resp).await;
        assert_eq!(echo.headers["x-ptl-client-type"], "anonymous");
        assert_eq!(echo.body_sha256, sha256_hex(body.as_bytes()));

        // Web Bot Auth, under its own label and an app's.
        for label in ["sig1", "app"] {
            let request =
                serde_json::json!({"method": "GET", "host": host, "path": "/x", "label": label});
            let sent = sign_with("web_bot_auth", &request);
            let resp = send(&client, "GET", &host, "/x", &sent, None).await;
            assert_eq!(resp.status(), StatusCode::OK, "web bot auth {label}");
            verified_at_app("web_bot_auth", &request, &sent, resp).await;
            // On a peer path: the rule's refusal, not the signature's.
            let resp = send(&client, "GET", &host, "/peer/x", &sent, None).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["reason"], serde_json::Value::Null, "{body}");
        }
        // A Signature field alone, even with a `portal` member.
        let (status, _) = s
            .get(
                source,
                Protocol::Http2,
                "/x",
                &[("signature", b"portal=:AAAA:".to_vec())],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(
        !s.locked_out(source).await,
        "a federating server was locked out"
    );
}

/// The headers `tests/interop/<script>.py` signs `request` with (its
/// `method`, `host`, `path` and more).
fn sign_with(script: &str, request: &serde_json::Value) -> Vec<(String, String)> {
    let mut input = request.clone();
    input["mode"] = "sign".into();
    let signed = python(script, &input).unwrap();
    signed["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// `method https://<host><path>` with `headers` and `body`.
async fn send(
    client: &reqwest::Client,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> reqwest::Response {
    let mut req = client.request(method.parse().unwrap(), format!("https://{host}{path}"));
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    req.send().await.unwrap()
}

/// What the app received for `request`, signed by `script` with `sent`:
/// every signed header as sent, and the signature still verifying there
/// (with the host the app received).
async fn verified_at_app(
    script: &str,
    request: &serde_json::Value,
    sent: &[(String, String)],
    resp: reqwest::Response,
) -> Echo {
    let echo: Echo = resp.json().await.unwrap();
    for (name, value) in sent {
        assert_eq!(echo.headers.get(name), Some(value), "{name}");
    }
    let mut input = request.clone();
    input["mode"] = "verify".into();
    input["host"] = echo.headers["host"].clone().into();
    input["headers"] = serde_json::to_value(&echo.headers).unwrap();
    python(script, &input)
        .unwrap_or_else(|e| panic!("what the app got does not verify by {script}: {e}"));
    echo
}

/// A pinned TLS connection from `source` to the proxy presenting `who`'s
/// identity key.
async fn pinned_from(
    s: &Setup,
    source: &str,
    who: &Identity,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use portal_proxy::tls::peer::{identity_certificate, pinned_client_config};
    let own = identity_certificate(who, "caller.portal.test").unwrap();
    let key = s.files.identity.signing_key.verifying_key().to_bytes();
    let config = pinned_client_config(key, &own).unwrap();
    let tcp = source_socket(Some(source.parse().unwrap()))
        .unwrap()
        .connect(s.proxy.https)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(s.files.host("app")).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Issue 26, item 3: every row of docs/config.md's table "What counts as
/// a failed authentication", each from an address of its own: as many
/// requests as the limit, then whether the address is locked out. Then who is exempt
/// once an address is locked out: a valid terminal token (beside another
/// application's signature too), a verified peer, a pinned connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_our_credentials_proven_wrong_lock_an_address_out() {
    let s = setup("honest-failures");
    let stranger = portal_proxy::identity::generate();
    let peer = &s.peer;
    let token = s.files.terminal_token("t1");
    let gone = s.files.terminal_token("gone");
    let cookie = |value: &str| vec![("cookie", format!("authorization={value}").into_bytes())];
    let without_nonce = |mut headers: Vec<(&'static str, Vec<u8>)>| {
        for (name, value) in headers.iter_mut() {
            if name.eq_ignore_ascii_case("signature-input") {
                let text = String::from_utf8(value.clone()).unwrap();
                let at = text.find(";nonce=").unwrap();
                let end = text[at + 1..].find(';').map_or(text.len(), |e| at + 1 + e);
                *value = format!("{}{}", &text[..at], &text[end..]).into_bytes();
            }
        }
        headers
    };
    type Headers = Vec<(&'static str, Vec<u8>)>;
    /// A row: its name, the path, what each request sends, the status of
    /// each, and whether it counts.
    type Row<'a> = (&'a str, &'a str, Box<dyn Fn() -> Headers + 'a>, u16, bool);
    let rows: Vec<Row> = vec![
        (
            "forged cookie, private page",
            "/private/x",
            Box::new(|| cookie(&format!("{token}x"))),
            401,
            true,
        ),
        (
            "forged cookie, public page",
            "/x",
            Box::new(|| cookie(&format!("{token}x"))),
            200,
            false,
        ),
        (
            "removed terminal's token",
            "/private/x",
            Box::new(|| cookie(&gone)),
            401,
            false,
        ),
        (
            "a logout's empty cookie",
            "/private/x",
            Box::new(|| cookie("")),
            401,
            false,
        ),
        (
            "bad signature",
            "/peer/x",
            Box::new(|| s.signed(&stranger, &peer.id, "/peer/x", 0)),
            401,
            true,
        ),
        (
            "unknown peer",
            "/peer/x",
            Box::new(|| s.signed(&stranger, &stranger.id, "/peer/x", 0)),
            401,
            false,
        ),
        (
            "expired signature",
            "/peer/x",
            Box::new(|| s.signed(peer, &peer.id, "/peer/x", 1000)),
            401,
            false,
        ),
        (
            "malformed signature",
            "/peer/x",
            Box::new(|| without_nonce(s.signed(peer, &peer.id, "/peer/x", 0))),
            401,
            false,
        ),
        (
            "no credential",
            "/private/x",
            Box::new(Vec::new),
            401,
            false,
        ),
    ];
    for (i, (row, path, headers, status, counted)) in rows.iter().enumerate() {
        let source = format!("127.0.0.{}", 30 + i);
        for _ in 0..3 {
            let (got, _) = s.get(&source, Protocol::Http1, path, &headers()).await;
            assert_eq!(got.as_u16(), *status, "{row}");
        }
        assert_eq!(s.locked_out(&source).await, *counted, "{row}");
    }
    // A replayed genuine signature: refused, not counted.
    let source = "127.0.0.40";
    let replayed = s.signed(peer, &peer.id, "/peer/x", 0);
    let (first, _) = s.get(source, Protocol::Http1, "/peer/x", &replayed).await;
    assert_eq!(first, StatusCode::OK);
    for _ in 0..5 {
        let (again, _) = s.get(source, Protocol::Http1, "/peer/x", &replayed).await;
        assert_eq!(again, StatusCode::UNAUTHORIZED, "replayed");
    }
    assert!(!s.locked_out(source).await, "replays counted");

    // Locked out: the forged cookie's address.
    let locked = "127.0.0.30";
    assert!(s.locked_out(locked).await);
    let (status, _) = s
        .get(locked, Protocol::Http2, "/private/x", &cookie(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "the owner's valid token");
    let mut beside = cookie(&token);
    beside.push((
        "signature-input",
        b"sig1=(\"@authority\");created=1;keyid=\"k\";tag=\"web-bot-auth\"".to_vec(),
    ));
    beside.push(("signature", b"sig1=:AAAA:".to_vec()));
    let (status, _) = s.get(locked, Protocol::Http1, "/private/x", &beside).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the owner's token beside another application's signature"
    );
    let signed = s.signed(peer, &peer.id, "/peer/x", 0);
    let (status, echo) = s.get(locked, Protocol::Http1, "/peer/x", &signed).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a verified peer is limited by its own rate only"
    );
    assert_eq!(echo.unwrap().target, "/peer/x");
    // A peer whose key opened a pinned connection from the locked-out
    // address (an IPv6 /64 or a NAT it shares with an attacker).
    let mut tls = pinned_from(&s, locked, peer).await;
    let mut request = format!(
        "GET /peer/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        s.authority()
    );
    for (name, value) in s.signed(peer, &peer.id, "/peer/x", 0) {
        request += &format!("{name}: {}\r\n", String::from_utf8(value).unwrap());
    }
    tls.write_all(format!("{request}\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "pinned: {answer}");
    // An anonymous request from there is still refused.
    assert!(s.locked_out(locked).await);
    let reached = s.app.received.lock().unwrap().len();
    assert!(reached > 0);
}
