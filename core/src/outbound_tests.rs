use super::*;

#[test]
fn calls() {
    let cases: &[(&str, &str, Result<Call, CallError>)] = &[
        ("GET", "/internal/peers", Ok(Call::ListPeers)),
        ("GET", "/internal/assertion-keys", Ok(Call::AssertionKeys)),
        (
            "HEAD",
            "/internal/assertion-keys",
            Err(CallError::NotServed("use GET /internal/assertion-keys")),
        ),
        (
            "POST",
            "/internal/peers",
            Err(CallError::NotServed("use GET /internal/peers")),
        ),
        (
            "POST",
            "/internal/call_peer/abcdef/api/x",
            Ok(Call::Peer {
                peer_ref: "abcdef",
                path: "api/x",
            }),
        ),
        (
            "GET",
            "/internal/call_peer/abcdef",
            Ok(Call::Peer {
                peer_ref: "abcdef",
                path: "",
            }),
        ),
    ];
    for (method, path, want) in cases {
        assert_eq!(&parse_call(method, path), want, "{method} {path}");
    }
    // Everything else is the core's.
    for path in [
        "/",
        "/protected/peers",
        "/internal/peersx",
        "/internal/assertion-keys/",
        "/internal/assertion-keysx",
        "/internal/call_peer",
        "/core/x",
    ] {
        assert_eq!(parse_call("GET", path), Ok(Call::Core), "{path}");
    }
}

#[test]
fn the_caller_is_known_by_its_source_address() {
    let mut addresses = HashMap::new();
    addresses.insert("172.20.0.5".parse().unwrap(), "files".to_string());
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(calling_app(&addresses, ip("172.20.0.5")), Ok("files"));
    assert_eq!(
        calling_app(&addresses, ip("::ffff:172.20.0.5")),
        Ok("files")
    );
    assert_eq!(
        calling_app(&addresses, ip("172.20.0.6")),
        Err(CallError::UnknownSource(ip("172.20.0.6")))
    );
    assert_eq!(
        calling_app(&addresses, None).unwrap_err().to_string(),
        "source address unknown is no app's (app_addresses.json)"
    );
}

#[test]
fn headers_to_a_peer() {
    let mut h = http::HeaderMap::new();
    for (k, v) in [
        ("host", "internal:8080"),
        ("cookie", "a=b"),
        ("authorization", "Bearer x"),
        ("x-ptl-client-id", "spoof"),
        ("x_ptl_user", "spoof"),
        ("connection", "keep-alive, x-private"),
        ("x-private", "hop"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("content-length", "5"),
        ("signature", "old"),
        ("content-type", "application/json"),
        ("accept", "*/*"),
        ("x-custom", "kept"),
    ] {
        h.append(k, v.parse().unwrap());
    }
    let out = end_to_end(&h, true);
    let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(names, ["accept", "content-type", "x-custom"]);
    // Back to the app: only hop-by-hop goes.
    let back = end_to_end(&h, false);
    assert!(back.contains_key("cookie") && back.contains_key("content-length"));
    assert!(!back.contains_key("x-private") && !back.contains_key("transfer-encoding"));
}

#[test]
fn ipv4_mapped_sources_are_ipv4() {
    let mapped: IpAddr = "::ffff:172.20.0.5".parse().unwrap();
    assert_eq!(
        canonical_ip(mapped),
        "172.20.0.5".parse::<IpAddr>().unwrap()
    );
    let v6: IpAddr = "fd00::5".parse().unwrap();
    assert_eq!(canonical_ip(v6), v6);
}
