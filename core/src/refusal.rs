//! The responses the proxy writes itself (DESIGN section 8: only for what
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

/// A request the proxy answers itself, with its status and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 200 with no body: `OPTIONS *`, a question about the server as a
    /// whole, answered here and never forwarded (as Go's `net/http` does).
    ServerOptions,
    /// 400: the request is malformed.
    BadRequest(String),
    /// 401: the caller may not reach this path.
    Unauthorized(String),
    /// 401: a peer signature that failed, with its reason code (DESIGN
    /// section 5).
    Signature(&'static str, String),
    /// 403: the caller is not allowed here at all (an unknown source on the
    /// internal listener).
    Forbidden(String),
    /// 404: no such app, or a path that is never exposed.
    NotFound(String),
    /// 404: the peer named by an app is unknown or ambiguous, with the
    /// reason (`unknown_peer`, `ambiguous_peer`).
    NoSuchPeer(&'static str, String),
    /// 408: a request body slower than the minimum rate.
    RequestTimeout(String),
    /// 413: a signed body larger than the limit.
    PayloadTooLarge(String),
    /// 431: the request head is over the limits.
    HeaderFieldsTooLarge(String),
    /// 421: the host is not one of this Portal's.
    Misdirected(String),
    /// 502: the upstream could not be reached or answered badly.
    BadGateway(String),
    /// 502 with reason `peer_unverified`: a peer's answer without a valid
    /// response signature.
    PeerUnverified(String),
    /// 504: the upstream did not answer in time.
    GatewayTimeout(String),
    /// 503: the proxy cannot take the request now; `Retry-After` says
    /// when to try again.
    Unavailable(String),
}

/// Seconds a client is asked to wait after a 503 (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 5;

impl From<RouteError> for Refusal {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NoHost => Refusal::BadRequest(e.to_string()),
            RouteError::UnknownApp(_) | RouteError::NotExposed => Refusal::NotFound(e.to_string()),
            RouteError::Misdirected(_) => Refusal::Misdirected(e.to_string()),
        }
    }
}

impl From<HeadError> for Refusal {
    fn from(e: HeadError) -> Self {
        match e {
            HeadError::TooManyFields { .. } | HeadError::TooLarge { .. } => {
                Refusal::HeaderFieldsTooLarge(e.to_string())
            }
            HeadError::LengthAndChunked => Refusal::BadRequest(e.to_string()),
        }
    }
}

impl From<PathError> for Refusal {
    fn from(e: PathError) -> Self {
        Refusal::BadRequest(e.to_string())
    }
}

impl From<TargetError> for Refusal {
    fn from(e: TargetError) -> Self {
        Refusal::BadRequest(e.to_string())
    }
}

impl From<SignatureError> for Refusal {
    fn from(e: SignatureError) -> Self {
        Refusal::Signature(e.reason(), e.to_string())
    }
}

impl From<Denied> for Refusal {
    fn from(e: Denied) -> Self {
        Refusal::Unauthorized(e.to_string())
    }
}

impl From<TooLarge> for Refusal {
    fn from(e: TooLarge) -> Self {
        Refusal::PayloadTooLarge(e.to_string())
    }
}

impl From<TooSlow> for Refusal {
    fn from(e: TooSlow) -> Self {
        Refusal::RequestTimeout(e.to_string())
    }
}

impl From<BodyError> for Refusal {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(e) => e.into(),
            BodyError::Signature(e) => e.into(),
            BodyError::Busy(_) => Refusal::Unavailable(e.to_string()),
        }
    }
}

impl From<CallError> for Refusal {
    fn from(e: CallError) -> Self {
        let message = e.to_string();
        match e {
            CallError::UnknownSource(_) => Refusal::Forbidden(message),
            CallError::UnknownPeer(_) => Refusal::NoSuchPeer("unknown_peer", message),
            CallError::AmbiguousPeer(..) => Refusal::NoSuchPeer("ambiguous_peer", message),
            CallError::Path(e) => e.into(),
            CallError::TooLarge(e) => e.into(),
            CallError::NotServed(_) => Refusal::NotFound(message),
            CallError::BadRequest(_) => Refusal::BadRequest(message),
            CallError::PeerTimeout(_) => Refusal::GatewayTimeout(message),
            CallError::PeerUnverified(..) | CallError::BadAnswer(..) => {
                Refusal::PeerUnverified(message)
            }
            CallError::Unreachable(..) | CallError::BrokeOff | CallError::Internal(_) => {
                Refusal::BadGateway(message)
            }
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
        match self {
            Refusal::ServerOptions => 200,
            Refusal::BadRequest(_) => 400,
            Refusal::Unauthorized(_) | Refusal::Signature(..) => 401,
            Refusal::RequestTimeout(_) => 408,
            Refusal::PayloadTooLarge(_) => 413,
            Refusal::Forbidden(_) => 403,
            Refusal::NotFound(_) | Refusal::NoSuchPeer(..) => 404,
            Refusal::Misdirected(_) => 421,
            Refusal::HeaderFieldsTooLarge(_) => 431,
            Refusal::BadGateway(_) | Refusal::PeerUnverified(_) => 502,
            Refusal::GatewayTimeout(_) => 504,
            Refusal::Unavailable(_) => 503,
        }
    }

    /// A stable machine-readable code, for scripts and for the access log.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::ServerOptions => "options",
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Unauthorized(_) | Refusal::Signature(..) => "unauthorized",
            Refusal::RequestTimeout(_) => "request_timeout",
            Refusal::PayloadTooLarge(_) => "payload_too_large",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::NotFound(_) | Refusal::NoSuchPeer(..) => "not_found",
            Refusal::Misdirected(_) => "misdirected_request",
            Refusal::HeaderFieldsTooLarge(_) => "request_header_fields_too_large",
            Refusal::BadGateway(_) | Refusal::PeerUnverified(_) => "bad_gateway",
            Refusal::GatewayTimeout(_) => "gateway_timeout",
            Refusal::Unavailable(_) => "service_unavailable",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::ServerOptions => "",
            Refusal::BadRequest(m)
            | Refusal::Unauthorized(m)
            | Refusal::Signature(_, m)
            | Refusal::RequestTimeout(m)
            | Refusal::PayloadTooLarge(m)
            | Refusal::Forbidden(m)
            | Refusal::NotFound(m)
            | Refusal::NoSuchPeer(_, m)
            | Refusal::Misdirected(m)
            | Refusal::HeaderFieldsTooLarge(m)
            | Refusal::BadGateway(m)
            | Refusal::PeerUnverified(m)
            | Refusal::GatewayTimeout(m)
            | Refusal::Unavailable(m) => m,
        }
    }

    /// The `Retry-After` of the answer, in seconds, if it has one.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self, Refusal::Unavailable(_)).then_some(RETRY_AFTER_SECONDS)
    }

    /// `(content type, body)`: HTML when the client's `Accept` asks for
    /// `text/html` (a browser), JSON otherwise.
    pub fn render(&self, accept: Option<&str>) -> (&'static str, Vec<u8>) {
        if *self == Refusal::ServerOptions {
            return ("text/plain; charset=utf-8", Vec::new());
        }
        if accept.is_some_and(wants_html) {
            ("text/html; charset=utf-8", self.html().into_bytes())
        } else {
            let body = JsonBody {
                error: self.code(),
                reason: match self {
                    Refusal::Signature(reason, _) | Refusal::NoSuchPeer(reason, _) => Some(reason),
                    Refusal::PeerUnverified(_) => Some("peer_unverified"),
                    _ => None,
                },
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
mod tests {
    use super::*;

    #[test]
    fn json_unless_the_client_is_a_browser() {
        let r = Refusal::NotFound("no app named \"x\"".into());
        let (ct, body) = r.render(None);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "not_found");
        assert_eq!(v["message"], "no app named \"x\"");
        for accept in [
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "TEXT/HTML",
            "application/json, text/html;q=0.5",
        ] {
            assert_eq!(
                r.render(Some(accept)).0,
                "text/html; charset=utf-8",
                "{accept}"
            );
        }
        for accept in ["application/json", "*/*", "text/html;q=0", "text/htmlx"] {
            assert_eq!(r.render(Some(accept)).0, "application/json", "{accept}");
        }
    }

    #[test]
    fn signature_refusals_carry_their_reason() {
        let r = Refusal::Signature("expired", "the signature expired".into());
        assert_eq!(r.status(), 401);
        let v: serde_json::Value = serde_json::from_slice(&r.render(None).1).unwrap();
        assert_eq!(v["error"], "unauthorized");
        assert_eq!(v["reason"], "expired");
        let v: serde_json::Value =
            serde_json::from_slice(&Refusal::NotFound("x".into()).render(None).1).unwrap();
        assert!(v.get("reason").is_none());
    }

    #[test]
    fn html_escapes_the_message() {
        let r = Refusal::Misdirected("host \"<script>\" is not served here".into());
        let (_, body) = r.render(Some("text/html"));
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("421 Misdirected Request"));
        assert!(body.contains("&lt;script&gt;"));
        assert!(!body.contains("<script>"));
    }
}
