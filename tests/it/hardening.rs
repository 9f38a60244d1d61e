//! Hardening: `kill -9` at a random instant in every writing command, and
//! eight processes racing over the same objects. After each kill the root
//! is whole (`depot check --full`: every blob is its name, every manifest's
//! blobs exist, every stage points at a complete version) and a rerun of
//! the command succeeds; after the soak, the same holds and every refusal
//! was exit 3 naming what holds the object.
//!
//! `scripts/kill-anywhere.sh` and `scripts/soak.sh` run these at full size
//! (`DEPOT_KILLS`, default 10 per command here; `DEPOT_SOAK_SECS`, default
//! 60). `DEPOT_SEED` replays a run: the seed is printed on failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::retention::{deb, moving_upstream};
use crate::support::TestContext;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: reproducible from its printed seed.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = env_or(
            "DEPOT_SEED",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        )
        .max(1);
        eprintln!("DEPOT_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A mirror `m` over an upstream that moves between three states, a local
/// repo `r`, snapshots `s0` (of m) and `r0` (of r), a release `rel0` of
/// both, and distribution `d` published from s0 (served by `dev`).
struct Fixture {
    debs: PathBuf,
    states: Vec<PathBuf>,
    up: PathBuf,
    train: PathBuf,
}

impl Fixture {
    fn new(ctx: &mut TestContext) -> Self {
        let (debs, states, up) = moving_upstream(ctx);
        ctx.apt_mirror("m", &ctx.server.url("up/"), &["--no-verify"]);
        ctx.env.remove("DEPOT_NOW");
        ctx.depot(&["mirror", "update", "m"]).ok();
        ctx.depot(&["repo", "create", "r", "--kind", "apt", "--arch", "amd64"])
            .ok();
        let first = deb(&debs, "ci", "1.0");
        ctx.depot(&["repo", "add", "r", first.to_str().unwrap()])
            .ok();
        ctx.depot(&["snapshot", "create", "s0", "--mirror", "m"])
            .ok();
        ctx.depot(&["snapshot", "create", "r0", "--repo", "r"]).ok();
        ctx.depot(&["release", "create", "rel0", "--from", "s0", "--from", "r0"])
            .ok();
        ctx.depot(&["publish", "s0", "--dist", "d", "--skip-signing"])
            .ok();
        let train = ctx.dir.path().join("night.yaml");
        std::fs::write(
            &train,
            "train: night\nmirrors: [m]\nrepos: [r]\nreleases:\n  main: {from: [m, r], policy: latest}\npublish:\n  t: {from: main, skip-signing: true}\n",
        )
        .unwrap();
        Fixture {
            debs,
            states,
            up,
            train,
        }
    }

    /// Points the upstream at state `n % 3`, atomically.
    fn upstream(&self, n: usize) {
        let tmp = self.up.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&self.states[n % 3], &tmp).unwrap();
        std::fs::rename(&tmp, &self.up).unwrap();
    }
}

fn versions(ctx: &TestContext, dist: &str) -> Vec<String> {
    ctx.depot(&["dist", "show", dist, "--output-format", "json"])
        .ok()
        .json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
}

/// `depot check --full` is clean: nothing is lost or half-written.
fn assert_whole(ctx: &TestContext, what: &str) {
    let run = ctx.depot(&["check", "--full"]);
    assert_eq!(
        run.code, 0,
        "the root is damaged after {what}:\n{}{}",
        run.stdout, run.stderr
    );
}

/// Runs `args` and kills it with SIGKILL after `delay`; true when the kill
/// landed before the command ended by itself.
fn kill_after(ctx: &TestContext, args: &[String], delay: Duration) -> bool {
    let mut child = ctx
        .command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap().code().is_none()
}

/// What a rerun after a kill is.
enum Rerun {
    /// The same command again, which must succeed.
    Same,
    /// The same command: it succeeds, or it refuses because the killed
    /// one got as far as creating the object, which must then load.
    Creates { show: [&'static str; 2] },
    /// `train resume FILE`.
    Resume,
}

/// One writing command per iteration `i`: its arguments and its rerun.
fn command(fx: &Fixture, ctx: &TestContext, name: &str, i: usize) -> (Vec<String>, Rerun) {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match name {
        "mirror update" => {
            fx.upstream(i + 1);
            (s(&["mirror", "update", "m"]), Rerun::Same)
        }
        "repo add" => {
            let d = deb(&fx.debs, &format!("ci{}", i % 5), &format!("1.{i}"));
            (
                s(&["repo", "add", "r", d.to_str().unwrap(), "--replace"]),
                Rerun::Same,
            )
        }
        "snapshot create" => (
            s(&["snapshot", "create", &format!("k{i}"), "--mirror", "m"]),
            Rerun::Creates {
                show: ["snapshot", "show"],
            },
        ),
        "release create" => (
            s(&[
                "release",
                "create",
                &format!("kr{i}"),
                "--from",
                "s0",
                "--from",
                "r0",
            ]),
            Rerun::Creates {
                show: ["release", "show"],
            },
        ),
        "publish" => (
            s(&["publish", "rel0", "--dist", "d", "--skip-signing"]),
            Rerun::Same,
        ),
        "promote" => {
            let vs = versions(ctx, "d");
            let v = &vs[i % vs.len()];
            (s(&["promote", "d", v, "--to", "release"]), Rerun::Same)
        }
        "prune" => {
            // Two prunable snapshots and versions each time.
            for k in 0..2 {
                let name = format!("m-2026{:02}{:02}T000000Z", 1 + i % 12, 1 + (2 * i + k) % 28);
                let _ = ctx.depot(&["snapshot", "create", &name, "--mirror", "m"]);
            }
            ctx.depot(&["publish", "s0", "--dist", "d", "--skip-signing"])
                .ok();
            (
                s(&[
                    "prune",
                    "--keep-last",
                    "1",
                    "--keep-days",
                    "0",
                    "--keep-released",
                    "1",
                ]),
                Rerun::Same,
            )
        }
        "gc" => {
            // Garbage: a snapshot of a new upstream state, then dropped.
            fx.upstream(i);
            ctx.depot(&["mirror", "update", "m"]).ok();
            let g = format!("g{i}");
            ctx.depot(&["snapshot", "create", &g, "--mirror", "m"]).ok();
            ctx.depot(&["snapshot", "drop", &g]).ok();
            (s(&["gc"]), Rerun::Same)
        }
        "train" => {
            // Run ids are to the second: never two in one.
            std::thread::sleep(Duration::from_millis(1100));
            fx.upstream(i);
            (
                s(&["train", "run", fx.train.to_str().unwrap()]),
                Rerun::Resume,
            )
        }
        other => unreachable!("{other}"),
    }
}

/// Reruns a killed command; returns how long the rerun took (the span
/// the next kill lands in, as the work per round shrinks or grows).
fn rerun(ctx: &TestContext, fx: &Fixture, args: &[String], how: &Rerun, what: &str) -> Duration {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    match how {
        Rerun::Same => {
            let run = ctx.depot(&args);
            assert_eq!(run.code, 0, "rerun of {what} failed: {}", run.stderr);
        }
        Rerun::Creates { show } => {
            let run = ctx.depot(&args);
            if run.code != 0 {
                assert!(
                    run.stderr.contains("already exists"),
                    "rerun of {what} failed: {}",
                    run.stderr
                );
                ctx.depot(&[show[0], show[1], args[2]]).ok();
            }
        }
        Rerun::Resume => {
            let file = fx.train.to_str().unwrap();
            let run = ctx.depot(&["train", "resume", file]);
            if run.code != 0 {
                // Killed before its journal was written: a new run.
                assert!(
                    run.stderr.contains("has no run yet"),
                    "train resume after a kill failed: {}",
                    run.stderr
                );
                ctx.depot(&["train", "run", file]).ok();
            }
        }
    }
    started.elapsed()
}

const WRITERS: [&str; 9] = [
    "mirror update",
    "repo add",
    "snapshot create",
    "release create",
    "publish",
    "promote",
    "prune",
    "gc",
    "train",
];

#[test]
fn kill_9_anywhere_in_a_writing_command_leaves_a_whole_root_and_the_rerun_succeeds() {
    let kills = env_or("DEPOT_KILLS", 10) as usize;
    let mut rng = Rng::new();
    let mut ctx = TestContext::new();
    let fx = Fixture::new(&mut ctx);
    for name in WRITERS {
        // How long the command takes when left alone: kills land anywhere
        // in that span (and a little past it, where the kill misses).
        let (args, _) = command(&fx, &ctx, name, 0);
        let started = Instant::now();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        ctx.depot(&argv).ok();
        let mut span = started.elapsed().as_micros() as u64;
        let mut landed = 0;
        for i in 1..=kills {
            let (args, how) = command(&fx, &ctx, name, i);
            let delay = Duration::from_micros(rng.below(span + span / 5));
            landed += usize::from(kill_after(&ctx, &args, delay));
            let what = format!("{name} killed after {delay:?} (round {i})");
            assert_whole(&ctx, &what);
            span = rerun(&ctx, &fx, &args, &how, &what).as_micros() as u64;
            assert_whole(&ctx, &format!("the rerun of {what}"));
        }
        eprintln!("{name}: {landed} of {kills} kills landed (last span {span} µs)");
        assert!(
            kills < 5 || landed > 0,
            "{name}: no kill landed before the command ended"
        );
    }
}

/// What one racer may see: success; a refusal (exit 3) that names what
/// holds the object (a lock's holder, the stage that serves it); or an
/// object another racer made or dropped a moment ago (exit 1, "already
/// exists", "no … named", "has no version", as without a race).
fn acceptable(code: i32, stderr: &str) -> bool {
    match code {
        0 => true,
        3 => stderr.contains("is busy: another depot process") || stderr.contains("serves"),
        1 => {
            stderr.contains("already exists")
                || stderr.contains(" named `")
                || stderr.contains("has no version")
        }
        _ => false,
    }
}

#[test]
fn eight_processes_racing_over_the_same_objects_never_deadlock_or_damage_the_root() {
    let secs = env_or("DEPOT_SOAK_SECS", 60);
    let mut ctx = TestContext::new();
    let fx = Fixture::new(&mut ctx);
    let debs: Vec<PathBuf> = (0..6)
        .map(|i| deb(&fx.debs, &format!("soak{}", i % 3), &format!("2.{i}")))
        .collect();
    let seed = Rng::new().0;
    let end = Instant::now() + Duration::from_secs(secs);
    let upstream = std::sync::RwLock::new(());
    let (ctx, fx, upstream) = (&ctx, &fx, &upstream);
    let outcomes: Vec<Vec<(String, i32)>> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8u64)
            .map(|t| {
                let debs = &debs;
                s.spawn(move || {
                    let mut rng = Rng(seed.wrapping_add(t * 7919).max(1));
                    let mut seen = Vec::new();
                    while Instant::now() < end {
                        let n = rng.below(3).to_string();
                        let args: Vec<String> = match rng.below(12) {
                            0 => {
                                // The upstream moves between updates, never
                                // during one (that is the mirror tests' job).
                                {
                                    let _flip = upstream.write().unwrap();
                                    fx.upstream(rng.below(3) as usize);
                                }
                                vec!["mirror".into(), "update".into(), "m".into()]
                            }
                            1 => {
                                let d = &debs[rng.below(debs.len() as u64) as usize];
                                let d = d.to_str().unwrap().to_owned();
                                vec![
                                    "repo".into(),
                                    "add".into(),
                                    "r".into(),
                                    d,
                                    "--replace".into(),
                                ]
                            }
                            2 => ["snapshot", "create", &format!("x{n}"), "--mirror", "m"]
                                .map(String::from)
                                .to_vec(),
                            3 => ["snapshot", "drop", &format!("x{n}")]
                                .map(String::from)
                                .to_vec(),
                            4 => [
                                "release",
                                "create",
                                &format!("y{n}"),
                                "--from",
                                &format!("x{n}"),
                                "--from",
                                "r0",
                            ]
                            .map(String::from)
                            .to_vec(),
                            5 => ["release", "drop", &format!("y{n}")]
                                .map(String::from)
                                .to_vec(),
                            6 => ["publish", &format!("y{n}"), "--dist", "d", "--skip-signing"]
                                .map(String::from)
                                .to_vec(),
                            7 => ["publish", "s0", "--dist", "d", "--skip-signing"]
                                .map(String::from)
                                .to_vec(),
                            8 => {
                                let vs = versions(ctx, "d");
                                let v = vs[rng.below(vs.len() as u64) as usize].clone();
                                ["promote", "d", &v, "--to", "release"]
                                    .map(String::from)
                                    .to_vec()
                            }
                            9 => [
                                "prune",
                                "--dist",
                                "d",
                                "--keep-last",
                                "2",
                                "--keep-days",
                                "0",
                            ]
                            .map(String::from)
                            .to_vec(),
                            10 => vec!["gc".into()],
                            _ => ["snapshot", "create", &format!("x{n}"), "--repo", "r"]
                                .map(String::from)
                                .to_vec(),
                        };
                        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                        let started = Instant::now();
                        let run = {
                            let _steady = (args[0] == "mirror").then(|| upstream.read().unwrap());
                            ctx.depot(&argv)
                        };
                        assert!(
                            started.elapsed() < Duration::from_secs(120),
                            "`depot {}` took {:?}: a deadlock?",
                            args.join(" "),
                            started.elapsed()
                        );
                        assert!(
                            acceptable(run.code, &run.stderr),
                            "`depot {}` exited {}: {}",
                            args.join(" "),
                            run.code,
                            run.stderr
                        );
                        seen.push((args[..2.min(args.len())].join(" "), run.code));
                    }
                    seen
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let all: Vec<&(String, i32)> = outcomes.iter().flatten().collect();
    let refused = all.iter().filter(|(_, c)| *c == 3).count();
    let done = all.iter().filter(|(_, c)| *c == 0).count();
    eprintln!(
        "soak: {} commands in {secs} s: {done} done, {refused} refused",
        all.len()
    );
    assert!(done > all.len() / 4, "most commands were refused: {all:?}");
    // Whole at the end, and gc leaves exactly what is referenced.
    assert_whole(ctx, "the soak");
    ctx.depot(&["gc"]).ok();
    assert_whole(ctx, "gc after the soak");
}
