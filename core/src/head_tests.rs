use super::*;
use crate::refusal::Refusal;

fn headers(n: usize, value_len: usize) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for i in 0..n {
        h.insert(
            http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            "v".repeat(value_len).parse().unwrap(),
        );
    }
    h
}

#[test]
fn request_heads() {
    let check = |h: &http::HeaderMap| {
        check_head("GET", b"/", h, None, 100, 64 * 1024).map_err(|e| Refusal::from(e).status())
    };
    assert_eq!(check(&headers(100, 10)), Ok(()));
    assert_eq!(check(&headers(101, 10)), Err(431));
    // 11 fields of 6,000 bytes: 66,000 bytes and more.
    assert_eq!(check(&headers(11, 6000)), Err(431));
    assert_eq!(check(&headers(10, 6000)), Ok(()));
    let mut h = headers(1, 1);
    h.insert("content-length", "5".parse().unwrap());
    assert_eq!(check(&h), Ok(()));
    h.insert("transfer-encoding", "chunked".parse().unwrap());
    assert_eq!(check(&h), Err(400));
    // As Pingora hands it over: Content-Length only in the raw head.
    h.remove("content-length");
    let raw =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-LENGTH : 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let with_raw = |raw: &[u8]| {
        check_head("POST", b"/", &h, Some(raw), 100, 65536).map_err(|e| Refusal::from(e).status())
    };
    assert_eq!(with_raw(raw), Err(400));
    assert_eq!(
        with_raw(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ok(())
    );
    assert_eq!(
        with_raw(b"POST / HTTP/1.1\r\nX-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ok(())
    );
}
