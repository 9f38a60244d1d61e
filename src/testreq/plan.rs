//! Test planning: which tests to request because of what changed between
//! two snapshots or releases, computed as britney's autopkgtest policy
//! does.
//!
//! Every source package with a binary whose version changed (or that is
//! new) on an architecture is a trigger, `SRC/VERSION` with the source
//! version of TO. For each trigger, the tests to run on that architecture
//! are:
//! - the source package itself;
//! - the source packages of the *direct* reverse dependencies of all its
//!   binaries: binaries whose `Depends` or `Pre-Depends` are satisfied by
//!   one of them (in any alternative; directly or through `Provides`, and
//!   only if a version constraint holds — what britney's package universe
//!   calls a reverse dependency).
//!
//! Only sources that have tests count: when TO carries a `Sources` index,
//! that means a `Testsuite` field; without one, depot cannot tell and keeps
//! every candidate. Removed packages trigger nothing.
//!
//! Both sides are read as package sets ([`crate::packages::pkgset`]): the
//! catalogs of their index blobs, so a release that keeps only some stanzas
//! of a blob is read like a snapshot, and reverse dependencies are resolved
//! by the same [`Resolver`] that closes filters over dependencies.
//!
//! Only apt snapshots and releases can be planned. autopkgtest tests Debian
//! source packages: tests are declared by the source (`debian/tests`,
//! announced by `Testsuite`), requests and triggers name sources with
//! Debian's name and version rules, and workers install the triggering
//! versions with apt. An rpm repository has none of these — no autopkgtest
//! metadata and names (`NetworkManager`, `perl-Data-Dumper`) a request may not
//! carry — so rpm content is refused with an error rather than planned into
//! requests no autopkgtest worker could run.
//!
//! It reads snapshots and releases and never writes them; queuing the plan is
//! the caller's choice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;

use super::request::{QueueKind, Request, RequestError, RequestOptions};
use crate::content::{AptContent, Content, IndexKind};
use crate::packages::pkgset::{KeyedOf, PackageSet, Pkg, Resolver, View, walk_by_key};
use crate::packages::query::PackageFields as _;
use crate::root::Root;
use crate::snapshot::{self, SnapshotError, Store};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "{what} `{name}` holds rpm packages; test plans follow autopkgtest, which tests Debian \
         source packages, so only apt snapshots and releases can be planned"
    )]
    NotApt { what: &'static str, name: String },
}

impl PlanError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::Snapshot(s) => s.kind(),
            Self::Request(_) | Self::NotApt { .. } => Usage,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// A snapshot, else a release, of that name.
    pub from: String,
    pub to: String,
    /// Release named in requests; default TO's codename, else its suite.
    pub release: Option<String>,
    /// Only these architectures; empty: all of TO's.
    pub archs: Vec<String>,
}

/// One test to request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PlannedTest {
    pub package: String,
    pub arch: String,
    pub trigger: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub from: String,
    pub to: String,
    pub release: String,
    /// Every trigger, `SRC/VERSION`, sorted.
    pub triggers: Vec<String>,
    pub tests: Vec<PlannedTest>,
}

impl Plan {
    /// The requests that carry out the plan (validated).
    pub fn requests(&self, kind: QueueKind, now: Timestamp) -> Result<Vec<Request>, RequestError> {
        let mut out = Vec::with_capacity(self.tests.len());
        for t in &self.tests {
            out.extend(
                RequestOptions {
                    package: t.package.clone(),
                    release: self.release.clone(),
                    archs: vec![t.arch.clone()],
                    triggers: vec![t.trigger.clone()],
                    ppas: vec![],
                    env: vec![],
                    test_git: None,
                    build_git: None,
                    test_bzr: None,
                    all_proposed: false,
                    testname: None,
                    swiftuser: None,
                    readable_by: vec![],
                    requester: None,
                    kind,
                    submit_time: now,
                }
                .build()?,
            );
        }
        Ok(out)
    }
}

fn apt_content(store: Store, s: &snapshot::Snapshot) -> Result<&AptContent, PlanError> {
    match &s.content {
        Content::Apt(a) => Ok(a),
        Content::Rpm(_) => Err(PlanError::NotApt {
            what: store.label(),
            name: s.name.clone(),
        }),
    }
}

/// The source version of a binary: `Source: name (version)` when it
/// differs from the binary's (binNMUs), else the binary's version. The
/// catalog keeps only the source's name, so this reads the stanza.
fn source_version(set: &PackageSet, pkg: Pkg<'_>) -> String {
    View { set, pkg }
        .field("Source")
        .and_then(|v| {
            v.split_once('(')
                .map(|(_, v)| v.trim_end_matches(')').trim().to_owned())
        })
        .unwrap_or_else(|| pkg.version().to_owned())
}

/// `depot test plan FROM TO`.
pub fn plan(root: &Root, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let manifests = [
        snapshot::load_any(root, &opts.from)?,
        snapshot::load_any(root, &opts.to)?,
    ];
    plan_between(root, opts, manifests)
}

/// The plan of `opts.to` against nothing (`opts.from` is ignored): every
/// source with tests is new. A train tests a distribution's first version
/// this way, when no version is released yet.
pub fn plan_from_nothing(root: &Root, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let to = snapshot::load_any(root, &opts.to)?;
    let mut empty = to.1.clone();
    if let Content::Apt(a) = &mut empty.content {
        a.indices.clear();
    }
    empty.name = String::new();
    let opts = PlanOptions {
        from: String::new(),
        ..opts.clone()
    };
    plan_between(root, &opts, [(to.0, empty), to])
}

fn plan_between(
    root: &Root,
    opts: &PlanOptions,
    manifests: [(Store, snapshot::Snapshot); 2],
) -> Result<Plan, PlanError> {
    for (store, m) in &manifests {
        apt_content(*store, m)?;
    }
    let to_content = apt_content(manifests[1].0, &manifests[1].1)?;
    let release = opts.release.clone().unwrap_or_else(|| {
        to_content
            .codename
            .clone()
            .unwrap_or_else(|| to_content.suite.trim_end_matches('/').to_owned())
    });
    let sets = snapshot::ops::load_sets(root, &manifests)?;
    let new = &sets[1];
    let wanted = |arch: &str| opts.archs.is_empty() || opts.archs.iter().any(|a| a == arch);

    // Per architecture (a package's domain: `all` packages count on each),
    // the sources with a binary that is new or changed in TO, with their
    // version in TO.
    let of = KeyedOf(&sets);
    let mut changed: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    walk_by_key(&sets, true, |same| {
        for k in same.iter().filter(|k| k.set == 1) {
            let p = of.pkg(k);
            if p.kind() != IndexKind::Binary || !wanted(p.domain()) {
                continue;
            }
            if same.iter().any(|o| o.set == 0 && of.same_version(o, k)) {
                continue;
            }
            changed
                .entry(p.domain())
                .or_default()
                .entry(p.source())
                .or_insert_with(|| source_version(new, p));
        }
    });

    // (arch, changed source) → sources of the binaries with a dependency
    // that one of its binaries satisfies.
    let resolver = Resolver::new(new);
    let mut rdeps: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    for p in new.iter() {
        if p.kind() != IndexKind::Binary {
            continue;
        }
        let Some(here) = changed.get(p.domain()) else {
            continue;
        };
        for dep in p.dep_groups().flatten().map(|d| p.dep(d)) {
            for c in resolver.candidates(&dep, p.domain()) {
                let src = new.pkg(c).source();
                if here.contains_key(src) {
                    rdeps
                        .entry((p.domain(), src))
                        .or_default()
                        .insert(p.source());
                }
            }
        }
    }

    let mut candidates: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    for (arch, sources) in &changed {
        for src in sources.keys() {
            candidates.insert((*arch, *src, *src));
            for user in rdeps.get(&(*arch, *src)).into_iter().flatten() {
                candidates.insert((*arch, *src, *user));
            }
        }
    }
    // Sources with tests, if TO says (its `Sources` index): the stanzas of
    // candidates only are read.
    let tested: Option<HashSet<&str>> = to_content
        .indices
        .iter()
        .any(|i| i.kind == IndexKind::Source)
        .then(|| {
            let wanted: HashSet<&str> = candidates.iter().map(|c| c.2).collect();
            new.iter()
                .filter(|p| p.kind() == IndexKind::Source && wanted.contains(p.name()))
                .filter(|&pkg| {
                    View { set: new, pkg }
                        .field("Testsuite")
                        .is_some_and(|t| !t.trim().is_empty())
                })
                .map(|p| p.name())
                .collect()
        });

    let mut triggers: BTreeSet<String> = BTreeSet::new();
    let mut tests: BTreeSet<PlannedTest> = BTreeSet::new();
    for (arch, src, package) in candidates {
        let trigger = format!("{src}/{}", changed[arch][src]);
        if tested.as_ref().is_none_or(|t| t.contains(package)) {
            tests.insert(PlannedTest {
                package: package.to_owned(),
                arch: arch.to_owned(),
                trigger: trigger.clone(),
            });
        }
        triggers.insert(trigger);
    }
    Ok(Plan {
        from: opts.from.clone(),
        to: opts.to.clone(),
        release,
        triggers: triggers.into_iter().collect(),
        tests: tests.into_iter().collect(),
    })
}
