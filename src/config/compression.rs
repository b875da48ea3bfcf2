//! Validation of the `compression:` section.

use super::raw;
use super::validate::Validator;
use crate::compress::{Levels, Settings};

impl Validator {
    pub(super) fn compression(&mut self, raw: raw::Compression) -> Settings {
        let d = Settings::default();
        let levels = Levels {
            gzip: self.count(
                "compression.gzip_level",
                raw.gzip_level,
                d.levels.gzip,
                1..=9,
            ),
            brotli: self.count(
                "compression.brotli_level",
                raw.brotli_level,
                d.levels.brotli,
                1..=11,
            ),
            zstd: self.count(
                "compression.zstd_level",
                raw.zstd_level,
                d.levels.zstd,
                1..=19,
            ),
        };
        Settings {
            enabled: raw.enabled.unwrap_or(d.enabled),
            min_bytes: self.count(
                "compression.min_bytes",
                raw.min_bytes,
                d.min_bytes,
                0..=1 << 30,
            ),
            max_concurrent: self.count(
                "compression.max_concurrent",
                raw.max_concurrent,
                d.max_concurrent,
                0..=1_000_000,
            ),
            levels,
        }
    }
}
