//! The terminal credentials a request carries (docs/access.md),
//! read once: the terminal they prove, and what must be removed before the
//! request reaches an app, in any spelling (cookie names in any case, `;`
//! or `,` between pairs, any scheme case and spacing, any of several
//! `Authorization` headers). Pure; [`super::decide`] reads them, the
//! HTTPS shell strips what they name.

use http::HeaderMap;

use super::caller::{is_jwt_shaped, Caller, Terminals, Token, TERMINAL_COOKIE};

/// Which terminal credentials the request carries, for stripping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    /// A `Cookie` header holds an `authorization` cookie (any case): the
    /// `Cookie` headers are rewritten without it, every other pair kept
    /// byte for byte.
    pub terminal_cookie: bool,
    /// The positions, among the request's `Authorization` headers, of
    /// those that carry a token signed with the terminal secret (whatever
    /// its claims, scheme or spacing): they are removed, the others (an
    /// app's own Basic or bearer credentials) kept.
    pub terminal_authorization: Vec<usize>,
    /// The `exp` of the token that identified the terminal, if it has one:
    /// what is open under it ends then.
    pub terminal_expires: Option<f64>,
    /// A token was sent as the terminal's (an `authorization` cookie, or
    /// a bearer token signed with the secret) and none proved a terminal.
    pub unproved: Option<Unproved>,
}

/// Why the terminal token a request carries proves nothing, from the most
/// to the least telling: only a [`Unproved::Forged`] token is a failed
/// authentication (docs/config.md, "What counts as a failed
/// authentication").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unproved {
    /// An `authorization` cookie holding a JWT that the terminal secret
    /// did not sign: forged, guessed, or of a secret since rotated (an
    /// empty or other value claims nothing and is not this).
    Forged,
    /// Signed with the secret, but expired, not yet valid, of a removed
    /// terminal or with other claims: the proof holds, the terminal
    /// does not (the owner's stale device).
    Stale,
}

impl Credentials {
    /// Reads the `authorization` cookies and the `Authorization` headers
    /// once, with one signature check per token at most. When `identify`
    /// is set (no peer signature decided the caller), also returns the
    /// terminal proved by the first cookie that proves one, else by the
    /// first `Authorization` header's bearer token. Cookies are read as
    /// browsers send them, as bytes (RFC 6265 section 5.4): a pair in any
    /// bytes never hides the others.
    pub fn read(
        headers: &HeaderMap,
        terminals: &Terminals,
        now: u64,
        identify: bool,
    ) -> (Credentials, Option<Caller>) {
        let mut found = Credentials::default();
        let mut caller = None;
        let identify = identify && !terminals.is_empty();
        let unproved = |found: &mut Credentials, why: Unproved| {
            // The most telling reason wins: a forged token beside a stale one.
            if found.unproved != Some(Unproved::Forged) {
                found.unproved = Some(why);
            }
        };
        for value in headers.get_all(http::header::COOKIE) {
            for token in cookie_values(value.as_bytes(), TERMINAL_COOKIE) {
                found.terminal_cookie = true;
                if !identify || caller.is_some() {
                    continue;
                }
                // A value that is not text is no token of ours.
                let checked = std::str::from_utf8(token)
                    .map(|t| terminals.check_until(t, now))
                    .unwrap_or((Token::Foreign, None));
                match checked {
                    (Token::Terminal(Some(proved)), exp) => {
                        caller = Some(proved);
                        found.terminal_expires = exp;
                    }
                    (Token::Terminal(None), _) => unproved(&mut found, Unproved::Stale),
                    // A JWT the secret did not sign. An empty or other
                    // value (a logout's `authorization=`) is no credential.
                    (Token::Foreign, _) if is_jwt_shaped(token) => {
                        unproved(&mut found, Unproved::Forged)
                    }
                    (Token::Foreign, _) => {}
                }
            }
        }
        for (i, value) in headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .enumerate()
        {
            // The first header's `Bearer` token, as sent, identifies.
            if i == 0 {
                if let Some(token) = bearer_token(value.as_bytes()) {
                    if let (Token::Terminal(proved), exp) = terminals.check_until(token, now) {
                        found.terminal_authorization.push(i);
                        if identify && caller.is_none() {
                            match proved {
                                Some(proved) => {
                                    caller = Some(proved);
                                    found.terminal_expires = exp;
                                }
                                None => unproved(&mut found, Unproved::Stale),
                            }
                        }
                        continue;
                    }
                }
            }
            // Any other spelling, in any bytes, is removed all the same.
            if terminals.holds_credential(value.as_bytes()) {
                found.terminal_authorization.push(i);
            }
        }
        if caller.is_some() || !identify {
            found.unproved = None;
        }
        (found, caller)
    }
}

/// The token of an `Authorization: Bearer <token>` header value: the
/// scheme in any case, any whitespace around and between.
pub fn bearer_token(authorization: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, token) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The name of a cookie pair (`name=value`, or a bare `name`), its
/// surrounding whitespace trimmed.
fn pair_name(pair: &[u8]) -> &[u8] {
    let name = match memchr::memchr(b'=', pair) {
        Some(at) => &pair[..at],
        None => pair,
    };
    name.trim_ascii()
}

/// Whether a cookie pair is named `name`, in any case.
fn is_named(pair: &[u8], name: &str) -> bool {
    pair_name(pair).eq_ignore_ascii_case(name.as_bytes())
}

/// The values of the cookie `name` (any case) in one `Cookie` header
/// value, as bytes: a browser sends whatever bytes a server set (RFC 6265
/// section 5.4), and one pair in other bytes (`name=José` in Latin-1 or
/// UTF-8) must not hide the others. Pairs are separated by `;` and, as
/// some servers also read them, by `,`; a value loses its surrounding
/// whitespace and double quotes.
pub fn cookie_values<'a>(
    cookie_header: &'a [u8],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    cookie_pairs(cookie_header)
        .filter(move |pair| is_named(pair, name))
        .map(|pair| {
            let value = match memchr::memchr(b'=', pair) {
                Some(at) => &pair[at + 1..],
                None => &[][..],
            };
            trim_quotes(value.trim_ascii())
        })
}

fn trim_quotes(mut value: &[u8]) -> &[u8] {
    while let [b'"', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b'"'] = value {
        value = rest;
    }
    value
}

/// The pairs of a `Cookie` header value, as `split(|b| b == ';' || b ==
/// ',')` gives them, found by `memchr` (every request with a cookie goes
/// through it).
fn cookie_pairs(cookie_header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(cookie_header);
    std::iter::from_fn(move || {
        let bytes = rest?;
        Some(match memchr::memchr2(b';', b',', bytes) {
            Some(at) => {
                rest = Some(&bytes[at + 1..]);
                &bytes[..at]
            }
            None => {
                rest = None;
                bytes
            }
        })
    })
}

/// The `Cookie` header value without the cookie `name` (any case, between
/// `;` or `,`); the other pairs are kept byte for byte as written. `None`
/// when nothing is left.
pub fn remove_cookie(cookie_header: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(cookie_header.len());
    for part in cookie_header.split(|&b| b == b';') {
        let mut kept = Vec::new();
        for pair in part.split(|&b| b == b',').filter(|p| !is_named(p, name)) {
            if !kept.is_empty() {
                kept.push(b',');
            }
            kept.extend_from_slice(pair);
        }
        let kept = kept.trim_ascii();
        if kept.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(kept);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
