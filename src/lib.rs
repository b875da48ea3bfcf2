//! portal-proxy: the edge proxy of a Portal (README.md, docs/). The folders
//! show the architecture:
//!
//! - [`decision`]: the pure core. Routing, callers, signatures, access and
//!   headers, and [`decision::decide`], which turns one request head into a
//!   [`decision::Verdict`]. Nothing here touches Pingora, a socket, a file
//!   or the clock: every module is table-tested and benchmarked directly.
//! - [`state`]: what the Portal core writes under `state_dir`, loaded into
//!   immutable snapshots and reloaded when it changes.
//! - [`listeners`]: the Pingora shells (HTTPS, port 80, MQTT, the internal
//!   listener, metrics). They gather inputs, ask `decision`, and apply what
//!   it decided; they decide nothing themselves.
//! - [`ops`]: running it: metrics, the access log, edge limits, TLS.
//! - At the top: the config, the identity key, start-up wiring (`server`),
//!   the command-line subcommands and the demo.

pub mod commands;
pub mod config;
pub mod decision;
pub mod demo;
pub mod identity;
pub mod listeners;
pub mod ops;
pub mod server;
pub mod state;
