//! The HTTPS clients of ACME: to the CA's directory (for `instant-acme`)
//! and to the solvers' URLs, each trusting the system's roots plus an
//! optional PEM bundle of the operator's.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub(super) use crate::tls::certificates::client_config;

/// The most of a solver's answer read (it is only logged).
const MAX_ANSWER: usize = 16 * 1024;

/// The longest a solver's HTTP call may take, answer included.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn connector(config: rustls::ClientConfig, https_only: bool) -> HttpsConnector<HttpConnector> {
    let builder = HttpsConnectorBuilder::new().with_tls_config(config);
    if https_only {
        builder.https_only().enable_http1().build()
    } else {
        builder.https_or_http().enable_http1().build()
    }
}

/// The client `instant-acme` talks to the CA with.
pub(super) fn acme_http(
    ca_file: Option<&Path>,
) -> Result<Box<dyn instant_acme::HttpClient>, String> {
    let config = client_config(ca_file, "tls.acme.directory_ca_file")?;
    Ok(Box::new(
        Client::builder(TokioExecutor::new())
            .build::<_, instant_acme::BodyWrapper<Bytes>>(connector(config, true)),
    ))
}

/// A solver's HTTP client.
pub(super) struct SolverClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A solver's answer: its status and the start of its body.
pub(super) struct Answer {
    pub status: http::StatusCode,
    pub body: String,
}

impl SolverClient {
    pub(super) fn new(config: rustls::ClientConfig, https_only: bool) -> SolverClient {
        SolverClient {
            client: Client::builder(TokioExecutor::new()).build(connector(config, https_only)),
        }
    }

    /// Sends `request`, bounded by [`CALL_TIMEOUT`].
    pub(super) async fn send(&self, request: http::Request<Full<Bytes>>) -> Result<Answer, String> {
        let call = async {
            let response = self.client.request(request).await.map_err(|e| {
                use std::error::Error as _;
                match e.source() {
                    Some(source) => format!("{e}: {source}"),
                    None => e.to_string(),
                }
            })?;
            let status = response.status();
            let mut body = Vec::new();
            let mut stream = response.into_body();
            while let Some(frame) = stream.frame().await {
                let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
                if let Some(data) = frame.data_ref() {
                    body.extend_from_slice(data);
                    if body.len() >= MAX_ANSWER {
                        body.truncate(MAX_ANSWER);
                        break;
                    }
                }
            }
            Ok(Answer {
                status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer within {} s", CALL_TIMEOUT.as_secs()))?
    }
}
