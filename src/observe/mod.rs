//! Observability: what an operator sees of the running proxy. The
//! Prometheus series (`metrics`, with the alignment that exports every
//! label value from 0), the JSON access log and the process log.
//!
//! May import: `clock` only. Every other room reports here.

#![forbid(unsafe_code)]

pub(crate) mod access_log;
pub mod logging;
pub(crate) mod metrics;
