//! The rpm path: mirror → snapshot → publish, checked with real dnf, and
//! what must be refused.

use crate::support::{Dnf, Gpg, Run, TestContext, fixtures};

fn good_key() -> std::path::PathBuf {
    fixtures().join("rpm/keys/good.asc")
}

fn primary_names(ctx: &TestContext, dist: &str, version: &str) -> String {
    let repodata = ctx
        .root
        .join("public")
        .join(dist)
        .join(version)
        .join("repodata");
    let primary = std::fs::read_dir(&repodata)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-primary.xml.gz"))
        .unwrap();
    let bytes = std::fs::read(primary.path()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    text
}

#[test]
fn mirror_snapshot_publish_is_consumed_by_dnf() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    ctx.rpm_snapshot("s1");
    let version = ctx.publish_signed(&gpg, "s1", "el", &[])["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let repodata = ctx.root.join("public/el").join(&version).join("repodata");
    assert!(repodata.join("repomd.xml.asc").is_file());
    let repomd = std::fs::read_to_string(repodata.join("repomd.xml")).unwrap();
    for t in [
        "primary",
        "filelists",
        "other",
        "updateinfo",
        "group",
        "group_gz",
    ] {
        assert!(
            repomd.contains(&format!("<data type=\"{t}\">")),
            "{t} missing:\n{repomd}"
        );
    }

    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    // repomd is signed by the publisher; the rpms by the fixture's key A.
    let dnf = Dnf::new(
        &ctx.server.url("public/el/dev"),
        &[&gpg.public_key, &good_key()],
    );
    dnf.run(&["makecache"]).ok();
    let q = dnf.query_all("%{name} %{epoch}:%{version}-%{release} %{arch}");
    let mut lines: Vec<&str> = q.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "alpha 0:1.0-1 noarch",
            "beta 0:2.0-1 x86_64",
            "delta 0:1.0-1 x86_64",
            "gamma 1:0.5-1 noarch"
        ]
    );
    let adv = dnf
        .run(&[
            "repoquery",
            "--repo",
            "fx",
            "--advisory",
            "FIXTURE-2023:0001",
        ])
        .ok();
    assert!(adv.stdout.contains("alpha"), "{}", adv.stdout);
    let groups = dnf.run(&["group", "list"]).ok();
    assert!(groups.stdout.contains("Fixture Tools"), "{}", groups.stdout);
    dnf.run(&["install", "beta"]).ok();
    assert!(dnf.installed("usr/share/doc/alpha/README"));
}

#[test]
fn upstream_change_gives_exact_diff_and_old_snapshot_still_publishes() {
    let ctx = TestContext::new();
    ctx.rpm_snapshot("s1");
    ctx.serve_rpm("state2", "up");
    let run = ctx
        .depot(&["mirror", "update", "r", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(
        run[0]["already_pooled"], 2,
        "beta and gamma are not downloaded again"
    );
    ctx.depot(&["snapshot", "create", "s2", "--mirror", "r"])
        .ok();
    let text = ctx.depot(&["snapshot", "diff", "s1", "s2"]).ok().stdout;
    assert_eq!(
        text,
        "+ epsilon 3.0-1 x86_64\n- delta 1.0-1 x86_64\n~ alpha 1.0-1 -> 1.1-1 noarch\n"
    );
    // A no-op update is one request.
    ctx.server.clear_log();
    let run = ctx
        .depot(&["mirror", "update", "r", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(run[0]["changed"], false);
    assert_eq!(
        ctx.server.requests(),
        ["up/repodata/repomd.xml", "up/repodata/repomd.xml.asc"]
    );

    ctx.depot(&["mirror", "drop", "r"]).ok();
    let s = ctx.publish("s1", "old");
    let version = s["version"].as_str().unwrap();
    let primary = primary_names(&ctx, "old", version);
    assert!(primary.contains("<name>delta</name>") && primary.contains("ver=\"1.0\""));
    let old = std::fs::read(fixtures().join("rpm/state1/Packages/alpha-1.0-1.noarch.rpm")).unwrap();
    let published = ctx
        .root
        .join("public/old")
        .join(version)
        .join("Packages/alpha-1.0-1.noarch.rpm");
    assert!(std::fs::read(published).unwrap() == old);
}

#[test]
fn additive_mode_keeps_what_upstream_dropped() {
    let ctx = TestContext::new();
    let url = ctx.serve_rpm("state1", "up");
    ctx.rpm_mirror("add", &url, &["--mode", "additive"]);
    ctx.rpm_mirror("mir", &url, &[]);
    for m in ["add", "mir"] {
        ctx.depot(&["mirror", "update", m]).ok();
    }
    ctx.serve_rpm("state2", "up");
    for m in ["add", "mir"] {
        ctx.depot(&["mirror", "update", m]).ok();
        ctx.depot(&["snapshot", "create", m, "--mirror", m]).ok();
    }
    let show = |s: &str| {
        ctx.depot(&[
            "snapshot",
            "show",
            s,
            "--packages",
            "--output-format",
            "json",
        ])
        .ok()
        .json()
    };
    assert_eq!(show("mir")["package_count"], 4);
    let add = show("add");
    assert_eq!(add["package_count"], 6, "{add}");
    let rows: Vec<String> = add["packages"]
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
        .collect();
    assert!(
        rows.contains(&"delta 1.0-1".to_string()) && rows.contains(&"alpha 1.0-1".to_string()),
        "{rows:?}"
    );
    let s = ctx.publish("add", "add");
    let primary = primary_names(&ctx, "add", s["version"].as_str().unwrap());
    assert!(primary.contains("packages=\"6\""), "{primary}");
    assert_eq!(primary.matches("<package ").count(), 6);
}

fn refused(ctx: &TestContext, tree_url: &str, needle: &str) -> Run {
    let state = ctx.root.join("mirrors/r.state.json");
    let before = std::fs::read(&state).unwrap();
    ctx.depot(&["mirror", "edit", "r", "--url", tree_url]).ok();
    let run = ctx.depot(&["mirror", "update", "r"]).fails(1, needle);
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "the previous state changed"
    );
    run
}

#[test]
fn bad_rpm_upstreams_are_refused_and_the_previous_state_is_kept() {
    let ctx = TestContext::new();
    let good = ctx.serve_rpm("state1", "good");
    ctx.rpm_mirror("r", &good, &[]);
    ctx.depot(&["mirror", "update", "r"]).ok();

    refused(
        &ctx,
        &ctx.serve_rpm("wrongkey", "wrongkey"),
        "does not verify",
    );

    let unsigned = ctx.serve_rpm("state1", "unsigned");
    std::fs::remove_file(ctx.www.join("unsigned/repodata/repomd.xml.asc")).unwrap();
    refused(&ctx, &unsigned, "is not signed");

    let tampered = ctx.serve_rpm("state1", "tampered-primary");
    let primary = std::fs::read_dir(ctx.www.join("tampered-primary/repodata"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("-primary.xml"))
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&primary).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    std::fs::write(&primary, bytes).unwrap();
    refused(&ctx, &tampered, "does not match the signed repomd.xml");

    let bad_rpm = ctx.serve_rpm("state2", "tampered-rpm");
    let rpm = ctx
        .www
        .join("tampered-rpm/Packages/epsilon-3.0-1.x86_64.rpm");
    let mut bytes = std::fs::read(&rpm).unwrap();
    bytes[200] ^= 0xff;
    std::fs::write(&rpm, bytes).unwrap();
    refused(&ctx, &bad_rpm, "SHA-256 mismatch");

    let truncated = ctx.serve_rpm("state2", "truncated-rpm");
    let rpm = ctx
        .www
        .join("truncated-rpm/Packages/epsilon-3.0-1.x86_64.rpm");
    let len = std::fs::metadata(&rpm).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&rpm)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    refused(&ctx, &truncated, "size mismatch");

    refused(
        &ctx,
        &ctx.serve_rpm("hostile-dotdot", "hostile-dotdot"),
        "unsafe location",
    );
    refused(
        &ctx,
        &ctx.serve_rpm("hostile-absolute", "hostile-absolute"),
        "unsafe location",
    );
    refused(
        &ctx,
        &ctx.serve_rpm("malformed", "malformed"),
        "malformed XML",
    );
    // The compressed primary matches repomd.xml; its content does not.
    let run = refused(
        &ctx,
        &ctx.serve_rpm("bad-open-checksum", "bad-open-checksum"),
        "-primary.xml.gz does not match the signed repomd.xml (open-checksum, open-size)",
    );
    assert!(
        run.stderr.contains("the uncompressed content of http://")
            && run.stderr.contains("Caused by: SHA-256 mismatch"),
        "{}",
        run.stderr
    );
    assert!(!ctx.server.requests().iter().any(|r| r.contains("escape")));
    ctx.assert_pool_consistent();
}

/// Serves a copy of `state1` at `/AS/` whose alpha package has
/// `<location href="HREF"/>`. The edited primary is served uncompressed and
/// repomd.xml lists it with its new checksum; repomd.xml is left unsigned
/// (the mirror reading it has --no-verify).
fn serve_rpm_with_alpha_href(ctx: &TestContext, as_: &str, href: &str) -> String {
    use sha2::Digest;
    let url = ctx.serve_rpm("state1", as_);
    let tree = ctx.www.join(as_);
    let repomd_path = tree.join("repodata/repomd.xml");
    let repomd = std::fs::read_to_string(&repomd_path).unwrap();
    let primary = String::from_utf8(gunzip(&tree.join(record_href(&repomd, "primary")))).unwrap();
    let original = r#"<location href="Packages/alpha-1.0-1.noarch.rpm"/>"#;
    assert!(primary.contains(original), "{primary}");
    let primary = primary.replace(original, &format!(r#"<location href="{href}"/>"#));
    std::fs::write(tree.join("repodata/primary.xml"), &primary).unwrap();
    let start = repomd.find(r#"<data type="primary">"#).unwrap();
    let end = start + repomd[start..].find("</data>").unwrap() + "</data>".len();
    let record = format!(
        r#"<data type="primary">
    <checksum type="sha256">{}</checksum>
    <location href="repodata/primary.xml"/>
    <size>{}</size>
  </data>"#,
        const_hex::encode(sha2::Sha256::digest(primary.as_bytes())),
        primary.len()
    );
    std::fs::write(
        &repomd_path,
        format!("{}{record}{}", &repomd[..start], &repomd[end..]),
    )
    .unwrap();
    std::fs::remove_file(tree.join("repodata/repomd.xml.asc")).unwrap();
    url
}

/// Regression: a location href that passes the path checks but does not
/// resolve under the repository (not a valid URL, another scheme, a
/// percent-encoded `..`) was a usage error (exit 2) or was fetched; it is
/// a failure of the update (exit 1) naming the mirror and the href.
#[test]
fn hrefs_resolving_outside_the_repository_fail_the_update_naming_mirror_and_href() {
    let ctx = TestContext::new();
    let good = ctx.serve_rpm("state1", "good");
    ctx.depot(&[
        "mirror",
        "create",
        "r",
        &good,
        "--kind",
        "rpm",
        "--no-verify",
    ])
    .ok();
    ctx.depot(&["mirror", "update", "r"]).ok();
    ctx.server.clear_log();
    for (i, href) in [
        "https:[escape/alpha-1.0-1.noarch.rpm",
        "file:etc/passwd",
        "%2e%2e/%2e%2e/escape/alpha-1.0-1.noarch.rpm",
    ]
    .into_iter()
    .enumerate()
    {
        let url = serve_rpm_with_alpha_href(&ctx, &format!("bad-href-{i}"), href);
        let run = refused(
            &ctx,
            &url,
            &format!("mirror `r`: upstream location href `{href}`"),
        );
        assert!(
            run.stderr.contains(&format!("is not a URL under {url}")),
            "{}",
            run.stderr
        );
    }
    assert!(
        !ctx.server.requests().iter().any(|r| r.contains("escape")),
        "a hostile href was requested"
    );
    ctx.assert_pool_consistent();
}

#[test]
fn verify_packages_checks_each_rpm_signature_and_keeps_the_previous_state() {
    let ctx = TestContext::new();
    let good = ctx.serve_rpm("state1", "good");
    // repomd.xml.asc made with key B; the packages are still signed by A.
    let wk = ctx.serve_rpm("wrongkey", "wk");
    let wrong = fixtures().join("rpm/keys/wrong.asc").display().to_string();

    ctx.rpm_mirror("v", &good, &["--verify-packages"]);
    let show = ctx
        .depot(&["mirror", "show", "v", "--output-format", "json"])
        .ok();
    assert_eq!(show.json()["verify_packages"], true);
    ctx.depot(&["mirror", "update", "v"]).ok();
    let cache = std::fs::read_dir(ctx.root.join("cache/rpm-verified"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let verified = std::fs::read_to_string(&cache).unwrap();
    assert_eq!(verified.lines().count(), 4, "{verified}");

    // Only repomd.xml is checked without the flag: key B passes.
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "mirror",
            "create",
            name,
            &wk,
            "--kind",
            "rpm",
            "--keyring",
            &wrong,
        ];
        args.extend(extra);
        ctx.depot(&args).ok();
    };
    create("w", &[]);
    ctx.depot(&["mirror", "update", "w"]).ok();

    // With it, key B refuses packages signed by A, and nothing is recorded.
    create("x", &["--verify-packages"]);
    let run = ctx
        .depot(&["mirror", "update", "x"])
        .fails(1, "fails its signature check");
    assert!(run.stderr.contains("does not verify"), "{}", run.stderr);
    assert!(!ctx.root.join("mirrors/x.state.json").exists());
    ctx.depot(&["snapshot", "create", "--mirror", "x"])
        .fails(1, "");

    // A keyring holding both keys verifies both.
    let both = ctx.root.join("both.gpg");
    let mut keys = std::fs::read(fixtures().join("rpm/keys/good.gpg")).unwrap();
    keys.extend(std::fs::read(fixtures().join("rpm/keys/wrong.gpg")).unwrap());
    std::fs::write(&both, keys).unwrap();
    ctx.depot(&["mirror", "edit", "x", "--keyring", both.to_str().unwrap()])
        .ok();
    ctx.depot(&["mirror", "update", "x"]).ok();

    // Usage errors: no keyring, apt mirrors, on-demand.
    let key = good_key().display().to_string();
    let cases: [(&[&str], &str); 3] = [
        (&["--kind", "rpm", "--no-verify"], ""),
        (
            &["--kind", "apt", "--suite=stable", "--keyring", &key],
            "--verify-packages",
        ),
        (
            &["--kind", "rpm", "--policy=on-demand", "--keyring", &key],
            "--verify-packages",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["mirror", "create", "y", &good, "--verify-packages"];
        args.extend(extra);
        ctx.depot(&args).fails(2, needle);
    }
}

#[test]
fn rpm_updates_retry_resume_lock_and_publish_elsewhere_like_apt() {
    let ctx = TestContext::new();
    let url = ctx.serve_rpm("state1", "up");
    ctx.rpm_mirror("r", &url, &[]);
    // A transient failure of a package and of repomd.xml is retried.
    ctx.server.fail_once("up/Packages/beta-2.0-1.x86_64.rpm");
    ctx.server.fail_once("up/repodata/repomd.xml");
    let run = ctx.depot(&["mirror", "update", "r"]).ok();
    assert!(run.stderr.contains("retrying"), "{}", run.stderr);
    let requests = ctx.server.requests();
    let beta = requests
        .iter()
        .filter(|r| r.ends_with("beta-2.0-1.x86_64.rpm"));
    assert_eq!(beta.count(), 2);

    // A second mirror of the same packages resumes from the pool: nothing
    // is downloaded again.
    ctx.rpm_mirror("again", &url, &[]);
    let run = ctx
        .depot(&["mirror", "update", "again", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(run[0]["downloaded_files"], 0);
    assert_eq!(run[0]["already_pooled"], 4);

    // An update of a mirror another process holds exits 3.
    let lock = ctx.root.join("locks/mirror-r.lock");
    assert!(lock.parent().unwrap().is_dir());
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let busy = loop {
        let run = ctx.depot(&["mirror", "update", "r"]);
        if run.code == 3 || std::time::Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(busy.code, 3, "{}", busy.stderr);
    assert!(busy.stderr.contains("busy"), "{}", busy.stderr);

    // Publishing to another root with --to.
    ctx.depot(&["snapshot", "create", "s", "--mirror", "r"])
        .ok();
    let elsewhere = ctx.dir.path().join("elsewhere");
    let to = elsewhere.display().to_string();
    let summary = ctx
        .depot(&[
            "publish",
            "s",
            "--dist",
            "el",
            "--skip-signing",
            "--to",
            &to,
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    let version = summary["version"].as_str().unwrap();
    let dev = std::fs::read_link(elsewhere.join("el/dev")).unwrap();
    assert_eq!(dev.to_str().unwrap(), version);
    assert!(elsewhere.join("el/dev/repodata/repomd.xml").is_file());
    assert!(!ctx.root.join("public/el").exists());
}

#[test]
fn xml_base_packages_are_fetched_and_published_locally() {
    let ctx = TestContext::new();
    let url = ctx.serve_rpm("xmlbase", "xmlbase");
    ctx.serve_rpm("xmlbase-packages", "xmlbase-packages");
    ctx.rpm_mirror("r", &url, &[]);
    ctx.depot(&["mirror", "update", "r"]).ok();
    assert!(
        ctx.server
            .requests()
            .iter()
            .any(|r| r.starts_with("xmlbase-packages/Packages/"))
    );
    ctx.depot(&["snapshot", "create", "s", "--mirror", "r"])
        .ok();
    let s = ctx.publish("s", "x");
    let version = s["version"].as_str().unwrap();
    let primary = primary_names(&ctx, "x", version);
    assert!(!primary.contains("xml:base"), "{primary}");
    // The primary rewritten without xml:base has checksums of its own.
    assert_repomd_checksums(&ctx.root.join("public/x").join(version));
    assert!(
        ctx.root
            .join("public/x")
            .join(version)
            .join("Packages/alpha-1.0-1.noarch.rpm")
            .is_file()
    );
}

#[test]
fn compressions_are_read_and_written() {
    let ctx = TestContext::new();
    for (tree, name) in [
        ("state1-xz", "xz"),
        ("state1-zst", "zst"),
        ("state1-bz2", "bz2"),
    ] {
        let url = ctx.serve_rpm(tree, tree);
        ctx.rpm_mirror(name, &url, &["--policy", "on-demand"]);
        ctx.depot(&["mirror", "update", name]).ok();
        ctx.depot(&["snapshot", "create", name, "--mirror", name])
            .ok();
    }
    let s = ctx
        .depot(&[
            "publish",
            "xz",
            "--dist",
            "z",
            "--skip-signing",
            "--compress",
            "zst",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(s["fetched_on_demand"], 4);
    let z = s["version"].as_str().unwrap().to_owned();
    let repomd = std::fs::read_to_string(
        ctx.root
            .join("public/z")
            .join(s["version"].as_str().unwrap())
            .join("repodata/repomd.xml"),
    )
    .unwrap();
    assert!(repomd.contains("-primary.xml.zst\""), "{repomd}");
    assert!(repomd.contains("<data type=\"group_zst\">"));

    // bz2 is read (yum-era repositories) but never written: it publishes as
    // gzip, with every record upstream had.
    let requests = ctx.server.requests();
    for t in ["primary", "filelists", "other", "updateinfo"] {
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with("state1-bz2/repodata/")
                    && r.ends_with(&format!("-{t}.xml.bz2"))),
            "{t}.xml.bz2 not fetched: {requests:?}"
        );
    }
    // (Its rpms are those of state1-xz, already fetched by that publish.)
    let s = ctx.publish("bz2", "b");
    let version = s["version"].as_str().unwrap();
    assert!(
        ctx.root
            .join("public/b")
            .join(version)
            .join("Packages/delta-1.0-1.x86_64.rpm")
            .is_file()
    );
    let primary = primary_names(&ctx, "b", version);
    assert!(primary.contains("packages=\"4\""), "{primary}");
    for name in ["alpha", "beta", "gamma", "delta"] {
        assert!(
            primary.contains(&format!("<name>{name}</name>")),
            "{primary}"
        );
    }
    let repomd = std::fs::read_to_string(
        ctx.root
            .join("public/b")
            .join(version)
            .join("repodata/repomd.xml"),
    )
    .unwrap();
    for t in ["filelists", "other", "updateinfo", "group", "group_gz"] {
        assert!(
            repomd.contains(&format!("<data type=\"{t}\">")),
            "{t} missing:\n{repomd}"
        );
    }
    assert_repomd_checksums(&ctx.root.join("public/b").join(version));
    assert_repomd_checksums(&ctx.root.join("public/z").join(&z));
}

/// Every record of a published `repomd.xml` names its file's SHA-256 and
/// size, and the uncompressed text's (open-checksum, open-size).
fn assert_repomd_checksums(version_dir: &std::path::Path) {
    use depot::digest::Sha256Digest;
    let repomd = std::fs::read_to_string(version_dir.join("repodata/repomd.xml")).unwrap();
    let records = depot::formats::rpm::parse_repomd(&repomd).unwrap();
    assert!(records.len() >= 3, "{repomd}");
    for r in records {
        let bytes = std::fs::read(version_dir.join(&r.href)).unwrap();
        assert_eq!(Sha256Digest::of(&bytes).to_hex(), r.checksum, "{}", r.href);
        assert_eq!(Some(bytes.len() as u64), r.size, "{}", r.href);
        let open = depot::formats::compress::decompress_named(&r.href, &bytes).unwrap();
        assert_eq!(
            Some(Sha256Digest::of(&open).to_hex()),
            r.open_checksum,
            "{}",
            r.href
        );
        assert_eq!(Some(open.len() as u64), r.open_size, "{}", r.href);
    }
}

/// The `<location href>` of a repomd.xml record.
fn record_href(repomd: &str, mdtype: &str) -> String {
    let start = repomd
        .find(&format!("<data type=\"{mdtype}\">"))
        .unwrap_or_else(|| panic!("no {mdtype} record:\n{repomd}"));
    let block = &repomd[start..start + repomd[start..].find("</data>").unwrap()];
    let href = &block[block.find("<location href=\"").unwrap() + 16..];
    href[..href.find('"').unwrap()].to_owned()
}

fn gunzip(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out).unwrap();
    out
}

#[test]
fn modules_metadata_is_carried_from_mirror_to_publish() {
    let ctx = TestContext::new();
    let url = ctx.serve_rpm("modules", "modules");
    ctx.rpm_mirror("m", &url, &["--policy", "on-demand"]);
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.depot(&["snapshot", "create", "m", "--mirror", "m"])
        .ok();
    let s = ctx.publish("m", "mod");
    let published = ctx
        .root
        .join("public/mod")
        .join(s["version"].as_str().unwrap());

    let upstream = fixtures().join("rpm/modules");
    let upstream_repomd = std::fs::read_to_string(upstream.join("repodata/repomd.xml")).unwrap();
    let upstream_yaml = gunzip(&upstream.join(record_href(&upstream_repomd, "modules")));
    assert!(upstream_yaml.starts_with(b"---\ndocument: modulemd\n"));

    let repomd = std::fs::read_to_string(published.join("repodata/repomd.xml")).unwrap();
    let href = record_href(&repomd, "modules");
    assert!(href.ends_with("-modules.yaml.gz"), "{href}");
    assert_eq!(
        String::from_utf8(gunzip(&published.join(&href))).unwrap(),
        String::from_utf8(upstream_yaml).unwrap()
    );

    // dnf reads the carried-over module. (Its packages are hidden by
    // modular filtering, so nothing is installed from this repository.)
    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    let mut dnf = Dnf::new(&ctx.server.url("public/mod/dev"), &[&good_key()]);
    dnf.repo_opts.push("repo_gpgcheck=0".into());
    let modules = dnf.run(&["module", "list"]).ok();
    assert!(
        modules.stdout.contains("depot test fixture module"),
        "{}",
        modules.stdout
    );
}

#[test]
fn rpm_filter_follows_requires_provides_and_file_dependencies() {
    let ctx = TestContext::new();
    let url = ctx.serve_rpm("state1", "up");
    // beta requires alpha and /usr/share/doc/alpha/README (a file only
    // filelists lists).
    ctx.rpm_mirror("r", &url, &["--filter", "beta", "--with-deps"]);
    let run = ctx
        .depot(&["mirror", "update", "r", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(run[0]["packages"], 2, "{run}");
    assert!(run[0].get("unsatisfied").is_none(), "{run}");
    ctx.depot(&["snapshot", "create", "s", "--mirror", "r"])
        .ok();
    ctx.depot(&["snapshot", "verify", "s"]).ok();
    let rows = ctx
        .depot(&[
            "snapshot",
            "search",
            "s",
            "Name (% *)",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    // The filtered metadata publishes and is consistent.
    let s = ctx.publish("s", "f");
    let primary = primary_names(&ctx, "f", s["version"].as_str().unwrap());
    assert!(primary.contains("packages=\"2\""));
    assert!(
        !ctx.root
            .join("public/f")
            .join(s["version"].as_str().unwrap())
            .join("Packages/delta-1.0-1.x86_64.rpm")
            .exists()
    );
}

/// The `metadata` entry of `mdtype` in a snapshot's or release's manifest.
fn manifest_file(ctx: &TestContext, path: &str, mdtype: &str) -> serde_json::Value {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.root.join(path)).unwrap()).unwrap();
    m["content"]["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["mdtype"] == mdtype)
        .unwrap_or_else(|| panic!("no {mdtype} in {path}: {m:#}"))
        .clone()
}

/// A filtered snapshot and a release of rpm states keep selections of the
/// mirrored repodata blobs (no new metadata blob), read packages through
/// the cached catalog of each primary blob, publish documents whose
/// checksums hold and from which dnf installs, and keep working after
/// gc, which keeps the selections they name.
#[test]
fn rpm_filters_and_releases_keep_selections_of_the_mirrored_repodata() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    ctx.rpm_snapshot("s");
    ctx.depot(&["snapshot", "filter", "s", "ab", "alpha | beta"])
        .ok();
    ctx.depot(&["snapshot", "filter", "s", "g", "gamma"]).ok();
    for mdtype in ["primary", "filelists", "other"] {
        let whole = manifest_file(&ctx, "snapshots/s.json", mdtype);
        let kept = manifest_file(&ctx, "snapshots/ab.json", mdtype);
        assert!(kept.get("blob").is_none(), "{kept}");
        let parts = kept["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 1, "{kept}");
        assert_eq!(parts[0]["blob"], whole["blob"], "{kept}");
        assert!(parts[0]["select"].is_string(), "{kept}");
    }
    // Advisories and comps are carried whole.
    assert_eq!(
        manifest_file(&ctx, "snapshots/ab.json", "updateinfo"),
        manifest_file(&ctx, "snapshots/s.json", "updateinfo")
    );
    let primary = manifest_file(&ctx, "snapshots/s.json", "primary")["blob"]
        .as_str()
        .unwrap()
        .to_owned();
    // `<primary>.<filelists 64 bits><other 64 bits>.rpm`
    let dir = ctx.root.join("cache/catalog").join(&primary[..2]);
    let cached: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{primary}.")) && n.ends_with(".rpm"))
        .collect();
    assert_eq!(cached.len(), 1, "no cached catalog in {}", dir.display());

    // A release of the two filtered snapshots: one part of each.
    ctx.depot(&["release", "create", "rel", "--from", "ab", "--from", "g"])
        .ok();
    let kept = manifest_file(&ctx, "releases/rel.json", "filelists");
    assert_eq!(kept["parts"].as_array().unwrap().len(), 2, "{kept}");
    let names = |snapshot: &str| -> Vec<String> {
        let rows = ctx
            .depot(&[
                "snapshot",
                "search",
                snapshot,
                "Name (% *)",
                "--output-format",
                "json",
            ])
            .ok()
            .json();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("ab"), ["alpha", "beta"]);
    assert_eq!(names("rel"), ["alpha", "beta", "gamma"]);

    // gc keeps every selection; the release still publishes, consistent.
    ctx.depot(&["mirror", "drop", "r"]).ok();
    ctx.depot(&["snapshot", "drop", "s"]).ok();
    ctx.depot(&["gc"]).ok();
    ctx.depot(&["check", "--full"]).ok();
    let version = ctx.publish_signed(&gpg, "rel", "el", &[])["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_repomd_checksums(&ctx.root.join("public/el").join(&version));
    let text = primary_names(&ctx, "el", &version);
    assert!(text.contains("packages=\"3\""), "{text}");
    assert!(!text.contains("<name>delta</name>"), "{text}");

    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    let dnf = Dnf::new(
        &ctx.server.url("public/el/dev"),
        &[&gpg.public_key, &good_key()],
    );
    let q = dnf.query_all("%{name}");
    let mut lines: Vec<&str> = q.lines().collect();
    lines.sort();
    assert_eq!(lines, ["alpha", "beta", "gamma"]);
    // beta needs alpha and a file only filelists lists.
    dnf.run(&["install", "beta"]).ok();
    assert!(dnf.installed("usr/share/doc/alpha/README"));
    ctx.depot(&["check", "--full"]).ok();
}

/// A filtered rpm snapshot whose selection blob is gone: `check` names
/// the missing selection, and publishing it fails with a clear error and
/// leaves no version behind; the whole snapshot still publishes.
#[test]
fn an_rpm_selection_gone_from_the_pool_is_reported_not_published() {
    let ctx = TestContext::new();
    ctx.rpm_snapshot("s");
    ctx.depot(&["snapshot", "filter", "s", "ab", "alpha | beta"])
        .ok();
    let select = manifest_file(&ctx, "snapshots/ab.json", "filelists")["parts"][0]["select"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(ctx.root.join("pool").join(&select[..2]).join(&select)).unwrap();
    let check = ctx.depot(&["check"]).fails(1, "problem");
    assert!(
        check.stdout.contains(&format!(
            "snapshot `ab`: selection blob {select} is missing"
        )),
        "{}",
        check.stdout
    );
    let publish = ctx
        .depot(&["publish", "ab", "--dist", "f", "--skip-signing"])
        .fails(1, "distribution `f`");
    assert!(publish.stderr.contains(&select), "{}", publish.stderr);
    assert!(!ctx.root.join("public/f/dev").exists());
    ctx.publish("s", "whole");
}
