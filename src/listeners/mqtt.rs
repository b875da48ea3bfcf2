//! MQTT over TLS (DESIGN section 3): the `listen.mqtts` listener terminates
//! TLS with the Portal's certificate, picks the app by the SNI name
//! `<app>.<domain>`, and relays bytes to the app's `mqtt` entrypoint over
//! plain TCP. No access control, as in Portal: MQTT brokers authenticate
//! their clients themselves.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{debug, info, warn};
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::decision::route::Router;
use crate::state::SharedState;

/// The MQTT listener's connection handling.
pub struct MqttRelay {
    pub state: Arc<SharedState>,
    pub router: Arc<Router>,
    pub connect_timeout: Duration,
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
        let connect = tokio::net::TcpStream::connect((upstream.host.as_str(), upstream.port));
        let mut conn = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                warn!("mqtts: app {app:?} at {upstream} cannot be reached: {e}");
                return None;
            }
            Err(_) => {
                warn!("mqtts: app {app:?} at {upstream} did not accept in time");
                return None;
            }
        };
        let _ = conn.set_nodelay(true);
        match tokio::io::copy_bidirectional(&mut session, &mut conn).await {
            Ok((up, down)) => info!("mqtts: {app:?} closed after {up} bytes up, {down} down"),
            Err(e) => debug!("mqtts: {app:?} relay ended: {e}"),
        }
        None
    }
}
