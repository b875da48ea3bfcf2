//! Identity headers (docs/access.md): the app's header templates,
//! compiled once when the app is loaded and rendered for each request, and
//! the rules for which client headers never reach an app. Pure; the proxy
//! applies the result in `upstream_request_filter`.

use std::collections::BTreeSet;

use http::{HeaderName, HeaderValue};
use minijinja::{Environment, Value};
use serde::Serialize;

use super::templates::{check_source, describe, environment, render, MAX_TEMPLATES};
use crate::app_meta::AppMeta;
use crate::caller::Caller;

/// The `portal` object of the template context: the same for every request.
#[derive(Debug, Clone, Serialize)]
pub struct PortalInfo {
    pub id: String,
    pub short_id: String,
    pub domain: String,
    pub public_key_pem: String,
}

#[derive(Serialize)]
struct AuthInfo<'a> {
    client_type: &'a str,
    client_id: &'a str,
    client_name: &'a str,
}

/// A template that failed to compile, or to render with a sample context
/// (an unknown variable, a bad filter, ...).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("paths.{prefix:?}.headers.{header}: {reason}")]
pub struct TemplateError {
    pub prefix: String,
    pub header: String,
    pub reason: String,
}

/// Rendered headers, and the values left out with the reason.
pub type Rendered = (Vec<(HeaderName, HeaderValue)>, Vec<String>);

/// The compiled header templates of one app.
pub struct AppHeaders {
    env: Environment<'static>,
    /// Per path rule (same order as `AppMeta::paths`): header name and the
    /// template's name in `env`.
    rules: Vec<Vec<(HeaderName, String)>>,
    /// Every header named in any rule, as [`normalize_name`] gives it.
    named: BTreeSet<String>,
}

impl std::fmt::Debug for AppHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHeaders")
            .field("named", &self.named)
            .finish_non_exhaustive()
    }
}

impl AppHeaders {
    /// Compiles every template of `app` and renders each once per client
    /// type with sample values, so that a template that cannot render is
    /// refused now rather than failing on requests.
    pub fn compile(app: &AppMeta) -> Result<AppHeaders, TemplateError> {
        let mut env = environment();
        let mut rules = Vec::with_capacity(app.paths.len());
        let mut named = BTreeSet::new();
        let mut count = 0;
        for (i, rule) in app.paths.iter().enumerate() {
            let mut headers = Vec::with_capacity(rule.headers.len());
            for (name, source) in &rule.headers {
                let err = |reason: String| TemplateError {
                    prefix: rule.prefix.clone(),
                    header: name.to_string(),
                    reason,
                };
                count += 1;
                if count > MAX_TEMPLATES {
                    return Err(err(format!(
                        "more than {MAX_TEMPLATES} header templates in one app"
                    )));
                }
                check_source(source).map_err(err)?;
                let template_name = format!("{i}/{name}");
                env.add_template_owned(template_name.clone(), source.clone())
                    .map_err(|e| err(describe(&e)))?;
                headers.push((name.clone(), template_name));
                named.insert(normalize_name(name.as_str()));
            }
            rules.push(headers);
        }
        let compiled = AppHeaders { env, rules, named };
        // The worst case: every value as long as it can be.
        let sample = PortalInfo {
            id: "a".repeat(crate::identity::PORTAL_ID_LEN),
            short_id: "a".repeat(crate::identity::SHORT_ID_LEN),
            domain: "a".repeat(253),
            public_key_pem: "a".repeat(200),
        };
        let sample = Value::from_serialize(&sample);
        for caller in Caller::samples() {
            for (i, rule) in compiled.rules.iter().enumerate() {
                for (name, template) in rule {
                    compiled
                        .render_one(template, &caller, &sample)
                        .map_err(|reason| TemplateError {
                            prefix: app.paths[i].prefix.clone(),
                            header: name.to_string(),
                            reason,
                        })?;
                }
            }
        }
        Ok(compiled)
    }

    fn render_one(
        &self,
        template: &str,
        caller: &Caller,
        portal: &Value,
    ) -> Result<String, String> {
        let (client_type, client_id, client_name) = caller.parts();
        let auth = AuthInfo {
            client_type,
            client_id,
            client_name,
        };
        let ctx = minijinja::context! {
            auth => Value::from_serialize(&auth),
            portal => portal.clone(),
            client_type => client_type,
            client_id => client_id,
            client_name => client_name,
        };
        render(&self.env, template, ctx)
    }

    /// The headers of rule `rule` (an index into `AppMeta::paths`) for
    /// `caller`, and the problems met. A value that is not a valid header
    /// value (a control character in a terminal's name, say) is left out
    /// and reported; a rendering that fails (over its limits: the load
    /// check makes that all but impossible) fails the whole request.
    pub fn render(&self, rule: usize, caller: &Caller, portal: &Value) -> Result<Rendered, String> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (name, template) in self.rules.get(rule).into_iter().flatten() {
            let value = self
                .render_one(template, caller, portal)
                .map_err(|e| format!("{name}: {e}"))?;
            match HeaderValue::from_bytes(value.as_bytes()) {
                Ok(v) => out.push((name.clone(), v)),
                Err(_) => problems.push(format!(
                    "{name}: rendered value is not a valid header value"
                )),
            }
        }
        Ok((out, problems))
    }

    /// Whether a client header of this name must be removed before the
    /// request reaches the app: any `X-Ptl-*` (also spelled with `_`), any
    /// forwarding header, `Cookie2`, and any header one of the app's rules
    /// sets.
    pub fn strips(&self, name: &str) -> bool {
        is_never_forwarded(name) || self.named.iter().any(|n| same_name(name.as_bytes(), n))
    }
}

/// Lower case with `_` as `-`: proxies and CGI-style servers treat
/// `X_Ptl_User` and `X-Ptl-User` as one header.
pub fn normalize_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                b.to_ascii_lowercase() as char
            }
        })
        .collect()
}

/// `raw` is `normalized` once [`normalize_name`]d (no allocation: this
/// runs for every header of every request).
pub fn same_name(raw: &[u8], normalized: &str) -> bool {
    raw.len() == normalized.len()
        && raw.iter().zip(normalized.bytes()).all(|(&a, b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

/// Whether a header name is an `X-Ptl-` one, in any case and with `_` or
/// `-`: never accepted from a client.
pub fn is_portal_header(name: &str) -> bool {
    name.len() >= 6 && same_name(&name.as_bytes()[..6], "x-ptl-")
}

/// Prefixes of header names that only a proxy sets, whatever follows:
/// `X-Forwarded-*` (every framework: `-For`, `-Host`, `-Proto`, `-Port`,
/// `-Prefix`, `-Server`, `-Ssl`, `-Uri`, ...), `X-Original-*` (IIS ARR's
/// `X-Original-Host` and `X-Original-URL`, nginx's `X-Original-URI`,
/// ingress-nginx's `X-Original-Forwarded-For`) and `X-Envoy-*` (Envoy's
/// own, `X-Envoy-Original-Path` among them; Envoy strips them from
/// clients itself).
const PROXY_ONLY_PREFIXES: [&str; 3] = ["x-forwarded-", "x-original-", "x-envoy-"];

/// Headers through which app frameworks take the client's address, or
/// another host, path or scheme than the request's, from a proxy in
/// front: a client must never set them (docs/access.md lists where each
/// is read).
const CLIENT_ADDRESS_AND_TARGET: [&str; 29] = [
    // The client's address.
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "fastly-client-ip",
    "fly-client-ip",
    "x-azure-clientip",
    "x-azure-socketip",
    "x-appengine-user-ip",
    "x-proxyuser-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    // Another host.
    "x-host",
    "x-http-host-override",
    // Another path.
    "x-rewrite-url",
    "x-script-name",
    // Another scheme.
    "x-url-scheme",
    "x-scheme",
    "x-real-scheme",
    "front-end-https",
    "x-arr-ssl",
    "x-https",
];

/// Whether a header name is a forwarding header, in any case and with `_`
/// or `-`: a name of [`PROXY_ONLY_PREFIXES`] (with something after the
/// prefix) or of [`CLIENT_ADDRESS_AND_TARGET`]. Only the proxy sets the
/// forwarding headers (docs/access.md); a client's copies are removed.
pub fn is_forwarding_header(name: &str) -> bool {
    let b = name.as_bytes();
    PROXY_ONLY_PREFIXES
        .iter()
        .any(|p| b.len() > p.len() && same_name(&b[..p.len()], p))
        || CLIENT_ADDRESS_AND_TARGET.iter().any(|n| same_name(b, n))
}

/// Whether a client header of this name never reaches an upstream,
/// whatever the app: `X-Ptl-*`, forwarding headers, `Cookie2` (an
/// obsolete header that may hold the terminal cookie).
pub fn is_never_forwarded(name: &str) -> bool {
    is_portal_header(name) || is_forwarding_header(name) || name.eq_ignore_ascii_case("cookie2")
}

/// The `portal` value for templates, built once at start-up.
pub fn portal_value(info: &PortalInfo) -> Value {
    Value::from_serialize(info)
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
