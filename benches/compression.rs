//! The cost of response compression (docs/config.md, "Response
//! compression"), to choose each coding's level: the CPU time of
//! compressing a typical SPA bundle as the proxy streams it (16 KiB
//! chunks through the same encoders), the bytes saved, and the memory an
//! encoder holds, and what flushing every chunk an app sends costs
//! (`flush/<coding>/<chunk>`: every chunk size against one flush of the
//! whole). Run with `cargo bench --bench compression`; the ratios and
//! memory are printed before criterion's times.
//!
//! The bundle: the minified JavaScript of d3, Bootstrap and Moment.js that
//! Debian ships (`/usr/share/javascript`, `/usr/share/nodejs`), about 1
//! MB, what a single-page app sends; where they are missing, generated
//! JavaScript-like text (it compresses better than real code: the printed
//! name says which).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pingora::protocols::http::compression::Encode;
use portal_core::encoding::Coding;
use portal_proxy::compress::{encoder, Zstd};

/// Each file of the bundle, where Debian's packages put it (`libjs-d3`,
/// `node-bootstrap` or `libjs-bootstrap5`, `libjs-moment`; the first found).
const BUNDLE_FILES: [&[&str]; 3] = [
    &["/usr/share/javascript/d3/d3.min.js"],
    &[
        "/usr/share/nodejs/bootstrap/dist/js/bootstrap.bundle.min.js",
        "/usr/share/nodejs/bootstrap/js/bootstrap.bundle.min.js",
        "/usr/share/javascript/bootstrap5/js/bootstrap.bundle.min.js",
    ],
    &["/usr/share/javascript/moment/moment-with-locales.min.js"],
];

/// The levels measured for each coding.
const LEVELS: [(Coding, &[usize]); 3] = [
    (Coding::Zstd, &[1, 3, 6]),
    (Coding::Brotli, &[1, 2, 4]),
    (Coding::Gzip, &[1, 4, 6]),
];

/// The bytes malloc has handed out and not got back (glibc's count, which
/// also covers libzstd's and zlib's C allocations).
#[allow(unsafe_code)]
fn heap() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

/// The bundle and what it is.
fn bundle() -> (Vec<u8>, &'static str) {
    let files: Vec<Vec<u8>> = BUNDLE_FILES
        .iter()
        .filter_map(|places| places.iter().find_map(|f| std::fs::read(f).ok()))
        .collect();
    if files.len() == BUNDLE_FILES.len() {
        return (files.concat(), "d3 + bootstrap + moment (minified)");
    }
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < 1_000_000 {
        out.extend_from_slice(
            format!(
                "function h{i}(e){{return r(e.t,{{i:{},l:\"x{}\"}})}}",
                i * 7919 % 1000,
                i % 97
            )
            .as_bytes(),
        );
        i += 1;
    }
    (out, "generated JavaScript-like text")
}

/// Compresses `data` in 16 KiB chunks, as a streamed answer; the size out.
fn compress(coding: Coding, level: usize, data: &[u8]) -> usize {
    compress_in(coding, level, data, 16384)
}

/// Compresses `data` in chunks of `chunk` bytes, each flushed as the proxy
/// flushes every chunk an app sends; the size out. A chunk of the whole
/// bundle is one flush at the end: what the encoder makes unflushed.
fn compress_in(coding: Coding, level: usize, data: &[u8], chunk: usize) -> usize {
    let mut e = encoder(coding, level).unwrap();
    let mut out = 0;
    for chunk in data.chunks(chunk) {
        out += e.encode(chunk, false).unwrap().len();
    }
    out + e.encode(&[], true).unwrap().len()
}

/// The default level of each coding (docs/config.md).
const DEFAULTS: [(Coding, usize); 3] = [(Coding::Zstd, 3), (Coding::Gzip, 4), (Coding::Brotli, 2)];

/// The chunk sizes the flush cost is printed and timed for.
const CHUNKS: [usize; 4] = [usize::MAX, 65536, 16384, 4096];

/// What one encoder in the middle of an answer holds on the heap: 10 of
/// them, each fed the first 256 KiB of the bundle, not finished.
fn memory_per_encoder(coding: Coding, level: usize, data: &[u8]) -> usize {
    let before = heap();
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut e = encoder(coding, level).unwrap();
        for chunk in data[..262_144.min(data.len())].chunks(16384) {
            black_box(e.encode(chunk, false).unwrap());
        }
        held.push(e);
    }
    let grown = heap().saturating_sub(before);
    drop(held);
    grown / 10
}

fn bench(c: &mut Criterion) {
    let (data, what) = bundle();
    println!("bundle: {what}, {} bytes", data.len());
    for (coding, levels) in LEVELS {
        for &level in levels {
            let out = compress(coding, level, &data);
            println!(
                "{:>4} level {level:>2}: {out:>8} bytes ({:.1} % of the bundle, {:.0} KiB saved), about {} KiB held per encoder",
                coding.token(),
                100.0 * out as f64 / data.len() as f64,
                (data.len() - out) as f64 / 1024.0,
                memory_per_encoder(coding, level, &data) / 1024
            );
        }
    }
    // zstd's window: what it holds against what it saves.
    for window_log in [19, 20, 21] {
        let mut e = Zstd::new(3, window_log).unwrap();
        let before = heap();
        let mut out = 0;
        for chunk in data[..262_144].chunks(16384) {
            out += e.encode(chunk, false).unwrap().len();
        }
        let held = heap().saturating_sub(before);
        for chunk in data[262_144..].chunks(16384) {
            out += e.encode(chunk, false).unwrap().len();
        }
        out += e.encode(&[], true).unwrap().len();
        println!(
            "zstd level  3, window 2^{window_log}: {out:>8} bytes ({:.1} %), about {} KiB held",
            100.0 * out as f64 / data.len() as f64,
            held / 1024
        );
    }
    // What flushing each chunk costs (bytes), at the default levels.
    for (coding, level) in DEFAULTS {
        let whole = compress_in(coding, level, &data, usize::MAX);
        for chunk in CHUNKS {
            let out = compress_in(coding, level, &data, chunk);
            let label = if chunk == usize::MAX {
                "whole".to_string()
            } else {
                format!("{} KiB", chunk / 1024)
            };
            println!(
                "{:>4} level {level}, flushed every {label:>6}: {out:>8} bytes ({:.1} %, {:+.2} % of the bundle over one flush)",
                coding.token(),
                100.0 * out as f64 / data.len() as f64,
                100.0 * (out as f64 - whole as f64) / data.len() as f64,
            );
        }
    }
    let mut group = c.benchmark_group("flush");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    for (coding, level) in DEFAULTS {
        for chunk in CHUNKS {
            let label = if chunk == usize::MAX {
                "whole".to_string()
            } else {
                format!("{}k", chunk / 1024)
            };
            group.bench_function(format!("{}/{label}", coding.token()), |b| {
                b.iter(|| compress_in(coding, level, black_box(&data), chunk))
            });
        }
    }
    group.finish();
    let mut group = c.benchmark_group("compression");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    for (coding, levels) in LEVELS {
        for &level in levels {
            group.bench_function(format!("{}/{level}", coding.token()), |b| {
                b.iter(|| compress(coding, level, black_box(&data)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
