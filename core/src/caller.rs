//! Who is calling (docs/access.md): the [`Caller`] of a request, and
//! terminal identification from the `authorization` cookie or a bearer
//! token (an HS256 JWT whose `sub` is a terminal of `terminals.json`).
//! Pure; `request_filter` calls [`Terminals::identify`]. The peer caller is
//! decided by signature verification (docs/signing.md) before this runs.
//!
//! The JWT check is done here rather than by `jsonwebtoken::decode`, which
//! rebuilt the HMAC key from the secret, built its validation rules and
//! parsed the claims twice on every request (benches/README.md, tuning
//! log): the HMAC-SHA256 key is prepared once per state load (ring, already
//! the TLS stack's crypto) and the claims are parsed once, after the
//! signature is verified. `jsonwebtoken` stays as the tests' independent
//! encoder and reference decoder.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// The identity a request is served under.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Caller {
    #[default]
    Anonymous,
    /// One of the owner's paired devices.
    Terminal { id: String, name: String },
    /// Another Portal, by its full Portal ID.
    Peer { id: String, name: String },
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
    /// Tells secrets apart without keeping copies: the first 8 bytes of
    /// the secret's SHA-256.
    secret_id: Option<u64>,
    /// HMAC-SHA256 with the secret, prepared once.
    key: Option<hmac::Key>,
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

/// The claims a terminal token is judged by; others are ignored. A token
/// whose claims do not read as this (no `sub` string, `exp` or `nbf` not a
/// number, a claim given twice) proves nothing.
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow)]
    sub: Cow<'a, str>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
}

/// The JOSE header fields that matter: the algorithm, and `crit`, which
/// names extensions the token requires its reader to understand (RFC 7515
/// section 4.1.11): this reader understands none.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Length of a base64url (unpadded) HMAC-SHA256 signature.
const HS256_SIGNATURE_CHARS: usize = 43;

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
            secret_id: secret.map(|s| {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(s);
                u64::from_be_bytes(digest[..8].try_into().expect("8 of 32 bytes"))
            }),
            key: secret.map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)),
            names: entries
                .iter()
                .map(|t| (t.id.clone(), t.name.clone()))
                .collect(),
            entries,
        }
    }

    /// The secret, for keeping it across a reload that fails to read it.
    pub fn secret(&self) -> Option<&[u8]> {
        self.secret.as_deref()
    }

    /// Which secret tokens are checked with (`None`: there is none).
    pub fn secret_id(&self) -> Option<u64> {
        self.secret_id
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

    /// What `token` is to this Portal at `now` (Unix seconds), with one
    /// signature check: not signed with the terminal secret (an app's own
    /// token), or a terminal credential, which proves a terminal when its
    /// header says HS256 and nothing critical, it is not expired, not
    /// before its `nbf`, and its `sub` a terminal that still exists.
    pub fn check(&self, token: &str, now: u64) -> Token {
        self.check_until(token, now).0
    }

    /// [`Terminals::check`], with the `exp` of a token that proves a
    /// terminal: the credential ends then.
    pub fn check_until(&self, token: &str, now: u64) -> (Token, Option<f64>) {
        let Some(key) = self.key.as_ref() else {
            return (Token::Foreign, None);
        };
        match signed_parts(key, token) {
            // Signed with the secret: a credential whatever its claims say.
            Some((header, payload)) => match self.prove(header, payload, now) {
                Some((caller, exp)) => (Token::Terminal(Some(caller)), exp),
                None => (Token::Terminal(None), None),
            },
            None => (Token::Foreign, None),
        }
    }

    /// The terminal a token signed with the secret proves at `now`, and
    /// its `exp`.
    fn prove(&self, header: &str, payload: &str, now: u64) -> Option<(Caller, Option<f64>)> {
        let header = URL_SAFE_NO_PAD.decode(header).ok()?;
        let header: JoseHeader = json_object(&header)?;
        if header.alg != "HS256" || header.crit.is_some() {
            return None;
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let claims: Claims = json_object(&payload)?;
        let now = now as f64;
        if claims.exp.is_some_and(|exp| exp <= now) || claims.nbf.is_some_and(|nbf| nbf > now) {
            return None;
        }
        let (id, name) = self.names.get_key_value(claims.sub.as_ref())?;
        let caller = Caller::Terminal {
            id: id.clone(),
            name: name.clone(),
        };
        Some((caller, claims.exp))
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

    /// Whether a header value (any bytes, text or not) holds a token
    /// signed with the terminal secret in any spelling that a common JWT
    /// library accepts as that token (docs/access.md). Libraries verify
    /// the HMAC over the header and payload exactly as sent, so those must
    /// be the signed bytes; but they decode the signature leniently: PyJWT
    /// (Python's `base64`) and `jose` (Node) accept padding, the standard
    /// alphabet (`+`, `/`), non-zero trailing bits, characters outside the
    /// alphabet (spaces and quotes among them) skipped, and anything after
    /// padding once the signature is whole. So every `<header>.<payload>.`
    /// in the value is a candidate (the header from the start of its base64url
    /// run, or from any `eyJ`, a JSON object's start, within it, for an
    /// app that cuts a scheme glued to it), and what follows is decoded as
    /// [`lenient_signature`] does. One HMAC per candidate whose signature
    /// has the right length; a value with none is the app's.
    pub fn holds_credential(&self, value: &[u8]) -> bool {
        let Some(key) = self.key.as_ref() else {
            return false;
        };
        let mut dots = memchr::memchr_iter(b'.', value);
        let Some(mut first) = dots.next() else {
            return false;
        };
        for second in dots {
            let payload = &value[first + 1..second];
            if payload.iter().all(|&b| is_base64url(b)) {
                if let Some(tag) = lenient_signature(&value[second + 1..]) {
                    let run = value[..first]
                        .iter()
                        .rposition(|&b| !is_base64url(b))
                        .map_or(0, |at| at + 1);
                    let json_starts = memchr::memmem::find_iter(&value[run..first], b"eyJ")
                        .map(|at| run + at)
                        .filter(|&at| at > run);
                    // An empty header is a candidate too (`.<payload>.`):
                    // signed with the secret, it is a credential as well.
                    let signed = std::iter::once(run)
                        .chain(json_starts)
                        .any(|start| hmac::verify(key, &value[start..second], &tag).is_ok());
                    if signed {
                        return true;
                    }
                }
            }
            first = second;
        }
        false
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `value` has a compact JWT's shape: three non-empty parts of
/// base64url digits, separated by dots (whoever signed it).
pub(crate) fn is_jwt_shaped(value: &[u8]) -> bool {
    let mut parts = 0;
    for part in value.split(|&b| b == b'.') {
        if part.is_empty() || !part.iter().all(|&b| is_base64url(b)) {
            return false;
        }
        parts += 1;
    }
    parts == 3
}

/// An HMAC-SHA256 tag as the most lenient base64 decoders read the start
/// of `rest`: the first 43 digits of either alphabet (256 bits, the last
/// 2 ignored), every other byte skipped (padding, spaces, quotes, any
/// byte). Whatever follows the 43 digits is left aside: a library given
/// more digits refuses the token, but an app may cut them off first, and
/// a value holding the signed message with its tag is a credential
/// whatever else it holds.
fn lenient_signature(rest: &[u8]) -> Option<[u8; 32]> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut digits = 0;
    let mut tag = [0u8; 32];
    let mut filled = 0;
    for &b in rest {
        let digit = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => continue,
        };
        bits = bits << 6 | u32::from(digit);
        nbits += 6;
        if nbits >= 8 && filled < tag.len() {
            nbits -= 8;
            tag[filled] = (bits >> nbits) as u8;
            filled += 1;
            bits &= (1 << nbits) - 1;
        }
        digits += 1;
        if digits == HS256_SIGNATURE_CHARS {
            return Some(tag);
        }
    }
    None
}

/// `json` read as `T` when it is a JSON object: a derived `Deserialize`
/// would also take an array, its elements as the fields in order.
fn json_object<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Option<T> {
    if json.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// The encoded header and payload of `token` when it is a compact JWS
/// (three base64url parts) whose signature is HMAC-SHA256 with `key`,
/// compared in constant time; `None` for anything else. Nothing of the
/// token is parsed before its signature is verified.
fn signed_parts<'t>(key: &hmac::Key, token: &'t str) -> Option<(&'t str, &'t str)> {
    let (message, signature) = token.rsplit_once('.')?;
    let (header, payload) = message.split_once('.')?;
    if payload.contains('.') || signature.len() != HS256_SIGNATURE_CHARS {
        return None;
    }
    let mut tag = [0u8; 33];
    let len = URL_SAFE_NO_PAD.decode_slice(signature, &mut tag).ok()?;
    hmac::verify(key, message.as_bytes(), &tag[..len]).ok()?;
    Some((header, payload))
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
#[path = "caller_tests.rs"]
pub(super) mod tests;
