//! Bodies the proxy holds whole (DESIGN sections 5 and 7): a signed
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

/// The memory all held signed bodies share (DESIGN section 5), so that
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
    use crate::decision::signature::content_digest;

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
}
