//! The process's only unsafe code: what neither the standard library nor
//! a safe crate does for it. Five `unsafe` blocks, each with its SAFETY
//! argument: a socket borrowed for the length of a borrow of the stream
//! that owns it, the open-files limit, and two signal dispositions set
//! before Pingora runs. Every other module forbids unsafe code
//! (`tools/check-layers` checks it).
//!
//! May import: nothing of the crate (Pingora's stream types, to borrow
//! their sockets).

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// A stream that owns its socket and names it by a raw number only (as
/// Pingora's do).
pub(crate) trait OwnsSocket {
    /// The descriptor of the socket it owns.
    fn socket_fd(&self) -> RawFd;
}

impl OwnsSocket for pingora::protocols::l4::stream::Stream {
    fn socket_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl OwnsSocket for pingora::protocols::Stream {
    fn socket_fd(&self) -> RawFd {
        self.id() as RawFd
    }
}

/// The socket of a stream that owns it, borrowed for as long as the
/// stream is.
pub(crate) fn borrow_socket<S: OwnsSocket + ?Sized>(stream: &S) -> BorrowedFd<'_> {
    // SAFETY: `stream` owns the descriptor (each `OwnsSocket` above
    // returns its own) and cannot close it while it is borrowed, which
    // the returned borrow's lifetime ties to.
    unsafe { BorrowedFd::borrow_raw(stream.socket_fd()) }
}

/// The soft limit of open file descriptors of this process (`None` when
/// unlimited).
pub(crate) fn open_files_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as usize)
}

/// SIGHUP means "reload"; until the reload service has its handler in
/// place, it is ignored instead of killing the process (its default).
pub(crate) fn ignore_sighup() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// The pid of the process started with `-d`, which waits for its daemon.
static WAITING_PARENT: AtomicI32 = AtomicI32::new(0);

/// Makes this process exit 0 when it receives SIGUSR1, whenever the
/// signal comes; in a child (another pid) the handler does nothing. The
/// reason is `server::signals`'.
pub(crate) fn exit_on_sigusr1() {
    extern "C" fn on_ready(_: libc::c_int) {
        // SAFETY: getpid and _exit are async-signal-safe.
        unsafe {
            if libc::getpid() == WAITING_PARENT.load(Ordering::Relaxed) {
                libc::_exit(0);
            }
        }
    }
    WAITING_PARENT.store(std::process::id() as i32, Ordering::Relaxed);
    // SAFETY: `on_ready` only calls async-signal-safe functions and reads
    // an atomic.
    unsafe {
        libc::signal(libc::SIGUSR1, on_ready as *const () as libc::sighandler_t);
    }
}
