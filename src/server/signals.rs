//! The process's own signal dispositions, set before Pingora runs: SIGHUP
//! ignored until the reload service handles it, and SIGUSR1 in the
//! process that `-d` leaves waiting for its daemon (the calls are
//! `crate::sys`'s).

#![forbid(unsafe_code)]

/// SIGHUP means "reload"; until the reload service has its handler in
/// place, it is ignored instead of killing the process (its default).
pub(super) fn ignore_sighup() {
    crate::sys::ignore_sighup();
}

/// Makes the process started with `-d` exit 0 when its daemon signals that
/// it is up (SIGUSR1), whenever the signal comes. Pingora 0.9.1's waiting
/// parent installs its own SIGUSR1 listener only after the fork, so a
/// daemon that is up quickly (a reload of a small Portal) killed it with
/// the signal's default action, and `systemctl reload` failed (seen in 1
/// of 3 runs of ten reloads). This handler is in place before the fork;
/// when Pingora's listener comes, its handler runs too (signal-hook
/// chains the previous handler) and either ends the parent the same way.
/// In the daemon (another pid) the handler does nothing.
pub(super) fn exit_when_the_daemon_is_ready() {
    crate::sys::exit_on_sigusr1();
}
