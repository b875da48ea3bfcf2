//! The canonical path: a table of forms, and properties over generated
//! paths made of the pieces attackers combine.

use proptest::prelude::*;

use super::*;
use crate::test_support::check_accepting;

/// The canonical path and the path without parameters, or the refusal.
type Expected = Result<(&'static str, Option<&'static str>), PathError>;

#[test]
fn path_forms() {
    use PathError::*;
    #[rustfmt::skip]
    let cases: &[(&str, Expected)] = &[
        ("/", Ok(("/", None))),
        ("/a/b.c/..d/...", Ok(("/a/b.c/..d/...", None))),
        ("/a%20b/%E2%82%AC", Ok(("/a%20b/%E2%82%AC", None))),
        ("/%61dmin/%7Euser", Ok(("/admin/~user", None))),
        ("/a?/b", Ok(("/a?/b", None))),
        // Runs of `/` are one, as nginx and most app servers read them.
        ("//admin", Ok(("/admin", None))),
        ("/public//..x", Ok(("/public/..x", None))),
        ("///a////b/", Ok(("/a/b/", None))),
        ("/%2561", Ok(("/%2561", None))),
        // `;parameters`: kept, and the path without them beside it.
        ("/a;jsessionid=1/b", Ok(("/a;jsessionid=1/b", Some("/a/b")))),
        ("/;/admin", Ok(("/;/admin", Some("/admin")))),
        ("/public;x/../admin", Err(DotSegment)),
        ("/admin;", Ok(("/admin;", Some("/admin")))),
        ("/a/;x/", Ok(("/a/;x/", Some("/a/")))),
        ("/a/%3b/b", Ok(("/a/%3b/b", Some("/a/b")))),
        ("/%3B/admin", Ok(("/%3B/admin", Some("/admin")))),
        // Dot segments, in every spelling a server reads as one.
        ("/a/../b", Err(DotSegment)),
        ("/a/./b", Err(DotSegment)),
        ("/a/..", Err(DotSegment)),
        ("/..", Err(DotSegment)),
        ("/a/%2e%2e/b", Err(DotSegment)),
        ("/a/%2E./b", Err(DotSegment)),
        ("/a/.%2e", Err(DotSegment)),
        ("/a/%2e/b", Err(DotSegment)),
        ("/public/..;/x", Err(DotSegment)),
        ("/public/..;a=b/x", Err(DotSegment)),
        ("/public/.;/x", Err(DotSegment)),
        ("/public/..%3b/x", Err(DotSegment)),
        ("/public/..%3B/x", Err(DotSegment)),
        ("/public/%2e%2e%3b/x", Err(DotSegment)),
        ("/core/public/..;/internal", Err(DotSegment)),
        ("//..//x", Err(DotSegment)),
        // Separators and control characters.
        ("/a%2fb", Err(EncodedSeparator)),
        ("/a%2Fb", Err(EncodedSeparator)),
        ("/a%5cb", Err(EncodedSeparator)),
        ("/a%5C..%5Cb", Err(EncodedSeparator)),
        ("/a\\b", Err(Backslash)),
        ("/a%00b", Err(Nul)),
        ("/a\0b", Err(Nul)),
        ("/a%0ab", Err(Control)),
        ("/a%0D%0Ab", Err(Control)),
        ("/a%7fb", Err(Control)),
        ("/a\tb", Err(Control)),
        ("/a%zz", Err(BadPercent)),
        ("/a%2", Err(BadPercent)),
        ("a/b", Err(NotAbsolute)),
        ("*", Err(NotAbsolute)),
    ];
    for (raw, want) in cases {
        let got = canonical_path(raw);
        let got = got
            .as_ref()
            .map(|c| (c.path.as_ref(), c.without_params.as_deref()))
            .map_err(|e| *e);
        assert_eq!(got, *want, "{raw:?}");
    }
}

/// Pieces of paths that servers read in more than one way, `admin`
/// among them.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/", "//", "a", "admin", "public", ".", "..", "%2e", "%2E", ";", ";x=1", "%3b", "%3B",
        "%61", "%2f", "%5c", "%00", "%0a", "%", "%2", "\\", "~", "-", "%25", "%20", "é",
    ])
}

pub(crate) fn raw_path() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..12).prop_map(|p| format!("/{}", p.concat()))
}

/// How a lenient server reads a path: percent-decoded, `;parameters`
/// dropped, `/` runs merged, dot segments resolved.
pub(crate) fn lenient_reading(path: &str) -> Vec<String> {
    let decoded: String = {
        let b = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let Ok(v) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut segments: Vec<String> = Vec::new();
    for s in decoded.split('/') {
        let name = s.split(';').next().unwrap_or("");
        match name {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            n => segments.push(n.to_string()),
        }
    }
    segments
}

/// Never a panic; a path that is accepted has no dot segment, no encoded
/// separator, no control character, and no `//`, in any of its two forms;
/// and at least one generated path in eight is accepted.
#[test]
fn accepted_paths_are_canonical() {
    check_accepting(file!(), 4096, 8, raw_path(), |raw| {
        let Ok(c) = canonical_path(&raw) else {
            return Ok(false);
        };
        for form in std::iter::once(c.path.as_ref()).chain(c.without_params.as_deref()) {
            prop_assert!(form.starts_with('/'));
            prop_assert!(!form.contains("//"), "{raw:?} -> {form:?}");
            prop_assert!(
                !form.split('/').any(|s| {
                    let name = s.split(';').next().unwrap_or("");
                    name == "." || name == ".."
                }),
                "{raw:?} -> {form:?}"
            );
            let lower = form.to_ascii_lowercase();
            for bad in ["%2f", "%5c", "%00", "%0a", "%2e", "\\"] {
                prop_assert!(!lower.contains(bad), "{raw:?} -> {form:?}");
            }
        }
        // Canonical is a fixed point.
        let again = canonical_path(&c.path).unwrap();
        prop_assert_eq!(again.path.as_ref(), c.path.as_ref());
        Ok(true)
    });
}

/// What a lenient server reads from an accepted path starts with what the
/// rules see: the segments of the canonical form, with or without
/// parameters. So no private prefix is reached through a form the rules
/// did not see. At least one generated path in eight is accepted.
#[test]
fn servers_read_what_rules_saw() {
    check_accepting(file!(), 4096, 8, raw_path(), |raw| {
        let Ok(c) = canonical_path(&raw) else {
            return Ok(false);
        };
        let server = lenient_reading(&raw);
        let seen = c.without_params.as_deref().unwrap_or(&c.path);
        prop_assert_eq!(lenient_reading(seen), server, "{:?}", raw);
        Ok(true)
    });
}
