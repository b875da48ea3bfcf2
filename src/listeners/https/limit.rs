//! The rate limits applied to a decided request (docs/config.md, "How the
//! rate limits count").

use pingora::proxy::Session;

use crate::admission::rate::{ClientKey, RateLimits};
use portal_core::decide::Decision;
use portal_core::rate::Counted;
use portal_core::refusal::Refusal;

/// Who the request counts for in the rate limits: its client address (the
/// one a load balancer's PROXY header named, if any).
pub(super) fn client_key(session: &Session) -> Option<ClientKey> {
    let addr = session.client_addr()?.as_inet()?;
    Some(ClientKey::from(addr.ip()))
}

/// Counts a decided request in the rate limits as `portal_core::rate`
/// plans; the refusal that replaces its verdict when over one.
pub(super) fn rate_limit(
    rate: &RateLimits,
    client: Option<ClientKey>,
    tls_peer: Option<&str>,
    decision: &Decision,
) -> Option<Refusal> {
    let locked = tls_peer.is_none() && client.is_some_and(|c| rate.locked_out(c));
    let plan = portal_core::rate::plan(
        &decision.facts.caller,
        tls_peer,
        locked,
        decision.failed_authentication(),
    );
    if let Some(c) = client.filter(|_| plan.count_failure) {
        rate.failed(c);
    }
    match plan.counted {
        Counted::Not => None,
        Counted::Peer(id) => rate.peer(id),
        Counted::LockedOut => Some(rate.lockout()),
        Counted::Anonymous => rate.anonymous(client?),
    }
}
