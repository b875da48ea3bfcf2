//! The YAML config file (README.md, "Operating it"), in two layers: [`raw`] serde
//! structs that refuse unknown keys, then [`Config`], validated, with paths
//! resolved against the config file's folder. Every error names its key path
//! and all validation errors are reported at once. Used by `main` only.

#![forbid(unsafe_code)]

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

mod acme;
mod assertion;
mod compression;
pub(crate) mod raw;
mod resolver;
mod validate;

pub use assertion::Assertion;
use portal_core::names::{AppUpstreams, HostPort};
use validate::Validator;

#[derive(Debug, Clone)]
pub struct Limits {
    pub upstream_connect_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub downstream_idle_timeout: Duration,
    pub max_request_header_bytes: usize,
    pub max_request_headers: usize,
    pub max_client_connections: usize,
    /// The share of one client address on the public listeners: its
    /// connections plus its HTTP/2 streams beyond the first of each.
    pub max_connections_per_client: usize,
    /// From accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// A new connection's first byte, and a request head from its first
    /// byte to its end.
    pub request_head_timeout: Duration,
    /// An MQTT relay with no byte either way for this long is closed.
    pub mqtt_idle_timeout: Duration,
    /// A request body must average this many bytes a second once
    /// `min_body_rate_grace` has passed since its start (0: no minimum).
    pub min_body_bytes_per_second: u64,
    pub min_body_rate_grace: Duration,
    /// The request rate limits.
    pub rate: crate::admission::rate::RateSettings,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(300),
            downstream_idle_timeout: Duration::from_secs(60),
            max_request_header_bytes: portal_core::head::DEFAULT_MAX_HEADER_BYTES,
            max_request_headers: portal_core::head::DEFAULT_MAX_HEADERS,
            max_client_connections: crate::admission::limits::default_max_connections(),
            max_connections_per_client: 256,
            handshake_timeout: Duration::from_secs(10),
            request_head_timeout: Duration::from_secs(10),
            mqtt_idle_timeout: Duration::from_secs(600),
            min_body_bytes_per_second: 1024,
            min_body_rate_grace: Duration::from_secs(10),
            rate: crate::admission::rate::RateSettings::default(),
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
    /// Pingora's `work_stealing`: one runtime per service whose threads
    /// take each other's tasks (true), or one runtime per thread.
    pub work_stealing: bool,
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
    /// `listen.proxy_protocol_from`: `None` when empty.
    pub proxy_protocol_from: Option<crate::admission::proxy_protocol::Trusted>,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    /// `tls.acme`: the certificate obtained and renewed by ACME.
    pub acme: Option<crate::acme::Settings>,
    pub home_app: String,
    pub core_upstream: HostPort,
    pub upstreams: BTreeMap<String, AppUpstreams>,
    pub internal_listen: Option<SocketAddr>,
    pub peering: Peering,
    pub metrics_listen: Option<SocketAddr>,
    pub server: ServerSettings,
    pub limits: Limits,
    pub access_log: crate::observe::access_log::Sink,
    /// The DNS cache of upstream names (`resolver:`).
    pub resolver: crate::dns::Settings,
    /// Response compression (`compression:`).
    pub compression: crate::compress::Settings,
    /// The identity assertion (`assertion:`).
    pub assertion: Assertion,
}

/// Peer request settings (docs/signing.md; docs/peering.md).
#[derive(Debug, Clone)]
pub struct Peering {
    /// Extra trust roots for peer Portals' certificates.
    pub ca_file: Option<PathBuf>,
    pub window: portal_core::signature::Window,
    /// Largest signed request body buffered for its digest check.
    pub max_signed_body: usize,
    /// Live nonces kept per peer by the replay cache (at most; the
    /// cache's memory budget is shared among peers).
    pub replay_cache_per_peer: usize,
    /// Signed bodies held for their digest check, all requests together.
    pub max_held_bodies: usize,
    /// Whether a peer's answer must carry a valid response signature.
    pub require_response_signature: bool,
    /// Which peers' TLS is pinned to their identity key.
    pub transports: portal_core::transport::Transports,
}

/// Default of `peering.max_held_bodies_bytes`: 64 MiB.
pub const DEFAULT_MAX_HELD_BODIES: usize = 64 * 1024 * 1024;

/// Default of `peering.max_signed_body_bytes`: 8 MiB.
pub const DEFAULT_MAX_SIGNED_BODY: usize = 8 * 1024 * 1024;

/// Default of `server.work_stealing` (docs/config.md, "Threads").
pub const DEFAULT_WORK_STEALING: bool = true;

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

#[cfg(test)]
mod tests;
