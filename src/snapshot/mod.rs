//! Snapshots: immutable, named, point-in-time copies of a mirror.
//!
//! A snapshot is a small JSON manifest (`snapshots/NAME.json`) naming the
//! index blobs of the mirror's last update; the packages are the pool blobs
//! those indices name. Taking one copies no package and reads no index, so
//! it is cheap enough to do every night. A manifest is written once, by an
//! atomic no-clobber link, and never changed; dropping the mirror it came
//! from does not affect it.
//!
//! This module owns `snapshots/` and `releases/` (through [`crate::store`]);
//! it reads mirrors, repos and the pool but never changes them, and never
//! touches published versions (they keep their own links to the files).

pub mod ops;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::content::{Content, IndexKind, RepoKind};
use crate::mirror::MirrorError;
use crate::names::InvalidName;
use crate::packages::{pkgset, query};
use crate::pool::PoolError;
use crate::root::Root;
use crate::store::{Format, ObjectKind, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Query(#[from] query::QueryError),
    #[error("{what} `{name}`: cannot read its packages")]
    Packages {
        what: &'static str,
        name: String,
        #[source]
        source: Box<pkgset::PackageSetError>,
    },
    #[error("{what} `{name}` is the source of what {by} serves; promote another version first")]
    Served {
        what: &'static str,
        name: String,
        by: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot snapshot repo `{repo}`")]
    Repo {
        repo: String,
        #[source]
        source: Box<crate::repo::RepoError>,
    },
    #[error("mirror `{0}` has no successful update yet; run `depot mirror update {0}` first")]
    NeverUpdated(String),
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error("snapshot `{snapshot}`: cannot read an index")]
    Index {
        snapshot: String,
        #[source]
        source: PoolError,
    },
    #[error("snapshot `{snapshot}`: the rpm metadata is malformed")]
    MalformedRpm {
        snapshot: String,
        #[source]
        source: crate::formats::rpm::RpmFormatError,
    },
    #[error("snapshot `{snapshot}`: an index is malformed")]
    Malformed {
        snapshot: String,
        #[source]
        source: crate::formats::apt::AptFormatError,
    },
}

impl SnapshotError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_) | Self::Query(_) | Self::Invalid(_) => Usage,
            Self::Mirror(m) => m.kind(),
            Self::Lock(l) => l.kind(),
            Self::Served { .. } => Refused,
            Self::Store(s) => s.kind(),
            Self::Packages { .. }
            | Self::Repo { .. }
            | Self::NeverUpdated(_)
            | Self::Index { .. }
            | Self::MalformedRpm { .. }
            | Self::Malformed { .. } => Failure,
        }
    }
}

/// Where a snapshot's content came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Origin {
    Mirror {
        name: String,
        url: String,
        /// When the mirror update that the snapshot copies finished.
        updated: Timestamp,
    },
    /// `snapshot filter`.
    Filter {
        from: String,
        query: String,
        with_deps: bool,
    },
    /// `release create`: the sources, in priority order, with their
    /// creation times (provenance).
    Release {
        sources: Vec<SourceRef>,
        policy: String,
    },
    /// `snapshot create --repo`.
    Repo { name: String },
}

/// A source of a release, as it was when the release was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub name: String,
    pub created: Timestamp,
    /// The component its packages went to (`--component COMP=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

impl Origin {
    /// One line for listings: `mirror debian`, `filter of s1`, …
    pub fn describe(&self) -> String {
        match self {
            Self::Mirror { name, .. } => format!("mirror {name}"),
            Self::Filter { from, .. } => format!("filter of {from}"),
            Self::Release { sources, policy } => format!(
                "{policy} of {}",
                sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::Repo { name } => format!("repo {name}"),
        }
    }

    /// Several lines' worth for `show`: where from, with what (the URL and
    /// update time of a mirror, a filter's query, a release's sources with
    /// their creation times and components).
    pub fn detail(&self) -> String {
        let time = |t: &Timestamp| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        match self {
            Self::Mirror { url, updated, .. } => {
                format!("{} ({url}, updated {})", self.describe(), time(updated))
            }
            Self::Filter {
                query, with_deps, ..
            } => format!(
                "{}: {query}{}",
                self.describe(),
                if *with_deps {
                    " (with dependencies)"
                } else {
                    ""
                }
            ),
            Self::Release { sources, policy } => {
                let detail: Vec<String> = sources
                    .iter()
                    .map(|r| {
                        let component = r
                            .component
                            .as_ref()
                            .map(|c| format!(" -> {c}"))
                            .unwrap_or_default();
                        format!("{} ({}{component})", r.name, time(&r.created))
                    })
                    .collect();
                format!("{policy} of {}", detail.join(", "))
            }
            Self::Repo { .. } => self.describe(),
        }
    }

    /// The mirror or repo this came from directly, for `list --source`.
    pub fn source_name(&self) -> Option<&str> {
        match self {
            Self::Mirror { name, .. } | Self::Repo { name } => Some(name),
            Self::Filter { from, .. } => Some(from),
            Self::Release { .. } => None,
        }
    }
}

/// Where manifests of a kind live: snapshots and releases share a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Snapshot,
    Release,
}

impl Store {
    pub fn label(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Release => "release",
        }
    }

    fn object_kind(self) -> ObjectKind {
        match self {
            Self::Snapshot => ObjectKind::Snapshot,
            Self::Release => ObjectKind::Release,
        }
    }

    /// `snapshots/NAME.json` or `releases/NAME.json`.
    pub(crate) fn manifests(self, root: &Root) -> crate::store::Store<Snapshot> {
        let dir = match self {
            Self::Snapshot => root.snapshots_dir(),
            Self::Release => root.releases_dir(),
        };
        crate::store::Store::files(self.object_kind(), dir, ".json", Format::Json)
    }
}

/// `snapshots/NAME.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub created: Timestamp,
    pub kind: RepoKind,
    pub origin: Origin,
    pub content: Content,
    /// Every file the content names was in the pool when the snapshot was
    /// taken (false for on-demand mirrors): publishing then skips looking.
    #[serde(default)]
    pub complete: bool,
}

/// The default snapshot name: `MIRROR-YYYYMMDDTHHMMSSZ` (or repo).
pub fn default_name(mirror: &str, now: Timestamp) -> String {
    format!("{mirror}-{}", now.strftime("%Y%m%dT%H%M%SZ"))
}

/// What a snapshot is taken of.
#[derive(Debug, Clone)]
pub enum SnapshotSource {
    Mirror(String),
    Repo(String),
}

/// Options of `depot snapshot create`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: Option<String>,
    pub source: SnapshotSource,
    pub now: Timestamp,
}

/// `depot snapshot create --mirror M | --repo R`.
pub fn create(root: &Root, opts: CreateOptions) -> Result<Snapshot, SnapshotError> {
    // The state read below must keep its blobs until the manifest naming
    // them is written (a repo's indices are pooled here, too).
    let _pool = crate::lock::PoolGuard::writer(root)?;
    let (source_name, kind, origin, content, complete) = match &opts.source {
        SnapshotSource::Mirror(mirror) => {
            let def = crate::mirror::load(root, mirror)?;
            let state = crate::mirror::load_state(root, mirror)?
                .ok_or_else(|| SnapshotError::NeverUpdated(mirror.clone()))?;
            (
                mirror.clone(),
                def.kind,
                Origin::Mirror {
                    name: def.name,
                    url: def.url,
                    updated: state.updated,
                },
                state.content,
                state.deferred == 0,
            )
        }
        SnapshotSource::Repo(repo) => {
            let content =
                crate::repo::content(root, repo).map_err(|source| SnapshotError::Repo {
                    repo: repo.clone(),
                    source: Box::new(source),
                })?;
            (
                repo.clone(),
                content.kind(),
                Origin::Repo { name: repo.clone() },
                content,
                true,
            )
        }
    };
    let name = opts
        .name
        .unwrap_or_else(|| default_name(&source_name, opts.now));
    crate::names::validate("snapshot", &name)?;
    let snapshot = Snapshot {
        name,
        created: opts.now,
        kind,
        origin,
        complete,
        content,
    };
    write_new(root, Store::Snapshot, &snapshot)?;
    Ok(snapshot)
}

/// Writes a manifest that must not exist yet, atomically.
pub(crate) fn write_new(
    root: &Root,
    store: Store,
    snapshot: &Snapshot,
) -> Result<(), SnapshotError> {
    Ok(store.manifests(root).create(&snapshot.name, snapshot)?)
}

pub fn load(root: &Root, name: &str) -> Result<Snapshot, SnapshotError> {
    load_in(root, Store::Snapshot, name)
}

/// A snapshot, else a release, of that name (what `publish` and
/// `release create --from` accept).
pub fn load_any(root: &Root, name: &str) -> Result<(Store, Snapshot), SnapshotError> {
    let not_found = |e: &SnapshotError| matches!(e, SnapshotError::Store(s) if s.is_not_found());
    match load_in(root, Store::Snapshot, name) {
        Err(e) if not_found(&e) => match load_in(root, Store::Release, name) {
            Ok(r) => Ok((Store::Release, r)),
            Err(e) if not_found(&e) => Err(StoreError::NotFound {
                kind: ObjectKind::SnapshotOrRelease,
                name: name.to_owned(),
            }
            .into()),
            Err(e) => Err(e),
        },
        other => other.map(|s| (Store::Snapshot, s)),
    }
}

pub fn load_in(root: &Root, store: Store, name: &str) -> Result<Snapshot, SnapshotError> {
    crate::names::validate(store.label(), name)?;
    Ok(store.manifests(root).load(name)?)
}

/// One line of `snapshot list`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    pub created: Timestamp,
    pub kind: RepoKind,
    pub origin: Origin,
    pub packages: usize,
}

/// `depot snapshot list [--source M]`, oldest first.
pub fn list(root: &Root, source: Option<&str>) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    list_in(root, Store::Snapshot, source)
}

pub fn list_in(
    root: &Root,
    store: Store,
    source: Option<&str>,
) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    let mut out = Vec::new();
    for (_, s) in store.manifests(root).load_listed()? {
        let s = s?;
        if source.is_some_and(|want| s.origin.source_name() != Some(want)) {
            continue;
        }
        out.push(SnapshotInfo {
            packages: s.content.package_count(),
            name: s.name,
            created: s.created,
            kind: s.kind,
            origin: s.origin,
        });
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// A package as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PackageRow {
    pub kind: IndexKind,
    pub name: String,
    pub arch: String,
    pub version: String,
}

/// `depot snapshot show NAME [--packages]`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotDetails {
    #[serde(flatten)]
    pub snapshot: Snapshot,
    pub package_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<PackageRow>>,
}

pub fn show(
    root: &Root,
    store: Store,
    name: &str,
    with_packages: bool,
) -> Result<SnapshotDetails, SnapshotError> {
    let snapshot = load_in(root, store, name)?;
    let packages = if with_packages {
        let set = ops::load_set(
            &crate::packages::catalog::Cache::new(root),
            &snapshot,
            store,
        )?;
        Some(ops::rows(&set, |_| true))
    } else {
        None
    };
    Ok(SnapshotDetails {
        package_count: snapshot.content.package_count(),
        packages,
        snapshot,
    })
}

/// A package whose versions differ between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: IndexKind,
    pub name: String,
    pub arch: String,
    pub old: Vec<String>,
    pub new: Vec<String>,
}

/// `depot snapshot diff A B`: what B has that A has not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    pub added: Vec<PackageRow>,
    pub removed: Vec<PackageRow>,
    pub changed: Vec<Change>,
}

/// A package as diff compares it: (kind, name, architecture, version).
pub type RowRef<'a> = (IndexKind, &'a str, &'a str, &'a str);

/// `snapshot diff` / `release diff`: A and B may each be a snapshot or a
/// release.
pub fn diff(root: &Root, a: &str, b: &str) -> Result<Diff, SnapshotError> {
    let manifests = [load_any(root, a)?, load_any(root, b)?];
    if manifests[0].1.content == manifests[1].1.content {
        return Ok(Diff::default());
    }
    let sets = ops::load_sets(root, &manifests)?;
    Ok(diff_sets(&sets))
}

/// Compares two package sets by (kind, name, architecture); a package
/// listed twice (an `Architecture: all` package in two indices) counts once.
fn diff_sets(sets: &[pkgset::PackageSet]) -> Diff {
    let of = pkgset::KeyedOf(sets);
    let mut diff = Diff::default();
    let (mut old, mut new): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    pkgset::walk_by_key(sets, false, |same| {
        if let [a, b] = same
            && a.set == 0
            && b.set == 1
            && of.same_version(a, b)
        {
            return;
        }
        old.clear();
        new.clear();
        for k in same {
            let side = if k.set == 0 { &mut old } else { &mut new };
            let v = of.version(k);
            if !side.contains(&v) {
                side.push(v);
            }
        }
        old.sort_unstable();
        new.sort_unstable();
        if old == new {
            return;
        }
        let p = of.pkg(&same[0]);
        let row = |version: &str| PackageRow {
            kind: p.kind(),
            name: p.name().to_owned(),
            arch: p.arch().to_owned(),
            version: version.to_owned(),
        };
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        match (old.is_empty(), new.is_empty()) {
            (true, _) => diff.added.extend(new.iter().map(|v| row(v))),
            (_, true) => diff.removed.extend(old.iter().map(|v| row(v))),
            _ => diff.changed.push(Change {
                kind: p.kind(),
                name: p.name().to_owned(),
                arch: p.arch().to_owned(),
                old: owned(&old),
                new: owned(&new),
            }),
        }
    });
    diff.added.sort_unstable();
    diff.removed.sort_unstable();
    diff.changed
        .sort_unstable_by(|a, b| (a.kind, &a.name, &a.arch).cmp(&(b.kind, &b.name, &b.arch)));
    diff
}

/// Removes a snapshot or release manifest. Releases and published
/// versions made from it are not affected: releases name the blobs
/// themselves, and a published tree holds its own links to the package
/// files. Whether a stage still serves something published from it is the
/// caller's question (`retention::drop_manifest` asks it): this module
/// knows nothing of distributions.
pub fn drop_snapshot(root: &Root, store: Store, name: &str) -> Result<(), SnapshotError> {
    load_in(root, store, name)?;
    Ok(store.manifests(root).remove(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_is_mirror_dash_utc_timestamp() {
        let now: Timestamp = "2026-11-22T10:24:35Z".parse().unwrap();
        assert_eq!(default_name("debian", now), "debian-20261122T102435Z");
    }
}
