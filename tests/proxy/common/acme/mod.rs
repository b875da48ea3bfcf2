//! The ACME lab of `tests/proxy/acme.rs`, all on loopback ports of the
//! OS: Debian's `pebble` (an RFC 8555 test CA) and `pebble-challtestsrv`
//! (the DNS server it validates against), installed with apt when
//! missing; the test controller (`tests/interop/acme_controller.py`,
//! which verifies the Portal's signatures with `http-message-signatures`)
//! and the `exec` hook (`tests/interop/acme_exec_hook.py`); `front.rs`
//! adds to pebble what it lacks.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, python::python_package, PortalFiles};

mod front;
pub use front::Front;

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
