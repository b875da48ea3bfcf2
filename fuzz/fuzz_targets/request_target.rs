//! The request-target: reading any bytes never panics, and what is
//! accepted as a path is a path starting with `/`, its query split off.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_core::target::{parse_target, RequestTarget};

fuzz_target!(|data: &[u8]| {
    for method in ["GET", "OPTIONS"] {
        match parse_target(method, data) {
            Ok(RequestTarget::Path { path, query, authority }) => {
                assert!(path.starts_with('/'), "{data:?}");
                assert!(!path.contains('?'));
                assert_eq!(authority.is_none(), data.first() == Some(&b'/'));
                if let Some(q) = query {
                    assert!(data.ends_with(q.as_bytes()));
                }
                if let Some(a) = authority {
                    assert!(!a.is_empty() && !a.contains(['@', '/', '?']));
                }
            }
            Ok(RequestTarget::Asterisk) => assert!(method == "OPTIONS" && data == b"*"),
            Err(_) => {}
        }
    }
});
