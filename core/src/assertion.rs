//! The identity assertion (docs/access.md, "Verifying the assertion"): a
//! compact JWT, signed with EdDSA, that tells an app or the core who is
//! calling, so that it need not trust the network its headers came over.
//!
//! The key is not the identity key but one of its own, derived from it and
//! certified by it ([`AssertionKey`]): the identity key signs only what
//! peers and the ACME controller verify, never a stream of tokens whose
//! format another verifier might one day accept (docs/access.md says why).
//!
//! [`Assertions::for_caller`] keeps each token for a third of its life at
//! most once made, per (audience, caller), so a busy caller costs one
//! signature per app every `2 * ttl / 3` seconds. Pure: the time comes in.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use http::HeaderValue;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::caller::Caller;
use crate::identity::Identity;

/// What the identity key signs to certify the assertion key: this prefix,
/// then the key's `x` (its base64url public key) as published. The newline
/// keeps it from ever being a JWS signing input (base64url and `.` only)
/// or an RFC 9421 signature base (whose lines begin with `"`).
pub const CERTIFICATE_PREFIX: &str = "ptl-assertion-key-v1\n";

/// The HKDF-SHA256 `info` that derives the assertion key's seed from the
/// identity key's: a new version names a new key.
const DERIVATION_INFO: &[u8] = b"portal-proxy assertion key v1";

/// The audience of requests to the Portal core.
pub const CORE_AUDIENCE: &str = "core";

/// Shortest and longest `assertion.ttl_seconds`. At least 3, so that a
/// token reused for two thirds of its life lives a second or more after its
/// last use; at most 60 (the contract: `exp` at most 60 s after `iat`).
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 3..=60;

/// Entries kept in the cache at most; past it, the cache starts over.
const MAX_CACHED: usize = 16_384;

/// The key assertions are signed with, and how it is published.
pub struct AssertionKey {
    /// The public key, raw (the private one is only in `encoding`).
    public: [u8; 32],
    /// The same key as `jsonwebtoken` signs with (PKCS#8 DER).
    encoding: jsonwebtoken::EncodingKey,
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The JWK Set served at `/internal/assertion-keys`.
    pub key_set: String,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl AssertionKey {
    /// The assertion key of `identity`: the same for the same identity key
    /// on every start, so a graceful upgrade (two processes serving at
    /// once) and an app's cached key set never disagree.
    pub fn derive(identity: &Identity) -> AssertionKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[])
            .extract(identity.signing_key.as_bytes());
        prk.expand(&[DERIVATION_INFO], ring::hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut seed[..]))
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let signing = SigningKey::from_bytes(&seed);
        let der = signing
            .to_pkcs8_der()
            .expect("an ed25519 key always encodes as PKCS#8");
        let encoding = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let kid = thumbprint(&x);
        let certificate = identity
            .signing_key
            .sign(format!("{CERTIFICATE_PREFIX}{x}").as_bytes());
        let key_set = serde_json::json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": kid,
            "alg": "EdDSA",
            "use": "sig",
            "ptl_portal_id": identity.id,
            "ptl_portal_key": URL_SAFE_NO_PAD.encode(identity.signing_key.verifying_key().as_bytes()),
            "ptl_certificate": URL_SAFE_NO_PAD.encode(certificate.to_bytes()),
        }]})
        .to_string();
        AssertionKey {
            public: signing.verifying_key().to_bytes(),
            encoding,
            kid,
            key_set,
        }
    }

    /// The public key, raw.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key (RFC 8037 section
/// A.3): SHA-256 of the required members in lexicographic order, base64url.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// How the proxy verified a peer, as the token's `ptl_proof` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerProof {
    /// The request's signature (docs/signing.md).
    Signature,
    /// The signature, over a connection on which the peer proved its
    /// identity key at the TLS handshake (pinned peer TLS).
    SignatureAndTls,
}

impl PeerProof {
    fn claim(self) -> &'static [&'static str] {
        match self {
            PeerProof::Signature => &["signature"],
            PeerProof::SignatureAndTls => &["signature", "tls"],
        }
    }
}

/// The claims of one token (docs/access.md lists them).
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    ptl_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ptl_name: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ptl_proof: &'static [&'static str],
    iat: u64,
    exp: u64,
}

/// A token made, and until when it is handed out.
struct Issued {
    caller: Caller,
    proof: Option<PeerProof>,
    token: HeaderValue,
    /// Made again from this time on (Unix seconds): a third of its life
    /// is then left.
    renew_at: u64,
}

/// Signs assertions for one Portal and keeps them for reuse.
pub struct Assertions {
    key: AssertionKey,
    issuer: String,
    ttl: u64,
    header: jsonwebtoken::Header,
    /// By audience: the live tokens of its callers. Read under the read
    /// lock; a token is made under the write lock, so that callers that
    /// miss together wait for one signature, not make one each.
    cache: RwLock<HashMap<String, Vec<Issued>>>,
}

impl std::fmt::Debug for Assertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertions")
            .field("kid", &self.key.kid)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Assertions {
    /// Tokens of `identity`'s Portal that live `ttl_seconds` (clamped to
    /// [`TTL_RANGE`]; the config refuses others).
    pub fn new(identity: &Identity, ttl_seconds: u64) -> Assertions {
        let key = AssertionKey::derive(identity);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        Assertions {
            key,
            issuer: identity.id.clone(),
            ttl: ttl_seconds.clamp(*TTL_RANGE.start(), *TTL_RANGE.end()),
            header,
            cache: RwLock::default(),
        }
    }

    pub fn key(&self) -> &AssertionKey {
        &self.key
    }

    /// The token for `caller` calling `audience` (an app's name, or
    /// [`CORE_AUDIENCE`]) at `now` (Unix seconds): the cached one while
    /// more than a third of its life is left, else a new one; and whether
    /// it was signed now. `proof`: how a peer was verified (`None` for
    /// other callers).
    pub fn for_caller(
        &self,
        audience: &str,
        caller: &Caller,
        proof: Option<PeerProof>,
        now: u64,
    ) -> (HeaderValue, bool) {
        let live = |cache: &HashMap<String, Vec<Issued>>| {
            cache.get(audience).and_then(|live| {
                live.iter()
                    .find(|i| i.caller == *caller && i.proof == proof && now < i.renew_at)
                    .map(|i| i.token.clone())
            })
        };
        if let Some(token) = live(&self.cache.read().unwrap_or_else(|e| e.into_inner())) {
            return (token, false);
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = live(&cache) {
            return (token, false);
        }
        let token = self.sign(audience, caller, proof, now);
        if cache.values().map(Vec::len).sum::<usize>() >= MAX_CACHED {
            cache.clear();
        }
        let live = cache.entry(audience.to_owned()).or_default();
        live.retain(|i| now < i.renew_at && !(i.caller == *caller && i.proof == proof));
        live.push(Issued {
            caller: caller.clone(),
            proof,
            token: token.clone(),
            renew_at: now + self.ttl - self.ttl / 3,
        });
        (token, true)
    }

    /// A new token (see [`Assertions::for_caller`]).
    pub fn sign(
        &self,
        audience: &str,
        caller: &Caller,
        proof: Option<PeerProof>,
        now: u64,
    ) -> HeaderValue {
        let (ptl_type, id, name) = caller.parts();
        let anonymous = matches!(caller, Caller::Anonymous);
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            sub: (!anonymous).then_some(id),
            ptl_type,
            ptl_name: (!anonymous).then_some(name),
            ptl_proof: match caller {
                Caller::Peer { .. } => proof.unwrap_or(PeerProof::Signature).claim(),
                _ => &[],
            },
            iat: now,
            exp: now + self.ttl,
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key.encoding)
            .expect("claims of strings and numbers always encode; the key is a valid Ed25519 key");
        HeaderValue::from_str(&token).expect("a compact JWT is base64url and '.' only")
    }
}

#[cfg(test)]
#[path = "assertion_tests.rs"]
mod tests;
