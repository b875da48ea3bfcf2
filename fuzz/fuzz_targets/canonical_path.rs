//! The canonical path: never a panic, and an accepted path has no dot
//! segment, no `//`, no encoded separator in either of its forms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_core::path::canonical_path;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = canonical_path(raw) {
        for form in std::iter::once(c.path.as_ref()).chain(c.without_params.as_deref()) {
            assert!(form.starts_with('/'));
            assert!(!form.contains("//"), "{raw:?} -> {form:?}");
            for segment in form.split('/') {
                let name = segment.split(';').next().unwrap_or("");
                assert!(name != "." && name != "..", "{raw:?} -> {form:?}");
            }
            let lower = form.to_ascii_lowercase();
            assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%00"));
        }
        assert_eq!(canonical_path(&c.path).unwrap().path, c.path);
    }
});
