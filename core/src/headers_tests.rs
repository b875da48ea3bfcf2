use super::*;

fn app(paths: &str) -> AppMeta {
    AppMeta::parse(
        "app",
        format!(r#"{{"port":80,"paths":{paths}}}"#).as_bytes(),
    )
    .unwrap()
}

fn portal() -> Value {
    portal_value(&PortalInfo {
            id: "b2bllavf0w7lygfaj6hqxs8h5tbw8f3e7ap8j8vd2x3pgn5za2eyrcnjtlk6j8ralqg89y7kvqbtegd2a3jv1a9vfl41nzayj72lxt2".into(),
            short_id: "b2blla".into(),
            domain: "b2blla.p.getportal.org".into(),
            public_key_pem: "PEM".into(),
        })
}

fn render(paths: &str, caller: &Caller) -> Vec<(String, String)> {
    let app = app(paths);
    let headers = AppHeaders::compile(&app).unwrap();
    let (out, problems) = headers.render(0, caller, &portal()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    out.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

#[test]
fn corpus_expressions_render_for_each_caller() {
    let paths = r#"{"":{"access":"public","headers":{
            "X-Ptl-Client-Id":"{{ auth.client_id }}",
            "X-Ptl-Client-Name":"{{ auth.client_name }}",
            "X-Ptl-Client-Type":"{{ auth.client_type }}",
            "X-Ptl-Legacy":"{{ client_type }}/{{ client_id }}/{{ client_name }}",
            "X-Ptl-User":"{{ portal.id[:6] }}@example.com",
            "X-Ptl-Admin":"admin@{{ portal.domain }}",
            "X-Ptl-Id":"{{ portal.id }}",
            "X-Ptl-Static":"terminal"}}}"#;
    let terminal = Caller::Terminal {
        id: "t1".into(),
        name: "Laptop".into(),
    };
    let got = render(paths, &terminal);
    let get = |n: &str| got.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(get("x-ptl-client-id"), "t1");
    assert_eq!(get("x-ptl-client-name"), "Laptop");
    assert_eq!(get("x-ptl-client-type"), "terminal");
    assert_eq!(get("x-ptl-legacy"), "terminal/t1/Laptop");
    assert_eq!(get("x-ptl-user"), "b2blla@example.com");
    assert_eq!(get("x-ptl-admin"), "admin@b2blla.p.getportal.org");
    assert_eq!(get("x-ptl-id").len(), 103);
    assert_eq!(get("x-ptl-static"), "terminal");

    let got = render(paths, &Caller::Anonymous);
    let get = |n: &str| got.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(get("x-ptl-client-type"), "anonymous");
    assert_eq!(get("x-ptl-client-id"), "");
    assert_eq!(get("x-ptl-legacy"), "anonymous//");
}

#[test]
fn bad_templates_are_refused_with_their_place() {
    let cases = [
        (
            r#"{"":{"access":"public","headers":{"X-A":"{{ auth.client_id "}}}"#,
            "syntax",
        ),
        (
            r#"{"":{"access":"public","headers":{"X-A":"{{ auth.nope }}"}}}"#,
            "undefined",
        ),
        (
            r#"{"":{"access":"public","headers":{"X-A":"{{ user }}"}}}"#,
            "undefined",
        ),
        (
            r#"{"":{"access":"public","headers":{"X-A":"{{ client_id | nofilter }}"}}}"#,
            "filter",
        ),
        // The memory an app file can make the proxy hold is bounded.
        (
            r#"{"":{"access":"public","headers":{"X-A":"{{ 'x' * 100000000 }}"}}}"#,
            "repetition",
        ),
        (
            r#"{"":{"access":"public","headers":{"X-A":"{% for i in range(9) %}x{% endfor %}"}}}"#,
            "statements",
        ),
        (
            // Fine for a short name, over 8 KiB for the longest one.
            &format!(
                r#"{{"":{{"access":"public","headers":{{"X-A":"{}"}}}}}}"#,
                "{{ auth.client_name ~ auth.client_name }}".repeat(17)
            ),
            "8192",
        ),
    ];
    for (paths, needle) in cases {
        let err = AppHeaders::compile(&app(paths)).expect_err(paths.as_ref());
        assert_eq!(err.header, "x-a");
        assert_eq!(err.prefix, "");
        assert!(err.reason.to_lowercase().contains(needle), "{paths}: {err}");
    }
}

#[test]
fn invalid_rendered_values_are_left_out() {
    let headers = AppHeaders::compile(&app(
            r#"{"":{"access":"public","headers":{"X-Ptl-Client-Name":"{{ auth.client_name }}","X-Ptl-Client-Id":"{{ auth.client_id }}"}}}"#,
        ))
        .unwrap();
    let caller = Caller::Terminal {
        id: "t1".into(),
        name: "evil\r\nX-Injected: 1".into(),
    };
    let (out, problems) = headers.render(0, &caller, &portal()).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.as_str(), "x-ptl-client-id");
    assert_eq!(problems.len(), 1);
    // Non-ASCII names are fine (sent as UTF-8 bytes).
    let caller = Caller::Terminal {
        id: "t1".into(),
        name: "Jörg's phone".into(),
    };
    let (out, _) = headers.render(0, &caller, &portal()).unwrap();
    let name = out.iter().find(|(k, _)| k == "x-ptl-client-name").unwrap();
    assert_eq!(name.1.as_bytes(), "Jörg's phone".as_bytes());
}

#[test]
fn stripped_headers() {
    let headers = AppHeaders::compile(&app(
            r#"{"":{"access":"public","headers":{"Remote-User":"{{ client_id }}"}},"/x/":{"access":"public","headers":{"X-Ptl-User":"a"}}}"#,
        ))
        .unwrap();
    for name in [
        "x-ptl-client-id",
        "X-PTL-ANYTHING",
        "x_ptl_client_id",
        "X_Ptl-User",
        "remote-user",
        "Remote_User",
    ] {
        assert!(headers.strips(name), "{name}");
    }
    for name in [
        "X_Forwarded_For",
        "x-forwarded-proto",
        "X-FORWARDED-HOST",
        "x_forwarded_prefix",
        "Forwarded",
        "x-real-ip",
        "X_Real_IP",
        "X-Client-IP",
        "True-Client-IP",
        "cf_connecting_ip",
        "X-Original-URL",
        "x_rewrite_url",
        "X-Forwarded",
        "cookie2",
        "X-Host",
        "x_original_host",
        "X-Original-URI",
        "X-ORIGINAL-FORWARDED-FOR",
        "X-Url-Scheme",
        "Front-End-Https",
        "front_end_https",
        "X-HTTP-Host-Override",
        "x-envoy-original-path",
        "X-Scheme",
        "X-Script-Name",
        "X-Arr-Ssl",
        "Fly-Client-IP",
    ] {
        assert!(headers.strips(name), "{name}");
        assert!(is_never_forwarded(name), "{name}");
    }
    for name in [
        "x-ptlfoo",
        "x-real-ips",
        "x-original",
        "x-original-",
        "x-forwarded-",
        "x-envoy",
        "x-hosts",
        "x-request-id",
        "x-requested-with",
        "host",
        "x-schemes",
        "cookie",
        "remote-users",
        "xptl-a",
    ] {
        assert!(!headers.strips(name), "{name}");
    }
}

/// A name in any case, each `-` as `-` or `_`, picked by `bits`.
fn spelled(name: &str, bits: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| match (c, bits >> (i % 64) & 1) {
            ('-', 1) => '_',
            (c, 1) => c.to_ascii_uppercase(),
            (c, _) => c,
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

    /// Every spelling of every proxy-only name, and of every prefix
    /// with anything after it, is removed for every app.
    #[test]
    fn every_spelling_of_the_class_is_removed(
        bits in proptest::prelude::any::<u64>(),
        suffix in "[a-zA-Z0-9_-]{1,12}",
        pick in 0usize..(CLIENT_ADDRESS_AND_TARGET.len() + PROXY_ONLY_PREFIXES.len()),
    ) {
        let name = match CLIENT_ADDRESS_AND_TARGET.get(pick) {
            Some(name) => spelled(name, bits),
            None => spelled(PROXY_ONLY_PREFIXES[pick - CLIENT_ADDRESS_AND_TARGET.len()], bits) + &suffix,
        };
        proptest::prop_assert!(is_never_forwarded(&name), "{}", name);
    }
}

/// Templates without a flaw of form: literal text and `{{ }}`
/// expressions that join the context's values with `~` through the
/// allowed filters, so that their length decides whether they load.
fn expression_template() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    // Mostly values as long as a name may be, and few filters, so
    // that the rendered length and the source length both decide.
    let long = prop::sample::select(vec![
        "auth.client_id",
        "auth.client_name",
        "client_id",
        "client_name",
    ]);
    let other = prop::sample::select(vec![
        "auth.client_type",
        "client_type",
        "portal.id",
        "portal.domain",
        "portal.id[:6]",
        "'*'",
    ]);
    let value = prop_oneof![2 => long, 1 => other];
    let filters = vec![
        " | upper",
        " | lower",
        " | title",
        " | trim",
        " | default('x')",
        " | length",
    ];
    let filter = prop_oneof![3 => Just(""), 1 => prop::sample::select(filters)];
    let expression = prop::collection::vec((value, filter), 1..24).prop_map(|terms| {
        let terms: Vec<String> = terms.iter().map(|(v, f)| format!("{v}{f}")).collect();
        format!("{{{{ {} }}}}", terms.join(" ~ "))
    });
    let segment = prop_oneof!["[a-z@./-]{0,6}", expression];
    prop::collection::vec(segment, 1..10).prop_map(|s| s.concat())
}

/// Loading any template never panics, and a template that loads
/// renders within the limits for every caller, the longest ones
/// included (what the load check promises the request path); and at
/// least one generated template in eight holds an expression and
/// loads.
#[test]
fn loaded_templates_render_within_limits() {
    use proptest::prelude::*;
    #[rustfmt::skip]
        let pieces = prop::collection::vec(
            prop::sample::select(vec![
                "{{ ", " }}", "auth.client_id", "auth.client_name", "client_type", "portal.id",
                "portal.domain", "[:6]", " ~ ", " | upper", " | lower", " | default('x')",
                "'*'", "*", "{% ", " %}", "(", ")", "+", "x", "'", "9999", ".", "range(9)",
            ]),
            0..40,
        )
        .prop_map(|p| p.concat());
    let sources = prop_oneof![pieces, expression_template()];
    crate::test_support::check_accepting(file!(), 1024, 8, sources, |source| {
        let json = serde_json::json!({"port": 80, "paths": {"": {"access": "public", "headers": {"X-A": source}}}});
        let meta = AppMeta::parse("app", json.to_string().as_bytes()).unwrap();
        let Ok(headers) = AppHeaders::compile(&meta) else {
            return Ok(false);
        };
        for caller in Caller::samples() {
            let (out, _) = headers.render(0, &caller, &portal()).unwrap();
            for (_, value) in out {
                prop_assert!(value.len() <= crate::templates::MAX_VALUE_BYTES);
            }
        }
        // Text alone always loads: only templates with an expression
        // count.
        Ok(source.contains("{{"))
    });
}
