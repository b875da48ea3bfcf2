use super::*;
use crate::identity::Identity;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;

fn entry(id: &str, pem: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"{id}","name":"peer","public_key":{}{extra}}}"#,
        serde_json::to_string(pem).unwrap()
    )
}

#[test]
fn entries_are_checked_against_their_key() {
    let a = Identity::generate();
    let b = Identity::generate();
    // The identity point: small order, hence weak.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let weak = VerifyingKey::from_bytes(&weak).unwrap();
    let weak_pem = weak.to_public_key_pem(LineEnding::LF).unwrap();
    let list = format!(
        "[{},{},{},{},{},{},{}]",
        entry(
            &a.id,
            &a.public_key_pem,
            r#","address":"10.0.0.2:8443","unknown":1"#
        ),
        entry(&b.id, &a.public_key_pem, ""),
        entry(&portal_id(weak.as_bytes()), &weak_pem, ""),
        entry("short", &b.public_key_pem, ""),
        entry(&b.id, "not pem", ""),
        entry(&a.id, &a.public_key_pem, ""),
        entry(&b.id, &b.public_key_pem, r#","address":"nope""#),
    );
    let (peers, errors) = Peers::parse(list.as_bytes()).unwrap();
    assert_eq!(peers.len(), 1);
    let peer = peers.get(&a.id).unwrap();
    assert_eq!(peer.address.as_ref().unwrap().to_string(), "10.0.0.2:8443");
    let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 6, "{reasons:#?}");
    assert!(reasons[0].starts_with("[1]") && reasons[0].contains("does not derive"));
    assert!(reasons[1].starts_with("[2]") && reasons[1].contains("weak"));
    assert!(reasons[2].starts_with("[3]") && reasons[2].contains("not a Portal ID"));
    assert!(reasons[3].starts_with("[4]") && reasons[3].contains("SPKI"));
    assert!(reasons[4].starts_with("[5]") && reasons[4].contains("twice"));
    assert!(reasons[5].starts_with("[6]") && reasons[5].contains("address"));
    for bad in ["{}", "[{\"id\":1}]", "[", "[{\"id\":\"x\",\"name\":\"n\"}]"] {
        assert!(Peers::parse(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn lookup_by_id_or_unique_prefix() {
    let ids: Vec<Identity> = (0..40).map(|_| Identity::generate()).collect();
    let list = format!(
        "[{}]",
        ids.iter()
            .map(|i| entry(&i.id, &i.public_key_pem, ""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (peers, errors) = Peers::parse(list.as_bytes()).unwrap();
    assert!(errors.is_empty());
    let first = &ids[0].id;
    assert!(matches!(peers.lookup(first), Lookup::Found(p) if &p.id == first));
    assert!(matches!(peers.lookup(&first[..40]), Lookup::Found(p) if &p.id == first));
    assert!(
        matches!(peers.lookup(&first[..5]), Lookup::Unknown),
        "too short a prefix"
    );
    assert!(matches!(peers.lookup("zzzzzzzz"), Lookup::Unknown));
    // 40 IDs over 31 possible first characters: two share a prefix. Real
    // IDs sharing 6 characters are too rare to generate, so the
    // ambiguity rule is checked with a 1-character minimum.
    let (a, b) = ids
        .iter()
        .flat_map(|x| ids.iter().map(move |y| (x, y)))
        .find(|(x, y)| x.id != y.id && x.id[..1] == y.id[..1])
        .unwrap();
    let common =
        a.id.chars()
            .zip(b.id.chars())
            .take_while(|(p, q)| p == q)
            .count();
    let sharing = ids
        .iter()
        .filter(|i| i.id.starts_with(&a.id[..common]))
        .count();
    assert!(
        matches!(peers.lookup_with_min(&a.id[..common], 1), Lookup::Ambiguous(n) if n == sharing)
    );
    // The shortest prefix only `a` has (a third ID may share more).
    let unique = (common + 1..=a.id.len())
        .find(|&k| ids.iter().filter(|i| i.id.starts_with(&a.id[..k])).count() == 1)
        .unwrap();
    assert!(matches!(peers.lookup_with_min(&a.id[..unique], 1), Lookup::Found(p) if p.id == a.id));
}
