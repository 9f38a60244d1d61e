//! The journal of a run: `trains/NAME/RUN.json`, every step's state and
//! what it made, replaced atomically after every change of state, so a
//! killed run leaves a state it reached.
//!
//! A run saves its journal through a [`Saver`]: a thread of its own that
//! writes the newest state (each write an fsync'd atomic replace), while
//! the steps go on. An fsync costs 1-8 ms on a journaled ext4, and a night
//! changes state a dozen times on its critical path; waiting for each was
//! most of a train's overhead. A `kill -9` may then lose the last state or
//! two, which only means a resume redoes a step that had finished: every
//! step is idempotent (see [`super::run`]), as it must be for a kill
//! between a step's work and its journal write anyway. The run waits for
//! the final state to be written before it reports its end.
//!
//! This module owns `trains/` (through [`crate::store`]); what a step
//! does is [`super::run`]'s.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::plan::{Plan, StepKind};
use crate::root::Root;
use crate::store::{Format, ObjectKind, Store, StoreError};

/// Where a step stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum StepState {
    /// Not started.
    Pending,
    /// Started and not finished (or its process was killed).
    Running,
    /// Finished; `made` names what it produced.
    Done { made: BTreeMap<String, String> },
    /// Failed with `error` (the error and its causes, one per line).
    Failed { error: String },
    /// Not run because these failed steps come before it.
    Blocked { by: Vec<String> },
    /// A test gate whose results are still pending.
    Waiting { reason: String },
}

impl StepState {
    pub fn word(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done { .. } => "done",
            Self::Failed { .. } => "failed",
            Self::Blocked { .. } => "blocked",
            Self::Waiting { .. } => "waiting",
        }
    }
}

/// One step in the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub kind: StepKind,
    pub subject: String,
    /// What the plan said it makes.
    pub makes: String,
    pub after: Vec<String>,
    #[serde(flatten)]
    pub state: StepState,
    /// How many times it was started (a resume retries).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    /// Wall time of its last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// How a run ended (so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every step is done.
    Done,
    /// A step failed (others may be blocked).
    Failed,
    /// Only test gates are still waiting.
    Pending,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Pending => "pending",
        }
    }
}

/// `trains/NAME/RUN.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub train: String,
    pub run: String,
    pub started: Timestamp,
    /// When the last attempt (run or resume) ended; none while one runs or
    /// after a kill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// `run` then one `resume` per continuation.
    #[serde(default)]
    pub attempts: u32,
    pub steps: Vec<StepRecord>,
}

impl Journal {
    pub fn new(plan: &Plan, now: Timestamp) -> Self {
        Self {
            train: plan.train.clone(),
            run: plan.run.clone(),
            started: now,
            finished: None,
            outcome: None,
            attempts: 0,
            steps: Vec::new(),
        }
        .with_plan(plan)
    }

    /// The plan's steps, keeping the state of those already journaled
    /// (same id); a resume with an edited file adds new steps as pending
    /// and drops steps the file no longer has.
    pub fn with_plan(mut self, plan: &Plan) -> Self {
        let mut old: BTreeMap<String, StepRecord> =
            self.steps.drain(..).map(|s| (s.id.clone(), s)).collect();
        self.steps = plan
            .steps
            .iter()
            .map(|p| match old.remove(&p.id) {
                Some(mut s) => {
                    s.after = p.after.clone();
                    s
                }
                None => StepRecord {
                    id: p.id.clone(),
                    kind: p.kind,
                    subject: p.subject.clone(),
                    makes: p.makes.clone(),
                    after: p.after.clone(),
                    state: StepState::Pending,
                    attempts: 0,
                    started: None,
                    finished: None,
                    duration_ms: None,
                },
            })
            .collect();
        self
    }

    pub fn step(&self, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn step_mut(&mut self, id: &str) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    /// The outcome the steps' states add up to.
    pub fn tally(&self) -> Outcome {
        let any = |f: fn(&StepState) -> bool| self.steps.iter().any(|s| f(&s.state));
        if any(|s| !matches!(s, StepState::Done { .. } | StepState::Waiting { .. })) {
            Outcome::Failed
        } else if any(|s| matches!(s, StepState::Waiting { .. })) {
            Outcome::Pending
        } else {
            Outcome::Done
        }
    }

    /// Ids of the steps in `state` (by its word).
    pub fn ids(&self, word: &str) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.state.word() == word)
            .map(|s| s.id.clone())
            .collect()
    }

    /// Whether a run can still be continued: it did not end with every
    /// step done.
    pub fn unfinished(&self) -> bool {
        self.outcome != Some(Outcome::Done)
    }
}

/// The journal of `run`. An empty file is a run that a power loss cut as
/// it started (a run's journal is created without waiting for the disk,
/// [`Store::claim`], and made durable by its first save): it is read as
/// the run with no step recorded, which a resume starts over.
pub fn load(store: &Store<Journal>, train: &str, run: &str) -> Result<Journal, StoreError> {
    match store.load(run) {
        Err(StoreError::Corrupt { path, .. })
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) =>
        {
            Ok(Journal {
                train: train.to_owned(),
                run: run.to_owned(),
                started: super::plan::run_time(run).unwrap_or(Timestamp::UNIX_EPOCH),
                finished: None,
                outcome: None,
                attempts: 0,
                steps: Vec::new(),
            })
        }
        other => other,
    }
}

/// `trains/NAME/RUN.json` of one train.
pub fn journals(root: &Root, train: &str) -> Store<Journal> {
    Store::files(
        ObjectKind::TrainRun,
        root.train_dir(train),
        ".json",
        Format::Json,
    )
}

/// Writes a run's journal on a thread of its own, the newest state
/// queued each time (older queued states are skipped).
pub struct Saver {
    queue: Option<std::sync::mpsc::Sender<Saving>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The first write that failed and was not yet reported.
    failed: std::sync::Arc<std::sync::Mutex<Option<StoreError>>>,
}

enum Saving {
    State(Box<Journal>),
    /// Answered once every state queued before it is written.
    Flush(std::sync::mpsc::SyncSender<()>),
}

impl Saver {
    pub fn new(store: Store<Journal>) -> Self {
        let (queue, states) = std::sync::mpsc::channel::<Saving>();
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let failures = failed.clone();
        let thread = std::thread::spawn(move || {
            while let Ok(first) = states.recv() {
                let (mut newest, mut flushes) = (None, Vec::new());
                for saving in std::iter::once(first).chain(states.try_iter()) {
                    match saving {
                        Saving::State(j) => newest = Some(j),
                        Saving::Flush(done) => flushes.push(done),
                    }
                }
                if let Some(j) = newest
                    && let Err(e) = store.save(&j.run, &j)
                {
                    let mut failed = failures.lock().unwrap_or_else(|p| p.into_inner());
                    failed.get_or_insert(e);
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        Self {
            queue: Some(queue),
            thread: Some(thread),
            failed,
        }
    }

    /// Queues `journal` to be written; fails with an earlier write's
    /// error.
    pub fn save(&self, journal: &Journal) -> Result<(), StoreError> {
        self.take_failure()?;
        if let Some(q) = &self.queue {
            // The thread ends only when the queue does.
            let _ = q.send(Saving::State(Box::new(journal.clone())));
        }
        Ok(())
    }

    /// Waits until every queued state is written; fails with a write's
    /// error.
    pub fn flush(&self) -> Result<(), StoreError> {
        if let Some(q) = &self.queue {
            let (done, wait) = std::sync::mpsc::sync_channel(1);
            if q.send(Saving::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
        self.take_failure()
    }

    fn take_failure(&self) -> Result<(), StoreError> {
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Saver {
    /// Writes what is queued (a run that ends early keeps its last state).
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The runs of `train`, oldest first (RUN ids sort by time).
pub fn runs(root: &Root, train: &str) -> Result<Vec<String>, StoreError> {
    journals(root, train).list()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::plan::PlannedStep;

    fn plan(ids: &[&str]) -> Plan {
        Plan {
            train: "t".into(),
            run: "20261122T020000Z".into(),
            steps: ids
                .iter()
                .map(|id| PlannedStep {
                    id: (*id).into(),
                    kind: StepKind::Snapshot,
                    subject: "s".into(),
                    makes: "s-RUN".into(),
                    after: vec![],
                })
                .collect(),
        }
    }

    fn store(dir: &std::path::Path) -> Store<Journal> {
        Store::files(ObjectKind::TrainRun, dir.into(), ".json", Format::Json)
    }

    /// The saver writes the newest state, `flush` waits for it, a drop
    /// writes what is queued, and a failed write is reported.
    #[test]
    fn the_saver_writes_the_newest_state_and_reports_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::new(&plan(&["a"]), Timestamp::UNIX_EPOCH);
        let saver = Saver::new(store(dir.path()));
        for attempts in 1..=50 {
            j.attempts = attempts;
            saver.save(&j).unwrap();
        }
        saver.flush().unwrap();
        assert_eq!(store(dir.path()).load(&j.run).unwrap().attempts, 50);
        j.attempts = 51;
        saver.save(&j).unwrap();
        drop(saver);
        assert_eq!(store(dir.path()).load(&j.run).unwrap().attempts, 51);

        // A store under a regular file cannot be written.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let saver = Saver::new(store(&file.join("trains")));
        saver.save(&j).unwrap();
        assert!(saver.flush().is_err());
    }

    /// A claimed journal reads back whole; an empty one (a power loss
    /// before its first save) is the run with nothing recorded; any other
    /// damage stays an error.
    #[test]
    fn an_empty_journal_is_a_run_with_nothing_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let j = Journal::new(&plan(&["a"]), Timestamp::UNIX_EPOCH);
        s.claim(&j.run, &j).unwrap();
        assert!(matches!(
            s.claim(&j.run, &j),
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(load(&s, "t", &j.run).unwrap().steps.len(), 1);
        std::fs::write(dir.path().join(format!("{}.json", j.run)), b"").unwrap();
        let empty = load(&s, "t", &j.run).unwrap();
        assert_eq!((empty.steps.len(), empty.attempts), (0, 0));
        assert!(empty.unfinished());
        assert_eq!(empty.started.to_string(), "2026-11-22T02:00:00Z");
        std::fs::write(dir.path().join(format!("{}.json", j.run)), b"{").unwrap();
        assert!(matches!(
            load(&s, "t", &j.run),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_resume_keeps_journaled_states_adds_new_steps_and_drops_gone_ones() {
        let mut j = Journal::new(&plan(&["a", "b"]), Timestamp::UNIX_EPOCH);
        j.step_mut("a").unwrap().state = StepState::Done {
            made: BTreeMap::new(),
        };
        let j = j.with_plan(&plan(&["a", "c"]));
        let ids: Vec<_> = j
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.state.word()))
            .collect();
        assert_eq!(ids, [("a", "done"), ("c", "pending")]);
    }

    #[test]
    fn the_outcome_is_failed_before_pending_before_done() {
        let mut j = Journal::new(&plan(&["a", "b"]), Timestamp::UNIX_EPOCH);
        let done = StepState::Done {
            made: BTreeMap::new(),
        };
        j.step_mut("a").unwrap().state = done.clone();
        j.step_mut("b").unwrap().state = StepState::Waiting {
            reason: "tests".into(),
        };
        assert_eq!(j.tally(), Outcome::Pending);
        assert_eq!(j.result().unwrap_err().kind(), crate::ErrorKind::Pending);
        j.step_mut("a").unwrap().state = StepState::Failed { error: "x".into() };
        assert_eq!(j.tally(), Outcome::Failed);
        assert_eq!(j.result().unwrap_err().kind(), crate::ErrorKind::Failure);
        j.step_mut("a").unwrap().state = done.clone();
        j.step_mut("b").unwrap().state = done;
        assert_eq!(j.tally(), Outcome::Done);
        assert!(j.result().is_ok());
    }

    #[test]
    fn states_round_trip_through_json() {
        let mut j = Journal::new(&plan(&["a"]), Timestamp::UNIX_EPOCH);
        j.step_mut("a").unwrap().state = StepState::Blocked {
            by: vec!["mirror/m".into()],
        };
        let text = serde_json::to_string(&j).unwrap();
        assert!(
            text.contains(r#""state":"blocked","by":["mirror/m"]"#),
            "{text}"
        );
        let back: Journal = serde_json::from_str(&text).unwrap();
        assert_eq!(back.steps[0].state, j.steps[0].state);
    }
}
