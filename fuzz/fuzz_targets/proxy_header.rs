//! The client a PROXY protocol header names: never a panic, and a named
//! client is never an IPv4-mapped IPv6 address (it counts as the IPv4
//! client it is).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_core::proxy_header::client;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(addr)) = client(data) {
        if let std::net::IpAddr::V6(v6) = addr.ip() {
            assert!(v6.to_ipv4_mapped().is_none(), "{addr} names an IPv4 client as IPv6");
        }
    }
});
