//! A train file resolved against a data root, for one RUN id: the steps
//! of the night, what each makes and what each needs first.
//!
//! Every name the file uses is looked up here, before anything runs: a
//! mirror named but not inline must exist, a repo must exist, a SOURCE is
//! a mirror, repo or release of the file (its `NAME-RUN`) or an existing
//! snapshot or release, and an inline mirror must be a definition
//! `mirror create` would accept. A failure is a [`FileError::Invalid`]
//! naming the place in the file (exit 2).
//!
//! This module reads the data root and never writes to it (`--dry-run`
//! is this plan, printed).

use serde::Serialize;

use super::file::{Defined, FileError, MirrorEntry, TrainFile};
use crate::content::RepoKind;
use crate::retention::prune::Scope;
use crate::root::Root;

/// `; push to s3://…, s3://…` for a step's `makes`, or nothing.
fn pushes(targets: &[super::file::PushTarget]) -> String {
    if targets.is_empty() {
        return String::new();
    }
    let urls: Vec<String> = targets.iter().map(|t| t.to.to_string()).collect();
    format!("; push to {}", urls.join(", "))
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Create or bring in line an inline mirror, then update it.
    Mirror,
    /// Snapshot a mirror or repo of the train as `SOURCE-RUN`.
    Snapshot,
    /// Make release `NAME-RUN`.
    Release,
    /// Publish version `RUN` of a distribution.
    Publish,
    /// Request the tests of what changed since the `release` stage.
    Tests,
    /// Move a stage to version `RUN` (after its test gate, if any).
    Promote,
    /// Prune what this train makes by its `retention:` rules, once every
    /// other step of the run is done (never gc).
    Retention,
}

/// One step of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// `KIND/SUBJECT`: `mirror/debian`, `publish/stable`.
    pub id: String,
    pub kind: StepKind,
    /// The mirror, repo, release or distribution the step is about.
    pub subject: String,
    /// What it makes (`debian-RUN`, `stable/RUN`, `release -> RUN`), or
    /// what it does to a mirror (`update`, `create, update`).
    pub makes: String,
    /// Steps that must be done first.
    pub after: Vec<String>,
}

/// The night, step by step, in an order in which every step comes after
/// what it needs.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub train: String,
    pub run: String,
    pub steps: Vec<PlannedStep>,
}

/// How a SOURCE resolves: the manifest name it means in this run, and
/// the step that makes it (none for an existing snapshot or release).
pub(super) fn source(file: &TrainFile, run: &str, name: &str) -> (String, Option<String>) {
    match file.defined(name) {
        Some(Defined::Mirror) | Some(Defined::Repo) => {
            (format!("{name}-{run}"), Some(format!("snapshot/{name}")))
        }
        Some(Defined::Release) => (format!("{name}-{run}"), Some(format!("release/{name}"))),
        None => (name.to_owned(), None),
    }
}

/// The kind of packages SOURCE `name` holds, where the file or the data
/// root can tell (a release: its first source's).
fn source_kind(root: &Root, file: &TrainFile, name: &str, depth: usize) -> Option<RepoKind> {
    match file.defined(name) {
        Some(Defined::Mirror) => file.mirrors.iter().find_map(|m| match m {
            MirrorEntry::Inline(i) if i.name == name => Some(i.kind),
            MirrorEntry::Existing(n) if n == name => {
                crate::mirror::load(root, n).ok().map(|d| d.kind)
            }
            _ => None,
        }),
        Some(Defined::Repo) => crate::repo::load(root, name).ok().map(|(d, _)| d.kind),
        Some(Defined::Release) if depth < 64 => {
            let spec = &file.releases[name];
            let (_, first) = file.release_sources(name, spec).next()?;
            source_kind(root, file, first, depth + 1)
        }
        Some(Defined::Release) => None,
        None => crate::snapshot::load_any(root, name)
            .ok()
            .map(|(_, s)| s.kind),
    }
}

/// What the retention step prunes: only what this train makes — the
/// snapshots of each of its mirrors and repos, the releases of each of
/// its releases (prune groups both by the name before `-RUN`), the
/// versions of each distribution it publishes.
pub(super) fn retention_scopes(file: &TrainFile) -> Vec<Scope> {
    file.mirrors
        .iter()
        .map(|m| m.name().to_owned())
        .chain(file.repos.iter().cloned())
        .chain(file.releases.keys().cloned())
        .map(Scope::Source)
        .chain(file.publish.keys().cloned().map(Scope::Dist))
        .collect()
}

/// The RUN id of a run started at `now`: `20261122T020000Z`.
pub fn run_id(now: jiff::Timestamp) -> String {
    now.strftime(RUN_ID).to_string()
}

const RUN_ID: &str = "%Y%m%dT%H%M%SZ";

/// The time a RUN id names, if it is one.
pub fn run_time(run: &str) -> Option<jiff::Timestamp> {
    let utc = jiff::civil::DateTime::strptime(RUN_ID, run).ok()?;
    Some(utc.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp())
}

/// Resolves `file` (read from `path`) against `root` for run `run`.
pub fn plan(
    root: &Root,
    path: &std::path::Path,
    file: &TrainFile,
    run: &str,
    now: jiff::Timestamp,
) -> Result<Plan, FileError> {
    let invalid = |place: String, problem: String| FileError::Invalid {
        path: path.to_owned(),
        place,
        problem,
    };
    let mut steps = Vec::new();
    for (i, m) in file.mirrors.iter().enumerate() {
        let makes = match m {
            MirrorEntry::Existing(name) => {
                crate::mirror::load(root, name)
                    .map_err(|e| invalid(format!("mirrors[{i}]"), e.to_string()))?;
                "update".to_owned()
            }
            MirrorEntry::Inline(def) => {
                let wanted = def
                    .definition(&super::folder_of(path), now)
                    .map_err(|e| invalid(format!("mirrors[{i}]"), e.to_string()))?;
                let stored = crate::mirror::load_opt(root, &def.name)
                    .map_err(|e| invalid(format!("mirrors[{i}]"), e.to_string()))?;
                match stored {
                    None => "create, update".to_owned(),
                    Some(s) if super::file::same_definition(&s, &wanted) => "update".to_owned(),
                    Some(_) => "edit to match the file, update".to_owned(),
                }
            }
        };
        steps.push(PlannedStep {
            id: format!("mirror/{}", m.name()),
            kind: StepKind::Mirror,
            subject: m.name().to_owned(),
            makes,
            after: Vec::new(),
        });
    }
    for m in &file.mirrors {
        steps.push(PlannedStep {
            id: format!("snapshot/{}", m.name()),
            kind: StepKind::Snapshot,
            subject: m.name().to_owned(),
            makes: format!("{}-{run}", m.name()),
            after: vec![format!("mirror/{}", m.name())],
        });
    }
    for (i, r) in file.repos.iter().enumerate() {
        crate::repo::load(root, r).map_err(|e| invalid(format!("repos[{i}]"), e.to_string()))?;
        steps.push(PlannedStep {
            id: format!("snapshot/{r}"),
            kind: StepKind::Snapshot,
            subject: r.clone(),
            makes: format!("{r}-{run}"),
            after: Vec::new(),
        });
    }
    let resolve = |place: String, name: &str| -> Result<(String, Option<String>), FileError> {
        let (manifest, step) = source(file, run, name);
        if step.is_none() && crate::snapshot::load_any(root, name).is_err() {
            return Err(invalid(
                place,
                format!(
                    "`{name}` is neither a mirror, repo or release of this train nor an \
                     existing snapshot or release"
                ),
            ));
        }
        Ok((manifest, step))
    };
    // Releases in dependency order (the file has no cycle: checked).
    let mut ordered: Vec<&String> = Vec::new();
    while ordered.len() < file.releases.len() {
        for (name, spec) in &file.releases {
            if ordered.contains(&name) {
                continue;
            }
            let ready = file
                .release_sources(name, spec)
                .all(|(_, s)| !file.releases.contains_key(s.as_str()) || ordered.contains(&s));
            if ready {
                ordered.push(name);
            }
        }
    }
    for name in ordered {
        let spec = &file.releases[name];
        let mut after = Vec::new();
        let mut from = Vec::new();
        for (place, s) in file.release_sources(name, spec) {
            let (manifest, step) = resolve(place, s)?;
            from.push(manifest);
            after.extend(step.filter(|s| !after.contains(s)));
        }
        steps.push(PlannedStep {
            id: format!("release/{name}"),
            kind: StepKind::Release,
            subject: name.clone(),
            makes: format!("{name}-{run} ({} of {})", spec.policy, from.join(", ")),
            after,
        });
    }
    for (dist, spec) in &file.publish {
        let (manifest, step) = resolve(format!("publish.{dist}.from"), &spec.from)?;
        steps.push(PlannedStep {
            id: format!("publish/{dist}"),
            kind: StepKind::Publish,
            subject: dist.clone(),
            makes: format!(
                "{dist}/{run} from {manifest}; dev -> {run}{}",
                pushes(&spec.push)
            ),
            after: step.into_iter().collect(),
        });
    }
    for (dist, spec) in &file.tests {
        if source_kind(root, file, &file.publish[dist].from, 0) == Some(RepoKind::Rpm) {
            return Err(invalid(
                format!("tests.{dist}"),
                format!(
                    "`{dist}` publishes rpm packages; test plans follow autopkgtest, which \
                     tests Debian source packages (apt only)"
                ),
            ));
        }
        let against = crate::promote::dist::show(root, dist)
            .ok()
            .and_then(|d| d.release)
            .unwrap_or_else(|| "nothing (no version released yet)".into());
        steps.push(PlannedStep {
            id: format!("tests/{dist}"),
            kind: StepKind::Tests,
            subject: dist.clone(),
            makes: format!(
                "requests for what changed in {dist}/{run} since {against}{}",
                if spec.arch.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", spec.arch.join(", "))
                }
            ),
            after: vec![format!("publish/{dist}")],
        });
    }
    for (dist, spec) in &file.promote {
        let mut after = vec![format!("publish/{dist}")];
        if file.tests.contains_key(dist) {
            after.push(format!("tests/{dist}"));
        }
        steps.push(PlannedStep {
            id: format!("promote/{dist}"),
            kind: StepKind::Promote,
            subject: dist.clone(),
            makes: format!(
                "{dist} {} -> {run}{}{}",
                spec.to.name(),
                if spec.require_tests {
                    " once its tests pass"
                } else {
                    ""
                },
                pushes(&spec.push)
            ),
            after,
        });
    }
    if let Some(r) = &file.retention {
        let mut rules = Vec::new();
        if let Some(n) = r.keep_last {
            rules.push(format!("keep-last {n}"));
        }
        if let Some(d) = r.keep_days {
            rules.push(format!("keep-days {d}"));
        }
        match r.keep_released {
            Some(n) => rules.push(format!("keep-released {n}")),
            None => rules.push("every released version kept".into()),
        }
        let scopes = retention_scopes(file)
            .iter()
            .map(|s| match s {
                Scope::Source(n) => n.clone(),
                Scope::Dist(d) => format!("{d}/*"),
                Scope::All => "*".into(),
                Scope::Project(p) => format!("builds of {p}"),
            })
            .collect::<Vec<_>>();
        steps.push(PlannedStep {
            id: "retention".into(),
            kind: StepKind::Retention,
            subject: file.train.clone(),
            makes: format!(
                "prune {} ({}; never what a stage serves; no gc)",
                scopes.join(", "),
                rules.join(", ")
            ),
            after: steps.iter().map(|s| s.id.clone()).collect(),
        });
    }
    Ok(Plan {
        train: file.train.clone(),
        run: run.to_owned(),
        steps,
    })
}
