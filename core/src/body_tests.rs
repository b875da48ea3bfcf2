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
