use super::*;

/// `server:` as Pingora gets it: the runtime model, the threads and the
/// files of an upgrade.
#[test]
fn server_settings_reach_pingora() {
    let base = "portal: { key_file: k.pem, base_domain: p.test }\nstate_dir: s\n\
                listen: { https: \"127.0.0.1:1\" }\ntls: { cert_file: c.pem, key_file: k.pem }\n\
                core: { upstream: \"127.0.0.1:2\" }\n";
    let path = std::path::Path::new("/etc/portal-proxy/portal-proxy.yaml");
    let conf = |server: &str| {
        let config = Config::parse(&format!("{base}{server}"), path).unwrap();
        server_conf(&config)
    };
    let default = conf("");
    assert_eq!(default.work_stealing, crate::config::DEFAULT_WORK_STEALING);
    assert_eq!(default.threads, 2);
    for on in [true, false] {
        let c = conf(&format!(
            "server: {{ threads: 3, work_stealing: {on}, pid_file: run/p.pid }}\n"
        ));
        assert_eq!(c.work_stealing, on);
        assert_eq!(c.threads, 3);
        assert_eq!(c.pid_file, "/etc/portal-proxy/run/p.pid");
    }
}
