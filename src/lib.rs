//! portal-proxy: the edge proxy of a Portal (README.md, docs/). The folders
//! show the architecture:
//!
//! - [`portal_core`] (the `core/` crate): the pure core. Routing, callers,
//!   signatures, access and headers, and `portal_core::decide::decide`,
//!   which turns one request head into a verdict. Nothing there touches
//!   Pingora, a socket, a file or the clock.
//! - [`state`]: what the Portal core writes under `state_dir`, loaded into
//!   immutable snapshots and reloaded when it changes.
//! - [`listeners`]: the Pingora shells (HTTPS, port 80, MQTT, the internal
//!   listener, metrics). They gather inputs, ask the core, and apply what
//!   it decided; they decide nothing themselves.
//! - [`admission`]: who gets in and how much they may hold (the connection
//!   guard, limits, rate limits, the PROXY header, requests in flight).
//! - [`tls`]: the certificate served and pinned peer TLS.
//! - [`observe`]: metrics, the access log, the process log.
//! - [`dns`]: upstream names resolved and cached by their TTL.
//! - [`compress`]: answers compressed for the clients that ask.
//! - [`acme`]: the certificate obtained and renewed by ACME DNS-01.
//! - [`clock`]: the clock and random source handed to the core.
//! - At the top: the config, the identity key, start-up wiring (`server`),
//!   the command-line subcommands and the demo.

#![deny(unsafe_code)]
#![warn(unreachable_pub)]

pub mod acme;
pub mod admission;
pub mod clock;
pub mod commands;
pub mod compress;
pub mod config;
pub mod demo;
pub mod dns;
pub mod identity;
pub(crate) mod listeners;
pub mod observe;
pub mod server;
pub mod state;
mod sys;
pub mod tls;
