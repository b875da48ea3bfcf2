//! The one side effect of a verified peer signature: claiming its nonce
//! (docs/signing.md), after checking that this process may accept its
//! `created` at all across an upgrade (`portal_core::replay::Handover`).

use super::Portal;
use crate::observe::metrics::{RateLimit, METRICS};
use portal_core::decide::NonceClaim;
use portal_core::replay::ReplayError;

/// Claims the nonce of a verified signature, if the request has one. Over
/// CA TLS, a signature this process cannot know to be fresh (signed
/// across a graceful upgrade) is refused first; a pinned connection (`tls_peer`)
/// is the peer's own. Counted when refused for either reason of process
/// state (`Handover`, `Full`).
pub(super) fn nonce(
    portal: &Portal,
    claim: Option<&NonceClaim>,
    tls_peer: Option<&str>,
    now: i64,
) -> Result<(), ReplayError> {
    let Some(n) = claim else {
        return Ok(());
    };
    let fresh = match tls_peer {
        Some(_) => Ok(()),
        None => portal.handover.admits(n.created),
    };
    let claimed = fresh.and_then(|()| {
        portal
            .replay
            .check_and_insert(&n.peer, &n.nonce, n.forget_at, now)
    });
    match claimed {
        Err(ReplayError::Handover) => METRICS.handover_refusals.inc(),
        Err(ReplayError::Full) => METRICS.rate_limited.inc(RateLimit::PeerNonces),
        _ => {}
    }
    claimed
}
