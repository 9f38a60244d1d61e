//! Trains: the nightly release run as one declarative, resumable file.
//!
//! A train file names (or defines inline) the mirrors and local repos to
//! sync, the releases to merge from them, the distributions to publish,
//! the tests to request for what changed and the promotions to make when
//! they pass. Every run has one RUN id, the UTC time it started
//! (`20261122T020000Z`): snapshots are `SOURCE-RUN`, releases `NAME-RUN`,
//! published versions `RUN`, so a night is addressable by one string.
//!
//! - [`file`] owns the format and the checks that need only the file;
//! - [`plan`] resolves a file against a data root into steps (this is
//!   `--dry-run`, and writes nothing);
//! - [`journal`] owns `trains/NAME/RUN.json`, every step's state,
//!   replaced atomically at each change;
//! - [`run`] carries the steps out through the library calls of each verb
//!   (mirror update, snapshot and release create, publish, test submit,
//!   promote), each idempotent so that `resume` after a kill is safe;
//! - [`notify`] POSTs events to webhooks.
//!
//! One run of a train at a time: a run or resume holds the lock
//! `train-NAME` (a second exits 3); trains over different objects run
//! concurrently, each step taking the locks of the objects it changes.
//! This module never changes anything but through those verbs and its
//! journal. With `retention:` the last step prunes what this train makes
//! through [`crate::retention::prune`] (never gc).

pub mod file;
pub mod journal;
pub mod notify;
pub mod plan;
pub mod run;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

pub use file::{FileError, TrainFile};
pub use journal::{Journal, Outcome, StepRecord, StepState};
pub use plan::{Plan, PlannedStep, StepKind};

use crate::lock::{LockError, ObjectLock, Wait};
use crate::report::Reporter;
use crate::root::Root;
use crate::settings::Settings;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("train `{train}` already has a run `{run}`; continue it with `depot train resume`")]
    RunExists { train: String, run: String },
    #[error("train `{train}` has no run yet; start one with `depot train run FILE`")]
    NoRun { train: String },
    #[error(
        "train `{train}` run {run}: {} failed{}",
        failed.join(", "),
        if blocked.is_empty() { String::new() } else { format!("; blocked: {}", blocked.join(", ")) }
    )]
    StepsFailed {
        train: String,
        run: String,
        failed: Vec<String>,
        blocked: Vec<String>,
    },
    #[error("train `{train}` run {run}: test gates pending: {}", waiting.join(", "))]
    Pending {
        train: String,
        run: String,
        waiting: Vec<String>,
    },
    #[error("cannot start a runtime for the mirror updates")]
    Runtime(#[source] std::io::Error),
}

impl TrainError {
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind::*;
        match self {
            Self::File(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Lock(e) => e.kind(),
            Self::RunExists { .. }
            | Self::NoRun { .. }
            | Self::StepsFailed { .. }
            | Self::Runtime(_) => Failure,
            Self::Pending { .. } => Pending,
        }
    }
}

/// Why a step failed where no other module's error says it (recorded in
/// the journal; the run goes on).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{what} `{name}` exists and is not this train's (it is {origin})")]
    NotOurs {
        what: &'static str,
        name: String,
        origin: String,
    },
    #[error("tests of {dist}/{version} failed; the stage stays where it was")]
    TestsFailed { dist: String, version: String },
    #[error("no tests are recorded for {dist}/{version} (nothing changed that has tests?)")]
    NoTests { dist: String, version: String },
    #[error("tests of {dist}/{version} still pending after {timeout}")]
    TestsTimedOut {
        dist: String,
        version: String,
        timeout: String,
    },
}

impl StepError {
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::NotOurs { .. }
            | Self::TestsFailed { .. }
            | Self::NoTests { .. }
            | Self::TestsTimedOut { .. } => crate::ErrorKind::Failure,
        }
    }
}

impl Journal {
    /// The run's end as a result: the failed and blocked steps (exit 1),
    /// else the waiting test gates (exit 4), else `Ok`.
    pub fn result(&self) -> Result<(), TrainError> {
        match self.tally() {
            Outcome::Done => Ok(()),
            Outcome::Failed => {
                let mut failed = self.ids("failed");
                // A step left pending or running did not get to run:
                // an interrupted attempt; it counts as not done.
                failed.extend(self.ids("pending"));
                failed.extend(self.ids("running"));
                Err(TrainError::StepsFailed {
                    train: self.train.clone(),
                    run: self.run.clone(),
                    failed,
                    blocked: self.ids("blocked"),
                })
            }
            Outcome::Pending => Err(TrainError::Pending {
                train: self.train.clone(),
                run: self.run.clone(),
                waiting: self.ids("waiting"),
            }),
        }
    }
}

impl StepRecord {
    /// One line on what the step made, why it failed, or what it waits
    /// for.
    pub fn detail(&self) -> String {
        match &self.state {
            StepState::Pending | StepState::Running => self.makes.clone(),
            StepState::Done { made } => made
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            StepState::Failed { error } => error.clone(),
            StepState::Blocked { by } => format!("by {}", by.join(", ")),
            StepState::Waiting { reason } => reason.clone(),
        }
    }
}

/// The folder of the train file: its relative paths are relative to it.
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `depot train run FILE --dry-run`: the checked file resolved against
/// the data root, as it would run now. Writes nothing.
pub fn dry_run(root: &Root, settings: &Settings, path: &Path) -> Result<Plan, TrainError> {
    let file = TrainFile::load(path)?;
    let run = plan::run_id(settings.now);
    Ok(plan::plan(root, path, &file, &run, settings.now)?)
}

/// `depot train run FILE`: a new run, RUN = the clock's time.
pub async fn start(
    root: &Root,
    settings: &Settings,
    path: &Path,
    reporter: &dyn Reporter,
) -> Result<Journal, TrainError> {
    let file = TrainFile::load(path)?;
    let run = plan::run_id(settings.now);
    let plan = plan::plan(root, path, &file, &run, settings.now)?;
    let _lock = ObjectLock::acquire(root, "train", &file.train, Wait::No)?;
    let store = journal::journals(root, &file.train);
    let journal = Journal::new(&plan, settings.now);
    // Claimed, not synced: the run's first save, on the saver's thread,
    // makes it durable, so the night does not wait for the disk here (an
    // fsync behind other writes took tens of milliseconds).
    store.claim(&run, &journal).map_err(|e| match e {
        StoreError::Exists { .. } => TrainError::RunExists {
            train: file.train.clone(),
            run: run.clone(),
        },
        other => other.into(),
    })?;
    go(root, settings, path, &file, &plan, journal, false, reporter).await
}

/// `depot train resume FILE [RUN]`: continues RUN, else the newest run
/// that did not end with every step done (else the newest run, which is
/// then only reported). Done steps are kept; the rest run again.
pub async fn resume(
    root: &Root,
    settings: &Settings,
    path: &Path,
    run: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<Journal, TrainError> {
    let file = TrainFile::load(path)?;
    // The whole file is checked against the data root before anything
    // else, whatever run it continues.
    plan::plan(root, path, &file, &plan::run_id(settings.now), settings.now)?;
    let _lock = ObjectLock::acquire(root, "train", &file.train, Wait::No)?;
    let store = journal::journals(root, &file.train);
    let journal = match run {
        Some(r) => {
            crate::names::validate("run", r).map_err(|_| store.not_found(r))?;
            journal::load(&store, &file.train, r)?
        }
        None => {
            let mut newest = None;
            for r in journal::runs(root, &file.train)?.iter().rev() {
                let j = journal::load(&store, &file.train, r)?;
                if j.unfinished() {
                    newest = Some(j);
                    break;
                }
                newest.get_or_insert(j);
            }
            newest.ok_or_else(|| TrainError::NoRun {
                train: file.train.clone(),
            })?
        }
    };
    if !journal.unfinished() {
        return Ok(journal);
    }
    let plan = plan::plan(root, path, &file, &journal.run, settings.now)?;
    let journal = journal.with_plan(&plan);
    go(root, settings, path, &file, &plan, journal, true, reporter).await
}

#[allow(clippy::too_many_arguments)]
async fn go(
    root: &Root,
    settings: &Settings,
    path: &Path,
    file: &TrainFile,
    plan: &Plan,
    journal: Journal,
    resuming: bool,
    reporter: &dyn Reporter,
) -> Result<Journal, TrainError> {
    let base = folder_of(path);
    let night = run::Night {
        root,
        settings,
        file,
        base: &base,
        plan,
        resuming,
        reporter,
        notifier: notify::Notifier::new(file.notify.iter().map(|u| u.0.clone()).collect()),
        journal: Mutex::new(journal),
        saver: journal::Saver::new(journal::journals(root, &file.train)),
    };
    night.go().await
}

/// `depot train status FILE [RUN]`: the journal of RUN, else of the
/// newest run.
pub fn status(root: &Root, path: &Path, run: Option<&str>) -> Result<Journal, TrainError> {
    let file = TrainFile::load(path)?;
    let store = journal::journals(root, &file.train);
    let run = match run {
        Some(r) => {
            crate::names::validate("run", r).map_err(|_| store.not_found(r))?;
            r.to_owned()
        }
        None => journal::runs(root, &file.train)?
            .pop()
            .ok_or_else(|| TrainError::NoRun {
                train: file.train.clone(),
            })?,
    };
    Ok(journal::load(&store, &file.train, &run)?)
}

/// One line of `depot train list`.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run: String,
    pub started: jiff::Timestamp,
    pub finished: Option<jiff::Timestamp>,
    /// None while it runs, or after it was killed.
    pub outcome: Option<Outcome>,
    pub done: usize,
    pub failed: usize,
    pub blocked: usize,
    pub waiting: usize,
    pub steps: usize,
}

/// `depot train list FILE`: the train's runs, oldest first.
pub fn list(root: &Root, path: &Path) -> Result<Vec<RunInfo>, TrainError> {
    let file = TrainFile::load(path)?;
    let store = journal::journals(root, &file.train);
    let mut out = Vec::new();
    for r in journal::runs(root, &file.train)? {
        let j = journal::load(&store, &file.train, &r)?;
        out.push(RunInfo {
            done: j.ids("done").len(),
            failed: j.ids("failed").len(),
            blocked: j.ids("blocked").len(),
            waiting: j.ids("waiting").len(),
            steps: j.steps.len(),
            run: j.run,
            started: j.started,
            finished: j.finished,
            outcome: j.outcome,
        });
    }
    Ok(out)
}
