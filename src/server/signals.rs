//! The process's own signal dispositions, set before Pingora runs: SIGHUP
//! ignored until the reload service handles it, and SIGUSR1 in the
//! process that `-d` leaves waiting for its daemon.

use std::sync::atomic::{AtomicI32, Ordering};

/// SIGHUP means "reload"; until the reload service has its handler in
/// place, it is ignored instead of killing the process (its default).
#[allow(unsafe_code)]
pub(super) fn ignore_sighup() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// The pid of the process started with `-d`, which waits for its daemon.
static WAITING_PARENT: AtomicI32 = AtomicI32::new(0);

/// Makes the process started with `-d` exit 0 when its daemon signals that
/// it is up (SIGUSR1), whenever the signal comes. Pingora 0.9.1's waiting
/// parent installs its own SIGUSR1 listener only after the fork, so a
/// daemon that is up quickly (a reload of a small Portal) killed it with
/// the signal's default action, and `systemctl reload` failed (seen in 1
/// of 3 runs of ten reloads). This handler is in place before the fork;
/// when Pingora's listener comes, its handler runs too (signal-hook
/// chains the previous handler) and either ends the parent the same way.
/// In the daemon (another pid) the handler does nothing.
#[allow(unsafe_code)]
pub(super) fn exit_when_the_daemon_is_ready() {
    extern "C" fn on_ready(_: libc::c_int) {
        // SAFETY: getpid and _exit are async-signal-safe.
        unsafe {
            if libc::getpid() == WAITING_PARENT.load(Ordering::Relaxed) {
                libc::_exit(0);
            }
        }
    }
    // SAFETY: getpid has no preconditions; `on_ready` only calls
    // async-signal-safe functions and reads an atomic.
    unsafe {
        WAITING_PARENT.store(libc::getpid(), Ordering::Relaxed);
        libc::signal(libc::SIGUSR1, on_ready as *const () as libc::sighandler_t);
    }
}
