//! Edge limits (README.md, "Operating it", in the spirit of Envoy's edge guidance):
//! HTTP/2 stream and window limits and a cap on open client connections.
//! The request head's own limits are checked by the pure
//! [`portal_core::head`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::sys::open_files_limit;

/// HTTP/2 streams a client may have open at once (Envoy's edge value).
pub(crate) const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// HTTP/2 per-stream flow-control window (Envoy's edge value: 64 KiB).
pub(crate) const H2_STREAM_WINDOW: u32 = 64 * 1024;
/// HTTP/2 per-connection flow-control window (Envoy's edge value: 1 MiB).
pub(crate) const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// What HTTP/2 buffers for one stream of a client that does not take it
/// (`max_send_buffer_size`; h2's default is 400 KiB).
pub(crate) const H2_STREAM_SEND_BUFFER: usize = 32 * 1024;
/// The receive buffer of upstream sockets (`SO_RCVBUF`, which Linux
/// doubles): it bounds each read of an answer, and so each of the few
/// chunks Pingora queues for a client that does not take them. A trade
/// with throughput, measured (benches/README.md): a 512 MiB download over
/// TLS on loopback ran at 210-260 MB/s with 16 KiB, 110-180 with 8 KiB,
/// 310-390 with 32 KiB and 400-600 unbounded; a stalled stream held
/// about 160 KiB with 16 KiB, 100-140 with 8 KiB, 470-900 unbounded.
pub(crate) const UPSTREAM_RECV_BUFFER: usize = 16 * 1024;
/// Requests served on one HTTP/1 keep-alive connection (nginx's default).
pub(crate) const KEEPALIVE_REQUEST_LIMIT: u32 = 1000;

/// The HTTP/2 settings of the HTTPS listener.
pub(crate) fn h2_options(
    max_header_bytes: usize,
) -> pingora::protocols::http::v2::server::H2Options {
    let mut options = pingora::protocols::http::v2::server::H2Options::new();
    options
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .initial_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_send_buffer_size(H2_STREAM_SEND_BUFFER)
        .max_header_list_size(max_header_bytes as u32);
    options
}

/// What one client connection is budgeted in memory: an idle keep-alive
/// TLS connection measured about 49 KiB (benches/README.md, tuning log),
/// a request in flight adds Pingora's and rustls's buffers; 64 KiB covers
/// the usual case (a flood of slow uploads is bounded by other limits).
pub(crate) const CONNECTION_MEMORY_BYTES: u64 = 64 * 1024;

/// Default of `limits.max_client_connections`: the smaller of 80% of the
/// open files limit (so that upstream connections, state files and the log
/// still find descriptors when clients hold many) and as many connections
/// as half the memory this process may use holds at
/// [`CONNECTION_MEMORY_BYTES`] each (so that a flood of connections meets
/// the cap before the kernel's OOM killer).
pub(crate) fn default_max_connections() -> usize {
    let by_files = open_files_limit().map_or(50_000, |n| n * 4 / 5);
    let by_memory = memory_limit().map_or(usize::MAX, connections_in);
    by_files.min(by_memory).max(64)
}

/// Connections that half of `memory` bytes holds.
fn connections_in(memory: u64) -> usize {
    usize::try_from(memory / 2 / CONNECTION_MEMORY_BYTES).unwrap_or(usize::MAX)
}

/// The memory this process may use: the smallest limit set on its own
/// cgroup or on one above it (`memory.max` of cgroup v2, a systemd unit's
/// `MemoryMax=`; `memory.limit_in_bytes` of v1), and the machine's
/// `MemTotal`.
pub(crate) fn memory_limit() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = read("/proc/self/cgroup").and_then(|c| cgroup_memory_limit(&c, read));
    let total = read("/proc/meminfo").and_then(|m| mem_total(&m));
    match (cgroup, total) {
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    }
}

/// The smallest memory limit on the cgroups that `self_cgroup` (the text
/// of `/proc/self/cgroup`) names and their ancestors, each file read by
/// `read`. The root of `/sys/fs/cgroup` is only the process's own cgroup
/// inside a cgroup namespace (a container); under systemd or another
/// manager the limit is set further down the tree.
fn cgroup_memory_limit(self_cgroup: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let mut smallest: Option<u64> = None;
    for line in self_cgroup.lines() {
        // hierarchy-ID:controllers:path
        let mut fields = line.splitn(3, ':').skip(1);
        let (Some(controllers), Some(path)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (root, file) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        } else {
            continue;
        };
        // From the process's own cgroup up to the root.
        let mut dir = path.trim_end_matches('/');
        loop {
            let limit =
                read(&format!("{root}{dir}/{file}")).and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(limit) = limit {
                smallest = Some(smallest.map_or(limit, |s| s.min(limit)));
            }
            match dir.rfind('/') {
                Some(at) => dir = &dir[..at],
                None => break,
            }
        }
    }
    smallest
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kib * 1024)
}

/// Refuses new client connections while the process holds more than
/// `max` file descriptors: the connection is closed after `accept`, before
/// its TLS handshake. Counting descriptors rather than connections keeps
/// the count right without a hook on connection close (Pingora has none);
/// they are recounted every 250 ms ([`ConnectionCap::recount`]). It is a
/// pre-TLS callback because Pingora 0.9.1's connection filter never runs
/// (the socket digest it needs is not set yet at accept).
#[derive(Debug)]
pub(crate) struct ConnectionCap {
    max: usize,
    /// What admissions past the cap (another connection shed for each)
    /// may count up to: halfway from the cap to the open-files limit. A
    /// shed connection gives its descriptors back only once Pingora drops
    /// it, and a connection whose request has started opens its upstream
    /// socket a moment later, past any count: a flood of admissions past
    /// the cap could otherwise outrun both and leave the process without a
    /// descriptor for an upstream socket. The other half is theirs.
    hard: usize,
    open: AtomicUsize,
    /// When a refusal last recounted (milliseconds since `started`).
    recounted_ms: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

/// Refusals recount the descriptors at most this often: a recount reads
/// `/proc/self/fd`, which a flood at the cap must not turn into work per
/// connection.
const RECOUNT_EVERY_MS: u64 = 50;

impl ConnectionCap {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        let hard = open_files_limit().map_or(usize::MAX, |n| max + n.saturating_sub(max) / 2);
        Arc::new(ConnectionCap {
            max,
            hard,
            open: AtomicUsize::new(count_open_fds().unwrap_or(0)),
            recounted_ms: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        })
    }

    /// Recounts the open descriptors (the reload service's every tick,
    /// through `Guard::recount_cap`), plus `reserved`: the upstream
    /// sockets that admitted connections will open for their next request
    /// (each counted as [`CONNECTION_FDS`] at admission), so that a
    /// recount during a flood does not forget them.
    /// A count that cannot be made (no descriptor left even to read
    /// `/proc/self/fd`: a burst of connections Pingora accepted before
    /// their pre-TLS hook ran) counts the process full until the next one
    /// succeeds; it once read as 0 and admitted the whole burst.
    pub(crate) fn recount(&self, reserved: usize) {
        match count_open_fds() {
            Some(open) => self.open.store(open + reserved, Ordering::Relaxed),
            None => {
                self.open.fetch_max(self.hard, Ordering::Relaxed);
            }
        }
    }
}

/// The descriptors open, or `None` when they cannot be counted.
fn count_open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

/// The descriptors one public connection holds once it sends a request:
/// its socket, the guard's duplicate, and the upstream socket the request
/// opens (Pingora connects it after the head, past any check): counted at
/// admission, so that a connection admitted at the cap can still reach
/// its app (issue 26: 200 uploads near the limit left a new client 502).
pub(crate) const CONNECTION_FDS: usize = 3;

impl ConnectionCap {
    /// Whether one more connection fits; counted as open until the next
    /// recount, as the [`CONNECTION_FDS`] descriptors it holds once its
    /// request is under way. `excluded` descriptors are left out of the
    /// count (those of the private listeners). The caller counts refusals
    /// (`admission::guard` sheds first).
    pub(crate) fn try_admit(&self, excluded: usize, reserved: impl FnOnce() -> usize) -> bool {
        let fits = |open: usize| open.saturating_sub(excluded) + CONNECTION_FDS <= self.max;
        if self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                fits(open).then_some(open + CONNECTION_FDS)
            })
            .is_ok()
        {
            return true;
        }
        // The count lags closes by up to a poll: count again before
        // refusing, at most every RECOUNT_EVERY_MS.
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.recounted_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RECOUNT_EVERY_MS
            || self
                .recounted_ms
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        self.recount(reserved());
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                fits(open).then_some(open + CONNECTION_FDS)
            })
            .is_ok()
    }

    /// Counts a connection admitted past the cap (another is shed for it;
    /// its descriptors are counted until the next recount), if the count,
    /// shed connections not yet gone included, stays under the hard
    /// limit; else the new connection is refused.
    pub(crate) fn admit_past(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open + CONNECTION_FDS <= self.hard).then_some(open + CONNECTION_FDS)
            })
            .is_ok()
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
