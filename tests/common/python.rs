//! The independent RFC 9421 implementation of the interoperability tests:
//! the Python package `http-message-signatures`, installed with pip when
//! it is missing, driven by the scripts of `tests/interop/`.

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
            .args(["-c", "import http_message_signatures"])
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
                ])
                .status();
        }
        let out = Command::new("python3")
            .args([
                "-c",
                "import importlib.metadata as m, http_message_signatures; \
                 print(m.version('http-message-signatures'))",
            ])
            .output()
            .map_err(|e| {
                format!("cannot run python3 ({e}); the interop tests need python3 with `pip install http-message-signatures`")
            })?;
        if !out.status.success() {
            return Err(format!(
                "python3 cannot import http_message_signatures; install it with `pip install http-message-signatures`:\n{}",
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
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "interop", script]
        .iter()
        .collect::<PathBuf>()
        .with_extension("py");
    let mut child = Command::new("python3")
        .arg(&path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", path.display()));
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
            "{script}.py printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Ok(output)
}
