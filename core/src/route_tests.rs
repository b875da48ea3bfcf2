use super::*;

const DOMAIN: &str = "b2blla.p.getportal.org";

fn router() -> Router {
    Router::new(
        "b2blla",
        "p.getportal.org",
        "web-terminal",
        "127.0.0.1:8000".parse().unwrap(),
        BTreeMap::new(),
    )
}

fn route(host: &str, path: &str) -> Result<Target, RouteError> {
    router().route(host, path, |app| {
        ["web-terminal", "files", "my-app"].contains(&app)
    })
}

#[test]
fn routing_table() {
    use CoreAccess::*;
    use RouteError::*;
    use Target::*;
    let app = |s: &str| Ok(App(s.to_string()));
    let cases: &[(&str, &str, Result<Target, RouteError>)] = &[
        (DOMAIN, "/", app("web-terminal")),
        ("files.b2blla.p.getportal.org", "/x", app("files")),
        ("my-app.b2blla.p.getportal.org", "/", app("my-app")),
        (
            "nope.b2blla.p.getportal.org",
            "/",
            Err(UnknownApp("nope".into())),
        ),
        (
            "a.files.b2blla.p.getportal.org",
            "/",
            Err(UnknownApp("a.files".into())),
        ),
        (
            "files.other.p.getportal.org",
            "/",
            Err(Misdirected("files.other.p.getportal.org".into())),
        ),
        (
            "xb2blla.p.getportal.org",
            "/",
            Err(Misdirected("xb2blla.p.getportal.org".into())),
        ),
        (
            "p.getportal.org",
            "/",
            Err(Misdirected("p.getportal.org".into())),
        ),
        (
            "example.com",
            "/core/public/x",
            Err(Misdirected("example.com".into())),
        ),
        (DOMAIN, "/core/public/x", Ok(Core(Public))),
        (
            "files.b2blla.p.getportal.org",
            "/core/protected/y",
            Ok(Core(Protected)),
        ),
        (
            "nope.b2blla.p.getportal.org",
            "/core/public/",
            Ok(Core(Public)),
        ),
        (DOMAIN, "/core/internal/stop", Ok(Core(Internal))),
        (DOMAIN, "/core/", Ok(Core(Internal))),
        (DOMAIN, "/core/publicx", Ok(Core(Internal))),
        // Not under `/core/`: the app's own path.
        (DOMAIN, "/core", app("web-terminal")),
        (DOMAIN, "/corex/", app("web-terminal")),
    ];
    for (host, path, want) in cases {
        assert_eq!(&route(host, path), want, "{host}{path}");
    }
}

#[test]
fn missing_home_app_is_unknown() {
    assert_eq!(
        router().route(DOMAIN, "/", |_| false),
        Err(RouteError::UnknownApp("web-terminal".into()))
    );
}

#[test]
fn host_normalization() {
    let cases = [
        (
            "Files.B2BLLA.p.getportal.org",
            Some("files.b2blla.p.getportal.org"),
        ),
        (
            "files.b2blla.p.getportal.org:443",
            Some("files.b2blla.p.getportal.org"),
        ),
        (
            "files.b2blla.p.getportal.org.",
            Some("files.b2blla.p.getportal.org"),
        ),
        (
            "files.b2blla.p.getportal.org.:8443",
            Some("files.b2blla.p.getportal.org"),
        ),
        ("[::1]:443", Some("[::1]")),
        ("127.0.0.1:80", Some("127.0.0.1")),
        ("", None),
        (":443", None),
        ("host:port", None),
        ("ho st", None),
        ("a/b", None),
        ("[::1", None),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_host(raw).as_deref(), want, "{raw:?}");
    }
    // A host already in lower case (what browsers send) is not copied.
    for raw in [
        "app.b2blla.p.getportal.org",
        "app.b2blla.p.getportal.org:443",
        "x.y.",
    ] {
        assert!(
            matches!(normalize_host(raw), Some(std::borrow::Cow::Borrowed(_))),
            "{raw:?}"
        );
    }
    assert!(matches!(
        normalize_host("App.B2blla.p.getportal.org"),
        Some(std::borrow::Cow::Owned(_))
    ));
}

#[test]
fn core_prefix_is_stripped() {
    assert_eq!(strip_core_prefix("/core/public/x?a=1"), "/public/x?a=1");
    assert_eq!(strip_core_prefix("/core/protected/"), "/protected/");
}

#[test]
fn host_names() {
    let r = router();
    assert_eq!(r.domain(), DOMAIN);
    assert_eq!(r.name(DOMAIN), HostName::Home);
    assert_eq!(
        r.name("files.b2blla.p.getportal.org"),
        HostName::App("files")
    );
    assert_eq!(
        r.name("a.b.b2blla.p.getportal.org"),
        HostName::Nested("a.b")
    );
    assert_eq!(r.name(".b2blla.p.getportal.org"), HostName::Foreign);
    assert_eq!(r.name("xb2blla.p.getportal.org"), HostName::Foreign);
    assert_eq!(r.name("example.com"), HostName::Foreign);
}

#[test]
fn upstreams_by_entrypoint_and_override() {
    let meta = |name: &str| {
        crate::app_meta::AppMeta::parse(
                name,
                br#"{"entrypoints":[{"container_name":"web","container_port":80,"entrypoint_port":"http"},{"container_name":"broker","container_port":1883,"entrypoint_port":"mqtt"}],"paths":{"":{"access":"public"}}}"#,
            )
            .unwrap()
    };
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "over".to_string(),
        AppUpstreams {
            http: Some("127.0.0.1:9000".parse().unwrap()),
            mqtt: None,
        },
    );
    let r = Router::new(
        "b2blla",
        "p.getportal.org",
        "web-terminal",
        "127.0.0.1:8000".parse().unwrap(),
        overrides,
    );
    let up = |name: &str, e| r.upstream(&meta(name), e).map(|h| h.to_string());
    assert_eq!(up("plain", Entrypoint::Http).as_deref(), Some("web:80"));
    assert_eq!(
        up("plain", Entrypoint::Mqtt).as_deref(),
        Some("broker:1883")
    );
    assert_eq!(
        up("over", Entrypoint::Http).as_deref(),
        Some("127.0.0.1:9000")
    );
    // An override of one entrypoint leaves the other as declared.
    assert_eq!(up("over", Entrypoint::Mqtt).as_deref(), Some("broker:1883"));
    let http_only =
        crate::app_meta::AppMeta::parse("h", br#"{"port":80,"paths":{"":{"access":"public"}}}"#)
            .unwrap();
    assert_eq!(r.upstream(&http_only, Entrypoint::Mqtt), None);
    assert_eq!(r.core_upstream().to_string(), "127.0.0.1:8000");
}

#[test]
fn peer_hosts() {
    let r = router();
    assert_eq!(
        r.peer_app_host("files", "x7k2mq"),
        "files.x7k2mq.p.getportal.org"
    );
    let cases = [
        ("files.x7k2mq.p.getportal.org", Some("x7k2mq")),
        ("FILES.X7K2MQ.P.GETPORTAL.ORG", Some("X7K2MQ")),
        ("x7k2mq.p.getportal.org", Some("x7k2mq")),
        ("files.x7k2mq.other.org", None),
        ("p.getportal.org", None),
        ("xp.getportal.org", None),
    ];
    for (host, want) in cases {
        assert_eq!(r.peer_short_id(host), want, "{host}");
    }
}
