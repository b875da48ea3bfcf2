//! The HTTP/2 frames of a client's byte stream, as far as header blocks
//! go: what [`super::Watched`] needs to give a header block started on a
//! connection in use the head deadline.

#![forbid(unsafe_code)]

/// The HTTP/2 frames of a client's byte stream, as far as header blocks
/// go: after the 24-byte connection preface, 9-byte frame headers whose
/// payloads are skipped. A HEADERS or PUSH_PROMISE frame without
/// END_HEADERS opens a header block, which a CONTINUATION with
/// END_HEADERS closes (RFC 9113 section 4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct H2Frames {
    preface_left: usize,
    header: [u8; 9],
    header_len: usize,
    payload_left: usize,
    /// A header block is open.
    pub(crate) open_block: bool,
}

impl Default for H2Frames {
    fn default() -> Self {
        H2Frames {
            preface_left: 24,
            header: [0; 9],
            header_len: 0,
            payload_left: 0,
            open_block: false,
        }
    }
}

const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

impl H2Frames {
    /// Follows `bytes`, read after those before.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = (9 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len == 9 {
                    self.header_len = 0;
                    let h = self.header;
                    self.payload_left =
                        usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    let (kind, flags) = (h[3], h[4]);
                    match kind {
                        HEADERS | PUSH_PROMISE => self.open_block = flags & END_HEADERS == 0,
                        CONTINUATION if flags & END_HEADERS != 0 => self.open_block = false,
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn header_blocks() {
        let settings = frame(0x4, 0, &[0; 6]);
        let complete = frame(HEADERS, END_HEADERS | 0x1, b"hpack");
        let open = frame(HEADERS, 0x1, b"hp");
        let more = frame(CONTINUATION, 0, b"ac");
        let end = frame(CONTINUATION, END_HEADERS, b"k");
        let promise = frame(PUSH_PROMISE, 0, &[0; 4]);
        // A HEADERS frame's payload that looks like a frame header is skipped.
        let tricky = frame(0x0, 0, &frame(HEADERS, 0, b""));
        #[rustfmt::skip]
        let cases: &[(&str, Vec<&[u8]>, bool)] = &[
            ("preface only", vec![PREFACE], false),
            ("complete headers", vec![PREFACE, &settings, &complete], false),
            ("headers without END_HEADERS", vec![PREFACE, &settings, &open], true),
            ("continued, not ended", vec![PREFACE, &open, &more], true),
            ("continued and ended", vec![PREFACE, &open, &more, &end], false),
            ("a second block opened", vec![PREFACE, &complete, &open], true),
            ("push promise without END_HEADERS", vec![PREFACE, &promise], true),
            ("data that looks like headers", vec![PREFACE, &tricky], false),
        ];
        for (what, frames, want) in cases {
            let bytes = frames.concat();
            let mut f = H2Frames::default();
            f.feed(&bytes);
            assert_eq!(f.open_block, *want, "{what}");
        }
    }

    proptest::proptest! {
        /// Bytes fed in any split give the state of bytes fed at once.
        #[test]
        fn any_split_reads_alike(
            frames in proptest::collection::vec((proptest::sample::select(vec![0u8, 1, 4, 5, 8, 9]), 0u8..16, 0usize..40), 0..12),
            cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let mut bytes = PREFACE.to_vec();
            for (kind, flags, len) in &frames {
                bytes.extend(frame(*kind, *flags, &vec![0xAB; *len]));
            }
            let mut whole = H2Frames::default();
            whole.feed(&bytes);
            let mut split = H2Frames::default();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                split.feed(&bytes[at..c]);
                at = c;
            }
            proptest::prop_assert_eq!(whole, split);
        }
    }
}
