use super::*;

#[test]
fn lines_are_json_objects_in_the_file_and_reopen_follows_rotation() {
    let dir = std::env::temp_dir().join(format!("pp-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    let log = AccessLog::start(Sink::File(path.clone())).unwrap();
    let entry = Entry {
        time: now_rfc3339(),
        client: "203.0.113.7",
        host: "files.abcdef.example.org",
        app: "files",
        method: "GET",
        path: "/x",
        status: 200,
        client_type: "terminal",
        client_id: "t1",
        decision: "forward",
        upstream: "127.0.0.1:9000",
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        duration_ms: 1.5,
    };
    log.log(&entry);
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while read(&path).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let line: serde_json::Value = serde_json::from_str(read(&path).trim()).unwrap();
    assert_eq!(line["app"], "files");
    assert_eq!(line["status"], 200);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    // Rotation: the file is moved away, SIGHUP reopens the path.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen();
    log.log(&entry);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while read(&path).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(read(&path).lines().count(), 1);
    assert_eq!(read(&rotated).lines().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
