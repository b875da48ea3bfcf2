//! The client a PROXY protocol header names (HAProxy's PROXY protocol,
//! versions 1 and 2; docs/config.md, "Behind a load balancer"), parsed by
//! the `ppp` crate. The shell reads the header's bytes exactly from the
//! connection (`admission::proxy_protocol`); what they name is decided
//! here.

use std::net::{IpAddr, SocketAddr};

use ppp::{v1, v2, HeaderResult};

use super::outbound::canonical_ip;

/// The client a whole header names: its source address, or `None` when
/// it names none (version 1 `UNKNOWN`, version 2 `LOCAL`: the load
/// balancer's own connection, a health check; or a Unix or unspecified
/// address). An IPv4 client written as IPv6 (`::ffff:a.b.c.d`) is that
/// IPv4 client, as the rest of the proxy counts it. The error says why
/// the header is malformed.
pub fn client(header: &[u8]) -> Result<Option<SocketAddr>, String> {
    let named: Option<(IpAddr, u16)> = match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => match h.addresses {
            v1::Addresses::Tcp4(a) => Some((a.source_address.into(), a.source_port)),
            v1::Addresses::Tcp6(a) => Some((a.source_address.into(), a.source_port)),
            v1::Addresses::Unknown => None,
        },
        HeaderResult::V2(Ok(h)) => match (h.command, h.addresses) {
            (v2::Command::Local, _) => None,
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                Some((a.source_address.into(), a.source_port))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                Some((a.source_address.into(), a.source_port))
            }
            (v2::Command::Proxy, v2::Addresses::Unix(_) | v2::Addresses::Unspecified) => None,
        },
        HeaderResult::V1(Err(e)) => return Err(e.to_string()),
        HeaderResult::V2(Err(e)) => return Err(e.to_string()),
    };
    Ok(named.map(|(ip, port)| SocketAddr::new(canonical_ip(ip), port)))
}
