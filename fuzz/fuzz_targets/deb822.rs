//! deb822 paragraphs, clearsigned text and `Release`/`InRelease` files.
#![no_main]

use depot::formats::{apt, deb822};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let stripped = deb822::strip_clearsign(text);
    let text = stripped.as_deref().unwrap_or(text);
    for p in deb822::paragraphs(text) {
        let Ok(p) = p else { break };
        for f in &p.fields {
            let _ = p.get(f.name);
        }
    }
    let _ = apt::Release::parse(text);
});
