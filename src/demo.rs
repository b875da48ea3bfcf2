//! `portal-proxy demo`: a working Portal in one command (README). Writes a
//! key, a CA and a wildcard certificate for `<short_id>.localhost`, a state
//! dir with one app, and a config; starts the app (a tiny HTTP server that
//! echoes what it received) and returns the config for `main` to run.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::certificates::demo_certificate;

/// The demo app's name.
const DEMO_APP: &str = "hello";

const DEMO_APP_META: &str = r#"{
  "v": "1.0",
  "name": "hello",
  "entrypoints": [
    {"container_name": "hello", "container_port": 80, "entrypoint_port": "http"}
  ],
  "paths": {
    "": {"access": "public", "headers": {"X-Ptl-Client-Type": "{{ auth.client_type }}"}},
    "/private/": {"access": "private"},
    "/peer/": {"access": "peer", "headers": {
      "X-Ptl-Client-Type": "{{ auth.client_type }}",
      "X-Ptl-Client-Id": "{{ auth.client_id }}",
      "X-Ptl-Client-Name": "{{ auth.client_name }}"}}
  }
}
"#;

/// The demo's listening ports, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct DemoPorts {
    pub https: u16,
    pub http: u16,
    /// The internal listener the demo app calls peers through.
    pub internal: u16,
    /// The operator's side: `/metrics`, `/healthz`, `/readyz`.
    pub metrics: u16,
}

/// What the demo prepared.
pub struct Demo {
    pub config_file: PathBuf,
    pub domain: String,
    pub id: String,
    pub ports: DemoPorts,
    pub ca_file: PathBuf,
}

/// Writes a file unless it exists.
fn write_new(path: &Path, content: &str) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    std::fs::write(path, content)
}

/// Writes the demo's files under `dir` and starts the demo app. The key,
/// the CA and the certificate are kept between runs, so the demo's address
/// and a peer's trust in it survive a restart.
pub fn prepare(dir: &Path, ports: DemoPorts) -> std::io::Result<Demo> {
    let err = |e: String| std::io::Error::other(e);
    std::fs::create_dir_all(dir.join("state/apps").join(DEMO_APP))?;
    let dir = dir.canonicalize()?;
    let key_file = dir.join("identity.pem");
    if !key_file.exists() {
        crate::identity::write_new(&crate::identity::generate(), &key_file)
            .map_err(|e| err(e.to_string()))?;
    }
    let identity = crate::identity::load(&key_file).map_err(|e| err(e.to_string()))?;
    let domain = format!("{}.localhost", identity.short_id());
    if !dir.join("cert.pem").exists() || !dir.join("ca.pem").exists() {
        let cert = demo_certificate(&domain).map_err(|e| err(e.to_string()))?;
        std::fs::write(dir.join("ca.pem"), &cert.ca_pem)?;
        std::fs::write(dir.join("cert.pem"), &cert.cert_pem)?;
        std::fs::write(dir.join("key.pem"), &cert.key_pem)?;
    }
    // Trust roots for peers: append another demo's ca.pem to peer with it.
    write_new(
        &dir.join("peers-ca.pem"),
        &std::fs::read_to_string(dir.join("ca.pem"))?,
    )?;
    write_new(&dir.join("state/peers.json"), "[]\n")?;
    // Requests to the internal listener from this machine come from the demo app.
    write_new(
        &dir.join("state/app_addresses.json"),
        &format!("{{\"{DEMO_APP}\": [\"127.0.0.1\"]}}\n"),
    )?;
    std::fs::write(
        dir.join("state/apps").join(DEMO_APP).join("app_meta.json"),
        DEMO_APP_META,
    )?;

    let upstream = start_echo_app()?;
    let config = format!(
        "# Written by `portal-proxy demo`; see conf/portal-proxy.yaml for every key.\n\
         portal:\n  key_file: identity.pem\n  base_domain: localhost\n\
         state_dir: state\n\
         listen:\n  https: 127.0.0.1:{}\n  http: 127.0.0.1:{}\n\
         tls: {{ cert_file: cert.pem, key_file: key.pem }}\n\
         home_app: {DEMO_APP}\n\
         core: {{ upstream: {upstream} }}\n\
         upstreams:\n  {DEMO_APP}: {upstream}\n\
         internal: {{ listen: 127.0.0.1:{} }}\n\
         metrics: {{ listen: 127.0.0.1:{} }}\n\
         peering: {{ ca_file: peers-ca.pem }}\n\
         server: {{ threads: 2, pid_file: portal-proxy.pid, upgrade_sock: upgrade.sock }}\n",
        ports.https, ports.http, ports.internal, ports.metrics
    );
    let config_file = dir.join("portal-proxy.yaml");
    std::fs::write(&config_file, config)?;
    Ok(Demo {
        config_file,
        domain,
        id: identity.id,
        ports,
        ca_file: dir.join("ca.pem"),
    })
}

impl Demo {
    /// The lines a new user can paste to try the demo.
    pub fn instructions(&self) -> String {
        let (d, p, ca) = (&self.domain, self.ports.https, self.ca_file.display());
        let mut s = String::new();
        let _ = writeln!(s, "portal-proxy demo: Portal {}", self.id);
        let _ = writeln!(s, "  domain: {d}");
        let _ = writeln!(s, "  config: {}", self.config_file.display());
        let _ = writeln!(s, "Try (curl resolves *.localhost to 127.0.0.1):");
        let _ = writeln!(s, "  curl --cacert {ca} https://{DEMO_APP}.{d}:{p}/");
        let _ = writeln!(s, "  curl --cacert {ca} --http2 -sI https://{d}:{p}/");
        let _ = writeln!(s, "  curl --cacert {ca} https://{DEMO_APP}.{d}:{p}/core/public/status   # the core, /core stripped");
        let _ = writeln!(
            s,
            "  curl --cacert {ca} https://nope.{d}:{p}/            # 404: no such app"
        );
        let _ = writeln!(
            s,
            "  curl -si http://{DEMO_APP}.{d}:{}/x                  # 308 to https",
            self.ports.http
        );
        let _ = writeln!(
            s,
            "  curl http://127.0.0.1:{}/internal/peers             # the peers (README: two Portals)",
            self.ports.internal
        );
        let m = self.ports.metrics;
        let _ = writeln!(s, "The operator's side (docs/metrics.md):");
        let _ = writeln!(
            s,
            "  curl http://127.0.0.1:{m}/metrics                    # Prometheus"
        );
        let _ = writeln!(
            s,
            "  curl http://127.0.0.1:{m}/healthz                    # the process serves"
        );
        let _ = writeln!(
            s,
            "  curl http://127.0.0.1:{m}/readyz                     # ready for traffic"
        );
        let _ = writeln!(
            s,
            "  Prometheus (monitoring/ has alerts and a dashboard), in scrape_configs:\n  \
             - {{ job_name: portal-proxy, static_configs: [{{ targets: [\"127.0.0.1:{m}\"] }}] }}"
        );
        s
    }
}

/// Starts the demo app on a loopback port chosen by the OS, in its own
/// thread: it answers every request with the request line and headers it
/// received, so the user sees what the proxy forwards.
fn start_echo_app() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("demo-app".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("demo app runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("demo listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(echo(stream));
                }
            })
        })?;
    Ok(addr)
}

async fn echo(mut stream: tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let body = format!("Hello from the demo app. The proxy forwarded:\n\n{head}\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
