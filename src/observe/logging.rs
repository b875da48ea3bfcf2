//! The process log (README.md, "Operating it": credentials never reach a log).
//! `env_logger` to stderr, `RUST_LOG` setting the level (default `info`),
//! behind a filter of our own for Pingora's lines: Pingora prints raw
//! request bytes and whole request headers in its debug lines (and, on
//! some parse errors, in its error lines, after `buf: `), which would
//! carry cookies, tokens and signatures. So Pingora's debug and trace
//! lines are never printed, and any of its lines holding raw bytes has
//! them withheld.

#![forbid(unsafe_code)]

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The marker after which Pingora's errors quote the bytes received.
const RAW_BYTES_MARKER: &str = "buf: ";

struct Redacting {
    inner: env_logger::Logger,
    /// The second of the last connection error line printed, and how many
    /// were left out since.
    burst: std::sync::Mutex<(u64, u64)>,
}

/// Pingora logs every failed accept and handshake at error level: under
/// a flood of connections (what the guard refuses and sheds) that is a
/// line per connection. At most one such line a second is printed, with
/// the count of those left out.
const CONNECTION_ERRORS: [&str; 2] = ["Downstream handshake error", "Accept() failed"];

fn from_pingora(target: &str) -> bool {
    target.starts_with("pingora")
}

impl Log for Redacting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if from_pingora(metadata.target()) && metadata.level() > Level::Info {
            return false;
        }
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if !from_pingora(record.target()) {
            return self.inner.log(record);
        }
        let text = record.args().to_string();
        if CONNECTION_ERRORS.iter().any(|m| text.starts_with(m)) {
            let second = crate::clock::unix_now() as u64;
            let mut burst = self.burst.lock().unwrap_or_else(|e| e.into_inner());
            if burst.0 == second {
                burst.1 += 1;
                return;
            }
            let left_out = std::mem::replace(&mut *burst, (second, 0)).1;
            if left_out > 0 {
                self.inner.log(
                    &Record::builder()
                        .args(format_args!(
                            "{left_out} more connection error line(s) left out"
                        ))
                        .metadata(record.metadata().clone())
                        .build(),
                );
            }
        }
        match redact(&text) {
            Some(redacted) => self.inner.log(
                &Record::builder()
                    .args(format_args!("{redacted}"))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
            None => self.inner.log(record),
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

/// A log line with the raw bytes it quotes withheld, if it quotes any.
fn redact(line: &str) -> Option<String> {
    let at = line.find(RAW_BYTES_MARKER)?;
    Some(format!(
        "{}{RAW_BYTES_MARKER}<request bytes withheld>",
        &line[..at]
    ))
}

/// Installs the process logger; once, before anything logs.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    let logger = Redacting {
        inner,
        burst: std::sync::Mutex::new((0, 0)),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max.max(LevelFilter::Error));
    }
}

#[cfg(test)]
#[path = "logging_tests.rs"]
mod tests;
