//! Hot reload of `state_dir` (DESIGN section 2): a background service that
//! polls the state files' sizes and modification times every
//! [`POLL_INTERVAL`] and reloads on any change, and at once on SIGHUP.
//! Polling rather than inotify: it also sees changes made through bind
//! mounts, network file systems and atomic renames, and costs a few dozen
//! `stat` calls a tick.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::replay::ReplayCache;
use crate::state::{SharedState, APP_FILES};

/// How often the state files are looked at: well inside the 1 s DESIGN
/// section 2 allows.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The files of `state_dir` the proxy reads, besides the apps.
pub const STATE_FILES: [&str; 4] = [
    crate::state::TERMINALS_FILE,
    crate::state::TERMINAL_SECRET_FILE,
    "peers.json",
    "app_addresses.json",
];

/// A hash of the names, sizes and modification times of every state file:
/// any write, creation, removal or rename changes it.
pub fn fingerprint(state_dir: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    let stat = |path: &Path, hasher: &mut DefaultHasher| {
        path.hash(hasher);
        if let Ok(meta) = std::fs::metadata(path) {
            meta.len().hash(hasher);
            meta.modified().ok().hash(hasher);
        }
    };
    for file in STATE_FILES {
        stat(&state_dir.join(file), &mut hasher);
    }
    let apps = state_dir.join("apps");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&apps)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        dir.hash(&mut hasher);
        for file in APP_FILES {
            stat(&dir.join(file), &mut hasher);
        }
    }
    hasher.finish()
}

/// Keeps the shared state in step with `state_dir`.
pub struct StateReloader {
    pub state_dir: PathBuf,
    pub state: Arc<SharedState>,
    /// Forgets the nonces of peers that a reload removed.
    pub replay: Arc<ReplayCache>,
}

impl StateReloader {
    /// Reloads and logs the outcome; `why` says what triggered it.
    pub fn reload(&self, why: &str) {
        match self.state.reload(&self.state_dir) {
            Ok(errors) => {
                for e in &errors {
                    warn!("state reload ({why}): {e}");
                }
                let s = self.state.load();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                self.replay
                    .retain_peers(|id| s.peers.get(id).is_some(), now);
                info!(
                    "state reloaded ({why}): {} app(s), {} terminal(s), {} peer(s), {} error(s)",
                    s.apps.len(),
                    s.terminals.len(),
                    s.peers.len(),
                    errors.len()
                );
            }
            Err(e) => error!("state reload ({why}) failed, keeping the current state: {e}"),
        }
    }
}

#[async_trait]
impl BackgroundService for StateReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                error!("cannot listen for SIGHUP, reloading on file changes only: {e}");
                None
            }
        };
        let mut seen = fingerprint(&self.state_dir);
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    seen = fingerprint(&self.state_dir);
                    self.reload("SIGHUP");
                }
                _ = tick.tick() => {
                    let now = fingerprint(&self.state_dir);
                    if now != seen {
                        seen = now;
                        self.reload("file change");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_every_kind_of_edit() {
        let dir = std::env::temp_dir().join(format!("pp-fp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("apps/a")).unwrap();
        let mut last = fingerprint(&dir);
        let mut changed = |what: &str, f: &dyn Fn()| {
            f();
            let now = fingerprint(&dir);
            assert_ne!(now, last, "{what} must change the fingerprint");
            last = now;
        };
        changed("new app file", &|| {
            std::fs::write(dir.join("apps/a/app_meta.json"), "{}").unwrap()
        });
        changed("longer app file", &|| {
            std::fs::write(dir.join("apps/a/app_meta.json"), "{ }").unwrap()
        });
        changed("new terminals", &|| {
            std::fs::write(dir.join("terminals.json"), "[]").unwrap()
        });
        changed("new peers", &|| {
            std::fs::write(dir.join("peers.json"), "[]").unwrap()
        });
        changed("app renamed", &|| {
            std::fs::rename(dir.join("apps/a"), dir.join("apps/b")).unwrap()
        });
        changed("app removed", &|| {
            std::fs::remove_dir_all(dir.join("apps/b")).unwrap()
        });
        assert_eq!(fingerprint(&dir), last, "no change, same fingerprint");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
