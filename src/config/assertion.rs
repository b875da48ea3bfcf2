//! Validation of the `assertion:` section (docs/config.md): the identity
//! assertion's header and lifetime.

use http::HeaderName;
use portal_core::assertion::TTL_RANGE;
use portal_core::headers::{is_forwarding_header, normalize_name};

use super::raw;
use super::validate::Validator;

/// The default header.
const DEFAULT_HEADER: &str = "x-ptl-assertion";

/// `assertion:`, validated.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub enabled: bool,
    /// Lower case, `-` for `_`: any spelling of it a client sends is
    /// removed.
    pub header: HeaderName,
    pub ttl_seconds: u64,
}

impl Default for Assertion {
    fn default() -> Self {
        Assertion {
            enabled: true,
            header: HeaderName::from_static(DEFAULT_HEADER),
            ttl_seconds: *TTL_RANGE.end(),
        }
    }
}

/// Headers the proxy sets, removes or reads for another purpose, or that
/// HTTP gives a meaning of its own: not an assertion's name (nor is any
/// forwarding header, [`is_forwarding_header`]).
const TAKEN: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-type",
    "content-encoding",
    "content-digest",
    "expect",
    "cookie",
    "cookie2",
    "authorization",
    "proxy-authorization",
    "signature",
    "signature-input",
    "via",
    "traceparent",
    "tracestate",
    "x-ptl-client-type",
    "x-ptl-client-id",
    "x-ptl-client-name",
    "x-ptl-app",
];

impl Validator {
    pub(super) fn assertion(&mut self, raw: raw::Assertion) -> Assertion {
        let d = Assertion::default();
        let header = match raw.header {
            None => d.header,
            Some(name) => {
                let normal = normalize_name(&name);
                match HeaderName::from_bytes(normal.as_bytes()) {
                    Err(_) => {
                        self.error("assertion.header", format!("{name:?} is not a header name"));
                        d.header
                    }
                    Ok(_) if TAKEN.contains(&normal.as_str()) || is_forwarding_header(&normal) => {
                        self.error(
                            "assertion.header",
                            format!(
                                "{name:?} is a header the proxy or HTTP uses for something else"
                            ),
                        );
                        d.header
                    }
                    Ok(header) => header,
                }
            }
        };
        let ttl_seconds = match raw.ttl_seconds {
            None => d.ttl_seconds,
            Some(ttl) if TTL_RANGE.contains(&ttl) => ttl,
            Some(ttl) => {
                self.error(
                    "assertion.ttl_seconds",
                    format!(
                        "{ttl} is not from {} to {} (a token is reused for two thirds of its life; apps are told it lives at most 60 s)",
                        TTL_RANGE.start(),
                        TTL_RANGE.end()
                    ),
                );
                d.ttl_seconds
            }
        };
        Assertion {
            enabled: raw.enabled.unwrap_or(d.enabled),
            header,
            ttl_seconds,
        }
    }
}
