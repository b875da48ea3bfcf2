//! The config's JSON Schema (`portal-proxy config-schema`, shipped as
//! `conf/portal-proxy.schema.json`): current with the code, and the shipped
//! config is valid under it while mistakes are not.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_schema() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("conf/portal-proxy.schema.json")).unwrap(),
    )
    .unwrap()
}

fn yaml(text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn the_shipped_schema_is_the_one_the_binary_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_portal-proxy"))
        .arg("config-schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed,
        shipped_schema(),
        "conf/portal-proxy.schema.json is stale: run `portal-proxy config-schema > conf/portal-proxy.schema.json`"
    );
}

#[test]
fn the_shipped_config_is_valid_and_mistakes_are_not() {
    let validator = jsonschema::validator_for(&shipped_schema()).unwrap();
    let shipped = std::fs::read_to_string(root().join("conf/portal-proxy.yaml")).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&yaml(&shipped))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // Every key the proxy reads, set.
    let full = r#"
portal: { key_file: k.pem, base_domain: p.example.org }
state_dir: state
listen: { https: "0.0.0.0:443", http: "0.0.0.0:80", mqtts: "0.0.0.0:8883" }
tls: { cert_file: c.pem, key_file: k.pem }
home_app: web-terminal
core: { upstream: "127.0.0.1:8000" }
upstreams: { a: "127.0.0.1:9000", b: { http: "127.0.0.1:9001", mqtt: "127.0.0.1:1883" } }
internal: { listen: "127.0.0.1:8080" }
metrics: { listen: "127.0.0.1:9090" }
peering: { ca_file: ca.pem, clock_skew_seconds: 5, max_signature_validity_seconds: 300,
           max_signed_body_bytes: 8388608, replay_cache_per_peer: 50000, max_held_bodies_bytes: 67108864 }
limits: { upstream_connect_timeout_seconds: 5, max_connections_per_client: 256, handshake_timeout_seconds: 10,
          request_head_timeout_seconds: 10, mqtt_idle_timeout_seconds: 600 }
access_log: { file: access.log }
resolver: { nameservers: ["127.0.0.11", "127.0.0.1:5353"], min_ttl_seconds: 1, max_ttl_seconds: 300,
            stale_answer_max_seconds: 86400, timeout_ms: 2000 }
"#;
    assert!(validator.is_valid(&yaml(full)));
    for (mistake, text) in [
        ("an unknown key", full.replace("home_app:", "home_ap:")),
        (
            "an unknown nested key",
            full.replace("handshake_timeout_seconds", "handshake_timeout"),
        ),
        (
            "a missing required key",
            full.replace("core: { upstream: \"127.0.0.1:8000\" }", ""),
        ),
        (
            "a number as text",
            full.replace(
                "max_connections_per_client: 256",
                "max_connections_per_client: many",
            ),
        ),
        (
            "an unknown resolver key",
            full.replace("timeout_ms:", "timeout_seconds:"),
        ),
        (
            "a name server that is no string",
            full.replace("\"127.0.0.11\"", "{ ip: 127.0.0.11 }"),
        ),
        (
            "an upstream of the wrong shape",
            full.replace("a: \"127.0.0.1:9000\"", "a: [1, 2]"),
        ),
    ] {
        assert!(
            !validator.is_valid(&yaml(&text)),
            "{mistake} passed the schema"
        );
    }
}
