//! W3C trace context (docs/access.md, "Trace context"): one request
//! followed across the proxy, the app, the core and a peer Portal by its
//! `traceparent`, the same trace ID in each access log line.

use std::time::Duration;

use crate::common::*;
use crate::peering::{app_client, setup as setup_peers, ALPHA_IP};
use reqwest::StatusCode;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const VALID_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The trace ID of a `traceparent` the proxy made or kept, checked to be
/// one (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase).
fn trace_id(traceparent: &str) -> String {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        parts.len() == 4
            && parts[0] == "00"
            && hex(parts[1], 32)
            && hex(parts[2], 16)
            && hex(parts[3], 2),
        "not a traceparent the proxy makes: {traceparent:?}"
    );
    parts[1].to_string()
}

/// The trace ID of the line of `path` in the access log of `files`
/// (`access_log.file: access.log`); waits for it.
async fn logged_trace(files: &PortalFiles, path: &str) -> String {
    let log = || std::fs::read_to_string(files.dir.join("access.log")).unwrap_or_default();
    let mut found = None;
    let seen = eventually(Duration::from_secs(5), || {
        found = log().lines().find_map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).ok()?;
            (line["path"] == path).then(|| line["trace_id"].as_str().unwrap().to_string())
        });
        let done = found.is_some();
        async move { done }
    })
    .await;
    assert!(seen, "no access log line for {path}:\n{}", log());
    found.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_terminals_and_peers_choose_the_trace_and_every_hop_has_one() {
    let files = PortalFiles::new("trace");
    let (alpha, core) = (Upstream::start("alpha"), Upstream::start("core"));
    files
        .app(
            "alpha",
            &app_meta(r#"{"": {"access": "private"}, "/open/": {"access": "public"}}"#),
        )
        .terminals(&[("t1", "Laptop")]);
    let proxy = Proxy::start(
        &files,
        &format!(
            "core: {{ upstream: \"{}\" }}\nupstreams: {{ alpha: \"{}\" }}\n\
             access_log: {{ file: access.log }}\n",
            core.addr, alpha.addr
        ),
    );
    let client = client(&files.ca_pem, Protocol::Http2);
    let token = files.terminal_token("t1");
    let alpha_host = files.host("alpha");
    // (name, terminal, traceparent fields, tracestate, kept)
    let cases: [(&str, bool, &[&str], bool, bool); 8] = [
        ("terminal-valid", true, &[VALID], true, true),
        ("anonymous-valid", false, &[VALID], true, false),
        (
            "terminal-invalid",
            true,
            &["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],
            true,
            false,
        ),
        (
            "terminal-zero",
            true,
            &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
            false,
            false,
        ),
        ("terminal-two", true, &[VALID, VALID], true, false),
        ("terminal-none", true, &[], true, false),
        ("anonymous-none", false, &[], false, false),
        ("terminal-core", true, &[VALID], true, true),
    ];
    let mut made = Vec::new();
    for (name, terminal, parents, state, kept) in cases {
        let (host, path, app_path) = match (name, terminal) {
            ("terminal-core", _) => (
                files.host(""),
                format!("/core/public/{name}"),
                format!("/public/{name}"),
            ),
            (_, true) => (alpha_host.clone(), format!("/{name}"), format!("/{name}")),
            (_, false) => (
                alpha_host.clone(),
                format!("/open/{name}"),
                format!("/open/{name}"),
            ),
        };
        let mut req = client.get(proxy.url(&host, &path));
        if terminal {
            req = req.bearer_auth(&token);
        }
        for p in parents {
            req = req.header("traceparent", *p);
        }
        if state {
            req = req.header("tracestate", "vendor=opaque");
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let echo: Echo = resp.json().await.unwrap();
        assert_eq!(echo.target, app_path, "{name}");
        let sent = &echo.headers["traceparent"];
        assert!(!sent.contains(','), "{name}: one traceparent, got {sent:?}");
        let trace = trace_id(sent);
        if kept {
            assert_eq!(sent, VALID, "{name}: kept unchanged");
            assert_eq!(echo.headers["tracestate"], "vendor=opaque", "{name}");
        } else {
            assert_ne!(trace, VALID_TRACE, "{name}: a new trace");
            assert!(
                !echo.headers.contains_key("tracestate"),
                "{name}: {:?}",
                echo.headers
            );
            made.push(trace.clone());
        }
        assert_eq!(
            logged_trace(&files, &path).await,
            trace,
            "{name}: the access log"
        );
    }
    // Every made trace is a new one.
    let distinct: std::collections::BTreeSet<_> = made.iter().collect();
    assert_eq!(distinct.len(), made.len(), "{made:?}");
    // A refused request has its trace ID in the log too.
    let resp = client
        .get(proxy.url(&alpha_host, "/refused"))
        .header("traceparent", VALID)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let refused = logged_trace(&files, "/refused").await;
    assert!(refused.len() == 32 && refused != VALID_TRACE, "{refused:?}");

    // Other tracing systems' headers are treated as `traceparent`
    // (issue 26, item 7): an anonymous caller's never reach the app or the
    // core, in any spelling; a terminal's do, unchanged.
    #[rustfmt::skip]
    let others: &[(&str, &str)] = &[
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("X-B3-SpanId", "e457b5a2e4d86bd1"),
        ("X-B3-Sampled", "1"),
        ("uber-trace-id", "5b8aa5a2d2c872e8321cf37308d69df2:051581bf3cb55c13:0:1"),
        ("uberctx-user", "alice"),
        ("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1"),
        ("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
        ("x-datadog-trace-id", "1234"),
        ("x-datadog-parent-id", "5678"),
        ("x-datadog-sampling-priority", "2"),
        ("sentry-trace", "771a43a4192642f0b136d5159a501700-b7ad6b7169203331-1"),
        ("baggage", "userId=alice,isProduction=false"),
        ("elastic-apm-traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ];
    for (terminal, host, path) in [
        (false, alpha_host.clone(), "/open/other-formats"),
        (true, alpha_host.clone(), "/other-formats"),
        (false, files.host(""), "/core/public/other-formats"),
        (true, files.host(""), "/core/public/other-formats-t"),
    ] {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let mut req =
                crate::common::client(&files.ca_pem, protocol).get(proxy.url(&host, path));
            if terminal {
                req = req.bearer_auth(&token);
            }
            for (name, value) in others {
                req = req.header(*name, *value);
            }
            // A WSGI server reads `X_B3_Flags` as `X-B3-Flags`.
            let resp = req.header("X_B3_Flags", "1").send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let echo: Echo = resp.json().await.unwrap();
            for (name, value) in others {
                let got = echo.headers.get(&name.to_ascii_lowercase());
                assert_eq!(
                    got.map(String::as_str),
                    terminal.then_some(*value),
                    "{path} {protocol:?}: {name}"
                );
            }
            assert_eq!(echo.headers.contains_key("x_b3_flags"), terminal, "{path}");
        }
    }
    std::mem::forget((alpha, core));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_call_carries_the_apps_trace_to_the_peer() {
    let s = setup_peers("trace-peer");
    s.peered().await;
    // (path, traceparent the app sends, kept)
    for (path, parent, kept) in [
        ("peer/kept", Some(VALID), true),
        ("peer/made", None, false),
        (
            "peer/invalid",
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            false,
        ),
    ] {
        let mut req = app_client(ALPHA_IP).get(s.call_url(path));
        if let Some(p) = parent {
            req = req.header("traceparent", p).header("tracestate", "app=1");
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let echo: Echo = resp.json().await.unwrap();
        let sent = &echo.headers["traceparent"];
        let trace = trace_id(sent);
        if kept {
            assert_eq!(sent, VALID, "{path}");
            assert_eq!(echo.headers["tracestate"], "app=1", "{path}");
        } else {
            assert_ne!(trace, VALID_TRACE, "{path}");
            assert!(!echo.headers.contains_key("tracestate"), "{path}");
        }
        // Portal 2 kept its verified peer's trace and logged it.
        assert_eq!(
            logged_trace(&s.p2.files, &format!("/{path}")).await,
            trace,
            "{path}"
        );
    }
}
