//! The Portal's ed25519 identity and Portal IDs (docs/identity.md).
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
mod tests {
    use super::*;

    /// RFC 8032 section 7.1, TEST 1: a key anyone can check.
    const RFC8032_SECRET: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];

    /// Reference encoder written the slow, obvious way: the bit string of the
    /// digest, cut into 5-bit groups, right-padded with zeros.
    fn reference_id(public_key: &[u8; 32]) -> String {
        let digest = Sha512::digest(public_key);
        let mut bits: String = digest.iter().map(|b| format!("{b:08b}")).collect();
        while !bits.len().is_multiple_of(5) {
            bits.push('0');
        }
        bits.as_bytes()
            .chunks(5)
            .map(|c| {
                let v = usize::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap();
                ALPHABET[v] as char
            })
            .collect()
    }

    #[test]
    fn known_key_gives_known_id() {
        let key = SigningKey::from_bytes(&RFC8032_SECRET);
        let public = key.verifying_key();
        // The RFC's public key, so the input of the ID is not in doubt.
        assert_eq!(
            public.as_bytes()[..4],
            [0xd7, 0x5a, 0x98, 0x01],
            "RFC 8032 TEST 1 public key"
        );
        let id = portal_id(public.as_bytes());
        // Pinned (computed independently with Python's hashlib): a change of
        // this value breaks every Portal's domain.
        assert_eq!(
            id,
            "b2bllavf0w7lygfaj6hqxs8h5tbw8f3e7ap8j8vd2x3pgn5za2eyrcnjtlk6j8ralqg89y7kvqbtegd2a3jv1a9vfl41nzayj72lxt2"
        );
        assert_eq!(id, reference_id(public.as_bytes()));
        assert_eq!(short_id(&id), "b2blla");
    }

    #[test]
    fn ids_have_103_characters_of_the_alphabet() {
        for _ in 0..64 {
            let identity = Identity::generate();
            assert_eq!(identity.id.len(), PORTAL_ID_LEN);
            assert!(is_portal_id(&identity.id), "{}", identity.id);
            for banned in ['i', 'm', 'o', 'u'] {
                assert!(!identity.id.contains(banned));
            }
            assert_eq!(
                identity.id,
                reference_id(identity.signing_key.verifying_key().as_bytes())
            );
            // The last character carries 2 bits: its 3 low bits are padding.
            let last = identity.id.as_bytes()[PORTAL_ID_LEN - 1];
            let value = ALPHABET.iter().position(|&c| c == last).unwrap();
            assert_eq!(value & 0b111, 0);
        }
    }

    #[test]
    fn is_portal_id_rejects_wrong_shapes() {
        let id = Identity::generate().id;
        assert!(is_portal_id(&id));
        assert!(!is_portal_id(&id[..102]));
        assert!(!is_portal_id(&format!("{}a", id)));
        assert!(!is_portal_id(&id.replacen(&id[..1], "i", 1)));
        assert!(!is_portal_id(&id.to_uppercase()));
    }
}
