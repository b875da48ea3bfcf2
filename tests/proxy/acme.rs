//! Certificates by ACME (docs/certificates.md), offline: the real binary
//! against pebble, a real RFC 8555 CA, validating DNS-01 records at
//! pebble-challtestsrv. The test controller verifies the Portal's
//! signatures with an independent RFC 9421 implementation
//! (`http-message-signatures`) before it sets a record. Each test waits
//! for events (the served certificate, a counter, `/readyz`), bounded.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::acme::{exec_hook_command, read_jsonl, Controller, Front, Lab, Mode};
use crate::common::*;

/// How long a certificate may take: the issue's "within a minute".
const WITHIN: Duration = Duration::from_secs(60);

/// One test's Portal in the ACME lab: its files, the lab, the metrics
/// listener's address and the `exec` hook's log.
struct Scene {
    lab: Lab,
    files: PortalFiles,
    metrics: SocketAddr,
    hook_log: std::path::PathBuf,
}

impl Scene {
    /// `name`'s Portal with no certificate, in a lab whose pebble rejects
    /// `nonce_reject` percent of nonces and refuses the names `blocked`.
    fn new(name: &str, nonce_reject: u32, blocked: &[&str]) -> Scene {
        let files = PortalFiles::new(name);
        std::fs::remove_file(files.dir.join("cert.pem")).unwrap();
        std::fs::remove_file(files.dir.join("key.pem")).unwrap();
        let lab = Lab::start(&files, nonce_reject, blocked);
        Scene {
            hook_log: lab.dir.join("exec-hook.jsonl"),
            metrics: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            lab,
            files,
        }
    }

    /// `tls.acme` with this lab's settings and the solver `dns01`.
    fn acme(&self, dns01: &str) -> String {
        self.lab.acme_yaml(dns01)
    }

    /// `tls.acme` with the `exec` hook that logs to [`Scene::hook_log`].
    fn acme_exec(&self) -> String {
        let command = exec_hook_command(&self.lab, &self.hook_log);
        self.acme(&format!("{{ exec: {{ command: {command} }} }}"))
    }

    /// Starts the proxy with `acme` added to its `tls:` section.
    fn start(&self, acme: String) -> Proxy {
        let layout = Layout {
            tls: acme,
            ..Layout::default()
        };
        let extra = format!(
            "core: {{ upstream: \"127.0.0.1:1\" }}\nmetrics: {{ listen: \"{}\" }}\n",
            self.metrics
        );
        Proxy::start_with(&self.files, &layout, &extra)
    }
}

/// `/readyz`: its status and reason.
async fn readyz(metrics: SocketAddr) -> (u16, String) {
    let answer = reqwest::get(format!("http://{metrics}/readyz"))
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap();
    (status, body["reason"].as_str().unwrap_or("").to_string())
}

/// The leaf a new client is served, when it chains to `trusted` (PEM).
async fn served_leaf(proxy: &Proxy, files: &PortalFiles, trusted: &str) -> Result<Vec<u8>, String> {
    let tls = tls_connect(proxy.https, &files.host("app"), trusted).await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

/// The metrics once `n` orders are counted issued, or after 5 s. An order
/// is counted when it ends, after its files are written, and the reload
/// service may serve them (what the tests wait for) before that.
async fn once_issued(metrics: SocketAddr, n: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics_text(metrics).await;
        if counter(&text, "issued") >= n || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counter(text: &str, result: &str) -> f64 {
    series_value(
        text,
        &format!("portal_proxy_acme_orders_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(-1.0)
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A CA and, signed by it, a certificate for the Portal's names valid from
/// 89 days ago to `hours_left` from now (a 90-day certificate near its
/// end); written to `cert.pem` / `key.pem`. Returns the CA (PEM).
fn near_its_end(files: &PortalFiles, hours_left: i64) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "old CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params =
        CertificateParams::new(vec![files.domain.clone(), format!("*.{}", files.domain)]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(89);
    params.not_after = now + time::Duration::hours(hours_left);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(files.dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(files.dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca.pem()
}

/// Every call the controller logged was verified, for the Portal's own
/// name, and each value presented was cleaned up.
fn assert_calls_proper(calls: &[Value], domain: &str, signed: bool) {
    assert!(!calls.is_empty());
    for call in calls {
        assert_eq!(call["verified"], true, "{call}");
        assert_eq!(call["fqdn"], format!("_acme-challenge.{domain}."), "{call}");
        if signed {
            let covered: Vec<&str> = call["covered"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            for c in ["@method", "@authority", "@path", "content-digest"] {
                assert!(covered.contains(&c), "{c} not covered: {call}");
            }
        }
    }
    let presented: Vec<_> = calls
        .iter()
        .filter(|c| c["action"] == "present" && c["answer"] == 200)
        .collect();
    // The domain's value and the wildcard's, at one name.
    assert!(presented.len() >= 2, "{calls:?}");
    for p in presented {
        assert!(
            calls
                .iter()
                .any(|c| c["action"] == "cleanup" && c["value"] == p["value"]),
            "{} was not cleaned up: {calls:?}",
            p["value"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_with_no_certificate_gets_one_through_its_signed_controller() {
    let scene = Scene::new("acme-first", 5, &[]);
    let (lab, files, metrics) = (&scene.lab, &scene.files, scene.metrics);
    // The controller's DNS provider fails twice before it works.
    let controller = Controller::start(lab, files, Mode::Controller, 2);
    let acme = scene.acme(&format!(
        "{{ portal_controller: {{ url: \"{}\", ca_file: \"{}\" }} }}",
        controller.url,
        lab.ca_file.display()
    ));
    {
        let proxy = scene.start(acme.clone());
        let root = lab.issuing_root().await;

        // Meanwhile: listeners up, a self-signed stand-in, /readyz 503 with
        // the reason, the metrics listener serving.
        // (The first two orders fail, a second or more apart.)
        let (status, reason) = readyz(metrics).await;
        assert_eq!(status, 503, "{reason}");
        assert!(reason.contains("no certificate yet"), "{reason}");
        assert!(served_leaf(&proxy, files, &root).await.is_err());
        let expiry = "portal_proxy_certificate_expiry_timestamp_seconds";
        assert_eq!(
            series_value(&metrics_text(metrics).await, expiry),
            Some(0.0)
        );
        let refused_seen = eventually(WITHIN, || async {
            let (status, reason) = readyz(metrics).await;
            status == 503 && reason.contains("answered 503")
        })
        .await;
        let issued = eventually(WITHIN, || async {
            served_leaf(&proxy, files, &root).await.is_ok()
        })
        .await;
        assert!(
            issued,
            "no certificate of the CA served:\n{}",
            proxy.log_text()
        );
        assert!(refused_seen, "/readyz never gave the controller's refusal");
        assert_eq!(readyz(metrics).await, (200, String::new()));

        // The CA's certificate serves HTTP/2 clients that trust its root.
        let client = client(&root, Protocol::Http2);
        let answer = client
            .get(proxy.url(&files.host(""), "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);

        let text = once_issued(metrics, 1.0).await;
        assert_eq!(counter(&text, "issued"), 1.0, "{text}");
        assert_eq!(counter(&text, "solver_error"), 2.0, "{text}");
        // The gauge follows the certificate now served (reloaded).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as f64;
        assert!(series_value(&text, expiry).unwrap() > now, "{text}");
        assert_eq!(
            series_value(&text, "portal_proxy_acme_consecutive_failures"),
            Some(0.0)
        );
        // Pebble's certificates last 5 years: the next renewal is years
        // away (set once the service has looked at the new certificate).
        let years_away = eventually(Duration::from_secs(10), || async {
            let text = metrics_text(metrics).await;
            series_value(&text, "portal_proxy_acme_next_renewal_timestamp_seconds")
                .is_some_and(|next| next > now + 365.0 * 86_400.0)
        })
        .await;
        assert!(years_away, "{}", metrics_text(metrics).await);

        assert_eq!(mode_of(&files.dir.join("key.pem")), 0o600);
        assert_eq!(mode_of(&files.dir.join("acme-account.json")), 0o600);
        let calls = controller.calls();
        assert_calls_proper(&calls, &files.domain, true);
        let refused = calls.iter().filter(|c| c["answer"] == 503).count();
        assert_eq!(refused, 2, "{calls:?}");
        // The CA's problem documents and the controller's answer are logged.
        let log = proxy.log_text();
        assert!(log.contains("the DNS provider is down (test)"), "{log}");
    }

    // A restart reuses the account and the certificate: no new order.
    let proxy = scene.start(acme);
    let root = lab.issuing_root().await;
    assert!(served_leaf(&proxy, files, &root).await.is_ok());
    assert_eq!(readyz(metrics).await.0, 200);
    let text = metrics_text(metrics).await;
    assert_eq!(counter(&text, "issued"), 0.0);
    assert!(
        !proxy.log_text().contains("made at"),
        "a second account was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_a_day_from_its_end_is_renewed_without_a_restart_by_httpreq() {
    let scene = Scene::new("acme-renew", 5, &[]);
    let (lab, files, metrics) = (&scene.lab, &scene.files, scene.metrics);
    let old_ca = near_its_end(files, 24);
    let controller = Controller::start(lab, files, Mode::HttpReq, 0);
    let password = files.dir.join("httpreq-password");
    std::fs::write(
        &password,
        format!("{}\n", crate::common::acme::HTTPREQ_PASSWORD),
    )
    .unwrap();
    let proxy = scene.start(scene.acme(&format!(
        "{{ httpreq: {{ url: \"{}\", username: portal, password_file: \"{}\", ca_file: \"{}\" }} }}",
        controller.url,
        password.display(),
        lab.ca_file.display()
    )));
    let pid = proxy.pid();
    let root = lab.issuing_root().await;
    let renewed = eventually(WITHIN, || async {
        served_leaf(&proxy, files, &root).await.is_ok()
    })
    .await;
    assert!(renewed, "not renewed:\n{}", proxy.log_text());
    assert_eq!(proxy.pid(), pid);
    // New clients no longer get the old certificate.
    assert!(served_leaf(&proxy, files, &old_ca).await.is_err());
    assert!(proxy
        .log_text()
        .contains("the certificate is due for renewal"));
    assert_calls_proper(&controller.calls(), &files.domain, false);
    let text = once_issued(metrics, 1.0).await;
    assert_eq!(counter(&text, "issued"), 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_down_keeps_the_certificate_in_service_counted_and_retried() {
    let scene = Scene::new("acme-down", 5, &[]);
    let (files, metrics) = (&scene.files, scene.metrics);
    let old_ca = near_its_end(files, 24);
    let old_cert = std::fs::read(files.dir.join("cert.pem")).unwrap();
    // Nothing listens there.
    let down = format!("https://127.0.0.1:{}/acme/dns01", free_port());
    let proxy = scene.start(scene.acme(&format!(
        "{{ portal_controller: {{ url: \"{down}\", ca_file: \"{}\" }} }}",
        scene.lab.ca_file.display()
    )));
    let retried = eventually(WITHIN, || async {
        counter(&metrics_text(metrics).await, "solver_error") >= 2.0
    })
    .await;
    assert!(retried, "not retried:\n{}", proxy.log_text());
    let text = metrics_text(metrics).await;
    assert!(series_value(&text, "portal_proxy_acme_consecutive_failures").unwrap() >= 2.0);
    assert_eq!(counter(&text, "issued"), 0.0);
    // The old certificate still serves, its files untouched, and the
    // proxy is ready (the certificate is valid for a day yet).
    assert!(served_leaf(&proxy, files, &old_ca).await.is_ok());
    assert_eq!(std::fs::read(files.dir.join("cert.pem")).unwrap(), old_cert);
    assert_eq!(readyz(metrics).await.0, 200);
    let log = proxy.log_text();
    assert!(log.contains("the certificate in service stays"), "{log}");
    assert!(log.contains(&down), "the log names the URL: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_refusal_is_logged_with_its_problem_document_and_shown_by_readyz() {
    let scene = Scene::new("acme-refused", 0, &["blocked.example"]);
    let (files, metrics, hook_log) = (&scene.files, scene.metrics, &scene.hook_log);
    let proxy = scene.start(
        scene
            .acme_exec()
            .replace("dns01:", "extra_names: [\"blocked.example\"], dns01:"),
    );
    let refused = eventually(WITHIN, || async {
        counter(&metrics_text(metrics).await, "ca_error") >= 1.0
    })
    .await;
    assert!(refused, "{}", proxy.log_text());
    let problem = "urn:ietf:params:acme:error:rejectedIdentifier";
    let log = proxy.log_text();
    assert!(log.contains(&format!("\"type\":\"{problem}\"")), "{log}");
    let (status, reason) = readyz(metrics).await;
    assert_eq!(status, 503);
    assert!(reason.contains(problem), "{reason}");
    // Nothing was presented: the order never got that far. No file written.
    assert!(read_jsonl(hook_log).is_empty());
    assert!(!files.dir.join("cert.pem").exists());
    assert_eq!(counter(&metrics_text(metrics).await, "issued"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_hook_gets_a_certificate_from_a_ca_that_rejects_nonces() {
    // Pebble rejects 5% of good nonces at random (its default), and the
    // front every second POST: each is sent again with a new nonce.
    let scene = Scene::new("acme-exec", 5, &[]);
    let (lab, files, metrics) = (&scene.lab, &scene.files, scene.metrics);
    let front = Front::start(lab, true, false).await;
    let proxy = scene.start(scene.acme_exec().replace(&lab.directory, &front.directory));
    let root = lab.issuing_root().await;
    let issued = eventually(WITHIN, || async {
        served_leaf(&proxy, files, &root).await.is_ok()
    })
    .await;
    assert!(issued, "no certificate:\n{}", proxy.log_text());
    // An account, an order, its authorizations and challenges, the
    // finalization and the certificate: a dozen POSTs, half rejected.
    let rejected = front.rejected.load(std::sync::atomic::Ordering::SeqCst);
    assert!(rejected >= 5, "{rejected} rejected:\n{}", proxy.log_text());
    let text = once_issued(metrics, 1.0).await;
    assert_eq!(counter(&text, "issued"), 1.0, "{text}");
    let calls = read_jsonl(&scene.hook_log);
    assert!(
        calls.iter().filter(|c| c["action"] == "present").count() >= 2,
        "{calls:?}"
    );
    assert!(
        calls.iter().filter(|c| c["action"] == "cleanup").count() >= 2,
        "{calls:?}"
    );
    for call in &calls {
        assert_eq!(call["fqdn"], format!("_acme-challenge.{}.", files.domain));
    }
}

#[test]
fn dash_t_checks_the_acme_section_naming_each_key() {
    let files = PortalFiles::new("acme-t");
    std::fs::remove_file(files.dir.join("cert.pem")).unwrap();
    let config = |tls: &str| {
        format!(
            "portal: {{ key_file: identity.pem, base_domain: {BASE_DOMAIN} }}\nstate_dir: state\n\
             listen: {{ https: \"127.0.0.1:{}\" }}\ncore: {{ upstream: \"127.0.0.1:1\" }}\n\
             tls: {{ cert_file: cert.pem, key_file: key.pem{tls} }}\n",
            free_port()
        )
    };
    let run = |tls: &str| {
        std::fs::write(files.config_file(), config(tls)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portal-proxy"))
            .arg("-t")
            .arg("-c")
            .arg(files.config_file())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // No certificate yet: passes, saying so.
    let (ok, out) = run(", acme: { dns01: { exec: { command: [\"/bin/true\"] } } }");
    assert!(ok, "{out}");
    assert!(out.contains("no certificate yet"), "{out}");
    // Without acme, the missing certificate is an error.
    let (ok, out) = run("");
    assert!(!ok && out.contains("cert.pem"), "{out}");
    for (tls, names) in [
        (", acme: { dns01: {} }", "tls.acme.dns01"),
        (
            ", acme: { dns01: { exec: { command: [\"/bin/true\"] }, httpreq: { url: \"https://h.example\" } } }",
            "tls.acme.dns01",
        ),
        (
            ", acme: { directory: \"http://ca.example/dir\", dns01: { exec: { command: [\"/bin/true\"] } } }",
            "tls.acme.directory",
        ),
        (
            ", acme: { key_type: rsa, dns01: { exec: { command: [\"/bin/true\"] } } }",
            "tls.acme.key_type",
        ),
        (
            ", acme: { dns01: { portal_controller: { url: \"http://c.example/x\" } } }",
            "tls.acme.dns01.portal_controller.url",
        ),
        (
            ", acme: { dns01: { exec: { command: [\"/no/such/hook\"] } } }",
            "tls.acme.dns01.exec.command",
        ),
        (
            ", acme: { directory_ca_file: missing.pem, dns01: { exec: { command: [\"/bin/true\"] } } }",
            "tls.acme.directory_ca_file",
        ),
        (
            ", acme: { extra_names: [\"not a name\"], dns01: { exec: { command: [\"/bin/true\"] } } }",
            "tls.acme.extra_names[0]",
        ),
        (
            ", acme: { email: \"nobody\", dns01: { exec: { command: [\"/bin/true\"] } } }",
            "tls.acme.email",
        ),
        (
            ", acme: { dns01: { exec: { command: [\"/bin/true\"] } }, surprise: 1 }",
            "surprise",
        ),
    ] {
        let (ok, out) = run(tls);
        assert!(!ok, "{tls} passed: {out}");
        assert!(out.contains(names), "{tls}: {names} not named in {out}");
    }
    // An account file of another CA is never used (nor overwritten).
    std::fs::write(
        files.dir.join("acme-account.json"),
        r#"{"id": "x", "key_pkcs8": "AA", "directory": "https://other.example/dir"}"#,
    )
    .unwrap();
    let (ok, out) = run(", acme: { dns01: { exec: { command: [\"/bin/true\"] } } }");
    assert!(
        !ok && out.contains("tls.acme.account_file") && out.contains("other.example"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cas_renewal_window_brings_a_renewal_forward_naming_what_it_replaces() {
    let scene = Scene::new("acme-ari", 5, &[]);
    let (lab, files, metrics) = (&scene.lab, &scene.files, scene.metrics);
    // The CA offers ARI and puts the first certificate it issues into its
    // renewal window at once, years before a third of its life is left.
    let front = Front::start(lab, false, true).await;
    let proxy = scene.start(scene.acme_exec().replace(&lab.directory, &front.directory));
    let root = lab.issuing_root().await;
    let renewed = eventually(WITHIN, || async {
        counter(&metrics_text(metrics).await, "issued") >= 2.0
    })
    .await;
    assert!(renewed, "not renewed:\n{}", proxy.log_text());
    // The renewal was asked of the CA for the certificate it replaced, and
    // the CA is then asked about the new one, which is not due.
    let asked_about_new = eventually(WITHIN, || async {
        front
            .ari_asked
            .lock()
            .unwrap()
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 2
    })
    .await;
    assert!(asked_about_new, "{:?}", front.ari_asked.lock().unwrap());
    let asked = front.ari_asked.lock().unwrap().clone();
    let replaces = front.replaces.lock().unwrap().clone();
    assert_eq!(replaces.len(), 2, "{replaces:?}\n{}", proxy.log_text());
    assert_eq!(replaces[0], None);
    assert_eq!(
        replaces[1].as_deref(),
        Some(asked[0].as_str()),
        "{replaces:?} {asked:?}"
    );
    // The identifier is the served certificate's own: AKI.serial (served
    // once the reload has seen the files the CA was asked about).
    let last = asked.last().unwrap().clone();
    let served_is_asked = eventually(Duration::from_secs(5), || async {
        ari_identifier(&served_leaf(&proxy, files, &root).await.unwrap()) == last
    })
    .await;
    assert!(served_is_asked, "{asked:?}");
    assert_ne!(last, asked[0]);
    assert!(proxy
        .log_text()
        .contains("the CA's renewal window has come"));
    let text = once_issued(metrics, 2.0).await;
    assert_eq!(counter(&text, "issued"), 2.0, "{text}");
    assert_eq!(
        series_value(&text, "portal_proxy_acme_consecutive_failures"),
        Some(0.0)
    );
}

/// RFC 9773 section 4.1: base64url(keyIdentifier) "." base64url(serial),
/// computed here from the certificate with x509-parser.
fn ari_identifier(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    format!("{}.{}", b64(&aki), b64(cert.tbs_certificate.raw_serial()))
}
