//! The request-target (RFC 9112 section 3.2), read from the bytes the
//! client sent, before anything else is decided (docs/access.md, "The
//! request-target").
//!
//! The path that rules are matched on must be the path the upstream
//! receives. Pingora keeps a target that is not origin-form verbatim for
//! the wire while its `Uri` shows `/`, so `GET admin` was matched as `/`
//! and forwarded as `admin`, which app servers resolve to `/admin`. The
//! proxy therefore reads the raw target itself and accepts only:
//!
//! - origin-form, `/path?query`;
//! - absolute-form, `http(s)://authority/path?query`, whose authority must
//!   be the `Host` the request is routed by (its path and query are then
//!   the origin-form target);
//! - `*`, only for `OPTIONS` (asterisk-form), answered by the proxy itself.
//!
//! Everything else (relative references such as `admin`, `./admin`,
//! `;/admin`, `%2fadmin`, `\admin`, other schemes such as `foo:/admin`,
//! authority-form, text that is not UTF-8) is refused with 400. The
//! upstream is always sent the origin-form target that was decided on.
//! Pure; used by [`super::decide`] and by the plain listeners.

/// An accepted request-target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTarget<'a> {
    /// Origin-form, or absolute-form read as its path and query.
    Path {
        /// Starts with `/`; not yet canonical (see [`super::path`]).
        path: &'a str,
        /// Without its `?`.
        query: Option<&'a str>,
        /// The authority of an absolute-form target.
        authority: Option<&'a str>,
    },
    /// `OPTIONS *`: about the server, never forwarded.
    Asterisk,
}

/// Why a request-target is refused with 400 before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the request-target is empty")]
    Empty,
    #[error("the request-target is not UTF-8 text")]
    NotText,
    #[error("the request-target must be a path starting with '/' or an absolute http(s) URL")]
    NotOriginForm,
    #[error("the request-target '*' is only for OPTIONS")]
    Asterisk,
    #[error("the absolute-form request-target has no host")]
    NoAuthority,
    #[error("the absolute-form request-target carries user information")]
    Userinfo,
    #[error("the absolute-form request-target names another host than the Host header")]
    OtherHost,
}

impl<'a> RequestTarget<'a> {
    /// The host the request is routed by: the `Host` header (or HTTP/2
    /// `:authority`) as received, which an absolute-form authority must
    /// equal (ASCII case aside), or that authority when there is no `Host`.
    pub fn host(&self, host_header: Option<&'a str>) -> Result<Option<&'a str>, TargetError> {
        match (self, host_header) {
            (
                RequestTarget::Path {
                    authority: Some(a), ..
                },
                Some(h),
            ) => {
                if a.eq_ignore_ascii_case(h) {
                    Ok(Some(h))
                } else {
                    Err(TargetError::OtherHost)
                }
            }
            (
                RequestTarget::Path {
                    authority: Some(a), ..
                },
                None,
            ) => Ok(Some(a)),
            (_, h) => Ok(h),
        }
    }
}

/// Reads a request-target as received (`raw`, the fragment already
/// removed by the HTTP parser) for a request with `method`.
pub fn parse_target<'a>(method: &str, raw: &'a [u8]) -> Result<RequestTarget<'a>, TargetError> {
    let text = std::str::from_utf8(raw).map_err(|_| TargetError::NotText)?;
    match text.as_bytes().first() {
        None => Err(TargetError::Empty),
        Some(b'/') => {
            let (path, query) = split_query(text);
            Ok(RequestTarget::Path {
                path,
                query,
                authority: None,
            })
        }
        Some(b'*') if text == "*" => match method {
            "OPTIONS" => Ok(RequestTarget::Asterisk),
            _ => Err(TargetError::Asterisk),
        },
        Some(_) => absolute_form(text),
    }
}

/// `http(s)://authority[/path][?query]`, scheme in any case.
fn absolute_form(text: &str) -> Result<RequestTarget<'_>, TargetError> {
    let (scheme, rest) = text.split_once("://").ok_or(TargetError::NotOriginForm)?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return Err(TargetError::NotOriginForm);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() {
        return Err(TargetError::NoAuthority);
    }
    if authority.contains('@') {
        return Err(TargetError::Userinfo);
    }
    let (path, query) = match tail.strip_prefix('?') {
        Some(query) => ("/", Some(query)),
        None if tail.is_empty() => ("/", None),
        None => split_query(tail),
    };
    Ok(RequestTarget::Path {
        path,
        query,
        authority: Some(authority),
    })
}

fn split_query(text: &str) -> (&str, Option<&str>) {
    match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    }
}

#[cfg(test)]
#[path = "target_tests.rs"]
pub(crate) mod tests;
