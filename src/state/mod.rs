//! The state the Portal core writes under `state_dir` (docs/state.md),
//! loaded into one immutable [`Snapshot`] that the request filters read
//! through [`SharedState`] (an `ArcSwap`: readers never wait on a reload).
//! A file that fails validation never replaces its last good version: a
//! broken app keeps serving as it was (or is left out if it never loaded),
//! and the other apps and files load as usual.

#![forbid(unsafe_code)]

pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use portal_core::app_meta::AppMeta;
use portal_core::caller::{TerminalEntry, Terminals, MAX_NAME_BYTES};
use portal_core::headers::AppHeaders;
use portal_core::names::is_app_name;
use portal_core::peers::Peers;
use portal_core::snapshot::{App, Snapshot};

/// One state file that failed validation, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    /// Which kind of file: `app`, `terminals`, `terminal_jwt_secret`, ...
    /// (a bounded metrics label).
    pub kind: &'static str,
    pub file: PathBuf,
    pub message: String,
    /// Whether the last good version of the file is still in use.
    pub kept_previous: bool,
}

impl StateError {
    fn new(kind: &'static str, file: PathBuf, message: impl Into<String>) -> Self {
        StateError {
            kind,
            file,
            message: message.into(),
            kept_previous: false,
        }
    }
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)?;
        if self.kept_previous {
            write!(f, " (keeping its last good version)")?;
        }
        Ok(())
    }
}

/// Loads the whole state; the errors name each file left out.
/// Loads the whole state; the errors name each file left out.
pub fn load(state_dir: &Path) -> Result<(Snapshot, Vec<StateError>), StateError> {
    reload(state_dir, &Snapshot::default())
}

/// Loads the state again; a file that fails validation keeps its version
/// in `previous`.
pub fn reload(
    state_dir: &Path,
    previous: &Snapshot,
) -> Result<(Snapshot, Vec<StateError>), StateError> {
    if !state_dir.is_dir() {
        return Err(StateError::new(
            "state_dir",
            state_dir.to_path_buf(),
            "state_dir is not a readable directory",
        ));
    }
    let mut errors = Vec::new();
    let apps = load_apps(&state_dir.join("apps"), &previous.apps, &mut errors);
    let terminals = load_terminals(state_dir, &previous.terminals, &mut errors);
    let peers = load_peers(state_dir, &previous.peers, &mut errors);
    let app_addresses = load_app_addresses(state_dir, &previous.app_addresses, &mut errors);
    Ok((
        Snapshot {
            apps,
            terminals,
            peers,
            app_addresses,
        },
        errors,
    ))
}

/// The file names of an app's metadata, the current layout first.
pub const APP_FILES: [&str; 2] = ["app_meta.json", "app.json"];

/// Loads `apps/<app>/app_meta.json` (or the older `app.json`) for every
/// folder under `apps_dir`. A missing `apps_dir` is an empty Portal. An app
/// that fails keeps its version in `previous`, if it has one.
fn load_apps(
    apps_dir: &Path,
    previous: &BTreeMap<String, Arc<App>>,
    errors: &mut Vec<StateError>,
) -> BTreeMap<String, Arc<App>> {
    let mut apps = BTreeMap::new();
    let entries = match std::fs::read_dir(apps_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return apps,
        Err(e) => {
            // Cannot list: every app keeps its last good version.
            let mut error =
                StateError::new("app", apps_dir.to_path_buf(), format!("cannot list: {e}"));
            error.kept_previous = !previous.is_empty();
            errors.push(error);
            return previous.clone();
        }
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        // Editors and the core's atomic writes leave dot folders behind.
        if name.starts_with('.') {
            continue;
        }
        match load_app(&dir, &name) {
            Ok(app) => {
                apps.insert(name, Arc::new(app));
            }
            Err(mut error) => {
                if let Some(app) = previous.get(&name) {
                    apps.insert(name, app.clone());
                    error.kept_previous = true;
                }
                errors.push(error);
            }
        }
    }
    apps
}

fn load_app(dir: &Path, name: &str) -> Result<App, StateError> {
    let Some(file) = APP_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file()) else {
        return Err(StateError::new(
            "app",
            dir.to_path_buf(),
            format!("no {} or {}", APP_FILES[0], APP_FILES[1]),
        ));
    };
    if !is_app_name(name) {
        return Err(StateError::new(
            "app",
            file,
            format!("folder name {name:?} is not an app name (lower-case letters, digits, '-'): it cannot be a subdomain"),
        ));
    }
    read_limited(&file, MAX_APP_FILE_BYTES)
        .and_then(|bytes| AppMeta::parse(name, &bytes).map_err(|e| e.to_string()))
        .and_then(|meta| {
            let headers = AppHeaders::compile(&meta).map_err(|e| e.to_string())?;
            Ok(App { meta, headers })
        })
        .map_err(|message| StateError::new("app", file, message))
}

/// The file of the owner's paired devices.
pub const TERMINALS_FILE: &str = "terminals.json";
/// The HMAC secret of terminal JWTs.
pub const TERMINAL_SECRET_FILE: &str = "terminal_jwt_secret";

/// Loads `terminals.json` and `terminal_jwt_secret`. A missing file means
/// none (no terminal can sign in without a secret); a broken one keeps its
/// version in `previous`.
pub fn load_terminals(
    state_dir: &Path,
    previous: &Terminals,
    errors: &mut Vec<StateError>,
) -> Terminals {
    let mut keep = |kind, file, message: String| {
        let mut error = StateError::new(kind, file, message);
        error.kept_previous = true;
        errors.push(error);
    };
    let file = state_dir.join(TERMINALS_FILE);
    let entries =
        match read_optional(&file).and_then(|b| b.map(|b| parse_terminals(&b)).transpose()) {
            Ok(entries) => entries.unwrap_or_default(),
            Err(message) => {
                keep("terminals", file, message);
                previous.entries().to_vec()
            }
        };
    let file = state_dir.join(TERMINAL_SECRET_FILE);
    let secret = match read_optional(&file) {
        Ok(Some(mut bytes)) => {
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            if bytes.is_empty() {
                keep("terminal_jwt_secret", file, "empty secret".into());
                previous.secret().map(<[u8]>::to_vec)
            } else {
                Some(bytes)
            }
        }
        Ok(None) => None,
        Err(message) => {
            keep("terminal_jwt_secret", file, message);
            previous.secret().map(<[u8]>::to_vec)
        }
    };
    Terminals::new(secret.as_deref(), entries)
}

/// The file of peer Portals.
const PEERS_FILE: &str = "peers.json";

/// Loads `peers.json`: a missing file is no peers; entries that fail
/// validation are left out; a file that cannot be read or parsed keeps the
/// previous peers.
fn load_peers(state_dir: &Path, previous: &Arc<Peers>, errors: &mut Vec<StateError>) -> Arc<Peers> {
    let file = state_dir.join(PEERS_FILE);
    let parsed = read_optional(&file).and_then(|bytes| {
        bytes
            .map(|b| Peers::parse(&b).map_err(|e| e.to_string()))
            .transpose()
    });
    match parsed {
        Ok(None) => Arc::new(Peers::default()),
        Ok(Some((peers, entry_errors))) => {
            for e in entry_errors {
                errors.push(StateError::new(
                    "peers",
                    file.clone(),
                    format!("entry left out: {e}"),
                ));
            }
            Arc::new(peers)
        }
        Err(message) => {
            let mut error = StateError::new("peers", file, message);
            error.kept_previous = true;
            errors.push(error);
            previous.clone()
        }
    }
}

/// The file of the apps' container addresses.
pub const APP_ADDRESSES_FILE: &str = "app_addresses.json";

/// Loads `app_addresses.json` (`{"<app>": ["<ip>", ...]}`) as a map from
/// address to app. An address claimed by two apps belongs to neither (an
/// app must never be taken for another); a bad entry is left out; a file
/// that cannot be parsed keeps the previous map.
pub fn load_app_addresses(
    state_dir: &Path,
    previous: &Arc<HashMap<IpAddr, String>>,
    errors: &mut Vec<StateError>,
) -> Arc<HashMap<IpAddr, String>> {
    let file = state_dir.join(APP_ADDRESSES_FILE);
    let parsed = read_optional(&file).and_then(|bytes| {
        bytes
            .map(|b| {
                serde_json::from_slice::<BTreeMap<String, Vec<String>>>(&b).map_err(|e| {
                    format!("invalid JSON: {e} (expected {{\"<app>\": [\"<ip>\", ...]}})")
                })
            })
            .transpose()
    });
    let raw = match parsed {
        Ok(None) => return Arc::new(HashMap::new()),
        Ok(Some(raw)) => raw,
        Err(message) => {
            let mut error = StateError::new("app_addresses", file, message);
            error.kept_previous = true;
            errors.push(error);
            return previous.clone();
        }
    };
    let mut by_ip: HashMap<IpAddr, String> = HashMap::new();
    let mut shared = std::collections::HashSet::new();
    for (app, ips) in raw {
        if !is_app_name(&app) {
            errors.push(StateError::new(
                "app_addresses",
                file.clone(),
                format!("{app:?} is not an app name: entry left out"),
            ));
            continue;
        }
        for ip in ips {
            let Ok(addr) = ip.parse::<IpAddr>() else {
                errors.push(StateError::new(
                    "app_addresses",
                    file.clone(),
                    format!("{app}: {ip:?} is not an IP address: left out"),
                ));
                continue;
            };
            if let Some(other) = by_ip.get(&addr).filter(|o| **o != app) {
                errors.push(StateError::new(
                    "app_addresses",
                    file.clone(),
                    format!("{addr} is listed for {other} and {app}: it belongs to neither"),
                ));
                shared.insert(addr);
            }
            by_ip.insert(addr, app.clone());
        }
    }
    for addr in shared {
        by_ip.remove(&addr);
    }
    Arc::new(by_ip)
}

fn parse_terminals(bytes: &[u8]) -> Result<Vec<TerminalEntry>, String> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let entries: Vec<TerminalEntry> = serde_path_to_error::deserialize(de)
        .map_err(|e| format!("invalid JSON at {}: {}", e.path(), e.inner()))?;
    let mut seen = std::collections::HashSet::new();
    for (i, t) in entries.iter().enumerate() {
        if t.id.is_empty() {
            return Err(format!("[{i}].id: empty"));
        }
        for (field, value) in [("id", &t.id), ("name", &t.name)] {
            if value.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "[{i}].{field}: {} bytes long; at most {MAX_NAME_BYTES} are accepted",
                    value.len()
                ));
            }
        }
        if !seen.insert(t.id.as_str()) {
            return Err(format!("[{i}].id: {:?} appears twice", t.id));
        }
    }
    Ok(entries)
}

/// Largest `app_meta.json` / `app.json` read (the corpus's largest is a
/// few KiB): no app file may make the proxy hold much memory.
const MAX_APP_FILE_BYTES: u64 = 1024 * 1024;

/// The file's bytes, refused when it is larger than `max`.
fn read_limited(file: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(bytes)
}

/// The file's bytes, `None` when it does not exist.
fn read_optional(file: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// The current snapshot, swapped whole on reload.
pub struct SharedState {
    current: ArcSwap<Snapshot>,
}

impl SharedState {
    pub fn new(snapshot: Snapshot) -> Self {
        SharedState {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot to use for one request, from start to end.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// Reloads from `state_dir` and swaps the result in; returns the files
    /// that failed (each kept its last good version, if any).
    pub fn reload(&self, state_dir: &Path) -> Result<Vec<StateError>, StateError> {
        let previous = self.load();
        let (snapshot, errors) = reload(state_dir, &previous)?;
        self.store(snapshot);
        Ok(errors)
    }
}

#[cfg(test)]
mod tests;
