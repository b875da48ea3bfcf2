//! Hot reload (docs/state.md, "how they reload"; README.md, "Operating
//! it"): a background service that polls the state files' and the
//! certificate's sizes and modification times every
//! [`POLL_INTERVAL`] and reloads what changed, and everything at once on
//! SIGHUP (which also reopens the access log file). Its tick also recounts
//! open descriptors for the connection cap and ends the requests whose
//! terminal token expired. Being a Pingora service, it runs after `-d` has
//! forked. It is wiring: it reads files through `state` and `tls::certificates`,
//! and tells the listeners' shared parts what changed.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::admission::guard::Guard;
use crate::admission::live::LiveRequests;
use crate::listeners::internal::client::PeerClient;
use crate::observe::access_log::AccessLog;
use crate::observe::metrics::{LabelValue, Reload, StateFile};
use crate::state::watch::{files_fingerprint, fingerprint, POLL_INTERVAL};
use crate::state::{SharedState, StateError};
use crate::tls::certificates::{load_certified_key, CertResolver};
use portal_core::replay::ReplayCache;
use portal_core::snapshot::Snapshot;

/// The serving certificate's files and where it is served from.
pub(super) struct CertificateFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub resolver: Arc<CertResolver>,
}

impl CertificateFiles {
    fn fingerprint(&self) -> u64 {
        files_fingerprint(&[&self.cert_file, &self.key_file])
    }

    /// Loads the files again; a certificate that fails keeps the old one
    /// serving (README.md, "Operating it").
    pub(super) fn reload(&self, why: &str) {
        let reloads = &crate::observe::metrics::METRICS.certificate_reloads;
        match load_certified_key(&self.cert_file, &self.key_file) {
            Ok(key) => {
                let expires = crate::tls::certificates::expiry(&key);
                self.resolver.replace(key);
                record_certificate_expiry(expires);
                reloads.inc(Reload::Ok);
                info!(
                    "certificate reloaded ({why}), expires at {}",
                    expires.map_or("an unknown time".to_string(), |e| e.to_string())
                );
            }
            Err(e) => {
                reloads.inc(Reload::Error);
                error!("certificate reload ({why}) failed, the previous certificate keeps serving: {e}");
            }
        }
    }
}

/// Sets `portal_proxy_certificate_expiry_timestamp_seconds`.
pub(super) fn record_certificate_expiry(expires: Option<i64>) {
    if let Some(t) = expires {
        crate::observe::metrics::METRICS
            .certificate_expiry
            .set(t as f64);
    }
}

/// Counts a state load by file kind and sets the entry gauges.
pub(super) fn record_state(snapshot: &Snapshot, errors: &[StateError]) {
    crate::observe::metrics::align_series(snapshot);
    let m = &crate::observe::metrics::METRICS;
    for &file in StateFile::ALL {
        let kind = file.as_str();
        let failed = errors.iter().filter(|e| e.kind == kind).count() as u64;
        if failed > 0 {
            m.state_reloads
                .with_label_values(&[kind, Reload::Error.as_str()])
                .inc_by(failed);
        } else if file != StateFile::StateDir {
            m.state_reloads
                .with_label_values(&[kind, Reload::Ok.as_str()])
                .inc();
        }
    }
    for (kind, entries) in [
        ("apps", snapshot.apps.len()),
        ("peers", snapshot.peers.len()),
        ("terminals", snapshot.terminals.len()),
        ("app_addresses", snapshot.app_addresses.len()),
    ] {
        m.state_entries
            .with_label_values(&[kind])
            .set(entries as i64);
    }
}

/// Keeps the proxy in step with its files: the state (polled, and at once
/// on SIGHUP), the certificate (polled, and on SIGHUP), and the access
/// log's file (reopened on SIGHUP, for rotation).
pub(super) struct Reloader {
    pub state_dir: PathBuf,
    pub state: Arc<SharedState>,
    /// Forgets the nonces of peers that a reload removed.
    pub replay: Arc<ReplayCache>,
    pub certificate: CertificateFiles,
    pub access_log: AccessLog,
    /// `(state, certificate)` fingerprints of what the proxy started with.
    pub fingerprints: (u64, u64),
    /// Requests in flight, decided again after each reload.
    pub live: Arc<LiveRequests>,
    /// Closes the connections of revoked requests; its cap is recounted
    /// every tick.
    pub guard: Arc<Guard>,
    /// The outbound client, whose `peering.ca_file` is watched.
    pub peer_roots: Option<Arc<PeerClient>>,
}

impl Reloader {
    /// Reads `peering.ca_file` again; a file that does not load keeps the
    /// previous roots.
    pub(super) fn reload_peer_roots(&self, why: &str) {
        let Some(client) = &self.peer_roots else {
            return;
        };
        if client.ca_file().is_none() {
            return;
        }
        match client.reload_roots() {
            Ok(()) => info!("peering.ca_file reloaded ({why})"),
            Err(e) => {
                error!("peering.ca_file reload ({why}) failed, keeping the previous roots: {e}")
            }
        }
    }

    /// Reloads the state and logs the outcome; `why` says what triggered it.
    pub(super) fn reload_state(&self, why: &str) {
        match self.state.reload(&self.state_dir) {
            Ok(errors) => {
                for e in &errors {
                    warn!("state reload ({why}): {e}");
                }
                let s = self.state.load();
                record_state(&s, &errors);
                let now = crate::clock::unix_now();
                self.replay
                    .retain_peers(|id| s.peers.get(id).is_some(), s.peers.len(), now);
                let revoked = self.live.revoke(&s, now);
                if revoked > 0 {
                    info!("state reload ({why}): {revoked} open request(s) revoked, closed unless they end within 1 s");
                }
                info!(
                    "state reloaded ({why}): {} app(s), {} terminal(s), {} peer(s), {} error(s)",
                    s.apps.len(),
                    s.terminals.len(),
                    s.peers.len(),
                    errors.len()
                );
            }
            Err(e) => {
                record_state(&self.state.load(), std::slice::from_ref(&e));
                error!("state reload ({why}) failed, keeping the current state: {e}");
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                error!("cannot listen for SIGHUP, reloading on file changes only: {e}");
                None
            }
        };
        let (mut state_seen, mut cert_seen) = self.fingerprints;
        let roots_fingerprint = || {
            self.peer_roots
                .as_ref()
                .and_then(|c| c.ca_file())
                .map_or(0, |f| files_fingerprint(&[f]))
        };
        let mut roots_seen = roots_fingerprint();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    state_seen = fingerprint(&self.state_dir);
                    cert_seen = self.certificate.fingerprint();
                    self.reload_state("SIGHUP");
                    self.certificate.reload("SIGHUP");
                    roots_seen = roots_fingerprint();
                    self.reload_peer_roots("SIGHUP");
                    self.access_log.reopen();
                }
                _ = tick.tick() => {
                    self.guard.recount_cap();
                    // A terminal's token ends at its `exp`, reload or not.
                    let expired = self.live.expire(crate::clock::unix_time());
                    if expired > 0 {
                        info!("{expired} open request(s) of a terminal whose token expired, closed unless they end within 1 s");
                    }
                    self.live.sweep(&self.guard);
                    let now = fingerprint(&self.state_dir);
                    if now != state_seen {
                        state_seen = now;
                        self.reload_state("file change");
                    }
                    let now = self.certificate.fingerprint();
                    if now != cert_seen {
                        cert_seen = now;
                        self.certificate.reload("file change");
                    }
                    let now = roots_fingerprint();
                    if now != roots_seen {
                        roots_seen = now;
                        self.reload_peer_roots("file change");
                    }
                }
            }
        }
    }
}
