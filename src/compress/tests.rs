use super::*;

/// What `encode` gave, whole, for `chunks`.
fn compress(c: &mut Compressing, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(&c.encode(Some(chunk), false).unwrap());
    }
    out.extend_from_slice(&c.encode(None, true).unwrap());
    out
}

#[test]
fn every_coding_round_trips_in_chunks() {
    use std::io::Read;
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("function f{i}(a) {{ return a + {i}; }}\n").into_bytes())
        .collect();
    let chunks: Vec<&[u8]> = text.chunks(7_000).collect();
    let compressors = Compressors::new(Settings::default());
    for coding in Coding::PREFERENCE {
        let mut c = compressors.start(coding).unwrap();
        let out = compress(&mut c, &chunks);
        assert!(
            out.len() * 5 < text.len(),
            "{coding:?}: {} of {}",
            out.len(),
            text.len()
        );
        let mut back = Vec::new();
        match coding {
            Coding::Gzip => {
                flate2::read::GzDecoder::new(&out[..])
                    .read_to_end(&mut back)
                    .unwrap();
            }
            Coding::Brotli => {
                brotli::Decompressor::new(&out[..], 4096)
                    .read_to_end(&mut back)
                    .unwrap();
            }
            Coding::Zstd => back = zstd::decode_all(&out[..]).unwrap(),
        };
        assert_eq!(back, text, "{coding:?}");
    }
}

/// Each chunk is flushed: what was output after any chunk decodes,
/// with a streaming decoder, to every byte sent so far (a streamed
/// answer is never held back), in every coding, whatever the chunks.
#[test]
fn every_chunk_is_flushed() {
    use std::io::Read;
    /// What a streaming decoder yields from `partial` before it runs
    /// out of input.
    fn decoded(coding: Coding, partial: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut reader: Box<dyn Read> = match coding {
            Coding::Gzip => Box::new(flate2::read::GzDecoder::new(partial)),
            Coding::Brotli => Box::new(brotli::Decompressor::new(partial, 4096)),
            Coding::Zstd => Box::new(zstd::stream::read::Decoder::new(partial).unwrap()),
        };
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
    let compressors = Compressors::new(Settings::default());
    let chunks: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            format!("data: {{\"token\": \"word{i}\"}}\n\n")
                .repeat(i % 3 + 1)
                .into_bytes()
        })
        .collect();
    for coding in Coding::PREFERENCE {
        let mut c = compressors.start(coding).unwrap();
        let (mut out, mut sent) = (Vec::new(), Vec::new());
        for chunk in &chunks {
            out.extend_from_slice(&c.encode(Some(chunk), false).unwrap());
            sent.extend_from_slice(chunk);
            assert_eq!(decoded(coding, &out), sent, "{coding:?}: held back");
        }
    }
}

#[test]
fn at_most_max_concurrent_at_once() {
    let compressors = Compressors::new(Settings {
        max_concurrent: 2,
        ..Settings::default()
    });
    let a = compressors.start(Coding::Gzip).unwrap();
    let _b = compressors.start(Coding::Zstd).unwrap();
    assert!(compressors.start(Coding::Brotli).is_none());
    drop(a);
    assert!(compressors.start(Coding::Brotli).is_some());
}
