//! The request-target: a table of forms, and generated targets of every
//! form for the properties of [`crate::decide`].

use proptest::prelude::*;

use super::*;
use crate::test_support::check_accepting;

type Expected = Result<RequestTarget<'static>, TargetError>;

fn path(path: &'static str, query: Option<&'static str>) -> Expected {
    Ok(RequestTarget::Path {
        path,
        query,
        authority: None,
    })
}

fn absolute(authority: &'static str, path: &'static str, query: Option<&'static str>) -> Expected {
    Ok(RequestTarget::Path {
        path,
        query,
        authority: Some(authority),
    })
}

#[test]
fn target_forms() {
    use TargetError::*;
    #[rustfmt::skip]
    let cases: &[(&str, &[u8], Expected)] = &[
        // Origin-form.
        ("GET", b"/", path("/", None)),
        ("GET", b"/a/b?c=d?e", path("/a/b", Some("c=d?e"))),
        ("GET", b"/?", path("/", Some(""))),
        ("GET", b"//admin", path("//admin", None)),
        ("GET", "/caf\u{e9}".as_bytes(), path("/caf\u{e9}", None)),
        // Absolute-form: http(s) in any case, its path and query.
        ("GET", b"https://a.example/x?y", absolute("a.example", "/x", Some("y"))),
        ("GET", b"HTTP://a.example:8443", absolute("a.example:8443", "/", None)),
        ("GET", b"https://a.example?q", absolute("a.example", "/", Some("q"))),
        ("GET", b"https://a.example//admin", absolute("a.example", "//admin", None)),
        ("GET", b"https://[::1]:443/x", absolute("[::1]:443", "/x", None)),
        ("GET", b"https:///x", Err(NoAuthority)),
        ("GET", b"https://", Err(NoAuthority)),
        ("GET", b"https://u:p@a.example/x", Err(Userinfo)),
        ("GET", b"https://a.example@evil/x", Err(Userinfo)),
        // Asterisk-form: OPTIONS only (methods are case-sensitive).
        ("OPTIONS", b"*", Ok(RequestTarget::Asterisk)),
        ("GET", b"*", Err(Asterisk)),
        ("options", b"*", Err(Asterisk)),
        ("OPTIONS", b"*/admin", Err(NotOriginForm)),
        ("OPTIONS", b"**", Err(NotOriginForm)),
        // Everything an app server would resolve against `/`.
        ("GET", b"admin", Err(NotOriginForm)),
        ("GET", b"admin/x", Err(NotOriginForm)),
        ("GET", b"./admin", Err(NotOriginForm)),
        ("GET", b"../admin", Err(NotOriginForm)),
        ("GET", b"x/../admin", Err(NotOriginForm)),
        ("GET", b";/admin", Err(NotOriginForm)),
        ("GET", b"%2fadmin", Err(NotOriginForm)),
        ("GET", b"%2Fadmin", Err(NotOriginForm)),
        ("GET", b"\\admin", Err(NotOriginForm)),
        ("GET", b"foo:/admin", Err(NotOriginForm)),
        ("GET", b"foo://a.example/admin", Err(NotOriginForm)),
        ("GET", b"ftp://a.example/admin", Err(NotOriginForm)),
        ("GET", b"https:/admin", Err(NotOriginForm)),
        ("GET", b"https:admin", Err(NotOriginForm)),
        ("GET", b"?admin", Err(NotOriginForm)),
        ("GET", b"a.example:443", Err(NotOriginForm)),
        ("CONNECT", b"a.example:443", Err(NotOriginForm)),
        ("OPTIONS", b"admin", Err(NotOriginForm)),
        ("GET", b" /admin", Err(NotOriginForm)),
        ("GET", b"", Err(Empty)),
        ("GET", b"/adm\xffin", Err(NotText)),
        ("GET", b"\xff/admin", Err(NotText)),
    ];
    for (method, raw, want) in cases {
        let got = parse_target(method, raw);
        assert_eq!(got, *want, "{method} {:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn absolute_form_must_name_the_host() {
    let target = parse_target("GET", b"https://App.example:8443/x").unwrap();
    assert_eq!(
        target.host(Some("app.example:8443")),
        Ok(Some("app.example:8443"))
    );
    assert_eq!(target.host(None), Ok(Some("App.example:8443")));
    for other in ["app.example", "app.example:443", "evil.example:8443", ""] {
        assert_eq!(
            target.host(Some(other)),
            Err(TargetError::OtherHost),
            "{other}"
        );
    }
    let origin = parse_target("GET", b"/x").unwrap();
    assert_eq!(origin.host(Some("a")), Ok(Some("a")));
    assert_eq!(origin.host(None), Ok(None));
}

/// The start of a request-target, in every form a client may send.
fn start() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        "/",
        "//",
        "./",
        "../",
        ".",
        ";/",
        ";x/",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        "x/../",
        "foo:",
        "foo:/",
        "http:",
        "https:/",
        "https://files.b2blla.p.getportal.org",
        "HTTPS://FILES.b2blla.p.getportal.org/",
        "http://files.b2blla.p.getportal.org?",
        "https://evil.example/",
        "https://x@files.b2blla.p.getportal.org/",
        "*",
        "?",
    ])
}

/// Pieces attackers combine after the start.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/", "//", "admin", "public", "a", ".", "..", "%2e", ";", ";x", "%3b", "%61", "%2f", "%5c",
        "\\", "?", "%", "é", "*", ":", "@",
    ])
}

/// Request-targets of every form: origin, absolute (for the Host and
/// for others), relative, with other schemes, asterisk.
pub(crate) fn raw_target() -> impl Strategy<Value = String> {
    (start(), prop::collection::vec(piece(), 0..8)).prop_map(|(s, p)| format!("{s}{}", p.concat()))
}

/// How a lenient app server (Werkzeug, Express, Tomcat, Go's `net/http`,
/// static file servers) reads the path of a request-target: an absolute
/// URL's scheme and authority dropped, the query dropped, a relative
/// reference resolved against `/`, `\` read as `/`, then as
/// [`crate::path::tests::lenient_reading`] (percent-decoded,
/// `%2f` and `%5c` included, `;parameters` dropped, `/` runs merged, dot
/// segments resolved). The segments of the path read.
pub(crate) fn lenient_target_reading(target: &str) -> Vec<String> {
    let without_authority = match target.split_once("://") {
        Some((scheme, rest)) if !scheme.contains(['/', '?']) => {
            &rest[rest.find(['/', '?']).unwrap_or(rest.len())..]
        }
        _ => target,
    };
    let path = without_authority.split('?').next().unwrap_or("");
    let decoded_separators = path
        .replace("%5c", "/")
        .replace("%5C", "/")
        .replace('\\', "/");
    crate::path::tests::lenient_reading(&format!("/{decoded_separators}"))
}

/// Never a panic; an accepted path-form target has a path starting with
/// `/`, and its parts are slices of what was received; and at least one
/// generated target in eight is accepted.
#[test]
fn accepted_targets_have_a_path() {
    check_accepting(
        file!(),
        4096,
        8,
        (raw_target(), any::<bool>()),
        |(raw, options)| {
            let method = if options { "OPTIONS" } else { "GET" };
            match parse_target(method, raw.as_bytes()) {
                Ok(RequestTarget::Path {
                    path,
                    query,
                    authority,
                }) => {
                    prop_assert!(path.starts_with('/'));
                    prop_assert!(!path.contains('?'));
                    let tail = match query {
                        Some(q) => format!("{path}?{q}"),
                        None => path.to_string(),
                    };
                    let ends_as_read = raw.ends_with(&tail) || (path == "/" && authority.is_some());
                    prop_assert!(ends_as_read, "{:?}", raw);
                    prop_assert_eq!(authority.is_none(), raw.starts_with('/'));
                }
                Ok(RequestTarget::Asterisk) => prop_assert!(options && raw == "*"),
                Err(_) => return Ok(false),
            }
            Ok(true)
        },
    );
}
