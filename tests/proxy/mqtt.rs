//! MQTT over TLS (README.md, "How requests are handled"): TLS terminated on `listen.mqtts`, the
//! app chosen by SNI, bytes relayed to its `mqtt` entrypoint.

use std::net::SocketAddr;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A Portal with `mosquitto` (http and mqtt entrypoints) and `web` (http
/// only); returns the files, the proxy and its mqtts address.
fn setup(test: &str) -> (PortalFiles, Proxy, SocketAddr) {
    let files = PortalFiles::new(test);
    let broker = start_tcp_echo();
    files
        .app(
            "mosquitto",
            r#"{"entrypoints":[{"container_port":1883,"entrypoint_port":"mqtt"},{"container_port":9001,"entrypoint_port":"http"}],"paths":{"":{"access":"private"}}}"#,
        )
        .app("web", &app_meta(r#"{"": {"access": "public"}}"#));
    let mqtts: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let layout = Layout {
        listen: format!(", mqtts: \"{mqtts}\""),
        ..Layout::default()
    };
    let extra = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams:\n  mosquitto: {{ mqtt: \"{broker}\" }}\n"
    );
    let proxy = Proxy::start_with(&files, &layout, &extra);
    (files, proxy, mqtts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_reach_the_app_chosen_by_sni() {
    let (files, _proxy, mqtts) = setup("mqtt-relay");
    let ready = eventually(std::time::Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(mqtts).await.is_ok()
    })
    .await;
    assert!(ready, "the mqtts listener is not up");
    let mut tls = tls_connect(mqtts, &files.host("mosquitto"), &files.ca_pem)
        .await
        .unwrap();
    // An MQTT CONNECT packet's first bytes, then more: all come back.
    let message = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c and more bytes";
    tls.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    tls.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, message);
    // A second exchange on the same connection.
    tls.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    tls.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_names_are_closed() {
    let (files, _proxy, mqtts) = setup("mqtt-closed");
    let ready = eventually(std::time::Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(mqtts).await.is_ok()
    })
    .await;
    assert!(ready);
    // `web` has no mqtt entrypoint; `nope` is no app.
    for app in ["web", "nope"] {
        let mut tls = tls_connect(mqtts, &files.host(app), &files.ca_pem)
            .await
            .unwrap();
        let _ = tls.write_all(b"hello").await;
        let mut buf = [0u8; 16];
        let n = tls.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "{app}: the connection must be closed, not relayed");
    }
}
