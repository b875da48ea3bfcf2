//! A peer's signature verified, one stage of [`super::decide`]: the caller
//! it proves, the nonce to claim, and the digest check of a body.

use super::{NonceClaim, Policy};
use crate::body::{declared_length, BodyCheck, TooLarge};
use crate::caller::Caller;
use crate::refusal::Refusal;
use crate::signature::response::RequestBinding;
use crate::signature::{self, ContentDigest, ParsedSignature, RequestParts, SignatureError};
use crate::snapshot::Snapshot;
use crate::transport::Transport;

/// What verifying a peer's signature gives.
pub(super) struct Verified {
    /// The nonce to claim: set as soon as the signature verified,
    /// whatever is refused after.
    pub nonce: Option<NonceClaim>,
    /// The caller it proves and the digest check of a body, or why the
    /// request is refused.
    pub outcome: Result<(Caller, Option<BodyCheck>), Refusal>,
}

/// Verifies a peer's signature (docs/signing.md). `pinned`: the
/// connection was opened with the signer's key (checked by the caller).
pub(super) fn verify(
    parts: &RequestParts<'_>,
    sig: ParsedSignature,
    pinned: bool,
    snapshot: &Snapshot,
    policy: &Policy,
    now: i64,
) -> Verified {
    let peer = snapshot.peers.get(&sig.keyid);
    if let Err(e) = signature::verify(parts, &sig, |_| peer.map(|p| p.key), now, policy.window) {
        return Verified {
            nonce: None,
            outcome: Err(e.into()),
        };
    }
    let Some(peer) = peer else {
        let refusal = SignatureError::UnknownPeer(sig.keyid.clone()).into();
        return Verified {
            nonce: None,
            outcome: Err(refusal),
        };
    };
    let nonce = Some(NonceClaim {
        peer: peer.id.clone(),
        created: sig.created,
        forget_at: sig.expires + policy.window.skew,
        nonce: sig.nonce,
        binding: Box::new(RequestBinding {
            method: parts.method.to_string().into(),
            authority: parts.authority.to_string().into(),
            path: parts.path.to_string().into(),
            query: parts.query.map(|q| q.to_string().into()),
            label: sig.label.clone().into(),
            signature: sig.field.signature,
        }),
    });
    let outcome = checked(parts, &sig.field.components, pinned, peer, policy);
    Verified { nonce, outcome }
}

/// What is checked once the signature verified: the transport its peer
/// must use, and a body's digest and size.
fn checked(
    parts: &RequestParts<'_>,
    components: &[String],
    pinned: bool,
    peer: &crate::peers::Peer,
    policy: &Policy,
) -> Result<(Caller, Option<BodyCheck>), Refusal> {
    if !pinned && policy.transports.of(&peer.id) == Transport::Pinned {
        return Err(SignatureError::Unpinned(peer.id.clone()).into());
    }
    let caller = Caller::Peer {
        id: peer.id.clone(),
        name: peer.name.clone(),
    };
    let covers_digest = components.iter().any(|c| c == signature::CONTENT_DIGEST);
    let check = if parts.has_body {
        let digest = ContentDigest::from_headers(parts.headers)?;
        if declared_length(parts.headers).is_some_and(|n| n > policy.max_signed_body as u64) {
            return Err(TooLarge::SignedBody(policy.max_signed_body).into());
        }
        Some(BodyCheck::new(
            digest,
            policy.max_signed_body,
            policy.held_bodies.clone(),
        ))
    } else {
        if covers_digest && !ContentDigest::from_headers(parts.headers)?.matches(b"") {
            return Err(SignatureError::DigestMismatch.into());
        }
        None
    };
    Ok((caller, check))
}
