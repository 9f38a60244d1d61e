//! rpm repodata: `repomd.xml`, `primary.xml`, and `filelists.xml` /
//! `other.xml` as split into their packages.
#![no_main]

use depot::formats::rpm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(records) = rpm::parse_repomd(text) {
        for r in &records {
            let _ = rpm::unsafe_href(&r.href);
        }
    }
    let _ = rpm::parse_primary(text);
    let _ = rpm::split_packages(text);
});
