//! Command line: run the proxy (`-c FILE`, `-t` to check, `-u` to take over
//! from a running instance), `keygen`, `id`, `demo`. Only wiring lives here.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use pingora::server::configuration::Opt;

use portal_proxy::commands::{self, Command, Then};
use portal_proxy::config::Config;
use portal_proxy::server;

/// mimalloc instead of glibc's malloc: Pingora and rustls allocate and free
/// buffers on every request, and glibc's allocator spent about a tenth of
/// the proxy's CPU time doing so (benches/README.md, tuning log). The
/// default feature `mimalloc`; without it, the system's malloc.
#[cfg(feature = "mimalloc")]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opt = cli.run.into_pingora();
    portal_proxy::observe::logging::init();
    match cli.command {
        Some(command) => match commands::execute(command, portal_proxy::clock::unix_now()) {
            Ok(Then::Print(out)) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Ok(Then::Run(file)) => run(&file, opt),
            Err(e) => fail(e),
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

fn fail(message: String) -> ExitCode {
    eprintln!("portal-proxy: {message}");
    ExitCode::FAILURE
}
