//! The request headers read for every answer: `traceparent` (W3C Trace
//! Context) and `Accept-Encoding`. Never a panic; a `traceparent` kept is
//! passed on byte for byte with its trace ID; a coding chosen is one the
//! header names (or `*` stands for).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_core::encoding::preferred;
use portal_core::trace::TraceParent;

fuzz_target!(|data: &[u8]| {
    if let Some(parent) = TraceParent::parse(data) {
        assert_eq!(parent.as_str().as_bytes(), data);
        let id = parent.trace_id();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::ACCEPT_ENCODING, value);
    if let Some(coding) = preferred(&headers) {
        let text = String::from_utf8_lossy(data).to_ascii_lowercase();
        assert!(text.contains(coding.token()) || text.contains('*'));
    }
});
