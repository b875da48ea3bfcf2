//! Properties of the signature-field parser: over hostile input it never
//! panics, and what it accepts is bounded by what it was given; a usable
//! signature, however written, is read as written.

use base64::Engine as _;
use proptest::prelude::*;

use super::*;

/// Header values made of the pieces of structured fields.
fn field() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "portal=",
        "(",
        ")",
        "\"@method\"",
        "\"@authority\"",
        "\"@path\"",
        "\"@query\"",
        "\"content-digest\"",
        ";created=",
        ";expires=",
        ";nonce=",
        ";keyid=",
        ";alg=",
        "\"ed25519\"",
        "\"n\"",
        "1800000000",
        "-1",
        "99999999999999999999",
        ":",
        "AAAA",
        "=",
        ",",
        " ",
        "\"",
        "\\",
        "?1",
        "*",
        "other=",
    ]);
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Never a panic, whatever the fields hold, and what is accepted is
    /// bounded by what was given. (Such fields are all but never usable:
    /// `usable_signatures_are_read_as_written` generates those.)
    #[test]
    fn parsing_never_panics(input in field(), signature in field(), long in 0usize..400) {
        let mut headers = HeaderMap::new();
        let nonce = "n".repeat(long);
        let input = input.replace("\"n\"", &format!("\"{nonce}\""));
        if let (Ok(i), Ok(s)) = (input.parse(), signature.parse()) {
            headers.insert("signature-input", i);
            headers.insert("signature", s);
            if let Ok(Some(parsed)) = parse(&headers) {
                prop_assert!(parsed.nonce.len() <= MAX_NONCE_BYTES);
                prop_assert!(!parsed.nonce.is_empty());
                prop_assert!(parsed.field.components.len() <= input.len());
            }
        }
    }
}

/// A usable signature of the profile, and its `Signature-Input` and
/// `Signature` values.
#[derive(Debug, Clone)]
struct Usable {
    label: String,
    components: Vec<&'static str>,
    created: i64,
    expires: i64,
    nonce: String,
    keyid: String,
    input: String,
    signature: String,
}

/// Usable signatures, however written: covered components in any order,
/// parameters in any order, `alg` or not, labelled `portal` or tagged
/// `portal` under any label, before or after another application's
/// member; with a nonce of 1 to `MAX_NONCE_BYTES + 32` bytes.
fn usable() -> impl Strategy<Value = Usable> {
    // Structured-field integers have at most 15 digits.
    let time = -999_999_999_999_999i64..=999_999_999_999_999;
    #[rustfmt::skip]
    let components = prop::sample::subsequence(
        vec!["@method", "@authority", "@path", "@query", "content-digest", "@target-uri"],
        0..=6,
    )
    .prop_shuffle();
    let label = prop_oneof![
        Just(("portal".to_string(), false)),
        "[a-z][a-z0-9]{0,8}".prop_map(|l| (l, true)),
    ]
    .prop_filter("the other member's label", |(l, _)| l != "other");
    // Any printable ASCII but `"` and `\`, which a string escapes.
    let text = |n| proptest::string::string_regex(&format!("[ !#-\\[\\]-~]{{{n}}}")).unwrap();
    let order = Just((0..6).collect::<Vec<usize>>()).prop_shuffle();
    (
        (label, components, time.clone(), time),
        (text("1,160"), text("0,110"), any::<bool>()),
        (order, any::<bool>(), prop::collection::vec(any::<u8>(), 64)),
    )
        .prop_map(|(head, params, (order, other_first, bytes))| {
            let ((label, tagged), components, created, expires) = head;
            let (nonce, keyid, alg) = params;
            let params = [
                Some(format!(";created={created}")),
                Some(format!(";expires={expires}")),
                Some(format!(";nonce=\"{nonce}\"")),
                Some(format!(";keyid=\"{keyid}\"")),
                alg.then(|| ";alg=\"ed25519\"".to_string()),
                tagged.then(|| format!(";tag=\"{TAG}\"")),
            ];
            let params: String = order.iter().filter_map(|&i| params[i].clone()).collect();
            let covered: Vec<String> = components.iter().map(|c| format!("\"{c}\"")).collect();
            let mut input = [
                format!("{label}=({}){params}", covered.join(" ")),
                "other=(\"@method\");created=1;tag=\"web-bot-auth\"".to_string(),
            ];
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let mut signature = [format!("{label}=:{b64}:"), "other=:AAAA:".to_string()];
            if other_first {
                input.reverse();
                signature.reverse();
            }
            Usable {
                label,
                components,
                created,
                expires,
                nonce,
                keyid,
                input: input.join(", "),
                signature: signature.join(", "),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// A usable signature is accepted and read as written, within the
    /// bounds the parser keeps for hostile input; one whose nonce is over
    /// `MAX_NONCE_BYTES` is refused as malformed.
    #[test]
    fn usable_signatures_are_read_as_written(u in usable()) {
        let mut headers = HeaderMap::new();
        headers.insert("signature-input", u.input.parse().unwrap());
        headers.insert("signature", u.signature.parse().unwrap());
        let parsed = parse(&headers);
        if u.nonce.len() > MAX_NONCE_BYTES {
            prop_assert!(matches!(parsed, Err(SignatureError::Malformed(_))), "{:?}: {:?}", u, parsed);
            return Ok(());
        }
        prop_assert!(matches!(parsed, Ok(Some(_))), "{:?}: {:?}", u, parsed);
        let parsed = parsed.unwrap().unwrap();
        prop_assert!(parsed.nonce.len() <= MAX_NONCE_BYTES);
        prop_assert!(!parsed.nonce.is_empty());
        prop_assert!(parsed.field.components.len() <= u.input.len());
        prop_assert_eq!(&parsed.label, &u.label);
        prop_assert_eq!(&parsed.field.components, &u.components);
        prop_assert_eq!((parsed.created, parsed.expires), (u.created, u.expires));
        prop_assert_eq!(&parsed.nonce, &u.nonce);
        prop_assert_eq!(&parsed.keyid, &u.keyid);
    }
}
