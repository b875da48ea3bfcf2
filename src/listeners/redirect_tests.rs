use super::*;

#[test]
fn locations() {
    let cases = [
        (
            "App.abcdef.example.org",
            "/a?b=1",
            443,
            Some("https://app.abcdef.example.org/a?b=1"),
        ),
        (
            "app.abcdef.example.org:80",
            "/",
            443,
            Some("https://app.abcdef.example.org/"),
        ),
        (
            "app.abcdef.example.org",
            "/x",
            8443,
            Some("https://app.abcdef.example.org:8443/x"),
        ),
        (
            "app.abcdef.example.org",
            "*",
            443,
            Some("https://app.abcdef.example.org/"),
        ),
        ("evil.com/@x", "/", 443, None),
        ("", "/", 443, None),
    ];
    for (host, pq, port, want) in cases {
        assert_eq!(
            https_location(host, pq, port).as_deref(),
            want,
            "{host} {pq}"
        );
    }
}

#[test]
fn only_portal_hosts_are_redirected() {
    let redirect = RedirectToHttps {
        https_port: 443,
        router: Arc::new(Router::new(
            "abcdef",
            "example.org",
            "web-terminal",
            "127.0.0.1:8000".parse().unwrap(),
            Default::default(),
        )),
    };
    let status = |host: Option<&str>| match redirect.location(host, "/x?y") {
        Ok(location) => location,
        Err(refusal) => refusal.status().to_string(),
    };
    assert_eq!(
        status(Some("abcdef.example.org")),
        "https://abcdef.example.org/x?y"
    );
    assert_eq!(
        status(Some("App.ABCDEF.example.org:80")),
        "https://app.abcdef.example.org/x?y"
    );
    for foreign in [
        "evil.com",
        "a.b.abcdef.example.org",
        "other.example.org",
        "127.0.0.1",
    ] {
        assert_eq!(status(Some(foreign)), "421", "{foreign}");
    }
    assert_eq!(status(Some("evil.com/@x")), "400");
    assert_eq!(
        redirect
            .location(Some("abcdef.example.org"), "/a/../b")
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        redirect
            .location(Some("abcdef.example.org"), "/%01")
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(status(None), "400");
}
