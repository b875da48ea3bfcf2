//! What one process of a graceful upgrade owes the other (docs/signing.md,
//! "Restarts and upgrades"; README.md, systemd): the moments that split
//! the signatures each may accept ([`Handover`]), and the lock that keeps
//! two upgrades from running at once.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use log::{info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use portal_core::replay::Handover;

/// The lock an upgrade (`-u`) holds from its start until it has the
/// listening sockets: a second `-u` meanwhile fails at once instead of
/// waiting on the same upgrade socket, which would leave two processes.
pub(super) struct UpgradeLock {
    _file: File,
}

impl UpgradeLock {
    /// Takes the lock beside `upgrade_sock` (`<upgrade_sock>.lock`), or
    /// says which upgrade holds it.
    pub(super) fn take(upgrade_sock: &str) -> Result<UpgradeLock, String> {
        let path = PathBuf::from(format!("{upgrade_sock}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("server.upgrade_sock: cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(UpgradeLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "another upgrade (-u) is already waiting for the listening sockets ({} is locked): \
                 let it finish, or stop it, before starting another",
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(format!(
                "server.upgrade_sock: cannot lock {}: {e}",
                path.display()
            )),
        }
    }
}

/// Started once the bootstrap has the listening sockets: an upgrade's
/// process took over from now, its upgrade lock is released, and a
/// SIGQUIT (the next upgrade taking the sockets over) is the moment the
/// process hands over.
pub(super) struct HandoverService {
    pub(super) handover: Arc<Handover>,
    /// Started by `-u`: it took the sockets over from another process.
    pub(super) upgrading: bool,
    pub(super) lock: Mutex<Option<UpgradeLock>>,
}

#[async_trait]
impl BackgroundService for HandoverService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        if self.upgrading {
            self.handover.took_over(crate::clock::unix_now());
        }
        // The sockets are in hand: another upgrade may follow this one.
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
        let mut quit = match signal(SignalKind::quit()) {
            Ok(quit) => quit,
            Err(e) => {
                warn!("cannot watch SIGQUIT ({e}): signatures over CA TLS are not split at the next upgrade");
                return;
            }
        };
        tokio::select! {
            _ = quit.recv() => {
                self.handover.handed_over(crate::clock::unix_now());
                info!("handing the listening sockets over: signatures over CA TLS created from now on are the next process's");
            }
            _ = shutdown.changed() => {}
        }
    }
}
