//! Operations that make new package sets from existing ones: filtering
//! (with dependency closure), merging snapshots into integrated releases,
//! searching and verifying dependencies.
//!
//! Filter, search, verify and merge. It writes only new manifests (a manifest
//! is never changed once written) and the blobs they need.

use jiff::Timestamp;
use serde::Serialize;

use super::{Origin, PackageRow, Snapshot, SnapshotError, SourceRef, Store, load_any, write_new};
use crate::packages::catalog::Cache;
use crate::packages::pkgset::{
    Keyed, KeyedOf, PackageSet, Pick, Resolver, Unsatisfied, build, select, walk_by_key,
};
use crate::packages::query::Query;
use crate::pool::Pool;
use crate::root::Root;

pub(super) fn load_set(
    catalogs: &Cache,
    snapshot: &Snapshot,
    store: Store,
) -> Result<PackageSet, SnapshotError> {
    PackageSet::load(catalogs, &snapshot.content).map_err(|source| SnapshotError::Packages {
        what: store.label(),
        name: snapshot.name.clone(),
        source: Box::new(source),
    })
}

/// Loads several package sets at once, one thread each: parsing indices
/// is the bulk of a merge or diff, and each set is independent.
pub(crate) fn load_sets(
    root: &Root,
    manifests: &[(Store, Snapshot)],
) -> Result<Vec<PackageSet>, SnapshotError> {
    // One cache, so sets sharing an index blob share its catalog.
    let catalogs = &Cache::new(root);
    std::thread::scope(|s| {
        let handles: Vec<_> = manifests
            .iter()
            .map(|(store, m)| s.spawn(move || load_set(catalogs, m, *store)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("loader threads do not panic"))
            .collect()
    })
}

pub(super) fn rows(set: &PackageSet, selected: impl Fn(usize) -> bool) -> Vec<PackageRow> {
    let mut out: Vec<PackageRow> = set
        .iter()
        .enumerate()
        .filter(|(i, _)| selected(*i))
        .map(|(_, p)| PackageRow {
            kind: p.kind(),
            name: p.name().to_owned(),
            arch: p.arch().to_owned(),
            version: p.version().to_owned(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Options of `depot snapshot filter`.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    pub from: String,
    pub dest: String,
    pub query: String,
    pub with_deps: bool,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilterSummary {
    pub snapshot: String,
    pub packages: usize,
    /// Dependencies of selected packages that nothing in the source
    /// satisfies (only with `--with-deps`).
    pub unsatisfied: Vec<Unsatisfied>,
}

/// `depot snapshot filter SRC DEST QUERY [--with-deps]`.
pub fn filter(root: &Root, opts: &FilterOptions) -> Result<FilterSummary, SnapshotError> {
    let query = Query::parse(&opts.query)?;
    crate::names::validate("snapshot", &opts.dest)?;
    // Selections are pooled before the manifest that names them.
    let _pool = crate::lock::PoolGuard::writer(root)?;
    let (store, src) = load_any(root, &opts.from)?;
    let set = load_set(&Cache::new(root), &src, store)?;
    let (selected, unsatisfied) = select(&set, &query, opts.with_deps);
    let picks: Vec<Pick> = (0..set.len())
        .filter(|&i| selected[i])
        .map(|i| (0, i))
        .collect();
    let content =
        build(&Pool::new(root), std::slice::from_ref(&set), &[], &picks).map_err(|source| {
            SnapshotError::Packages {
                what: store.label(),
                name: src.name.clone(),
                source: Box::new(source),
            }
        })?;
    let snapshot = Snapshot {
        name: opts.dest.clone(),
        created: opts.now,
        kind: src.kind,
        origin: Origin::Filter {
            from: src.name.clone(),
            query: opts.query.clone(),
            with_deps: opts.with_deps,
        },
        complete: src.complete,
        content,
    };
    write_new(root, Store::Snapshot, &snapshot)?;
    Ok(FilterSummary {
        snapshot: snapshot.name,
        packages: picks.len(),
        unsatisfied,
    })
}

/// `depot snapshot search NAME QUERY`.
pub fn search(root: &Root, name: &str, query: &str) -> Result<Vec<PackageRow>, SnapshotError> {
    let query = Query::parse(query)?;
    let (store, s) = load_any(root, name)?;
    let set = load_set(&Cache::new(root), &s, store)?;
    let (selected, _) = select(&set, &query, false);
    Ok(rows(&set, |i| selected[i]))
}

/// `depot snapshot verify NAME` / `release verify NAME`: every dependency
/// nothing in the set satisfies.
pub fn verify(root: &Root, name: &str) -> Result<Vec<Unsatisfied>, SnapshotError> {
    let (store, s) = load_any(root, name)?;
    let set = load_set(&Cache::new(root), &s, store)?;
    Ok(Resolver::new(&set).verify())
}

/// What `snapshot verify` / `release verify` fail with: some dependency
/// of the snapshot or release is satisfied by nothing in it.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {count} unsatisfied dependencies")]
pub struct Unsatisfiable {
    pub name: String,
    pub count: usize,
}

impl Unsatisfiable {
    /// Verification failed.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failure
    }
}

/// Fails unless `missing` (what [`verify`] found) is empty.
pub fn require_satisfied(name: &str, missing: &[Unsatisfied]) -> Result<(), Unsatisfiable> {
    match missing.len() {
        0 => Ok(()),
        count => Err(Unsatisfiable {
            name: name.to_owned(),
            count,
        }),
    }
}

/// Which version of a package name+arch a release keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergePolicy {
    /// The highest version across all sources.
    Latest,
    /// The one from the earliest listed source that has the package.
    First,
    /// Every version.
    All,
}

impl crate::choice::Choice for MergePolicy {
    const WHAT: &'static str = "merge policy";
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (
            Self::Latest,
            "latest",
            "The highest version of each package name+arch",
        ),
        (
            Self::First,
            "first",
            "The one from the earliest listed source (priority order)",
        ),
        (Self::All, "all", "Every version"),
    ];
}
crate::choice_words!(MergePolicy);

/// Options of `depot release create`.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub name: String,
    /// Sources in priority order; their components are kept.
    pub from: Vec<String>,
    /// `--component COMP=SNAP,SNAP`: these sources' packages all go to COMP.
    pub components: Vec<(String, Vec<String>)>,
    pub policy: MergePolicy,
    pub now: Timestamp,
}

/// `depot release create`.
pub fn create_release(root: &Root, opts: &ReleaseOptions) -> Result<Snapshot, SnapshotError> {
    crate::names::validate("release", &opts.name)?;
    // Selections are pooled before the manifest.
    let _pool = crate::lock::PoolGuard::writer(root)?;
    let mut sources: Vec<(String, Option<String>)> =
        opts.from.iter().map(|s| (s.clone(), None)).collect();
    for (comp, snaps) in &opts.components {
        if comp.is_empty() || comp.contains(['/', ' ']) {
            return Err(SnapshotError::Invalid(format!(
                "invalid component `{comp}`"
            )));
        }
        sources.extend(snaps.iter().map(|s| (s.clone(), Some(comp.clone()))));
    }
    if sources.is_empty() {
        return Err(SnapshotError::Invalid(
            "a release needs at least one source (--from or --component)".into(),
        ));
    }
    let mut loaded = Vec::new();
    for (name, _) in &sources {
        loaded.push(load_any(root, name)?);
    }
    let sets = load_sets(root, &loaded)?;
    let loaded: Vec<Snapshot> = loaded.into_iter().map(|(_, s)| s).collect();
    if loaded.iter().any(|s| s.kind != loaded[0].kind) {
        return Err(SnapshotError::Invalid(
            "a release cannot mix apt and rpm sources".into(),
        ));
    }
    let picks = merge(&sets, opts.policy);
    let components: Vec<Option<String>> = sources.iter().map(|(_, c)| c.clone()).collect();
    let content = build(&Pool::new(root), &sets, &components, &picks).map_err(|source| {
        SnapshotError::Packages {
            what: "release",
            name: opts.name.clone(),
            source: Box::new(source),
        }
    })?;
    let release = Snapshot {
        name: opts.name.clone(),
        created: opts.now,
        kind: loaded[0].kind,
        origin: Origin::Release {
            sources: loaded
                .iter()
                .zip(&sources)
                .map(|(s, (_, comp))| SourceRef {
                    name: s.name.clone(),
                    created: s.created,
                    component: comp.clone(),
                })
                .collect(),
            policy: opts.policy.to_string(),
        },
        complete: loaded.iter().all(|s| s.complete),
        content,
    };
    write_new(root, Store::Release, &release)?;
    Ok(release)
}

/// Chooses, per package name+architecture (within each index
/// architecture, so `all` packages are decided per architecture), which
/// packages of which source the release keeps.
fn merge(sets: &[PackageSet], policy: MergePolicy) -> Vec<Pick> {
    let flavor = sets[0].flavor;
    let of = KeyedOf(sets);
    let mut keep: Vec<Vec<bool>> = sets.iter().map(|s| vec![false; s.len()]).collect();
    let mut kept: Vec<Keyed> = Vec::new();
    walk_by_key(sets, true, |same| {
        // `same` lists sources in priority order: the first is kept unless
        // the policy prefers a later one.
        kept.clear();
        for k in same {
            let Some(c) = kept.first() else {
                kept.push(*k);
                continue;
            };
            if of.same_version(k, c) {
                continue;
            }
            let newer = || flavor.compare(of.version(k), of.version(c)).is_gt();
            match policy {
                MergePolicy::All => {
                    if !kept.iter().any(|o| of.same_version(k, o)) {
                        kept.push(*k);
                    }
                }
                MergePolicy::Latest => {
                    if newer() {
                        kept[0] = *k;
                    }
                }
                MergePolicy::First => {
                    if c.set == k.set && newer() {
                        kept[0] = *k;
                    }
                }
            }
        }
        for k in &kept {
            keep[k.set][k.pkg] = true;
        }
    });
    let mut out = Vec::new();
    for (si, kept) in keep.iter().enumerate() {
        for (pi, k) in kept.iter().enumerate() {
            if *k {
                out.push((si, pi));
            }
        }
    }
    out
}
