//! WebSockets through the proxy: the HTTP/1.1 upgrade reaches the app and
//! bytes flow both ways; access control applies to the upgrade request.

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = r#"{"": {"access": "private"}, "/ws/": {"access": "public"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_reaches_the_app_and_bytes_flow_both_ways() {
    let files = PortalFiles::new("websocket");
    let app = Upstream::start("app");
    files.app("app", &app_meta(APP));
    let proxy = Proxy::start(&files, &only_app_yaml(&app));
    let host = files.host("app");
    let mut tls = tls_connect(proxy.https, &host, &files.ca_pem)
        .await
        .unwrap();
    tls.write_all(upgrade_request(&host, "/ws/chat", "").as_bytes())
        .await
        .unwrap();
    let head = read_response_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for message in [
        &b"hello"[..],
        &[0x81, 0x05, b'f', b'r', b'a', b'm', b'e'][..],
    ] {
        tls.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        tls.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    }

    // The upgrade of a private path needs a terminal like any request.
    let mut tls = tls_connect(proxy.https, &host, &files.ca_pem)
        .await
        .unwrap();
    tls.write_all(upgrade_request(&host, "/private-ws", "").as_bytes())
        .await
        .unwrap();
    let head = read_response_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

/// An app that answers an upgrade at once, its first frame in the same
/// write as its 101, then echoes (a fast WebSocket server on loopback).
fn eager_upgrade_app() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                               Connection: Upgrade\r\n\r\nhello";
                if stream.write_all(answer).is_err() {
                    return;
                }
                let mut reader = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut reader, &mut stream);
            });
        }
    });
    addr
}

/// Pingora 0.9.1 could tear a tunnel down right after its 101 when the
/// app's answer was read before the end of the upgrade request's own
/// (empty) body (pingora#946): the client got the 101, then end of file.
/// The proxy builds on a patched copy (vendor/pingora-proxy). Every one of
/// 500 upgrades to an app that answers at once, its first frame with the
/// 101, must carry bytes both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_to_an_eager_app_stay_open() {
    let files = PortalFiles::new("websocket-eager");
    let app = eager_upgrade_app();
    files.app("app", &app_meta(APP));
    // 500 upgrades from one address, over the anonymous rate limit.
    let yaml = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ app: \"{app}\" }}\n\
         limits: {{ anonymous_requests_per_second: 0 }}\n"
    );
    let proxy = Proxy::start(&files, &yaml);
    let host = files.host("app");
    let mut closed = Vec::new();
    for attempt in 0..500 {
        let mut tls = tls_connect(proxy.https, &host, &files.ca_pem)
            .await
            .unwrap();
        tls.write_all(upgrade_request(&host, "/ws/eager", "").as_bytes())
            .await
            .unwrap();
        let head = read_response_head(&mut tls).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{attempt}: {head}");
        let mut first = [0u8; 5];
        let echoed = async {
            tls.read_exact(&mut first).await?;
            tls.write_all(b"ping").await?;
            let mut back = [0u8; 4];
            tls.read_exact(&mut back).await?;
            std::io::Result::Ok(back)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), echoed).await {
            Ok(Ok(back)) => {
                assert_eq!(&first, b"hello", "{attempt}: the app's first frame");
                assert_eq!(&back, b"ping", "{attempt}");
            }
            Ok(Err(e)) => closed.push(format!("{attempt}: {e}")),
            Err(_) => closed.push(format!("{attempt}: no echo within 5 s")),
        }
    }
    assert!(
        closed.is_empty(),
        "{} of 500 tunnels closed after their 101: {closed:?}",
        closed.len()
    );
}
