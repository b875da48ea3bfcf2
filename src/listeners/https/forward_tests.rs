use super::*;
use proptest::prelude::*;

proptest! {
    /// The address's text is the one `to_string` writes, for every IPv4
    /// and IPv6 address (IPv4-mapped ones included).
    #[test]
    fn ip_text_is_the_address_display(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>(), mapped in any::<bool>()) {
        let v6 = if mapped {
            std::net::Ipv4Addr::from(v4).to_ipv6_mapped()
        } else {
            std::net::Ipv6Addr::from(v6)
        };
        for ip in [IpAddr::from(v4), IpAddr::from(v6)] {
            let mut buf = [0; IP_TEXT_MAX];
            let expected = ip.to_string();
            prop_assert_eq!(ip_text(ip, &mut buf), expected.as_bytes());
        }
    }
}

#[test]
fn the_longest_addresses_fit() {
    for text in [
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::ffff:255.255.255.255",
        "255.255.255.255",
    ] {
        let ip: IpAddr = text.parse().unwrap();
        let mut buf = [0; IP_TEXT_MAX];
        assert_eq!(ip_text(ip, &mut buf), text.as_bytes());
    }
}
