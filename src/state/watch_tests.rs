use super::*;

#[test]
fn fingerprint_changes_with_every_kind_of_edit() {
    let dir = std::env::temp_dir().join(format!("pp-fp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("apps/a")).unwrap();
    let mut last = fingerprint(&dir);
    let mut changed = |what: &str, f: &dyn Fn()| {
        f();
        let now = fingerprint(&dir);
        assert_ne!(now, last, "{what} must change the fingerprint");
        last = now;
    };
    changed("new app file", &|| {
        std::fs::write(dir.join("apps/a/app_meta.json"), "{}").unwrap()
    });
    changed("longer app file", &|| {
        std::fs::write(dir.join("apps/a/app_meta.json"), "{ }").unwrap()
    });
    changed("new terminals", &|| {
        std::fs::write(dir.join("terminals.json"), "[]").unwrap()
    });
    changed("new peers", &|| {
        std::fs::write(dir.join("peers.json"), "[]").unwrap()
    });
    changed("app renamed", &|| {
        std::fs::rename(dir.join("apps/a"), dir.join("apps/b")).unwrap()
    });
    changed("app removed", &|| {
        std::fs::remove_dir_all(dir.join("apps/b")).unwrap()
    });
    assert_eq!(fingerprint(&dir), last, "no change, same fingerprint");
    std::fs::remove_dir_all(&dir).unwrap();
}
