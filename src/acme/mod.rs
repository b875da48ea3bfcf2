//! Certificates by ACME (docs/certificates.md): with `tls.acme` set, a
//! background service obtains and renews the Portal's wildcard by DNS-01
//! (RFC 8555) and writes it to `tls.cert_file` / `tls.key_file`, which the
//! reloader (`server::reload`) then serves. Its decisions (names, when it
//! is due, the wait after a failure, the orders an hour) are
//! `portal_core::renewal`'s; here are the clock, the files, the CA and
//! the solvers that set the TXT record.
//!
//! May import `tls`, `observe`, `dns`, `clock` and `portal-core`; the
//! config builds its [`Settings`], `server` starts its [`AcmeService`].

#![forbid(unsafe_code)]

mod ari;
mod client;
mod files;
mod order;
mod propagation;
mod solver;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{error, info};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rand::Rng as _;

use crate::observe::metrics::AcmeOrder;
use crate::tls::certificates::CertResolver;
use instant_acme::CertificateIdentifier;
use portal_core::identity::Identity;
use portal_core::renewal::{self, Held, OrderBudget};

pub use order::Stage;

/// Let's Encrypt's production directory, the default of `tls.acme.directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The validated `tls.acme` section.
#[derive(Debug, Clone)]
pub struct Settings {
    pub directory: String,
    /// Extra trust roots (PEM) for the directory's HTTPS.
    pub directory_ca_file: Option<PathBuf>,
    /// The ACME account's credentials, made on first use (mode 0600).
    pub account_file: PathBuf,
    pub email: Option<String>,
    /// Where the TXT record is looked for before validation (empty: the
    /// system's resolvers).
    pub dns_resolvers: Vec<SocketAddr>,
    pub solver: SolverSettings,
    pub extra_names: Vec<String>,
    pub key_type: KeyType,
    pub propagation_timeout: Duration,
    /// The first wait after a failed order (doubled after each failure).
    pub retry_initial: Duration,
    pub max_orders_per_hour: usize,
}

/// The certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
}

/// Who sets the `_acme-challenge` TXT record (`tls.acme.dns01`).
#[derive(Debug, Clone)]
pub enum SolverSettings {
    /// The Portal's controller, asked by requests signed with the
    /// identity key.
    PortalController {
        url: http::Uri,
        ca_file: Option<PathBuf>,
    },
    /// lego's `httpreq`: the same JSON, with optional basic auth.
    HttpReq {
        url: http::Uri,
        username: Option<String>,
        password_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
    },
    /// lego's `exec`: `command... present|cleanup <fqdn> <value>`.
    Exec { command: Vec<String> },
}

impl SolverSettings {
    /// The solver's name in logs and docs.
    pub fn name(&self) -> &'static str {
        match self {
            SolverSettings::PortalController { .. } => "portal_controller",
            SolverSettings::HttpReq { .. } => "httpreq",
            SolverSettings::Exec { .. } => "exec",
        }
    }
}

/// How often the service looks at the certificate files when nothing is
/// due: a certificate replaced by hand is seen within this time.
const RECHECK: Duration = Duration::from_secs(3600);

/// Obtains the certificate when there is none (or it does not name every
/// name), renews it when due, and retries failures with backoff, within
/// the orders-an-hour budget. A failure never touches the files: the
/// certificate in service stays.
pub struct AcmeService {
    pub settings: Settings,
    /// `<domain>`, `*.<domain>`, then `extra_names`.
    pub names: Vec<String>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub identity: Arc<Identity>,
    /// The certificate served, told why it is a stand-in while there is
    /// none of the CA's yet (`/readyz`).
    pub resolver: Arc<CertResolver>,
}

/// What the last order ended with, for the log and `/readyz`.
#[derive(Debug)]
pub struct Failure {
    pub stage: Stage,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.stage.describe(), self.message)
    }
}

impl AcmeService {
    /// The certificate in the files now, as renewal sees it, and its ARI
    /// identifier.
    fn held(&self) -> (Held, Option<CertificateIdentifier<'static>>) {
        let Ok(key) = crate::tls::certificates::load_certified_key(&self.cert_file, &self.key_file)
        else {
            return (Held::Nothing, None);
        };
        let Some((not_before, not_after)) = crate::tls::certificates::validity(&key) else {
            return (Held::Nothing, None);
        };
        let held = Held::Certificate {
            not_before,
            not_after,
            covers: renewal::covers(&crate::tls::certificates::dns_names(&key), &self.names),
        };
        let id = crate::tls::certificates::ari_parts(&key)
            .map(|(aki, serial)| ari::identifier(&aki, &serial));
        (held, id)
    }

    /// One order, its files written.
    async fn renew(&self, replaces: Option<CertificateIdentifier<'static>>) -> Result<(), Failure> {
        let issued = order::obtain(&self.settings, &self.names, &self.identity, replaces).await?;
        files::write_certificate(&self.cert_file, &self.key_file, &issued).map_err(|message| {
            Failure {
                stage: Stage::Write,
                message,
            }
        })
    }
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let metrics = &crate::observe::metrics::METRICS;
        let mut budget = OrderBudget::new(self.settings.max_orders_per_hour);
        let mut failures = 0u32;
        let mut retry_at: Option<i64> = None;
        let mut ari = ari::Ari::default();
        info!(
            "ACME: certificates for {} from {}, TXT records by {}",
            self.names.join(", "),
            self.settings.directory,
            self.settings.solver.name()
        );
        loop {
            let now = crate::clock::unix_now();
            let (held, id) = self.held();
            // The CA's suggestion, for a certificate that names every name.
            let pick = match (&held, &id) {
                (Held::Certificate { covers: true, .. }, Some(id)) => {
                    ari.pick(&self.settings, id, now).await
                }
                _ => None,
            };
            let why = match renewal::due(&held, pick) {
                Ok(at) if at > now => {
                    // Nothing due: a later failure starts its backoff anew.
                    failures = 0;
                    retry_at = None;
                    metrics.acme_failures.set(0);
                    metrics.acme_next_renewal.set(at as f64);
                    let wait = Duration::from_secs((at - now) as u64).min(RECHECK);
                    if sleep_or_shutdown(wait, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
                Ok(at) if pick == Some(at) => renewal::Why::Suggested,
                Ok(_) => renewal::Why::Renewal,
                Err(why) => why,
            };
            let at = retry_at
                .unwrap_or(now)
                .max(budget.next_allowed(now))
                .max(now);
            metrics.acme_next_renewal.set(at as f64);
            if at > now {
                let wait = Duration::from_secs((at - now) as u64).min(RECHECK);
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    return;
                }
                continue;
            }
            budget.record(now);
            info!(
                "ACME: ordering a certificate for {}: {}",
                self.names.join(", "),
                why.describe()
            );
            // A renewal names what it replaces where the CA offers ARI.
            let replaces = id.filter(|_| pick.is_some());
            let result = tokio::select! {
                r = self.renew(replaces) => r,
                _ = shutdown.changed() => return,
            };
            match result {
                Ok(()) => {
                    failures = 0;
                    retry_at = None;
                    metrics.acme_failures.set(0);
                    metrics.acme_orders.inc(AcmeOrder::Issued);
                    info!(
                        "ACME: certificate issued for {} and written to {} (served from the next reload)",
                        self.names.join(", "),
                        self.cert_file.display()
                    );
                }
                Err(failure) => {
                    failures += 1;
                    let delay = renewal::retry_delay(
                        failures,
                        self.settings.retry_initial.as_secs().max(1),
                        rand::thread_rng().gen(),
                    );
                    // Counted from the failure: an order can take minutes.
                    retry_at = Some(crate::clock::unix_now() + delay as i64);
                    metrics.acme_failures.set(failures as i64);
                    metrics.acme_orders.inc(failure.stage.label());
                    error!(
                        "ACME: order {failures} in a row failed, the certificate in service stays; next attempt in {delay} s: {failure}"
                    );
                    self.resolver.set_stand_in_reason(format!(
                        "no certificate yet: ordering one from {} by ACME; attempt {failures} failed ({failure}), next in {delay} s",
                        self.settings.directory
                    ));
                }
            }
        }
    }
}

/// Sleeps `wait`; true when the process is shutting down instead.
async fn sleep_or_shutdown(wait: Duration, shutdown: &mut ShutdownWatch) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = shutdown.changed() => true,
    }
}

/// `-t`: what the section names that can be checked without the CA: the
/// trust roots and password files load, the hook exists, an existing
/// account file is an account of this directory, and the folders the
/// files are written to exist. Each problem names its key.
pub fn check(
    settings: &Settings,
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(f) = &settings.directory_ca_file {
        problems.extend(client::client_config(Some(f), "tls.acme.directory_ca_file").err());
    }
    match &settings.solver {
        SolverSettings::PortalController { ca_file, .. } => {
            if let Some(f) = ca_file {
                let key = "tls.acme.dns01.portal_controller.ca_file";
                problems.extend(client::client_config(Some(f), key).err());
            }
        }
        SolverSettings::HttpReq {
            ca_file,
            password_file,
            ..
        } => {
            if let Some(f) = ca_file {
                problems
                    .extend(client::client_config(Some(f), "tls.acme.dns01.httpreq.ca_file").err());
            }
            if let Some(f) = password_file {
                if let Err(e) = std::fs::read(f) {
                    problems.push(format!(
                        "tls.acme.dns01.httpreq.password_file: cannot read {}: {e}",
                        f.display()
                    ));
                }
            }
        }
        SolverSettings::Exec { command } => {
            if let Err(e) = solver::executable(&command[0]) {
                problems.push(format!("tls.acme.dns01.exec.command: {e}"));
            }
        }
    }
    if let Err(e) = order::read_account(settings) {
        problems.push(e);
    }
    for (key, file) in [
        ("tls.acme.account_file", &settings.account_file),
        ("tls.cert_file", &cert_file.to_path_buf()),
        ("tls.key_file", &key_file.to_path_buf()),
    ] {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            if !dir.is_dir() {
                problems.push(format!(
                    "{key}: {} is written by ACME, but its folder {} does not exist",
                    file.display(),
                    dir.display()
                ));
            }
        }
    }
    problems
}
