//! Parsing of an app's `app_meta.json` and of the older `app.json` layouts
//! (docs/state.md). Pure: bytes in, validated [`AppMeta`] out; the state
//! loader decides which file to read and what to do with errors.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Who may reach a path (docs/access.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Public,
    Private,
    Peer,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Private => "private",
            Access::Peer => "peer",
        }
    }
}

/// One rule of `paths`: its access and the header templates it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub prefix: String,
    pub access: Access,
    /// `(header name, template source)`, names as written by the app.
    pub headers: Vec<(http::HeaderName, String)>,
}

/// The validated routing and access data of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMeta {
    /// The app's name: its folder's name, never the file's `name` field.
    pub name: String,
    /// `container_name:container_port` of the `http` entrypoint.
    pub http: Option<Endpoint>,
    /// `container_name:container_port` of the `mqtt` entrypoint.
    pub mqtt: Option<Endpoint>,
    /// Path rules, longest prefix first, `""` last (docs/access.md).
    pub paths: Vec<PathRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why an app's metadata was refused; the message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppMetaError {
    #[error("invalid JSON at {path}: {message}")]
    Json { path: String, message: String },
    #[error("no entrypoint: neither `entrypoints` nor `port` is present")]
    NoEntrypoint,
    #[error("entrypoints[{index}].entrypoint_port: unknown kind {kind:?} (expected \"http\" or \"mqtt\")")]
    UnknownEntrypointKind { index: usize, kind: String },
    #[error("entrypoints[{index}]: a second {kind:?} entrypoint")]
    DuplicateEntrypoint { index: usize, kind: String },
    #[error("entrypoints[{index}].container_name: empty")]
    EmptyContainerName { index: usize },
    #[error("paths: the default path \"\" is missing")]
    NoDefaultPath,
    #[error("paths.{prefix:?}: a prefix must be \"\" or start with '/'")]
    BadPrefix { prefix: String },
    #[error("paths.{prefix:?}.headers: {name:?} is not a valid header name")]
    BadHeaderName { prefix: String, name: String },
}

#[derive(Deserialize)]
struct RawAppMeta {
    #[serde(default)]
    entrypoints: Option<Vec<RawEntrypoint>>,
    #[serde(default)]
    port: Option<u16>,
    paths: BTreeMap<String, RawPathRule>,
}

#[derive(Deserialize)]
struct RawEntrypoint {
    #[serde(default)]
    container_name: Option<String>,
    container_port: u16,
    entrypoint_port: String,
}

#[derive(Deserialize)]
struct RawPathRule {
    access: Access,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

impl AppMeta {
    /// Parses `app_meta.json` or `app.json` of the app named `name` (its
    /// folder). Unknown fields are ignored: these files carry store metadata.
    pub fn parse(name: &str, json: &[u8]) -> Result<Self, AppMetaError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let raw: RawAppMeta =
            serde_path_to_error::deserialize(de).map_err(|e| AppMetaError::Json {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;

        let (mut http, mut mqtt) = (None, None);
        match (raw.entrypoints, raw.port) {
            (Some(entrypoints), _) => {
                for (index, ep) in entrypoints.into_iter().enumerate() {
                    let host = match ep.container_name {
                        None => name.to_string(),
                        Some(host) if host.is_empty() => {
                            return Err(AppMetaError::EmptyContainerName { index })
                        }
                        Some(host) => host,
                    };
                    let slot = match ep.entrypoint_port.as_str() {
                        "http" => &mut http,
                        "mqtt" => &mut mqtt,
                        _ => {
                            return Err(AppMetaError::UnknownEntrypointKind {
                                index,
                                kind: ep.entrypoint_port,
                            })
                        }
                    };
                    if slot.is_some() {
                        return Err(AppMetaError::DuplicateEntrypoint {
                            index,
                            kind: ep.entrypoint_port,
                        });
                    }
                    *slot = Some(Endpoint {
                        host,
                        port: ep.container_port,
                    });
                }
            }
            (None, Some(port)) => {
                http = Some(Endpoint {
                    host: name.to_string(),
                    port,
                })
            }
            (None, None) => return Err(AppMetaError::NoEntrypoint),
        }

        if !raw.paths.contains_key("") {
            return Err(AppMetaError::NoDefaultPath);
        }
        let mut paths = Vec::with_capacity(raw.paths.len());
        for (prefix, rule) in raw.paths {
            if !(prefix.is_empty() || prefix.starts_with('/')) {
                return Err(AppMetaError::BadPrefix { prefix });
            }
            let mut headers = Vec::new();
            for (header, template) in rule.headers.unwrap_or_default() {
                let Ok(parsed) = http::HeaderName::from_bytes(header.as_bytes()) else {
                    return Err(AppMetaError::BadHeaderName {
                        prefix,
                        name: header,
                    });
                };
                headers.push((parsed, template));
            }
            paths.push(PathRule {
                prefix,
                access: rule.access,
                headers,
            });
        }
        // Longest prefix first; `""` is the shortest, so it comes last.
        paths.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });

        Ok(AppMeta {
            name: name.to_string(),
            http,
            mqtt,
            paths,
        })
    }
}

#[cfg(test)]
mod tests {
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
        let app =
            parse(r#"{"port":3000,"paths":{"":{"access":"public","headers":null}}}"#).unwrap();
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
            (prop::option::of("[a-z][a-z0-9-]{0,8}"), any::<u16>()).prop_map(
                move |(name, port)| match name {
                    Some(name) => json!({"container_name": name, "container_port": port, "entrypoint_port": kind}),
                    None => json!({"container_port": port, "entrypoint_port": kind}),
                },
            )
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
}
