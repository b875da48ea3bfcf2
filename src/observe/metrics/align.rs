//! Series that exist before their first event: the label sets known from
//! the state (apps and their accesses, peers) exported at 0 at start and
//! after each reload, and those of apps and peers that left dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{LazyLock, Mutex};

use super::{LabelValue, StatusClass, UpstreamError, METRICS};
use portal_core::app_meta::Access;
use portal_core::caller::Caller;
use portal_core::decide::CORE_APP_LABEL;
use portal_core::snapshot::Snapshot;

/// The series of apps and peers that [`align_series`] made, to drop them
/// when their app or peer is gone.
#[derive(Default)]
struct Aligned {
    /// By app label: the label values of its `requests_total` series.
    apps: BTreeMap<String, Vec<[&'static str; 3]>>,
    peers: BTreeSet<String>,
}

static ALIGNED: LazyLock<Mutex<Aligned>> = LazyLock::new(Mutex::default);

/// The `(access, client_type)` pairs a request forwarded on a path of
/// `access` can have: the access rule itself tells (`portal_core::access`).
fn forwarded_labels(access: Access) -> impl Iterator<Item = [&'static str; 3]> {
    let callers = [
        Caller::Anonymous,
        Caller::Terminal {
            id: String::new(),
            name: String::new(),
        },
        Caller::Peer {
            id: String::new(),
            name: String::new(),
        },
    ];
    callers
        .into_iter()
        .filter(move |c| portal_core::access::decide(access, c).is_ok())
        .map(move |c| [access.as_str(), c.client_type(), "2xx"])
}

/// Exports the series of the state's apps and peers from 0, so that a
/// scrape of a fresh proxy (or one after a reload) has them before their
/// first event and `rate()`/`increase()` see the first one (Prometheus's
/// instrumentation guidance): per app (and the Portal core), its request
/// duration, its forwarded requests (each access of its rules, each
/// client type that access admits, `2xx`) and its upstream errors of
/// every kind; per peer, its calls of every status class and its
/// unverified answers. The series of apps and peers no longer in the
/// state are dropped. Called at start and after each state reload.
pub(crate) fn align_series(snapshot: &Snapshot) {
    let m = &*METRICS;
    let mut apps: BTreeMap<String, Vec<[&'static str; 3]>> = BTreeMap::new();
    for (name, app) in &snapshot.apps {
        let mut accesses: Vec<Access> = app.meta.paths.iter().map(|r| r.access).collect();
        accesses.sort_by_key(|a| a.as_str());
        accesses.dedup();
        apps.insert(
            name.clone(),
            accesses.into_iter().flat_map(forwarded_labels).collect(),
        );
    }
    apps.insert(
        CORE_APP_LABEL.to_string(),
        [Access::Public, Access::Private]
            .into_iter()
            .flat_map(forwarded_labels)
            .collect(),
    );
    let peers: BTreeSet<String> = snapshot.peers.iter().map(|p| p.id.clone()).collect();

    let mut aligned = ALIGNED.lock().unwrap_or_else(|e| e.into_inner());
    for (app, labels) in &aligned.apps {
        let kept = apps.get(app);
        for l in labels {
            if !kept.is_some_and(|k| k.contains(l)) {
                let _ = m
                    .requests
                    .remove_label_values(&[app, l[0], l[1], "forward", l[2]]);
            }
        }
        if kept.is_none() {
            let _ = m.request_duration.remove_label_values(&[app]);
            for kind in UpstreamError::ALL {
                let _ = m.upstream_errors.remove_label_values(&[app, kind.as_str()]);
            }
        }
    }
    for peer in aligned.peers.difference(&peers) {
        for class in StatusClass::ALL {
            let _ = m
                .outbound_requests
                .remove_label_values(&[peer, class.as_str()]);
        }
        let _ = m.outbound_unverified.remove_label_values(&[peer]);
    }
    for (app, labels) in &apps {
        m.request_duration.with_label_values(&[app]);
        for l in labels {
            m.requests
                .with_label_values(&[app, l[0], l[1], "forward", l[2]]);
        }
        for kind in UpstreamError::ALL {
            m.upstream_errors.with_label_values(&[app, kind.as_str()]);
        }
    }
    for peer in &peers {
        for class in StatusClass::ALL {
            m.outbound_requests
                .with_label_values(&[peer, class.as_str()]);
        }
        m.outbound_unverified.with_label_values(&[peer]);
    }
    *aligned = Aligned { apps, peers };
}

#[cfg(test)]
#[path = "align_tests.rs"]
mod tests;
