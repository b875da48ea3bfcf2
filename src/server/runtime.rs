//! The shared handles, built once ([`shared`]), and the background services
//! that hold the same ones: reload and ACME.

use std::sync::Arc;

use log::warn;

use super::reload::{CertificateFiles, Reloader};
use super::Loaded;
use crate::acme::AcmeService;
use crate::admission::guard::{Guard, GuardLimits};
use crate::admission::limits::ConnectionCap;
use crate::admission::live::LiveRequests;
use crate::config::Config;
use crate::dns::Dns;
use crate::listeners::internal::client::PeerClient;
use crate::listeners::Shared;
use crate::observe::access_log::{AccessLog, Writer};
use crate::state::SharedState;
use crate::tls::certificates::CertResolver;
use crate::tls::peer::identity_certificate;
use portal_core::assertion::Assertions;
use portal_core::renewal::certificate_names;
use portal_core::replay::{Handover, ReplayCache};
use portal_core::route::Router;

/// What start-up hands on beside the shared handles: the access log's
/// writer (a thread, started as a service after `-d` forked), and the
/// fingerprints the reload service starts from.
pub(super) struct Rest {
    pub log_writer: Option<Writer>,
    pub fingerprints: (u64, u64),
}

/// Builds the shared handles from what was loaded; `upgrading` when this
/// process takes over from a running one (`-u`).
pub(super) fn shared(
    config: &Config,
    loaded: Loaded,
    upgrading: bool,
) -> Result<(Shared, Rest), String> {
    let domain = loaded.domain(config);
    let identity = Arc::new(loaded.identity);
    let state = Arc::new(SharedState::new(loaded.snapshot));
    let replay = Arc::new(ReplayCache::new(config.peering.replay_cache_per_peer));
    replay.retain_peers(|_| true, state.load().peers.len(), 0);
    let handover = Arc::new(Handover::new(config.peering.window.skew + 1, upgrading));
    let (access_log, log_writer) =
        AccessLog::new(config.access_log.clone()).map_err(|e| format!("access_log: {e}"))?;
    let guard = Guard::new(
        GuardLimits {
            handshake: config.limits.handshake_timeout,
            head: config.limits.request_head_timeout,
            per_client: config.limits.max_connections_per_client,
        },
        ConnectionCap::new(config.limits.max_client_connections),
    );
    let certificate = Arc::new(match loaded.stand_in {
        Some(reason) => {
            warn!("tls: {reason}");
            CertResolver::stand_in(loaded.certificate, reason)
        }
        None => CertResolver::new(loaded.certificate),
    });
    let router = Arc::new(Router::new(
        identity.short_id(),
        &config.base_domain,
        &config.home_app,
        config.core_upstream.clone(),
        config.upstreams.clone(),
    ));
    let dns = Arc::new(Dns::system(config.resolver.clone()));
    let identity_certificate = identity_certificate(&identity, &domain)?;
    let peer_client = match config.internal_listen {
        Some(_) => Some(Arc::new(PeerClient::new(
            identity.clone(),
            identity_certificate.clone(),
            router.clone(),
            &config.peering,
            &config.limits,
            dns.clone(),
        )?)),
        None => None,
    };
    let assertions = Arc::new(Assertions::new(&identity, config.assertion.ttl_seconds));
    let shared = Shared {
        identity,
        domain,
        state,
        replay,
        handover,
        access_log,
        guard,
        live: Arc::new(LiveRequests::default()),
        certificate,
        identity_certificate,
        router,
        dns,
        peer_client,
        assertions,
    };
    let fingerprints = (loaded.state_fingerprint, loaded.certificate_fingerprint);
    Ok((
        shared,
        Rest {
            log_writer,
            fingerprints,
        },
    ))
}

/// The reload service: state, certificate, peer roots, access log, the
/// cap's recount, revocation.
pub(super) fn reloader(shared: &Shared, config: &Config, fingerprints: (u64, u64)) -> Reloader {
    Reloader {
        state_dir: config.state_dir.clone(),
        state: shared.state.clone(),
        replay: shared.replay.clone(),
        certificate: CertificateFiles {
            cert_file: config.tls_cert_file.clone(),
            key_file: config.tls_key_file.clone(),
            resolver: shared.certificate.clone(),
        },
        access_log: shared.access_log.clone(),
        fingerprints,
        live: shared.live.clone(),
        guard: shared.guard.clone(),
        peer_roots: shared.peer_client.clone(),
    }
}

/// The ACME service, under `tls.acme`.
pub(super) fn acme(shared: &Shared, config: &Config) -> Option<AcmeService> {
    let settings = config.acme.as_ref()?;
    Some(AcmeService {
        settings: settings.clone(),
        names: certificate_names(&shared.domain, &settings.extra_names),
        cert_file: config.tls_cert_file.clone(),
        key_file: config.tls_key_file.clone(),
        identity: shared.identity.clone(),
        resolver: shared.certificate.clone(),
    })
}
