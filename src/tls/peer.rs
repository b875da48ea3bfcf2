//! Pinned peer TLS (docs/signing.md, "The channel"): the TLS between two
//! Portals is authenticated by their identity keys, the keys their Portal
//! IDs are the hash of, with no certificate authority involved.
//!
//! - A calling Portal offers the ALPN protocol [`PEER_ALPN`] beside
//!   `http/1.1`. The HTTPS listener then presents a self-signed
//!   certificate of its identity key ([`identity_certificate`]) in place
//!   of the CA certificate browsers get ([`PeerAwareResolver`]), and asks
//!   for the caller's.
//! - The caller accepts only the key of the Portal ID it called
//!   ([`PinnedServer`]) and presents its own identity certificate; the
//!   listener accepts only a key in `peers.json` ([`PeerClientKeys`]), so
//!   an unknown key gets no HTTP at all, and tells the HTTP layer which
//!   peer's key opened the connection ([`TlsPeer`]).
//! - TLS 1.3 only, ed25519 only. A certificate is only a carrier of its
//!   key here: its names, dates and issuer are not looked at, as the key
//!   itself is what the Portal ID pins (like an SSH host key).
//!
//! Only the listener's certificate resolver tells a peer's ClientHello
//! apart, but rustls asks the client-certificate verifier whether to
//! request a certificate without saying for which connection. Both calls
//! happen in one synchronous step of the same handshake on one thread
//! (rustls 0.23: the resolver, then `offer_client_auth` when it writes
//! the CertificateRequest), so the resolver leaves its choice in a
//! thread-local flag that `offer_client_auth` takes. Browsers are thus
//! never asked for a certificate (which would show some of them a picker).
//! Should a later rustls call them in another order, peers would not be
//! asked, their handshake would carry no key, and the decision refuses
//! their requests (`unpinned`): it fails closed, and the two-Portal tests
//! catch it.

#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ed25519_dalek::{Signature, VerifyingKey};
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::certificates::CertResolver;
use crate::observe::metrics::{PeerHandshake, METRICS};
use portal_core::identity::{portal_id, Identity};

/// The ALPN protocol a calling Portal offers (beside `http/1.1`, which
/// the listener selects) to be served the identity certificate.
pub const PEER_ALPN: &[u8] = b"portal-peer/1";

/// The Object Identifier of Ed25519 keys (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// A self-signed certificate of the Portal's identity key, for its
/// domain and every host under it; the key is what peers check.
pub fn identity_certificate(
    identity: &Identity,
    domain: &str,
) -> Result<Arc<CertifiedKey>, String> {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let failed = |e: &dyn fmt::Display| format!("the identity certificate: {e}");
    let pem = identity.private_key_pem();
    let key = KeyPair::from_pem(&pem).map_err(|e| failed(&e))?;
    let mut params = CertificateParams::new(vec![domain.to_string(), format!("*.{domain}")])
        .map_err(|e| failed(&e))?;
    params.distinguished_name.push(
        DnType::CommonName,
        format!("portal {} identity", identity.short_id()),
    );
    let cert = params.self_signed(&key).map_err(|e| failed(&e))?;
    let der = PrivatePkcs8KeyDer::from(key.serialize_der());
    let signer = rustls::crypto::ring::sign::any_eddsa_type(&der).map_err(|e| failed(&e))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// The ed25519 public key a certificate carries, or why it carries none.
pub fn ed25519_key(cert: &[u8]) -> Result<[u8; 32], String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        return Err(format!(
            "its key is not ed25519 (algorithm {})",
            spki.algorithm.algorithm
        ));
    }
    spki.subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| "its ed25519 key is not 32 bytes".to_string())
}

/// Checks a TLS 1.3 handshake signature made with `key`.
fn verify_signature(
    key: &[u8; 32],
    message: &[u8],
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ));
    }
    let key = VerifyingKey::from_bytes(key).map_err(|_| bad())?;
    let signature = Signature::from_slice(dss.signature()).map_err(|_| bad())?;
    key.verify_strict(message, &signature).map_err(|_| bad())?;
    Ok(HandshakeSignatureValid::assertion())
}

/// The one scheme of pinned peer TLS.
fn ed25519_only() -> Vec<SignatureScheme> {
    vec![SignatureScheme::ED25519]
}

/// TLS 1.2 is not offered to or by peers.
fn no_tls12() -> rustls::Error {
    rustls::Error::General("pinned peer TLS is TLS 1.3 only".into())
}

thread_local! {
    /// Set by [`PeerAwareResolver`] for the handshake it resolved, taken
    /// by [`PeerClientKeys::offer_client_auth`] in the same step.
    static PEER_HELLO: Cell<bool> = const { Cell::new(false) };
}

/// The HTTPS listener's certificates: the CA certificate for browsers,
/// the identity certificate for a ClientHello offering [`PEER_ALPN`].
pub struct PeerAwareResolver {
    pub ca: Arc<CertResolver>,
    pub identity: Arc<CertifiedKey>,
}

impl fmt::Debug for PeerAwareResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerAwareResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for PeerAwareResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let peer = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == PEER_ALPN));
        PEER_HELLO.with(|flag| flag.set(peer));
        if peer {
            Some(self.identity.clone())
        } else {
            self.ca.resolve(hello)
        }
    }
}

/// The server's check of a calling Portal's key: it must be a peer's.
/// `lookup` gives the Portal ID of a key listed in `peers.json` now.
pub struct PeerClientKeys<F> {
    pub lookup: F,
}

impl<F> fmt::Debug for PeerClientKeys<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerClientKeys").finish_non_exhaustive()
    }
}

impl<F> PeerClientKeys<F>
where
    F: Fn(&[u8; 32]) -> Option<String>,
{
    /// The peer whose key `cert` carries.
    fn peer(&self, cert: &[u8]) -> Result<String, (PeerHandshake, String)> {
        let key = ed25519_key(cert).map_err(|e| (PeerHandshake::BadCertificate, e))?;
        (self.lookup)(&key).ok_or_else(|| {
            let id = portal_id(&key);
            (
                PeerHandshake::UnknownKey,
                format!("Portal {id} is not in peers.json"),
            )
        })
    }
}

impl<F> ClientCertVerifier for PeerClientKeys<F>
where
    F: Fn(&[u8; 32]) -> Option<String> + Send + Sync,
{
    fn offer_client_auth(&self) -> bool {
        PEER_HELLO.with(|flag| flag.replace(false))
    }

    /// Only peers are asked, and a peer that is asked must answer.
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Counted as verified only once the handshake proved the key
        // (its CertificateVerify and Finished: `RecordTlsPeer`).
        match self.peer(end_entity) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err((result, why)) => {
                METRICS.peer_handshakes.inc(result);
                log::warn!("pinned peer TLS refused: {why}");
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let key = ed25519_key(cert).map_err(rustls::Error::General)?;
        verify_signature(&key, message, dss).inspect_err(|_| {
            // A listed key's certificate, signed by another key.
            METRICS.peer_handshakes.inc(PeerHandshake::BadProof);
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ed25519_only()
    }
}

/// Which peer's key opened a connection: set on the connection's TLS
/// digest when the handshake ends, read by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer(pub String);

/// Records [`TlsPeer`] for connections that presented a (verified) key.
pub struct RecordTlsPeer;

#[async_trait]
impl TlsAccept for RecordTlsPeer {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        // Only a key `PeerClientKeys` accepted, whose CertificateVerify and
        // Finished the handshake checked, gets this far: counted here, after
        // the proof (a listed key's certificate alone proves nothing).
        let key = ed25519_key(tls.peer_certificate_der()?).ok()?;
        METRICS.peer_handshakes.inc(PeerHandshake::Verified);
        Some(Arc::new(TlsPeer(portal_id(&key))))
    }
}

/// The calling side's check of the answering Portal: its key must be the
/// one the called Portal ID is the hash of.
#[derive(Debug)]
pub struct PinnedServer {
    pub key: [u8; 32],
}

/// The error [`PinnedServer`] refuses a key with: the answering server is
/// not the peer.
pub fn wrong_key(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    )
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match ed25519_key(end_entity) {
            Ok(key) if key == self.key => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The certificate's key was checked to be this one.
        verify_signature(&self.key, message, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ed25519_only()
    }
}

/// The calling side's own certificate: always its identity certificate.
#[derive(Debug)]
pub struct IdentityClientCert(pub Arc<CertifiedKey>);

impl ResolvesClientCert for IdentityClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        sigschemes
            .contains(&SignatureScheme::ED25519)
            .then(|| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The TLS of a call to the peer whose key is `key`: TLS 1.3, the
/// listener asked for the identity certificate ([`PEER_ALPN`]), only that
/// key accepted, ours presented.
pub fn pinned_client_config(
    key: [u8; 32],
    own: &Arc<CertifiedKey>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("pinned peer TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer { key }))
        .with_client_cert_resolver(Arc::new(IdentityClientCert(own.clone())));
    config.alpn_protocols = vec![PEER_ALPN.to_vec(), b"http/1.1".to_vec()];
    // Every call proves both keys again: a resumed session would skip the
    // listener's check that our key is still in its peers.json.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
