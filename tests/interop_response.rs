//! Response signatures (DESIGN section 5) against the independent Python
//! package `http-message-signatures`: what the proxy signs on an answer
//! to a peer verifies there, bound to its request, and a changed answer or
//! another request does not.

mod common;

use common::python::python;
use http::HeaderMap;
use portal_proxy::decision::signature::response::{sign_response, RequestBinding};
use portal_proxy::decision::signature::{signed_headers, Outgoing};
use portal_proxy::identity::Identity;
use serde_json::{json, Value};

fn now() -> i64 {
    portal_proxy::ops::unix_now()
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
    let outgoing = Outgoing {
        method: "POST",
        authority: "files.b2blla.p.getportal.org",
        path_and_query: "/peer/share?item=42&q=x",
        body: Some(b"{\"a\":1}"),
    };
    let request_headers: Vec<(String, String)> =
        signed_headers(&caller.signing_key, &caller.id, &outgoing, now(), 60)
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
    if let Some(ct) = content_type {
        headers.insert("content-type", ct.parse().unwrap());
    }
    let binding = RequestBinding {
        method: "POST",
        authority: "files.b2blla.p.getportal.org",
        path: "/peer/share",
        query: Some("item=42&q=x"),
        signature: &signature,
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
    if let Some(ct) = content_type {
        response_headers.push(("content-type".into(), ct.into()));
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
    let (caller, answerer) = (Identity::generate(), Identity::generate());
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
            python("verify_response", &other_status).is_err(),
            "{status}: another status verified"
        );
        let mut other_request = spec.clone();
        other_request["request"]["url"] =
            json!("https://files.b2blla.p.getportal.org/peer/other?item=42&q=x");
        assert!(
            python("verify_response", &other_request).is_err(),
            "{status}: another request verified"
        );
    }
}
