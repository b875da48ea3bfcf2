use super::*;

#[test]
fn only_refusals_go_on_unsigned_and_with_their_own_status() {
    let passed: Vec<u16> = (100..600)
        .filter(|&s| unsigned_refusal(s).is_some())
        .collect();
    assert_eq!(passed, [401, 403, 429, 503]);
    for status in passed {
        assert_eq!(unsigned_refusal(status).map(Kind::status), Some(status));
    }
}

/// A case: what it is, the status, the signature check, whether a
/// signature is required, the verdict.
type Case = (
    &'static str,
    u16,
    Result<&'static str, SignatureError>,
    bool,
    AnswerVerdict<&'static str>,
);

#[test]
fn verdicts() {
    use AnswerVerdict::*;
    let signed = || Ok::<_, SignatureError>("fields");
    let unsigned = || Err::<&str, _>(SignatureError::Unsigned);
    let bad = || Err::<&str, _>(SignatureError::BadSignature);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("signed", 200, signed(), true, PassOn { signed: Some("fields"), unverified: false }),
        ("signed refusal", 403, signed(), true, PassOn { signed: Some("fields"), unverified: false }),
        ("unsigned 200, required", 200, unsigned(), true, Unverified(SignatureError::Unsigned)),
        ("unsigned 403, required", 403, unsigned(), true, Refused(Kind::Forbidden)),
        ("unsigned 429, required", 429, unsigned(), true, Refused(Kind::TooManyRequests)),
        ("unsigned 404, required", 404, unsigned(), true, Unverified(SignatureError::Unsigned)),
        ("unsigned 500, required", 500, unsigned(), true, Unverified(SignatureError::Unsigned)),
        ("bad signature on a 401", 401, bad(), true, Unverified(SignatureError::BadSignature)),
        ("bad signature, not required", 200, bad(), false, PassOn { signed: None, unverified: true }),
        ("unsigned, not required", 403, unsigned(), false, PassOn { signed: None, unverified: true }),
        ("101 signed", 101, signed(), true, NoUpgradeAsked),
        ("103 unsigned, not required", 103, unsigned(), false, NoUpgradeAsked),
    ];
    for (what, status, verified, required, want) in cases {
        assert_eq!(judge(status, verified, required), want, "{what}");
    }
}
