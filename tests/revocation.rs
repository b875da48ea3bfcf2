//! Revocation reaches what is already open (DESIGN section 4): within 2 s
//! of a reload that removes a terminal, or makes a rule stricter, a
//! WebSocket or a streaming response its caller could no longer open is
//! closed; what is still allowed keeps flowing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = r#"{"": {"access": "public"}, "/shell/": {"access": "private"}}"#;

/// Sends `message` and waits for it to come back; false once the
/// connection is closed.
async fn echoes(tls: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin), message: &[u8]) -> bool {
    if tls.write_all(message).await.is_err() {
        return false;
    }
    let mut back = vec![0u8; message.len()];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tls.read_exact(&mut back)).await,
        Ok(Ok(_))
    ) && back == message
}

/// A Portal with the app `app` of [`APP`] and terminals t1 and t2.
fn start(test: &str) -> (PortalFiles, Proxy, Upstream) {
    let files = PortalFiles::new(test);
    let app = Upstream::start("app");
    files
        .app("app", &app_meta(APP))
        .terminals(&[("t1", "Laptop"), ("t2", "Phone")]);
    let proxy = Proxy::start(&files, &only_app_yaml(&app));
    (files, proxy, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_terminal_loses_its_open_websocket() {
    let (files, proxy, _app) = start("revoke-ws");
    let host = files.host("app");
    let mut shells = Vec::new();
    for terminal in ["t1", "t2"] {
        let mut tls = tls_connect(proxy.https, &host, &files.ca_pem)
            .await
            .unwrap();
        let bearer = format!(
            "Authorization: Bearer {}\r\n",
            files.terminal_token(terminal)
        );
        let request = upgrade_request(&host, "/shell/ws", &bearer);
        tls.write_all(request.as_bytes()).await.unwrap();
        let head = read_response_head(&mut tls).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(echoes(&mut tls, b"ls\n").await);
        shells.push(tls);
    }
    files.terminals(&[("t2", "Phone")]);
    let removed = Instant::now();
    let mut t1 = shells.remove(0);
    let mut closed = false;
    while removed.elapsed() < Duration::from_secs(4) {
        if !echoes(&mut t1, b"whoami\n").await {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "t1's shell still open 4 s after its removal");
    assert!(
        removed.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        removed.elapsed()
    );
    // t2 keeps its shell.
    assert!(echoes(&mut shells[0], b"still here\n").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stricter_rule_closes_an_open_stream() {
    let files = PortalFiles::new("revoke-stream");
    let app = Upstream::start("app");
    files
        .app("app", &app_meta(APP))
        .terminals(&[("t1", "Laptop")]);
    let proxy = Proxy::start(&files, &only_app_yaml(&app));
    let host = files.host("app");
    // 40 events, 300 ms apart: 12 s if nothing stops it.
    let anonymous = client(&files.ca_pem, Protocol::Http1);
    let terminal = client(&files.ca_pem, Protocol::Http2);
    let mut open = anonymous
        .get(proxy.url(&host, "/events/40"))
        .send()
        .await
        .unwrap();
    let mut kept = terminal
        .get(proxy.url(&host, "/events/40"))
        .bearer_auth(files.terminal_token("t1"))
        .send()
        .await
        .unwrap();
    assert!(open.chunk().await.unwrap().is_some());
    assert!(kept.chunk().await.unwrap().is_some());
    // The whole app becomes private.
    files.app("app", &app_meta(r#"{"": {"access": "private"}}"#));
    let changed = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match open.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return changed.elapsed(),
            }
        }
    })
    .await;
    let ended = ended.expect("the anonymous stream still flows 5 s after the rule changed");
    assert!(ended < Duration::from_secs(3), "ended after {ended:?}");
    // The terminal may still read it: its stream goes on.
    for _ in 0..3 {
        assert!(kept.chunk().await.unwrap().is_some());
    }
}
