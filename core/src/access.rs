//! Path access control (docs/access.md): the longest-prefix rule match
//! and the access decision. Pure; used by [`super::decide`] once the path
//! is checked ([`super::path`]) and the caller known.

use crate::app_meta::{Access, PathRule};
use crate::caller::Caller;

/// The rule for `path`: the longest prefix that matches as a plain string
/// (`/mqtt` matches `/mqttx`), else `""`. `rules` are in the order
/// `AppMeta::parse` leaves them (longest first, `""` last), so the first
/// match is the longest. Returns its index.
pub fn match_rule(rules: &[PathRule], path: &str) -> Option<usize> {
    rules
        .iter()
        .position(|r| path.starts_with(r.prefix.as_str()))
}

/// Of two rules that match forms of one path (as received, and as Java
/// servers read it without `;parameters`), the stricter for `caller`: one
/// that refuses the caller, else the one whose access is narrower
/// (`private` and `peer` over `public`), else `b`.
pub fn stricter(rules: &[PathRule], a: usize, b: usize, caller: &Caller) -> usize {
    let narrow = |i: usize| rules[i].access != Access::Public;
    if decide(rules[a].access, caller).is_err() {
        a
    } else if decide(rules[b].access, caller).is_err() || narrow(b) || !narrow(a) {
        b
    } else {
        a
    }
}

/// Why the caller may not reach a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this page is for the Portal owner's devices only: sign in on this Portal first")]
    NotTerminal,
    #[error("this path is for peer Portals only")]
    NotPeer,
}

/// The access decision for `caller` on a path with `access`.
pub fn decide(access: Access, caller: &Caller) -> Result<(), Denied> {
    match (access, caller) {
        (Access::Public, _) => Ok(()),
        (Access::Private, Caller::Terminal { .. }) => Ok(()),
        (Access::Private, _) => Err(Denied::NotTerminal),
        (Access::Peer, Caller::Peer { .. }) => Ok(()),
        (Access::Peer, _) => Err(Denied::NotPeer),
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
