//! A Swift container listing as `test poll` pages through it: the first
//! line is the marker (empty: none), the second the prefix, the rest one
//! page. Paging against a server that sends this page whatever the marker
//! (a static copy, a proxy dropping the query) must end, and every name
//! taken must be past the marker.
#![no_main]

use depot::testreq::results::{listing_page, run_dirs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (marker, prefix, page) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let mut marker = (!marker.is_empty()).then_some(marker);
    let mut pages = 0;
    loop {
        let (new, next) = listing_page(page, marker);
        for name in &new {
            assert!(marker.is_none_or(|m| *name > m));
            assert!(!name.is_empty() && !name.contains('\n'));
        }
        for run in run_dirs(&new, prefix) {
            assert!(run.ends_with('@') && run.starts_with(prefix));
        }
        let Some(next) = next else { break };
        assert!(marker.is_none_or(|m| next > m));
        marker = Some(next);
        pages += 1;
        // One page with everything, then a repeat that brings nothing.
        assert!(pages <= 1, "the listing of a static page did not end");
    }
});
