use super::*;

const NOW: i64 = 1_800_000_000;

fn request(signature: &[u8; 64]) -> RequestBinding<'static> {
    RequestBinding {
        method: "POST".into(),
        authority: "files.b2blla.p.getportal.org".into(),
        path: "/peer/share".into(),
        query: Some("item=42".into()),
        label: "portal".into(),
        signature: *signature,
    }
}

fn signed(
    status: u16,
    content_type: Option<&str>,
    key: &SigningKey,
    req: &RequestBinding<'_>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert("content-type", ct.parse().unwrap());
    }
    let sig = sign_response(key, "the-peer-id", status, &headers, req, NOW).unwrap();
    headers.insert("signature-input", sig.signature_input.parse().unwrap());
    headers.insert("signature", sig.signature.parse().unwrap());
    headers
}

#[test]
fn signed_answers_verify_and_bound_ones_only() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let public = key.verifying_key();
    let req_sig = [7u8; 64];
    let req = request(&req_sig);
    let window = Window::default();
    let verify = |h: &HeaderMap, status, r: &RequestBinding<'_>, k: &VerifyingKey, now| {
        verify_response(h, status, r, "the-peer-id", k, now, window)
    };
    for ct in [Some("application/json"), None] {
        let h = signed(200, ct, &key, &req);
        let want: Vec<String> = ct.iter().map(|_| "content-type".to_string()).collect();
        assert_eq!(verify(&h, 200, &req, &public, NOW), Ok(want), "{ct:?}");
        // Another status, another request, another key: refused.
        assert_eq!(
            verify(&h, 500, &req, &public, NOW),
            Err(SignatureError::BadSignature)
        );
        let other_sig = [8u8; 64];
        assert_eq!(
            verify(&h, 200, &request(&other_sig), &public, NOW),
            Err(SignatureError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key();
        assert_eq!(
            verify(&h, 200, &req, &other, NOW),
            Err(SignatureError::BadSignature)
        );
        // Too old, or from the future.
        assert!(matches!(
            verify(&h, 200, &req, &public, NOW + 400),
            Err(SignatureError::Expired { .. })
        ));
        assert!(matches!(
            verify(&h, 200, &req, &public, NOW - 60),
            Err(SignatureError::NotYetValid { .. })
        ));
    }
    // A content type added after signing is not covered: it verifies,
    // and is not among the fields passed on.
    let mut h = signed(200, None, &key, &req);
    h.insert("content-type", "text/html".parse().unwrap());
    assert_eq!(verify(&h, 200, &req, &public, NOW), Ok(vec![]));
    // A second line of a covered field changes its value: refused.
    let mut h = signed(200, Some("application/json"), &key, &req);
    h.append("content-type", "text/html".parse().unwrap());
    assert_eq!(
        verify(&h, 200, &req, &public, NOW),
        Err(SignatureError::BadSignature)
    );
    // No portal signature at all: unsigned, and said so.
    let mut other_label = HeaderMap::new();
    other_label.insert("signature-input", "sig1=();created=1".parse().unwrap());
    other_label.insert("signature", "sig1=:AAAA:".parse().unwrap());
    for h in [HeaderMap::new(), other_label] {
        let e = verify(&h, 200, &req, &public, NOW).unwrap_err();
        assert_eq!(e, SignatureError::Unsigned, "{h:?}");
        assert_eq!(
            e.to_string(),
            "the answer is not signed (no portal signature)"
        );
    }
    // Half a signature is not "unsigned": it is malformed.
    let mut h = signed(200, None, &key, &req);
    h.remove("signature");
    assert!(matches!(
        verify(&h, 200, &req, &public, NOW),
        Err(SignatureError::Malformed(_))
    ));
    // Another Portal's keyid.
    let h = signed(200, None, &key, &req);
    assert!(matches!(
        verify_response(&h, 200, &req, "someone-else", &public, NOW, window),
        Err(SignatureError::UnknownPeer(_))
    ));
}

#[test]
fn the_base_follows_the_profile() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let req_sig = [7u8; 64];
    let req = request(&req_sig);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let sig = sign_response(&key, "pid", 201, &headers, &req, NOW).unwrap();
    assert_eq!(
            sig.signature_input,
            "portal=(\"@status\" \"@method\";req \"@authority\";req \"@path\";req \"@query\";req \
             \"signature\";req;key=\"portal\" \"content-type\");created=1800000000;alg=\"ed25519\";keyid=\"pid\";tag=\"portal\""
        );
    let params = sig.signature_input.strip_prefix("portal=").unwrap();
    let b = base(201, &headers, &["content-type".to_string()], &req, params).unwrap();
    let lines: Vec<&str> = b.lines().collect();
    assert_eq!(lines[0], "\"@status\": 201");
    assert_eq!(lines[1], "\"@method\";req: POST");
    assert_eq!(lines[4], "\"@query\";req: ?item=42");
    assert_eq!(
        lines[5],
        format!(
            "\"signature\";req;key=\"portal\": :{}:",
            B64.encode(req_sig)
        )
    );
    assert_eq!(lines[6], "\"content-type\": application/json");
    assert!(lines[7].starts_with("\"@signature-params\": (\"@status\""));
}

/// The answer binds the request's signature by the label it came
/// under (selected by its tag), and is itself selected by its tag.
#[test]
fn the_answer_binds_the_request_label_and_is_selected_by_tag() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let req_sig = [7u8; 64];
    let req = RequestBinding {
        label: "sig1".into(),
        ..request(&req_sig)
    };
    let h = signed(200, Some("text/plain"), &key, &req);
    let input = h["signature-input"].to_str().unwrap().to_string();
    assert!(input.contains("\"signature\";req;key=\"sig1\""), "{input}");
    let verify = |h: &HeaderMap, r: &RequestBinding<'_>| {
        verify_response(
            h,
            200,
            r,
            "the-peer-id",
            &key.verifying_key(),
            NOW,
            Window::default(),
        )
    };
    assert!(verify(&h, &req).is_ok());
    // Read as bound to a request signature labelled `portal`: refused.
    assert!(matches!(
        verify(&h, &request(&req_sig)),
        Err(SignatureError::MissingComponent(_))
    ));
    // Under another label, still tagged: selected and verified.
    let mut relabelled = h.clone();
    for name in ["signature-input", "signature"] {
        let v = h[name].to_str().unwrap().replacen("portal=", "answer=", 1);
        relabelled.insert(name, v.parse().unwrap());
    }
    assert!(verify(&relabelled, &req).is_ok());
}

/// Signature-Input lists a verifier refuses whatever the signature.
#[test]
fn malformed_component_lists_are_refused() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let req_sig = [7u8; 64];
    let req = request(&req_sig);
    let ids = bound("portal");
    // Bound to another request signature than the one sent.
    let other_label = bound("sig1").join(" ");
    let bound = ids.join(" ");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/plain".parse().unwrap());
    headers.insert("x-a", "1".parse().unwrap());
    for list in [
        format!("({bound} \"x-a\" \"x-a\")"),
        format!("({bound} \"X-A\")"),
        format!("({bound} \"x-a\";sf)"),
        format!("({bound} \"@path\")"),
        format!("({bound} \"content-length\")"),
        format!("({bound} \"signature\")"),
        format!("({bound} \"x-missing\")"),
        "(\"@status\" \"content-type\")".to_string(),
        format!("({})", ids[1..].join(" ")),
        format!("({other_label})"),
    ] {
        let mut h = headers.clone();
        h.insert(
            "signature-input",
            format!("portal={list};created={NOW};keyid=\"the-peer-id\";alg=\"ed25519\"")
                .parse()
                .unwrap(),
        );
        h.insert(
            "signature",
            format!("portal=:{}:", B64.encode([0u8; 64]))
                .parse()
                .unwrap(),
        );
        let got = verify_response(
            &h,
            200,
            &req,
            "the-peer-id",
            &key.verifying_key(),
            NOW,
            Window::default(),
        );
        assert!(
            matches!(
                got,
                Err(SignatureError::Malformed(_)) | Err(SignatureError::MissingComponent(_))
            ),
            "{list}: {got:?}"
        );
    }
}

proptest::proptest! {
    /// Any set of answer fields is signed whole: it verifies with
    /// exactly the coverable names, and any covered value changed, a
    /// line added to one, or one removed, fails.
    #[test]
    fn any_answer_is_covered_whole(
        fields in proptest::collection::vec(
            (proptest::sample::select(vec!["content-type", "x-a", "cache-control", "set-cookie", "content-length", "date", "etag"]),
             "[a-z0-9 =/;]{0,12}"),
            0..8,
        ),
        pick in 0usize..8,
    ) {
        let key = SigningKey::from_bytes(&[3; 32]);
        let req_sig = [7u8; 64];
        let req = request(&req_sig);
        let mut h = HeaderMap::new();
        for (name, value) in &fields {
            h.append(*name, value.parse().unwrap());
        }
        let sig = sign_response(&key, "the-peer-id", 200, &h, &req, NOW).unwrap();
        h.insert("signature-input", sig.signature_input.parse().unwrap());
        h.insert("signature", sig.signature.parse().unwrap());
        let verify = |h: &HeaderMap| verify_response(h, 200, &req, "the-peer-id", &key.verifying_key(), NOW, Window::default());
        let mut want: Vec<String> = fields.iter().map(|(n, _)| n.to_string()).filter(|n| is_coverable(n)).collect();
        want.sort();
        want.dedup();
        proptest::prop_assert_eq!(verify(&h), Ok(want.clone()));
        if let Some(name) = want.get(pick % want.len().max(1)) {
            let mut changed = h.clone();
            changed.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), "z".parse().unwrap());
            proptest::prop_assert!(verify(&changed).is_err());
            let mut removed = h.clone();
            removed.remove(name.as_str());
            proptest::prop_assert!(verify(&removed).is_err());
        }
    }
}
