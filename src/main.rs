//! Command line: run the proxy (`-c FILE`, `-t` to check, `-u` to take over
//! from a running instance), `keygen`, `id`, `demo`. Only wiring lives here.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pingora::server::configuration::Opt;

use portal_proxy::config::Config;
use portal_proxy::{commands, demo, server};

/// mimalloc instead of glibc's malloc: Pingora and rustls allocate and free
/// buffers on every request, and glibc's allocator spent about a tenth of
/// the proxy's CPU time doing so (benches/README.md, tuning log).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the config is read from when `-c` is not given.
const DEFAULT_CONFIG: &str = "/etc/portal-proxy/portal-proxy.yaml";

#[derive(Parser)]
#[command(
    name = "portal-proxy",
    version,
    about = "The edge proxy of a Portal: TLS, routing to apps, who is calling, access control",
    long_about = "The edge proxy of a Portal: terminates TLS for *.<short_id>.<base_domain>, \
                  routes each app's subdomain to it, identifies the caller (the owner's \
                  devices, peer Portals, or anonymous) and applies each app's path rules.\n\n\
                  Without a command it runs the proxy with the config given by -c.",
    after_help = "Examples:\n  \
                  portal-proxy -t -c /etc/portal-proxy/portal-proxy.yaml   check config, keys, certificate and state\n  \
                  portal-proxy -c /etc/portal-proxy/portal-proxy.yaml      run in the foreground\n  \
                  portal-proxy demo                                      try it on this machine\n\n\
                  Logs go to standard error; RUST_LOG sets the level (default info)."
)]
struct Cli {
    #[command(flatten)]
    run: RunOptions,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How the proxy runs (the options Pingora knows, with their meaning here).
#[derive(clap::Args)]
struct RunOptions {
    /// The YAML config file [default: /etc/portal-proxy/portal-proxy.yaml]
    #[arg(short, long, value_name = "FILE")]
    conf: Option<String>,
    /// Check the config, identity key, certificate and state, print every
    /// problem, and exit (non-zero if there is any)
    #[arg(short, long)]
    test: bool,
    /// Run in the background (as the systemd unit does)
    #[arg(short, long)]
    daemon: bool,
    /// Take the listening sockets over from the running proxy (graceful
    /// upgrade: `systemctl reload` does this)
    #[arg(short, long)]
    upgrade: bool,
}

impl RunOptions {
    /// Pingora's own options.
    fn into_pingora(self) -> Opt {
        Opt {
            upgrade: self.upgrade,
            daemon: self.daemon,
            nocapture: false,
            test: self.test,
            conf: self.conf,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write a new ed25519 identity key (PKCS#8 PEM, mode 0600) and print
    /// its Portal ID.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        path: PathBuf,
    },
    /// Print the Portal ID and short ID of a key file (the Portal's domain
    /// is <short_id>.<base_domain>).
    Id {
        /// The identity key (PKCS#8 PEM).
        path: PathBuf,
        /// Print a `peers.json` entry for this key instead, with this name.
        #[arg(long, value_name = "NAME")]
        peer_entry: Option<String>,
        /// The entry's `address` (host:port to connect to instead of DNS).
        #[arg(long, requires = "peer_entry")]
        address: Option<String>,
    },
    /// Print the headers that sign a request as this Portal, for
    /// `curl -H @file` (the peer request profile of the README).
    Sign {
        /// The Portal's identity key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The request method.
        #[arg(short = 'X', long, default_value = "GET")]
        method: String,
        /// A file whose bytes are the request body.
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// Seconds the signature stays valid (at most the receiver's limit,
        /// 300 by default).
        #[arg(long, default_value_t = 60)]
        validity: i64,
        /// The full URL: https://<app>.<short_id>.<base_domain>/path?query
        url: String,
    },
    /// Print the JSON Schema of the config file (shipped as
    /// conf/portal-proxy.schema.json) for editors.
    ConfigSchema,
    /// Start a demo Portal on this machine: a generated key, a CA and a
    /// certificate for <short_id>.localhost, one demo app; prints what to
    /// try with curl.
    Demo {
        /// Folder for the demo's files (kept between runs, so the address
        /// stays the same).
        #[arg(long, default_value = "portal-proxy-demo")]
        dir: PathBuf,
        /// Port of the HTTPS listener.
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        /// Port of the plain-HTTP listener (redirects to HTTPS).
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        /// Port of the internal listener (apps calling peers).
        #[arg(long, default_value_t = 8081)]
        internal_port: u16,
        /// Port of the metrics listener (/metrics, /healthz, /readyz).
        #[arg(long, default_value_t = 8082)]
        metrics_port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opt = cli.run.into_pingora();
    portal_proxy::observe::logging::init();
    match cli.command {
        Some(Command::Keygen { path }) => finish(commands::keygen(&path)),
        Some(Command::ConfigSchema) => finish(Ok(commands::config_schema())),
        Some(Command::Id {
            path,
            peer_entry,
            address,
        }) => finish(commands::id(&path, peer_entry, address)),
        Some(Command::Sign {
            key,
            method,
            body_file,
            validity,
            url,
        }) => finish(commands::sign(
            &commands::SignRequest {
                key: &key,
                method: &method,
                body_file: body_file.as_deref(),
                validity,
                url: &url,
            },
            portal_proxy::clock::unix_now(),
        )),
        Some(Command::Demo {
            dir,
            https_port,
            http_port,
            internal_port,
            metrics_port,
        }) => match demo::prepare(
            &dir,
            demo::DemoPorts {
                https: https_port,
                http: http_port,
                internal: internal_port,
                metrics: metrics_port,
            },
        ) {
            Ok(d) => {
                println!("{}", d.instructions());
                run(&d.config_file, opt)
            }
            Err(e) => fail(format!("demo: {e}")),
        },
        None => {
            let file = PathBuf::from(opt.conf.as_deref().unwrap_or(DEFAULT_CONFIG));
            run(&file, opt)
        }
    }
}

fn run(file: &Path, opt: Opt) -> ExitCode {
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) if opt.test => {
            eprintln!("{e}");
            server::verdict(&file.display().to_string(), e.errors.len());
            return ExitCode::FAILURE;
        }
        Err(e) => return fail(e.to_string()),
    };
    if opt.test {
        return if server::check(&config) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let loaded = match server::load(&config) {
        Ok(l) => l,
        Err(errors) => return fail(errors.join("\n")),
    };
    match server::build(&config, loaded, opt) {
        Ok(server) => server.run_forever(),
        Err(e) => fail(e),
    }
}

/// Prints a subcommand's output, or its error.
fn finish(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("portal-proxy: {message}");
    ExitCode::FAILURE
}
