//! Pinned peer TLS (docs/signing.md, "The channel"), through two real
//! Portals and hand-made TLS clients: the channel between Portals is
//! authenticated by their identity keys, both ways, with no CA; browsers
//! keep the CA certificate and are never asked for one of theirs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use crate::peering::{impersonate, rogue_listener, setup, setup_with, Channel, Setup};
use portal_proxy::tls::peer::{
    identity_certificate, pinned_client_config, PinnedServer, PEER_ALPN,
};
use reqwest::StatusCode;

/// Portal 2's HTTPS listener, named as alpha on Portal 2.
fn alpha2_host(s: &Setup) -> String {
    format!("alpha.{}", s.p2.files.domain)
}

/// The raw bytes answered to `request` over a TLS connection made with
/// `config` to Portal 2 (empty if the connection ends first, or when
/// `request` is: then only the handshake is made), or the handshake's
/// error if it failed on the client's side.
async fn exchange(
    s: &Setup,
    config: rustls::ClientConfig,
    request: &str,
) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(s.p2.proxy.https)
        .await
        .unwrap();
    let name = ServerName::try_from(alpha2_host(s)).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    if request.is_empty() {
        // The handshake is all that was asked for.
        return Ok(String::new());
    }
    let _ = tls.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

async fn p2_handshakes(s: &Setup, result: &str) -> f64 {
    let text = metrics_text(s.p2.metrics).await;
    let series = format!("portal_proxy_peer_handshakes_total{{result=\"{result}\"}}");
    series_value(&text, &series).unwrap_or_else(|| panic!("{series} missing"))
}

/// What a TLS server saw: connections, completed handshakes, bytes read
/// after them.
#[derive(Debug, Default)]
struct Seen {
    accepted: AtomicUsize,
    handshakes: AtomicUsize,
    bytes: AtomicUsize,
}

/// Serves TLS with `acceptor` on `listener`, counting what it sees.
fn count_what_is_seen(
    acceptor: tokio_rustls::TlsAcceptor,
    listener: tokio::net::TcpListener,
) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            counts.handshakes.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0; 65536];
            while let Ok(Ok(n @ 1..)) =
                tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf)).await
            {
                counts.bytes.fetch_add(n, Ordering::SeqCst);
            }
        }
    });
    seen
}

/// An imposter presenting the pinned form (a self-signed ed25519
/// certificate for Portal 2's domain) of a key that is not Portal 2's.
async fn ed25519_imposter(domain: &str) -> (tokio_rustls::TlsAcceptor, tokio::net::TcpListener) {
    let stranger = portal_proxy::identity::generate();
    let cert = identity_certificate(&stranger, domain).unwrap();
    let resolver = portal_proxy::tls::certificates::CertResolver::new((*cert).clone());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), listener)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imposter_sees_no_request_bytes() {
    // Portal 1 even trusts the CA imposter's CA (its ca_file, for `ca`
    // peers): pinned TLS does not look at CAs.
    let s = setup_with("imposter", Channel::Pinned, ", ca_file: peer-ca.pem");
    s.peered().await;
    let domain = s.p2.files.domain.clone();
    let (ca_imposter, ca_listener, ca) = rogue_listener(&domain).await;
    let (key_imposter, key_listener) = ed25519_imposter(&domain).await;
    for (what, acceptor, listener) in [
        ("a CA certificate for the domain", ca_imposter, ca_listener),
        (
            "an ed25519 certificate of another key",
            key_imposter,
            key_listener,
        ),
    ] {
        let addr = listener.local_addr().unwrap();
        let seen = count_what_is_seen(acceptor, listener);
        impersonate(&s, addr, &ca).await;
        let caught = eventually(Duration::from_secs(5), || async {
            // Until Portal 1 reloaded peers.json, the last one answers.
            if seen.accepted.load(Ordering::SeqCst) == 0 {
                let _ = s.call("peer/x").await;
                return false;
            }
            s.unverified_call()
                .await
                .is_some_and(|m| m.contains("did not prove the peer's identity key"))
        })
        .await;
        assert!(caught, "{what}: the call was not refused as unverified");
        assert_eq!(
            seen.handshakes.load(Ordering::SeqCst),
            0,
            "{what}: a handshake completed"
        );
        assert_eq!(
            seen.bytes.load(Ordering::SeqCst),
            0,
            "{what}: request bytes read"
        );
    }
    let text = metrics_text(s.p1.metrics).await;
    let series = format!(
        "portal_proxy_outbound_unverified_total{{peer=\"{}\"}}",
        s.p2.files.identity.id
    );
    assert!(
        series_value(&text, &series).is_some_and(|n| n >= 2.0),
        "{series}"
    );
}

/// A client certificate resolver that only records whether the server
/// asked for a certificate.
#[derive(Debug, Default)]
struct Asked(AtomicBool);

impl rustls::client::ResolvesClientCert for Asked {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, Ordering::SeqCst);
        None
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A browser's TLS: Portal 2's CA trusted, `h2` and `http/1.1` offered,
/// TLS 1.2 only or any version.
fn browser_config(s: &Setup, asked: Arc<Asked>, tls12: bool) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(s.p2.files.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(asked);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A pinned client of Portal 2 presenting `own`.
fn pinned_to_p2(s: &Setup, own: &portal_core::identity::Identity) -> rustls::ClientConfig {
    let own = identity_certificate(own, "caller.portal.test").unwrap();
    let key = s.p2.files.identity.signing_key.verifying_key().to_bytes();
    pinned_client_config(key, &own).unwrap()
}

/// A client of Portal 2 offering the peer ALPN and presenting no key.
fn keyless_to_p2(s: &Setup) -> rustls::ClientConfig {
    let key = s.p2.files.identity.signing_key.verifying_key().to_bytes();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut keyless = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer { key }))
        .with_no_client_auth();
    keyless.alpn_protocols = vec![PEER_ALPN.to_vec(), b"http/1.1".to_vec()];
    keyless
}

fn get(host: &str) -> String {
    format!("GET /peer/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_the_ca_certificate_and_are_not_asked_for_one() {
    let s = setup("browser");
    s.peered().await;
    let request = get(&alpha2_host(&s));
    // Over both TLS versions, interleaved with pinned handshakes on the
    // same listener (whose threads each keep the choice of their last
    // handshake).
    for round in 0..6 {
        let asked = Arc::new(Asked::default());
        let tls12 = round % 2 == 1;
        let mut config = browser_config(&s, asked.clone(), tls12);
        if tls12 {
            // HTTP/1.1, to read the answer here.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        let answer = exchange(&s, config, if tls12 { &request } else { "" })
            .await
            .expect("the CA certificate verifies");
        // An anonymous caller is refused the peer path by its rule, not
        // by the channel.
        if tls12 {
            assert!(
                answer.starts_with("HTTP/1.1 401"),
                "round {round}: {answer}"
            );
            assert!(!answer.contains("peer_mismatch"), "round {round}: {answer}");
        }
        assert!(
            !asked.0.load(Ordering::SeqCst),
            "round {round}: a browser was asked for a certificate"
        );
        let pinned = pinned_to_p2(&s, &s.p1.files.identity);
        exchange(&s, pinned, "").await.expect("a pinned handshake");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_listed_key_gets_http_on_the_peer_path() {
    let s = setup("keys");
    s.peered().await;
    let host = alpha2_host(&s);
    let unknown_before = p2_handshakes(&s, "unknown_key").await;

    // A key that is no peer's: refused at the handshake, no HTTP answer,
    // nothing reaches the app.
    let stranger = portal_proxy::identity::generate();
    let answer = exchange(&s, pinned_to_p2(&s, &stranger), &get(&host)).await;
    assert!(
        answer.as_deref().is_ok_and(|a| a.is_empty()),
        "an unknown key got {answer:?}"
    );
    assert_eq!(p2_handshakes(&s, "unknown_key").await, unknown_before + 1.0);

    // The peer ALPN with no certificate at all: refused the same way.
    let answer = exchange(&s, keyless_to_p2(&s), &get(&host)).await;
    assert!(
        answer.as_deref().is_ok_and(|a| a.is_empty()),
        "no key got {answer:?}"
    );
    assert!(
        s.alpha2.received.lock().unwrap().is_empty(),
        "the app was reached"
    );

    // Portal 1's key opens the channel, but the channel carries only
    // Portal 1's signed requests: an unsigned one is 401 peer_mismatch.
    let answer = exchange(&s, pinned_to_p2(&s, &s.p1.files.identity), &get(&host))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("peer_mismatch"), "{answer}");
    assert!(
        s.alpha2.received.lock().unwrap().is_empty(),
        "the app was reached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_ca_still_works() {
    let s = crate::peering::setup_ca("ca-transport");
    s.peered().await;
    let resp = s.call("peer/x").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(p2_handshakes(&s, "verified").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_peer_calling_over_ca_tls_is_refused() {
    // Portal 1 calls with `transport: ca`; Portal 2 expects Portal 1
    // pinned: it refuses the verified request (signed, reason
    // `unpinned`), and Portal 1's app gets that refusal.
    let s = setup_with("caller-ca", Channel::CallerCa, "");
    s.peered().await;
    let resp = s.call("peer/x").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "unpinned", "{body}");
    assert!(
        s.alpha2.received.lock().unwrap().is_empty(),
        "the app was reached"
    );
}

/// `portal_proxy_peer_handshakes_total{result="verified"}` counts only
/// handshakes that proved the key (issue 26, item 8): a listed key's
/// certificate whose CertificateVerify is made by another key is
/// `bad_proof`, a pinned handshake with no certificate or over TLS 1.2
/// moves no `verified`, and a real peer's handshake moves it by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_proven_key_counts_as_verified() {
    let s = setup("proof");
    s.peered().await;
    let host = alpha2_host(&s);
    let verified = p2_handshakes(&s, "verified").await;
    let bad_proof = p2_handshakes(&s, "bad_proof").await;

    // Portal 1's certificate, the handshake signed by a stranger's key.
    let listed = identity_certificate(&s.p1.files.identity, "caller.portal.test").unwrap();
    let stranger = identity_certificate(&portal_proxy::identity::generate(), "x.test").unwrap();
    let mixed = Arc::new(rustls::sign::CertifiedKey::new(
        listed.cert.clone(),
        stranger.key.clone(),
    ));
    let key = s.p2.files.identity.signing_key.verifying_key().to_bytes();
    let answer = exchange(
        &s,
        portal_proxy::tls::peer::pinned_client_config(key, &mixed).unwrap(),
        &get(&host),
    )
    .await;
    assert!(
        answer.as_deref().map_or(true, str::is_empty),
        "a borrowed certificate got {answer:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            p2_handshakes(&s, "bad_proof").await == bad_proof + 1.0
        })
        .await,
        "the failed proof was not counted"
    );

    // The peer ALPN and Portal 1's certificate over TLS 1.2.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls12 = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer { key }))
        .with_client_auth_cert(listed.cert.clone(), {
            use rustls::pki_types::pem::PemObject;
            let pem = s.p1.files.identity.private_key_pem();
            rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
        })
        .unwrap();
    tls12.alpn_protocols = vec![PEER_ALPN.to_vec(), b"http/1.1".to_vec()];
    let answer = exchange(&s, tls12, &get(&host)).await;
    assert!(
        answer.as_deref().map_or(true, str::is_empty),
        "TLS 1.2 got {answer:?}"
    );

    // The peer ALPN with no certificate at all.
    let _ = exchange(&s, keyless_to_p2(&s), &get(&host)).await;
    assert_eq!(
        p2_handshakes(&s, "verified").await,
        verified,
        "a handshake that proved no key was counted as verified"
    );

    // Portal 1 itself: one more.
    exchange(&s, pinned_to_p2(&s, &s.p1.files.identity), "")
        .await
        .expect("a pinned handshake");
    assert!(
        eventually(Duration::from_secs(5), || async {
            p2_handshakes(&s, "verified").await == verified + 1.0
        })
        .await,
        "a proven key was not counted"
    );
    assert!(
        s.alpha2.received.lock().unwrap().is_empty(),
        "the app was reached"
    );
}
