//! The decision of one request (README.md, "How requests are handled";
//! docs/access.md; docs/signing.md): where it goes, who is calling and whether the caller may reach the path, as one pure
//! function, [`decide`], from the request head, the state snapshot, the
//! policy and the time to a [`Verdict`]. The HTTPS shell calls it once in
//! `request_filter` and carries the verdict through every later phase.
//!
//! Order of the checks, each refusing the request when it fails: the
//! request-target (400 unless origin-form or absolute-form naming the
//! Host; `OPTIONS *` is answered here), the Host (400 without one, 421
//! when not ours, 404 for no such app), the path (400), the caller (a
//! `portal` signature makes a peer or a 401, else the terminal
//! credentials or anonymous), the matched rule's access (401),
//! and for a signed body its size (413). The one side effect a verified
//! signature needs, claiming its nonce in the replay cache, comes back as
//! [`Decision::nonce`] for the shell to apply with [`Decision::settle`].

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;

use super::access::{decide as access_decision, match_rule, stricter};
use super::assertion::PeerProof;
use super::body::{BodyCheck, HeldBudget};
use super::caller::Caller;
use super::credentials::{Credentials, Unproved};
use super::path::{canonical_path, CanonicalPath};
use super::refusal::{Reason, Refusal};
use super::replay::ReplayError;
use super::revoke::{Opened, TerminalCredential};
use super::route::{
    normalize_host, strip_core_prefix, CoreAccess, Entrypoint, RouteError, Router, Target,
};
use super::signature::response::RequestBinding;
use super::signature::{self, RequestParts, SignatureError, Window};
use super::target::{parse_target, RequestTarget};
use super::transport::Transports;
use crate::app_meta::Access;
use crate::names::HostPort;
use crate::snapshot::{App, Snapshot};

/// The request as [`decide`] sees it, borrowed from the received head.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub method: &'a str,
    /// The `:authority` (HTTP/2), else the `Host` header, as received.
    pub host: Option<&'a str>,
    /// The request-target as received (RFC 9112 section 3.2): the bytes
    /// the upstream would get if the proxy did not rewrite them.
    pub target: &'a [u8],
    pub headers: &'a HeaderMap,
    /// Whether a body follows the head.
    pub has_body: bool,
    /// The Portal ID of the peer whose identity key the client proved at
    /// the TLS handshake (pinned peer TLS, docs/signing.md); `None` for
    /// any other connection.
    pub tls_peer: Option<&'a str>,
}

/// What the request is decided by besides the state: fixed for the life
/// of the process.
#[derive(Debug, Clone)]
pub struct Policy {
    pub router: Router,
    /// The accepted window of peer signatures.
    pub window: Window,
    /// Largest signed body held for its digest check.
    pub max_signed_body: usize,
    /// The memory all held signed bodies share.
    pub held_bodies: Arc<HeldBudget>,
    /// Which peers must connect with their identity key.
    pub transports: Transports,
}

/// The path rule of an app that a forwarded request matched.
#[derive(Debug, Clone)]
pub struct MatchedRule {
    pub app: Arc<App>,
    /// Its index in the app's rules.
    pub index: usize,
}

/// Everything the later phases of a forwarded request need.
#[derive(Debug)]
pub struct Plan {
    /// The app's rule matched; `None` for the Portal core.
    pub rule: Option<MatchedRule>,
    pub upstream: HostPort,
    /// The origin-form target (path and query) to forward when it differs
    /// from the target received: the core prefix stripped, unreserved
    /// characters decoded, `/` runs merged, an absolute-form target's
    /// scheme and authority dropped. `None`: the target received is
    /// already exactly the path the rules were matched on, and its query.
    pub path: Option<String>,
    /// The terminal credentials to strip before the request goes on.
    pub credentials: Credentials,
    /// For a signed request with a body: held until its digest matched.
    pub body_check: Option<BodyCheck>,
    /// What it was decided as, to decide it again while it is open.
    pub opened: Arc<Opened>,
    /// For a peer: what proved it (its signature, and its key at the TLS
    /// handshake when the connection was pinned to it), as the identity
    /// assertion states it. `None` for other callers.
    pub peer_proof: Option<PeerProof>,
}

impl Plan {
    pub fn caller(&self) -> &Caller {
        &self.opened.caller
    }
}

/// What was learned of a request as the checks went, whatever came of it:
/// its metrics labels and its access log line.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Where it was routed, if it got that far.
    pub target: Option<Target>,
    /// The matched rule's access, if a rule was matched.
    pub access: Option<Access>,
    pub caller: Caller,
    /// A terminal's token was sent, and it proved no terminal: why.
    pub unproved_token: Option<Unproved>,
    /// A `portal` signature was checked against the key of the peer it
    /// names and does not verify (`bad_signature`).
    pub bad_signature: bool,
}

/// The `app` label of requests to the Portal core: no app name has a `/`.
pub const CORE_APP_LABEL: &str = "/core";

impl Facts {
    /// Whether the caller may choose the request's trace (its
    /// `traceparent` and other tracing systems' headers go on): a terminal
    /// or a verified peer; an anonymous caller gets a fresh trace.
    pub fn chooses_trace(&self) -> bool {
        !matches!(self.caller, Caller::Anonymous)
    }

    /// The `app` label of metrics: the app's name, [`CORE_APP_LABEL`], or
    /// `""` before routing.
    pub fn app_label(&self) -> &str {
        match &self.target {
            Some(Target::App(name)) => name,
            Some(Target::Core(_)) => CORE_APP_LABEL,
            None => "",
        }
    }
}

/// What comes of a request: forwarded as planned, or answered by the
/// proxy.
#[derive(Debug)]
pub enum Verdict {
    Forward(Box<Plan>),
    Refuse(Refusal),
}

/// A verified signature's nonce, to be claimed in the replay cache, and
/// what the answer must be bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceClaim {
    /// The peer's Portal ID.
    pub peer: String,
    pub nonce: String,
    /// The signature's `created`: whether this process may accept it at
    /// all across a restart or upgrade ([`crate::replay::Handover`]).
    pub created: i64,
    /// When the nonce may be forgotten: the signature's `expires` plus the
    /// allowed skew.
    pub forget_at: i64,
    /// For signing the answer, whatever it is.
    pub binding: Box<RequestBinding<'static>>,
}

/// The decision of one request: what was learned of it, its [`Verdict`],
/// and the side effect the shell applies before it.
#[derive(Debug)]
pub struct Decision {
    pub facts: Facts,
    pub verdict: Verdict,
    /// Set whenever a peer signature verified, whatever the verdict.
    pub nonce: Option<NonceClaim>,
}

impl Decision {
    /// Whether the request failed to authenticate, as the rate limit of
    /// failed authentications counts it: a credential of ours proven
    /// wrong, and nothing else (docs/config.md, "What counts as a failed
    /// authentication"). That is a `portal` signature that does not verify
    /// by the key of the peer it names, or an `authorization` cookie
    /// holding a JWT the terminal secret did not sign, on a request
    /// refused for want of a terminal. Not counted: what proves nothing either way (a
    /// malformed or unknown signature, another application's, a stale
    /// clock), a genuine signature refused for its use (replayed, on the
    /// wrong connection), the owner's stale token (signed with the
    /// secret: expired or of a removed terminal), and any token on a
    /// page that needs none (the browser sends its cookie everywhere).
    pub fn failed_authentication(&self) -> bool {
        match &self.verdict {
            Verdict::Refuse(r) => {
                self.facts.bad_signature
                    || (self.facts.unproved_token == Some(Unproved::Forged)
                        && r.kind == super::refusal::Kind::Unauthorized
                        && r.reason.is_none())
            }
            Verdict::Forward(_) => false,
        }
    }

    /// Refused before anything was learned of the request.
    pub fn refused(refusal: Refusal) -> Self {
        Decision {
            facts: Facts::default(),
            verdict: Verdict::Refuse(refusal),
            nonce: None,
        }
    }

    /// The decision once the nonce claim is facts: a nonce already seen is
    /// `replayed` (401); one that cannot be kept because the peer holds
    /// its whole share of the cache is 429 `peer_nonces` with
    /// `Retry-After`, as a peer over its rate: its signature verified, so
    /// it is no failed authentication, but it cannot be let through
    /// unremembered (fail closed). Either wins over the verdict, as the
    /// signature is checked before the rest.
    pub fn settle(self, claim: Result<(), ReplayError>) -> Decision {
        let refusal = match (claim, &self.nonce) {
            (Ok(()), _) | (_, None) => return self,
            (Err(ReplayError::Seen), Some(n)) => SignatureError::Replayed(n.nonce.clone()).into(),
            (Err(ReplayError::Full), Some(_)) => Refusal::too_many(
                Reason::PeerNonces,
                "this peer holds its whole share of live nonces; retry once some expire",
                super::refusal::RETRY_AFTER_SECONDS,
            ),
            (Err(ReplayError::Handover), Some(_)) => Refusal::unavailable(
                Reason::Handover,
                "signed while this Portal's proxy was restarting or upgrading: its replay cache cannot tell whether the other process accepted it; sign the request anew",
                1,
            ),
        };
        // As refused by the signature check: no caller, no rule yet.
        Decision {
            facts: Facts {
                target: self.facts.target,
                access: None,
                caller: Caller::Anonymous,
                unproved_token: None,
                bad_signature: false,
            },
            verdict: Verdict::Refuse(refusal),
            nonce: self.nonce,
        }
    }
}

/// Decides a request: route, path check, caller, rule and access (in the
/// order of the module's comment). `now` is Unix seconds.
pub fn decide(head: &Head<'_>, snapshot: &Snapshot, policy: &Policy, now: i64) -> Decision {
    let (facts, nonce, planned) = plan(head, snapshot, policy, now);
    let verdict = match planned {
        Ok(plan) => Verdict::Forward(Box::new(plan)),
        Err(refusal) => Verdict::Refuse(refusal),
    };
    Decision {
        facts,
        verdict,
        nonce,
    }
}

/// The stages in order, each returning what it learned: the facts known
/// when the request was planned or refused, the nonce to claim (set as
/// soon as a signature verified), and the plan or the refusal.
fn plan(
    head: &Head<'_>,
    snapshot: &Snapshot,
    policy: &Policy,
    now: i64,
) -> (Facts, Option<NonceClaim>, Result<Plan, Refusal>) {
    let routed = match routed(head, snapshot, policy) {
        Ok(routed) => routed,
        Err((target, refusal)) => {
            let facts = Facts {
                target,
                ..Facts::default()
            };
            return (facts, None, Err(refusal));
        }
    };
    let identified = identified(head, snapshot, policy, now, &routed);
    let mut facts = Facts {
        target: Some(routed.target.clone()),
        access: None,
        caller: identified.caller,
        unproved_token: identified.unproved_token,
        bad_signature: identified.bad_signature,
    };
    let nonce = identified.nonce;
    let (credentials, body_check) = match identified.outcome {
        Ok(found) => found,
        Err(refusal) => return (facts, nonce, Err(refusal)),
    };
    let (rule, upstream, access) = match matched(
        &routed.target,
        &routed.canonical,
        &facts.caller,
        snapshot,
        policy,
    ) {
        Ok(found) => found,
        Err(refusal) => return (facts, nonce, Err(refusal)),
    };
    facts.access = Some(access);
    if let Err(denied) = access_decision(access, &facts.caller) {
        return (facts, nonce, Err(denied.into()));
    }
    let credential = match facts.caller {
        Caller::Terminal { .. } => {
            snapshot
                .terminals
                .secret_id()
                .map(|secret_id| TerminalCredential {
                    secret_id,
                    expires: credentials.terminal_expires,
                })
        }
        _ => None,
    };
    let forward = forwarded_path(&routed.target, &routed.canonical, routed.absolute_form);
    let opened = Arc::new(Opened::new(
        facts.caller.clone(),
        credential,
        routed.target.clone(),
        &routed.canonical,
    ));
    // A pinned connection carries its own peer's signed requests only
    // (`identified` refused any other).
    let peer_proof =
        matches!(facts.caller, Caller::Peer { .. }).then_some(if head.tls_peer.is_some() {
            PeerProof::SignatureAndTls
        } else {
            PeerProof::Signature
        });
    let plan = Plan {
        rule,
        upstream,
        path: forward.map(|p| match routed.query {
            Some(q) => format!("{p}?{q}"),
            None => p,
        }),
        credentials,
        body_check,
        opened,
        peer_proof,
    };
    (facts, nonce, Ok(plan))
}

#[path = "decide_stages.rs"]
mod stages;
use stages::{forwarded_path, identified, matched, routed};

#[path = "decide_peer.rs"]
mod peer;

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
