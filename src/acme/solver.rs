//! The DNS-01 solvers (docs/certificates.md, "Solvers"): what sets and
//! removes the `_acme-challenge` TXT record. Each is asked to `present`
//! one value of one name and later to `cleanup` it; a name can carry two
//! values at once (the domain's and the wildcard's), so a present adds a
//! value and a cleanup removes that value only.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use portal_core::identity::Identity;
use portal_core::outbound::SIGNATURE_VALIDITY;
use portal_core::signature::{authority, signed_headers, Outgoing};

use super::client::{client_config, SolverClient};
use super::SolverSettings;

/// The longest an `exec` hook may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// What a solver is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Present,
    Cleanup,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Present => "present",
            Action::Cleanup => "cleanup",
        }
    }
}

/// A solver ready to be asked.
pub(super) enum Solver<'a> {
    Controller {
        url: &'a http::Uri,
        client: SolverClient,
        identity: &'a Identity,
    },
    HttpReq {
        url: &'a http::Uri,
        client: SolverClient,
        basic: Option<String>,
    },
    Exec {
        command: &'a [String],
    },
}

impl<'a> Solver<'a> {
    /// The solver of `settings`; reads its CA and password files now (a
    /// file fixed after a failure is read again at the next order).
    pub(super) fn new(
        settings: &'a SolverSettings,
        identity: &'a Identity,
    ) -> Result<Self, String> {
        Ok(match settings {
            SolverSettings::PortalController { url, ca_file } => Solver::Controller {
                url,
                client: SolverClient::new(
                    client_config(
                        ca_file.as_deref(),
                        "tls.acme.dns01.portal_controller.ca_file",
                    )?,
                    true,
                ),
                identity,
            },
            SolverSettings::HttpReq {
                url,
                username,
                password_file,
                ca_file,
            } => {
                let basic = match username {
                    None => None,
                    Some(user) => {
                        let password = match password_file {
                            None => String::new(),
                            Some(file) => std::fs::read_to_string(file)
                                .map_err(|e| {
                                    format!(
                                        "tls.acme.dns01.httpreq.password_file: cannot read {}: {e}",
                                        file.display()
                                    )
                                })?
                                .trim_end_matches(['\r', '\n'])
                                .to_string(),
                        };
                        Some(format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode(format!("{user}:{password}"))
                        ))
                    }
                };
                Solver::HttpReq {
                    url,
                    client: SolverClient::new(
                        client_config(ca_file.as_deref(), "tls.acme.dns01.httpreq.ca_file")?,
                        false,
                    ),
                    basic,
                }
            }
            SolverSettings::Exec { command } => Solver::Exec { command },
        })
    }

    /// Asks the solver to `action` the TXT `value` at `fqdn` (fully
    /// qualified, with its final dot).
    pub(super) async fn ask(&self, action: Action, fqdn: &str, value: &str) -> Result<(), String> {
        match self {
            Solver::Controller {
                url,
                client,
                identity,
            } => {
                let request = json_request(
                    url,
                    action,
                    fqdn,
                    value,
                    |builder, body, authority, path| {
                        let signed = signed_headers(
                            &identity.signing_key,
                            &identity.id,
                            &Outgoing {
                                method: "POST",
                                authority,
                                path_and_query: path,
                                body: Some(body),
                            },
                            crate::clock::unix_now(),
                            SIGNATURE_VALIDITY,
                            &crate::clock::fresh_nonce(),
                        )
                        .map_err(|e| format!("cannot sign the request: {e}"))?;
                        Ok(signed
                            .into_iter()
                            .fold(builder, |b, (name, value)| b.header(name, value)))
                    },
                )?;
                answered(client, request, action).await
            }
            Solver::HttpReq { url, client, basic } => {
                let request = json_request(url, action, fqdn, value, |builder, _, _, _| {
                    Ok(match basic {
                        Some(basic) => builder.header(http::header::AUTHORIZATION, basic),
                        None => builder,
                    })
                })?;
                answered(client, request, action).await
            }
            Solver::Exec { command } => run(command, action, fqdn, value).await,
        }
    }
}

/// `POST <url>/<action>` with the JSON `{"fqdn": .., "value": ..}`;
/// `sign` adds headers given the body, the authority and the path.
fn json_request<F>(
    url: &http::Uri,
    action: Action,
    fqdn: &str,
    value: &str,
    sign: F,
) -> Result<http::Request<Full<Bytes>>, String>
where
    F: FnOnce(http::request::Builder, &[u8], &str, &str) -> Result<http::request::Builder, String>,
{
    let body = serde_json::to_vec(&serde_json::json!({"fqdn": fqdn, "value": value}))
        .expect("strings always serialize");
    let host = authority(url.authority().map_or("", |a| a.as_str()));
    let path = format!("{}/{}", url.path().trim_end_matches('/'), action.word());
    let scheme = url.scheme_str().unwrap_or("https");
    let builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("{scheme}://{host}{path}"))
        .header(http::header::HOST, &host)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json");
    let builder = sign(builder, &body, &host, &path)?;
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))
}

/// Sends `request`; a 2xx answer is done, anything else an error naming
/// the status and the start of the body.
async fn answered(
    client: &SolverClient,
    request: http::Request<Full<Bytes>>,
    action: Action,
) -> Result<(), String> {
    let target = request.uri().clone();
    let answer = client
        .send(request)
        .await
        .map_err(|e| format!("{} {target}: {e}", action.word()))?;
    if answer.status.is_success() {
        return Ok(());
    }
    Err(format!(
        "{} {target}: answered {}{}",
        action.word(),
        answer.status,
        if answer.body.is_empty() {
            String::new()
        } else {
            format!(": {}", answer.body)
        }
    ))
}

/// Whether `program` can be run: a path to an executable file, or a name
/// found on `PATH`.
pub(super) fn executable(program: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return if runnable(std::path::Path::new(program)) {
            Ok(())
        } else {
            Err(format!("{program} is not an executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| runnable(&dir.join(program))) {
        Ok(())
    } else {
        Err(format!("{program} is not found on PATH"))
    }
}

/// Runs `command... <action> <fqdn> <value>` (lego's `exec`), bounded by
/// [`EXEC_TIMEOUT`]; a non-zero exit is an error with its stderr.
async fn run(command: &[String], action: Action, fqdn: &str, value: &str) -> Result<(), String> {
    let (program, args) = command
        .split_first()
        .ok_or("tls.acme.dns01.exec.command is empty")?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .args([action.word(), fqdn, value])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{} {program}: cannot start: {e}", action.word()))?;
    let output = tokio::time::timeout(EXEC_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "{} {program}: still running after {} s, killed",
                action.word(),
                EXEC_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("{} {program}: {e}", action.word()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: String = stderr.trim().chars().take(2000).collect();
    Err(format!(
        "{} {program}: {}{}",
        action.word(),
        output.status,
        if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        }
    ))
}

#[cfg(test)]
#[path = "solver_tests.rs"]
mod tests;
