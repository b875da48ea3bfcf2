//! Revocation of what is already open (DESIGN section 4): after a reload
//! that removes a terminal or a peer, removes an app, or makes a rule
//! stricter, a request still in flight (a WebSocket, an upgraded
//! connection, a streaming response) that its caller could no longer open
//! is closed. [`Opened`] is what a forwarded request was decided as;
//! [`still_allowed`] decides it again against a new snapshot. Pure; the
//! reload service applies it to the live requests of `ops::live`.

use super::access::{decide as access_decision, match_rule, stricter};
use super::caller::Caller;
use super::path::CanonicalPath;
use super::route::CoreAccess;
use crate::state::app_meta::Access;
use crate::state::Snapshot;

/// Where an open request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenedTarget {
    App(String),
    Core(CoreAccess),
}

/// What a forwarded request was decided as, kept while it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub caller: Caller,
    pub target: OpenedTarget,
    /// The canonical path matched.
    pub path: String,
    /// The path without `;parameters`, when it differs.
    pub without_params: Option<String>,
}

impl Opened {
    pub fn new(caller: Caller, target: OpenedTarget, path: &CanonicalPath<'_>) -> Self {
        Opened {
            caller,
            target,
            path: path.path.to_string(),
            without_params: path.without_params.clone(),
        }
    }
}

/// Whether the caller of `opened` could still open it with `snapshot`:
/// the terminal or peer still exists, the app still does, and the rule
/// its path matches now still lets the caller in.
pub fn still_allowed(opened: &Opened, snapshot: &Snapshot) -> bool {
    let caller_exists = match &opened.caller {
        Caller::Anonymous => true,
        Caller::Terminal { id, .. } => snapshot.terminals.contains(id),
        Caller::Peer { id, .. } => snapshot.peers.get(id).is_some(),
    };
    if !caller_exists {
        return false;
    }
    let access = match &opened.target {
        OpenedTarget::Core(CoreAccess::Protected) => Access::Private,
        OpenedTarget::Core(_) => Access::Public,
        OpenedTarget::App(name) => {
            let Some(app) = snapshot.http_app(name) else {
                return false;
            };
            let rules = &app.meta.paths;
            let Some(rule) = match_rule(rules, &opened.path) else {
                return false;
            };
            let rule = match opened
                .without_params
                .as_deref()
                .and_then(|p| match_rule(rules, p))
            {
                Some(other) => stricter(rules, rule, other, &opened.caller),
                None => rule,
            };
            rules[rule].access
        }
    };
    access_decision(access, &opened.caller).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::caller::{TerminalEntry, Terminals};
    use crate::decision::headers::AppHeaders;
    use crate::decision::path::canonical_path;
    use crate::state::app_meta::AppMeta;
    use crate::state::App;

    fn snapshot(rules: &str, terminals: &[&str]) -> Snapshot {
        let meta = AppMeta::parse(
            "files",
            format!(r#"{{"port":80,"paths":{rules}}}"#).as_bytes(),
        )
        .unwrap();
        let headers = AppHeaders::compile(&meta).unwrap();
        let mut apps = std::collections::BTreeMap::new();
        apps.insert(
            "files".to_string(),
            std::sync::Arc::new(App { meta, headers }),
        );
        let entries = terminals
            .iter()
            .map(|id| TerminalEntry {
                id: id.to_string(),
                name: "n".into(),
            })
            .collect();
        Snapshot {
            apps,
            terminals: Terminals::new(Some(b"secret"), entries),
            ..Snapshot::default()
        }
    }

    fn opened(caller: Caller, path: &str) -> Opened {
        Opened::new(
            caller,
            OpenedTarget::App("files".into()),
            &canonical_path(path).unwrap(),
        )
    }

    #[test]
    fn decided_again_on_reload() {
        let t1 = Caller::Terminal {
            id: "t1".into(),
            name: "n".into(),
        };
        let open = r#"{"":{"access":"public"},"/shell/":{"access":"private"}}"#;
        let stricter_rules = r#"{"":{"access":"private"}}"#;
        let cases = [
            // (what is open, the new state, still allowed)
            (
                opened(t1.clone(), "/shell/ws"),
                snapshot(open, &["t1"]),
                true,
            ),
            (
                opened(t1.clone(), "/shell/ws"),
                snapshot(open, &["t2"]),
                false,
            ),
            (
                opened(Caller::Anonymous, "/events"),
                snapshot(open, &[]),
                true,
            ),
            (
                opened(Caller::Anonymous, "/events"),
                snapshot(stricter_rules, &[]),
                false,
            ),
            (
                opened(t1.clone(), "/events"),
                snapshot(stricter_rules, &["t1"]),
                true,
            ),
            (
                opened(Caller::Anonymous, "/;/shell/ws"),
                snapshot(open, &[]),
                false,
            ),
            (opened(Caller::Anonymous, "/x"), Snapshot::default(), false),
        ];
        for (i, (opened, snapshot, want)) in cases.iter().enumerate() {
            assert_eq!(
                still_allowed(opened, snapshot),
                *want,
                "case {i}: {opened:?}"
            );
        }
        let core = Opened {
            caller: t1,
            target: OpenedTarget::Core(CoreAccess::Protected),
            path: "/core/protected/x".into(),
            without_params: None,
        };
        assert!(still_allowed(&core, &snapshot(open, &["t1"])));
        assert!(!still_allowed(&core, &snapshot(open, &[])));
    }
}
