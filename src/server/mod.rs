//! Start-up: loads what the config names (identity, certificate, state),
//! reports problems for `-t`, and wires the Pingora services. Used by
//! `main` for `-t`, for a normal start and for the demo.

#![forbid(unsafe_code)]

mod bindable;
mod check;
mod handover;
mod reload;
mod signals;

use std::sync::Arc;

use log::{info, warn};
use pingora::apps::{HttpServerOptions, ServerApp};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceHandle;
use rustls::sign::CertifiedKey;

use crate::acme::AcmeService;
use crate::admission::guard::{Guard, GuardLimits, Guarded, HandshakeGuard, Kind};
use crate::admission::limits::ConnectionCap;
use crate::admission::live::LiveRequests;
use crate::admission::proxy_protocol::Trusted;
use crate::config::Config;
use crate::dns::Dns;
use crate::listeners::https::{Portal, PortalProxy};
use crate::listeners::internal::client::PeerClient;
use crate::listeners::internal::core_client::CoreClient;
use crate::listeners::internal::InternalApi;
use crate::listeners::metrics::MetricsApp;
use crate::listeners::mqtt::MqttRelay;
use crate::listeners::plain::Strict;
use crate::listeners::redirect::RedirectToHttps;
use crate::observe::access_log::AccessLog;
use crate::state::{SharedState, StateError};
use crate::tls::certificates::{load_certified_key, CertResolver};
use crate::tls::peer::{identity_certificate, PeerAwareResolver, PeerClientKeys, RecordTlsPeer};
pub use check::{check, verdict};
use portal_core::body::HeldBudget;
use portal_core::decide::Policy;
use portal_core::headers::{portal_value, PortalInfo};
use portal_core::identity::Identity;
use portal_core::renewal::certificate_names;
use portal_core::replay::{Handover, ReplayCache};
use portal_core::route::Router;
use portal_core::snapshot::Snapshot;
use reload::{record_certificate_expiry, record_state, CertificateFiles, Reloader};

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
    for e in &loaded.state_errors {
        warn!("state file left out: {e}");
    }
    let domain = loaded.domain(config);
    info!(
        "Portal {} serving *.{domain} with {} app(s): {}",
        loaded.identity.id,
        loaded.snapshot.apps.len(),
        loaded
            .snapshot
            .apps
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );

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
    let upgrade_lock = if opt.upgrade {
        Some(handover::UpgradeLock::take(&conf.upgrade_sock)?)
    } else {
        None
    };
    // Our `-c` is our own YAML, not Pingora's config file.
    opt.conf = None;
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // Bootstrap (with -u, receiving the listening sockets) runs once the
    // server runs, after -d forked: the daemon tells the waiting parent it
    // is up first, then takes the sockets; the listeners start after it.
    let bootstrap = server.bootstrap_as_a_service();

    record_state(&loaded.snapshot, &loaded.state_errors);
    // A stand-in's notAfter is no certificate's: 0 until the first one.
    record_certificate_expiry(match loaded.stand_in {
        Some(_) => Some(0),
        None => crate::tls::certificates::expiry(&loaded.certificate),
    });
    let identity = Arc::new(loaded.identity);
    let state = Arc::new(SharedState::new(loaded.snapshot));
    let replay = Arc::new(ReplayCache::new(config.peering.replay_cache_per_peer));
    replay.retain_peers(|_| true, state.load().peers.len(), 0);
    // Signatures over CA TLS split between the processes of an upgrade
    // (docs/signing.md, "Restarts and upgrades").
    let upgrading = upgrade_lock.is_some();
    let handover = Arc::new(Handover::new(config.peering.window.skew + 1, upgrading));
    server
        .add_service(background_service(
            "handover",
            handover::HandoverService {
                handover: handover.clone(),
                upgrading,
                lock: std::sync::Mutex::new(upgrade_lock),
            },
        ))
        .add_dependency(&bootstrap);
    // Threads start in services: they run after `-d` forked.
    let (access_log, log_writer) =
        AccessLog::new(config.access_log.clone()).map_err(|e| format!("access_log: {e}"))?;
    if let Some(writer) = log_writer {
        server.add_service(background_service("access log", writer));
    }
    let cap = ConnectionCap::new(config.limits.max_client_connections);
    let live = Arc::new(LiveRequests::default());
    let guard = Guard::new(
        GuardLimits {
            handshake: config.limits.handshake_timeout,
            head: config.limits.request_head_timeout,
            per_client: config.limits.max_connections_per_client,
        },
        cap.clone(),
    );
    let resolver = Arc::new(match loaded.stand_in {
        Some(reason) => {
            warn!("tls: {reason}");
            CertResolver::stand_in(loaded.certificate, reason)
        }
        None => CertResolver::new(loaded.certificate),
    });
    let router = Router::new(
        identity.short_id(),
        &config.base_domain,
        &config.home_app,
        config.core_upstream.clone(),
        config.upstreams.clone(),
    );
    let router_shared = Arc::new(router.clone());
    // One DNS cache for every name the listeners connect to.
    let dns = Arc::new(Dns::system(config.resolver.clone()));
    // The outbound client exists with the internal listener; its trust
    // roots (`peering.ca_file`) are reloaded like the certificate.
    // What this Portal proves its identity key with in pinned peer TLS,
    // both as the listener and as the caller.
    let identity_certificate = identity_certificate(&identity, &domain)?;
    let peer_client = match config.internal_listen {
        Some(_) => Some(Arc::new(PeerClient::new(
            identity.clone(),
            identity_certificate.clone(),
            router_shared.clone(),
            &config.peering,
            &config.limits,
            dns.clone(),
        )?)),
        None => None,
    };
    server.add_service(background_service(
        "reload",
        Reloader {
            state_dir: config.state_dir.clone(),
            state: state.clone(),
            replay: replay.clone(),
            certificate: CertificateFiles {
                cert_file: config.tls_cert_file.clone(),
                key_file: config.tls_key_file.clone(),
                resolver: resolver.clone(),
            },
            access_log: access_log.clone(),
            fingerprints: (loaded.state_fingerprint, loaded.certificate_fingerprint),
            live: live.clone(),
            guard: guard.clone(),
            peer_roots: peer_client.clone(),
        },
    ));

    if let Some(settings) = &config.acme {
        server.add_service(background_service(
            "acme",
            AcmeService {
                settings: settings.clone(),
                names: certificate_names(&domain, &settings.extra_names),
                cert_file: config.tls_cert_file.clone(),
                key_file: config.tls_key_file.clone(),
                identity: identity.clone(),
                resolver: resolver.clone(),
            },
        ));
    }

    let portal = Arc::new(Portal {
        policy: Policy {
            router: router.clone(),
            window: config.peering.window,
            max_signed_body: config.peering.max_signed_body,
            held_bodies: Arc::new(HeldBudget::new(config.peering.max_held_bodies)),
            transports: config.peering.transports.clone(),
        },
        limits: config.limits.clone(),
        state: state.clone(),
        template_portal: portal_value(&PortalInfo {
            id: identity.id.clone(),
            short_id: identity.short_id().to_string(),
            domain: domain.clone(),
            public_key_pem: identity.public_key_pem.clone(),
        }),
        replay: replay.clone(),
        handover,
        access_log,
        guard: guard.clone(),
        live,
        identity: identity.clone(),
        dns: dns.clone(),
        rate: crate::admission::rate::RateLimits::new(config.limits.rate),
        compression: crate::compress::Compressors::new(config.compression.clone()),
    });
    let router = router_shared;

    let mut proxy = pingora::proxy::http_proxy(&server.configuration, PortalProxy::new(portal));
    proxy.h2_options = Some(crate::admission::limits::h2_options(
        config.limits.max_request_header_bytes,
    ));
    let mut options = HttpServerOptions::default();
    options.keepalive_request_limit = Some(crate::admission::limits::KEEPALIVE_REQUEST_LIMIT);
    options.h2_idle_timeout = Some(config.limits.downstream_idle_timeout);
    proxy.server_options = Some(options);
    // The MQTT listener's TLS: the CA certificate, nothing else.
    let tls = || -> Result<TlsSettings, String> {
        let mut tls = TlsSettings::intermediate("", "").map_err(|e| e.to_string())?;
        tls.set_cert_resolver(resolver.clone());
        Ok(tls)
    };
    // The HTTPS listener's: HTTP/2, and pinned peer TLS beside the CA
    // certificate (tls::peer).
    let https_tls = {
        let mut tls =
            TlsSettings::with_callbacks(Box::new(RecordTlsPeer)).map_err(|e| e.to_string())?;
        tls.set_cert_resolver(Arc::new(PeerAwareResolver {
            ca: resolver.clone(),
            identity: identity_certificate.clone(),
        }));
        let peers = state.clone();
        tls.set_client_cert_verifier(Arc::new(PeerClientKeys {
            lookup: move |key: &[u8; 32]| {
                let id = portal_core::identity::portal_id(key);
                let snapshot = peers.load();
                let peer = snapshot.peers.get(&id)?;
                (peer.key.as_bytes() == key).then(|| peer.id.clone())
            },
        }));
        tls.enable_h2();
        tls
    };
    let mut listeners = Listeners {
        server: &mut server,
        guard: &guard,
        bootstrap: &bootstrap,
        proxy_protocol: config.proxy_protocol_from.clone().map(Arc::new),
    };
    listeners.add(
        "https",
        proxy,
        Kind::Http,
        Exposure::Public(Some(https_tls)),
        config.listen_https,
    );

    if let Some(addr) = config.listen_mqtts {
        let relay = MqttRelay {
            state: state.clone(),
            router: router.clone(),
            dns: dns.clone(),
            connect_timeout: config.limits.upstream_connect_timeout,
            idle_timeout: config.limits.mqtt_idle_timeout,
        };
        let exposure = Exposure::Public(Some(tls()?));
        listeners.add("mqtts", relay, Kind::Relay, exposure, addr);
    }

    if let Some(addr) = config.internal_listen {
        let client = peer_client
            .clone()
            .ok_or("internal.listen is set but its client was not built")?;
        let core = CoreClient {
            upstream: config.core_upstream.clone(),
            dns: dns.clone(),
            connect_timeout: config.limits.upstream_connect_timeout,
            idle_timeout: config.limits.upstream_idle_timeout,
        };
        let api = InternalApi::new(state.clone(), client, core, config.peering.max_signed_body);
        listeners.add("internal", api, Kind::Http, Exposure::Private, addr);
    }

    if let Some(addr) = config.metrics_listen {
        let metrics = Strict(MetricsApp {
            certificate: resolver.clone(),
        });
        listeners.add("metrics", metrics, Kind::Http, Exposure::Private, addr);
    }

    if let Some(addr) = config.listen_http {
        let redirect = Strict(RedirectToHttps {
            https_port: config.listen_https.port(),
            router: router.clone(),
        });
        let exposure = Exposure::Public(None);
        listeners.add("http redirect", redirect, Kind::Http, exposure, addr);
    }
    Ok(server)
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
    fn add<A: ServerApp + Send + Sync + 'static>(
        &mut self,
        name: &str,
        app: A,
        kind: Kind,
        exposure: Exposure,
        addr: std::net::SocketAddr,
    ) {
        let guarded = Guarded {
            inner: Arc::new(app),
            guard: self.guard.clone(),
            kind,
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
