//! Slow and idle clients never lock others out (README.md, "Operating it"), with
//! the deadlines scaled down to 1 s: silent connections before and after
//! TLS, dribbled heads, the per-client limit, a flood of idle connections
//! at the cap (which never sheds a metrics or internal connection), an
//! idle MQTT relay; and what must NOT be cut: a long slow
//! upload and a long event stream (bodies have idle timeouts only).
//! Every loop is bounded in time and count, on loopback only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The scaled-down limits of these tests.
const LIMITS: &str = "handshake_timeout_seconds: 1, request_head_timeout_seconds: 1, \
                      max_connections_per_client: 20, mqtt_idle_timeout_seconds: 1";

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    app: Upstream,
    mqtts: SocketAddr,
}

/// A proxy with `limits` (YAML flow-map entries; [`LIMITS`] for most).
fn setup(test: &str, limits: &str) -> Setup {
    setup_with(test, limits, "")
}

/// [`setup`] with more top-level config sections (`more`, YAML).
fn setup_with(test: &str, limits: &str, more: &str) -> Setup {
    let files = PortalFiles::new(test);
    let app = Upstream::start("web");
    let broker = start_tcp_echo();
    files
        .app("web", &app_meta(r#"{"": {"access": "public"}}"#))
        .app(
            "mosquitto",
            r#"{"entrypoints":[{"container_name":"m","container_port":1883,"entrypoint_port":"mqtt"}],"paths":{"":{"access":"public"}}}"#,
        );
    let mqtts: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Idle upstream connections are kept (and hold descriptors under the
    // cap) per limits: few here, where caps are small.
    let layout = Layout {
        listen: format!(", mqtts: \"{mqtts}\""),
        server: ", upstream_keepalive_pool_size: 2".into(),
        ..Layout::default()
    };
    let extra = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams:\n  web: \"{}\"\n  mosquitto: {{ mqtt: \"{broker}\" }}\nlimits: {{ {limits} }}\n{more}",
        app.addr
    );
    let proxy = Proxy::start_with(&files, &layout, &extra);
    Setup {
        files,
        proxy,
        app,
        mqtts,
    }
}

/// How long until the proxy closes `stream` (EOF or reset), at most
/// `within`; `None` if it is still open then.
async fn closed_after<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            // A 4xx/408 answer before the close is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

/// `portal_proxy_connections_shed_total` on the metrics listener `metrics`.
async fn shed_total(metrics: SocketAddr) -> f64 {
    let text = metrics_text(metrics).await;
    series_value(&text, "portal_proxy_connections_shed_total").unwrap_or(0.0)
}

/// Whether the proxy has closed `c` (EOF or reset) or written to it, seen
/// without waiting: a socket with nothing to read is open.
fn closed_now(c: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    !matches!(c.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

impl Setup {
    async fn get_ok(&self) -> bool {
        let resp = client(&self.files.ca_pem, Protocol::Http1)
            .get(self.proxy.url(&self.files.host("web"), "/ok"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        resp.is_ok_and(|r| r.status() == StatusCode::OK)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_dribbling_connections_are_closed() {
    let s = setup("slow-silent", LIMITS);
    // Before TLS: a TCP connection that never says hello.
    let mut tcp = TcpStream::connect(s.proxy.https).await.unwrap();
    let t = closed_after(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(3)),
        "before TLS: {t:?}"
    );

    // After TLS: a connection that never sends a request.
    let host = s.files.host("web");
    let mut tls = tls_connect(s.proxy.https, &host, &s.files.ca_pem)
        .await
        .unwrap();
    let t = closed_after(&mut tls, Duration::from_secs(5)).await;
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(3)),
        "after TLS: {t:?}"
    );

    // A head dribbled a byte every 100 ms: never complete in time.
    let mut tls = tls_connect(s.proxy.https, &host, &s.files.ca_pem)
        .await
        .unwrap();
    let head = format!(
        "GET /dribble HTTP/1.1\r\nHost: {host}\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(100)
    );
    let start = Instant::now();
    let mut cut = None;
    for b in head.bytes() {
        if tls.write_all(&[b]).await.is_err() {
            cut = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let cut = match cut {
        Some(t) => Some(t),
        None => closed_after(&mut tls, Duration::from_secs(2))
            .await
            .map(|t| t + start.elapsed()),
    };
    assert!(
        cut.is_some_and(|t| t < Duration::from_secs(4)),
        "dribbled head: {cut:?}"
    );

    // Port 80 too.
    let mut tcp = TcpStream::connect(s.proxy.http).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let t = closed_after(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(3)),
        "port 80: {t:?}"
    );

    // A request dribbled into the MQTT listener before TLS.
    let mut tcp = TcpStream::connect(s.mqtts).await.unwrap();
    let t = closed_after(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(3)),
        "mqtts: {t:?}"
    );

    assert!(s.app.received.lock().unwrap().is_empty());
    assert!(s.get_ok().await, "a normal request is served");
    let log = s.proxy.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_at_most_its_share() {
    // A long handshake deadline: the held connections stay for the test.
    let s = setup(
        "slow-per-client",
        "handshake_timeout_seconds: 30, max_connections_per_client: 20",
    );
    // From an address of its own, so that nothing else (the harness's
    // readiness probes) counts in its share.
    let from: std::net::IpAddr = "127.0.0.9".parse().unwrap();
    // 25 connections: the 5 over the limit are closed at once (before any
    // handshake), whichever the proxy happens to take last.
    let mut held = Vec::new();
    for _ in 0..25 {
        let socket = source_socket(Some(from)).unwrap();
        held.push(socket.connect(s.proxy.https).await.unwrap());
    }
    let closed = || held.iter().filter(|c| closed_now(c)).count();
    let five = eventually(Duration::from_secs(5), || async { closed() >= 5 }).await;
    assert!(five, "{} closed over the per-client limit of 20", closed());
    assert_eq!(closed(), 5, "connections over the per-client limit");
    // Once the client closes the held ones, it is served again, long
    // before their handshake deadline.
    drop(held);
    let start = Instant::now();
    let served = eventually(Duration::from_secs(5), || {
        served_from(&s, from, Duration::from_secs(5))
    })
    .await;
    assert!(served && start.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_at_the_cap_does_not_keep_a_client_out() {
    // A cap just above what the process holds at rest, and no per-client
    // limit to speak of: 120 idle connections fill it many times over.
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let s = setup_with(
        "slow-flood",
        "max_client_connections: 64, max_connections_per_client: 10000, \
         handshake_timeout_seconds: 30, request_head_timeout_seconds: 30",
        &format!("metrics: {{ listen: \"{metrics}\" }}\n"),
    );
    let mut flood = Vec::new();
    for _ in 0..120 {
        if let Ok(c) = TcpStream::connect(s.proxy.https).await {
            flood.push(c);
        }
    }
    // The flood happened: all 120 connected, and the cap was reached.
    assert_eq!(flood.len(), 120);
    let shed = || shed_total(metrics);
    assert!(
        eventually(Duration::from_secs(5), || async { shed().await >= 1.0 }).await,
        "the flood never reached the cap"
    );
    // The idle ones are shed for the real client, well inside their 30 s.
    let start = Instant::now();
    let served = eventually(Duration::from_secs(20), || s.get_ok()).await;
    assert!(
        served,
        "not served within 20 s of a flood of idle connections"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_the_cap_never_sheds_a_private_listener() {
    // The metrics and internal listeners are outside the cap: a flood of
    // public connections at the cap sheds public ones only, even when a
    // private connection is the oldest that has not sent its request.
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let s = setup_with(
        "slow-private",
        "max_client_connections: 64, max_connections_per_client: 10000, \
         handshake_timeout_seconds: 30, request_head_timeout_seconds: 30",
        &format!("metrics: {{ listen: \"{metrics}\" }}\ninternal: {{ listen: \"{internal}\" }}\n"),
    );
    // Connected, nothing sent yet: the oldest connections of the process.
    let mut private = Vec::new();
    for addr in [metrics, internal, metrics, internal] {
        private.push((addr, TcpStream::connect(addr).await.unwrap()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut flood = Vec::new();
    for _ in 0..120 {
        if let Ok(c) = TcpStream::connect(s.proxy.https).await {
            flood.push(c);
        }
    }
    // The cap was reached and public connections were shed for a client.
    assert!(eventually(Duration::from_secs(20), || s.get_ok()).await);
    let shed = series_value(
        &metrics_text(metrics).await,
        "portal_proxy_connections_shed_total",
    );
    assert!(shed.is_some_and(|n| n >= 1.0), "{shed:?}");
    // Every private connection still answers its first request.
    for (addr, mut conn) in private {
        let path = if addr == metrics { "/metrics" } else { "/" };
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 "), "{addr}: {answer:?}");
        if addr == metrics {
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_and_long_streams_are_not_cut() {
    let s = setup("slow-bodies", LIMITS);
    let host = s.files.host("web");
    // An upload of 3 s, a chunk every 250 ms: only its head has a deadline.
    let mut tls = tls_connect(s.proxy.https, &host, &s.files.ca_pem)
        .await
        .unwrap();
    let chunks = 12;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        chunks * 1000
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        tokio::time::sleep(Duration::from_millis(250)).await;
        tls.write_all(&[b'x'; 1000]).await.unwrap();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echo: Echo = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(echo.body_len, chunks * 1000);

    // An event stream of 3 s, over HTTP/1.1 and HTTP/2.
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let start = Instant::now();
        let mut resp = client(&s.files.ca_pem, protocol)
            .get(s.proxy.url(&host, "/events/10"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut events = 0;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            events += String::from_utf8_lossy(&chunk)
                .matches("data: tick")
                .count();
        }
        assert_eq!(events, 10, "{protocol:?}");
        assert!(start.elapsed() > Duration::from_secs(2));
    }
    // Keep-alive: a second request on the same connection, after a pause
    // longer than the head deadline, is served (idle is not a slow head).
    let client = client(&s.files.ca_pem, Protocol::Http1);
    for _ in 0..2 {
        let resp = client
            .get(s.proxy.url(&host, "/again"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_mqtt_relay_is_closed_and_a_busy_one_is_not() {
    let s = setup("slow-mqtt", LIMITS);
    let host = format!("mosquitto.{}", s.files.domain);
    // Busy: a message every 300 ms for 2.4 s, each echoed back.
    let mut tls = tls_connect(s.mqtts, &host, &s.files.ca_pem).await.unwrap();
    for i in 0..8u8 {
        tls.write_all(&[i; 4]).await.unwrap();
        let mut back = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), tls.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, [i; 4]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Idle: closed after about 1 s.
    let t = closed_after(&mut tls, Duration::from_secs(5)).await;
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(3)),
        "idle relay: {t:?}"
    );
}

/// A request to the app from the source address `from` (a client of its
/// own), answered within `within`.
async fn served_from(s: &Setup, from: std::net::IpAddr, within: Duration) -> bool {
    let client = client_builder(&s.files.ca_pem, Protocol::Http1)
        .local_address(from)
        .timeout(within)
        .build()
        .unwrap();
    client
        .get(s.proxy.url(&s.files.host("web"), "/ok"))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

/// A proxy at the default limits (and `more` YAML) whose open-files limit
/// is 300, with no MQTT listener; this test process's own limit raised.
fn under_300_open_files(test: &str, more: &str) -> Setup {
    raise_own_open_files_limit();
    let files = PortalFiles::new(test);
    let app = Upstream::start("web");
    files.app("web", &app_meta(r#"{"": {"access": "public"}}"#));
    let layout = Layout {
        open_files: Some(300),
        ..Layout::default()
    };
    let extra = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams:\n  web: \"{}\"\n{more}",
        app.addr
    );
    let proxy = Proxy::start_with(&files, &layout, &extra);
    Setup {
        files,
        proxy,
        app,
        mqtts: "127.0.0.1:1".parse().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_design_scenario_under_300_open_files() {
    // README.md, "Operating it", at the default limits: with the open-files limit
    // at 300, 400 idle TCP connections and 20 clients dribbling header
    // lines do not keep a normal client from being served within 20 s.
    let s = under_300_open_files("slow-design", "");
    let host = s.files.host("web");
    // 400 idle connections, from 127.0.0.1.
    let mut idle = Vec::new();
    for _ in 0..400 {
        if let Ok(c) = TcpStream::connect(s.proxy.https).await {
            idle.push(c);
        }
    }
    // 20 clients, each from an address of its own, dribbling header lines.
    let mut dribblers = Vec::new();
    let dribbling = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..20u8 {
        let from = std::net::IpAddr::from([127, 0, 0, 10 + i]);
        let addr = s.proxy.https;
        let (host, ca) = (host.clone(), s.files.ca_pem.clone());
        let dribbling = dribbling.clone();
        dribblers.push(tokio::spawn(async move {
            // As an attacker would, it tries again until it is in: at
            // the cap, a new handshake may be refused until idle
            // connections have been shed.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut tls = loop {
                match tls_connect_from(Some(from), addr, &host, &ca).await {
                    Ok(tls) => break tls,
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(_) => return,
                }
            };
            let _ = tls
                .write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n").as_bytes())
                .await;
            dribbling.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for n in 0..25 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tls
                    .write_all(format!("X-Line-{n}: x\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    // The twenty are in, each with its head begun.
    let all_in = eventually(Duration::from_secs(10), || async {
        dribbling.load(std::sync::atomic::Ordering::Relaxed) == 20
    })
    .await;
    assert!(
        all_in,
        "{} dribblers connected",
        dribbling.load(std::sync::atomic::Ordering::Relaxed)
    );
    let start = Instant::now();
    let normal = std::net::IpAddr::from([127, 0, 0, 2]);
    let served = eventually(Duration::from_secs(20), || {
        served_from(&s, normal, Duration::from_secs(5))
    })
    .await;
    assert!(served, "a normal client was not served within 20 s");
    eprintln!("served after {:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    for d in dribblers {
        d.abort();
    }
    drop(idle);
}

/// Issue 26, item 6: near the descriptor limit (300 open files), 200
/// uploads at a legal rate, each from an address of its own, each holding
/// a client and an upstream socket, cannot keep a new client from another
/// address out: upstream sockets count in the cap and in each address's
/// share of it, so the oldest upload of an address over its share gives
/// way, and the new client is served within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sockets_count_in_the_cap() {
    let s = under_300_open_files(
        "slow-upstream-fds",
        "limits: { anonymous_requests_per_second: 0 }\n",
    );
    let host = s.files.host("web");
    // Uploads under way, and uploads that tried (whatever came of it).
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut uploads = Vec::new();
    for i in 0..200u32 {
        let from = std::net::IpAddr::from([127, 0, 1 + (i / 250) as u8, 2 + (i % 250) as u8]);
        let addr = s.proxy.https;
        let (host, ca) = (host.clone(), s.files.ca_pem.clone());
        let (started, tried) = (started.clone(), tried.clone());
        uploads.push(tokio::spawn(async move {
            let connected = tls_connect_from(Some(from), addr, &host, &ca).await;
            tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Ok(mut tls) = connected else {
                return;
            };
            let head = format!(
                "POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000000\r\n\r\n"
            );
            if tls.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // 4 KiB a second, over the 1 KiB/s minimum, for a minute.
            for _ in 0..240 {
                if tls.write_all(&[b'x'; 1024]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }
    // Every upload tried: 200 at three descriptors each are far more than
    // the cap's 240, so the cap is full of busy connections (the later
    // ones shed the earlier ones, or were refused).
    let all_tried = eventually(Duration::from_secs(30), || {
        std::future::ready(tried.load(std::sync::atomic::Ordering::Relaxed) == 200)
    })
    .await;
    let begun = started.load(std::sync::atomic::Ordering::Relaxed);
    assert!(all_tried && begun >= 60, "{begun} uploads began");
    let newcomer = std::net::IpAddr::from([127, 0, 2, 1]);
    for _ in 0..3 {
        // Served within 2 s of its first try, as a browser that tries its
        // request again on a new connection when one is closed at once.
        let start = Instant::now();
        let served = eventually(Duration::from_secs(2), || {
            let left = Duration::from_secs(2).saturating_sub(start.elapsed());
            served_from(&s, newcomer, left.max(Duration::from_millis(100)))
        })
        .await;
        assert!(
            served && start.elapsed() <= Duration::from_millis(2100),
            "a new client was not served within 2 s (after {:?}):\n{}",
            start.elapsed(),
            s.proxy
                .log_text()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    for u in uploads {
        u.abort();
    }
}

/// This test process opens hundreds of sockets: its soft open-files limit
/// is raised to the hard one (never lowered).
fn raise_own_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max.min(65_536).max(limit.rlim_cur);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The attacker's address (the client served meanwhile is 127.0.0.1).
const ATTACKER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Limits for the lock-out tests: a small cap, no per-client limit to
/// speak of, and deadlines that would not end the attack by themselves.
const SMALL_CAP: &str = "max_client_connections: 64, max_connections_per_client: 10000, \
                         handshake_timeout_seconds: 30, request_head_timeout_seconds: 30";

impl Setup {
    /// Whether a client on 127.0.0.1 is served within 5 s (the goal),
    /// and how long it took.
    async fn served_within_5s(&self, attack: &str) -> Duration {
        let start = Instant::now();
        assert!(
            eventually(Duration::from_secs(5), || self.get_ok()).await,
            "{attack}: a client on another address was not served within 5 s"
        );
        let took = start.elapsed();
        eprintln!("{attack}: served after {took:?}");
        took
    }

    /// An HTTP/1.1 keep-alive connection from `from` that has had one
    /// request answered.
    async fn h1_after_one_request(&self, from: std::net::IpAddr) -> Option<impl Sized> {
        let host = self.files.host("web");
        let tls = tls_connect_from(Some(from), self.proxy.https, &host, &self.files.ca_pem)
            .await
            .ok()?;
        let (mut send, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .ok()?;
        let task = tokio::spawn(connection);
        let request = hyper::Request::get("/ok")
            .header("host", &host)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), send.send_request(request))
            .await
            .ok()?
            .ok()?;
        use http_body_util::BodyExt;
        response.into_body().collect().await.ok()?;
        Some((send, task))
    }

    /// An HTTP/2 connection from `from` that has had one request answered.
    async fn h2_after_one_request(&self, from: std::net::IpAddr) -> Option<impl Sized> {
        let host = self.files.host("web");
        let tls = tls_connect_alpn(
            Some(from),
            self.proxy.https,
            &host,
            &self.files.ca_pem,
            &[b"h2"],
        )
        .await
        .ok()?;
        let (send, connection) = h2::client::handshake(tls).await.ok()?;
        let task = tokio::spawn(connection);
        let mut send = send.ready().await.ok()?;
        let request = http::Request::get(format!("https://{host}/ok"))
            .body(())
            .unwrap();
        let (response, _) = send.send_request(request, true).ok()?;
        let response = tokio::time::timeout(Duration::from_secs(5), response)
            .await
            .ok()?
            .ok()?;
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            chunk.ok()?;
        }
        Some((send, task))
    }

    /// An MQTT relay from `from` that moved a few bytes and is now quiet.
    async fn mqtt_after_a_message(&self, from: std::net::IpAddr) -> Option<impl Sized> {
        let host = format!("mosquitto.{}", self.files.domain);
        let mut tls = tls_connect_from(Some(from), self.mqtts, &host, &self.files.ca_pem)
            .await
            .ok()?;
        tls.write_all(b"\x10\x00").await.ok()?;
        let mut back = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut back))
            .await
            .ok()?
            .ok()?;
        Some(tls)
    }
}

/// Connections that each sent a request and then idle (HTTP/1.1
/// keep-alive, HTTP/2, MQTT relays), 80 of each from one address at a
/// small cap: a client on another address is still served within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_sent_a_request_cannot_lock_others_out() {
    let s = setup("slow-busy-flood", SMALL_CAP);
    // Each phase starts once the proxy let the last one's connections go:
    // its descriptors back to what it held before the first, give or take
    // the few the upstream keep-alive pool may keep (80 connections held
    // are 160 or more).
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", s.proxy.pid()))
            .unwrap()
            .count()
    };
    let at_rest = fds();
    let settled = || async {
        let back = eventually(Duration::from_secs(10), || async { fds() <= at_rest + 8 }).await;
        assert!(back, "{} descriptors held, {at_rest} at rest", fds());
    };
    let mut h1 = Vec::new();
    for _ in 0..80 {
        h1.extend(s.h1_after_one_request(ATTACKER).await);
    }
    assert!(h1.len() >= 10, "only {} keep-alive connections", h1.len());
    s.served_within_5s("idle HTTP/1.1 keep-alive").await;
    drop(h1);
    settled().await;
    let mut h2 = Vec::new();
    for _ in 0..80 {
        h2.extend(s.h2_after_one_request(ATTACKER).await);
    }
    assert!(h2.len() >= 10, "only {} HTTP/2 connections", h2.len());
    s.served_within_5s("idle HTTP/2").await;
    drop(h2);
    settled().await;
    let mut relays = Vec::new();
    for _ in 0..80 {
        match s.mqtt_after_a_message(ATTACKER).await {
            Some(relay) => relays.push(relay),
            // At the cap with every relay busy: as an attacker would,
            // try again a little later.
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // Each relay holds three descriptors (its socket, the guard's
    // duplicate, the broker's): a handful fill this cap.
    assert!(relays.len() >= 3, "only {} relays", relays.len());
    s.served_within_5s("idle MQTT relays").await;
    // All of it at once.
    let mut mix = Vec::new();
    for _ in 0..30 {
        mix.push((
            s.h1_after_one_request(ATTACKER).await.is_some(),
            s.h2_after_one_request(ATTACKER).await,
        ));
    }
    s.served_within_5s("a mix").await;
    drop((relays, mix));
}

/// A flood of new connections from one address (400 a second) does not
/// shed the handshakes of a client on another address that is slow to
/// send its ClientHello (150 ms, as a distant client): the flooding
/// address gives first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_sheds_the_flooder_first() {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let s = setup_with(
        "slow-new-flood",
        SMALL_CAP,
        &format!("metrics: {{ listen: \"{metrics}\" }}\n"),
    );
    let https = s.proxy.https;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = stop.clone();
    let flood = tokio::spawn(async move {
        let mut held = std::collections::VecDeque::new();
        let mut opened = 0usize;
        let deadline = Instant::now() + Duration::from_secs(8);
        while !flooding.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok(socket) = source_socket(Some(ATTACKER)) {
                if let Ok(Ok(c)) =
                    tokio::time::timeout(Duration::from_millis(100), socket.connect(https)).await
                {
                    held.push_back(c);
                    opened += 1;
                }
            }
            if held.len() > 300 {
                held.pop_front();
            }
            tokio::time::sleep(Duration::from_micros(2500)).await;
        }
        opened
    });
    // The flood is on: the cap of 64 descriptors is reached and
    // connections are shed.
    let shed = || shed_total(metrics);
    assert!(
        eventually(Duration::from_secs(5), || async { shed().await >= 1.0 }).await,
        "the flood never reached the cap"
    );
    let host = s.files.host("web");
    // Each probe's outcome, for the failure message: served, or where it
    // stopped.
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let tcp = TcpStream::connect(https).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let probe = async {
            let mut tls = tls_over(tcp, &host, &s.files.ca_pem, &[])
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tls.write_all(
                format!("GET /ok HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .map_err(|e| format!("write: {e}"))?;
            let head = read_response_head(&mut tls).await;
            match head.starts_with("HTTP/1.1 200") {
                true => Ok(()),
                false => Err(format!("answer: {}", head.lines().next().unwrap_or("none"))),
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), probe)
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".into()));
        outcomes.push(outcome);
    }
    let served = outcomes.iter().filter(|o| o.is_ok()).count();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = flood.await.unwrap();
    let shed = shed().await;
    let refused = series_value(
        &metrics_text(metrics).await,
        "portal_proxy_connections_refused_total",
    );
    eprintln!("served {served} of 10 during a flood of {opened} connections, {shed} shed");
    // The flood was on through the probes: over 1.5 s at 400 a second,
    // far more connections than the cap of 64 descriptors, which shed.
    assert!(
        opened >= 300 && shed >= 64.0,
        "{opened} opened, {shed} shed"
    );
    assert!(
        served == 10,
        "served {served} of 10 during the flood: {outcomes:?} ({shed} shed, {refused:?} refused)"
    );
}

/// HTTP/2 streams count in their client's share (each holds an upstream
/// socket): one connection fanning out 100 streams whose bodies never
/// come gets 503 past its share, and another address is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_count_in_the_clients_share() {
    let s = setup("slow-fanout", LIMITS);
    let host = s.files.host("web");
    let tls = tls_connect_alpn(
        Some(ATTACKER),
        s.proxy.https,
        &host,
        &s.files.ca_pem,
        &[b"h2"],
    )
    .await
    .unwrap();
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..100 {
        send = send.ready().await.unwrap();
        let request = http::Request::post(format!("https://{host}/upload"))
            .header("content-length", "1000")
            .body(())
            .unwrap();
        // The body never comes.
        let (response, body) = send.send_request(request, false).unwrap();
        pending.push((response, body));
    }
    let mut refused = 0;
    let mut open = Vec::new();
    for (response, body) in pending {
        match tokio::time::timeout(Duration::from_millis(300), response).await {
            Ok(Ok(r)) if r.status() == 503 => {
                assert!(r.headers().contains_key("retry-after"));
                refused += 1;
            }
            Ok(other) => panic!("a stream was answered: {other:?}"),
            Err(_) => open.push(body),
        }
    }
    eprintln!("{refused} of 100 streams refused, {} open", open.len());
    // LIMITS: a share of 20: the connection with its first stream, and
    // 19 more streams.
    assert_eq!(open.len(), 20, "{refused} refused");
    s.served_within_5s("100 HTTP/2 streams with pending bodies")
        .await;
}

/// A header block started on an HTTP/2 connection already in use (HEADERS
/// without END_HEADERS, never continued) has the head deadline (1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dangling_http2_header_block_is_closed() {
    let s = setup("slow-h2-headers", LIMITS);
    let host = s.files.host("web");
    let mut tls = tls_connect_alpn(None, s.proxy.https, &host, &s.files.ca_pem, &[b"h2"])
        .await
        .unwrap();
    let frame = h2_frame;
    // :method GET, :scheme https, :path /ok (literal), :authority (literal).
    let authority = format!("{host}:{}", s.proxy.https.port());
    let mut block = vec![0x82, 0x87, 0x04, 3];
    block.extend_from_slice(b"/ok");
    block.extend([0x01, authority.len() as u8]);
    block.extend_from_slice(authority.as_bytes());
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    // A whole request: END_STREAM | END_HEADERS.
    hello.extend(frame(0x1, 0x5, 1, &block));
    tls.write_all(&hello).await.unwrap();
    // Its answer comes (a HEADERS frame with :status 200, index 8).
    let mut got = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering");
            got.extend_from_slice(&buf[..n]);
            if got.windows(2).any(|w| w == [0x01, 0x04]) && got.contains(&0x88) {
                return;
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "no answer: {got:?}");
    // Then a header block that never ends.
    tls.write_all(&frame(0x1, 0x1, 3, &block[..4]))
        .await
        .unwrap();
    let t = closed_after(&mut tls, Duration::from_secs(5)).await;
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(3)),
        "a dangling header block: {t:?}"
    );
}

/// A body trickled under the minimum rate ends with 408 once the grace is
/// over; one at an ordinary pace is never cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_uploads_end_and_normal_ones_do_not() {
    let s = setup(
        "slow-body-rate",
        &format!("{LIMITS}, min_body_bytes_per_second: 1000, min_body_rate_grace_seconds: 1"),
    );
    let host = s.files.host("web");
    let upload = |per_tick: usize, ticks: usize| {
        let host = host.clone();
        let s = &s;
        async move {
            let mut tls = tls_connect(s.proxy.https, &host, &s.files.ca_pem)
                .await
                .unwrap();
            let total = per_tick * ticks;
            tls.write_all(
                format!("POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let start = Instant::now();
            for _ in 0..ticks {
                if tls.write_all(&vec![b'x'; per_tick]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
            (
                String::from_utf8_lossy(&answer).into_owned(),
                start.elapsed(),
            )
        }
    };
    // 10 bytes every 100 ms: 100 bytes/s, for 4 s.
    let (answer, took) = upload(10, 40).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // 1,000 bytes every 100 ms: 10 KB/s, for 3 s: whole.
    let (answer, _) = upload(1000, 30).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"body_len\":30000"), "{answer}");
}

/// An address at its public share still reaches the metrics and internal
/// listeners, which have limits of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_listeners_are_outside_the_public_share() {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let s = setup_with(
        "slow-private-share",
        LIMITS,
        &format!("metrics: {{ listen: \"{metrics}\" }}\n"),
    );
    let host = s.files.host("web");
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(
            tls_connect(s.proxy.https, &host, &s.files.ca_pem)
                .await
                .unwrap(),
        );
    }
    // The 21st public connection is refused...
    let refused = tls_connect(s.proxy.https, &host, &s.files.ca_pem).await;
    assert!(refused.is_err(), "the public share is 20");
    // ...but /metrics answers the same address.
    let text = metrics_text(metrics).await;
    assert!(text.contains("portal_proxy_connections_refused_total"));
    drop(held);
}

/// At the default limits: one address holding 300 keep-alive connections
/// that each sent a request, and an HTTP/2 connection with 100 streams
/// whose bodies never come, cannot keep another address out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_default_limits_one_address_cannot_lock_others_out() {
    let s = setup("slow-defaults", "");
    let mut held = Vec::new();
    for _ in 0..300 {
        match s.h1_after_one_request(ATTACKER).await {
            Some(c) => held.push(c),
            None => break,
        }
    }
    // Its share: 256 connections (a little less when the share counts a
    // connection still closing).
    assert!((200..=256).contains(&held.len()), "{} held", held.len());
    s.served_within_5s("300 keep-alive connections from one address")
        .await;
    drop(held);
    s.served_within_5s("the same, released").await;
}

/// An app holding many pending calls on the internal listener is held to
/// its own limit there (64 connections an address), exactly, even where
/// port probes on the HTTPS listener left failed handshakes whose
/// descriptor numbers its calls reuse; and another app is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_cannot_hold_the_internal_listener() {
    let internal: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The default limits: the public share (256) would let it hold 100.
    let s = setup_with(
        "slow-internal",
        "",
        &format!("internal: {{ listen: \"{internal}\" }}\n"),
    );
    // Port probes: TCP connections to the HTTPS listener closed before any
    // TLS. Each handshake fails and stays registered until its deadline,
    // its descriptor number free for the calls below. (Such a number once
    // let a plain call take the registration: 65 or 66 held.)
    for _ in 0..30 {
        drop(TcpStream::connect(s.proxy.https).await.unwrap());
    }
    let mut pending = Vec::new();
    for _ in 0..100 {
        let Ok(socket) = source_socket(Some(ATTACKER)) else {
            continue;
        };
        let Ok(mut c) = socket.connect(internal).await else {
            continue;
        };
        // A call begun (within the 10 s head deadline).
        let _ = c
            .write_all(b"POST /x HTTP/1.1\r\nHost: portal_core\r\n")
            .await;
        pending.push(c);
    }
    // 64 admitted, the rest closed: awaited (no fixed wait), then counted.
    let open = || pending.iter().filter(|c| !closed_now(c)).count();
    eventually(Duration::from_secs(5), || async { open() <= 64 }).await;
    let held = open();
    assert_eq!(held, 64, "connections held by one app");
    // Another app (address) is served by the internal listener.
    let answer = tcp_exchange(
        None,
        internal,
        b"GET /internal/peers HTTP/1.1\r\nHost: portal_core\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 "),
        "the internal listener refused another app: {answer:?}"
    );
    drop(pending);
}
