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
fn same_name(raw: &[u8], normalized: &str) -> bool {
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
mod tests {
    use super::*;

    fn app(paths: &str) -> AppMeta {
        AppMeta::parse(
            "app",
            format!(r#"{{"port":80,"paths":{paths}}}"#).as_bytes(),
        )
        .unwrap()
    }

    fn portal() -> Value {
        portal_value(&PortalInfo {
            id: "b2bllavf0w7lygfaj6hqxs8h5tbw8f3e7ap8j8vd2x3pgn5za2eyrcnjtlk6j8ralqg89y7kvqbtegd2a3jv1a9vfl41nzayj72lxt2".into(),
            short_id: "b2blla".into(),
            domain: "b2blla.p.getportal.org".into(),
            public_key_pem: "PEM".into(),
        })
    }

    fn render(paths: &str, caller: &Caller) -> Vec<(String, String)> {
        let app = app(paths);
        let headers = AppHeaders::compile(&app).unwrap();
        let (out, problems) = headers.render(0, caller, &portal()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        out.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn corpus_expressions_render_for_each_caller() {
        let paths = r#"{"":{"access":"public","headers":{
            "X-Ptl-Client-Id":"{{ auth.client_id }}",
            "X-Ptl-Client-Name":"{{ auth.client_name }}",
            "X-Ptl-Client-Type":"{{ auth.client_type }}",
            "X-Ptl-Legacy":"{{ client_type }}/{{ client_id }}/{{ client_name }}",
            "X-Ptl-User":"{{ portal.id[:6] }}@example.com",
            "X-Ptl-Admin":"admin@{{ portal.domain }}",
            "X-Ptl-Id":"{{ portal.id }}",
            "X-Ptl-Static":"terminal"}}}"#;
        let terminal = Caller::Terminal {
            id: "t1".into(),
            name: "Laptop".into(),
        };
        let got = render(paths, &terminal);
        let get = |n: &str| got.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("x-ptl-client-id"), "t1");
        assert_eq!(get("x-ptl-client-name"), "Laptop");
        assert_eq!(get("x-ptl-client-type"), "terminal");
        assert_eq!(get("x-ptl-legacy"), "terminal/t1/Laptop");
        assert_eq!(get("x-ptl-user"), "b2blla@example.com");
        assert_eq!(get("x-ptl-admin"), "admin@b2blla.p.getportal.org");
        assert_eq!(get("x-ptl-id").len(), 103);
        assert_eq!(get("x-ptl-static"), "terminal");

        let got = render(paths, &Caller::Anonymous);
        let get = |n: &str| got.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("x-ptl-client-type"), "anonymous");
        assert_eq!(get("x-ptl-client-id"), "");
        assert_eq!(get("x-ptl-legacy"), "anonymous//");
    }

    #[test]
    fn bad_templates_are_refused_with_their_place() {
        let cases = [
            (
                r#"{"":{"access":"public","headers":{"X-A":"{{ auth.client_id "}}}"#,
                "syntax",
            ),
            (
                r#"{"":{"access":"public","headers":{"X-A":"{{ auth.nope }}"}}}"#,
                "undefined",
            ),
            (
                r#"{"":{"access":"public","headers":{"X-A":"{{ user }}"}}}"#,
                "undefined",
            ),
            (
                r#"{"":{"access":"public","headers":{"X-A":"{{ client_id | nofilter }}"}}}"#,
                "filter",
            ),
            // The memory an app file can make the proxy hold is bounded.
            (
                r#"{"":{"access":"public","headers":{"X-A":"{{ 'x' * 100000000 }}"}}}"#,
                "repetition",
            ),
            (
                r#"{"":{"access":"public","headers":{"X-A":"{% for i in range(9) %}x{% endfor %}"}}}"#,
                "statements",
            ),
            (
                // Fine for a short name, over 8 KiB for the longest one.
                &format!(
                    r#"{{"":{{"access":"public","headers":{{"X-A":"{}"}}}}}}"#,
                    "{{ auth.client_name ~ auth.client_name }}".repeat(17)
                ),
                "8192",
            ),
        ];
        for (paths, needle) in cases {
            let err = AppHeaders::compile(&app(paths)).expect_err(paths.as_ref());
            assert_eq!(err.header, "x-a");
            assert_eq!(err.prefix, "");
            assert!(err.reason.to_lowercase().contains(needle), "{paths}: {err}");
        }
    }

    #[test]
    fn invalid_rendered_values_are_left_out() {
        let headers = AppHeaders::compile(&app(
            r#"{"":{"access":"public","headers":{"X-Ptl-Client-Name":"{{ auth.client_name }}","X-Ptl-Client-Id":"{{ auth.client_id }}"}}}"#,
        ))
        .unwrap();
        let caller = Caller::Terminal {
            id: "t1".into(),
            name: "evil\r\nX-Injected: 1".into(),
        };
        let (out, problems) = headers.render(0, &caller, &portal()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.as_str(), "x-ptl-client-id");
        assert_eq!(problems.len(), 1);
        // Non-ASCII names are fine (sent as UTF-8 bytes).
        let caller = Caller::Terminal {
            id: "t1".into(),
            name: "Jörg's phone".into(),
        };
        let (out, _) = headers.render(0, &caller, &portal()).unwrap();
        let name = out.iter().find(|(k, _)| k == "x-ptl-client-name").unwrap();
        assert_eq!(name.1.as_bytes(), "Jörg's phone".as_bytes());
    }

    #[test]
    fn stripped_headers() {
        let headers = AppHeaders::compile(&app(
            r#"{"":{"access":"public","headers":{"Remote-User":"{{ client_id }}"}},"/x/":{"access":"public","headers":{"X-Ptl-User":"a"}}}"#,
        ))
        .unwrap();
        for name in [
            "x-ptl-client-id",
            "X-PTL-ANYTHING",
            "x_ptl_client_id",
            "X_Ptl-User",
            "remote-user",
            "Remote_User",
        ] {
            assert!(headers.strips(name), "{name}");
        }
        for name in [
            "X_Forwarded_For",
            "x-forwarded-proto",
            "X-FORWARDED-HOST",
            "x_forwarded_prefix",
            "Forwarded",
            "x-real-ip",
            "X_Real_IP",
            "X-Client-IP",
            "True-Client-IP",
            "cf_connecting_ip",
            "X-Original-URL",
            "x_rewrite_url",
            "X-Forwarded",
            "cookie2",
            "X-Host",
            "x_original_host",
            "X-Original-URI",
            "X-ORIGINAL-FORWARDED-FOR",
            "X-Url-Scheme",
            "Front-End-Https",
            "front_end_https",
            "X-HTTP-Host-Override",
            "x-envoy-original-path",
            "X-Scheme",
            "X-Script-Name",
            "X-Arr-Ssl",
            "Fly-Client-IP",
        ] {
            assert!(headers.strips(name), "{name}");
            assert!(is_never_forwarded(name), "{name}");
        }
        for name in [
            "x-ptlfoo",
            "x-real-ips",
            "x-original",
            "x-original-",
            "x-forwarded-",
            "x-envoy",
            "x-hosts",
            "x-request-id",
            "x-requested-with",
            "host",
            "x-schemes",
            "cookie",
            "remote-users",
            "xptl-a",
        ] {
            assert!(!headers.strips(name), "{name}");
        }
    }

    /// A name in any case, each `-` as `-` or `_`, picked by `bits`.
    fn spelled(name: &str, bits: u64) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| match (c, bits >> (i % 64) & 1) {
                ('-', 1) => '_',
                (c, 1) => c.to_ascii_uppercase(),
                (c, _) => c,
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        /// Every spelling of every proxy-only name, and of every prefix
        /// with anything after it, is removed for every app.
        #[test]
        fn every_spelling_of_the_class_is_removed(
            bits in proptest::prelude::any::<u64>(),
            suffix in "[a-zA-Z0-9_-]{1,12}",
            pick in 0usize..(CLIENT_ADDRESS_AND_TARGET.len() + PROXY_ONLY_PREFIXES.len()),
        ) {
            let name = match CLIENT_ADDRESS_AND_TARGET.get(pick) {
                Some(name) => spelled(name, bits),
                None => spelled(PROXY_ONLY_PREFIXES[pick - CLIENT_ADDRESS_AND_TARGET.len()], bits) + &suffix,
            };
            proptest::prop_assert!(is_never_forwarded(&name), "{}", name);
        }
    }

    /// Templates without a flaw of form: literal text and `{{ }}`
    /// expressions that join the context's values with `~` through the
    /// allowed filters, so that their length decides whether they load.
    fn expression_template() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // Mostly values as long as a name may be, and few filters, so
        // that the rendered length and the source length both decide.
        let long = prop::sample::select(vec![
            "auth.client_id",
            "auth.client_name",
            "client_id",
            "client_name",
        ]);
        let other = prop::sample::select(vec![
            "auth.client_type",
            "client_type",
            "portal.id",
            "portal.domain",
            "portal.id[:6]",
            "'*'",
        ]);
        let value = prop_oneof![2 => long, 1 => other];
        let filters = vec![
            " | upper",
            " | lower",
            " | title",
            " | trim",
            " | default('x')",
            " | length",
        ];
        let filter = prop_oneof![3 => Just(""), 1 => prop::sample::select(filters)];
        let expression = prop::collection::vec((value, filter), 1..24).prop_map(|terms| {
            let terms: Vec<String> = terms.iter().map(|(v, f)| format!("{v}{f}")).collect();
            format!("{{{{ {} }}}}", terms.join(" ~ "))
        });
        let segment = prop_oneof!["[a-z@./-]{0,6}", expression];
        prop::collection::vec(segment, 1..10).prop_map(|s| s.concat())
    }

    /// Loading any template never panics, and a template that loads
    /// renders within the limits for every caller, the longest ones
    /// included (what the load check promises the request path); and at
    /// least one generated template in eight holds an expression and
    /// loads.
    #[test]
    fn loaded_templates_render_within_limits() {
        use proptest::prelude::*;
        #[rustfmt::skip]
        let pieces = prop::collection::vec(
            prop::sample::select(vec![
                "{{ ", " }}", "auth.client_id", "auth.client_name", "client_type", "portal.id",
                "portal.domain", "[:6]", " ~ ", " | upper", " | lower", " | default('x')",
                "'*'", "*", "{% ", " %}", "(", ")", "+", "x", "'", "9999", ".", "range(9)",
            ]),
            0..40,
        )
        .prop_map(|p| p.concat());
        let sources = prop_oneof![pieces, expression_template()];
        crate::test_support::check_accepting(file!(), 1024, 8, sources, |source| {
            let json = serde_json::json!({"port": 80, "paths": {"": {"access": "public", "headers": {"X-A": source}}}});
            let meta = AppMeta::parse("app", json.to_string().as_bytes()).unwrap();
            let Ok(headers) = AppHeaders::compile(&meta) else {
                return Ok(false);
            };
            for caller in Caller::samples() {
                let (out, _) = headers.render(0, &caller, &portal()).unwrap();
                for (_, value) in out {
                    prop_assert!(value.len() <= crate::templates::MAX_VALUE_BYTES);
                }
            }
            // Text alone always loads: only templates with an expression
            // count.
            Ok(source.contains("{{"))
        });
    }
}
