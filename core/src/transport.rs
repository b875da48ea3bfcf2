//! How this Portal's TLS with each peer is secured (docs/signing.md, "The
//! channel"): `pinned`, the default, or `ca`. Pure policy: the binary
//! builds the handshakes, [`crate::decide`] refuses what arrived over the
//! wrong one.

use std::collections::BTreeMap;

/// The TLS of calls to and from one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Both ends prove their identity key in the handshake: the caller
    /// accepts only the key whose Portal ID it called, and presents its
    /// own, which the answering Portal must find in `peers.json`. No
    /// certificate authority is involved.
    #[default]
    Pinned,
    /// The answering Portal's certificate is verified against the system's
    /// roots and `peering.ca_file`; the caller presents none. For peers
    /// that are not portal-proxy.
    Ca,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Pinned => "pinned",
            Transport::Ca => "ca",
        }
    }
}

/// The transport of every peer: one default and exceptions by Portal ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transports {
    pub default: Transport,
    /// By full Portal ID.
    pub by_peer: BTreeMap<String, Transport>,
}

impl Transports {
    /// The transport of the peer with this Portal ID.
    pub fn of(&self, peer_id: &str) -> Transport {
        self.by_peer.get(peer_id).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
