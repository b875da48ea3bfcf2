//! The Pingora shells, one per listener. Each gathers its inputs from the
//! connection, asks the core ([`portal_core`]), and applies the answer; none
//! decides anything itself. [`respond`] is the one way they answer by
//! themselves.

#![forbid(unsafe_code)]

pub(crate) mod https;
pub(crate) mod internal;
pub(crate) mod metrics;
pub(crate) mod mqtt;
pub(crate) mod parked;
pub(crate) mod plain;
pub(crate) mod redirect;
pub(crate) mod respond;
mod shared;

pub(crate) use shared::Shared;

use std::net::SocketAddr;
use std::time::Duration;

use pingora::http::RequestHeader;

/// Why a connection to an upstream was not made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Failed(std::io::Error),
    TimedOut,
}

/// A TCP connection to an upstream within `timeout`, with Nagle off (the
/// listeners relay what they receive at once).
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, ConnectError> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err(e)) => Err(ConnectError::Failed(e)),
        Err(_) => Err(ConnectError::TimedOut),
    }
}

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
