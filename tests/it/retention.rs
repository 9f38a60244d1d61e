//! Retention: prune, gc and check over real nights of a mirror, with real
//! apt-get reading what is left, gc racing writers, and `kill -9`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Apt, TestContext};

fn sha256_hex(bytes: &[u8]) -> String {
    const_hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds (once) `NAME_VERSION_amd64.deb` with dpkg-deb in `debs`.
pub(crate) fn deb(debs: &Path, name: &str, version: &str) -> PathBuf {
    let out = debs.join(format!("{name}_{version}_amd64.deb"));
    if out.is_file() {
        return out;
    }
    let tree = debs.join(format!("tree-{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join(format!("usr/share/doc/{name}"))).unwrap();
    std::fs::write(
        tree.join(format!("usr/share/doc/{name}/README")),
        format!("{name} {version}\n"),
    )
    .unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: t <t@depot.invalid>\nDescription: {name} for the retention tests\n"
        ),
    )
    .unwrap();
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&tree)
        .arg(&out));
    out
}

/// Writes an unsigned apt repository (suite `stable`, `main`, `amd64`)
/// holding `files` at `dir`, replacing what was there.
pub(crate) fn write_repo(dir: &Path, files: &[PathBuf]) {
    let _ = std::fs::remove_dir_all(dir);
    let pool = dir.join("pool/main");
    let bin = dir.join("dists/stable/main/binary-amd64");
    std::fs::create_dir_all(&pool).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    for f in files {
        std::fs::copy(f, pool.join(f.file_name().unwrap())).unwrap();
    }
    let packages = Command::new("apt-ftparchive")
        .current_dir(dir)
        .args(["packages", "pool"])
        .output()
        .unwrap();
    assert!(packages.status.success());
    std::fs::write(bin.join("Packages"), &packages.stdout).unwrap();
    release(dir);
}

/// Writes `dists/stable/Release` for the indices under `dir/dists/stable`.
fn release(dir: &Path) {
    let out = Command::new("apt-ftparchive")
        .current_dir(dir)
        .args([
            "-o",
            "APT::FTPArchive::Release::Suite=stable",
            "-o",
            "APT::FTPArchive::Release::Codename=stable",
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "release",
            "dists/stable",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(dir.join("dists/stable/Release"), &out.stdout).unwrap();
}

/// The packages upstream has on night `n`: `base` never changes, `up` is
/// upgraded every night, `newN` is added on night N and removed two
/// nights later.
pub(crate) fn night_packages(debs: &Path, n: u32) -> Vec<PathBuf> {
    let mut files = vec![deb(debs, "base", "1.0"), deb(debs, "up", &format!("1.{n}"))];
    for k in n.saturating_sub(1).max(1)..=n {
        files.push(deb(debs, &format!("new{k}"), "1.0"));
    }
    files
}

fn at(ctx: &mut TestContext, time: &str) {
    ctx.env.insert("DEPOT_NOW".into(), time.into());
}

fn names(ctx: &TestContext, what: &str) -> BTreeSet<String> {
    ctx.depot(&[what, "list", "--output-format", "json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn versions(ctx: &TestContext, dist: &str) -> BTreeSet<String> {
    ctx.depot(&["dist", "show", dist, "--output-format", "json"])
        .ok()
        .json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
}

/// Every blob the root's states and manifests reference, worked out here
/// from their JSON and the index texts (independently of depot's code).
fn referenced_blobs(root: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let pool = |hex: &str| root.join("pool").join(&hex[..2]).join(hex);
    let mut files = Vec::new();
    for (dir, suffix) in [
        ("mirrors", ".state.json"),
        ("repos", ".state.json"),
        ("snapshots", ".json"),
        ("releases", ".json"),
    ] {
        for e in std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix) && !name.starts_with('.') {
                files.push(e.path());
            }
        }
    }
    for f in files {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        for p in v["packages"].as_array().into_iter().flatten() {
            out.insert(p["sha256"].as_str().unwrap().to_owned());
        }
        for index in v["content"]["indices"].as_array().into_iter().flatten() {
            for part in index["parts"].as_array().unwrap() {
                let blob = part["blob"].as_str().unwrap();
                out.insert(blob.to_owned());
                let text = std::fs::read_to_string(pool(blob)).unwrap();
                let runs: Vec<&str> = match part["select"].as_str() {
                    None => vec![&text],
                    Some(sel) => {
                        out.insert(sel.to_owned());
                        std::fs::read(pool(sel))
                            .unwrap()
                            .chunks(8)
                            .map(|c| {
                                let start = u32::from_le_bytes(c[..4].try_into().unwrap());
                                let end = u32::from_le_bytes(c[4..].try_into().unwrap());
                                &text[start as usize..end as usize]
                            })
                            .collect()
                    }
                };
                for run in runs {
                    for line in run.lines() {
                        if let Some(sha) = line.strip_prefix("SHA256: ") {
                            out.insert(sha.trim().to_owned());
                        }
                    }
                }
            }
        }
    }
    out
}

fn pool_blobs(root: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for d in std::fs::read_dir(root.join("pool")).unwrap().flatten() {
        for e in std::fs::read_dir(d.path()).unwrap().flatten() {
            out.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// apt-get update and download of `packages` from `url`, byte-compared
/// with the files upstream served.
pub(crate) fn apt_serves(url: &str, packages: &[(&str, &Path)]) {
    let apt = Apt::new(&format!("deb [trusted=yes] {url} stable main"));
    let update = apt.run(&["update"]).ok();
    assert!(
        !update.stdout.contains("E:") && !update.stderr.contains("E:"),
        "{url}: {}{}",
        update.stdout,
        update.stderr
    );
    for (name, upstream) in packages {
        apt.run(&["download", name]).ok();
        let got = apt
            .dir
            .path()
            .join("dl")
            .join(upstream.file_name().unwrap());
        assert_eq!(
            std::fs::read(&got).unwrap_or_else(|e| panic!("{url}: {name}: {e}")),
            std::fs::read(upstream).unwrap(),
            "{url}: {name} differs from upstream"
        );
    }
}

#[test]
fn ten_nights_pruned_and_collected_keep_exactly_what_the_rules_say_and_still_serve() {
    let mut ctx = TestContext::new();
    let debs = ctx.dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let up = ctx.www.join("up");
    write_repo(&up, &night_packages(&debs, 1));
    let url = ctx.server.url("up/");
    ctx.apt_mirror("m", &url, &["--no-verify"]);
    let mut version_of = HashMap::new();
    for n in 1..=10u32 {
        let time = format!("2026-11-{:02}T02:00:00Z", 10 + n);
        at(&mut ctx, &time);
        write_repo(&up, &night_packages(&debs, n));
        ctx.depot(&["mirror", "update", "m"]).ok();
        let snap = format!("m-202611{:02}T020000Z", 10 + n);
        let rel = format!("nightly-202611{:02}T020000Z", 10 + n);
        ctx.depot(&["snapshot", "create", "--mirror", "m"]).ok();
        ctx.depot(&["release", "create", &rel, "--from", &snap])
            .ok();
        if n == 3 {
            // A name a person chose: never pruned.
            ctx.depot(&["snapshot", "create", "ga-2026.1", "--mirror", "m"])
                .ok();
        }
        let v = ctx.published_version(&rel, "d");
        if n % 2 == 0 && n <= 8 {
            ctx.depot(&["promote", "d", &v, "--to", "release"]).ok();
        }
        version_of.insert(n, v);
    }
    let v = |n: u32| version_of[&n].clone();
    // release serves night 8, dev night 10; nights 2, 4, 6, 8 were released.

    at(&mut ctx, "2026-11-20T03:00:00Z");
    let dry = ctx
        .depot(&[
            "prune",
            "--keep-last",
            "3",
            "--keep-released",
            "2",
            "--dry-run",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    let would: BTreeSet<String> = dry["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for n in 1..=7 {
        expected.insert(format!("m-202611{:02}T020000Z", 10 + n));
        expected.insert(format!("nightly-202611{:02}T020000Z", 10 + n));
    }
    for n in [1, 2, 3, 4, 5, 7] {
        expected.insert(format!("d/{}", v(n)));
    }
    assert_eq!(would, expected);
    assert!(dry["bytes"].as_u64().unwrap() > 0, "{dry}");
    let text = ctx
        .depot(&[
            "prune",
            "--keep-last",
            "3",
            "--keep-released",
            "2",
            "--dry-run",
        ])
        .ok()
        .stdout;
    assert!(text.contains("would drop"), "{text}");
    assert!(text.contains("served by release"), "{text}");
    // A dry run changed nothing.
    assert_eq!(versions(&ctx, "d").len(), 10);
    assert_eq!(names(&ctx, "snapshot").len(), 11);

    ctx.depot(&["prune", "--keep-last", "3", "--keep-released", "2"])
        .ok();
    let kept_snaps: BTreeSet<String> = [18, 19, 20]
        .iter()
        .map(|d| format!("m-202611{d}T020000Z"))
        .chain(["ga-2026.1".to_owned()])
        .collect();
    assert_eq!(names(&ctx, "snapshot"), kept_snaps);
    let kept_rels: BTreeSet<String> = [18, 19, 20]
        .iter()
        .map(|d| format!("nightly-202611{d}T020000Z"))
        .collect();
    assert_eq!(names(&ctx, "release"), kept_rels);
    let kept_versions: BTreeSet<String> = [6, 8, 9, 10].into_iter().map(v).collect();
    assert_eq!(versions(&ctx, "d"), kept_versions);
    let public = ctx.root.join("public/d");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&public)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".pool-"))
        .collect();
    let mut want = kept_versions.clone();
    want.extend(["dev".to_owned(), "release".to_owned()]);
    assert_eq!(on_disk, want, "nothing else (no half-dropped tree) is left");
    let audit = std::fs::read_to_string(ctx.root.join("audit.log")).unwrap();
    assert_eq!(audit.matches(r#""action":"drop""#).count(), 6, "{audit}");

    let gc = ctx.depot(&["gc", "--output-format", "json"]).ok().json();
    assert!(gc["blobs"].as_u64().unwrap() > 0, "{gc}");
    // The dropped nights' packages left the distribution's generation.
    assert!(gc["shared_files"].as_u64().unwrap() > 0, "{gc}");
    assert_generations_exact(&public);
    assert_eq!(pool_blobs(&ctx.root), referenced_blobs(&ctx.root));
    ctx.assert_pool_consistent();
    // A second gc finds nothing.
    let again = ctx.depot(&["gc", "--output-format", "json"]).ok().json();
    assert_eq!(again["blobs"], 0, "{again}");
    assert_eq!(again["shared_files"], 0, "{again}");

    // Every remaining version and stage serves what upstream served that night.
    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    for (name, n) in [
        (v(6), 6),
        (v(8), 8),
        (v(9), 9),
        (v(10), 10),
        ("dev".into(), 10),
        ("release".into(), 8),
    ] {
        let up_deb = deb(&debs, "up", &format!("1.{n}"));
        let new_deb = deb(&debs, &format!("new{n}"), "1.0");
        let base_deb = deb(&debs, "base", "1.0");
        let new_name = format!("new{n}");
        apt_serves(
            &ctx.server.url(&format!("public/d/{name}")),
            &[("up", &up_deb), (&new_name, &new_deb), ("base", &base_deb)],
        );
    }
    let check = ctx.depot(&["check", "--full"]).ok();
    assert!(check.stdout.contains(": 0 problems"), "{}", check.stdout);

    // The person-named snapshot and served versions survive any prune.
    ctx.depot(&["prune", "--keep-last", "0", "--keep-released", "0"])
        .ok();
    assert_eq!(
        names(&ctx, "snapshot"),
        ["ga-2026.1".to_owned()].into_iter().collect()
    );
    assert_eq!(versions(&ctx, "d"), [v(8), v(10)].into_iter().collect());
    ctx.depot(&["gc"]).ok();
    ctx.depot(&["check", "--full"]).ok();
    assert_eq!(pool_blobs(&ctx.root), referenced_blobs(&ctx.root));
}

#[test]
fn drops_refuse_what_a_stage_serves_and_a_dropped_snapshot_breaks_nothing_made_from_it() {
    let mut ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    ctx.depot(&["release", "create", "r", "--from", "s"]).ok();
    at(&mut ctx, "2026-11-20T10:00:00Z");
    let v1 = ctx.published_version("s", "d");
    at(&mut ctx, "2026-11-21T10:00:00Z");
    let v2 = ctx.published_version("r", "d");
    ctx.depot(&["promote", "d", &v1, "--to", "release"]).ok();

    // s is the source of what release serves, r of what dev serves.
    ctx.depot(&["snapshot", "drop", "s"]).fails(3, "serves");
    ctx.depot(&["release", "drop", "r"]).fails(3, "d/dev");
    ctx.depot(&["dist", "drop", "d", &v1]).fails(3, "release");
    ctx.depot(&["dist", "drop", "d", &v2]).fails(3, "dev");

    // Once nothing serves them, they go; the mirror moves on and gc runs.
    at(&mut ctx, "2026-11-22T10:00:00Z");
    ctx.depot(&["snapshot", "create", "s2", "--mirror", "m"])
        .ok();
    let v3 = ctx.published_version("s2", "d");
    ctx.depot(&["promote", "d", &v3, "--to", "release"]).ok();
    ctx.depot(&["snapshot", "drop", "s"]).ok();
    // The release made from s still publishes, after gc, and so does v1.
    ctx.depot(&["gc"]).ok();
    at(&mut ctx, "2026-11-23T10:00:00Z");
    ctx.publish("r", "d");
    ctx.depot(&["check", "--full"]).ok();
    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    let alpha =
        crate::support::fixtures().join("apt/state1/pool/main/a/alpha/alpha_1.0-1_amd64.deb");
    apt_serves(
        &ctx.server.url(&format!("public/d/{v1}")),
        &[("alpha", &alpha)],
    );
    ctx.depot(&["dist", "drop", "d", &v1]).ok();
    assert!(!ctx.root.join("public/d").join(&v1).exists());
}

#[test]
fn a_copy_of_the_root_prunes_its_own_published_versions_not_the_originals() {
    let mut ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    let mut published = Vec::new();
    for day in ["2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z"] {
        at(&mut ctx, day);
        published.push(ctx.published_version("s", "d"));
    }
    // The distribution's file names its publish root inside the data
    // root relative to it, not by the original's absolute path.
    let saved = std::fs::read_to_string(ctx.root.join("dists/d/dist.json")).unwrap();
    assert!(
        !saved.contains(ctx.root.to_str().unwrap()),
        "dist.json names the root's own path: {saved}"
    );
    let original = ctx.root.clone();
    let copy = ctx.dir.path().join("copy");
    run(Command::new("cp").arg("-a").arg(&original).arg(&copy));
    ctx.root = copy.clone();
    at(&mut ctx, "2026-12-01T10:00:00Z");
    ctx.depot(&["prune", "--dist", "d", "--keep-last", "1"])
        .ok();
    ctx.depot(&["gc"]).ok();
    let (old, new) = (&published[0], &published[1]);
    assert!(!copy.join("public/d").join(old).exists());
    assert!(copy.join("public/d").join(new).is_dir());
    ctx.depot(&["check", "--full"]).ok();
    // The original still has and serves both.
    ctx.root = original.clone();
    assert!(original.join("public/d").join(old).is_dir());
    assert_eq!(versions(&ctx, "d"), published.iter().cloned().collect());
    ctx.depot(&["check", "--full"]).ok();
}

#[test]
fn check_names_each_kind_of_damage() {
    let ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    let v = ctx.published_version("s", "d");
    let clean = ctx.depot(&["check", "--full"]).ok();
    assert!(clean.stdout.contains(": 0 problems"), "{}", clean.stdout);

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.root.join("snapshots/s.json")).unwrap()).unwrap();
    let index = state["content"]["indices"][0]["parts"][0]["blob"]
        .as_str()
        .unwrap()
        .to_owned();
    let text =
        std::fs::read_to_string(ctx.root.join("pool").join(&index[..2]).join(&index)).unwrap();
    let shas: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("SHA256: "))
        .map(str::to_owned)
        .collect();
    let blob = |hex: &str| ctx.root.join("pool").join(&hex[..2]).join(hex);
    // A deleted blob (the published tree keeps its own link).
    std::fs::remove_file(blob(&shas[0])).unwrap();
    // A corrupted blob, replaced rather than written through the link.
    std::fs::remove_file(blob(&shas[1])).unwrap();
    std::fs::write(blob(&shas[1]), b"not what it was").unwrap();
    // A truncated published package, and a missing index.
    let tree = ctx.root.join("public/d").join(&v);
    let published = tree.join("pool/main/b/beta_2.0-1_amd64.deb");
    let bytes = std::fs::read(&published).unwrap();
    std::fs::remove_file(&published).unwrap();
    std::fs::write(&published, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(tree.join("dists/stable/main/binary-amd64/Packages.gz")).unwrap();

    let quick = ctx.depot(&["check"]).fails(1, "problem");
    for needle in [
        format!("missing blob: snapshot `s`: package blob {}", shas[0]),
        format!("package size: d/{v}: pool/main/b/beta_2.0-1_amd64.deb has"),
        format!(
            "missing index: d/{v}: dists/stable/main/binary-amd64/Packages.gz is listed but missing"
        ),
    ] {
        assert!(quick.stdout.contains(&needle), "{needle}\n{}", quick.stdout);
    }
    assert!(!quick.stdout.contains("corrupt blob"), "{}", quick.stdout);
    let full = ctx
        .depot(&["check", "--full", "--output-format", "json"])
        .fails(1, "problem")
        .json();
    let kinds: BTreeSet<&str> = full["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    for k in [
        "missing-blob",
        "corrupt-blob",
        "package-size",
        "missing-index",
    ] {
        assert!(kinds.contains(k), "{k}: {full}");
    }
    let corrupt = full["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "corrupt-blob")
        .unwrap();
    assert_eq!(corrupt["subject"], format!("blob {}", shas[1]));
    // check is read-only: the damage is still there.
    assert!(!blob(&shas[0]).exists());
    assert_eq!(std::fs::read(blob(&shas[1])).unwrap(), b"not what it was");
}

#[test]
fn check_calls_a_killed_drop_interrupted_not_damaged_and_gc_finishes_it() {
    let mut ctx = TestContext::new();
    ctx.apt_snapshot("m", "s");
    at(&mut ctx, "2026-11-10T02:00:00Z");
    let old = ctx.published_version("s", "d");
    at(&mut ctx, "2026-11-11T02:00:00Z");
    ctx.publish("s", "d");
    // What `dist drop` leaves when killed between its rename aside and the
    // removal of the record (kill-anywhere hit this window).
    let public = ctx.root.join("public/d");
    std::fs::rename(public.join(&old), public.join(format!(".{old}.dropping"))).unwrap();
    let run = ctx.depot(&["check", "--full"]).ok();
    assert!(
        run.stdout
            .contains(&format!("interrupted drop: d/{old}: its tree is aside")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(": 0 problems"), "{}", run.stdout);
    let json = ctx.depot(&["check", "--output-format", "json"]).ok().json();
    assert_eq!(
        json["interrupted_drops"],
        serde_json::json!([format!("d/{old}")])
    );
    // A tree missing without being aside is still damage.
    std::fs::rename(
        public.join(format!(".{old}.dropping")),
        ctx.root.join("elsewhere"),
    )
    .unwrap();
    let damaged = ctx.depot(&["check"]).fails(1, "problem");
    assert!(
        damaged
            .stdout
            .contains(&format!("missing version: d/{old}")),
        "{}",
        damaged.stdout
    );
    std::fs::rename(
        ctx.root.join("elsewhere"),
        public.join(format!(".{old}.dropping")),
    )
    .unwrap();
    // The next gc finishes the drop: the record goes, and so does the tree.
    ctx.depot(&["gc"]).ok();
    assert!(!versions(&ctx, "d").contains(&old));
    assert!(!public.join(format!(".{old}.dropping")).exists());
    let run = ctx.depot(&["check", "--full"]).ok();
    assert!(!run.stdout.contains("interrupted"), "{}", run.stdout);
}

/// A night of `count` fake package files (their content does not matter
/// to depot), with a hand-written Packages index; the first 50 change
/// every night.
fn big_repo(dir: &Path, night: u32, count: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let pool = dir.join("pool/main");
    let bin = dir.join("dists/stable/main/binary-amd64");
    std::fs::create_dir_all(&pool).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let mut packages = String::new();
    for i in 0..count {
        let v = if i < 50 { night } else { 1 };
        let body = format!("package p{i} of night {v}\n");
        let file = format!("p{i}_{v}.0_amd64.deb");
        std::fs::write(pool.join(&file), &body).unwrap();
        packages.push_str(&format!(
            "Package: p{i}\nVersion: {v}.0\nArchitecture: amd64\nFilename: pool/main/{file}\nSize: {}\nSHA256: {}\nDescription: p{i}\n\n",
            body.len(),
            sha256_hex(body.as_bytes())
        ));
    }
    std::fs::write(bin.join("Packages"), packages).unwrap();
    release(dir);
}

#[test]
fn kill_9_during_gc_and_during_a_version_drop_loses_nothing_referenced() {
    let mut ctx = TestContext::new();
    let up = ctx.www.join("up");
    let url = ctx.server.url("up/");
    big_repo(&up, 1, 2000);
    ctx.apt_mirror("m", &url, &["--no-verify"]);
    let mut versions_made = Vec::new();
    for night in 1..=4u32 {
        at(&mut ctx, &format!("2026-11-{:02}T02:00:00Z", 10 + night));
        big_repo(&up, night, 2000);
        ctx.depot(&["mirror", "update", "m"]).ok();
        ctx.depot(&["snapshot", "create", "--mirror", "m"]).ok();
        let snap = format!("m-202611{:02}T020000Z", 10 + night);
        versions_made.push(ctx.published_version(&snap, "d"));
    }
    let public = ctx.root.join("public/d");
    // Drop the three older versions, each killed at a different moment.
    for (i, v) in versions_made[..3].iter().enumerate() {
        let mut child = ctx
            .command()
            .args(["dist", "drop", "d", v])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + 15 * i as u64));
        let _ = child.kill();
        let _ = child.wait();
        // The version is whole or gone from its path, never half there.
        if public.join(v).exists() {
            let count = walk_count(&public.join(v));
            assert!(count >= 2000, "{v}: {count} files");
        }
        // The stage still serves a complete version.
        let dev = std::fs::read_link(public.join("dev")).unwrap();
        assert_eq!(dev.to_str().unwrap(), versions_made[3]);
        assert!(walk_count(&public.join("dev/")) >= 2000);
    }
    // Drop the older snapshots, then gc, killed at moments of its sweep.
    for night in 1..=3 {
        ctx.depot(&[
            "snapshot",
            "drop",
            &format!("m-202611{:02}T020000Z", 10 + night),
        ])
        .ok();
    }
    let mut killed = 0;
    for delay in [5u64, 20, 40, 80, 150] {
        let mut child = ctx
            .command()
            .args(["gc"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed += usize::from(status.code().is_none());
        let pool = pool_blobs(&ctx.root);
        for b in referenced_blobs(&ctx.root) {
            assert!(
                pool.contains(&b),
                "referenced blob {b} lost after kill at {delay} ms"
            );
        }
    }
    assert!(killed > 0, "gc always finished before the kill");
    // The reruns finish the job: interrupted drops, then the garbage.
    ctx.depot(&["prune", "--dist", "d", "--keep-last", "1"])
        .ok();
    ctx.depot(&["gc"]).ok();
    assert_eq!(
        versions(&ctx, "d"),
        [versions_made[3].clone()].into_iter().collect()
    );
    let left: Vec<String> = std::fs::read_dir(&public)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".pool-"))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_generations_exact(&public);
    assert_eq!(pool_blobs(&ctx.root), referenced_blobs(&ctx.root));
    ctx.depot(&["check", "--full"]).ok();
}

/// After gc, the generations of the distribution folder `public` are
/// exactly those its versions use, each holding exactly the package files
/// their lists name.
pub(crate) fn assert_generations_exact(public: &Path) {
    let mut want: std::collections::BTreeMap<PathBuf, BTreeSet<PathBuf>> = Default::default();
    for e in std::fs::read_dir(public).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || e.path().is_symlink() {
            continue;
        }
        let tree = crate::support::VersionTree::read(&e.path());
        let generation = tree
            .generation
            .expect("a version of this layout has a list");
        let files = want.entry(generation.clone()).or_default();
        for (rel, path) in &tree.files {
            if tree
                .shared
                .iter()
                .any(|s| rel.starts_with(&format!("{s}/")))
            {
                files.insert(path.clone());
            }
        }
    }
    let mut have: std::collections::BTreeMap<PathBuf, BTreeSet<PathBuf>> = Default::default();
    for e in std::fs::read_dir(public).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with(".pool-") {
            let files = have.entry(e.path()).or_default();
            let mut stack = vec![e.path()];
            while let Some(d) = stack.pop() {
                for f in std::fs::read_dir(&d).unwrap().flatten() {
                    if f.file_type().unwrap().is_dir() {
                        stack.push(f.path());
                    } else {
                        files.insert(f.path());
                    }
                }
            }
        }
    }
    assert_eq!(have, want);
}

/// How many files a reader of the version in `dir` gets.
fn walk_count(dir: &Path) -> usize {
    crate::support::VersionTree::read(dir).files.len()
}

/// An upstream that can move: three states of nights' packages (built in
/// `debs`) served at `/state1/` … `/state3/`, and `/up/`, a symlink to the
/// first that a test re-points. Returns `debs`, the states and the link.
pub(crate) fn moving_upstream(ctx: &TestContext) -> (PathBuf, Vec<PathBuf>, PathBuf) {
    let debs = ctx.dir.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let states: Vec<PathBuf> = (1..=3)
        .map(|n| {
            let dir = ctx.www.join(format!("state{n}"));
            write_repo(&dir, &night_packages(&debs, n));
            dir
        })
        .collect();
    let up = ctx.www.join("up");
    std::os::unix::fs::symlink(&states[0], &up).unwrap();
    (debs, states, up)
}

/// The gc race: `rounds` rounds of gc while mirror updates (cycling
/// through upstream states, so that garbage blobs come back), repo adds,
/// snapshots, drops and publishes run in other processes. Returns gc's
/// rounds.
fn race(ctx: &mut TestContext, rounds: usize) -> usize {
    let (debs, states, up) = moving_upstream(ctx);
    let url = ctx.server.url("up/");
    ctx.apt_mirror("m", &url, &["--no-verify"]);
    ctx.depot(&["mirror", "update", "m"]).ok();
    ctx.depot(&["repo", "create", "r", "--kind", "apt", "--arch", "amd64"])
        .ok();
    let repo_debs: Vec<PathBuf> = (0..rounds)
        .map(|i| deb(&debs, &format!("ci{}", i % 4), &format!("1.{i}")))
        .collect();
    ctx.env.remove("DEPOT_NOW");
    let ctx = &*ctx;
    let done = std::sync::atomic::AtomicBool::new(false);
    let gc_rounds = std::sync::atomic::AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(240 + 10 * rounds as u64);
    std::thread::scope(|s| {
        let mirror = s.spawn(|| {
            for i in 0..rounds {
                let tmp = ctx.www.join("up.tmp");
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(&states[(i + 1) % 3], &tmp).unwrap();
                std::fs::rename(&tmp, &up).unwrap();
                ctx.depot(&["mirror", "update", "m"]).ok();
                let name = format!("ms{i}");
                ctx.depot(&["snapshot", "create", &name, "--mirror", "m"])
                    .ok();
                ctx.depot(&["publish", &name, "--dist", "dm", "--skip-signing"])
                    .ok();
                if i >= 2 {
                    // Garbage for gc: the blobs come back two rounds on.
                    ctx.depot(&["snapshot", "drop", &format!("ms{}", i - 2)])
                        .ok();
                }
            }
        });
        let repo = s.spawn(|| {
            for (i, d) in repo_debs.iter().enumerate() {
                ctx.depot(&["repo", "add", "r", d.to_str().unwrap(), "--replace"])
                    .ok();
                let name = format!("rs{i}");
                ctx.depot(&["snapshot", "create", &name, "--repo", "r"])
                    .ok();
                ctx.depot(&["release", "create", &format!("rr{i}"), "--from", &name])
                    .ok();
                ctx.depot(&[
                    "publish",
                    &format!("rr{i}"),
                    "--dist",
                    "dr",
                    "--skip-signing",
                ])
                .ok();
                if i >= 1 {
                    ctx.depot(&["release", "drop", &format!("rr{}", i - 1)])
                        .ok();
                    ctx.depot(&["snapshot", "drop", &format!("rs{}", i - 1)])
                        .ok();
                }
            }
        });
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "the race took too long");
                ctx.depot(&["gc"]).ok();
                gc_rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        mirror.join().unwrap();
        repo.join().unwrap();
        // At least `rounds` collections, the last ones after the writers.
        while gc_rounds.load(std::sync::atomic::Ordering::SeqCst) < rounds {
            std::thread::sleep(Duration::from_millis(20));
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    ctx.depot(&["check", "--full"]).ok();
    ctx.depot(&["gc"]).ok();
    assert_eq!(pool_blobs(&ctx.root), referenced_blobs(&ctx.root));
    gc_rounds.into_inner()
}

#[test]
fn gc_racing_writers_deletes_nothing_they_write_or_reference() {
    // `scripts/retention-soak.sh` runs more rounds.
    let want = std::env::var("DEPOT_SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20usize)
        .max(20);
    let mut ctx = TestContext::new();
    let rounds = race(&mut ctx, want);
    assert!(rounds >= want, "{rounds}");
}
