//! Bodies the proxy holds whole (docs/signing.md; docs/peering.md): a signed
//! request's body, held back until its `Content-Digest` is checked, and
//! the size limits of held bodies. Pure; the HTTPS shell feeds chunks to
//! [`BodyCheck::push`] from `request_body_filter`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

use super::signature::{ContentDigest, SignatureError};

/// A body over the limit of what the proxy holds in memory (413).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    #[error("a signed body is checked in memory, up to {0} bytes")]
    SignedBody(usize),
    #[error("a request to a peer is signed whole, up to {0} bytes")]
    PeerCall(usize),
}

/// Why a held body is not passed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The memory shared by all held bodies is in use (503, retry later).
    #[error("signed bodies in memory are at their limit of {0} bytes; retry later")]
    Busy(usize),
}

/// A request body slower than the minimum rate (408).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body arrived at {got} bytes/s, slower than the minimum of {min} (limits.min_body_bytes_per_second)")]
pub struct TooSlow {
    pub got: u64,
    pub min: u64,
}

/// The minimum rate of a request body (in the manner of Caddy's and
/// nginx's minimum rates): once `grace` has passed since its first byte,
/// a body must have averaged `min` bytes a second. A trickle under the
/// idle timeout can no longer hold a connection and an upstream socket
/// for hours; an upload at any usual rate is never cut. Pure: the times
/// come in as seconds since the body started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyRate {
    min: u64,
    grace: f64,
    bytes: u64,
}

impl BodyRate {
    /// `min` bytes a second after `grace` seconds; `min` 0 for none.
    pub fn new(min: u64, grace: f64) -> Self {
        BodyRate {
            min,
            grace,
            bytes: 0,
        }
    }

    /// `n` more bytes arrived `elapsed` seconds after the body started.
    pub fn push(&mut self, n: usize, elapsed: f64) -> Result<(), TooSlow> {
        self.bytes += n as u64;
        if self.min == 0 || elapsed <= self.grace {
            return Ok(());
        }
        let due = self.min as f64 * elapsed;
        if (self.bytes as f64) < due {
            return Err(TooSlow {
                got: (self.bytes as f64 / elapsed) as u64,
                min: self.min,
            });
        }
        Ok(())
    }
}

/// The memory all held signed bodies share (docs/signing.md), so that
/// stalled peers cannot pin memory connection by connection. Reserved as
/// chunks arrive, released when a body is passed on or dropped.
#[derive(Debug)]
pub struct HeldBudget {
    used: AtomicUsize,
    max: usize,
}

impl HeldBudget {
    pub fn new(max: usize) -> Self {
        HeldBudget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes held now, all bodies together.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The `Content-Length` a request declares, if it is a number.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// The body of a signed request, held until its digest is checked.
#[derive(Debug)]
pub struct BodyCheck {
    digest: ContentDigest,
    limit: usize,
    held: BytesMut,
    budget: Arc<HeldBudget>,
}

impl Drop for BodyCheck {
    fn drop(&mut self) {
        self.budget.release(self.held.len());
    }
}

impl BodyCheck {
    pub fn new(digest: ContentDigest, limit: usize, budget: Arc<HeldBudget>) -> Self {
        BodyCheck {
            digest,
            limit,
            held: BytesMut::new(),
            budget,
        }
    }

    /// Takes the next chunk. `Ok(None)` while the body is held; at the end
    /// of the stream, `Ok(Some(body))` when the digest matches, the whole
    /// body to pass on. A body over the limit or whose digest does not
    /// match is an error: none of it may reach the app.
    pub fn push(&mut self, chunk: Option<&[u8]>, end: bool) -> Result<Option<Bytes>, BodyError> {
        if let Some(chunk) = chunk {
            if self.held.len() + chunk.len() > self.limit {
                return Err(TooLarge::SignedBody(self.limit).into());
            }
            if !self.budget.reserve(chunk.len()) {
                return Err(BodyError::Busy(self.budget.max));
            }
            self.held.extend_from_slice(chunk);
        }
        if !end {
            return Ok(None);
        }
        let body = std::mem::take(&mut self.held).freeze();
        // Passed on (or refused): no longer held here.
        self.budget.release(body.len());
        if self.digest.matches(&body) {
            Ok(Some(body))
        } else {
            Err(SignatureError::DigestMismatch.into())
        }
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
