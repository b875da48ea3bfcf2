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
mod tests {
    use super::*;
    use crate::signature::content_digest;

    fn check_in(body: &[u8], limit: usize, budget: &Arc<HeldBudget>) -> BodyCheck {
        let mut h = HeaderMap::new();
        h.insert("content-digest", content_digest(body).parse().unwrap());
        BodyCheck::new(
            ContentDigest::from_headers(&h).unwrap(),
            limit,
            budget.clone(),
        )
    }

    fn check(body: &[u8], limit: usize) -> BodyCheck {
        check_in(body, limit, &Arc::new(HeldBudget::new(1 << 20)))
    }

    #[test]
    fn held_until_the_digest_matches() {
        let mut c = check(b"hello world", 100);
        assert_eq!(c.push(Some(b"hello "), false), Ok(None));
        assert_eq!(c.push(Some(b"world"), false), Ok(None));
        assert_eq!(
            c.push(None, true),
            Ok(Some(Bytes::from_static(b"hello world")))
        );
    }

    #[test]
    fn a_changed_body_is_never_passed_on() {
        for chunks in [
            &[&b"hello"[..], b" worle"][..],
            &[b"hello world!"],
            &[b""],
            &[b"hello", b" world", b"x"],
        ] {
            let mut c = check(b"hello world", 100);
            let mut out = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                out.push(c.push(Some(chunk), i + 1 == chunks.len()));
            }
            assert!(
                out[..out.len() - 1].iter().all(|r| *r == Ok(None)),
                "{chunks:?}"
            );
            assert_eq!(
                out.last().unwrap(),
                &Err(BodyError::Signature(SignatureError::DigestMismatch)),
                "{chunks:?}"
            );
        }
    }

    #[test]
    fn over_the_limit() {
        let mut c = check(b"0123456789", 9);
        assert_eq!(c.push(Some(b"01234"), false), Ok(None));
        assert_eq!(
            c.push(Some(b"56789"), false),
            Err(BodyError::TooLarge(TooLarge::SignedBody(9)))
        );
        assert_eq!(
            declared_length(&{
                let mut h = HeaderMap::new();
                h.insert("content-length", "12".parse().unwrap());
                h
            }),
            Some(12)
        );
    }

    #[test]
    fn held_bodies_share_one_budget() {
        let budget = Arc::new(HeldBudget::new(10));
        let mut a = check_in(b"0123456", 100, &budget);
        let mut b = check_in(b"0123456", 100, &budget);
        assert_eq!(a.push(Some(b"012345"), false), Ok(None));
        assert_eq!(budget.used(), 6);
        // A second stalled body would go over: refused, retry later.
        assert_eq!(b.push(Some(b"01234"), false), Err(BodyError::Busy(10)));
        assert_eq!(b.push(Some(b"0123"), false), Ok(None));
        assert_eq!(budget.used(), 10);
        // Passed on or dropped: the memory is free again.
        assert!(a.push(Some(b"6"), true).is_err(), "over the budget");
        drop(a);
        assert_eq!(budget.used(), 4);
        assert_eq!(
            b.push(Some(b"456"), true).unwrap().as_deref(),
            Some(&b"0123456"[..])
        );
        assert_eq!(budget.used(), 0);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn body_rates() {
        // 1,024 bytes/s after 10 s.
        let rate = || BodyRate::new(1024, 10.0);
        let mut r = rate();
        assert!(r.push(1, 0.0).is_ok());
        assert!(r.push(1, 9.9).is_ok(), "within the grace");
        assert_eq!(r.push(1, 10.5), Err(TooSlow { got: 0, min: 1024 }));
        let mut r = rate();
        assert!(r.push(11 * 1024, 10.5).is_ok());
        assert!(r.push(0, 11.0).is_ok());
        assert!(r.push(0, 11.5).is_err(), "the average fell under");
        let mut none = BodyRate::new(0, 0.0);
        assert!(none.push(0, 1e9).is_ok());
    }

    proptest::proptest! {
        /// Chunks at any steady rate at or above the minimum are never
        /// cut; under it, the body is cut with the first chunk after the
        /// grace.
        #[test]
        fn steady_rates(rate in 1u64..100_000, chunk in 1usize..65_536, min in 1u64..10_000) {
            let mut r = BodyRate::new(min, 10.0);
            let mut cut = None;
            for i in 1..200 {
                let elapsed = (i * chunk) as f64 / rate as f64;
                if r.push(chunk, elapsed).is_err() {
                    cut = Some(elapsed);
                    break;
                }
            }
            if rate >= min {
                proptest::prop_assert_eq!(cut, None);
            } else {
                if let Some(at) = cut {
                    proptest::prop_assert!(at > 10.0);
                }
                // Under the minimum from the first byte: cut with the
                // first chunk after the grace, if one came.
                let after_grace = (1..200)
                    .map(|i| (i * chunk) as f64 / rate as f64)
                    .find(|&e| e > 10.0);
                proptest::prop_assert_eq!(cut, after_grace);
            }
        }
    }
}
