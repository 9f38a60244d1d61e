//! Distributions and stages: which published versions exist, and which one
//! each stage (`dev`, `release`) serves.
//!
//! A publish adds a version record (`dists/DIST/VERSION.json` in the data
//! root) and points `DIR/DIST/dev` at it; `depot promote DIST VERSION --to
//! release` moves `DIR/DIST/release` — an atomic symlink switch, under the
//! distribution's lock — and appends the move to the audit log. Promoting an
//! older version than the one released is a rollback, audited the same way;
//! it withdraws the newer released versions from release readers (they go
//! back to `dev`, each withdrawal audited as `withdraw`). Content never
//! moves: stages are pointers.
//!
//! Dropping a version ([`drop_version`]) is refused while a stage serves
//! it; otherwise the tree is renamed aside (`DIR/DIST/.VERSION.dropping`)
//! in one step, the drop is audited, the record removed and only then the
//! tree deleted, so no reader ever sees half a version, and a killed drop
//! is finished by the next `prune` or `gc` ([`finish_interrupted_drops`]).
//!
//! This module owns `dists/` in the data root (through [`crate::store`])
//! and the stage symlinks of a publish root; it never writes inside a
//! published version (`publish.rs` makes those) and never changes guards.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::lock::{LockError, ObjectLock, Wait};
use crate::names::InvalidName;
use crate::root::{PublishRoot, Root};
use crate::store::{Format, ObjectKind, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("distribution `{dist}` has no version `{version}`")]
    NoVersion { dist: String, version: String },
    #[error(
        "promotion of {dist} {version} refused: {}",
        if problems.is_empty() { "no tests are recorded for it (depot test submit … --for DIST/VERSION)".to_owned() } else { format!("tests not passed:\n  {}", problems.join("\n  ")) }
    )]
    Gate {
        dist: String,
        version: String,
        problems: Vec<String>,
    },
    #[error("cannot poll the test results of {dist} {version}")]
    Poll {
        dist: String,
        version: String,
        #[source]
        source: Box<crate::testreq::results::ResultsError>,
    },
    #[error(
        "{dist} {version} is what `{stage}` serves; promote another version to `{stage}` first"
    )]
    Served {
        dist: String,
        version: String,
        stage: &'static str,
    },
    #[error("{0}")]
    Config(String),
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DistError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_) | Self::Config(_) => Usage,
            Self::Gate { .. } | Self::Served { .. } => Refused,
            Self::Lock(l) => l.kind(),
            Self::Store(s) => s.kind(),
            Self::NoVersion { .. } | Self::Poll { .. } | Self::Io { .. } => Failure,
        }
    }
}

/// A stage a version can be promoted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Dev,
    Release,
}

impl Stage {
    pub fn name(self) -> &'static str {
        crate::choice::Choice::word(self)
    }
}

impl crate::choice::Choice for Stage {
    const WHAT: &'static str = "stage";
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (Self::Dev, "dev", "What builders and testers read"),
        (Self::Release, "release", "What customers read"),
    ];
}
crate::choice_words!(Stage);

/// `dists/DIST/dist.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DistFile {
    /// Where the versions are published. Saved relative to the data root
    /// when it lies inside it (the default `public`), so that a copy of
    /// the root (a backup restored elsewhere, a trial of `prune` on a
    /// copy) serves and prunes its own versions, never the original's;
    /// loaded as the path to use. Files of older depots hold it absolute,
    /// until their next publish saves it again.
    publish_root: PathBuf,
    /// The guard of each stage (`public`: none).
    #[serde(default = "default_stages")]
    stages: std::collections::BTreeMap<String, String>,
    /// Promotion to release needs passing tests.
    #[serde(default)]
    require_tests: bool,
}

fn default_stages() -> std::collections::BTreeMap<String, String> {
    [("dev", "dev"), ("release", "release")]
        .into_iter()
        .map(|(s, g)| (s.to_owned(), g.to_owned()))
        .collect()
}

/// `dists/DIST/dist.json`.
fn dists(root: &Root) -> Store<DistFile> {
    Store::folders(
        ObjectKind::Dist,
        root.dists_dir(),
        "dist.json",
        Format::Json,
    )
}

/// `dists/DIST/VERSION.json`.
fn versions(root: &Root, dist: &str) -> Store<VersionRecord> {
    Store::files(
        ObjectKind::Version,
        root.dist_dir(dist),
        ".json",
        Format::Json,
    )
}

/// `dists/DIST/VERSION.tests.json`.
fn tests(root: &Root, dist: &str) -> Store<Vec<TestRecord>> {
    Store::files(
        ObjectKind::VersionTests,
        root.dist_dir(dist),
        ".tests.json",
        Format::Json,
    )
}

fn load_file(root: &Root, dist: &str) -> Result<Option<DistFile>, DistError> {
    Ok(dists(root).load_opt(dist)?.map(|f| f.resolved(root)))
}

fn save_file(root: &Root, dist: &str, file: &DistFile) -> Result<(), DistError> {
    Ok(dists(root).save(dist, &file.clone().stored(root))?)
}

impl DistFile {
    /// As saved: the publish root relative to the data root if inside it.
    fn stored(mut self, root: &Root) -> Self {
        if let Ok(data) = std::path::absolute(root.path())
            && let Ok(inside) = self.publish_root.strip_prefix(&data)
            && !inside.as_os_str().is_empty()
        {
            self.publish_root = inside.to_owned();
        }
        self
    }

    /// As used: a relative publish root is in the data root.
    fn resolved(mut self, root: &Root) -> Self {
        if self.publish_root.is_relative() {
            self.publish_root = root.path().join(&self.publish_root);
        }
        self
    }
}

/// Options of `depot dist create`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub dist: String,
    /// `(stage, guard)`; stages not given keep their defaults (`dev` and
    /// `release` guards).
    pub stages: Vec<(Stage, String)>,
    pub require_tests: bool,
    /// Default: `public/` in the data root.
    pub publish_root: Option<PathBuf>,
}

/// `depot dist create DIST [--stage STAGE=GUARD]… [--require-tests]`:
/// configures a distribution (before or after its first publish).
pub fn create(root: &Root, opts: &CreateOptions) -> Result<DistInfo, DistError> {
    crate::names::validate("distribution", &opts.dist)?;
    let _lock = ObjectLock::acquire(root, "dist", &opts.dist, Wait::Yes)?;
    let publish_root = opts
        .publish_root
        .clone()
        .unwrap_or_else(|| root.public_dir());
    let mut file = load_file(root, &opts.dist)?.unwrap_or(DistFile {
        publish_root: std::path::absolute(&publish_root).map_err(io(&publish_root))?,
        stages: default_stages(),
        require_tests: false,
    });
    for (stage, guard) in &opts.stages {
        if guard != "public" {
            super::guard::load(root, guard).map_err(|e| DistError::Config(e.to_string()))?;
        }
        file.stages.insert(stage.name().to_owned(), guard.clone());
    }
    file.require_tests = opts.require_tests;
    save_file(root, &opts.dist, &file)?;
    drop(_lock);
    show(root, &opts.dist)
}

/// `dists/DIST/VERSION.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: String,
    pub published: Timestamp,
    /// The snapshot or release it was published from.
    pub source: String,
    /// SHA-256 of its top-level metadata (Release, repomd.xml).
    pub digest: Sha256Digest,
    /// When it was promoted to release (none while it is at `dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Timestamp>,
    /// When a rollback of `release` to an older version withdrew it (back
    /// to `dev`); cleared when it is promoted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<Timestamp>,
}

impl VersionRecord {
    /// The latest stage whose readers may read this version: `release` once
    /// promoted there (and not withdrawn by a rollback), else `dev`.
    pub fn stage(&self) -> Stage {
        if self.released.is_some() {
            Stage::Release
        } else {
            Stage::Dev
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DistError + '_ {
    move |source| DistError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Records a new version (called by publish, under the dist's lock).
pub(crate) fn record_publish(
    root: &Root,
    dist: &str,
    publish_root: &Path,
    record: &VersionRecord,
) -> Result<(), DistError> {
    let publish_root = std::path::absolute(publish_root).map_err(io(publish_root))?;
    let mut file = load_file(root, dist)?.unwrap_or(DistFile {
        publish_root: publish_root.clone(),
        stages: default_stages(),
        require_tests: false,
    });
    file.publish_root = publish_root;
    save_file(root, dist, &file)?;
    Ok(versions(root, dist).save(&record.version, record)?)
}

/// The record of `dist`'s version `version`, if it has one.
pub fn version_record(
    root: &Root,
    dist: &str,
    version: &str,
) -> Result<Option<VersionRecord>, DistError> {
    crate::names::validate("distribution", dist)?;
    crate::names::validate("version", version)?;
    Ok(versions(root, dist).load_opt(version)?)
}

/// A test requested for a version (`depot test submit … --for DIST/VERSION`),
/// polled again when the version is promoted with `--require-tests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    pub package: String,
    pub release: String,
    pub archs: Vec<String>,
    pub triggers: Vec<String>,
    #[serde(default)]
    pub ppas: Vec<String>,
    #[serde(default)]
    pub private: bool,
    /// Where results are polled (`file://DIR` or a Swift account URL).
    pub results: String,
}

/// The tests recorded for a version.
pub fn recorded_tests(
    root: &Root,
    dist: &str,
    version: &str,
) -> Result<Vec<TestRecord>, DistError> {
    Ok(tests(root, dist).load_opt(version)?.unwrap_or_default())
}

/// Records a submitted test against `dist`/`version` (which must exist).
pub fn record_test(
    root: &Root,
    dist: &str,
    version: &str,
    record: TestRecord,
) -> Result<(), DistError> {
    let info = show(root, dist)?;
    if !info.versions.iter().any(|v| v.record.version == version) {
        return Err(DistError::NoVersion {
            dist: dist.to_owned(),
            version: version.to_owned(),
        });
    }
    let _lock = ObjectLock::acquire(root, "dist", dist, Wait::Yes)?;
    let mut all = recorded_tests(root, dist, version)?;
    if !all.contains(&record) {
        all.push(record);
    }
    Ok(tests(root, dist).save(version, &all)?)
}

/// Polls every recorded test; returns what did not pass (fail, tmpfail,
/// pending, unreadable results), one line each.
async fn gate(root: &Root, dist: &str, version: &str) -> Result<Vec<String>, DistError> {
    use crate::testreq::poll::{PollOptions, Status, poll};
    let records = recorded_tests(root, dist, version)?;
    if records.is_empty() {
        return Err(DistError::Gate {
            dist: dist.to_owned(),
            version: version.to_owned(),
            problems: Vec::new(),
        });
    }
    let mut problems = Vec::new();
    for r in records {
        let report = poll(&PollOptions {
            package: r.package.clone(),
            release: r.release.clone(),
            archs: r.archs.clone(),
            triggers: r.triggers.clone(),
            ppas: r.ppas.clone(),
            private: r.private,
            results: r.results.clone(),
            concurrency: 8,
        })
        .await
        .map_err(|source| DistError::Poll {
            dist: dist.to_owned(),
            version: version.to_owned(),
            source: Box::new(source),
        })?;
        for row in &report.rows {
            if !matches!(row.status, Status::Pass | Status::Neutral) {
                problems.push(format!(
                    "{} {}/{}{}: {}",
                    row.package,
                    row.release,
                    row.arch,
                    row.trigger
                        .as_ref()
                        .map(|t| format!(" [{t}]"))
                        .unwrap_or_default(),
                    serde_json::to_value(row.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ));
            }
        }
    }
    Ok(problems)
}

/// The state of the tests recorded for a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestState {
    /// Nothing recorded with `test submit --for`.
    None,
    Passed,
    Pending,
    Failed,
}

/// Polls the tests recorded for a version and sums them up.
pub async fn test_state(root: &Root, dist: &str, version: &str) -> Result<TestState, DistError> {
    match gate(root, dist, version).await {
        Err(DistError::Gate { problems, .. }) if problems.is_empty() => Ok(TestState::None),
        Err(e) => Err(e),
        Ok(problems) if problems.is_empty() => Ok(TestState::Passed),
        Ok(problems) if problems.iter().any(|p| p.ends_with(": fail")) => Ok(TestState::Failed),
        Ok(_) => Ok(TestState::Pending),
    }
}

/// A distribution and its versions, for `dist show`.
#[derive(Debug, Clone, Serialize)]
pub struct DistInfo {
    pub name: String,
    pub publish_root: PathBuf,
    pub dev: Option<String>,
    pub release: Option<String>,
    /// The guard of each stage (`public`: none).
    pub stages: std::collections::BTreeMap<String, String>,
    pub require_tests: bool,
    /// Test state per version, when the caller polled it ([`test_state`]).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tests: std::collections::BTreeMap<String, TestState>,
    /// Oldest first.
    pub versions: Vec<VersionInfo>,
}

/// A version as `dist show` lists it: its record and its stage.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    #[serde(flatten)]
    pub record: VersionRecord,
    /// [`VersionRecord::stage`].
    pub stage: Stage,
}

fn pointer(published: &PublishRoot, dist: &str, stage: Stage) -> Option<String> {
    std::fs::read_link(published.stage_link(dist, stage.name()))
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

/// `depot dist show DIST`.
pub fn show(root: &Root, dist: &str) -> Result<DistInfo, DistError> {
    crate::names::validate("distribution", dist)?;
    let meta = dists(root).load(dist)?.resolved(root);
    let records = versions(root, dist);
    let mut versions = Vec::new();
    for (name, loaded) in records.load_listed()? {
        // The folder holds `dist.json` and `VERSION.tests.json` too: what
        // does not read as a version record is not one.
        if name == "dist" {
            continue;
        }
        match loaded {
            Ok(record) => versions.push(VersionInfo {
                stage: record.stage(),
                record,
            }),
            Err(StoreError::Corrupt { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    versions.sort_by(|a, b| a.record.version.cmp(&b.record.version));
    let published = PublishRoot::new(&meta.publish_root);
    Ok(DistInfo {
        name: dist.to_owned(),
        dev: pointer(&published, dist, Stage::Dev),
        release: pointer(&published, dist, Stage::Release),
        publish_root: meta.publish_root,
        stages: meta.stages,
        require_tests: meta.require_tests,
        tests: std::collections::BTreeMap::new(),
        versions,
    })
}

/// `depot dist list`.
pub fn list(root: &Root) -> Result<Vec<DistInfo>, DistError> {
    dists(root)
        .list()?
        .iter()
        .filter_map(|n| match show(root, n) {
            // Dropped since the listing.
            Err(DistError::Store(e)) if e.is_not_found() => None,
            shown => Some(shown),
        })
        .collect()
}

/// Options of `depot promote`.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    pub dist: String,
    pub version: String,
    pub to: Stage,
    pub dry_run: bool,
    /// Refuse unless every test recorded for the version passed (or is
    /// neutral).
    pub require_tests: bool,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteSummary {
    pub dist: String,
    pub stage: Stage,
    /// The version the stage served before.
    pub from: Option<String>,
    pub to: String,
    /// The stage moved back to an older version.
    pub rollback: bool,
    /// Newer versions a rollback of `release` withdrew from release readers
    /// (back to `dev`).
    pub withdrawn: Vec<String>,
    pub dry_run: bool,
}

/// `depot promote DIST VERSION --to STAGE [--require-tests] [--dry-run]`.
///
/// The whole decision — the version's existence, the gate, what the stage
/// served before — is taken under the distribution's lock, so the pointer
/// switch and the audit entry always match the state the decision saw
/// (`test submit --for` and `dist create` wait for the lock meanwhile).
pub async fn promote(root: &Root, opts: &PromoteOptions) -> Result<PromoteSummary, DistError> {
    crate::names::validate("distribution", &opts.dist)?;
    // Refuse rather than queue: two promotions racing on one distribution
    // is a mistake a release engineer wants to hear about.
    let _lock = ObjectLock::acquire(root, "dist", &opts.dist, Wait::No)?;
    let info = show(root, &opts.dist)?;
    let no_version = || DistError::NoVersion {
        dist: opts.dist.clone(),
        version: opts.version.clone(),
    };
    let mut record = info
        .versions
        .iter()
        .find(|v| v.record.version == opts.version)
        .map(|v| v.record.clone())
        .ok_or_else(no_version)?;
    let published = PublishRoot::new(&info.publish_root);
    if !published.version_dir(&opts.dist, &opts.version).is_dir() {
        return Err(no_version());
    }
    if opts.require_tests || (info.require_tests && opts.to == Stage::Release) {
        let problems = gate(root, &opts.dist, &opts.version).await?;
        if !problems.is_empty() {
            return Err(DistError::Gate {
                dist: opts.dist.clone(),
                version: opts.version.clone(),
                problems,
            });
        }
    }
    let from = pointer(&published, &opts.dist, opts.to);
    let rollback = from.as_ref().is_some_and(|f| *f > opts.version);
    // A rollback of the release stage withdraws every newer version from
    // release readers: they were rolled back because they must not be
    // used. The version the stage served counts even if its record was
    // already withdrawn (a rerun after an interrupted rollback).
    let withdrawn: Vec<VersionRecord> = if rollback && opts.to == Stage::Release {
        info.versions
            .iter()
            .map(|v| &v.record)
            .filter(|v| {
                v.version > opts.version
                    && (v.released.is_some() || from.as_deref() == Some(v.version.as_str()))
            })
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let summary = PromoteSummary {
        dist: opts.dist.clone(),
        stage: opts.to,
        from: from.clone(),
        to: opts.version.clone(),
        rollback,
        withdrawn: withdrawn.iter().map(|v| v.version.clone()).collect(),
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        return Ok(summary);
    }
    let records = versions(root, &opts.dist);
    // Withdraw before the switch: until the pointer moves, the withdrawn
    // version stays readable through `release/` only.
    for v in &withdrawn {
        let mut v = v.clone();
        v.released = None;
        v.withdrawn = Some(opts.now);
        records.save(&v.version, &v)?;
    }
    let link = published.stage_link(&opts.dist, opts.to.name());
    crate::fsutil::switch_symlink(Path::new(&opts.version), &link).map_err(io(&link))?;
    if opts.to == Stage::Release && record.released.is_none() {
        record.released = Some(opts.now);
        record.withdrawn = None;
        records.save(&record.version, &record)?;
    }
    let user = crate::audit::current_user();
    let entry = crate::audit::AuditEntry {
        time: opts.now,
        user: user.clone(),
        action: if rollback { "rollback" } else { "promote" },
        dist: &opts.dist,
        version: &opts.version,
        from: from.as_deref().unwrap_or("-"),
        to: opts.to.name(),
        digest: record.digest.to_hex(),
    };
    crate::audit::append(root, &entry).map_err(io(&root.audit_log()))?;
    for v in &withdrawn {
        let entry = crate::audit::AuditEntry {
            time: opts.now,
            user: user.clone(),
            action: "withdraw",
            dist: &opts.dist,
            version: &v.version,
            from: Stage::Release.name(),
            to: Stage::Dev.name(),
            digest: v.digest.to_hex(),
        };
        crate::audit::append(root, &entry).map_err(io(&root.audit_log()))?;
    }
    Ok(summary)
}

/// `depot dist show DIST` with the state of each version's recorded tests,
/// all polled at once (each poll waits on its results store, not on the
/// CPU).
pub async fn show_with_tests(root: &Root, dist: &str) -> Result<DistInfo, DistError> {
    let mut info = show(root, dist)?;
    let states = futures_util::future::try_join_all(
        info.versions
            .iter()
            .map(|v| test_state(root, dist, &v.record.version)),
    )
    .await?;
    info.tests = info
        .versions
        .iter()
        .map(|v| v.record.version.clone())
        .zip(states)
        .collect();
    Ok(info)
}

impl DistInfo {
    /// What `dist show` says of a version's stage: the stages that serve
    /// it, or whether it was released or withdrawn before.
    pub fn stage_labels(&self, v: &VersionRecord) -> Vec<&'static str> {
        let mut labels = Vec::new();
        if self.dev.as_deref() == Some(v.version.as_str()) {
            labels.push("dev");
        }
        if self.release.as_deref() == Some(v.version.as_str()) {
            labels.push("release");
        } else if v.released.is_some() {
            labels.push("(released before)");
        } else if v.withdrawn.is_some() {
            labels.push("(withdrawn from release)");
        }
        labels
    }
}

impl std::fmt::Display for TestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "-",
            Self::Passed => "passed",
            Self::Pending => "pending",
            Self::Failed => "failed",
        })
    }
}

/// The versions the stages of `dist` serve: `(stage, version)`.
pub fn served(root: &Root, dist: &str) -> Result<Vec<(Stage, String)>, DistError> {
    let info = show(root, dist)?;
    Ok([(Stage::Dev, info.dev), (Stage::Release, info.release)]
        .into_iter()
        .filter_map(|(s, v)| v.map(|v| (s, v)))
        .collect())
}

/// The snapshots and releases that versions served by a stage were
/// published from, each with the `DIST/STAGE` that serves it.
pub fn served_sources(
    root: &Root,
) -> Result<std::collections::BTreeMap<String, String>, DistError> {
    let mut out = std::collections::BTreeMap::new();
    for info in list(root)? {
        for (stage, version) in [(Stage::Dev, &info.dev), (Stage::Release, &info.release)] {
            let Some(version) = version else { continue };
            if let Some(v) = info.versions.iter().find(|v| &v.record.version == version) {
                out.entry(v.record.source.clone())
                    .or_insert_with(|| format!("{}/{}", info.name, stage.name()));
            }
        }
    }
    Ok(out)
}

/// What dropping a version removed.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedVersion {
    pub dist: String,
    pub version: String,
    /// The snapshot or release it was published from.
    pub source: String,
}

/// `depot dist drop DIST VERSION` (and `prune`): refused (exit 3) while a
/// stage serves the version. The tree is renamed aside first, so it
/// vanishes from `DIR/DIST/VERSION` at once; then the drop is audited, the
/// record removed and the tree deleted.
pub fn drop_version(
    root: &Root,
    dist: &str,
    version: &str,
    now: Timestamp,
) -> Result<DroppedVersion, DistError> {
    crate::names::validate("distribution", dist)?;
    crate::names::validate("version", version)?;
    let _lock = ObjectLock::acquire(root, "dist", dist, Wait::Yes)?;
    let info = show(root, dist)?;
    let record = info
        .versions
        .iter()
        .find(|v| v.record.version == version)
        .map(|v| v.record.clone())
        .ok_or_else(|| DistError::NoVersion {
            dist: dist.to_owned(),
            version: version.to_owned(),
        })?;
    for (stage, served) in [(Stage::Dev, &info.dev), (Stage::Release, &info.release)] {
        if served.as_deref() == Some(version) {
            return Err(DistError::Served {
                dist: dist.to_owned(),
                version: version.to_owned(),
                stage: stage.name(),
            });
        }
    }
    let published = PublishRoot::new(&info.publish_root);
    let tree = published.version_dir(dist, version);
    let aside = published.dropping_dir(dist, version);
    match std::fs::rename(&tree, &aside) {
        Ok(()) => {}
        // Already aside (a killed drop) or never there: the rest still runs.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(DistError::Io { path: tree, source }),
    }
    finish_drop(root, dist, &published, &record, now)?;
    Ok(DroppedVersion {
        dist: dist.to_owned(),
        version: version.to_owned(),
        source: record.source,
    })
}

/// The steps of a drop after the rename aside (under the dist's lock).
fn finish_drop(
    root: &Root,
    dist: &str,
    published: &PublishRoot,
    record: &VersionRecord,
    now: Timestamp,
) -> Result<(), DistError> {
    let entry = crate::audit::AuditEntry {
        time: now,
        user: crate::audit::current_user(),
        action: "drop",
        dist,
        version: &record.version,
        from: record.stage().name(),
        to: "-",
        digest: record.digest.to_hex(),
    };
    crate::audit::append(root, &entry).map_err(io(&root.audit_log()))?;
    tests(root, dist).remove_if_present(&record.version)?;
    versions(root, dist).remove_if_present(&record.version)?;
    let aside = published.dropping_dir(dist, &record.version);
    match std::fs::remove_dir_all(&aside) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DistError::Io {
            path: aside,
            source,
        }),
    }
}

/// Finishes the drops a killed process left (`DIR/DIST/.VERSION.dropping`
/// folders); returns the versions finished.
pub fn finish_interrupted_drops(root: &Root, now: Timestamp) -> Result<Vec<String>, DistError> {
    let mut finished = Vec::new();
    for name in dists(root).list()? {
        let Some(file) = load_file(root, &name)? else {
            continue;
        };
        let published = PublishRoot::new(&file.publish_root);
        let dir = published.dist_dir(&name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let aside: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix('.')?
                    .strip_suffix(".dropping")
                    .map(str::to_owned)
            })
            .collect();
        if aside.is_empty() {
            continue;
        }
        let _lock = ObjectLock::acquire(root, "dist", &name, Wait::Yes)?;
        for version in aside {
            match versions(root, &name).load_opt(&version) {
                Ok(Some(record)) => finish_drop(root, &name, &published, &record, now)?,
                // The record went before the kill: only the tree is left.
                Ok(None) | Err(StoreError::Corrupt { .. }) => {
                    let path = published.dropping_dir(&name, &version);
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => {}
                        // A drop still running when the folder was listed
                        // finished it before this took the lock.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(source) => return Err(DistError::Io { path, source }),
                    }
                }
                Err(e) => return Err(e.into()),
            }
            finished.push(format!("{name}/{version}"));
        }
    }
    Ok(finished)
}

/// A published version, `DIST/VERSION`, as `test submit --for` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub dist: String,
    pub version: String,
}

/// The error of a malformed `DIST/VERSION`.
#[derive(Debug, thiserror::Error)]
#[error("expected DIST/VERSION, got `{0}`")]
pub struct BadVersionRef(pub String);

impl BadVersionRef {
    /// A `DIST/VERSION` the user gave: a usage error.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

impl std::str::FromStr for VersionRef {
    type Err = BadVersionRef;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((dist, version)) if !dist.is_empty() && !version.is_empty() => Ok(Self {
                dist: dist.to_owned(),
                version: version.to_owned(),
            }),
            _ => Err(BadVersionRef(s.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Dist(#[from] DistError),
    #[error(transparent)]
    Request(#[from] crate::testreq::RequestError),
    #[error(transparent)]
    Queue(#[from] crate::testreq::QueueError),
}

impl SubmitError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::Dist(d) => d.kind(),
            Self::Request(r) => r.kind(),
            Self::Queue(q) => q.kind(),
        }
    }
}

/// `depot test submit … [--for DIST/VERSION]`: checks every request (and
/// that the version exists) before anything is queued, submits, then
/// records the request against the version for `promote --require-tests`,
/// to be polled at `results`.
pub async fn submit_for(
    root: &Root,
    opts: crate::testreq::RequestOptions,
    queue: &crate::testreq::ops::QueueTarget,
    record: Option<(VersionRef, String)>,
) -> Result<Vec<crate::testreq::Submitted>, SubmitError> {
    let requests = opts.build()?;
    if let Some((at, _)) = &record {
        let info = show(root, &at.dist)?;
        if !info.versions.iter().any(|v| v.record.version == at.version) {
            return Err(DistError::NoVersion {
                dist: at.dist.clone(),
                version: at.version.clone(),
            }
            .into());
        }
    }
    let submitted = queue.submit(&requests).await?;
    if let Some((at, results)) = record {
        let test = TestRecord {
            package: opts.package,
            release: opts.release,
            archs: opts.archs,
            triggers: opts.triggers,
            ppas: opts.ppas,
            private: opts.swiftuser.is_some(),
            results,
        };
        record_test(root, &at.dist, &at.version, test)?;
    }
    Ok(submitted)
}
