//! CI build repositories (ceph's chacra + shaman): uploads to `depot
//! serve` with curl, asynchronous signed repositories after a quiet time,
//! webhooks, `sha1=latest`, repo files consumed by real apt-get and dnf.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::release::{build_deb, build_rpm};
use crate::support::{Gpg, TestContext};

/// A loopback webhook listener: records every JSON body POSTed to it,
/// after failing the first `fail_first` POSTs with a 500 (to be retried).
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Hook {
    fn start(fail_first: usize) -> Self {
        let mut failures = fail_first;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.to_ascii_lowercase();
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                let read = reader.read_exact(&mut body).is_ok();
                if failures > 0 {
                    failures -= 1;
                    let _ = reader.get_mut().write_all(
                        b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
                if read && let Ok(v) = serde_json::from_slice(&body) {
                    seen.lock().unwrap().push(v);
                }
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self { url, bodies }
    }

    /// The statuses posted for one build, in order.
    fn statuses(&self, sha1: &str, distro: &str) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["sha1"] == sha1 && b["distro"] == distro)
            .map(|b| b["status"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// `depot serve` on a free port with build repositories (quiet time 1 s,
/// signed with the test key); returns the child and `http://HOST:PORT`.
fn serve(ctx: &TestContext, gpg: &Gpg, extra: &[&str]) -> (Child, String) {
    let mut cmd = ctx.command();
    cmd.env("GNUPGHOME", gpg.home.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sign-key",
            "test@depot.invalid",
            "--quiet-time",
            "1s",
        ])
        .args(extra)
        .stderr(Stdio::null());
    TestContext::start_serve(cmd)
}

/// curl: (status code, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

const UP: &str = "Authorization: Bearer up-token";

fn upload(base: &str, path: &str, file: &Path) -> (u16, String) {
    curl(&[
        "-H",
        UP,
        "-F",
        &format!("file=@{}", file.display()),
        &format!("{base}/api/binaries/{path}"),
    ])
}

fn guards(ctx: &TestContext) {
    let up = ctx.dir.path().join("up.tokens");
    std::fs::write(&up, "up-token\n").unwrap();
    let rd = ctx.dir.path().join("rd.tokens");
    std::fs::write(&rd, "read-token\n").unwrap();
    let (up, rd) = (up.display().to_string(), rd.display().to_string());
    ctx.depot(&[
        "guard",
        "create",
        "ci",
        "--token-file",
        &up,
        "--scope",
        "upload",
    ])
    .ok();
    ctx.depot(&["guard", "create", "readers", "--token-file", &rd])
        .ok();
}

/// Waits until `depot build show` says the build is ready (and not due
/// to be built again).
fn wait_ready(ctx: &TestContext, args: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut a = vec!["build", "show"];
        a.extend(args);
        a.extend(["--output-format", "json"]);
        let run = ctx.depot(&a);
        if run.code == 0 {
            let v = run.json();
            if v["status"] == "ready" {
                return v;
            }
            assert_ne!(v["status"], "failed", "{v}");
        }
        assert!(Instant::now() < deadline, "never ready: {args:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn latest(base: &str) -> Vec<String> {
    let (code, body) = curl(&[&format!(
        "{base}/api/search/?project=ceph&ref=main&sha1=latest&distros=ubuntu/jammy,centos/9&status=ready"
    )]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b["sha1"].as_str().unwrap().to_owned())
        .collect()
}

/// Every regular file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn ci_uploads_become_signed_repos_that_apt_and_dnf_install_from_the_api_repo_file() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    guards(&ctx);
    // The first three POSTs fail: each is retried, none is lost.
    let hook = Hook::start(3);
    let (mut server, base) = serve(&ctx, &gpg, &["--webhook", &hook.url]);
    let pkgs = ctx.dir.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let deb_a = build_deb(&pkgs, "ceph-common", "18.0-1", "amd64", "");
    let rpm_dir = pkgs.join("rpm-a");
    std::fs::create_dir_all(&rpm_dir).unwrap();
    let rpm_a = build_rpm(&rpm_dir, "ceph-common", "18.0", "a");
    let deb_b_dir = pkgs.join("b");
    std::fs::create_dir_all(&deb_b_dir).unwrap();
    let deb_b = build_deb(&deb_b_dir, "ceph-common", "18.1-1", "amd64", "");
    let rpm_b = build_rpm(&rpm_dir, "ceph-common", "18.1", "b");

    // SHA1 aaaa on jammy only (with the job's metadata), then bbbb on both.
    let (code, body) = curl(&[
        "-H",
        UP,
        "-F",
        &format!("file=@{}", deb_a.display()),
        "-F",
        "build_url=https://jenkins.invalid/job/ceph/1/",
        "-F",
        "version=18.0",
        &format!("{base}/api/binaries/ceph/main/aaaa/ubuntu/jammy/amd64/"),
    ]);
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        upload(&base, "ceph/main/bbbb/ubuntu/jammy/amd64/", &deb_b).0,
        201
    );
    // Raw body (--data-binary) works as well as multipart.
    let (code, body) = curl(&[
        "-H",
        UP,
        "--data-binary",
        &format!("@{}", rpm_b.display()),
        &format!("{base}/api/binaries/ceph/main/bbbb/centos/9/noarch/"),
    ]);
    assert_eq!(code, 201, "{body}");
    // The same file again: 200, nothing changes.
    assert_eq!(
        upload(&base, "ceph/main/bbbb/ubuntu/jammy/amd64/", &deb_b).0,
        200
    );
    wait_ready(&ctx, &["ceph", "main", "aaaa", "ubuntu/jammy"]);
    wait_ready(&ctx, &["ceph", "main", "bbbb", "ubuntu/jammy"]);
    wait_ready(&ctx, &["ceph", "main", "bbbb", "centos/9"]);
    // aaaa is ready on jammy only: the newest ready on both is bbbb.
    assert_eq!(latest(&base), ["bbbb", "bbbb"]);
    let cli = ctx
        .depot(&[
            "build",
            "latest",
            "--project",
            "ceph",
            "--ref",
            "main",
            "--distro",
            "ubuntu/jammy",
            "--distro",
            "centos/9",
        ])
        .ok();
    assert_eq!(cli.stdout, "bbbb\n");

    // aaaa becomes ready on both; bbbb (first uploaded later) stays newest.
    assert_eq!(
        upload(&base, "ceph/main/aaaa/centos/9/noarch/", &rpm_a).0,
        201
    );
    wait_ready(&ctx, &["ceph", "main", "aaaa", "centos/9"]);
    assert_eq!(latest(&base), ["bbbb", "bbbb"]);
    let both = ctx
        .depot(&[
            "build",
            "list",
            "--project",
            "ceph",
            "--ref",
            "main",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    let order: Vec<&str> = both
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sha1"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["bbbb", "bbbb", "aaaa", "aaaa"], "newest first");

    // Every build's webhook saw each state in order, with url and extra.
    let deadline = Instant::now() + Duration::from_secs(10);
    for (sha1, distro) in [
        ("aaaa", "ubuntu"),
        ("aaaa", "centos"),
        ("bbbb", "ubuntu"),
        ("bbbb", "centos"),
    ] {
        while hook.statuses(sha1, distro).len() < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            hook.statuses(sha1, distro),
            ["requested", "queued", "building", "ready"],
            "{sha1} {distro}"
        );
    }
    let ready = hook
        .bodies
        .lock()
        .unwrap()
        .iter()
        .find(|b| b["sha1"] == "aaaa" && b["distro"] == "ubuntu" && b["status"] == "ready")
        .cloned()
        .unwrap();
    assert_eq!(
        ready["url"],
        format!("{base}/r/ceph/main/aaaa/ubuntu/jammy/")
    );
    assert_eq!(
        ready["extra"]["build_url"],
        "https://jenkins.invalid/job/ceph/1/"
    );
    assert_eq!(ready["extra"]["version"], "18.0");
    assert!(ready["time"].is_string());

    // Real apt-get with the deb822 stanza exactly as the API returns it
    // (the key embedded in Signed-By:, no key fetched by hand).
    let (code, sources) = curl(&[&format!(
        "{base}/api/repos/ceph/main/latest/ubuntu/jammy/repo"
    )]);
    assert_eq!(code, 200, "{sources}");
    assert!(
        sources.contains("Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{sources}"
    );
    assert!(
        sources.contains("/r/ceph/main/bbbb/ubuntu/jammy/"),
        "{sources}"
    );
    // The one-line form names a keyring file; the key is at /api/key.
    let (code, line) = curl(&[&format!(
        "{base}/api/repos/ceph/main/latest/ubuntu/jammy/repo?format=line"
    )]);
    assert_eq!(code, 200);
    assert!(
        line.contains(&format!(
            "deb [signed-by=/etc/apt/keyrings/depot.asc] {base}/r/ceph/main/bbbb/ubuntu/jammy/ jammy main"
        )),
        "{line}"
    );
    let (code, key) = curl(&[&format!("{base}/api/key")]);
    assert_eq!(code, 200);
    assert!(
        key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{key}"
    );
    let apt = tempfile::tempdir().unwrap();
    let d = apt.path();
    for sub in [
        "parts",
        "state/lists/partial",
        "cache/archives/partial",
        "dl",
    ] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("parts/ceph.sources"), &sources).unwrap();
    let apt_get = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(d.join("dl"));
        for o in [
            "Dir::Etc::SourceList=/dev/null".to_owned(),
            format!("Dir::Etc::SourceParts={}/parts", d.display()),
            format!("Dir::State={}/state", d.display()),
            format!("Dir::Cache={}/cache", d.display()),
            "Dir::State::status=/dev/null".into(),
            "Debug::NoLocking=1".into(),
            "APT::Sandbox::User=root".into(),
            "APT::Architecture=amd64".into(),
            "Acquire::Languages=none".into(),
        ] {
            cmd.arg("-o").arg(o);
        }
        let out = cmd.args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && !err.contains("W:") && !err.contains("E:"),
            "apt-get {args:?}: {err}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    apt_get(&["update"]);
    // A private root has no dpkg database: apt resolves, fetches and
    // verifies the package (what an install does before dpkg runs).
    apt_get(&["install", "-y", "--download-only", "ceph-common"]);
    assert!(
        d.join("cache/archives/ceph-common_18.1-1_amd64.deb")
            .is_file(),
        "{:?}",
        files_under(&d.join("cache"))
    );

    // Real dnf with the .repo file as the API returns it.
    let (code, repo) = curl(&[&format!("{base}/api/repos/ceph/main/bbbb/centos/9/repo")]);
    assert_eq!(code, 200, "{repo}");
    assert!(
        repo.contains("repo_gpgcheck=1\n") && repo.contains(&format!("gpgkey={base}/api/key")),
        "{repo}"
    );
    let dnf = tempfile::tempdir().unwrap();
    let dd = dnf.path();
    std::fs::create_dir_all(dd.join("repos")).unwrap();
    std::fs::write(dd.join("repos/ceph.repo"), &repo).unwrap();
    std::fs::write(dd.join("dnf.conf"), "[main]\n").unwrap();
    let out = Command::new("dnf")
        .args(["-y", "-q", "--noplugins", "--releasever=1"])
        .arg(format!("--config={}/dnf.conf", dd.display()))
        .arg(format!("--installroot={}/root", dd.display()))
        .arg(format!("--setopt=reposdir={}/repos", dd.display()))
        .arg(format!("--setopt=cachedir={}/cache", dd.display()))
        .args(["install", "ceph-common"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dd.join("root/usr/share/doc/ceph-common/README").is_file());
    for e in std::fs::read_dir(dd.join("cache"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(e.path().join("pubring"))
            .args(["--kill", "all"])
            .output();
    }

    // A rebuilt file of the same name: 409 unless force=1.
    let rebuilt_dir = pkgs.join("rebuilt");
    std::fs::create_dir_all(&rebuilt_dir).unwrap();
    let rebuilt = build_deb(
        &rebuilt_dir,
        "ceph-common",
        "18.1-1",
        "amd64",
        "X-Rebuilt: yes\n",
    );
    let (code, body) = upload(&base, "ceph/main/bbbb/ubuntu/jammy/amd64/", &rebuilt);
    assert_eq!(code, 409, "{body}");
    let (code, body) = upload(
        &base,
        "ceph/main/bbbb/ubuntu/jammy/amd64/?force=1",
        &rebuilt,
    );
    assert_eq!(code, 201, "{body}");

    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn bad_uploads_get_the_right_4xx_store_nothing_and_the_server_keeps_serving() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    guards(&ctx);
    let (mut server, base) = serve(&ctx, &gpg, &[]);
    let pkgs = ctx.dir.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let deb = build_deb(&pkgs, "tool", "1.0-1", "amd64", "");
    let not_pkg = pkgs.join("notes.deb");
    std::fs::write(&not_pkg, "this is not a package\n").unwrap();
    let whole = std::fs::read(&deb).unwrap();
    let truncated = pkgs.join("tool_truncated.deb");
    std::fs::write(&truncated, &whole[..whole.len() - 100]).unwrap();
    let jammy = format!("{base}/api/binaries/ceph/main/cccc/ubuntu/jammy/amd64/");
    let file = |p: &Path| format!("file=@{}", p.display());

    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        (vec!["-F".into(), file(&deb), jammy.clone()], 401, ""),
        (
            vec![
                "-H".into(),
                "Authorization: Bearer read-token".into(),
                "-F".into(),
                file(&deb),
                jammy.clone(),
            ],
            403,
            "",
        ),
        (
            vec![
                "-H".into(),
                "Authorization: Bearer nobody".into(),
                "-F".into(),
                file(&deb),
                jammy.clone(),
            ],
            403,
            "",
        ),
        (
            vec![
                "-H".into(),
                UP.into(),
                "-F".into(),
                file(&not_pkg),
                jammy.clone(),
            ],
            400,
            "not a valid .deb",
        ),
        (
            vec![
                "-H".into(),
                UP.into(),
                "-F".into(),
                file(&deb),
                format!("{base}/api/binaries/ceph/main/cccc/centos/9/x86_64/"),
            ],
            400,
            "holds rpm packages",
        ),
        (
            vec![
                "-H".into(),
                UP.into(),
                "-F".into(),
                file(&truncated),
                jammy.clone(),
            ],
            400,
            "truncated",
        ),
        (
            vec![
                "-H".into(),
                UP.into(),
                "-F".into(),
                file(&deb),
                format!("{base}/api/binaries/ceph/main/cccc/ubuntu/jammy/arm64/"),
            ],
            400,
            "uploaded as `arm64`",
        ),
        (
            vec![
                "-H".into(),
                UP.into(),
                "-F".into(),
                file(&deb),
                format!("{base}/api/binaries/ceph/main/%2e%2e/ubuntu/jammy/amd64/"),
            ],
            400,
            "",
        ),
        (
            vec![
                "--path-as-is".into(),
                "-H".into(),
                UP.into(),
                "-F".into(),
                file(&deb),
                format!("{base}/api/binaries/ceph/../cccc/ubuntu/jammy/amd64/"),
            ],
            400,
            "",
        ),
        (
            vec![
                "-H".into(),
                UP.into(),
                "-F".into(),
                file(&deb),
                format!("{base}/api/binaries/ceph/main/cccc/gentoo/1/amd64/"),
            ],
            400,
            "unknown distro",
        ),
    ];
    for (args, want, needle) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, body) = curl(&a);
        assert_eq!(code, *want, "{args:?}: {body}");
        assert!(body.contains(needle), "{args:?}: {body}");
    }
    // An oversized header (1 MiB; curl will not send one): refused by the
    // HTTP layer, and the answer reaches the client.
    {
        let addr = base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/binaries/ceph/main/cccc/ubuntu/jammy/amd64/ HTTP/1.1\r\nHost: {addr}\r\n{UP}\r\nX-Big: {}\r\nContent-Length: {}\r\n\r\n",
            "a".repeat(1 << 20),
            whole.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&whole);
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    // A file cut off mid-upload (the client goes away).
    {
        let addr = base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /api/binaries/ceph/main/cccc/ubuntu/jammy/amd64/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer up-token\r\nContent-Length: {}\r\n\r\n",
            whole.len()
        )
        .unwrap();
        s.write_all(&whole[..whole.len() / 2]).unwrap();
    }

    // Nothing was stored: no build, no blob, no temp file left.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!ctx.root.join("builds/ceph").exists());
    assert_eq!(ctx.assert_pool_consistent(), 0);
    assert_eq!(files_under(&ctx.root.join("tmp")), Vec::<PathBuf>::new());
    // And the server still serves: a good upload lands.
    assert_eq!(curl(&["-H", UP, "-F", &file(&deb), &jammy]).0, 201);
    assert_eq!(curl(&[&format!("{base}/api/search/?project=ceph")]).0, 200);
    // `depot build upload --server` speaks the same API, with the same
    // answers (exit 1 and the server's reason when refused).
    let up = ctx.dir.path().join("up.tokens").display().to_string();
    let rd = ctx.dir.path().join("rd.tokens").display().to_string();
    let deb_s = deb.display().to_string();
    let cli = |token: &str, d: &str| {
        ctx.depot(&[
            "build",
            "upload",
            "ceph",
            "main",
            "cccc",
            d,
            "amd64",
            &deb_s,
            "--server",
            &base,
            "--token-file",
            token,
            "--output-format",
            "json",
        ])
    };
    assert_eq!(
        cli(&up, "ubuntu/jammy").ok().json()[0]["outcome"],
        "unchanged"
    );
    cli(&rd, "ubuntu/jammy").fails(1, "(403)");
    cli(&up, "centos/9").fails(1, "holds rpm packages");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn twenty_concurrent_uploads_into_one_build_all_land_with_at_most_two_builds() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    guards(&ctx);
    // A webhook nobody listens on: retried, dropped, never in the way.
    let (mut server, base) = serve(&ctx, &gpg, &["--webhook", "http://127.0.0.1:9/dead"]);
    let pkgs = ctx.dir.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let debs: Vec<PathBuf> = (0..20)
        .map(|i| build_deb(&pkgs, &format!("pkg{i:02}"), "1.0-1", "amd64", ""))
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = debs
            .iter()
            .map(|d| s.spawn(|| upload(&base, "ceph/main/dddd/ubuntu/jammy/amd64/", d)))
            .collect();
        for h in handles {
            let (code, body) = h.join().unwrap();
            assert_eq!(code, 201, "{body}");
        }
    });
    let b = wait_ready(&ctx, &["ceph", "main", "dddd", "ubuntu/jammy"]);
    let builds = b["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "building")
        .count();
    assert!((1..=2).contains(&builds), "{b}");
    assert_eq!(b["packages"], 20);
    let (code, packages) = curl(&[&format!(
        "{base}/r/ceph/main/dddd/ubuntu/jammy/dists/jammy/main/binary-amd64/Packages"
    )]);
    assert_eq!(code, 200);
    assert_eq!(packages.matches("Package: pkg").count(), 20, "{packages}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn kill_9_of_serve_mid_build_then_a_restart_finishes_the_build() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    guards(&ctx);
    let pkgs = ctx.dir.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let manifest = ctx
        .root
        .join("builds/ceph/main/eeee/ubuntu/jammy/default/build.json");
    let status = || -> String {
        std::fs::read(&manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| v["status"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let (mut server, base) = serve(&ctx, &gpg, &[]);
    for i in 0..10 {
        let deb = build_deb(&pkgs, &format!("p{i}"), "1.0-1", "amd64", "");
        assert_eq!(
            upload(&base, "ceph/main/eeee/ubuntu/jammy/amd64/", &deb).0,
            201
        );
    }
    // Hold the pool's gc turnstile (as a waiting `depot gc` does), so that
    // the build, once `building`, is caught there; then kill -9.
    let turnstile = ctx.root.join("locks/pool-turnstile.lock");
    let gc = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&turnstile)
        .unwrap();
    gc.lock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status() != "building" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    assert_eq!(status(), "building", "killed mid-build");
    drop(gc);
    // What a kill while writing the tree leaves behind.
    let dir = ctx.root.join("builds/ceph/main/eeee/ubuntu/jammy/default");
    std::fs::create_dir_all(dir.join(".tree-10.partial/dists")).unwrap();
    std::fs::write(dir.join(".tree-10.partial/dists/junk"), "half").unwrap();
    let (mut server, base) = serve(&ctx, &gpg, &[]);
    let b = wait_ready(&ctx, &["ceph", "main", "eeee", "ubuntu/jammy"]);
    let statuses: Vec<&str> = b["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.ends_with(&["building", "queued", "building", "ready"]),
        "{statuses:?}"
    );
    let n = b["packages"].as_u64().unwrap();
    let (code, packages) = curl(&[&format!(
        "{base}/r/ceph/main/eeee/ubuntu/jammy/dists/jammy/main/binary-amd64/Packages"
    )]);
    assert_eq!(code, 200);
    assert_eq!(packages.matches("Package: ").count() as u64, n);
    let partials: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(partials.is_empty());
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn prune_keeps_the_newest_sha1s_of_each_ref_and_gc_frees_the_rest() {
    let ctx = TestContext::new();
    let pkgs = ctx.dir.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    // `depot build upload` without --server: straight into the local root.
    for (i, sha1) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
        let dir = pkgs.join(sha1);
        std::fs::create_dir_all(&dir).unwrap();
        let deb = build_deb(&dir, "tool", &format!("1.{i}-1"), "amd64", "");
        let deb = deb.display().to_string();
        let run = ctx
            .depot(&[
                "build",
                "upload",
                "ceph",
                "main",
                sha1,
                "ubuntu/jammy",
                "amd64",
                &deb,
                "--extra",
                "job=ceph-build",
                "--output-format",
                "json",
            ])
            .ok()
            .json();
        assert_eq!(run[0]["outcome"], "created", "{run}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = build_deb(&pkgs, "tool", "9.0-1", "amd64", "");
    ctx.depot(&[
        "build",
        "upload",
        "ceph",
        "reef",
        "o1",
        "ubuntu/jammy",
        "amd64",
        &other.display().to_string(),
    ])
    .ok();
    let show = ctx
        .depot(&[
            "build",
            "show",
            "ceph",
            "main",
            "s1",
            "ubuntu/jammy",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(show["extra"]["job"], "ceph-build");
    assert_eq!(show["status"], "requested");
    let blobs_before = ctx.assert_pool_consistent();

    // Everything is younger than a day: --keep-days keeps it all.
    let plan = ctx
        .depot(&[
            "prune",
            "--project",
            "ceph",
            "--keep-last",
            "1",
            "--keep-days",
            "1",
            "--dry-run",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(plan["dropped"], serde_json::json!([]), "{plan}");
    // Per ref, the newest two SHA1s stay (reef has only one).
    let plan = ctx
        .depot(&[
            "prune",
            "--project",
            "ceph",
            "--keep-last",
            "2",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    let dropped: Vec<&str> = plan["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(dropped, ["ceph/main/s1", "ceph/main/s2"], "{plan}");
    assert!(!ctx.root.join("builds/ceph/main/s1").exists());
    let left: Vec<String> = ctx
        .depot(&[
            "build",
            "list",
            "--project",
            "ceph",
            "--output-format",
            "json",
        ])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{}/{}",
                b["ref"].as_str().unwrap(),
                b["sha1"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(left, ["main/s4", "main/s3", "reef/o1"]);
    ctx.depot(&["gc"]).ok();
    // Each dropped SHA1 freed its package and nothing else went.
    assert_eq!(ctx.assert_pool_consistent(), blobs_before - 2);
    let s3 = ctx
        .depot(&[
            "build",
            "show",
            "ceph",
            "main",
            "s3",
            "ubuntu/jammy",
            "--output-format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(s3["files"], serde_json::json!(["tool_1.2-1_amd64.deb"]));
}

#[test]
fn an_upload_during_a_build_lands_and_triggers_one_more_build() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    guards(&ctx);
    let (mut server, base) = serve(&ctx, &gpg, &[]);
    let pkgs = ctx.dir.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let first = build_deb(&pkgs, "first", "1.0-1", "amd64", "");
    let second = build_deb(&pkgs, "second", "1.0-1", "amd64", "");
    let path = "ceph/main/ffff/ubuntu/jammy/amd64/";
    assert_eq!(upload(&base, path, &first).0, 201);
    // Hold the pool's gc turnstile, as a waiting `depot gc` does: the
    // build, once `building`, waits before writing its tree.
    let turnstile = ctx.root.join("locks/pool-turnstile.lock");
    let gc = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&turnstile)
        .unwrap();
    gc.lock().unwrap();
    let manifest = ctx
        .root
        .join("builds/ceph/main/ffff/ubuntu/jammy/default/build.json");
    let status = || -> String {
        std::fs::read(&manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| v["status"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while status() != "building" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(status(), "building");
    std::thread::scope(|s| {
        let late = s.spawn(|| upload(&base, path, &second));
        std::thread::sleep(Duration::from_millis(300));
        drop(gc);
        assert_eq!(late.join().unwrap().0, 201);
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let b = loop {
        let b = wait_ready(&ctx, &["ceph", "main", "ffff", "ubuntu/jammy"]);
        if b["packages"] == 2 || Instant::now() > deadline {
            break b;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let statuses: Vec<&str> = b["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "requested",
            "queued",
            "building",
            "ready",
            "requested",
            "queued",
            "building",
            "ready"
        ],
        "{b}"
    );
    let (_, packages) = curl(&[&format!(
        "{base}/r/ceph/main/ffff/ubuntu/jammy/dists/jammy/main/binary-amd64/Packages"
    )]);
    assert!(packages.contains("Package: first") && packages.contains("Package: second"));
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The server's anonymous (heap) memory, in KiB.
fn rss_anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_large_upload_is_streamed_not_held_in_memory() {
    let ctx = TestContext::new();
    let gpg = Gpg::new();
    guards(&ctx);
    let (mut server, base) = serve(&ctx, &gpg, &[]);
    let pid = server.id();
    // A 128 MiB package (uncompressed random payload).
    let tree = ctx.dir.path().join("big");
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/big")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        "Package: big\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: CI <ci@depot.invalid>\nDescription: big\n",
    )
    .unwrap();
    let mut data = std::fs::File::create(tree.join("usr/share/big/blob")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..128 {
        for b in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        data.write_all(&chunk).unwrap();
    }
    drop(data);
    let deb = ctx.dir.path().join("big_1.0-1_amd64.deb");
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Znone", "--build"])
        .arg(&tree)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&tree).unwrap();
    let before = rss_anon_kib(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak.fetch_max(rss_anon_kib(pid), std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let (code, body) = curl(&[
        "-H",
        UP,
        "--data-binary",
        &format!("@{}", deb.display()),
        &format!("{base}/api/binaries/ceph/main/big1/ubuntu/jammy/amd64/"),
    ]);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    assert_eq!(code, 201, "{body}");
    let grew = peak.load(std::sync::atomic::Ordering::SeqCst) - before;
    // 128 MiB went through; the heap grew by a few buffers at most.
    assert!(
        grew < 32 * 1024,
        "heap grew by {grew} KiB during the upload"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
