//! `app_meta.json` parsing and template loading: never a panic; a loaded
//! app renders its headers within the limits for every caller.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal_core::caller::Caller;
use portal_core::headers::{portal_value, AppHeaders, PortalInfo};
use portal_core::templates::MAX_VALUE_BYTES;
use portal_core::app_meta::AppMeta;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = AppMeta::parse("app", data) else {
        return;
    };
    let Ok(headers) = AppHeaders::compile(&meta) else {
        return;
    };
    let portal = portal_value(&PortalInfo {
        id: "a".repeat(103),
        short_id: "aaaaaa".into(),
        domain: "aaaaaa.example.org".into(),
        public_key_pem: "PEM".into(),
    });
    for caller in Caller::samples() {
        for rule in 0..meta.paths.len() {
            if let Ok((out, _)) = headers.render(rule, &caller, &portal) {
                assert!(out.iter().all(|(_, v)| v.len() <= MAX_VALUE_BYTES));
            }
        }
    }
});
