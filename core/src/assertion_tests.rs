use super::*;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};

fn identity(seed: u8) -> Identity {
    Identity::from_signing_key(SigningKey::from_bytes(&[seed; 32]))
}

fn terminal() -> Caller {
    Caller::Terminal {
        id: "t1".into(),
        name: "Phone \"é\"".into(),
    }
}

fn peer() -> Caller {
    Caller::Peer {
        id: identity(9).id,
        name: "Friend".into(),
    }
}

/// Verifies `token` as an app would, with the published key, the Portal
/// ID as issuer and `aud`, at the real time: its claims.
fn verified(assertions: &Assertions, token: &HeaderValue, aud: &str) -> serde_json::Value {
    let x = URL_SAFE_NO_PAD.encode(assertions.key().public_key());
    let key = DecodingKey::from_ed_components(&x).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[&assertions.issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    validation.validate_exp = false;
    decode::<serde_json::Value>(token.to_str().unwrap(), &key, &validation)
        .unwrap()
        .claims
}

#[test]
fn each_caller_gets_its_type_id_and_name_and_anonymous_no_sub() {
    let portal = identity(1);
    let a = Assertions::new(&portal, 60);
    let peer_id = identity(9).id;
    let table = [
        (Caller::Anonymous, None, "anonymous", None, None, None),
        (
            terminal(),
            None,
            "terminal",
            Some("t1"),
            Some("Phone \"é\""),
            None,
        ),
        (
            peer(),
            Some(PeerProof::Signature),
            "peer",
            Some(peer_id.as_str()),
            Some("Friend"),
            Some(vec!["signature"]),
        ),
        (
            peer(),
            Some(PeerProof::SignatureAndTls),
            "peer",
            Some(peer_id.as_str()),
            Some("Friend"),
            Some(vec!["signature", "tls"]),
        ),
    ];
    for (caller, proof, ptl_type, sub, name, proofs) in table {
        let token = a.sign("photos", &caller, proof, 1_000);
        let claims = verified(&a, &token, "photos");
        let expected_sub = sub.map(|s| s.to_string());
        assert_eq!(claims["iss"], portal.id);
        assert_eq!(claims["aud"], "photos");
        assert_eq!(claims["ptl_type"], ptl_type, "{caller:?}");
        assert_eq!(claims["sub"].as_str().map(str::to_string), expected_sub);
        assert_eq!(claims["ptl_name"].as_str(), name);
        assert_eq!(
            claims.get("ptl_proof").map(|p| p.as_array().unwrap().len()),
            proofs.as_ref().map(Vec::len)
        );
        if let Some(proofs) = proofs {
            assert_eq!(claims["ptl_proof"], serde_json::json!(proofs));
        }
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["exp"], 1_060);
        let header = decode_header(token.to_str().unwrap()).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(a.key().kid.as_str()));
    }
}

#[test]
fn a_token_is_reused_until_a_third_of_its_life_is_left_per_audience_and_caller() {
    let a = Assertions::new(&identity(1), 60);
    let (first, signed) = a.for_caller("photos", &terminal(), None, 1_000);
    assert!(signed);
    // Reused up to 40 s in, not at 40 s.
    assert_eq!(
        a.for_caller("photos", &terminal(), None, 1_039),
        (first.clone(), false)
    );
    let renewed = a.for_caller("photos", &terminal(), None, 1_040).0;
    assert_ne!(renewed, first);
    assert_eq!(verified(&a, &renewed, "photos")["iat"], 1_040);
    assert_eq!(a.for_caller("photos", &terminal(), None, 1_079).0, renewed);
    // Another audience, caller or proof is another token.
    let others = [
        a.for_caller("notes", &terminal(), None, 1_041).0,
        a.for_caller("photos", &Caller::Anonymous, None, 1_041).0,
        a.for_caller("photos", &peer(), Some(PeerProof::Signature), 1_041)
            .0,
        a.for_caller("photos", &peer(), Some(PeerProof::SignatureAndTls), 1_041)
            .0,
        a.for_caller(
            "photos",
            &Caller::Terminal {
                id: "t1".into(),
                name: "Renamed".into(),
            },
            None,
            1_041,
        )
        .0,
    ];
    for (i, token) in others.iter().enumerate() {
        assert_ne!(*token, renewed, "{i}");
        for other in &others[i + 1..] {
            assert_ne!(token, other);
        }
    }
    assert_eq!(verified(&a, &others[0], "notes")["aud"], "notes");
    // A short life is renewed as soon: 3 s lives 2 s in the cache.
    let short = Assertions::new(&identity(1), 3);
    let t = short.for_caller("photos", &terminal(), None, 500).0;
    assert_eq!(short.for_caller("photos", &terminal(), None, 501).0, t);
    assert_ne!(short.for_caller("photos", &terminal(), None, 502).0, t);
}

#[test]
fn the_cache_forgets_what_it_no_longer_hands_out() {
    let a = Assertions::new(&identity(1), 60);
    for i in 0..100 {
        let caller = Caller::Terminal {
            id: format!("t{i}"),
            name: "n".into(),
        };
        a.for_caller("photos", &caller, None, 1_000);
    }
    assert_eq!(a.cache.read().unwrap()["photos"].len(), 100);
    // Renewing one drops the others that are due.
    a.for_caller("photos", &terminal(), None, 1_040);
    assert_eq!(a.cache.read().unwrap()["photos"].len(), 1);
}

#[test]
fn the_key_is_derived_certified_by_the_identity_key_and_published() {
    let portal = identity(1);
    let key = AssertionKey::derive(&portal);
    // Not the identity key, the same on every start, another per Portal.
    assert_ne!(
        key.public_key(),
        portal.signing_key.verifying_key().to_bytes()
    );
    assert_eq!(
        AssertionKey::derive(&identity(1)).public_key(),
        key.public_key()
    );
    assert_ne!(
        AssertionKey::derive(&identity(2)).public_key(),
        key.public_key()
    );
    let set: serde_json::Value = serde_json::from_str(&key.key_set).unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], key.kid);
    let x = jwk["x"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(x).unwrap(), key.public_key());
    // The identity key in the set is the one the Portal ID names, and it
    // signed the prefix and `x`.
    let portal_key = URL_SAFE_NO_PAD
        .decode(jwk["ptl_portal_key"].as_str().unwrap())
        .unwrap();
    let portal_key: [u8; 32] = portal_key.try_into().unwrap();
    assert_eq!(crate::identity::portal_id(&portal_key), portal.id);
    assert_eq!(jwk["ptl_portal_id"], portal.id);
    let certificate = URL_SAFE_NO_PAD
        .decode(jwk["ptl_certificate"].as_str().unwrap())
        .unwrap();
    let certificate = Signature::from_slice(&certificate).unwrap();
    let verifier = VerifyingKey::from_bytes(&portal_key).unwrap();
    let message = format!("ptl-assertion-key-v1\n{x}");
    assert!(verifier.verify(message.as_bytes(), &certificate).is_ok());
    // Of that message only: not of `x` alone, not of another key.
    assert!(verifier.verify(x.as_bytes(), &certificate).is_err());
    let other_x = URL_SAFE_NO_PAD.encode(AssertionKey::derive(&identity(2)).public_key());
    let forged = format!("ptl-assertion-key-v1\n{other_x}");
    assert!(verifier.verify(forged.as_bytes(), &certificate).is_err());
}

/// RFC 8037 appendix A.3: the thumbprint of its example key.
#[test]
fn the_kid_is_the_rfc_7638_thumbprint() {
    assert_eq!(
        thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn a_token_signed_by_another_key_or_altered_does_not_verify() {
    let a = Assertions::new(&identity(1), 60);
    let stranger = Assertions::new(&identity(2), 60);
    let x = URL_SAFE_NO_PAD.encode(a.key().public_key());
    let key = DecodingKey::from_ed_components(&x).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["photos"]);
    validation.validate_exp = false;
    let forged = stranger.sign("photos", &terminal(), None, 1_000);
    assert!(decode::<serde_json::Value>(forged.to_str().unwrap(), &key, &validation).is_err());
    // The anonymous token's claims swapped for a terminal's.
    let anonymous = a.sign("photos", &Caller::Anonymous, None, 1_000);
    let term = a.sign("photos", &terminal(), None, 1_000);
    let (a_parts, t_parts): (Vec<_>, Vec<_>) = (
        anonymous.to_str().unwrap().split('.').collect(),
        term.to_str().unwrap().split('.').collect(),
    );
    let spliced = format!("{}.{}.{}", a_parts[0], t_parts[1], a_parts[2]);
    assert!(decode::<serde_json::Value>(&spliced, &key, &validation).is_err());
}
