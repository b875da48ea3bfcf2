//! The binary's subcommands as an operator runs them: `keygen`, `id`, `demo`, and
//! `-t -c <config>` (check the config and everything it names, then exit).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portal_core::identity::{PORTAL_ID_LEN, SHORT_ID_LEN};

const BIN: &str = env!("CARGO_BIN_EXE_portal-proxy");
const ALPHABET: &str = "abcdefghjklnpqrstvwxyz0123456789";
const BASE_DOMAIN: &str = "p.example.org";

/// A folder of its own for one test, removed when the test ends (also when
/// it fails, so reruns start clean).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("portal-proxy-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary in `cwd` (never the crate folder, so nothing relies on it).
fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("run portal-proxy")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_fails(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "{what} must fail\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

fn assert_succeeds(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} must succeed ({})\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

// ---------------------------------------------------------------- keygen, id

#[test]
fn keygen_writes_a_private_key_and_prints_its_portal_id() {
    let tmp = TempDir::new("keygen");
    let key = tmp.path().join("identity.pem");
    let out = run(tmp.path(), &["keygen", key.to_str().unwrap()]);
    assert_succeeds(&out, "keygen");

    let printed = stdout(&out);
    let id = printed.trim_end_matches('\n');
    assert!(!id.contains('\n'), "one line expected: {printed:?}");
    assert_eq!(id.len(), PORTAL_ID_LEN, "{id:?}");
    assert_eq!(id.len(), 103);
    assert!(
        id.chars().all(|c| ALPHABET.contains(c)),
        "{id:?} has characters outside {ALPHABET}"
    );

    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    assert!(
        pem.trim_end().ends_with("-----END PRIVATE KEY-----"),
        "{pem}"
    );
    // The printed ID is the one of the key written.
    assert_eq!(portal_proxy::identity::load(&key).unwrap().id, id);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
}

#[test]
fn keygen_never_overwrites_a_key() {
    let tmp = TempDir::new("keygen-twice");
    let key = tmp.path().join("identity.pem");
    let first = run(tmp.path(), &["keygen", key.to_str().unwrap()]);
    assert_succeeds(&first, "first keygen");
    let before = std::fs::read(&key).unwrap();

    let second = run(tmp.path(), &["keygen", key.to_str().unwrap()]);
    assert_fails(&second, "keygen on an existing key");
    assert_eq!(stdout(&second), "", "no ID may be printed");
    assert!(
        stderr(&second).contains(key.to_str().unwrap()),
        "{}",
        stderr(&second)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key changed");

    // Also when the existing file is not a key at all.
    let other = tmp.path().join("notes.txt");
    write(&other, "keep me");
    let out = run(tmp.path(), &["keygen", other.to_str().unwrap()]);
    assert_fails(&out, "keygen on an existing file");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep me");
}

#[test]
fn id_prints_the_portal_id_and_short_id_of_a_key() {
    let tmp = TempDir::new("id");
    let key = tmp.path().join("identity.pem");
    let keygen = run(tmp.path(), &["keygen", key.to_str().unwrap()]);
    assert_succeeds(&keygen, "keygen");
    let id = stdout(&keygen).trim().to_string();

    let out = run(tmp.path(), &["id", key.to_str().unwrap()]);
    assert_succeeds(&out, "id");
    assert_eq!(
        stdout(&out),
        format!("id: {id}\nshort_id: {}\n", &id[..SHORT_ID_LEN])
    );
    assert_eq!(SHORT_ID_LEN, 6);
}

#[test]
fn id_refuses_a_file_that_is_not_a_key() {
    let tmp = TempDir::new("id-bad");
    let junk = tmp.path().join("junk.pem");
    write(&junk, "-----BEGIN PRIVATE KEY-----\nnot base64\n");
    let out = run(tmp.path(), &["id", junk.to_str().unwrap()]);
    assert_fails(&out, "id on a non-key file");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains(junk.to_str().unwrap()), "{err}");
    assert!(err.contains("PKCS#8"), "{err}");

    let missing = tmp.path().join("missing.pem");
    let out = run(tmp.path(), &["id", missing.to_str().unwrap()]);
    assert_fails(&out, "id on a missing file");
    assert!(
        stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
}

// ------------------------------------------------------------------- -t -c

/// A complete, valid Portal under `<tmp>/etc`: key, certificate, state with
/// two apps, and a config naming them all by relative paths.
struct Setup {
    tmp: TempDir,
    id: String,
}

const APP_META: &str = r#"{
  "v": "1.0",
  "name": "Files",
  "entrypoints": [
    {"container_name": "files-web", "container_port": 8080, "entrypoint_port": "http"}
  ],
  "paths": {
    "": {"access": "private"},
    "/share/": {"access": "public", "headers": {"X-Ptl-User": "{{ auth.client_id }}"}}
  }
}"#;

const CONFIG: &str = r#"portal:
  key_file: identity.pem
  base_domain: p.example.org
state_dir: state
listen:
  https: 127.0.0.1:8443
  http: 127.0.0.1:8080
tls:
  cert_file: cert.pem
  key_file: key.pem
core:
  upstream: 127.0.0.1:8000
upstreams:
  files: 127.0.0.1:9000
server:
  threads: 2
"#;

impl Setup {
    fn new(test: &str) -> Self {
        let tmp = TempDir::new(test);
        let etc = tmp.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let identity = portal_proxy::identity::generate();
        portal_proxy::identity::write_new(&identity, &etc.join("identity.pem")).unwrap();
        let domain = format!("{}.{BASE_DOMAIN}", identity.short_id());
        let cert = portal_proxy::tls::certificates::demo_certificate(&domain).unwrap();
        write(&etc.join("cert.pem"), &cert.cert_pem);
        write(&etc.join("key.pem"), &cert.key_pem);
        write(&etc.join("state/apps/files/app_meta.json"), APP_META);
        write(
            &etc.join("state/apps/web-terminal/app_meta.json"),
            r#"{"port": 7681, "paths": {"": {"access": "private"}}}"#,
        );
        write(&etc.join("portal-proxy.yaml"), CONFIG);
        Setup {
            tmp,
            id: identity.id,
        }
    }

    fn etc(&self) -> PathBuf {
        self.tmp.path().join("etc")
    }

    fn config(&self) -> PathBuf {
        self.etc().join("portal-proxy.yaml")
    }

    fn set_config(&self, text: &str) {
        write(&self.config(), text);
    }

    /// `portal-proxy -t -c <config>`, run from the temp folder (the parent
    /// of the config's folder).
    fn check(&self) -> Output {
        run(
            self.tmp.path(),
            &["-t", "-c", self.config().to_str().unwrap()],
        )
    }
}

#[test]
fn check_accepts_a_valid_setup() {
    let setup = Setup::new("check-ok");
    let out = setup.check();
    assert_succeeds(&out, "-t on a valid setup");
    let text = stdout(&out);
    assert!(text.contains("2 app(s) loaded"), "{text}");
    assert!(text.contains("0 state error(s)"), "{text}");
    // The last line is the verdict.
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("portal-proxy -t: OK"),
        "{text}"
    );
    assert!(text.contains(&setup.id), "{text}");
    let domain = format!("{}.{BASE_DOMAIN}", &setup.id[..SHORT_ID_LEN]);
    assert!(text.contains(&domain), "{text}");
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn check_names_an_unknown_key() {
    let setup = Setup::new("check-unknown");
    setup.set_config(&CONFIG.replace("  threads: 2\n", "  threads: 2\n  thread: 3\n"));
    let out = setup.check();
    assert_fails(&out, "-t with an unknown key");
    let err = stderr(&out);
    assert!(
        err.contains("server.thread: unknown field `thread`"),
        "{err}"
    );
    assert!(
        err.contains(setup.config().to_str().unwrap()),
        "the config file must be named: {err}"
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn check_reports_every_bad_value_at_once() {
    let setup = Setup::new("check-many");
    let bad = CONFIG
        .replace("https: 127.0.0.1:8443", "https: localhost:8443")
        .replace("upstream: 127.0.0.1:8000", "upstream: 127.0.0.1")
        .replace("base_domain: p.example.org", "base_domain: p..org")
        .replace("threads: 2", "threads: 0")
        .replace("files: 127.0.0.1:9000", "files: 127.0.0.1:99999");
    setup.set_config(&bad);
    let out = setup.check();
    assert_fails(&out, "-t with bad values");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().map(str::trim).collect();
    for key in [
        "listen.https:",
        "core.upstream:",
        "portal.base_domain:",
        "server.threads:",
        "upstreams.files:",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(key)),
            "{key} missing in:\n{err}"
        );
    }
    // One line naming the file, one line per error, then the verdict.
    assert!(lines[0].contains("invalid config"), "{err}");
    assert_eq!(lines.len(), 7, "{err}");
    assert_eq!(
        lines[6],
        "portal-proxy -t: FAILED: 5 problem(s) found, listed above"
    );
}

#[test]
fn check_names_a_broken_app_meta_file() {
    let setup = Setup::new("check-app");
    let broken = setup.etc().join("state/apps/broken/app_meta.json");
    // No default path "": the app cannot be served.
    write(
        &broken,
        r#"{"port": 80, "paths": {"/x/": {"access": "public"}}}"#,
    );
    let out = setup.check();
    assert_fails(&out, "-t with a broken app_meta.json");
    let err = stderr(&out);
    assert!(err.contains(broken.to_str().unwrap()), "{err}");
    assert!(err.contains("default path"), "{err}");
    // The other apps still load.
    assert!(
        stdout(&out).contains("2 app(s) loaded, 1 state error(s)"),
        "{}",
        stdout(&out)
    );

    // Invalid JSON is named the same way.
    write(&broken, "{\"port\": 80,");
    let out = setup.check();
    assert_fails(&out, "-t with an app_meta.json that is not JSON");
    let err = stderr(&out);
    assert!(err.contains(broken.to_str().unwrap()), "{err}");
    assert!(err.contains("invalid JSON"), "{err}");
}

#[test]
fn check_names_a_missing_key_file() {
    let setup = Setup::new("check-key");
    let key = setup.etc().join("identity.pem");
    std::fs::remove_file(&key).unwrap();
    let out = setup.check();
    assert_fails(&out, "-t without the key file");
    let err = stderr(&out);
    assert!(err.contains("portal.key_file"), "{err}");
    assert!(
        err.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("portal-proxy -t: FAILED"),
        "{err}"
    );
    assert!(err.contains(key.to_str().unwrap()), "{err}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let setup = Setup::new("check-relative");
    // Run from a folder that holds none of the files, and name the config
    // relatively: `../etc/portal-proxy.yaml`.
    let elsewhere = setup.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = run(&elsewhere, &["-t", "-c", "../etc/portal-proxy.yaml"]);
    assert_succeeds(&out, "-t from another folder");
    assert!(stdout(&out).contains("2 app(s) loaded"), "{}", stdout(&out));

    // The same config copied next to the current folder's own (empty)
    // surroundings fails: the paths follow the config, not the cwd.
    std::fs::copy(setup.config(), elsewhere.join("portal-proxy.yaml")).unwrap();
    let out = run(
        &setup.etc(),
        &["-t", "-c", "../elsewhere/portal-proxy.yaml"],
    );
    assert_fails(&out, "-t with a config whose folder lacks the files");
    let err = stderr(&out);
    let expected = Path::new("../elsewhere").join("identity.pem");
    assert!(err.contains("portal.key_file"), "{err}");
    assert!(err.contains(expected.to_str().unwrap()), "{err}");
}

/// `conf/portal-proxy.yaml`, as shipped, passes `-t` once the files it
/// names exist beside it.
#[test]
fn shipped_config_passes_check() {
    let setup = Setup::new("shipped");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/portal-proxy.yaml"
    ))
    .unwrap();
    setup.set_config(&shipped);
    let out = setup.check();
    assert_succeeds(&out, "-t on the shipped config");
    assert!(
        stdout(&out).contains(".p.getportal.org"),
        "{}",
        stdout(&out)
    );
}

/// `demo` as the README gives it: the Portal, and the operator's side on
/// the metrics port, with the lines to try it printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_metrics_health_and_readiness() {
    use std::io::Read as _;
    let dir = TempDir::new("demo");
    let port = || crate::common::free_port().to_string();
    let (https, http, internal, metrics) = (port(), port(), port(), port());
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "demo",
            "--dir",
            "d",
            "--https-port",
            &https,
            "--http-port",
            &http,
        ])
        .args(["--internal-port", &internal, "--metrics-port", &metrics])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{metrics}");
    let up = crate::common::eventually(std::time::Duration::from_secs(20), || async {
        reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let healthz = reqwest::get(format!("{base}/healthz"))
        .await
        .map(|r| r.status());
    let scrape = match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut printed = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut printed);
    assert!(up, "the demo's /readyz never answered 200:\n{printed}");
    assert_eq!(healthz.ok().map(|s| s.as_u16()), Some(200));
    assert!(scrape.contains("portal_proxy_requests_total"), "{scrape}");
    for line in [
        format!("curl http://127.0.0.1:{metrics}/metrics"),
        format!("curl http://127.0.0.1:{metrics}/healthz"),
        format!("curl http://127.0.0.1:{metrics}/readyz"),
        format!("targets: [\"127.0.0.1:{metrics}\"]"),
    ] {
        assert!(printed.contains(&line), "{line:?} not printed:\n{printed}");
    }
}
