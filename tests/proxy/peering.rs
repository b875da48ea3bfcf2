//! Two Portals peering with nothing in between (docs/peering.md): app
//! alpha on Portal 1 calls Portal 2's alpha through Portal 1's internal
//! listener; Portal 1 signs, Portal 2 verifies. Apps are told apart by
//! their source address (127.0.0.2 is alpha, 127.0.0.3 is beta).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;

const APP: &str = r#"{
  "": {"access": "private"},
  "/peer/": {"access": "peer", "headers": {
      "X-Ptl-Client-Id": "{{ auth.client_id }}",
      "X-Ptl-Client-Name": "{{ auth.client_name }}",
      "X-Ptl-Client-Type": "{{ auth.client_type }}"}}
}"#;

pub(crate) const ALPHA_IP: &str = "127.0.0.2";
const BETA_IP: &str = "127.0.0.3";

pub(crate) struct Portal {
    pub(crate) files: PortalFiles,
    pub(crate) proxy: Proxy,
    pub(crate) internal: SocketAddr,
    pub(crate) metrics: SocketAddr,
}

pub(crate) struct Setup {
    pub(crate) p1: Portal,
    pub(crate) p2: Portal,
    /// Portal 2's alpha (its beta answers as `beta2`).
    pub(crate) alpha2: Upstream,
    _beta2: Upstream,
}

fn peer_entry(p: &PortalFiles, https: SocketAddr, name: &str) -> serde_json::Value {
    serde_json::json!({
        "id": p.identity.id,
        "name": name,
        "public_key": p.identity.public_key_pem,
        "address": https.to_string(),
    })
}

/// The TLS between the two Portals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// The default: pinned to the identity keys, no CA file anywhere.
    Pinned,
    /// `peering.transport: ca` on both, each trusting the other's CA:
    /// what a peer that is not portal-proxy gets, and the layer the
    /// response signature guards on its own.
    Ca,
    /// Portal 1 calls with `transport: ca`; Portal 2 keeps the default.
    CallerCa,
}

/// Starts Portal 1 and Portal 2, each a peer of the other, pinned.
pub(crate) fn setup(test: &str) -> Setup {
    setup_with(test, Channel::Pinned, "")
}

/// [`setup`] with `transport: ca` on both sides.
pub(crate) fn setup_ca(test: &str) -> Setup {
    setup_with(test, Channel::Ca, "")
}

/// Starts the two Portals, with `p1_peering` added to Portal 1's
/// `peering:` section (entries starting with `, `).
pub(crate) fn setup_with(test: &str, channel: Channel, p1_peering: &str) -> Setup {
    let f1 = PortalFiles::new(&format!("{test}-p1"));
    let f2 = PortalFiles::new(&format!("{test}-p2"));
    let (alpha2, beta2) = (Upstream::start("alpha2"), Upstream::start("beta2"));
    f2.app("alpha", &app_meta(APP)).app("beta", &app_meta(APP));
    // Each can trust the other's CA for the peer connection.
    std::fs::write(f1.dir.join("peer-ca.pem"), &f2.ca_pem).unwrap();
    std::fs::write(f2.dir.join("peer-ca.pem"), &f1.ca_pem).unwrap();
    let (peering1, peering2) = match channel {
        Channel::Pinned => ("transport: pinned", "transport: pinned"),
        Channel::Ca => (
            "transport: ca, ca_file: peer-ca.pem",
            "transport: ca, ca_file: peer-ca.pem",
        ),
        Channel::CallerCa => ("transport: ca, ca_file: peer-ca.pem", "transport: pinned"),
    };
    f1.state_file(
        "app_addresses.json",
        &serde_json::json!({"alpha": [ALPHA_IP], "beta": [BETA_IP]}).to_string(),
    );
    let port = || -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().unwrap() };
    let (internal1, internal2, metrics1, metrics2) = (port(), port(), port(), port());
    let p2_proxy = Proxy::start(
        &f2,
        &format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ alpha: \"{}\", beta: \"{}\" }}\n\
             internal: {{ listen: \"{internal2}\" }}\npeering: {{ {peering2} }}\n\
             metrics: {{ listen: \"{metrics2}\" }}\naccess_log: {{ file: access.log }}\n",
            alpha2.addr, beta2.addr
        ),
    );
    let p1_proxy = Proxy::start(
        &f1,
        &format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\ninternal: {{ listen: \"{internal1}\" }}\n\
             peering: {{ {peering1}{p1_peering} }}\nmetrics: {{ listen: \"{metrics1}\" }}\n\
             limits: {{ upstream_connect_timeout_seconds: 2, upstream_idle_timeout_seconds: 2 }}\n"
        ),
    );
    // Each lists the other, at its real address (no DNS for *.portal.test).
    f1.state_file(
        "peers.json",
        &serde_json::json!([peer_entry(&f2, p2_proxy.https, "Portal 2")]).to_string(),
    );
    f2.state_file(
        "peers.json",
        &serde_json::json!([peer_entry(&f1, p1_proxy.https, "Portal 1")]).to_string(),
    );
    Setup {
        p1: Portal {
            files: f1,
            proxy: p1_proxy,
            internal: internal1,
            metrics: metrics1,
        },
        p2: Portal {
            files: f2,
            proxy: p2_proxy,
            internal: internal2,
            metrics: metrics2,
        },
        alpha2,
        _beta2: beta2,
    }
}

/// A plain HTTP client whose connections come from `source`, as an app's
/// container would.
pub(crate) fn app_client(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `GET /internal/peers` of the internal listener at `internal`.
async fn peer_list(internal: SocketAddr) -> serde_json::Value {
    app_client(ALPHA_IP)
        .get(format!("http://{internal}/internal/peers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

impl Setup {
    /// `http://<portal 1 internal>/internal/call_peer/<portal 2 id prefix>/<path>`
    pub(crate) fn call_url(&self, path: &str) -> String {
        format!(
            "http://{}/internal/call_peer/{}/{path}",
            self.p1.internal,
            &self.p2.files.identity.id[..10]
        )
    }

    /// Alpha's call of `path` on Portal 2, through Portal 1.
    pub(crate) async fn call(&self, path: &str) -> reqwest::Response {
        app_client(ALPHA_IP)
            .get(self.call_url(path))
            .send()
            .await
            .unwrap()
    }

    /// The message of the refusal when alpha's call to Portal 2 is refused
    /// with 502 `peer_unverified` (an answer without Portal 2's
    /// signature, or over pinned TLS a server without its key).
    pub(crate) async fn unverified_call(&self) -> Option<String> {
        let resp = self.call("peer/x").await;
        if resp.status() != StatusCode::BAD_GATEWAY {
            return None;
        }
        let body: serde_json::Value = resp.json().await.unwrap();
        (body["reason"] == "peer_unverified").then(|| body["message"].as_str().unwrap().to_string())
    }

    /// Whether alpha's call to Portal 2 is refused with 502
    /// `peer_unverified`.
    pub(crate) async fn call_is_unverified(&self) -> bool {
        self.unverified_call().await.is_some()
    }

    /// Waits until both Portals loaded each other's peers.json.
    pub(crate) async fn peered(&self) {
        let ready = eventually(Duration::from_secs(5), || async {
            let list = peer_list(self.p1.internal).await;
            let list2 = peer_list(self.p2.internal).await;
            list.as_array().is_some_and(|l| l.len() == 1)
                && list2.as_array().is_some_and(|l| l.len() == 1)
        })
        .await;
        assert!(ready, "the Portals did not load their peers.json");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_calls_the_same_app_on_a_peer() {
    let s = setup("call");
    s.peered().await;
    let list = peer_list(s.p1.internal).await;
    let p2 = &s.p2.files.identity;
    assert_eq!(
        list,
        serde_json::json!([{"id": p2.id, "short_id": p2.short_id(), "name": "Portal 2"}])
    );

    let resp = app_client(ALPHA_IP)
        .get(s.call_url("peer/hello?x=1&y=%20z&token=s3cret-q"))
        .header("x-ptl-client-id", "spoofed")
        .header("cookie", "session=secret")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.upstream, "alpha2");
    assert_eq!(echo.target, "/peer/hello?x=1&y=%20z&token=s3cret-q");
    // The call is logged by its path: an app's query may hold secrets.
    for log in [s.p1.proxy.log_text(), s.p2.proxy.log_text()] {
        assert!(
            !log.contains("s3cret-q"),
            "the query reached the log:\n{log}"
        );
    }
    assert!(s.p1.proxy.log_text().contains("/peer/hello: 200"));
    let p1 = &s.p1.files.identity;
    assert_eq!(echo.headers["x-ptl-client-type"], "peer");
    assert_eq!(echo.headers["x-ptl-client-id"], p1.id);
    assert_eq!(echo.headers["x-ptl-client-name"], "Portal 1");
    assert_eq!(echo.headers["x-custom"], "kept");
    assert!(!echo.headers.contains_key("cookie"), "{:?}", echo.headers);
    // The assertion says so too, and that the peer proved its key at the
    // TLS handshake as well as by its signature.
    let claims = assertion_claims(&echo, p2, "alpha");
    assert_eq!(claims["sub"], p1.id.as_str());
    assert_eq!(claims["ptl_type"], "peer");
    assert_eq!(claims["ptl_name"], "Portal 1");
    assert_eq!(claims["ptl_proof"], serde_json::json!(["signature", "tls"]));
    // Over pinned TLS, with no CA file on either side: Portal 2 saw
    // Portal 1's key at the handshake.
    let verified = series_value(
        &metrics_text(s.p2.metrics).await,
        "portal_proxy_peer_handshakes_total{result=\"verified\"}",
    );
    assert!(verified.is_some_and(|n| n >= 1.0), "{verified:?}");
    // The URL called is the app's on the peer, whatever address and port
    // it is reached at (`address` in peers.json): no port in `Host`.
    assert_eq!(
        echo.headers["host"],
        format!("alpha.{}.{BASE_DOMAIN}", p2.short_id())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_body_arrives_intact() {
    let s = setup("post");
    s.peered().await;
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let resp = app_client(ALPHA_IP)
        .post(s.call_url("peer/upload"))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.body_len, body.len());
    assert_eq!(echo.body_sha256, sha256_hex(&body));
    assert_eq!(echo.headers["content-type"], "application/octet-stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_path_is_refused_by_the_peer() {
    let s = setup("private");
    s.peered().await;
    let resp = s.call("admin/").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(
        s.alpha2.received.lock().unwrap().is_empty(),
        "the app was reached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_the_receiver_does_not_list_is_refused() {
    let s = setup("unlisted");
    s.peered().await;
    // Portal 2 forgets Portal 1: it refuses the signature (401
    // unknown_peer), an answer it cannot bind to a verified request, so it
    // is unsigned. Portal 1's app gets the 401 as a refusal of Portal 1's
    // own (reason peer_refused); the peer's reason is in the peer's log
    // and metrics, its bytes nowhere.
    s.p2.files.state_file("peers.json", "[]");
    let refused = eventually(Duration::from_secs(5), || async {
        let resp = s.call("peer/x").await;
        resp.status() == StatusCode::UNAUTHORIZED
            && resp.json::<serde_json::Value>().await.unwrap()["reason"] == "peer_refused"
    })
    .await;
    assert!(refused, "Portal 2's refusal did not reach the app as one");
}

/// An unsigned answer: only a refusal's status reaches the app (401, 403,
/// 429, 503, under Portal 1's own body, reason `peer_refused`); any other
/// is 502 `peer_unverified`, saying the answer is not signed. None of the
/// unsigned answer's bytes or headers reach the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_refusals_reach_the_app_as_refusals() {
    let s = setup_ca("unsigned-refusals");
    s.peered().await;
    // Consecutive cases differ in what the app gets, so that each waits
    // for its own server's answer (peers.json and the CA reload; while
    // they do, a call may also fail on the certificate: 502 with no
    // reason).
    for (status, want, code) in [
        (401, 401, "unauthorized"),
        (200, 502, "bad_gateway"),
        (403, 403, "forbidden"),
        (404, 502, "bad_gateway"),
        (429, 429, "too_many_requests"),
        (500, 502, "bad_gateway"),
        (503, 503, "service_unavailable"),
    ] {
        let (mitm, ca) = tampering_server(&s, Tamper::Unsigned(status)).await;
        impersonate(&s, mitm, &ca).await;
        let answer = std::sync::Arc::new(tokio::sync::Mutex::new(None));
        let reached = eventually(Duration::from_secs(5), || async {
            let resp = s.call("peer/x").await;
            if resp.status().as_u16() != want {
                return false;
            }
            let headers = resp.headers().clone();
            let body = resp.text().await.unwrap();
            if want == 502 && !body.contains("peer_unverified") {
                return false;
            }
            *answer.lock().await = Some((headers, body));
            true
        })
        .await;
        assert!(reached, "an unsigned {status}: the app never got {want}");
        let (headers, body) = answer.lock().await.take().unwrap();
        assert!(!headers.contains_key("x-evil"), "{status}: {headers:?}");
        assert!(!body.contains("evil"), "{status}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], code, "{status}: {v}");
        let message = v["message"].as_str().unwrap();
        if want == 502 {
            assert_eq!(v["reason"], "peer_unverified", "{status}: {v}");
            assert!(message.contains("is not signed"), "{status}: {message}");
        } else {
            assert_eq!(v["reason"], "peer_refused", "{status}: {v}");
            assert!(
                message.contains(&format!("refused the call with {status}")),
                "{message}"
            );
        }
        let retry = headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let wants_retry = matches!(status, 429 | 503);
        assert_eq!(retry.is_some(), wants_retry, "{status}: {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_cannot_send_as_another() {
    let s = setup("as-another");
    s.peered().await;
    // beta's call goes to beta on the peer, whatever it asks for.
    let resp = app_client(BETA_IP)
        .get(s.call_url("peer/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.upstream, "beta2");
    assert!(echo.headers["host"].starts_with("beta."));
    let resp = app_client(BETA_IP)
        .get(s.call_url("peer/x"))
        .header(
            "host",
            format!("alpha.{}.{BASE_DOMAIN}", s.p2.files.identity.short_id()),
        )
        .send()
        .await
        .unwrap();
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(
        echo.upstream, "beta2",
        "a Host header does not change the caller"
    );
    // A source that is no app's is refused.
    let resp = app_client("127.0.0.9")
        .get(s.call_url("peer/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_unreachable_peers() {
    let s = setup("unknown");
    s.peered().await;
    let client = app_client(ALPHA_IP);
    for (peer, reason) in [("zzzzzzzzzz", "unknown_peer"), ("abc", "unknown_peer")] {
        let url = format!("http://{}/internal/call_peer/{peer}/x", s.p1.internal);
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{peer}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["reason"], reason);
    }
    // Portal 2 goes away: a clear 502.
    let Setup { p1, p2, .. } = s;
    let url = format!(
        "http://{}/internal/call_peer/{}/peer/x",
        p1.internal,
        &p2.files.identity.id[..8]
    );
    drop(p2.proxy);
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{body}"
    );
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_is_streamed_not_held() {
    let s = setup("large");
    s.peered().await;
    let client = app_client(ALPHA_IP);
    // Warm up both proxies, then measure Portal 1's peak memory.
    let resp = client
        .get(s.call_url("peer/bytes/1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
    let before = peak_rss_bytes(s.p1.proxy.pid());
    const SIZE: usize = 192 * 1024 * 1024;
    let mut resp = client
        .get(s.call_url("peer/bytes/201326592"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut received = 0usize;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        assert!(chunk.iter().all(|b| *b == 0));
        received += chunk.len();
    }
    assert_eq!(received, SIZE);
    let growth = peak_rss_bytes(s.p1.proxy.pid()).saturating_sub(before);
    assert!(
        growth < 48 * 1024 * 1024,
        "Portal 1 grew by {growth} bytes relaying {SIZE}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_answer_is_504() {
    let s = setup("silent");
    s.peered().await;
    // A "peer" that accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten().take(8) {
            held.push(stream);
        }
    });
    let quiet = portal_proxy::identity::generate();
    let mut quiet_entry = serde_json::json!({
        "id": quiet.id, "name": "Quiet", "public_key": quiet.public_key_pem,
    });
    quiet_entry["address"] = silent_addr.to_string().into();
    s.p1.files.state_file(
        "peers.json",
        &serde_json::json!([
            peer_entry(&s.p2.files, s.p2.proxy.https, "Portal 2"),
            quiet_entry
        ])
        .to_string(),
    );
    let client = app_client(ALPHA_IP);
    let listed = eventually(Duration::from_secs(5), || async {
        let list = peer_list(s.p1.internal).await;
        list.as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    assert!(listed);
    let started = std::time::Instant::now();
    let resp = client
        .get(format!(
            "http://{}/internal/call_peer/{}/x",
            s.p1.internal,
            &quiet.id[..8]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "gateway_timeout");
    // Within the configured 2 s, with slack for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// Sends `GET <target>` to Portal 1's internal listener from alpha's
/// address, as written; returns the whole answer.
async fn raw_call(s: &Setup, target: &str) -> String {
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: portal_core\r\nConnection: close\r\n\r\n");
    let from = ALPHA_IP.parse::<IpAddr>().ok();
    tcp_exchange(from, s.p1.internal, request.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_gets_the_bytes_the_app_sent() {
    let s = setup("exact");
    s.peered().await;
    let prefix = format!("/internal/call_peer/{}", &s.p2.files.identity.id[..10]);
    // What URL libraries re-encode, escapes in both cases, an empty `?`,
    // non-ASCII escapes: the peer's app gets them as the app wrote them
    // (and the signature, made over them, verifies there).
    for rest in [
        "/peer/a{b}|c^d?name=it's&q={x}",
        "/peer/%2a%2A/%e2%82%AC?x=%41%4a&y=%c3%a9",
        "/peer/empty?",
        "/peer/semi;v=1?a=b&&c",
    ] {
        let answer = raw_call(&s, &format!("{prefix}{rest}")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{rest}: {answer}");
        let echo: Echo = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(echo.target, rest);
        assert_eq!(echo.headers["x-ptl-client-type"], "peer", "{rest}");
    }
    // Encoded unreserved characters are signed and sent as written; the
    // peer's edge verifies them so, then forwards its canonical path.
    let answer = raw_call(&s, &format!("{prefix}/peer/%7e%7E?q=%7e")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echo: Echo = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(echo.target, "/peer/~~?q=%7e");
    assert_eq!(echo.headers["x-ptl-client-type"], "peer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peering_ca_file_is_reloaded() {
    let s = setup_ca("ca-reload");
    s.peered().await;
    let ca_file = s.p1.files.dir.join("peer-ca.pem");
    // Another CA only: Portal 2's certificate is no longer trusted.
    let other = portal_proxy::tls::certificates::demo_certificate("other.test").unwrap();
    std::fs::write(&ca_file, &other.ca_pem).unwrap();
    let call = || async { s.call("peer/x").await.status() };
    let refused = eventually(Duration::from_secs(5), || async {
        call().await == StatusCode::BAD_GATEWAY
    })
    .await;
    assert!(refused, "the old trust roots are still used");
    // Portal 2's CA back: trusted again, without a restart.
    std::fs::write(&ca_file, &s.p2.files.ca_pem).unwrap();
    let trusted = eventually(Duration::from_secs(5), || async {
        call().await == StatusCode::OK
    })
    .await;
    assert!(trusted, "the new trust roots are not used");
    // A file that does not load keeps the last good roots.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let seen = eventually(Duration::from_secs(5), || async {
        s.p1.proxy.log_text().contains("keeping the previous roots")
    })
    .await;
    assert!(seen, "the bad file was never read");
    let resp = s.call("peer/x").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Over CA TLS the signature is all Portal 2 verified.
    let echo: Echo = resp.json().await.unwrap();
    let claims = assertion_claims(&echo, &s.p2.files.identity, "alpha");
    assert_eq!(claims["sub"], s.p1.files.identity.id.as_str());
    assert_eq!(claims["ptl_proof"], serde_json::json!(["signature"]));
}

/// The claims of the identity assertion `echo` received from `portal`'s
/// proxy for `app`, verified with `portal`'s assertion key.
fn assertion_claims(
    echo: &Echo,
    portal: &portal_core::identity::Identity,
    app: &str,
) -> serde_json::Value {
    let key = portal_core::assertion::AssertionKey::derive(portal).public_key();
    let x = base64::engine::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, key);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[app]);
    validation.set_issuer(&[&portal.id]);
    jsonwebtoken::decode::<serde_json::Value>(
        &echo.headers["x-ptl-assertion"],
        &jsonwebtoken::DecodingKey::from_ed_components(&x).unwrap(),
        &validation,
    )
    .expect("a valid assertion")
    .claims
}

/// A TLS server holding a certificate for `*.<domain>` from a CA that
/// Portal 1 is made to trust, but not Portal 2's key: it answers every
/// request 200 `rogue`, unsigned. Returns its address and its CA.
async fn rogue_server(domain: &str) -> (SocketAddr, String) {
    let (acceptor, listener, ca_pem) = rogue_listener(domain).await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"rogue")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca_pem)
}

/// A loopback listener and the TLS acceptor of a certificate for
/// `*.<domain>` from a CA of its own (returned, for Portal 1 to trust).
pub(crate) async fn rogue_listener(
    domain: &str,
) -> (tokio_rustls::TlsAcceptor, tokio::net::TcpListener, String) {
    use rustls::pki_types::pem::PemObject;
    let cert = portal_proxy::tls::certificates::demo_certificate(domain).unwrap();
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (acceptor, listener, cert.ca_pem)
}

/// Points Portal 1 at `rogue` for Portal 2, and makes it trust `ca` too.
/// [`impersonate`], then waits until Portal 1 has reloaded both the
/// peers and its trust roots (its log says so each time).
async fn impersonate_reloaded(s: &Setup, rogue: SocketAddr, ca: &str) {
    let count = |what: &str| s.p1.proxy.log_text().matches(what).count();
    let before = (
        count("state reloaded ("),
        count("peering.ca_file reloaded ("),
    );
    impersonate(s, rogue, ca).await;
    let reloaded = eventually(Duration::from_secs(5), || async {
        count("state reloaded (") > before.0 && count("peering.ca_file reloaded (") > before.1
    })
    .await;
    assert!(reloaded, "Portal 1 did not reload its peers and roots");
}

pub(crate) async fn impersonate(s: &Setup, rogue: SocketAddr, ca: &str) {
    let ca_file = s.p1.files.dir.join("peer-ca.pem");
    std::fs::write(&ca_file, format!("{}{ca}", s.p2.files.ca_pem)).unwrap();
    s.p1.files.state_file(
        "peers.json",
        &serde_json::json!([peer_entry(&s.p2.files, rogue, "Portal 2")]).to_string(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_ca_tls_the_answers_signature_catches_a_server_without_the_key() {
    // (Pinned TLS stops it at the handshake: pinned.rs.)
    let s = setup_ca("rogue");
    s.peered().await;
    // A genuine answer is signed and passes.
    let resp = s.call("peer/x").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A server with a valid certificate for Portal 2's domain, not its key.
    let (rogue, ca) = rogue_server(&s.p2.files.domain).await;
    impersonate(&s, rogue, &ca).await;
    let caught = eventually(Duration::from_secs(5), || async {
        s.call_is_unverified().await
    })
    .await;
    assert!(caught, "the rogue server's answer reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_answers_pass_when_not_required() {
    let s = setup_with(
        "rogue-allowed",
        Channel::Ca,
        ", require_response_signature: false",
    );
    s.peered().await;
    let (rogue, ca) = rogue_server(&s.p2.files.domain).await;
    impersonate(&s, rogue, &ca).await;
    let passed = eventually(Duration::from_secs(5), || async {
        let resp = s.call("peer/x").await;
        resp.status() == StatusCode::OK && resp.text().await.unwrap() == "rogue"
    })
    .await;
    assert!(
        passed,
        "an unsigned answer was refused although not required"
    );
}

/// How the man in the middle alters Portal 2's signed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    Nothing,
    AddHeader,
    AddSetCookie,
    SecondContentType,
    ChangeContentType,
    RemoveContentType,
    ChangeStatus,
    /// Portal 2's key signs a 101 (a peer that misbehaves).
    Signed101,
    /// Portal 2's key signs a correct Content-Digest; the body is whole.
    SignedDigest,
    /// Portal 2's key signs a Content-Digest; a body byte is then changed.
    SignedDigestBodyChanged,
    /// The signature removed, this status set, a header and body of the
    /// server's own.
    Unsigned(u16),
}

/// A server with a valid certificate for Portal 2's domain that passes
/// each request on to Portal 2 and alters its answer by `tamper`, signing
/// again with Portal 2's key where the case says so.
async fn tampering_server(s: &Setup, tamper: Tamper) -> (SocketAddr, String) {
    use http_body_util::BodyExt;
    let (acceptor, listener, ca_pem) = rogue_listener(&s.p2.files.domain).await;
    let addr = listener.local_addr().unwrap();
    let (p2, p2_ca, p2_domain) = (
        s.p2.proxy.https,
        s.p2.files.ca_pem.clone(),
        s.p2.files.domain.clone(),
    );
    let p2_identity = std::sync::Arc::new(
        portal_proxy::identity::load(&s.p2.files.dir.join("identity.pem")).unwrap(),
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let (p2_ca, p2_domain, p2_identity) =
                (p2_ca.clone(), p2_domain.clone(), p2_identity.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (p2_ca, p2_domain, p2_identity) =
                            (p2_ca.clone(), p2_domain.clone(), p2_identity.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let host = parts.headers["host"].to_str().unwrap().to_string();
                            let upstream = tls_connect(p2, &format!("alpha.{p2_domain}"), &p2_ca)
                                .await
                                .unwrap();
                            let (mut send, conn) = hyper::client::conn::http1::handshake(
                                hyper_util::rt::TokioIo::new(upstream),
                            )
                            .await
                            .unwrap();
                            tokio::spawn(conn);
                            let mut forward = hyper::Request::builder()
                                .method(parts.method.clone())
                                .uri(parts.uri.clone());
                            for (n, v) in &parts.headers {
                                forward = forward.header(n, v);
                            }
                            let answer = send
                                .send_request(
                                    forward.body(http_body_util::Full::new(body)).unwrap(),
                                )
                                .await
                                .unwrap();
                            let (mut head, answer_body) = answer.into_parts();
                            let mut bytes =
                                answer_body.collect().await.unwrap().to_bytes().to_vec();
                            let resign = |head: &mut http::response::Parts| {
                                let sig = parts.headers["signature"].to_str().unwrap();
                                use base64::Engine as _;
                                let b64 = sig.split_once("=:").unwrap().1.trim_end_matches(':');
                                let req_sig: [u8; 64] = base64::engine::general_purpose::STANDARD
                                    .decode(b64)
                                    .unwrap()
                                    .try_into()
                                    .unwrap();
                                let (path, query) = match parts
                                    .uri
                                    .path_and_query()
                                    .unwrap()
                                    .as_str()
                                    .split_once('?')
                                {
                                    Some((p, q)) => (p.to_string(), Some(q.to_string())),
                                    None => (parts.uri.path().to_string(), None),
                                };
                                let binding = portal_core::signature::response::RequestBinding {
                                    method: parts.method.as_str().into(),
                                    authority: portal_core::signature::authority(&host).into(),
                                    path: path.as_str().into(),
                                    query: query.as_deref().map(Into::into),
                                    label: "portal".into(),
                                    signature: req_sig,
                                };
                                head.headers.remove("signature");
                                head.headers.remove("signature-input");
                                let signed = portal_core::signature::response::sign_response(
                                    &p2_identity.signing_key,
                                    &p2_identity.id,
                                    head.status.as_u16(),
                                    &head.headers,
                                    &binding,
                                    std::time::SystemTime::now()
                                        .duration_since(std::time::UNIX_EPOCH)
                                        .unwrap()
                                        .as_secs() as i64,
                                )
                                .unwrap();
                                head.headers.insert(
                                    "signature-input",
                                    signed.signature_input.parse().unwrap(),
                                );
                                head.headers
                                    .insert("signature", signed.signature.parse().unwrap());
                            };
                            match tamper {
                                Tamper::Nothing => {}
                                Tamper::AddHeader => {
                                    head.headers.insert("x-evil", "1".parse().unwrap());
                                }
                                Tamper::AddSetCookie => {
                                    head.headers
                                        .insert("set-cookie", "session=evil".parse().unwrap());
                                }
                                Tamper::SecondContentType => {
                                    head.headers
                                        .append("content-type", "text/html".parse().unwrap());
                                }
                                Tamper::ChangeContentType => {
                                    head.headers
                                        .insert("content-type", "text/html".parse().unwrap());
                                }
                                Tamper::RemoveContentType => {
                                    head.headers.remove("content-type");
                                }
                                Tamper::ChangeStatus => head.status = http::StatusCode::CREATED,
                                Tamper::Unsigned(status) => {
                                    head.status = http::StatusCode::from_u16(status).unwrap();
                                    head.headers.remove("signature");
                                    head.headers.remove("signature-input");
                                    head.headers.insert("x-evil", "1".parse().unwrap());
                                    head.headers.remove("content-length");
                                    bytes = b"evil bytes".to_vec();
                                }
                                Tamper::Signed101 => {
                                    head.status = http::StatusCode::SWITCHING_PROTOCOLS;
                                    head.headers.insert("upgrade", "websocket".parse().unwrap());
                                    head.headers
                                        .insert("connection", "upgrade".parse().unwrap());
                                    head.headers.remove("content-length");
                                    bytes.clear();
                                    resign(&mut head);
                                }
                                Tamper::SignedDigest | Tamper::SignedDigestBodyChanged => {
                                    head.headers.insert(
                                        "content-digest",
                                        portal_core::signature::content_digest(&bytes)
                                            .parse()
                                            .unwrap(),
                                    );
                                    resign(&mut head);
                                    if tamper == Tamper::SignedDigestBodyChanged {
                                        bytes[0] ^= 1;
                                    }
                                }
                            }
                            let mut response = hyper::Response::from_parts(
                                head,
                                http_body_util::Full::new(bytes::Bytes::from(bytes)),
                            );
                            if tamper == Tamper::Signed101 {
                                *response.body_mut() =
                                    http_body_util::Full::new(bytes::Bytes::new());
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, ca_pem)
}

/// The app gets only what Portal 2 signed: header fields added after
/// signing are removed, a covered field changed, doubled or removed, or
/// the status changed, refuse the answer (502 `peer_unverified`); a 101
/// that no request asked for is refused even when signed; a signed
/// `Content-Digest` is checked as the body streams and an answer whose
/// body does not match is cut, never completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_gets_only_what_the_peer_signed() {
    let s = setup_ca("tamper");
    s.peered().await;
    let call = || async { app_client(ALPHA_IP).get(s.call_url("peer/x")).send().await };
    // A genuine answer first: its fields as signed.
    let resp = call().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for (tamper, want) in [
        (Tamper::Nothing, 200),
        (Tamper::AddHeader, 200),
        (Tamper::AddSetCookie, 200),
        (Tamper::SecondContentType, 502),
        (Tamper::ChangeContentType, 502),
        (Tamper::RemoveContentType, 502),
        (Tamper::ChangeStatus, 502),
        (Tamper::Signed101, 502),
        (Tamper::SignedDigest, 200),
    ] {
        let (mitm, ca) = tampering_server(&s, tamper).await;
        // Until the peers.json and CA reload, answers come from the
        // previous address.
        impersonate_reloaded(&s, mitm, &ca).await;
        let resp = call().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{tamper:?}");
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap();
        assert!(!headers.contains_key("x-evil"), "{tamper:?}");
        assert!(!headers.contains_key("set-cookie"), "{tamper:?}");
        if want == 200 {
            let echo: Echo = serde_json::from_slice(&body).unwrap();
            assert_eq!(echo.upstream, "alpha2", "{tamper:?}");
            assert_eq!(headers.get_all("content-type").iter().count(), 1);
        } else {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["reason"], "peer_unverified", "{tamper:?}: {v}");
        }
    }
    // A body changed after its digest was signed: the answer is cut.
    let (mitm, ca) = tampering_server(&s, Tamper::SignedDigestBodyChanged).await;
    impersonate_reloaded(&s, mitm, &ca).await;
    let resp = call().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the head passed the signature"
    );
    let headers = resp.headers().clone();
    let got = resp.bytes().await;
    assert!(
        got.is_err(),
        "an answer whose body does not match its signed digest was completed: {headers:?} {got:?}\n{}",
        s.p1.proxy.log_text()
    );
}
