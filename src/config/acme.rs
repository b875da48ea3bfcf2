//! Validation of the `tls.acme` section (docs/certificates.md).

use std::time::Duration;

use super::raw;
use super::validate::Validator;
use crate::acme::{KeyType, Settings, SolverSettings, LETS_ENCRYPT};
use portal_core::names::is_dns_name;

/// Default of `tls.acme.propagation_timeout_seconds`.
const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Default of `tls.acme.retry_initial_seconds`.
const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(60);
/// Default of `tls.acme.max_orders_per_hour`.
const DEFAULT_MAX_ORDERS_PER_HOUR: usize = 5;

impl Validator {
    pub(super) fn acme(&mut self, raw: raw::Acme, cert_file: &std::path::Path) -> Option<Settings> {
        let directory = raw.directory.unwrap_or_else(|| LETS_ENCRYPT.to_string());
        self.url("tls.acme.directory", &directory, true);
        let directory_ca_file = raw
            .directory_ca_file
            .map(|f| self.path("tls.acme.directory_ca_file", &f));
        let account_file = match raw.account_file {
            Some(f) => self.path("tls.acme.account_file", &f),
            None => cert_file.with_file_name("acme-account.json"),
        };
        if let Some(email) = &raw.email {
            let plausible = email.rsplit_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && is_dns_name(domain) && !email.contains([' ', ',', '<', '>'])
            });
            if !plausible {
                self.error(
                    "tls.acme.email",
                    format!("{email:?} is not an e-mail address"),
                );
            }
        }
        let dns_resolvers: Vec<_> = raw
            .dns_resolvers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| self.addr(&format!("tls.acme.dns_resolvers[{i}]"), r))
            .collect();
        let mut extra_names = Vec::new();
        for (i, name) in raw.extra_names.iter().enumerate() {
            let bare = name
                .strip_prefix("*.")
                .unwrap_or(name)
                .trim_end_matches('.');
            if is_dns_name(bare) && bare.contains('.') && !bare.contains('*') {
                extra_names.push(name.trim_end_matches('.').to_ascii_lowercase());
            } else {
                self.error(
                    format!("tls.acme.extra_names[{i}]"),
                    format!("{name:?} is not a DNS name (or a wildcard \"*.\" and one)"),
                );
            }
        }
        let key_type = match raw.key_type.as_deref() {
            None | Some("ecdsa-p256") => KeyType::EcdsaP256,
            Some("ecdsa-p384") => KeyType::EcdsaP384,
            Some(other) => {
                self.error(
                    "tls.acme.key_type",
                    format!("{other:?} is not a key type: \"ecdsa-p256\" or \"ecdsa-p384\""),
                );
                KeyType::EcdsaP256
            }
        };
        let propagation_timeout = self.seconds(
            "tls.acme.propagation_timeout_seconds",
            raw.propagation_timeout_seconds,
            DEFAULT_PROPAGATION_TIMEOUT,
        );
        let retry_initial = self.seconds(
            "tls.acme.retry_initial_seconds",
            raw.retry_initial_seconds,
            DEFAULT_RETRY_INITIAL,
        );
        let max_orders_per_hour = self.count(
            "tls.acme.max_orders_per_hour",
            raw.max_orders_per_hour,
            DEFAULT_MAX_ORDERS_PER_HOUR,
            1..=60,
        );
        let solver = self.solver(raw.dns01);
        Some(Settings {
            directory,
            directory_ca_file,
            account_file,
            email: raw.email,
            dns_resolvers,
            solver: solver?,
            extra_names,
            key_type,
            propagation_timeout,
            retry_initial,
            max_orders_per_hour,
        })
    }

    /// `tls.acme.dns01`: exactly one solver.
    fn solver(&mut self, raw: raw::Dns01) -> Option<SolverSettings> {
        let given = [
            raw.portal_controller.is_some(),
            raw.httpreq.is_some(),
            raw.exec.is_some(),
        ]
        .iter()
        .filter(|&&g| g)
        .count();
        if given != 1 {
            self.error(
                "tls.acme.dns01",
                format!("{given} solvers given: exactly one of portal_controller, httpreq, exec"),
            );
            return None;
        }
        if let Some(c) = raw.portal_controller {
            let key = "tls.acme.dns01.portal_controller";
            return Some(SolverSettings::PortalController {
                url: self.url(&format!("{key}.url"), &c.url, true)?,
                ca_file: c.ca_file.map(|f| self.path(&format!("{key}.ca_file"), &f)),
            });
        }
        if let Some(h) = raw.httpreq {
            let key = "tls.acme.dns01.httpreq";
            if h.password_file.is_some() && h.username.is_none() {
                self.error(format!("{key}.password_file"), "given without username");
            }
            return Some(SolverSettings::HttpReq {
                url: self.url(&format!("{key}.url"), &h.url, false)?,
                username: h.username,
                password_file: h
                    .password_file
                    .map(|f| self.path(&format!("{key}.password_file"), &f)),
                ca_file: h.ca_file.map(|f| self.path(&format!("{key}.ca_file"), &f)),
            });
        }
        let command = raw.exec.map(|e| e.command).unwrap_or_default();
        if command.first().is_none_or(|p| p.is_empty()) {
            self.error(
                "tls.acme.dns01.exec.command",
                "empty: give the program to run",
            );
            return None;
        }
        Some(SolverSettings::Exec { command })
    }

    /// An absolute URL with no query or fragment: https, or also http
    /// when `https_only` is false.
    fn url(&mut self, key: &str, value: &str, https_only: bool) -> Option<http::Uri> {
        let problem = match value.parse::<http::Uri>() {
            Err(e) => Some(format!("{value:?} is not a URL: {e}")),
            Ok(uri) => match (uri.scheme_str(), uri.host()) {
                (Some("https"), Some(_)) | (Some("http"), Some(_)) if uri.query().is_some() => {
                    Some(format!("{value:?} has a query: give the URL without one"))
                }
                (Some("https"), Some(_)) => return Some(uri),
                (Some("http"), Some(_)) if !https_only => return Some(uri),
                _ if https_only => Some(format!("{value:?} is not an https URL")),
                _ => Some(format!("{value:?} is not an http or https URL")),
            },
        };
        if let Some(problem) = problem {
            self.error(key, problem);
        }
        None
    }
}
