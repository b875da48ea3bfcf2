use super::*;
use crate::app_meta::AppMeta;
use crate::caller::{TerminalEntry, Terminals};
use crate::headers::AppHeaders;
use crate::path::canonical_path;
use crate::snapshot::App;

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

const NOW: i64 = 1_800_000_000;

fn opened(caller: Caller, path: &str) -> Opened {
    let credential = matches!(caller, Caller::Terminal { .. }).then(|| TerminalCredential {
        secret_id: Terminals::new(Some(b"secret"), Vec::new())
            .secret_id()
            .unwrap(),
        expires: None,
    });
    Opened::new(
        caller,
        credential,
        Target::App("files".into()),
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
            still_allowed(opened, snapshot, NOW),
            *want,
            "case {i}: {opened:?}"
        );
    }
    let core = Opened {
        caller: t1.clone(),
        credential: opened(t1.clone(), "/").credential,
        target: Target::Core(CoreAccess::Protected),
        path: "/core/protected/x".into(),
        without_params: None,
    };
    assert!(still_allowed(&core, &snapshot(open, &["t1"]), NOW));
    assert!(!still_allowed(&core, &snapshot(open, &[]), NOW));
}

/// A terminal's open request lives under the credential it was decided
/// with: the same secret, still there, and the token's `exp`.
#[test]
fn a_terminal_credential_ends_with_its_secret_and_its_exp() {
    let t1 = Caller::Terminal {
        id: "t1".into(),
        name: "n".into(),
    };
    let open = r#"{"":{"access":"private"}}"#;
    let with_secret = |secret: Option<&[u8]>| Snapshot {
        terminals: Terminals::new(
            secret,
            vec![TerminalEntry {
                id: "t1".into(),
                name: "n".into(),
            }],
        ),
        ..snapshot(open, &[])
    };
    let until = |expires: Option<f64>| {
        let mut o = opened(t1.clone(), "/shell/ws");
        o.credential.as_mut().unwrap().expires = expires;
        o
    };
    let n = NOW as f64;
    #[rustfmt::skip]
        let cases: &[(&str, Opened, Snapshot, i64, bool)] = &[
            ("same secret, no exp", until(None), with_secret(Some(b"secret")), NOW, true),
            ("same secret, exp ahead", until(Some(n + 1.0)), with_secret(Some(b"secret")), NOW, true),
            ("exp reached", until(Some(n)), with_secret(Some(b"secret")), NOW, false),
            ("exp passed", until(Some(n - 0.5)), with_secret(Some(b"secret")), NOW, false),
            ("exp reached later", until(Some(n + 10.0)), with_secret(Some(b"secret")), NOW + 10, false),
            ("secret rotated", until(None), with_secret(Some(b"rotated")), NOW, false),
            ("secret deleted", until(None), with_secret(None), NOW, false),
            ("no credential recorded", Opened { credential: None, ..until(None) }, with_secret(Some(b"secret")), NOW, false),
        ];
    for (what, opened, snapshot, now, want) in cases {
        assert_eq!(still_allowed(opened, snapshot, *now), *want, "{what}");
    }
    // Anonymous and peer requests have no terminal credential to end.
    let anonymous = opened(Caller::Anonymous, "/x");
    assert!(still_allowed(
        &anonymous,
        &snapshot(r#"{"":{"access":"public"}}"#, &[]),
        i64::MAX
    ));
}

proptest::proptest! {
    /// A terminal's open request stays allowed exactly while its
    /// terminal is listed, the secret is the one that checked its
    /// token, and the token's `exp` is ahead.
    #[test]
    fn terminal_requests_live_with_their_credential(
        listed in proptest::prelude::any::<bool>(),
        secret in proptest::sample::select(vec![None, Some(&b"secret"[..]), Some(&b"other"[..])]),
        exp in proptest::option::of(-5i64..5),
        fraction in 0.0f64..1.0,
    ) {
        let t1 = Caller::Terminal { id: "t1".into(), name: "n".into() };
        let mut open = opened(t1, "/x");
        open.credential.as_mut().unwrap().expires = exp.map(|e| (NOW + e) as f64 + fraction);
        let snapshot = Snapshot {
            terminals: Terminals::new(
                secret,
                if listed { vec![TerminalEntry { id: "t1".into(), name: "n".into() }] } else { vec![] },
            ),
            ..snapshot(r#"{"":{"access":"public"}}"#, &[])
        };
        let want = listed
            && secret == Some(&b"secret"[..])
            && exp.is_none_or(|e| (NOW + e) as f64 + fraction > NOW as f64);
        proptest::prop_assert_eq!(still_allowed(&open, &snapshot, NOW), want);
    }
}
