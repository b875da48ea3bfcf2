//! Outbound peering (DESIGN section 7): the internal plain-HTTP listener
//! that the apps call. `GET /internal/peers` lists the peers;
//! `ANY /internal/call_peer/<peer>/<path>?<query>` signs the request as this
//! Portal (section 5) and sends it to the same app on the peer, streaming
//! the answer back. The calling app is known by its source address
//! (`app_addresses.json`), so an app can never send as another.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use log::{info, warn};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use serde::Serialize;

use crate::config::{Limits, Peering};
use crate::error_page::Refusal;
use crate::headers::is_portal_header;
use crate::identity::Identity;
use crate::peers::{Lookup, Peer};
use crate::proxy::write_refusal;
use crate::signature::{signed_headers, Outgoing};
use crate::state::SharedState;

/// How long an outbound signature is valid: long enough for a slow
/// network, far inside the receiver's 300 s limit.
pub const SIGNATURE_VALIDITY: i64 = 60;

/// Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The internal listener's handler.
pub struct InternalApi {
    state: Arc<SharedState>,
    identity: Arc<Identity>,
    base_domain: String,
    client: reqwest::Client,
    max_body: usize,
}

/// Resolves `<app>.<short_id>.<base_domain>` to the peer's `address` when
/// `peers.json` gives one, else by DNS.
struct PeerResolver {
    state: Arc<SharedState>,
    base_domain: String,
}

impl reqwest::dns::Resolve for PeerResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_ascii_lowercase();
        let short = name
            .strip_suffix(&self.base_domain)
            .and_then(|rest| rest.strip_suffix('.'))
            .and_then(|rest| rest.rsplit('.').next())
            .map(str::to_string);
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

#[derive(Serialize)]
struct PeerListing<'a> {
    id: &'a str,
    short_id: &'a str,
    name: &'a str,
}

impl InternalApi {
    /// Builds the outbound client: TLS verified against the system roots
    /// plus `peering.ca_file`, the configured connect and idle timeouts.
    pub fn new(
        state: Arc<SharedState>,
        identity: Arc<Identity>,
        base_domain: &str,
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
                state: state.clone(),
                base_domain: base_domain.to_string(),
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
        Ok(InternalApi {
            state,
            identity,
            base_domain: base_domain.to_string(),
            client,
            max_body: peering.max_signed_body,
        })
    }

    async fn handle(&self, session: &mut ServerSession) -> Result<(), Refusal> {
        let path = session.req_header().uri.path().to_string();
        if path == "/internal/peers" {
            if session.req_header().method != http::Method::GET {
                return Err(Refusal::NotFound("use GET /internal/peers".into()));
            }
            return self.list_peers(session).await;
        }
        let Some(rest) = path.strip_prefix("/internal/call_peer/") else {
            return Err(Refusal::NotFound(
                "the internal listener serves /internal/peers and /internal/call_peer/<peer>/<path>".into(),
            ));
        };
        self.call_peer(session, rest).await
    }

    async fn list_peers(&self, session: &mut ServerSession) -> Result<(), Refusal> {
        let snapshot = self.state.load();
        let list: Vec<PeerListing> = snapshot
            .peers
            .iter()
            .map(|p| PeerListing {
                id: &p.id,
                short_id: p.short_id(),
                name: &p.name,
            })
            .collect();
        let body = serde_json::to_vec(&list).expect("strings always serialize");
        let mut resp = ResponseHeader::build(200, Some(3)).map_err(internal)?;
        resp.insert_header("content-type", "application/json")
            .map_err(internal)?;
        resp.insert_header("content-length", body.len())
            .map_err(internal)?;
        resp.insert_header("cache-control", "no-store")
            .map_err(internal)?;
        session
            .write_response_header(Box::new(resp))
            .await
            .map_err(internal)?;
        session
            .write_response_body(Bytes::from(body), true)
            .await
            .map_err(internal)
    }

    async fn call_peer(&self, session: &mut ServerSession, rest: &str) -> Result<(), Refusal> {
        let snapshot = self.state.load();
        let source = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .map(canonical_ip);
        let app = source
            .and_then(|ip| snapshot.app_addresses.get(&ip))
            .cloned()
            .ok_or_else(|| {
                Refusal::Forbidden(format!(
                    "source address {} is no app's (app_addresses.json)",
                    source.map_or("unknown".to_string(), |ip| ip.to_string())
                ))
            })?;
        let (peer_ref, path) = match rest.split_once('/') {
            Some((peer, path)) => (peer, path),
            None => (rest, ""),
        };
        let peer = match snapshot.peers.lookup(peer_ref) {
            Lookup::Found(peer) => peer,
            Lookup::Unknown => {
                return Err(Refusal::NoSuchPeer(
                    "unknown_peer",
                    format!(
                        "no peer has the ID or unique prefix (6 characters at least) {peer_ref:?}"
                    ),
                ))
            }
            Lookup::Ambiguous(n) => {
                return Err(Refusal::NoSuchPeer(
                    "ambiguous_peer",
                    format!("{n} peers start with {peer_ref:?}: give more characters"),
                ))
            }
        };
        crate::access::check_path(&format!("/{path}"))
            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let body = self.read_body(session).await?;
        let status = self.forward(session, &app, &peer, path, body).await;
        crate::metrics::outbound(&peer.id, crate::metrics::status_class(code_or(&status)));
        status.map(|_| ())
    }

    /// The app's request body, whole (it is signed through its digest).
    async fn read_body(&self, session: &mut ServerSession) -> Result<Bytes, Refusal> {
        let declared = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let too_large = || {
            Refusal::PayloadTooLarge(format!(
                "a request to a peer is signed whole, up to {} bytes",
                self.max_body
            ))
        };
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|e| Refusal::BadRequest(format!("reading the request body: {e}")))?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Signs and sends the request to `app` on `peer`, and streams the
    /// answer back. Returns the status sent to the app.
    async fn forward(
        &self,
        session: &mut ServerSession,
        app: &str,
        peer: &Peer,
        path: &str,
        body: Bytes,
    ) -> Result<u16, Refusal> {
        let req = session.req_header();
        let host = format!("{app}.{}.{}", peer.short_id(), self.base_domain);
        let authority = match peer.address.as_ref().map(|a| a.port) {
            Some(port) if port != 443 => format!("{host}:{port}"),
            _ => host,
        };
        let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let url = reqwest::Url::parse(&format!("https://{authority}/{path}{query}"))
            .map_err(|e| Refusal::BadRequest(format!("cannot build the peer URL: {e}")))?;
        // Sign what is sent: the URL as the client will write it.
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
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
            now,
            SIGNATURE_VALIDITY,
        )
        .map_err(|e| Refusal::BadRequest(format!("cannot sign the request: {e}")))?;

        let mut headers = end_to_end(&req.headers, true);
        for (name, value) in signature {
            let value = http::HeaderValue::from_str(&value)
                .map_err(|_| Refusal::BadRequest("unsignable request".into()))?;
            headers.insert(name, value);
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| Refusal::BadRequest("bad method".into()))?;
        let mut request = self.client.request(method, url.clone()).headers(headers);
        if !body.is_empty() {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(|e| peer_failure(&e, peer))?;

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
                    return Err(Refusal::BadGateway("the peer broke off its answer".into()));
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

/// The headers of one hop that go to the next: hop-by-hop headers (and
/// those named in `Connection`) are removed; for a request to a peer also
/// `Host`, `Cookie`, `Authorization`, any `X-Ptl-*`, and the framing and
/// signature headers that the proxy sets itself.
fn end_to_end(headers: &http::HeaderMap, to_peer: bool) -> http::HeaderMap {
    let listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut out = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        let drop = HOP_BY_HOP.contains(&n)
            || listed.iter().any(|l| l == n)
            || (to_peer
                && (matches!(
                    n,
                    "host"
                        | "cookie"
                        | "authorization"
                        | "content-length"
                        | "signature"
                        | "signature-input"
                        | "content-digest"
                ) || is_portal_header(n)));
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// An IPv4 address seen through an IPv6 socket is the IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn peer_failure(e: &reqwest::Error, peer: &Peer) -> Refusal {
    warn!("peer {} unreachable: {e:?}", peer.id);
    if e.is_timeout() {
        Refusal::GatewayTimeout(format!("peer {} did not answer in time", peer.short_id()))
    } else {
        Refusal::BadGateway(format!(
            "peer {} cannot be reached: {}",
            peer.short_id(),
            std::error::Error::source(e).map_or(e.to_string(), |s| s.to_string())
        ))
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::BadGateway(format!("the proxy failed: {e}"))
}

fn code_or(r: &Result<u16, Refusal>) -> u16 {
    match r {
        Ok(code) => *code,
        Err(refusal) => refusal.status(),
    }
}

#[async_trait]
impl HttpServerApp for InternalApi {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) | Err(_) => return None,
        }
        if let Err(refusal) = self.handle(&mut session).await {
            // Nothing is written yet unless the peer's answer broke off.
            if session.response_written().is_some() {
                return None;
            }
            if write_refusal(&mut session, &refusal).await.is_err() {
                return None;
            }
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_to_a_peer() {
        let mut h = http::HeaderMap::new();
        for (k, v) in [
            ("host", "internal:8080"),
            ("cookie", "a=b"),
            ("authorization", "Bearer x"),
            ("x-ptl-client-id", "spoof"),
            ("x_ptl_user", "spoof"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("signature", "old"),
            ("content-type", "application/json"),
            ("accept", "*/*"),
            ("x-custom", "kept"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        let out = end_to_end(&h, true);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["accept", "content-type", "x-custom"]);
        // Back to the app: only hop-by-hop goes.
        let back = end_to_end(&h, false);
        assert!(back.contains_key("cookie") && back.contains_key("content-length"));
        assert!(!back.contains_key("x-private") && !back.contains_key("transfer-encoding"));
    }

    #[test]
    fn ipv4_mapped_sources_are_ipv4() {
        let mapped: IpAddr = "::ffff:172.20.0.5".parse().unwrap();
        assert_eq!(
            canonical_ip(mapped),
            "172.20.0.5".parse::<IpAddr>().unwrap()
        );
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }
}
