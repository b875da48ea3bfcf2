use super::*;
use std::os::unix::fs::PermissionsExt as _;

#[test]
fn replaces_with_the_mode_asked() {
    let dir = std::env::temp_dir().join(format!("pp-acme-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    std::fs::write(&key, "old").unwrap();
    write_atomically(&key, b"new", 0o600).unwrap();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "new");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let missing = write_atomically(&dir.join("no/such/dir.pem"), b"x", 0o600).unwrap_err();
    assert!(missing.contains("no/such/dir.pem"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}
