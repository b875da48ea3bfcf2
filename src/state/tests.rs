//! Tests of `state`: loading, last good versions, terminals, peers, addresses.

use super::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn broken_apps_are_reported_and_the_rest_load() {
    let dir = std::env::temp_dir().join(format!("pp-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let apps = dir.join("apps");
    let ok = r#"{"port":80,"paths":{"":{"access":"public"}}}"#;
    write(&apps.join("good/app_meta.json"), ok);
    write(&apps.join("old/app.json"), ok);
    // app_meta.json wins over app.json.
    write(
        &apps.join("both/app_meta.json"),
        r#"{"port":81,"paths":{"":{"access":"public"}}}"#,
    );
    write(&apps.join("both/app.json"), "not read");
    write(&apps.join("broken/app_meta.json"), r#"{"port":80}"#);
    write(&apps.join("Bad_Name/app_meta.json"), ok);
    std::fs::create_dir_all(apps.join("empty")).unwrap();
    std::fs::create_dir_all(apps.join(".tmp")).unwrap();

    let (snapshot, errors) = crate::state::load(&dir).unwrap();
    let names: Vec<_> = snapshot.apps.keys().map(String::as_str).collect();
    assert_eq!(names, ["both", "good", "old"]);
    assert_eq!(snapshot.apps["both"].meta.http.as_ref().unwrap().port, 81);
    let mut messages: Vec<_> = errors.iter().map(ToString::to_string).collect();
    messages.sort();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(
        messages[0].contains("Bad_Name/app_meta.json") && messages[0].contains("not an app name")
    );
    assert!(messages[1].contains("broken/app_meta.json") && messages[1].contains("paths"));
    assert!(messages[2].contains("empty") && messages[2].contains("no app_meta.json"));

    assert!(crate::state::load(&dir.join("missing")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_file_keeps_its_last_good_version() {
    let dir = std::env::temp_dir().join(format!("pp-state-keep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let public = r#"{"port":80,"paths":{"":{"access":"public"}}}"#;
    write(&dir.join("apps/a/app_meta.json"), public);
    write(&dir.join("apps/b/app_meta.json"), public);
    write(
        &dir.join(TERMINALS_FILE),
        r#"[{"id":"t1","name":"Laptop"}]"#,
    );
    write(&dir.join(TERMINAL_SECRET_FILE), "s3cret");
    let (first, errors) = crate::state::load(&dir).unwrap();
    assert!(errors.is_empty(), "{errors:?}");

    // Break app a, terminals.json and the secret; change app b.
    write(&dir.join("apps/a/app_meta.json"), "{ half written");
    write(
        &dir.join("apps/b/app_meta.json"),
        r#"{"port":81,"paths":{"":{"access":"public"}}}"#,
    );
    write(&dir.join(TERMINALS_FILE), "[");
    write(&dir.join(TERMINAL_SECRET_FILE), "\n");
    write(&dir.join("apps/new/app_meta.json"), "{}");
    let (second, errors) = crate::state::reload(&dir, &first).unwrap();
    assert!(
        Arc::ptr_eq(&first.apps["a"], &second.apps["a"]),
        "a keeps its last good version"
    );
    assert_eq!(
        second.apps["b"].meta.http.as_ref().unwrap().port,
        81,
        "b is updated"
    );
    assert!(
        !second.apps.contains_key("new"),
        "an app that never loaded stays out"
    );
    assert_eq!(second.terminals.entries(), first.terminals.entries());
    assert_eq!(second.terminals.secret(), Some(&b"s3cret"[..]));
    let mut kinds: Vec<_> = errors.iter().map(|e| (e.kind, e.kept_previous)).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("app", false),
            ("app", true),
            ("terminal_jwt_secret", true),
            ("terminals", true)
        ]
    );
    assert!(errors
        .iter()
        .any(|e| e.to_string().contains("keeping its last good version")));

    // A removed app folder removes the app.
    std::fs::remove_dir_all(dir.join("apps/a")).unwrap();
    let (third, _) = crate::state::reload(&dir, &second).unwrap();
    assert!(!third.apps.contains_key("a"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn app_addresses() {
    let dir = std::env::temp_dir().join(format!("pp-state-addr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write(
        &dir.join(APP_ADDRESSES_FILE),
        r#"{"files":["172.20.0.5","fd00::5"],"notes":["172.20.0.6","172.20.0.7","bad"],"evil":["172.20.0.7"],"Bad_Name":["172.20.0.8"]}"#,
    );
    let mut errors = Vec::new();
    let map = load_app_addresses(&dir, &Arc::default(), &mut errors);
    let app = |ip: &str| map.get(&ip.parse::<IpAddr>().unwrap()).cloned();
    assert_eq!(app("172.20.0.5").as_deref(), Some("files"));
    assert_eq!(app("fd00::5").as_deref(), Some("files"));
    assert_eq!(app("172.20.0.6").as_deref(), Some("notes"));
    assert_eq!(app("172.20.0.7"), None, "claimed by two apps: neither");
    assert_eq!(app("172.20.0.8"), None);
    assert_eq!(map.len(), 3);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    // A broken file keeps the previous map.
    write(&dir.join(APP_ADDRESSES_FILE), "{");
    let mut errors = Vec::new();
    let kept = load_app_addresses(&dir, &map, &mut errors);
    assert!(Arc::ptr_eq(&kept, &map));
    assert!(errors[0].kept_previous);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn apps_with_bad_templates_are_refused() {
    let dir = std::env::temp_dir().join(format!("pp-state-tpl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write(
        &dir.join("apps/bad/app_meta.json"),
        r#"{"port":80,"paths":{"":{"access":"public","headers":{"X-Ptl-User":"{{ auth.client_id"}}}}"#,
    );
    write(
        &dir.join("apps/good/app.json"),
        r#"{"port":80,"paths":{"":{"access":"public"}}}"#,
    );
    let (snapshot, errors) = crate::state::load(&dir).unwrap();
    assert_eq!(snapshot.apps.keys().collect::<Vec<_>>(), ["good"]);
    assert_eq!(errors.len(), 1);
    let message = errors[0].to_string();
    assert!(
        message.contains("bad/app_meta.json") && message.contains("x-ptl-user"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn terminals_and_secret() {
    let dir = std::env::temp_dir().join(format!("pp-state-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut errors = Vec::new();
    let t = load_terminals(&dir, &Terminals::default(), &mut errors);
    assert!(
        t.is_empty() && errors.is_empty(),
        "missing files are empty, not errors"
    );

    write(
        &dir.join(TERMINALS_FILE),
        r#"[{"id":"t1","name":"Laptop"},{"id":"t2","name":"Phone"}]"#,
    );
    write(&dir.join(TERMINAL_SECRET_FILE), "secret\n");
    let t = load_terminals(&dir, &Terminals::default(), &mut errors);
    assert_eq!(t.len(), 2);
    assert!(errors.is_empty(), "{errors:?}");
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "t2"}),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert!(
        t.identify(&token, 0).is_some(),
        "the trailing newline is not part of the secret"
    );

    for (text, needle) in [
        (
            r#"[{"id":"t1","name":"a"},{"id":"t1","name":"b"}]"#,
            "appears twice",
        ),
        (r#"[{"id":"t1"}]"#, "[0]"),
        (r#"{"t1":"a"}"#, "invalid JSON"),
        (r#"[{"id":"","name":"a"}]"#, "[0].id: empty"),
    ] {
        write(&dir.join(TERMINALS_FILE), text);
        let mut errors = Vec::new();
        let t = load_terminals(&dir, &Terminals::default(), &mut errors);
        assert!(t.is_empty());
        assert_eq!(errors.len(), 1, "{text}");
        let message = errors[0].to_string();
        assert!(
            message.contains("terminals.json") && message.contains(needle),
            "{message}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
