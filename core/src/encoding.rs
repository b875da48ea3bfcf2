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
    let essence = crate::names::ascii_lower(text.split(';').next().unwrap_or("").trim());
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
#[path = "encoding_tests.rs"]
mod tests;
