//! Running the steps of a plan and journaling each change of state.
//!
//! Mirrors update first, several at a time (bounded); every other step
//! then runs in plan order, once the steps it needs are done. A step
//! whose prerequisite failed is blocked (naming the failed steps), and
//! the rest of the night goes on. Every step is idempotent, so that a
//! resume after a `kill -9` at any moment ends with the same objects as
//! an uninterrupted run:
//! - a mirror update is (an unchanged upstream is a no-op; pooled files
//!   are not fetched again);
//! - a snapshot or release step finds its `NAME-RUN` made by a killed
//!   attempt (manifests are written whole, once) and adopts it;
//! - a publish step finishes or adopts its version `RUN`
//!   ([`crate::promote::PublishOptions::adopt`]);
//! - a tests step submits only requests not yet recorded against the
//!   version (a kill between the submission and the record queues that
//!   request twice: a test run twice, never a test missing);
//! - a promotion whose stage already serves `RUN` is done.
//!
//! This module changes the data root only through the library calls of
//! each step and the journal; it never edits another train's journal.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt;
use jiff::Timestamp;

use super::file::{QueueSpec, TrainFile, same_definition};
use super::journal::{Journal, Saver, StepRecord, StepState};
use super::notify::{Notice, Notifier};
use super::plan::{Plan, StepKind, source};
use super::{StepError, TrainError};
use crate::promote::dist::{self, Stage, TestState};
use crate::report::{Event, Reporter};
use crate::root::Root;
use crate::settings::Settings;
use crate::snapshot::{self, Origin, SnapshotSource};

/// Mirrors updated at once unless the file says `mirror-concurrency`.
pub const DEFAULT_MIRROR_CONCURRENCY: usize = 4;

/// What a step ended with, when it did not fail.
enum Finished {
    Done(BTreeMap<String, String>),
    Waiting(String),
}

type StepResult = Result<Finished, Box<dyn std::error::Error + Send + Sync>>;

/// A webhook event a step calls for, and its detail.
type StepNotice = Option<(&'static str, serde_json::Value)>;

fn made<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Everything a step may need.
pub(super) struct Night<'a> {
    pub root: &'a Root,
    pub settings: &'a Settings,
    pub file: &'a TrainFile,
    /// The train file's folder: relative paths in it are relative to it.
    pub base: &'a Path,
    pub plan: &'a Plan,
    pub resuming: bool,
    pub reporter: &'a dyn Reporter,
    pub notifier: Notifier,
    pub journal: Mutex<Journal>,
    pub saver: Saver,
}

impl Night<'_> {
    fn run(&self) -> &str {
        &self.plan.run
    }

    /// Changes the journal and queues it to be saved
    /// ([`super::journal::Saver`]).
    fn update<R>(&self, f: impl FnOnce(&mut Journal) -> R) -> Result<R, TrainError> {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut j);
        self.saver.save(&j)?;
        Ok(r)
    }

    async fn notify(&self, event: &str, step: Option<&str>, detail: serde_json::Value) {
        let notice = Notice {
            event,
            train: &self.plan.train,
            run: self.run(),
            step,
            detail,
        };
        self.notifier.send(&notice, self.reporter).await;
    }

    /// Runs every step not yet done; returns the journal as it ends.
    pub async fn go(self) -> Result<Journal, TrainError> {
        self.update(|j| {
            j.attempts += 1;
            j.finished = None;
            j.outcome = None;
            for s in &mut j.steps {
                if !matches!(s.state, StepState::Done { .. }) {
                    s.state = StepState::Pending;
                }
            }
        })?;
        self.notify(
            if self.resuming {
                "run-resumed"
            } else {
                "run-started"
            },
            None,
            serde_json::json!({ "steps": self.plan.steps.len() }),
        )
        .await;
        let mirrors: Vec<&str> = self
            .plan
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Mirror)
            .map(|s| s.id.as_str())
            .collect();
        let limit = self
            .file
            .mirror_concurrency
            .unwrap_or(DEFAULT_MIRROR_CONCURRENCY);
        for (id, notice) in self.mirror_steps(&mirrors, limit).await? {
            if let Some((event, detail)) = notice {
                self.notify(event, Some(id), detail).await;
            }
        }
        for s in self
            .plan
            .steps
            .iter()
            .filter(|s| s.kind != StepKind::Mirror)
        {
            self.step(&s.id).await?;
        }
        let journal = self.update(|j| {
            j.outcome = Some(j.tally());
            j.finished = Some(Timestamp::now());
            j.clone()
        })?;
        self.saver.flush()?;
        self.notify(
            "run-finished",
            None,
            serde_json::json!({
                "outcome": journal.outcome,
                "failed": journal.ids("failed"),
                "blocked": journal.ids("blocked"),
                "waiting": journal.ids("waiting"),
            }),
        )
        .await;
        Ok(journal)
    }

    /// The mirror steps, `limit` at a time. An update parses indices and
    /// hashes and writes files as well as waiting on the network, so on a
    /// multi-threaded runtime each runs on a thread of its own (with a
    /// runtime of its own): polled together on one task, two updates took
    /// turns on one core. Their notices are returned, to be sent from this
    /// runtime once all are done (the webhook client belongs to it).
    async fn mirror_steps<'m>(
        &self,
        mirrors: &[&'m str],
        limit: usize,
    ) -> Result<Vec<(&'m str, StepNotice)>, TrainError> {
        let on_threads = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        let results: Vec<(&str, Result<StepNotice, TrainError>)> = if on_threads {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let work = |rt: tokio::runtime::Runtime| {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&id) = mirrors.get(i) else {
                        return out;
                    };
                    out.push((id, rt.block_on(self.run_step(id))));
                }
            };
            // Outside the async context: a runtime may be dropped there.
            tokio::task::block_in_place(|| {
                let runtimes = (0..limit.clamp(1, mirrors.len().max(1)))
                    .map(|_| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(TrainError::Runtime)?;
                Ok::<_, TrainError>(std::thread::scope(|s| {
                    let workers: Vec<_> = runtimes
                        .into_iter()
                        .map(|rt| s.spawn(|| work(rt)))
                        .collect();
                    workers
                        .into_iter()
                        .flat_map(|w| w.join().expect("mirror threads do not panic"))
                        .collect()
                }))
            })?
        } else {
            futures_util::stream::iter(mirrors.iter().copied())
                .map(|id| async move { (id, self.run_step(id).await) })
                .buffer_unordered(limit.max(1))
                .collect()
                .await
        };
        let mut out = Vec::with_capacity(results.len());
        for (id, r) in results {
            out.push((id, r?));
        }
        Ok(out)
    }

    /// Runs one step unless it is done or blocked; journals each change.
    async fn step(&self, id: &str) -> Result<(), TrainError> {
        if let Some((event, detail)) = self.run_step(id).await? {
            self.notify(event, Some(id), detail).await;
        }
        Ok(())
    }

    /// Runs step `id` (unless done or blocked) and records its outcome;
    /// returns the webhook event it calls for.
    async fn run_step(&self, id: &str) -> Result<StepNotice, TrainError> {
        let Some(record) = self.update(|j| {
            let record = j.step(id)?.clone();
            if matches!(record.state, StepState::Done { .. }) {
                return None;
            }
            let mut by: Vec<String> = Vec::new();
            let mut waits: Vec<String> = Vec::new();
            for dep in &record.after {
                match j.step(dep).map(|d| &d.state) {
                    Some(StepState::Done { .. }) => {}
                    Some(StepState::Blocked { by: theirs }) => by.extend(theirs.iter().cloned()),
                    Some(StepState::Waiting { .. }) => waits.push(dep.clone()),
                    _ => by.push(dep.clone()),
                }
            }
            by.sort();
            by.dedup();
            let s = j.step_mut(id)?;
            if by.is_empty() && !waits.is_empty() {
                // After a pending test gate (only the retention step
                // comes after a promotion): it waits with it, and the
                // `resume` that passes the gate runs it.
                s.state = StepState::Waiting {
                    reason: format!("after {}; `depot train resume` runs it", waits.join(", ")),
                };
                None
            } else if by.is_empty() {
                s.state = StepState::Running;
                s.attempts += 1;
                s.started = Some(Timestamp::now());
                s.finished = None;
                Some(s.clone())
            } else {
                s.state = StepState::Blocked { by };
                None
            }
        })?
        else {
            return Ok(None);
        };
        self.reporter.report(Event::Phase {
            subject: id,
            message: "started",
        });
        let t0 = Instant::now();
        let result = self.execute(&record).await;
        let elapsed = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let state = match result {
            Ok(Finished::Done(made)) => StepState::Done { made },
            Ok(Finished::Waiting(reason)) => StepState::Waiting { reason },
            Err(e) => StepState::Failed {
                error: crate::http::error_chain(e.as_ref()),
            },
        };
        self.update(|j| {
            if let Some(s) = j.step_mut(id) {
                s.state = state.clone();
                s.finished = Some(Timestamp::now());
                s.duration_ms = Some(elapsed);
            }
        })?;
        let message = match &state {
            StepState::Done { .. } => "done".to_owned(),
            StepState::Failed { error } => format!("failed: {error}"),
            StepState::Waiting { reason } => format!("waiting: {reason}"),
            other => other.word().to_owned(),
        };
        self.reporter.report(Event::Phase {
            subject: id,
            message: &message,
        });
        Ok(match (&state, record.kind) {
            (StepState::Failed { error }, _) => {
                Some(("step-failed", serde_json::json!({ "error": error })))
            }
            (StepState::Done { made }, StepKind::Publish) => {
                Some(("published", serde_json::json!(made)))
            }
            (StepState::Done { made }, StepKind::Promote) => {
                Some(("promoted", serde_json::json!(made)))
            }
            (StepState::Waiting { reason }, _) => {
                Some(("tests-pending", serde_json::json!({ "reason": reason })))
            }
            _ => None,
        })
    }

    async fn execute(&self, step: &StepRecord) -> StepResult {
        match step.kind {
            StepKind::Mirror => self.mirror(&step.subject).await,
            StepKind::Snapshot => self.snapshot(&step.subject),
            StepKind::Release => self.release(&step.subject),
            StepKind::Publish => self.publish(&step.subject).await,
            StepKind::Tests => self.tests(&step.subject).await,
            StepKind::Promote => self.promote(&step.subject).await,
            StepKind::Retention => self.retention(),
        }
    }

    async fn mirror(&self, name: &str) -> StepResult {
        let root = self.root;
        let mut action = "update";
        let inline = self.file.mirrors.iter().find_map(|m| match m {
            super::file::MirrorEntry::Inline(i) if i.name == name => Some(i),
            _ => None,
        });
        if let Some(m) = inline {
            let wanted = m.definition(self.base, self.settings.now)?;
            match crate::mirror::load_opt(root, name)? {
                None => {
                    crate::mirror::create(
                        root,
                        crate::mirror::CreateOptions {
                            name: wanted.name.clone(),
                            kind: wanted.kind,
                            url: wanted.url.clone(),
                            suite: Some(wanted.suite.clone()),
                            components: wanted.components.clone(),
                            architectures: wanted.architectures.clone(),
                            keyring: wanted.keyring.clone(),
                            no_verify: wanted.no_verify,
                            policy: wanted.policy,
                            mode: wanted.mode,
                            with_sources: wanted.with_sources,
                            with_udebs: wanted.with_udebs,
                            filter: wanted.filter.clone(),
                            filter_with_deps: wanted.filter_with_deps,
                            client_tls: crate::http::ClientTls::default(),
                            verify_packages: wanted.verify_packages,
                            now: self.settings.now,
                        },
                    )?;
                    action = "created, updated";
                }
                Some(stored) if same_definition(&stored, &wanted) => {}
                Some(_) => {
                    crate::mirror::edit(
                        root,
                        name,
                        crate::mirror::EditOptions {
                            url: Some(wanted.url.clone()),
                            suite: Some(wanted.suite.clone()),
                            components: Some(wanted.components.clone()),
                            architectures: Some(wanted.architectures.clone()),
                            keyring: wanted.keyring.clone(),
                            no_verify: Some(wanted.no_verify),
                            policy: Some(wanted.policy),
                            mode: Some(wanted.mode),
                            filter: Some(wanted.filter.clone()),
                            filter_with_deps: Some(wanted.filter_with_deps),
                            with_sources: Some(wanted.with_sources),
                            with_udebs: Some(wanted.with_udebs),
                            verify_packages: Some(wanted.verify_packages),
                        },
                    )?;
                    action = "edited to match the file, updated";
                }
            }
        }
        let opts = crate::mirror::UpdateOptions {
            concurrency: self.settings.concurrency(None),
            now: self.settings.now,
        };
        let s = crate::mirror::update(root, name, &opts, self.reporter).await?;
        Ok(Finished::Done(made([
            ("mirror", action.to_owned()),
            ("changed", s.changed.to_string()),
            ("packages", s.packages.to_string()),
            ("downloaded", s.downloaded_files.to_string()),
        ])))
    }

    fn snapshot(&self, src: &str) -> StepResult {
        let name = format!("{src}-{}", self.run());
        let is_repo = self.file.repos.iter().any(|r| r == src);
        let adopted = match snapshot::load(self.root, &name) {
            Ok(s) => {
                let ours = match &s.origin {
                    Origin::Mirror { name, .. } => !is_repo && name == src,
                    Origin::Repo { name } => is_repo && name == src,
                    Origin::Filter { .. } | Origin::Release { .. } => false,
                };
                if !ours {
                    return Err(StepError::NotOurs {
                        what: "snapshot",
                        name,
                        origin: s.origin.describe(),
                    }
                    .into());
                }
                true
            }
            Err(snapshot::SnapshotError::Store(e)) if e.is_not_found() => {
                snapshot::create(
                    self.root,
                    snapshot::CreateOptions {
                        name: Some(name.clone()),
                        source: if is_repo {
                            SnapshotSource::Repo(src.to_owned())
                        } else {
                            SnapshotSource::Mirror(src.to_owned())
                        },
                        now: self.settings.now,
                    },
                )?;
                false
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Finished::Done(made([
            ("snapshot", name),
            ("adopted", adopted.to_string()),
        ])))
    }

    fn release(&self, rel: &str) -> StepResult {
        let name = format!("{rel}-{}", self.run());
        let spec = &self.file.releases[rel];
        let resolve = |s: &String| source(self.file, self.run(), s).0;
        let from: Vec<String> = spec.from.iter().map(resolve).collect();
        let components: Vec<(String, Vec<String>)> = spec
            .components
            .iter()
            .map(|(c, list)| (c.clone(), list.iter().map(resolve).collect()))
            .collect();
        let adopted = match snapshot::load_in(self.root, snapshot::Store::Release, &name) {
            Ok(r) => {
                let ours = match &r.origin {
                    Origin::Release { sources, .. } => sources.iter().all(|s| {
                        from.contains(&s.name)
                            || components.iter().any(|(_, l)| l.contains(&s.name))
                    }),
                    Origin::Mirror { .. } | Origin::Filter { .. } | Origin::Repo { .. } => false,
                };
                if !ours {
                    return Err(StepError::NotOurs {
                        what: "release",
                        name,
                        origin: r.origin.describe(),
                    }
                    .into());
                }
                true
            }
            Err(snapshot::SnapshotError::Store(e)) if e.is_not_found() => {
                snapshot::ops::create_release(
                    self.root,
                    &snapshot::ops::ReleaseOptions {
                        name: name.clone(),
                        from,
                        components,
                        policy: spec.policy,
                        now: self.settings.now,
                    },
                )?;
                false
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Finished::Done(made([
            ("release", name),
            ("adopted", adopted.to_string()),
        ])))
    }

    async fn publish(&self, dist: &str) -> StepResult {
        let spec = &self.file.publish[dist];
        let signer = self
            .settings
            .signer(spec.sign_key.clone(), spec.skip_signing)?;
        let opts = crate::promote::PublishOptions {
            snapshot: source(self.file, self.run(), &spec.from).0,
            dist: dist.to_owned(),
            suite: spec.suite.clone(),
            compress: self.settings.compress(spec.compress.clone())?,
            to: spec.to.as_ref().map(|t| self.base.join(t)),
            version: Some(self.run().to_owned()),
            adopt: self.resuming,
            now: self.settings.now,
        };
        let s = crate::promote::publish(
            self.root,
            &opts,
            signer.as_ref().map(|s| s as &dyn crate::signing::Signer),
            self.reporter,
        )
        .await?;
        let mut done = made([
            ("version", format!("{}/{}", s.dist, s.version)),
            ("from", opts.snapshot),
            ("path", s.path.display().to_string()),
            ("packages", s.packages.to_string()),
            ("adopted", s.adopted.to_string()),
        ]);
        self.push(dist, Stage::Dev, &spec.push, &mut done).await?;
        Ok(Finished::Done(done))
    }

    /// Pushes `stage` of `dist` to each target (a killed or failed push
    /// is completed when the step runs again: pushes are idempotent).
    async fn push(
        &self,
        dist: &str,
        stage: Stage,
        targets: &[super::file::PushTarget],
        made: &mut BTreeMap<String, String>,
    ) -> Result<(), crate::promote::push::PushError> {
        let mut pushed = Vec::new();
        for t in targets {
            let s = crate::promote::push::push(
                self.root,
                &crate::promote::push::PushOptions {
                    dist: dist.to_owned(),
                    stages: vec![crate::promote::push::StageRef::Stage(stage)],
                    to: t.to.clone(),
                    endpoint: t.endpoint.clone(),
                    path_style: t.path_style,
                    delete_after: t.delete_after,
                    concurrency: crate::promote::push::DEFAULT_CONCURRENCY,
                    verify: t.verify,
                    dry_run: false,
                    aws: self.settings.aws_env(),
                    now: self.settings.now,
                },
                self.reporter,
            )
            .await?;
            for p in s.stages {
                pushed.push(format!(
                    "{} ({} uploaded, {} deleted)",
                    p.url, p.uploaded, p.deleted
                ));
            }
        }
        if !pushed.is_empty() {
            made.insert("pushed".into(), pushed.join(", "));
        }
        Ok(())
    }

    async fn tests(&self, d: &str) -> StepResult {
        use crate::testreq::plan::{PlanOptions, plan, plan_from_nothing};
        let spec = &self.file.tests[d];
        let version = self.run();
        let info = dist::show(self.root, d)?;
        let released = info.release.as_ref().and_then(|r| {
            info.versions
                .iter()
                .find(|v| &v.record.version == r)
                .map(|v| v.record.source.clone())
        });
        let opts = PlanOptions {
            from: released.clone().unwrap_or_default(),
            to: source(self.file, version, &self.file.publish[d].from).0,
            release: spec.release.clone(),
            archs: spec.arch.clone(),
        };
        let planned = match &released {
            Some(_) => plan(self.root, &opts)?,
            None => plan_from_nothing(self.root, &opts)?,
        };
        let queue = match &spec.queue {
            Some(QueueSpec::Spool) => {
                self.settings
                    .queue(self.root, None, Some(self.root.spool_dir()))?
            }
            Some(QueueSpec::Broker(url)) => {
                self.settings.queue(self.root, Some(url.clone()), None)?
            }
            None => self.settings.queue(self.root, None, None)?,
        };
        let results = self.settings.results(self.root, spec.results.clone());
        let recorded = dist::recorded_tests(self.root, d, version)?;
        let mut submitted = 0;
        for t in &planned.tests {
            let record = dist::TestRecord {
                package: t.package.clone(),
                release: planned.release.clone(),
                archs: vec![t.arch.clone()],
                triggers: vec![t.trigger.clone()],
                ppas: Vec::new(),
                private: false,
                results: results.clone(),
            };
            if recorded.contains(&record) {
                continue;
            }
            let request = crate::testreq::RequestOptions {
                package: record.package.clone(),
                release: record.release.clone(),
                archs: record.archs.clone(),
                triggers: record.triggers.clone(),
                ppas: vec![],
                env: vec![],
                test_git: None,
                build_git: None,
                test_bzr: None,
                all_proposed: false,
                testname: None,
                swiftuser: None,
                readable_by: vec![],
                requester: Some(format!("depot-train-{}", self.plan.train)),
                kind: crate::testreq::QueueKind::Default,
                submit_time: self.settings.now,
            };
            let at = dist::VersionRef {
                dist: d.to_owned(),
                version: version.to_owned(),
            };
            dist::submit_for(self.root, request, &queue, Some((at, results.clone()))).await?;
            submitted += 1;
        }
        Ok(Finished::Done(made([
            (
                "against",
                released.unwrap_or_else(|| "nothing (first release)".into()),
            ),
            ("planned", planned.tests.len().to_string()),
            ("submitted", submitted.to_string()),
        ])))
    }

    /// Prunes, scope by scope, what this train makes; records the names
    /// dropped. Never gc. A repeat after a kill prunes what is left.
    fn retention(&self) -> StepResult {
        use crate::retention::prune::{PruneOptions, prune};
        let Some(rules) = &self.file.retention else {
            return Ok(Finished::Done(BTreeMap::new()));
        };
        let mut dropped = Vec::new();
        let mut kept = 0;
        for scope in super::plan::retention_scopes(self.file) {
            let report = prune(
                self.root,
                &PruneOptions {
                    scope,
                    keep_last: rules.keep_last,
                    keep_days: rules.keep_days,
                    keep_released: rules.keep_released,
                    dry_run: false,
                    now: self.settings.now,
                },
            )?;
            kept += report.kept.len();
            dropped.extend(report.dropped.into_iter().map(|d| d.name));
        }
        dropped.sort();
        dropped.dedup();
        Ok(Finished::Done(made([
            ("dropped", dropped.join(", ")),
            ("dropped-count", dropped.len().to_string()),
            ("kept", kept.to_string()),
        ])))
    }

    async fn promote(&self, d: &str) -> StepResult {
        let spec = &self.file.promote[d];
        let version = self.run();
        let info = dist::show(self.root, d)?;
        let serves = match spec.to {
            Stage::Dev => &info.dev,
            Stage::Release => &info.release,
        };
        if serves.as_deref() == Some(version) {
            let mut done = made([
                ("stage", format!("{d} {} -> {version}", spec.to.name())),
                ("adopted", "true".into()),
            ]);
            self.push(d, spec.to, &spec.push, &mut done).await?;
            return Ok(Finished::Done(done));
        }
        if spec.require_tests {
            match dist::test_state(self.root, d, version).await? {
                TestState::Passed => {}
                TestState::Failed => {
                    return Err(StepError::TestsFailed {
                        dist: d.to_owned(),
                        version: version.to_owned(),
                    }
                    .into());
                }
                TestState::None => {
                    return Err(StepError::NoTests {
                        dist: d.to_owned(),
                        version: version.to_owned(),
                    }
                    .into());
                }
                TestState::Pending => {
                    let timeout = self.file.tests.get(d).map(|t| t.timeout);
                    let since = {
                        let j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
                        j.step(&format!("tests/{d}"))
                            .or_else(|| j.step(&format!("publish/{d}")))
                            .and_then(|s| s.finished)
                    };
                    let timeout = timeout.unwrap_or(std::time::Duration::from_secs(6 * 3600));
                    let waited = since
                        .map(|s| Timestamp::now().duration_since(s))
                        .and_then(|w| std::time::Duration::try_from(w).ok())
                        .unwrap_or_default();
                    if waited > timeout {
                        return Err(StepError::TestsTimedOut {
                            dist: d.to_owned(),
                            version: version.to_owned(),
                            timeout: format!("{}s", timeout.as_secs()),
                        }
                        .into());
                    }
                    return Ok(Finished::Waiting(format!(
                        "tests of {d}/{version} pending; `depot train resume` polls again"
                    )));
                }
            }
        }
        let s = dist::promote(
            self.root,
            &dist::PromoteOptions {
                dist: d.to_owned(),
                version: version.to_owned(),
                to: spec.to,
                dry_run: false,
                require_tests: spec.require_tests,
                now: self.settings.now,
            },
        )
        .await?;
        let mut done = made([
            (
                "stage",
                format!(
                    "{d} {}: {} -> {}",
                    s.stage.name(),
                    s.from.as_deref().unwrap_or("-"),
                    s.to
                ),
            ),
            ("adopted", "false".into()),
        ]);
        self.push(d, spec.to, &spec.push, &mut done).await?;
        Ok(Finished::Done(done))
    }
}
