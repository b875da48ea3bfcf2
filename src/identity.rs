//! The identity key file (`portal.key_file`): read at start-up, written by
//! `keygen` and the demo, and fresh keys from the operating system's random
//! source. What a key is and the Portal ID it names are the core's
//! ([`portal_core::identity`], docs/portal-ids.md).

#![forbid(unsafe_code)]

use std::path::Path;

use ed25519_dalek::SigningKey;
use portal_core::identity::Identity;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: not an ed25519 PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----): {reason}"
    )]
    BadKey { path: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Reads a PKCS#8 PEM ed25519 private key.
pub fn load(path: &Path) -> Result<Identity, IdentityError> {
    let pem = std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Identity::from_pkcs8_pem(&pem).map_err(|reason| IdentityError::BadKey {
        path: path.display().to_string(),
        reason,
    })
}

/// A fresh key from the operating system's random source.
pub fn generate() -> Identity {
    Identity::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
}

/// Writes the private key as PKCS#8 PEM, readable by the owner only.
/// Refuses to overwrite an existing file: losing a key loses the Portal's
/// identity.
pub fn write_new(identity: &Identity, path: &Path) -> Result<(), IdentityError> {
    use std::io::Write;
    let err = |source| IdentityError::Write {
        path: path.display().to_string(),
        source,
    };
    let pem = identity.private_key_pem();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(err)?;
    file.write_all(pem.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
