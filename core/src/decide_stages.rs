//! The stages of [`super::decide`] that route a request, identify its
//! caller and match its rule, each returning what it learned (the peer's
//! signature is `decide_peer.rs`).

use super::peer;
use super::*;

/// What the routing stage learned of a request it did not refuse.
pub(super) struct Routed<'a> {
    /// Where it goes (the stricter part of the core for a path whose
    /// `;parameters` a server would drop).
    pub(super) target: Target,
    /// The Host as received, for the signature's `@authority`.
    pub(super) host_received: Option<&'a str>,
    /// The path and query as received (what a signature covers).
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    /// Absolute-form: the path alone goes on.
    pub(super) absolute_form: bool,
    /// One canonical path for routing, matching and forwarding.
    pub(super) canonical: CanonicalPath<'a>,
}

/// The routing stage: the request-target, the Host, the path. A refusal
/// carries the target when it was known (later refusals are counted for
/// it).
pub(super) fn routed<'a>(
    head: &Head<'a>,
    snapshot: &Snapshot,
    policy: &Policy,
) -> Result<Routed<'a>, (Option<Target>, Refusal)> {
    let unrouted = |refusal: Refusal| (None, refusal);
    // The bytes the upstream would get are what is decided on: a target
    // that is not a path starting with `/` (or an absolute URL for the
    // Host) is refused, never matched as `/` and forwarded as sent.
    let request = parse_target(head.method, head.target).map_err(|e| unrouted(e.into()))?;
    let RequestTarget::Path {
        path,
        query,
        authority,
    } = request
    else {
        return Err(unrouted(Refusal::options()));
    };
    let host_received = request.host(head.host).map_err(|e| unrouted(e.into()))?;
    let host = host_received
        .and_then(normalize_host)
        .ok_or_else(|| unrouted(RouteError::NoHost.into()))?;
    // A refused path is answered once the target is facts (counted for
    // it).
    let canonical = canonical_path(path);
    let routed_path = canonical.as_ref().map_or(path, |c| c.path.as_ref());
    let target = policy
        .router
        .route(&host, routed_path, |app| snapshot.http_app(app).is_some())
        .map_err(|e| unrouted(e.into()))?;
    let canonical = canonical.map_err(|e| (Some(target.clone()), e.into()))?;
    // What a server that drops `;parameters` reads may reach a stricter
    // part of the core: the stricter applies.
    let target = match (&target, canonical.without_params.as_deref()) {
        (Target::Core(access), Some(stripped)) => {
            match policy.router.route(&host, stripped, |_| false) {
                Ok(Target::Core(other)) => Target::Core((*access).max(other)),
                _ => target,
            }
        }
        _ => target,
    };
    Ok(Routed {
        target,
        host_received,
        path,
        query,
        absolute_form: authority.is_some(),
        canonical,
    })
}

/// What the caller stage learned: who is calling, and on the way the
/// facts a refusal is counted by.
pub(super) struct Identified {
    pub(super) caller: Caller,
    pub(super) nonce: Option<NonceClaim>,
    pub(super) unproved_token: Option<Unproved>,
    pub(super) bad_signature: bool,
    /// The credentials read (stripped before forwarding) and a signed
    /// body's check, or the refusal.
    pub(super) outcome: Result<(Credentials, Option<BodyCheck>), Refusal>,
}

/// The caller stage: a `portal` signature makes the caller a peer, or
/// refuses the request, whatever else it carries (docs/access.md); else
/// the terminal credentials, or anonymous.
pub(super) fn identified(
    head: &Head<'_>,
    snapshot: &Snapshot,
    policy: &Policy,
    now: i64,
    routed: &Routed<'_>,
) -> Identified {
    let refused = |refusal: Refusal| Identified {
        caller: Caller::Anonymous,
        nonce: None,
        unproved_token: None,
        bad_signature: false,
        outcome: Err(refusal),
    };
    let signature = match signature::parse(head.headers) {
        Ok(signature) => signature,
        Err(e) => return refused(e.into()),
    };
    // A connection opened with a peer's key carries that peer's signed
    // requests and nothing else: checked before any signature work.
    if let Some(connection) = head.tls_peer {
        if signature.as_ref().map(|s| s.keyid.as_str()) != Some(connection) {
            let connection = connection.to_string();
            return refused(SignatureError::PeerMismatch { connection }.into());
        }
    }
    let (credentials, terminal) = Credentials::read(
        head.headers,
        &snapshot.terminals,
        now.max(0) as u64,
        signature.is_none(),
    );
    let Some(sig) = signature else {
        return Identified {
            caller: terminal.unwrap_or(Caller::Anonymous),
            nonce: None,
            unproved_token: credentials.unproved,
            bad_signature: false,
            outcome: Ok((credentials, None)),
        };
    };
    // Signed as received: the host and target before any rewriting.
    let authority = signature::authority(routed.host_received.unwrap_or(""));
    let signed = RequestParts {
        method: head.method,
        authority: &authority,
        path: routed.path,
        query: routed.query,
        headers: head.headers,
        has_body: head.has_body,
    };
    let verified = peer::verify(&signed, sig, head.tls_peer.is_some(), snapshot, policy, now);
    match verified.outcome {
        Ok((caller, check)) => Identified {
            caller,
            nonce: verified.nonce,
            unproved_token: None,
            bad_signature: false,
            outcome: Ok((credentials, check)),
        },
        Err(refusal) => Identified {
            caller: Caller::Anonymous,
            nonce: verified.nonce,
            unproved_token: None,
            bad_signature: refusal.reason == Some(SignatureError::BadSignature.reason()),
            outcome: Err(refusal),
        },
    }
}

/// The rule stage: the app's rule the path matches (the stricter of
/// the path and its `;parameters`-free form), the upstream and the access
/// that applies; the Portal core's part and its access otherwise.
pub(super) fn matched(
    target: &Target,
    canonical: &CanonicalPath<'_>,
    caller: &Caller,
    snapshot: &Snapshot,
    policy: &Policy,
) -> Result<(Option<MatchedRule>, HostPort, Access), Refusal> {
    Ok(match target {
        Target::Core(CoreAccess::Internal) => return Err(RouteError::NotExposed.into()),
        Target::Core(core) => {
            let access = match core {
                CoreAccess::Protected => Access::Private,
                _ => Access::Public,
            };
            (None, policy.router.core_upstream().clone(), access)
        }
        Target::App(name) => {
            // Routing picked a loaded app with an `http` entrypoint; every
            // app has the `""` rule, which matches every path.
            let (app, upstream, rule) = snapshot
                .http_app(name)
                .and_then(|app| {
                    let upstream = policy.router.upstream(&app.meta, Entrypoint::Http)?;
                    let rules = &app.meta.paths;
                    let rule = match_rule(rules, &canonical.path)?;
                    // Matched as Java servers read it too: the stricter rule.
                    let rule = match canonical.without_params.as_deref() {
                        Some(stripped) => {
                            stricter(rules, rule, match_rule(rules, stripped)?, caller)
                        }
                        None => rule,
                    };
                    Some((app.clone(), upstream, rule))
                })
                .ok_or_else(|| RouteError::UnknownApp(name.clone()))?;
            let access = app.meta.paths[rule].access;
            (Some(MatchedRule { app, index: rule }), upstream, access)
        }
    })
}

/// The path that goes upstream when it is not the one received: the
/// core's without its prefix, a canonical path that differs, or the path
/// of an absolute-form target.
pub(super) fn forwarded_path(
    target: &Target,
    canonical: &CanonicalPath<'_>,
    absolute_form: bool,
) -> Option<String> {
    match target {
        Target::Core(_) => Some(strip_core_prefix(&canonical.path).to_string()),
        Target::App(_) => match &canonical.path {
            Cow::Owned(path) => Some(path.clone()),
            // Absolute-form: the path alone goes on.
            Cow::Borrowed(path) if absolute_form => Some(path.to_string()),
            Cow::Borrowed(_) => None,
        },
    }
}
