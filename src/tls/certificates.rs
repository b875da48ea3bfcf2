//! The serving certificate (README.md, "Operating it"): loaded from PEM
//! files into a rustls resolver whose key can be swapped while connections are
//! being served (and which says why while a stand-in serves under
//! `tls.acme`), the self-signed certificate of the demo, what a
//! certificate names, and the trust roots of outbound TLS clients (the
//! system's plus a PEM bundle). Used when the HTTPS listener is built, by
//! the certificate reloader, by ACME and by outbound peering.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("{path}: {reason}")]
    Key { path: String, reason: String },
    #[error("{cert} and {key} do not belong together: {reason}")]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
}

/// Reads a certificate chain (leaf first) and its private key from PEM files
/// and checks that they belong together.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert_file.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_err(format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.display().to_string(),
        reason: format!("no usable private key: {e}"),
    })?;
    certified_key(chain, key).map_err(|reason| TlsError::Mismatch {
        cert: cert_file.display().to_string(),
        key: key_file.display().to_string(),
        reason,
    })
}

/// A certificate chain and its key from PEM text (what ACME obtained,
/// checked before it is written).
pub fn certified_key_from_pem(chain_pem: &str, key_pem: &str) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("no usable private key: {e}"))?;
    certified_key(chain, key)
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| e.to_string())
}

/// Serves one certificate to every client (the Portal's wildcard covers all
/// its hosts) and lets it be replaced without touching open connections:
/// each handshake reads the current key once.
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
    /// Why the certificate served is a stand-in, while it is one (under
    /// `tls.acme`, until the first certificate is obtained).
    stand_in: ArcSwapOption<String>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        CertResolver {
            current: ArcSwap::from_pointee(key),
            stand_in: ArcSwapOption::empty(),
        }
    }

    /// Serves `key`, a stand-in for the certificate still to be obtained,
    /// for `reason` (what `/readyz` answers meanwhile).
    pub fn stand_in(key: CertifiedKey, reason: String) -> Self {
        CertResolver {
            current: ArcSwap::from_pointee(key),
            stand_in: ArcSwapOption::from_pointee(reason),
        }
    }

    /// Serves `key` to every handshake that starts from now on.
    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
        self.stand_in.store(None);
    }

    /// Why the certificate served is a stand-in; `None` once a real one
    /// serves.
    pub fn stand_in_reason(&self) -> Option<Arc<String>> {
        self.stand_in.load_full()
    }

    /// Updates the stand-in's reason (nothing once a real certificate
    /// serves).
    pub fn set_stand_in_reason(&self, reason: String) {
        let reason = Arc::new(reason);
        self.stand_in
            .rcu(|current| current.as_ref().map(|_| reason.clone()));
    }

    /// `(notBefore, notAfter)` of the certificate served now, Unix seconds.
    pub fn validity(&self) -> Option<(i64, i64)> {
        validity(&self.current.load())
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// When the leaf certificate of `key` expires (its notAfter), in Unix
/// seconds; `None` if it cannot be parsed.
pub fn expiry(key: &CertifiedKey) -> Option<i64> {
    validity(key).map(|(_, not_after)| not_after)
}

/// The DNS names of the leaf certificate of `key` (its subject
/// alternative names); empty if it cannot be parsed.
pub fn dns_names(key: &CertifiedKey) -> Vec<String> {
    let Some(leaf) = key.cert.first() else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(name) => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

/// The leaf's authority key identifier (`keyIdentifier` bytes) and serial
/// number (the bytes of its DER integer): what names a certificate to
/// its CA in ACME Renewal Information (RFC 9773 section 4.1). `None`
/// without an authority key identifier.
pub fn ari_parts(key: &CertifiedKey) -> Option<(Vec<u8>, Vec<u8>)> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let aki = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })?;
    Some((aki, cert.tbs_certificate.raw_serial().to_vec()))
}

/// `(notBefore, notAfter)` of the leaf certificate of `key`, Unix seconds.
pub fn validity(key: &CertifiedKey) -> Option<(i64, i64)> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// A certificate authority and a certificate it signed for `domain` and
/// `*.domain`, as PEM: the demo's and the tests' stand-in for the Portal's
/// real wildcard certificate (clients trust `ca_pem`).
pub struct DemoCertificate {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn demo_certificate(domain: &str) -> Result<DemoCertificate, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("portal-proxy demo CA for {domain}"),
    );
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let mut params = CertificateParams::new(vec![domain.to_string(), format!("*.{domain}")])?;
    params.distinguished_name.push(DnType::CommonName, domain);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    Ok(DemoCertificate {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A TLS client config trusting the system's roots (a root rustls cannot
/// use is skipped, as browsers do) and the certificates of the PEM bundle
/// `ca_file`; `what` names the setting in errors. Used by outbound peering
/// (`peering.ca_file`) and by ACME (the directory's and solvers' roots).
pub fn client_config(ca_file: Option<&Path>, what: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(file) = ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| format!("{what}: cannot read {}: {e}", file.display()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{what}: {}: {e}", file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{what}: {}: {e}", file.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{what}: {}: no certificate", file.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{what}: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A self-signed certificate for `domain` and `*.domain`, served under
/// `tls.acme` until the CA's is obtained (never written to a file).
pub fn stand_in_certificate(domain: &str) -> Result<CertifiedKey, String> {
    let demo = demo_certificate(domain).map_err(|e| e.to_string())?;
    certified_key_from_pem(&demo.cert_pem, &demo.key_pem)
}

#[cfg(test)]
#[path = "certificates_tests.rs"]
mod tests;
