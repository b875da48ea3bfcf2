//! The pure core: everything a request is decided by (DESIGN sections 3
//! to 6). No module here knows Pingora's `Session`, opens a socket or a
//! file, or reads the clock: the listeners pass in what they received and
//! the time, and apply what comes back.

pub mod access;
pub mod body;
pub mod caller;
pub mod credentials;
pub mod decide;
pub mod head;
pub mod headers;
pub mod outbound;
pub mod path;
pub mod refusal;
pub mod replay;
pub mod revoke;
pub mod route;
pub mod signature;
pub mod target;
pub mod templates;
