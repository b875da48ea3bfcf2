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
                return Err(RouteError::Misdirected(host).into())
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
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let cases = [
            (
                "App.abcdef.example.org",
                "/a?b=1",
                443,
                Some("https://app.abcdef.example.org/a?b=1"),
            ),
            (
                "app.abcdef.example.org:80",
                "/",
                443,
                Some("https://app.abcdef.example.org/"),
            ),
            (
                "app.abcdef.example.org",
                "/x",
                8443,
                Some("https://app.abcdef.example.org:8443/x"),
            ),
            (
                "app.abcdef.example.org",
                "*",
                443,
                Some("https://app.abcdef.example.org/"),
            ),
            ("evil.com/@x", "/", 443, None),
            ("", "/", 443, None),
        ];
        for (host, pq, port, want) in cases {
            assert_eq!(
                https_location(host, pq, port).as_deref(),
                want,
                "{host} {pq}"
            );
        }
    }

    #[test]
    fn only_portal_hosts_are_redirected() {
        let redirect = RedirectToHttps {
            https_port: 443,
            router: Arc::new(Router::new(
                "abcdef",
                "example.org",
                "web-terminal",
                "127.0.0.1:8000".parse().unwrap(),
                Default::default(),
            )),
        };
        let status = |host: Option<&str>| match redirect.location(host, "/x?y") {
            Ok(location) => location,
            Err(refusal) => refusal.status().to_string(),
        };
        assert_eq!(
            status(Some("abcdef.example.org")),
            "https://abcdef.example.org/x?y"
        );
        assert_eq!(
            status(Some("App.ABCDEF.example.org:80")),
            "https://app.abcdef.example.org/x?y"
        );
        for foreign in [
            "evil.com",
            "a.b.abcdef.example.org",
            "other.example.org",
            "127.0.0.1",
        ] {
            assert_eq!(status(Some(foreign)), "421", "{foreign}");
        }
        assert_eq!(status(Some("evil.com/@x")), "400");
        assert_eq!(
            redirect
                .location(Some("abcdef.example.org"), "/a/../b")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            redirect
                .location(Some("abcdef.example.org"), "/%01")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(status(None), "400");
    }
}
