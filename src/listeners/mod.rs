//! The Pingora shells, one per listener. Each gathers its inputs from the
//! connection, asks [`crate::decision`], and applies the answer; none
//! decides anything itself. [`respond`] is the one way they answer by
//! themselves.

pub mod https;
pub mod internal;
pub mod metrics;
pub mod mqtt;
pub mod plain;
pub mod redirect;
pub mod respond;

use pingora::http::RequestHeader;

/// The host a request names, as received: the `:authority` (HTTP/2) or
/// absolute-form target, else the `Host` header.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
}
