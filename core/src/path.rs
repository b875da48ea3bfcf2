//! The request path (docs/access.md): refused forms and the one
//! canonical path that rules are matched against and the upstream
//! receives, so that the path matched is exactly the path the app gets.
//! Pure; used by [`super::decide`] and the internal listener.
//!
//! App servers read paths in more ways than one: most merge runs of `/`,
//! Java servers (Tomcat, Jetty, Spring) drop `;parameters` from each
//! segment and read `..;` as `..`. The canonical form takes away what can
//! be normalized (encoded unreserved characters decoded, `//` merged) and
//! refuses what cannot be read one way only (dot segments in any spelling,
//! encoded separators, control characters). Where `;parameters` remain,
//! [`CanonicalPath::without_params`] is the path a Java server would see,
//! and rules are matched against both.

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
    #[error("the path has a control character")]
    Control,
    #[error("the path has a '%' not followed by two hex digits")]
    BadPercent,
    #[error("the path does not start with '/'")]
    NotAbsolute,
}

/// A path in its canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath<'a> {
    /// Matched and forwarded: encoded unreserved characters decoded, runs
    /// of `/` merged; borrowed when that is the path as received.
    pub path: Cow<'a, str>,
    /// When a segment carries `;parameters` (`;` raw or as `%3b`): the
    /// path with every segment's parameters removed (and `/` runs merged again), as Java
    /// servers read it (`/;/admin` is `/admin` there).
    pub without_params: Option<String>,
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// The canonical form of a request path (no query), or why it is refused.
pub fn canonical_path(raw: &str) -> Result<CanonicalPath<'_>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    // Written to only once the path differs from `raw`.
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
                match (hi * 16 + lo) as u8 {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::Nul),
                    c if is_control(c) => return Err(PathError::Control),
                    c if is_unreserved(c) => {
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
            c if is_control(c) => return Err(PathError::Control),
            b'/' if i > 0 && bytes[i - 1] == b'/' => {
                // `//`: merged into one (the previous `/` is written).
                out.get_or_insert_with(|| bytes[..i].to_vec());
                i += 1;
            }
            _ => {
                if let Some(o) = out.as_mut() {
                    o.push(b);
                }
                i += 1;
            }
        }
    }
    let path: Cow<'_, str> = match out {
        // Only ASCII bytes were decoded into an already valid UTF-8 string.
        Some(o) => Cow::Owned(String::from_utf8(o).map_err(|_| PathError::BadPercent)?),
        None => Cow::Borrowed(raw),
    };
    if path.split('/').any(is_dot_segment) {
        return Err(PathError::DotSegment);
    }
    let has_params = path
        .split('/')
        .any(|seg| segment_name(seg).len() < seg.len());
    let without_params = has_params.then(|| {
        let mut stripped = String::with_capacity(path.len());
        for (n, segment) in path.split('/').enumerate() {
            // Merged again: `/;/x` is `//x` once stripped, read as `/x`.
            if n > 0 && !stripped.ends_with('/') {
                stripped.push('/');
            }
            stripped.push_str(segment_name(segment));
        }
        stripped
    });
    Ok(CanonicalPath {
        path,
        without_params,
    })
}

/// A segment without its `;parameters`: up to its first `;`, raw or
/// encoded (servers that decode before they split read `%3b` as `;`).
fn segment_name(segment: &str) -> &str {
    let b = segment.as_bytes();
    let end = (0..b.len())
        .find(|&i| {
            b[i] == b';'
                || (b[i] == b'%'
                    && b.get(i + 1..i + 3)
                        .is_some_and(|h| h.eq_ignore_ascii_case(b"3b")))
        })
        .unwrap_or(b.len());
    &segment[..end]
}

/// Whether a segment reads as `.` or `..` to some server: also with
/// `;parameters` after it (`..;x`, `.;`, `..%3b`).
fn is_dot_segment(segment: &str) -> bool {
    matches!(segment_name(segment), "." | "..")
}

/// Checks a path without keeping its canonical form (the internal
/// listener forwards paths as the app wrote them).
pub fn check_path(raw: &str) -> Result<(), PathError> {
    canonical_path(raw).map(|_| ())
}

#[cfg(test)]
#[path = "path_tests.rs"]
pub(crate) mod tests;
