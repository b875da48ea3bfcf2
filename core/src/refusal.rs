//! The responses the proxy writes itself (README.md, "Operating it": only for what
//! the proxy decides): one [`Refusal`] type, rendered as JSON, or as an HTML
//! page for browsers. Every error of the pure core becomes a refusal by the
//! `From` impls below, and only there; the listeners write refusals through
//! `listeners::respond` and nowhere else.

use serde::Serialize;

use super::access::Denied;
use super::body::{BodyError, TooLarge, TooSlow};
use super::head::HeadError;
use super::outbound::CallError;
use super::path::PathError;
use super::route::RouteError;
use super::signature::SignatureError;
use super::target::TargetError;

/// The kinds of answer the proxy gives itself. Each has one row in
/// [`Kind::row`]: adding a kind is a variant and its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `OPTIONS *`, a question about the server as a whole, answered here
    /// and never forwarded (as Go's `net/http` does): 200 with no body.
    Options,
    /// The request is malformed.
    BadRequest,
    /// The caller may not reach this path, or a peer signature failed
    /// (its reason code in [`Refusal::reason`]).
    Unauthorized,
    /// The caller is not allowed here at all (an unknown source on the
    /// internal listener).
    Forbidden,
    /// No such app, a path that is never exposed, or a peer an app names
    /// that is unknown or ambiguous (`unknown_peer`, `ambiguous_peer`).
    NotFound,
    /// A request body slower than the minimum rate.
    RequestTimeout,
    /// A signed body larger than the limit.
    PayloadTooLarge,
    /// The host is not one of this Portal's.
    Misdirected,
    /// The request head is over the limits.
    HeaderFieldsTooLarge,
    /// A peer refused a call for its rate (passed on as `peer_refused`);
    /// `Retry-After` says when to try again.
    TooManyRequests,
    /// The upstream could not be reached or answered badly (a peer's
    /// answer without a valid signature: reason `peer_unverified`).
    BadGateway,
    /// The proxy cannot take the request now; `Retry-After` says when to
    /// try again.
    Unavailable,
    /// The upstream did not answer in time.
    GatewayTimeout,
}

impl Kind {
    /// The table: each kind's status and its stable code, for scripts and
    /// the access log.
    const fn row(self) -> (u16, &'static str) {
        match self {
            Kind::Options => (200, "options"),
            Kind::BadRequest => (400, "bad_request"),
            Kind::Unauthorized => (401, "unauthorized"),
            Kind::Forbidden => (403, "forbidden"),
            Kind::NotFound => (404, "not_found"),
            Kind::RequestTimeout => (408, "request_timeout"),
            Kind::PayloadTooLarge => (413, "payload_too_large"),
            Kind::Misdirected => (421, "misdirected_request"),
            Kind::TooManyRequests => (429, "too_many_requests"),
            Kind::HeaderFieldsTooLarge => (431, "request_header_fields_too_large"),
            Kind::BadGateway => (502, "bad_gateway"),
            Kind::Unavailable => (503, "service_unavailable"),
            Kind::GatewayTimeout => (504, "gateway_timeout"),
        }
    }

    pub const fn status(self) -> u16 {
        self.row().0
    }

    pub const fn code(self) -> &'static str {
        self.row().1
    }
}

/// The finer reason code of a refusal, for the callers that act on it
/// (`reason` of the JSON body; the `reason` label of refused signatures):
/// one closed list, which shells cannot add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // A peer's signature (401; docs/signing.md).
    UnknownPeer,
    BadSignature,
    Expired,
    NotYetValid,
    Replayed,
    DigestMismatch,
    MissingComponent,
    Malformed,
    /// Only an answer's: no signature where one is required.
    Unsigned,
    PeerMismatch,
    Unpinned,
    // The internal listener's peer names (404).
    AmbiguousPeer,
    // A peer's answer (502 or its status): not verified, or an unsigned
    // refusal whose status goes on.
    PeerUnverified,
    PeerRefused,
    // Rate limits (429).
    AnonymousRate,
    PeerRate,
    FailedAuthentications,
    /// A peer holding its whole share of the replay cache.
    PeerNonces,
    /// 503: signed while the proxy was upgrading.
    Handover,
}

impl Reason {
    /// Every reason: first those a request's signature can be refused
    /// with ([`Reason::SIGNATURE`]).
    pub const ALL: [Reason; 19] = [
        Reason::UnknownPeer,
        Reason::BadSignature,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::Replayed,
        Reason::DigestMismatch,
        Reason::MissingComponent,
        Reason::Malformed,
        Reason::PeerMismatch,
        Reason::Unpinned,
        Reason::Unsigned,
        Reason::AmbiguousPeer,
        Reason::PeerUnverified,
        Reason::PeerRefused,
        Reason::AnonymousRate,
        Reason::PeerRate,
        Reason::FailedAuthentications,
        Reason::PeerNonces,
        Reason::Handover,
    ];

    /// Every reason a request's signature can be refused with (401), for
    /// metrics that start at zero ([`Reason::Unsigned`] is only an
    /// answer's).
    pub const SIGNATURE: &'static [Reason] = Reason::ALL.split_at(10).0;

    /// The code, as sent and counted.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownPeer => "unknown_peer",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Replayed => "replayed",
            Reason::DigestMismatch => "digest_mismatch",
            Reason::MissingComponent => "missing_component",
            Reason::Malformed => "malformed",
            Reason::Unsigned => "unsigned",
            Reason::PeerMismatch => "peer_mismatch",
            Reason::Unpinned => "unpinned",
            Reason::AmbiguousPeer => "ambiguous_peer",
            Reason::PeerUnverified => "peer_unverified",
            Reason::PeerRefused => "peer_refused",
            Reason::AnonymousRate => "anonymous_rate",
            Reason::PeerRate => "peer_rate",
            Reason::FailedAuthentications => "failed_authentications",
            Reason::PeerNonces => "peer_nonces",
            Reason::Handover => "handover",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the proxy answers itself: its kind, a finer reason code for
/// the callers that act on it, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: Kind,
    /// `reason` of the JSON body.
    pub reason: Option<Reason>,
    pub message: String,
    /// `Retry-After` in place of the kind's default.
    retry_after: Option<u32>,
}

/// Seconds a client is asked to wait after a 503 (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 5;

impl Refusal {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            reason: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_reason(kind: Kind, reason: Reason, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            reason: Some(reason),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429 from a rate limit: its reason, and how long to wait.
    pub fn too_many(reason: Reason, message: impl Into<String>, retry_after: u32) -> Self {
        Refusal {
            retry_after: Some(retry_after),
            ..Refusal::with_reason(Kind::TooManyRequests, reason, message)
        }
    }

    /// 503 for a reason of its own, with `Retry-After`.
    pub fn unavailable(reason: Reason, message: impl Into<String>, retry_after: u32) -> Self {
        Refusal {
            retry_after: Some(retry_after),
            ..Refusal::with_reason(Kind::Unavailable, reason, message)
        }
    }

    /// The answer to `OPTIONS *`.
    pub fn options() -> Self {
        Refusal::new(Kind::Options, "")
    }

    /// The reason of a failed peer signature, if this is one.
    pub fn signature_reason(&self) -> Option<Reason> {
        self.reason.filter(|_| self.kind == Kind::Unauthorized)
    }
}

impl From<RouteError> for Refusal {
    fn from(e: RouteError) -> Self {
        let kind = match e {
            RouteError::NoHost => Kind::BadRequest,
            RouteError::UnknownApp(_) | RouteError::NotExposed => Kind::NotFound,
            RouteError::Misdirected(_) => Kind::Misdirected,
        };
        Refusal::new(kind, e.to_string())
    }
}

impl From<HeadError> for Refusal {
    fn from(e: HeadError) -> Self {
        let kind = match e {
            HeadError::TooManyFields { .. } | HeadError::TooLarge { .. } => {
                Kind::HeaderFieldsTooLarge
            }
            HeadError::LengthAndChunked => Kind::BadRequest,
        };
        Refusal::new(kind, e.to_string())
    }
}

impl From<PathError> for Refusal {
    fn from(e: PathError) -> Self {
        Refusal::new(Kind::BadRequest, e.to_string())
    }
}

impl From<TargetError> for Refusal {
    fn from(e: TargetError) -> Self {
        Refusal::new(Kind::BadRequest, e.to_string())
    }
}

impl From<SignatureError> for Refusal {
    fn from(e: SignatureError) -> Self {
        Refusal::with_reason(Kind::Unauthorized, e.reason(), e.to_string())
    }
}

impl From<Denied> for Refusal {
    fn from(e: Denied) -> Self {
        Refusal::new(Kind::Unauthorized, e.to_string())
    }
}

impl From<TooLarge> for Refusal {
    fn from(e: TooLarge) -> Self {
        Refusal::new(Kind::PayloadTooLarge, e.to_string())
    }
}

impl From<TooSlow> for Refusal {
    fn from(e: TooSlow) -> Self {
        Refusal::new(Kind::RequestTimeout, e.to_string())
    }
}

impl From<BodyError> for Refusal {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(e) => e.into(),
            BodyError::Signature(e) => e.into(),
            BodyError::Busy(_) => Refusal::new(Kind::Unavailable, e.to_string()),
        }
    }
}

impl From<CallError> for Refusal {
    fn from(e: CallError) -> Self {
        let message = e.to_string();
        match e {
            CallError::UnknownSource(_) => Refusal::new(Kind::Forbidden, message),
            CallError::UnknownPeer(_) => {
                Refusal::with_reason(Kind::NotFound, Reason::UnknownPeer, message)
            }
            CallError::AmbiguousPeer(..) => {
                Refusal::with_reason(Kind::NotFound, Reason::AmbiguousPeer, message)
            }
            CallError::Path(e) => e.into(),
            CallError::TooLarge(e) => e.into(),
            CallError::NotServed(_) => Refusal::new(Kind::NotFound, message),
            CallError::BadRequest(_) => Refusal::new(Kind::BadRequest, message),
        }
    }
}

#[derive(Serialize)]
struct JsonBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    message: &'a str,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// A stable machine-readable code, for scripts and for the access log.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Retry-After` of the answer, in seconds, if it has one.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self.kind, Kind::Unavailable | Kind::TooManyRequests)
            .then_some(self.retry_after.unwrap_or(RETRY_AFTER_SECONDS))
    }

    /// `(content type, body)`: HTML when the client's `Accept` asks for
    /// `text/html` (a browser), JSON otherwise.
    pub fn render(&self, accept: Option<&str>) -> (&'static str, Vec<u8>) {
        if self.kind == Kind::Options {
            return ("text/plain; charset=utf-8", Vec::new());
        }
        if accept.is_some_and(wants_html) {
            ("text/html; charset=utf-8", self.html().into_bytes())
        } else {
            let body = JsonBody {
                error: self.code(),
                reason: self.reason.map(Reason::as_str),
                message: self.message(),
            };
            let mut json = serde_json::to_vec(&body).expect("strings always serialize");
            json.push(b'\n');
            ("application/json", json)
        }
    }

    fn html(&self) -> String {
        let status = self.status();
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{status} {reason}</title></head>\n\
             <body><h1>{status} {reason}</h1>\n<p>{}</p>\n<hr><p>portal-proxy</p></body></html>\n",
            escape_html(self.message())
        )
    }
}

/// Whether an `Accept` header value names `text/html` (with q above 0).
fn wants_html(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        media.eq_ignore_ascii_case("text/html")
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            })
    })
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "refusal_tests.rs"]
mod tests;
