use super::*;
use ed25519_dalek::SigningKey;

#[test]
fn the_identity_certificate_carries_the_identity_key() {
    let identity = Identity::from_signing_key(SigningKey::from_bytes(&[7; 32]));
    let cert = identity_certificate(&identity, "abcdef.example.org").unwrap();
    let key = ed25519_key(cert.cert[0].as_ref()).unwrap();
    assert_eq!(&key, identity.signing_key.verifying_key().as_bytes());
    assert_eq!(portal_id(&key), identity.id);
}

#[test]
fn a_ca_certificate_carries_no_ed25519_key() {
    let demo = super::super::certificates::demo_certificate("abcdef.example.org").unwrap();
    let der = CertificateDer::from_pem_slice(demo.cert_pem.as_bytes()).unwrap();
    let e = ed25519_key(der.as_ref()).unwrap_err();
    assert!(e.contains("not ed25519"), "{e}");
    assert!(ed25519_key(b"junk").unwrap_err().contains("X.509"));
}

use rustls::pki_types::pem::PemObject as _;
