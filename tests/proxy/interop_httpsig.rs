//! The signing profile (docs/signing.md) against a second independent
//! RFC 9421 implementation, the Rust crate `httpsig-hyper` (its own
//! structured-field code, signature bases from `http` messages, and
//! ed25519 from `ed25519-compact`), both ways, for requests and answers:
//! what we sign verifies there, what it signs in the profile's shape
//! verifies here, and a changed message verifies on neither side.

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use httpsig_hyper::prelude::message_component::HttpMessageComponentId;
use httpsig_hyper::prelude::{AlgorithmName, HttpSignatureParams, PublicKey, SecretKey};
use httpsig_hyper::{
    ContentDigestType, MessageSignature, MessageSignatureReq, MessageSignatureRes,
    RequestContentDigest,
};
use portal_core::identity::Identity;
use portal_core::signature::response::{sign_response, verify_response, RequestBinding};
use portal_core::signature::{
    self, authority, parse, signed_headers, ContentDigest, Outgoing, RequestParts, Window,
};

fn now() -> i64 {
    portal_proxy::clock::unix_now()
}

/// Requests of the shapes peers send: a query, none, an empty one, a
/// body, an encoded path, a port in the authority.
const REQUESTS: [(&str, &str, Option<&str>); 5] = [
    (
        "GET",
        "https://app.abcdef.portal.test:8443/peer/x?y=1&q=a%20b",
        None,
    ),
    (
        "POST",
        "https://app.abcdef.portal.test/peer/upload?n=1",
        Some("{\"n\": [1, 2]}"),
    ),
    ("GET", "https://app.abcdef.portal.test:8443/peer/", None),
    (
        "PUT",
        "https://app.abcdef.portal.test/peer/a%2Fb/c%20d?",
        Some("two\nlines\n"),
    ),
    (
        "DELETE",
        "https://app.abcdef.portal.test:8443/peer/item",
        Some(""),
    ),
];

fn keys(who: &Identity) -> (SecretKey, PublicKey) {
    let secret = SecretKey::from_pem(&AlgorithmName::Ed25519, &who.private_key_pem()).unwrap();
    let public = PublicKey::from_pem(&AlgorithmName::Ed25519, &who.public_key_pem).unwrap();
    (secret, public)
}

fn request(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(String, String)],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap()
}

/// Our signature of `method url` (`body`): its headers.
fn ours(who: &Identity, method: &str, url: &str, body: Option<&str>) -> Vec<(String, String)> {
    let uri: http::Uri = url.parse().unwrap();
    let outgoing = Outgoing {
        method,
        authority: uri.authority().unwrap().as_str(),
        path_and_query: uri.path_and_query().unwrap().as_str(),
        body: body.map(str::as_bytes),
    };
    signed_headers(
        &who.signing_key,
        &who.id,
        &outgoing,
        now(),
        60,
        &portal_proxy::clock::fresh_nonce(),
    )
    .unwrap()
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Verifies `headers` here as the proxy does, for `method url`.
fn verify_here(
    who: &Identity,
    method: &str,
    url: &str,
    headers: &HeaderMap,
    has_body: bool,
) -> Result<String, String> {
    let uri: http::Uri = url.parse().unwrap();
    let sig = parse(headers)
        .map_err(|e| e.to_string())?
        .ok_or("no signature selected")?;
    let authority = authority(uri.authority().unwrap().as_str());
    let parts = RequestParts {
        method,
        authority: &authority,
        path: uri.path(),
        query: uri.query(),
        headers,
        has_body,
    };
    let key = who.signing_key.verifying_key();
    signature::verify(
        &parts,
        &sig,
        |id| (id == who.id).then_some(key),
        now(),
        Window::default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(sig.label)
}

#[tokio::test]
async fn our_request_signatures_verify_in_httpsig() {
    let peer = portal_proxy::identity::generate();
    let (_, public) = keys(&peer);
    for (method, url, body) in REQUESTS {
        let headers = ours(&peer, method, url, body);
        let req = request(method, url, body, &headers);
        let verified = req.verify_message_signature(&public, Some(&peer.id)).await;
        assert_eq!(
            verified.as_deref().ok(),
            Some("portal"),
            "{method} {url}: {verified:?}\n{headers:?}"
        );
        let params = req.get_signature_params().unwrap();
        assert_eq!(
            params["portal"].tag.as_deref(),
            Some("portal"),
            "{headers:?}"
        );
        if body.is_some() {
            // Its own digest of the body agrees with ours.
            let digested = request(method, url, body, &[])
                .set_content_digest(&ContentDigestType::Sha256)
                .await
                .unwrap();
            let theirs = digested.headers()["content-digest"].to_str().unwrap();
            let ours = &headers
                .iter()
                .find(|(k, _)| k == "Content-Digest")
                .unwrap()
                .1;
            assert_eq!(theirs, ours);
        }
        // Another path, method or authority with the same headers.
        let other = url.replace("/peer/", "/peer/other/");
        for (m, u) in [
            (method, other.as_str()),
            ("PATCH", url),
            (method, &url.replace("abcdef", "abcdeg")),
        ] {
            let changed = request(m, u, body, &headers);
            assert!(
                changed
                    .verify_message_signature(&public, Some(&peer.id))
                    .await
                    .is_err(),
                "{m} {u}"
            );
        }
    }
}

/// `httpsig-hyper` signs `method url` in the profile's shape, under the
/// label `label`, tagged `portal`.
async fn theirs(
    who: &Identity,
    method: &str,
    url: &str,
    body: Option<&str>,
    label: &str,
) -> HeaderMap {
    let (secret, _) = keys(who);
    let mut components = vec!["@method", "@authority", "@path", "@query"];
    let mut req = request(method, url, body, &[]);
    if body.is_some() {
        components.push("content-digest");
        let digested = req
            .set_content_digest(&ContentDigestType::Sha256)
            .await
            .unwrap();
        req = request(
            method,
            url,
            body,
            &[(
                "content-digest".into(),
                digested.headers()["content-digest"]
                    .to_str()
                    .unwrap()
                    .into(),
            )],
        );
    }
    let ids: Vec<HttpMessageComponentId> = components
        .iter()
        .map(|c| HttpMessageComponentId::try_from(*c).unwrap())
        .collect();
    let mut params = HttpSignatureParams::try_new(&ids).unwrap();
    let created = now() as u64;
    params
        .set_created(created)
        .set_expires(created + 60)
        .set_nonce(&portal_proxy::clock::fresh_nonce())
        .set_keyid(&who.id)
        .set_alg(&AlgorithmName::Ed25519)
        .set_tag("portal");
    req.set_message_signature(&params, &secret, Some(label))
        .await
        .unwrap();
    req.headers().clone()
}

#[tokio::test]
async fn httpsig_request_signatures_verify_here() {
    let peer = portal_proxy::identity::generate();
    for (i, (method, url, body)) in REQUESTS.into_iter().enumerate() {
        // Under our label and one of its own: the tag selects either.
        let label = ["portal", "sig1"][i % 2];
        let headers = theirs(&peer, method, url, body, label).await;
        let got = verify_here(&peer, method, url, &headers, body.is_some());
        assert_eq!(got.as_deref(), Ok(label), "{method} {url}: {headers:?}");
        if let Some(body) = body {
            let digest = ContentDigest::from_headers(&headers).unwrap();
            assert!(digest.matches(body.as_bytes()));
            assert!(!digest.matches(b"changed"));
        }
        let other = url.replace("/peer/", "/peer/other/");
        assert!(
            verify_here(&peer, method, &other, &headers, body.is_some()).is_err(),
            "{other}"
        );
        assert!(verify_here(&peer, "PATCH", url, &headers, body.is_some()).is_err());
    }
}

/// A signed request of `caller` (as Portal 1 sends it) for the answers.
fn signed_request(caller: &Identity) -> (Request<Full<Bytes>>, [u8; 64]) {
    let (method, url, body) = REQUESTS[1];
    let headers = ours(caller, method, url, body);
    let req = request(method, url, body, &headers);
    let sig = parse(req.headers()).unwrap().unwrap();
    (req, sig.field.signature)
}

fn binding<'a>(
    req: &'a Request<Full<Bytes>>,
    authority: &'a str,
    signature: &'a [u8; 64],
) -> RequestBinding<'a> {
    RequestBinding {
        method: req.method().as_str().into(),
        authority: authority.into(),
        path: req.uri().path().into(),
        query: req.uri().query().map(Into::into),
        label: "portal".into(),
        signature: *signature,
    }
}

#[tokio::test]
async fn our_answers_verify_in_httpsig_and_theirs_here() {
    let (caller, answerer) = (
        portal_proxy::identity::generate(),
        portal_proxy::identity::generate(),
    );
    let (secret, public) = keys(&answerer);
    let (req, req_sig) = signed_request(&caller);
    let authority = authority(req.uri().authority().unwrap().as_str());
    let bound = binding(&req, &authority, &req_sig);

    // Ours, verified there: bound to that request, not to another.
    let mut fields = HeaderMap::new();
    fields.insert("content-type", "application/json".parse().unwrap());
    fields.insert("x-app", "1".parse().unwrap());
    let sig = sign_response(
        &answerer.signing_key,
        &answerer.id,
        201,
        &fields,
        &bound,
        now(),
    )
    .unwrap();
    let mut res = Response::builder().status(201);
    for (name, value) in &fields {
        res = res.header(name, value);
    }
    let res = res
        .header("signature-input", sig.signature_input)
        .header("signature", sig.signature)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let verified = res
        .verify_message_signature(&public, Some(&answerer.id), Some(&req))
        .await;
    assert_eq!(verified.as_deref().ok(), Some("portal"), "{verified:?}");
    let (other_req, _) = signed_request(&caller);
    assert!(res
        .verify_message_signature(&public, Some(&answerer.id), Some(&other_req))
        .await
        .is_err());

    // Theirs, in the profile's shape, verified here.
    let ids: Vec<HttpMessageComponentId> = [
        "@status",
        "\"@method\";req",
        "\"@authority\";req",
        "\"@path\";req",
        "\"@query\";req",
        "\"signature\";req;key=\"portal\"",
        "content-type",
        "x-app",
    ]
    .iter()
    .map(|c| HttpMessageComponentId::try_from(*c).unwrap())
    .collect();
    let mut params = HttpSignatureParams::try_new(&ids).unwrap();
    params
        .set_created(now() as u64)
        .set_keyid(&answerer.id)
        .set_alg(&AlgorithmName::Ed25519)
        .set_tag("portal");
    let mut res = Response::builder()
        .status(201)
        .header("content-type", "application/json")
        .header("x-app", "1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    res.set_message_signature(&params, &secret, Some("answer"), Some(&req))
        .await
        .unwrap();
    let key = answerer.signing_key.verifying_key();
    let check = |headers: &HeaderMap, status: u16, bound: &RequestBinding<'_>| {
        verify_response(
            headers,
            status,
            bound,
            &answerer.id,
            &key,
            now(),
            Window::default(),
        )
    };
    assert_eq!(
        check(res.headers(), 201, &bound),
        Ok(vec!["content-type".to_string(), "x-app".to_string()]),
        "{:?}",
        res.headers()
    );
    assert!(check(res.headers(), 200, &bound).is_err());
    let mut changed = res.headers().clone();
    changed.insert("x-app", "2".parse().unwrap());
    assert!(check(&changed, 201, &bound).is_err());
}
