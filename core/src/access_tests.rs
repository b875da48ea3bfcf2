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
