//! Telling when the state files changed (docs/state.md): a fingerprint of
//! their names, sizes and modification times, polled every
//! [`POLL_INTERVAL`]. Polling rather than inotify: it also sees changes
//! made through bind mounts, network file systems and atomic renames, and
//! costs a few dozen `stat` calls a tick.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::APP_FILES;

/// How often the state files are looked at: well inside the 1 s that
/// docs/state.md allows.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The files of `state_dir` the proxy reads, besides the apps.
const STATE_FILES: [&str; 4] = [
    super::TERMINALS_FILE,
    super::TERMINAL_SECRET_FILE,
    "peers.json",
    "app_addresses.json",
];

/// A hash of the names, sizes and modification times of every state file:
/// any write, creation, removal or rename changes it.
pub fn fingerprint(state_dir: &Path) -> u64 {
    let mut files: Vec<PathBuf> = STATE_FILES.iter().map(|f| state_dir.join(f)).collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state_dir.join("apps"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    // A missing file's path counts too: a new app folder changes the hash.
    for dir in dirs {
        files.extend(APP_FILES.iter().map(|f| dir.join(f)));
    }
    files_fingerprint(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())
}

/// A hash of the sizes and modification times of `files`.
pub fn files_fingerprint(files: &[&Path]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        if let Ok(meta) = std::fs::metadata(file) {
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
        }
    }
    hasher.finish()
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
