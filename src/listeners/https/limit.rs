//! The rate limits applied to a decided request (docs/config.md, "How the
//! rate limits count").

use pingora::proxy::Session;

use crate::admission::rate::{ClientKey, RateLimits};
use portal_core::caller::Caller;
use portal_core::decide::Decision;
use portal_core::refusal::Refusal;

/// Who the request counts for in the rate limits: its client address (the
/// one a load balancer's PROXY header named, if any).
pub(super) fn client_key(session: &Session) -> Option<ClientKey> {
    let addr = session.client_addr()?.as_inet()?;
    Some(ClientKey::from(addr.ip()))
}

/// Counts a decided request in the rate limits; the refusal that replaces
/// its verdict when over one (docs/config.md, "What counts as a failed
/// authentication"). Terminals are never limited, a verified peer only by
/// its own rate, and a connection authenticated by pinned peer TLS
/// (`tls_peer`) only by that peer's rate, whatever its address did; an
/// address locked out for failed authentications gets 429 for everything
/// else.
pub(super) fn rate_limit(
    rate: &RateLimits,
    client: Option<ClientKey>,
    tls_peer: Option<&str>,
    decision: &Decision,
) -> Option<Refusal> {
    if let Some(peer) = tls_peer {
        // Its key was proven at the handshake: neither counted nor locked
        // out with the address it shares (an IPv6 /64, a NAT).
        return rate.peer(peer);
    }
    // Locked out by the failures before this request: the one that
    // reaches the limit is still answered as it was decided.
    let locked = client.is_some_and(|c| rate.locked_out(c));
    if let Some(c) = client.filter(|_| decision.failed_authentication()) {
        rate.failed(c);
    }
    match &decision.facts.caller {
        Caller::Terminal { .. } => None,
        Caller::Peer { id, .. } => rate.peer(id),
        Caller::Anonymous if locked => Some(rate.lockout()),
        Caller::Anonymous => rate.anonymous(client?),
    }
}
