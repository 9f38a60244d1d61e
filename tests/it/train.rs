//! `depot train`: whole nights over fixture upstreams — mirrors, a local
//! repo, a release, two distributions, tests through the spool and a
//! worker, a gated promotion — and what happens when a night is killed,
//! an upstream breaks, a file is wrong or two runs collide.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::release::build_deb;
use crate::support::{TestContext, fixtures};

const NIGHT1: &str = "2026-11-22T02:00:00Z";
const RUN1: &str = "20261122T020000Z";
const NIGHT2: &str = "2026-11-23T02:00:00Z";
const RUN2: &str = "20261123T020000Z";

/// A loopback webhook listener: records each POSTed JSON body; the
/// event named by `hold` is recorded but never answered.
struct Hooks {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
    hold: Arc<Mutex<Option<String>>>,
}

impl Hooks {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let hold: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let (g, h) = (got.clone(), hold.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (g, h) = (g.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    let mut len = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    let held = h.lock().unwrap().as_deref() == v["event"].as_str();
                    g.lock().unwrap().push(v);
                    if held {
                        std::thread::sleep(Duration::from_secs(60));
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Self { url, got, hold }
    }

    fn events(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                format!(
                    "{} {}",
                    v["event"].as_str().unwrap(),
                    v["step"].as_str().unwrap_or("-")
                )
            })
            .collect()
    }
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/hook", l.local_addr().unwrap())
}

/// The parts of a train file, filled in per test.
struct Night<'a> {
    train: &'a str,
    apt_url: String,
    rpm_url: Option<String>,
    policy: &'a str,
    tests: bool,
    hooks: Vec<String>,
}

impl Night<'_> {
    /// Train `nightly` over the apt fixture `state1` served at `/up/`
    /// (immediate policy, no rpm distribution, no webhook), with or
    /// without its test gate.
    fn apt(ctx: &TestContext, tests: bool) -> Self {
        Night {
            train: "nightly",
            apt_url: ctx.serve_apt("state1", "up"),
            rpm_url: None,
            policy: "immediate",
            tests,
            hooks: vec![],
        }
    }

    fn yaml(&self) -> String {
        let keyring = fixtures().join("apt/keys/good.gpg");
        let mut y = format!(
            "train: {}\nmirrors:\n  - name: up\n    url: {}\n    kind: apt\n    suite: stable\n    components: [main]\n    archs: [amd64]\n    keyring: {}\n    policy: {}\n",
            self.train,
            self.apt_url,
            keyring.display(),
            self.policy
        );
        if let Some(rpm) = &self.rpm_url {
            y += &format!(
                "  - name: el\n    url: {rpm}\n    kind: rpm\n    keyring: {}\n",
                fixtures().join("rpm/keys/good.asc").display()
            );
        }
        y += "repos: [ci]\nreleases:\n  main:\n    from: [up, ci]\n    policy: latest\npublish:\n  stable: {from: main, skip-signing: true}\n";
        if self.rpm_url.is_some() {
            y += "  el9: {from: el, skip-signing: true}\n";
        }
        if self.tests {
            y += "tests:\n  stable: {arch: [amd64], queue: spool, timeout: 1h}\npromote:\n  stable: {to: release, require-tests: true}\n";
        }
        if !self.hooks.is_empty() {
            y += &format!("notify: [{}]\n", self.hooks.join(", "));
        }
        y
    }
}

fn write(ctx: &TestContext, name: &str, text: &str) -> PathBuf {
    let path = ctx.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A local repo `ci` with one freshly built package.
fn ci_repo(ctx: &TestContext) {
    let deb = build_deb(ctx.dir.path(), "tool", "1.0", "amd64", "");
    ctx.depot(&["repo", "create", "ci", "--kind", "apt", "--arch", "amd64"])
        .ok();
    ctx.depot(&["repo", "add", "ci", deb.to_str().unwrap()])
        .ok();
}

fn train(ctx: &TestContext, args: &[&str], file: &Path) -> crate::support::Run {
    let mut all: Vec<&str> = vec!["train"];
    all.extend(args);
    all.push(file.to_str().unwrap());
    ctx.depot(&all)
}

fn journal(ctx: &TestContext, train: &str, run: &str) -> Value {
    let path = ctx.root.join(format!("trains/{train}/{run}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn state(j: &Value, id: &str) -> String {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {j:#}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs the spool's requests with `script` until none is queued.
fn work_all(ctx: &TestContext, script: &str) -> usize {
    let mut n = 0;
    loop {
        let run = ctx
            .depot(&["test", "worker", "--once", "--", "sh", "-c", script])
            .ok();
        if run.stdout.contains("no request queued") {
            return n;
        }
        n += 1;
        assert!(n < 50, "the spool does not drain");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn link(path: PathBuf) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|t| t.display().to_string())
}

#[test]
fn train_night_one_promotes_once_tests_pass_and_night_two_keeps_release_when_they_fail() {
    let mut ctx = TestContext::new();
    let hooks = Hooks::start();
    ci_repo(&ctx);
    let night = Night {
        train: "nightly",
        apt_url: ctx.serve_apt("state1", "up"),
        rpm_url: Some(ctx.serve_rpm("state1", "el")),
        policy: "immediate",
        tests: true,
        hooks: vec![hooks.url.clone()],
    };
    let file = write(&ctx, "nightly.yaml", &night.yaml());

    // Night one: everything is made, the gate waits for the tests.
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    let run = train(&ctx, &["run"], &file);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("promote/stable"), "{}", run.stderr);
    let j = journal(&ctx, "nightly", RUN1);
    assert_eq!(state(&j, "promote/stable"), "waiting");
    for id in [
        "mirror/up",
        "mirror/el",
        "snapshot/up",
        "snapshot/el",
        "snapshot/ci",
        "release/main",
        "publish/stable",
        "publish/el9",
        "tests/stable",
    ] {
        assert_eq!(state(&j, id), "done", "{id}: {j:#}");
    }
    let pub_ = ctx.root.join("public");
    assert_eq!(link(pub_.join("stable/dev")).as_deref(), Some(RUN1));
    assert_eq!(link(pub_.join("el9/dev")).as_deref(), Some(RUN1));
    assert_eq!(link(pub_.join("stable/release")), None);
    let ran = work_all(&ctx, "true");
    assert!(ran >= 4, "every source is tested on the first night: {ran}");

    // Hourly resume: the gate passes, release moves.
    let run = train(&ctx, &["resume", "--output-format", "json"], &file).ok();
    let report = run.json();
    assert_eq!(report["run"], RUN1);
    assert_eq!(report["outcome"], "done");
    assert_eq!(link(pub_.join("stable/release")).as_deref(), Some(RUN1));

    // Night two: upstream changed; its tests fail; release stays.
    ctx.serve_apt("state2", "up");
    ctx.env.insert("DEPOT_NOW".into(), NIGHT2.into());
    assert_eq!(train(&ctx, &["run"], &file).code, 4);
    let ran = work_all(&ctx, "echo boom; exit 4");
    assert!(
        ran >= 2,
        "the changed alpha and its reverse dependency beta: {ran}"
    );
    let run = train(&ctx, &["resume"], &file).fails(1, "promote/stable");
    assert!(
        run.stdout
            .contains("tests of stable/20261123T020000Z failed"),
        "{}",
        run.stdout
    );
    assert_eq!(link(pub_.join("stable/dev")).as_deref(), Some(RUN2));
    assert_eq!(link(pub_.join("stable/release")).as_deref(), Some(RUN1));

    // Every name carries its run's id, and each exists once.
    let snaps: Vec<String> = [RUN1, RUN2]
        .iter()
        .flat_map(|r| ["ci", "el", "up"].map(|s| format!("{s}-{r}.json")))
        .collect();
    let mut want = snaps.clone();
    want.sort();
    assert_eq!(names(&ctx.root.join("snapshots")), want);
    assert_eq!(
        names(&ctx.root.join("releases")),
        [format!("main-{RUN1}.json"), format!("main-{RUN2}.json")]
    );
    assert_eq!(names(&pub_.join("stable")), [RUN1, RUN2, "dev", "release"]);
    assert_eq!(names(&pub_.join("el9")), [RUN1, RUN2, "dev"]);
    ctx.assert_pool_consistent();

    // The list and the status say the same, as text and JSON.
    let list = train(&ctx, &["list", "--output-format", "json"], &file)
        .ok()
        .json();
    assert_eq!(list[0]["run"], RUN1);
    assert_eq!(list[0]["outcome"], "done");
    assert_eq!(list[1]["outcome"], "failed");
    let status = train(&ctx, &["status"], &file).ok();
    assert!(
        status.stdout.contains("promote/stable") && status.stdout.contains("failed"),
        "{}",
        status.stdout
    );

    let events = hooks.events();
    for e in [
        "run-started -",
        "published publish/stable",
        "published publish/el9",
        "tests-pending promote/stable",
        "promoted promote/stable",
        "step-failed promote/stable",
        "run-finished -",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} not in {events:?}");
    }
}

#[test]
fn a_failing_upstream_blocks_only_what_is_built_from_it_and_resume_retries_it() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let night = Night {
        train: "nightly",
        apt_url: ctx.serve_apt("state1", "up"),
        rpm_url: Some(ctx.serve_rpm("state1", "el")),
        policy: "immediate",
        tests: false,
        // A webhook that is down never fails the run.
        hooks: vec![dead_url()],
    };
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    ctx.server.fail_always("el/");
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    let run = train(&ctx, &["run"], &file).fails(1, "mirror/el failed");
    assert!(
        run.stderr.contains("blocked: snapshot/el, publish/el9"),
        "{}",
        run.stderr
    );
    let j = journal(&ctx, "nightly", RUN1);
    assert_eq!(state(&j, "mirror/el"), "failed");
    let step = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "publish/el9")
        .unwrap();
    assert_eq!(step["state"], "blocked");
    assert_eq!(step["by"], serde_json::json!(["mirror/el"]));
    assert!(
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "mirror/el" && s["error"].as_str().unwrap().contains("500")),
        "{j:#}"
    );
    assert_eq!(state(&j, "publish/stable"), "done");
    let pub_ = ctx.root.join("public");
    assert_eq!(link(pub_.join("stable/dev")).as_deref(), Some(RUN1));
    assert!(!pub_.join("el9").exists());

    // Upstream heals; resume retries the failed step and what it blocked,
    // and does not redo what was done.
    ctx.server.heal();
    ctx.server.clear_log();
    ctx.env.insert("DEPOT_NOW".into(), NIGHT2.into());
    train(&ctx, &["resume"], &file).ok();
    assert!(
        !ctx.server.requests().iter().any(|r| r.starts_with("up/")),
        "the done mirror was not updated again"
    );
    let j = journal(&ctx, "nightly", RUN1);
    assert_eq!(j["outcome"], "done");
    assert_eq!(link(pub_.join("el9/dev")).as_deref(), Some(RUN1));
    assert_eq!(names(&pub_.join("stable")), [RUN1, "dev"]);
}

/// Every path under `dir` with its kind and content hash or link target.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if meta.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&p).unwrap().display()
                ));
            } else if meta.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push(format!(
                    "{rel} {}",
                    const_hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn dry_run_prints_the_plan_and_leaves_the_root_byte_identical() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let night = Night::apt(&ctx, true);
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    // A fresh root: the inline mirror does not exist yet.
    let before = listing(&ctx.root);
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    let run = train(&ctx, &["run", "--dry-run"], &file).ok();
    assert!(run.stdout.contains("create, update"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("main-{RUN1}")),
        "{}",
        run.stdout
    );
    assert_eq!(listing(&ctx.root), before);

    // After a night, with a changed file and upstream.
    assert_eq!(train(&ctx, &["run"], &file).code, 4);
    ctx.serve_apt("state2", "up");
    let edited = night.yaml().replace("policy: latest", "policy: first");
    let file = write(&ctx, "nightly.yaml", &edited);
    ctx.env.insert("DEPOT_NOW".into(), NIGHT2.into());
    let before = listing(&ctx.root);
    let plan = train(
        &ctx,
        &["run", "--dry-run", "--output-format", "json"],
        &file,
    )
    .ok()
    .json();
    assert_eq!(listing(&ctx.root), before);
    assert_eq!(plan["run"], RUN2);
    let makes: Vec<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["id"].as_str().unwrap(),
                s["makes"].as_str().unwrap()
            )
        })
        .collect();
    assert!(makes.contains(&"mirror/up update".to_owned()), "{makes:?}");
    assert!(
        makes.contains(&format!(
            "release/main main-{RUN2} (first of up-{RUN2}, ci-{RUN2})"
        )),
        "{makes:?}"
    );
    assert!(
        makes
            .iter()
            .any(|m| m.starts_with("tests/stable") && m.contains("since nothing")),
        "nothing is released yet: {makes:?}"
    );
}

#[test]
fn a_malformed_train_file_exits_2_naming_the_place_and_writes_nothing() {
    let ctx = TestContext::new();
    ci_repo(&ctx);
    let before = listing(&ctx.root);
    for (text, needle) in [
        (
            "train: t\nrepos: [ci]\npublish:\n  d: {from: ci, sign_key: x}\n",
            "unknown field `sign_key`",
        ),
        (
            "train: t\nrepos: [ci]\nreleases:\n  r:\n    from: [ci, nowhere]\n",
            "releases.r.from[1]: `nowhere` is neither",
        ),
        ("train: t\nrepos: [ci\n", "line 2"),
        (
            "train: t\nrepos: [nope]\n",
            "repos[0]: no repo named `nope`",
        ),
        (
            "train: t\nmirrors:\n  - name: m\n    url: http://x/\n    kind: apt\n",
            "mirrors[0]: invalid mirror definition",
        ),
        (
            "train: t\nrepos: [ci]\nretention:\n  keep: 3\n",
            "unknown field `keep`",
        ),
        (
            "train: t\nrepos: [ci]\nretention: {}\n",
            "retention: needs `keep-last:`",
        ),
        (
            "train: t\nrepos: [ci]\nretention: {keep-last: 2, gc: true}\n",
            "line 3",
        ),
        (
            "train: t\nmirrors:\n  - {name: el, url: 'http://x/', kind: rpm, no-verify: true}\npublish:\n  d: {from: el}\ntests:\n  d: {arch: [x86_64]}\n",
            "tests.d: `d` publishes rpm packages",
        ),
    ] {
        let file = write(&ctx, "bad.yaml", text);
        for args in [&["run"][..], &["run", "--dry-run"], &["resume"]] {
            train(&ctx, args, &file).fails(2, needle);
        }
    }
    assert_eq!(listing(&ctx.root), before);
}

fn spawn(ctx: &TestContext, args: &[&str], file: &Path) -> Child {
    ctx.command()
        .arg("train")
        .args(args)
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn step_state(ctx: &TestContext, id: &str) -> Option<String> {
    let path = ctx.root.join(format!("trains/nightly/{RUN1}.json"));
    let j: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    j["steps"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
        .and_then(|s| s["state"].as_str().map(str::to_owned))
}

#[test]
fn one_run_of_a_train_at_a_time_and_other_trains_alongside() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let night = Night::apt(&ctx, false);
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    let deb = build_deb(ctx.dir.path(), "other", "1.0", "amd64", "");
    ctx.depot(&["repo", "create", "ci2", "--kind", "apt"]).ok();
    ctx.depot(&["repo", "add", "ci2", deb.to_str().unwrap()])
        .ok();
    let other = write(
        &ctx,
        "other.yaml",
        "train: other\nrepos: [ci2]\npublish:\n  ci: {from: ci2, skip-signing: true}\n",
    );
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    ctx.server.stall_debs(Duration::from_secs(3));
    let mut first = spawn(&ctx, &["run"], &file);
    wait_for("the first run updates its mirror", || {
        ctx.server.most_debs_in_flight() > 0
    });
    train(&ctx, &["run"], &file).fails(3, "train `nightly` is busy");
    train(&ctx, &["resume"], &file).fails(3, "busy");
    train(&ctx, &["run"], &other).ok();
    assert!(first.wait().unwrap().success());
    assert_eq!(
        link(ctx.root.join("public/ci/dev")).as_deref(),
        Some(RUN1),
        "the other train published"
    );
    assert_eq!(journal(&ctx, "nightly", RUN1)["outcome"], "done");
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// What a finished night made: snapshots, releases, versions.
fn made(ctx: &TestContext) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        names(&ctx.root.join("snapshots")),
        names(&ctx.root.join("releases")),
        names(&ctx.root.join("public/stable")),
    )
}

fn expected() -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        vec![format!("ci-{RUN1}.json"), format!("up-{RUN1}.json")],
        vec![format!("main-{RUN1}.json")],
        vec![RUN1.to_owned(), "dev".to_owned()],
    )
}

#[test]
fn kill_during_mirror_update_then_resume_completes_the_night() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let night = Night::apt(&ctx, false);
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    ctx.server.stall_debs(Duration::from_secs(30));
    let mut child = spawn(&ctx, &["run"], &file);
    wait_for("a package download in flight", || {
        ctx.server.most_debs_in_flight() > 0
    });
    assert_eq!(step_state(&ctx, "mirror/up").as_deref(), Some("running"));
    kill(&mut child);
    ctx.server.stall_debs(Duration::ZERO);
    let run = train(&ctx, &["resume", "--output-format", "json"], &file).ok();
    assert_eq!(run.json()["attempts"], 2);
    assert_eq!(made(&ctx), expected());
    ctx.assert_pool_consistent();
}

/// A run's journal is created without waiting for the disk; a power loss
/// before its first save leaves it empty. Such a run lists with no steps,
/// and `resume` runs its night under its own RUN id.
#[test]
fn a_journal_left_empty_by_a_power_loss_is_resumed_from_the_start() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let night = Night::apt(&ctx, false);
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    let dir = ctx.root.join("trains/nightly");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{RUN1}.json")), b"").unwrap();
    let list = train(&ctx, &["list", "--output-format", "json"], &file)
        .ok()
        .json();
    assert_eq!(list[0]["run"], RUN1);
    assert_eq!(list[0]["steps"], 0);
    assert_eq!(list[0]["started"], NIGHT1);
    ctx.env
        .insert("DEPOT_NOW".into(), "2026-11-22T03:00:00Z".into());
    let run = train(&ctx, &["resume", "--output-format", "json"], &file).ok();
    assert_eq!(run.json()["run"], RUN1);
    assert_eq!(run.json()["outcome"], "done");
    assert_eq!(made(&ctx), expected());
}

#[test]
fn kill_during_publish_then_resume_completes_the_night() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    // On demand: the packages are fetched by the publish, which stalls.
    let night = Night {
        policy: "on-demand",
        ..Night::apt(&ctx, false)
    };
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    ctx.server.stall_debs(Duration::from_secs(30));
    let mut child = spawn(&ctx, &["run"], &file);
    wait_for("the publish fetching packages", || {
        ctx.server.most_debs_in_flight() > 0
    });
    assert_eq!(
        step_state(&ctx, "publish/stable").as_deref(),
        Some("running")
    );
    kill(&mut child);
    ctx.server.stall_debs(Duration::ZERO);
    train(&ctx, &["resume"], &file).ok();
    assert_eq!(made(&ctx), expected());
    assert_eq!(
        link(ctx.root.join("public/stable/dev")).as_deref(),
        Some(RUN1)
    );
    ctx.assert_pool_consistent();

    // Killed after the version folder was renamed into place but before
    // it was recorded: resume finishes that publish rather than refusing
    // or making a second version.
    let record = ctx.root.join(format!("dists/stable/{RUN1}.json"));
    std::fs::remove_file(&record).unwrap();
    std::fs::remove_file(ctx.root.join("public/stable/dev")).unwrap();
    let path = ctx.root.join(format!("trains/nightly/{RUN1}.json"));
    let mut j: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for s in j["steps"].as_array_mut().unwrap() {
        if s["id"] == "publish/stable" {
            s["state"] = "running".into();
        }
    }
    j["outcome"] = Value::Null;
    std::fs::write(&path, serde_json::to_vec(&j).unwrap()).unwrap();
    let run = train(&ctx, &["resume", "--output-format", "json"], &file).ok();
    let step = run.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "publish/stable")
        .cloned()
        .unwrap();
    assert_eq!(step["made"]["adopted"], "true", "{step:#}");
    assert!(record.is_file());
    assert_eq!(
        link(ctx.root.join("public/stable/dev")).as_deref(),
        Some(RUN1)
    );
    assert_eq!(made(&ctx), expected());

    // Outside a resume, a version that exists is refused.
    let dist = ctx
        .depot(&["dist", "show", "stable", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(dist["versions"].as_array().unwrap().len(), 1);
}

#[test]
fn kill_after_publish_before_tests_then_resume_submits_and_promotes() {
    let mut ctx = TestContext::new();
    let hooks = Hooks::start();
    ci_repo(&ctx);
    let night = Night {
        hooks: vec![hooks.url.clone()],
        ..Night::apt(&ctx, true)
    };
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    // The listener holds the `published` event: the run is between its
    // publish (journaled done) and its tests when it is killed.
    *hooks.hold.lock().unwrap() = Some("published".into());
    let mut child = spawn(&ctx, &["run"], &file);
    wait_for("the published event", || {
        hooks.events().iter().any(|e| e.starts_with("published"))
    });
    assert_eq!(step_state(&ctx, "publish/stable").as_deref(), Some("done"));
    assert_eq!(step_state(&ctx, "tests/stable").as_deref(), Some("pending"));
    kill(&mut child);
    *hooks.hold.lock().unwrap() = None;

    let run = train(&ctx, &["resume"], &file);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(work_all(&ctx, "true") > 0);
    train(&ctx, &["resume"], &file).ok();
    assert_eq!(
        link(ctx.root.join("public/stable/release")).as_deref(),
        Some(RUN1)
    );
    assert_eq!(made(&ctx).0, expected().0);
    assert_eq!(made(&ctx).1, expected().1);
    assert_eq!(made(&ctx).2, [RUN1, "dev", "release"]);
    ctx.assert_pool_consistent();
    // A resume of a finished night does nothing and says so.
    let run = train(&ctx, &["resume", "--output-format", "json"], &file).ok();
    assert_eq!(run.json()["outcome"], "done");
}

#[test]
fn publish_as_a_named_version_refuses_one_that_exists() {
    let ctx = TestContext::new();
    ctx.apt_snapshot("m", "s1");
    let args = [
        "publish",
        "s1",
        "--dist",
        "d",
        "--skip-signing",
        "--as-version",
        "v1",
    ];
    ctx.depot(&args).ok();
    assert_eq!(link(ctx.root.join("public/d/dev")).as_deref(), Some("v1"));
    ctx.depot(&args).fails(
        1,
        "distribution `d` already has a version `v1` (published from `s1`)",
    );
    assert_eq!(names(&ctx.root.join("public/d")), ["dev", "v1"]);
}

#[test]
fn a_test_gate_pending_past_its_timeout_fails_the_promotion() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let night = Night::apt(&ctx, true);
    let file = write(
        &ctx,
        "nightly.yaml",
        &night.yaml().replace("timeout: 1h", "timeout: 1s"),
    );
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    assert_eq!(train(&ctx, &["run"], &file).code, 4);
    std::thread::sleep(Duration::from_millis(1500));
    train(&ctx, &["resume"], &file).fails(1, "promote/stable");
    let j = journal(&ctx, "nightly", RUN1);
    let step = &j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "promote/stable")
        .unwrap();
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("still pending after 1s"),
        "{step:#}"
    );
    assert_eq!(link(ctx.root.join("public/stable/release")), None);
}

#[test]
fn tests_go_to_rabbitmq_when_the_queue_is_a_broker_url() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let rel = crate::testreq::unique_release();
    let url = crate::testreq::amqp_url();
    let night = Night::apt(&ctx, true);
    let yaml = night
        .yaml()
        .replace("queue: spool", &format!("release: {rel}, queue: '{url}'"));
    let file = write(&ctx, "nightly.yaml", &yaml);
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    assert_eq!(train(&ctx, &["run"], &file).code, 4);
    assert!(!ctx.root.join("spool").exists(), "nothing spooled");
    let mut ran = 0;
    loop {
        let run = ctx
            .depot(&[
                "test",
                "worker",
                "--broker",
                &url,
                "--release",
                &rel,
                "--arch",
                "amd64",
                "--once",
                "--",
                "true",
            ])
            .ok();
        if run.stdout.contains("no request queued") {
            break;
        }
        ran += 1;
        assert!(ran < 50);
    }
    assert!(ran >= 4, "{ran}");
    train(&ctx, &["resume"], &file).ok();
    assert_eq!(
        link(ctx.root.join("public/stable/release")).as_deref(),
        Some(RUN1)
    );
    // The journal never shows the broker's password.
    let text =
        std::fs::read_to_string(ctx.root.join(format!("trains/nightly/{RUN1}.json"))).unwrap();
    assert!(!text.contains("guest:guest"), "{text}");
}

#[test]
fn an_inline_mirror_is_created_then_brought_in_line_with_the_file() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let mut night = Night {
        train: "nightly",
        apt_url: ctx.serve_apt("state1", "up"),
        rpm_url: None,
        policy: "immediate",
        tests: false,
        hooks: vec![],
    };
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    let j = train(&ctx, &["run", "--output-format", "json"], &file)
        .ok()
        .json();
    assert_eq!(j["steps"][0]["made"]["mirror"], "created, updated");

    // The file now points at another upstream: the definition follows.
    night.apt_url = ctx.serve_apt("state2", "elsewhere");
    let file = write(&ctx, "nightly.yaml", &night.yaml());
    ctx.env.insert("DEPOT_NOW".into(), NIGHT2.into());
    let j = train(&ctx, &["run", "--output-format", "json"], &file)
        .ok()
        .json();
    assert_eq!(
        j["steps"][0]["made"]["mirror"],
        "edited to match the file, updated"
    );
    let show = ctx
        .depot(&["mirror", "show", "up", "--output-format", "json"])
        .ok()
        .json();
    assert_eq!(show["url"], night.apt_url);
    let versions = |snap: &str| {
        ctx.depot(&[
            "snapshot",
            "show",
            snap,
            "--packages",
            "--output-format",
            "json",
        ])
        .ok()
        .json()["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "alpha")
            .map(|p| p["version"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&format!("up-{RUN1}")), ["1.0-1"]);
    assert_eq!(versions(&format!("up-{RUN2}")), ["1.1-1"]);
}

/// Runs a train of three mirrors with `mirror-concurrency: limit` and one
/// download at a time per mirror; returns the most downloads in flight at
/// once, which counts the mirrors updating at once.
fn mirrors_in_flight(limit: usize) -> usize {
    let mut ctx = TestContext::new();
    std::fs::create_dir_all(ctx.dir.path().join("depot")).unwrap();
    std::fs::write(ctx.dir.path().join("depot/config.yaml"), "concurrency: 1\n").unwrap();
    let keyring = fixtures().join("apt/keys/good.gpg");
    let mut yaml = format!("train: many\nmirror-concurrency: {limit}\nmirrors:\n");
    for name in ["a", "b", "c"] {
        yaml += &format!(
            "  - {{name: {name}, url: '{}', kind: apt, suite: stable, components: [main], archs: [amd64], keyring: '{}'}}\n",
            ctx.serve_apt("state1", name),
            keyring.display()
        );
    }
    let file = write(&ctx, "many.yaml", &yaml);
    ctx.server.stall_debs(Duration::from_millis(300));
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    train(&ctx, &["run"], &file).ok();
    ctx.server.most_debs_in_flight()
}

#[test]
fn mirrors_update_concurrently_up_to_mirror_concurrency() {
    assert_eq!(mirrors_in_flight(2), 2);
    assert_eq!(mirrors_in_flight(1), 1);
}

#[test]
fn retention_keeps_the_newest_two_of_what_the_train_made_and_what_a_stage_serves() {
    const NIGHT3: &str = "2026-11-24T02:00:00Z";
    const RUN3: &str = "20261124T020000Z";
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    // Snapshots in depot's timestamp form that are not this train's.
    let side = [
        "side-20261101T000000Z",
        "side-20261102T000000Z",
        "side-20261103T000000Z",
    ];
    for name in side {
        ctx.depot(&["snapshot", "create", name, "--repo", "ci"])
            .ok();
    }
    let night = Night::apt(&ctx, false);
    let file = write(
        &ctx,
        "nightly.yaml",
        &(night.yaml() + "retention: {keep-last: 2}\n"),
    );
    let dry = train(&ctx, &["run", "--dry-run"], &file).ok();
    assert!(dry.stdout.contains("retention"), "{}", dry.stdout);
    for (i, (now, run)) in [(NIGHT1, RUN1), (NIGHT2, RUN2), (NIGHT3, RUN3)]
        .into_iter()
        .enumerate()
    {
        ctx.env.insert("DEPOT_NOW".into(), now.into());
        train(&ctx, &["run"], &file).ok();
        let j = journal(&ctx, "nightly", run);
        assert_eq!(state(&j, "retention"), "done", "{j:#}");
        if i == 0 {
            // `release` serves night one's version from here on.
            ctx.depot(&["promote", "stable", RUN1, "--to", "release"])
                .ok();
        }
    }
    let j = journal(&ctx, "nightly", RUN3);
    let step = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "retention")
        .unwrap();
    // Every other step comes first.
    assert_eq!(
        step["after"].as_array().unwrap().len(),
        j["steps"].as_array().unwrap().len() - 1
    );
    assert_eq!(
        step["made"]["dropped"],
        format!("ci-{RUN1}, up-{RUN1}"),
        "{step:#}"
    );
    let mut snapshots = vec![
        format!("ci-{RUN2}.json"),
        format!("ci-{RUN3}.json"),
        format!("up-{RUN2}.json"),
        format!("up-{RUN3}.json"),
    ];
    snapshots.extend(side.iter().map(|s| format!("{s}.json")));
    snapshots.sort();
    assert_eq!(
        made(&ctx),
        (
            snapshots,
            // Night one's release and version stay: `release` serves them.
            vec![
                format!("main-{RUN1}.json"),
                format!("main-{RUN2}.json"),
                format!("main-{RUN3}.json"),
            ],
            vec![
                RUN1.to_owned(),
                RUN2.to_owned(),
                RUN3.to_owned(),
                "dev".to_owned(),
                "release".to_owned(),
            ],
        )
    );
}

#[test]
fn retention_waits_behind_a_pending_test_gate_and_the_resume_that_passes_it_prunes() {
    let mut ctx = TestContext::new();
    ci_repo(&ctx);
    let night = Night::apt(&ctx, true);
    let file = write(
        &ctx,
        "nightly.yaml",
        &(night.yaml() + "retention: {keep-last: 1}\n"),
    );
    ctx.env.insert("DEPOT_NOW".into(), NIGHT1.into());
    let run = train(&ctx, &["run"], &file);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    let j = journal(&ctx, "nightly", RUN1);
    assert_eq!(state(&j, "promote/stable"), "waiting");
    assert_eq!(state(&j, "retention"), "waiting");
    work_all(&ctx, "exit 0");
    train(&ctx, &["resume"], &file).ok();
    let j = journal(&ctx, "nightly", RUN1);
    assert_eq!(j["outcome"], "done");
    assert_eq!(state(&j, "retention"), "done");
    let (snapshots, releases, mut versions) = expected();
    versions.push("release".into());
    assert_eq!(made(&ctx), (snapshots, releases, versions));
}
