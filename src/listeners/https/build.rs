//! The HTTPS listener built from the shared handles and the config: its
//! request handling ([`Portal`]) with Pingora's HTTP/1 and HTTP/2 options,
//! and its TLS: HTTP/2, and pinned peer TLS beside the CA certificate
//! (`tls::peer`).

use std::sync::Arc;

use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;

use super::{Portal, PortalProxy};
use crate::admission::limits::{h2_options, KEEPALIVE_REQUEST_LIMIT};
use crate::admission::rate::RateLimits;
use crate::compress::Compressors;
use crate::config::Config;
use crate::listeners::Shared;
use crate::tls::peer::{PeerAwareResolver, PeerClientKeys, RecordTlsPeer};
use portal_core::body::HeldBudget;
use portal_core::decide::Policy;
use portal_core::headers::{portal_value, PortalInfo};

/// The HTTPS listener's app and TLS settings.
pub(crate) fn build(
    conf: &Arc<ServerConf>,
    shared: &Shared,
    config: &Config,
) -> Result<(HttpProxy<PortalProxy>, TlsSettings), String> {
    let identity = &shared.identity;
    let portal = Arc::new(Portal {
        policy: Policy {
            router: (*shared.router).clone(),
            window: config.peering.window,
            max_signed_body: config.peering.max_signed_body,
            held_bodies: Arc::new(HeldBudget::new(config.peering.max_held_bodies)),
            transports: config.peering.transports.clone(),
        },
        limits: config.limits.clone(),
        state: shared.state.clone(),
        template_portal: portal_value(&PortalInfo {
            id: identity.id.clone(),
            short_id: identity.short_id().to_string(),
            domain: shared.domain.clone(),
            public_key_pem: identity.public_key_pem.clone(),
        }),
        replay: shared.replay.clone(),
        handover: shared.handover.clone(),
        access_log: shared.access_log.clone(),
        guard: shared.guard.clone(),
        live: shared.live.clone(),
        identity: identity.clone(),
        dns: shared.dns.clone(),
        rate: RateLimits::new(config.limits.rate),
        compression: Compressors::new(config.compression.clone()),
        assertion: config.assertion.clone(),
        assertions: shared.assertions.clone(),
    });
    let mut proxy = pingora::proxy::http_proxy(conf, PortalProxy::new(portal));
    proxy.h2_options = Some(h2_options(config.limits.max_request_header_bytes));
    let mut options = HttpServerOptions::default();
    options.keepalive_request_limit = Some(KEEPALIVE_REQUEST_LIMIT);
    options.h2_idle_timeout = Some(config.limits.downstream_idle_timeout);
    proxy.server_options = Some(options);
    let mut tls =
        TlsSettings::with_callbacks(Box::new(RecordTlsPeer)).map_err(|e| e.to_string())?;
    tls.set_cert_resolver(Arc::new(PeerAwareResolver {
        ca: shared.certificate.clone(),
        identity: shared.identity_certificate.clone(),
    }));
    let peers = shared.state.clone();
    tls.set_client_cert_verifier(Arc::new(PeerClientKeys {
        lookup: move |key: &[u8; 32]| {
            let id = portal_core::identity::portal_id(key);
            let snapshot = peers.load();
            let peer = snapshot.peers.get(&id)?;
            (peer.key.as_bytes() == key).then(|| peer.id.clone())
        },
    }));
    tls.enable_h2();
    Ok((proxy, tls))
}
