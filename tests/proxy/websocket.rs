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
