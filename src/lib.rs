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
//!   listener, metrics). They gather inputs, ask `decision`, and apply what
//!   it decided; they decide nothing themselves.
//! - [`ops`]: running it: metrics, the access log, edge limits, TLS.
//! - [`acme`]: the certificate obtained and renewed by ACME DNS-01.
//! - At the top: the config, the identity key, start-up wiring (`server`),
//!   the command-line subcommands and the demo.

#![deny(unsafe_code)]
#![warn(unreachable_pub)]

pub mod acme;
pub mod commands;
pub mod config;
pub mod demo;
pub mod identity;
pub(crate) mod listeners;
pub mod ops;
pub mod server;
pub mod state;
