//! portal-proxy: the edge proxy of a Portal (see DESIGN.md in the shared
//! folder, and README.md). Pure modules hold the decisions; `proxy`,
//! `redirect` and `server` are the Pingora shell around them.

pub mod access;
pub mod access_log;
pub mod app_meta;
pub mod caller;
pub mod config;
pub mod demo;
pub mod error_page;
pub mod headers;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod mqtt;
pub mod peering;
pub mod peers;
pub mod proxy;
pub mod redirect;
pub mod reload;
pub mod replay;
pub mod route;
pub mod server;
pub mod signature;
pub mod state;
pub mod tls;
