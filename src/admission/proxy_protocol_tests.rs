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
            (Err(e), Err(label)) => assert_eq!(e.label().as_str(), label, "{shown:?}"),
            (got, want) => panic!("{shown:?}: {got:?}, expected {want:?}"),
        }
    }
}

/// Reads the header from `bytes` followed by a TLS record's first
/// bytes; returns the header and what was left unread.
async fn read_then_rest(bytes: &[u8]) -> (Result<Vec<u8>, BadHeader>, Vec<u8>) {
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
    assert_eq!(read, Err(BadHeader::Missing));
    // A version 1 line without its end within 107 bytes.
    let long = format!("PROXY TCP4 {}", "1".repeat(200));
    let (read, rest) = read_then_rest(long.as_bytes()).await;
    assert_eq!(read.unwrap_err().label().as_str(), "malformed");
    assert_eq!(rest.len(), 200 + 11 + 6 - V1_MAX, "stopped at 107 bytes");
    // A version 2 signature gone wrong, a length over the limit.
    let mut bad = V2_SIGNATURE.to_vec();
    bad[11] = b'X';
    bad.extend_from_slice(&[0x21, 0x11, 0, 12]);
    assert_eq!(
        read_then_rest(&bad).await.0.unwrap_err().label().as_str(),
        "malformed"
    );
    let mut big = V2_SIGNATURE.to_vec();
    big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(
        read_then_rest(&big).await.0.unwrap_err().label().as_str(),
        "malformed"
    );
    // Ended inside the header.
    let mut reader = std::io::Cursor::new(b"PROXY TCP4 1.2.3.4".to_vec());
    assert_eq!(read_header(&mut reader).await, Err(BadHeader::Closed));
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
