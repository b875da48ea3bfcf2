//! The request path (DESIGN section 6): refused forms and the one
//! canonical path that rules are matched against and the upstream
//! receives. Pure; used by [`super::decide`] and the internal listener.

use std::borrow::Cow;

/// Why a path is refused with 400 before any rule is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("the path has an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("the path has a '\\'")]
    Backslash,
    #[error("the path has a NUL byte")]
    Nul,
    #[error("the path has a '%' not followed by two hex digits")]
    BadPercent,
    #[error("the path does not start with '/'")]
    NotAbsolute,
}

/// Checks a request path (no query) and returns it with percent-encoded
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded, which RFC 3986
/// section 6.2.2.2 makes equivalent: `/%61dmin/` is matched, and forwarded,
/// as `/admin/`, so no encoding slips past a rule. Refuses dot segments
/// (also encoded), encoded `/` and `\`, a raw `\`, and NUL.
pub fn check_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).and_then(|&c| hex(c)),
                    bytes.get(i + 2).and_then(|&c| hex(c)),
                ) else {
                    return Err(PathError::BadPercent);
                };
                let decoded = (hi * 16 + lo) as u8;
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::Nul),
                    c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                        out.get_or_insert_with(|| bytes[..i].to_vec()).push(c);
                    }
                    _ => {
                        if let Some(o) = out.as_mut() {
                            o.extend_from_slice(&bytes[i..i + 3]);
                        }
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            _ => {
                if let Some(o) = out.as_mut() {
                    o.push(b);
                }
                i += 1;
            }
        }
    }
    let normalized: Cow<'_, str> = match out {
        // Only ASCII bytes were decoded into an already valid UTF-8 string.
        Some(o) => Cow::Owned(String::from_utf8(o).expect("ASCII replacements keep UTF-8")),
        None => Cow::Borrowed(path),
    };
    if normalized.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(PathError::DotSegment);
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_safety() {
        use PathError::*;
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/a/b.c/..d/...", Ok("/a/b.c/..d/...")),
            ("/a%20b/%E2%82%AC", Ok("/a%20b/%E2%82%AC")),
            ("/%61dmin/%7Euser", Ok("/admin/~user")),
            ("/a?/b", Ok("/a?/b")),
            ("/a/../b", Err(DotSegment)),
            ("/a/./b", Err(DotSegment)),
            ("/a/..", Err(DotSegment)),
            ("/..", Err(DotSegment)),
            ("/a/%2e%2e/b", Err(DotSegment)),
            ("/a/%2E./b", Err(DotSegment)),
            ("/a/.%2e", Err(DotSegment)),
            ("/a/%2e/b", Err(DotSegment)),
            ("/public/%2e%2e/private", Err(DotSegment)),
            ("/a%2fb", Err(EncodedSeparator)),
            ("/a%2Fb", Err(EncodedSeparator)),
            ("/a%5cb", Err(EncodedSeparator)),
            ("/a%5C..%5Cb", Err(EncodedSeparator)),
            ("/a\\b", Err(Backslash)),
            ("/a%00b", Err(Nul)),
            ("/a\0b", Err(Nul)),
            ("/a%zz", Err(BadPercent)),
            ("/a%2", Err(BadPercent)),
            ("a/b", Err(NotAbsolute)),
            ("*", Err(NotAbsolute)),
        ];
        for (path, want) in cases {
            assert_eq!(
                check_path(path).as_deref().map_err(|e| *e),
                *want,
                "{path:?}"
            );
        }
    }
}
