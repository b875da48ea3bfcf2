//! The handles every listener is built from ([`Shared`]): made once at
//! start-up by `server`, each listener module builds its service from them
//! and the config, and the background services (reload, ACME) hold the
//! same ones.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::internal::client::PeerClient;
use crate::admission::guard::Guard;
use crate::admission::live::LiveRequests;
use crate::dns::Dns;
use crate::observe::access_log::AccessLog;
use crate::state::SharedState;
use crate::tls::certificates::CertResolver;
use portal_core::assertion::Assertions;
use portal_core::identity::Identity;
use portal_core::replay::{Handover, ReplayCache};
use portal_core::route::Router;

/// What the listeners share.
pub(crate) struct Shared {
    pub identity: Arc<Identity>,
    /// `<short_id>.<base_domain>`.
    pub domain: String,
    pub state: Arc<SharedState>,
    /// Nonces of peers' signatures seen.
    pub replay: Arc<ReplayCache>,
    /// Signatures over CA TLS split between the processes of an upgrade
    /// (docs/signing.md, "Restarts and upgrades").
    pub handover: Arc<Handover>,
    pub access_log: AccessLog,
    /// Every client connection.
    pub guard: Arc<Guard>,
    /// Requests in flight, decided again after each reload.
    pub live: Arc<LiveRequests>,
    /// The certificate served (reloaded, or renewed by ACME).
    pub certificate: Arc<CertResolver>,
    /// What this Portal proves its identity key with in pinned peer TLS,
    /// as the listener and as the caller.
    pub identity_certificate: Arc<CertifiedKey>,
    pub router: Arc<Router>,
    /// One DNS cache for every name the listeners connect to.
    pub dns: Arc<Dns>,
    /// The outbound client of peering, with the internal listener; its
    /// trust roots (`peering.ca_file`) are reloaded like the certificate.
    pub peer_client: Option<Arc<PeerClient>>,
    /// Signs the identity assertions of requests to apps and the core;
    /// its key set is published by the internal listener.
    pub assertions: Arc<Assertions>,
}

impl Shared {
    /// TLS settings that serve the CA certificate and nothing else (the
    /// MQTT listener's).
    pub(crate) fn ca_tls(&self) -> Result<pingora::listeners::tls::TlsSettings, String> {
        let mut tls = pingora::listeners::tls::TlsSettings::intermediate("", "")
            .map_err(|e| e.to_string())?;
        tls.set_cert_resolver(self.certificate.clone());
        Ok(tls)
    }
}
