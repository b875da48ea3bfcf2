//! Bare Pingora, the yardstick of `benches/load.sh`: the engine portal-proxy
//! is built on, doing only the proxy's plain job. TLS (rustls, HTTP/2 and
//! HTTP/1.1 by ALPN) on one listener, every request forwarded to one fixed
//! upstream over keep-alive connections, with `Host` passed on and
//! `X-Forwarded-For`/`-Proto`/`-Host` set (as every proxy of the benchmark
//! does); no routing, no access decision, no metrics, no access log.
//!
//! ```sh
//! cargo build --release --example bare_pingora
//! target/release/examples/bare_pingora --listen 127.0.0.1:8443 \
//!     --upstream 127.0.0.1:8080 --cert cert.pem --key key.pem --threads 2
//! ```
//! SIGINT stops it at once (Pingora's fast shutdown).

use async_trait::async_trait;
use clap::Parser;
use pingora::apps::HttpServerOptions;
use pingora::http::RequestHeader;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[derive(Parser)]
struct Args {
    /// `ip:port` of the TLS listener.
    #[arg(long)]
    listen: String,
    /// `ip:port` of the upstream (plain HTTP/1.1).
    #[arg(long)]
    upstream: std::net::SocketAddr,
    #[arg(long)]
    cert: String,
    #[arg(long)]
    key: String,
    /// Worker threads, as portal-proxy's `server.threads`.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

struct Bare(std::net::SocketAddr);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .map(|h| h.as_bytes().to_vec())
            .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes().to_vec()))
            .unwrap_or_default();
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        up.insert_header("Host", host.clone())?;
        up.insert_header("X-Forwarded-For", client)?;
        up.insert_header("X-Forwarded-Proto", "https")?;
        up.insert_header("X-Forwarded-Host", host)?;
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare(args.upstream));
    // The same request limit per HTTP/1 connection as portal-proxy and nginx.
    let mut options = HttpServerOptions::default();
    options.keepalive_request_limit = Some(1000);
    if let Some(app) = proxy.app_logic_mut() {
        app.server_options = Some(options);
    }
    let mut tls = TlsSettings::intermediate(&args.cert, &args.key).expect("certificate and key");
    tls.enable_h2();
    proxy.add_tls_with_settings(&args.listen, None, tls);
    server.add_service(proxy);
    server.run_forever();
}
