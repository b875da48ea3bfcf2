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

use http::HeaderMap;

/// The header names.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

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
/// too), else a fresh one and no `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub parent: TraceParent,
    pub kept: bool,
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
            Some(parent) => Trace { parent, kept: true },
            None => Trace {
                parent: TraceParent::fresh(random),
                kept: false,
            },
        }
    }

    /// Sets this trace on `headers`, the request going on: its
    /// `traceparent`, and no `tracestate` unless the received one is kept.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.kept {
            headers.remove(TRACESTATE);
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
