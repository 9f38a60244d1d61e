//! Settings precedence and flag parsing: what the command line says beats
//! the settings file, and malformed flag values are usage errors (exit 2)
//! refused before anything runs.

use std::time::Duration;

use crate::support::TestContext;

fn write_config(ctx: &TestContext, yaml: &str) {
    let config = ctx.dir.path().join("depot/config.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, yaml).unwrap();
}

/// Downloads of the fixture's four packages, each stalled 300 ms, with a
/// settings file saying `concurrency: 2`; returns the most in flight.
fn most_parallel_downloads(flags: &[&str]) -> usize {
    let ctx = TestContext::new();
    write_config(&ctx, "concurrency: 2\n");
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &[]);
    ctx.server.stall_debs(Duration::from_millis(300));
    let mut args = vec!["mirror", "update", "m"];
    args.extend_from_slice(flags);
    ctx.depot(&args).ok();
    ctx.server.most_debs_in_flight()
}

#[test]
fn an_explicit_concurrency_8_beats_the_settings_files_concurrency_2() {
    // Regression: 8 was also the flag's default, so `--concurrency 8` was
    // taken for "not given" and the settings file's 2 won.
    assert!(most_parallel_downloads(&["--concurrency", "8"]) > 2);
    assert!(most_parallel_downloads(&[]) <= 2);
}

#[test]
fn a_malformed_stage_flag_is_a_usage_error() {
    let ctx = TestContext::new();
    for bad in ["nonsense", "staging=dev", "dev="] {
        let run = ctx.depot(&["dist", "create", "x", "--stage", bad]);
        assert_eq!(run.code, 2, "--stage {bad}: {}", run.stderr);
    }
    assert!(!ctx.root.join("dists/x").exists());
}

#[test]
fn a_malformed_component_or_for_flag_is_a_usage_error() {
    let ctx = TestContext::new();
    ctx.depot(&[
        "release",
        "create",
        "r",
        "--from",
        "a",
        "--component",
        "main",
    ])
    .fails(2, "COMP=SNAP,SNAP");
    ctx.depot(&[
        "test",
        "submit",
        "hello",
        "--release",
        "sid",
        "--arch",
        "amd64",
        "--for",
        "novers",
    ])
    .fails(2, "DIST/VERSION");
}

#[test]
fn core_enums_are_parsed_by_their_words_and_unknown_ones_list_the_choices() {
    let ctx = TestContext::new();
    ctx.depot(&[
        "mirror",
        "create",
        "m",
        "http://127.0.0.1:9/",
        "--kind",
        "apt",
        "--suite",
        "s",
        "--no-verify",
        "--policy",
        "sometimes",
    ])
    .fails(2, "on-demand");
    ctx.depot(&["promote", "d", "20260101T000000Z", "--to", "prod"])
        .fails(2, "release");
}
