//! The cost of a peer call's TLS handshake (docs/signing.md, "The
//! channel"): pinned to both identity keys, mutual, beside the CA
//! handshake a `ca` peer (and every peer call before) makes. Both run the
//! listener's real certificate resolver and verifiers, client and server
//! in one thread, bytes passed in memory: what is measured is the CPU of
//! both ends of one full handshake, no network. Run with
//! `cargo bench --bench handshake`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use portal_proxy::tls::certificates::{demo_certificate, CertResolver};
use portal_proxy::tls::peer::{
    identity_certificate, pinned_client_config, PeerAwareResolver, PeerClientKeys,
};

const DOMAIN: &str = "abcdef.portal.test";

/// Runs one handshake to its end; panics if it fails.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) {
    let name = ServerName::try_from(format!("app.{DOMAIN}")).unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().expect("the server accepts");
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().expect("the client accepts");
    }
    black_box((&c, &s));
}

fn handshakes(c: &mut Criterion) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The listener: the demo's CA certificate for browsers, the identity
    // certificate for peers, peers' keys checked against a one-peer list.
    let demo = demo_certificate(DOMAIN).unwrap();
    let chain: Vec<_> = CertificateDer::pem_slice_iter(demo.cert_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(demo.key_pem.as_bytes()).unwrap();
    let ca_key = rustls::sign::CertifiedKey::from_der(chain, key, &provider).unwrap();
    let server_identity = portal_proxy::identity::generate();
    let caller = portal_proxy::identity::generate();
    let caller_id = caller.id.clone();
    let resolver = PeerAwareResolver {
        ca: Arc::new(CertResolver::new(ca_key)),
        identity: identity_certificate(&server_identity, DOMAIN).unwrap(),
    };
    let server = Arc::new(
        ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(Arc::new(PeerClientKeys {
                lookup: move |key: &[u8; 32]| {
                    let id = portal_core::identity::portal_id(key);
                    (id == caller_id).then_some(id)
                },
            }))
            .with_cert_resolver(Arc::new(resolver)),
    );

    // Today's CA handshake: the certificate verified against the CA.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(demo.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut ca = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ca.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Resumed from the second call on, as the client's shared CA config
    // does; and every time in full, as a pinned call is.
    let ca_resumed = Arc::new(ca.clone());
    ca.resumption = rustls::client::Resumption::disabled();
    let ca = Arc::new(ca);

    // Pinned: never resumed (docs/signing.md), the client config built
    // per call as the client does.
    let own = identity_certificate(&caller, "caller.portal.test").unwrap();
    let peer_key = server_identity.signing_key.verifying_key().to_bytes();
    let pinned = Arc::new(pinned_client_config(peer_key, &own).unwrap());

    let mut group = c.benchmark_group("handshake");
    group.bench_function("ca_full", |b| b.iter(|| handshake(&ca, &server)));
    group.bench_function("ca_resumed", |b| b.iter(|| handshake(&ca_resumed, &server)));
    group.bench_function("pinned_mutual", |b| b.iter(|| handshake(&pinned, &server)));
    // What a call costs: the client builds its config for the peer.
    group.bench_function("pinned_mutual_with_config", |b| {
        b.iter(|| {
            let config = Arc::new(pinned_client_config(peer_key, &own).unwrap());
            handshake(&config, &server)
        })
    });
    group.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
