//! The publish layout: the versions of a distribution share package files
//! in a generation (`DIR/DIST/.pool-G`), a night links only what changed,
//! `depot serve` still gives a reader of a version exactly its files, and
//! gc and check understand the layout.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::promote::start_serve;
use crate::release::{build_deb, repo_with};
use crate::retention::assert_generations_exact;
use crate::support::{Dnf, Nginx, Run, TestContext, VersionTree};

/// A distribution whose stages anyone may read through serve.
fn public_dist(ctx: &TestContext, name: &str) {
    ctx.depot(&["dist", "create", name, "--stage", "dev=public"])
        .ok();
}

/// Publishes snapshot `s` to `d` as suite `stable`: the version.
fn publish(ctx: &TestContext, s: &str) -> String {
    let args = ["publish", s, "--dist", "d", "--suite", "stable"];
    let args = [&args[..], &["--skip-signing", "--output-format", "json"]].concat();
    ctx.depot(&args).ok().json()["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn at(ctx: &mut TestContext, when: &str) {
    ctx.env.insert("DEPOT_NOW".into(), when.into());
}

/// One GET on loopback with curl: status and body.
fn get(url: &str) -> (u16, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let mut body = out.stdout;
    let split = body.iter().rposition(|b| *b == b'\n').unwrap();
    let code = String::from_utf8_lossy(&body[split + 1..]).parse().unwrap();
    body.truncate(split);
    (code, body)
}

/// The path of package `name` in a version's file list.
fn path_of(tree: &VersionTree, name: &str) -> String {
    tree.files
        .keys()
        .find(|k| k.starts_with("pool/") && k.contains(&format!("/{name}_")))
        .unwrap_or_else(|| panic!("{name} not in {:?}", tree.files.keys()))
        .clone()
}

fn replace_beta(ctx: &TestContext, deb: &Path, snapshot: &str) {
    ctx.depot(&["repo", "remove", "ci", "beta"]).ok();
    ctx.depot(&["repo", "add", "ci", deb.to_str().unwrap()])
        .ok();
    ctx.depot(&["snapshot", "create", snapshot, "--repo", "ci"])
        .ok();
}

/// Night 1 publishes local repo `ci` of `debs` to public distribution
/// `d`; night 2 the same with `beta` replacing beta: both versions and
/// their trees.
fn two_nights(
    ctx: &mut TestContext,
    debs: &[PathBuf],
    beta: &Path,
) -> (String, String, VersionTree, VersionTree) {
    repo_with(ctx, "ci", debs);
    public_dist(ctx, "d");
    at(ctx, "2026-12-01T02:00:00Z");
    let v1 = publish(ctx, "ci");
    replace_beta(ctx, beta, "ci2");
    at(ctx, "2026-12-02T02:00:00Z");
    let v2 = publish(ctx, "ci2");
    let public = ctx.root.join("public/d");
    let trees = (
        VersionTree::read(&public.join(&v1)),
        VersionTree::read(&public.join(&v2)),
    );
    (v1, v2, trees.0, trees.1)
}

#[test]
fn a_night_that_changes_one_package_links_only_it_and_serve_keeps_the_versions_apart() {
    let mut ctx = TestContext::new();
    let d = ctx.dir.path();
    let (alpha, beta1, beta2) = (
        build_deb(d, "alpha", "1.0", "amd64", ""),
        build_deb(d, "beta", "1.0", "amd64", ""),
        build_deb(d, "beta", "2.0", "amd64", ""),
    );
    let (v1, v2, t1, t2) = two_nights(&mut ctx, &[alpha.clone(), beta1.clone()], &beta2);
    // Both versions are in v1's generation; each version's pool is a
    // symlink into it.
    let public = ctx.root.join("public/d");
    let generation = public.join(format!(".pool-{v1}"));
    assert_eq!(t1.generation.as_deref(), Some(generation.as_path()));
    assert_eq!(t2.generation, t1.generation);
    assert_eq!(
        std::fs::read_link(public.join(&v2).join("pool")).unwrap(),
        Path::new("..").join(format!(".pool-{v1}")).join("pool")
    );
    // The second night linked beta 2.0 only: alpha's blob has the link of
    // the pool and the one in the generation, not one per version.
    let alpha_path = path_of(&t2, "alpha");
    assert_eq!(path_of(&t1, "alpha"), alpha_path);
    assert_eq!(generation.join(&alpha_path).metadata().unwrap().nlink(), 2);
    let (b1, b2) = (path_of(&t1, "beta"), path_of(&t2, "beta"));
    assert!(!t1.files.contains_key(&b2) && !t2.files.contains_key(&b1));
    assert_eq!(
        std::fs::read(generation.join(&b2)).unwrap(),
        std::fs::read(&beta2).unwrap()
    );

    // Through depot serve, each version serves its own files and not the
    // other's, though both sit in the generation; the list is not served.
    let (mut server, base) = start_serve(&ctx, &[], false);
    let url = |v: &str, rel: &str| format!("{base}/d/{v}/{rel}");
    assert_eq!(get(&url(&v1, &b1)), (200, std::fs::read(&beta1).unwrap()));
    assert_eq!(get(&url(&v2, &b2)), (200, std::fs::read(&beta2).unwrap()));
    assert_eq!(get(&url(&v1, &b2)).0, 404);
    assert_eq!(get(&url(&v2, &b1)).0, 404);
    assert_eq!(get(&url("dev", &b1)).0, 404);
    assert_eq!(get(&url(&v1, ".depot-files")).0, 404);
    assert_eq!(get(&url(&v1, "pool")).0, 404);
    // Real apt-get through serve: dev gets beta 2.0, the old version 1.0.
    crate::retention::apt_serves(
        &format!("{base}/d/dev"),
        &[("beta", &beta2), ("alpha", &alpha)],
    );
    crate::retention::apt_serves(&format!("{base}/d/{v1}"), &[("beta", &beta1)]);
    let _ = server.kill();
    let _ = server.wait();

    // nginx over the publish root follows the symlink: what the README
    // says a reader of v1 can reach there includes v2's package files.
    let nginx = Nginx::start(&ctx.root.join("public"));
    assert_eq!(get(&nginx.url(&format!("d/{v1}/{b2}"))).0, 200);
    assert_eq!(get(&nginx.url(&format!("d/{v1}/{b1}"))).0, 200);
    crate::retention::apt_serves(&nginx.url("d/dev"), &[("beta", &beta2), ("alpha", &alpha)]);
    drop(nginx);

    // check verifies each version against its list.
    let check = ctx.depot(&["check", "--full"]).ok();
    assert!(check.stdout.contains(": 0 problems"), "{}", check.stdout);
    let list = public.join(&v2).join(".depot-files");
    let text = std::fs::read_to_string(&list).unwrap();
    let without_beta: String = text
        .lines()
        .filter(|l| !l.ends_with(&b2))
        .map(|l| format!("{l}\n"))
        .collect();
    let tmp = public.join(".list");
    std::fs::write(&tmp, without_beta).unwrap();
    std::fs::rename(&tmp, &list).unwrap();
    let run = ctx.depot(&["check"]).fails(1, "problem");
    assert!(
        run.stdout.contains("file list") && run.stdout.contains(&b2),
        "{}",
        run.stdout
    );
    // Serve reads the replaced list: the file is no longer the version's.
    let (mut server, base) = start_serve(&ctx, &[], false);
    assert_eq!(get(&format!("{base}/d/{v2}/{b2}")).0, 404);
    let _ = server.kill();
    let _ = server.wait();
    std::fs::write(&list, text).unwrap();

    // v1 dropped, gc takes beta 1.0 out of the generation and keeps the
    // rest.
    ctx.depot(&["dist", "drop", "d", &v1]).ok();
    let gc = ctx.depot(&["gc", "--output-format", "json"]).ok().json();
    assert_eq!(gc["shared_files"], 1, "{gc}");
    assert_eq!(gc["generations"], 0, "{gc}");
    assert!(!generation.join(&b1).exists());
    assert_generations_exact(&public);
    let check = ctx.depot(&["check", "--full"]).ok();
    assert!(check.stdout.contains(": 0 problems"), "{}", check.stdout);
}

#[test]
fn another_file_at_a_path_starts_a_generation_and_the_old_version_keeps_its_bytes() {
    let mut ctx = TestContext::new();
    let d = ctx.dir.path();
    let alpha = build_deb(d, "alpha", "1.0", "amd64", "");
    let beta = build_deb(d, "beta", "1.0", "amd64", "");
    let rebuilt_dir = d.join("rebuilt");
    std::fs::create_dir_all(&rebuilt_dir).unwrap();
    // The same name and version, other bytes: a rebuild upstream.
    let rebuilt = build_deb(&rebuilt_dir, "beta", "1.0", "amd64", "X-Rebuild: 2\n");
    assert_ne!(
        std::fs::read(&beta).unwrap(),
        std::fs::read(&rebuilt).unwrap()
    );
    let (v1, v2, t1, t2) = two_nights(&mut ctx, &[alpha, beta.clone()], &rebuilt);
    let public = ctx.root.join("public/d");
    assert_eq!(t2.generation, Some(public.join(format!(".pool-{v2}"))));
    let path = path_of(&t1, "beta");
    assert_eq!(path_of(&t2, "beta"), path);
    assert_eq!(
        std::fs::read(&t1.files[&path]).unwrap(),
        std::fs::read(&beta).unwrap()
    );
    assert_eq!(
        std::fs::read(&t2.files[&path]).unwrap(),
        std::fs::read(&rebuilt).unwrap()
    );
    let (mut server, base) = start_serve(&ctx, &[], false);
    for (v, deb) in [(&v1, &beta), (&v2, &rebuilt)] {
        let (code, body) = get(&format!("{base}/d/{v}/{path}"));
        assert_eq!((code, body), (200, std::fs::read(deb).unwrap()), "{v}");
    }
    let _ = server.kill();
    let _ = server.wait();
    let check = ctx.depot(&["check", "--full"]).ok();
    assert!(check.stdout.contains(": 0 problems"), "{}", check.stdout);

    // The next night goes on in v2's generation; once v1 is dropped, gc
    // removes its generation whole.
    at(&mut ctx, "2026-12-03T02:00:00Z");
    let v3 = publish(&ctx, "ci2");
    assert_eq!(
        VersionTree::read(&public.join(&v3)).generation,
        t2.generation
    );
    ctx.depot(&["dist", "drop", "d", &v1]).ok();
    let gc = ctx.depot(&["gc", "--output-format", "json"]).ok().json();
    assert_eq!(gc["generations"], 1, "{gc}");
    assert!(!public.join(format!(".pool-{v1}")).exists());
    assert_generations_exact(&public);
    ctx.depot(&["check", "--full"]).ok();
}

#[test]
fn dnf_reads_the_second_night_of_an_rpm_distribution_through_serve_and_nginx() {
    let mut ctx = TestContext::new();
    ctx.rpm_snapshot("s1");
    public_dist(&ctx, "el");
    at(&mut ctx, "2026-12-01T02:00:00Z");
    let v1 = ctx.published_version("s1", "el");
    ctx.serve_rpm("state2", "up");
    ctx.depot(&["mirror", "update", "r"]).ok();
    ctx.depot(&["snapshot", "create", "s2", "--mirror", "r"])
        .ok();
    at(&mut ctx, "2026-12-02T02:00:00Z");
    let v2 = ctx.published_version("s2", "el");
    let public = ctx.root.join("public/el");
    let t2 = VersionTree::read(&public.join(&v2));
    assert_eq!(t2.generation, Some(public.join(format!(".pool-{v1}"))));
    assert!(!t2.shared.is_empty());

    let (mut server, base) = start_serve(&ctx, &[], false);
    let nginx = Nginx::start(&ctx.root.join("public"));
    for repo_url in [format!("{base}/el/dev"), nginx.url("el/dev")] {
        let good_key = crate::support::fixtures().join("rpm/keys/good.asc");
        let mut dnf = Dnf::new(&repo_url, &[&good_key]);
        dnf.repo_opts.push("repo_gpgcheck=0".into());
        let q = dnf.query_all("%{name}-%{version}");
        assert!(q.contains("alpha-1.1"), "{repo_url}: {q}");
        assert!(q.contains("epsilon-3.0"), "{repo_url}: {q}");
        // The package file dnf would fetch is the one upstream has.
        let location = dnf
            .run(&["repoquery", "--repo", "fx", "--location", "epsilon"])
            .ok()
            .stdout;
        let (code, body) = get(location.trim());
        assert_eq!(code, 200, "{location}");
        let upstream = ctx.www.join("up/Packages/epsilon-3.0-1.x86_64.rpm");
        assert_eq!(body, std::fs::read(&upstream).unwrap(), "{location}");
    }
    let _ = server.kill();
    let _ = server.wait();
    let check = ctx.depot(&["check", "--full"]).ok();
    assert!(check.stdout.contains(": 0 problems"), "{}", check.stdout);
}

/// Publishes `s` to `d` as suite `stable` with only a gzip copy of each
/// index (so that apt reads the `.gz`): the version, and what depot logged
/// of the index's gzip blocks (`reused=N`).
fn publish_gz(ctx: &mut TestContext, s: &str) -> (String, String) {
    ctx.env.insert("RUST_LOG".into(), "depot=debug".into());
    let args = ["publish", s, "--dist", "d", "--suite", "stable"];
    let args = [&args[..], &["--compress", "gz", "--skip-signing"]].concat();
    let run = ctx
        .depot(&[&args[..], &["--output-format", "json"]].concat())
        .ok();
    ctx.env.remove("RUST_LOG");
    let blocks = run
        .stderr
        .lines()
        .find(|l| l.contains("gzip blocks of an index"))
        .unwrap_or_else(|| panic!("no gzip blocks logged: {}", run.stderr))
        .to_owned();
    (run.json()["version"].as_str().unwrap().to_owned(), blocks)
}

/// `gzip -dc` of `gz` (a text).
fn gunzip(gz: &Path) -> Vec<u8> {
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .output();
    Run::from_output(out.unwrap()).ok().stdout.into_bytes()
}

#[test]
fn a_night_reuses_the_gzip_members_of_unchanged_blocks_and_apt_reads_the_index() {
    let mut ctx = TestContext::new();
    let d = ctx.dir.path();
    // `Package: delta` ends a block (its first line hashes to 0 mod 32)
    // and sorts before `zeta`: two blocks, of which night 2 changes one.
    let (delta, zeta1, zeta2, zeta3) = (
        build_deb(d, "delta", "1.0", "amd64", ""),
        build_deb(d, "zeta", "1.0", "amd64", ""),
        build_deb(d, "zeta", "2.0", "amd64", ""),
        build_deb(d, "zeta", "3.0", "amd64", ""),
    );
    repo_with(&ctx, "ci", &[delta.clone(), zeta1.clone()]);
    public_dist(&ctx, "d");
    at(&mut ctx, "2026-12-01T02:00:00Z");
    let (v1, blocks) = publish_gz(&mut ctx, "ci");
    assert!(
        blocks.contains("blocks=2") && blocks.contains("reused=0"),
        "{blocks}"
    );
    let swap = |ctx: &TestContext, old: &str, deb: &Path, snapshot: &str| {
        ctx.depot(&["repo", "remove", "ci", old]).ok();
        ctx.depot(&["repo", "add", "ci", deb.to_str().unwrap()])
            .ok();
        ctx.depot(&["snapshot", "create", snapshot, "--repo", "ci"])
            .ok();
    };
    swap(&ctx, "zeta", &zeta2, "ci2");
    at(&mut ctx, "2026-12-02T02:00:00Z");
    let (v2, blocks) = publish_gz(&mut ctx, "ci2");
    assert!(
        blocks.contains("blocks=2") && blocks.contains("reused=1"),
        "{blocks}"
    );

    let public = ctx.root.join("public/d");
    let index = |v: &str, suffix: &str| {
        public
            .join(v)
            .join(format!("dists/stable/main/binary-amd64/Packages{suffix}"))
    };
    // Two members: delta's copied from night 1, zeta's made anew; gzip
    // reads them as one stream, the plain index.
    let (gz1, gz2) = (
        std::fs::read(index(&v1, ".gz")).unwrap(),
        std::fs::read(index(&v2, ".gz")).unwrap(),
    );
    let first = u32::from_le_bytes(gz1[16..20].try_into().unwrap()) as usize;
    assert_eq!(gz1[..first], gz2[..first]);
    assert_ne!(gz1[first..], gz2[first..]);
    for v in [&v1, &v2] {
        assert_eq!(
            gunzip(&index(v, ".gz")),
            std::fs::read(index(v, "")).unwrap()
        );
    }
    // Real apt-get reads the `.gz` (the only compressed copy) through
    // depot serve and through nginx.
    let (mut server, base) = start_serve(&ctx, &[], false);
    crate::retention::apt_serves(
        &format!("{base}/d/dev"),
        &[("zeta", &zeta2), ("delta", &delta)],
    );
    crate::retention::apt_serves(&format!("{base}/d/{v1}"), &[("zeta", &zeta1)]);
    let _ = server.kill();
    let _ = server.wait();
    let nginx = Nginx::start(&ctx.root.join("public"));
    crate::retention::apt_serves(&nginx.url("d/dev"), &[("zeta", &zeta2), ("delta", &delta)]);
    drop(nginx);

    // A previous `.gz` that is not what its Release lists (damaged on
    // disk, same size) is not reused: night 3 compresses every block and
    // its index is right.
    let mut damaged = gz2.clone();
    damaged[30] ^= 0xff;
    std::fs::write(index(&v2, ".gz"), &damaged).unwrap();
    swap(&ctx, "zeta", &zeta3, "ci3");
    at(&mut ctx, "2026-12-03T02:00:00Z");
    let (v3, blocks) = publish_gz(&mut ctx, "ci3");
    assert!(
        blocks.contains("blocks=2") && blocks.contains("reused=0"),
        "{blocks}"
    );
    assert_eq!(
        gunzip(&index(&v3, ".gz")),
        std::fs::read(index(&v3, "")).unwrap()
    );
    let nginx = Nginx::start(&ctx.root.join("public"));
    crate::retention::apt_serves(&nginx.url("d/dev"), &[("zeta", &zeta3), ("delta", &delta)]);
}
