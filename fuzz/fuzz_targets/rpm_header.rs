//! rpm files: the lead, the signature header and the main header, as
//! `repo add` and a mirror's signature check read them.
#![no_main]

use depot::formats::rpm_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rpm_header::fragments(data, "0", "Packages/x.rpm", 0);
    let _ = rpm_header::header_signatures(&mut std::io::Cursor::new(data));
});
