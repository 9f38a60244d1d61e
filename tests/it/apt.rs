//! The apt path: mirror → snapshot → publish, and what must be refused.

use std::time::{Duration, Instant};

use crate::support::{Apt, Gpg, TestContext};

fn state_file(ctx: &TestContext, mirror: &str) -> Vec<u8> {
    std::fs::read(ctx.root.join(format!("mirrors/{mirror}.state.json"))).unwrap()
}

#[test]
fn mirror_snapshot_publish_is_consumed_by_apt_get() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &["--with-sources", "--with-udebs"]);
    let run = ctx.depot(&["mirror", "update", "m"]).ok();
    assert!(run.stdout.contains("downloaded"), "{}", run.stdout);
    ctx.depot(&["snapshot", "create", "s1", "--mirror", "m"])
        .ok();
    let summary = ctx.publish_signed(&gpg, "s1", "demo", &[]);
    let version = summary["version"].as_str().unwrap().to_owned();
    assert!(summary["signed"].as_bool().unwrap());

    let public = ctx.root.join("public/demo");
    assert_eq!(
        std::fs::read_link(public.join("dev"))
            .unwrap()
            .to_str()
            .unwrap(),
        version
    );
    let dists = public.join(&version).join("dists/stable");
    for f in [
        "InRelease",
        "Release",
        "Release.gpg",
        "main/binary-amd64/Packages.gz",
        "main/binary-amd64/Packages.xz",
    ] {
        assert!(dists.join(f).is_file(), "{f} missing");
    }
    let release = std::fs::read_to_string(dists.join("Release")).unwrap();
    assert!(release.contains("Acquire-By-Hash: yes"));
    // by-hash copies exist for every index listed.
    let packages_sha = release
        .lines()
        .find(|l| l.ends_with(" main/binary-amd64/Packages.xz"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert!(
        dists
            .join("main/binary-amd64/by-hash/SHA256")
            .join(packages_sha)
            .is_file()
    );

    // Serve the publish root and let real apt consume it.
    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main",
        gpg.public_key.display(),
        ctx.server.url("public/demo/dev")
    ));
    let update = apt.run(&["update"]).ok();
    let noise: Vec<&str> = update
        .stdout
        .lines()
        .chain(update.stderr.lines())
        .filter(|l| l.starts_with("W:") || l.starts_with("E:") || l.starts_with("N:"))
        .collect();
    assert!(
        noise.is_empty(),
        "apt-get update warned: {noise:?}\n{}{}",
        update.stdout,
        update.stderr
    );
    apt.run(&["download", "alpha", "gamma"]).ok();
    let upstream =
        std::fs::read(ctx.www.join("up/pool/main/a/alpha/alpha_1.0-1_amd64.deb")).unwrap();
    let got = std::fs::read(apt.dir.path().join("dl/alpha_1.0-1_amd64.deb")).unwrap();
    assert!(upstream == got, "downloaded alpha differs from upstream");
    assert!(apt.dir.path().join("dl/gamma_0.5-1_all.deb").is_file());
    // Source packages and udebs were mirrored and published too.
    let pool = public.join(&version).join("pool/main/a");
    for f in [
        "alpha_1.0-1.dsc",
        "alpha_1.0.orig.tar.xz",
        "alpha-udeb_1.0-1_amd64.udeb",
    ] {
        assert!(pool.join(f).is_file(), "{f} missing from published pool");
    }
    // A web server running as another user can read what is published.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(pool.join("alpha_1.0-1_amd64.deb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o044, 0o044, "published package mode {mode:o}");
    let audit = std::fs::read_to_string(ctx.root.join("audit.log")).unwrap();
    assert!(
        audit.contains("\"action\":\"publish\"") && audit.contains(&version),
        "{audit}"
    );
}

#[test]
fn upstream_change_gives_exact_snapshot_diff_and_old_snapshot_still_publishes() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &[]);
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.depot(&["snapshot", "create", "s1", "--mirror", "m"])
        .ok();
    ctx.serve_apt("state2", "up");
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.depot(&["snapshot", "create", "s2", "--mirror", "m"])
        .ok();

    let diff = ctx
        .depot(&["snapshot", "diff", "s1", "s2", "--output-format", "json"])
        .ok()
        .json();
    let names = |key: &str| -> Vec<String> {
        diff[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["name"].as_str().unwrap(),
                    r["version"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names("added"), ["epsilon 3.0-1"]);
    assert_eq!(names("removed"), ["delta 1.0-1"]);
    let changed = diff["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{diff}");
    assert_eq!(changed[0]["name"], "alpha");
    assert_eq!(changed[0]["old"], serde_json::json!(["1.0-1"]));
    assert_eq!(changed[0]["new"], serde_json::json!(["1.1-1"]));
    let text = ctx.depot(&["snapshot", "diff", "s1", "s2"]).ok().stdout;
    assert_eq!(
        text,
        "+ epsilon 3.0-1 amd64\n- delta 1.0-1 amd64\n~ alpha 1.0-1 -> 1.1-1 amd64\n"
    );

    // Upstream no longer has alpha 1.0-1; the old snapshot publishes it
    // from the pool, and dropping the mirror does not break that.
    ctx.depot(&["mirror", "drop", "m"]).ok();
    let s = ctx.publish("s1", "old");
    let version = s["version"].as_str().unwrap();
    let dir = ctx.root.join("public/old").join(version);
    let packages =
        std::fs::read_to_string(dir.join("dists/stable/main/binary-amd64/Packages")).unwrap();
    assert!(packages.contains("Version: 1.0-1") && packages.contains("Package: delta"));
    assert!(!packages.contains("epsilon"));
    let old_deb = std::fs::read(
        crate::support::fixtures().join("apt/state1/pool/main/a/alpha/alpha_1.0-1_amd64.deb"),
    )
    .unwrap();
    assert!(std::fs::read(dir.join("pool/main/a/alpha_1.0-1_amd64.deb")).unwrap() == old_deb);

    let list = ctx
        .depot(&["snapshot", "list", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let show = ctx
        .depot(&[
            "snapshot",
            "show",
            "s2",
            "--packages",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(show["package_count"], 4);
}

/// Points the mirror at a bad upstream and checks the refusal keeps the
/// previous good state.
fn refused(ctx: &TestContext, tree_url: &str, needle: &str) {
    let before = state_file(ctx, "m");
    ctx.depot(&["mirror", "edit", "m", "--url", tree_url]).ok();
    let run = ctx.depot(&["mirror", "update", "m"]).fails(1, needle);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("error: mirror `m`")),
        "{}",
        run.stderr
    );
    assert_eq!(state_file(ctx, "m"), before, "the previous state changed");
}

#[test]
fn bad_upstreams_are_refused_and_the_previous_state_is_kept() {
    let ctx = TestContext::new();
    let good = ctx.serve_apt("state1", "good");
    ctx.apt_mirror("m", &good, &[]);
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.depot(&["snapshot", "create", "before", "--mirror", "m"])
        .ok();

    refused(
        &ctx,
        &ctx.serve_apt("wrongkey", "wrongkey"),
        "does not verify",
    );

    let unsigned = ctx.serve_apt("state1", "unsigned");
    std::fs::remove_file(ctx.www.join("unsigned/dists/stable/InRelease")).unwrap();
    std::fs::remove_file(ctx.www.join("unsigned/dists/stable/Release.gpg")).unwrap();
    refused(&ctx, &unsigned, "is not signed");

    let tampered = ctx.serve_apt("state1", "tampered-index");
    let idx = ctx
        .www
        .join("tampered-index/dists/stable/main/binary-amd64/Packages.xz");
    let mut bytes = std::fs::read(&idx).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&idx, bytes).unwrap();
    refused(&ctx, &tampered, "does not match the signed Release");

    let bad_deb = ctx.serve_apt("state2", "tampered-deb");
    let deb = ctx
        .www
        .join("tampered-deb/pool/main/e/epsilon/epsilon_3.0-1_amd64.deb");
    let mut bytes = std::fs::read(&deb).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&deb, &bytes).unwrap();
    refused(&ctx, &bad_deb, "SHA-256 mismatch");

    let truncated = ctx.serve_apt("state2", "truncated-deb");
    let deb = ctx
        .www
        .join("truncated-deb/pool/main/e/epsilon/epsilon_3.0-1_amd64.deb");
    let len = std::fs::metadata(&deb).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&deb)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    refused(&ctx, &truncated, "size mismatch");

    refused(
        &ctx,
        &ctx.serve_apt("hostile-dotdot", "hostile-dotdot"),
        "unsafe path",
    );
    refused(
        &ctx,
        &ctx.serve_apt("hostile-absolute", "hostile-absolute"),
        "unsafe path",
    );
    refused(&ctx, &ctx.serve_apt("malformed", "malformed"), "line ");
    assert!(!ctx.dir.path().join("escape").exists());
    assert!(!std::path::Path::new("/etc/depot-escape").exists());
    assert!(
        !ctx.server.requests().iter().any(|r| r.contains("escape")),
        "a hostile path was requested"
    );

    // Still the old content; the tampered files never entered the pool.
    ctx.depot(&["snapshot", "create", "after", "--mirror", "m"])
        .ok();
    let diff = ctx.depot(&["snapshot", "diff", "before", "after"]).ok();
    assert_eq!(diff.stdout, "no differences\n");
    ctx.assert_pool_consistent();
    // Back on a good upstream, the next run works.
    ctx.depot(&["mirror", "edit", "m", "--url", &good]).ok();
    ctx.depot(&["mirror", "update", "m"]).ok();
}

#[test]
fn a_noop_update_touches_nothing() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &[]);
    ctx.depot(&["mirror", "update", "m"]).ok();
    let before = state_file(&ctx, "m");
    ctx.server.clear_log();
    let start = Instant::now();
    let run = ctx
        .depot(&["mirror", "update", "m", "--output-format", "json"])
        .ok();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(run.json()[0]["changed"], false);
    assert_eq!(ctx.server.requests(), ["up/dists/stable/InRelease"]);
    assert_eq!(state_file(&ctx, "m"), before);
}

#[test]
fn transient_failures_are_retried() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &[]);
    ctx.server
        .fail_once("up/pool/main/b/beta/beta_2.0-1_amd64.deb");
    ctx.server
        .fail_once("up/dists/stable/main/binary-amd64/Packages.xz");
    let run = ctx.depot(&["mirror", "update", "m"]).ok();
    assert!(run.stderr.contains("retrying"), "{}", run.stderr);
    let beta_requests = ctx
        .server
        .requests()
        .iter()
        .filter(|r| r.ends_with("beta_2.0-1_amd64.deb"))
        .count();
    assert_eq!(beta_requests, 2);
}

#[test]
fn on_demand_policy_fetches_packages_at_publish() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &["--policy", "on-demand"]);
    let run = ctx
        .depot(&["mirror", "update", "m", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(run[0]["downloaded_files"], 0);
    assert_eq!(run[0]["deferred"], 4);
    assert!(!ctx.server.requests().iter().any(|r| r.ends_with(".deb")));
    ctx.depot(&["snapshot", "create", "s", "--mirror", "m"])
        .ok();
    let s = ctx.publish("s", "d");
    assert_eq!(s["fetched_on_demand"], 4);
    let version = s["version"].as_str().unwrap();
    assert!(
        ctx.root
            .join("public/d")
            .join(version)
            .join("pool/main/d/delta_1.0-1_amd64.deb")
            .is_file()
    );
    // A second publish needs nothing from upstream.
    ctx.server.clear_log();
    let s = ctx.publish("s", "d");
    assert_eq!(s["fetched_on_demand"], 0);
    assert!(ctx.server.requests().is_empty());
}

#[test]
fn flat_repositories_are_mirrored_and_published() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("flat", "flat");
    let keyring = ctx.keyring("good.gpg");
    ctx.depot(&[
        "mirror",
        "create",
        "f",
        &url,
        "--kind",
        "apt",
        "--suite",
        "./",
        "--arch",
        "amd64",
        "--keyring",
        &keyring,
    ])
    .ok();
    ctx.depot(&["mirror", "update", "f"]).ok();
    ctx.depot(&["snapshot", "create", "fs", "--mirror", "f"])
        .ok();
    let show = ctx
        .depot(&[
            "snapshot",
            "show",
            "fs",
            "--packages",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(show["package_count"], 4);
    let s = ctx
        .depot(&[
            "publish",
            "fs",
            "--dist",
            "flat",
            "--skip-signing",
            "--suite",
            "flat",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    let packages = ctx
        .root
        .join("public/flat")
        .join(s["version"].as_str().unwrap())
        .join("dists/flat/main/binary-amd64/Packages");
    let text = std::fs::read_to_string(packages).unwrap();
    assert!(
        text.contains("Filename: pool/main/g/gamma_0.5-1_all.deb"),
        "{text}"
    );
}

#[test]
fn kill_during_update_then_rerun_completes_with_a_consistent_pool() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &[]);
    ctx.server.stall_debs(Duration::from_millis(400));
    let mut child = ctx
        .command()
        .args(["mirror", "update", "m", "--concurrency", "1"])
        .spawn()
        .unwrap();
    // Wait until a download is half done, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctx.server.requests().iter().any(|r| r.ends_with(".deb")) {
        assert!(Instant::now() < deadline, "no package download started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!ctx.root.join("mirrors/m.state.json").exists());
    ctx.server.stall_debs(Duration::ZERO);
    let run = ctx
        .depot(&["mirror", "update", "m", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(run[0]["changed"], true);
    ctx.assert_pool_consistent();
    let stale: Vec<_> = std::fs::read_dir(ctx.root.join("tmp")).unwrap().collect();
    assert!(stale.is_empty(), "temp files left behind: {stale:?}");
}

#[test]
fn updates_of_different_mirrors_run_together_and_the_same_mirror_is_refused() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("a", &url, &[]);
    ctx.apt_mirror("b", &url, &[]);
    ctx.server.stall_debs(Duration::from_millis(300));
    let first = ctx
        .command()
        .args(["mirror", "update", "a", "--concurrency", "1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctx.server.requests().iter().any(|r| r.ends_with(".deb")) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.depot(&["mirror", "update", "a"])
        .fails(3, "mirror `a` is busy");
    let second = ctx
        .command()
        .args(["mirror", "update", "b"])
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    ctx.assert_pool_consistent();
}

#[test]
fn usage_errors_exit_2() {
    let ctx = TestContext::new();
    ctx.depot(&[
        "mirror",
        "create",
        "x",
        "http://127.0.0.1:9/",
        "--kind",
        "apt",
        "--suite",
        "s",
    ])
    .fails(2, "--keyring");
    ctx.depot(&[
        "mirror",
        "create",
        "../x",
        "http://127.0.0.1:9/",
        "--kind",
        "apt",
        "--suite",
        "s",
        "--no-verify",
    ])
    .fails(2, "invalid mirror name");
    ctx.depot(&["snapshot", "show", "nope"])
        .fails(1, "no snapshot named `nope`");
    ctx.depot(&["snapshot", "create", "--mirror", "nope"])
        .fails(1, "no mirror named `nope`");
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &[]);
    ctx.depot(&["snapshot", "create", "--mirror", "m"])
        .fails(1, "depot mirror update m");
    let list = ctx
        .depot(&["mirror", "list", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(list[0]["name"], "m");
    let yaml = std::fs::read_to_string(ctx.root.join("mirrors/m.yaml")).unwrap();
    assert!(yaml.contains("suite: stable"), "{yaml}");
}

#[test]
fn default_snapshot_name_uses_the_utc_clock() {
    let mut ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &[]);
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.env
        .insert("DEPOT_NOW".into(), "2026-11-22T10:24:35Z".into());
    let run = ctx
        .depot(&[
            "snapshot",
            "create",
            "--mirror",
            "m",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(run["name"], "m-20261122T102435Z");
    let s = ctx.publish("m-20261122T102435Z", "d");
    assert_eq!(s["version"], "20261122T102435Z");
    // Same second again: the next version is the next second, never a clash.
    let s = ctx.publish("m-20261122T102435Z", "d");
    assert_eq!(s["version"], "20261122T102436Z");
}

#[test]
fn a_filtered_mirror_downloads_only_the_selection_and_its_dependencies() {
    let ctx = TestContext::new();
    let url = ctx.serve_apt("state1", "up");
    ctx.apt_mirror("m", &url, &["--filter", "beta", "--with-deps"]);
    let run = ctx
        .depot(&["mirror", "update", "m", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(run[0]["packages"], 2);
    assert_eq!(run[0]["filtered_out"], 2);
    let debs: Vec<String> = ctx
        .server
        .requests()
        .into_iter()
        .filter(|r| r.ends_with(".deb"))
        .collect();
    assert_eq!(debs.len(), 2, "{debs:?}");
    assert!(
        debs.iter().any(|r| r.contains("alpha_1.0-1"))
            && debs.iter().any(|r| r.contains("beta_2.0-1"))
    );
    // A bad query is refused when the mirror is defined.
    let keyring = ctx.keyring("good.gpg");
    ctx.depot(&[
        "mirror",
        "create",
        "x",
        &url,
        "--kind",
        "apt",
        "--suite",
        "stable",
        "--keyring",
        &keyring,
        "--filter",
        "beta (",
    ])
    .fails(2, "invalid query");
    // Removing the filter brings the rest.
    ctx.depot(&["mirror", "edit", "m", "--filter", ""]).ok();
    let run = ctx
        .depot(&["mirror", "update", "m", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(run[0]["packages"], 4);
    assert_eq!(run[0]["already_pooled"], 2);
}
