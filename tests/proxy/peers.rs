//! Peer requests end to end (docs/access.md; docs/signing.md): signed by another
//! Portal's key, verified by the real proxy over real TLS, with the body
//! held back until its digest matched.

use crate::common::*;
use portal_core::identity::Identity;
use portal_core::signature::{signed_headers, Outgoing};
use reqwest::StatusCode;

const APP: &str = r#"{
  "": {"access": "private"},
  "/open/": {"access": "public"},
  "/peer/": {"access": "peer", "headers": {
      "X-Ptl-Client-Id": "{{ auth.client_id }}",
      "X-Ptl-Client-Name": "{{ auth.client_name }}",
      "X-Ptl-Client-Type": "{{ auth.client_type }}"}}
}"#;

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    app: Upstream,
    peer: Identity,
    stranger: Identity,
}

/// A Portal whose one peer signs with `peer`'s key. The requests of these
/// tests come over TLS without a key (the signature layer on its own, as
/// for a `ca` peer): `peering.transport: ca` unless `extra` has a
/// `peering:` section (pinned.rs tests the pinned channel).
fn setup(test: &str, extra: &str) -> Setup {
    let files = PortalFiles::new(test);
    let app = Upstream::start("app");
    let peer = portal_proxy::identity::generate();
    let stranger = portal_proxy::identity::generate();
    files.app("app", &app_meta(APP)).state_file(
        "peers.json",
        &serde_json::json!([{"id": peer.id, "name": "Friend", "public_key": peer.public_key_pem}])
            .to_string(),
    );
    let extra = if extra.contains("peering:") {
        extra.to_string()
    } else {
        format!("{extra}peering: {{ transport: ca }}\n")
    };
    let config = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams:\n  app: \"{}\"\n{extra}",
        app.addr
    );
    let proxy = Proxy::start(&files, &config);
    Setup {
        files,
        proxy,
        app,
        peer,
        stranger,
    }
}

/// The headers that sign `method https://<authority><path_and_query>` as
/// `who`, created at `created`, valid 60 s.
fn headers_for(
    who: &Identity,
    method: &str,
    authority: &str,
    path_and_query: &str,
    body: Option<&[u8]>,
    created: i64,
) -> Vec<(&'static str, String)> {
    let request = Outgoing {
        method,
        authority,
        path_and_query,
        body,
    };
    signed_headers(
        &who.signing_key,
        &who.id,
        &request,
        created,
        60,
        &portal_proxy::clock::fresh_nonce(),
    )
    .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Setup {
    fn authority(&self) -> String {
        format!("{}:{}", self.files.host("app"), self.proxy.https.port())
    }

    /// A request to `path_and_query` signed by `who`, with `body`.
    fn signed(
        &self,
        client: &reqwest::Client,
        who: &Identity,
        method: &str,
        path_and_query: &str,
        body: Option<&[u8]>,
    ) -> reqwest::RequestBuilder {
        let headers = headers_for(who, method, &self.authority(), path_and_query, body, now());
        let mut request = client.request(
            method.parse().unwrap(),
            format!("https://{}{path_and_query}", self.authority()),
        );
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        request
    }
}

/// The 401 body's reason code.
async fn reason(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["reason"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_reaches_peer_paths_with_its_identity() {
    let s = setup("peer-ok", "");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let client = client(&s.files.ca_pem, protocol);
        let resp = s
            .signed(&client, &s.peer, "GET", "/peer/x?y=1", None)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{protocol:?}");
        let echo: Echo = resp.json().await.unwrap();
        assert_eq!(echo.headers["x-ptl-client-type"], "peer");
        assert_eq!(echo.headers["x-ptl-client-id"], s.peer.id);
        assert_eq!(echo.headers["x-ptl-client-name"], "Friend");
        assert_eq!(echo.target, "/peer/x?y=1");
        // A body arrives intact, small and larger than one read.
        for size in [5usize, 300_000] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let resp = s
                .signed(&client, &s.peer, "POST", "/peer/upload", Some(&body))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{protocol:?} {size}");
            let echo: Echo = resp.json().await.unwrap();
            assert_eq!(echo.body_len, size);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_refused_on_private_paths() {
    let s = setup("peer-private", "");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let resp = s
        .signed(&client, &s.peer, "GET", "/private/x", None)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    // Anonymous callers are refused on peer paths.
    let resp = client
        .get(format!("https://{}/peer/x", s.authority()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A peer may use public paths.
    let resp = s
        .signed(&client, &s.peer, "GET", "/open/", None)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_with_their_reason_on_every_path() {
    let s = setup("peer-refusals", "");
    let client = client(&s.files.ca_pem, Protocol::Http1);
    // Unknown Portal: refused even on a public path (fail closed).
    let resp = s
        .signed(&client, &s.stranger, "GET", "/open/", None)
        .send()
        .await
        .unwrap();
    assert_eq!(reason(resp).await, "unknown_peer");
    // Signed for one path, sent to another.
    let headers = headers_for(&s.peer, "GET", &s.authority(), "/peer/a", None, now());
    let mut request = client.get(format!("https://{}/peer/b", s.authority()));
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    assert_eq!(reason(request.send().await.unwrap()).await, "bad_signature");
    // Expired.
    let headers = headers_for(&s.peer, "GET", &s.authority(), "/open/", None, now() - 120);
    let mut request = client.get(format!("https://{}/open/", s.authority()));
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    assert_eq!(reason(request.send().await.unwrap()).await, "expired");
    // Malformed: a `portal` member without its parameters.
    let resp = client
        .get(format!("https://{}/open/", s.authority()))
        .header("signature-input", "portal=(\"@method\");created=1")
        .header("signature", "portal=:AAAA:")
        .send()
        .await
        .unwrap();
    assert_eq!(reason(resp).await, "malformed");
    // A Signature-Input that is no structured-field dictionary claims
    // nothing anyone could verify: the app's business.
    let resp = client
        .get(format!("https://{}/open/", s.authority()))
        .header("signature-input", "portal=(")
        .header("signature", "portal=:AAAA:")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A verified peer holding its whole share of the replay cache is at its
/// rate, not failing: 429 `peer_nonces` with `Retry-After`, never a 401,
/// and never counted against its address (docs/config.md, "What counts
/// as a failed authentication").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_nonce_share_is_429_not_a_failure() {
    let s = setup(
        "peer-nonces",
        "limits: { failed_authentications_per_minute: 1 }\n\
         peering: { transport: ca, replay_cache_per_peer: 3 }\n",
    );
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let mut statuses = Vec::new();
    for i in 0..6 {
        let resp = s
            .signed(&client, &s.peer, "GET", &format!("/peer/n{i}"), None)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let retry = resp.headers().get("retry-after").cloned();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        statuses.push((status, retry, body["reason"].as_str().map(str::to_string)));
    }
    let served = statuses
        .iter()
        .filter(|(s, ..)| *s == StatusCode::OK)
        .count();
    assert_eq!(served, 3, "{statuses:?}");
    for (status, retry, reason) in &statuses[3..] {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
        assert!(retry.is_some(), "{statuses:?}");
        assert_eq!(reason.as_deref(), Some("peer_nonces"), "{statuses:?}");
    }
    // Not a failed authentication: the address is not locked out.
    let resp = client
        .get(format!("https://{}/open/x", s.authority()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_is_refused() {
    let s = setup("peer-replay", "");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let headers = headers_for(&s.peer, "GET", &s.authority(), "/peer/x", None, now());
    let send = || {
        let mut request = client.get(format!("https://{}/peer/x", s.authority()));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        request.send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(reason(send().await.unwrap()).await, "replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_match_its_digest_never_reaches_the_app_whole() {
    let s = setup("peer-digest", "");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let client = client(&s.files.ca_pem, protocol);
        for size in [10usize, 65536, 65537, 200_000] {
            let signed_body = vec![b'a'; size];
            let mut sent = signed_body.clone();
            sent[size - 1] = b'b';
            let target = format!("/peer/mismatch-{size}");
            let headers = headers_for(
                &s.peer,
                "POST",
                &s.authority(),
                &target,
                Some(&signed_body),
                now(),
            );
            let mut request = client
                .post(format!("https://{}{target}", s.authority()))
                .body(sent);
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            // Seen once on a loaded machine: the body's write reset before
            // the refusal was read. The proxy's log tells why.
            let resp = match request.send().await {
                Ok(resp) => resp,
                Err(e) => panic!("{protocol:?} {size}: {e:?}\n{}", s.proxy.log_text()),
            };
            // Refused while the body streamed (over 64 KiB): the
            // connection is closed after the answer, which says so, so that
            // the client sends nothing more on it.
            if protocol == Protocol::Http1 && size > 65536 {
                let connection = resp.headers().get("connection").cloned();
                assert_eq!(
                    connection.as_ref().and_then(|v| v.to_str().ok()),
                    Some("close"),
                    "{size}"
                );
            }
            // The echo app answers only once it read a whole body: the
            // answer is the proxy's refusal, never the app's echo.
            assert_eq!(reason(resp).await, "digest_mismatch", "{protocol:?} {size}");
            // Nothing of the body reached the app: it is held back until
            // its digest matched. A body of at most 64 KiB is checked
            // before the head goes upstream: the app never hears of it.
            let received = s.app.received.lock().unwrap().clone();
            assert!(
                !received.iter().any(|(t, len, _)| *t == target && *len > 0),
                "the app received body bytes for {target}: {received:?}"
            );
            if size <= 65536 {
                assert!(
                    !received.iter().any(|(t, ..)| *t == target),
                    "the app received the head of {target}: {received:?}"
                );
            }
        }
    }
    // The same app does receive whole signed bodies that match.
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let resp = s
        .signed(&client, &s.peer, "POST", "/peer/ok", Some(b"fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(s
        .app
        .received
        .lock()
        .unwrap()
        .contains(&("/peer/ok".to_string(), 4, true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_bodies_over_the_limit_are_413() {
    let s = setup(
        "peer-limit",
        "peering: { transport: ca, max_signed_body_bytes: 1000 }\n",
    );
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let resp = s
        .signed(&client, &s.peer, "POST", "/peer/x", Some(&[b'x'; 1000]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = s
        .signed(&client, &s.peer, "POST", "/peer/x", Some(&[b'x'; 1001]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_peer_is_accepted_after_a_state_reload() {
    let s = setup("peer-reload", "");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let resp = s
        .signed(&client, &s.stranger, "GET", "/peer/x", None)
        .send()
        .await
        .unwrap();
    assert_eq!(reason(resp).await, "unknown_peer");
    s.files.state_file(
        "peers.json",
        &serde_json::json!([
            {"id": s.peer.id, "name": "Friend", "public_key": s.peer.public_key_pem},
            {"id": s.stranger.id, "name": "New friend", "public_key": s.stranger.public_key_pem},
        ])
        .to_string(),
    );
    let accepted = eventually(std::time::Duration::from_secs(5), || async {
        s.signed(&client, &s.stranger, "GET", "/peer/x", None)
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
    })
    .await;
    assert!(accepted, "the new peer was not accepted within 5 s");
}

/// Each peer has its own request rate (`limits.peer_requests_per_second`):
/// over it, 429 with reason `peer_rate`; the limit is the peer's, not its
/// address's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_rate_is_refused() {
    let s = setup("peer-rate", "limits: { peer_requests_per_second: 5 }\n");
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let mut limited = 0;
    for _ in 0..30 {
        let resp = s
            .signed(&client, &s.peer, "GET", "/peer/x", None)
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(resp.headers()["retry-after"], "1");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["reason"], "peer_rate", "{body}");
            limited += 1;
        } else {
            assert_eq!(resp.status(), StatusCode::OK);
        }
    }
    assert!(limited >= 10, "{limited} of 30 limited");
}

/// Signed bodies held for their digest share `peering.max_held_bodies_bytes`:
/// one more than fits is refused with 503 and `Retry-After` before any of
/// it reaches the app, and is served once the held body has gone on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_bodies_over_their_budget_are_503_with_retry_after() {
    use tokio::io::AsyncWriteExt;
    let s = setup(
        "peer-held",
        "peering: { transport: ca, max_signed_body_bytes: 1000, max_held_bodies_bytes: 1000 }\n",
    );
    let client = client(&s.files.ca_pem, Protocol::Http1);
    // A: 1000 bytes declared, 600 sent, the rest held back by the client.
    let body_a = [b'a'; 1000];
    let authority = s.authority();
    let mut head =
        format!("POST /peer/a HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 1000\r\n");
    for (name, value) in headers_for(&s.peer, "POST", &authority, "/peer/a", Some(&body_a), now()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut a = tls_connect(s.proxy.https, &s.files.host("app"), &s.files.ca_pem)
        .await
        .unwrap();
    a.write_all(head.as_bytes()).await.unwrap();
    a.write_all(&body_a[..600]).await.unwrap();
    a.flush().await.unwrap();
    // B: 500 bytes, over what is left once A's 600 are held.
    let send_b = || async {
        s.signed(&client, &s.peer, "POST", "/peer/b", Some(&[b'b'; 500]))
            .send()
            .await
            .unwrap()
    };
    // Polled until A's bytes are held (each B a new signature).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let refused = loop {
        let resp = send_b().await;
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            break resp;
        }
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "B was never refused while A's body was held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "service_unavailable", "{body}");
    // Nothing of A or of a refused B reached the app so far.
    let reached = |path: &str| {
        s.app
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.0 == path)
            .count()
    };
    assert_eq!(reached("/peer/a"), 0);
    let b_before = reached("/peer/b");
    // A's end: A goes on, its budget is freed, and B is served.
    a.write_all(&body_a[600..]).await.unwrap();
    let answer = read_response_head(&mut a).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(reached("/peer/a"), 1);
    assert_eq!(send_b().await.status(), StatusCode::OK);
    assert_eq!(reached("/peer/b"), b_before + 1);
}
