//! The ACME lab of `tests/proxy/acme.rs`, all on loopback ports of the
//! OS: Debian's `pebble` (an RFC 8555 test CA) and `pebble-challtestsrv`
//! (the DNS server it validates against), installed with apt when
//! missing; the test controller (`tests/interop/acme_controller.py`,
//! which verifies the Portal's signatures with `http-message-signatures`)
//! and the `exec` hook (`tests/interop/acme_exec_hook.py`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{free_port, python::python_package, PortalFiles};

/// Installs Debian's `pebble` package when `pebble` is not on the PATH;
/// panics with what to do when it cannot.
fn ensure_pebble() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let check = CHECK.get_or_init(|| {
        let found = |name: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !found("pebble") || !found("pebble-challtestsrv") {
            let _ = Command::new("sh")
                .args([
                    "-c",
                    "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble) >/dev/null 2>&1",
                ])
                .status();
        }
        if found("pebble") && found("pebble-challtestsrv") {
            Ok(())
        } else {
            Err("the ACME tests need Debian's pebble package (pebble and pebble-challtestsrv): apt-get install pebble".into())
        }
    });
    if let Err(message) = check {
        panic!("{message}");
    }
}

/// A CA and a certificate it signed for `localhost` and 127.0.0.1: the
/// HTTPS of pebble, of its management API and of the test controller.
struct LabCertificate {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn lab_certificate() -> LabCertificate {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "portal-proxy ACME lab CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    LabCertificate {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn wait_listening(addr: SocketAddr, what: &str, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within 20 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running pebble and challtestsrv, killed on drop.
pub struct Lab {
    pebble: Child,
    challtestsrv: Child,
    pub dir: PathBuf,
    /// The directory URL.
    pub directory: String,
    /// The lab CA (PEM file): trusts pebble's HTTPS and the controller's.
    pub ca_file: PathBuf,
    /// challtestsrv's DNS server, which pebble asks.
    pub dns: SocketAddr,
    /// challtestsrv's management API, `http://127.0.0.1:<port>`.
    pub challtestsrv_url: String,
    management: SocketAddr,
    ca_pem: String,
    cert_file: PathBuf,
    key_file: PathBuf,
    pub pebble_log: PathBuf,
}

impl Lab {
    /// Starts the lab in `files.dir/acme-lab`; pebble rejects
    /// `nonce_reject` percent of good nonces with `badNonce` (pebble's
    /// own default is 5) and refuses to issue for the `blocked` names (its
    /// `domainBlocklist`: a `rejectedIdentifier` problem).
    pub fn start(files: &PortalFiles, nonce_reject: u32, blocked: &[&str]) -> Lab {
        ensure_pebble();
        let dir = files.dir.join("acme-lab");
        std::fs::create_dir_all(&dir).unwrap();
        let cert = lab_certificate();
        let (ca_file, cert_file, key_file) = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        std::fs::write(&ca_file, &cert.ca_pem).unwrap();
        std::fs::write(&cert_file, &cert.cert_pem).unwrap();
        std::fs::write(&key_file, &cert.key_pem).unwrap();
        let port = || free_port();
        let dns: SocketAddr = format!("127.0.0.1:{}", port()).parse().unwrap();
        let chall_mgmt: SocketAddr = format!("127.0.0.1:{}", port()).parse().unwrap();
        let listen: SocketAddr = format!("127.0.0.1:{}", port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", port()).parse().unwrap();
        let chall_log = dir.join("challtestsrv.log");
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns.to_string(),
                "-management",
                &chall_mgmt.to_string(),
            ])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(std::fs::File::create(&chall_log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let config = serde_json::json!({"pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": cert_file, "privateKey": key_file,
            "httpPort": port(), "tlsPort": port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
            "domainBlocklist": blocked,
        }});
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let pebble_log = dir.join("pebble.log");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", nonce_reject.to_string())
            .stdout(std::fs::File::create(&pebble_log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lab = Lab {
            pebble,
            challtestsrv,
            dir,
            directory: format!("https://{listen}/dir"),
            ca_file,
            dns,
            challtestsrv_url: format!("http://{chall_mgmt}"),
            management,
            ca_pem: cert.ca_pem,
            cert_file,
            key_file,
            pebble_log,
        };
        wait_listening(chall_mgmt, "pebble-challtestsrv", &chall_log);
        wait_listening(listen, "pebble", &lab.pebble_log);
        wait_listening(management, "pebble's management API", &lab.pebble_log);
        lab
    }

    /// Pebble's root certificate (made anew at each start), PEM: what a
    /// client trusts to accept the certificates pebble issues.
    pub async fn issuing_root(&self) -> String {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        let url = format!("https://{}/roots/0", self.management);
        let answer = client.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{url}");
        answer.text().await.unwrap()
    }

    /// `, acme: {...}` for [`super::Layout::tls`]: this lab's directory,
    /// DNS and fast retries, with the `dns01` solver given.
    pub fn acme_yaml(&self, dns01: &str) -> String {
        format!(
            ", acme: {{ directory: \"{}\", directory_ca_file: \"{}\", dns_resolvers: [\"{}\"], \
             retry_initial_seconds: 1, max_orders_per_hour: 60, propagation_timeout_seconds: 10, dns01: {dns01} }}",
            self.directory,
            self.ca_file.display(),
            self.dns
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.challtestsrv] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How the test controller checks its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The Portal's signature, verified by `http-message-signatures`.
    Controller,
    /// lego's httpreq: basic auth `portal` / [`HTTPREQ_PASSWORD`].
    HttpReq,
}

pub const HTTPREQ_PASSWORD: &str = "s3cret: with a colon";

/// The test controller (`tests/interop/acme_controller.py`), killed on drop.
pub struct Controller {
    child: Child,
    /// Its base URL, `https://127.0.0.1:<port>/acme/dns01`.
    pub url: String,
    log: PathBuf,
}

impl Controller {
    /// Starts it for the Portal of `files`; it answers 503 to the first
    /// `refuse_first` presents.
    pub fn start(lab: &Lab, files: &PortalFiles, mode: Mode, refuse_first: u32) -> Controller {
        python_package();
        let log = lab.dir.join(format!("controller-{mode:?}.jsonl"));
        let spec = serde_json::json!({
            "mode": match mode { Mode::Controller => "controller", Mode::HttpReq => "httpreq" },
            "cert": lab.cert_file, "key": lab.key_file,
            "base": "/acme/dns01",
            "challtestsrv": lab.challtestsrv_url,
            "log": log,
            "public_key_pem": files.identity.public_key_pem,
            "keyid": files.identity.id,
            "domain": files.domain,
            "username": "portal", "password": HTTPREQ_PASSWORD,
            "refuse_first": refuse_first,
        });
        let script: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "interop",
            "acme_controller.py",
        ]
        .iter()
        .collect();
        let mut child = Command::new("python3")
            .arg(&script)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(lab.dir.join("controller.stderr")).unwrap())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the test controller did not start:\n{}",
                std::fs::read_to_string(lab.dir.join("controller.stderr")).unwrap_or_default()
            )
        });
        Controller {
            child,
            url: format!("https://127.0.0.1:{port}/acme/dns01"),
            log,
        }
    }

    /// Every call it received, in order.
    pub fn calls(&self) -> Vec<Value> {
        read_jsonl(&self.log)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON lines of `path` (none when it does not exist).
pub fn read_jsonl(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `["python3", ".../acme_exec_hook.py", <challtestsrv>, <log>]`, as a
/// YAML flow list, for `exec: { command: ... }`.
pub fn exec_hook_command(lab: &Lab, log: &std::path::Path) -> String {
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "interop",
        "acme_exec_hook.py",
    ]
    .iter()
    .collect();
    format!(
        "[\"python3\", \"{}\", \"{}\", \"{}\"]",
        script.display(),
        lab.challtestsrv_url,
        log.display()
    )
}

/// An HTTPS front of pebble's ACME API, for what pebble 2.4 does not do
/// itself. Everything it does not answer goes to pebble as received,
/// `Host` included (pebble writes its URLs, and checks the JWS `url`,
/// with the `Host` it is sent).
///
/// - `reject_nonces`: every second POST is answered with a `badNonce`
///   problem (RFC 8555 section 6.5) without a fresh nonce, as a CA does
///   for a nonce it no longer knows; the client must get a new nonce and
///   send the request again.
/// - `ari`: the directory offers ACME Renewal Information (RFC 9773),
///   answered here: the first certificate asked about is in its renewal
///   window already (a CA about to revoke it), any other is not for a
///   month. The `replaces` field of each new order is recorded.
pub struct Front {
    /// The directory URL through the front.
    pub directory: String,
    /// The `badNonce` answers given so far.
    pub rejected: Arc<AtomicUsize>,
    /// The certificate identifiers asked about, in order.
    pub ari_asked: Arc<std::sync::Mutex<Vec<String>>>,
    /// The `replaces` of each order made (`None` for an order without).
    pub replaces: Arc<std::sync::Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

type FrontResponse = hyper::Response<Full<Bytes>>;

/// Sends `parts` and `body` to pebble at `addr` over a new TLS connection.
async fn to_pebble(
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    parts: http::request::Parts,
    body: Bytes,
) -> FrontResponse {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tls.connect(name, tcp).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let answer = sender
        .send_request(hyper::Request::from_parts(parts, Full::new(body)))
        .await
        .unwrap();
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    hyper::Response::from_parts(parts, Full::new(body))
}

fn json_response(status: u16, content_type: &str, body: String) -> FrontResponse {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("retry-after", "3600")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The `payload` of a JWS in flattened JSON (RFC 7515), as JSON.
fn jws_payload(body: &[u8]) -> Value {
    use base64::Engine as _;
    let jws: Value = serde_json::from_slice(body).unwrap();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jws["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap_or(Value::Null)
}

/// A suggested window `[now + from, now + to)`, RFC 3339.
fn window(from: time::Duration, to: time::Duration) -> String {
    let fmt = &time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    serde_json::json!({"suggestedWindow": {
        "start": (now + from).format(fmt).unwrap(),
        "end": (now + to).format(fmt).unwrap(),
    }})
    .to_string()
}

struct FrontState {
    pebble: SocketAddr,
    front: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    reject_nonces: bool,
    ari: bool,
    posts: AtomicUsize,
    rejected: Arc<AtomicUsize>,
    ari_asked: Arc<std::sync::Mutex<Vec<String>>>,
    replaces: Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl FrontState {
    async fn answer(&self, parts: http::request::Parts, body: Bytes) -> FrontResponse {
        let path = parts.uri.path().to_string();
        if parts.method == http::Method::POST
            && self.reject_nonces
            && self.posts.fetch_add(1, Ordering::SeqCst).is_multiple_of(2)
        {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            let problem = r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce (test front)","status":400}"#;
            return json_response(400, "application/problem+json", problem.into());
        }
        if self.ari {
            if let Some(id) = path.strip_prefix("/renewal-info/") {
                let mut asked = self.ari_asked.lock().unwrap();
                let first = asked.first().is_none_or(|f| f == id);
                asked.push(id.to_string());
                let day = time::Duration::days(1);
                let body = if first {
                    window(-day, -day / 2)
                } else {
                    window(30 * day, 31 * day)
                };
                return json_response(200, "application/json", body);
            }
        }
        // What the answer gains: the directory its `renewalInfo`, a new
        // order the `replaces` it was sent (RFC 9773 sections 3 and 5).
        let added: Option<(&str, Value)> = match (self.ari, path.as_str()) {
            (true, "/dir") => Some((
                "renewalInfo",
                format!("https://{}/renewal-info", self.front).into(),
            )),
            (true, "/order-plz") if parts.method == http::Method::POST => {
                Some(("replaces", jws_payload(&body)["replaces"].clone()))
            }
            _ => None,
        };
        let answer = to_pebble(self.pebble, self.connector.clone(), parts, body).await;
        // Orders made (not those pebble refused, a `badNonce` say).
        if let Some(("replaces", replaces)) = &added {
            if answer.status() == http::StatusCode::CREATED {
                self.replaces
                    .lock()
                    .unwrap()
                    .push(replaces.as_str().map(str::to_string));
            }
        }
        let added = added.filter(|(_, value)| !value.is_null());
        let Some((field, value)) = added else {
            return answer;
        };
        let (mut parts, body) = answer.into_parts();
        let mut object: Value =
            serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap();
        object[field] = value;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        hyper::Response::from_parts(parts, Full::new(Bytes::from(object.to_string())))
    }
}

impl Front {
    pub async fn start(lab: &Lab, reject_nonces: bool, ari: bool) -> Front {
        use rustls::pki_types::pem::PemObject as _;
        let provider = || Arc::new(rustls::crypto::ring::default_provider());
        let chain = rustls::pki_types::CertificateDer::pem_file_iter(&lab.cert_file)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&lab.key_file).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(lab.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        let state = Arc::new(FrontState {
            pebble: lab
                .directory
                .trim_start_matches("https://")
                .trim_end_matches("/dir")
                .parse()
                .unwrap(),
            front,
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            reject_nonces,
            ari,
            posts: AtomicUsize::new(0),
            rejected: Arc::new(AtomicUsize::new(0)),
            ari_asked: Arc::default(),
            replaces: Arc::default(),
        });
        let (rejected, ari_asked, replaces) = (
            state.rejected.clone(),
            state.ari_asked.clone(),
            state.replaces.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body.collect().await.unwrap().to_bytes();
                                Ok::<_, std::convert::Infallible>(state.answer(parts, body).await)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Front {
            directory: format!("https://{front}/dir"),
            rejected,
            ari_asked,
            replaces,
            task,
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}
