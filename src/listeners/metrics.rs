//! The `metrics.listen` listener (DESIGN section 8): `GET /metrics` in the
//! Prometheus text format; anything else is the proxy's own 404.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::respond::{accept, refusal_response};
use crate::decision::refusal::Refusal;
use crate::ops::metrics::render;

/// Serves the registry of [`crate::ops::metrics`].
pub struct MetricsApp;

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.uri.path() != "/metrics" {
            let refusal = Refusal::NotFound("metrics are at /metrics".into());
            return refusal_response(&refusal, accept(req));
        }
        let body = render();
        Response::builder()
            .status(200)
            .header(http::header::CACHE_CONTROL, "no-store")
            .header(http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .expect("static header names and checked values")
    }
}
