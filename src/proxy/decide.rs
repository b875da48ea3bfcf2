//! `request_filter`'s decision (DESIGN sections 3 to 6): where the request
//! goes, who is calling, and whether the caller may reach the path.

use pingora::http::RequestHeader;

use super::{PortalProxy, RequestCtx};
use crate::access::{check_path, decide, match_rule};
use crate::app_meta::Access;
use crate::caller::{bearer_token, cookie_values, Caller, Terminals, TERMINAL_COOKIE};
use crate::config::HostPort;
use crate::error_page::Refusal;
use crate::replay::ReplayError;
use crate::route::{normalize_host, strip_core_prefix, CoreAccess, RouteError, Router, Target};
use crate::signature::{self, ContentDigest, ParsedSignature, RequestParts, SignatureError};
use crate::state::Snapshot;

/// The host a request names: the `:authority` (HTTP/2) or absolute-form
/// target, else the `Host` header.
pub(crate) fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
}

impl PortalProxy {
    /// Decides where the request goes and as whom, or the refusal to answer
    /// with: route (section 3), path check, caller (section 4), rule and
    /// access (section 6).
    pub(super) fn decide(
        &self,
        req: &RequestHeader,
        has_body: bool,
        ctx: &mut RequestCtx,
    ) -> Result<(), Refusal> {
        let host = request_host(req)
            .and_then(normalize_host)
            .ok_or_else(|| Refusal::BadRequest(RouteError::NoHost.to_string()))?;
        let snapshot = self.portal.state.load();
        let router = Router {
            domain: &self.portal.domain,
            home_app: &self.portal.home_app,
        };
        let raw_path = req.uri.path();
        let target = router
            .route(&host, raw_path, |app| snapshot.http_app(app).is_some())
            .map_err(|e| match e {
                RouteError::NoHost => Refusal::BadRequest(e.to_string()),
                RouteError::UnknownApp(_) => Refusal::NotFound(e.to_string()),
                RouteError::Misdirected(_) => Refusal::Misdirected(e.to_string()),
            })?;
        // Known from here on: later refusals are counted for this target.
        ctx.target = Some(target.clone());
        let path = check_path(raw_path).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        // A `portal` signature makes the caller a peer, or refuses the
        // request, whatever else it carries (DESIGN section 4).
        ctx.caller = match signature::parse(&req.headers).map_err(signature_refusal)? {
            Some(sig) => self.verify_peer(req, &sig, has_body, &snapshot, ctx)?,
            None => identify(req, &snapshot.terminals),
        };

        let (upstream, access, app) = match &target {
            Target::Core(CoreAccess::Public) => {
                (self.portal.core_upstream.clone(), Access::Public, None)
            }
            Target::Core(CoreAccess::Protected) => {
                (self.portal.core_upstream.clone(), Access::Private, None)
            }
            Target::Core(CoreAccess::Internal) => {
                return Err(Refusal::NotFound(
                    "this path is not served from outside".into(),
                ))
            }
            Target::App(name) => {
                let app = snapshot
                    .http_app(name)
                    .expect("routing only picks loaded apps with an http entrypoint")
                    .clone();
                let rule = match_rule(&app.meta.paths, &path)
                    .expect("every app has the \"\" rule, which matches every path");
                let upstream = match self.portal.upstreams.get(name).and_then(|u| u.http.clone()) {
                    Some(configured) => configured,
                    None => {
                        let ep = app.meta.http.as_ref().expect("checked by http_app");
                        HostPort {
                            host: ep.host.clone(),
                            port: ep.port,
                        }
                    }
                };
                (upstream, app.meta.paths[rule].access, Some((app, rule)))
            }
        };
        ctx.access = Some(access);
        decide(access, &ctx.caller).map_err(|denied| Refusal::Unauthorized(denied.to_string()))?;

        let forward = match target {
            Target::Core(_) => Some(strip_core_prefix(&path).to_string()),
            Target::App(_) => matches!(path, std::borrow::Cow::Owned(_)).then(|| path.to_string()),
        };
        ctx.forward_path = forward.map(|p| match req.uri.query() {
            Some(q) => format!("{p}?{q}"),
            None => p,
        });
        ctx.upstream = Some(upstream);
        ctx.app = app;
        ctx.snapshot = Some(snapshot);
        Ok(())
    }
}

impl PortalProxy {
    /// Verifies a peer's signature (DESIGN section 5) and, for a request
    /// with a body, prepares the digest check of `request_body_filter`.
    fn verify_peer(
        &self,
        req: &RequestHeader,
        sig: &ParsedSignature,
        has_body: bool,
        snapshot: &Snapshot,
        ctx: &mut RequestCtx,
    ) -> Result<Caller, Refusal> {
        let peering = &self.portal.peering;
        let now = unix_now();
        let authority = signature::authority(request_host(req).unwrap_or(""));
        let parts = RequestParts {
            method: req.method.as_str(),
            authority: &authority,
            path: req.uri.path(),
            query: req.uri.query(),
            headers: &req.headers,
            has_body,
        };
        let peer = snapshot.peers.get(&sig.keyid).cloned();
        signature::verify(
            &parts,
            sig,
            |_| peer.as_ref().map(|p| p.key),
            now,
            peering.window,
        )
        .map_err(signature_refusal)?;
        let peer = peer.expect("verify refuses unknown peers");
        let forget_at = sig.expires + peering.window.skew;
        match self
            .portal
            .replay
            .check_and_insert(&peer.id, &sig.nonce, forget_at, now)
        {
            Ok(()) => {}
            Err(ReplayError::Seen) => {
                return Err(signature_refusal(SignatureError::Replayed(
                    sig.nonce.clone(),
                )))
            }
            // Fail closed: the nonce cannot be proved fresh.
            Err(ReplayError::Full) => {
                return Err(signature_refusal(SignatureError::Malformed(
                    "too many live nonces from this peer; retry later".into(),
                )))
            }
        }
        let covers_digest = sig
            .field
            .components
            .iter()
            .any(|c| c == signature::CONTENT_DIGEST);
        if has_body {
            let digest = ContentDigest::from_headers(&req.headers).map_err(signature_refusal)?;
            let declared = req
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > peering.max_signed_body as u64) {
                return Err(Refusal::PayloadTooLarge(format!(
                    "a signed body is checked in memory, up to {} bytes",
                    peering.max_signed_body
                )));
            }
            ctx.body_check = Some(super::BodyCheck::new(digest));
        } else if covers_digest {
            let digest = ContentDigest::from_headers(&req.headers).map_err(signature_refusal)?;
            if !digest.matches(b"") {
                return Err(signature_refusal(SignatureError::DigestMismatch));
            }
        }
        Ok(Caller::Peer {
            id: peer.id.clone(),
            name: peer.name.clone(),
        })
    }
}

/// Counts a signature failure and makes it a 401 with its reason.
pub(super) fn signature_refusal(e: SignatureError) -> Refusal {
    crate::metrics::signature_refused(&e);
    Refusal::Signature(e.reason(), e.to_string())
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The caller of a request: a terminal when the `authorization` cookie or a
/// bearer token proves one, else anonymous.
fn identify(req: &RequestHeader, terminals: &Terminals) -> Caller {
    if terminals.is_empty() {
        return Caller::Anonymous;
    }
    let now = unix_now().max(0) as u64;
    let cookies = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie_values(v, TERMINAL_COOKIE));
    let bearer = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()));
    cookies
        .chain(bearer)
        .find_map(|token| terminals.identify(token, now))
        .unwrap_or(Caller::Anonymous)
}
