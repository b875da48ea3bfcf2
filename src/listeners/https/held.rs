//! A signed request's body checked before anything of the request goes
//! upstream (docs/signing.md, "What the app sees of a signed body"): a
//! body whose `Content-Length` fits Pingora's retry buffer (64 KiB) is
//! read whole in `request_filter` and its digest checked there, so an app
//! never receives even the head of a request whose body does not match;
//! Pingora then sends the buffered body upstream itself. A larger body
//! goes through `request_body_filter`, held back chunk by chunk.

use pingora::proxy::Session;
use pingora::Result;

use portal_core::body::{declared_length, BodyCheck};
use portal_core::refusal::Refusal;

/// Pingora 0.9.1's retry buffer (`BODY_BUF_LIMIT`, HTTP/1 and HTTP/2): a
/// body read before the upstream request is replayed from it, up to this.
pub(super) const BEFORE_THE_HEAD: u64 = 64 * 1024;

/// Reads and checks the body of a signed request before the head goes
/// upstream when it is declared at most [`BEFORE_THE_HEAD`] bytes.
/// `Ok(None)`: checked and matching (the check is then done with, and
/// `check` taken), or left for `request_body_filter` (`check` kept);
/// `Ok(Some(refusal))`: the body does not match, or is over its limits.
pub(super) async fn check_before_the_head(
    session: &mut Session,
    check: &mut Option<BodyCheck>,
) -> Result<Option<Refusal>> {
    // Only a signed request with a body has a check: every other request
    // is done here without reading a header.
    if check.is_none() {
        return Ok(None);
    }
    let small =
        declared_length(&session.req_header().headers).is_some_and(|n| n <= BEFORE_THE_HEAD);
    let Some(mut body) = check.take_if(|_| small) else {
        return Ok(None);
    };
    // Kept whole, to be sent upstream once the digest matched.
    session.enable_retry_buffering();
    loop {
        let chunk = session.read_request_body().await?;
        let end = chunk.is_none() || session.is_body_done();
        match body.push(chunk.as_deref(), end) {
            Ok(None) => continue,
            Ok(Some(_)) => return Ok(None),
            Err(e) => return Ok(Some(e.into())),
        }
    }
}
