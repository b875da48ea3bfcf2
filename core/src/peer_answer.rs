//! What becomes of a peer's answer to an app's call (docs/peering.md,
//! "Answers"): the verdict the internal listener's client applies, from
//! the answer's status, whether its signature verified, and
//! `peering.require_response_signature`. Only what the peer signed
//! reaches the app; of an unsigned refusal, its status alone.

use super::refusal::Kind;
use super::signature::SignatureError;

/// The verdict on a peer's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum AnswerVerdict<F> {
    /// Passed on to the app. `signed`: the fields the peer's signature
    /// covers, `None` for an answer let through unsigned
    /// (`require_response_signature: false`, which `unverified` then
    /// says, for the count of unverified answers).
    PassOn { signed: Option<F>, unverified: bool },
    /// An unsigned refusal whose status alone goes on, under the proxy's
    /// own body (`peer_refused`).
    Refused(Kind),
    /// Refused: the answer is not signed, or its signature fails
    /// (`peer_unverified`); counted as unverified.
    Unverified(SignatureError),
    /// A 1xx, to a request that asked for no upgrade (the proxy tunnels
    /// none to a peer): no answer to pass on.
    NoUpgradeAsked,
}

/// Judges a peer's answer of `status` whose signature check gave
/// `verified`.
pub fn judge<F>(
    status: u16,
    verified: Result<F, SignatureError>,
    require_signature: bool,
) -> AnswerVerdict<F> {
    if (100..200).contains(&status) {
        return AnswerVerdict::NoUpgradeAsked;
    }
    match verified {
        Ok(fields) => AnswerVerdict::PassOn {
            signed: Some(fields),
            unverified: false,
        },
        Err(e) if require_signature => match (&e, unsigned_refusal(status)) {
            (SignatureError::Unsigned, Some(kind)) => AnswerVerdict::Refused(kind),
            _ => AnswerVerdict::Unverified(e),
        },
        Err(_) => AnswerVerdict::PassOn {
            signed: None,
            unverified: true,
        },
    }
}

/// The statuses of a peer's refusal that reach the calling app even when
/// the answer is not signed, and as what: a peer that no longer lists this
/// Portal, or refuses the path or the rate, cannot bind its answer to a
/// request it did not verify. Only the status goes on, under the proxy's
/// own body (`peer_refused`): none of the unsigned answer's bytes.
pub fn unsigned_refusal(status: u16) -> Option<Kind> {
    match status {
        401 => Some(Kind::Unauthorized),
        403 => Some(Kind::Forbidden),
        429 => Some(Kind::TooManyRequests),
        503 => Some(Kind::Unavailable),
        _ => None,
    }
}

#[cfg(test)]
#[path = "peer_answer_tests.rs"]
mod tests;
