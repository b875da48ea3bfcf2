//! The pure functions every request (or every state reload) goes through:
//! the whole decision of a request, host normalization and routing, Portal
//! ID derivation, app_meta.json parsing, signature verification, the
//! identity assertion. Run with
//! `cargo bench -p portal-core` (no Pingora is built). The state reload and
//! the DNS cache, which touch files and tokio, are the binary's
//! `benches/reload_dns.rs`.

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use portal_core::app_meta::AppMeta;
use portal_core::identity::portal_id;
use portal_core::route::{normalize_host, CoreAccess, Router, Target};

mod fixture;

use fixture::APP_META;

fn routing(c: &mut Criterion) {
    let apps: BTreeSet<&str> = [
        "web-terminal",
        "files",
        "mosquitto",
        "home-assistant",
        "photos",
        "notes",
    ]
    .into_iter()
    .collect();
    let router = Router::new(
        "b2blla",
        "p.getportal.org",
        "web-terminal",
        "127.0.0.1:8000".parse().unwrap(),
        Default::default(),
    );
    let route = |raw_host: &str, path: &str| {
        let host = normalize_host(raw_host)?;
        router.route(&host, path, |app| apps.contains(app)).ok()
    };
    // The benchmarks measure what they are meant to.
    assert_eq!(
        route("Files.B2BLLA.p.getportal.org:443", "/index.html"),
        Some(Target::App("files".into()))
    );
    assert_eq!(
        route("b2blla.p.getportal.org", "/core/public/status"),
        Some(Target::Core(CoreAccess::Public))
    );

    let mut group = c.benchmark_group("route");
    group.bench_function("app_host", |b| {
        b.iter(|| {
            route(
                black_box("Files.B2BLLA.p.getportal.org:443"),
                black_box("/index.html"),
            )
        })
    });
    group.bench_function("core_path", |b| {
        b.iter(|| {
            route(
                black_box("b2blla.p.getportal.org"),
                black_box("/core/public/status"),
            )
        })
    });
    group.finish();
}

fn identity(c: &mut Criterion) {
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    assert_eq!(portal_id(&key).len(), 103);
    c.bench_function("portal_id", |b| b.iter(|| portal_id(black_box(&key))));
}

/// The identity assertion of a request: the cached token of a busy caller
/// (what nearly every request costs) beside a new one (once per caller and
/// app every 40 s).
fn assertion(c: &mut Criterion) {
    use portal_core::assertion::Assertions;
    use portal_core::caller::Caller;
    let portal = portal_core::identity::Identity::from_signing_key(
        ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
    );
    let assertions = Assertions::new(&portal, 60);
    let caller = Caller::Terminal {
        id: "0f4c9a2e-terminal".into(),
        name: "Phone".into(),
    };
    let mut group = c.benchmark_group("assertion");
    group.bench_function("cached", |b| {
        b.iter(|| {
            assertions
                .for_caller(black_box("photos"), black_box(&caller), None, 1_000)
                .0
        })
    });
    group.bench_function("sign", |b| {
        b.iter(|| assertions.sign(black_box("photos"), black_box(&caller), None, 1_000))
    });
    group.finish();
}

fn app_meta(c: &mut Criterion) {
    let json = APP_META.as_bytes();
    let parsed = AppMeta::parse("mosquitto", json).expect("the bench's app_meta.json is valid");
    assert_eq!(parsed.paths.len(), 6);
    assert!(parsed.http.is_some() && parsed.mqtt.is_some());
    c.bench_function("app_meta_parse", |b| {
        b.iter(|| AppMeta::parse(black_box("mosquitto"), black_box(json)))
    });
}

/// The whole verification of a peer request (parse `Signature-Input` and
/// `Signature`, build the base, `verify_strict`) beside `verify_strict`
/// alone on the same base: the goal is at most 10% above it.
fn signature(c: &mut Criterion) {
    use ed25519_dalek::{Signature, SigningKey};
    use portal_core::signature::{
        nonce, parse, signature_base, signed_headers, verify, Outgoing, RequestParts, Window,
    };

    let key = SigningKey::from_bytes(&[7u8; 32]);
    let keyid = portal_core::identity::portal_id(key.verifying_key().as_bytes());
    let now = 1_800_000_000;
    let authority = "files.b2blla.p.getportal.org";
    let path = "/api/peer/share?item=42&format=json";
    let body = br#"{"message": "hello from a peer"}"#;
    let mut headers = http::HeaderMap::new();
    let request = Outgoing {
        method: "POST",
        authority,
        path_and_query: path,
        body: Some(body),
    };
    for (name, value) in signed_headers(&key, &keyid, &request, now, 60, &nonce([7; 16])).unwrap() {
        headers.insert(name, value.parse().unwrap());
    }
    headers.insert("content-type", "application/json".parse().unwrap());
    let parts = RequestParts {
        method: "POST",
        authority,
        path: "/api/peer/share",
        query: Some("item=42&format=json"),
        headers: &headers,
        has_body: true,
    };
    let public = key.verifying_key();
    let parsed = parse(&headers).unwrap().unwrap();
    verify(&parts, &parsed, |_| Some(public), now, Window::default())
        .expect("the request verifies");
    let base = signature_base(&parts, &parsed.field.components, &parsed.field.input).unwrap();
    let sig = Signature::from_bytes(&parsed.field.signature);

    let mut group = c.benchmark_group("signature");
    group.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| {
            public
                .verify_strict(black_box(base.as_bytes()), black_box(&sig))
                .unwrap()
        })
    });
    group.bench_function("verify_request", |b| {
        b.iter(|| {
            let parsed = parse(black_box(&headers)).unwrap().unwrap();
            verify(
                black_box(&parts),
                &parsed,
                |_| Some(public),
                now,
                Window::default(),
            )
            .unwrap()
        })
    });
    group.bench_function("parse_and_base_only", |b| {
        b.iter(|| {
            let parsed = parse(black_box(&headers)).unwrap().unwrap();
            signature_base(
                black_box(&parts),
                &parsed.field.components,
                &parsed.field.input,
            )
            .unwrap()
        })
    });
    group.finish();
}

/// The whole decision of one request ([`decide`]): public anonymous, a
/// terminal on a private path (one JWT check), and a signed peer request
/// (signature verification included; the replay cache is the shell's).
fn decision(c: &mut Criterion) {
    use portal_core::decide::{decide, Verdict};
    let fixture = fixture::Fixture::new();
    let mut group = c.benchmark_group("decide");
    for (name, head, client_type) in fixture.cases() {
        // The benchmarks measure what they are meant to.
        let (snapshot, policy, now) = (&fixture.snapshot, &fixture.policy, fixture::NOW);
        match decide(&head, snapshot, policy, now).verdict {
            Verdict::Forward(plan) => assert_eq!(plan.caller().client_type(), client_type),
            Verdict::Refuse(r) => panic!("{name}: refused: {r:?}"),
        }
        group.bench_function(name, |b| {
            b.iter(|| decide(black_box(&head), snapshot, policy, now))
        });
    }
    group.finish();
}

criterion_group!(benches, decision, routing, identity, app_meta, signature, assertion,);
criterion_main!(benches);
