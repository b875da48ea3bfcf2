//! The internal listener (docs/peering.md): the plain-HTTP listener the
//! apps call. `GET /internal/peers` lists the peers;
//! `ANY /internal/call_peer/<peer>/<path>?<query>` signs the request as this
//! Portal (docs/signing.md) and sends it to the same app on the peer, streaming
//! the answer back; every other request goes to the Portal core
//! ([`portal_core`]: the listener stands in for `http://portal_core/`).
//! What is called and by whom is decided by [`portal_core::outbound`];
//! [`client`] sends it.

pub(crate) mod client;
pub(crate) mod core_client;
mod failure;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use serde::Serialize;

use super::respond::write_refusal;
use crate::state::SharedState;
use client::{internal, PeerClient};
use core_client::CoreClient;
use failure::CallFailure;
use portal_core::body::{declared_length, TooLarge};
use portal_core::outbound::{calling_app, find_peer, parse_call, Call};
use portal_core::path::check_path;
use portal_core::refusal::Refusal;

/// The internal listener's handler.
pub(crate) struct InternalApi {
    state: Arc<SharedState>,
    client: Arc<PeerClient>,
    core: CoreClient,
    max_body: usize,
    /// The identity assertion's JWK Set, as served.
    assertion_keys: Bytes,
}

/// A whole JSON answer.
async fn write_json(
    session: &mut ServerSession,
    body: Bytes,
    content_type: &'static str,
    cache_control: &'static str,
) -> Result<(), CallFailure> {
    let mut resp = ResponseHeader::build(200, Some(3)).map_err(internal)?;
    resp.insert_header("content-type", content_type)
        .map_err(internal)?;
    resp.insert_header("content-length", body.len())
        .map_err(internal)?;
    resp.insert_header("cache-control", cache_control)
        .map_err(internal)?;
    session
        .write_response_header(Box::new(resp))
        .await
        .map_err(internal)?;
    session
        .write_response_body(body, true)
        .await
        .map_err(internal)
}

#[derive(Serialize)]
struct PeerListing<'a> {
    id: &'a str,
    short_id: &'a str,
    name: &'a str,
}

impl InternalApi {
    /// The internal listener's app from the shared handles and the config
    /// (its peer client is built with it: `internal.listen` set).
    pub(crate) fn build(
        shared: &super::Shared,
        config: &crate::config::Config,
    ) -> Result<Self, String> {
        let client = shared
            .peer_client
            .clone()
            .ok_or("internal.listen is set but its client was not built")?;
        let core = CoreClient {
            upstream: config.core_upstream.clone(),
            dns: shared.dns.clone(),
            connect_timeout: config.limits.upstream_connect_timeout,
            idle_timeout: config.limits.upstream_idle_timeout,
            assertion_header: config.assertion.header.clone(),
        };
        Ok(InternalApi {
            state: shared.state.clone(),
            client,
            core,
            max_body: config.peering.max_signed_body,
            assertion_keys: Bytes::from(shared.assertions.key().key_set.clone()),
        })
    }

    async fn handle(&self, session: &mut ServerSession) -> Result<(), CallFailure> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        check_path(&path)?;
        match parse_call(req.method.as_str(), &path)? {
            Call::ListPeers => self.list_peers(session).await,
            Call::AssertionKeys => {
                let keys = self.assertion_keys.clone();
                write_json(session, keys, "application/jwk-set+json", "max-age=300").await
            }
            Call::Peer { peer_ref, path } => self.call_peer(session, peer_ref, path).await,
            Call::Core => {
                let source = session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip());
                let snapshot = self.state.load();
                let app = calling_app(&snapshot.app_addresses, source).ok();
                self.core.forward(session, app).await.map(|_| ())
            }
        }
    }

    async fn list_peers(&self, session: &mut ServerSession) -> Result<(), CallFailure> {
        let snapshot = self.state.load();
        let list: Vec<PeerListing> = snapshot
            .peers
            .iter()
            .map(|p| PeerListing {
                id: &p.id,
                short_id: p.short_id(),
                name: &p.name,
            })
            .collect();
        let body = serde_json::to_vec(&list).expect("strings always serialize");
        write_json(session, Bytes::from(body), "application/json", "no-store").await
    }

    async fn call_peer(
        &self,
        session: &mut ServerSession,
        peer_ref: &str,
        path: &str,
    ) -> Result<(), CallFailure> {
        let snapshot = self.state.load();
        let source = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let app = calling_app(&snapshot.app_addresses, source)?.to_string();
        let peer = find_peer(&snapshot.peers, peer_ref)?;
        check_path(&format!("/{path}"))?;
        let body = self.read_body(session).await?;
        let status = self.client.forward(session, &app, &peer, path, body).await;
        let code = match &status {
            Ok(code) => *code,
            Err(e) => Refusal::from(e.clone()).status(),
        };
        crate::observe::metrics::outbound(&peer.id, crate::observe::metrics::StatusClass::of(code));
        status.map(|_| ())
    }

    /// The app's request body, whole (it is signed through its digest).
    async fn read_body(&self, session: &mut ServerSession) -> Result<Bytes, CallFailure> {
        let too_large = TooLarge::PeerCall(self.max_body);
        if declared_length(&session.req_header().headers).is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_large.into());
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|e| CallFailure::bad_request(format!("reading the request body: {e}")))?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large.into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

/// Streams an upstream's answer (a peer's, the core's) to the app: its
/// status and end-to-end headers, then each chunk as it arrives, with
/// `idle` as the longest wait for the next. Returns the status; an answer
/// broken off or stalled is [`CallFailure::BrokeOff`] (`from` names the
/// upstream in the log).
/// How an answer is passed on to the app that asked for it.
pub(crate) struct Answer<'a> {
    /// Longest wait for the next bytes.
    pub idle: std::time::Duration,
    /// Who answers, for the log.
    pub from: &'a str,
    /// The peer's short ID, for errors.
    pub peer: &'a str,
    /// The header fields the answer's verified signature covers: only
    /// those (and its framing and signature fields) are passed on; `None`
    /// for an answer let through unsigned, or the core's.
    pub signed: Option<&'a [String]>,
}

async fn stream_answer(
    session: &mut ServerSession,
    response: hyper::Response<hyper::body::Incoming>,
    answer: Answer<'_>,
) -> Result<u16, CallFailure> {
    use http_body_util::BodyExt;
    let Answer {
        idle,
        from,
        peer,
        signed,
    } = answer;
    let (parts, mut body) = response.into_parts();
    let status = parts.status.as_u16();
    // A signed Content-Digest is checked as the body streams; the end of
    // the body is only written once it matched.
    let mut digest = match signed {
        Some(fields) if fields.iter().any(|f| f == "content-digest") => Some(
            portal_core::signature::ContentDigest::from_headers(&parts.headers)
                .map_err(|e| CallFailure::BadAnswer(peer.to_string(), e.to_string()))?
                .streaming(),
        ),
        _ => None,
    };
    let mut head = ResponseHeader::build(status, Some(parts.headers.len())).map_err(internal)?;
    for (name, value) in portal_core::outbound::end_to_end(&parts.headers, false).iter() {
        let n = name.as_str();
        let passed = match signed {
            None => true,
            Some(fields) => {
                fields.iter().any(|f| f == n)
                    || matches!(n, "signature" | "signature-input")
                    // Chunked instead when the end waits for the digest.
                    || (n == "content-length" && digest.is_none())
            }
        };
        if passed {
            head.append_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
    }
    let has_body =
        status != 204 && status != 304 && session.req_header().method != http::Method::HEAD;
    if has_body && !head.headers.contains_key(http::header::CONTENT_LENGTH) {
        // The end is explicit: a body that ended with the connection would
        // look whole to the app when it was cut or broke off.
        head.insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .map_err(internal)?;
    }
    session
        .write_response_header(Box::new(head))
        .await
        .map_err(internal)?;
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if let Some(d) = digest.as_mut() {
                        d.update(&data);
                    }
                    session
                        .write_response_body(data, false)
                        .await
                        .map_err(internal)?;
                }
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                log::warn!("{from} broke off its answer: {e}");
                return Err(CallFailure::BrokeOff);
            }
            Err(_) => {
                log::warn!("{from} stalled its answer for {idle:?}");
                return Err(CallFailure::BrokeOff);
            }
        }
    }
    if digest.is_some_and(|d| !d.matches()) {
        log::warn!("{from}: the answer's body does not match its signed Content-Digest: cut");
        return Err(CallFailure::BadAnswer(
            peer.to_string(),
            "its body does not match its signed Content-Digest".into(),
        ));
    }
    session
        .write_response_body(Bytes::new(), true)
        .await
        .map_err(internal)?;
    Ok(status)
}

#[async_trait]
impl HttpServerApp for InternalApi {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !super::plain::read_head(&mut session, "internal").await {
            return None;
        }
        if let Err(e) = self.handle(&mut session).await {
            // Nothing is written yet unless the peer's answer broke off.
            if session.response_written().is_some() {
                return None;
            }
            if write_refusal(&mut session, &Refusal::from(e))
                .await
                .is_err()
            {
                return None;
            }
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}
