//! Start-up: loads what the config names (identity, certificate, state),
//! reports problems for `-t`, and wires the Pingora services. Used by
//! `main` for `-t`, for a normal start and for the demo.

#![forbid(unsafe_code)]

mod bindable;
mod check;
mod handover;
mod reload;
mod runtime;
mod signals;

use std::sync::Arc;

use log::{info, warn};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceHandle;
use rustls::sign::CertifiedKey;

use crate::admission::guard::{Guard, Guarded, HandshakeGuard, Serves};
use crate::admission::proxy_protocol::Trusted;
use crate::config::Config;
use crate::listeners::https;
use crate::listeners::internal::InternalApi;
use crate::listeners::metrics::MetricsApp;
use crate::listeners::mqtt::MqttRelay;
use crate::listeners::parked::Parked;
use crate::listeners::plain::Strict;
use crate::listeners::redirect::RedirectToHttps;
use crate::listeners::Shared;
use crate::state::StateError;
use crate::tls::certificates::load_certified_key;
pub use check::{check, verdict};
use portal_core::identity::Identity;
use portal_core::snapshot::Snapshot;
use reload::{record_certificate_expiry, record_state};

/// Everything loaded from disk at start-up.
pub struct Loaded {
    pub identity: Identity,
    pub certificate: CertifiedKey,
    pub snapshot: Snapshot,
    /// State files left out; the proxy serves without them.
    pub state_errors: Vec<StateError>,
    /// Fingerprints of the state and certificate files taken before they
    /// were read: a change made while the proxy starts is reloaded.
    pub state_fingerprint: u64,
    pub certificate_fingerprint: u64,
    /// Under `tls.acme`, why [`Loaded::certificate`] is a self-signed
    /// stand-in: the files hold none that loads yet.
    pub stand_in: Option<String>,
}

impl Loaded {
    /// The Portal's domain, `<short_id>.<base_domain>`.
    pub fn domain(&self, config: &Config) -> String {
        portal_domain(&self.identity, config)
    }
}

fn portal_domain(identity: &Identity, config: &Config) -> String {
    format!("{}.{}", identity.short_id(), config.base_domain)
}

/// Loads the files the config names. Errors are the reasons the proxy
/// cannot start at all (each naming its file); broken state files are not
/// among them, they are in [`Loaded::state_errors`].
pub fn load(config: &Config) -> Result<Loaded, Vec<String>> {
    let state_fingerprint = crate::state::watch::fingerprint(&config.state_dir);
    let certificate_fingerprint =
        crate::state::watch::files_fingerprint(&[&config.tls_cert_file, &config.tls_key_file]);
    let mut errors = Vec::new();
    let identity = crate::identity::load(&config.key_file)
        .map_err(|e| errors.push(format!("portal.key_file: {e}")))
        .ok();
    let mut stand_in = None;
    let certificate = match load_certified_key(&config.tls_cert_file, &config.tls_key_file) {
        Ok(key) => Some(key),
        // Under ACME, no certificate yet is the normal first start.
        Err(e) if config.acme.is_some() => identity.as_ref().and_then(|identity| {
            let key = crate::tls::certificates::stand_in_certificate(&portal_domain(identity, config))
                .map_err(|e| errors.push(format!("tls: cannot make a stand-in certificate: {e}")))
                .ok()?;
            stand_in = Some(format!(
                "no certificate yet: obtaining one by ACME ({e}); a self-signed stand-in serves meanwhile"
            ));
            Some(key)
        }),
        Err(e) => {
            errors.push(format!("tls: {e}"));
            None
        }
    };
    let state = crate::state::load(&config.state_dir)
        .map_err(|e| errors.push(format!("state_dir: {e}")))
        .ok();
    match (identity, certificate, state) {
        (Some(identity), Some(certificate), Some((snapshot, state_errors))) => Ok(Loaded {
            identity,
            certificate,
            snapshot,
            state_errors,
            state_fingerprint,
            certificate_fingerprint,
            stand_in,
        }),
        _ => Err(errors),
    }
}

/// How long `-d` waits for the daemon to start (loading the state and
/// building the listeners; well under a second on a small Portal).
const DAEMON_READY_TIMEOUT_SECONDS: u64 = 60;

/// The Pingora server settings from the `server:` section.
fn server_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    let mut conf = ServerConf {
        threads: s.threads,
        user: s.user.clone(),
        group: s.group.clone(),
        grace_period_seconds: s.grace_period_seconds,
        graceful_shutdown_timeout_seconds: s.graceful_shutdown_timeout_seconds,
        // With -d, the starting process exits only once the daemon is up
        // and waiting for the listening sockets (or 1 if it died first), so
        // `systemctl reload` signals the old process only then
        // (systemd/portal-proxy.service).
        daemon_wait_for_ready: true,
        daemon_ready_timeout_seconds: std::num::NonZeroU64::new(DAEMON_READY_TIMEOUT_SECONDS),
        work_stealing: s.work_stealing,
        ..ServerConf::default()
    };
    if let Some(p) = &s.pid_file {
        conf.pid_file = p.display().to_string();
    }
    if let Some(p) = &s.upgrade_sock {
        conf.upgrade_sock = p.display().to_string();
    }
    if let Some(n) = s.upstream_keepalive_pool_size {
        conf.upstream_keepalive_pool_size = n;
    }
    conf
}

/// Builds the server with every configured listener; the caller runs it.
pub fn build(config: &Config, loaded: Loaded, mut opt: Opt) -> Result<Server, String> {
    signals::ignore_sighup();
    if opt.daemon {
        signals::exit_when_the_daemon_is_ready();
    }
    announce(config, &loaded);
    // Pingora only panics the thread of a listener that cannot bind, and
    // the process would run on without it: find out now and refuse to
    // start. A graceful upgrade (`-u`) receives the running process's
    // sockets; any address that process does not listen on must be free.
    if let Some(problem) = bindable::check(config, opt.upgrade, false)
        .into_iter()
        .next()
    {
        return Err(problem);
    }
    let conf = server_conf(config);
    // One upgrade at a time: held until this one has the sockets.
    let upgrade_lock = match opt.upgrade {
        true => Some(handover::UpgradeLock::take(&conf.upgrade_sock)?),
        false => None,
    };
    let upgrading = upgrade_lock.is_some();
    // Our `-c` is our own YAML, not Pingora's config file.
    opt.conf = None;
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // Bootstrap (with -u, receiving the listening sockets) runs once the
    // server runs, after -d forked: the daemon tells the waiting parent it
    // is up first, then takes the sockets; the listeners start after it.
    let bootstrap = server.bootstrap_as_a_service();
    let (shared, rest) = runtime::shared(config, loaded, upgrading)?;
    let handover = handover::HandoverService {
        handover: shared.handover.clone(),
        upgrading,
        lock: std::sync::Mutex::new(upgrade_lock),
    };
    server
        .add_service(background_service("handover", handover))
        .add_dependency(&bootstrap);
    // Threads start in services: they run after `-d` forked.
    if let Some(writer) = rest.log_writer {
        server.add_service(background_service("access log", writer));
    }
    let reloader = runtime::reloader(&shared, config, rest.fingerprints);
    server.add_service(background_service("reload", reloader));
    if let Some(acme) = runtime::acme(&shared, config) {
        server.add_service(background_service("acme", acme));
    }
    add_listeners(&mut server, &bootstrap, &shared, config)?;
    Ok(server)
}

/// Adds every configured listener, each built from the shared handles
/// and the config, started once the bootstrap has the sockets.
fn add_listeners(
    server: &mut Server,
    bootstrap: &ServiceHandle,
    shared: &Shared,
    config: &Config,
) -> Result<(), String> {
    let (proxy, https_tls) = https::build(&server.configuration, shared, config)?;
    let mut listeners = Listeners {
        server,
        guard: &shared.guard,
        bootstrap,
        proxy_protocol: config.proxy_protocol_from.clone().map(Arc::new),
    };
    let public = |tls| Exposure::Public(Some(tls));
    listeners.add_http("https", proxy, public(https_tls), config.listen_https);
    if let Some(addr) = config.listen_mqtts {
        let relay = MqttRelay::new(shared, config);
        listeners.add(
            "mqtts",
            relay,
            Serves::Relay,
            public(shared.ca_tls()?),
            addr,
        );
    }
    if let Some(addr) = config.internal_listen {
        let api = InternalApi::build(shared, config)?;
        listeners.add_http("internal", api, Exposure::Private, addr);
    }
    if let Some(addr) = config.metrics_listen {
        let metrics = Strict(MetricsApp {
            certificate: shared.certificate.clone(),
        });
        listeners.add_http("metrics", metrics, Exposure::Private, addr);
    }
    if let Some(addr) = config.listen_http {
        let redirect = Strict(RedirectToHttps {
            https_port: config.listen_https.port(),
            router: shared.router.clone(),
        });
        listeners.add_http("http redirect", redirect, Exposure::Public(None), addr);
    }
    Ok(())
}

/// Logs what is served, and the state files left out; records the state
/// and the certificate's expiry in the metrics.
fn announce(config: &Config, loaded: &Loaded) {
    for e in &loaded.state_errors {
        warn!("state file left out: {e}");
    }
    let apps: Vec<&str> = loaded.snapshot.apps.keys().map(String::as_str).collect();
    info!(
        "Portal {} serving *.{} with {} app(s): {}",
        loaded.identity.id,
        loaded.domain(config),
        apps.len(),
        apps.join(", ")
    );
    record_state(&loaded.snapshot, &loaded.state_errors);
    // A stand-in's notAfter is no certificate's: 0 until the first one.
    record_certificate_expiry(match loaded.stand_in {
        Some(_) => Some(0),
        None => crate::tls::certificates::expiry(&loaded.certificate),
    });
}

/// Who a listener serves.
enum Exposure {
    /// The public (TLS, or plain for port 80): under the connection cap,
    /// each client address held to its share, TLS handshakes guarded.
    Public(Option<TlsSettings>),
    /// The Portal's own (the internal and metrics listeners): limits of
    /// their own, reachable at the cap.
    Private,
}

/// Adds the listening services, every one wrapped by the connection guard
/// and started once the bootstrap has the sockets.
struct Listeners<'a> {
    server: &'a mut Server,
    guard: &'a Arc<Guard>,
    bootstrap: &'a ServiceHandle,
    /// `listen.proxy_protocol_from`, for the TLS listeners.
    proxy_protocol: Option<Arc<Trusted>>,
}

impl Listeners<'_> {
    /// An HTTP listener: its idle HTTP/1 connections [`Parked`].
    fn add_http<A: HttpServerApp + Send + Sync + 'static>(
        &mut self,
        name: &str,
        app: A,
        exposure: Exposure,
        addr: std::net::SocketAddr,
    ) {
        self.add(name, Parked::new(app), Serves::Http, exposure, addr)
    }

    fn add<A: ServerApp + Send + Sync + 'static>(
        &mut self,
        name: &str,
        app: A,
        serves: Serves,
        exposure: Exposure,
        addr: std::net::SocketAddr,
    ) {
        let guarded = Guarded {
            inner: Arc::new(app),
            guard: self.guard.clone(),
            serves,
            capped: matches!(exposure, Exposure::Public(_)),
        };
        let mut service = Service::new(format!("portal-proxy {name}"), guarded);
        match exposure {
            Exposure::Public(tls) => {
                if tls.is_some() {
                    service
                        .endpoints()
                        .set_pre_tls_callback(Arc::new(HandshakeGuard {
                            guard: self.guard.clone(),
                            proxy_protocol: self.proxy_protocol.clone(),
                        }));
                }
                service.add_listener(client_endpoint(addr, tls));
            }
            Exposure::Private => service.add_tcp(&addr.to_string()),
        }
        self.server
            .add_service(service)
            .add_dependency(self.bootstrap);
    }
}

/// A listener for the public's connections. Pingora gives every accepted
/// connection a 64 KiB read buffer kept for the connection's whole life:
/// two thirds of what an idle keep-alive connection cost (benches/README.md,
/// tuning log). Under TLS it only sits below rustls, which reads at most
/// 4 KiB at a time into its own buffer (and frees it between records), and
/// Pingora's HTTP/1 parser has its own head buffer: without it, a request
/// costs the same one `read` per TLS record or head. Writes keep Pingora's
/// small (one segment) buffer.
fn client_endpoint(addr: std::net::SocketAddr, tls: Option<TlsSettings>) -> ListenerConfig {
    let endpoint =
        ListenerConfig::tcp(addr.to_string()).l4_buffer(L4BufferSettings::default().read(0));
    match tls {
        Some(tls) => endpoint.tls(tls),
        None => endpoint,
    }
}

#[cfg(test)]
mod tests;
