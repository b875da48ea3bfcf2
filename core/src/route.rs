//! Which app a host names and which upstream serves it (README.md, "How requests are handled"):
//! the one [`Router`] that the HTTPS, MQTT and internal listeners ask.
//! Pure.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::app_meta::AppMeta;
use crate::names::{ascii_lower, AppUpstreams, HostPort};
use crate::snapshot::Snapshot;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An app's `http` entrypoint.
    App(String),
    /// The Portal core, with the access its path prefix allows.
    Core(CoreAccess),
}

/// The parts of the core that are reachable from outside, from the most
/// open to the least (`Ord` says which is stricter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// A path under `/core/` that is neither public nor protected.
    #[error("this path is not served from outside")]
    NotExposed,
}

/// What a host name is to this Portal (README.md, "How requests are handled").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostName<'a> {
    /// The Portal's own domain `D`: the home app.
    Home,
    /// `<app>.D`.
    App(&'a str),
    /// `a.b.D`: under the domain, but never an app.
    Nested(&'a str),
    /// Not under `D`.
    Foreign,
}

/// Which entrypoint of an app a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entrypoint {
    Http,
    Mqtt,
}

/// The one routing table of a Portal, asked by every listener: which app a
/// host names, which upstream serves an app's `http` or `mqtt` entrypoint,
/// and the host names of apps on peer Portals.
#[derive(Debug, Clone)]
pub struct Router {
    /// `<short_id>.<base_domain>`, lower case.
    domain: String,
    base_domain: String,
    home_app: String,
    core_upstream: HostPort,
    /// `upstreams.<app>` overrides from the config.
    overrides: BTreeMap<String, AppUpstreams>,
}

/// The prefix of the Portal core's paths.
pub const CORE_PREFIX: &str = "/core/";

impl Router {
    /// `base_domain` lower case; the Portal's domain is
    /// `<short_id>.<base_domain>`.
    pub fn new(
        short_id: &str,
        base_domain: &str,
        home_app: &str,
        core_upstream: HostPort,
        overrides: BTreeMap<String, AppUpstreams>,
    ) -> Self {
        Router {
            domain: format!("{short_id}.{base_domain}"),
            base_domain: base_domain.to_string(),
            home_app: home_app.to_string(),
            core_upstream,
            overrides,
        }
    }

    /// `<short_id>.<base_domain>`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// What `host` (already [`normalize_host`]d) names.
    pub fn name<'h>(&self, host: &'h str) -> HostName<'h> {
        if host == self.domain {
            return HostName::Home;
        }
        match host
            .strip_suffix(self.domain.as_str())
            .and_then(|h| h.strip_suffix('.'))
        {
            Some(label) if !label.is_empty() && !label.contains('.') => HostName::App(label),
            Some(label) if !label.is_empty() => HostName::Nested(label),
            _ => HostName::Foreign,
        }
    }

    /// Routes a request whose Host is `host` (already [`normalize_host`]d)
    /// and whose path (no query) is `path`. `has_http_app` says whether an
    /// app with an `http` entrypoint of that name is loaded.
    pub fn route(
        &self,
        host: &str,
        path: &str,
        has_http_app: impl Fn(&str) -> bool,
    ) -> Result<Target, RouteError> {
        let app = match self.name(host) {
            HostName::Home => self.home_app.as_str(),
            HostName::App(label) => label,
            HostName::Nested(label) => return Err(RouteError::UnknownApp(label.to_string())),
            HostName::Foreign => return Err(RouteError::Misdirected(host.to_string())),
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

    /// The Portal core's upstream.
    pub fn core_upstream(&self) -> &HostPort {
        &self.core_upstream
    }

    /// The upstream of `app`'s entrypoint: `upstreams.<app>` from the
    /// config when it names one, else `container_name:container_port`.
    /// `None` when the app has no such entrypoint.
    pub fn upstream(&self, app: &AppMeta, entrypoint: Entrypoint) -> Option<HostPort> {
        let (declared, configured) = match entrypoint {
            Entrypoint::Http => (
                &app.http,
                self.overrides.get(&app.name).and_then(|u| u.http.as_ref()),
            ),
            Entrypoint::Mqtt => (
                &app.mqtt,
                self.overrides.get(&app.name).and_then(|u| u.mqtt.as_ref()),
            ),
        };
        let declared = declared.as_ref()?;
        Some(configured.cloned().unwrap_or_else(|| HostPort {
            host: declared.host.clone(),
            port: declared.port,
        }))
    }

    /// The app and upstream of an MQTT connection whose SNI is `sni`: only
    /// `<app>.D` names one, and only if the app has an `mqtt` entrypoint.
    pub fn mqtt_upstream(&self, sni: &str, snapshot: &Snapshot) -> Option<(String, HostPort)> {
        let host = normalize_host(sni)?;
        let HostName::App(app) = self.name(&host) else {
            return None;
        };
        let upstream = self.upstream(&snapshot.apps.get(app)?.meta, Entrypoint::Mqtt)?;
        Some((app.to_string(), upstream))
    }

    /// The host of `app` on the peer Portal whose short ID is `short_id`:
    /// `<app>.<short_id>.<base_domain>` (docs/peering.md).
    pub fn peer_app_host(&self, app: &str, short_id: &str) -> String {
        format!("{app}.{short_id}.{}", self.base_domain)
    }

    /// The short ID of the peer Portal that `host` (an app's host on a
    /// peer, any case) belongs to.
    pub fn peer_short_id<'h>(&self, host: &'h str) -> Option<&'h str> {
        let rest = host.get(..host.len().checked_sub(self.base_domain.len())?)?;
        if !host[rest.len()..].eq_ignore_ascii_case(&self.base_domain) {
            return None;
        }
        rest.strip_suffix('.')?.rsplit('.').next()
    }
}

/// The host a request names, as README.md, "How requests are handled" compares it: port dropped,
/// lower case, one trailing dot removed. `None` when it is not a host name
/// (empty, or bytes that no DNS name has).
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
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
    // Browsers send it in lower case: no copy then (every request).
    Some(ascii_lower(host))
}

/// The path the core receives: `/core` removed, query kept.
/// `"/core/public/x?a=1"` becomes `"/public/x?a=1"`.
pub fn strip_core_prefix(path_and_query: &str) -> &str {
    path_and_query
        .strip_prefix(CORE_PREFIX.trim_end_matches('/'))
        .unwrap_or(path_and_query)
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
