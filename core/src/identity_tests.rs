use super::*;

/// RFC 8032 section 7.1, TEST 1: a key anyone can check.
const RFC8032_SECRET: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

/// Reference encoder written the slow, obvious way: the bit string of the
/// digest, cut into 5-bit groups, right-padded with zeros.
fn reference_id(public_key: &[u8; 32]) -> String {
    let digest = Sha512::digest(public_key);
    let mut bits: String = digest.iter().map(|b| format!("{b:08b}")).collect();
    while !bits.len().is_multiple_of(5) {
        bits.push('0');
    }
    bits.as_bytes()
        .chunks(5)
        .map(|c| {
            let v = usize::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap();
            ALPHABET[v] as char
        })
        .collect()
}

#[test]
fn known_key_gives_known_id() {
    let key = SigningKey::from_bytes(&RFC8032_SECRET);
    let public = key.verifying_key();
    // The RFC's public key, so the input of the ID is not in doubt.
    assert_eq!(
        public.as_bytes()[..4],
        [0xd7, 0x5a, 0x98, 0x01],
        "RFC 8032 TEST 1 public key"
    );
    let id = portal_id(public.as_bytes());
    // Pinned (computed independently with Python's hashlib): a change of
    // this value breaks every Portal's domain.
    assert_eq!(
            id,
            "b2bllavf0w7lygfaj6hqxs8h5tbw8f3e7ap8j8vd2x3pgn5za2eyrcnjtlk6j8ralqg89y7kvqbtegd2a3jv1a9vfl41nzayj72lxt2"
        );
    assert_eq!(id, reference_id(public.as_bytes()));
    assert_eq!(short_id(&id), "b2blla");
}

#[test]
fn ids_have_103_characters_of_the_alphabet() {
    for _ in 0..64 {
        let identity = Identity::generate();
        assert_eq!(identity.id.len(), PORTAL_ID_LEN);
        assert!(is_portal_id(&identity.id), "{}", identity.id);
        for banned in ['i', 'm', 'o', 'u'] {
            assert!(!identity.id.contains(banned));
        }
        assert_eq!(
            identity.id,
            reference_id(identity.signing_key.verifying_key().as_bytes())
        );
        // The last character carries 2 bits: its 3 low bits are padding.
        let last = identity.id.as_bytes()[PORTAL_ID_LEN - 1];
        let value = ALPHABET.iter().position(|&c| c == last).unwrap();
        assert_eq!(value & 0b111, 0);
    }
}

#[test]
fn is_portal_id_rejects_wrong_shapes() {
    let id = Identity::generate().id;
    assert!(is_portal_id(&id));
    assert!(!is_portal_id(&id[..102]));
    assert!(!is_portal_id(&format!("{}a", id)));
    assert!(!is_portal_id(&id.replacen(&id[..1], "i", 1)));
    assert!(!is_portal_id(&id.to_uppercase()));
}
