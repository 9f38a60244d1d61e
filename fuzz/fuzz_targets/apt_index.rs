//! `Packages` and `Sources` stanzas, with the checks a mirror applies to
//! each (required fields, sizes, checksums, safe relative paths).
#![no_main]

use depot::formats::apt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for s in apt::binary_stanzas(text) {
        if let Ok(s) = s {
            let _ = apt::unsafe_path_reason(s.filename);
        }
    }
    for s in apt::source_stanzas(text) {
        if let Ok(s) = s {
            let _ = apt::pool_prefix(s.name);
        }
    }
});
