//! The validation layer of the config: turns [`raw::Config`] into
//! [`Config`], reporting every bad value at once, each with its key path.

use crate::admission::proxy_protocol::Trusted;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use portal_core::names::{is_app_name, is_dns_name};

/// Collects every error instead of stopping at the first.
pub(super) struct Validator {
    base: PathBuf,
    errors: Vec<ConfigError>,
}

impl Validator {
    pub(super) fn new(base: PathBuf) -> Self {
        Validator {
            base,
            errors: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn path(&mut self, key: &str, value: &str) -> PathBuf {
        if value.is_empty() {
            self.error(key, "empty path");
        }
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub(super) fn addr(&mut self, key: &str, value: &str) -> Option<SocketAddr> {
        match value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    key,
                    format!(
                        "{value:?} is not an IP address and port (\"0.0.0.0:443\", \"[::]:443\")"
                    ),
                );
                None
            }
        }
    }

    /// `listen.proxy_protocol_from`: each entry an address or a network.
    fn proxy_protocol_from(&mut self, entries: &[String]) -> Option<Trusted> {
        let mut nets = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match Trusted::parse_entry(entry) {
                Ok(net) => nets.push(net),
                Err(e) => self.error(format!("listen.proxy_protocol_from[{i}]"), e),
            }
        }
        (!nets.is_empty()).then_some(Trusted(nets))
    }

    fn host_port(&mut self, key: &str, value: &str) -> Option<HostPort> {
        match value.parse::<HostPort>() {
            Ok(hp) => Some(hp),
            Err(e) => {
                self.error(key, e);
                None
            }
        }
    }

    pub(super) fn seconds(&mut self, key: &str, value: Option<f64>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 * 7.0 => {
                Duration::from_secs_f64(v)
            }
            Some(v) => {
                self.error(
                    key,
                    format!("{v} is not a duration in seconds above 0 and at most a week"),
                );
                default
            }
        }
    }

    pub(super) fn count(
        &mut self,
        key: &str,
        value: Option<usize>,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> usize {
        match value {
            None => default,
            Some(v) if range.contains(&v) => v,
            Some(v) => {
                self.error(
                    key,
                    format!("{v} is not from {} to {}", range.start(), range.end()),
                );
                default
            }
        }
    }

    /// `upstreams`: each app's `http` and `mqtt` entrypoints.
    fn upstreams(
        &mut self,
        raw: BTreeMap<String, raw::Upstream>,
    ) -> BTreeMap<String, AppUpstreams> {
        let mut upstreams = BTreeMap::new();
        for (app, upstream) in raw {
            let key = format!("upstreams.{app}");
            if !is_app_name(&app) {
                self.error(
                    &key,
                    format!("{app:?} is not an app name (lower-case letters, digits, '-')"),
                );
            }
            let parsed = match upstream {
                raw::Upstream::Http(v) => AppUpstreams {
                    http: self.host_port(&key, &v),
                    mqtt: None,
                },
                raw::Upstream::Split(s) => {
                    if s.http.is_none() && s.mqtt.is_none() {
                        self.error(&key, "give at least one of http and mqtt");
                    }
                    AppUpstreams {
                        http: s
                            .http
                            .and_then(|v| self.host_port(&format!("{key}.http"), &v)),
                        mqtt: s
                            .mqtt
                            .and_then(|v| self.host_port(&format!("{key}.mqtt"), &v)),
                    }
                }
            };
            upstreams.insert(app, parsed);
        }
        upstreams
    }

    /// `peering`: the signature window and the memory of signed bodies.
    fn peering(&mut self, raw_peering: raw::Peering) -> Peering {
        let default_window = portal_core::signature::Window::default();
        let skew = raw_peering
            .clock_skew_seconds
            .map_or(default_window.skew, i64::from);
        if skew > 300 {
            self.error(
                "peering.clock_skew_seconds",
                format!("{skew} is more than 300"),
            );
        }
        let max_validity = raw_peering
            .max_signature_validity_seconds
            .map_or(default_window.max_validity, i64::from);
        if !(1..=3600).contains(&max_validity) {
            self.error(
                "peering.max_signature_validity_seconds",
                format!("{max_validity} is not from 1 to 3600"),
            );
        }
        let max_signed_body = raw_peering
            .max_signed_body_bytes
            .map_or(DEFAULT_MAX_SIGNED_BODY, |b| {
                usize::try_from(b).unwrap_or(usize::MAX)
            });
        if max_signed_body > 1024 * 1024 * 1024 {
            self.error(
                "peering.max_signed_body_bytes",
                format!(
                    "{max_signed_body} is more than 1 GiB, which the proxy would hold in memory"
                ),
            );
        }
        let replay_cache_per_peer = raw_peering
            .replay_cache_per_peer
            .unwrap_or(portal_core::replay::DEFAULT_PER_PEER);
        if replay_cache_per_peer == 0 {
            self.error(
                "peering.replay_cache_per_peer",
                "0 would refuse every peer request",
            );
        }
        let max_held_bodies = raw_peering
            .max_held_bodies_bytes
            .map_or(DEFAULT_MAX_HELD_BODIES, |b| {
                usize::try_from(b).unwrap_or(usize::MAX)
            });
        if max_held_bodies < max_signed_body {
            self.error(
                "peering.max_held_bodies_bytes",
                format!(
                    "{max_held_bodies} is less than peering.max_signed_body_bytes ({max_signed_body}): no signed body that large could be held"
                ),
            );
        } else if max_held_bodies > 16 * 1024 * 1024 * 1024 {
            self.error(
                "peering.max_held_bodies_bytes",
                format!("{max_held_bodies} is more than 16 GiB"),
            );
        }
        let mut transports = portal_core::transport::Transports {
            default: raw_peering
                .transport
                .map_or_else(Default::default, Into::into),
            by_peer: Default::default(),
        };
        for (id, transport) in raw_peering.peer_transport.unwrap_or_default() {
            if portal_core::identity::is_portal_id(&id) {
                transports.by_peer.insert(id, transport.into());
            } else {
                self.error(
                    format!("peering.peer_transport.{id}"),
                    "not a full Portal ID (103 characters, as in peers.json)",
                );
            }
        }
        Peering {
            transports,
            ca_file: raw_peering
                .ca_file
                .map(|f| self.path("peering.ca_file", &f)),
            window: portal_core::signature::Window { skew, max_validity },
            max_signed_body,
            replay_cache_per_peer,
            max_held_bodies,
            require_response_signature: raw_peering.require_response_signature.unwrap_or(true),
        }
    }

    /// `server`: Pingora's own settings.
    fn server(&mut self, raw_server: raw::Server) -> ServerSettings {
        let threads = raw_server.threads.unwrap_or(2);
        if threads == 0 || threads > 1024 {
            self.error("server.threads", format!("{threads} is not from 1 to 1024"));
        }
        ServerSettings {
            threads,
            pid_file: raw_server
                .pid_file
                .map(|f| self.path("server.pid_file", &f)),
            upgrade_sock: raw_server
                .upgrade_sock
                .map(|f| self.path("server.upgrade_sock", &f)),
            user: raw_server.user,
            group: raw_server.group,
            grace_period_seconds: raw_server.grace_period_seconds,
            graceful_shutdown_timeout_seconds: raw_server.graceful_shutdown_timeout_seconds,
            upstream_keepalive_pool_size: raw_server.upstream_keepalive_pool_size,
            work_stealing: raw_server.work_stealing.unwrap_or(DEFAULT_WORK_STEALING),
        }
    }

    /// `limits`: the edge's timeouts and sizes.
    fn limits(&mut self, raw_limits: raw::Limits) -> Limits {
        let d = Limits::default();
        Limits {
            upstream_connect_timeout: self.seconds(
                "limits.upstream_connect_timeout_seconds",
                raw_limits.upstream_connect_timeout_seconds,
                d.upstream_connect_timeout,
            ),
            upstream_idle_timeout: self.seconds(
                "limits.upstream_idle_timeout_seconds",
                raw_limits.upstream_idle_timeout_seconds,
                d.upstream_idle_timeout,
            ),
            downstream_idle_timeout: self.seconds(
                "limits.downstream_idle_timeout_seconds",
                raw_limits.downstream_idle_timeout_seconds,
                d.downstream_idle_timeout,
            ),
            max_request_header_bytes: self.count(
                "limits.max_request_header_bytes",
                raw_limits.max_request_header_bytes,
                d.max_request_header_bytes,
                1024..=1024 * 1024,
            ),
            max_request_headers: self.count(
                "limits.max_request_headers",
                raw_limits.max_request_headers,
                d.max_request_headers,
                8..=1000,
            ),
            max_client_connections: self.count(
                "limits.max_client_connections",
                raw_limits.max_client_connections,
                d.max_client_connections,
                16..=10_000_000,
            ),
            max_connections_per_client: self.count(
                "limits.max_connections_per_client",
                raw_limits.max_connections_per_client,
                d.max_connections_per_client,
                1..=10_000_000,
            ),
            handshake_timeout: self.seconds(
                "limits.handshake_timeout_seconds",
                raw_limits.handshake_timeout_seconds,
                d.handshake_timeout,
            ),
            request_head_timeout: self.seconds(
                "limits.request_head_timeout_seconds",
                raw_limits.request_head_timeout_seconds,
                d.request_head_timeout,
            ),
            mqtt_idle_timeout: self.seconds(
                "limits.mqtt_idle_timeout_seconds",
                raw_limits.mqtt_idle_timeout_seconds,
                d.mqtt_idle_timeout,
            ),
            min_body_bytes_per_second: self.count(
                "limits.min_body_bytes_per_second",
                raw_limits.min_body_bytes_per_second,
                d.min_body_bytes_per_second as usize,
                0..=1 << 30,
            ) as u64,
            min_body_rate_grace: self.seconds(
                "limits.min_body_rate_grace_seconds",
                raw_limits.min_body_rate_grace_seconds,
                d.min_body_rate_grace,
            ),
            rate: crate::admission::rate::RateSettings {
                anonymous_per_second: self.count(
                    "limits.anonymous_requests_per_second",
                    raw_limits.anonymous_requests_per_second,
                    d.rate.anonymous_per_second as usize,
                    0..=1_000_000,
                ) as u32,
                peer_per_second: self.count(
                    "limits.peer_requests_per_second",
                    raw_limits.peer_requests_per_second,
                    d.rate.peer_per_second as usize,
                    0..=1_000_000,
                ) as u32,
                failed_authentications_per_minute: self.count(
                    "limits.failed_authentications_per_minute",
                    raw_limits.failed_authentications_per_minute,
                    d.rate.failed_authentications_per_minute as usize,
                    0..=1_000_000,
                ) as u32,
            },
        }
    }

    /// `access_log`: off, standard output or a file.
    fn access_log(&mut self, raw: Option<raw::AccessLog>) -> crate::observe::access_log::Sink {
        match raw {
            None => crate::observe::access_log::Sink::Stdout,
            Some(raw::AccessLog {
                enabled: Some(false),
                file: Some(_),
            }) => {
                self.error("access_log", "a file is given but enabled is false");
                crate::observe::access_log::Sink::Off
            }
            Some(raw::AccessLog {
                enabled: Some(false),
                ..
            }) => crate::observe::access_log::Sink::Off,
            Some(raw::AccessLog { file: Some(f), .. }) => {
                crate::observe::access_log::Sink::File(self.path("access_log.file", &f))
            }
            Some(raw::AccessLog { file: None, .. }) => crate::observe::access_log::Sink::Stdout,
        }
    }

    /// Two listeners on one address fail at bind time with a vaguer error.
    fn distinct_listeners(&mut self, listeners: &[(&str, Option<SocketAddr>)]) {
        let mut seen: BTreeMap<SocketAddr, &str> = BTreeMap::new();
        for &(key, addr) in listeners {
            if let Some(addr) = addr {
                if let Some(other) = seen.insert(addr, key) {
                    self.error(key, format!("{addr} is already used by {other}"));
                }
            }
        }
    }

    pub(super) fn validate(mut self, raw: raw::Config) -> Result<Config, Vec<ConfigError>> {
        let key_file = self.path("portal.key_file", &raw.portal.key_file);
        let base_domain = raw
            .portal
            .base_domain
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !is_dns_name(&base_domain) || base_domain.contains('_') {
            self.error(
                "portal.base_domain",
                format!("{:?} is not a domain name", raw.portal.base_domain),
            );
        }
        let state_dir = self.path("state_dir", &raw.state_dir);
        let listen_https = self.addr("listen.https", &raw.listen.https);
        let listen_http = raw
            .listen
            .http
            .as_deref()
            .and_then(|v| self.addr("listen.http", v));
        let listen_mqtts = raw
            .listen
            .mqtts
            .as_deref()
            .and_then(|v| self.addr("listen.mqtts", v));
        let proxy_protocol_from = self.proxy_protocol_from(&raw.listen.proxy_protocol_from);
        let tls_cert_file = self.path("tls.cert_file", &raw.tls.cert_file);
        let tls_key_file = self.path("tls.key_file", &raw.tls.key_file);
        let acme = raw.tls.acme.and_then(|a| self.acme(a, &tls_cert_file));
        let home_app = raw.home_app.unwrap_or_else(|| DEFAULT_HOME_APP.to_string());
        if !is_app_name(&home_app) {
            self.error(
                "home_app",
                format!("{home_app:?} is not an app name (lower-case letters, digits, '-')"),
            );
        }
        let core_upstream = self.host_port("core.upstream", &raw.core.upstream);

        let upstreams = self.upstreams(raw.upstreams);

        let internal_listen = raw
            .internal
            .and_then(|l| self.addr("internal.listen", &l.listen));
        let peering = self.peering(raw.peering.unwrap_or_default());
        let metrics_listen = raw
            .metrics
            .and_then(|l| self.addr("metrics.listen", &l.listen));

        let server = self.server(raw.server.unwrap_or_default());
        let limits = self.limits(raw.limits.unwrap_or_default());
        let access_log = self.access_log(raw.access_log);
        let resolver = self.resolver(raw.resolver.unwrap_or_default());
        let compression = self.compression(raw.compression.unwrap_or_default());
        let assertion = self.assertion(raw.assertion.unwrap_or_default());

        self.distinct_listeners(&[
            ("listen.https", listen_https),
            ("listen.http", listen_http),
            ("listen.mqtts", listen_mqtts),
            ("internal.listen", internal_listen),
            ("metrics.listen", metrics_listen),
        ]);

        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(Config {
            file: PathBuf::new(),
            key_file,
            base_domain,
            state_dir,
            listen_https: listen_https.expect("checked above"),
            listen_http,
            listen_mqtts,
            proxy_protocol_from,
            tls_cert_file,
            tls_key_file,
            acme,
            home_app,
            core_upstream: core_upstream.expect("checked above"),
            upstreams,
            internal_listen,
            peering,
            metrics_listen,
            server,
            limits,
            access_log,
            resolver,
            compression,
            assertion,
        })
    }
}
