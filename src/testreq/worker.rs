//! The worker: takes requests one at a time, runs a test command for each,
//! and stores the run in autopkgtest-cloud's layout, in a `file://`
//! results directory or a Swift account (`swift+https://`).
//!
//! The command sees the request in environment variables (see
//! [`command_env`]) and gets an empty output directory,
//! `DEPOT_TEST_OUTPUT`, meant for `autopkgtest -o`: if it leaves
//! `testpkg-version` or `testinfo.json` there (autopkgtest does), they are
//! used; everything it leaves becomes `artifacts.tar.gz`. Its stdout and
//! stderr become `log.gz`, and its exit status the run's `exitcode`
//! (autopkgtest's codes; a command killed by a signal counts as 20, an
//! unexpected failure).
//!
//! A request is acknowledged only after its run is stored — its directory
//! renamed into place, or every Swift object uploaded, `result.tar` last —
//! so a worker killed mid-run or mid-upload leaves the request queued and
//! no result visible. A failed upload stops the worker with the request
//! still queued. A command that cannot be started at all is a worker
//! failure, not a test failure: the request stays queued too.
//!
//! The request's `env` entries are passed in `DEPOT_TEST_ENV` (one `K=V`
//! per line) for the runner to hand to the testbed, never exported into
//! the command's own environment: a queued request must not be able to set
//! `PATH` or `LD_PRELOAD` on the worker host.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::queue::{Queue, QueueError, Taken};
use super::request::{QueueKind, Request, RequestError};
use super::results::{Outcome, ResultsError, RunObjects, Store, build_result_tar, package_prefix};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("cannot store the result of {package} on {release}/{arch}")]
    Upload {
        package: String,
        release: String,
        arch: String,
        #[source]
        source: ResultsError,
    },
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("cannot start the test command `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot store the result of {package} on {release}/{arch} in {}", path.display())]
    Store {
        package: String,
        release: String,
        arch: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare a scratch directory for the test command")]
    Scratch(#[source] std::io::Error),
}

impl WorkerError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::Queue(q) => q.kind(),
            Self::Results(r) => r.kind(),
            Self::Upload { source, .. } => source.kind(),
            Self::Request(_) => Usage,
            Self::Spawn { .. } | Self::Store { .. } | Self::Scratch(_) => Failure,
        }
    }
}

/// Which queues a worker takes from.
#[derive(Debug, Clone)]
pub enum QueueSelection {
    /// Every queue in the spool, looked up afresh before each take.
    AllSpooled(super::spool::SpoolQueue),
    /// These queues, oldest request first.
    Named(Vec<String>),
}

/// The four queues of each release/arch.
pub fn queues_for(release: &str, archs: &[String]) -> Vec<String> {
    archs
        .iter()
        .flat_map(|a| QueueKind::ALL.map(|k| k.queue_name(release, a)))
        .collect()
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Where runs are stored.
    pub results: Store,
    pub command: Vec<String>,
    /// Stop after one request (or at once if none is queued).
    pub once: bool,
    /// Pause between looks at empty queues.
    pub interval: Duration,
}

/// One request the worker ran.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub queue: String,
    pub id: String,
    pub package: String,
    pub release: String,
    pub arch: String,
    pub triggers: Vec<String>,
    pub exitcode: i32,
    pub outcome: Outcome,
    pub duration: u64,
    /// Where the run is: its directory, `RESULTS/CONTAINER/…/RUNID@`, or
    /// its URL in Swift, `ACCOUNT/CONTAINER/…/RUNID@`.
    pub path: String,
}

/// Things that happen while a worker runs, for the binary to log.
pub trait WorkerEvents {
    fn rejected(&self, queue: &str, id: &str, error: &RequestError);
    fn started(&self, request: &Request, id: &str);
    fn finished(&self, run: &Run);
}

#[derive(Debug, Default, Serialize)]
pub struct WorkerSummary {
    pub runs: Vec<Run>,
    pub rejected: usize,
}

pub async fn run<Q: Queue>(
    queue: &mut Q,
    selection: &QueueSelection,
    opts: &WorkerOptions,
    events: &dyn WorkerEvents,
) -> Result<WorkerSummary, WorkerError> {
    let mut summary = WorkerSummary::default();
    loop {
        let names = match selection {
            QueueSelection::AllSpooled(spool) => spool.queues()?,
            QueueSelection::Named(n) => n.clone(),
        };
        let taken = if opts.once {
            queue.take(&names).await?
        } else {
            queue.next(&names, opts.interval).await?
        };
        let Some(taken) = taken else {
            if opts.once {
                return Ok(summary);
            }
            continue;
        };
        let request = match Request::decode(&taken.queue, &taken.body) {
            Ok(r) => r,
            Err(e) => {
                events.rejected(&taken.queue, &taken.id, &e);
                queue.reject(taken).await?;
                summary.rejected += 1;
                continue;
            }
        };
        events.started(&request, &taken.id);
        let run = run_one(&request, &taken, opts).await?;
        // Only now is the request done: the run is visible in the store.
        queue.ack(taken).await?;
        events.finished(&run);
        summary.runs.push(run);
        if opts.once {
            return Ok(summary);
        }
    }
}

/// The variables a test command sees.
pub fn command_env(request: &Request, id: &str, output: &Path) -> Vec<(String, String)> {
    let p = &request.params;
    let mut env = vec![
        ("DEPOT_TEST_PACKAGE", request.package.clone()),
        ("DEPOT_TEST_RELEASE", request.release.clone()),
        ("DEPOT_TEST_ARCH", request.arch.clone()),
        ("DEPOT_TEST_QUEUE", request.queue()),
        ("DEPOT_TEST_ID", id.to_owned()),
        ("DEPOT_TEST_TRIGGERS", p.triggers.join(" ")),
        // autopkgtest-cloud passes the triggers to autopkgtest under this
        // name; runners written for it find them where they expect.
        ("ADT_TEST_TRIGGERS", p.triggers.join(" ")),
        ("DEPOT_TEST_PPAS", p.ppas.join(" ")),
        ("DEPOT_TEST_ENV", p.env.join("\n")),
        (
            "DEPOT_TEST_REQUEST",
            serde_json::to_string(p).expect("params serialise"),
        ),
        ("DEPOT_TEST_OUTPUT", output.display().to_string()),
    ];
    let optional = [
        ("DEPOT_TEST_GIT", &p.test_git),
        ("DEPOT_TEST_BUILD_GIT", &p.build_git),
        ("DEPOT_TEST_BZR", &p.test_bzr),
        ("DEPOT_TEST_NAME", &p.testname),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            env.push((k, v.clone()));
        }
    }
    if p.all_proposed.is_some() {
        env.push(("DEPOT_TEST_ALL_PROPOSED", "1".into()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

async fn run_one<H>(
    request: &Request,
    taken: &Taken<H>,
    opts: &WorkerOptions,
) -> Result<Run, WorkerError> {
    let scratch = tempfile::Builder::new()
        .prefix("depot-test-")
        .tempdir()
        .map_err(WorkerError::Scratch)?;
    let output = scratch.path().join("out");
    std::fs::create_dir(&output).map_err(WorkerError::Scratch)?;
    let log_path = scratch.path().join("log");
    let log = std::fs::File::create(&log_path).map_err(WorkerError::Scratch)?;
    let log_err = log.try_clone().map_err(WorkerError::Scratch)?;

    let mut cmd = std::process::Command::new(&opts.command[0]);
    cmd.args(&opts.command[1..])
        .envs(command_env(request, &taken.id, &output))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| WorkerError::Spawn {
        command: opts.command.join(" "),
        source,
    })?;
    // Waiting blocks a thread; the runtime has others for the queue's I/O
    // (an AMQP connection must keep answering heartbeats meanwhile).
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(|e| WorkerError::Scratch(std::io::Error::other(e)))?
        .map_err(WorkerError::Scratch)?;
    let duration = started.elapsed().as_secs_f64().ceil() as u64;
    let exitcode = status.code().unwrap_or(20);

    let store_err = |path: &Path| {
        let path = path.to_owned();
        move |source| WorkerError::Store {
            package: request.package.clone(),
            release: request.release.clone(),
            arch: request.arch.clone(),
            path,
            source,
        }
    };

    let version = read_testpkg_version(&output, &request.package).unwrap_or_else(|| {
        // Without autopkgtest's file, the best guess is the version the
        // package's own trigger names.
        let own = request.params.triggers.iter().find_map(|t| {
            t.split_once('/')
                .filter(|(src, _)| *src == request.package)
                .map(|(_, v)| v.to_owned())
        });
        own.unwrap_or_else(|| "unknown".to_owned())
    });
    let testinfo = testinfo(&output, request);
    let now = jiff::Timestamp::now();
    let result_tar = build_result_tar(
        exitcode,
        &request.package,
        &version,
        duration,
        &testinfo,
        now.as_second().max(0) as u64,
    );
    let log_gz = gzip_file(&log_path).map_err(store_err(&log_path))?;
    let artifacts = tar_gz_dir(&output).map_err(store_err(&output))?;

    // Run ids sort by time like autopkgtest-cloud's; the hash tells apart
    // runs finishing in the same second.
    let id_hash = super::queue::new_id();
    let run = format!(
        "{}{}_{}@",
        package_prefix(&request.release, &request.arch, &request.package),
        now.strftime("%Y%m%d_%H%M%S"),
        &id_hash[id_hash.len() - 5..]
    );
    let p = &request.params;
    let readers: Vec<String> = p.swiftuser.iter().chain(&p.readable_by).cloned().collect();
    let path = opts
        .results
        .put_run(&RunObjects {
            container: &request.container(),
            run: &run,
            result_tar: &result_tar.into(),
            log_gz: &log_gz.into(),
            artifacts_tar_gz: &artifacts.into(),
            readers: &readers,
        })
        .await
        .map_err(|source| WorkerError::Upload {
            package: request.package.clone(),
            release: request.release.clone(),
            arch: request.arch.clone(),
            source,
        })?;
    Ok(Run {
        queue: taken.queue.clone(),
        id: taken.id.clone(),
        package: request.package.clone(),
        release: request.release.clone(),
        arch: request.arch.clone(),
        triggers: request.params.triggers.clone(),
        exitcode,
        outcome: Outcome::from_exitcode(exitcode),
        duration,
        path,
    })
}

fn read_testpkg_version(output: &Path, package: &str) -> Option<String> {
    let text = std::fs::read_to_string(output.join("testpkg-version")).ok()?;
    match text.split_whitespace().collect::<Vec<_>>()[..] {
        [p, v] if p == package => Some(v.to_owned()),
        _ => None,
    }
}

/// autopkgtest's `testinfo.json` if the command left one, with
/// `custom_environment` carrying the request's env and triggers the way
/// autopkgtest-cloud's worker passes them (`--env`).
fn testinfo(output: &Path, request: &Request) -> serde_json::Value {
    let mut info = std::fs::read(output.join("testinfo.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    let mut custom: Vec<serde_json::Value> = info
        .get("custom_environment")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter(|v| {
                    !v.as_str()
                        .is_some_and(|s| s.starts_with("ADT_TEST_TRIGGERS="))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for e in &request.params.env {
        if !custom.iter().any(|v| v.as_str() == Some(e)) {
            custom.push(e.clone().into());
        }
    }
    custom.push(format!("ADT_TEST_TRIGGERS={}", request.params.triggers.join(" ")).into());
    info["custom_environment"] = custom.into();
    info
}

fn gzip_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::copy(&mut std::fs::File::open(path)?, &mut enc)?;
    enc.finish()
}

fn tar_gz_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(enc);
    // The command's symlinks are archived as links, never followed.
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()?.finish()
}
