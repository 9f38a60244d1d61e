//! A test run's `result.tar` (with its `testinfo.json`), and a test
//! request as a worker takes it off the queue (`SRCPKG\nJSON`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = depot::testreq::results::parse_result_tar(data);
    let _ = depot::testreq::request::Request::decode("debci-noble-amd64", data);
});
