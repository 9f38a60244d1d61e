//! Every YAML file a person writes: the train file (parsed and checked),
//! mirror, repo and guard definitions, and the settings file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = depot::train::file::TrainFile::parse(std::path::Path::new("fuzz.yaml"), text);
    let _ = serde_norway::from_str::<depot::mirror::MirrorDef>(text);
    let _ = serde_norway::from_str::<depot::repo::RepoDef>(text);
    let _ = serde_norway::from_str::<depot::promote::guard::Guard>(text);
    let _ = serde_norway::from_str::<depot::settings::ConfigFile>(text);
});
