//! Running the proxy (README.md, "Operating it"): Prometheus series, the access
//! log, edge limits, TLS certificates and the DNS cache.

pub(crate) mod access_log;
pub mod compress;
pub mod dns;
pub(crate) mod guard;
pub(crate) mod limits;
pub(crate) mod live;
pub mod logging;
pub(crate) mod metrics;
pub mod peer_tls;
pub mod proxy_protocol;
pub mod rate;
pub mod tls;

/// Seconds since the Unix epoch: the one clock the shells read and pass
/// to the pure core.
pub fn unix_now() -> i64 {
    unix_time() as i64
}

/// [`unix_now`] with its fraction.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A fresh signature nonce from the operating system's random source (the
/// core encodes it: [`portal_core::signature::nonce`]).
pub fn fresh_nonce() -> String {
    portal_core::signature::nonce(rand::random())
}
