//! `.deb` files: the ar archive and the control member (gz, xz, zst or
//! plain), as `repo add` reads them, then the control stanza.
#![no_main]

use depot::formats::deb822;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.deb");
    if let Ok(control) = depot::repo::read_deb_control(path, data) {
        for p in deb822::paragraphs(&control) {
            if p.is_err() {
                break;
            }
        }
    }
});
