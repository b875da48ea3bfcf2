//! The request pool of `benches/load.sh`'s signed scenario: N GET requests
//! signed as a peer Portal (RFC 9421, the profile of docs/signing.md), each
//! with a fresh nonce and `created` = now, written one after the other as
//! raw HTTP/1.1 (each ends with an empty line) for `benches/signed.lua`,
//! which replays each exactly once.
//!
//! ```sh
//! cargo build --release --example signed_pool
//! target/release/examples/signed_pool --key peer.pem --host app.abc123.bench.test \
//!     --path /peer/ --count 50000 --validity 30 --out pool.http
//! target/release/examples/signed_pool --verify-bench
//! ```
//!
//! `--verify-bench` prints the time of one `ed25519 verify_strict` (and of
//! one ed25519 signature) on this
//! machine (median of 7 batches), the yardstick of the signed path's
//! budget: public path + one verify + 10 us.

use std::io::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ed25519_dalek::{Signer as _, SigningKey};
use portal_core::signature::{signed_headers, Outgoing};

#[derive(Parser)]
struct Args {
    /// The peer's identity key (PKCS#8 PEM, `portal-proxy keygen`).
    #[arg(long, required_unless_present = "verify_bench")]
    key: Option<std::path::PathBuf>,
    /// The `Host` the requests are sent with (the signed `@authority`).
    #[arg(long, required_unless_present = "verify_bench")]
    host: Option<String>,
    /// The path (and query) requested.
    #[arg(long, default_value = "/peer/")]
    path: String,
    /// Requests in the pool.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Seconds each signature stays valid from now (at most 300).
    #[arg(long, default_value_t = 60)]
    validity: i64,
    /// Where to write the pool.
    #[arg(long, required_unless_present = "verify_bench")]
    out: Option<std::path::PathBuf>,
    /// Print the time of one ed25519 verify_strict, then of one ed25519
    /// signature (what the answer to a verified peer request costs), in
    /// microseconds, on one line, and exit.
    #[arg(long)]
    verify_bench: bool,
}

fn main() {
    let args = Args::parse();
    if args.verify_bench {
        let (verify, sign) = crypto_us();
        println!("{verify:.2} {sign:.2}");
        return;
    }
    let (key, host, out) = (args.key.unwrap(), args.host.unwrap(), args.out.unwrap());
    let identity = portal_proxy::identity::load(&key).unwrap_or_else(|e| {
        eprintln!("signed_pool: {}: {e}", key.display());
        std::process::exit(2)
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let outgoing = Outgoing {
        method: "GET",
        authority: &host,
        path_and_query: &args.path,
        body: None,
    };
    // Signing is the slow part (an ed25519 signature each): all cores.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = args.count.div_ceil(workers.max(1)).max(1);
    let chunks: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.count)
            .step_by(per)
            .map(|start| {
                let n = per.min(args.count - start);
                let (identity, outgoing, host, path) = (&identity, &outgoing, &host, &args.path);
                s.spawn(move || {
                    let mut buf = Vec::with_capacity(n * 480);
                    for _ in 0..n {
                        let headers = signed_headers(
                            &identity.signing_key,
                            &identity.id,
                            outgoing,
                            now,
                            args.validity,
                            &portal_proxy::clock::fresh_nonce(),
                        )
                        .expect("a GET without body always signs");
                        write!(buf, "GET {path} HTTP/1.1\r\nHost: {host}\r\n").unwrap();
                        for (name, value) in headers {
                            write!(buf, "{name}: {value}\r\n").unwrap();
                        }
                        buf.extend_from_slice(b"\r\n");
                    }
                    buf
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out).unwrap_or_else(|e| {
        eprintln!("signed_pool: {}: {e}", out.display());
        std::process::exit(2)
    }));
    for chunk in chunks {
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
}

/// Microseconds of one `verify_strict` and of one signature over a
/// realistic signature base (about 300 bytes), each the median of 7
/// batches.
fn crypto_us() -> (f64, f64) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let verifying = key.verifying_key();
    let base = format!(
        "\"@method\": GET\n\"@authority\": bench.abcdef.bench.test\n\"@path\": /peer/\n\"@query\": ?\n\
         \"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\");created=1795614242;\
         expires=1795614302;nonce=\"AkVpAKYq_POzcJK3B5DXDQ\";keyid=\"{}\";alg=\"ed25519\"",
        "a".repeat(103)
    );
    let signature = key.sign(base.as_bytes());
    let verify = median_us(|| {
        verifying
            .verify_strict(std::hint::black_box(base.as_bytes()), &signature)
            .expect("verifies");
    });
    let sign = median_us(|| {
        std::hint::black_box(key.sign(std::hint::black_box(base.as_bytes())));
    });
    (verify, sign)
}

/// Microseconds of one call of `f`: the median of 7 batches of 2000.
fn median_us(mut f: impl FnMut()) -> f64 {
    const N: u32 = 2000;
    let mut batches: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..N {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(N)
        })
        .collect();
    batches.sort_by(|a, b| a.total_cmp(b));
    batches[3]
}
