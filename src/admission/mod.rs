//! Admission: who gets in and how much they may hold. The connection guard
//! (every client connection from accept to end: deadlines, the share per
//! address, the cap and who is shed at it), the descriptor and memory
//! limits, the rate limits, the PROXY protocol header, and the requests in
//! flight (revoked callers' requests ended).
//!
//! May import: `observe`, `clock`.

#![forbid(unsafe_code)]

pub(crate) mod guard;
pub(crate) mod limits;
pub(crate) mod live;
pub mod proxy_protocol;
pub mod rate;
