//! The subcommands that are not the proxy itself: `keygen`, `id`, `sign`
//! (docs/portal-ids.md; docs/signing.md) and `config-schema`. Each returns what it prints, or the
//! error to print; `main` only wires the command line to them.

#![forbid(unsafe_code)]

use std::path::Path;

use portal_core::identity::short_id;
use portal_core::signature::{signed_headers, Outgoing};

/// `keygen PATH`: writes a new key (never over an existing file) and
/// returns its Portal ID.
pub fn keygen(path: &Path) -> Result<String, String> {
    let identity = crate::identity::generate();
    crate::identity::write_new(&identity, path).map_err(|e| e.to_string())?;
    Ok(identity.id)
}

/// `id PATH [--peer-entry NAME [--address HOST:PORT]]`: the ID and short ID
/// of a key, or its `peers.json` entry for another Portal.
pub fn id(
    path: &Path,
    peer_entry: Option<String>,
    address: Option<String>,
) -> Result<String, String> {
    let identity = crate::identity::load(path).map_err(|e| e.to_string())?;
    Ok(match peer_entry {
        None => format!("id: {}\nshort_id: {}", identity.id, short_id(&identity.id)),
        Some(name) => {
            let mut entry = serde_json::json!({
                "id": identity.id,
                "name": name,
                "public_key": identity.public_key_pem,
            });
            if let Some(address) = address {
                entry["address"] = address.into();
            }
            entry.to_string()
        }
    })
}

/// What `sign` signs.
pub struct SignRequest<'a> {
    pub key: &'a Path,
    pub method: &'a str,
    pub body_file: Option<&'a Path>,
    /// Seconds the signature stays valid.
    pub validity: i64,
    /// `https://<app>.<short_id>.<base_domain>/path?query`.
    pub url: &'a str,
}

/// `sign`: the header lines that sign the request as the key's Portal,
/// for `curl -H @file`.
pub fn sign(request: &SignRequest<'_>, now: i64) -> Result<String, String> {
    let identity = crate::identity::load(request.key).map_err(|e| e.to_string())?;
    let url = request.url;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let (Some(authority), Some("https")) = (uri.authority(), uri.scheme_str()) else {
        return Err(format!("{url:?} is not an https:// URL"));
    };
    let body = request
        .body_file
        .map(std::fs::read)
        .transpose()
        .map_err(|e| format!("cannot read the body file: {e}"))?;
    let method = request.method.to_ascii_uppercase();
    let outgoing = Outgoing {
        method: &method,
        authority: authority.as_str(),
        path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
        body: body.as_deref(),
    };
    let headers = signed_headers(
        &identity.signing_key,
        &identity.id,
        &outgoing,
        now,
        request.validity,
        &crate::clock::fresh_nonce(),
    )
    .map_err(|e| e.to_string())?;
    Ok(headers
        .into_iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `config-schema`: the JSON Schema of the config file, from the structs
/// that read it (editors complete and check `portal-proxy.yaml` with it).
pub fn config_schema() -> String {
    let mut schema = schemars::schema_for!(crate::config::raw::Config);
    schema.insert(
        "title".into(),
        "portal-proxy config (portal-proxy.yaml)".into(),
    );
    serde_json::to_string_pretty(&schema).expect("a schema always serializes")
}
