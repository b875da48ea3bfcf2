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
#[path = "app_meta_tests.rs"]
mod tests;
