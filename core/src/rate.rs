//! How a decided request counts in the rate limits (docs/config.md, "How
//! the rate limits count"; "What counts as a failed authentication"): the
//! pure verdict. The shell keeps the counters, asks [`plan`] what to count
//! and applies it.
//!
//! Terminals are never limited, a verified peer only by its own rate, and
//! a connection authenticated by pinned peer TLS only by that peer's rate,
//! whatever its address did; an address locked out for failed
//! authentications gets 429 for everything else.

use super::caller::Caller;

/// Which limit a request counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted<'a> {
    /// None: a terminal.
    Not,
    /// The rate of the peer with this Portal ID.
    Peer(&'a str),
    /// None: its address is locked out, and it is refused at once.
    LockedOut,
    /// Its address's anonymous rate.
    Anonymous,
}

/// What the shell does with a decided request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePlan<'a> {
    /// Count a failed authentication for its address.
    pub count_failure: bool,
    pub counted: Counted<'a>,
}

/// The plan for a request from `caller`. `tls_peer`: the peer whose key
/// the connection was opened with (pinned peer TLS); `locked_out`: its
/// address was locked out by the failures before this request (the one
/// that reaches the limit is still answered as it was decided);
/// `failed_authentication`: its decision is one.
pub fn plan<'a>(
    caller: &'a Caller,
    tls_peer: Option<&'a str>,
    locked_out: bool,
    failed_authentication: bool,
) -> RatePlan<'a> {
    if let Some(peer) = tls_peer {
        // Its key was proven at the handshake: neither counted nor locked
        // out with the address it shares (an IPv6 /64, a NAT).
        return RatePlan {
            count_failure: false,
            counted: Counted::Peer(peer),
        };
    }
    let counted = match caller {
        Caller::Terminal { .. } => Counted::Not,
        Caller::Peer { id, .. } => Counted::Peer(id),
        Caller::Anonymous if locked_out => Counted::LockedOut,
        Caller::Anonymous => Counted::Anonymous,
    };
    RatePlan {
        count_failure: failed_authentication,
        counted,
    }
}

#[cfg(test)]
#[path = "rate_tests.rs"]
mod tests;
