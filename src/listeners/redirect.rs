//! The optional port-80 listener (README.md, "How requests are handled"): every request for a
//! Portal host gets a 308 to the same URL on https, so methods and bodies
//! are kept; another host gets 421, a malformed request 400.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use std::sync::Arc;

use super::request_host;
use super::respond::{accept, refusal_response, uncached};
use portal_core::path::check_path;
use portal_core::refusal::Refusal;
use portal_core::route::{normalize_host, HostName, RouteError, Router};

/// Answers a request for a Portal host with a redirect to
/// `https://<host><path>`; any other host gets 421 (never a redirect to a
/// host the client chose).
pub(crate) struct RedirectToHttps {
    /// The HTTPS listener's port; left out of the URL when it is 443.
    pub https_port: u16,
    pub router: Arc<Router>,
}

/// The `Location` for a request to `host` with `path_and_query`, or `None`
/// when the host is not a usable host name.
pub(crate) fn https_location(host: &str, path_and_query: &str, https_port: u16) -> Option<String> {
    let host = normalize_host(host)?;
    let pq = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    Some(if https_port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{https_port}{pq}")
    })
}

impl RedirectToHttps {
    /// Where to send a request for `host` (as received), or the refusal.
    /// A path the HTTPS listener would refuse is refused here too.
    pub(crate) fn location(
        &self,
        host: Option<&str>,
        path_and_query: &str,
    ) -> Result<String, Refusal> {
        let raw = host.ok_or(RouteError::NoHost)?;
        let path = path_and_query.split('?').next().unwrap_or("/");
        check_path(path)?;
        let host = normalize_host(raw).ok_or(RouteError::NoHost)?;
        match self.router.name(&host) {
            HostName::Home | HostName::App(_) => {}
            HostName::Nested(_) | HostName::Foreign => {
                return Err(RouteError::Misdirected(host.into_owned()).into())
            }
        }
        https_location(raw, path_and_query, self.https_port)
            .ok_or_else(|| RouteError::NoHost.into())
    }
}

#[async_trait]
impl ServeHttp for RedirectToHttps {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let location = match self.location(request_host(req), pq) {
            Ok(location) => location,
            Err(refusal) => return refusal_response(&refusal, accept(req)),
        };
        let body = format!("{location}\n").into_bytes();
        let mut response = uncached(308, "text/plain; charset=utf-8", body);
        let location = http::HeaderValue::try_from(location).expect("a checked host and path");
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
        response
    }
}

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod tests;
