//! PROXY protocol input (HAProxy's PROXY protocol, versions 1 and 2) on
//! the TLS listeners, from `listen.proxy_protocol_from` only
//! (docs/config.md, "Behind a load balancer"): the header a load balancer
//! or Tailscale Funnel sends before the TLS handshake names the client,
//! whose address then counts for the per-client limits, `X-Forwarded-For`
//! and the access log. The header is read exactly, byte by byte where its
//! length is not yet known, so that the TLS bytes after it stay unread;
//! it is parsed by the `ppp` crate.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult};
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
pub(crate) enum Refused {
    /// A trusted address sent something else first (a TLS ClientHello).
    Missing,
    /// A PROXY header that does not parse, or is over the limits.
    Malformed(String),
    /// The connection ended, or failed, before its header was whole.
    Closed,
}

impl Refused {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Refused::Missing => "missing",
            Refused::Malformed(_) => "malformed",
            Refused::Closed => "closed",
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Missing => f.write_str("no PROXY protocol header"),
            Refused::Malformed(why) => write!(f, "a malformed PROXY protocol header: {why}"),
            Refused::Closed => f.write_str("the connection ended within its PROXY header"),
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
pub(crate) async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, Refused> {
    let closed = |_| Refused::Closed;
    let mut header = vec![0u8; 6];
    stream.read_exact(&mut header).await.map_err(closed)?;
    if header == b"PROXY " {
        // Version 1: a line of at most 107 bytes.
        while !header.ends_with(b"\r\n") {
            if header.len() == V1_MAX {
                return Err(Refused::Malformed(format!(
                    "a version 1 header longer than {V1_MAX} bytes"
                )));
            }
            header.push(stream.read_u8().await.map_err(closed)?);
        }
        return Ok(header);
    }
    if header[..] != V2_SIGNATURE[..6] {
        return Err(Refused::Missing);
    }
    header.resize(16, 0);
    stream.read_exact(&mut header[6..]).await.map_err(closed)?;
    if header[..12] != V2_SIGNATURE[..] {
        return Err(Refused::Malformed("not the version 2 signature".into()));
    }
    let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if length > V2_MAX_PAYLOAD {
        return Err(Refused::Malformed(format!(
            "{length} bytes of addresses and TLVs (at most {V2_MAX_PAYLOAD})"
        )));
    }
    header.resize(16 + length, 0);
    stream.read_exact(&mut header[16..]).await.map_err(closed)?;
    Ok(header)
}

/// The client a header names: its source address, or `None` when it names
/// none (version 1 `UNKNOWN`, version 2 `LOCAL`: the load balancer's own
/// connection, a health check; or a Unix or unspecified address).
pub(crate) fn source(header: &[u8]) -> Result<Option<SocketAddr>, Refused> {
    let malformed = |e: &dyn std::fmt::Display| Refused::Malformed(e.to_string());
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
        HeaderResult::V1(Err(e)) => return Err(malformed(&e)),
        HeaderResult::V2(Err(e)) => return Err(malformed(&e)),
    };
    // An IPv4 client written as IPv6 (`::ffff:a.b.c.d`) is that IPv4
    // client, as the rest of the proxy counts it.
    Ok(named.map(|(ip, port)| SocketAddr::new(portal_core::outbound::canonical_ip(ip), port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 header: `command` (0x20 LOCAL, 0x21 PROXY), `family`
    /// byte, and the address block.
    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    fn v2_ipv4(src: [u8; 4], port: u16) -> Vec<u8> {
        let mut a = src.to_vec();
        a.extend_from_slice(&[127, 0, 0, 1]);
        a.extend_from_slice(&port.to_be_bytes());
        a.extend_from_slice(&443u16.to_be_bytes());
        v2(0x21, 0x11, &a)
    }

    fn v2_ipv6(src: std::net::Ipv6Addr, port: u16) -> Vec<u8> {
        let mut a = src.octets().to_vec();
        a.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        a.extend_from_slice(&port.to_be_bytes());
        a.extend_from_slice(&443u16.to_be_bytes());
        v2(0x21, 0x21, &a)
    }

    /// The client a header names, or the refusal's label.
    type Expected = Result<Option<&'static str>, &'static str>;

    /// (header, what it gives)
    fn table() -> Vec<(Vec<u8>, Expected)> {
        let mut with_tlv = v2_ipv4([198, 51, 100, 2], 4000);
        // A PP2_TYPE_AUTHORITY TLV (what AWS and others add), length fixed.
        with_tlv.extend_from_slice(&[0x02, 0x00, 0x03, b'a', b'.', b'b']);
        let len = u16::from_be_bytes([with_tlv[14], with_tlv[15]]) + 6;
        with_tlv[14..16].copy_from_slice(&len.to_be_bytes());
        vec![
            (
                b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n".to_vec(),
                Ok(Some("203.0.113.7:5555")),
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 5555 443\r\n".to_vec(),
                Ok(Some("[2001:db8::1]:5555")),
            ),
            (
                b"PROXY TCP6 ::ffff:203.0.113.11 ::1 5555 443\r\n".to_vec(),
                Ok(Some("203.0.113.11:5555")),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), Ok(None)),
            (
                b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".to_vec(),
                Ok(None),
            ),
            (
                v2_ipv4([203, 0, 113, 9], 1234),
                Ok(Some("203.0.113.9:1234")),
            ),
            (
                v2_ipv6("2001:db8::9".parse().unwrap(), 80),
                Ok(Some("[2001:db8::9]:80")),
            ),
            // An IPv4-mapped IPv6 source is the IPv4 client.
            (
                v2_ipv6("::ffff:203.0.113.10".parse().unwrap(), 80),
                Ok(Some("203.0.113.10:80")),
            ),
            (with_tlv, Ok(Some("198.51.100.2:4000"))),
            (v2(0x20, 0x00, &[]), Ok(None)),
            (v2(0x21, 0x31, &[0u8; 216]), Ok(None)),
            // Malformed: bad addresses, ports, protocols, versions, lengths.
            (
                b"PROXY TCP4 203.0.113.7 127.0.0.1 5555\r\n".to_vec(),
                Err("malformed"),
            ),
            (
                b"PROXY TCP4 2001:db8::1 ::1 5555 443\r\n".to_vec(),
                Err("malformed"),
            ),
            (
                b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 443\r\n".to_vec(),
                Err("malformed"),
            ),
            (
                b"PROXY UDP4 203.0.113.7 127.0.0.1 1 443\r\n".to_vec(),
                Err("malformed"),
            ),
            (
                b"PROXY TCP4 203.0.113.7  127.0.0.1 1 443\r\n".to_vec(),
                Err("malformed"),
            ),
            (v2(0x11, 0x11, &[0u8; 12]), Err("malformed")),
            (v2(0x2f, 0x11, &[0u8; 12]), Err("malformed")),
            (v2(0x21, 0x11, &[0u8; 8]), Err("malformed")),
            (v2(0x21, 0x21, &[0u8; 12]), Err("malformed")),
        ]
    }

    #[test]
    fn headers_name_their_client() {
        for (header, expected) in table() {
            let got = source(&header);
            let shown = String::from_utf8_lossy(&header).into_owned();
            match (got, expected) {
                (Ok(addr), Ok(want)) => {
                    assert_eq!(addr.map(|a| a.to_string()).as_deref(), want, "{shown:?}")
                }
                (Err(e), Err(label)) => assert_eq!(e.label(), label, "{shown:?}"),
                (got, want) => panic!("{shown:?}: {got:?}, expected {want:?}"),
            }
        }
    }

    /// Reads the header from `bytes` followed by a TLS record's first
    /// bytes; returns the header and what was left unread.
    async fn read_then_rest(bytes: &[u8]) -> (Result<Vec<u8>, Refused>, Vec<u8>) {
        let mut input = bytes.to_vec();
        input.extend_from_slice(b"\x16\x03\x01TLS");
        let mut reader = std::io::Cursor::new(input);
        let header = read_header(&mut reader).await;
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        (header, rest)
    }

    #[tokio::test]
    async fn a_header_is_read_exactly_and_the_tls_bytes_stay() {
        for (header, expected) in table() {
            let (read, rest) = read_then_rest(&header).await;
            let shown = String::from_utf8_lossy(&header).into_owned();
            if expected.is_ok() {
                assert_eq!(read.as_ref(), Ok(&header), "{shown:?}");
                assert_eq!(rest, b"\x16\x03\x01TLS", "{shown:?}");
            }
        }
        // The shortest version 1 header (15 bytes) leaves the TLS record whole.
        let (read, rest) = read_then_rest(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(read.unwrap(), b"PROXY UNKNOWN\r\n");
        assert_eq!(rest, b"\x16\x03\x01TLS");
    }

    #[tokio::test]
    async fn what_is_no_header_is_refused_without_reading_on() {
        // A ClientHello straight away: missing.
        let (read, _) = read_then_rest(b"").await;
        assert_eq!(read, Err(Refused::Missing));
        // A version 1 line without its end within 107 bytes.
        let long = format!("PROXY TCP4 {}", "1".repeat(200));
        let (read, rest) = read_then_rest(long.as_bytes()).await;
        assert_eq!(read.unwrap_err().label(), "malformed");
        assert_eq!(rest.len(), 200 + 11 + 6 - V1_MAX, "stopped at 107 bytes");
        // A version 2 signature gone wrong, a length over the limit.
        let mut bad = V2_SIGNATURE.to_vec();
        bad[11] = b'X';
        bad.extend_from_slice(&[0x21, 0x11, 0, 12]);
        assert_eq!(
            read_then_rest(&bad).await.0.unwrap_err().label(),
            "malformed"
        );
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            read_then_rest(&big).await.0.unwrap_err().label(),
            "malformed"
        );
        // Ended inside the header.
        let mut reader = std::io::Cursor::new(b"PROXY TCP4 1.2.3.4".to_vec());
        assert_eq!(read_header(&mut reader).await, Err(Refused::Closed));
    }

    #[test]
    fn only_listed_addresses_and_networks_are_trusted() {
        let trusted = Trusted(
            ["10.1.2.3", "192.168.0.0/16", "fd00::/64", "100.64.0.1/10"]
                .iter()
                .map(|e| Trusted::parse_entry(e).unwrap())
                .collect(),
        );
        for (ip, yes) in [
            ("10.1.2.3", true),
            ("10.1.2.4", false),
            ("192.168.77.1", true),
            ("::ffff:192.168.1.1", true),
            ("fd00::1", true),
            ("fd00:0:0:1::1", false),
            // A host address with a prefix is its network.
            ("100.100.1.1", true),
            ("127.0.0.1", false),
        ] {
            assert_eq!(trusted.trusts(ip.parse().unwrap()), yes, "{ip}");
        }
        for bad in ["10.1.2", "example.org", "10.0.0.0/33", ""] {
            assert!(Trusted::parse_entry(bad).is_err(), "{bad:?}");
        }
        assert!(starts_a_header(b'P') && starts_a_header(b'\r'));
        assert!((20..=23).all(|tls| !starts_a_header(tls)));
    }
}
