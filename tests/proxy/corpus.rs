//! Every app of the Portal app store must load (docs/state.md). The
//! files are read from the folder named by `PORTAL_CORPUS_DIR` (`.ci/run`
//! sets it to `../shared/corpus`); they are not copied into this repository.
//! Without that variable and without `../shared/corpus` (a checkout of this
//! repository alone), these tests check nothing, pass, and say so on the
//! standard error (README.md, "Two commands").

use std::path::{Path, PathBuf};

use portal_core::app_meta::{Access, AppMeta};

/// The corpus folder: `PORTAL_CORPUS_DIR`, which must exist when set, else
/// `../shared/corpus` beside the checkout when it is there.
fn corpus_dir() -> Option<PathBuf> {
    match std::env::var_os("PORTAL_CORPUS_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join("app_meta").is_dir() && dir.join("app_json").is_dir(),
                "PORTAL_CORPUS_DIR={} has no app_meta/ and app_json/ folders",
                dir.display()
            );
            Some(dir)
        }
        None => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
            if dir.is_dir() {
                Some(dir)
            } else {
                // Written to the standard error itself: the test harness
                // keeps what `eprintln!` prints for failing tests only, so
                // the skip would go unseen under a plain `cargo test`.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: the app store corpus is not checked: PORTAL_CORPUS_DIR is not set \
                     and ../shared/corpus is absent (README.md, \"Two commands\")"
                );
                None
            }
        }
    }
}

/// `(app name, file)` of one corpus folder, sorted.
fn files(dir: &Path, folder: &str) -> Vec<(String, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(dir.join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_parses() {
    let Some(dir) = corpus_dir() else { return };
    let mut count = 0;
    let mut mqtt = Vec::new();
    for folder in ["app_meta", "app_json"] {
        for (name, path) in files(&dir, folder) {
            let bytes = std::fs::read(&path).unwrap();
            let app =
                AppMeta::parse(&name, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
            assert!(
                app.http.is_some() || app.mqtt.is_some(),
                "{name}: no entrypoint"
            );
            let last = app.paths.last().unwrap();
            assert_eq!(last.prefix, "", "{name}: the default rule must come last");
            for pair in app.paths.windows(2) {
                assert!(
                    pair[0].prefix.len() >= pair[1].prefix.len(),
                    "{name}: order"
                );
            }
            if app.mqtt.is_some() {
                mqtt.push(format!("{folder}/{name}"));
            }
            // The older `port` layout names the container after the app.
            let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if let Some(port) = raw.get("port").and_then(|p| p.as_u64()) {
                let http = app.http.as_ref().unwrap();
                assert_eq!(
                    (http.host.as_str(), u64::from(http.port)),
                    (name.as_str(), port)
                );
            }
        }
    }
    // corpus/README.md: 46 app_meta files, 59 app.json files, one MQTT app
    // (mosquitto) in each.
    assert_eq!(count, 105);
    assert_eq!(mqtt, ["app_meta/mosquitto", "app_json/mosquitto"]);
}

#[test]
fn corpus_access_values_match_its_readme() {
    let Some(dir) = corpus_dir() else { return };
    let mut peer = 0;
    let mut null_headers_ok = 0;
    for (name, path) in files(&dir, "app_json") {
        let app = AppMeta::parse(&name, &std::fs::read(&path).unwrap()).unwrap();
        peer += app
            .paths
            .iter()
            .filter(|p| p.access == Access::Peer)
            .count();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for (prefix, rule) in raw["paths"].as_object().unwrap() {
            if rule.get("headers").is_some_and(|h| h.is_null()) {
                let parsed = app.paths.iter().find(|p| &p.prefix == prefix).unwrap();
                assert!(parsed.headers.is_empty());
                null_headers_ok += 1;
            }
        }
    }
    assert_eq!(peer, 2, "corpus README: 2 peer entries in app_json");
    assert_eq!(
        null_headers_ok, 5,
        "corpus README: \"headers\": null in 5 entries"
    );
}

/// The same files, laid out as the Portal core writes them, load through
/// the state loader with no error.
#[test]
fn corpus_loads_as_a_state_dir() {
    let Some(dir) = corpus_dir() else { return };
    for (folder, file_name) in [("app_meta", "app_meta.json"), ("app_json", "app.json")] {
        let state = std::env::temp_dir().join(format!("pp-corpus-{}-{folder}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let corpus = files(&dir, folder);
        for (name, path) in &corpus {
            let app_dir = state.join("apps").join(name);
            std::fs::create_dir_all(&app_dir).unwrap();
            std::fs::copy(path, app_dir.join(file_name)).unwrap();
        }
        let (snapshot, errors) = portal_proxy::state::load(&state).unwrap();
        assert!(errors.is_empty(), "{folder}: {errors:#?}");
        assert_eq!(snapshot.apps.len(), corpus.len(), "{folder}");
        std::fs::remove_dir_all(&state).unwrap();
    }
}

/// Every header template of every corpus app compiles and renders, for
/// each kind of caller, to a valid header value.
#[test]
fn every_corpus_header_renders_for_each_caller() {
    use portal_core::caller::Caller;
    use portal_core::headers::{portal_value, AppHeaders, PortalInfo};
    let Some(dir) = corpus_dir() else { return };
    let identity = portal_proxy::identity::generate();
    let portal = portal_value(&PortalInfo {
        id: identity.id.clone(),
        short_id: identity.short_id().to_string(),
        domain: format!("{}.p.getportal.org", identity.short_id()),
        public_key_pem: identity.public_key_pem.clone(),
    });
    let callers = [
        Caller::Anonymous,
        Caller::Terminal {
            id: "terminal-1".into(),
            name: "Owner's laptop".into(),
        },
        Caller::Peer {
            id: identity.id.clone(),
            name: "Friend's Portal".into(),
        },
    ];
    let mut rendered = 0;
    for folder in ["app_meta", "app_json"] {
        for (name, path) in files(&dir, folder) {
            let app = AppMeta::parse(&name, &std::fs::read(&path).unwrap()).unwrap();
            let headers =
                AppHeaders::compile(&app).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for caller in &callers {
                for (i, rule) in app.paths.iter().enumerate() {
                    let (out, problems) = headers.render(i, caller, &portal).unwrap();
                    assert!(problems.is_empty(), "{}: {problems:?}", path.display());
                    assert_eq!(out.len(), rule.headers.len(), "{}", path.display());
                    for ((name, value), (_, source)) in out.iter().zip(&rule.headers) {
                        let value = value.to_str().unwrap();
                        let (client_type, client_id, client_name) = caller.parts();
                        let want = match source.as_str() {
                            "{{ auth.client_id }}" | "{{ client_id }}" => client_id.to_string(),
                            "{{ auth.client_name }}" | "{{ client_name }}" => {
                                client_name.to_string()
                            }
                            "{{ auth.client_type }}" | "{{ client_type }}" => {
                                client_type.to_string()
                            }
                            "{{ portal.id }}" => identity.id.clone(),
                            "{{ portal.id[:6] }}@example.com" => {
                                format!("{}@example.com", identity.short_id())
                            }
                            "admin@{{ portal.domain }}" => {
                                format!("admin@{}.p.getportal.org", identity.short_id())
                            }
                            literal => {
                                assert!(
                                    !literal.contains("{{"),
                                    "{}: untested template {literal}",
                                    path.display()
                                );
                                literal.to_string()
                            }
                        };
                        assert_eq!(value, want, "{}: {name}", path.display());
                        rendered += 1;
                    }
                }
            }
        }
    }
    // 70 header entries in the corpus, each rendered for 3 callers.
    assert_eq!(rendered, 70 * 3);
}
