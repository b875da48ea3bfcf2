//! The serde layer of the config: the file as written, unknown keys
//! refused. [`super::Config`] is built from it by validation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The Portal's identity and domain.
    pub portal: Portal,
    /// What the Portal core writes (apps, terminals, peers); must exist. Relative to this file.
    pub state_dir: String,
    /// Listening addresses (ip:port).
    pub listen: Listen,
    /// The wildcard certificate (PEM, leaf first) and its key, reloaded when they change.
    pub tls: Tls,
    /// The app served on the Portal's own domain (default web-terminal).
    #[serde(default)]
    pub home_app: Option<String>,
    /// The Portal core.
    pub core: Core,
    /// Per app: host:port, or {http, mqtt}, in place of container_name:container_port.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    /// The internal listener for outbound peering (plain HTTP, apps' network only).
    #[serde(default)]
    pub internal: Option<Listener>,
    /// Peer request signatures.
    #[serde(default)]
    pub peering: Option<Peering>,
    /// The Prometheus and health-check listener (keep it private).
    #[serde(default)]
    pub metrics: Option<Listener>,
    /// Pingora server settings.
    #[serde(default)]
    pub server: Option<Server>,
    /// Edge limits and timeouts.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The JSON access log.
    #[serde(default)]
    pub access_log: Option<AccessLog>,
    /// How upstream names are looked up and cached (default: the system's resolver).
    #[serde(default)]
    pub resolver: Option<Resolver>,
    /// Compression of the apps' answers (default: on).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// The signed identity assertion sent to apps and the core (default: on).
    #[serde(default)]
    pub assertion: Option<Assertion>,
}

/// The identity assertion: an EdDSA JWT naming the caller, beside the identity headers.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Assertion {
    /// false: no assertion is sent (true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The request header that carries it (X-Ptl-Assertion).
    #[serde(default)]
    pub header: Option<String>,
    /// Its lifetime, 3 to 60 seconds (60).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// Response compression: zstd, br or gzip by the client's Accept-Encoding.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Compression {
    /// false: every answer goes as the app sent it (true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Smallest body compressed when its length is known, in bytes (1024).
    #[serde(default)]
    pub min_bytes: Option<usize>,
    /// Answers compressed at once, at most; past it answers go uncompressed (32).
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// gzip level, 1 to 9.
    #[serde(default)]
    pub gzip_level: Option<usize>,
    /// Brotli level, 1 to 11.
    #[serde(default)]
    pub brotli_level: Option<usize>,
    /// zstd level, 1 to 19.
    #[serde(default)]
    pub zstd_level: Option<usize>,
}

/// The DNS cache of upstream names.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resolver {
    /// Name servers (ip or ip:port, port 53 by default) in place of /etc/resolv.conf's.
    #[serde(default)]
    pub nameservers: Option<Vec<String>>,
    /// Shortest time an answer is kept, whatever its TTL; also how often a failing resolver is asked again (1).
    #[serde(default)]
    pub min_ttl_seconds: Option<u64>,
    /// Longest time an answer is kept, whatever its TTL (300).
    #[serde(default)]
    pub max_ttl_seconds: Option<u64>,
    /// While the resolver fails, the last good answer is served for this long after its TTL (86400; 0: never).
    #[serde(default)]
    pub stale_answer_max_seconds: Option<u64>,
    /// Longest wait for one lookup, in milliseconds (2000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Where the access log goes: standard output unless `file` is given;
/// nowhere with `enabled: false`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessLog {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Portal {
    /// The Portal's ed25519 identity key, PKCS#8 PEM.
    pub key_file: String,
    /// The Portal's domain is <short_id>.<base_domain>.
    pub base_domain: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Listen {
    /// ip:port of the TLS listener.
    pub https: String,
    /// ip:port answering 308 to https for the Portal's hosts.
    #[serde(default)]
    pub http: Option<String>,
    /// ip:port of MQTT over TLS, the app chosen by SNI.
    #[serde(default)]
    pub mqtts: Option<String>,
    /// Addresses or networks (CIDR) of load balancers whose connections to
    /// the TLS listeners start with a PROXY protocol header (v1 or v2)
    /// naming the client; a PROXY header from any other address is refused.
    #[serde(default)]
    pub proxy_protocol_from: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tls {
    /// The certificate chain, leaf first (PEM); written by ACME when
    /// `acme` is set.
    pub cert_file: String,
    /// Its private key (PEM); written by ACME (mode 0600) when `acme` is set.
    pub key_file: String,
    /// Obtain and renew the certificate by ACME DNS-01 (docs/certificates.md).
    #[serde(default)]
    pub acme: Option<Acme>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Acme {
    /// The CA's ACME directory URL (https); Let's Encrypt's by default.
    #[serde(default)]
    pub directory: Option<String>,
    /// Extra trust roots (PEM) for the directory's HTTPS.
    #[serde(default)]
    pub directory_ca_file: Option<String>,
    /// The ACME account's credentials, made on first use (mode 0600);
    /// `acme-account.json` beside `tls.cert_file` by default.
    #[serde(default)]
    pub account_file: Option<String>,
    /// A contact address given to the CA (mailto:).
    #[serde(default)]
    pub email: Option<String>,
    /// ip:port of DNS servers where the TXT record must be visible before
    /// validation (default: the system's resolvers).
    #[serde(default)]
    pub dns_resolvers: Vec<String>,
    /// Names ordered besides `<short_id>.<base_domain>` and its wildcard.
    #[serde(default)]
    pub extra_names: Vec<String>,
    /// The certificate's key: `ecdsa-p256` (default) or `ecdsa-p384`.
    #[serde(default)]
    pub key_type: Option<String>,
    /// How long the TXT record may take to be visible (default 120).
    #[serde(default)]
    pub propagation_timeout_seconds: Option<f64>,
    /// The wait after a first failed order, doubled after each (default
    /// 60, at most 6 hours between attempts).
    #[serde(default)]
    pub retry_initial_seconds: Option<f64>,
    /// Orders at most in any hour (default 5).
    #[serde(default)]
    pub max_orders_per_hour: Option<usize>,
    /// Who sets the _acme-challenge TXT record: exactly one solver.
    pub dns01: Dns01,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dns01 {
    /// The Portal's controller, asked by requests signed with the identity key.
    #[serde(default)]
    pub portal_controller: Option<PortalController>,
    /// lego's httpreq: POST <url>/present and <url>/cleanup.
    #[serde(default)]
    pub httpreq: Option<HttpReq>,
    /// lego's exec: <command...> present|cleanup <fqdn> <value>.
    #[serde(default)]
    pub exec: Option<Exec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortalController {
    /// https URL; the proxy POSTs to <url>/present and <url>/cleanup.
    pub url: String,
    /// Extra trust roots (PEM) for the controller's HTTPS.
    #[serde(default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpReq {
    /// http(s) URL; the proxy POSTs to <url>/present and <url>/cleanup.
    pub url: String,
    /// Basic auth user name.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the basic auth password.
    #[serde(default)]
    pub password_file: Option<String>,
    /// Extra trust roots (PEM) for the URL's HTTPS.
    #[serde(default)]
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Exec {
    /// The program and its first arguments; present|cleanup, the FQDN and
    /// the value are appended.
    pub command: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Core {
    /// host:port of the Portal core.
    pub upstream: String,
}

/// `myapp: host:port` or `myapp: {http: host:port, mqtt: host:port}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a \"host:port\" string or a map with keys http and/or mqtt"
)]
pub(crate) enum Upstream {
    Http(String),
    Split(SplitUpstream),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitUpstream {
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub mqtt: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Listener {
    /// ip:port to listen on.
    pub listen: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Peering {
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
    #[serde(default)]
    pub require_response_signature: Option<bool>,
    /// TLS with peers: pinned (both Portals prove their identity key, no certificate authority; the default) or ca (the peer's certificate verified against the system roots and ca_file).
    #[serde(default)]
    pub transport: Option<Transport>,
    /// Exceptions to transport, by the peer's full Portal ID.
    #[serde(default)]
    pub peer_transport: Option<BTreeMap<String, Transport>>,
}

/// The TLS of peer calls, both ways.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    Pinned,
    Ca,
}

impl From<Transport> for portal_core::transport::Transport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Pinned => portal_core::transport::Transport::Pinned,
            Transport::Ca => portal_core::transport::Transport::Ca,
        }
    }
}

/// Pingora server settings exposed to operators.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Server {
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
    /// true: a service's threads share one runtime and take each other's tasks; false: a runtime per thread, each connection staying on the thread that accepted it (docs/config.md, "Threads").
    #[serde(default)]
    pub work_stealing: Option<bool>,
}

/// Edge limits; each absent one takes its default (README.md, "Operating it").
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
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
    #[serde(default)]
    pub min_body_bytes_per_second: Option<usize>,
    #[serde(default)]
    pub min_body_rate_grace_seconds: Option<f64>,
    /// Requests a second from one client address (IPv6: its /64) that is not signed in; 429 beyond (200; 0: no limit).
    #[serde(default)]
    pub anonymous_requests_per_second: Option<usize>,
    /// Requests a second from one peer Portal; 429 beyond (100; 0: no limit).
    #[serde(default)]
    pub peer_requests_per_second: Option<usize>,
    /// Failed authentications a minute from one client address, after which it gets 429 for one to two minutes, but for requests that authenticate (30; 0: no limit).
    #[serde(default)]
    pub failed_authentications_per_minute: Option<usize>,
}
