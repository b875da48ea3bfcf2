//! Why a call through the internal listener got no answer from its
//! upstream: refused before anything was sent (the core's
//! [`CallError`]), or failed on the way, which only this listener can tell.

use portal_core::body::TooLarge;
use portal_core::outbound::CallError;
use portal_core::path::PathError;
use portal_core::refusal::{Kind, Reason, Refusal};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error(transparent)]
    NotAdmitted(#[from] CallError),
    #[error("peer {0} did not answer in time")]
    PeerTimeout(String),
    #[error("peer {0} cannot be reached: {1}")]
    Unreachable(String, String),
    #[error("the peer broke off its answer")]
    BrokeOff,
    #[error("peer {0}'s answer does not carry its valid signature: {1}")]
    PeerUnverified(String, String),
    /// The peer refused the call with this status, unsigned: only the
    /// status goes on ([`portal_core::peer_answer::unsigned_refusal`]).
    #[error("peer {0} refused the call with {status}; its answer is not signed, so only its status is passed on", status = .1.status())]
    PeerRefused(String, Kind),
    /// An answer the peering protocol does not allow (a 101 no request
    /// asked for), or whose body is not the one signed.
    #[error("peer {0}'s answer is refused: {1}")]
    BadAnswer(String, String),
    #[error("the proxy failed: {0}")]
    Internal(String),
}

impl From<PathError> for CallFailure {
    fn from(e: PathError) -> Self {
        CallFailure::NotAdmitted(e.into())
    }
}

impl From<TooLarge> for CallFailure {
    fn from(e: TooLarge) -> Self {
        CallFailure::NotAdmitted(e.into())
    }
}

impl CallFailure {
    /// A request that cannot be made as asked (signing or building it).
    pub fn bad_request(message: String) -> Self {
        CallFailure::NotAdmitted(CallError::BadRequest(message))
    }
}

impl From<CallFailure> for Refusal {
    fn from(e: CallFailure) -> Self {
        let message = e.to_string();
        match e {
            CallFailure::NotAdmitted(e) => e.into(),
            CallFailure::PeerTimeout(_) => Refusal::new(Kind::GatewayTimeout, message),
            CallFailure::PeerRefused(_, kind) => {
                Refusal::with_reason(kind, Reason::PeerRefused, message)
            }
            CallFailure::PeerUnverified(..) | CallFailure::BadAnswer(..) => {
                Refusal::with_reason(Kind::BadGateway, Reason::PeerUnverified, message)
            }
            CallFailure::Unreachable(..) | CallFailure::BrokeOff | CallFailure::Internal(_) => {
                Refusal::new(Kind::BadGateway, message)
            }
        }
    }
}
