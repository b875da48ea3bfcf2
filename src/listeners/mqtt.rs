//! MQTT over TLS (README.md, "How requests are handled"): the `listen.mqtts` listener terminates
//! TLS with the Portal's certificate, picks the app by the SNI name
//! `<app>.<domain>`, and relays bytes to the app's `mqtt` entrypoint over
//! plain TCP. No access control, as in Portal: MQTT brokers authenticate
//! their clients themselves. The handshake deadline and the per-client
//! limit of `admission::guard` apply, and a relay idle both ways for
//! `limits.mqtt_idle_timeout_seconds` is closed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{debug, info, warn};
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::state::SharedState;
use portal_core::route::Router;

/// The MQTT listener's connection handling.
pub(crate) struct MqttRelay {
    pub state: Arc<SharedState>,
    pub router: Arc<Router>,
    /// Upstream names, cached.
    pub dns: Arc<crate::dns::Dns>,
    pub connect_timeout: Duration,
    /// A relay with no byte either way for this long is closed
    /// (`limits.mqtt_idle_timeout_seconds`).
    pub idle_timeout: Duration,
}

impl MqttRelay {
    /// The relay from the shared handles and the config's limits.
    pub(crate) fn new(shared: &super::Shared, config: &crate::config::Config) -> MqttRelay {
        MqttRelay {
            state: shared.state.clone(),
            router: shared.router.clone(),
            dns: shared.dns.clone(),
            connect_timeout: config.limits.upstream_connect_timeout,
            idle_timeout: config.limits.mqtt_idle_timeout,
        }
    }
}

/// Relays bytes both ways until both sides are done, or until nothing
/// moved for `idle`. Returns the bytes sent up and down.
async fn relay(
    client: &mut Stream,
    upstream: &mut tokio::net::TcpStream,
    idle: Duration,
) -> std::io::Result<(u64, u64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut up_buf, mut down_buf) = ([0u8; 8192], [0u8; 8192]);
    let (mut up, mut down) = (0u64, 0u64);
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        tokio::select! {
            read = client.read(&mut up_buf), if client_open => match read? {
                0 => {
                    client_open = false;
                    upstream.shutdown().await?;
                }
                n => {
                    upstream.write_all(&up_buf[..n]).await?;
                    up += n as u64;
                }
            },
            read = upstream.read(&mut down_buf), if upstream_open => match read? {
                0 => {
                    upstream_open = false;
                    client.shutdown().await?;
                }
                n => {
                    client.write_all(&down_buf[..n]).await?;
                    client.flush().await?;
                    down += n as u64;
                }
            },
            _ = tokio::time::sleep(idle) => {
                crate::observe::metrics::METRICS
                    .slow_clients
                    .inc(crate::observe::metrics::SlowPhase::MqttIdle);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no byte either way for {idle:?}"),
                ));
            }
        }
    }
    Ok((up, down))
}

#[async_trait]
impl ServerApp for MqttRelay {
    async fn process_new(
        self: &Arc<Self>,
        mut session: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let sni = session
            .get_ssl()
            .and_then(|tls| tls.server_name())
            .unwrap_or("")
            .to_string();
        let snapshot = self.state.load();
        let Some((app, upstream)) = self.router.mqtt_upstream(&sni, &snapshot) else {
            debug!("mqtts: no app with an mqtt entrypoint for SNI {sni:?}: closed");
            return None;
        };
        let addr = match self.dns.resolve(&upstream.host, upstream.port).await {
            Ok(addr) => addr,
            Err(e) => {
                warn!("mqtts: app {app:?} at {upstream} cannot be reached: {e}");
                return None;
            }
        };
        let mut conn = match super::connect(addr, self.connect_timeout).await {
            Ok(conn) => conn,
            Err(super::ConnectError::Failed(e)) => {
                warn!("mqtts: app {app:?} at {upstream} cannot be reached: {e}");
                return None;
            }
            Err(super::ConnectError::TimedOut) => {
                warn!("mqtts: app {app:?} at {upstream} did not accept in time");
                return None;
            }
        };
        match relay(&mut session, &mut conn, self.idle_timeout).await {
            Ok((up, down)) => info!("mqtts: {app:?} closed after {up} bytes up, {down} down"),
            Err(e) => debug!("mqtts: {app:?} relay ended: {e}"),
        }
        None
    }
}
