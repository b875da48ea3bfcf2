//! Tests of the config's two layers.

use super::*;

const FULL: &str = r#"
portal:
  key_file: identity.pem
  base_domain: P.GetPortal.org
state_dir: state
listen:
  https: 0.0.0.0:443
  http: 0.0.0.0:80
  mqtts: 0.0.0.0:8883
tls: { cert_file: cert.pem, key_file: /etc/keys/key.pem }
home_app: web-terminal
core: { upstream: 127.0.0.1:8000 }
upstreams:
  myapp: 127.0.0.1:9000
  mosquitto: { http: 127.0.0.1:9001, mqtt: 127.0.0.1:1883 }
  dns-app: web:8080
internal: { listen: 127.0.0.1:8080 }
peering: { ca_file: ca.pem }
metrics: { listen: 127.0.0.1:9090 }
server: { threads: 2 }
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("/etc/portal-proxy/portal-proxy.yaml"))
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("config must be refused")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn design_example_parses() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.key_file, Path::new("/etc/portal-proxy/identity.pem"));
    assert_eq!(c.tls_key_file, Path::new("/etc/keys/key.pem"));
    assert_eq!(c.state_dir, Path::new("/etc/portal-proxy/state"));
    assert_eq!(c.base_domain, "p.getportal.org");
    assert_eq!(c.listen_https.port(), 443);
    assert_eq!(
        c.upstreams["myapp"].http.as_ref().unwrap().to_string(),
        "127.0.0.1:9000"
    );
    assert_eq!(c.upstreams["mosquitto"].mqtt.as_ref().unwrap().port, 1883);
    assert_eq!(c.upstreams["dns-app"].http.as_ref().unwrap().host, "web");
    assert_eq!(
        c.peering.ca_file.as_deref(),
        Some(Path::new("/etc/portal-proxy/ca.pem"))
    );
    assert_eq!(c.peering.window.skew, 5);
    assert_eq!(c.peering.window.max_validity, 300);
    assert_eq!(c.peering.max_signed_body, 8 * 1024 * 1024);
    assert_eq!(c.server.threads, 2);
    assert_eq!(c.limits.upstream_connect_timeout, Duration::from_secs(5));
    assert_eq!(c.access_log, crate::observe::access_log::Sink::Stdout);
    let c = parse(&format!("{FULL}access_log: {{ file: log/access.log }}\n")).unwrap();
    assert_eq!(
        c.access_log,
        crate::observe::access_log::Sink::File(PathBuf::from("/etc/portal-proxy/log/access.log"))
    );
    let c = parse(&format!("{FULL}access_log: {{ enabled: false }}\n")).unwrap();
    assert_eq!(c.access_log, crate::observe::access_log::Sink::Off);
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let e = errors(&FULL.replace(
        "server: { threads: 2 }",
        "server: { threads: 2, thread: 3 }",
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("server.thread: unknown field `thread`"),
        "{e:?}"
    );
    let e = errors(&format!("{FULL}\nextra: 1\n"));
    assert!(e[0].contains("unknown field `extra`"), "{e:?}");
    let e = errors(&FULL.replace(
        "  mqtts: 0.0.0.0:8883",
        "  mqtts: 0.0.0.0:8883\n  h3: 0.0.0.0:443",
    ));
    assert!(e[0].starts_with("listen.h3: unknown field `h3`"), "{e:?}");
}

#[test]
fn missing_and_mistyped_keys_name_their_path() {
    let e = errors(&FULL.replace("  key_file: identity.pem\n", ""));
    assert!(
        e[0].contains("portal") && e[0].contains("key_file"),
        "{e:?}"
    );
    let e = errors(&FULL.replace("threads: 2", "threads: two"));
    assert!(e[0].starts_with("server.threads:"), "{e:?}");
    let e = errors(&FULL.replace("myapp: 127.0.0.1:9000", "myapp: [1, 2]"));
    assert!(e[0].starts_with("upstreams.myapp:"), "{e:?}");
}

#[test]
fn every_validation_error_is_reported_at_once() {
    let bad = FULL
        .replace("https: 0.0.0.0:443", "https: localhost:443")
        .replace("127.0.0.1:8000", "127.0.0.1")
        .replace("myapp: 127.0.0.1:9000", "MyApp: 127.0.0.1:9000")
        .replace("threads: 2", "threads: 0")
        .replace("P.GetPortal.org", "p..org")
        .replace("mqtt: 127.0.0.1:1883", "mqtt: 127.0.0.1:99999")
        .replace("127.0.0.1:9090", "127.0.0.1:8080");
    let e = errors(&bad);
    for key in [
        "listen.https:",
        "core.upstream:",
        "upstreams.MyApp:",
        "server.threads:",
        "portal.base_domain:",
        "upstreams.mosquitto.mqtt:",
        "metrics.listen: 127.0.0.1:8080 is already used by internal.listen",
    ] {
        assert!(
            e.iter().any(|m| m.starts_with(key)),
            "{key} missing in {e:#?}"
        );
    }
    assert_eq!(e.len(), 7, "{e:#?}");
}

#[test]
fn optional_sections_may_be_absent() {
    let minimal = r#"
portal: { key_file: k.pem, base_domain: example.org }
state_dir: /var/lib/portal
listen: { https: "[::]:443" }
tls: { cert_file: c.pem, key_file: k.pem }
core: { upstream: "core:8000" }
"#;
    let c = parse(minimal).unwrap();
    assert_eq!(c.home_app, DEFAULT_HOME_APP);
    assert!(c.listen_http.is_none() && c.internal_listen.is_none() && c.metrics_listen.is_none());
    assert!(c.upstreams.is_empty());
    assert_eq!(c.server.threads, 2);
}

#[test]
fn host_port_shapes() {
    for ok in [
        "127.0.0.1:1",
        "[::1]:80",
        "web:8080",
        "my_container.local:3000",
    ] {
        ok.parse::<HostPort>()
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "web", "web:", "web:0", ":80", "we b:80", "web:http", "-web:80",
    ] {
        assert!(bad.parse::<HostPort>().is_err(), "{bad}");
    }
    assert_eq!(
        "[::1]:80".parse::<HostPort>().unwrap().to_string(),
        "[::1]:80"
    );
}

#[test]
fn resolver_defaults_and_overrides() {
    let d = parse(FULL).unwrap().resolver;
    assert_eq!(d, crate::dns::Settings::default());
    assert!(d.nameservers.is_empty());
    assert_eq!(d.min_ttl, Duration::from_secs(1));
    assert_eq!(d.max_ttl, Duration::from_secs(300));
    assert_eq!(d.stale_max, Duration::from_secs(86_400));
    assert_eq!(d.timeout, Duration::from_millis(2000));
    let c = parse(&format!(
        "{FULL}resolver: {{ nameservers: [\"127.0.0.11\", \"[::1]:5353\"], min_ttl_seconds: 5, \
         max_ttl_seconds: 60, stale_answer_max_seconds: 0, timeout_ms: 500 }}\n"
    ))
    .unwrap()
    .resolver;
    assert_eq!(
        c.nameservers,
        vec![
            "127.0.0.11:53".parse::<SocketAddr>().unwrap(),
            "[::1]:5353".parse().unwrap()
        ]
    );
    assert_eq!(c.min_ttl, Duration::from_secs(5));
    assert_eq!(c.max_ttl, Duration::from_secs(60));
    assert_eq!(c.stale_max, Duration::ZERO);
    assert_eq!(c.timeout, Duration::from_millis(500));
}

#[test]
fn resolver_mistakes_name_their_key() {
    let e = errors(&format!(
        "{FULL}resolver: {{ nameservers: [\"dns.example.org\", \"127.0.0.1:0\"], min_ttl_seconds: 0, \
         max_ttl_seconds: 100000, timeout_ms: 5 }}\n"
    ));
    assert_eq!(
        e,
        vec![
            "resolver.nameservers[0]: \"dns.example.org\" is not an IP address, with or without a port (\"127.0.0.11\", \"[::1]:53\")",
            "resolver.nameservers[1]: \"127.0.0.1:0\" is not an IP address, with or without a port (\"127.0.0.11\", \"[::1]:53\")",
            "resolver.min_ttl_seconds: 0 is not from 1 to 3600",
            "resolver.max_ttl_seconds: 100000 is not from 1 to 86400",
            "resolver.timeout_ms: 5 is not from 100 to 30000",
        ]
    );
    let e = errors(&format!(
        "{FULL}resolver: {{ min_ttl_seconds: 60, max_ttl_seconds: 30 }}\n"
    ));
    assert_eq!(
        e,
        vec!["resolver.max_ttl_seconds: 30 is less than resolver.min_ttl_seconds (60)"]
    );
    let e = errors(&format!("{FULL}resolver: {{ nameservers: [] }}\n"));
    assert!(e[0].starts_with("resolver.nameservers: empty"), "{e:?}");
    let e = errors(&format!("{FULL}resolver: {{ ttl: 5 }}\n"));
    assert!(
        e[0].starts_with("resolver.ttl: unknown field `ttl`"),
        "{e:?}"
    );
}

#[test]
fn peer_transport_defaults_to_pinned_with_exceptions_by_portal_id() {
    use portal_core::transport::Transport;
    let c = parse(FULL).unwrap();
    assert_eq!(c.peering.transports.default, Transport::Pinned);
    assert!(c.peering.transports.by_peer.is_empty());
    let id = portal_core::identity::portal_id(&[7; 32]);
    let full = FULL.replace(
        "peering: { ca_file: ca.pem }",
        &format!(
            "peering: {{ ca_file: ca.pem, transport: ca, peer_transport: {{ {id}: pinned }} }}"
        ),
    );
    let c = parse(&full).unwrap();
    assert_eq!(c.peering.transports.default, Transport::Ca);
    assert_eq!(c.peering.transports.of(&id), Transport::Pinned);
    assert_eq!(c.peering.transports.of("other"), Transport::Ca);
    // Not a Portal ID (a short ID is not enough), not a transport.
    let e = errors(&FULL.replace(
        "peering: { ca_file: ca.pem }",
        "peering: { peer_transport: { b2blla: ca } }",
    ));
    assert_eq!(
        e,
        vec!["peering.peer_transport.b2blla: not a full Portal ID (103 characters, as in peers.json)"]
    );
    let e = errors(&FULL.replace(
        "peering: { ca_file: ca.pem }",
        "peering: { transport: tofu }",
    ));
    assert!(
        e[0].starts_with("peering.transport: unknown variant `tofu`"),
        "{e:?}"
    );
}

#[test]
fn proxy_protocol_sources_are_addresses_or_networks() {
    let with = |list: &str| {
        FULL.replace(
            "  mqtts: 0.0.0.0:8883",
            &format!("  mqtts: 0.0.0.0:8883\n  proxy_protocol_from: {list}"),
        )
    };
    let c = parse(&with(r#"["10.0.0.5", "fd00::/64", "100.64.0.0/10"]"#)).unwrap();
    let trusted = c.proxy_protocol_from.unwrap();
    assert_eq!(trusted.0.len(), 3);
    assert!(parse(FULL).unwrap().proxy_protocol_from.is_none());
    assert!(parse(&with("[]")).unwrap().proxy_protocol_from.is_none());
    let errors = errors(&with(r#"["10.0.0.5", "lb.example.org", "10.0.0.0/40"]"#));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("listen.proxy_protocol_from[1]")
            && errors[0].contains("lb.example.org"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("listen.proxy_protocol_from[2]"),
        "{errors:?}"
    );
}

#[test]
fn assertion_defaults_and_overrides() {
    let c = parse(FULL).unwrap();
    assert!(c.assertion.enabled);
    assert_eq!(c.assertion.header.as_str(), "x-ptl-assertion");
    assert_eq!(c.assertion.ttl_seconds, 60);
    let c = parse(&format!(
        "{FULL}assertion: {{ enabled: false, header: Cf_Access_Jwt_Assertion, ttl_seconds: 3 }}\n"
    ))
    .unwrap();
    assert!(!c.assertion.enabled);
    // Any spelling names one header: stored as it is compared.
    assert_eq!(c.assertion.header.as_str(), "cf-access-jwt-assertion");
    assert_eq!(c.assertion.ttl_seconds, 3);
}

#[test]
fn assertion_mistakes_name_their_key() {
    let cases = [
        ("header: \"X Ptl\"", "assertion.header: \"X Ptl\" is not a header name"),
        ("header: \"\"", "assertion.header: \"\" is not a header name"),
        ("header: Cookie", "assertion.header: \"Cookie\" is a header the proxy or HTTP uses for something else"),
        ("header: X_Forwarded_User", "assertion.header: \"X_Forwarded_User\" is a header the proxy or HTTP uses for something else"),
        ("header: Forwarded", "assertion.header: \"Forwarded\" is a header the proxy or HTTP uses for something else"),
        ("header: X-Real-IP", "assertion.header: \"X-Real-IP\" is a header the proxy or HTTP uses for something else"),
        ("header: X-Ptl-Client-Id", "assertion.header: \"X-Ptl-Client-Id\" is a header the proxy or HTTP uses for something else"),
        ("header: Authorization", "assertion.header: \"Authorization\" is a header the proxy or HTTP uses for something else"),
        ("ttl_seconds: 2", "assertion.ttl_seconds: 2 is not from 3 to 60"),
        ("ttl_seconds: 61", "assertion.ttl_seconds: 61 is not from 3 to 60"),
    ];
    for (entry, want) in cases {
        let e = errors(&format!("{FULL}assertion: {{ {entry} }}\n"));
        assert_eq!(e.len(), 1, "{entry}: {e:?}");
        assert!(e[0].starts_with(want), "{entry}: {e:?}");
    }
    let e = errors(&format!("{FULL}assertion: {{ ttl: 5 }}\n"));
    assert!(
        e[0].starts_with("assertion.ttl: unknown field `ttl`"),
        "{e:?}"
    );
}
