//! Response compression (docs/config.md, "Response compression"): zstd,
//! br or gzip by the client's `Accept-Encoding`, streamed, over HTTP/1.1
//! and HTTP/2; what must stay as the app sent it stays.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use crate::peering::{app_client, setup as setup_peers, ALPHA_IP};
use reqwest::header::HeaderMap;

struct Setup {
    files: PortalFiles,
    proxy: Proxy,
    metrics: SocketAddr,
}

fn setup(test: &str, compression: &str) -> Setup {
    let files = PortalFiles::new(test);
    let alpha = Upstream::start("alpha");
    files.app("alpha", &app_meta(r#"{"": {"access": "public"}}"#));
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra = format!(
        "core: {{ upstream: \"127.0.0.1:1\" }}\nupstreams: {{ alpha: \"{}\" }}\n\
         metrics: {{ listen: \"{metrics}\" }}\ncompression: {{ {compression} }}\n",
        alpha.addr
    );
    let proxy = Proxy::start(&files, &extra);
    std::mem::forget(alpha);
    Setup {
        files,
        proxy,
        metrics,
    }
}

/// The body decoded from `coding` (`""`: as is).
fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "" => out = body.to_vec(),
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(body).unwrap(),
        other => panic!("unexpected coding {other:?}"),
    }
    out
}

/// `GET <path>` on alpha with `accept` as `Accept-Encoding` (none if
/// empty): the status, headers and body as received.
async fn get(s: &Setup, protocol: Protocol, path: &str, accept: &str) -> (u16, HeaderMap, Vec<u8>) {
    let client = client(&s.files.ca_pem, protocol);
    let mut req = client.get(s.proxy.url(&s.files.host("alpha"), path));
    if !accept.is_empty() {
        req = req.header("accept-encoding", accept);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_with_what_the_client_takes() {
    let s = setup("compress", "");
    let asset = asset_bytes(200_000);
    // (Accept-Encoding, coding expected)
    let cases = [
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, deflate, br", "gzip"),
        ("gzip", "gzip"),
        ("br", "br"),
        ("br;q=0.5, gzip;q=0.9", "gzip"),
        ("gzip;q=0.5, br", "br"),
        ("zstd;q=0, *", "gzip"),
    ];
    for protocol in [Protocol::Http1, Protocol::Http2] {
        for (accept, coding) in cases {
            for query in ["", "?chunked=1"] {
                let path = format!("/asset/200000{query}");
                let what = format!("{protocol:?} {accept:?} {path}");
                let (status, headers, body) = get(&s, protocol, &path, accept).await;
                assert_eq!(status, 200, "{what}");
                assert_eq!(header(&headers, "content-encoding"), coding, "{what}");
                assert_eq!(header(&headers, "vary"), "Accept-Encoding", "{what}");
                assert!(headers.get("content-length").is_none(), "{what}");
                assert!(body.len() * 5 < asset.len(), "{what}: {} bytes", body.len());
                assert_eq!(decode(coding, &body), asset, "{what}");
            }
        }
    }
    // A strong ETag becomes weak: another representation.
    let (_, headers, _) = get(&s, Protocol::Http1, "/asset/5000?etag=%22v1%22", "gzip").await;
    assert_eq!(header(&headers, "etag"), "W/\"v1\"");
    // Counted: answers and bytes, in and out.
    let text = metrics_text(s.metrics).await;
    let zstd = series_value(
        &text,
        "portal_proxy_compressed_responses_total{coding=\"zstd\"}",
    );
    assert_eq!(zstd, Some(4.0), "{text}");
    let series = |side: &str| {
        series_value(
            &text,
            &format!("portal_proxy_compression_bytes_total{{coding=\"zstd\",side=\"{side}\"}}"),
        )
        .unwrap()
    };
    assert_eq!(series("in"), 4.0 * 200_000.0);
    assert!(series("out") * 5.0 < series("in"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_must_stay_as_sent_stays() {
    let s = setup("compress-not", "");
    let browser = "gzip, deflate, br, zstd";
    // (path, Accept-Encoding, status, Vary expected)
    let cases = [
        // The client takes no coding.
        ("/asset/5000", "", 200, "Accept-Encoding"),
        ("/asset/5000", "identity", 200, "Accept-Encoding"),
        ("/asset/5000", "gzip;q=0, deflate", 200, "Accept-Encoding"),
        // Compressed already, or not worth it.
        ("/asset/5000?type=image%2Fpng", browser, 200, ""),
        ("/asset/5000?type=font%2Fwoff2", browser, 200, ""),
        ("/asset/5000?type=application%2Fzip", browser, 200, ""),
        ("/asset/5000?encoding=gzip", browser, 200, ""),
        ("/asset/500", browser, 200, "Accept-Encoding"),
        // Told not to transform, or partial.
        ("/asset/5000?cache=public,%20no-transform", browser, 200, ""),
        ("/asset/5000?range=1", browser, 206, ""),
        // Not a 200, 403 or 404.
        ("/status/500", browser, 500, ""),
    ];
    for protocol in [Protocol::Http1, Protocol::Http2] {
        for (path, accept, status, vary) in cases {
            let what = format!("{protocol:?} {path} {accept:?}");
            let (got, headers, body) = get(&s, protocol, path, accept).await;
            assert_eq!(got, status, "{what}");
            let sent_encoding = if path.contains("encoding=gzip") {
                "gzip"
            } else {
                ""
            };
            assert_eq!(
                header(&headers, "content-encoding"),
                sent_encoding,
                "{what}"
            );
            assert_eq!(header(&headers, "vary"), vary, "{what}");
            if let Some(asset) = path.strip_prefix("/asset/") {
                let n: usize = asset.split('?').next().unwrap().parse().unwrap();
                assert_eq!(body, asset_bytes(n), "{what}: the app's bytes");
                assert_eq!(header(&headers, "content-length"), n.to_string(), "{what}");
            }
        }
    }
    // HEAD: nothing to compress.
    let client = client(&s.files.ca_pem, Protocol::Http1);
    let resp = client
        .head(s.proxy.url(&s.files.host("alpha"), "/asset/5000"))
        .header("accept-encoding", browser)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    // An event stream is never compressed (its events must not wait).
    let resp = client
        .get(s.proxy.url(&s.files.host("alpha"), "/events/1"))
        .header("accept-encoding", browser)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.text().await.unwrap(), "data: tick\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_answer_streams_and_is_never_held_whole() {
    let s = setup("compress-stream", "");
    // 4 MB the app sends at once, then never ends: compressed bytes of it
    // must reach the client while the answer is still open.
    let n = 4_000_000;
    let client = client(&s.files.ca_pem, Protocol::Http2);
    let mut resp = client
        .get(s.proxy.url(
            &s.files.host("alpha"),
            &format!("/asset/{n}?chunked=1&hold=1"),
        ))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(resp.headers(), "content-encoding"), "gzip");
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut decoded = 0;
    while decoded < n / 2 {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("compressed bytes of an open answer did not come")
            .unwrap()
            .expect("the answer never ends");
        received.extend_from_slice(&chunk);
        // What the gzip stream holds so far, decoded.
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(&received[..]).read_to_end(&mut out);
        decoded = out.len();
        assert_eq!(out[..], asset_bytes(n)[..decoded]);
    }
}

/// Issue 26, item 4: a streamed answer of a compressible type (long
/// polls, progressive pages, token streams) reaches the client as the app
/// sends it, in every coding, over HTTP/1.1 and HTTP/2: the app sends
/// small chunks and then holds the answer open, and all it sent must
/// decode from what the client received (an encoder holding it back would
/// hold it forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chunks_are_flushed_in_every_coding() {
    let s = setup("compress-flush", "");
    let n = 3000;
    for kind in ["text%2Fplain", "application%2Fjson", "text%2Fhtml"] {
        for coding in ["zstd", "gzip", "br"] {
            for protocol in [Protocol::Http1, Protocol::Http2] {
                let client = client(&s.files.ca_pem, protocol);
                let path = format!("/asset/{n}?chunked=1&hold=1&chunk=100&type={kind}");
                let mut resp = client
                    .get(s.proxy.url(&s.files.host("alpha"), &path))
                    .header("accept-encoding", coding)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(header(resp.headers(), "content-encoding"), coding);
                let mut received = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                let mut decoded = Vec::new();
                while decoded.len() < n {
                    let chunk = tokio::time::timeout_at(deadline, resp.chunk())
                        .await
                        .unwrap_or_else(|_| {
                            panic!(
                                "{kind} {coding} {protocol:?}: {} of {n} bytes decoded, the rest held back",
                                decoded.len()
                            )
                        })
                        .unwrap()
                        .expect("the answer never ends");
                    received.extend_from_slice(&chunk);
                    decoded = decode_partial(coding, &received);
                }
                assert_eq!(decoded, asset_bytes(n), "{kind} {coding} {protocol:?}");
            }
        }
    }
}

/// What a streaming decoder yields from the start of a `coding` stream.
fn decode_partial(coding: &str, partial: &[u8]) -> Vec<u8> {
    let mut reader: Box<dyn Read + '_> = match coding {
        "gzip" => Box::new(flate2::read::GzDecoder::new(partial)),
        "br" => Box::new(brotli::Decompressor::new(partial, 4096)),
        _ => Box::new(zstd::stream::read::Decoder::new(partial).unwrap()),
    };
    let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// An answer with a digest of the app's bytes (RFC 9530 `Content-Digest`)
/// goes as the app sent it: compressed, its digest would not match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_a_digest_go_as_sent() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let s = setup("compress-digest", "");
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let (status, headers, body) =
            get(&s, protocol, "/asset/50000?digest=1", "gzip, br, zstd").await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-encoding"), "", "{protocol:?}");
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
        assert_eq!(
            header(&headers, "content-digest"),
            format!("sha-256=:{digest}:")
        );
        assert_eq!(body, asset_bytes(50000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_and_capped() {
    let s = setup("compress-off", "enabled: false");
    let (_, headers, body) = get(&s, Protocol::Http1, "/asset/5000", "gzip").await;
    assert_eq!(header(&headers, "content-encoding"), "");
    assert_eq!(header(&headers, "vary"), "");
    assert_eq!(body, asset_bytes(5000));
    // With no encoder to spare, an answer goes as sent (and is counted).
    let s = setup("compress-capped", "max_concurrent: 0");
    let (_, headers, body) = get(&s, Protocol::Http2, "/asset/5000", "gzip").await;
    assert_eq!(header(&headers, "content-encoding"), "");
    assert_eq!(body, asset_bytes(5000));
    let text = metrics_text(s.metrics).await;
    let skipped = "portal_proxy_compression_skipped_total{reason=\"max_concurrent\"}";
    assert_eq!(series_value(&text, skipped), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_peers_go_as_the_app_sent_them() {
    let s = setup_peers("compress-peer");
    s.peered().await;
    let resp = app_client(ALPHA_IP)
        .get(s.call_url("peer/asset/50000"))
        .header("accept-encoding", "gzip, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.bytes().await.unwrap().to_vec(), asset_bytes(50000));
}
