//! Response signatures (docs/signing.md) against the independent Python
//! package `http-message-signatures`: what the proxy signs on an answer
//! to a peer verifies there, bound to its request, and a changed answer or
//! another request does not.

use crate::common::python::python;
use http::HeaderMap;
use portal_core::identity::Identity;
use portal_core::signature::response::{sign_response, RequestBinding};
use portal_core::signature::{signed_headers, Outgoing};
use serde_json::{json, Value};

fn now() -> i64 {
    portal_proxy::clock::unix_now()
}

/// A signed request of `caller` and the answer `answerer` signs for it.
struct Exchange {
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
}

fn exchange(
    caller: &Identity,
    answerer: &Identity,
    status: u16,
    content_type: Option<&str>,
) -> Exchange {
    let fields: Vec<(&str, &str)> = content_type
        .map(|ct| ("content-type", ct))
        .into_iter()
        .collect();
    exchange_with(caller, answerer, status, &fields)
}

/// [`exchange`], the answer with the header `fields`.
fn exchange_with(
    caller: &Identity,
    answerer: &Identity,
    status: u16,
    fields: &[(&str, &str)],
) -> Exchange {
    let outgoing = Outgoing {
        method: "POST",
        authority: "files.b2blla.p.getportal.org",
        path_and_query: "/peer/share?item=42&q=x",
        body: Some(b"{\"a\":1}"),
    };
    let request_headers: Vec<(String, String)> = signed_headers(
        &caller.signing_key,
        &caller.id,
        &outgoing,
        now(),
        60,
        &portal_proxy::clock::fresh_nonce(),
    )
    .unwrap()
    .into_iter()
    .map(|(k, v)| (k.to_ascii_lowercase(), v))
    .collect();
    let sig_b64 = request_headers
        .iter()
        .find(|(k, _)| k == "signature")
        .and_then(|(_, v)| v.split_once("=:"))
        .map(|(_, v)| v.trim_end_matches(':').to_string())
        .unwrap();
    use base64::Engine as _;
    let signature: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .unwrap()
        .try_into()
        .unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let binding = RequestBinding {
        method: "POST".into(),
        authority: "files.b2blla.p.getportal.org".into(),
        path: "/peer/share".into(),
        query: Some("item=42&q=x".into()),
        label: "portal".into(),
        signature,
    };
    let signed = sign_response(
        &answerer.signing_key,
        &answerer.id,
        status,
        &headers,
        &binding,
        now(),
    )
    .unwrap();
    let mut response_headers = vec![
        ("signature-input".to_string(), signed.signature_input),
        ("signature".to_string(), signed.signature),
    ];
    for (name, value) in fields {
        response_headers.push((name.to_string(), value.to_string()));
    }
    Exchange {
        request_headers,
        response_headers,
    }
}

/// Header pairs as a JSON object.
fn object(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect(),
    )
}

fn spec(answerer: &Identity, e: &Exchange, status: u16) -> Value {
    json!({
        "public_key_pem": answerer.public_key_pem,
        "keyid": answerer.id,
        "request": {
            "method": "POST",
            "url": "https://files.b2blla.p.getportal.org/peer/share?item=42&q=x",
            "headers": object(&e.request_headers),
        },
        "response": {"status": status, "headers": object(&e.response_headers)},
    })
}

#[test]
fn our_response_signatures_verify_in_python() {
    let (caller, answerer) = (
        portal_proxy::identity::generate(),
        portal_proxy::identity::generate(),
    );
    for (status, ct) in [
        (200, Some("application/json")),
        (401, Some("application/json")),
        (204, None),
    ] {
        let e = exchange(&caller, &answerer, status, ct);
        let spec = {
            let mut s = spec(&answerer, &e, status);
            s["request"]["headers"] = e
                .request_headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into();
            s
        };
        let out = python("verify_response", &spec).unwrap_or_else(|err| panic!("{status}: {err}"));
        let covered: Vec<String> = serde_json::from_value(out["covered"].clone()).unwrap();
        assert!(
            covered
                .iter()
                .any(|c| c.contains("\"signature\";req;key=\"portal\"")),
            "{covered:?}"
        );
        assert_eq!(
            covered.iter().any(|c| c.contains("content-type")),
            ct.is_some()
        );

        // Another status, another request: refused by Python too.
        let mut other_status = spec.clone();
        other_status["response"]["status"] = json!(if status == 200 { 500 } else { 200 });
        assert!(
            refused_by_python(&other_status),
            "{status}: another status verified"
        );
        let mut other_request = spec.clone();
        other_request["request"]["url"] =
            json!("https://files.b2blla.p.getportal.org/peer/other?item=42&q=x");
        assert!(
            refused_by_python(&other_request),
            "{status}: another request verified"
        );
    }
}

/// Every header field of an answer is covered (framing and signature
/// fields aside): Python verifies the signature over all of them, and a
/// change to any one of them, or a field added or removed, fails there and
/// here alike; a field added that the signature does not cover verifies
/// here but is named nowhere in what the caller passes on.
#[test]
fn every_field_of_an_answer_is_covered_here_and_in_python() {
    use portal_core::signature::response::verify_response;
    use portal_core::signature::Window;
    let (caller, answerer) = (
        portal_proxy::identity::generate(),
        portal_proxy::identity::generate(),
    );
    let fields = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("x-app-version", "3.1"),
        (
            "content-digest",
            "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:",
        ),
        ("set-cookie", "theme=dark"),
    ];
    let e = exchange_with(&caller, &answerer, 200, &fields);
    let spec = spec(&answerer, &e, 200);
    let out = python("verify_response", &spec).unwrap();
    let covered: Vec<String> = serde_json::from_value(out["covered"].clone()).unwrap();
    for (name, _) in fields {
        assert!(
            covered.iter().any(|c| c.contains(&format!("\"{name}\""))),
            "{name}: {covered:?}"
        );
    }
    // Ours, over the same answer.
    let request_sig: [u8; 64] = {
        use base64::Engine as _;
        let sig = e
            .request_headers
            .iter()
            .find(|(k, _)| k == "signature")
            .unwrap();
        let b64 = sig.1.split_once("=:").unwrap().1.trim_end_matches(':');
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
            .try_into()
            .unwrap()
    };
    let binding = RequestBinding {
        method: "POST".into(),
        authority: "files.b2blla.p.getportal.org".into(),
        path: "/peer/share".into(),
        query: Some("item=42&q=x".into()),
        label: "portal".into(),
        signature: request_sig,
    };
    let ours = |headers: &[(String, String)]| {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        verify_response(
            &map,
            200,
            &binding,
            &answerer.id,
            &answerer.signing_key.verifying_key(),
            now(),
            Window::default(),
        )
    };
    let all: Vec<String> = fields
        .iter()
        .map(|(n, _)| n.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(ours(&e.response_headers), Ok(all));
    // The tamper table: each covered field changed, or removed.
    for (name, _) in fields {
        let mut changed = e.response_headers.clone();
        changed
            .iter_mut()
            .find(|(k, _)| k == name)
            .unwrap()
            .1
            .push('x');
        let mut removed = e.response_headers.clone();
        removed.retain(|(k, _)| k != name);
        for (what, headers) in [("changed", changed), ("removed", removed)] {
            let mut tampered = spec.clone();
            tampered["response"]["headers"] = object(&headers);
            assert!(
                refused_by_python(&tampered),
                "{name} {what}: Python verified it"
            );
            assert!(ours(&headers).is_err(), "{name} {what}: we verified it");
        }
    }
    // A second line of a covered field (Python's view holds one line per
    // name, so only ours): all lines are the value.
    let mut doubled = e.response_headers.clone();
    doubled.push(("content-type".into(), "text/html".into()));
    assert!(ours(&doubled).is_err(), "a second content-type verified");
    // A field added after signing: it verifies, and is not covered.
    let mut added = e.response_headers.clone();
    added.push(("x-evil".into(), "1".into()));
    assert!(python("verify_response", &{
        let mut t = spec.clone();
        t["response"]["headers"] = object(&added);
        t
    })
    .is_ok());
    assert!(!ours(&added).unwrap().contains(&"x-evil".to_string()));
}

/// Whether Python refused `spec` as a signature that does not verify: the
/// script's error names the package's refusal (a bad signature, or a
/// covered component it cannot find), never another failure of the script.
fn refused_by_python(spec: &serde_json::Value) -> bool {
    match python("verify_response", spec) {
        Ok(_) => false,
        Err(stderr) => {
            let refusal = ["InvalidSignature:", "HTTPMessageSignaturesException:"]
                .iter()
                .any(|class| stderr.starts_with(class));
            assert!(refusal, "the script failed otherwise: {stderr}");
            true
        }
    }
}
