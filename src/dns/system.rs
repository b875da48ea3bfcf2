//! The real [`Lookup`]: `hickory-resolver` with the system's
//! configuration (`/etc/resolv.conf`: name servers, search domains,
//! `ndots`; `/etc/hosts`), or the name servers of `resolver.nameservers`.
//! Its own cache is off: [`super::Dns`] is the cache.
//!
//! Lookups run on a runtime of their own (one thread, started at the
//! first lookup, so after `-d` forked): the resolver keeps connections
//! whose tasks must live on one runtime, whichever listener asked.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use log::warn;

use super::{Answer, Lookup, LookupError, Settings};

/// Where the system's configuration is read.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Asked when `/etc/resolv.conf` cannot be read, as the C library does.
const FALLBACK_NAMESERVER: ([u8; 4], u16) = ([127, 0, 0, 1], 53);

/// The lookups' runtime: never dropped (it lives as long as the process).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dns")
            .enable_all()
            .build()
            .expect("a one-thread runtime starts")
    })
}

/// `hickory-resolver` over UDP (TCP for truncated answers).
pub struct Hickory {
    resolver: TokioResolver,
}

fn server(addr: SocketAddr, protocol: Protocol) -> NameServerConfig {
    let mut server = NameServerConfig::new(addr, protocol);
    // As for resolv.conf's servers: NXDOMAIN from one asks the next.
    server.trust_negative_responses = false;
    server
}

impl Hickory {
    /// The resolver of `settings`: the system's configuration, its name
    /// servers replaced by `settings.nameservers` when given.
    pub fn new(settings: &Settings) -> Hickory {
        let (system, mut opts) = match hickory_resolver::system_conf::read_system_conf() {
            Ok(found) => found,
            Err(e) => {
                let fallback = SocketAddr::from(FALLBACK_NAMESERVER);
                if settings.nameservers.is_empty() {
                    warn!("DNS: cannot read {RESOLV_CONF} ({e}): asking {fallback}, with no search domain");
                }
                let config = ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    vec![
                        server(fallback, Protocol::Udp),
                        server(fallback, Protocol::Tcp),
                    ],
                );
                (config, ResolverOpts::default())
            }
        };
        let config = if settings.nameservers.is_empty() {
            system
        } else {
            let servers = settings
                .nameservers
                .iter()
                .flat_map(|&a| [server(a, Protocol::Udp), server(a, Protocol::Tcp)])
                .collect::<Vec<_>>();
            ResolverConfig::from_parts(system.domain().cloned(), system.search().to_vec(), servers)
        };
        // `Dns` caches, bounds the whole lookup and retries later.
        opts.cache_size = 0;
        opts.timeout = settings.timeout;
        opts.attempts = 1;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Hickory { resolver }
    }
}

/// NXDOMAIN and "no record" are answers; anything else is a failure.
fn classify(e: ResolveError) -> LookupError {
    let definitive = e.proto().is_some_and(|p| {
        matches!(
            p.kind(),
            ProtoErrorKind::NoRecordsFound {
                response_code: ResponseCode::NXDomain | ResponseCode::NoError,
                ..
            }
        )
    });
    if definitive {
        LookupError::NotFound(e.to_string())
    } else {
        LookupError::Failed(e.to_string())
    }
}

impl Hickory {
    /// The TXT records at `name` (each record's strings joined), asked
    /// now (no cache): used by ACME to see its challenge record appear.
    /// `Ok(empty)` when the name has none yet.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let resolver = self.resolver.clone();
        let name = name.to_string();
        let asked = runtime().spawn(async move { resolver.txt_lookup(name).await });
        match asked
            .await
            .map_err(|e| LookupError::Failed(format!("the lookup task failed: {e}")))?
            .map_err(classify)
        {
            Ok(found) => Ok(found
                .iter()
                .map(|txt| {
                    txt.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>()
                })
                .collect()),
            Err(LookupError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Lookup for Hickory {
    async fn lookup(&self, name: &str) -> Result<Answer, LookupError> {
        let resolver = self.resolver.clone();
        let name = name.to_string();
        let asked = runtime().spawn(async move { resolver.lookup_ip(name).await });
        let found = asked
            .await
            .map_err(|e| LookupError::Failed(format!("the lookup task failed: {e}")))?
            .map_err(classify)?;
        Ok(Answer {
            ttl: found
                .valid_until()
                .saturating_duration_since(Instant::now()),
            addrs: found.iter().collect(),
        })
    }
}
