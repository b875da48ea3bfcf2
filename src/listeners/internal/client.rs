//! The outbound HTTPS client of the internal listener (DESIGN section 7):
//! TLS verified against the system roots plus `peering.ca_file`, peers'
//! `address` overrides in place of DNS, and the signed request sent with
//! its answer streamed back to the calling app.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use log::{info, warn};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

use crate::config::{Limits, Peering};
use crate::decision::outbound::{end_to_end, peer_authority, CallError, SIGNATURE_VALIDITY};
use crate::decision::route::Router;
use crate::decision::signature::{signed_headers, Outgoing};
use crate::identity::Identity;
use crate::state::peers::Peer;
use crate::state::SharedState;

/// Resolves `<app>.<short_id>.<base_domain>` to the peer's `address` when
/// `peers.json` gives one, else by DNS.
struct PeerResolver {
    state: Arc<SharedState>,
    router: Arc<Router>,
}

impl reqwest::dns::Resolve for PeerResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_ascii_lowercase();
        let short = self.router.peer_short_id(&name).map(str::to_string);
        let snapshot = self.state.load();
        let overrides: Vec<String> = snapshot
            .peers
            .iter()
            .filter(|p| Some(p.short_id()) == short.as_deref())
            .filter_map(|p| p.address.as_ref().map(|a| a.host.clone()))
            .collect();
        Box::pin(async move {
            let host = match overrides.as_slice() {
                [] => name,
                [one] => one.clone(),
                _ => {
                    return Err(format!(
                        "peers sharing the short ID of {name} have different addresses"
                    )
                    .into())
                }
            };
            // The connector puts the URL's port on every address.
            let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, 0)],
                Err(_) => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Signs requests as this Portal and sends them to peers.
pub struct PeerClient {
    client: reqwest::Client,
    identity: Arc<Identity>,
    router: Arc<Router>,
}

impl PeerClient {
    /// Builds the client: TLS verified against the system roots plus
    /// `peering.ca_file`, the configured connect and idle timeouts.
    pub fn new(
        state: Arc<SharedState>,
        identity: Arc<Identity>,
        router: Arc<Router>,
        peering: &Peering,
        limits: &Limits,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.upstream_connect_timeout)
            .read_timeout(limits.upstream_idle_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .dns_resolver(Arc::new(PeerResolver {
                state,
                router: router.clone(),
            }));
        if let Some(file) = &peering.ca_file {
            let pem = std::fs::read(file)
                .map_err(|e| format!("peering.ca_file: cannot read {}: {e}", file.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("peering.ca_file: {}: {e}", file.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "peering.ca_file: {}: no certificate",
                    file.display()
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("outbound TLS client: {e}"))?;
        Ok(PeerClient {
            client,
            identity,
            router,
        })
    }

    /// Signs and sends the request to `app` on `peer`, and streams the
    /// answer back. Returns the status sent to the app.
    pub async fn forward(
        &self,
        session: &mut ServerSession,
        app: &str,
        peer: &Peer,
        path: &str,
        body: Bytes,
    ) -> Result<u16, CallError> {
        let req = session.req_header();
        let authority = peer_authority(self.router.peer_app_host(app, peer.short_id()), peer);
        let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let url = reqwest::Url::parse(&format!("https://{authority}/{path}{query}"))
            .map_err(|e| CallError::BadRequest(format!("cannot build the peer URL: {e}")))?;
        // Sign what is sent: the URL as the client will write it.
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let method = req.method.as_str().to_string();
        let outgoing = Outgoing {
            method: &method,
            authority: &authority,
            path_and_query: &path_and_query,
            body: (!body.is_empty()).then_some(&body[..]),
        };
        let signature = signed_headers(
            &self.identity.signing_key,
            &self.identity.id,
            &outgoing,
            crate::ops::unix_now(),
            SIGNATURE_VALIDITY,
        )
        .map_err(|e| CallError::BadRequest(format!("cannot sign the request: {e}")))?;

        let mut headers = end_to_end(&req.headers, true);
        for (name, value) in signature {
            let value = http::HeaderValue::from_str(&value)
                .map_err(|_| CallError::BadRequest("unsignable request".into()))?;
            headers.insert(name, value);
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| CallError::BadRequest("bad method".into()))?;
        let mut request = self.client.request(method, url.clone()).headers(headers);
        if !body.is_empty() {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(|e| unreachable(&e, peer))?;

        let status = response.status().as_u16();
        let mut head =
            ResponseHeader::build(status, Some(response.headers().len())).map_err(internal)?;
        for (name, value) in end_to_end(response.headers(), false).iter() {
            head.append_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
        info!("peer call from app {app:?} to {} {url}: {status}", peer.id);
        session
            .write_response_header(Box::new(head))
            .await
            .map_err(internal)?;
        // Stream: each chunk goes to the app as it arrives.
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => session
                    .write_response_body(chunk, false)
                    .await
                    .map_err(internal)?,
                Ok(None) => break,
                Err(e) => {
                    warn!("peer {} broke off its answer to {app:?}: {e}", peer.id);
                    return Err(CallError::BrokeOff);
                }
            }
        }
        session
            .write_response_body(Bytes::new(), true)
            .await
            .map_err(internal)?;
        Ok(status)
    }
}

/// The failure to reach a peer, by what failed.
fn unreachable(e: &reqwest::Error, peer: &Peer) -> CallError {
    warn!("peer {} unreachable: {e:?}", peer.id);
    let short = peer.short_id().to_string();
    if e.is_timeout() {
        CallError::PeerTimeout(short)
    } else {
        let detail = std::error::Error::source(e).map_or(e.to_string(), |s| s.to_string());
        CallError::Unreachable(short, detail)
    }
}

/// A failure of the proxy's own (writing to the app, building a head).
pub(super) fn internal(e: impl std::fmt::Display) -> CallError {
    CallError::Internal(e.to_string())
}
