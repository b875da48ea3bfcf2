use super::*;

#[test]
fn loads_a_pair_and_refuses_mismatches() {
    let dir = std::env::temp_dir().join(format!("pp-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let demo = demo_certificate("abcdef.example.org").unwrap();
    let (cert, key) = (demo.cert_pem, demo.key_pem);
    let other_key = demo_certificate("abcdef.example.org").unwrap().key_pem;
    let p = |n: &str| dir.join(n);
    std::fs::write(p("cert.pem"), &cert).unwrap();
    std::fs::write(p("key.pem"), &key).unwrap();
    std::fs::write(p("other.pem"), &other_key).unwrap();
    std::fs::write(p("junk.pem"), "junk").unwrap();

    let key = load_certified_key(&p("cert.pem"), &p("key.pem")).unwrap();
    // rcgen's default validity ends in 4096.
    let expires = expiry(&key).unwrap();
    assert!(expires > 4_000_000_000, "{expires}");
    let mismatch = load_certified_key(&p("cert.pem"), &p("other.pem")).unwrap_err();
    assert!(matches!(mismatch, TlsError::Mismatch { .. }), "{mismatch}");
    let no_cert = load_certified_key(&p("junk.pem"), &p("key.pem")).unwrap_err();
    assert!(no_cert.to_string().contains("junk.pem"), "{no_cert}");
    let no_key = load_certified_key(&p("cert.pem"), &p("junk.pem")).unwrap_err();
    assert!(no_key.to_string().contains("private key"), "{no_key}");
    let missing = load_certified_key(&p("missing.pem"), &p("key.pem")).unwrap_err();
    assert!(missing.to_string().contains("missing.pem"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}
