//! The package query language (`name (>= 1.0) | Priority (required)`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = depot::packages::query::Query::parse(text);
    }
});
