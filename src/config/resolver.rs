//! Validation of the `resolver:` section: the DNS cache's settings.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::raw;
use super::validate::Validator;
use crate::dns::Settings;

/// Name servers given at most (resolv.conf's limit is 3).
const MAX_NAMESERVERS: usize = 8;

impl Validator {
    /// One number of the section in `range`, else an error naming its key.
    fn resolver_number(
        &mut self,
        key: &str,
        value: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        match value {
            None => default,
            Some(v) if range.contains(&v) => v,
            Some(v) => {
                self.error(
                    format!("resolver.{key}"),
                    format!("{v} is not from {} to {}", range.start(), range.end()),
                );
                default
            }
        }
    }

    pub(super) fn resolver(&mut self, raw: raw::Resolver) -> Settings {
        let d = Settings::default();
        let mut nameservers = Vec::new();
        if let Some(list) = raw.nameservers {
            if list.is_empty() {
                self.error(
                    "resolver.nameservers",
                    "empty: give at least one, or leave the key out for /etc/resolv.conf's",
                );
            }
            if list.len() > MAX_NAMESERVERS {
                self.error(
                    "resolver.nameservers",
                    format!("{} name servers: at most {MAX_NAMESERVERS}", list.len()),
                );
            }
            for (i, value) in list.iter().enumerate() {
                let parsed = value
                    .parse::<SocketAddr>()
                    .or_else(|_| value.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)));
                match parsed {
                    Ok(a) if a.port() != 0 => nameservers.push(a),
                    _ => self.error(
                        format!("resolver.nameservers[{i}]"),
                        format!(
                            "{value:?} is not an IP address, with or without a port (\"127.0.0.11\", \"[::1]:53\")"
                        ),
                    ),
                }
            }
        }
        let min_ttl = self.resolver_number(
            "min_ttl_seconds",
            raw.min_ttl_seconds,
            d.min_ttl.as_secs(),
            1..=3600,
        );
        let max_ttl = self.resolver_number(
            "max_ttl_seconds",
            raw.max_ttl_seconds,
            d.max_ttl.as_secs(),
            1..=86_400,
        );
        if max_ttl < min_ttl {
            self.error(
                "resolver.max_ttl_seconds",
                format!("{max_ttl} is less than resolver.min_ttl_seconds ({min_ttl})"),
            );
        }
        let stale_max = self.resolver_number(
            "stale_answer_max_seconds",
            raw.stale_answer_max_seconds,
            d.stale_max.as_secs(),
            0..=7 * 86_400,
        );
        let timeout_ms = self.resolver_number(
            "timeout_ms",
            raw.timeout_ms,
            d.timeout.as_millis() as u64,
            100..=30_000,
        );
        Settings {
            nameservers,
            min_ttl: Duration::from_secs(min_ttl),
            max_ttl: Duration::from_secs(max_ttl),
            stale_max: Duration::from_secs(stale_max),
            timeout: Duration::from_millis(timeout_ms),
        }
    }
}
