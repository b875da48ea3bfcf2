//! The Pingora shells, one per listener. Each gathers its inputs from the
//! connection, asks the core ([`portal_core`]), and applies the answer; none
//! decides anything itself. [`respond`] is the one way they answer by
//! themselves.

#![forbid(unsafe_code)]

pub(crate) mod https;
pub(crate) mod internal;
pub(crate) mod metrics;
pub(crate) mod mqtt;
pub(crate) mod plain;
pub(crate) mod redirect;
pub(crate) mod respond;

use pingora::http::RequestHeader;

/// The path of the request-target as received, for the log: never its
/// query (which may hold secrets), bytes that are not UTF-8 replaced.
pub(crate) fn logged_path(req: &RequestHeader) -> std::borrow::Cow<'_, str> {
    let raw = req.raw_path();
    let end = memchr::memchr(b'?', raw).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end])
}

/// The host a request names, as received: the `:authority` (HTTP/2) or
/// absolute-form target, else the `Host` header.
pub(crate) fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
}
