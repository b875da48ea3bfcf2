//! Writing what ACME obtained: each file replaced atomically (a temporary
//! file in the same folder, synced, then renamed over the old one), so
//! that the reloader never reads half a certificate; the private key and
//! the account's credentials with mode 0600 from their first byte.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use super::order::Issued;

/// Replaces `path` with `content`, created with `mode`.
pub(super) fn write_atomically(path: &Path, content: &[u8], mode: u32) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself survives a crash once the folder is synced.
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Writes the key (0600) first, then the chain (0644): the reloader loads
/// the pair once both are in place (a key beside its old certificate is a
/// mismatch it refuses, keeping the certificate in service).
pub(super) fn write_certificate(
    cert_file: &Path,
    key_file: &Path,
    issued: &Issued,
) -> Result<(), String> {
    write_atomically(key_file, issued.key_pem.as_bytes(), 0o600)?;
    write_atomically(cert_file, issued.chain_pem.as_bytes(), 0o644)
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
