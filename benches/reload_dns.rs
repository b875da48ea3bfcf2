//! What the binary adds around the core on its hot paths: loading the
//! whole state directory (every state change), the DNS cache's answer
//! for an upstream name (every request to a container name) and the rate
//! limits' count (every request). Run with
//! `cargo bench --bench reload_dns`; the pure functions are
//! `cargo bench -p portal-core`.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use portal_core::identity::portal_id;
use portal_proxy::dns::{Answer, Dns, Lookup, LookupError, Settings, SystemClock};

/// The same app_meta.json as the core's benches.
const APP_META: &str = include_str!("../core/benches/app_meta.json");

/// A state directory the size the issue names (100 apps, 1,000 peers, 100
/// terminals), loaded whole: what every state change costs, off the request
/// path (requests keep the previous snapshot meanwhile). Goal: under 50 ms.
fn state_reload(c: &mut Criterion) {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
    use portal_proxy::state::{self, SharedState};

    let dir = std::env::temp_dir().join(format!("portal-proxy-bench-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for n in 0..100 {
        let app = dir.join("apps").join(format!("app{n}"));
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("app_meta.json"), APP_META).unwrap();
    }
    let peers: Vec<_> = (0..1000)
        .map(|n| {
            let mut seed = [7u8; 32];
            seed[..4].copy_from_slice(&(n as u32).to_le_bytes());
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let public = key.verifying_key();
            serde_json::json!({
                "id": portal_id(public.as_bytes()),
                "name": format!("peer {n}"),
                "public_key": public.to_public_key_pem(LineEnding::LF).unwrap(),
            })
        })
        .collect();
    std::fs::write(dir.join("peers.json"), serde_json::to_vec(&peers).unwrap()).unwrap();
    let terminals: Vec<_> = (0..100)
        .map(|n| serde_json::json!({"id": format!("terminal-{n}"), "name": format!("Device {n}")}))
        .collect();
    std::fs::write(
        dir.join("terminals.json"),
        serde_json::to_vec(&terminals).unwrap(),
    )
    .unwrap();

    let (snapshot, errors) = state::load(&dir).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        (
            snapshot.apps.len(),
            snapshot.peers.len(),
            snapshot.terminals.len()
        ),
        (100, 1000, 100)
    );
    let shared = SharedState::new(snapshot);
    let mut group = c.benchmark_group("state_reload");
    group.sample_size(20);
    group.bench_function("100_apps_1000_peers_100_terminals", |b| {
        b.iter(|| shared.reload(black_box(&dir)).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resolver that always gives one address for a day.
struct OneAddress;

#[async_trait::async_trait]
impl Lookup for OneAddress {
    async fn lookup(&self, _name: &str) -> Result<Answer, LookupError> {
        Ok(Answer {
            addrs: vec![IpAddr::from([172, 18, 0, 5])],
            ttl: Duration::from_secs(86_400),
        })
    }
}

/// The DNS cache on the hot path: a fresh cached name (what every request
/// to a container name costs once its answer is cached) beside an IP
/// literal (which never reaches the cache).
fn dns(c: &mut Criterion) {
    let settings = Settings {
        max_ttl: Duration::from_secs(86_400),
        ..Settings::default()
    };
    let dns = Dns::new(settings, Arc::new(OneAddress), Arc::new(SystemClock));
    // 100 other names cached, as on a busy Portal.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for i in 0..100 {
            dns.resolve(&format!("app-{i}"), 80).await.unwrap();
        }
        dns.resolve("myapp-web", 8080).await.unwrap();
    });
    let expected: SocketAddr = "172.18.0.5:8080".parse().unwrap();
    assert_eq!(dns.cached("myapp-web", 8080), Some(expected));
    assert_eq!(
        dns.cached("10.0.0.7", 8080),
        Some("10.0.0.7:8080".parse().unwrap())
    );
    let mut group = c.benchmark_group("dns");
    group.bench_function("cached_name", |b| {
        b.iter(|| dns.cached(black_box("myapp-web"), black_box(8080)))
    });
    group.bench_function("ip_literal", |b| {
        b.iter(|| dns.cached(black_box("10.0.0.7"), black_box(8080)))
    });
    group.finish();
}

/// What the rate limits add to every request: one count-min sketch update
/// for an anonymous client's address (the lockout check beside it), with
/// 10,000 other addresses counted.
fn rate(c: &mut Criterion) {
    use portal_proxy::admission::rate::{RateLimits, RateSettings};
    let limits = RateLimits::new(RateSettings {
        anonymous_per_second: 1_000_000_000,
        ..RateSettings::default()
    });
    for i in 0..10_000u32 {
        let ip = IpAddr::from(i.to_be_bytes());
        let _ = limits.anonymous(ip.into());
    }
    let client = IpAddr::from([203, 0, 113, 9]).into();
    assert!(limits.anonymous(client).is_none());
    let mut group = c.benchmark_group("rate");
    group.bench_function("anonymous_request", |b| {
        b.iter(|| {
            black_box(limits.locked_out(black_box(client)));
            black_box(limits.anonymous(black_box(client)))
        })
    });
    group.finish();
}

criterion_group!(benches, state_reload, dns, rate);
criterion_main!(benches);
