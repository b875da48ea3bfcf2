//! The Portal's ed25519 identity and Portal IDs (docs/portal-ids.md).
//!
//! Used wherever a Portal ID is derived from a public key (`peers.json`
//! validation, the signature `keyid`). Reading and writing the key file is
//! the binary's (`portal_proxy::identity`): nothing here opens a file or
//! draws randomness.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

/// The 32 characters of a Portal ID: no `i`, `m`, `o`, `u`.
pub const ALPHABET: &[u8; 32] = b"abcdefghjklnpqrstvwxyz0123456789";
/// 512 bits at 5 bits a character, rounded up.
pub const PORTAL_ID_LEN: usize = 103;
/// Characters of the Portal ID that name the Portal's domain.
pub const SHORT_ID_LEN: usize = 6;

/// Portal ID of a raw ed25519 public key: SHA-512 of the 32 key bytes, 5 bits
/// a character, most significant bit first, last character zero-padded.
pub fn portal_id(public_key: &[u8; 32]) -> String {
    let digest = Sha512::digest(public_key);
    let mut out = String::with_capacity(PORTAL_ID_LEN);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &byte in digest.iter() {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 0x1f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 0x1f) as usize] as char);
    }
    out
}

/// The first [`SHORT_ID_LEN`] characters of a Portal ID.
pub fn short_id(portal_id: &str) -> &str {
    &portal_id[..SHORT_ID_LEN.min(portal_id.len())]
}

/// Whether `s` has the shape of a Portal ID (length and alphabet).
pub fn is_portal_id(s: &str) -> bool {
    s.len() == PORTAL_ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// The Portal's own key pair and the names derived from it.
pub struct Identity {
    pub signing_key: SigningKey,
    pub id: String,
    pub public_key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

impl Identity {
    pub fn from_signing_key(signing_key: SigningKey) -> Self {
        let verifying = signing_key.verifying_key();
        let id = portal_id(verifying.as_bytes());
        let public_key_pem = verifying
            .to_public_key_pem(LineEnding::LF)
            .expect("an ed25519 public key always encodes as SPKI");
        Identity {
            signing_key,
            id,
            public_key_pem,
        }
    }

    /// Parses a PKCS#8 PEM ed25519 private key; the error says why not.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, String> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
        Ok(Self::from_signing_key(key))
    }

    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// The private key as PKCS#8 v1 PEM (RFC 8410: the seed only), the form
    /// `openssl genpkey -algorithm ed25519` writes. Not v2 (with the public
    /// key): OpenSSL 3.0 and Python's `cryptography` cannot read that.
    pub fn private_key_pem(&self) -> zeroize::Zeroizing<String> {
        KeypairBytes {
            secret_key: self.signing_key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 key always encodes as PKCS#8")
    }
}

/// Parses an SPKI PEM ed25519 public key (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| e.to_string())
}

/// A fresh identity for the tests of this crate.
#[cfg(test)]
impl Identity {
    pub(crate) fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
