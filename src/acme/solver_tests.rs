use super::*;

#[test]
fn requests_go_to_the_action_under_the_url() {
    for (url, expected) in [
        (
            "https://c.example/acme/dns01",
            "https://c.example/acme/dns01/present",
        ),
        (
            "https://c.example/acme/dns01/",
            "https://c.example/acme/dns01/present",
        ),
        ("https://C.example:443/", "https://c.example/present"),
        ("https://c.example:8443", "https://c.example:8443/present"),
    ] {
        let url: http::Uri = url.parse().unwrap();
        let r = json_request(
            &url,
            Action::Present,
            "_acme-challenge.d.",
            "v",
            |b, _, _, _| Ok(b),
        )
        .unwrap();
        assert_eq!(r.uri().to_string(), expected);
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(r.headers()["content-type"], "application/json");
    }
}

#[tokio::test]
async fn exec_passes_action_name_and_value_and_reports_failures() {
    let ok = [
        "/bin/sh".to_string(),
        "-c".into(),
        "test \"$1 $2 $3\" = 'present _acme-challenge.d. v'".into(),
        "hook".into(),
    ];
    run(&ok, Action::Present, "_acme-challenge.d.", "v")
        .await
        .unwrap();
    let failing = [
        "/bin/sh".to_string(),
        "-c".into(),
        "echo no such zone >&2; exit 3".into(),
        "hook".into(),
    ];
    let e = run(&failing, Action::Cleanup, "_acme-challenge.d.", "v")
        .await
        .unwrap_err();
    assert!(
        e.contains("cleanup") && e.contains("no such zone") && e.contains('3'),
        "{e}"
    );
    let missing = ["/nonexistent/hook".to_string()];
    let e = run(&missing, Action::Present, "f.", "v").await.unwrap_err();
    assert!(e.contains("cannot start"), "{e}");
}
