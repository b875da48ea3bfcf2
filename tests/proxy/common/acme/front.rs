//! A front of pebble's ACME API for what pebble 2.4 does not do itself:
//! nonces rejected on purpose, and ACME Renewal Information.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

use super::Lab;

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
