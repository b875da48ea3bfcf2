use super::*;
use crate::caller::tests::{terminals, NOW, SECRET};
use jsonwebtoken::{encode, EncodingKey, Header};

fn token(sub: &str, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        &serde_json::json!({ "sub": sub }),
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}

/// Header fields as sent: name, raw value.
type Headers = Vec<(&'static str, Vec<u8>)>;

fn found(terminal_cookie: bool, terminal_authorization: &[usize]) -> Credentials {
    Credentials {
        terminal_cookie,
        terminal_authorization: terminal_authorization.to_vec(),
        terminal_expires: None,
        unproved: None,
    }
}

/// What `read` found, but why a token proved nothing (tested apart).
fn read(h: &HeaderMap, identify: bool) -> (Credentials, Option<Caller>) {
    let (mut found, caller) = Credentials::read(h, &terminals(), NOW, identify);
    found.unproved = None;
    (found, caller)
}

#[test]
fn what_is_found_and_who_it_proves() {
    let ours = token("t1", SECRET);
    let revoked = token("gone", SECRET);
    let foreign = token("t1", b"the app's own secret");
    let laptop = Some(Caller::Terminal {
        id: "t1".into(),
        name: "Laptop".into(),
    });
    let cookie = |t: &str| format!("theme=dark; authorization={t}").into_bytes();
    let bearer = |t: &str| format!("Bearer {t}").into_bytes();
    let b = |s: String| s.into_bytes();
    let raw = |parts: &[&[u8]]| parts.concat();
    #[rustfmt::skip]
    let cases: Vec<(&str, Headers, Credentials, Option<Caller>)> = vec![
        ("nothing", vec![], found(false, &[]), None),
        ("terminal cookie", vec![("cookie", cookie(&ours))], found(true, &[]), laptop.clone()),
        // Any `authorization` cookie is stripped, valid or not.
        ("revoked cookie", vec![("cookie", cookie(&revoked))], found(true, &[]), None),
        ("cookie name in capitals", vec![("cookie", b(format!("AUTHORIZATION={ours}")))], found(true, &[]), laptop.clone()),
        ("cookie after a comma", vec![("cookie", b(format!("a=1, authorization=\"{ours}\"")))], found(true, &[]), laptop.clone()),
        ("cookie named alike", vec![("cookie", b(format!("authorizationx={ours}")))], found(false, &[]), None),
        ("terminal bearer", vec![("authorization", bearer(&ours))], found(false, &[0]), laptop.clone()),
        // Signed with the secret: a credential even when revoked.
        ("revoked bearer", vec![("authorization", bearer(&revoked))], found(false, &[0]), None),
        ("scheme in lower case, tab", vec![("authorization", b(format!("bearer\t {ours} ")))], found(false, &[0]), laptop.clone()),
        ("another scheme", vec![("authorization", b(format!("Token {ours}")))], found(false, &[0]), None),
        ("no scheme", vec![("authorization", b(ours.clone()))], found(false, &[0]), None),
        ("glued to its scheme", vec![("authorization", b(format!("Bearer={ours}")))], found(false, &[0]), None),
        ("in quotes, after a comma", vec![("authorization", b(format!("Token x=1,t=\"{ours}\"")))], found(false, &[0]), None),
        ("the app's own bearer token", vec![("authorization", bearer(&foreign))], found(false, &[]), None),
        ("basic auth", vec![("authorization", b"Basic dXNlcjpwYXNz".to_vec())], found(false, &[]), None),
        (
            "the token in a second Authorization header",
            vec![("authorization", b"Basic dXNlcjpwYXNz".to_vec()), ("authorization", bearer(&ours))],
            found(false, &[1]),
            None,
        ),
        (
            "a bad cookie first, the bearer proves",
            vec![("cookie", cookie(&revoked)), ("authorization", bearer(&ours))],
            found(true, &[0]),
            laptop.clone(),
        ),
        (
            "second cookie header proves",
            vec![("cookie", b"a=1".to_vec()), ("cookie", cookie(&ours))],
            found(true, &[]),
            laptop.clone(),
        ),
        // Cookies in any bytes are the app's, and hide nothing.
        ("a cookie in Latin-1", vec![("cookie", b"a=\xe9t\xe9".to_vec())], found(false, &[]), None),
        ("the token beside a Latin-1 cookie", vec![("cookie", raw(&[b"name=Jos\xe9; authorization=", ours.as_bytes()]))], found(true, &[]), laptop.clone()),
        ("the token beside UTF-8 and an emoji", vec![("cookie", raw(&["name=José; fav=🍪; authorization=".as_bytes(), ours.as_bytes(), b"; z=\xff"]))], found(true, &[]), laptop.clone()),
        ("the token not text", vec![("cookie", b"authorization=\xe9\xe9".to_vec())], found(true, &[]), None),
    ];
    for (what, pairs, want, who) in cases {
        let pairs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (*k, &v[..])).collect();
        let h = headers(&pairs);
        assert_eq!(read(&h, true), (want.clone(), who), "{what}");
        // A peer's request: the same stripping, nobody identified.
        assert_eq!(read(&h, false), (want, None), "{what} (peer)");
    }
}

/// `token` with its signature respelled by `f` (header and payload,
/// which the HMAC covers, as they are).
fn respelled(token: &str, f: impl Fn(&str) -> String) -> String {
    let (message, signature) = token.rsplit_once('.').unwrap();
    format!("{message}.{}", f(signature))
}

/// A token of the secret whose signature holds both `-` and `_`, so
/// that the standard alphabet spells it otherwise.
fn token_with_both_alphabets() -> String {
    (0..)
        .map(|n| {
            encode(
                &Header::default(),
                &serde_json::json!({ "sub": "t1", "n": n }),
                &EncodingKey::from_secret(SECRET),
            )
            .unwrap()
        })
        .find(|t| {
            let sig = t.rsplit('.').next().unwrap();
            sig.contains('-') && sig.contains('_')
        })
        .unwrap()
}

/// Every spelling of a terminal token that a common JWT library
/// (PyJWT, Node's `jose`) accepts as the same token, in any bytes
/// around it, is removed; only the token as issued, after `Bearer`,
/// identifies.
#[test]
fn every_spelling_and_byte_around_a_token_is_removed() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let ours = token_with_both_alphabets();
    let foreign = token("t1", b"the app's own secret");
    let laptop = Some(Caller::Terminal {
        id: "t1".into(),
        name: "Laptop".into(),
    });
    let trailing_bits = respelled(&ours, |sig| {
        let last = ALPHABET
            .iter()
            .position(|&c| c == *sig.as_bytes().last().unwrap())
            .unwrap();
        format!("{}{}", &sig[..42], ALPHABET[last + 1] as char)
    });
    let standard = respelled(&ours, |sig| sig.replace('-', "+").replace('_', "/"));
    let split = |sep: &str| respelled(&ours, |sig| format!("{}{sep}{}", &sig[..20], &sig[20..]));
    let b = |s: String| s.into_bytes();
    let raw = |parts: &[&[u8]]| parts.concat();
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, Option<Caller>)> = vec![
        ("as issued", b(format!("Bearer {ours}")), laptop.clone()),
        ("padded", b(format!("Bearer {ours}=")), None),
        ("padded twice", b(format!("Bearer {ours}==")), None),
        ("padded, then anything", b(format!("Bearer {ours}=AAAA")), None),
        ("padding inside the signature", b(format!("Bearer {}", split("=="))), None),
        ("standard alphabet", b(format!("Bearer {standard}")), None),
        ("non-zero trailing bits", b(format!("Bearer {trailing_bits}")), None),
        ("a space inside the signature", b(format!("Bearer {}", split(" "))), None),
        ("a '!' inside the signature", b(format!("Bearer {}", split("!"))), None),
        ("a '%' inside the signature", b(format!("Bearer {}", split("%"))), None),
        ("junk after", b(format!("Bearer {ours}!!")), None),
        ("a quote after", b(format!("Bearer {ours}\"")), None),
        ("scheme glued, cut by the app", b(format!("BearerX{ours}")), None),
        ("non-UTF-8 before the scheme", raw(&[b"\xff", b"Bearer ", ours.as_bytes()]), None),
        ("non-UTF-8 after the token", raw(&[b"Bearer ", ours.as_bytes(), b" \xfe"]), None),
        ("non-UTF-8 between scheme and token", raw(&[b"Bearer\x80", ours.as_bytes()]), None),
        ("non-UTF-8 inside the signature", raw(&[b"Bearer ", &ours.as_bytes()[..ours.len() - 20], b"\xe9", &ours.as_bytes()[ours.len() - 20..]]), None),
    ];
    for (what, value, who) in cases {
        let h = headers(&[("authorization", &value)]);
        assert_eq!(
            read(&h, true),
            (found(false, &[0]), who),
            "{what}: {:?}",
            String::from_utf8_lossy(&value)
        );
    }
    // Empty header or claims, signed with the secret: credentials too
    // (found by the fuzz target `terminal_token`).
    for (header, claims) in [("", ""), ("", "e30"), ("e30", "")] {
        use base64::Engine as _;
        let message = format!("{header}.{claims}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
        let tag = ring::hmac::sign(&key, message.as_bytes());
        let token = format!(
            "{message}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        );
        assert!(terminals().is_credential(&token), "{token}");
        for value in [
            format!("Bearer {token}"),
            token.clone(),
            format!("x={token}"),
        ] {
            assert!(terminals().holds_credential(value.as_bytes()), "{value}");
        }
    }
    // What no library takes as the token is the app's own.
    for value in [
        format!("Bearer {foreign}"),
        respelled(&ours, |sig| format!("Bearer {}", &sig[..42])),
        respelled(&ours, |sig| format!("Bearer {}.{}", &sig[..20], &sig[20..])),
        format!("Bearer {}", ours.replacen('.', "=.", 1)),
    ] {
        let h = headers(&[("authorization", value.as_bytes())]);
        assert_eq!(read(&h, true), (found(false, &[]), None), "{value}");
    }
}

/// Why a token proved nothing: a JWT the secret did not sign is
/// forged; a token signed with it but expired or of a removed terminal
/// is stale; an empty or other value (a logout's `authorization=`)
/// is nothing; a valid token anywhere clears them.
#[test]
fn why_a_token_proved_nothing() {
    let ours = token("t1", SECRET);
    let gone = token("gone", SECRET);
    let foreign = token("t1", b"another secret");
    #[rustfmt::skip]
    let cases: Vec<(String, Option<Unproved>)> = vec![
        (format!("authorization={foreign}"), Some(Unproved::Forged)),
        (format!("authorization={ours}x"), Some(Unproved::Forged)),
        (format!("authorization={gone}"), Some(Unproved::Stale)),
        (format!("authorization={gone}; authorization={foreign}"), Some(Unproved::Forged)),
        (format!("authorization={foreign}; authorization={ours}"), None),
        ("authorization=".to_string(), None),
        ("authorization=deleted".to_string(), None),
        ("authorization=a.b".to_string(), None),
        ("authorization=a..c".to_string(), None),
        ("theme=dark".to_string(), None),
    ];
    for (cookie, want) in cases {
        let h = headers(&[("cookie", cookie.as_bytes())]);
        let (found, _) = Credentials::read(&h, &terminals(), NOW, true);
        assert_eq!(found.unproved, want, "{cookie}");
    }
}

#[test]
fn bearer_and_cookies() {
    assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
    assert_eq!(bearer_token(b"bearer  abc "), Some("abc"));
    assert_eq!(bearer_token(b"BEARER\tabc"), Some("abc"));
    assert_eq!(bearer_token(b"Basic abc"), None);
    assert_eq!(bearer_token(b"Bearer "), None);
    let header = "theme=dark; authorization=tok1; x=1; Authorization=\"tok2\"";
    assert_eq!(
        cookie_values(header.as_bytes(), "authorization").collect::<Vec<_>>(),
        [&b"tok1"[..], b"tok2"]
    );
    let cases = [
        (header, Some("theme=dark; x=1")),
        ("authorization=t", None),
        ("authorizationx=t", Some("authorizationx=t")),
        ("a=1, AuThOrIzAtIoN=t, b=2", Some("a=1, b=2")),
        // Values with commas that are no separators are kept as written.
        (
            "prefs={\"a\":1,\"b\":2}; authorization=t",
            Some("prefs={\"a\":1,\"b\":2}"),
        ),
    ];
    for (header, want) in cases {
        assert_eq!(
            remove_cookie(header.as_bytes(), "authorization").as_deref(),
            want.map(str::as_bytes),
            "{header}"
        );
    }
}

/// Bytes a browser may send in a cookie's name or value: any a header
/// value may hold but the pair separators and `=` (which makes a new
/// pair or a new value: a test of its own above).
fn other_cookie_bytes() -> Vec<u8> {
    (0x20u8..=0xff)
        .filter(|b| !matches!(b, b';' | b',' | b'=' | 0x7f))
        .chain([b'\t'])
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// Whatever the pairs and separators, no `authorization` cookie
    /// (any case) survives removal, and every other pair does.
    #[test]
    fn no_authorization_cookie_survives(
        pairs in proptest::collection::vec(
            (
                proptest::sample::select(vec!["a", "authorization", "Authorization", "AUTHORIZATION", "authorizationx", "x-authorization", " authorization "]),
                "[a-zA-Z0-9._=-]{0,12}",
            ),
            0..8,
        ),
        seps in proptest::collection::vec(proptest::sample::select(vec!["; ", ";", ", ", ","]), 8),
    ) {
        let header: String = pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| format!("{}{k}={v}", if i == 0 { "" } else { seps[i] }))
            .collect();
        let out = remove_cookie(header.as_bytes(), "authorization");
        let left = String::from_utf8(out.unwrap_or_default()).unwrap();
        proptest::prop_assert_eq!(cookie_values(left.as_bytes(), "authorization").count(), 0, "{:?} -> {:?}", header, left);
        for (k, v) in &pairs {
            if !k.trim().eq_ignore_ascii_case("authorization") {
                proptest::prop_assert!(left.contains(&format!("{k}={v}")), "{:?} lost {}={}", header, k, v);
            }
        }
    }

    /// The pairs found by `memchr` are those of `split([';', ','])`,
    /// empty ones included, in any text (multi-byte characters too).
    #[test]
    fn cookie_pairs_are_split_pairs(header in proptest::collection::vec(proptest::sample::select(b"a;,= \xe9\xff\"".to_vec()), 0..24)) {
        let want: Vec<&[u8]> = header.split(|&b| b == b';' || b == b',').collect();
        proptest::prop_assert_eq!(cookie_pairs(&header).collect::<Vec<_>>(), want);
    }

    /// The owner's valid token among any other cookies, in any bytes a
    /// header value may hold (Latin-1, UTF-8, emoji, quotes, other
    /// `authorization` pairs), in any order, in one `Cookie` header or
    /// split over several (HTTP/2 sends one field a pair), proves the
    /// owner; and removal keeps every other pair byte for byte.
    #[test]
    fn the_owner_is_found_among_any_cookies(
        others in proptest::collection::vec(
            (
                proptest::collection::vec(proptest::sample::select(other_cookie_bytes()), 0..10),
                proptest::collection::vec(proptest::sample::select(other_cookie_bytes()), 0..16),
            ),
            0..8,
        ),
        at in 0usize..8,
        split in proptest::collection::vec(proptest::bool::ANY, 9),
        quoted in proptest::bool::ANY,
    ) {
        let ours = token("t1", SECRET);
        let ours = if quoted { format!("\"{ours}\"") } else { ours };
        let mut pairs: Vec<Vec<u8>> = others
            .iter()
            // Not an `authorization` cookie: any other (a bad one
            // first would still leave the valid one to prove).
            .filter(|(name, _)| !is_named(name, TERMINAL_COOKIE))
            .map(|(name, value)| [&name[..], b"=", value].concat())
            .collect();
        let at = at.min(pairs.len());
        pairs.insert(at, format!("authorization={ours}").into_bytes());
        // Fields of `; `-joined pairs, a new field where `split` says.
        let mut fields: Vec<Vec<u8>> = vec![Vec::new()];
        for (i, pair) in pairs.iter().enumerate() {
            let field = fields.last_mut().unwrap();
            if !field.is_empty() {
                field.extend_from_slice(b"; ");
            }
            field.extend_from_slice(pair);
            if split[i] {
                fields.push(Vec::new());
            }
        }
        let mut h = HeaderMap::new();
        for field in fields.iter().filter(|f| !f.is_empty()) {
            h.append(http::header::COOKIE, http::HeaderValue::from_bytes(field).unwrap());
        }
        let (found, who) = Credentials::read(&h, &terminals(), NOW, true);
        proptest::prop_assert_eq!(who, Some(Caller::Terminal { id: "t1".into(), name: "Laptop".into() }));
        proptest::prop_assert!(found.terminal_cookie);
        proptest::prop_assert_eq!(found.unproved, None);
        // What the app gets: every other pair, none of ours.
        let left: Vec<Vec<u8>> = h
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| remove_cookie(v.as_bytes(), TERMINAL_COOKIE))
            .collect();
        for field in &left {
            proptest::prop_assert_eq!(cookie_values(field, TERMINAL_COOKIE).count(), 0);
        }
        let kept: Vec<&[u8]> = left.iter().flat_map(|f| cookie_pairs(f)).map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()).collect();
        let sent: Vec<&[u8]> = pairs.iter().flat_map(|p| cookie_pairs(p)).map(<[u8]>::trim_ascii).filter(|p| !p.is_empty() && !is_named(p, TERMINAL_COOKIE)).collect();
        proptest::prop_assert_eq!(kept, sent);
    }

    /// A terminal token whose signature has any bytes outside the
    /// base64 alphabets put anywhere in it (as lenient decoders skip
    /// them), and any bytes around it, is a credential; the same
    /// signed with another secret never is.
    #[test]
    fn respelled_tokens_are_credentials(
        junk in proptest::collection::vec((0usize..50, proptest::num::u8::ANY), 0..6),
        before in proptest::collection::vec(proptest::num::u8::ANY, 0..6),
        after in proptest::collection::vec(proptest::num::u8::ANY, 0..6),
    ) {
        let is_digit = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/');
        for (secret, want) in [(SECRET, true), (&b"the app's own secret"[..], false)] {
            let t = token("t1", secret);
            let (message, signature) = t.rsplit_once('.').unwrap();
            let mut sig = signature.as_bytes().to_vec();
            for (at, byte) in &junk {
                if !is_digit(*byte) && *byte != b'.' {
                    sig.insert((*at).min(sig.len()), *byte);
                }
            }
            // Separated from the token by a byte that is no base64url.
            let value = [&before[..], b" ", message.as_bytes(), b".", &sig, &after].concat();
            proptest::prop_assert_eq!(terminals().holds_credential(&value), want, "{:?}", String::from_utf8_lossy(&value));
        }
    }

    /// Reading credentials never panics, whatever the bytes (in headers:
    /// whatever bytes a field value can hold).
    #[test]
    fn credential_reading_never_panics(value in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = bearer_token(&value);
        let _ = terminals().holds_credential(&value);
        // The bytes a field value cannot hold (most controls) as spaces.
        let field: Vec<u8> = value
            .iter()
            .map(|&b| if b == b'\t' || (b >= 0x20 && b != 0x7f) { b } else { b' ' })
            .collect();
        let v = http::HeaderValue::from_bytes(&field).unwrap();
        let mut h = HeaderMap::new();
        h.insert("authorization", v.clone());
        h.insert("cookie", v);
        let _ = Credentials::read(&h, &terminals(), NOW, true);
    }
}
