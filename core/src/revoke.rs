//! Revocation of what is already open (docs/access.md): after a reload
//! that removes a terminal or a peer, removes an app, makes a rule
//! stricter, or changes or removes the terminal secret, and when a
//! terminal's token expires, a request still in flight (a WebSocket, an
//! upgraded connection, a streaming response) that its caller could no
//! longer open is closed. [`Opened`] is what a forwarded request was decided as;
//! [`still_allowed`] decides it again against a new snapshot. Pure; the
//! reload service applies it to the live requests of `admission::live`.

use super::access::{decide as access_decision, match_rule, stricter};
use super::caller::Caller;
use super::path::CanonicalPath;
use super::route::{CoreAccess, Target};
use crate::app_meta::Access;
use crate::snapshot::Snapshot;

/// The credential an open terminal request was decided with: it lives
/// as long as the secret that checked it and the token's `exp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TerminalCredential {
    /// [`crate::caller::Terminals::secret_id`] when decided.
    pub secret_id: u64,
    /// The token's `exp` (Unix seconds), if it has one.
    pub expires: Option<f64>,
}

impl TerminalCredential {
    /// Whether the token has expired at `now` (Unix seconds, with their
    /// fraction).
    pub fn expired(&self, now: f64) -> bool {
        self.expires.is_some_and(|exp| exp <= now)
    }
}

/// What a forwarded request was decided as, kept while it is open.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub caller: Caller,
    /// For a terminal: the credential it was proved by.
    pub credential: Option<TerminalCredential>,
    pub target: Target,
    /// The canonical path matched.
    pub path: String,
    /// The path without `;parameters`, when it differs.
    pub without_params: Option<String>,
}

impl Opened {
    pub fn new(
        caller: Caller,
        credential: Option<TerminalCredential>,
        target: Target,
        path: &CanonicalPath<'_>,
    ) -> Self {
        Opened {
            caller,
            credential,
            target,
            path: path.path.to_string(),
            without_params: path.without_params.clone(),
        }
    }
}

/// Whether the caller of `opened` could still open it with `snapshot` at
/// `now` (Unix seconds): the terminal or peer still exists (a terminal's
/// token checked with the same secret, which still exists, and not
/// expired), the app still does, and the rule its path matches now still
/// lets the caller in.
pub fn still_allowed(opened: &Opened, snapshot: &Snapshot, now: i64) -> bool {
    let caller_exists = match &opened.caller {
        Caller::Anonymous => true,
        Caller::Terminal { id, .. } => {
            snapshot.terminals.contains(id)
                && opened.credential.is_some_and(|c| {
                    Some(c.secret_id) == snapshot.terminals.secret_id() && !c.expired(now as f64)
                })
        }
        Caller::Peer { id, .. } => snapshot.peers.get(id).is_some(),
    };
    if !caller_exists {
        return false;
    }
    let access = match &opened.target {
        Target::Core(CoreAccess::Protected) => Access::Private,
        Target::Core(_) => Access::Public,
        Target::App(name) => {
            let Some(app) = snapshot.http_app(name) else {
                return false;
            };
            let rules = &app.meta.paths;
            let Some(rule) = match_rule(rules, &opened.path) else {
                return false;
            };
            let rule = match opened
                .without_params
                .as_deref()
                .and_then(|p| match_rule(rules, p))
            {
                Some(other) => stricter(rules, rule, other, &opened.caller),
                None => rule,
            };
            rules[rule].access
        }
    };
    access_decision(access, &opened.caller).is_ok()
}

#[cfg(test)]
#[path = "revoke_tests.rs"]
mod tests;
