//! Response compression's encoders (docs/config.md, "Response
//! compression"): streaming encoders of this module ([`Gzip`], [`Zstd`],
//! [`Brotli`]) that flush each chunk the app sends (a sync flush: what
//! the client has received decodes to everything the app sent so far, so
//! long polls, progressive pages and token streams flow), at most
//! `compression.max_concurrent` at once (each holds a window and tables:
//! up to 2 MB), counted in `/metrics`. What is compressed is decided by
//! `portal_core::encoding`.
//!
//! May import: `observe`, `clock`.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pingora::protocols::http::compression::Encode;
use portal_core::encoding::Coding;

use crate::observe::metrics::METRICS;

/// The level of each coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub gzip: usize,
    pub brotli: usize,
    pub zstd: usize,
}

/// `compression:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    /// The smallest body compressed when its length is known.
    pub min_bytes: usize,
    /// Answers compressed at once, at most.
    pub max_concurrent: usize,
    pub levels: Levels,
}

impl Default for Settings {
    /// Levels chosen from `cargo bench --bench compression`
    /// (benches/README.md): each the cheapest that makes a 700 KB SPA
    /// bundle about 26.5 % of its size. At most 32 answers compressed at
    /// once: an encoder holds 0.4 MB (gzip) to 2.0 MB (zstd), so about
    /// 65 MB at worst, whatever clients do.
    fn default() -> Self {
        Settings {
            enabled: true,
            min_bytes: 1024,
            max_concurrent: 32,
            levels: Levels {
                gzip: 4,
                brotli: 2,
                zstd: 3,
            },
        }
    }
}

impl Levels {
    fn of(&self, coding: Coding) -> usize {
        match coding {
            Coding::Zstd => self.zstd,
            Coding::Brotli => self.brotli,
            Coding::Gzip => self.gzip,
        }
    }
}

/// An encoder of `coding` at `level`.
pub fn encoder(coding: Coding, level: usize) -> Option<Box<dyn Encode + Send + Sync>> {
    let level = u32::try_from(level).ok()?;
    match coding {
        Coding::Zstd => Some(Box::new(Zstd::new(level, Zstd::WINDOW_LOG).ok()?)),
        Coding::Brotli => Some(Box::new(Brotli::new(level))),
        Coding::Gzip => Some(Box::new(Gzip::new(level))),
    }
}

/// What each coding's crate offers under its own names: a writer into a
/// `Vec<u8>` whose `flush` makes all input so far decodable from the
/// output, and which ends its stream when finished.
pub trait Compressor: std::io::Write + Send + Sync + Sized {
    /// The output written so far, taken chunk by chunk.
    fn output(&mut self) -> &mut Vec<u8>;
    /// Ends the stream: the rest of the output, its trailer included.
    fn finish(self) -> std::io::Result<Vec<u8>>;
}

/// gzip (`flate2`): `flush` is Z_SYNC_FLUSH.
impl Compressor for flate2::write::GzEncoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self) -> std::io::Result<Vec<u8>> {
        flate2::write::GzEncoder::finish(self)
    }
}

/// zstd: `flush` ends the current block.
impl Compressor for zstd::stream::write::Encoder<'static, Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self) -> std::io::Result<Vec<u8>> {
        zstd::stream::write::Encoder::finish(self)
    }
}

/// Brotli: `flush` is BROTLI_OPERATION_FLUSH; `into_inner` writes the
/// last meta-block.
impl Compressor for brotli::CompressorWriter<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self) -> std::io::Result<Vec<u8>> {
        Ok(self.into_inner())
    }
}

/// A streaming encoder of one answer that flushes each chunk (Pingora
/// 0.9.1's gzip holds what it has not compressed until its buffer fills
/// or the answer ends, so a streamed answer reached the client only at its
/// end), ends its stream at the end, and counts what it read, wrote and
/// took.
pub struct Streaming<C> {
    name: &'static str,
    /// `None` once finished.
    compressor: Option<C>,
    read: usize,
    written: usize,
    took: std::time::Duration,
}

impl<C> Streaming<C> {
    fn with(name: &'static str, compressor: C) -> Self {
        Streaming {
            name,
            compressor: Some(compressor),
            read: 0,
            written: 0,
            took: std::time::Duration::ZERO,
        }
    }
}

impl<C: Compressor> Encode for Streaming<C> {
    fn encode(&mut self, input: &[u8], end: bool) -> pingora::Result<Bytes> {
        use pingora::OrErr;
        let Some(compressor) = self.compressor.as_mut() else {
            return Ok(Bytes::new());
        };
        let started = std::time::Instant::now();
        self.read += input.len();
        let failed = || format!("while compressing with {}", self.name);
        compressor
            .write_all(input)
            .or_err_with(pingora::ErrorType::InternalError, failed)?;
        let out = if end {
            let compressor = self.compressor.take().expect("present above");
            compressor
                .finish()
                .or_err_with(pingora::ErrorType::InternalError, failed)?
        } else {
            if !input.is_empty() {
                // All input so far decodes from the output.
                compressor
                    .flush()
                    .or_err_with(pingora::ErrorType::InternalError, failed)?;
            }
            std::mem::take(compressor.output())
        };
        self.written += out.len();
        self.took += started.elapsed();
        Ok(out.into())
    }

    fn stat(&self) -> (&'static str, usize, usize, std::time::Duration) {
        (self.name, self.read, self.written, self.took)
    }
}

/// gzip.
pub type Gzip = Streaming<flate2::write::GzEncoder<Vec<u8>>>;

impl Gzip {
    pub fn new(level: u32) -> Self {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        Streaming::with("gzip", encoder)
    }
}

/// zstd with a bounded window. Pingora 0.9.1's takes the level's own
/// window (2 MiB at level 3): 3.6 MB held per answer against 2.0 MB with
/// a 512 KiB window, for the same bytes on a 700 KB bundle (`cargo bench
/// --bench compression`).
pub type Zstd = Streaming<zstd::stream::write::Encoder<'static, Vec<u8>>>;

impl Zstd {
    /// 2^19 bytes: 512 KiB, as Brotli's.
    pub const WINDOW_LOG: u32 = 19;

    pub fn new(level: u32, window_log: u32) -> std::io::Result<Self> {
        let level = i32::try_from(level).map_err(std::io::Error::other)?;
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level)?;
        encoder.window_log(window_log)?;
        Ok(Streaming::with("zstd", encoder))
    }
}

/// Brotli that ends its stream. Pingora 0.9.1's only flushes at the end
/// and never writes Brotli's last meta-block, so a strict decoder (the
/// `brotli` crate's) refuses its output as truncated.
pub type Brotli = Streaming<brotli::CompressorWriter<Vec<u8>>>;

impl Brotli {
    /// The window Pingora uses: 2^19 bytes (512 KiB).
    const WINDOW_BITS: u32 = 19;

    pub fn new(level: u32) -> Self {
        let writer = brotli::CompressorWriter::new(Vec::new(), 4096, level, Self::WINDOW_BITS);
        Streaming::with("brotli", writer)
    }
}

/// The encoders of one listener, and how many are at work.
pub(crate) struct Compressors {
    pub settings: Settings,
    active: Arc<AtomicUsize>,
}

impl Compressors {
    pub(crate) fn new(settings: Settings) -> Self {
        Compressors {
            settings,
            active: Arc::default(),
        }
    }

    /// An encoder for one answer, or `None` at `max_concurrent` (the answer
    /// then goes uncompressed).
    pub(crate) fn start(&self, coding: Coding) -> Option<Compressing> {
        let max = self.settings.max_concurrent;
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            });
        if taken.is_err() {
            METRICS
                .compression_skipped
                .inc(crate::observe::metrics::CompressionSkipped::MaxConcurrent);
            return None;
        }
        let active = Slot(self.active.clone());
        let encoder = encoder(coding, self.settings.levels.of(coding))?;
        METRICS
            .compressed_responses
            .with_label_values(&[coding.token()])
            .inc();
        Some(Compressing {
            encoder,
            coding,
            _active: active,
        })
    }
}

/// A place among the encoders at work, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One answer being compressed.
pub(crate) struct Compressing {
    encoder: Box<dyn Encode + Send + Sync>,
    coding: Coding,
    _active: Slot,
}

impl Compressing {
    /// The compressed bytes of the next body chunk (`None`: no data), all
    /// that is left at `end`. Possibly empty: the encoder holds small
    /// inputs until it has enough to compress.
    pub(crate) fn encode(&mut self, data: Option<&[u8]>, end: bool) -> pingora::Result<Bytes> {
        self.encoder.encode(data.unwrap_or_default(), end)
    }
}

impl Drop for Compressing {
    fn drop(&mut self) {
        let (_, read, written, _) = self.encoder.stat();
        let bytes = &METRICS.compression_bytes;
        let token = self.coding.token();
        bytes.with_label_values(&[token, "in"]).inc_by(read as u64);
        bytes
            .with_label_values(&[token, "out"])
            .inc_by(written as u64);
    }
}

#[cfg(test)]
mod tests;
