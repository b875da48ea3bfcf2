//! Interoperability of the Portal's RFC 9421 profile (docs/signing.md)
//! with an independent implementation, the Python package
//! `http-message-signatures` (driven by `tests/interop/sign.py` and
//! `tests/interop/verify.py`): Python signs and we verify, we sign and
//! Python verifies, and the real proxy lets in a peer request that Python
//! signed.
//!
//! Also: every spelling of a terminal token that PyJWT, Node's `jose` or
//! `jsonwebtoken` accepts as signed with the terminal secret is found as a
//! credential (so never reaches an app).
//!
//! Needs `python3` and Node.js; the packages are installed with pip and
//! npm when they are missing. When they cannot be had the tests fail
//! (they never skip): a green run must mean the implementations were
//! compared.

use crate::common::python::{node, python, python_package};
use crate::common::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use portal_core::identity::{portal_id, Identity};
use portal_core::signature::{
    self, authority, parse, signed_headers, verify, ContentDigest, Outgoing, RequestParts,
    SignatureError, Window,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `req` with its path, method, authority or query changed: each must
/// break the signature.
fn tampered_variants<'a>(req: &Req<'a>) -> [Req<'a>; 4] {
    [
        Req {
            path: "/peer/other",
            ..*req
        },
        Req {
            method: "PATCH",
            ..*req
        },
        Req {
            host: "app.abcdef.portal.test:9443",
            ..*req
        },
        Req {
            query: Some("y=2"),
            ..*req
        },
    ]
}

/// `who`'s private key for Python, as `keygen` writes it (PKCS#8 v1).
fn private_key_pem(who: &Identity) -> String {
    who.private_key_pem().to_string()
}

/// A request as both sides see it.
#[derive(Debug, Clone, Copy)]
struct Req<'a> {
    method: &'a str,
    /// `host[:port]` as in the URL.
    host: &'a str,
    /// Path as sent, percent-encoding untouched.
    path: &'a str,
    query: Option<&'a str>,
    body: Option<&'a str>,
}

impl Req<'_> {
    fn path_and_query(&self) -> String {
        match self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.to_string(),
        }
    }

    fn url(&self) -> String {
        format!("https://{}{}", self.host, self.path_and_query())
    }

    /// The components a Portal signature of this request covers.
    fn covered(&self) -> Vec<&'static str> {
        let mut covered = signature::REQUIRED.to_vec();
        if self.body.is_some() {
            covered.push(signature::CONTENT_DIGEST);
        }
        covered
    }
}

/// Requests that exercise the derived components: a port in `@authority`,
/// the default port and upper case left out of it, percent-encoded paths and
/// queries, no query (`@query` is `?`), bodies (and an empty one).
const REQUESTS: [Req<'static>; 5] = [
    Req {
        method: "GET",
        host: "app.abcdef.portal.test:8443",
        path: "/peer/x",
        query: Some("y=1&q=a%20b&e="),
        body: None,
    },
    Req {
        method: "POST",
        host: "app.abcdef.portal.test:8443",
        path: "/peer/upload",
        query: Some("y=1"),
        body: Some("{\"hello\": \"world\", \"n\": [1, 2, 3]}"),
    },
    Req {
        method: "GET",
        host: "App.ABCDEF.Portal.Test",
        path: "/peer/",
        query: None,
        body: None,
    },
    Req {
        method: "PUT",
        host: "app.abcdef.portal.test:443",
        path: "/peer/a%2Fb/c%20d",
        query: Some("x"),
        body: Some("line one\nline two\n"),
    },
    Req {
        method: "DELETE",
        host: "app.abcdef.portal.test:8443",
        path: "/peer/item",
        query: Some(""),
        body: Some(""),
    },
];

/// How Python labels and tags its signature.
#[derive(Debug, Clone, Copy)]
enum Labelled {
    /// `tag="portal"` under a label of its own: selected by the tag.
    Tagged(&'static str),
    /// Label `portal`, no tag: a sender of the profile before the tag.
    Untagged,
}

/// The ways [`python_sign`] labels: each request is signed in each.
const LABELLINGS: [Labelled; 3] = [
    Labelled::Tagged("portal"),
    Labelled::Tagged("py-sig"),
    Labelled::Untagged,
];

/// Python signs `req` as `who`: the headers it adds.
fn python_sign(
    who: &Identity,
    req: &Req<'_>,
    created: i64,
    nonce: &str,
    labelled: Labelled,
) -> Vec<(String, String)> {
    let (label, tag) = match labelled {
        Labelled::Tagged(label) => (label, Some("portal")),
        Labelled::Untagged => ("portal", None),
    };
    let out = python(
        "sign",
        &json!({
            "label": label,
            "tag": tag,
            "private_key_pem": private_key_pem(who),
            "keyid": who.id,
            "method": req.method,
            "url": req.url(),
            "body": req.body,
            "created": created,
            "expires": created + 60,
            "nonce": nonce,
        }),
    )
    .unwrap_or_else(|e| panic!("sign.py failed for {req:?}:\n{e}"));
    out.as_object()
        .unwrap_or_else(|| panic!("sign.py printed {out}"))
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
        .collect()
}

/// Python verifies the `portal` signature of `req` (and its digest) with
/// `who`'s public key: its result, or its error.
fn python_verify(
    who: &Identity,
    req: &Req<'_>,
    headers: &[(&str, String)],
) -> Result<Value, String> {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), Value::from(value.as_str())))
        .collect();
    python(
        "verify",
        &json!({
            "public_key_pem": who.public_key_pem,
            "keyid": who.id,
            "method": req.method,
            "url": req.url(),
            "headers": headers,
            "body": req.body,
        }),
    )
}

fn header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// Our side: parses the `portal` signature of `headers` and verifies it for
/// `req` with `who`'s key, the way the proxy does (without the nonce cache).
fn verify_here(who: &Identity, req: &Req<'_>, headers: &HeaderMap) -> Result<(), SignatureError> {
    let sig = parse(headers)?.expect("a portal signature");
    let authority = authority(req.host);
    let parts = RequestParts {
        method: req.method,
        authority: &authority,
        path: req.path,
        query: req.query,
        headers,
        has_body: req.body.is_some(),
    };
    let key = who.signing_key.verifying_key();
    verify(
        &parts,
        &sig,
        |keyid| (keyid == who.id).then_some(key),
        now(),
        Window::default(),
    )
}

/// The signature base we build for `req` from the signature in `headers`,
/// to show when the two sides disagree.
fn our_base(req: &Req<'_>, headers: &HeaderMap) -> String {
    let Ok(Some(sig)) = parse(headers) else {
        return "(no parsable portal signature)".into();
    };
    let authority = authority(req.host);
    let parts = RequestParts {
        method: req.method,
        authority: &authority,
        path: req.path,
        query: req.query,
        headers,
        has_body: req.body.is_some(),
    };
    signature::signature_base(&parts, &sig.field.components, &sig.field.input)
        .unwrap_or_else(|e| format!("(cannot build it: {e})"))
}

#[test]
fn the_python_package_is_installed() {
    let version = python_package();
    assert!(!version.is_empty());
    eprintln!("http-message-signatures {version}");
}

#[test]
fn python_signatures_verify_here() {
    let peer = portal_proxy::identity::generate();
    assert_eq!(
        peer.id,
        portal_id(peer.signing_key.verifying_key().as_bytes())
    );
    let cases = REQUESTS
        .iter()
        .flat_map(|req| LABELLINGS.map(|labelled| (req, labelled)));
    for (i, (req, labelled)) in cases.enumerate() {
        let raw = python_sign(&peer, req, now(), &format!("python-nonce-{i}"), labelled);
        let headers = header_map(&raw);
        assert_eq!(
            headers.contains_key("content-digest"),
            req.body.is_some(),
            "{raw:?}"
        );

        let sig = parse(&headers)
            .unwrap_or_else(|e| panic!("{req:?}: {e}\n{raw:?}"))
            .expect("a portal signature");
        assert_eq!(sig.keyid, peer.id);
        let label = match labelled {
            Labelled::Tagged(label) => label,
            Labelled::Untagged => "portal",
        };
        assert_eq!(sig.label, label, "{raw:?}");
        assert_eq!(sig.nonce, format!("python-nonce-{i}"));
        assert_eq!(sig.expires - sig.created, 60);
        assert_eq!(sig.field.components, req.covered(), "{raw:?}");
        if let Err(e) = verify_here(&peer, req, &headers) {
            panic!(
                "we refuse Python's signature of {req:?}: {e} ({})\nheaders: {raw:?}\nour signature base:\n{}",
                e.reason(),
                our_base(req, &headers)
            );
        }
        if let Some(body) = req.body {
            let digest = ContentDigest::from_headers(&headers).unwrap();
            assert!(digest.matches(body.as_bytes()), "{raw:?}");
            assert!(!digest.matches(b"tampered"), "{raw:?}");
            assert_eq!(
                headers["content-digest"],
                signature::content_digest(body.as_bytes()),
                "both sides write the same Content-Digest"
            );
        }

        // The same headers on another path, method or authority.
        for tampered in tampered_variants(req) {
            let err = verify_here(&peer, &tampered, &headers)
                .expect_err(&format!("{tampered:?} must be refused"));
            assert_eq!(
                err.reason().as_str(),
                "bad_signature",
                "{tampered:?}: {err}"
            );
        }
        // Another key with the same keyid.
        let stranger = portal_proxy::identity::generate();
        let err = verify_here(
            &Identity {
                id: peer.id.clone(),
                ..stranger
            },
            req,
            &headers,
        )
        .unwrap_err();
        assert_eq!(err.reason().as_str(), "bad_signature");
    }
}

#[test]
fn our_signatures_verify_in_python() {
    let peer = portal_proxy::identity::generate();
    for req in &REQUESTS {
        let path_and_query = req.path_and_query();
        let request = Outgoing {
            method: req.method,
            authority: req.host,
            path_and_query: &path_and_query,
            body: req.body.map(str::as_bytes),
        };
        let headers = signed_headers(
            &peer.signing_key,
            &peer.id,
            &request,
            now(),
            60,
            &portal_proxy::clock::fresh_nonce(),
        )
        .unwrap();
        let result = python_verify(&peer, req, &headers).unwrap_or_else(|e| {
            let map = header_map(
                &headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect::<Vec<_>>(),
            );
            panic!(
                "Python refuses our signature of {req:?}:\n{e}\nheaders: {headers:?}\nour signature base:\n{}",
                our_base(req, &map)
            )
        });
        assert_eq!(result["ok"], true);
        assert_eq!(result["covered"], json!(req.covered()), "{result}");
        assert_eq!(result["params"]["keyid"], peer.id.as_str());
        assert_eq!(result["params"]["alg"], "ed25519");
        assert_eq!(
            result["params"]["expires"].as_i64().unwrap()
                - result["params"]["created"].as_i64().unwrap(),
            60
        );

        // A tampered body: the digest no longer matches.
        if req.body.is_some() {
            let tampered = Req {
                body: Some("tampered"),
                ..*req
            };
            let err = python_verify(&peer, &tampered, &headers).expect_err("tampered body");
            assert!(err.contains("Content-Digest does not match"), "{err}");
        }
        // A tampered path, method, authority or query: the signature fails.
        for tampered in tampered_variants(req) {
            let err = python_verify(&peer, &tampered, &headers)
                .expect_err(&format!("{tampered:?} must be refused"));
            assert!(err.starts_with("InvalidSignature"), "{tampered:?}: {err}");
        }
        // Another key under the same keyid.
        let stranger = portal_proxy::identity::generate();
        let err = python_verify(
            &Identity {
                id: peer.id.clone(),
                ..stranger
            },
            req,
            &headers,
        )
        .expect_err("another key");
        assert!(err.starts_with("InvalidSignature"), "{err}");
    }
}

const PEER_APP: &str = r#"{
  "": {"access": "private"},
  "/peer/": {"access": "peer", "headers": {
      "X-Ptl-Client-Id": "{{ auth.client_id }}",
      "X-Ptl-Client-Type": "{{ auth.client_type }}"}}
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_accepts_a_peer_request_signed_by_python() {
    python_package();
    let files = PortalFiles::new("interop-proxy");
    let app = Upstream::start("app");
    let peer = portal_proxy::identity::generate();
    // Before the proxy starts, so that it loads the peer at start.
    files.app("app", &app_meta(PEER_APP)).state_file(
        "peers.json",
        &json!([{"id": peer.id, "name": "Python", "public_key": peer.public_key_pem}]).to_string(),
    );
    let proxy = Proxy::start(
        &files,
        &format!(
            // The Python signer is a peer that is not portal-proxy: its
            // TLS is verified by CA, the caller presents no key.
            "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams:\n  app: \"{}\"\n\
             peering: {{ transport: ca }}\n",
            app.addr
        ),
    );
    // Not 443: the port is part of `@authority`.
    let host = format!("{}:{}", files.host("app"), proxy.https.port());
    let client = client(&files.ca_pem, Protocol::Http1);
    let body = "{\"from\": \"python\", \"data\": \"0123456789abcdef\"}";

    for (i, req) in [
        Req {
            method: "POST",
            host: &host,
            path: "/peer/x",
            query: Some("y=1"),
            body: Some(body),
        },
        Req {
            method: "GET",
            host: &host,
            path: "/peer/list",
            query: Some("page=2&q=a%20b"),
            body: None,
        },
    ]
    .iter()
    .enumerate()
    {
        let labelled = LABELLINGS[i % LABELLINGS.len()];
        let headers = python_sign(&peer, req, now(), &format!("proxy-nonce-{i}"), labelled);
        let send = || {
            let mut request = client.request(req.method.parse().unwrap(), req.url());
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            if let Some(body) = req.body {
                request = request.body(body.to_string());
            }
            request.send()
        };
        let resp = send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "{req:?}: {text}\nheaders: {headers:?}\nproxy log:\n{}",
            proxy.log_text()
        );
        let echo: Echo = serde_json::from_str(&text).unwrap();
        assert_eq!(echo.method, req.method);
        assert_eq!(echo.target, req.path_and_query());
        assert_eq!(echo.headers["x-ptl-client-type"], "peer", "{echo:?}");
        assert_eq!(echo.headers["x-ptl-client-id"], peer.id, "{echo:?}");
        assert_eq!(echo.body_len, req.body.map_or(0, str::len));

        // Python's nonce is remembered: the same signature again is a replay.
        let resp = send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let refusal: Value = resp.json().await.unwrap();
        assert_eq!(refusal["reason"], "replayed", "{refusal}");
    }
}

/// A terminal token's spellings, made from its signature: the
/// accepted-by-someone ones must all be credentials here.
fn token_spellings(token: &str, seed: u64) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut out = vec![token.to_string()];
    let inserts = [
        "=", "==", "===", "+", "/", "-", "_", "!", "%", " ", "\t", "\"", "'", ":", ",", ";", ".",
        "A", "z", "0", "\\", "~", "*", "=A", "==AAAA", "@", "#",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..1500 {
        let mut sig: Vec<String> = signature.chars().map(String::from).collect();
        for _ in 0..rng.gen_range(1..=3) {
            match rng.gen_range(0..4) {
                // Something inserted anywhere in or after the signature.
                0 | 1 => {
                    let at = rng.gen_range(0..=sig.len());
                    sig.insert(at, inserts[rng.gen_range(0..inserts.len())].to_string());
                }
                // The other alphabet for one character.
                2 => {
                    let at = rng.gen_range(0..sig.len());
                    sig[at] = sig[at].replace('-', "+").replace('_', "/");
                }
                // The last character's trailing bits.
                _ => {
                    const ALPHABET: &str =
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                    if let Some(at) = sig.iter().rposition(|c| ALPHABET.contains(c.as_str())) {
                        let i = ALPHABET.find(sig[at].as_str()).unwrap();
                        let flipped = (i & !3) | rng.gen_range(0..4);
                        sig[at] = ALPHABET[flipped..flipped + 1].to_string();
                    }
                }
            }
        }
        out.push(format!("{message}.{}", sig.concat()));
    }
    out
}

#[test]
fn every_spelling_jwt_libraries_accept_is_a_credential() {
    use portal_core::caller::{TerminalEntry, Terminals};
    python_package();
    let secret = "interop terminal secret";
    let terminals = Terminals::new(
        Some(secret.as_bytes()),
        vec![TerminalEntry {
            id: "t1".into(),
            name: "Laptop".into(),
        }],
    );
    let mut checked = 0;
    let mut accepted_by = std::collections::BTreeMap::<&str, usize>::new();
    for (n, claims) in [
        json!({"sub": "t1", "exp": 4_000_000_000u64}),
        json!({"sub": "t1", "n": 1}),
        json!({"sub": "t1", "n": "xx"}),
    ]
    .iter()
    .enumerate()
    {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        let tokens = token_spellings(&token, n as u64);
        let input = json!({"secret": secret, "tokens": tokens});
        let pyjwt: Vec<bool> =
            serde_json::from_value(python("jwt_accepts", &input).unwrap()).unwrap();
        let js = node("jwt_accepts", &input);
        let jose: Vec<bool> = serde_json::from_value(js["jose"].clone()).unwrap();
        let jsonwebtoken: Vec<bool> = serde_json::from_value(js["jsonwebtoken"].clone()).unwrap();
        for (i, spelling) in tokens.iter().enumerate() {
            let by: Vec<&str> = [
                ("PyJWT", pyjwt[i]),
                ("jose", jose[i]),
                ("jsonwebtoken", jsonwebtoken[i]),
            ]
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(name, _)| *name)
            .collect();
            if by.is_empty() {
                continue;
            }
            for name in &by {
                *accepted_by.entry(name).or_default() += 1;
            }
            checked += 1;
            for value in [
                format!("Bearer {spelling}"),
                spelling.clone(),
                format!("Token t=\"{spelling}\""),
            ] {
                assert!(
                    terminals.holds_credential(value.as_bytes()),
                    "{by:?} accept {spelling:?}, but {value:?} was not found as a credential"
                );
            }
        }
    }
    // The comparison compared something: each library accepted spellings
    // other than the token as issued.
    for name in ["PyJWT", "jose", "jsonwebtoken"] {
        assert!(
            accepted_by.get(name).copied().unwrap_or(0) >= 3,
            "{name}: {accepted_by:?}"
        );
    }
    assert!(
        accepted_by["PyJWT"] > 50 && accepted_by["jose"] > 50,
        "{accepted_by:?}"
    );
    eprintln!("{checked} accepted spellings checked: {accepted_by:?}");
}
