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
        // One allocation of the header's exact length: this runs for every
        // request that brings no trace of its own (benches/README.md,
        // "Allocations of the whole binary").
        let mut value = String::with_capacity(TRACEPARENT_LEN);
        value.push_str("00-");
        push_hex(&mut value, &trace);
        value.push('-');
        push_hex(&mut value, &parent);
        value.push_str("-00");
        debug_assert_eq!(value.len(), TRACEPARENT_LEN);
        TraceParent { value }
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

/// The length of a version 00 `traceparent`: `00-` 32 hex `-` 16 hex `-00`.
const TRACEPARENT_LEN: usize = 55;

/// Appends `bytes` as lowercase hex digits.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
