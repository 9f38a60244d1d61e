//! The request head as `depot serve` reads it: the path (percent-decoded
//! segments, `..`, `%2e%2e`, `%2f`, empty segments), the `Authorization`
//! header (bearer and basic), a `Range` against a file length, and a
//! build-upload path's key.
#![no_main]

use depot::promote::serve;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (path, auth, range) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(p) = depot::names::clean_path(&segs) {
        // What the server joins under a version folder never climbs out.
        assert!(
            p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        );
    }
    let _ = serve::authorization_token(auth);
    for len in [0u64, 1, 1000, u64::MAX] {
        match serve::range(range, len) {
            serve::Ranged::Part(first, last) => assert!(first <= last && last < len),
            serve::Ranged::Unsatisfiable => assert!(len == 0 || range.contains("bytes=")),
            serve::Ranged::Whole => {}
        }
    }
    if segs.len() >= 5 {
        let _ = depot::build::BuildKey::new(
            segs[0],
            segs[1],
            segs[2],
            segs[3],
            segs[4],
            segs.get(6).copied(),
        );
    }
});
