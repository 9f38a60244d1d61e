//! Polling results: which requested tests passed, failed or are still
//! pending, decided as britney's autopkgtest policy decides.
//!
//! For each architecture, the runs of the package are listed
//! (`RELEASE/ARCH/PREFIX/SRCPKG/…@`), every `result.tar` is read, and the
//! runs are folded in run-id (time) order into one result per trigger
//! named in their `ADT_TEST_TRIGGERS`:
//! - a later run replaces an earlier one, except that a pass is never
//!   replaced by a failure (re-runs of a passed test do not regress it) and
//!   a temporary failure never replaces a real result;
//! - a run of the package itself triggered by a newer version of the package
//!   than it tested is ignored (it tested the old version);
//! - a damaged archive, or one about another package, is reported and
//!   ignored: it cannot be attributed to any trigger.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use serde::Serialize;

use super::request::container_name;
use super::results::{Outcome, ResultsError, RunResult, Store, package_prefix, parse_result_tar};

/// What `depot test poll` asks about.
#[derive(Debug, Clone)]
pub struct PollOptions {
    pub package: String,
    pub release: String,
    pub archs: Vec<String>,
    /// Empty: report every trigger found.
    pub triggers: Vec<String>,
    /// The requests' PPAs; the last one names the container.
    pub ppas: Vec<String>,
    /// Results of private runs (`swiftuser`).
    pub private: bool,
    /// `file://DIR` or a Swift account URL.
    pub results: String,
    /// Parallel result downloads.
    pub concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Neutral,
    Tmpfail,
    Pending,
}

impl From<Outcome> for Status {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Pass => Self::Pass,
            Outcome::Fail => Self::Fail,
            Outcome::Neutral => Self::Neutral,
            Outcome::Tmpfail => Self::Tmpfail,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Neutral => "neutral",
            Self::Tmpfail => "tmpfail",
            Self::Pending => "pending",
        })
    }
}

/// One line of the report: a package on one arch for one trigger.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub package: String,
    pub release: String,
    pub arch: String,
    /// `None` when no trigger was asked for and no run exists.
    pub trigger: Option<String>,
    pub status: Status,
    /// The tested version (`testpkg-version`).
    pub version: Option<String>,
    pub run_id: Option<String>,
    pub log_url: Option<String>,
}

/// A run whose `result.tar` could not be used.
#[derive(Debug, Clone, Serialize)]
pub struct Damaged {
    pub arch: String,
    pub run_id: String,
    pub url: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PollReport {
    pub container: String,
    pub rows: Vec<Row>,
    pub damaged: Vec<Damaged>,
    /// Number of `result.tar` files read.
    pub runs: usize,
}

/// The overall answer, in the order that decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Everything passed or was neutral.
    Passed,
    /// Something still runs (or hit a temporary failure and must re-run).
    Pending,
    /// Something failed; that is final whatever is still pending.
    Failed,
}

impl PollReport {
    pub fn verdict(&self) -> Verdict {
        if self.rows.iter().any(|r| r.status == Status::Fail) {
            Verdict::Failed
        } else if self
            .rows
            .iter()
            .any(|r| matches!(r.status, Status::Pending | Status::Tmpfail))
        {
            Verdict::Pending
        } else {
            Verdict::Passed
        }
    }
}

/// A poll whose answer is not "passed", as an error the binary maps to its
/// exit code (1 failed, 4 pending).
#[derive(Debug, thiserror::Error)]
pub enum NotPassed {
    #[error("{failed} of {total} test results of {package} failed")]
    Failed {
        package: String,
        failed: usize,
        total: usize,
    },
    #[error("{pending} of {total} test results of {package} are still pending")]
    Pending {
        package: String,
        pending: usize,
        total: usize,
    },
}

impl NotPassed {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::Failed { .. } => Failure,
            Self::Pending { .. } => Pending,
        }
    }
}

impl PollReport {
    /// `Ok` if everything passed or was neutral.
    pub fn check(&self, package: &str) -> Result<(), NotPassed> {
        let count = |f: fn(Status) -> bool| self.rows.iter().filter(|r| f(r.status)).count();
        let total = self.rows.len();
        match self.verdict() {
            Verdict::Passed => Ok(()),
            Verdict::Failed => Err(NotPassed::Failed {
                package: package.to_owned(),
                failed: count(|s| s == Status::Fail),
                total,
            }),
            Verdict::Pending => Err(NotPassed::Pending {
                package: package.to_owned(),
                pending: count(|s| matches!(s, Status::Pending | Status::Tmpfail)),
                total,
            }),
        }
    }
}

/// Polls until nothing is pending or `timeout` has passed; returns the
/// last report.
pub async fn poll_wait(
    opts: &PollOptions,
    timeout: std::time::Duration,
    interval: std::time::Duration,
) -> Result<PollReport, ResultsError> {
    let store = Store::open(&opts.results)?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let report = poll_store(&store, opts).await?;
        let now = tokio::time::Instant::now();
        if report.verdict() != Verdict::Pending || now >= deadline {
            return Ok(report);
        }
        tracing::info!(
            package = %opts.package,
            "results still pending; polling again in {} s",
            interval.as_secs()
        );
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

/// Does a run with `new` replace the stored `old` result of a trigger?
fn replaces(new: Status, old: Status) -> bool {
    match (old, new) {
        (Status::Pass, n) => n == Status::Pass,
        (o, Status::Tmpfail) => o == Status::Tmpfail,
        _ => true,
    }
}

struct Folded {
    status: Status,
    version: String,
    run: String,
}

/// `depot test poll`: reads the results once.
pub async fn poll(opts: &PollOptions) -> Result<PollReport, ResultsError> {
    let store = Store::open(&opts.results)?;
    poll_store(&store, opts).await
}

pub async fn poll_store(store: &Store, opts: &PollOptions) -> Result<PollReport, ResultsError> {
    let container = container_name(
        &opts.release,
        opts.ppas.last().map(String::as_str),
        opts.private,
    );
    let mut report = PollReport {
        container: container.clone(),
        rows: Vec::new(),
        damaged: Vec::new(),
        runs: 0,
    };
    for arch in &opts.archs {
        let prefix = package_prefix(&opts.release, arch, &opts.package);
        let runs = store.list_runs(&container, &prefix).await?;
        let container: &str = &container;
        // `buffered` keeps listing order, which is run-id (time) order.
        let mut fetched = futures_util::stream::iter(runs.iter())
            .map(|run| async move {
                let object = format!("{run}/result.tar");
                (run, store.get(container, &object).await)
            })
            .buffered(opts.concurrency.max(1));
        let mut folded: BTreeMap<String, Folded> = BTreeMap::new();
        while let Some((run, got)) = fetched.next().await {
            let run_id = run
                .trim_end_matches('@')
                .rsplit('/')
                .next()
                .unwrap_or(run)
                .to_owned();
            let damaged = |reason: String| Damaged {
                arch: arch.clone(),
                run_id: run_id.clone(),
                url: store.object_url(container, &format!("{run}/result.tar")),
                reason,
            };
            // A run listed before its result.tar was uploaded: not yet a result.
            let Some(bytes) = got? else { continue };
            report.runs += 1;
            let result: RunResult = match parse_result_tar(&bytes) {
                Ok(r) => r,
                Err(reason) => {
                    report.damaged.push(damaged(reason));
                    continue;
                }
            };
            if result.package != opts.package {
                report.damaged.push(damaged(format!(
                    "a result for package {}, not {}",
                    result.package, opts.package
                )));
                continue;
            }
            let status = Status::from(result.outcome());
            for trigger in &result.triggers {
                if tested_older_self(&opts.package, trigger, &result.version) {
                    continue;
                }
                let new = Folded {
                    status,
                    version: result.version.clone(),
                    run: run.clone(),
                };
                match folded.get(trigger) {
                    Some(old) if !replaces(status, old.status) => {}
                    _ => {
                        folded.insert(trigger.clone(), new);
                    }
                }
            }
        }
        let row = |trigger: Option<&String>, f: Option<&Folded>| Row {
            package: opts.package.clone(),
            release: opts.release.clone(),
            arch: arch.clone(),
            trigger: trigger.cloned(),
            status: f.map_or(Status::Pending, |f| f.status),
            version: f.map(|f| f.version.clone()),
            run_id: f.map(|f| {
                f.run
                    .trim_end_matches('@')
                    .rsplit('/')
                    .next()
                    .unwrap_or(&f.run)
                    .to_owned()
            }),
            log_url: f.map(|f| store.object_url(container, &format!("{}/log.gz", f.run))),
        };
        if opts.triggers.is_empty() {
            if folded.is_empty() {
                report.rows.push(row(None, None));
            }
            for (t, f) in &folded {
                report.rows.push(row(Some(t), Some(f)));
            }
        } else {
            for t in &opts.triggers {
                report.rows.push(row(Some(t), folded.get(t)));
            }
        }
    }
    Ok(report)
}

/// britney: a test of package P triggered by P/V that ran an older version
/// than V tested the wrong thing.
fn tested_older_self(package: &str, trigger: &str, tested: &str) -> bool {
    let Some((src, ver)) = trigger.split_once('/') else {
        return false;
    };
    if src != package {
        return false;
    }
    crate::formats::debversion::compare(tested, ver).is_lt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_never_replaced_by_a_failure() {
        assert!(!replaces(Status::Fail, Status::Pass));
        assert!(replaces(Status::Pass, Status::Fail));
        assert!(replaces(Status::Fail, Status::Neutral));
        assert!(!replaces(Status::Tmpfail, Status::Fail));
        assert!(replaces(Status::Fail, Status::Tmpfail));
    }

    #[test]
    fn runs_of_an_older_self_do_not_count() {
        assert!(tested_older_self("hello", "hello/2.0-1", "1.0-1"));
        assert!(!tested_older_self("hello", "hello/2.0-1", "2.0-1"));
        assert!(!tested_older_self("hello", "glibc/2.0-1", "1.0-1"));
    }
}
