//! Terminal tokens: reading any text as a token, or any bytes as a header
//! value, never panics, and any header and claims signed with the terminal
//! secret make a credential (removed before forwarding), whatever their
//! bytes, also with the bytes around them in a header value.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use portal_core::caller::{TerminalEntry, Terminals, Token};
use ring::hmac;

const SECRET: &[u8] = b"fuzz terminal secret";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let terminals = Terminals::new(
        Some(SECRET),
        vec![TerminalEntry {
            id: "t1".into(),
            name: "Laptop".into(),
        }],
    );
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = terminals.check(text, NOW);
    }
    let _ = terminals.holds_credential(data);
    // The first byte says where the rest splits into header and claims.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (header, claims) = rest.split_at(usize::from(split).min(rest.len()));
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), message.as_bytes());
    let token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert!(
        matches!(terminals.check(&token, NOW), Token::Terminal(_)),
        "{token}"
    );
    // In a header value, after any bytes that end with a separator.
    let value = [rest, b" ", token.as_bytes()].concat();
    assert!(terminals.holds_credential(&value), "{token}");
});
