use super::*;
use crate::test_support::headers;
use proptest::prelude::*;

#[test]
fn accept_encoding_is_read_as_rfc_9110_says() {
    use Coding::*;
    for (value, expected) in [
        ("gzip", Some(Gzip)),
        ("gzip, deflate, br, zstd", Some(Zstd)),
        ("gzip, deflate, br", Some(Gzip)),
        ("br", Some(Brotli)),
        ("gzip;q=0.5, br", Some(Brotli)),
        ("br;q=0.5, gzip", Some(Gzip)),
        ("GZIP;Q=0.9, Br;q=0.8", Some(Gzip)),
        ("x-gzip", Some(Gzip)),
        ("zstd;q=0, br;q=0, gzip;q=0", None),
        ("gzip;q=0", None),
        ("*", Some(Zstd)),
        ("*;q=0", None),
        ("gzip;q=0.1, *;q=0.5", Some(Zstd)),
        ("*, zstd;q=0", Some(Gzip)),
        ("*, zstd;q=0, gzip;q=0", Some(Brotli)),
        ("identity", None),
        ("deflate, compress", None),
        ("", None),
        // Malformed weights: that member is ignored.
        ("zstd;q=2, gzip", Some(Gzip)),
        ("zstd;q=0.0001, gzip", Some(Gzip)),
        ("zstd;q=abc, br", Some(Brotli)),
        ("zstd;q=abc, br, gzip", Some(Gzip)),
        ("zstd;q=1.000, br", Some(Zstd)),
        ("br;q=0.001", Some(Brotli)),
        (" , ,gzip ; q=1 ,", Some(Gzip)),
        ("gzip;q=0, gzip;q=1", Some(Gzip)),
    ] {
        let h = headers(&[("accept-encoding", value)]);
        assert_eq!(preferred(&h), expected, "{value:?}");
    }
    assert_eq!(preferred(&HeaderMap::new()), None, "no header, no coding");
    // Several fields are one list.
    let h = headers(&[("accept-encoding", "gzip;q=0.5"), ("accept-encoding", "br")]);
    assert_eq!(preferred(&h), Some(Brotli));
}

#[test]
fn media_types_worth_compressing() {
    for (t, yes) in [
        ("text/html; charset=utf-8", true),
        ("TEXT/CSS", true),
        ("text/event-stream", false),
        ("application/javascript", true),
        ("application/json", true),
        ("application/ld+json", true),
        ("application/manifest+json", true),
        ("application/atom+xml", true),
        ("application/wasm", true),
        ("image/svg+xml", true),
        ("font/ttf", true),
        ("font/woff2", false),
        ("image/png", false),
        ("image/jpeg", false),
        ("video/mp4", false),
        ("application/zip", false),
        ("application/gzip", false),
        ("application/octet-stream", false),
        ("application/pdf", false),
        ("application/x-ndjson", false),
        ("multipart/form-data", false),
        ("", false),
        ("text", false),
    ] {
        assert_eq!(compressible_type(t.as_bytes()), yes, "{t:?}");
    }
}

/// A 2 KB HTML answer to a browser, with `changes` to its heads.
fn choice(
    request: &[(&str, &str)],
    response: &[(&str, &str)],
    tweak: impl Fn(&mut Exchange<'_>),
) -> Choice {
    let mut req = headers(&[("accept-encoding", "gzip, deflate, br, zstd")]);
    for (n, v) in request {
        req.insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let mut resp = headers(&[("content-type", "text/html"), ("content-length", "2000")]);
    for (n, v) in response {
        resp.insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let mut x = Exchange {
        method: "GET",
        http10: false,
        request: &req,
        status: 200,
        response: &resp,
        signed: false,
    };
    tweak(&mut x);
    choose(&x, 1024)
}

#[test]
fn what_is_compressed_and_what_is_left_alone() {
    let zstd = Choice {
        vary: true,
        coding: Some(Coding::Zstd),
    };
    let vary_only = Choice {
        vary: true,
        coding: None,
    };
    let untouched = Choice::UNTOUCHED;
    let none = |_: &mut Exchange<'_>| {};
    assert_eq!(choice(&[], &[], none), zstd);
    assert_eq!(choice(&[], &[], |x| x.status = 404), zstd);
    // Compressed already, partial, or told not to transform.
    assert_eq!(choice(&[], &[("content-encoding", "br")], none), untouched);
    assert_eq!(choice(&[], &[("content-encoding", "identity")], none), zstd);
    assert_eq!(
        choice(&[], &[("content-range", "bytes 0-1/2")], none),
        untouched
    );
    assert_eq!(choice(&[], &[], |x| x.status = 206), untouched);
    assert_eq!(
        choice(&[], &[("cache-control", "public, No-Transform")], none),
        untouched
    );
    assert_eq!(
        choice(&[], &[("cache-control", "no-transformx")], none),
        zstd
    );
    // A digest of the app's bytes would not match compressed ones.
    for field in ["content-digest", "Repr-Digest", "digest"] {
        assert_eq!(
            choice(&[], &[(field, "sha-256=:AAAA:")], none),
            untouched,
            "{field}"
        );
    }
    assert_eq!(
        choice(&[], &[("want-content-digest", "sha-256")], none),
        zstd
    );
    // Types.
    assert_eq!(
        choice(&[], &[("content-type", "image/png")], none),
        untouched
    );
    assert_eq!(
        choice(&[], &[("content-type", "text/event-stream")], none),
        untouched
    );
    // The peer path, other statuses, upgrades.
    assert_eq!(choice(&[], &[], |x| x.signed = true), untouched);
    for status in [101, 204, 301, 304, 500] {
        assert_eq!(
            choice(&[], &[], |x| x.status = status),
            untouched,
            "{status}"
        );
    }
    // The client's side.
    assert_eq!(
        choice(&[("accept-encoding", "identity")], &[], none),
        vary_only
    );
    assert_eq!(
        choice(&[("accept-encoding", "gzip")], &[], none).coding,
        Some(Coding::Gzip)
    );
    assert_eq!(choice(&[], &[], |x| x.method = "HEAD"), vary_only);
    assert_eq!(choice(&[], &[], |x| x.http10 = true), vary_only);
    // Small bodies: not worth it; unknown length (streamed): compressed.
    assert_eq!(choice(&[], &[("content-length", "1023")], none), vary_only);
    let mut streamed = headers(&[("content-type", "application/json")]);
    streamed.remove(CONTENT_LENGTH);
    let req = headers(&[("accept-encoding", "br")]);
    let x = Exchange {
        method: "POST",
        http10: false,
        request: &req,
        status: 200,
        response: &streamed,
        signed: false,
    };
    assert_eq!(choose(&x, 1024).coding, Some(Coding::Brotli));
}

#[test]
fn vary_and_etag() {
    assert!(varies_on_accept_encoding(&headers(&[(
        "vary",
        "Origin, accept-encoding"
    )])));
    assert!(varies_on_accept_encoding(&headers(&[("vary", "*")])));
    assert!(!varies_on_accept_encoding(&headers(&[("vary", "Origin")])));
    assert_eq!(compressed_etag(b"\"abc\""), Some(b"W/\"abc\"".to_vec()));
    assert_eq!(compressed_etag(b"W/\"abc\""), Some(b"W/\"abc\"".to_vec()));
    assert_eq!(compressed_etag(b"abc"), None);
}

/// A member of a generated `Accept-Encoding`: a token and its weight.
fn member() -> impl Strategy<Value = (&'static str, Option<&'static str>)> {
    (
        prop::sample::select(vec![
            "zstd", "br", "gzip", "x-gzip", "*", "deflate", "identity",
        ]),
        prop::option::of(prop::sample::select(vec!["0", "0.5", "1", "0.001", "1.0"])),
    )
}

proptest! {
    /// The coding chosen has the highest weight the list gives any of
    /// the three (a token's own weight, else `*`'s; the highest when
    /// named twice), and none is chosen when all three have 0.
    #[test]
    fn the_heaviest_coding_is_chosen(members in prop::collection::vec(member(), 0..6)) {
        let value = members
            .iter()
            .map(|(t, q)| match q { Some(q) => format!("{t};q={q}"), None => t.to_string() })
            .collect::<Vec<_>>()
            .join(", ");
        let weight = |token: &str| -> u16 {
            let of = |t: &str| members.iter().filter(|(m, _)| *m == t || (t == "gzip" && *m == "x-gzip"))
                .map(|(_, q)| q.map_or(1000, |q| (q.parse::<f64>().unwrap() * 1000.0) as u16))
                .max();
            of(token).or_else(|| of("*")).unwrap_or(0)
        };
        let chosen = preferred(&headers(&[("accept-encoding", &value)]));
        let best = ["zstd", "br", "gzip"].iter().map(|t| weight(t)).max().unwrap();
        match chosen {
            Some(c) => {
                prop_assert!(best > 0);
                prop_assert_eq!(weight(c.token()), best, "{}", value);
            }
            None => prop_assert_eq!(best, 0, "{}", value),
        }
    }
}

/// Whatever the heads, an answer to a peer, a compressed one, a
/// partial one or one with a digest of its bytes is never compressed,
/// and a chosen coding is one the client gave a weight above 0; and at
/// least one generated exchange in 32 is compressed.
#[test]
fn never_what_must_stay() {
    // Any characters of a list, or a list of codings and weights.
    let listed = prop::collection::vec(member(), 1..6).prop_map(|members| {
        let members: Vec<String> = members
            .iter()
            .map(|(t, q)| match q {
                Some(q) => format!("{t};q={q}"),
                None => t.to_string(),
            })
            .collect();
        members.join(", ")
    });
    let accept = prop_oneof!["[a-z*, ;=0-9.]{0,40}", listed];
    // Each head that must keep an answer as it is, in one answer in
    // four, so that some answers have none.
    let digest = prop_oneof![Just("content-digest"), Just("repr-digest"), Just("digest")];
    let exchanges = (
        accept,
        prop::option::weighted(0.25, "(gzip|br|zstd|deflate)"),
        prop::bool::weighted(0.25),
        prop::option::weighted(0.25, digest),
        prop::bool::weighted(0.25),
        prop_oneof![Just(200u16), Just(206), Just(404), 100u16..600],
    );
    crate::test_support::check_accepting(
        file!(),
        1024,
        32,
        exchanges,
        |(accept, encoding, range, digest, signed, status)| {
            let req = headers(&[("accept-encoding", &accept)]);
            let mut resp = headers(&[("content-type", "application/json")]);
            if let Some(e) = &encoding {
                resp.insert(CONTENT_ENCODING, e.parse().unwrap());
            }
            if range {
                resp.insert(CONTENT_RANGE, "bytes 0-1/9".parse().unwrap());
            }
            if let Some(d) = digest {
                resp.insert(d, "sha-256=:AAAA:".parse().unwrap());
            }
            let x = Exchange {
                method: "GET",
                http10: false,
                request: &req,
                status,
                response: &resp,
                signed,
            };
            let c = choose(&x, 0);
            if signed
                || encoding.is_some()
                || range
                || digest.is_some()
                || !matches!(status, 200 | 403 | 404)
            {
                prop_assert_eq!(c, Choice::UNTOUCHED);
            }
            let Some(coding) = c.coding else {
                return Ok(false);
            };
            let token = coding.token();
            let refused = accept.split(',').any(|m| {
                let m = m.replace(' ', "");
                m == format!("{token};q=0")
                    || m == format!("{token};q=0.0")
                    || m == format!("{token};q=0.00")
                    || m == format!("{token};q=0.000")
            });
            let named = accept
                .split(',')
                .any(|m| m.split(';').next().unwrap().trim() == token);
            prop_assert!(!refused || accept.matches(token).count() > 1);
            prop_assert!(
                named || accept.contains('*') || (token == "gzip" && accept.contains("x-gzip"))
            );
            Ok(true)
        },
    );
}
