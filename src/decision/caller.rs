//! Who is calling (DESIGN section 4): the [`Caller`] of a request, and
//! terminal identification from the `authorization` cookie or a bearer
//! token (an HS256 JWT whose `sub` is a terminal of `terminals.json`).
//! Pure; `request_filter` calls [`Terminals::identify`]. The peer caller is
//! decided by signature verification (section 5) before this runs.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The identity a request is served under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// One of the owner's paired devices.
    Terminal {
        id: String,
        name: String,
    },
    /// Another Portal, by its full Portal ID.
    Peer {
        id: String,
        name: String,
    },
}

impl Caller {
    /// `auth.client_type`.
    pub fn client_type(&self) -> &'static str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Terminal { .. } => "terminal",
            Caller::Peer { .. } => "peer",
        }
    }

    /// `(client_type, client_id, client_name)` as templates see them.
    pub fn parts(&self) -> (&'static str, &str, &str) {
        match self {
            Caller::Anonymous => ("anonymous", "", ""),
            Caller::Terminal { id, name } | Caller::Peer { id, name } => {
                (self.client_type(), id, name)
            }
        }
    }

    /// One caller of each kind with the longest values it can have, for
    /// checking templates at load time.
    pub fn samples() -> [Caller; 3] {
        [
            Caller::Anonymous,
            Caller::Terminal {
                id: "t".repeat(MAX_NAME_BYTES),
                name: "n".repeat(MAX_NAME_BYTES),
            },
            Caller::Peer {
                id: "a".repeat(crate::identity::PORTAL_ID_LEN),
                name: "n".repeat(MAX_NAME_BYTES),
            },
        ]
    }
}

/// Longest terminal ID, terminal name or peer name accepted from the
/// state files: what header templates render is bounded by it.
pub const MAX_NAME_BYTES: usize = 256;

/// The name of the cookie that carries a terminal's JWT.
pub const TERMINAL_COOKIE: &str = "authorization";

/// The owner's paired devices and the secret their tokens are signed with.
pub struct Terminals {
    secret: Option<Vec<u8>>,
    key: Option<DecodingKey>,
    entries: Vec<TerminalEntry>,
    /// id -> name.
    names: HashMap<String, String>,
}

impl std::fmt::Debug for Terminals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Terminals")
            .field("has_secret", &self.key.is_some())
            .field("count", &self.names.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
}

/// One entry of `terminals.json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TerminalEntry {
    pub id: String,
    pub name: String,
}

impl Default for Terminals {
    fn default() -> Self {
        Terminals::new(None, Vec::new())
    }
}

impl Terminals {
    /// `secret` is the content of `terminal_jwt_secret`, trailing newline
    /// already trimmed; `None` when there is none (no terminal can sign in).
    pub fn new(secret: Option<&[u8]>, entries: Vec<TerminalEntry>) -> Self {
        let secret = secret.filter(|s| !s.is_empty());
        Terminals {
            secret: secret.map(<[u8]>::to_vec),
            key: secret.map(DecodingKey::from_secret),
            names: entries
                .iter()
                .map(|t| (t.id.clone(), t.name.clone()))
                .collect(),
            entries,
        }
    }

    /// The secret, for keeping it across a reload that fails to read it.
    pub(crate) fn secret(&self) -> Option<&[u8]> {
        self.secret.as_deref()
    }

    /// The entries of `terminals.json` as loaded.
    pub fn entries(&self) -> &[TerminalEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether a terminal of this id is paired.
    pub fn contains(&self, id: &str) -> bool {
        self.names.contains_key(id)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn validation() -> Validation {
        let mut v = Validation::new(Algorithm::HS256);
        // `exp` and `nbf` are checked below, as numbers of any JSON kind.
        v.validate_exp = false;
        v.required_spec_claims.clear();
        v
    }

    /// What `token` is to this Portal at `now` (Unix seconds), with one
    /// signature check: not signed with the terminal secret (an app's own
    /// token), or a terminal credential, which proves a terminal when it
    /// is not expired, not before its `nbf`, and its `sub` a terminal that
    /// still exists.
    pub fn check(&self, token: &str, now: u64) -> Token {
        let Some(key) = self.key.as_ref() else {
            return Token::Foreign;
        };
        // Decoded as any JSON first: a token signed with the secret is a
        // credential whatever its claims say.
        let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(token, key, &Self::validation())
        else {
            return Token::Foreign;
        };
        let Ok(claims) = serde_json::from_value::<Claims>(data.claims) else {
            return Token::Terminal(None);
        };
        let now = now as f64;
        if claims.exp.is_some_and(|exp| exp <= now) || claims.nbf.is_some_and(|nbf| nbf > now) {
            return Token::Terminal(None);
        }
        Token::Terminal(self.names.get(&claims.sub).map(|name| Caller::Terminal {
            id: claims.sub,
            name: name.clone(),
        }))
    }

    /// The terminal `token` proves at `now`; anything else is `None`: the
    /// caller is then anonymous, never refused.
    pub fn identify(&self, token: &str, now: u64) -> Option<Caller> {
        match self.check(token, now) {
            Token::Terminal(caller) => caller,
            Token::Foreign => None,
        }
    }

    /// Whether `token` is a terminal credential (signed with the secret,
    /// whatever its claims say): such a token never reaches an app.
    pub fn is_credential(&self, token: &str) -> bool {
        matches!(self.check(token, 0), Token::Terminal(_))
    }
}

/// What a token found in a request is (see [`Terminals::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Not signed with the terminal secret: an app's own token, kept.
    Foreign,
    /// Signed with the terminal secret, so never sent to an app; the
    /// terminal it proves, if it still proves one.
    Terminal(Option<Caller>),
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    pub(crate) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    pub(crate) const NOW: u64 = 1_800_000_000;

    fn token(claims: serde_json::Value, secret: &[u8], alg: Algorithm) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    /// The secret and one terminal, `t1` named `Laptop`.
    pub(crate) fn terminals() -> Terminals {
        Terminals::new(
            Some(SECRET),
            vec![TerminalEntry {
                id: "t1".into(),
                name: "Laptop".into(),
            }],
        )
    }

    #[test]
    fn terminal_tokens() {
        let t = terminals();
        let hs = |c| token(c, SECRET, Algorithm::HS256);
        let laptop = Some(Caller::Terminal {
            id: "t1".into(),
            name: "Laptop".into(),
        });
        let cases: Vec<(&str, String, Option<Caller>)> = vec![
            ("no exp", hs(json!({"sub": "t1"})), laptop.clone()),
            (
                "future exp",
                hs(json!({"sub": "t1", "exp": NOW + 60})),
                laptop.clone(),
            ),
            (
                "float exp",
                hs(json!({"sub": "t1", "exp": NOW as f64 + 0.5})),
                laptop.clone(),
            ),
            ("past exp", hs(json!({"sub": "t1", "exp": NOW - 1})), None),
            ("exp now", hs(json!({"sub": "t1", "exp": NOW})), None),
            (
                "exp not a number",
                hs(json!({"sub": "t1", "exp": "never"})),
                None,
            ),
            (
                "future nbf",
                hs(json!({"sub": "t1", "nbf": NOW + 60})),
                None,
            ),
            ("unknown terminal", hs(json!({"sub": "t2"})), None),
            ("no sub", hs(json!({"name": "t1"})), None),
            (
                "other secret",
                token(json!({"sub": "t1"}), b"other", Algorithm::HS256),
                None,
            ),
            (
                "HS512",
                token(json!({"sub": "t1"}), SECRET, Algorithm::HS512),
                None,
            ),
            ("garbage", "a.b.c".into(), None),
            (
                "alg none",
                // {"alg":"none"}.{"sub":"t1"}.
                "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0MSJ9.".into(),
                None,
            ),
        ];
        for (what, tok, want) in cases {
            assert_eq!(t.identify(&tok, NOW), want, "{what}");
        }
        // Without a secret nobody is a terminal.
        let no_secret = Terminals::new(
            None,
            vec![TerminalEntry {
                id: "t1".into(),
                name: "x".into(),
            }],
        );
        assert_eq!(no_secret.identify(&hs(json!({"sub": "t1"})), NOW), None);
        assert!(!no_secret.is_credential(&hs(json!({"sub": "t1"}))));
    }

    #[test]
    fn credentials_are_recognized_whatever_their_claims() {
        let t = terminals();
        let expired = token(json!({"sub": "gone", "exp": 1}), SECRET, Algorithm::HS256);
        assert!(t.is_credential(&expired));
        let foreign = token(json!({"sub": "t1"}), b"app's own", Algorithm::HS256);
        assert!(!t.is_credential(&foreign));
        assert!(!t.is_credential("opaque-api-token"));
    }
}
