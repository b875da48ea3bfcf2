//! The RFC 9421 field parser: never a panic on any `Signature-Input` and
//! `Signature` values; accepted nonces are bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_core::signature::{parse, MAX_NONCE_BYTES};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (input, signature) = data.split_at(split);
    let (Ok(input), Ok(signature)) = (
        http::HeaderValue::from_bytes(input),
        http::HeaderValue::from_bytes(signature.get(1..).unwrap_or_default()),
    ) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("signature-input", input);
    headers.insert("signature", signature);
    if let Ok(Some(parsed)) = parse(&headers) {
        assert!(parsed.nonce.len() <= MAX_NONCE_BYTES);
    }
});
