//! portal-core: everything a request to a Portal is decided by (the
//! README's architecture section, docs/). No module here knows Pingora,
//! opens a socket or a file, reads the clock or draws randomness: the
//! binary passes in what it received, the time and any random bytes, and
//! applies what comes back. The crate depends on neither Pingora nor tokio
//! (a CI check keeps it so), and it has no `unsafe` code.
//!
//! - [`decide::decide`] turns one request head into a [`decide::Verdict`];
//!   [`outbound`] decides the internal listener's calls to peers.
//! - [`snapshot::Snapshot`]: the Portal's state as the request path reads
//!   it, parsed by [`app_meta`], [`peers`] and [`caller`].
//! - [`refusal::Refusal`]: every answer of the proxy's own.

#![forbid(unsafe_code)]

pub mod access;
pub mod app_meta;
pub mod assertion;
pub mod body;
pub mod caller;
pub mod credentials;
pub mod decide;
pub mod encoding;
pub mod head;
pub mod headers;
pub mod identity;
pub mod names;
pub mod outbound;
pub mod path;
pub mod peer_answer;
pub mod peers;
pub mod proxy_header;
pub mod rate;
pub mod refusal;
pub mod renewal;
pub mod replay;
pub mod revoke;
pub mod route;
pub mod signature;
pub mod snapshot;
pub mod target;
pub mod templates;
#[cfg(test)]
mod test_support;
pub mod trace;
pub mod transport;
