//! Names the Portal's state and config use: upstream addresses, DNS names
//! and app names (docs/config.md, docs/state.md).

use std::borrow::Cow;
use std::net::SocketAddr;

/// `s` in ASCII lower case, borrowed when it is already (as nearly every
/// Host and media type a request path compares is): no copy then.
pub fn ascii_lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// An upstream address: an IP socket address, or a host name resolved by DNS
/// through the cache of `dns`, each answer kept for its TTL
/// (containers change addresses when restarted).
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
