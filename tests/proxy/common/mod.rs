//! Test harness: a real `portal-proxy` process with real TLS (a CA and a
//! wildcard certificate made here), real upstreams on loopback ports chosen
//! by the OS, and reqwest clients (HTTP/1.1 and HTTP/2) that trust the CA.

pub mod acme;
pub mod python;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use portal_core::identity::Identity;
use portal_proxy::tls::certificates::demo_certificate;
use serde::{Deserialize, Serialize};

/// What an echo upstream received, as it reports it in its JSON body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Echo {
    pub upstream: String,
    pub method: String,
    /// Path and query, exactly as received.
    pub target: String,
    /// Lower-case names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    pub body_len: usize,
    /// SHA-256 of the body, hex.
    pub body_sha256: String,
}

/// A response body of `left` zero bytes, made 64 KiB at a time as it is
/// read (never held whole).
struct Zeros {
    left: usize,
}

static ZERO_CHUNK: [u8; 65536] = [0; 65536];

impl hyper::body::Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(ZERO_CHUNK.len());
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
            &ZERO_CHUNK[..n],
        )))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left as u64)
    }
}

/// A server-sent-events body: `left` events, one every `every`.
struct Ticks {
    left: usize,
    every: Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Ticks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        use std::future::Future;
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        match self.timer.as_mut().poll(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(()) => {
                self.left -= 1;
                let next = tokio::time::Instant::now() + self.every;
                self.timer.as_mut().reset(next);
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
                    b"data: tick\n\n",
                )))))
            }
        }
    }
}

/// An HTTP/1.1 upstream on a loopback port that answers every request with
/// an [`Echo`], except `/status/<code>` which answers `<code>` with the body
/// `upstream <name> says <code>` (an app's own error page), and
/// `.../bytes/<n>` which answers `n` zero bytes, streamed,
/// `.../events/<n>` which answers `n` server-sent events 300 ms apart, and requests
/// with `Upgrade`, which get a 101 and have every later byte sent back.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    /// Every request received: `(target, body bytes received, whether
    /// the body arrived whole)`.
    pub received: Record,
}

impl Upstream {
    /// Starts the upstream in a thread of its own, which lives as long as
    /// the test process (so dropping it never blocks an async test).
    pub fn start(name: &str) -> Upstream {
        Upstream::start_at(name, "127.0.0.1:0".parse().unwrap()).unwrap()
    }

    /// [`Upstream::start`] on `bind` (another loopback address, a given
    /// port); an error if it cannot be bound.
    pub fn start_at(name: &str, bind: SocketAddr) -> std::io::Result<Upstream> {
        let listener = StdListener::bind(bind)?;
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let label = Arc::new(name.to_string());
        let received: Record = Arc::default();
        let record = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let label = label.clone();
                    let record = record.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            echo(label.clone(), record.clone(), req)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    });
                }
            })
        });
        Ok(Upstream {
            addr,
            name: name.to_string(),
            received,
        })
    }
}

/// See [`Upstream::received`].
pub type Record = Arc<std::sync::Mutex<Vec<(String, usize, bool)>>>;

type EchoBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn echo(
    name: Arc<String>,
    record: Record,
    mut req: Request<Incoming>,
) -> Result<Response<EchoBody>, Infallible> {
    if req.headers().contains_key(hyper::header::UPGRADE) {
        // A WebSocket-style upgrade: 101, then every byte is sent back.
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap());
    }
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    // Read frame by frame, to know how much arrived of a body cut short.
    let mut body = body;
    let mut bytes = Vec::new();
    let whole = loop {
        match body.frame().await {
            None => break true,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            Some(Err(_)) => break false,
        }
    };
    record
        .lock()
        .unwrap()
        .push((target.clone(), bytes.len(), whole));
    let body = Bytes::from(bytes);
    if let Some(code) = parts.uri.path().strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        return Ok(Response::builder()
            .status(code)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(format!("upstream {name} says {code}"))).boxed())
            .unwrap());
    }
    if let Some(n) = parts
        .uri
        .path()
        .rsplit_once("/bytes/")
        .and_then(|(_, n)| n.parse().ok())
    {
        return Ok(Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Zeros { left: n }.boxed())
            .unwrap());
    }
    if let Some(n) = parts
        .uri
        .path()
        .rsplit_once("/asset/")
        .and_then(|(_, n)| n.parse().ok())
    {
        return Ok(asset(n, parts.uri.query().unwrap_or("")));
    }
    if let Some(n) = parts
        .uri
        .path()
        .rsplit_once("/events/")
        .and_then(|(_, n)| n.parse().ok())
    {
        let every = Duration::from_millis(300);
        return Ok(Response::builder()
            .header("content-type", "text/event-stream")
            .body(
                Ticks {
                    left: n,
                    every,
                    timer: Box::pin(tokio::time::sleep(every)),
                }
                .boxed(),
            )
            .unwrap());
    }
    let mut headers = BTreeMap::<String, String>::new();
    for (k, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v)
            })
            .or_insert(v);
    }
    let echo = Echo {
        upstream: name.to_string(),
        method: parts.method.to_string(),
        target,
        headers,
        body_len: body.len(),
        body_sha256: sha256_hex(&body),
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&echo).unwrap())).boxed())
        .unwrap())
}

/// `n` bytes of JavaScript-like text, the same for the same `n`: what an
/// SPA bundle compresses like.
pub fn asset_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        let line = format!(
            "export function handler{i}(event) {{ return render(event.target, {{ id: {}, label: \"item {}\" }}); }}\n",
            i * 7919 % 1000,
            i % 97
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// The answer of `.../asset/<n>?<query>`: [`asset_bytes`] with headers
/// from the query: `type=` (`Content-Type`, default
/// `application/javascript`), `encoding=`, `cache=` (`Cache-Control`),
/// `etag=`, `range=1` (a 206 with `Content-Range`), `digest=1` (its
/// `Content-Digest`); `chunked=1` streams it in 16 KiB chunks (`chunk=`
/// bytes) without `Content-Length`, and `hold=1` then never ends it.
fn asset(n: usize, query: &str) -> Response<EchoBody> {
    let param = |name: &str| {
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| {
                v.replace("%2F", "/")
                    .replace("%20", " ")
                    .replace("%22", "\"")
            })
        })
    };
    let data = Bytes::from(asset_bytes(n));
    let mut builder = Response::builder().header(
        "content-type",
        param("type").unwrap_or_else(|| "application/javascript".into()),
    );
    for (name, header) in [
        ("encoding", "content-encoding"),
        ("cache", "cache-control"),
        ("etag", "etag"),
    ] {
        if let Some(v) = param(name) {
            builder = builder.header(header, v);
        }
    }
    if param("digest").is_some() {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data));
        builder = builder.header("content-digest", format!("sha-256=:{digest}:"));
    }
    if param("range").is_some() {
        builder = builder.status(206).header(
            "content-range",
            format!("bytes 0-{}/{}", n.saturating_sub(1), n * 2),
        );
    }
    if param("chunked").is_none() {
        return builder.body(Full::new(data).boxed()).unwrap();
    }
    let hold = param("hold").is_some();
    let body = Chunks {
        data,
        sent: 0,
        size: param("chunk").and_then(|c| c.parse().ok()).unwrap_or(16384),
        hold,
    };
    builder.body(body.boxed()).unwrap()
}

/// A body sent `size` bytes at a time; with `hold`, never ended after its
/// data.
struct Chunks {
    data: Bytes,
    sent: usize,
    size: usize,
    hold: bool,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        use std::task::Poll;
        if self.sent < self.data.len() {
            let end = (self.sent + self.size).min(self.data.len());
            let chunk = self.data.slice(self.sent..end);
            self.sent = end;
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))));
        }
        // Held: pending with no waker, until the connection goes.
        if self.hold {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A loopback port that was free a moment ago, for a listener the proxy
/// binds itself. Taken below the kernel's ephemeral range
/// (`ip_local_port_range`), which the source ports of every outgoing
/// connection come from: a port handed out by `bind(0)` could be taken by
/// another test's connection before the proxy binds it (seen in CI as
/// "Address already in use" on a test's internal listener). Successive
/// calls in a test binary never repeat a port; the start is random, so
/// that successive binaries do not either.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    const LOWEST: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_low < LOWEST + 1_000 {
        // No room below the ephemeral range: whatever bind(0) gives.
        return StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    let span = ephemeral_low - LOWEST;
    let start = *START.get_or_init(|| rand::random::<u32>() % span);
    for _ in 0..span {
        let port = (LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {ephemeral_low}");
}

/// The files of one Portal: identity, CA, wildcard certificate, state dir.
pub struct PortalFiles {
    pub dir: PathBuf,
    pub identity: Identity,
    /// `<short_id>.portal.test`.
    pub domain: String,
    pub ca_pem: String,
}

pub const BASE_DOMAIN: &str = "portal.test";
/// The content of every test Portal's `terminal_jwt_secret`.
pub const TERMINAL_SECRET: &str = "test terminal secret";

impl PortalFiles {
    pub fn new(test: &str) -> PortalFiles {
        let dir = std::env::temp_dir().join(format!("pp-it-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state/apps")).unwrap();
        let identity = portal_proxy::identity::generate();
        portal_proxy::identity::write_new(&identity, &dir.join("identity.pem")).unwrap();
        let domain = format!("{}.{BASE_DOMAIN}", identity.short_id());
        let cert = demo_certificate(&domain).unwrap();
        std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
        std::fs::write(
            dir.join("state/terminal_jwt_secret"),
            format!("{TERMINAL_SECRET}\n"),
        )
        .unwrap();
        PortalFiles {
            dir,
            identity,
            domain,
            ca_pem: cert.ca_pem,
        }
    }

    /// Writes `state/apps/<name>/app_meta.json`.
    pub fn app(&self, name: &str, app_meta: &str) -> &Self {
        let dir = self.dir.join("state/apps").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app_meta.json"), app_meta).unwrap();
        self
    }

    /// Writes a file of the state dir (atomically, as the Portal core does:
    /// a temporary file renamed over the old one).
    pub fn state_file(&self, name: &str, content: &str) -> &Self {
        let path = self.dir.join("state").join(name);
        let tmp = self.dir.join("state").join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        self
    }

    /// `terminals.json` with `(id, name)` entries.
    pub fn terminals(&self, terminals: &[(&str, &str)]) -> &Self {
        let list: Vec<_> = terminals
            .iter()
            .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
            .collect();
        self.state_file("terminals.json", &serde_json::to_string(&list).unwrap())
    }

    /// A terminal JWT for `sub`, signed with [`TERMINAL_SECRET`].
    pub fn terminal_token(&self, sub: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": sub, "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(TERMINAL_SECRET.as_bytes()),
        )
        .unwrap()
    }

    /// `<app>.<domain>`, or the Portal's own domain for `""`.
    pub fn host(&self, app: &str) -> String {
        if app.is_empty() {
            self.domain.clone()
        } else {
            format!("{app}.{}", self.domain)
        }
    }
}

impl Drop for PortalFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An app_meta.json with an http entrypoint and the given `paths` JSON.
pub fn app_meta(paths: &str) -> String {
    format!(
        r#"{{"v":"1.0","entrypoints":[{{"container_name":"unused","container_port":80,"entrypoint_port":"http"}}],"paths":{paths}}}"#
    )
}

/// Polls `check` every 20 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Entries added to the fixed sections of the config [`Proxy::start_with`]
/// writes, each starting with `, ` (e.g. `, mqtts: "127.0.0.1:8883"` or
/// `, grace_period_seconds: 1`).
#[derive(Debug, Default, Clone)]
pub struct Layout {
    pub listen: String,
    pub server: String,
    /// Entries added to `tls:` (e.g. `, acme: {...}`).
    pub tls: String,
    /// `RUST_LOG` of the process; `info` when empty.
    pub log_level: String,
    /// The process's open-files limit (`ulimit -n`), when set.
    pub open_files: Option<u64>,
}

/// A running proxy process, killed on drop.
pub struct Proxy {
    child: Child,
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub log: PathBuf,
}

impl Proxy {
    /// Starts the proxy for `files` with the config body `extra` (YAML keys
    /// after the fixed ones: `core`, `upstreams`, ...). Waits until the
    /// HTTPS port accepts connections.
    pub fn start(files: &PortalFiles, extra: &str) -> Proxy {
        Proxy::start_with(files, &Layout::default(), extra)
    }

    /// [`Proxy::start`] with entries added to the fixed `listen:` and
    /// `server:` sections.
    pub fn start_with(files: &PortalFiles, layout: &Layout, extra: &str) -> Proxy {
        for _attempt in 0..5 {
            let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let Layout {
                listen,
                server,
                tls,
                ..
            } = layout;
            let config = format!(
                "portal: {{ key_file: identity.pem, base_domain: {BASE_DOMAIN} }}\n\
                 state_dir: state\n\
                 listen: {{ https: \"{https}\", http: \"{http}\"{listen} }}\n\
                 tls: {{ cert_file: cert.pem, key_file: key.pem{tls} }}\n\
                 server: {{ threads: 2, pid_file: proxy.pid, upgrade_sock: upgrade.sock{server} }}\n\
                 {extra}\n"
            );
            std::fs::write(files.config_file(), &config).unwrap();
            let level = if layout.log_level.is_empty() {
                "info"
            } else {
                &layout.log_level
            };
            let process =
                ProxyProcess::spawn_limited(files, &[], "proxy.log", level, layout.open_files);
            let log = process.log.clone();
            let mut proxy = Proxy {
                child: process.child_take(),
                https,
                http,
                log,
            };
            if proxy.wait_ready(&config) {
                return proxy;
            }
        }
        panic!("the proxy did not start in 5 attempts");
    }

    /// Polls until every listener of `config` accepts (HTTPS, port 80,
    /// MQTT, internal, metrics: Pingora starts them one by one, so one
    /// accepting says nothing of the others); false if the process exited
    /// first. Each listener is connected to until it accepts once.
    fn wait_ready(&mut self, config: &str) -> bool {
        let mut waiting = listen_addresses(config);
        assert!(
            waiting.contains(&self.https) && waiting.contains(&self.http),
            "{waiting:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("proxy exited with {status}:\n{}", self.log_text());
                return false;
            }
            waiting.retain(|addr| TcpStream::connect(addr).is_err());
            if waiting.is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the proxy did not listen on {waiting:?} within 20 s:\n{}",
            self.log_text()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `https://<host>:<port><path>` for this proxy.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https.port())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every address a config listens on: the values of each `listen` key
/// (`listen: { https: .., http: .., mqtts: .. }`, `internal: { listen: .. }`,
/// `metrics: { listen: .. }`).
fn listen_addresses(config: &str) -> Vec<SocketAddr> {
    fn walk(value: &serde_yaml::Value, under_listen: bool, out: &mut Vec<SocketAddr>) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for (key, value) in map {
                    walk(value, under_listen || key.as_str() == Some("listen"), out);
                }
            }
            serde_yaml::Value::String(text) if under_listen => {
                out.extend(text.parse::<SocketAddr>());
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_yaml::from_str(config).unwrap(), false, &mut out);
    out
}

/// Resolves every name to 127.0.0.1 (the URL's port is used).
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let addrs: reqwest::dns::Addrs =
                Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
            Ok(addrs)
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// A client that trusts the test CA, sends every name to loopback and never
/// follows redirects.
pub fn client(ca_pem: &str, protocol: Protocol) -> reqwest::Client {
    client_builder(ca_pem, protocol).build().unwrap()
}

// ---- Helpers of tests/proxy/operations.rs (hot reload, signals, graceful
// upgrade). ----

impl PortalFiles {
    /// Writes `state/apps/<name>/app_meta.json` atomically, as the Portal
    /// core does: a temporary file in the same folder, renamed over the old
    /// one (a reload never sees a half-written file).
    pub fn app_atomic(&self, name: &str, app_meta: &str) -> &Self {
        let dir = self.dir.join("state/apps").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(".app_meta.json.tmp");
        std::fs::write(&tmp, app_meta).unwrap();
        std::fs::rename(&tmp, dir.join("app_meta.json")).unwrap();
        self
    }

    /// The config file [`Proxy::start`] writes, which other processes of
    /// the binary can be given with `-c`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("portal-proxy.yaml")
    }
}

impl Proxy {
    /// The exit status once the process has exited (reaping it), else None.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

/// Sends `signal` (a name for kill(1): `HUP`, `QUIT`, `TERM`...) to `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Another process of the binary, run with `args` and `-c` the config file
/// of `files` (as [`Proxy::start`] wrote it), killed on drop.
pub struct ProxyProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl ProxyProcess {
    /// Spawns the binary with `args` plus `-c <config>`, its log in
    /// `<files.dir>/<log_name>`. Returns at once: the caller polls for what
    /// it waits for.
    pub fn spawn(files: &PortalFiles, args: &[&str], log_name: &str) -> ProxyProcess {
        ProxyProcess::spawn_logging(files, args, log_name, "info")
    }

    /// [`ProxyProcess::spawn`] with `RUST_LOG` set to `level`.
    pub fn spawn_logging(
        files: &PortalFiles,
        args: &[&str],
        log_name: &str,
        level: &str,
    ) -> ProxyProcess {
        ProxyProcess::spawn_limited(files, args, log_name, level, None)
    }

    /// [`ProxyProcess::spawn_logging`] with an open-files limit.
    pub fn spawn_limited(
        files: &PortalFiles,
        args: &[&str],
        log_name: &str,
        level: &str,
        open_files: Option<u64>,
    ) -> ProxyProcess {
        use std::os::unix::process::CommandExt;
        let log = files.dir.join(log_name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_portal-proxy"));
        if let Some(n) = open_files {
            // SAFETY: setrlimit is async-signal-safe; it only touches the
            // child's own limits between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .args(args)
            .arg("-c")
            .arg(files.config_file())
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        ProxyProcess {
            child: Some(child),
            log,
        }
    }

    /// The child, which the caller now owns (and kills).
    fn child_take(mut self) -> Child {
        self.child.take().expect("taken once")
    }

    /// The exit status once the process has exited (reaping it), else None.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().expect("not taken").try_wait().unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The builder of [`client`], for tests that change more settings (the
/// retry policy, the connection pool).
pub fn client_builder(ca_pem: &str, protocol: Protocol) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .dns_resolver(Arc::new(Loopback))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20));
    match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder,
    }
}

/// A TLS connection to `addr` for `host`, trusting only `ca_pem`: for
/// requests sent byte for byte (paths HTTP clients would normalize, framing
/// they would fix) and for looking at the certificate served.
pub async fn tls_connect(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    tls_connect_from(None, addr, host, ca_pem).await
}

/// [`tls_connect`] from the source address `from` (a loopback address of
/// its own stands for another client).
pub async fn tls_connect_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    tls_connect_alpn(from, addr, host, ca_pem, &[]).await
}

/// [`tls_connect_from`] offering the ALPN protocols `alpn`.
pub async fn tls_connect_alpn(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = source_socket(from)
        .map_err(|e| e.to_string())?
        .connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    tls_over(tcp, host, ca_pem, alpn).await
}

/// TLS for `host` over an already connected socket, trusting only
/// `ca_pem`, offering the ALPN protocols `alpn`.
pub async fn tls_over(
    tcp: tokio::net::TcpStream,
    host: &str,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

/// An HTTP/2 connection (the `h2` crate, which sends `:path` as given,
/// where HTTP clients would normalize it) to `addr` for `host`.
pub async fn h2_connect(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
) -> h2::client::SendRequest<Bytes> {
    let tls = tls_connect_alpn(None, addr, host, ca_pem, &[b"h2"])
        .await
        .unwrap();
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// How the server answered one HTTP/2 stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Answer {
    /// A response with this `:status`.
    Status(u16),
    /// `RST_STREAM` with this error code (1: PROTOCOL_ERROR, the HTTP/2
    /// layer's answer to a malformed request, RFC 9113 section 8.1.1).
    Reset(u32),
}

/// How the proxy answers an HTTP/2 `GET` whose `:path` is `path`, byte
/// for byte: frames written by hand (HPACK literals, no Huffman), for
/// `:path`s the `h2` crate refuses to send (`admin`, `ftp://...`).
/// `Err` names what came instead (GOAWAY, a close, nothing).
pub async fn h2_raw_answer(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
    authority: &str,
    path: &str,
) -> Result<H2Answer, String> {
    h2_raw_answer_with(addr, host, ca_pem, authority, path, &[]).await
}

/// One HTTP/2 frame (RFC 9113 section 4.1): its 9-byte header (length,
/// type, flags, stream) and `payload`.
pub fn h2_frame(kind: u8, flags: u8, stream: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
        kind,
        flags,
        0,
        0,
        0,
        stream,
    ];
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 section 5.1) after
/// the bits `first` of its first byte.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// [`h2_raw_answer`] with more header fields, sent whatever the server's
/// `SETTINGS_MAX_HEADER_LIST_SIZE` (the block split into CONTINUATION
/// frames of 16 KiB).
pub async fn h2_raw_answer_with(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
    authority: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<H2Answer, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let frame = h2_frame;
    // :method GET, :scheme https (indexed), then :path and :authority as
    // literals without indexing (indexed names 4 and 1), then `fields` as
    // literals with new names.
    let mut block = vec![0x82, 0x87];
    for (index, value) in [(4u8, path), (1, authority)] {
        block.push(index);
        hpack_int(&mut block, 0, 7, value.len());
        block.extend_from_slice(value.as_bytes());
    }
    for (name, value) in fields {
        block.push(0);
        for text in [name, value] {
            hpack_int(&mut block, 0, 7, text.len());
            block.extend_from_slice(text.as_bytes());
        }
    }
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let (kind, flags) = match i {
            // HEADERS: END_STREAM, and END_HEADERS when it is the only one.
            0 => (0x1, 0x1 | if last { 0x4 } else { 0 }),
            _ => (0x9, if last { 0x4 } else { 0 }),
        };
        hello.extend(frame(kind, flags, 1, chunk));
    }
    let mut tls = tls_connect_alpn(None, addr, host, ca_pem, &[b"h2"]).await?;
    tls.write_all(&hello).await.map_err(|e| e.to_string())?;
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // Whole frames read so far.
            while got.len() >= 9 {
                let len =
                    (usize::from(got[0]) << 16) | (usize::from(got[1]) << 8) | usize::from(got[2]);
                if got.len() < 9 + len {
                    break;
                }
                let (kind, stream) = (got[3], got[8] & 0x7f);
                let payload: Vec<u8> = got[9..9 + len].to_vec();
                got.drain(..9 + len);
                match (kind, stream) {
                    (0x1, 1) => return hpack_status(&payload).map(H2Answer::Status),
                    (0x3, 1) if payload.len() == 4 => {
                        let code =
                            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        return Ok(H2Answer::Reset(code));
                    }
                    (0x7, _) => return Err(format!("GOAWAY {payload:?}")),
                    _ => {}
                }
            }
            let n = tls.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

/// The `:status` of the first field of an HPACK header block: indexed
/// (static entries 8 to 14) or a literal of name 8, its digits plain or
/// Huffman coded (RFC 7541, appendix B: digits take 5 or 6 bits).
fn hpack_status(block: &[u8]) -> Result<u16, String> {
    const INDEXED: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let first = *block.first().ok_or("an empty header block")?;
    if first & 0x80 != 0 {
        let index = usize::from(first & 0x7f);
        return INDEXED
            .get(index.wrapping_sub(8))
            .copied()
            .ok_or_else(|| format!("indexed field {index} first"));
    }
    // Literal with incremental indexing (0x40 | 8), without (8), never (0x18).
    if ![0x48, 0x08, 0x18].contains(&first) {
        return Err(format!("first field {first:#x} is no :status"));
    }
    let (huffman, len) = (block[1] & 0x80 != 0, usize::from(block[1] & 0x7f));
    let value = &block[2..2 + len];
    let digits = if !huffman {
        String::from_utf8_lossy(value).into_owned()
    } else {
        let bits: Vec<bool> = value
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
            .collect();
        let code = |from: usize, n: usize| {
            bits[from..from + n]
                .iter()
                .fold(0u8, |c, &b| c << 1 | u8::from(b))
        };
        let (mut out, mut at) = (String::new(), 0);
        while at + 5 <= bits.len() && out.len() < 3 {
            match code(at, 5) {
                c @ 0..=2 => (out.push((b'0' + c) as char), at += 5),
                _ if at + 6 <= bits.len() && (0x19..=0x1f).contains(&code(at, 6)) => {
                    (out.push((b'3' + code(at, 6) - 0x19) as char), at += 6)
                }
                _ => return Err(format!("not a Huffman digit at bit {at} of {value:?}")),
            };
        }
        out
    };
    digits.parse().map_err(|_| format!("status {digits:?}"))
}

/// Sends `method` with `:authority` `authority` and `:path` `path` over
/// `send`, and returns the status and the body as text (0 and the reason
/// when the server reset the stream).
pub async fn h2_exchange(
    send: &mut h2::client::SendRequest<Bytes>,
    method: &str,
    authority: &str,
    path: &str,
) -> (u16, String) {
    let uri = http::Uri::from_parts({
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTPS);
        parts.authority = Some(authority.parse().unwrap());
        parts.path_and_query = Some(path.parse().unwrap());
        parts
    })
    .unwrap();
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(())
        .unwrap();
    let ready = send.clone().ready().await.unwrap();
    *send = ready;
    let (response, _) = send.send_request(request, true).unwrap();
    // A stream the server reset: status 0, with the reason.
    let response = match response.await {
        Ok(response) => response,
        Err(e) => return (0, e.to_string()),
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&text).into_owned())
}

/// Sends `request` as written over TLS and returns all the response's
/// bytes as text.
pub async fn raw_exchange(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
    request: &str,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(addr, host, ca_pem).await?;
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// What a server answered to one request, and whether it then closed the
/// connection.
#[derive(Debug)]
pub struct Closing {
    pub answer: String,
    /// The server closed the connection (EOF) within the bound given.
    pub closed: bool,
}

/// Reads `stream` until the server closes it or `within` passes.
async fn read_until_close(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    within: Duration,
) -> Closing {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(within, stream.read_to_end(&mut out))
        .await
        .is_ok();
    Closing {
        answer: String::from_utf8_lossy(&out).into_owned(),
        closed,
    }
}

/// Sends `request` over a new TLS connection for `host` and reads until
/// the server closes the connection, at most `within`: for answers after
/// which the proxy must close (the client itself never asks it to).
pub async fn raw_exchange_closing(
    addr: SocketAddr,
    host: &str,
    ca_pem: &str,
    request: &str,
    within: Duration,
) -> Closing {
    use tokio::io::AsyncWriteExt;
    let mut tls = tls_connect(addr, host, ca_pem).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    read_until_close(&mut tls, within).await
}

/// [`raw_exchange_closing`] over plain TCP (port 80, the internal listener).
pub async fn tcp_exchange_closing(to: SocketAddr, bytes: &[u8], within: Duration) -> Closing {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(to).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    read_until_close(&mut tcp, within).await
}

/// A TCP server on a loopback port that sends back every byte it gets
/// (an MQTT broker stand-in), in a thread of its own.
pub fn start_tcp_echo() -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    addr
}

/// Reads a response up to the end of its head (for upgrades, where the
/// connection stays open after it).
pub async fn read_response_head(tls: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A WebSocket upgrade request for `path` on `host`, with `extra` header
/// lines (each ending in `\r\n`).
pub fn upgrade_request(host: &str, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// A TCP socket to connect from the loopback address `from` (any when
/// `None`). The source port is chosen at `connect`, by the whole address
/// pair (`IP_BIND_ADDRESS_NO_PORT`): a plain `bind` to port 0 needs a port
/// free on that address for every destination, and the load tests' many
/// short connections (in TIME_WAIT) can exhaust them (`EADDRINUSE`).
pub fn source_socket(from: Option<std::net::IpAddr>) -> std::io::Result<tokio::net::TcpSocket> {
    use std::os::fd::AsRawFd;
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(from) = from {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.bind((from, 0).into())?;
    }
    Ok(socket)
}

/// Sends `bytes` as written over plain TCP to `to`, from the source
/// address `from` when given (a loopback address of its own stands for
/// another client or app), and returns the whole answer as text (what
/// came within 10 s).
pub async fn tcp_exchange(from: Option<std::net::IpAddr>, to: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = source_socket(from).unwrap().connect(to).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The text of `GET /metrics` on the metrics listener at `metrics` (of a
/// proxy started by [`Proxy::start`], which waits for every listener).
pub async fn metrics_text(metrics: SocketAddr) -> String {
    reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of `series` (a metric name with its labels, exactly as
/// exported) in the text of a scrape.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// The config lines of a Portal whose one app, `app`, is served by
/// `upstream`, with no core (its address refuses connections).
pub fn only_app_yaml(upstream: &Upstream) -> String {
    format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ app: \"{}\" }}\n",
        upstream.addr
    )
}
