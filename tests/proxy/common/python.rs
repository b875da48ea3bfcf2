//! The independent implementations of the interoperability tests: the
//! Python packages `http-message-signatures` (RFC 9421), `PyJWT` and
//! `apsig` (an ActivityPub delivery signer),
//! installed with pip when they are missing, and the Node packages `jose`
//! and `jsonwebtoken`, installed with npm under `target/`; driven by the
//! scripts of `tests/interop/`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The version of the Python package, or why it cannot be used. Checked
/// once; every test that needs Python panics with this message.
pub fn python_package() -> &'static str {
    static CHECK: OnceLock<Result<String, String>> = OnceLock::new();
    let check = CHECK.get_or_init(|| {
        // The test setup installs the package when it is missing.
        let import = Command::new("python3")
            .args(["-c", "import http_message_signatures, jwt, apsig"])
            .output();
        if import.is_ok_and(|o| !o.status.success()) {
            let _ = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "http-message-signatures==3.0.0",
                    "PyJWT==2.10.1",
                    "apsig==0.6.0",
                ])
                .status();
        }
        let out = Command::new("python3")
            .args([
                "-c",
                "import importlib.metadata as m, http_message_signatures, jwt, apsig; \
                 print(m.version('http-message-signatures'))",
            ])
            .output()
            .map_err(|e| {
                format!("cannot run python3 ({e}); the interop tests need python3 with `pip install http-message-signatures`")
            })?;
        if !out.status.success() {
            return Err(format!(
                "python3 cannot import http_message_signatures, jwt and apsig; install them with `pip install http-message-signatures PyJWT apsig`:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    match check {
        Ok(version) => version,
        Err(message) => panic!("{message}"),
    }
}

/// Runs `tests/interop/<script>.py` with `input` as JSON on stdin: its JSON
/// output, or its stderr when it exits with an error.
pub fn python(script: &str, input: &Value) -> Result<Value, String> {
    python_package();
    let mut command = Command::new("python3");
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    run_script(command, script, "py", input)
}

/// Runs `command` on `tests/interop/<script>.<extension>` with `input` as
/// JSON on stdin: its JSON output, or its stderr when it exits with an
/// error.
fn run_script(
    mut command: Command,
    script: &str,
    extension: &str,
    input: &Value,
) -> Result<Value, String> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "interop", script]
        .iter()
        .collect::<PathBuf>()
        .with_extension(extension);
    let mut child = command
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(stderr);
    }
    let output = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script}.{extension} printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Ok(output)
}

/// The folder whose `node_modules` holds `jose` and `jsonwebtoken`,
/// installed with npm on first use; panics when Node.js or the packages
/// cannot be had (the tests never skip).
fn node_packages() -> &'static PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "target", "interop-node"]
            .iter()
            .collect();
        let installed = ["jose", "jsonwebtoken"].iter().all(|p| {
            dir.join("node_modules")
                .join(p)
                .join("package.json")
                .exists()
        });
        if !installed {
            install_node_when_missing();
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let status = Command::new("npm")
                .args([
                    "install",
                    "--silent",
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--prefix",
                ])
                .arg(&dir)
                .args(["jose@5.9.6", "jsonwebtoken@9.0.2"])
                .status()
                .map_err(|e| {
                    format!("cannot run npm ({e}); the JWT interop test needs Node.js and npm")
                })?;
            if !status.success() {
                return Err(format!("npm install jose jsonwebtoken failed: {status}"));
            }
        }
        Ok(dir)
    });
    match dir {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    }
}

/// Installs Node.js and npm (Debian's `nodejs` and `npm`) when they are
/// missing and apt-get can run as root, as the build does for cmake: the
/// test command brings what it needs.
fn install_node_when_missing() {
    let has = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has("node") && has("npm") {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root && has("apt-get") {
        eprintln!("the JWT interop test needs Node.js and npm: installing them with apt-get");
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "nodejs", "npm"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
}

/// The `node_modules` folder with `jose` and `jsonwebtoken` (installed
/// on first use), for `NODE_PATH`.
pub fn node_modules() -> PathBuf {
    node_packages().join("node_modules")
}

/// Runs `tests/interop/<script>.cjs` with Node.js and `input` as JSON on
/// stdin: its JSON output.
pub fn node(script: &str, input: &Value) -> Value {
    let mut command = Command::new("node");
    command.env("NODE_PATH", node_packages().join("node_modules"));
    run_script(command, script, "cjs", input).unwrap_or_else(|e| panic!("{script}.cjs failed: {e}"))
}
