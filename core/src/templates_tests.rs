use super::*;

#[test]
fn sources() {
    let ok = [
        "{{ auth.client_id }}",
        "admin@{{ portal.domain }}",
        "{{ portal.id[:6] }}@example.com",
        "{{ auth.client_name | lower }} ({{ auth.client_type }})",
        "{{ \"a*b\" }} * not in an expression",
        "{{ 'it\\'s' ~ \"}}*\" }}",
        "plain",
    ];
    for source in ok {
        assert_eq!(check_source(source), Ok(()), "{source}");
    }
    let refused = [
        ("{{ 'x' * 100000000 }}", "'*'"),
        ("{{ [1] * 10 }}", "'*'"),
        ("{{ 2 ** 10 }}", "'*'"),
        ("{% for i in range(10) %}x{% endfor %}", "statements"),
        ("{% set x = 'a' %}{{ x }}", "statements"),
    ];
    for (source, needle) in refused {
        let e = check_source(source).expect_err(source);
        assert!(e.contains(needle), "{source}: {e}");
    }
    let long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
    assert!(check_source(&long).unwrap_err().contains("bytes"));
}

#[test]
fn renderings_are_bounded() {
    let mut env = environment();
    let long = format!("{{{{ v }}}}{}", "{{ v ~ v ~ v ~ v }}".repeat(40));
    for (name, source) in [
        ("ok", "{{ v | upper }}"),
        ("long", long.as_str()),
        ("range", "{{ range(10) }}"),
        ("debug", "{{ debug() }}"),
        ("replace", "{{ v | replace('a', 'b') }}"),
    ] {
        env.add_template_owned(name.to_string(), source.to_string())
            .unwrap();
    }
    let ctx = || minijinja::context! { v => "a".repeat(64) };
    assert_eq!(render(&env, "ok", ctx()).unwrap(), "A".repeat(64));
    let e = render(&env, "long", ctx()).unwrap_err();
    assert!(e.contains("8192"), "{e}");
    // No functions, and only the filters that do not enlarge values.
    for name in ["range", "debug", "replace"] {
        assert!(render(&env, name, ctx()).is_err(), "{name}");
    }
}
