//! TLS: the certificate served (loaded, hot reloaded, the demo's and the
//! stand-in's) and pinned peer TLS (a Portal's identity key as its TLS
//! key, checked against its Portal ID both ways).
//!
//! May import: `observe`, `clock`.

#![forbid(unsafe_code)]

pub mod certificates;
pub mod peer;
