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
#[path = "h2_frames_tests.rs"]
mod tests;
