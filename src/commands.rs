//! The subcommands that are not the proxy itself: `keygen`, `id`, `sign`
//! (docs/portal-ids.md; docs/signing.md), `config-schema` and `demo`.
//! Each returns what it prints, or the error to print ([`execute`]);
//! `main` only wires the command line to them.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use clap::Subcommand;

use portal_core::identity::short_id;
use portal_core::signature::{signed_headers, Outgoing};

#[derive(Subcommand)]
pub enum Command {
    /// Write a new ed25519 identity key (PKCS#8 PEM, mode 0600) and print
    /// its Portal ID.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        path: PathBuf,
    },
    /// Print the Portal ID and short ID of a key file (the Portal's domain
    /// is <short_id>.<base_domain>).
    Id {
        /// The identity key (PKCS#8 PEM).
        path: PathBuf,
        /// Print a `peers.json` entry for this key instead, with this name.
        #[arg(long, value_name = "NAME")]
        peer_entry: Option<String>,
        /// The entry's `address` (host:port to connect to instead of DNS).
        #[arg(long, requires = "peer_entry")]
        address: Option<String>,
    },
    /// Print the headers that sign a request as this Portal, for
    /// `curl -H @file` (the peer request profile of the README).
    Sign {
        /// The Portal's identity key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The request method.
        #[arg(short = 'X', long, default_value = "GET")]
        method: String,
        /// A file whose bytes are the request body.
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// Seconds the signature stays valid (at most the receiver's limit,
        /// 300 by default).
        #[arg(long, default_value_t = 60)]
        validity: i64,
        /// The full URL: https://<app>.<short_id>.<base_domain>/path?query
        url: String,
    },
    /// Print the JSON Schema of the config file (shipped as
    /// conf/portal-proxy.schema.json) for editors.
    ConfigSchema,
    /// Start a demo Portal on this machine: a generated key, a CA and a
    /// certificate for <short_id>.localhost, one demo app; prints what to
    /// try with curl.
    Demo {
        /// Folder for the demo's files (kept between runs, so the address
        /// stays the same).
        #[arg(long, default_value = "portal-proxy-demo")]
        dir: PathBuf,
        /// Port of the HTTPS listener.
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        /// Port of the plain-HTTP listener (redirects to HTTPS).
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        /// Port of the internal listener (apps calling peers).
        #[arg(long, default_value_t = 8081)]
        internal_port: u16,
        /// Port of the metrics listener (/metrics, /healthz, /readyz).
        #[arg(long, default_value_t = 8082)]
        metrics_port: u16,
    },
}

/// What is left to do once a command ran.
pub enum Then {
    /// Print its output; done.
    Print(String),
    /// Run the proxy on this config file (the demo's).
    Run(PathBuf),
}

/// Runs `command` at Unix time `now`.
pub fn execute(command: Command, now: i64) -> Result<Then, String> {
    Ok(match command {
        Command::Keygen { path } => Then::Print(keygen(&path)?),
        Command::ConfigSchema => Then::Print(config_schema()),
        Command::Id {
            path,
            peer_entry,
            address,
        } => Then::Print(id(&path, peer_entry, address)?),
        Command::Sign {
            key,
            method,
            body_file,
            validity,
            url,
        } => Then::Print(sign(
            &SignRequest {
                key: &key,
                method: &method,
                body_file: body_file.as_deref(),
                validity,
                url: &url,
            },
            now,
        )?),
        Command::Demo {
            dir,
            https_port,
            http_port,
            internal_port,
            metrics_port,
        } => {
            let ports = crate::demo::DemoPorts {
                https: https_port,
                http: http_port,
                internal: internal_port,
                metrics: metrics_port,
            };
            let demo = crate::demo::prepare(&dir, ports).map_err(|e| format!("demo: {e}"))?;
            println!("{}", demo.instructions());
            Then::Run(demo.config_file)
        }
    })
}

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
