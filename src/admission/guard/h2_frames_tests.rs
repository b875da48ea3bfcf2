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
