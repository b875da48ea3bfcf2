use super::*;
use crate::test_support::headers;
use proptest::prelude::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn values_are_read_as_the_specification_says() {
    let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
    for (value, valid) in [
        (VALID, true),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            true,
        ),
        // A later version: its first four fields, anything behind a '-'.
        (later, true),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
            true,
        ),
        (
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            false,
        ),
        // Version 00 has exactly four fields.
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            false,
        ),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            false,
        ),
        // Uppercase hex, zero IDs, short fields, wrong separators.
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            false,
        ),
        (
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            false,
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            false,
        ),
        (
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            false,
        ),
        ("", false),
    ] {
        assert_eq!(
            TraceParent::parse(value.as_bytes()).is_some(),
            valid,
            "{value:?}"
        );
    }
    let kept = TraceParent::parse(later.as_bytes()).unwrap();
    assert_eq!(kept.as_str(), later, "passed on unchanged");
    assert_eq!(kept.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn only_a_trusted_caller_chooses_the_trace() {
    let random = [7u8; 24];
    let fresh = "00-07070707070707070707070707070707-0707070707070707-00";
    // (headers, trusted, kept)
    type Case<'a> = (&'a [(&'a str, &'a str)], bool, bool);
    let cases: [Case; 6] = [
        (&[("traceparent", VALID), ("tracestate", "a=1")], true, true),
        (
            &[("traceparent", VALID), ("tracestate", "a=1")],
            false,
            false,
        ),
        (
            &[("traceparent", "00-zz"), ("tracestate", "a=1")],
            true,
            false,
        ),
        (&[("tracestate", "a=1")], true, false),
        (
            &[("traceparent", VALID), ("traceparent", VALID)],
            true,
            false,
        ),
        (&[], false, false),
    ];
    for (pairs, trusted, kept) in cases {
        let mut h = headers(pairs);
        let trace = Trace::of(&h, trusted, random);
        assert_eq!(trace.kept, kept, "{pairs:?} trusted {trusted}");
        trace.apply(&mut h);
        let sent: Vec<_> = h.get_all(TRACEPARENT).iter().collect();
        assert_eq!(sent.len(), 1, "{pairs:?}");
        let expected = if kept { VALID } else { fresh };
        assert_eq!(sent[0], expected, "{pairs:?}");
        let state = pairs.iter().any(|(n, _)| *n == "tracestate");
        assert_eq!(h.contains_key(TRACESTATE), kept && state, "{pairs:?}");
    }
}

/// Other tracing systems' headers (Zipkin, Jaeger, Google, AWS,
/// Datadog, Sentry, Baggage, Elastic, ...) are treated as
/// `traceparent`: an anonymous caller's never reach the app, a trusted
/// caller's do, unchanged; other headers are never touched.
#[test]
fn other_trace_formats_follow_traceparent() {
    #[rustfmt::skip]
        let traces: &[(&str, &str)] = &[
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("X-B3-Sampled", "1"),
            ("X-B3-Flags", "1"),
            ("x_b3_parentspanid", "05e3ac9a4f6e3b90"),
            ("uber-trace-id", "abc:def:0:1"),
            ("uberctx-user", "x"),
            ("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1"),
            ("grpc-trace-bin", "AAAA"),
            ("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
            ("x-datadog-trace-id", "1"),
            ("x-datadog-parent-id", "2"),
            ("x-datadog-sampling-priority", "2"),
            ("X-Datadog-Origin", "synthetics"),
            ("sentry-trace", "771a43a4192642f0b136d5159a501700-b7ad6b7169203331-1"),
            ("baggage", "userId=alice"),
            ("elastic-apm-traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-ot-span-context", "a;b;c"),
            ("ot-tracer-traceid", "1"),
            ("newrelic", "eyJ2Ijpb"),
            ("sw8", "1-MQ==-MQ==-0-YQ==-YQ==-Lw==-YQ=="),
            ("x-instana-t", "1"),
            ("x-dynatrace", "FW4;1"),
        ];
    #[rustfmt::skip]
        let others: &[(&str, &str)] = &[
            ("accept", "*/*"), ("x-request-id", "r1"), ("b3x", "1"), ("x-b3", "1"),
            ("baggages", "1"), ("x-datadog", "1"), ("sentry", "1"), ("content-type", "text/plain"),
        ];
    for trusted in [false, true] {
        let mut h = headers(traces);
        for (k, v) in others {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let trace = Trace::of(&h, trusted, [3; 24]);
        trace.apply(&mut h);
        for (name, value) in traces {
            assert_eq!(trace.strips(name), !trusted, "{name}");
            let sent = h.get(*name).map(|v| v.to_str().unwrap());
            assert_eq!(sent, trusted.then_some(*value), "{name}, trusted {trusted}");
        }
        for (name, value) in others {
            assert!(!trace.strips(name), "{name}");
            assert_eq!(h.get(*name).unwrap(), value, "{name}");
        }
    }
}

#[test]
fn an_all_zero_draw_still_makes_valid_ids() {
    let made = TraceParent::fresh([0; 24]);
    assert!(TraceParent::parse(made.as_str().as_bytes()).is_some());
}

proptest! {
    #[test]
    fn every_made_trace_is_valid_and_new(random in any::<[u8; 24]>()) {
        let made = TraceParent::fresh(random);
        prop_assert_eq!(TraceParent::parse(made.as_str().as_bytes()), Some(made.clone()));
        prop_assert_eq!(made.as_str().len(), 55);
    }

    /// The IDs are the drawn bytes in order, as `{:02x}` writes them (an
    /// all-zero ID aside, which becomes 1).
    #[test]
    fn a_made_trace_spells_its_draw(random in any::<[u8; 24]>()) {
        prop_assume!(random[..16] != [0; 16] && random[16..] != [0; 8]);
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let expected = format!("00-{}-{}-00", hex(&random[..16]), hex(&random[16..]));
        let made = TraceParent::fresh(random);
        prop_assert_eq!(made.as_str(), expected.as_str());
    }

    /// Every spelling of a listed name (any case, `_` for `-`) is one,
    /// and a listed prefix followed by anything.
    #[test]
    fn spellings_of_trace_headers(
        i in 0usize..OTHER_TRACE_HEADERS.len(),
        j in 0usize..OTHER_TRACE_PREFIXES.len(),
        upper in proptest::collection::vec(any::<bool>(), 40),
        underscore in proptest::collection::vec(any::<bool>(), 40),
        rest in "[a-z0-9-]{1,12}",
    ) {
        let respell = |name: &str| -> String {
            name.chars().enumerate().map(|(k, c)| match c {
                '-' if underscore[k % 40] => '_',
                c if upper[k % 40] => c.to_ascii_uppercase(),
                c => c,
            }).collect()
        };
        prop_assert!(is_other_trace_header(&respell(OTHER_TRACE_HEADERS[i])));
        let prefixed = format!("{}{rest}", OTHER_TRACE_PREFIXES[j]);
        prop_assert!(is_other_trace_header(&respell(&prefixed)));
        // A listed name with more characters is one only under a prefix.
        let longer = format!("{}{}", OTHER_TRACE_HEADERS[i], rest);
        let is_prefixed = OTHER_TRACE_PREFIXES.iter().any(|p| longer.starts_with(p) && longer.len() > p.len());
        let is_listed = OTHER_TRACE_HEADERS.contains(&longer.as_str());
        prop_assert_eq!(is_other_trace_header(&longer), is_prefixed || is_listed);
    }

    #[test]
    fn parsing_never_panics(value in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = TraceParent::parse(&value);
    }

    #[test]
    fn any_changed_character_of_a_valid_value_is_caught_or_still_hex(i in 0usize..55, c in any::<u8>()) {
        let mut value = VALID.as_bytes().to_vec();
        value[i] = c;
        let valid_char = match i {
            2 | 35 | 52 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        };
        prop_assert_eq!(TraceParent::parse(&value).is_some(), valid_char);
    }
}
