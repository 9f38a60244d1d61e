//! Retention: what to keep, what nothing needs any more, and whether what
//! is kept is whole.
//!
//! - [`prune`] drops snapshots, releases and published versions by the
//!   rules of `depot prune` (keep the newest N, anything younger than D
//!   days, never what a stage serves, the newest N ever released). Only
//!   names in depot's timestamp form are candidates.
//! - [`gc`] deletes the pool blobs, catalogs, `cache/rpm-verified` entries
//!   and leftover temp files that nothing references.
//! - [`check`] verifies a root without changing it.
//!
//! **What references what** ([`refs`] walks it). The roots are the mirror
//! states, repo states, snapshot manifests and release manifests. Each
//! names index blobs, selection blobs and, through the indices' stanzas
//! (or primary.xml), package blobs; a repo state names its package blobs
//! directly. A catalog (`cache/catalog/ab/<sha>.<deb|src>`) belongs to
//! the index blob of that name and an `rpm-verified` entry to the package
//! blob of that name. A published version references its blobs only
//! through the manifest its record names (`source`): its tree holds its
//! own hardlinks to the package files, so it keeps serving after the pool
//! name is collected, and the bytes are freed only when the last link
//! (pool or tree) goes — which is why gc counts as freed only the blobs
//! whose link count was one. A train's journal names the snapshots,
//! releases and versions a run made, never a blob, so it is no root: what
//! a run made is kept by its own manifest or record.
//!
//! This module owns no folder of its own. It removes pool blobs, cache
//! entries and temp files only in [`gc`], under the pool's exclusive lock
//! ([`crate::lock::PoolGuard`]); it removes snapshots, releases and
//! versions only through their own modules' drop functions (which refuse
//! what a stage serves), and never writes a manifest, state or published
//! tree.

pub mod check;
pub mod gc;
pub mod prune;
pub mod refs;

use std::fmt;
use std::path::PathBuf;

use crate::content::Content;
use crate::digest::Sha256Digest;
use crate::lock::LockError;
use crate::promote::dist::DistError;
use crate::root::Root;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dist(#[from] DistError),
    #[error(transparent)]
    Snapshot(#[from] Box<SnapshotError>),
    #[error("{0}")]
    Usage(String),
    #[error(
        "gc refuses to run: it cannot tell what {subject} references (run `depot check`, then repair or drop it)"
    )]
    Unknowable {
        subject: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("check found {count} problem{}", if *count == 1 { "" } else { "s" })]
    Problems { count: usize },
    #[error(transparent)]
    Build(#[from] Box<crate::build::BuildError>),
    #[error(transparent)]
    Pool(#[from] crate::pool::PoolError),
}

impl RetentionError {
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind::*;
        match self {
            Self::Lock(l) => l.kind(),
            Self::Store(s) => s.kind(),
            Self::Dist(d) => d.kind(),
            Self::Snapshot(s) => s.kind(),
            Self::Build(b) => b.kind(),
            Self::Usage(_) => Usage,
            Self::Unknowable { .. } | Self::Io { .. } | Self::Problems { .. } | Self::Pool(_) => {
                Failure
            }
        }
    }
}

impl From<SnapshotError> for RetentionError {
    fn from(e: SnapshotError) -> Self {
        Self::Snapshot(Box::new(e))
    }
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RetentionError + '_ {
    move |source| RetentionError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A state or manifest that references blobs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    Mirror(String),
    Repo(String),
    Snapshot(String),
    Release(String),
    /// A CI build (`P/R/SHA1/D/V/FLAVOR`, [`crate::build`]).
    Build(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mirror(n) => write!(f, "mirror `{n}` (its last update)"),
            Self::Repo(n) => write!(f, "repo `{n}`"),
            Self::Snapshot(n) => write!(f, "snapshot `{n}`"),
            Self::Release(n) => write!(f, "release `{n}`"),
            Self::Build(n) => write!(f, "build `{n}`"),
        }
    }
}

/// What a root names.
pub enum Names {
    /// A repository state; `complete` when every package it names should
    /// be pooled (not an on-demand mirror's).
    Content { content: Content, complete: bool },
    /// A repo's package files.
    Packages(Vec<Sha256Digest>),
}

/// Calls `f` with every root (one loaded at a time), or the error that
/// kept it from loading. `skip` leaves roots out (what a prune drops).
pub fn for_each_root(
    root: &Root,
    skip: &dyn Fn(&Subject) -> bool,
    f: &mut dyn FnMut(Subject, Result<Names, StoreError>),
) -> Result<(), StoreError> {
    let mirrors = crate::mirror::states(root);
    for name in mirrors.list()? {
        let subject = Subject::Mirror(name.clone());
        if skip(&subject) {
            continue;
        }
        let loaded = mirrors.load(&name).map(|s| Names::Content {
            complete: s.deferred == 0,
            content: s.content,
        });
        f(subject, loaded);
    }
    let repos = crate::repo::states(root);
    for name in repos.list()? {
        let subject = Subject::Repo(name.clone());
        if skip(&subject) {
            continue;
        }
        let loaded = repos
            .load(&name)
            .map(|s| Names::Packages(s.packages.iter().map(|p| p.sha256).collect()));
        f(subject, loaded);
    }
    let builds = crate::build::manifests(root);
    for name in crate::build::names(root, None, None) {
        let subject = Subject::Build(name.clone());
        if skip(&subject) {
            continue;
        }
        match builds.load_opt(&name) {
            Ok(None) => {}
            Ok(Some(b)) => f(
                subject,
                Ok(Names::Packages(
                    b.packages.iter().map(|p| p.sha256).collect(),
                )),
            ),
            Err(e) => f(subject, Err(e)),
        }
    }
    for store in [
        crate::snapshot::Store::Snapshot,
        crate::snapshot::Store::Release,
    ] {
        let manifests = store.manifests(root);
        for name in manifests.list()? {
            let subject = match store {
                crate::snapshot::Store::Snapshot => Subject::Snapshot(name.clone()),
                crate::snapshot::Store::Release => Subject::Release(name.clone()),
            };
            if skip(&subject) {
                continue;
            }
            let loaded = manifests.load(&name).map(|s| Names::Content {
                complete: s.complete,
                content: s.content,
            });
            f(subject, loaded);
        }
    }
    Ok(())
}

/// Every blob the roots (but those `skip` leaves out) reference. Fails if
/// any root cannot be read: what it references would be unknown.
pub fn referenced(
    root: &Root,
    skip: &dyn Fn(&Subject) -> bool,
) -> Result<rustc_hash::FxHashSet<Sha256Digest>, RetentionError> {
    let catalogs = crate::packages::catalog::Cache::new(root);
    let mut walker = refs::Walker::new(&catalogs);
    let mut marks = rustc_hash::FxHashSet::default();
    let mut failure: Option<RetentionError> = None;
    for_each_root(root, skip, &mut |subject, loaded| {
        if failure.is_some() {
            return;
        }
        match loaded {
            // Dropped between the listing and the load (drops do not take
            // the pool's lock: they only remove references): it names
            // nothing any more.
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => {
                failure = Some(RetentionError::Unknowable {
                    subject: subject.to_string(),
                    source: Box::new(e),
                })
            }
            Ok(Names::Packages(p)) => marks.extend(p),
            Ok(Names::Content { content, .. }) => {
                let errors = walker.walk(&content, &mut |_, d, _| {
                    marks.insert(d);
                });
                if let Some(e) = errors.into_iter().next() {
                    failure = Some(RetentionError::Unknowable {
                        subject: subject.to_string(),
                        source: Box::new(e),
                    });
                }
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(marks),
    }
}

/// Whether `name` ends in depot's timestamp form (`…YYYYMMDDTHHMMSSZ`):
/// the group before it (`debian` of `debian-20261122T020000Z`; empty for a
/// bare version name), else `None`.
pub fn timestamp_group(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    if b.len() < 16 {
        return None;
    }
    let (head, ts) = name.split_at(name.len() - 16);
    let t = ts.as_bytes();
    let form = t[..8].iter().all(u8::is_ascii_digit)
        && t[8] == b'T'
        && t[9..15].iter().all(u8::is_ascii_digit)
        && t[15] == b'Z';
    if !form {
        return None;
    }
    match head {
        "" => Some(""),
        h => h.strip_suffix('-').filter(|g| !g.is_empty()),
    }
}

/// `depot snapshot drop NAME` / `release drop NAME`: refused (exit 3)
/// while a stage serves a version published from it.
pub fn drop_manifest(
    root: &crate::root::Root,
    store: crate::snapshot::Store,
    name: &str,
) -> Result<(), RetentionError> {
    let served = crate::promote::dist::served_sources(root)?;
    if let Some(by) = served.get(name) {
        return Err(Box::new(SnapshotError::Served {
            what: store.label(),
            name: name.to_owned(),
            by: by.clone(),
        })
        .into());
    }
    crate::snapshot::drop_snapshot(root, store, name).map_err(|e| Box::new(e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_depot_timestamp_names_have_a_group() {
        assert_eq!(timestamp_group("debian-20261122T020000Z"), Some("debian"));
        assert_eq!(timestamp_group("a-b-20261122T020000Z"), Some("a-b"));
        assert_eq!(timestamp_group("20261122T020000Z"), Some(""));
        for person in [
            "ga-2026.1",
            "debian",
            "debian20261122T020000Z",
            "-20261122T020000Z",
            "debian-20261122T020000Z-fixed",
            "debian-2026112XT020000Z",
        ] {
            assert_eq!(timestamp_group(person), None, "{person}");
        }
    }
}
