//! Tests of the terminal JWT check: tables of the token forms it must
//! accept and refuse, and a differential property against `jsonwebtoken`,
//! the independent implementation it replaced on the request path.

use super::*;
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header};
use proptest::strategy::Strategy as _;
use serde_json::json;

pub(crate) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
pub(crate) const NOW: u64 = 1_800_000_000;

/// A token signed by `jsonwebtoken`, the independent encoder.
fn token(claims: serde_json::Value, secret: &[u8], alg: Algorithm) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// The secret and one terminal, `t1` named `Laptop`.
pub(crate) fn terminals() -> Terminals {
    Terminals::new(
        Some(SECRET),
        vec![TerminalEntry {
            id: "t1".into(),
            name: "Laptop".into(),
        }],
    )
}

#[test]
fn terminal_tokens() {
    let t = terminals();
    let hs = |c| token(c, SECRET, Algorithm::HS256);
    let laptop = Some(Caller::Terminal {
        id: "t1".into(),
        name: "Laptop".into(),
    });
    let cases: Vec<(&str, String, Option<Caller>)> = vec![
        ("no exp", hs(json!({"sub": "t1"})), laptop.clone()),
        (
            "future exp",
            hs(json!({"sub": "t1", "exp": NOW + 60})),
            laptop.clone(),
        ),
        (
            "float exp",
            hs(json!({"sub": "t1", "exp": NOW as f64 + 0.5})),
            laptop.clone(),
        ),
        ("past exp", hs(json!({"sub": "t1", "exp": NOW - 1})), None),
        ("exp now", hs(json!({"sub": "t1", "exp": NOW})), None),
        (
            "exp not a number",
            hs(json!({"sub": "t1", "exp": "never"})),
            None,
        ),
        (
            "future nbf",
            hs(json!({"sub": "t1", "nbf": NOW + 60})),
            None,
        ),
        ("unknown terminal", hs(json!({"sub": "t2"})), None),
        ("no sub", hs(json!({"name": "t1"})), None),
        (
            "other secret",
            token(json!({"sub": "t1"}), b"other", Algorithm::HS256),
            None,
        ),
        (
            "HS512",
            token(json!({"sub": "t1"}), SECRET, Algorithm::HS512),
            None,
        ),
        ("garbage", "a.b.c".into(), None),
        (
            "alg none",
            // {"alg":"none"}.{"sub":"t1"}.
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0MSJ9.".into(),
            None,
        ),
    ];
    for (what, tok, want) in cases {
        assert_eq!(t.identify(&tok, NOW), want, "{what}");
    }
    // Without a secret nobody is a terminal.
    let no_secret = Terminals::new(
        None,
        vec![TerminalEntry {
            id: "t1".into(),
            name: "x".into(),
        }],
    );
    assert_eq!(no_secret.identify(&hs(json!({"sub": "t1"})), NOW), None);
    assert!(!no_secret.is_credential(&hs(json!({"sub": "t1"}))));
}

#[test]
fn credentials_are_recognized_whatever_their_claims() {
    let t = terminals();
    let expired = token(json!({"sub": "gone", "exp": 1}), SECRET, Algorithm::HS256);
    assert!(t.is_credential(&expired));
    let foreign = token(json!({"sub": "t1"}), b"app's own", Algorithm::HS256);
    assert!(!t.is_credential(&foreign));
    assert!(!t.is_credential("opaque-api-token"));
}

/// A compact JWS over the given header and payload bytes, signed with
/// HMAC-SHA256 by `jsonwebtoken`'s own signer whatever the header says.
fn raw_token(header: &[u8], payload: &[u8], secret: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

/// The forms a token can take: what each is to the Portal. `Foreign` ones
/// are forwarded to the app untouched; `Terminal(None)` ones are signed
/// with the secret, so removed, but prove nothing.
#[test]
fn token_forms() {
    let t = terminals();
    let laptop = Token::Terminal(Some(Caller::Terminal {
        id: "t1".into(),
        name: "Laptop".into(),
    }));
    let jwt_header = br#"{"alg":"HS256","typ":"JWT"}"#;
    let good = raw_token(jwt_header, br#"{"sub":"t1"}"#, SECRET);
    let (message, signature) = good.rsplit_once('.').unwrap();
    // The same 256 bits with the two unused trailing bits of the last
    // character set: a second spelling of the signature.
    let last = signature.as_bytes()[42];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let pos = alphabet.iter().position(|&c| c == last).unwrap();
    let trailing = alphabet[(pos & !3) | ((pos + 1) & 3)] as char;
    let cases: Vec<(&str, String, Token)> = vec![
        ("plain", good.clone(), laptop.clone()),
        (
            "escaped sub",
            raw_token(jwt_header, br#"{"sub":"t\u0031"}"#, SECRET),
            laptop.clone(),
        ),
        (
            "no typ, extra header and claims",
            raw_token(
                br#"{"kid":"k","alg":"HS256"}"#,
                br#"{"iat":1,"sub":"t1","name":"x"}"#,
                SECRET,
            ),
            laptop.clone(),
        ),
        (
            "header says HS512",
            raw_token(br#"{"alg":"HS512"}"#, br#"{"sub":"t1"}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "header says none",
            raw_token(br#"{"alg":"none"}"#, br#"{"sub":"t1"}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "header alg in another case",
            raw_token(br#"{"alg":"hs256"}"#, br#"{"sub":"t1"}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "critical extension",
            raw_token(
                br#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
                br#"{"sub":"t1"}"#,
                SECRET,
            ),
            Token::Terminal(None),
        ),
        (
            "header not JSON",
            raw_token(b"alg=HS256", br#"{"sub":"t1"}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "claims not JSON",
            raw_token(jwt_header, b"sub=t1", SECRET),
            Token::Terminal(None),
        ),
        (
            "header an array",
            raw_token(br#"["HS256"]"#, br#"{"sub":"t1"}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "claims an array",
            raw_token(jwt_header, br#"["t1"]"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "sub given twice",
            raw_token(jwt_header, br#"{"sub":"t2","sub":"t1"}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "sub an array",
            raw_token(jwt_header, br#"{"sub":["t1"]}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "sub a number",
            raw_token(jwt_header, br#"{"sub":1}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "exp null",
            raw_token(jwt_header, br#"{"sub":"t1","exp":null}"#, SECRET),
            laptop.clone(),
        ),
        (
            "exp a boolean",
            raw_token(jwt_header, br#"{"sub":"t1","exp":true}"#, SECRET),
            Token::Terminal(None),
        ),
        (
            "other secret",
            raw_token(jwt_header, br#"{"sub":"t1"}"#, b"app's own"),
            Token::Foreign,
        ),
        ("signature padded", format!("{good}="), Token::Foreign),
        (
            "signature's trailing bits set",
            format!("{message}.{}{trailing}", &signature[..42]),
            Token::Foreign,
        ),
        (
            "signature standard base64",
            format!(
                "{message}.{}",
                signature.replace('-', "+").replace('_', "/")
            ),
            if signature.contains(['-', '_']) {
                Token::Foreign
            } else {
                laptop.clone()
            },
        ),
        (
            "signature truncated",
            good[..good.len() - 1].to_string(),
            Token::Foreign,
        ),
        ("signature empty", format!("{message}."), Token::Foreign),
        (
            "four parts",
            format!("{message}.x.{signature}"),
            Token::Foreign,
        ),
        ("two parts", format!("x.{signature}"), Token::Foreign),
        ("space before", format!(" {good}"), Token::Foreign),
        ("space after", format!("{good} "), Token::Foreign),
        ("empty", String::new(), Token::Foreign),
        ("dots", "..".into(), Token::Foreign),
    ];
    for (what, tok, want) in cases {
        assert_eq!(t.check(&tok, NOW), want, "{what}");
    }
}

/// What a token is by `jsonwebtoken`'s own parts: its HS256 verifier
/// over the first two of exactly three parts, its header decoder (the
/// algorithm must be HS256), then the claims read as any JSON object and
/// `sub`, `exp` and `nbf` judged as [`Terminals::check`] documents. The
/// reference the prepared-key check must agree with. (`jsonwebtoken::decode`
/// itself refuses a signed token whose `sub` is not a string, which would
/// have let such a credential reach the app.)
fn reference(t: &Terminals, token: &str, now: u64) -> Token {
    let Some((message, signature)) = token.rsplit_once('.') else {
        return Token::Foreign;
    };
    let key = DecodingKey::from_secret(SECRET);
    let signed = message.matches('.').count() == 1
        && jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::HS256)
            .unwrap_or(false);
    if !signed {
        return Token::Foreign;
    }
    if !jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256) {
        return Token::Terminal(None);
    }
    let payload = message.split_once('.').unwrap().1;
    let claims: Option<serde_json::Value> = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok());
    let Some(claims) = claims.filter(|c| c.is_object()) else {
        return Token::Terminal(None);
    };
    let number = |name: &str| match claims.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or(()),
    };
    let (Some(sub), Ok(exp), Ok(nbf)) = (
        claims.get("sub").and_then(|s| s.as_str()),
        number("exp"),
        number("nbf"),
    ) else {
        return Token::Terminal(None);
    };
    let now = now as f64;
    if exp.is_some_and(|e| e <= now) || nbf.is_some_and(|n| n > now) {
        return Token::Terminal(None);
    }
    Token::Terminal(t.names.get(sub).map(|name| Caller::Terminal {
        id: sub.to_string(),
        name: name.clone(),
    }))
}

fn subs() -> Vec<Option<serde_json::Value>> {
    vec![
        None,
        Some(json!("t1")),
        Some(json!("t2")),
        Some(json!("")),
        Some(json!(1)),
        Some(json!(null)),
        Some(json!(["t1"])),
    ]
}

fn times(now: u64) -> Vec<Option<serde_json::Value>> {
    vec![
        None,
        Some(json!(null)),
        Some(json!(now - 1)),
        Some(json!(now)),
        Some(json!(now + 1)),
        Some(json!(now as f64 + 0.5)),
        Some(json!(now as f64 - 0.5)),
        Some(json!(1e300)),
        Some(json!(-1)),
        Some(json!("never")),
        Some(json!(true)),
    ]
}

const ALGS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// A token of these claims (absent when `None`), signed by `jsonwebtoken`.
fn claims_token(
    sub: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    alg: Algorithm,
    secret: &[u8],
) -> String {
    let claims: serde_json::Map<String, serde_json::Value> =
        [("sub", sub), ("exp", exp), ("nbf", nbf)]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect();
    token(serde_json::Value::Object(claims), secret, alg)
}

/// Every combination of `sub`, `exp`, `nbf`, algorithm and secret is
/// judged exactly as the reference judges it.
#[test]
fn every_claims_combination_agrees_with_jsonwebtoken() {
    let t = terminals();
    let mut identified = 0;
    for sub in subs() {
        for exp in times(NOW) {
            for nbf in times(NOW) {
                for alg in ALGS {
                    for secret in [SECRET, b"another secret"] {
                        let tok = claims_token(sub.clone(), exp.clone(), nbf.clone(), alg, secret);
                        let got = t.check(&tok, NOW);
                        assert_eq!(
                            got,
                            reference(&t, &tok, NOW),
                            "{sub:?} {exp:?} {nbf:?} {alg:?}"
                        );
                        identified += usize::from(matches!(got, Token::Terminal(Some(_))));
                    }
                }
            }
        }
    }
    // HS256 with the secret, sub "t1", exp absent, null, now + 1,
    // now + 0.5 or 1e300, nbf absent, null, now - 1, now, now - 0.5 or -1.
    assert_eq!(identified, 5 * 6);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

    /// Whatever the bytes of its header and claims, a token signed with
    /// the secret is a credential (so never forwarded), and the same token
    /// signed with another secret is foreign; reading it never panics.
    #[test]
    fn any_token_signed_with_the_secret_is_a_credential(
        header in proptest::prop_oneof![
            proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            "[{}\\[\\]\":,a-zA-Z0-9 ]{0,40}".prop_map(String::into_bytes),
            proptest::strategy::Just(br#"{"alg":"HS256"}"#.to_vec()),
        ],
        payload in proptest::prop_oneof![
            proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            "[{}\\[\\]\":,a-z0-9 .e-]{0,40}".prop_map(String::into_bytes),
            proptest::strategy::Just(br#"{"sub":"t1"}"#.to_vec()),
        ],
    ) {
        let t = terminals();
        proptest::prop_assert!(matches!(t.check(&raw_token(&header, &payload, SECRET), NOW), Token::Terminal(_)));
        proptest::prop_assert_eq!(t.check(&raw_token(&header, &payload, b"another"), NOW), Token::Foreign);
    }

    /// A token of any of those claims with one character changed, cut or
    /// added anywhere is judged exactly as the reference judges it.
    #[test]
    fn edited_tokens_agree_with_jsonwebtoken(
        sub in proptest::sample::select(subs()),
        exp in proptest::sample::select(times(NOW)),
        nbf in proptest::sample::select(times(NOW)),
        alg in proptest::sample::select(ALGS.to_vec()),
        own_secret in proptest::bool::weighted(0.8),
        at in 0usize..400,
        with in proptest::sample::select(vec![
            None, Some('A'), Some('a'), Some('0'), Some('-'), Some('_'), Some('.'), Some('='), Some(' '),
        ]),
    ) {
        let secret: &[u8] = if own_secret { SECRET } else { b"another secret" };
        let mut tok = claims_token(sub, exp, nbf, alg, secret);
        let at = at % (tok.len() + 1);
        match with {
            // Cut there.
            None => tok.truncate(at),
            Some(c) if at == tok.len() => tok.push(c),
            Some(c) => tok.replace_range(at..at + 1, &c.to_string()),
        }
        let t = terminals();
        proptest::prop_assert_eq!(t.check(&tok, NOW), reference(&t, &tok, NOW), "{}", tok);
    }
}
