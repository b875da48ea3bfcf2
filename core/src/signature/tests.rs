//! Tests of `signature`: the RFC 9421 ed25519 vector and the refusals.

use super::*;
use crate::test_support::headers;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey};

/// RFC 9421 Appendix B.1.4, `test-key-ed25519`.
const RFC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
";
const RFC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
";

#[test]
fn rfc9421_b26_ed25519_vector() {
    // RFC 9421 Appendix B.2: the test request, and B.2.6 its signature.
    let h = headers(&[
        ("host", "example.com"),
        ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("content-type", "application/json"),
        (
            "content-digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ),
        ("content-length", "18"),
        (
            "signature-input",
            "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
        ),
        (
            "signature",
            "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
        ),
    ]);
    let parts = RequestParts {
        method: "POST",
        authority: "example.com",
        path: "/foo",
        query: Some("param=Value&Pet=dog"),
        headers: &h,
        has_body: true,
    };
    let field = parse_field(&h, "sig-b26").unwrap().unwrap();
    let base = signature_base(&parts, &field.components, &field.input).unwrap();
    assert_eq!(
        base,
        "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\
         \"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \
         \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
    );
    let public = VerifyingKey::from_public_key_pem(RFC_PUBLIC).unwrap();
    public
        .verify_strict(base.as_bytes(), &Signature::from_bytes(&field.signature))
        .expect("the RFC's signature verifies");
    // Ed25519 is deterministic: signing the base reproduces the RFC's bytes.
    let private = SigningKey::from_pkcs8_pem(RFC_PRIVATE).unwrap();
    assert_eq!(private.sign(base.as_bytes()).to_bytes(), field.signature);
    // The body of the test request matches its Content-Digest.
    let digest = ContentDigest::from_headers(&h).unwrap();
    assert!(digest.matches(br#"{"hello": "world"}"#));
    assert!(!digest.matches(br#"{"hello": "World"}"#));
    // Another label is not the Portal profile's: no peer signature here.
    assert!(parse(&h).unwrap().is_none());
}

const NOW: i64 = 1_800_000_000;

struct Signed {
    key: SigningKey,
    keyid: String,
    headers: HeaderMap,
}

/// A request signed by a fresh key: `POST https://app.abcdef.example.org/p/a?x=1`
/// with a body when `body` is given.
fn signed(body: Option<&[u8]>, created: i64, expires: i64) -> Signed {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let keyid = crate::identity::portal_id(key.verifying_key().as_bytes());
    let mut h = HeaderMap::new();
    if let Some(body) = body {
        h.insert("content-digest", content_digest(body).parse().unwrap());
    }
    let sig = sign(
        &RequestParts {
            method: "POST",
            authority: "app.abcdef.example.org",
            path: "/p/a",
            query: Some("x=1"),
            headers: &h,
            has_body: body.is_some(),
        },
        &key,
        &SignParams {
            keyid: &keyid,
            created,
            expires,
            nonce: &nonce(rand::random()),
        },
    )
    .unwrap();
    h.insert("signature-input", sig.signature_input.parse().unwrap());
    h.insert("signature", sig.signature.parse().unwrap());
    Signed {
        key,
        keyid,
        headers: h,
    }
}

/// Verifies `s` as received with the given request parts.
fn check(
    s: &Signed,
    method: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
    has_body: bool,
) -> Result<(), SignatureError> {
    let parsed = parse(&s.headers)?.expect("a portal signature");
    let parts = RequestParts {
        method,
        authority,
        path,
        query,
        headers: &s.headers,
        has_body,
    };
    let public = s.key.verifying_key();
    verify(
        &parts,
        &parsed,
        |id| (id == s.keyid).then_some(public),
        NOW,
        Window::default(),
    )
}

fn ok(s: &Signed) -> Result<(), SignatureError> {
    check(
        s,
        "POST",
        "app.abcdef.example.org",
        "/p/a",
        Some("x=1"),
        s.headers.contains_key("content-digest"),
    )
}

#[test]
fn signer_and_verifier_agree() {
    ok(&signed(None, NOW, NOW + 60)).unwrap();
    let s = signed(Some(b"hello"), NOW, NOW + 60);
    ok(&s).unwrap();
    let digest = ContentDigest::from_headers(&s.headers).unwrap();
    assert!(digest.matches(b"hello"));
    assert!(!digest.matches(b"hellp"));
    let input = s.headers["signature-input"].to_str().unwrap();
    assert!(input.starts_with(
        "portal=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\");created="
    ));
    assert!(
        input.ends_with(&format!(
            ";alg=\"ed25519\";keyid=\"{}\";tag=\"portal\"",
            s.keyid
        )),
        "{input}"
    );
}

/// `s`'s signature as the member `label` of both fields, its parameters
/// as signed (`tag="portal"` among them).
fn member(s: &Signed, label: &str) -> (String, String) {
    let field = |name: &str| {
        let v = s.headers[name].to_str().unwrap();
        format!("{label}={}", v.strip_prefix("portal=").unwrap())
    };
    (field("signature-input"), field("signature"))
}

/// The request of [`signed`] as a sender of the profile before its tag
/// signed it: label `portal`, no `tag`.
fn untagged(s: &Signed) -> (String, String) {
    let input = s.headers["signature-input"].to_str().unwrap();
    let input = input.strip_suffix(";tag=\"portal\"").unwrap();
    let inner = input.strip_prefix("portal=").unwrap();
    let list = match sfv::Parser::new(inner)
        .parse::<sfv::List>()
        .unwrap()
        .remove(0)
    {
        ListEntry::InnerList(l) => l,
        ListEntry::Item(_) => unreachable!(),
    };
    let components: Vec<String> = REQUIRED.iter().map(|c| c.to_string()).collect();
    let parts = RequestParts {
        method: "POST",
        authority: "app.abcdef.example.org",
        path: "/p/a",
        query: Some("x=1"),
        headers: &s.headers,
        has_body: false,
    };
    let base = signature_base(&parts, &components, &list).unwrap();
    let sig = s.key.sign(base.as_bytes());
    (
        input.to_string(),
        format!(
            "portal=:{}:",
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
        ),
    )
}

/// RFC 9421 section 7.2.5: the verifier selects the signature by its
/// `tag`, whatever the label; a sender without the tag is still read by
/// label; a signature tagged for another application is not ours.
#[test]
fn the_signature_is_selected_by_its_tag() {
    let s = signed(None, NOW, NOW + 60);
    let (sig1_input, sig1) = member(&s, "sig1");
    let (legacy_input, legacy) = untagged(&s);
    let bad = format!(
        "=:{}:",
        base64::engine::general_purpose::STANDARD.encode([0u8; 64])
    );
    let other_tag = "(\"@method\");created=1;tag=\"other-app\"";
    // (Signature-Input, Signature, the label selected or the outcome)
    let cases: Vec<(String, String, &str)> = vec![
        // As signed.
        (member(&s, "portal").0, member(&s, "portal").1, "portal"),
        // Any label, the tag selects it.
        (sig1_input.clone(), sig1.clone(), "sig1"),
        // Beside an untagged `portal` member that does not verify: the
        // tagged one counts.
        (
            format!("portal=(\"@method\");created=1, {sig1_input}"),
            format!("portal{bad}, {sig1}"),
            "sig1",
        ),
        // Beside a member of another application.
        (
            format!("app={other_tag}, {sig1_input}"),
            format!("app{bad}, {sig1}"),
            "sig1",
        ),
        // A sender without the tag: read by the label `portal`.
        (legacy_input.clone(), legacy.clone(), "portal"),
        // Two members tagged `portal`: which one counts would be a guess.
        (
            format!("{sig1_input}, {}", member(&s, "sig2").0),
            format!("{sig1}, {}", member(&s, "sig2").1),
            "malformed",
        ),
        // Labelled `portal` but tagged for another application: not ours,
        // the caller is anonymous.
        (
            format!("portal={other_tag}"),
            format!("portal{bad}"),
            "none",
        ),
        // Only other labels, untagged: not ours.
        (
            "sig1=(\"@method\");created=1".to_string(),
            format!("sig1{bad}"),
            "none",
        ),
    ];
    for (input, signature, want) in cases {
        let mut h = s.headers.clone();
        h.insert("signature-input", input.parse().unwrap());
        h.insert("signature", signature.parse().unwrap());
        let got = match parse(&h) {
            Ok(Some(parsed)) => {
                let t = Signed {
                    key: s.key.clone(),
                    keyid: s.keyid.clone(),
                    headers: h.clone(),
                };
                ok(&t).unwrap_or_else(|e| panic!("{input}: selected {} but {e}", parsed.label));
                parsed.label
            }
            Ok(None) => "none".into(),
            Err(e) => e.reason().as_str().into(),
        };
        assert_eq!(got, want, "{input}");
    }
}

#[test]
fn time_window() {
    let reason =
        |created, expires| ok(&signed(None, created, expires)).map_err(|e| e.reason().as_str());
    assert_eq!(reason(NOW - 10, NOW + 10), Ok(()));
    assert_eq!(reason(NOW + 5, NOW + 60), Ok(()), "5 s of skew allowed");
    assert_eq!(reason(NOW + 6, NOW + 60), Err("not_yet_valid"));
    assert_eq!(reason(NOW - 60, NOW - 5), Ok(()), "5 s of skew allowed");
    assert_eq!(reason(NOW - 60, NOW - 6), Err("expired"));
    assert_eq!(reason(NOW, NOW + 300), Ok(()));
    assert_eq!(
        reason(NOW, NOW + 301),
        Err("malformed"),
        "too long a validity"
    );
    assert_eq!(
        reason(NOW, NOW - 1),
        Err("malformed"),
        "expires before created"
    );
}

#[test]
fn tampering_is_a_bad_signature() {
    let s = signed(Some(b"body"), NOW, NOW + 60);
    let cases = [
        (
            "method",
            check(
                &s,
                "PUT",
                "app.abcdef.example.org",
                "/p/a",
                Some("x=1"),
                true,
            ),
        ),
        (
            "host",
            check(
                &s,
                "POST",
                "other.abcdef.example.org",
                "/p/a",
                Some("x=1"),
                true,
            ),
        ),
        (
            "path",
            check(
                &s,
                "POST",
                "app.abcdef.example.org",
                "/p/b",
                Some("x=1"),
                true,
            ),
        ),
        (
            "path encoding",
            check(
                &s,
                "POST",
                "app.abcdef.example.org",
                "/p/%61",
                Some("x=1"),
                true,
            ),
        ),
        (
            "query",
            check(
                &s,
                "POST",
                "app.abcdef.example.org",
                "/p/a",
                Some("x=2"),
                true,
            ),
        ),
        (
            "no query",
            check(&s, "POST", "app.abcdef.example.org", "/p/a", None, true),
        ),
    ];
    for (what, result) in cases {
        assert_eq!(
            result.map_err(|e| e.reason().as_str()),
            Err("bad_signature"),
            "{what}"
        );
    }
    // The body is bound through Content-Digest: changing the header breaks
    // the signature, changing the body breaks the digest.
    let mut t = signed(Some(b"body"), NOW, NOW + 60);
    t.headers
        .insert("content-digest", content_digest(b"other").parse().unwrap());
    assert_eq!(
        ok(&t).map_err(|e| e.reason().as_str()),
        Err("bad_signature")
    );
    let digest = ContentDigest::from_headers(&s.headers).unwrap();
    assert!(!digest.matches(b"bodx"));
    // A flipped signature bit.
    let mut t = signed(None, NOW, NOW + 60);
    let sig = t.headers["signature"].to_str().unwrap().to_string();
    // The first base64 character, after `portal=:`, and only that one.
    let other = if &sig[8..9] == "A" { "B" } else { "A" };
    let flipped = format!("{}{other}{}", &sig[..8], &sig[9..]);
    t.headers.insert("signature", flipped.parse().unwrap());
    assert_eq!(
        ok(&t).map_err(|e| e.reason().as_str()),
        Err("bad_signature")
    );
}

#[test]
fn unknown_peer_and_another_peers_key() {
    let s = signed(None, NOW, NOW + 60);
    let parsed = parse(&s.headers).unwrap().unwrap();
    let parts = RequestParts {
        method: "POST",
        authority: "app.abcdef.example.org",
        path: "/p/a",
        query: Some("x=1"),
        headers: &s.headers,
        has_body: false,
    };
    let err = verify(&parts, &parsed, |_| None, NOW, Window::default()).unwrap_err();
    assert_eq!(err.reason().as_str(), "unknown_peer");
    // keyid names a known peer, but the signature is by another key.
    let other = SigningKey::generate(&mut rand::rngs::OsRng).verifying_key();
    let err = verify(&parts, &parsed, |_| Some(other), NOW, Window::default()).unwrap_err();
    assert_eq!(err.reason().as_str(), "bad_signature");
}

/// Replaces the `portal` Signature-Input with `input` (signature unchanged).
fn with_input(s: &Signed, input: &str) -> Result<(), SignatureError> {
    let mut h = s.headers.clone();
    h.insert("signature-input", input.parse().unwrap());
    let t = Signed {
        key: s.key.clone(),
        keyid: s.keyid.clone(),
        headers: h,
    };
    ok(&t)
}

#[test]
fn refusals_by_reason() {
    let s = signed(None, NOW, NOW + 60);
    let params = format!(
        "created={NOW};expires={};nonce=\"n\";keyid=\"{}\"",
        NOW + 60,
        s.keyid
    );
    let all = "\"@method\" \"@authority\" \"@path\" \"@query\"";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("portal=(\"@authority\" \"@path\" \"@query\");{params}"),
            "missing_component",
        ),
        (
            format!("portal=(\"@method\" \"@path\" \"@query\");{params}"),
            "missing_component",
        ),
        (
            format!("portal=(\"@method\" \"@authority\" \"@query\");{params}"),
            "missing_component",
        ),
        (
            format!("portal=(\"@method\" \"@authority\" \"@path\");{params}"),
            "missing_component",
        ),
        (
            format!("portal=({all} \"x-absent\");{params}"),
            "missing_component",
        ),
        (
            format!(
                "portal=({all});created={NOW};nonce=\"n\";keyid=\"{}\"",
                s.keyid
            ),
            "malformed",
        ),
        (
            format!(
                "portal=({all});expires={NOW};nonce=\"n\";keyid=\"{}\"",
                s.keyid
            ),
            "malformed",
        ),
        (
            format!(
                "portal=({all});created={NOW};expires={NOW};keyid=\"{}\"",
                s.keyid
            ),
            "malformed",
        ),
        (
            format!("portal=({all});created={NOW};expires={NOW};nonce=\"n\""),
            "malformed",
        ),
        (
            format!("portal=({all});{params};alg=\"rsa-pss-sha512\""),
            "malformed",
        ),
        (
            format!("portal=({all});created=\"{NOW}\";expires={NOW};nonce=\"n\";keyid=\"k\""),
            "malformed",
        ),
        (format!("portal=({all} \"@method\");{params}"), "malformed"),
        (format!("portal=({all} \"@status\");{params}"), "malformed"),
        (format!("portal=({all} \"date\";sf);{params}"), "malformed"),
        (format!("portal=({all} \"X-Upper\");{params}"), "malformed"),
        ("portal=\"not a list\"".to_string(), "malformed"),
    ];
    for (input, reason) in cases {
        assert_eq!(
            with_input(&s, &input).map_err(|e| e.reason().as_str()),
            Err(reason),
            "{input}"
        );
    }
    // A body without content-digest coverage.
    assert_eq!(
        check(
            &s,
            "POST",
            "app.abcdef.example.org",
            "/p/a",
            Some("x=1"),
            true
        )
        .map_err(|e| e.reason().as_str()),
        Err("missing_component")
    );
    // One of the two fields without the label.
    let mut h = s.headers.clone();
    h.insert("signature", "other=:AAAA:".parse().unwrap());
    assert_eq!(
        parse(&h).map_err(|e| e.reason().as_str()).err(),
        Some("malformed")
    );
    let mut h = s.headers.clone();
    h.insert("signature", "portal=:AAAA:".parse().unwrap());
    assert_eq!(
        parse(&h).map_err(|e| e.reason().as_str()).err(),
        Some("malformed"),
        "short signature"
    );
}

#[test]
fn other_labels_are_ignored() {
    let s = signed(None, NOW, NOW + 60);
    let mut h = s.headers.clone();
    // A second, unrelated signature beside ours.
    h.append(
        "signature-input",
        "other=(\"@method\");created=1".parse().unwrap(),
    );
    h.append("signature", "other=:AAAA:".parse().unwrap());
    let t = Signed {
        key: s.key.clone(),
        keyid: s.keyid.clone(),
        headers: h,
    };
    ok(&t).unwrap();
    // Only another label: not a peer request at all.
    let only_other = headers(&[
        ("signature-input", "sig1=(\"@method\");created=1"),
        ("signature", "sig1=:AAAA:"),
    ]);
    assert!(parse(&only_other).unwrap().is_none());
}

/// Only a signature that claims to be a Portal's (the `portal` tag, or
/// the untagged `portal` label) is ours to verify or refuse; every other
/// is the application's, passed on untouched (docs/access.md).
#[test]
fn only_a_claim_of_ours_is_ours() {
    let cavage = "keyId=\"https://social.example/users/alice#main-key\",algorithm=\"rsa-sha256\",headers=\"(request-target) host date digest\",signature=\"c2ln\"";
    let bot =
        "sig1=(\"@authority\" \"signature-agent\");created=1;keyid=\"k\";tag=\"web-bot-auth\"";
    let ours = "sig=(\"@method\");created=1;tag=\"portal\"";
    // (Signature-Input, Signature, claims to be ours)
    #[rustfmt::skip]
    let cases: &[(Option<&str>, Option<&str>, bool)] = &[
        (None, None, false),
        // ActivityPub deliveries: draft-cavage, no Signature-Input.
        (None, Some(cavage), false),
        (None, Some("keyId=\"k\",signature=\"x\""), false),
        // A Signature alone, even with a `portal` member.
        (None, Some("portal=:AAAA:"), false),
        // Other applications' RFC 9421 members.
        (Some(bot), Some("sig1=:AAAA:"), false),
        (Some(bot), Some(cavage), false),
        (Some("sig1=(\"@method\");created=1"), Some("sig1=:AAAA:"), false),
        (Some("portal=(\"@method\");created=1;tag=\"other-app\""), Some("portal=:AAAA:"), false),
        // Signature-Input not a dictionary: it claims nothing.
        (Some("portal=("), Some("portal=:AAAA:"), false),
        (Some("keyId=\"k\""), Some(cavage), false),
        // Claims of ours, broken: refused.
        (Some("portal=(\"@method\");created=1"), None, true),
        (Some("portal=(\"@method\");created=1"), Some(cavage), true),
        (Some(ours), Some("sig1=:AAAA:"), true),
        (Some(&format!("{ours}, b={}", &ours[4..])), Some("sig=:AAAA:"), true),
        (Some(&format!("{bot}, {ours}")), Some("sig1=:AAAA:, sig=:AAAA:"), true),
    ];
    for &(input, signature, claimed) in cases {
        let mut h = HeaderMap::new();
        if let Some(v) = input {
            h.insert("signature-input", v.parse().unwrap());
        }
        if let Some(v) = signature {
            h.insert("signature", v.parse().unwrap());
        }
        match parse(&h) {
            Ok(None) => assert!(!claimed, "{input:?} {signature:?}: not ours"),
            Ok(Some(_)) => panic!("{input:?} {signature:?}: parsed"),
            Err(e) => assert!(claimed, "{input:?} {signature:?}: refused: {e}"),
        }
    }
}

proptest::proptest! {
    /// Any `Signature` field without a `Signature-Input`, and any
    /// `Signature-Input` whose members neither carry `tag="portal"` nor
    /// are labelled `portal`, is not ours, whatever else they hold.
    #[test]
    fn no_claim_no_refusal(
        signature in "[ -~]{0,80}",
        label in "[a-z][a-z0-9]{0,8}",
        tag in proptest::option::of("[a-z-]{1,12}"),
        with_input in proptest::bool::ANY,
    ) {
        proptest::prop_assume!(label != "portal" && tag.as_deref() != Some("portal"));
        let mut h = HeaderMap::new();
        if let Ok(v) = signature.parse() {
            h.insert("signature", v);
        }
        if with_input {
            let tag = tag.map(|t| format!(";tag=\"{t}\"")).unwrap_or_default();
            h.insert("signature-input", format!("{label}=(\"@method\");created=1{tag}").parse().unwrap());
        }
        proptest::prop_assert!(matches!(parse(&h), Ok(None)), "{:?}", h);
    }
}

#[test]
fn content_digest_parsing() {
    let h = headers(&[(
        "content-digest",
        "sha-256=:AAAA:, sha-512=:AAAA:, md5=:AAAA:",
    )]);
    let d = ContentDigest::from_headers(&h).unwrap();
    assert!(d.sha256.is_some() && d.sha512.is_some());
    for bad in ["md5=:AAAA:", "sha-256=\"x\"", "sha-256=(1)", "%%%"] {
        let h = headers(&[("content-digest", bad)]);
        assert_eq!(
            ContentDigest::from_headers(&h)
                .map_err(|e| e.reason().as_str())
                .err(),
            Some("malformed"),
            "{bad}"
        );
    }
    assert_eq!(
        ContentDigest::from_headers(&HeaderMap::new())
            .map_err(|e| e.reason().as_str())
            .err(),
        Some("missing_component")
    );
    assert_eq!(authority("App.Example.org:443"), "app.example.org");
    assert_eq!(authority("app.example.org:8443"), "app.example.org:8443");
}
