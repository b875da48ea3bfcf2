//! The access log (README.md, "Operating it"): one JSON object per request, written
//! by a thread of its own to a file or standard output. The request path
//! hands lines over a bounded channel and never waits (the writer drains
//! it every 20 ms, so no request wakes it up): when the writer falls
//! behind, lines are dropped and counted
//! (`portal_proxy_access_log_dropped_total`). The file is reopened on
//! SIGHUP, for log rotation.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// Lines buffered between the request path and the writer.
pub(crate) const CHANNEL_LINES: usize = 65_536;
/// How often the writer drains the queue: the most a line waits.
pub(crate) const WRITE_INTERVAL: Duration = Duration::from_millis(20);

/// One request, as logged.
#[derive(Debug, Serialize)]
pub(crate) struct Entry<'a> {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The client's address: the connection's, or the one its load
    /// balancer's PROXY header named.
    pub client: &'a str,
    pub host: &'a str,
    /// `""` when the host is no app, `/core` for the Portal core.
    pub app: &'a str,
    pub method: &'a str,
    /// Without the query (it may carry secrets).
    pub path: &'a str,
    /// 0 when no response was sent.
    pub status: u16,
    pub client_type: &'a str,
    pub client_id: &'a str,
    /// `forward`, or the code of the proxy's own answer.
    pub decision: &'a str,
    /// `host:port` the request was sent to, `""` if none.
    pub upstream: &'a str,
    /// The W3C trace ID the request carried on (32 hex digits), `""` if
    /// it was not decided.
    pub trace_id: &'a str,
    pub duration_ms: f64,
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    File(PathBuf),
    Off,
}

/// The sending side, cheap to share.
#[derive(Clone)]
pub(crate) struct AccessLog {
    tx: Option<SyncSender<String>>,
    reopen: Arc<AtomicBool>,
}

/// The writing side: a thread started by [`Writer::spawn`], once the
/// process is what it will stay (Pingora's `-d` forks after start-up, and
/// threads do not survive a fork).
pub(crate) struct Writer {
    parts: std::sync::Mutex<Option<WriterParts>>,
    reopen: Arc<AtomicBool>,
}

/// What the writer thread takes: the queue, where to write, the target.
type WriterParts = (Receiver<String>, Box<dyn Write + Send>, Sink);

impl AccessLog {
    /// The queue and its writer, not yet running. A file that cannot be
    /// opened is an error now; later write errors are reported on stderr.
    pub(crate) fn new(target: Sink) -> std::io::Result<(AccessLog, Option<Writer>)> {
        let reopen = Arc::new(AtomicBool::new(false));
        let out: Box<dyn Write + Send> = match &target {
            Sink::Off => return Ok((AccessLog { tx: None, reopen }, None)),
            Sink::Stdout => Box::new(std::io::stdout()),
            Sink::File(path) => Box::new(open(path)?),
        };
        let (tx, rx) = sync_channel(CHANNEL_LINES);
        let writer = Writer {
            parts: std::sync::Mutex::new(Some((rx, out, target))),
            reopen: reopen.clone(),
        };
        Ok((
            AccessLog {
                tx: Some(tx),
                reopen,
            },
            Some(writer),
        ))
    }

    /// [`AccessLog::new`] with the writer running at once.
    #[cfg(test)]
    fn start(target: Sink) -> std::io::Result<AccessLog> {
        let (log, writer) = AccessLog::new(target)?;
        if let Some(writer) = writer {
            writer.spawn()?;
        }
        Ok(log)
    }

    /// Queues one line; never blocks.
    pub(crate) fn log(&self, entry: &Entry<'_>) {
        let Some(tx) = &self.tx else { return };
        let line = serde_json::to_string(entry).expect("strings and numbers serialize");
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                crate::observe::metrics::METRICS.access_log_dropped.inc();
            }
        }
    }

    /// Whether lines are written at all (`access_log: { enabled: false }`).
    pub(crate) fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Asks the writer to reopen its file (after a rotation).
    pub(crate) fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

impl Writer {
    /// Starts the writer thread (once; later calls do nothing).
    pub(crate) fn spawn(&self) -> std::io::Result<()> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((rx, out, target)) = parts {
            let flag = self.reopen.clone();
            std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || write_lines(rx, out, target, flag))?;
        }
        Ok(())
    }
}

/// Runs as a Pingora background service: started after daemonizing.
#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Writer {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        if let Err(e) = self.spawn() {
            log::error!("access log: cannot start its writer: {e}");
        }
        // The thread writes; the service lives as long as the server.
        let _ = shutdown.changed().await;
    }
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn write_lines(
    rx: Receiver<String>,
    out: Box<dyn Write + Send>,
    target: Sink,
    reopen: Arc<AtomicBool>,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    loop {
        // Poll rather than block in `recv`: a blocked receiver makes every
        // `log` call pay a futex wake-up (measured: ~25 µs per request);
        // a drain every WRITE_INTERVAL costs the request path nothing.
        std::thread::sleep(WRITE_INTERVAL);
        // A reopen asked before these lines were queued applies to them.
        if reopen.swap(false, Ordering::Relaxed) {
            if let Sink::File(path) = &target {
                let _ = out.flush();
                match open(path) {
                    Ok(file) => out = std::io::BufWriter::with_capacity(64 * 1024, Box::new(file)),
                    Err(e) => eprintln!("access log: cannot reopen {}: {e}", path.display()),
                }
            }
        }
        let mut wrote = false;
        let closed = loop {
            match rx.try_recv() {
                Ok(line) => {
                    if let Err(e) = writeln!(out, "{line}") {
                        eprintln!("access log: cannot write: {e}");
                    }
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        // Everything queued is written: flush so that `tail -f` sees it.
        if wrote {
            if let Err(e) = out.flush() {
                eprintln!("access log: cannot write: {e}");
            }
        }
        if closed {
            return;
        }
    }
}

/// Now, as the log writes it.
pub(crate) fn now_rfc3339() -> String {
    let format = time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    // Milliseconds are enough and keep lines short.
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&format).unwrap_or_default()
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
