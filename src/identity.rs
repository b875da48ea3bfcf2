//! The identity key file (`portal.key_file`): read at start-up, written by
//! `keygen` and the demo, and fresh keys from the operating system's random
//! source. What a key is and the Portal ID it names are the core's
//! ([`portal_core::identity`], docs/identity.md).

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
mod tests {
    use super::*;
    use portal_core::identity::{portal_id, public_key_from_pem};

    #[test]
    fn key_file_round_trip_and_no_overwrite() {
        let dir = std::env::temp_dir().join(format!("pp-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("identity.pem");
        let _ = std::fs::remove_file(&path);
        let identity = generate();
        write_new(&identity, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        // PKCS#8 v1, as OpenSSL writes Ed25519 keys: 48 bytes of DER,
        // `MC4CAQAw...` in base64.
        let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(b64.starts_with("MC4CAQAw"), "{b64}");
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.id, identity.id);
        assert!(
            write_new(&identity, &path).is_err(),
            "must not overwrite a key"
        );
        let public = public_key_from_pem(&loaded.public_key_pem).unwrap();
        assert_eq!(portal_id(public.as_bytes()), identity.id);
        std::fs::write(&path, "not a key").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("identity.pem") && err.contains("PKCS#8"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
