//! The optional port-80 listener (DESIGN section 3): every request gets a
//! 308 to the same URL on https, so methods and bodies are kept.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::request_host;
use super::respond::{accept, refusal_response};
use crate::decision::refusal::Refusal;
use crate::decision::route::{normalize_host, RouteError};

/// Answers everything with a redirect to `https://<host><path>`.
pub struct RedirectToHttps {
    /// The HTTPS listener's port; left out of the URL when it is 443.
    pub https_port: u16,
}

/// The `Location` for a request to `host` with `path_and_query`, or `None`
/// when the host is not a usable host name.
pub fn https_location(host: &str, path_and_query: &str, https_port: u16) -> Option<String> {
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

#[async_trait]
impl ServeHttp for RedirectToHttps {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let host = request_host(req);
        let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let Some(location) = host.and_then(|h| https_location(h, pq, self.https_port)) else {
            return refusal_response(&Refusal::from(RouteError::NoHost), accept(req));
        };
        Response::builder()
            .header(http::header::CACHE_CONTROL, "no-store")
            .status(308)
            .header(http::header::LOCATION, &location)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(http::header::CONTENT_LENGTH, location.len() + 1)
            .body(format!("{location}\n").into_bytes())
            .expect("static header names and checked values")
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
}
