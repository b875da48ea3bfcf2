//! Edge limits (DESIGN section 8, in the spirit of Envoy's edge guidance):
//! HTTP/2 stream and window limits and a cap on open client connections.
//! The request head's own limits are checked by the pure
//! [`crate::decision::head`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// HTTP/2 streams a client may have open at once (Envoy's edge value).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// HTTP/2 per-stream flow-control window (Envoy's edge value: 64 KiB).
pub const H2_STREAM_WINDOW: u32 = 64 * 1024;
/// HTTP/2 per-connection flow-control window (Envoy's edge value: 1 MiB).
pub const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Requests served on one HTTP/1 keep-alive connection (nginx's default).
pub const KEEPALIVE_REQUEST_LIMIT: u32 = 1000;

/// The HTTP/2 settings of the HTTPS listener.
pub fn h2_options(max_header_bytes: usize) -> pingora::protocols::http::v2::server::H2Options {
    let mut options = pingora::protocols::http::v2::server::H2Options::new();
    options
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .initial_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_header_list_size(max_header_bytes as u32);
    options
}

/// The soft limit of open file descriptors of this process.
pub fn open_files_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as usize)
}

/// Default of `limits.max_client_connections`: 80% of the open files
/// limit, so that upstream connections, state files and the log still
/// find descriptors when clients hold many.
pub fn default_max_connections() -> usize {
    open_files_limit().map_or(50_000, |n| n * 4 / 5).max(64)
}

/// Refuses new client connections while the process holds more than
/// `max` file descriptors: the connection is closed after `accept`, before
/// its TLS handshake. Counting descriptors rather than connections keeps
/// the count right without a hook on connection close (Pingora has none);
/// they are recounted every 250 ms ([`ConnectionCap::recount`]). It is a
/// pre-TLS callback because Pingora 0.9.1's connection filter never runs
/// (the socket digest it needs is not set yet at accept).
#[derive(Debug)]
pub struct ConnectionCap {
    max: usize,
    open: AtomicUsize,
}

impl ConnectionCap {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionCap {
            max,
            open: AtomicUsize::new(count_open_fds()),
        })
    }

    /// Recounts the open descriptors (the reload service's every tick).
    pub fn recount(&self) {
        self.open.store(count_open_fds(), Ordering::Relaxed);
    }
}

fn count_open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

impl ConnectionCap {
    /// Whether one more connection fits; counted as open until the next
    /// recount, as the two descriptors it holds (the socket, and the
    /// guard's duplicate). The caller counts refusals (`ops::guard` sheds
    /// first).
    pub fn try_admit(&self) -> bool {
        let open = self.open.fetch_add(2, Ordering::Relaxed);
        open + 2 <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_refuses_past_its_limit() {
        let open = count_open_fds();
        assert!(open > 0);
        let cap = ConnectionCap::new(open + 4);
        assert!(cap.try_admit());
        assert!(cap.try_admit());
        assert!(!cap.try_admit());
        assert!(default_max_connections() >= 64);
    }
}
