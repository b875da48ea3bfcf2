//! The `metrics.listen` listener (README.md, "Operating it"): `GET /metrics` in the
//! Prometheus text format; `GET /healthz`, 200 while the process serves;
//! `GET /readyz`, 200 once it serves with a valid certificate, else 503
//! with the reason as JSON (for load balancers, systemd watchdogs and
//! container runtimes). Anything else is the proxy's own 404.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;

use super::respond::{accept, refusal_response, uncached};
use crate::observe::metrics::render;
use crate::tls::certificates::CertResolver;
use portal_core::refusal::{Kind, Refusal};

/// Serves the registry of [`crate::observe::metrics`] and the health checks.
pub(crate) struct MetricsApp {
    /// The certificate served, for readiness.
    pub certificate: Arc<CertResolver>,
}

#[derive(Serialize)]
struct Status<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Why the proxy is not ready at `now` (Unix seconds), if it is not.
/// Config, key and state are loaded before any listener starts; what can
/// change while it runs is the certificate (and, under `tls.acme`, a
/// self-signed stand-in serves until the first is obtained: not ready).
pub(crate) fn not_ready(validity: Option<(i64, i64)>, now: i64) -> Option<String> {
    match validity {
        None => Some("the certificate served cannot be read".into()),
        Some((not_before, _)) if now < not_before => Some(format!(
            "the certificate served is not valid before {not_before} (Unix seconds; now {now})"
        )),
        Some((_, not_after)) if now > not_after => Some(format!(
            "the certificate served expired at {not_after} (Unix seconds; now {now})"
        )),
        Some(_) => None,
    }
}

fn json(status: u16, body: &Status<'_>) -> Response<Vec<u8>> {
    let mut bytes = serde_json::to_vec(body).expect("strings always serialize");
    bytes.push(b'\n');
    uncached(status, "application/json", bytes)
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        match req.uri.path() {
            "/metrics" => uncached(200, prometheus::TEXT_FORMAT, render()),
            "/healthz" => json(
                200,
                &Status {
                    status: "ok",
                    reason: None,
                },
            ),
            "/readyz" => {
                let now = crate::clock::unix_now();
                let stand_in = self.certificate.stand_in_reason().map(|r| r.to_string());
                match stand_in.or_else(|| not_ready(self.certificate.validity(), now)) {
                    None => json(
                        200,
                        &Status {
                            status: "ready",
                            reason: None,
                        },
                    ),
                    Some(reason) => json(
                        503,
                        &Status {
                            status: "not_ready",
                            reason: Some(reason),
                        },
                    ),
                }
            }
            _ => refusal_response(
                &Refusal::new(
                    Kind::NotFound,
                    "this listener serves /metrics, /healthz and /readyz",
                ),
                accept(req),
            ),
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
