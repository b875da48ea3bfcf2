//! `peers.json` (docs/state.md): the Portals this one peers with, each
//! checked against its key (the ID must derive from the key, the key must
//! not be weak). Pure parsing; `state` loads the file, `request_filter`
//! looks peers up by `keyid`, the internal listener by ID or prefix.

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::caller::MAX_NAME_BYTES;
use crate::identity::{is_portal_id, portal_id, public_key_from_pem, short_id};
use crate::names::HostPort;

/// A peer Portal, validated.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The full Portal ID, derived from `key`.
    pub id: String,
    pub name: String,
    pub key: VerifyingKey,
    /// Where to connect instead of resolving `<app>.<short_id>.<base_domain>`.
    pub address: Option<HostPort>,
}

impl Peer {
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

#[derive(Deserialize)]
struct RawPeer {
    id: String,
    name: String,
    public_key: String,
    #[serde(default)]
    address: Option<String>,
}

/// The peers of this Portal, by Portal ID.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    by_id: BTreeMap<String, Arc<Peer>>,
}

/// Why `peers.json` or one of its entries was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeersError {
    #[error("invalid JSON at {path}: {message}")]
    Json { path: String, message: String },
    #[error("[{index}] ({id:?}): {reason}")]
    Entry {
        index: usize,
        id: String,
        reason: String,
    },
}

/// How a peer ID or prefix given by an app resolves.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Arc<Peer>),
    Unknown,
    /// The prefix names this many peers.
    Ambiguous(usize),
}

/// The shortest prefix of a Portal ID an app may use to name a peer.
pub const MIN_PREFIX: usize = 6;

impl Peers {
    /// Parses `peers.json`. Entries that fail validation are left out and
    /// returned as errors; a file that is not a JSON list of peers is one
    /// error and no peers.
    pub fn parse(bytes: &[u8]) -> Result<(Peers, Vec<PeersError>), PeersError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: Vec<RawPeer> =
            serde_path_to_error::deserialize(de).map_err(|e| PeersError::Json {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        let mut peers = Peers::default();
        let mut errors = Vec::new();
        for (index, raw) in raw.into_iter().enumerate() {
            let id = raw.id.clone();
            match validate(raw) {
                Ok(peer) => {
                    if peers.by_id.contains_key(&peer.id) {
                        errors.push(PeersError::Entry {
                            index,
                            id,
                            reason: "this ID appears twice; the first entry is kept".into(),
                        });
                    } else {
                        peers.by_id.insert(peer.id.clone(), Arc::new(peer));
                    }
                }
                Err(reason) => errors.push(PeersError::Entry { index, id, reason }),
            }
        }
        Ok((peers, errors))
    }

    /// The peer whose full Portal ID is `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Peer>> {
        self.by_id.get(id)
    }

    /// The peer named by a full ID or a unique prefix of at least
    /// [`MIN_PREFIX`] characters.
    pub fn lookup(&self, id_or_prefix: &str) -> Lookup {
        self.lookup_with_min(id_or_prefix, MIN_PREFIX)
    }

    fn lookup_with_min(&self, id_or_prefix: &str, min_prefix: usize) -> Lookup {
        if let Some(peer) = self.by_id.get(id_or_prefix) {
            return Lookup::Found(peer.clone());
        }
        if id_or_prefix.is_empty() || id_or_prefix.len() < min_prefix {
            return Lookup::Unknown;
        }
        let mut matches = self
            .by_id
            .range(id_or_prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(id_or_prefix));
        match (matches.next(), matches.count()) {
            (None, _) => Lookup::Unknown,
            (Some((_, peer)), 0) => Lookup::Found(peer.clone()),
            (Some(_), more) => Lookup::Ambiguous(more + 1),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn validate(raw: RawPeer) -> Result<Peer, String> {
    if !is_portal_id(&raw.id) {
        return Err("id is not a Portal ID (103 characters of the Portal ID alphabet)".into());
    }
    let key = public_key_from_pem(&raw.public_key)
        .map_err(|e| format!("public_key is not an ed25519 SPKI PEM key: {e}"))?;
    if key.is_weak() {
        return Err("public_key is a weak (small order) key".into());
    }
    let derived = portal_id(key.as_bytes());
    if derived != raw.id {
        return Err(format!(
            "id does not derive from public_key (the key's ID is {derived})"
        ));
    }
    if raw.name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "name is {} bytes long; at most {MAX_NAME_BYTES} are accepted",
            raw.name.len()
        ));
    }
    let address = raw
        .address
        .map(|a| a.parse::<HostPort>().map_err(|e| format!("address: {e}")))
        .transpose()?;
    Ok(Peer {
        id: raw.id,
        name: raw.name,
        key,
        address,
    })
}

#[cfg(test)]
#[path = "peers_tests.rs"]
mod tests;
