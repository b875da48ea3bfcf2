//! What the request path reads from the Portal's state, validated: the
//! apps, the owner's terminals, the peers and the internal listener's
//! address table (docs/state.md). Loading it from files is the binary's.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::app_meta::AppMeta;
use crate::caller::Terminals;
use crate::headers::AppHeaders;
use crate::peers::Peers;

/// A loaded app: its metadata and its compiled header templates.
#[derive(Debug)]
pub struct App {
    pub meta: AppMeta,
    pub headers: AppHeaders,
}

/// Everything the request path needs from `state_dir`, validated.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub apps: BTreeMap<String, Arc<App>>,
    pub terminals: Terminals,
    pub peers: Arc<Peers>,
    /// Which app a source address of the internal listener belongs to.
    pub app_addresses: Arc<HashMap<IpAddr, String>>,
}

impl Snapshot {
    /// The app of that name, if it is loaded and has an `http` entrypoint.
    pub fn http_app(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.get(name).filter(|a| a.meta.http.is_some())
    }
}
