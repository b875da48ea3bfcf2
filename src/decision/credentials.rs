//! The terminal credentials a request carries (DESIGN sections 4 and 6),
//! read once: the terminal they prove, and what must be removed before the
//! request reaches an app. Pure; [`super::decide`] reads them, the HTTPS
//! shell strips what they name.

use http::HeaderMap;

use super::caller::{bearer_token, cookie_values, Caller, Terminals, Token, TERMINAL_COOKIE};

/// Which terminal credentials the request carries, for stripping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credentials {
    /// A `Cookie` header holds an `authorization` cookie, or cannot be read
    /// as text: the `Cookie` headers are rewritten without it.
    pub terminal_cookie: bool,
    /// The `Authorization` header's bearer token is signed with the
    /// terminal secret (whatever its claims): the header is removed.
    pub terminal_bearer: bool,
}

impl Credentials {
    /// Reads the `authorization` cookies and the bearer token once, with
    /// one signature check each at most. When `identify` is set (no peer
    /// signature decided the caller), also returns the terminal proved by
    /// the first cookie that proves one, else by the bearer token.
    pub fn read(
        headers: &HeaderMap,
        terminals: &Terminals,
        now: u64,
        identify: bool,
    ) -> (Credentials, Option<Caller>) {
        let mut found = Credentials::default();
        let mut caller = None;
        let identify = identify && !terminals.is_empty();
        for value in headers.get_all(http::header::COOKIE) {
            let Ok(text) = value.to_str() else {
                // Cannot be parsed: dropped whole when forwarding.
                found.terminal_cookie = true;
                continue;
            };
            for token in cookie_values(text, TERMINAL_COOKIE) {
                found.terminal_cookie = true;
                if identify && caller.is_none() {
                    caller = terminals.identify(token, now);
                }
            }
        }
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| bearer_token(v.as_bytes()));
        if let Some(token) = bearer {
            if let Token::Terminal(proved) = terminals.check(token, now) {
                found.terminal_bearer = true;
                if identify && caller.is_none() {
                    caller = proved;
                }
            }
        }
        (found, caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::caller::tests::{terminals, NOW, SECRET};
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn token(sub: &str, secret: &[u8]) -> String {
        encode(
            &Header::default(),
            &serde_json::json!({ "sub": sub }),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn what_is_found_and_who_it_proves() {
        let ours = token("t1", SECRET);
        let revoked = token("gone", SECRET);
        let foreign = token("t1", b"the app's own secret");
        let laptop = Some(Caller::Terminal {
            id: "t1".into(),
            name: "Laptop".into(),
        });
        let cookie = |t: &str| format!("theme=dark; authorization={t}").into_bytes();
        let bearer = |t: &str| format!("Bearer {t}").into_bytes();
        let (c, b) = (true, true);
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<(&str, Vec<u8>)>, Credentials, Option<Caller>)> = vec![
            ("nothing", vec![], Credentials::default(), None),
            (
                "terminal cookie",
                vec![("cookie", cookie(&ours))],
                Credentials {
                    terminal_cookie: c,
                    terminal_bearer: false,
                },
                laptop.clone(),
            ),
            (
                // Any `authorization` cookie is stripped, valid or not.
                "revoked cookie",
                vec![("cookie", cookie(&revoked))],
                Credentials {
                    terminal_cookie: c,
                    terminal_bearer: false,
                },
                None,
            ),
            (
                "terminal bearer",
                vec![("authorization", bearer(&ours))],
                Credentials {
                    terminal_cookie: false,
                    terminal_bearer: b,
                },
                laptop.clone(),
            ),
            (
                // Signed with the secret: a credential even when revoked.
                "revoked bearer",
                vec![("authorization", bearer(&revoked))],
                Credentials {
                    terminal_cookie: false,
                    terminal_bearer: b,
                },
                None,
            ),
            (
                "the app's own bearer token",
                vec![("authorization", bearer(&foreign))],
                Credentials::default(),
                None,
            ),
            (
                "basic auth",
                vec![("authorization", b"Basic dXNlcjpwYXNz".to_vec())],
                Credentials::default(),
                None,
            ),
            (
                "a bad cookie first, the bearer proves",
                vec![
                    ("cookie", cookie(&revoked)),
                    ("authorization", bearer(&ours)),
                ],
                Credentials {
                    terminal_cookie: c,
                    terminal_bearer: b,
                },
                laptop.clone(),
            ),
            (
                "second cookie header proves",
                vec![("cookie", b"a=1".to_vec()), ("cookie", cookie(&ours))],
                Credentials {
                    terminal_cookie: c,
                    terminal_bearer: false,
                },
                laptop.clone(),
            ),
            (
                "unreadable cookie header",
                vec![("cookie", b"a=\xff".to_vec())],
                Credentials {
                    terminal_cookie: c,
                    terminal_bearer: false,
                },
                None,
            ),
        ];
        for (what, pairs, want, who) in cases {
            let pairs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (*k, &v[..])).collect();
            let h = headers(&pairs);
            assert_eq!(
                Credentials::read(&h, &terminals(), NOW, true),
                (want, who),
                "{what}"
            );
            // A peer's request: the same stripping, nobody identified.
            assert_eq!(
                Credentials::read(&h, &terminals(), NOW, false),
                (want, None),
                "{what} (peer)"
            );
        }
    }
}
