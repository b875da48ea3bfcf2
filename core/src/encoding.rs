//! Response compression: whether an app's answer is compressed on its way
//! to the client, and with which coding (docs/config.md, "Response
//! compression"). The shell streams the body through Pingora's encoders;
//! this module only decides, from the request and response heads.
//!
//! Compressed: an answer of a compressible type (text, JSON, JavaScript,
//! XML, WebAssembly, SVG, fonts that are not already compressed) with
//! status 200, 403 or 404, that the app sent without `Content-Encoding`,
//! `Content-Range` or `Cache-Control: no-transform`, of at least the
//! minimum size when its length is known, to a request (not `HEAD`) over
//! HTTP/1.1 or later whose `Accept-Encoding` takes zstd, br or gzip. Never: an answer to a verified peer (it is signed as the
//! app sent it), an event stream (a compressor holds back bytes an event
//! stream must deliver at once), or an upgrade.

use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    VARY,
};
use http::HeaderMap;

/// A content coding the proxy compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Zstd,
    Brotli,
    Gzip,
}

impl Coding {
    /// Every coding, in the proxy's order of preference when the client
    /// likes several equally: the least CPU for the same bytes first. On a
    /// 700 KB SPA bundle, each at the level of about 26.5 % of the bundle
    /// (`cargo bench --bench compression`, benches/README.md): zstd 3 in
    /// 2.4 ms, gzip 4 in 6.0 ms, Brotli 2 in 5.9 ms but holding 1.7 MB
    /// against gzip's 0.4 MB.
    pub const PREFERENCE: [Coding; 3] = [Coding::Zstd, Coding::Gzip, Coding::Brotli];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// What the proxy does to one answer's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The answer could have been compressed for another client: it gets
    /// `Vary: Accept-Encoding`, for caches.
    pub vary: bool,
    /// The coding it is compressed with, if any.
    pub coding: Option<Coding>,
}

impl Choice {
    const UNTOUCHED: Choice = Choice {
        vary: false,
        coding: None,
    };
}

/// The heads one choice is made from.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub method: &'a str,
    /// HTTP/1.0 has no chunked encoding to stream a compressed body with.
    pub http10: bool,
    pub request: &'a HeaderMap,
    pub status: u16,
    pub response: &'a HeaderMap,
    /// An answer to a verified peer: signed as the app sent it.
    pub signed: bool,
}

/// Chooses for one answer; `min_bytes`: the smallest body compressed when
/// its length is known.
pub fn choose(x: &Exchange<'_>, min_bytes: u64) -> Choice {
    if x.signed || !matches!(x.status, 200 | 403 | 404) || !representation_compressible(x.response)
    {
        return Choice::UNTOUCHED;
    }
    let vary = Choice {
        vary: true,
        coding: None,
    };
    let too_small = content_length(x.response).is_some_and(|n| n < min_bytes);
    if x.method.eq_ignore_ascii_case("HEAD") || x.http10 || too_small {
        return vary;
    }
    Choice {
        vary: true,
        coding: preferred(x.request),
    }
}

/// Whether the app's answer may be compressed, whatever the client takes.
fn representation_compressible(response: &HeaderMap) -> bool {
    let encoded = response
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
    let no_transform = response.get_all(CACHE_CONTROL).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|d| {
            d.trim_ascii()
                .split(|b| *b == b'=')
                .next()
                .is_some_and(|name| name.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
        })
    });
    let mut types = response.get_all(CONTENT_TYPE).iter();
    let compressible = match (types.next(), types.next()) {
        (Some(t), None) => compressible_type(t.as_bytes()),
        _ => false,
    };
    // A digest of the app's bytes (RFC 9530 `Content-Digest` and
    // `Repr-Digest`, RFC 3230 `Digest`) covers the content coding: it
    // would not match compressed bytes, and dropping it would take away
    // the integrity check the app asked for. Such answers go as sent.
    let digested = DIGEST_FIELDS.iter().any(|f| response.contains_key(*f));
    !encoded && !no_transform && !digested && !response.contains_key(CONTENT_RANGE) && compressible
}

/// The answer fields that carry a digest of its bytes as sent.
const DIGEST_FIELDS: [&str; 3] = ["content-digest", "repr-digest", "digest"];

/// Whether a media type (a `Content-Type` value) is worth compressing:
/// text and structured text, WebAssembly, SVG, icons and uncompressed
/// fonts. Never event streams, nor types whose data is compressed already
/// (images, audio, video, archives, WOFF fonts, PDF).
pub fn compressible_type(content_type: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(content_type) else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => sub != "event-stream",
        "application" => {
            matches!(
                sub,
                "json"
                    | "javascript"
                    | "ecmascript"
                    | "x-javascript"
                    | "xml"
                    | "wasm"
                    | "graphql"
                    | "x-www-form-urlencoded"
                    | "vnd.ms-fontobject"
                    | "x-font-ttf"
                    | "x-font-otf"
                    | "x-sh"
                    | "x-yaml"
                    | "yaml"
                    | "toml"
            ) || sub.ends_with("+json")
                || sub.ends_with("+xml")
        }
        "image" => matches!(sub, "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"),
        "font" => matches!(sub, "ttf" | "otf" | "collection"),
        _ => false,
    }
}

fn content_length(response: &HeaderMap) -> Option<u64> {
    response
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The coding the request's `Accept-Encoding` prefers (RFC 9110 section
/// 12.5.3): the highest quality among the proxy's codings, `*` standing for
/// those not named, `q=0` refusing; ties go by [`Coding::PREFERENCE`].
/// None without the header (a client that names no coding gets none), or
/// when it takes none of them.
pub fn preferred(request: &HeaderMap) -> Option<Coding> {
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut any: Option<u16> = None;
    let mut seen = false;
    for value in request.get_all(ACCEPT_ENCODING) {
        seen = true;
        let Ok(text) = value.to_str() else {
            return None;
        };
        for member in text.split(',') {
            let mut parts = member.split(';');
            let token = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if token.is_empty() {
                continue;
            }
            let mut quality = Some(1000);
            for param in parts {
                let (name, v) = param.split_once('=').unwrap_or((param, ""));
                if name.trim().eq_ignore_ascii_case("q") {
                    quality = qvalue(v.trim());
                }
            }
            // A malformed weight: the member is ignored.
            let Some(q) = quality else { continue };
            let slot = match token.as_str() {
                "zstd" => &mut named[0],
                "br" => &mut named[1],
                "gzip" | "x-gzip" => &mut named[2],
                "*" => &mut any,
                _ => continue,
            };
            // Named twice: the higher weight.
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
    }
    if !seen {
        return None;
    }
    let mut best: Option<(u16, Coding)> = None;
    for coding in Coding::PREFERENCE {
        let slot = match coding {
            Coding::Zstd => named[0],
            Coding::Brotli => named[1],
            Coding::Gzip => named[2],
        };
        let q = slot.or(any).unwrap_or(0);
        if q > 0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, coding));
        }
    }
    best.map(|(_, c)| c)
}

/// A `qvalue` (RFC 9110 section 12.4.2) in thousandths: `0` to `1`, at
/// most three decimals.
fn qvalue(v: &str) -> Option<u16> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `Vary` already covers `Accept-Encoding` (or is `*`).
pub fn varies_on_accept_encoding(response: &HeaderMap) -> bool {
    response.get_all(VARY).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|name| {
            let name = name.trim_ascii();
            name == b"*" || name.eq_ignore_ascii_case(b"accept-encoding")
        })
    })
}

/// The `ETag` of the compressed answer (RFC 9110 section 8.8.1: another
/// representation): a strong tag made weak, a weak one kept; `None`
/// removes a value that is no entity tag at all (as nginx does).
pub fn compressed_etag(etag: &[u8]) -> Option<Vec<u8>> {
    if etag.starts_with(b"W/") {
        Some(etag.to_vec())
    } else if etag.starts_with(b"\"") {
        Some([b"W/".as_slice(), etag].concat())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
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
}
