//! Table tests of [`decide`]: routing x caller x rule x path form, and the
//! nonce claim of verified signatures.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{encode, EncodingKey, Header};

use super::*;
use crate::app_meta::AppMeta;
use crate::caller::{TerminalEntry, Terminals};
use crate::headers::AppHeaders;
use crate::identity::Identity;
use crate::peers::Peers;
use crate::signature::{nonce, signed_headers, Outgoing};
use crate::transport::Transport;

const SHORT: &str = "b2blla";
const BASE: &str = "p.getportal.org";
const DOMAIN: &str = "b2blla.p.getportal.org";
const FILES: &str = "files.b2blla.p.getportal.org";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_800_000_000;
const MAX_BODY: usize = 1024;

fn app(name: &str, json: &str) -> Arc<App> {
    let meta = AppMeta::parse(name, json.as_bytes()).unwrap();
    let headers = AppHeaders::compile(&meta).unwrap();
    Arc::new(App { meta, headers })
}

fn peer_identity() -> Identity {
    Identity::from_signing_key(SigningKey::from_bytes(&[7; 32]))
}

fn snapshot() -> Snapshot {
    let mut apps = BTreeMap::new();
    apps.insert(
        "files".to_string(),
        app(
            "files",
            r#"{"entrypoints":[{"container_name":"files-web","container_port":80,"entrypoint_port":"http"}],
                "paths":{"":{"access":"private"},"/public/":{"access":"public"},
                         "/public/admin/":{"access":"private"},"/peer/":{"access":"peer"}}}"#,
        ),
    );
    apps.insert(
        "web-terminal".to_string(),
        app(
            "web-terminal",
            r#"{"port":3000,"paths":{"":{"access":"public"}}}"#,
        ),
    );
    // An app without an http entrypoint is no HTTP host.
    apps.insert(
        "broker".to_string(),
        app(
            "broker",
            r#"{"entrypoints":[{"container_name":"b","container_port":1883,"entrypoint_port":"mqtt"}],"paths":{"":{"access":"public"}}}"#,
        ),
    );
    let peer = peer_identity();
    let peers_json = serde_json::json!([{
        "id": peer.id, "name": "Alice's Portal", "public_key": peer.public_key_pem,
    }]);
    let (peers, errors) = Peers::parse(peers_json.to_string().as_bytes()).unwrap();
    assert!(errors.is_empty());
    Snapshot {
        apps,
        terminals: Terminals::new(
            Some(SECRET),
            vec![TerminalEntry {
                id: "t1".into(),
                name: "Laptop".into(),
            }],
        ),
        peers: Arc::new(peers),
        app_addresses: Arc::new(HashMap::new()),
    }
}

fn policy() -> Policy {
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "web-terminal".to_string(),
        crate::names::AppUpstreams {
            http: Some("127.0.0.1:9000".parse().unwrap()),
            mqtt: None,
        },
    );
    Policy {
        router: Router::new(
            SHORT,
            BASE,
            "web-terminal",
            "127.0.0.1:8000".parse().unwrap(),
            overrides,
        ),
        window: Window::default(),
        max_signed_body: MAX_BODY,
        held_bodies: Arc::new(crate::body::HeldBudget::new(4 * MAX_BODY)),
        // The tables below sign over connections that proved no key, as a
        // `ca` peer does; `the_connection_and_the_signature_agree` covers
        // pinned peers.
        transports: Transports {
            default: Transport::Ca,
            by_peer: BTreeMap::new(),
        },
    }
}

/// The callers of the table, each as the headers it sends.
#[derive(Debug, Clone, Copy)]
enum As {
    Anonymous,
    TerminalCookie,
    TerminalBearer,
    /// A terminal token whose terminal was removed.
    Revoked,
    /// A valid `portal` signature of the peer.
    Peer,
    /// A `portal` signature by a key that is not the peer's.
    Forged,
    /// An `authorization` cookie that is no token of the terminal secret.
    ForgedCookie,
    /// The peer's genuine signature, expired.
    ExpiredSignature,
    /// A valid signature by a Portal that is not a peer.
    UnknownPeer,
    /// A `portal` signature without its nonce.
    MalformedSignature,
    /// An ActivityPub delivery's draft-cavage `Signature` (no
    /// `Signature-Input`).
    Cavage,
    /// A Web Bot Auth signature (RFC 9421, `tag="web-bot-auth"`).
    WebBotAuth,
    /// The owner's cookie beside another application's signature.
    TerminalBesideWebBotAuth,
}

fn jwt(sub: &str) -> String {
    encode(
        &Header::default(),
        &serde_json::json!({ "sub": sub }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn headers_for(
    caller: As,
    method: &str,
    host: &str,
    target: &str,
    body: Option<&[u8]>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut add = |k: &str, v: String| {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    };
    let sign_at = |key: &Identity, id: &str, at: i64| {
        let outgoing = Outgoing {
            method,
            authority: host,
            path_and_query: target,
            body,
        };
        signed_headers(
            &key.signing_key,
            id,
            &outgoing,
            at,
            60,
            &nonce(rand::random()),
        )
        .unwrap()
    };
    let sign = |key: &Identity, id: &str| sign_at(key, id, NOW);
    let web_bot_auth = [
        ("signature-agent", "\"https://bot.example\"".to_string()),
        (
            "signature-input",
            format!("sig1=(\"@authority\" \"signature-agent\");created={NOW};expires={};keyid=\"poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U\";alg=\"ed25519\";nonce=\"e8N7S2MFd/qrd6T2R3tdfAuuANngKI7LFtKYI/vowzk=\";tag=\"web-bot-auth\"", NOW + 60),
        ),
        ("signature", format!("sig1=:{}:", "uz2SAv+VIemw+Oo890bhYh6Xf5qZdLUgv6/PbiQfCFXcX/vt1A8Pf7OcgL2yUDE59/ckBm+/kR9O1lb+OVVHtQ==")),
    ];
    match caller {
        As::Anonymous => {}
        As::TerminalCookie => add("cookie", format!("theme=dark; authorization={}", jwt("t1"))),
        As::TerminalBearer => add("authorization", format!("Bearer {}", jwt("t1"))),
        As::Revoked => add("cookie", format!("authorization={}", jwt("gone"))),
        As::Peer => {
            let peer = peer_identity();
            for (k, v) in sign(&peer, &peer.id) {
                add(k, v);
            }
        }
        As::Forged => {
            let other = Identity::from_signing_key(SigningKey::from_bytes(&[9; 32]));
            for (k, v) in sign(&other, &peer_identity().id) {
                add(k, v);
            }
        }
        As::ForgedCookie => add("cookie", format!("authorization={}x", jwt("t1"))),
        As::ExpiredSignature => {
            let peer = peer_identity();
            for (k, v) in sign_at(&peer, &peer.id, NOW - 1000) {
                add(k, v);
            }
        }
        As::UnknownPeer => {
            let other = Identity::from_signing_key(SigningKey::from_bytes(&[9; 32]));
            for (k, v) in sign(&other, &other.id) {
                add(k, v);
            }
        }
        As::MalformedSignature => {
            let peer = peer_identity();
            for (k, v) in sign(&peer, &peer.id) {
                let v = match k {
                    "Signature-Input" => {
                        let at = v.find(";nonce=").unwrap();
                        let end = v[at + 1..].find(';').map_or(v.len(), |e| at + 1 + e);
                        format!("{}{}", &v[..at], &v[end..])
                    }
                    _ => v,
                };
                add(k, v);
            }
        }
        As::Cavage => {
            add("date", "Sun, 06 Dec 2026 20:00:00 GMT".into());
            add(
                "digest",
                "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
            );
            add(
                "signature",
                "keyId=\"https://social.example/users/alice#main-key\",algorithm=\"rsa-sha256\",headers=\"(request-target) host date digest\",signature=\"c2lnbmF0dXJl\"".into(),
            );
        }
        As::WebBotAuth => {
            for (k, v) in web_bot_auth.clone() {
                add(k, v);
            }
        }
        As::TerminalBesideWebBotAuth => {
            for (k, v) in web_bot_auth.clone() {
                add(k, v);
            }
            add("cookie", format!("authorization={}", jwt("t1")));
        }
    }
    h
}

/// Decides `method https://<host><path>` (no query) with `headers`.
fn decide_on(
    method: &str,
    host: &str,
    path: &str,
    headers: &HeaderMap,
    has_body: bool,
) -> Decision {
    let head = Head {
        method,
        host: Some(host),
        target: path.as_bytes(),
        headers,
        has_body,
        tls_peer: None,
    };
    decide(&head, &snapshot(), &policy(), NOW)
}

/// One request decided, summed up as a line: `forward <app> <access>
/// <client type> [-> <path forwarded>] @ <upstream>`, or `<status>
/// <code or signature reason>`.
fn run(caller: As, host: Option<&str>, target: &str) -> String {
    run_method(caller, "GET", host, target)
}

fn run_method(caller: As, method: &str, host: Option<&str>, target: &str) -> String {
    let headers = headers_for(caller, method, host.unwrap_or(""), target, None);
    let head = Head {
        method,
        host,
        target: target.as_bytes(),
        headers: &headers,
        has_body: false,
        tls_peer: None,
    };
    let snapshot = snapshot();
    let decision = decide(&head, &snapshot, &policy(), NOW);
    let line = summary(&decision);
    // Only a signature that verified claims a nonce.
    if decision.nonce.is_some() {
        assert!(matches!(caller, As::Peer), "{caller:?} {target}: {line}");
    }
    line
}

fn summary(decision: &Decision) -> String {
    match &decision.verdict {
        Verdict::Forward(plan) => {
            let mut s = format!(
                "forward {} {} {}",
                decision.facts.app_label(),
                decision.facts.access.expect("a rule was matched").as_str(),
                plan.caller().client_type()
            );
            if let Some(p) = &plan.path {
                s += &format!(" -> {p}");
            }
            s + &format!(" @ {}", plan.upstream)
        }
        Verdict::Refuse(r) => match r.reason {
            Some(reason) => format!("{} {reason}", r.status()),
            None => format!("{} {}", r.status(), r.code()),
        },
    }
}

/// Pinned peer TLS (docs/signing.md, "The channel"): a connection opened
/// with a peer's key carries only that peer's signed requests, and a peer
/// whose transport is pinned is refused over any other connection.
#[test]
fn the_connection_and_the_signature_agree() {
    use As::*;
    let peer = peer_identity().id;
    let other = Identity::from_signing_key(SigningKey::from_bytes(&[9; 32])).id;
    #[rustfmt::skip]
    let cases: &[(Transport, Option<&str>, As, &str)] = &[
        // The peer's own connection.
        (Transport::Pinned, Some(&peer), Peer, "forward files peer peer @ files-web:80"),
        (Transport::Ca, Some(&peer), Peer, "forward files peer peer @ files-web:80"),
        (Transport::Pinned, Some(&peer), Forged, "401 bad_signature"),
        (Transport::Pinned, Some(&peer), Anonymous, "401 peer_mismatch"),
        (Transport::Pinned, Some(&peer), TerminalCookie, "401 peer_mismatch"),
        (Transport::Pinned, Some(&peer), TerminalBearer, "401 peer_mismatch"),
        // Another key's connection: nothing passes, not even the peer's
        // valid signature.
        (Transport::Pinned, Some(&other), Peer, "401 peer_mismatch"),
        (Transport::Ca, Some(&other), Peer, "401 peer_mismatch"),
        (Transport::Pinned, Some(&other), Anonymous, "401 peer_mismatch"),
        (Transport::Pinned, Some(&other), TerminalCookie, "401 peer_mismatch"),
        // A connection that proved no key (a browser's, or a `ca` peer's).
        (Transport::Pinned, None, Peer, "401 unpinned"),
        (Transport::Ca, None, Peer, "forward files peer peer @ files-web:80"),
        (Transport::Pinned, None, Forged, "401 bad_signature"),
        (Transport::Pinned, None, Anonymous, "401 unauthorized"),
        (Transport::Pinned, None, TerminalCookie, "401 unauthorized"),
    ];
    let mut failures = Vec::new();
    for &(transport, tls_peer, caller, want) in cases {
        // The peer's transport as an exception, the default the other way.
        let mut policy = policy();
        policy.transports.default = match transport {
            Transport::Pinned => Transport::Ca,
            Transport::Ca => Transport::Pinned,
        };
        policy.transports.by_peer.insert(peer.clone(), transport);
        let target = "/peer/x";
        let headers = headers_for(caller, "GET", FILES, target, None);
        let head = Head {
            method: "GET",
            host: Some(FILES),
            target: target.as_bytes(),
            headers: &headers,
            has_body: false,
            tls_peer,
        };
        let decision = decide(&head, &snapshot(), &policy, NOW);
        let got = summary(&decision);
        // What the assertion will say proved the peer: its key at the
        // handshake too when the connection was pinned to it.
        if let Verdict::Forward(plan) = &decision.verdict {
            let want_proof = Some(match tls_peer {
                Some(_) => PeerProof::SignatureAndTls,
                None => PeerProof::Signature,
            });
            if plan.peer_proof != want_proof {
                failures.push(format!(
                    "{transport:?} {tls_peer:?} {caller:?}: proof {:?}",
                    plan.peer_proof
                ));
            }
        }
        // A mismatch is refused before the signature is verified: no
        // nonce of the signer is claimed.
        if got == "401 peer_mismatch" && decision.nonce.is_some() {
            failures.push(format!(
                "{transport:?} {tls_peer:?} {caller:?}: claimed a nonce"
            ));
        }
        if got != want {
            let conn = tls_peer.map(|p| &p[..6]);
            failures.push(format!(
                "{transport:?} {conn:?} {caller:?}: got {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn routing_caller_rule_and_path_form() {
    use As::*;
    let files = Some(FILES);
    let home = Some(DOMAIN);
    #[rustfmt::skip]
    let cases: &[(As, Option<&str>, &str, &str)] = &[
        // Routing.
        (Anonymous, home, "/", "forward web-terminal public anonymous @ 127.0.0.1:9000"),
        (Anonymous, Some("FILES.B2BLLA.P.GETPORTAL.ORG:443"), "/public/x", "forward files public anonymous @ files-web:80"),
        (Anonymous, Some("files.b2blla.p.getportal.org."), "/public/x", "forward files public anonymous @ files-web:80"),
        (Anonymous, Some("nope.b2blla.p.getportal.org"), "/", "404 not_found"),
        (Anonymous, Some("broker.b2blla.p.getportal.org"), "/", "404 not_found"),
        (Anonymous, Some("a.files.b2blla.p.getportal.org"), "/", "404 not_found"),
        (Anonymous, Some("files.other.p.getportal.org"), "/", "421 misdirected_request"),
        (Anonymous, None, "/", "400 bad_request"),
        (Anonymous, Some("files b2blla"), "/", "400 bad_request"),
        // Rules x callers.
        (Anonymous, files, "/", "401 unauthorized"),
        (TerminalCookie, files, "/", "forward files private terminal @ files-web:80"),
        (TerminalBearer, files, "/", "forward files private terminal @ files-web:80"),
        (Revoked, files, "/", "401 unauthorized"),
        (Peer, files, "/", "401 unauthorized"),
        (Anonymous, files, "/public/x", "forward files public anonymous @ files-web:80"),
        (TerminalCookie, files, "/public/x", "forward files public terminal @ files-web:80"),
        (Peer, files, "/public/x", "forward files public peer @ files-web:80"),
        (Anonymous, files, "/public/admin/x", "401 unauthorized"),
        (TerminalBearer, files, "/public/admin/x", "forward files private terminal @ files-web:80"),
        (Anonymous, files, "/peer/x", "401 unauthorized"),
        (TerminalCookie, files, "/peer/x", "401 unauthorized"),
        (Peer, files, "/peer/x?a=1", "forward files peer peer @ files-web:80"),
        // A failed signature refuses on every path, whatever else is sent.
        (Forged, files, "/public/x", "401 bad_signature"),
        (Forged, files, "/peer/x", "401 bad_signature"),
        (Forged, home, "/core/public/x", "401 bad_signature"),
        // Path forms: matched and forwarded in one canonical form.
        (Anonymous, files, "/%70ublic/x", "forward files public anonymous -> /public/x @ files-web:80"),
        (Anonymous, files, "/%70ublic/x?q=%41", "forward files public anonymous -> /public/x?q=%41 @ files-web:80"),
        (Anonymous, files, "/public/%61dmin/x", "401 unauthorized"),
        (Anonymous, files, "/public/../x", "400 bad_request"),
        (Anonymous, files, "/public/%2e%2e/x", "400 bad_request"),
        (Anonymous, files, "/public%2fadmin/", "400 bad_request"),
        (Anonymous, files, "/public/a%00", "400 bad_request"),
        (Anonymous, files, "/PUBLIC/x", "401 unauthorized"),
        // The core, from any Portal host.
        (Anonymous, home, "/core/public/status?x=1", "forward /core public anonymous -> /public/status?x=1 @ 127.0.0.1:8000"),
        (Anonymous, Some("nope.b2blla.p.getportal.org"), "/core/public/x", "forward /core public anonymous -> /public/x @ 127.0.0.1:8000"),
        (Anonymous, files, "/core/protected/x", "401 unauthorized"),
        (TerminalCookie, files, "/core/protected/x", "forward /core private terminal -> /protected/x @ 127.0.0.1:8000"),
        (Peer, files, "/core/protected/x", "401 unauthorized"),
        (TerminalCookie, files, "/core/internal/stop", "404 not_found"),
        (Anonymous, files, "/core/%2e%2e/x", "400 bad_request"),
        // Request-targets that are not origin-form: refused before
        // routing, as app servers resolve them against `/`.
        (Anonymous, files, "public/x", "400 bad_request"),
        (Anonymous, files, "admin", "400 bad_request"),
        (Anonymous, files, "./public/x", "400 bad_request"),
        (Anonymous, files, ";/public/x", "400 bad_request"),
        (Anonymous, files, "%2fpublic/x", "400 bad_request"),
        (Anonymous, files, "\\public\\x", "400 bad_request"),
        (Anonymous, files, "foo:/public/x", "400 bad_request"),
        (Anonymous, files, "ftp://files.b2blla.p.getportal.org/public/x", "400 bad_request"),
        (Anonymous, files, "files.b2blla.p.getportal.org:443", "400 bad_request"),
        (Anonymous, files, "?public", "400 bad_request"),
        (Anonymous, files, "*", "400 bad_request"),
        (TerminalCookie, files, "x/../admin", "400 bad_request"),
        // Absolute-form: the Host's own URL, forwarded as its path.
        (Anonymous, files, "https://files.b2blla.p.getportal.org/public/x?a=1", "forward files public anonymous -> /public/x?a=1 @ files-web:80"),
        (Anonymous, files, "HTTP://FILES.b2blla.p.getportal.org/public/x", "forward files public anonymous -> /public/x @ files-web:80"),
        (Anonymous, None, "https://files.b2blla.p.getportal.org/public/x", "forward files public anonymous -> /public/x @ files-web:80"),
        (Anonymous, files, "https://files.b2blla.p.getportal.org", "401 unauthorized"),
        (Anonymous, files, "https://files.b2blla.p.getportal.org?public/x", "401 unauthorized"),
        (TerminalCookie, files, "https://files.b2blla.p.getportal.org?a", "forward files private terminal -> /?a @ files-web:80"),
        (Anonymous, files, "https://files.b2blla.p.getportal.org/public/../x", "400 bad_request"),
        (Anonymous, files, "https://web-terminal.b2blla.p.getportal.org/public/x", "400 bad_request"),
        (Anonymous, home, "https://files.b2blla.p.getportal.org/public/x", "400 bad_request"),
        (Anonymous, files, "https://x@files.b2blla.p.getportal.org/public/x", "400 bad_request"),
        (Anonymous, files, "https:///public/x", "400 bad_request"),
    ];
    let mut failures = Vec::new();
    for (caller, host, target, want) in cases {
        let got = run(*caller, *host, target);
        if got != *want {
            failures.push(format!(
                "{caller:?} {host:?} {target}: got {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn refusals_carry_what_was_known() {
    let headers = headers_for(As::Anonymous, "GET", FILES, "/", None);
    let d = decide_on("GET", FILES, "/", &headers, false);
    assert_eq!(d.facts.app_label(), "files");
    assert_eq!(d.facts.access, Some(Access::Private));
    assert_eq!(&d.facts.caller, &Caller::Anonymous);
    let d = decide_on("GET", "example.com", "/", &headers, false);
    assert_eq!(d.facts.app_label(), "");
    assert_eq!(d.facts.access, None);
}

#[test]
fn credentials_found_are_in_the_plan() {
    let mut headers = headers_for(As::TerminalCookie, "GET", FILES, "/", None);
    headers.append(
        "authorization",
        format!("Bearer {}", jwt("gone")).parse().unwrap(),
    );
    let Verdict::Forward(plan) = decide_on("GET", FILES, "/", &headers, false).verdict else {
        panic!("a terminal reaches a private path");
    };
    assert!(plan.credentials.terminal_cookie && plan.credentials.terminal_authorization == [0]);
    // A peer's request is stripped the same way.
    let target = "/public/x";
    let mut headers = headers_for(As::Peer, "GET", FILES, target, None);
    headers.append("cookie", "authorization=x".parse().unwrap());
    let Verdict::Forward(plan) = decide_on("GET", FILES, target, &headers, false).verdict else {
        panic!("a peer reaches a public path");
    };
    assert!(plan.credentials.terminal_cookie && plan.credentials.terminal_authorization.is_empty());
    assert_eq!(plan.caller().client_type(), "peer");
}

fn signed_post(body: &[u8], declared: Option<usize>) -> (HeaderMap, Decision) {
    let mut headers = headers_for(As::Peer, "POST", FILES, "/peer/upload", Some(body));
    if let Some(n) = declared {
        headers.insert("content-length", n.into());
    }
    let d = decide_on("POST", FILES, "/peer/upload", &headers, true);
    (headers, d)
}

#[test]
fn signed_bodies_are_held_for_their_digest() {
    let (_, d) = signed_post(b"hello", Some(5));
    let Verdict::Forward(mut plan) = d.verdict else {
        panic!("a signed POST is forwarded");
    };
    let check = plan.body_check.as_mut().expect("a signed body is checked");
    assert_eq!(
        check.push(Some(b"hello"), true).unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    // Over the limit by its declared length: 413, the nonce still claimed.
    let (_, d) = signed_post(b"hello", Some(MAX_BODY + 1));
    assert_eq!(summary(&d), "413 payload_too_large");
    assert!(d.nonce.is_some());
}

#[test]
fn options_asterisk_is_answered_never_forwarded() {
    for caller in [As::Anonymous, As::TerminalCookie] {
        for host in [Some(FILES), Some(DOMAIN), Some("evil.example"), None] {
            assert_eq!(run_method(caller, "OPTIONS", host, "*"), "200 options");
        }
        for method in ["GET", "POST", "options", "DELETE"] {
            assert_eq!(
                run_method(caller, method, Some(FILES), "*"),
                "400 bad_request",
                "{method}"
            );
        }
    }
    assert_eq!(
        run_method(As::Anonymous, "OPTIONS", Some(FILES), "/public/x"),
        "forward files public anonymous @ files-web:80"
    );
}

#[test]
fn the_nonce_claim_settles_the_verdict() {
    let claim = |target: &str, caller: As| {
        let headers = headers_for(caller, "GET", FILES, target, None);
        decide_on("GET", FILES, target, &headers, false)
    };
    let d = claim("/peer/x", As::Peer);
    let n = d
        .nonce
        .clone()
        .expect("a verified signature claims its nonce");
    assert_eq!(n.peer, peer_identity().id);
    assert_eq!(n.forget_at, NOW + 60 + Window::default().skew);
    assert_eq!(
        summary(&d.settle(Ok(()))),
        "forward files peer peer @ files-web:80"
    );
    let replayed = claim("/peer/x", As::Peer).settle(Err(ReplayError::Seen));
    assert_eq!(summary(&replayed), "401 replayed");
    assert_eq!(replayed.facts.app_label(), "files");
    assert_eq!(&replayed.facts.caller, &Caller::Anonymous);
    let full = claim("/peer/x", As::Peer).settle(Err(ReplayError::Full));
    assert_eq!(summary(&full), "429 peer_nonces");
    assert!(
        !full.failed_authentication(),
        "a verified peer failed nothing"
    );
    // A replay wins over a refusal decided after the signature.
    let d = claim("/", As::Peer);
    assert_eq!(summary(&d), "401 unauthorized");
    assert_eq!(summary(&d.settle(Err(ReplayError::Seen))), "401 replayed");
    // Nothing to claim without a verified signature.
    for caller in [As::Anonymous, As::TerminalCookie, As::Forged] {
        let d = claim("/public/x", caller);
        assert!(d.nonce.is_none(), "{caller:?}");
        let before = summary(&d);
        assert_eq!(
            summary(&d.settle(Err(ReplayError::Seen))),
            before,
            "{caller:?}"
        );
    }
}

/// No request-target reaches a private prefix for a caller who may not
/// see it: whatever an anonymous caller gets forwarded is an origin-form
/// target, and a lenient app server (resolving relative references
/// against `/`, reading `\` as `/`, percent-decoding `%2f` too, dropping
/// `;parameters`, merging `/`, resolving dot segments) reads it as the
/// path the rule was matched on, never under `/admin`. At least one
/// generated target in sixteen is forwarded.
#[test]
fn no_target_form_reaches_a_private_prefix() {
    use crate::target::tests::lenient_target_reading;
    use crate::test_support::check_accepting;
    let targets = (
        proptest::prop_oneof![
            crate::path::tests::raw_path(),
            crate::target::tests::raw_target(),
        ],
        proptest::prelude::any::<bool>(),
    );
    let mut apps = BTreeMap::new();
    apps.insert(
        "files".to_string(),
        app(
            "files",
            r#"{"port":80,"paths":{"":{"access":"public"},"/admin":{"access":"private"}}}"#,
        ),
    );
    let snapshot = Snapshot { apps, ..snapshot() };
    check_accepting(file!(), 4096, 16, targets, |(raw, absolute_host)| {
        let headers = HeaderMap::new();
        // With a Host header, or (absolute-form only) without one.
        let host = if absolute_host { None } else { Some(FILES) };
        let head = Head {
            method: "GET",
            host,
            target: raw.as_bytes(),
            headers: &headers,
            has_body: false,
            tls_peer: None,
        };
        let Verdict::Forward(plan) = decide(&head, &snapshot, &policy(), NOW).verdict else {
            return Ok(false);
        };
        let forwarded = plan.path.as_deref().unwrap_or(&raw);
        proptest::prop_assert!(
            forwarded.starts_with('/'),
            "{:?} forwarded as {:?}",
            raw,
            forwarded
        );
        let read = lenient_target_reading(forwarded);
        proptest::prop_assert!(
            read.first().is_none_or(|s| !s.starts_with("admin")),
            "{:?} forwarded as {:?}, read as {:?}",
            raw,
            forwarded,
            read
        );
        // What the app reads is what the rule was matched on: the path
        // decided (as the revocation record keeps it).
        let matched = &plan.opened.path;
        proptest::prop_assert_eq!(&read, &lenient_target_reading(matched), "{:?}", raw);
        Ok(true)
    });
}

/// What the rate limit of failed authentications counts
/// (docs/config.md, "What counts as a failed authentication"): a
/// credential of ours proven wrong, nothing else. Every way a request can
/// carry a credential, or something like one, on each kind of path: what
/// it is decided as, and whether it counts.
#[test]
fn failed_authentications_are_told_apart() {
    use As::*;
    #[rustfmt::skip]
    let cases: &[(As, &str, &str, bool)] = &[
        // Proven wrong: counted wherever it is refused.
        (Forged, "/peer/x", "401 bad_signature", true),
        (Forged, "/public/x", "401 bad_signature", true),
        (ForgedCookie, "/private/x", "401 unauthorized", true),
        (ForgedCookie, "/", "401 unauthorized", true),
        // A forged cookie on a page that needs none: the browser sends it.
        (ForgedCookie, "/public/x", "forward files public anonymous @ files-web:80", false),
        // The owner's stale token (signed with the secret): not counted.
        (Revoked, "/private/x", "401 unauthorized", false),
        (Revoked, "/", "401 unauthorized", false),
        (Revoked, "/public/x", "forward files public anonymous @ files-web:80", false),
        // Signatures of ours that prove nothing either way.
        (ExpiredSignature, "/peer/x", "401 expired", false),
        (UnknownPeer, "/peer/x", "401 unknown_peer", false),
        (MalformedSignature, "/peer/x", "401 malformed", false),
        // Other applications' signatures: the app's business.
        (Cavage, "/public/x", "forward files public anonymous @ files-web:80", false),
        (Cavage, "/peer/x", "401 unauthorized", false),
        (WebBotAuth, "/public/x", "forward files public anonymous @ files-web:80", false),
        (WebBotAuth, "/private/x", "401 unauthorized", false),
        (TerminalBesideWebBotAuth, "/private/x", "forward files private terminal @ files-web:80", false),
        // No credential, or a valid one.
        (Anonymous, "/private/x", "401 unauthorized", false),
        (Anonymous, "/peer/x", "401 unauthorized", false),
        (TerminalCookie, "/private/x", "forward files private terminal @ files-web:80", false),
        (TerminalBearer, "/peer/x", "401 unauthorized", false),
        (Peer, "/private/x", "401 unauthorized", false),
        (Peer, "/peer/x", "forward files peer peer @ files-web:80", false),
    ];
    for &(caller, path, decided, counted) in cases {
        let headers = headers_for(caller, "GET", FILES, path, None);
        let decision = decide_on("GET", FILES, path, &headers, false);
        assert_eq!(summary(&decision), decided, "{caller:?} {path}");
        assert_eq!(
            decision.failed_authentication(),
            counted,
            "{caller:?} {path}: {}",
            summary(&decision)
        );
    }
    // The genuine signature replayed, or over the peer's nonce share.
    for (claim, decided) in [
        (ReplayError::Seen, "401 replayed"),
        (ReplayError::Full, "429 peer_nonces"),
    ] {
        let headers = headers_for(Peer, "GET", FILES, "/peer/x", None);
        let decision = decide_on("GET", FILES, "/peer/x", &headers, false).settle(Err(claim));
        assert_eq!(summary(&decision), decided);
        assert!(!decision.failed_authentication(), "{decided}");
    }
}
