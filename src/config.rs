//! The YAML config file (DESIGN section 8), in two layers: [`raw`] serde
//! structs that refuse unknown keys, then [`Config`], validated, with paths
//! resolved against the config file's folder. Every error names its key path
//! and all validation errors are reported at once. Used by `main` only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem with the config: the key path and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one config file.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid config {}:", self.file)?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The serde layer: the file as written, unknown keys refused.
pub mod raw {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        pub portal: Portal,
        pub state_dir: String,
        pub listen: Listen,
        pub tls: Tls,
        #[serde(default)]
        pub home_app: Option<String>,
        pub core: Core,
        #[serde(default)]
        pub upstreams: BTreeMap<String, Upstream>,
        #[serde(default)]
        pub internal: Option<Listener>,
        #[serde(default)]
        pub peering: Option<Peering>,
        #[serde(default)]
        pub metrics: Option<Listener>,
        #[serde(default)]
        pub server: Option<Server>,
        #[serde(default)]
        pub limits: Option<Limits>,
        #[serde(default)]
        pub access_log: Option<AccessLog>,
    }

    /// Where the access log goes: standard output unless `file` is given;
    /// nowhere with `enabled: false`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AccessLog {
        #[serde(default)]
        pub file: Option<String>,
        #[serde(default)]
        pub enabled: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Portal {
        pub key_file: String,
        pub base_domain: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Listen {
        pub https: String,
        #[serde(default)]
        pub http: Option<String>,
        #[serde(default)]
        pub mqtts: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub cert_file: String,
        pub key_file: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Core {
        pub upstream: String,
    }

    /// `myapp: host:port` or `myapp: {http: host:port, mqtt: host:port}`.
    #[derive(Debug, Deserialize)]
    #[serde(
        untagged,
        expecting = "a \"host:port\" string or a map with keys http and/or mqtt"
    )]
    pub enum Upstream {
        Http(String),
        Split(SplitUpstream),
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SplitUpstream {
        #[serde(default)]
        pub http: Option<String>,
        #[serde(default)]
        pub mqtt: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Listener {
        pub listen: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Peering {
        #[serde(default)]
        pub ca_file: Option<String>,
        #[serde(default)]
        pub clock_skew_seconds: Option<u32>,
        #[serde(default)]
        pub max_signature_validity_seconds: Option<u32>,
        #[serde(default)]
        pub max_signed_body_bytes: Option<u64>,
        #[serde(default)]
        pub replay_cache_per_peer: Option<usize>,
    }

    /// Pingora server settings exposed to operators.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        #[serde(default)]
        pub threads: Option<usize>,
        #[serde(default)]
        pub pid_file: Option<String>,
        #[serde(default)]
        pub upgrade_sock: Option<String>,
        #[serde(default)]
        pub user: Option<String>,
        #[serde(default)]
        pub group: Option<String>,
        #[serde(default)]
        pub grace_period_seconds: Option<u64>,
        #[serde(default)]
        pub graceful_shutdown_timeout_seconds: Option<u64>,
        #[serde(default)]
        pub upstream_keepalive_pool_size: Option<usize>,
    }

    /// Edge limits (DESIGN section 8 defaults when absent).
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Limits {
        #[serde(default)]
        pub upstream_connect_timeout_seconds: Option<f64>,
        #[serde(default)]
        pub upstream_idle_timeout_seconds: Option<f64>,
        #[serde(default)]
        pub downstream_idle_timeout_seconds: Option<f64>,
        #[serde(default)]
        pub max_request_header_bytes: Option<usize>,
        #[serde(default)]
        pub max_request_headers: Option<usize>,
        #[serde(default)]
        pub max_client_connections: Option<usize>,
    }
}

/// An upstream address: an IP socket address, or a host name resolved by DNS
/// for each new connection (containers change addresses when restarted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(HostPort {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not \"host:port\""))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: port {port:?} is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(format!("{s:?}: port 0 is not a destination"));
        }
        if !is_dns_name(host) {
            return Err(format!(
                "{s:?}: {host:?} is not an IP address or a host name"
            ));
        }
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// A DNS name: labels of letters, digits, `-` and `_` (container names), at
/// most 253 characters.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label_loose)
}

fn is_dns_label_loose(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// An app name usable as the first label of `<app>.<domain>`.
pub fn is_app_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppUpstreams {
    pub http: Option<HostPort>,
    pub mqtt: Option<HostPort>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub upstream_connect_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub downstream_idle_timeout: Duration,
    pub max_request_header_bytes: usize,
    pub max_request_headers: usize,
    pub max_client_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(300),
            downstream_idle_timeout: Duration::from_secs(60),
            max_request_header_bytes: crate::limits::DEFAULT_MAX_HEADER_BYTES,
            max_request_headers: crate::limits::DEFAULT_MAX_HEADERS,
            max_client_connections: crate::limits::default_max_connections(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    pub threads: usize,
    pub pid_file: Option<PathBuf>,
    pub upgrade_sock: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    pub upstream_keepalive_pool_size: Option<usize>,
}

/// The validated config the rest of the proxy uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub key_file: PathBuf,
    /// Lower case, no leading or trailing dot.
    pub base_domain: String,
    pub state_dir: PathBuf,
    pub listen_https: SocketAddr,
    pub listen_http: Option<SocketAddr>,
    pub listen_mqtts: Option<SocketAddr>,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    pub home_app: String,
    pub core_upstream: HostPort,
    pub upstreams: BTreeMap<String, AppUpstreams>,
    pub internal_listen: Option<SocketAddr>,
    pub peering: Peering,
    pub metrics_listen: Option<SocketAddr>,
    pub server: ServerSettings,
    pub limits: Limits,
    pub access_log: crate::access_log::Target,
}

/// Peer request settings (DESIGN sections 5 and 7).
#[derive(Debug, Clone)]
pub struct Peering {
    /// Extra trust roots for peer Portals' certificates.
    pub ca_file: Option<PathBuf>,
    pub window: crate::signature::Window,
    /// Largest signed request body buffered for its digest check.
    pub max_signed_body: usize,
    /// Live nonces kept per peer by the replay cache.
    pub replay_cache_per_peer: usize,
}

/// Default of `peering.max_signed_body_bytes`: 8 MiB.
pub const DEFAULT_MAX_SIGNED_BODY: usize = 8 * 1024 * 1024;

/// Default of `home_app`: the Portal's own terminal UI.
pub const DEFAULT_HOME_APP: &str = "web-terminal";

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: path.display().to_string(),
            errors: vec![ConfigError {
                path: "(file)".into(),
                message: format!("cannot read: {e}"),
            }],
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text` as the config file at `path` (relative paths in it
    /// resolve against `path`'s folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |errors| ConfigErrors {
            file: path.display().to_string(),
            errors,
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let raw: raw::Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let message = strip_yaml_path(&key, &e.inner().to_string()).to_string();
            fail(vec![ConfigError {
                path: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message,
            }])
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Validator::new(base).validate(raw).map_err(fail)?;
        config.file = path.to_path_buf();
        Ok(config)
    }
}

/// serde_yaml starts its messages with the path of the map it was in
/// (`server: unknown field ...`); the path we print is the exact key.
fn strip_yaml_path<'m>(key: &str, message: &'m str) -> &'m str {
    let mut prefix = key;
    loop {
        if let Some(rest) = message
            .strip_prefix(prefix)
            .and_then(|m| m.strip_prefix(": "))
        {
            return rest;
        }
        match prefix.rsplit_once('.') {
            Some((head, _)) => prefix = head,
            None => return message,
        }
    }
}

/// Collects every error instead of stopping at the first.
struct Validator {
    base: PathBuf,
    errors: Vec<ConfigError>,
}

impl Validator {
    fn new(base: PathBuf) -> Self {
        Validator {
            base,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn path(&mut self, key: &str, value: &str) -> PathBuf {
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

    fn addr(&mut self, key: &str, value: &str) -> Option<SocketAddr> {
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

    fn host_port(&mut self, key: &str, value: &str) -> Option<HostPort> {
        match value.parse::<HostPort>() {
            Ok(hp) => Some(hp),
            Err(e) => {
                self.error(key, e);
                None
            }
        }
    }

    fn seconds(&mut self, key: &str, value: Option<f64>, default: Duration) -> Duration {
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

    fn count(
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

    fn validate(mut self, raw: raw::Config) -> Result<Config, Vec<ConfigError>> {
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
        let tls_cert_file = self.path("tls.cert_file", &raw.tls.cert_file);
        let tls_key_file = self.path("tls.key_file", &raw.tls.key_file);
        let home_app = raw.home_app.unwrap_or_else(|| DEFAULT_HOME_APP.to_string());
        if !is_app_name(&home_app) {
            self.error(
                "home_app",
                format!("{home_app:?} is not an app name (lower-case letters, digits, '-')"),
            );
        }
        let core_upstream = self.host_port("core.upstream", &raw.core.upstream);

        let mut upstreams = BTreeMap::new();
        for (app, upstream) in raw.upstreams {
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

        let internal_listen = raw
            .internal
            .and_then(|l| self.addr("internal.listen", &l.listen));
        let raw_peering = raw.peering.unwrap_or(raw::Peering {
            ca_file: None,
            clock_skew_seconds: None,
            max_signature_validity_seconds: None,
            max_signed_body_bytes: None,
            replay_cache_per_peer: None,
        });
        let default_window = crate::signature::Window::default();
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
            .unwrap_or(crate::replay::DEFAULT_PER_PEER);
        if replay_cache_per_peer == 0 {
            self.error(
                "peering.replay_cache_per_peer",
                "0 would refuse every peer request",
            );
        }
        let peering = Peering {
            ca_file: raw_peering
                .ca_file
                .map(|f| self.path("peering.ca_file", &f)),
            window: crate::signature::Window { skew, max_validity },
            max_signed_body,
            replay_cache_per_peer,
        };
        let metrics_listen = raw
            .metrics
            .and_then(|l| self.addr("metrics.listen", &l.listen));

        let raw_server = raw.server.unwrap_or(raw::Server {
            threads: None,
            pid_file: None,
            upgrade_sock: None,
            user: None,
            group: None,
            grace_period_seconds: None,
            graceful_shutdown_timeout_seconds: None,
            upstream_keepalive_pool_size: None,
        });
        let threads = raw_server.threads.unwrap_or(2);
        if threads == 0 || threads > 1024 {
            self.error("server.threads", format!("{threads} is not from 1 to 1024"));
        }
        let server = ServerSettings {
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
        };

        let raw_limits = raw.limits.unwrap_or(raw::Limits {
            upstream_connect_timeout_seconds: None,
            upstream_idle_timeout_seconds: None,
            downstream_idle_timeout_seconds: None,
            max_request_header_bytes: None,
            max_request_headers: None,
            max_client_connections: None,
        });
        let d = Limits::default();
        let limits = Limits {
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
        };

        let access_log = match raw.access_log {
            None => crate::access_log::Target::Stdout,
            Some(raw::AccessLog {
                enabled: Some(false),
                file: Some(_),
            }) => {
                self.error("access_log", "a file is given but enabled is false");
                crate::access_log::Target::Off
            }
            Some(raw::AccessLog {
                enabled: Some(false),
                ..
            }) => crate::access_log::Target::Off,
            Some(raw::AccessLog { file: Some(f), .. }) => {
                crate::access_log::Target::File(self.path("access_log.file", &f))
            }
            Some(raw::AccessLog { file: None, .. }) => crate::access_log::Target::Stdout,
        };

        // Two listeners on one address fail at bind time with a vaguer error.
        let mut seen: BTreeMap<SocketAddr, &str> = BTreeMap::new();
        for (key, addr) in [
            ("listen.https", listen_https),
            ("listen.http", listen_http),
            ("listen.mqtts", listen_mqtts),
            ("internal.listen", internal_listen),
            ("metrics.listen", metrics_listen),
        ] {
            if let Some(addr) = addr {
                if let Some(other) = seen.insert(addr, key) {
                    self.error(key, format!("{addr} is already used by {other}"));
                }
            }
        }

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
            tls_cert_file,
            tls_key_file,
            home_app,
            core_upstream: core_upstream.expect("checked above"),
            upstreams,
            internal_listen,
            peering,
            metrics_listen,
            server,
            limits,
            access_log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
portal:
  key_file: identity.pem
  base_domain: P.GetPortal.org
state_dir: state
listen:
  https: 0.0.0.0:443
  http: 0.0.0.0:80
  mqtts: 0.0.0.0:8883
tls: { cert_file: cert.pem, key_file: /etc/keys/key.pem }
home_app: web-terminal
core: { upstream: 127.0.0.1:8000 }
upstreams:
  myapp: 127.0.0.1:9000
  mosquitto: { http: 127.0.0.1:9001, mqtt: 127.0.0.1:1883 }
  dns-app: web:8080
internal: { listen: 127.0.0.1:8080 }
peering: { ca_file: ca.pem }
metrics: { listen: 127.0.0.1:9090 }
server: { threads: 2 }
"#;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, Path::new("/etc/portal-proxy/portal-proxy.yaml"))
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .expect_err("config must be refused")
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn design_example_parses() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.key_file, Path::new("/etc/portal-proxy/identity.pem"));
        assert_eq!(c.tls_key_file, Path::new("/etc/keys/key.pem"));
        assert_eq!(c.state_dir, Path::new("/etc/portal-proxy/state"));
        assert_eq!(c.base_domain, "p.getportal.org");
        assert_eq!(c.listen_https.port(), 443);
        assert_eq!(
            c.upstreams["myapp"].http.as_ref().unwrap().to_string(),
            "127.0.0.1:9000"
        );
        assert_eq!(c.upstreams["mosquitto"].mqtt.as_ref().unwrap().port, 1883);
        assert_eq!(c.upstreams["dns-app"].http.as_ref().unwrap().host, "web");
        assert_eq!(
            c.peering.ca_file.as_deref(),
            Some(Path::new("/etc/portal-proxy/ca.pem"))
        );
        assert_eq!(c.peering.window.skew, 5);
        assert_eq!(c.peering.window.max_validity, 300);
        assert_eq!(c.peering.max_signed_body, 8 * 1024 * 1024);
        assert_eq!(c.server.threads, 2);
        assert_eq!(c.limits.upstream_connect_timeout, Duration::from_secs(5));
        assert_eq!(c.access_log, crate::access_log::Target::Stdout);
        let c = parse(&format!("{FULL}access_log: {{ file: log/access.log }}\n")).unwrap();
        assert_eq!(
            c.access_log,
            crate::access_log::Target::File(PathBuf::from("/etc/portal-proxy/log/access.log"))
        );
        let c = parse(&format!("{FULL}access_log: {{ enabled: false }}\n")).unwrap();
        assert_eq!(c.access_log, crate::access_log::Target::Off);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let e = errors(&FULL.replace(
            "server: { threads: 2 }",
            "server: { threads: 2, thread: 3 }",
        ));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("server.thread: unknown field `thread`"),
            "{e:?}"
        );
        let e = errors(&format!("{FULL}\nextra: 1\n"));
        assert!(e[0].contains("unknown field `extra`"), "{e:?}");
        let e = errors(&FULL.replace(
            "  mqtts: 0.0.0.0:8883",
            "  mqtts: 0.0.0.0:8883\n  h3: 0.0.0.0:443",
        ));
        assert!(e[0].starts_with("listen.h3: unknown field `h3`"), "{e:?}");
    }

    #[test]
    fn missing_and_mistyped_keys_name_their_path() {
        let e = errors(&FULL.replace("  key_file: identity.pem\n", ""));
        assert!(
            e[0].contains("portal") && e[0].contains("key_file"),
            "{e:?}"
        );
        let e = errors(&FULL.replace("threads: 2", "threads: two"));
        assert!(e[0].starts_with("server.threads:"), "{e:?}");
        let e = errors(&FULL.replace("myapp: 127.0.0.1:9000", "myapp: [1, 2]"));
        assert!(e[0].starts_with("upstreams.myapp:"), "{e:?}");
    }

    #[test]
    fn every_validation_error_is_reported_at_once() {
        let bad = FULL
            .replace("https: 0.0.0.0:443", "https: localhost:443")
            .replace("127.0.0.1:8000", "127.0.0.1")
            .replace("myapp: 127.0.0.1:9000", "MyApp: 127.0.0.1:9000")
            .replace("threads: 2", "threads: 0")
            .replace("P.GetPortal.org", "p..org")
            .replace("mqtt: 127.0.0.1:1883", "mqtt: 127.0.0.1:99999")
            .replace("127.0.0.1:9090", "127.0.0.1:8080");
        let e = errors(&bad);
        for key in [
            "listen.https:",
            "core.upstream:",
            "upstreams.MyApp:",
            "server.threads:",
            "portal.base_domain:",
            "upstreams.mosquitto.mqtt:",
            "metrics.listen: 127.0.0.1:8080 is already used by internal.listen",
        ] {
            assert!(
                e.iter().any(|m| m.starts_with(key)),
                "{key} missing in {e:#?}"
            );
        }
        assert_eq!(e.len(), 7, "{e:#?}");
    }

    #[test]
    fn optional_sections_may_be_absent() {
        let minimal = r#"
portal: { key_file: k.pem, base_domain: example.org }
state_dir: /var/lib/portal
listen: { https: "[::]:443" }
tls: { cert_file: c.pem, key_file: k.pem }
core: { upstream: "core:8000" }
"#;
        let c = parse(minimal).unwrap();
        assert_eq!(c.home_app, DEFAULT_HOME_APP);
        assert!(
            c.listen_http.is_none() && c.internal_listen.is_none() && c.metrics_listen.is_none()
        );
        assert!(c.upstreams.is_empty());
        assert_eq!(c.server.threads, 2);
    }

    #[test]
    fn host_port_shapes() {
        for ok in [
            "127.0.0.1:1",
            "[::1]:80",
            "web:8080",
            "my_container.local:3000",
        ] {
            ok.parse::<HostPort>()
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "web", "web:", "web:0", ":80", "we b:80", "web:http", "-web:80",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
        assert_eq!(
            "[::1]:80".parse::<HostPort>().unwrap().to_string(),
            "[::1]:80"
        );
    }
}
