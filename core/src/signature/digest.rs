//! `Content-Digest` (RFC 9530): the digests a body must have, checked
//! whole or as the body streams.

use http::HeaderMap;
use sfv::{BareItem, ListEntry};
use sha2::{Digest, Sha256, Sha512};

use super::{field_dictionary, malformed, SignatureError, CONTENT_DIGEST};

/// The digests a `Content-Digest` field promises (RFC 9530), for the
/// algorithms the proxy knows; at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDigest {
    pub sha256: Option<Vec<u8>>,
    pub sha512: Option<Vec<u8>>,
}

impl ContentDigest {
    /// Parses the request's `Content-Digest`.
    pub fn from_headers(headers: &HeaderMap) -> Result<ContentDigest, SignatureError> {
        let dict = field_dictionary(headers, CONTENT_DIGEST)?
            .ok_or_else(|| SignatureError::MissingComponent(CONTENT_DIGEST.into()))?;
        let bytes = |alg: &str| -> Result<Option<Vec<u8>>, SignatureError> {
            match dict.get(alg) {
                None => Ok(None),
                Some(ListEntry::Item(item)) => match &item.bare_item {
                    BareItem::ByteSequence(b) => Ok(Some(b.clone())),
                    _ => Err(malformed(format!(
                        "Content-Digest {alg} is not a byte sequence"
                    ))),
                },
                Some(ListEntry::InnerList(_)) => {
                    Err(malformed(format!("Content-Digest {alg} is a list")))
                }
            }
        };
        let digest = ContentDigest {
            sha256: bytes("sha-256")?,
            sha512: bytes("sha-512")?,
        };
        if digest.sha256.is_none() && digest.sha512.is_none() {
            return Err(malformed("Content-Digest has neither sha-256 nor sha-512"));
        }
        Ok(digest)
    }

    /// Whether `body` has every digest promised.
    pub fn matches(&self, body: &[u8]) -> bool {
        let ok256 = self
            .sha256
            .as_ref()
            .is_none_or(|d| Sha256::digest(body).as_slice() == d.as_slice());
        let ok512 = self
            .sha512
            .as_ref()
            .is_none_or(|d| Sha512::digest(body).as_slice() == d.as_slice());
        ok256 && ok512
    }

    /// A check of this digest over a body that streams.
    pub fn streaming(self) -> DigestStream {
        DigestStream {
            sha256: self.sha256.as_ref().map(|_| Sha256::new()),
            sha512: self.sha512.as_ref().map(|_| Sha512::new()),
            expected: self,
        }
    }
}

/// [`ContentDigest`] checked chunk by chunk (a peer's answer, passed on
/// as it arrives): nothing is held but the hashers.
pub struct DigestStream {
    expected: ContentDigest,
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

impl DigestStream {
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(h) = self.sha256.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = self.sha512.as_mut() {
            h.update(chunk);
        }
    }

    /// Whether the body streamed has every digest promised.
    pub fn matches(self) -> bool {
        let ok256 = match (self.sha256, &self.expected.sha256) {
            (Some(h), Some(d)) => h.finalize().as_slice() == d.as_slice(),
            _ => true,
        };
        let ok512 = match (self.sha512, &self.expected.sha512) {
            (Some(h), Some(d)) => h.finalize().as_slice() == d.as_slice(),
            _ => true,
        };
        ok256 && ok512
    }
}
