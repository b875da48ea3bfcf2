//! The `portal_core` stand-in (docs/peering.md): apps call the core at
//! `http://portal_core/...`, a container-network alias of the internal
//! listener. Every request the listener does not answer itself goes to
//! `core.upstream` unchanged (the request-target as the app wrote it, no
//! re-encoding), streamed both ways, with the client's `X-Ptl-*` headers
//! removed and `X-Ptl-App` set to the calling app (empty for an unknown
//! source). Plain HTTP/1.1 through hyper, one connection per request (the
//! core is on the same host).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use log::warn;
use pingora::protocols::http::ServerSession;

use super::failure::CallFailure;
use crate::listeners::{connect, ConnectError};
use portal_core::headers::{is_portal_header, same_name};
use portal_core::names::HostPort;
use portal_core::outbound::end_to_end;

/// The header that names the calling app to the core.
pub(crate) const APP_HEADER: &str = "x-ptl-app";

/// Sends requests on to the Portal core.
pub(crate) struct CoreClient {
    pub upstream: HostPort,
    /// The core's name, cached.
    pub dns: Arc<crate::dns::Dns>,
    pub connect_timeout: Duration,
    /// Per read of the core's answer, never a total.
    pub idle_timeout: Duration,
    /// `assertion.header`: an app's copy is removed like its `X-Ptl-*`
    /// headers, whatever the name.
    pub assertion_header: http::HeaderName,
}

/// The request body, as the app sends it: chunks through a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(hyper::body::Frame::data)))
    }
}

impl CoreClient {
    fn unreachable(&self, detail: impl std::fmt::Display) -> CallFailure {
        warn!(
            "the Portal core at {} cannot be reached: {detail}",
            self.upstream
        );
        CallFailure::Unreachable("core".into(), detail.to_string())
    }

    /// Forwards the request of `session` for `app` (the caller, if known)
    /// and streams the answer back; returns its status.
    pub(crate) async fn forward(
        &self,
        session: &mut ServerSession,
        app: Option<&str>,
    ) -> Result<u16, CallFailure> {
        let addr = self
            .dns
            .resolve(&self.upstream.host, self.upstream.port)
            .await
            .map_err(|e| self.unreachable(e))?;
        let tcp = match connect(addr, self.connect_timeout).await {
            Ok(tcp) => tcp,
            Err(ConnectError::Failed(e)) => return Err(self.unreachable(e)),
            Err(ConnectError::TimedOut) => return Err(CallFailure::PeerTimeout("core".into())),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| self.unreachable(e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });

        let req = session.req_header();
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut builder = hyper::Request::builder()
            .method(req.method.clone())
            .uri(target);
        for (name, value) in end_to_end(&req.headers, false).iter() {
            let name_text = name.as_str();
            if !is_portal_header(name_text)
                && !same_name(name_text.as_bytes(), self.assertion_header.as_str())
                && name != http::header::CONTENT_LENGTH
            {
                builder = builder.header(name, value);
            }
        }
        if let Some(length) = req.headers.get(http::header::CONTENT_LENGTH) {
            builder = builder.header(http::header::CONTENT_LENGTH, length);
        }
        builder = builder.header(APP_HEADER, app.unwrap_or(""));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let body = ChannelBody(rx);
        let request = builder
            .body(body)
            .map_err(|e| CallFailure::bad_request(format!("cannot forward to the core: {e}")))?;

        // The body goes as it arrives, while the answer is awaited.
        let pump = async {
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        if tx.send(Ok(chunk)).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        let _ = tx
                            .send(Err(std::io::Error::other("client body broke off")))
                            .await;
                        return Err(CallFailure::bad_request(format!(
                            "reading the request body: {e}"
                        )));
                    }
                }
            }
        };
        let answer = async {
            match tokio::time::timeout(self.idle_timeout, sender.send_request(request)).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(self.unreachable(e)),
                Err(_) => Err(CallFailure::PeerTimeout("core".into())),
            }
        };
        let (pumped, response) = tokio::join!(pump, answer);
        drop(tx);
        let response = response?;
        pumped?;

        let answer = super::Answer {
            idle: self.idle_timeout,
            from: "the Portal core",
            peer: "core",
            signed: None,
        };
        super::stream_answer(session, response, answer).await
    }
}
