//! PROXY protocol input (docs/config.md, "Behind a load balancer"): on the
//! HTTPS and MQTT listeners, a connection from `listen.proxy_protocol_from`
//! starts with a PROXY header (v1 or v2) naming the client, whose address
//! then counts for the rate limits, `X-Forwarded-For` and the access log;
//! from any other address a PROXY header is refused.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The load balancer's address (the only one trusted).
const BALANCER: &str = "127.0.0.9";

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    mqtts: SocketAddr,
    metrics: SocketAddr,
}

fn setup(test: &str, limits: &str) -> Setup {
    let files = PortalFiles::new(test);
    let (alpha, broker) = (Upstream::start("alpha"), start_tcp_echo());
    files
        .app("alpha", &app_meta(r#"{"": {"access": "public"}}"#))
        .app(
            "mosquitto",
            r#"{"entrypoints":[{"container_port":1883,"entrypoint_port":"mqtt"}],"paths":{"":{"access":"private"}}}"#,
        );
    let port = || -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().unwrap() };
    let (mqtts, metrics) = (port(), port());
    let layout = Layout {
        listen: format!(", mqtts: \"{mqtts}\", proxy_protocol_from: [\"{BALANCER}/32\"]"),
        ..Layout::default()
    };
    let extra = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\n\
         upstreams: {{ alpha: \"{}\", mosquitto: {{ mqtt: \"{broker}\" }} }}\n\
         metrics: {{ listen: \"{metrics}\" }}\naccess_log: {{ file: access.log }}\n\
         limits: {{ {limits} }}\n",
        alpha.addr
    );
    let proxy = Proxy::start_with(&files, &layout, &extra);
    std::mem::forget(alpha);
    Setup {
        files,
        proxy,
        mqtts,
        metrics,
    }
}

/// A version 2 PROXY header for a TCP connection from `client`.
fn v2_header(client: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21".to_vec();
    let (family, mut addresses) = match client.ip() {
        IpAddr::V4(ip) => (0x11, [ip.octets().to_vec(), vec![127, 0, 0, 1]].concat()),
        IpAddr::V6(ip) => (
            0x21,
            [
                ip.octets().to_vec(),
                std::net::Ipv6Addr::LOCALHOST.octets().to_vec(),
            ]
            .concat(),
        ),
    };
    addresses.extend_from_slice(&client.port().to_be_bytes());
    addresses.extend_from_slice(&443u16.to_be_bytes());
    h.push(family);
    h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    h.extend_from_slice(&addresses);
    h
}

/// Connects from `from`, writes `header`, then does TLS for `host`.
async fn connect_with(
    from: &str,
    to: SocketAddr,
    header: &[u8],
    host: &str,
    ca_pem: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let mut tcp = source_socket(Some(from.parse().unwrap()))
        .unwrap()
        .connect(to)
        .await
        .map_err(|e| e.to_string())?;
    tcp.write_all(header).await.map_err(|e| e.to_string())?;
    tls_over(tcp, host, ca_pem, &[b"http/1.1"]).await
}

/// `GET /who` through the balancer with `header` (and a spoofed
/// `X-Forwarded-For`): the status and what the app received.
async fn get_with(s: &Setup, header: &[u8]) -> Result<(u16, Option<Echo>), String> {
    let host = s.files.host("alpha");
    let mut tls = connect_with(BALANCER, s.proxy.https, header, &host, &s.files.ca_pem).await?;
    let request = format!(
        "GET /who HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let echo = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok());
    Ok((status, echo))
}

/// The `client` of the access log's lines, in order.
fn logged_clients(files: &PortalFiles) -> Vec<String> {
    std::fs::read_to_string(files.dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|l| l["client"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancers_header_names_the_client() {
    let s = setup("pp-client", "anonymous_requests_per_second: 0");
    // (header, the client the app and the log must see)
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n".to_vec(),
            "203.0.113.7",
        ),
        (
            b"PROXY TCP6 2001:db8::7 ::1 5555 443\r\n".to_vec(),
            "2001:db8::7",
        ),
        (
            v2_header("198.51.100.4:4000".parse().unwrap()),
            "198.51.100.4",
        ),
        (
            v2_header("[2001:db8::8]:4000".parse().unwrap()),
            "2001:db8::8",
        ),
        // The balancer's own connections (health checks) are its own.
        (b"PROXY UNKNOWN\r\n".to_vec(), BALANCER),
        (b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec(), BALANCER),
    ];
    for (header, client) in &cases {
        let shown = String::from_utf8_lossy(header).into_owned();
        let (status, echo) = get_with(&s, header).await.unwrap();
        assert_eq!(status, 200, "{shown:?}");
        let echo = echo.unwrap();
        assert_eq!(echo.headers["x-forwarded-for"], *client, "{shown:?}");
    }
    let wanted: Vec<&str> = cases.iter().map(|(_, c)| *c).collect();
    let logged = eventually(Duration::from_secs(5), || {
        std::future::ready(logged_clients(&s.files).len() >= wanted.len())
    })
    .await;
    assert!(logged);
    assert_eq!(logged_clients(&s.files), wanted);

    // MQTT over TLS behind the balancer: relayed as before.
    let header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 8883\r\n";
    let host = s.files.host("mosquitto");
    let mut tls = connect_with(BALANCER, s.mqtts, header, &host, &s.files.ca_pem)
        .await
        .unwrap();
    tls.write_all(b"\x10\x0c\x00\x04MQTT").await.unwrap();
    let mut back = [0u8; 8];
    let read = tls.read_exact(&mut back).await;
    assert!(read.is_ok(), "{read:?}:\n{}", s.proxy.log_text());
    assert_eq!(&back, b"\x10\x0c\x00\x04MQTT");
    let text = metrics_text(s.metrics).await;
    let accepted = "portal_proxy_proxy_protocol_total{result=\"accepted\"}";
    assert_eq!(series_value(&text, accepted), Some(5.0), "{text}");
    let local = "portal_proxy_proxy_protocol_total{result=\"local\"}";
    assert_eq!(series_value(&text, local), Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_refused_from_others_and_required_from_the_balancer() {
    let s = setup("pp-refused", "anonymous_requests_per_second: 0");
    let (https, mqtts) = (s.proxy.https, s.mqtts);
    let (alpha, broker) = (s.files.host("alpha"), s.files.host("mosquitto"));
    let ca = &s.files.ca_pem;
    let valid = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n".to_vec();
    // (from, to, host, what comes first, result counted)
    let cases: Vec<(&str, SocketAddr, &str, Vec<u8>, &str)> = vec![
        // Anyone else: a header, valid or not, v1 or v2, on either listener.
        ("127.0.0.1", https, &alpha, valid.clone(), "untrusted"),
        (
            "127.0.0.1",
            https,
            &alpha,
            v2_header("203.0.113.7:1".parse().unwrap()),
            "untrusted",
        ),
        ("127.0.0.2", mqtts, &broker, valid.clone(), "untrusted"),
        (
            "127.0.0.1",
            https,
            &alpha,
            b"PROXY nonsense\r\n".to_vec(),
            "untrusted",
        ),
        // The balancer: a header it must send, whole and valid.
        (BALANCER, https, &alpha, Vec::new(), "missing"),
        (BALANCER, mqtts, &broker, Vec::new(), "missing"),
        (
            BALANCER,
            https,
            &alpha,
            b"PROXY TCP4 203.0.113.7 nonsense\r\n".to_vec(),
            "malformed",
        ),
        (
            BALANCER,
            https,
            &alpha,
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n".to_vec(),
            "malformed",
        ),
        (
            BALANCER,
            https,
            &alpha,
            format!("PROXY TCP4 {}", "1".repeat(120)).into_bytes(),
            "malformed",
        ),
    ];
    let before = metrics_text(s.metrics).await;
    for (from, to, host, header, _) in &cases {
        let shown = String::from_utf8_lossy(header).into_owned();
        let started = std::time::Instant::now();
        let tls = connect_with(from, *to, header, host, ca).await;
        assert!(tls.is_err(), "{from} {shown:?}: no TLS after the header");
        // Closed at once, not at the handshake deadline (10 s).
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{from} {shown:?}: closed after {took:?}"
        );
    }
    let after = metrics_text(s.metrics).await;
    for result in ["untrusted", "missing", "malformed"] {
        let series = format!("portal_proxy_proxy_protocol_total{{result=\"{result}\"}}");
        let counted =
            series_value(&after, &series).unwrap() - series_value(&before, &series).unwrap();
        let expected = cases.iter().filter(|c| c.4 == result).count() as f64;
        assert_eq!(counted, expected, "{result}");
    }
    // Without a header, anyone else is served as before, under its own
    // address.
    let client = client(ca, Protocol::Http1);
    let resp = client
        .get(s.proxy.url(&alpha, "/direct"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_counts_the_client_the_balancer_names() {
    let s = setup("pp-rate", "anonymous_requests_per_second: 5");
    let flood = b"PROXY TCP4 203.0.113.1 127.0.0.1 5555 443\r\n";
    let mut limited = 0;
    for _ in 0..30 {
        let (status, _) = get_with(&s, flood).await.unwrap();
        assert!(status == 200 || status == 429, "{status}");
        limited += usize::from(status == 429);
    }
    assert!(limited > 0, "203.0.113.1 was never limited");
    // Another client behind the same balancer is served.
    let other = b"PROXY TCP4 203.0.113.2 127.0.0.1 5555 443\r\n";
    for _ in 0..3 {
        let (status, echo) = get_with(&s, other).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(echo.unwrap().headers["x-forwarded-for"], "203.0.113.2");
    }
}
