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
