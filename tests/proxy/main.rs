//! The integration tests, in one binary (each test file used to link
//! Pingora on its own): the real `portal-proxy` process, real TLS, real
//! HTTP clients and upstreams on loopback. `common/` is the harness. Run
//! one file's tests with `cargo test --test proxy <file>::`.

mod common;

mod access;
mod acme;
mod assertion;
mod cli;
mod compression;
mod config_schema;
mod core_stand_in;
mod corpus;
mod daemon;
mod dns;
mod health;
mod honest;
mod hostile;
mod interop;
mod interop_httpsig;
mod interop_response;
mod limits;
mod monitoring;
mod mqtt;
mod observability;
mod operations;
mod peering;
mod peers;
mod pinned;
mod proxy_protocol;
mod ratelimits;
mod revocation;
mod routing;
mod slow_clients;
mod tracing;
mod websocket;
