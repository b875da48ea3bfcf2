use super::*;

fn parse(json: &str) -> Result<AppMeta, AppMetaError> {
    AppMeta::parse("myapp", json.as_bytes())
}

#[test]
fn current_layout_with_entrypoints() {
    let app = parse(
            r#"{"v":"1.0","name":"ignored","entrypoints":[
                {"container_name":"web","container_port":8080,"entrypoint_port":"http"},
                {"container_name":"broker","container_port":1883,"entrypoint_port":"mqtt"}],
               "paths":{"":{"access":"private"},"/pub/":{"access":"public","headers":{"X-Ptl-User":"{{ auth.client_id }}"}}},
               "store_info":{"anything":[1,2]}}"#,
        )
        .unwrap();
    assert_eq!(app.name, "myapp");
    assert_eq!(app.http.unwrap().to_string(), "web:8080");
    assert_eq!(app.mqtt.unwrap().to_string(), "broker:1883");
    assert_eq!(app.paths[0].prefix, "/pub/");
    assert_eq!(app.paths[0].headers[0].0.as_str(), "x-ptl-user");
    assert_eq!(app.paths[1].prefix, "");
    assert_eq!(app.paths[1].access, Access::Private);
}

#[test]
fn older_layouts() {
    // `port` only: the container is named after the app.
    let app = parse(r#"{"port":3000,"paths":{"":{"access":"public","headers":null}}}"#).unwrap();
    assert_eq!(app.http.unwrap().to_string(), "myapp:3000");
    // v4.0: entrypoints without container_name.
    let app = parse(
            r#"{"entrypoints":[{"container_port":9001,"entrypoint_port":"http"}],"paths":{"":{"access":"peer"}}}"#,
        )
        .unwrap();
    assert_eq!(app.http.unwrap().to_string(), "myapp:9001");
    assert_eq!(app.paths[0].access, Access::Peer);
}

#[test]
fn longest_prefix_first() {
    let app = parse(
            r#"{"port":1,"paths":{"":{"access":"private"},"/a/":{"access":"public"},"/a/b/":{"access":"private"},"/mqtt":{"access":"public"}}}"#,
        )
        .unwrap();
    let order: Vec<_> = app.paths.iter().map(|p| p.prefix.as_str()).collect();
    assert_eq!(order, ["/a/b/", "/mqtt", "/a/", ""]);
}

#[test]
fn refusals_name_the_field() {
    let cases = [
        (r#"{"paths":{"":{"access":"public"}}}"#, "no entrypoint"),
        (
            r#"{"port":1,"paths":{"/x":{"access":"public"}}}"#,
            "default path",
        ),
        (
            r#"{"port":1,"paths":{"":{"access":"everyone"}}}"#,
            "paths..access",
        ),
        (r#"{"port":70000,"paths":{"":{"access":"public"}}}"#, "port"),
        (
            r#"{"port":1,"paths":{"x/":{"access":"public"},"":{"access":"public"}}}"#,
            "\"x/\"",
        ),
        (
            r#"{"port":1,"paths":{"":{"access":"public","headers":{"Bad Name":"x"}}}}"#,
            "Bad Name",
        ),
        (
            r#"{"entrypoints":[{"container_port":1,"entrypoint_port":"ftp"}],"paths":{"":{"access":"public"}}}"#,
            "entrypoints[0].entrypoint_port",
        ),
        (
            r#"{"entrypoints":[{"container_port":1,"entrypoint_port":"http"},{"container_port":2,"entrypoint_port":"http"}],"paths":{"":{"access":"public"}}}"#,
            "entrypoints[1]",
        ),
        (
            r#"{"entrypoints":[{"container_name":"","container_port":1,"entrypoint_port":"http"}],"paths":{"":{"access":"public"}}}"#,
            "container_name",
        ),
        (
            r#"{"port":1,"paths":{"":{"access":"public"}"#,
            "invalid JSON",
        ),
        (r#"{"port":1}"#, "paths"),
    ];
    for (json, needle) in cases {
        let err = parse(json).expect_err(json).to_string();
        assert!(err.contains(needle), "{json}: {err:?} lacks {needle:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// Parsing never panics, on bytes or on JSON of any shape, and an
    /// accepted file always has its `""` rule last. (Such shapes are
    /// all but never valid files: the next property generates those.)
    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), json in json_value()) {
        let _ = AppMeta::parse("app", &bytes);
        let text = serde_json::to_vec(&json).unwrap();
        if let Ok(meta) = AppMeta::parse("app", &text) {
            proptest::prop_assert_eq!(meta.paths.last().map(|r| r.prefix.as_str()), Some(""));
        }
    }

    /// Every valid app file is accepted, with each of its rules and
    /// its `""` rule last.
    #[test]
    fn valid_files_are_accepted_with_the_default_rule_last(json in app_file()) {
        let text = serde_json::to_vec(&json).unwrap();
        let meta = AppMeta::parse("app", &text);
        proptest::prop_assert!(meta.is_ok(), "{}: {:?}", json, meta);
        let meta = meta.unwrap();
        proptest::prop_assert_eq!(meta.paths.last().map(|r| r.prefix.as_str()), Some(""));
        proptest::prop_assert_eq!(meta.paths.len(), json["paths"].as_object().unwrap().len());
    }
}

/// App files that are valid: a `port` or `entrypoints` (at most one
/// of each kind, in any order), rules for `""` and other prefixes
/// with any access and valid header names, and fields the parser
/// ignores.
fn app_file() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::json;
    let entrypoint = |kind: &'static str| {
        (prop::option::of("[a-z][a-z0-9-]{0,8}"), any::<u16>()).prop_map(move |(name, port)| {
            match name {
                Some(name) => {
                    json!({"container_name": name, "container_port": port, "entrypoint_port": kind})
                }
                None => json!({"container_port": port, "entrypoint_port": kind}),
            }
        })
    };
    let entry = prop_oneof![
        any::<u16>().prop_map(|port| json!({"port": port})),
        (
            prop::option::of(entrypoint("http")),
            prop::option::of(entrypoint("mqtt")),
            any::<bool>()
        )
            .prop_map(|(http, mqtt, mqtt_first)| {
                let mut list: Vec<_> = [http, mqtt].into_iter().flatten().collect();
                if mqtt_first {
                    list.reverse();
                }
                json!({"entrypoints": list})
            }),
    ];
    let rule = (
        prop::sample::select(vec!["public", "private", "peer"]),
        prop::option::of(prop::collection::btree_map(
            prop::sample::select(vec!["X-A", "x-b", "Remote-User", "X-Ptl-Client-Id"]),
            prop::sample::select(vec!["", "x", "{{ auth.client_id }}"]),
            0..3,
        )),
    )
        .prop_map(|(access, headers)| match headers {
            Some(headers) => json!({"access": access, "headers": headers}),
            None => json!({"access": access}),
        });
    let prefixes = prop::sample::select(vec![
        "/",
        "/a",
        "/a/",
        "/a/b/",
        "/mqtt",
        "/x/",
        "/caf\u{e9}/",
    ]);
    (
        entry,
        rule.clone(),
        prop::collection::btree_map(prefixes, rule, 0..5),
        any::<bool>(),
    )
        .prop_map(|(mut file, default, mut rules, extra)| {
            rules.insert("", default);
            file["paths"] = json!(rules);
            if extra {
                file["name"] = json!("Files");
                file["version"] = json!(3);
            }
            file
        })
}

/// JSON values shaped like app files: objects with the keys the
/// parser reads, and values of every kind.
fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "",
            "/",
            "public",
            "private",
            "peer",
            "http",
            "mqtt",
            "app",
            "{{ auth.client_id }}"
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "port",
                    "paths",
                    "entrypoints",
                    "access",
                    "headers",
                    "container_name",
                    "container_port",
                    "entrypoint_port",
                    "",
                    "/x/",
                    "X-A"
                ]),
                inner,
                0..5,
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}
