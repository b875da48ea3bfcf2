//! `-t`: every problem of the config and of what it names, then a
//! one-line verdict. Loads as a start does, binds nothing.

use super::{bindable, load};
use crate::config::Config;

/// `-t`: what an operator sees: every problem, then a one-line verdict.
/// Returns whether everything is valid.
pub fn check(config: &Config) -> bool {
    let problems = match load(config) {
        Err(errors) => report(&errors),
        Ok(loaded) => {
            let state = report(&loaded.state_errors);
            // The listeners: free, or a running portal-proxy's to hand over.
            let unbindable = report(&bindable::check(config, true, true));
            let acme = match &config.acme {
                Some(settings) => {
                    if let Some(reason) = &loaded.stand_in {
                        println!("tls: {reason}");
                    }
                    report(&crate::acme::check(
                        settings,
                        &config.tls_cert_file,
                        &config.tls_key_file,
                    ))
                }
                None => 0,
            };
            println!(
                "portal {} at {}: {} app(s) loaded, {} state error(s)",
                loaded.identity.id,
                loaded.domain(config),
                loaded.snapshot.apps.len(),
                loaded.state_errors.len()
            );
            state + unbindable + acme
        }
    };
    verdict(&config.file.display().to_string(), problems)
}

/// Prints each problem; returns how many there were.
fn report(problems: &[impl std::fmt::Display]) -> usize {
    for e in problems {
        eprintln!("error: {e}");
    }
    problems.len()
}

/// The last line of `-t`; returns whether there was no problem.
pub fn verdict(config_file: &str, problems: usize) -> bool {
    if problems == 0 {
        println!("portal-proxy -t: OK: {config_file} and what it names are valid");
    } else {
        eprintln!("portal-proxy -t: FAILED: {problems} problem(s) found, listed above");
    }
    problems == 0
}
