//! Running as systemd runs it: daemonized with `-d` (Pingora forks after
//! start-up, so nothing may depend on threads started before), and refusing
//! to start when a listener cannot bind.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;

/// Kills the daemon whose pid file is given, on drop.
struct Daemon(std::path::PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_serves_logs_and_recounts_connections() {
    let files = PortalFiles::new("daemon");
    let app = Upstream::start("app");
    files.app("app", &app_meta(r#"{"": {"access": "public"}}"#));
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "portal: {{ key_file: identity.pem, base_domain: {BASE_DOMAIN} }}\nstate_dir: state\n\
         listen: {{ https: \"{https}\" }}\ntls: {{ cert_file: cert.pem, key_file: key.pem }}\n\
         server: {{ threads: 2, pid_file: daemon.pid, upgrade_sock: upgrade.sock }}\n\
         core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ app: \"{}\" }}\n\
         access_log: {{ file: access.log }}\nlimits: {{ max_client_connections: 200 }}\n",
        app.addr
    );
    std::fs::write(files.config_file(), config).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_portal-proxy"))
        .args(["-d", "-c"])
        .arg(files.config_file())
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success(), "the parent of the daemon exits 0");
    let _daemon = Daemon(files.dir.join("daemon.pid"));
    let up = eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(https).await.is_ok()
    })
    .await;
    assert!(up, "the daemon does not listen");

    // More new connections than the cap: the open descriptors are
    // recounted in the daemon, so closed connections stop counting.
    let url = format!("https://{}:{}/", files.host("app"), https.port());
    let client = client_builder(&files.ca_pem, Protocol::Http1)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for i in 0..300 {
        let resp = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
        if i % 100 == 99 {
            // Let a recount (every 250 ms) see the closed connections.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // The access log writer runs in the daemon.
    let log = files.dir.join("access.log");
    let written = eventually(Duration::from_secs(5), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
            >= 300
    })
    .await;
    assert!(
        written,
        "{} lines in the access log",
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    );
}

#[test]
fn a_listener_that_cannot_bind_stops_the_start() {
    let files = PortalFiles::new("bind-fail");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = format!(
        "portal: {{ key_file: identity.pem, base_domain: {BASE_DOMAIN} }}\nstate_dir: state\n\
         listen: {{ https: \"127.0.0.1:{}\" }}\ntls: {{ cert_file: cert.pem, key_file: key.pem }}\n\
         metrics: {{ listen: \"{addr}\" }}\ncore: {{ upstream: \"127.0.0.1:1\" }}\n",
        free_port()
    );
    std::fs::write(files.config_file(), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portal-proxy"))
        .arg("-c")
        .arg(files.config_file())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("metrics.listen: cannot listen on {addr}")),
        "{stderr}"
    );
}
