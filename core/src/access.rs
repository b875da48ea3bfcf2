//! Path access control (docs/access.md): the longest-prefix rule match
//! and the access decision. Pure; used by [`super::decide`] once the path
//! is checked ([`super::path`]) and the caller known.

use crate::app_meta::{Access, PathRule};
use crate::caller::Caller;

/// The rule for `path`: the longest prefix that matches as a plain string
/// (`/mqtt` matches `/mqttx`), else `""`. `rules` are in the order
/// `AppMeta::parse` leaves them (longest first, `""` last), so the first
/// match is the longest. Returns its index.
pub fn match_rule(rules: &[PathRule], path: &str) -> Option<usize> {
    rules
        .iter()
        .position(|r| path.starts_with(r.prefix.as_str()))
}

/// Of two rules that match forms of one path (as received, and as Java
/// servers read it without `;parameters`), the stricter for `caller`: one
/// that refuses the caller, else the one whose access is narrower
/// (`private` and `peer` over `public`), else `b`.
pub fn stricter(rules: &[PathRule], a: usize, b: usize, caller: &Caller) -> usize {
    let narrow = |i: usize| rules[i].access != Access::Public;
    if decide(rules[a].access, caller).is_err() {
        a
    } else if decide(rules[b].access, caller).is_err() || narrow(b) || !narrow(a) {
        b
    } else {
        a
    }
}

/// Why the caller may not reach a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this page is for the Portal owner's devices only: sign in on this Portal first")]
    NotTerminal,
    #[error("this path is for peer Portals only")]
    NotPeer,
}

/// The access decision for `caller` on a path with `access`.
pub fn decide(access: Access, caller: &Caller) -> Result<(), Denied> {
    match (access, caller) {
        (Access::Public, _) => Ok(()),
        (Access::Private, Caller::Terminal { .. }) => Ok(()),
        (Access::Private, _) => Err(Denied::NotTerminal),
        (Access::Peer, Caller::Peer { .. }) => Ok(()),
        (Access::Peer, _) => Err(Denied::NotPeer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_meta::AppMeta;

    #[test]
    fn longest_prefix_wins_plain_string_semantics() {
        let app = AppMeta::parse(
            "a",
            br#"{"port":1,"paths":{"":{"access":"private"},"/public/":{"access":"public"},"/public/admin/":{"access":"private"},"/mqtt":{"access":"public"},"/peer/":{"access":"peer"}}}"#,
        )
        .unwrap();
        let access = |path: &str| app.paths[match_rule(&app.paths, path).unwrap()].access;
        let cases = [
            ("/", Access::Private),
            ("/public", Access::Private),
            ("/public/", Access::Public),
            ("/public/x", Access::Public),
            ("/public/admin/", Access::Private),
            ("/public/admin", Access::Public),
            ("/mqtt", Access::Public),
            ("/mqttx", Access::Public),
            ("/peer/x", Access::Peer),
            ("/PUBLIC/", Access::Private),
        ];
        for (path, want) in cases {
            assert_eq!(access(path), want, "{path}");
        }
    }

    #[test]
    fn decisions() {
        let terminal = Caller::Terminal {
            id: "t".into(),
            name: "n".into(),
        };
        let peer = Caller::Peer {
            id: "p".into(),
            name: "n".into(),
        };
        let cases = [
            (Access::Public, &Caller::Anonymous, Ok(())),
            (Access::Public, &terminal, Ok(())),
            (Access::Public, &peer, Ok(())),
            (
                Access::Private,
                &Caller::Anonymous,
                Err(Denied::NotTerminal),
            ),
            (Access::Private, &terminal, Ok(())),
            (Access::Private, &peer, Err(Denied::NotTerminal)),
            (Access::Peer, &Caller::Anonymous, Err(Denied::NotPeer)),
            (Access::Peer, &terminal, Err(Denied::NotPeer)),
            (Access::Peer, &peer, Ok(())),
        ];
        for (access, caller, want) in cases {
            assert_eq!(decide(access, caller), want, "{access:?} {caller:?}");
        }
    }

    #[test]
    fn the_stricter_of_two_rules() {
        let app = AppMeta::parse(
            "a",
            br#"{"port":1,"paths":{"":{"access":"public"},"/admin/":{"access":"private"},"/peer/":{"access":"peer"},"/open/":{"access":"public"}}}"#,
        )
        .unwrap();
        let rule = |path: &str| match_rule(&app.paths, path).unwrap();
        let terminal = Caller::Terminal {
            id: "t".into(),
            name: "n".into(),
        };
        let cases = [
            // (as received, without parameters, caller, the rule that applies)
            ("/x", "/admin/", &Caller::Anonymous, "/admin/"),
            ("/admin/", "/x", &Caller::Anonymous, "/admin/"),
            ("/admin/", "/x", &terminal, "/admin/"),
            ("/x", "/admin/", &terminal, "/admin/"),
            ("/admin/", "/peer/", &terminal, "/peer/"),
            ("/open/", "/x", &Caller::Anonymous, ""),
        ];
        for (a, b, caller, want) in cases {
            let got = stricter(&app.paths, rule(a), rule(b), caller);
            assert_eq!(app.paths[got].prefix, want, "{a} {b} {caller:?}");
        }
    }
}
