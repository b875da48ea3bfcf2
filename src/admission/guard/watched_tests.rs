use super::head_ends;

/// The byte-by-byte reading `head_ends` must agree with: where, in a
/// stream of bytes, the first head ends.
fn first_end(bytes: &[u8]) -> Option<usize> {
    let mut tail = [0u8; 2];
    bytes.iter().position(|&b| {
        let [c, d] = tail;
        tail = [d, b];
        b == b'\n' && (d == b'\n' || (d == b'\r' && c == b'\n'))
    })
}

/// Feeds `bytes` in reads of the given sizes: the read in which the
/// end is seen (its index), if any.
fn read_of_end(bytes: &[u8], sizes: &[usize]) -> Option<usize> {
    let mut tail = [0u8; 2];
    let mut rest = bytes;
    for (n, &size) in sizes.iter().enumerate() {
        let (read, more) = rest.split_at(size.min(rest.len()));
        if head_ends(&mut tail, read) {
            return Some(n);
        }
        rest = more;
    }
    None
}

#[test]
fn heads() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (b"GET / HTTP/1.1\nHost: a\n\n", true),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\r\n", false),
        (b"\n\n", true),
        (b"", false),
    ];
    for &(head, ends) in cases {
        // Whole, then a byte at a time.
        assert_eq!(read_of_end(head, &[head.len()]).is_some(), ends, "{head:?}");
        let bytes = vec![1; head.len()];
        assert_eq!(read_of_end(head, &bytes), first_end(head), "{head:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

    /// However a stream of line ends and other bytes is cut into
    /// reads, the end is seen in the read that holds the byte where
    /// a byte-by-byte reading sees it.
    #[test]
    fn any_cut_finds_the_first_end(
        bytes in proptest::collection::vec(proptest::sample::select(b"\r\nGa".to_vec()), 0..40),
        sizes in proptest::collection::vec(0usize..6, 0..40),
    ) {
        let mut sizes = sizes;
        sizes.push(bytes.len());
        let want = first_end(&bytes).map(|at| {
            let mut end = 0;
            sizes.iter().position(|&s| {
                end += s;
                at < end
            }).unwrap()
        });
        proptest::prop_assert_eq!(read_of_end(&bytes, &sizes), want);
    }
}
