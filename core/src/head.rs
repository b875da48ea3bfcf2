//! The request head's limits (README.md, "Operating it"): size, field count, and
//! `Content-Length` with `Transfer-Encoding`. Pingora's own HTTP/1 limits
//! are far larger (256 headers, about 1 MiB), so the proxy enforces these
//! itself. Pure; the HTTPS shell checks every head before deciding it.

/// Default of `limits.max_request_header_bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default of `limits.max_request_headers`.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Why a request head is refused before it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("{fields} header fields; at most {max} are accepted")]
    TooManyFields { fields: usize, max: usize },
    #[error("the request head has {bytes} bytes; at most {max} are accepted")]
    TooLarge { bytes: usize, max: usize },
    /// A request smuggling vector.
    #[error("Content-Length and Transfer-Encoding together are refused")]
    LengthAndChunked,
}

/// Checks a request head: at most `max_headers` fields and `max_bytes`
/// bytes (request line and fields as they would be written), and never both
/// `Content-Length` and `Transfer-Encoding` (a request smuggling vector).
/// `raw_head` is the HTTP/1 head as received: Pingora drops
/// `Content-Length` from the parsed head when both are present.
pub fn check_head(
    method: &str,
    target: &[u8],
    headers: &http::HeaderMap,
    raw_head: Option<&[u8]>,
    max_headers: usize,
    max_bytes: usize,
) -> Result<(), HeadError> {
    if headers.len() > max_headers {
        return Err(HeadError::TooManyFields {
            fields: headers.len(),
            max: max_headers,
        });
    }
    // "name: value\r\n" per field, plus the request line.
    let size = method.len()
        + target.len()
        + 12
        + headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > max_bytes {
        return Err(HeadError::TooLarge {
            bytes: size,
            max: max_bytes,
        });
    }
    // The raw head is read only when it matters: with Transfer-Encoding.
    if headers.contains_key(http::header::TRANSFER_ENCODING)
        && (headers.contains_key(http::header::CONTENT_LENGTH)
            || raw_head.is_some_and(|raw| has_field(raw, b"content-length")))
    {
        return Err(HeadError::LengthAndChunked);
    }
    Ok(())
}

/// Whether a raw HTTP/1 head has a field named `name` (lower case).
fn has_field(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|b| *b == b'\n').skip(1).any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()..].trim_ascii_start().starts_with(b":")
    })
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
