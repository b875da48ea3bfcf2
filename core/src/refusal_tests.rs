use super::*;

#[test]
fn json_unless_the_client_is_a_browser() {
    let r = Refusal::new(Kind::NotFound, "no app named \"x\"");
    let (ct, body) = r.render(None);
    assert_eq!(ct, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "not_found");
    assert_eq!(v["message"], "no app named \"x\"");
    for accept in [
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "TEXT/HTML",
        "application/json, text/html;q=0.5",
    ] {
        assert_eq!(
            r.render(Some(accept)).0,
            "text/html; charset=utf-8",
            "{accept}"
        );
    }
    for accept in ["application/json", "*/*", "text/html;q=0", "text/htmlx"] {
        assert_eq!(r.render(Some(accept)).0, "application/json", "{accept}");
    }
}

#[test]
fn signature_refusals_carry_their_reason() {
    let r = Refusal::from(SignatureError::Expired { expires: 1, now: 2 });
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = serde_json::from_slice(&r.render(None).1).unwrap();
    assert_eq!(v["error"], "unauthorized");
    assert_eq!(v["reason"], "expired");
    let v: serde_json::Value =
        serde_json::from_slice(&Refusal::new(Kind::NotFound, "x").render(None).1).unwrap();
    assert!(v.get("reason").is_none());
}

#[test]
fn html_escapes_the_message() {
    let r = Refusal::new(Kind::Misdirected, "host \"<script>\" is not served here");
    let (_, body) = r.render(Some("text/html"));
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("421 Misdirected Request"));
    assert!(body.contains("&lt;script&gt;"));
    assert!(!body.contains("<script>"));
}

#[test]
fn reasons_are_distinct_and_the_signature_ones_first() {
    let codes: std::collections::BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(codes.len(), Reason::ALL.len());
    assert_eq!(Reason::SIGNATURE.len(), 10);
    assert!(!Reason::SIGNATURE.contains(&Reason::Unsigned));
    for e in [
        SignatureError::BadSignature,
        SignatureError::Malformed(String::new()),
        SignatureError::Unpinned(String::new()),
        SignatureError::UnknownPeer(String::new()),
    ] {
        assert!(Reason::SIGNATURE.contains(&e.reason()), "{e:?}");
    }
}
