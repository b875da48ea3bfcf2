//! The outbound HTTPS client of the internal listener (docs/peering.md):
//! the signed request sent to the same app on a peer, with its
//! request-target byte for byte as the app wrote it (and signed so), TLS
//! verified against the system roots plus `peering.ca_file` (reloaded
//! when it changes), peers' `address` overrides in place of DNS, and the
//! answer streamed back to the calling app. HTTP/1.1 over hyper and
//! tokio-rustls, one connection per call.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use log::{info, warn};
use pingora::protocols::http::ServerSession;

use super::failure::CallFailure;
use crate::config::{Limits, Peering};
use crate::listeners::{connect, ConnectError};
use crate::tls::peer::{pinned_client_config, wrong_key};
use portal_core::identity::Identity;
use portal_core::outbound::{end_to_end, SIGNATURE_VALIDITY};
use portal_core::peer_answer::{self, AnswerVerdict};
use portal_core::peers::Peer;
use portal_core::route::Router;
use portal_core::signature::response::{verify_response, RequestBinding};
use portal_core::signature::{signed_headers, Outgoing};
use portal_core::trace::Trace;
use portal_core::transport::{Transport, Transports};
use rustls::sign::CertifiedKey;

/// The trust roots of peer connections: the system's, plus the PEM
/// bundle of `peering.ca_file`.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    crate::tls::certificates::client_config(ca_file, "peering.ca_file")
}

/// Signs requests as this Portal and sends them to peers.
pub(crate) struct PeerClient {
    tls: ArcSwap<rustls::ClientConfig>,
    ca_file: Option<PathBuf>,
    /// Answers must carry the peer's response signature.
    require_signature: bool,
    window: portal_core::signature::Window,
    identity: Arc<Identity>,
    router: Arc<Router>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Peers' names, cached.
    dns: Arc<crate::dns::Dns>,
    /// Which peers' TLS is pinned to their key.
    transports: Transports,
    /// What this Portal proves its key with in pinned peer TLS.
    identity_certificate: Arc<CertifiedKey>,
}

impl PeerClient {
    pub(crate) fn new(
        identity: Arc<Identity>,
        identity_certificate: Arc<CertifiedKey>,
        router: Arc<Router>,
        peering: &Peering,
        limits: &Limits,
        dns: Arc<crate::dns::Dns>,
    ) -> Result<Self, String> {
        Ok(PeerClient {
            tls: ArcSwap::from_pointee(tls_config(peering.ca_file.as_deref())?),
            ca_file: peering.ca_file.clone(),
            require_signature: peering.require_response_signature,
            window: peering.window,
            identity,
            router,
            connect_timeout: limits.upstream_connect_timeout,
            idle_timeout: limits.upstream_idle_timeout,
            dns,
            transports: peering.transports.clone(),
            identity_certificate,
        })
    }

    /// The file of extra trust roots, watched for changes.
    pub(crate) fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Reads `peering.ca_file` again: calls from now on trust what it
    /// holds. A file that does not load keeps the previous roots.
    pub(crate) fn reload_roots(&self) -> Result<(), String> {
        let config = tls_config(self.ca_file.as_deref())?;
        self.tls.store(Arc::new(config));
        Ok(())
    }

    /// Where to connect for `host` on `peer`: its `address` when
    /// `peers.json` gives one, else `host` by DNS (cached; every address,
    /// tried in turn).
    async fn addresses(&self, host: &str, peer: &Peer) -> Result<Vec<SocketAddr>, CallFailure> {
        let (name, port) = match &peer.address {
            Some(a) => (a.host.as_str(), a.port),
            None => (host, 443),
        };
        self.dns
            .resolve_all(name, port)
            .await
            .map_err(|e| self.unreachable(peer, e))
    }

    /// A pinned peer's address answered with another key: whoever holds
    /// it is not the peer, and got no byte of the request.
    fn wrong_key(&self, peer: &Peer) -> CallFailure {
        crate::observe::metrics::METRICS
            .outbound_unverified
            .with_label_values(&[&peer.id])
            .inc();
        warn!(
            "peer {}: the server did not prove the peer's identity key in the TLS handshake (a server without its key, or not a portal-proxy: peering.peer_transport ca for it); nothing was sent",
            peer.id
        );
        CallFailure::PeerUnverified(
            peer.short_id().to_string(),
            "the server did not prove the peer's identity key in the TLS handshake (pinned peer TLS); nothing was sent".into(),
        )
    }

    fn unreachable(&self, peer: &Peer, detail: impl std::fmt::Display) -> CallFailure {
        warn!("peer {} unreachable: {detail}", peer.id);
        CallFailure::Unreachable(peer.short_id().to_string(), detail.to_string())
    }

    /// A TLS connection to `host` on `peer`, within the connect timeout.
    async fn connect(
        &self,
        host: &str,
        peer: &Peer,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, CallFailure> {
        let timeout = || CallFailure::PeerTimeout(peer.short_id().to_string());
        let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| CallFailure::bad_request(format!("{host} is not a host name: {e}")))?;
        let pinned = self.transports.of(&peer.id) == Transport::Pinned;
        let config = match self.transports.of(&peer.id) {
            Transport::Ca => self.tls.load_full(),
            Transport::Pinned => Arc::new(
                pinned_client_config(peer.key.to_bytes(), &self.identity_certificate)
                    .map_err(CallFailure::Internal)?,
            ),
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut last = None;
        for addr in self.addresses(host, peer).await? {
            // One budget for the connection and its handshake.
            let deadline = tokio::time::Instant::now() + self.connect_timeout;
            let tcp = match connect(addr, self.connect_timeout).await {
                Ok(tcp) => tcp,
                Err(ConnectError::Failed(e)) => {
                    last = Some(self.unreachable(peer, e));
                    continue;
                }
                Err(ConnectError::TimedOut) => {
                    last = Some(timeout());
                    continue;
                }
            };
            let handshake = connector.connect(server_name.clone(), tcp);
            match tokio::time::timeout_at(deadline, handshake).await {
                Ok(Ok(tls)) => return Ok(tls),
                Ok(Err(e)) if pinned && is_wrong_key(&e) => return Err(self.wrong_key(peer)),
                Ok(Err(e)) => last = Some(self.unreachable(peer, e)),
                Err(_) => last = Some(timeout()),
            }
        }
        Err(last.unwrap_or_else(|| self.unreachable(peer, format!("{host} has no address"))))
    }

    /// Signs and sends the request to `app` on `peer`, and streams the
    /// answer back. The path and query sent (and signed) are the bytes
    /// the app wrote after `/internal/call_peer/<peer>`. Returns the
    /// status sent to the app.
    pub(crate) async fn forward(
        &self,
        session: &mut ServerSession,
        app: &str,
        peer: &Peer,
        path: &str,
        body: Bytes,
    ) -> Result<u16, CallFailure> {
        let req = session.req_header();
        let host = self.router.peer_app_host(app, peer.short_id());
        // The URL called is `https://<app>.<short_id>.<base_domain>/...`
        // whatever address it is reached at: `Host` and `@authority` never
        // carry the port of a peer's `address` (docs/signing.md).
        let authority = host.clone();
        let target = match req.uri.query() {
            Some(q) => format!("/{path}?{q}"),
            None => format!("/{path}"),
        };
        let method = req.method.as_str().to_string();
        let outgoing = Outgoing {
            method: &method,
            authority: &authority,
            path_and_query: &target,
            body: (!body.is_empty()).then_some(&body[..]),
        };
        let signature = signed_headers(
            &self.identity.signing_key,
            &self.identity.id,
            &outgoing,
            crate::clock::unix_now(),
            SIGNATURE_VALIDITY,
            &crate::clock::fresh_nonce(),
        )
        .map_err(|e| CallFailure::bad_request(format!("cannot sign the request: {e}")))?;
        let mut builder = hyper::Request::builder()
            .method(req.method.clone())
            .uri(target.as_str())
            .header(http::header::HOST, authority.as_str());
        let mut headers = end_to_end(&req.headers, true);
        // The app's trace goes on to the peer when valid; otherwise the
        // call starts one (docs/peering.md).
        Trace::of(&req.headers, true, rand::random()).apply(&mut headers);
        for (name, value) in headers.iter() {
            builder = builder.header(name, value);
        }
        let mut our_signature = None;
        for (name, value) in signature {
            if name.eq_ignore_ascii_case("signature") {
                our_signature = signature_bytes(&value);
            }
            builder = builder.header(name, value);
        }
        let our_signature = our_signature
            .ok_or_else(|| CallFailure::Internal("the request's own signature".into()))?;
        let request = builder
            .body(http_body_util::Full::new(body))
            .map_err(|e| CallFailure::bad_request(format!("cannot build the request: {e}")))?;

        let tls = self.connect(&host, peer).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.unreachable(peer, e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = match tokio::time::timeout(self.idle_timeout, sender.send_request(request))
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if refused_our_key(&e) => {
                // Sent after the peer proved its key: authentic.
                info!(
                        "peer {} refused this Portal's identity key at the TLS handshake (it does not list this Portal): passed on to app {app:?} as peer_refused",
                        peer.id
                    );
                return Err(CallFailure::PeerRefused(
                    peer.short_id().to_string(),
                    portal_core::refusal::Kind::Unauthorized,
                ));
            }
            Ok(Err(e)) => return Err(self.unreachable(peer, e)),
            Err(_) => return Err(CallFailure::PeerTimeout(peer.short_id().to_string())),
        };

        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target.as_str(), None),
        };
        // The path only: an app's query may hold secrets.
        info!(
            "peer call from app {app:?} to {} https://{authority}{path}: {}",
            peer.id,
            response.status()
        );
        // The peer proves its key on the answer, before the app sees it.
        let binding = RequestBinding {
            method: method.as_str().into(),
            authority: portal_core::signature::authority(&authority).into(),
            path: path.into(),
            query: query.map(Into::into),
            label: portal_core::signature::LABEL.into(),
            signature: our_signature,
        };
        let status = response.status().as_u16();
        let verified = verify_response(
            response.headers(),
            status,
            &binding,
            &peer.id,
            &peer.key,
            crate::clock::unix_now(),
            self.window,
        );
        let short_id = peer.short_id().to_string();
        let unverified = || {
            crate::observe::metrics::METRICS
                .outbound_unverified
                .with_label_values(&[&peer.id])
                .inc()
        };
        let signed = match peer_answer::judge(status, verified, self.require_signature) {
            AnswerVerdict::PassOn {
                signed,
                unverified: false,
            } => signed,
            AnswerVerdict::PassOn {
                signed,
                unverified: true,
            } => {
                unverified();
                warn!("peer {}'s answer to {app:?} is not signed; let through (peering.require_response_signature is false)", peer.id);
                signed
            }
            AnswerVerdict::Refused(kind) => {
                info!(
                    "peer {} refused app {app:?}'s call with an unsigned {status}: passed on as peer_refused",
                    peer.id
                );
                return Err(CallFailure::PeerRefused(short_id, kind));
            }
            AnswerVerdict::Unverified(e) => {
                unverified();
                warn!(
                    "peer {}'s answer ({status}) to {app:?} refused: {e}",
                    peer.id
                );
                return Err(CallFailure::PeerUnverified(short_id, e.to_string()));
            }
            AnswerVerdict::NoUpgradeAsked => {
                warn!(
                    "peer {} answered {status} to app {app:?}'s call, which asked for no upgrade: refused",
                    peer.id
                );
                return Err(CallFailure::BadAnswer(
                    short_id,
                    format!(
                        "{} to a request that asked for no upgrade",
                        response.status()
                    ),
                ));
            }
        };
        let from = format!("peer {} (to app {app:?})", peer.id);
        let answer = super::Answer {
            idle: self.idle_timeout,
            from: &from,
            peer: peer.short_id(),
            signed: signed.as_deref(),
        };
        super::stream_answer(session, response, answer).await
    }
}

/// Whether a failed pinned handshake failed on the server's key: the key
/// it presented is not the peer's ([`PinnedServer`](crate::tls::peer::PinnedServer)
/// refused it), or it has no ed25519 key to present (it answered the
/// offer of ed25519 alone with `handshake_failure`).
fn is_wrong_key(e: &std::io::Error) -> bool {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => {
            *alert == rustls::AlertDescription::HandshakeFailure
        }
        Some(e) => wrong_key(e),
        None => false,
    }
}

/// Whether a call failed because the pinned peer refused this Portal's
/// key at the handshake: its `access_denied` alert, which in TLS 1.3 the
/// caller reads only once it sent its request.
fn refused_our_key(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::AlertReceived(alert)) = tls {
            return *alert == rustls::AlertDescription::AccessDenied;
        }
        next = e.source();
    }
    false
}

/// The bytes of a `Signature` header value `portal=:<base64>:`.
fn signature_bytes(value: &str) -> Option<[u8; 64]> {
    use base64::Engine as _;
    let b64 = value.split_once("=:")?.1.strip_suffix(':')?;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()?
        .try_into()
        .ok()
}

/// A failure of the proxy's own (writing to the app, building a head).
pub(super) fn internal(e: impl std::fmt::Display) -> CallFailure {
    CallFailure::Internal(e.to_string())
}
