//! The rate limits applied to a decided request (docs/config.md, "How the
//! rate limits count").

use pingora::proxy::Session;

use crate::ops::rate::{ClientKey, RateLimits};
use portal_core::caller::Caller;
use portal_core::decide::Decision;
use portal_core::refusal::Refusal;

/// Who the request counts for in the rate limits: its client address (the
/// one a load balancer's PROXY header named, if any).
pub(super) fn client_key(session: &Session) -> Option<ClientKey> {
    let addr = session.client_addr()?.as_inet()?;
    Some(ClientKey::from(addr.ip()))
}

/// The refusal of a signed request from an address locked out for failed
/// authentications: given before any signature work.
pub(super) fn locked_out_signed(
    rate: &RateLimits,
    client: Option<ClientKey>,
    headers: &http::HeaderMap,
) -> Option<Refusal> {
    let locked = client.is_some_and(|c| rate.locked_out(c));
    (locked && headers.contains_key("signature-input")).then(|| rate.lockout())
}

/// Counts a decided request in the rate limits; the refusal that replaces
/// its verdict when over one. Terminals are never limited; an address
/// locked out for failed authentications gets 429 for everything that
/// does not authenticate.
pub(super) fn rate_limit(
    rate: &RateLimits,
    client: Option<ClientKey>,
    decision: &Decision,
) -> Option<Refusal> {
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
