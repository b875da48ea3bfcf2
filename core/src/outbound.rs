//! Outbound peering decided (docs/peering.md): which app calls, which
//! peer it names, what the request target is, and which headers go to the
//! peer and back. Pure; the internal listener (`listeners::internal`)
//! gathers the inputs and sends what is decided here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::body::TooLarge;
use super::headers::is_portal_header;
use super::path::PathError;
use crate::peers::{Lookup, Peer, Peers};

/// How long an outbound signature is valid: long enough for a slow
/// network, far inside the receiver's 300 s limit.
pub const SIGNATURE_VALIDITY: i64 = 60;

/// The path prefix of calls to peers.
pub const CALL_PREFIX: &str = "/internal/call_peer/";
/// The path of the peer listing.
pub const PEERS_PATH: &str = "/internal/peers";
/// The path of the identity assertion's key set (docs/access.md).
pub const ASSERTION_KEYS_PATH: &str = "/internal/assertion-keys";

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

/// Why a call to a peer is not made, or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    NotServed(&'static str),
    #[error("source address {} is no app's (app_addresses.json)", .0.map_or("unknown".to_string(), |ip| ip.to_string()))]
    UnknownSource(Option<IpAddr>),
    #[error("no peer has the ID or unique prefix (6 characters at least) {0:?}")]
    UnknownPeer(String),
    #[error("{0} peers start with {1:?}: give more characters")]
    AmbiguousPeer(usize, String),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    #[error("{0}")]
    BadRequest(String),
}

/// What a request to the internal listener asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call<'a> {
    /// `GET /internal/peers`.
    ListPeers,
    /// `GET /internal/assertion-keys`.
    AssertionKeys,
    /// `/internal/call_peer/<peer>/<path>`: `path` without its leading `/`.
    Peer { peer_ref: &'a str, path: &'a str },
    /// Anything else: the Portal core's own API, which the listener stands
    /// in for at `http://portal_core/`.
    Core,
}

/// Reads the request's method and path (no query).
pub fn parse_call<'a>(method: &str, path: &'a str) -> Result<Call<'a>, CallError> {
    if path == PEERS_PATH {
        return if method == "GET" {
            Ok(Call::ListPeers)
        } else {
            Err(CallError::NotServed("use GET /internal/peers"))
        };
    }
    if path == ASSERTION_KEYS_PATH {
        return if method == "GET" {
            Ok(Call::AssertionKeys)
        } else {
            Err(CallError::NotServed("use GET /internal/assertion-keys"))
        };
    }
    let Some(rest) = path.strip_prefix(CALL_PREFIX) else {
        return Ok(Call::Core);
    };
    let (peer_ref, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok(Call::Peer { peer_ref, path })
}

/// The app whose container has the source address `source`: an unknown
/// source is refused (an app can never send as another).
pub fn calling_app(
    addresses: &HashMap<IpAddr, String>,
    source: Option<IpAddr>,
) -> Result<&str, CallError> {
    let source = source.map(canonical_ip);
    source
        .and_then(|ip| addresses.get(&ip))
        .map(String::as_str)
        .ok_or(CallError::UnknownSource(source))
}

/// The peer an app names by full ID or unique prefix.
pub fn find_peer(peers: &Peers, peer_ref: &str) -> Result<Arc<Peer>, CallError> {
    match peers.lookup(peer_ref) {
        Lookup::Found(peer) => Ok(peer),
        Lookup::Unknown => Err(CallError::UnknownPeer(peer_ref.to_string())),
        Lookup::Ambiguous(n) => Err(CallError::AmbiguousPeer(n, peer_ref.to_string())),
    }
}

/// The headers of one hop that go to the next: hop-by-hop headers (and
/// those named in `Connection`) are removed; for a request to a peer also
/// `Host`, `Cookie`, `Authorization`, any `X-Ptl-*`, and the framing and
/// signature headers that the proxy sets itself.
pub fn end_to_end(headers: &http::HeaderMap, to_peer: bool) -> http::HeaderMap {
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
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
