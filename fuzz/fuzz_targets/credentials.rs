//! Cookie and `Authorization` parsing: never a panic, and no
//! `authorization` cookie survives removal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_core::credentials::{bearer_token, cookie_values, remove_cookie};

fuzz_target!(|data: &[u8]| {
    let _ = bearer_token(data);
    // Cookies are bytes (RFC 6265 section 5.4), whatever their encoding.
    let header = data;
    let _ = cookie_values(header, "authorization").count();
    if let Some(left) = remove_cookie(header, "authorization") {
        assert_eq!(
            cookie_values(&left, "authorization").count(),
            0,
            "{:?} -> {:?}",
            String::from_utf8_lossy(header),
            String::from_utf8_lossy(&left)
        );
    }
});
