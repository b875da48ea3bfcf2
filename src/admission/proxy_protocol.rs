//! PROXY protocol input (HAProxy's PROXY protocol, versions 1 and 2) on
//! the TLS listeners, from `listen.proxy_protocol_from` only
//! (docs/config.md, "Behind a load balancer"): the header a load balancer
//! or Tailscale Funnel sends before the TLS handshake names the client,
//! whose address then counts for the per-client limits, `X-Forwarded-For`
//! and the access log. The header is read exactly, byte by byte where its
//! length is not yet known, so that the TLS bytes after it stay unread;
//! the client it names is the core's (`portal_core::proxy_header`).

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte signature of a version 2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (the specification's 107).
const V1_MAX: usize = 107;
/// The longest version 2 header accepted: its 16 bytes and the largest
/// address block (two Unix paths) with room for TLVs a load balancer adds
/// (AWS, Azure and GCP IDs, SSL details); more is refused.
const V2_MAX_PAYLOAD: usize = 2048;

/// Who may send a PROXY header: `listen.proxy_protocol_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted(pub Vec<IpNet>);

impl Trusted {
    /// Parses one `listen.proxy_protocol_from` entry: an address, or a
    /// network in CIDR form.
    pub fn parse_entry(entry: &str) -> Result<IpNet, String> {
        if let Ok(net) = entry.parse::<IpNet>() {
            return Ok(net.trunc());
        }
        entry
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{entry:?} is neither an IP address nor a network (CIDR)"))
    }

    /// Whether a connection from `ip` must start with a PROXY header.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = portal_core::outbound::canonical_ip(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// Why a connection's PROXY header was not taken (the `result` label of
/// `portal_proxy_proxy_protocol_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadHeader {
    /// A trusted address sent something else first (a TLS ClientHello).
    Missing,
    /// A PROXY header that does not parse, or is over the limits.
    Malformed(String),
    /// The connection ended, or failed, before its header was whole.
    Closed,
}

impl BadHeader {
    pub(crate) fn label(&self) -> crate::observe::metrics::ProxyHeader {
        use crate::observe::metrics::ProxyHeader;
        match self {
            BadHeader::Missing => ProxyHeader::Missing,
            BadHeader::Malformed(_) => ProxyHeader::Malformed,
            BadHeader::Closed => ProxyHeader::Closed,
        }
    }
}

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadHeader::Missing => f.write_str("no PROXY protocol header"),
            BadHeader::Malformed(why) => write!(f, "a malformed PROXY protocol header: {why}"),
            BadHeader::Closed => f.write_str("the connection ended within its PROXY header"),
        }
    }
}

/// Whether the first byte of a connection can start a PROXY header (`P`
/// of version 1, CR of version 2's signature): never the first byte of a
/// TLS record (20 to 23).
pub(crate) fn starts_a_header(first: u8) -> bool {
    first == b'P' || first == b'\r'
}

/// Reads one PROXY header from `stream`, exactly: nothing after it is
/// read. Returns its bytes.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Vec<u8>, BadHeader> {
    let closed = |_| BadHeader::Closed;
    let mut header = vec![0u8; 6];
    stream.read_exact(&mut header).await.map_err(closed)?;
    if header == b"PROXY " {
        // Version 1: a line of at most 107 bytes.
        while !header.ends_with(b"\r\n") {
            if header.len() == V1_MAX {
                return Err(BadHeader::Malformed(format!(
                    "a version 1 header longer than {V1_MAX} bytes"
                )));
            }
            header.push(stream.read_u8().await.map_err(closed)?);
        }
        return Ok(header);
    }
    if header[..] != V2_SIGNATURE[..6] {
        return Err(BadHeader::Missing);
    }
    header.resize(16, 0);
    stream.read_exact(&mut header[6..]).await.map_err(closed)?;
    if header[..12] != V2_SIGNATURE[..] {
        return Err(BadHeader::Malformed("not the version 2 signature".into()));
    }
    let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if length > V2_MAX_PAYLOAD {
        return Err(BadHeader::Malformed(format!(
            "{length} bytes of addresses and TLVs (at most {V2_MAX_PAYLOAD})"
        )));
    }
    header.resize(16 + length, 0);
    stream.read_exact(&mut header[16..]).await.map_err(closed)?;
    Ok(header)
}

/// The client a header names (`portal_core::proxy_header::client`), or
/// `None` when it names none.
pub(crate) fn source(header: &[u8]) -> Result<Option<SocketAddr>, BadHeader> {
    portal_core::proxy_header::client(header).map_err(BadHeader::Malformed)
}

#[cfg(test)]
#[path = "proxy_protocol_tests.rs"]
mod tests;
