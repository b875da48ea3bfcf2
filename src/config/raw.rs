//! The serde layer of the config: the file as written, unknown keys
//! refused. [`super::Config`] is built from it by validation.

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
    #[serde(default)]
    pub max_held_bodies_bytes: Option<u64>,
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
    #[serde(default)]
    pub max_connections_per_client: Option<usize>,
    #[serde(default)]
    pub handshake_timeout_seconds: Option<f64>,
    #[serde(default)]
    pub request_head_timeout_seconds: Option<f64>,
    #[serde(default)]
    pub mqtt_idle_timeout_seconds: Option<f64>,
}
