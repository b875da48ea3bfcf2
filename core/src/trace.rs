//! W3C Trace Context (`traceparent`, `tracestate`): which trace a request
//! belongs to, so that one request can be followed across the proxy, the
//! app, the core and a peer Portal (docs/access.md, "Trace context").
//!
//! A caller the proxy knows (a terminal, a verified peer, an app calling
//! out) keeps its valid `traceparent`, and its `tracestate` with it. An
//! anonymous caller's is replaced: anybody could otherwise join their
//! requests to the owner's traces or set the sampled flag of every
//! request. The proxy records no spans of its own, so a kept header is
//! passed on unchanged (a new parent ID would name a span nobody
//! records); a made one starts a trace.
//!
//! The other tracing systems' headers are one class with `traceparent`
//! ([`is_other_trace_header`]): kept from a trusted caller, removed from
//! an anonymous one, whose trace the proxy replaces (it makes only W3C
//! headers).

use http::HeaderMap;

/// The header names.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Trace and trace-context headers of other tracing systems, whole names
/// (lower case), with their sources: Zipkin's B3 single header (`b3`,
/// openzipkin/b3-propagation); Jaeger's `uber-trace-id`; Google Cloud's
/// `x-cloud-trace-context` and gRPC's `grpc-trace-bin`; AWS X-Ray's
/// `x-amzn-trace-id`; Sentry's `sentry-trace`; W3C Baggage's `baggage`;
/// Elastic APM's `elastic-apm-traceparent`; LightStep's
/// `x-ot-span-context`; New Relic's `newrelic`; Apache SkyWalking's
/// `sw8`, `sw8-correlation` and `sw8-x`; Dynatrace's `x-dynatrace` and
/// `x-dynatrace-application`.
pub const OTHER_TRACE_HEADERS: [&str; 15] = [
    "b3",
    "uber-trace-id",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "x-amzn-trace-id",
    "sentry-trace",
    "baggage",
    "elastic-apm-traceparent",
    "x-ot-span-context",
    "newrelic",
    "sw8",
    "sw8-correlation",
    "sw8-x",
    "x-dynatrace",
    "x-dynatrace-application",
];

/// Prefixes of other tracing systems' header families: Zipkin's multi
/// header B3 (`x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`, ...),
/// Jaeger's baggage (`uberctx-*`), Datadog's (`x-datadog-trace-id`,
/// `x-datadog-parent-id`, `x-datadog-sampling-priority`,
/// `x-datadog-origin`, `x-datadog-tags`), OpenTracing's basic tracer
/// (`ot-tracer-*`, `ot-baggage-*`) and Instana's (`x-instana-t`, `-s`,
/// `-l`).
pub const OTHER_TRACE_PREFIXES: [&str; 6] = [
    "x-b3-",
    "uberctx-",
    "x-datadog-",
    "ot-tracer-",
    "ot-baggage-",
    "x-instana-",
];

/// Whether `name` is another tracing system's header
/// ([`OTHER_TRACE_HEADERS`], [`OTHER_TRACE_PREFIXES`]), in any case and
/// with `_` in place of `-` (as CGI and WSGI servers read `X_B3_TraceId`).
pub fn is_other_trace_header(name: &str) -> bool {
    let same = |a: u8, b: u8| {
        let a = if a == b'_' {
            b'-'
        } else {
            a.to_ascii_lowercase()
        };
        a == b
    };
    let bytes = name.as_bytes();
    let is = |known: &str| {
        known.len() == bytes.len() && bytes.iter().zip(known.bytes()).all(|(&a, b)| same(a, b))
    };
    let starts = |prefix: &str| {
        bytes.len() > prefix.len() && bytes.iter().zip(prefix.bytes()).all(|(&a, b)| same(a, b))
    };
    OTHER_TRACE_HEADERS.iter().any(|k| is(k)) || OTHER_TRACE_PREFIXES.iter().any(|p| starts(p))
}

/// A `traceparent` value the proxy accepts (W3C Trace Context, section
/// 3.2): version `00` exactly 55 characters; a later version (not `ff`)
/// at least that, its first four fields read as version 00's and anything
/// after them behind a `-`. Lowercase hex only; neither ID all zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// As received or made: what is sent on.
    value: String,
}

impl TraceParent {
    /// Parses one header value; `None` for anything the specification
    /// calls invalid.
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        if value.len() < 55 {
            return None;
        }
        let (version, rest) = value.split_at(2);
        if !is_lower_hex(version) || version == b"ff" {
            return None;
        }
        if version == b"00" && value.len() != 55 {
            return None;
        }
        if value.len() > 55 && value[55] != b'-' {
            return None;
        }
        let fields = &rest[..53];
        let ok = fields[0] == b'-'
            && fields[33] == b'-'
            && fields[50] == b'-'
            && is_nonzero_hex(&fields[1..33])
            && is_nonzero_hex(&fields[34..50])
            && is_lower_hex(&fields[51..53]);
        // The rest of a later version is opaque but must be header text.
        let text = value.iter().all(|b| b.is_ascii_graphic());
        (ok && text).then(|| TraceParent {
            value: String::from_utf8_lossy(value).into_owned(),
        })
    }

    /// A new trace, sampled flag off, from 24 random bytes the caller
    /// draws (16 for the trace ID, 8 for the parent ID); an all-zero
    /// draw, invalid as an ID, becomes 1.
    pub fn fresh(random: [u8; 24]) -> TraceParent {
        let mut trace = [0u8; 16];
        let mut parent = [0u8; 8];
        trace.copy_from_slice(&random[..16]);
        parent.copy_from_slice(&random[16..]);
        if trace == [0; 16] {
            trace[15] = 1;
        }
        if parent == [0; 8] {
            parent[7] = 1;
        }
        TraceParent {
            value: format!("00-{}-{}-00", hex(&trace), hex(&parent)),
        }
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The trace ID: 32 lowercase hex digits, what the access log records.
    pub fn trace_id(&self) -> &str {
        &self.value[3..35]
    }
}

/// The trace a request carries on: `kept` when its own `traceparent` was
/// valid and its caller is trusted with it (its `tracestate` then goes on
/// too), else a fresh one and no `tracestate`. Other tracing systems'
/// headers go on only from a `trusted` caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub parent: TraceParent,
    pub kept: bool,
    pub trusted: bool,
}

impl Trace {
    /// The trace of a request with `headers`. `trusted`: whether its caller
    /// may choose the trace (a terminal, a verified peer, an app). A
    /// request with two `traceparent` fields has none that is valid.
    pub fn of(headers: &HeaderMap, trusted: bool, random: [u8; 24]) -> Trace {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let received = match (values.next(), values.next()) {
            (Some(one), None) if trusted => TraceParent::parse(one.as_bytes()),
            _ => None,
        };
        match received {
            Some(parent) => Trace {
                parent,
                kept: true,
                trusted,
            },
            None => Trace {
                parent: TraceParent::fresh(random),
                kept: false,
                trusted,
            },
        }
    }

    /// Whether the request going on loses its header `name`: another
    /// tracing system's header from an untrusted caller.
    pub fn strips(&self, name: &str) -> bool {
        !self.trusted && is_other_trace_header(name)
    }

    /// Sets this trace on `headers`, the request going on: its
    /// `traceparent`, no `tracestate` unless the received one is kept,
    /// and no other tracing system's header unless the caller is trusted.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.kept {
            headers.remove(TRACESTATE);
        }
        if !self.trusted {
            let doomed: Vec<http::HeaderName> = headers
                .keys()
                .filter(|n| is_other_trace_header(n.as_str()))
                .cloned()
                .collect();
            for name in doomed {
                headers.remove(name);
            }
        }
        if let Ok(value) = http::HeaderValue::from_str(self.parent.as_str()) {
            headers.insert(TRACEPARENT, value);
        }
    }
}

fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn is_nonzero_hex(bytes: &[u8]) -> bool {
    is_lower_hex(bytes) && bytes.iter().any(|&b| b != b'0')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
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
}
