//! Integrated releases: local repos of freshly built packages, filters with
//! dependency closure, merges under each policy, verification.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Apt, Gpg, TestContext};

/// Builds a real .deb with dpkg-deb; `fields` are extra control lines.
pub(crate) fn build_deb(
    dir: &Path,
    name: &str,
    version: &str,
    arch: &str,
    fields: &str,
) -> PathBuf {
    let tree = dir.join(format!("build-{name}-{}", version.replace(':', "_")));
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
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: CI <ci@depot.invalid>\n{}Description: test package {name}\n{fields}",
            if fields.contains("Priority:") { "" } else { "Priority: optional\n" }
        ),
    )
    .unwrap();
    let out = dir.join(format!("{name}_{}_{arch}.deb", version.replace(':', "_")));
    let run = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&tree)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

pub(crate) fn repo_with(ctx: &TestContext, repo: &str, debs: &[PathBuf]) {
    ctx.depot(&["repo", "create", repo, "--kind", "apt", "--arch", "amd64"])
        .ok();
    let mut args = vec!["repo", "add", repo];
    let paths: Vec<String> = debs.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    ctx.depot(&args).ok();
    ctx.depot(&["snapshot", "create", repo, "--repo", repo])
        .ok();
}

fn versions(ctx: &TestContext, store: &str, name: &str, package: &str) -> Vec<String> {
    let show = ctx
        .depot(&[store, "show", name, "--packages", "--output-format", "json"])
        .ok()
        .json();
    let mut v: Vec<String> = show["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == package)
        .map(|r| r["version"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn debian_version_edge_set_merges_by_policy() {
    let ctx = TestContext::new();
    let dir = ctx.dir.path();
    // Debian order: 1.0~rc1 < 1.0 < 1.0+b1 < 1:0.9.
    for (repo, v) in [
        ("rc", "1.0~rc1"),
        ("plain", "1.0"),
        ("binnmu", "1.0+b1"),
        ("epoch", "1:0.9"),
    ] {
        repo_with(&ctx, repo, &[build_deb(dir, "edge", v, "amd64", "")]);
    }
    let from = ["--from", "plain", "rc", "epoch", "binnmu"];
    for (name, policy, want) in [
        ("latest", "latest", vec!["1:0.9"]),
        ("first", "first", vec!["1.0"]),
        ("all", "all", vec!["1.0", "1.0+b1", "1.0~rc1", "1:0.9"]),
    ] {
        let mut args = vec!["release", "create", name, "--policy", policy];
        args.extend(from);
        ctx.depot(&args).ok();
        assert_eq!(
            versions(&ctx, "release", name, "edge"),
            want,
            "policy {policy}"
        );
    }
    // Without the epoch, 1.0+b1 wins; and first follows the listed order.
    ctx.depot(&[
        "release", "create", "noepoch", "--from", "rc", "plain", "binnmu",
    ])
    .ok();
    assert_eq!(versions(&ctx, "release", "noepoch", "edge"), ["1.0+b1"]);
    ctx.depot(&[
        "release", "create", "rcfirst", "--policy", "first", "--from", "rc", "plain",
    ])
    .ok();
    assert_eq!(versions(&ctx, "release", "rcfirst", "edge"), ["1.0~rc1"]);
    // A component whose source loses every package still exists (empty).
    ctx.depot(&[
        "release",
        "create",
        "comp",
        "--from",
        "epoch",
        "--component",
        "extra=plain",
    ])
    .ok();
    let comp = ctx
        .depot(&["release", "show", "comp", "--output-format", "json"])
        .ok()
        .json();
    let indices: Vec<(String, u64)> = comp["content"]["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["component"].as_str().unwrap().to_owned(),
                i["entries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(indices, [("main".into(), 1), ("extra".into(), 0)]);
    // Several versions in one index (release `all`) merge alike, and diff
    // lists them all.
    ctx.depot(&["release", "create", "relatest", "--from", "all"])
        .ok();
    assert_eq!(versions(&ctx, "release", "relatest", "edge"), ["1:0.9"]);
    let diff = ctx
        .depot(&[
            "release",
            "diff",
            "relatest",
            "all",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        diff["changed"][0]["new"],
        serde_json::json!(["1.0", "1.0+b1", "1.0~rc1", "1:0.9"])
    );
    // Provenance is recorded.
    let show = ctx
        .depot(&["release", "show", "latest", "--output-format", "json"])
        .ok()
        .json();
    let sources: Vec<&str> = show["origin"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["plain", "rc", "epoch", "binnmu"]);
    let list = ctx
        .depot(&["release", "list", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(list.as_array().unwrap().len(), 7);
    let diff = ctx
        .depot(&["release", "diff", "noepoch", "latest"])
        .ok()
        .stdout;
    assert_eq!(diff, "~ edge 1.0+b1 -> 1:0.9 amd64\n");
}

/// name, epoch, version, release
type RpmNevr<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Writes an rpm repository whose packages exist only as metadata (mirrored
/// with the on-demand policy, so no rpm is ever fetched).
fn rpm_metadata_repo(dir: &Path, packages: &[RpmNevr]) {
    let repodata = dir.join("repodata");
    std::fs::create_dir_all(&repodata).unwrap();
    let mut primary = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"{}\">\n",
        packages.len()
    );
    let mut filelists = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"{}\">\n",
        packages.len()
    );
    for (i, (name, epoch, ver, rel)) in packages.iter().enumerate() {
        let id = format!("{:064x}", i + 1 + dir.to_string_lossy().len() * 1000);
        primary.push_str(&format!(
            "<package type=\"rpm\"><name>{name}</name><arch>noarch</arch><version epoch=\"{epoch}\" ver=\"{ver}\" rel=\"{rel}\"/><checksum type=\"sha256\" pkgid=\"YES\">{id}</checksum><size package=\"10\" installed=\"1\" archive=\"1\"/><location href=\"Packages/{name}-{ver}-{rel}.noarch.rpm\"/><format><rpm:provides><rpm:entry name=\"{name}\" flags=\"EQ\" epoch=\"{epoch}\" ver=\"{ver}\" rel=\"{rel}\"/></rpm:provides></format></package>\n"
        ));
        filelists.push_str(&format!("<package pkgid=\"{id}\" name=\"{name}\" arch=\"noarch\"><version epoch=\"{epoch}\" ver=\"{ver}\" rel=\"{rel}\"/></package>\n"));
    }
    primary.push_str("</metadata>\n");
    filelists.push_str("</filelists>\n");
    let mut repomd = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\n",
    );
    for (t, text) in [("primary", &primary), ("filelists", &filelists)] {
        let sha = const_hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        std::fs::write(repodata.join(format!("{t}.xml")), text).unwrap();
        repomd.push_str(&format!(
            "<data type=\"{t}\"><checksum type=\"sha256\">{sha}</checksum><location href=\"repodata/{t}.xml\"/><size>{}</size></data>\n",
            text.len()
        ));
    }
    repomd.push_str("</repomd>\n");
    std::fs::write(repodata.join("repomd.xml"), repomd).unwrap();
}

#[test]
fn rpm_version_edge_set_merges_by_policy() {
    let ctx = TestContext::new();
    // rpm order: 1.0-1 < 1.0-1.el9; 1.0~rc < 1.0 < 1.0^post; epoch beats all.
    let sets: [(&str, &[RpmNevr]); 3] = [
        (
            "a",
            &[
                ("rel", "0", "1.0", "1"),
                ("tilde", "0", "1.0^post", "1"),
                ("ep", "1", "0.1", "1"),
            ],
        ),
        (
            "b",
            &[
                ("rel", "0", "1.0", "1.el9"),
                ("tilde", "0", "1.0~rc", "1"),
                ("ep", "0", "9.9", "1"),
            ],
        ),
        ("c", &[("tilde", "0", "1.0", "1")]),
    ];
    for (name, pkgs) in sets {
        let dir = ctx.www.join(name);
        rpm_metadata_repo(&dir, pkgs);
        let url = ctx.server.url(&format!("{name}/"));
        ctx.depot(&[
            "mirror",
            "create",
            name,
            &url,
            "--kind",
            "rpm",
            "--no-verify",
            "--policy",
            "on-demand",
        ])
        .ok();
        ctx.depot(&["mirror", "update", name]).ok();
        ctx.depot(&["snapshot", "create", name, "--mirror", name])
            .ok();
    }
    ctx.depot(&["release", "create", "latest", "--from", "a", "b", "c"])
        .ok();
    assert_eq!(versions(&ctx, "release", "latest", "rel"), ["1.0-1.el9"]);
    assert_eq!(versions(&ctx, "release", "latest", "tilde"), ["1.0^post-1"]);
    assert_eq!(versions(&ctx, "release", "latest", "ep"), ["1:0.1-1"]);
    ctx.depot(&[
        "release", "create", "first", "--policy", "first", "--from", "b", "a", "c",
    ])
    .ok();
    assert_eq!(versions(&ctx, "release", "first", "tilde"), ["1.0~rc-1"]);
    assert_eq!(versions(&ctx, "release", "first", "ep"), ["9.9-1"]);
    ctx.depot(&[
        "release", "create", "all", "--policy", "all", "--from", "a", "b", "c",
    ])
    .ok();
    assert_eq!(
        versions(&ctx, "release", "all", "tilde"),
        ["1.0-1", "1.0^post-1", "1.0~rc-1"]
    );
    // The merged metadata is consistent: one filelists entry per package.
    let show = ctx
        .depot(&["release", "show", "all", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["package_count"], 7);
}

#[test]
fn filter_with_deps_returns_exactly_the_closure_and_names_what_is_missing() {
    let ctx = TestContext::new();
    let d = ctx.dir.path();
    let debs = vec![
        build_deb(
            d,
            "app",
            "1.0",
            "amd64",
            "Depends: libx | liby, mail-transport-agent, cyc-a (>= 1)\n",
        ),
        build_deb(d, "libx", "1.0", "amd64", ""),
        build_deb(d, "liby", "1.0", "amd64", ""),
        build_deb(d, "mta", "1.0", "amd64", "Provides: mail-transport-agent\n"),
        build_deb(d, "cyc-a", "1.0", "all", "Pre-Depends: cyc-b\n"),
        build_deb(d, "cyc-b", "1.0", "amd64", "Depends: cyc-a\n"),
        build_deb(
            d,
            "broken",
            "1.0",
            "amd64",
            "Depends: nonexistent (>= 1), libx\n",
        ),
        build_deb(d, "unrelated", "1.0", "amd64", "Priority: required\n"),
    ];
    repo_with(&ctx, "all", &debs);
    let run = ctx
        .depot(&[
            "snapshot",
            "filter",
            "all",
            "app-closure",
            "app",
            "--with-deps",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(run["packages"], 5);
    assert_eq!(run["unsatisfied"], serde_json::json!([]));
    let rows = ctx
        .depot(&[
            "snapshot",
            "show",
            "app-closure",
            "--packages",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    let mut names: Vec<&str> = rows["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["app", "cyc-a", "cyc-b", "libx", "mta"]);

    let run = ctx
        .depot(&[
            "snapshot",
            "filter",
            "all",
            "broken-closure",
            "broken",
            "--with-deps",
            "--output-format",
            "json",
        ])
        .ok();
    assert!(run.stderr.contains("nonexistent (>= 1)"), "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["packages"], 2);
    assert_eq!(json["unsatisfied"][0]["dependency"], "nonexistent (>= 1)");
    assert_eq!(json["unsatisfied"][0]["package"], "broken");

    // Without --with-deps only the matches; field queries work.
    let run = ctx
        .depot(&[
            "snapshot",
            "filter",
            "all",
            "req",
            "Priority (required)",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(run["packages"], 1);
    let found = ctx
        .depot(&[
            "snapshot",
            "search",
            "all",
            "Name (% cyc-*), !$Architecture (all)",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["name"], "cyc-b");

    // verify: exit 1 naming the unsatisfiable dependency; clean sets pass.
    let run = ctx
        .depot(&["snapshot", "verify", "all"])
        .fails(1, "unsatisfied");
    assert!(
        run.stdout
            .contains("broken 1.0 (amd64): nothing satisfies `nonexistent (>= 1)`"),
        "{}",
        run.stdout
    );
    ctx.depot(&["snapshot", "verify", "app-closure"]).ok();
    // A malformed query is a usage error pointing at the problem.
    let run = ctx
        .depot(&["snapshot", "search", "all", "app (>= 1"])
        .fails(2, "position 5");
    assert!(run.stderr.contains('^'));
}

#[test]
fn release_of_mirror_and_local_repo_installs_with_apt() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    ctx.apt_snapshot("deb", "deb-snap");
    let local = build_deb(
        ctx.dir.path(),
        "localapp",
        "2.0",
        "amd64",
        "Depends: beta (>= 2.0)\n",
    );
    repo_with(&ctx, "ci", &[local]);
    ctx.depot(&[
        "release",
        "create",
        "rel",
        "--from",
        "deb-snap",
        "--component",
        "internal=ci",
    ])
    .ok();
    let show = ctx
        .depot(&["release", "show", "rel", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["package_count"], 5);
    ctx.depot(&["release", "verify", "rel"]).ok();

    ctx.publish_signed(&gpg, "rel", "prod", &[]);
    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main internal",
        gpg.public_key.display(),
        ctx.server.url("public/prod/dev")
    ));
    let update = apt.run(&["update"]).ok();
    assert!(!update.stderr.contains("W:"), "{}", update.stderr);
    apt.run(&["install", "-y", "--download-only", "localapp"])
        .ok();
    let archives = apt.dir.path().join("cache/archives");
    for f in [
        "localapp_2.0_amd64.deb",
        "beta_2.0-1_amd64.deb",
        "alpha_1.0-1_amd64.deb",
    ] {
        assert!(archives.join(f).is_file(), "{f} was not fetched");
    }
    // And dpkg installs them into a private root.
    let target = ctx.dir.path().join("target");
    std::fs::create_dir_all(target.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(target.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(target.join("var/lib/dpkg/status"), "").unwrap();
    let debs: Vec<PathBuf> = [
        "alpha_1.0-1_amd64.deb",
        "beta_2.0-1_amd64.deb",
        "localapp_2.0_amd64.deb",
    ]
    .iter()
    .map(|f| archives.join(f))
    .collect();
    let run = Command::new("dpkg")
        .arg(format!("--root={}", target.display()))
        .args([
            "--force-not-root",
            "--force-script-chrootless",
            "--log=/dev/null",
            "-i",
        ])
        .args(&debs)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(target.join("usr/share/doc/localapp/README").is_file());
}

#[test]
fn repo_add_refuses_bad_files_and_rebuilds_and_keeps_the_repo() {
    let ctx = TestContext::new();
    let d = ctx.dir.path();
    let good = build_deb(d, "tool", "1.0", "amd64", "");
    ctx.depot(&["repo", "create", "ci", "--kind", "apt"]).ok();
    ctx.depot(&["repo", "add", "ci", good.to_str().unwrap()])
        .ok();
    let state = ctx.root.join("repos/ci.state.json");
    let before = std::fs::read(&state).unwrap();

    let corrupt = d.join("corrupt.deb");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    let other = build_deb(d, "other", "1.0", "amd64", "");
    // The good file beside the bad one is not added either.
    ctx.depot(&[
        "repo",
        "add",
        "ci",
        other.to_str().unwrap(),
        corrupt.to_str().unwrap(),
    ])
    .fails(1, "not a valid .deb");
    let text = d.join("notes.txt");
    std::fs::write(&text, "hello\n").unwrap();
    ctx.depot(&["repo", "add", "ci", text.to_str().unwrap()])
        .fails(1, "not an ar archive");
    let rebuild_dir = d.join("rebuild");
    std::fs::create_dir_all(&rebuild_dir).unwrap();
    let rebuild = build_deb(
        &rebuild_dir,
        "tool",
        "1.0",
        "amd64",
        "Homepage: https://rebuilt.invalid\n",
    );
    ctx.depot(&["repo", "add", "ci", rebuild.to_str().unwrap()])
        .fails(1, "--replace");
    assert_eq!(std::fs::read(&state).unwrap(), before, "the repo changed");

    // Adding the same file again is a no-op; --replace takes the rebuild.
    let run = ctx
        .depot(&["repo", "add", "ci", good.to_str().unwrap()])
        .ok();
    assert!(run.stdout.contains("unchanged tool 1.0 amd64"));
    ctx.depot(&["repo", "add", "ci", "--replace", rebuild.to_str().unwrap()])
        .ok();
    let removed = ctx
        .depot(&["repo", "remove", "ci", "tool", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(removed, serde_json::json!(["tool 1.0 amd64"]));
    let show = ctx
        .depot(&["repo", "show", "ci", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["packages"], serde_json::json!([]));
}

/// Builds a small noarch rpm with rpmbuild; `content` goes into its file.
pub(crate) fn build_rpm(dir: &Path, name: &str, version: &str, content: &str) -> PathBuf {
    let top = dir.join(format!("rpmbuild-{name}-{version}-{}", content.len()));
    std::fs::create_dir_all(&top).unwrap();
    let spec = top.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test {name}\nLicense: MIT\nBuildArch: noarch\n%description\ntest package\n%install\nmkdir -p %{{buildroot}}/usr/share/doc/{name}\necho '{content}' > %{{buildroot}}/usr/share/doc/{name}/README\n%files\n/usr/share/doc/{name}/README\n"
        ),
    )
    .unwrap();
    let run = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg("_build_id_links none")
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    top.join(format!("RPMS/noarch/{name}-{version}-1.noarch.rpm"))
}

#[test]
fn local_rpm_repo_publishes_for_dnf_and_refuses_bad_files() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    ctx.depot(&["repo", "create", "rci", "--kind", "rpm"]).ok();
    let fixture = crate::support::fixtures().join("rpm/state1/Packages");
    let rpms: Vec<String> = ["alpha-1.0-1.noarch.rpm", "beta-2.0-1.x86_64.rpm"]
        .iter()
        .map(|f| fixture.join(f).display().to_string())
        .collect();
    ctx.depot(&["repo", "add", "rci", &rpms[0], &rpms[1]]).ok();
    let state = ctx.root.join("repos/rci.state.json");
    let before = std::fs::read(&state).unwrap();

    // Refused, repo unchanged: truncated, tampered, not a package, a .deb,
    // and a rebuild of the same NEVRA with other content.
    let d = ctx.dir.path();
    let bytes = std::fs::read(fixture.join("gamma-0.5-1.noarch.rpm")).unwrap();
    std::fs::write(d.join("short.rpm"), &bytes[..bytes.len() - 50]).unwrap();
    ctx.depot(&["repo", "add", "rci", d.join("short.rpm").to_str().unwrap()])
        .fails(1, "not a valid .rpm");
    let mut tampered = bytes.clone();
    let n = tampered.len() - 30;
    tampered[n] ^= 0x40;
    std::fs::write(d.join("tampered.rpm"), tampered).unwrap();
    ctx.depot(&[
        "repo",
        "add",
        "rci",
        d.join("tampered.rpm").to_str().unwrap(),
    ])
    .fails(1, "payload digest");
    std::fs::write(d.join("notes.rpm"), "hello").unwrap();
    ctx.depot(&["repo", "add", "rci", d.join("notes.rpm").to_str().unwrap()])
        .fails(1, "no rpm lead");
    let deb = build_deb(d, "debpkg", "1.0", "amd64", "");
    ctx.depot(&["repo", "add", "rci", deb.to_str().unwrap()])
        .fails(1, "holds rpm packages");
    let one = build_rpm(&d.join("one"), "tool", "1.0", "first build");
    let two = build_rpm(&d.join("two"), "tool", "1.0", "second, different build");
    ctx.depot(&["repo", "add", "rci", one.to_str().unwrap()])
        .ok();
    let with_tool = std::fs::read(&state).unwrap();
    ctx.depot(&["repo", "add", "rci", two.to_str().unwrap()])
        .fails(1, "--replace");
    assert_eq!(std::fs::read(&state).unwrap(), with_tool);
    ctx.depot(&["repo", "remove", "rci", "tool"]).ok();
    assert_eq!(std::fs::read(&state).unwrap(), before);

    // What remains publishes, and dnf installs beta with alpha (whose
    // file dependency is found through filelists).
    ctx.depot(&["snapshot", "create", "rs", "--repo", "rci"])
        .ok();
    ctx.depot(&["snapshot", "verify", "rs"]).ok();
    ctx.publish_signed(&gpg, "rs", "ci", &[]);
    std::os::unix::fs::symlink(ctx.root.join("public"), ctx.www.join("public")).unwrap();
    let dnf = crate::support::Dnf::new(
        &ctx.server.url("public/ci/dev"),
        &[
            &gpg.public_key,
            &crate::support::fixtures().join("rpm/keys/good.asc"),
        ],
    );
    dnf.run(&["makecache"]).ok();
    dnf.run(&["install", "beta"]).ok();
    assert!(dnf.installed("usr/share/doc/alpha/README"));
}

/// Reads a snapshot or release manifest as JSON.
fn manifest(ctx: &TestContext, dir: &str, name: &str) -> serde_json::Value {
    let path = ctx.root.join(dir).join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The stanzas of the one `Packages` index published for `dist`, without
/// their `Filename` lines.
fn published_stanzas(ctx: &TestContext, dist: &str) -> Vec<String> {
    let dists = ctx.root.join("public").join(dist).join("dev/dists");
    let suite = std::fs::read_dir(&dists).unwrap().next().unwrap().unwrap();
    let text = std::fs::read_to_string(suite.path().join("main/binary-amd64/Packages")).unwrap();
    let mut stanzas: Vec<String> = text
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.lines()
                .filter(|l| !l.starts_with("Filename:"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    stanzas.sort();
    stanzas
}

#[test]
fn filters_and_releases_keep_ranges_of_the_source_index_and_publish_it_verbatim() {
    let ctx = TestContext::new();
    let d = ctx.dir.path();
    let debs: Vec<PathBuf> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| build_deb(d, n, "1.0", "amd64", "Depends: a\n"))
        .collect();
    repo_with(&ctx, "all", &debs);
    ctx.depot(&["snapshot", "filter", "all", "odd", "a | c | e"])
        .ok();
    ctx.depot(&["snapshot", "filter", "all", "even", "b | d"])
        .ok();
    let source = manifest(&ctx, "snapshots", "all")["content"]["indices"][0]["parts"].clone();
    let blob = source[0]["blob"].as_str().unwrap().to_owned();
    assert_eq!(source, serde_json::json!([{ "blob": blob }]));
    // A filter copies no stanza: it names the source's blob and a selection.
    let odd = manifest(&ctx, "snapshots", "odd")["content"]["indices"][0].clone();
    assert_eq!(odd["entries"], 3);
    assert_eq!(odd["parts"][0]["blob"], blob.as_str());
    let select = odd["parts"][0]["select"].as_str().unwrap().to_owned();
    // Merging the halves gives back the whole index: no selection at all.
    ctx.depot(&["release", "create", "whole", "--from", "odd", "even"])
        .ok();
    let whole = manifest(&ctx, "releases", "whole")["content"]["indices"][0].clone();
    assert_eq!(whole["parts"], source);
    assert_eq!(
        ctx.depot(&["release", "diff", "all", "whole"]).ok().stdout,
        "no differences\n"
    );

    // Published stanzas are the source's, verbatim but for Filename.
    for (snap, dist) in [("all", "all"), ("odd", "odd")] {
        ctx.depot(&["publish", snap, "--dist", dist, "--skip-signing"])
            .ok();
    }
    let all = published_stanzas(&ctx, "all");
    let odd = published_stanzas(&ctx, "odd");
    assert_eq!(odd.len(), 3);
    let expected: Vec<String> = all
        .into_iter()
        .filter(|s| {
            ["a", "c", "e"]
                .iter()
                .any(|n| s.starts_with(&format!("Package: {n}\n")))
        })
        .collect();
    assert_eq!(odd, expected);

    // Catalogs are a cache: damaged or removed ones are rebuilt.
    let names = |ctx: &TestContext| versions(ctx, "snapshot", "odd", "c");
    let catalogs = ctx.root.join("cache/catalog");
    let cached: Vec<PathBuf> = std::fs::read_dir(&catalogs)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!cached.is_empty());
    for path in &cached {
        std::fs::write(path, b"DCAT junk").unwrap();
    }
    assert_eq!(names(&ctx), ["1.0"]);
    std::fs::remove_dir_all(&catalogs).unwrap();
    assert_eq!(names(&ctx), ["1.0"]);
    ctx.depot(&["snapshot", "verify", "odd"]).ok();

    // A cache file whose header is intact but whose tables are zeroed still
    // loads; publish notices that its locations do not fit the index,
    // rebuilds it, and publishes the same stanzas.
    let deb_catalogs = || -> Vec<PathBuf> {
        std::fs::read_dir(&catalogs)
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect()
    };
    let cached = deb_catalogs();
    assert!(!cached.is_empty());
    for path in &cached {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[64..].fill(0);
        std::fs::write(path, bytes).unwrap();
    }
    ctx.depot(&["publish", "odd", "--dist", "odd3", "--skip-signing"])
        .ok();
    assert_eq!(published_stanzas(&ctx, "odd3"), odd);
    for path in &cached {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes[64..].iter().any(|b| *b != 0), "not rebuilt");
    }

    // A damaged selection is an error that names it, not a wrong answer.
    let sel_path = ctx.root.join("pool").join(&select[..2]).join(&select);
    std::fs::write(&sel_path, b"junk").unwrap();
    ctx.depot(&["snapshot", "show", "odd", "--packages"])
        .fails(1, "selection blob");
    ctx.depot(&["publish", "odd", "--dist", "odd2", "--skip-signing"])
        .fails(1, "selection blob");
}
