use super::*;

#[test]
fn raw_bytes_are_withheld() {
    let line = "HTTP server fails to read from downstream: InvalidHTTPHeader context: buf: GET / HTTP/1.1\\r\\nCookie: authorization=eyJ.x.y";
    let redacted = redact(line).unwrap();
    assert!(!redacted.contains("eyJ"), "{redacted}");
    assert!(redacted.starts_with("HTTP server fails to read from downstream"));
    assert_eq!(redact("state reloaded"), None);
}
