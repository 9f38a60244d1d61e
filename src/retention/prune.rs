//! `depot prune`: drops snapshots, releases and published versions by
//! retention rules.
//!
//! Per group — the snapshots of one source (`debian-…`), the releases of
//! one name, the versions of one distribution — a candidate is kept if it
//! is among the newest `--keep-last`, younger than `--keep-days`, what a
//! stage serves (or, for a snapshot or release, the source of what a
//! stage serves), or among the newest `--keep-released` versions ever
//! promoted to `release` (every one of them when the flag is not given:
//! customers pin versions). Only names in depot's timestamp form are
//! candidates; a name a person chose is never pruned.
//!
//! The bytes reported are those a following `depot gc` frees together
//! with the prune: the files whose every link (pool name, links in
//! published trees) goes. The figure is an estimate when writers run
//! meanwhile.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::{RetentionError, Subject};
use crate::promote::dist::{self, DistError};
use crate::promote::shared;
use crate::root::{PublishRoot, Root};
use crate::snapshot::{SnapshotError, Store};

/// What a prune looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every snapshot and release group and every distribution.
    All,
    /// The snapshots and releases of one source (`--source S`).
    Source(String),
    /// The versions of one distribution (`--dist D`).
    Dist(String),
    /// The CI builds of one project (`--project P`), per ref.
    Project(String),
}

/// Options of `depot prune`.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub scope: Scope,
    pub keep_last: Option<usize>,
    pub keep_days: Option<u32>,
    /// `None`: keep every version ever released.
    pub keep_released: Option<usize>,
    pub dry_run: bool,
    pub now: Timestamp,
}

/// What a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Snapshot,
    Release,
    Version,
    /// Every build of one SHA1 of a ref (`P/R/SHA1`; group `P/R`).
    Build,
}

/// A candidate and the decision about it.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub kind: Kind,
    /// The snapshot or release name, or `DIST/VERSION`.
    pub name: String,
    /// The source, release name or distribution it was grouped by.
    pub group: String,
    /// Why it stays (empty for what goes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_because: Vec<String>,
}

/// What `depot prune` dropped (or, with `--dry-run`, would drop).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub dropped: Vec<Decision>,
    pub kept: Vec<Decision>,
    /// Blobs no longer referenced once the drops are made (gc's work).
    pub blobs: usize,
    /// Bytes freed by the prune and a following `depot gc`.
    pub bytes: u64,
    /// Version drops a killed process had left half done, finished now.
    pub finished: Vec<String>,
}

struct Candidate {
    kind: Kind,
    name: String,
    group: String,
    /// Newest first ordering key within the group.
    when: Timestamp,
    reasons: Vec<String>,
    /// Version: ever promoted to release.
    released: bool,
    /// Version: its distribution (name holds DIST/VERSION).
    dist_version: Option<(String, String)>,
}

/// `depot prune`.
pub fn prune(root: &Root, opts: &PruneOptions) -> Result<PruneReport, RetentionError> {
    if opts.keep_last.is_none() && opts.keep_days.is_none() {
        return Err(RetentionError::Usage(
            "prune needs --keep-last N or --keep-days D (or both): with neither it would keep nothing"
                .into(),
        ));
    }
    let finished = if opts.dry_run {
        Vec::new()
    } else {
        dist::finish_interrupted_drops(root, opts.now)?
    };
    let served_sources = dist::served_sources(root)?;
    let mut candidates = Vec::new();
    if matches!(opts.scope, Scope::All | Scope::Project(_)) {
        let project = match &opts.scope {
            Scope::Project(p) => Some(p.as_str()),
            _ => None,
        };
        for s in crate::build::sha1s(root, project).map_err(Box::new)? {
            let mut reasons = Vec::new();
            if s.pending {
                reasons.push("a build of it is queued or being published".to_owned());
            }
            candidates.push(Candidate {
                kind: Kind::Build,
                name: format!("{}/{}/{}", s.project, s.reference, s.sha1),
                group: format!("{}/{}", s.project, s.reference),
                when: s.created,
                reasons,
                released: false,
                dist_version: None,
            });
        }
    }
    if matches!(opts.scope, Scope::All | Scope::Source(_)) {
        for store in [Store::Snapshot, Store::Release] {
            for info in crate::snapshot::list_in(root, store, None)? {
                let Some(group) = super::timestamp_group(&info.name) else {
                    continue;
                };
                if let Scope::Source(s) = &opts.scope
                    && s != group
                {
                    continue;
                }
                let mut reasons = Vec::new();
                if let Some(by) = served_sources.get(&info.name) {
                    reasons.push(format!("source of what {by} serves"));
                }
                candidates.push(Candidate {
                    kind: match store {
                        Store::Snapshot => Kind::Snapshot,
                        Store::Release => Kind::Release,
                    },
                    group: group.to_owned(),
                    name: info.name,
                    when: info.created,
                    reasons,
                    released: false,
                    dist_version: None,
                });
            }
        }
    }
    let mut trees = Vec::new();
    if matches!(opts.scope, Scope::All | Scope::Dist(_)) {
        let dists = match &opts.scope {
            Scope::Dist(d) => vec![dist::show(root, d)?],
            _ => dist::list(root)?,
        };
        for info in dists {
            let published = PublishRoot::new(&info.publish_root);
            for v in &info.versions {
                let r = &v.record;
                if super::timestamp_group(&r.version) != Some("") {
                    continue;
                }
                let mut reasons = Vec::new();
                for (stage, served) in [("dev", &info.dev), ("release", &info.release)] {
                    if served.as_deref() == Some(r.version.as_str()) {
                        reasons.push(format!("served by {stage}"));
                    }
                }
                trees.push((
                    format!("{}/{}", info.name, r.version),
                    published.version_dir(&info.name, &r.version),
                ));
                candidates.push(Candidate {
                    kind: Kind::Version,
                    name: format!("{}/{}", info.name, r.version),
                    group: info.name.clone(),
                    when: r.published,
                    reasons,
                    released: r.released.is_some() || r.withdrawn.is_some(),
                    dist_version: Some((info.name.clone(), r.version.clone())),
                });
            }
        }
    }
    decide(&mut candidates, opts);

    let (dropped, kept): (Vec<Candidate>, Vec<Candidate>) =
        candidates.into_iter().partition(|c| c.reasons.is_empty());
    let mut dropped_trees: Vec<_> = trees
        .into_iter()
        .filter(|(name, _)| {
            dropped
                .iter()
                .any(|d| d.kind == Kind::Version && &d.name == name)
        })
        .map(|(_, path)| path)
        .collect();
    dropped_trees.extend(
        dropped
            .iter()
            .filter(|d| d.kind == Kind::Build)
            .map(|d| root.builds_dir().join(&d.name)),
    );
    let (blobs, bytes) = estimate(root, &dropped, &dropped_trees)?;

    let mut report = PruneReport {
        dry_run: opts.dry_run,
        dropped: Vec::new(),
        kept: kept.into_iter().map(decision).collect(),
        blobs,
        bytes,
        finished,
    };
    // Versions first: a version's record names its source, and a version
    // is what a customer reads.
    let mut dropped = dropped;
    dropped.sort_by_key(|c| (c.kind != Kind::Version, c.name.clone()));
    for c in dropped {
        if opts.dry_run {
            report.dropped.push(decision(c));
            continue;
        }
        let outcome = match (&c.kind, &c.dist_version) {
            (Kind::Version, Some((d, v))) => dist::drop_version(root, d, v, opts.now)
                .map(|_| ())
                .map_err(RetentionError::from),
            (Kind::Snapshot, _) => super::drop_manifest(root, Store::Snapshot, &c.name),
            (Kind::Release, _) => super::drop_manifest(root, Store::Release, &c.name),
            (Kind::Build, _) => {
                let mut parts = c.name.splitn(3, '/');
                let (p, r, s) = (
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                );
                crate::build::drop_sha1(root, p, r, s).map_err(|e| Box::new(e).into())
            }
            (Kind::Version, None) => unreachable!("versions carry their distribution"),
        };
        match outcome {
            Ok(()) => report.dropped.push(decision(c)),
            // A promotion since the plan: the stage serves it now.
            Err(e) if e.kind() == crate::ErrorKind::Refused => {
                let mut c = decision(c);
                c.kept_because.push(e.to_string());
                report.kept.push(c);
            }
            // Another process dropped it since the plan: nothing to do.
            Err(e) if already_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// A drop that found its object gone (a concurrent prune or drop).
fn already_gone(e: &RetentionError) -> bool {
    match e {
        RetentionError::Dist(DistError::NoVersion { .. }) => true,
        RetentionError::Snapshot(s) => {
            matches!(&**s, SnapshotError::Store(store) if store.is_not_found())
        }
        _ => false,
    }
}

fn decision(c: Candidate) -> Decision {
    Decision {
        kind: c.kind,
        name: c.name,
        group: c.group,
        kept_because: c.reasons,
    }
}

/// Adds the rules' reasons to keep each candidate.
fn decide(candidates: &mut [Candidate], opts: &PruneOptions) {
    let mut groups: BTreeMap<(Kind, String), Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        groups.entry((c.kind, c.group.clone())).or_default().push(i);
    }
    let young_after = opts.keep_days.map(|d| {
        opts.now
            .checked_sub(jiff::SignedDuration::from_hours(i64::from(d) * 24))
            .unwrap_or(Timestamp::MIN)
    });
    for (_, mut members) in groups {
        // Newest first: by time, then by name (the timestamp in it).
        members.sort_by(|&a, &b| {
            let (a, b) = (&candidates[a], &candidates[b]);
            b.when.cmp(&a.when).then(b.name.cmp(&a.name))
        });
        let mut released_seen = 0;
        for (rank, &i) in members.iter().enumerate() {
            let c = &mut candidates[i];
            if let Some(n) = opts.keep_last
                && rank < n
            {
                c.reasons.push(format!("among the newest {n}"));
            }
            if let (Some(after), Some(d)) = (young_after, opts.keep_days)
                && c.when > after
            {
                c.reasons.push(format!("younger than {d} days"));
            }
            if c.released {
                released_seen += 1;
                match opts.keep_released {
                    None => c
                        .reasons
                        .push("released (every released version is kept)".into()),
                    Some(n) if released_seen <= n => {
                        c.reasons.push(format!("among the newest {n} released"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

/// Blobs and bytes that the drops free once gc runs: the pool blobs only
/// the dropped manifests (or nothing) reference, and the files of the
/// dropped trees, counted by inode so that a file is freed only when
/// every one of its links goes.
fn estimate(
    root: &Root,
    dropped: &[Candidate],
    trees: &[std::path::PathBuf],
) -> Result<(usize, u64), RetentionError> {
    use std::os::unix::fs::MetadataExt;
    let dropped_subjects: rustc_hash::FxHashSet<Subject> = dropped
        .iter()
        .filter_map(|c| match c.kind {
            Kind::Snapshot => Some(Subject::Snapshot(c.name.clone())),
            Kind::Release => Some(Subject::Release(c.name.clone())),
            Kind::Version | Kind::Build => None,
        })
        .collect();
    let dropped_builds: Vec<String> = dropped
        .iter()
        .filter(|c| c.kind == Kind::Build)
        .map(|c| format!("{}/", c.name))
        .collect();
    let kept = super::referenced(root, &|s| {
        dropped_subjects.contains(s)
            || matches!(s, Subject::Build(b) if dropped_builds.iter().any(|d| b.starts_with(d.as_str())))
    })?;
    // (dev, inode) → (links going, links it has, size)
    let mut going: FxHashMap<(u64, u64), (u64, u64, u64)> = FxHashMap::default();
    let mut count = |m: &std::fs::Metadata| {
        let e = going
            .entry((m.dev(), m.ino()))
            .or_insert((0, m.nlink(), m.len()));
        e.0 += 1;
    };
    let mut blobs = 0;
    crate::pool::Pool::new(root).walk(&mut |digest, path| {
        if !kept.contains(&digest)
            && let Ok(meta) = path.symlink_metadata()
        {
            blobs += 1;
            count(&meta);
        }
    })?;
    for tree in trees {
        let mut stack = vec![tree.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(meta) = e.path().symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(e.path());
                } else if !meta.is_symlink() {
                    count(&meta);
                }
            }
        }
    }
    // The dropped versions' shared files: those of their generations that
    // no version left lists ([`crate::promote::shared`]).
    let mut by_dist: BTreeMap<&Path, Vec<&std::ffi::OsStr>> = BTreeMap::new();
    for tree in trees {
        if let (Some(dir), Some(name)) = (tree.parent(), tree.file_name()) {
            by_dist.entry(dir).or_default().push(name);
        }
    }
    for (dir, gone) in by_dist {
        let mut left = shared::version_folders(dir).map_err(super::io(dir))?;
        left.retain(|v| !gone.contains(&std::ffi::OsStr::new(v)));
        for path in shared::unneeded(dir, &left).map_err(super::io(dir))?.files {
            if let Ok(meta) = path.symlink_metadata() {
                count(&meta);
            }
        }
    }
    let bytes = going
        .values()
        .filter(|(gone, links, _)| gone >= links)
        .map(|(_, _, size)| size)
        .sum();
    Ok((blobs, bytes))
}
