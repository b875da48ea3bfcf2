//! Waiting for the TXT records to be seen (docs/certificates.md,
//! "Propagation"): before the CA is asked to validate, every value
//! presented must be visible at `tls.acme.dns_resolvers` (or the system's
//! resolvers), asked every [`POLL`] without a cache, up to
//! `propagation_timeout_seconds`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dns::system::Hickory;
use crate::dns::{LookupError, Settings};

/// How often the records are looked up.
const POLL: Duration = Duration::from_secs(2);

/// Each lookup's bound.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until every `(fqdn, value)` of `records` is visible; the error
/// names what was still missing at the deadline and the last answer.
pub(super) async fn wait_visible(
    resolvers: &[SocketAddr],
    records: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let dns = Hickory::new(&Settings {
        nameservers: resolvers.to_vec(),
        timeout: LOOKUP_TIMEOUT,
        ..Settings::default()
    });
    let deadline = Instant::now() + timeout;
    loop {
        let mut missing = Vec::new();
        for (fqdn, value) in records {
            match dns.txt(fqdn).await {
                Ok(values) if values.iter().any(|v| v == value) => {}
                Ok(values) => missing.push(format!("{fqdn} has {values:?}, not {value:?}")),
                Err(LookupError::NotFound(e) | LookupError::Failed(e)) => {
                    missing.push(format!("{fqdn}: {e}"))
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() + POLL > deadline {
            let at = if resolvers.is_empty() {
                "the system's resolvers".to_string()
            } else {
                resolvers
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "not visible at {at} after {} s: {}",
                timeout.as_secs(),
                missing.join("; ")
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
