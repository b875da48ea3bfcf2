//! Properties of the signature-field parser over hostile input: it never
//! panics, and what it accepts is bounded by what it was given.

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
