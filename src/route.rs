//! Which upstream a request goes to, from its Host and path (DESIGN section
//! 3). Pure; used by the proxy's `request_filter`.

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An app's `http` entrypoint.
    App(String),
    /// The Portal core, with the access its path prefix allows.
    Core(CoreAccess),
}

/// The parts of the core that are reachable from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreAccess {
    /// `/core/public/`: anyone.
    Public,
    /// `/core/protected/`: terminals only.
    Protected,
    /// Anything else under `/core/`: never from outside.
    Internal,
}

/// Why a request has no target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the request has no valid Host")]
    NoHost,
    #[error("no app named {0:?} on this Portal")]
    UnknownApp(String),
    #[error("host {0:?} is not served here")]
    Misdirected(String),
}

/// The routing table's view of one Portal.
pub struct Router<'a> {
    /// `<short_id>.<base_domain>`, lower case.
    pub domain: &'a str,
    pub home_app: &'a str,
}

/// The prefix of the Portal core's paths.
pub const CORE_PREFIX: &str = "/core/";

impl Router<'_> {
    /// Routes a request whose Host is `host` (already [`normalize_host`]d)
    /// and whose path (no query) is `path`. `has_http_app` says whether an
    /// app with an `http` entrypoint of that name is loaded.
    pub fn route(
        &self,
        host: &str,
        path: &str,
        has_http_app: impl Fn(&str) -> bool,
    ) -> Result<Target, RouteError> {
        let app = if host == self.domain {
            self.home_app
        } else {
            match host
                .strip_suffix(self.domain)
                .and_then(|h| h.strip_suffix('.'))
            {
                Some(label) if !label.is_empty() && !label.contains('.') => label,
                // `a.b.<domain>`: under the domain, but never an app.
                Some(label) if !label.is_empty() => {
                    return Err(RouteError::UnknownApp(label.to_string()))
                }
                _ => return Err(RouteError::Misdirected(host.to_string())),
            }
        };
        if let Some(rest) = path.strip_prefix(CORE_PREFIX) {
            let access = if rest.starts_with("public/") {
                CoreAccess::Public
            } else if rest.starts_with("protected/") {
                CoreAccess::Protected
            } else {
                CoreAccess::Internal
            };
            return Ok(Target::Core(access));
        }
        if has_http_app(app) {
            Ok(Target::App(app.to_string()))
        } else {
            Err(RouteError::UnknownApp(app.to_string()))
        }
    }
}

/// The host a request names, as DESIGN section 3 compares it: port dropped,
/// lower case, one trailing dot removed. `None` when it is not a host name
/// (empty, or bytes that no DNS name has).
pub fn normalize_host(raw: &str) -> Option<String> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal: never a Portal host, but keep it for the 421 body.
        let end = rest.find(']')?;
        &raw[..end + 2]
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty()
        || !host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        })
    {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// The path the core receives: `/core` removed, query kept.
/// `"/core/public/x?a=1"` becomes `"/public/x?a=1"`.
pub fn strip_core_prefix(path_and_query: &str) -> &str {
    path_and_query
        .strip_prefix(CORE_PREFIX.trim_end_matches('/'))
        .unwrap_or(path_and_query)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "b2blla.p.getportal.org";

    fn route(host: &str, path: &str) -> Result<Target, RouteError> {
        let router = Router {
            domain: DOMAIN,
            home_app: "web-terminal",
        };
        router.route(host, path, |app| {
            ["web-terminal", "files", "my-app"].contains(&app)
        })
    }

    #[test]
    fn routing_table() {
        use CoreAccess::*;
        use RouteError::*;
        use Target::*;
        let app = |s: &str| Ok(App(s.to_string()));
        let cases: &[(&str, &str, Result<Target, RouteError>)] = &[
            (DOMAIN, "/", app("web-terminal")),
            ("files.b2blla.p.getportal.org", "/x", app("files")),
            ("my-app.b2blla.p.getportal.org", "/", app("my-app")),
            (
                "nope.b2blla.p.getportal.org",
                "/",
                Err(UnknownApp("nope".into())),
            ),
            (
                "a.files.b2blla.p.getportal.org",
                "/",
                Err(UnknownApp("a.files".into())),
            ),
            (
                "files.other.p.getportal.org",
                "/",
                Err(Misdirected("files.other.p.getportal.org".into())),
            ),
            (
                "xb2blla.p.getportal.org",
                "/",
                Err(Misdirected("xb2blla.p.getportal.org".into())),
            ),
            (
                "p.getportal.org",
                "/",
                Err(Misdirected("p.getportal.org".into())),
            ),
            (
                "example.com",
                "/core/public/x",
                Err(Misdirected("example.com".into())),
            ),
            (DOMAIN, "/core/public/x", Ok(Core(Public))),
            (
                "files.b2blla.p.getportal.org",
                "/core/protected/y",
                Ok(Core(Protected)),
            ),
            (
                "nope.b2blla.p.getportal.org",
                "/core/public/",
                Ok(Core(Public)),
            ),
            (DOMAIN, "/core/internal/stop", Ok(Core(Internal))),
            (DOMAIN, "/core/", Ok(Core(Internal))),
            (DOMAIN, "/core/publicx", Ok(Core(Internal))),
            // Not under `/core/`: the app's own path.
            (DOMAIN, "/core", app("web-terminal")),
            (DOMAIN, "/corex/", app("web-terminal")),
        ];
        for (host, path, want) in cases {
            assert_eq!(&route(host, path), want, "{host}{path}");
        }
    }

    #[test]
    fn missing_home_app_is_unknown() {
        let router = Router {
            domain: DOMAIN,
            home_app: "web-terminal",
        };
        assert_eq!(
            router.route(DOMAIN, "/", |_| false),
            Err(RouteError::UnknownApp("web-terminal".into()))
        );
    }

    #[test]
    fn host_normalization() {
        let cases = [
            (
                "Files.B2BLLA.p.getportal.org",
                Some("files.b2blla.p.getportal.org"),
            ),
            (
                "files.b2blla.p.getportal.org:443",
                Some("files.b2blla.p.getportal.org"),
            ),
            (
                "files.b2blla.p.getportal.org.",
                Some("files.b2blla.p.getportal.org"),
            ),
            (
                "files.b2blla.p.getportal.org.:8443",
                Some("files.b2blla.p.getportal.org"),
            ),
            ("[::1]:443", Some("[::1]")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("", None),
            (":443", None),
            ("host:port", None),
            ("ho st", None),
            ("a/b", None),
            ("[::1", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn core_prefix_is_stripped() {
        assert_eq!(strip_core_prefix("/core/public/x?a=1"), "/public/x?a=1");
        assert_eq!(strip_core_prefix("/core/protected/"), "/protected/");
    }
}
