//! The internal listener stands in for `http://portal_core/`
//! (docs/peering.md): every request it does not answer itself goes to the core
//! unchanged and streamed, with `X-Ptl-App` naming the calling app.

use std::net::SocketAddr;

use crate::common::*;

struct Setup {
    _files: PortalFiles,
    _proxy: Proxy,
    core: Upstream,
    internal: SocketAddr,
}

fn setup(test: &str) -> Setup {
    let files = PortalFiles::new(test);
    let core = Upstream::start("core");
    // 127.0.0.1 is the app `web`; 127.0.0.2 is no app's.
    files.state_file("app_addresses.json", r#"{"web": ["127.0.0.1"]}"#);
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"{}\" }}\ninternal: {{ listen: \"{internal}\" }}\n\
             assertion: {{ header: X-Portal-Assertion }}\n",
            core.addr
        ),
    );
    Setup {
        _files: files,
        _proxy: proxy,
        core,
        internal,
    }
}

/// Sends `request` as written from `from` and returns the whole answer.
async fn exchange(from: [u8; 4], to: SocketAddr, request: &[u8]) -> String {
    tcp_exchange(Some(std::net::Ipv4Addr::from(from).into()), to, request).await
}

fn echo_of(answer: &str) -> Echo {
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_go_to_the_core_unchanged() {
    let s = setup("portal-core");
    // The request-target as the app wrote it: no re-encoding.
    for target in [
        "/protected/peers",
        "/public/x?name=it's&q={a}|b^c",
        "/a%7Eb/%e2%82%AC/%7e?x=%41%4a&&",
        "/p?",
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: portal_core\r\nX-Ptl-App: spoofed\r\nX_Ptl_Client_Id: spoofed\r\nX_Portal_Assertion: spoofed\r\nX-Portal-Assertion: spoofed\r\nConnection: close\r\n\r\n"
        );
        let echo = echo_of(&exchange([127, 0, 0, 1], s.internal, request.as_bytes()).await);
        assert_eq!(echo.target, target);
        assert_eq!(echo.upstream, "core");
        assert_eq!(echo.headers["x-ptl-app"], "web", "{target}");
        assert_eq!(echo.headers["host"], "portal_core");
        assert!(!echo.headers.contains_key("x_ptl_client_id"));
        // The assertion's header, named otherwise by the config: no
        // app's copy in any spelling.
        for name in ["x-portal-assertion", "x_portal_assertion"] {
            assert!(
                !echo.headers.contains_key(name),
                "{name}: {:?}",
                echo.headers
            );
        }
    }
    // An unknown source: the core decides, with an empty X-Ptl-App.
    let echo = echo_of(
        &exchange(
            [127, 0, 0, 2],
            s.internal,
            b"GET /protected/peers HTTP/1.1\r\nHost: portal_core\r\nX-Ptl-App: web\r\nConnection: close\r\n\r\n",
        )
        .await,
    );
    assert_eq!(echo.headers["x-ptl-app"], "");
    // A body, streamed to the core whole.
    let body = vec![b'z'; 300_000];
    let mut request = format!(
        "POST /protected/upload HTTP/1.1\r\nHost: portal_core\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let echo = echo_of(&exchange([127, 0, 0, 1], s.internal, &request).await);
    assert_eq!(echo.body_len, body.len());
    assert_eq!(echo.body_sha256, sha256_hex(&body));
    // A large answer comes back whole.
    let answer = exchange(
        [127, 0, 0, 1],
        s.internal,
        b"GET /files/bytes/3000000 HTTP/1.1\r\nHost: portal_core\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(rest.len() >= 3_000_000, "{} bytes", rest.len());
    // The listener's own paths are still its own.
    let answer = exchange(
        [127, 0, 0, 1],
        s.internal,
        b"GET /internal/peers HTTP/1.1\r\nHost: portal_core\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("[]"),
        "{answer}"
    );
    let received = s.core.received.lock().unwrap().len();
    assert_eq!(received, 4 + 1 + 1 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_that_is_down_is_a_502() {
    let files = PortalFiles::new("portal-core-down");
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _proxy = Proxy::start(
        &files,
        &format!("core: {{ upstream: \"127.0.0.1:1\" }}\ninternal: {{ listen: \"{internal}\" }}\n"),
    );
    let answer = exchange(
        [127, 0, 0, 1],
        internal,
        b"GET /protected/peers HTTP/1.1\r\nHost: portal_core\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
}
