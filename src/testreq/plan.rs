//! Test planning: which tests to request because of what changed between
//! two snapshots, computed as britney's autopkgtest policy does.
//!
//! Every source package with a binary whose version changed (or that is
//! new) on an architecture is a trigger, `SRC/VERSION` with the source
//! version of TO. For each trigger, the tests to run on that architecture
//! are:
//! - the source package itself;
//! - the source packages of the *direct* reverse dependencies of all its
//!   binaries: binaries whose `Depends` or `Pre-Depends` name one of them
//!   (in any alternative, with or without an architecture qualifier), or a
//!   virtual package one of them `Provides`.
//!
//! Only sources that have tests count: when the snapshot carries a
//! `Sources` index, that means a `Testsuite` field; without one, depot
//! cannot tell and keeps every candidate. Removed packages trigger nothing.
//! Only apt snapshots can be planned for now; other kinds are refused with
//! a clear error.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;

use super::request::{QueueKind, Request, RequestError, RequestOptions};
use crate::content::{AptContent, Content, IndexKind};
use crate::pool::Pool;
use crate::root::Root;
use crate::snapshot::{self, SnapshotError};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("snapshot `{0}` is not an apt snapshot; test plans need Debian packages")]
    NotApt(String),
    #[error("snapshot `{snapshot}`: cannot read an index")]
    Index {
        snapshot: String,
        #[source]
        source: crate::content::IndexError,
    },
    #[error("snapshot `{snapshot}`: an index is malformed")]
    Malformed {
        snapshot: String,
        #[source]
        source: crate::formats::apt::AptFormatError,
    },
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
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

/// A binary package as planning needs it.
#[derive(Debug, Clone)]
struct Binary {
    name: String,
    version: String,
    source: String,
    source_version: String,
    /// Package names in `Depends` and `Pre-Depends`, every alternative.
    depends: Vec<String>,
    provides: Vec<String>,
}

/// One snapshot's binaries per architecture, and its sources with tests
/// (`None`: no `Sources` index, so unknown).
struct Packages {
    by_arch: BTreeMap<String, Vec<Binary>>,
    tested_sources: Option<HashSet<String>>,
}

fn apt_content<'a>(name: &str, s: &'a snapshot::Snapshot) -> Result<&'a AptContent, PlanError> {
    match &s.content {
        Content::Apt(a) => Ok(a),
        _ => Err(PlanError::NotApt(name.to_owned())),
    }
}

/// Names in a relationship field: `a (>= 1) | b:any [amd64], c <!nocheck>`
/// gives a, b, c.
fn relation_names(field: &str) -> impl Iterator<Item = String> + '_ {
    field.split([',', '|']).filter_map(|alt| {
        let name = alt
            .trim()
            .split(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<' | ':'))
            .next()
            .unwrap_or("");
        (!name.is_empty()).then(|| name.to_owned())
    })
}

fn read_packages(pool: &Pool, name: &str, content: &AptContent) -> Result<Packages, PlanError> {
    let mut by_arch: BTreeMap<String, Vec<Binary>> = BTreeMap::new();
    let mut tested_sources: Option<HashSet<String>> = None;
    for index in &content.indices {
        let text = index.text(pool).map_err(|source| PlanError::Index {
            snapshot: name.to_owned(),
            source,
        })?;
        let malformed = |source| PlanError::Malformed {
            snapshot: name.to_owned(),
            source,
        };
        match index.kind {
            IndexKind::Binary => {
                let Some(arch) = &index.arch else { continue };
                let list = by_arch.entry(arch.clone()).or_default();
                for s in crate::formats::apt::binary_stanzas(&text) {
                    let s = s.map_err(malformed)?;
                    let p = &s.paragraph;
                    // `Source: name (version)` when the source version
                    // differs from the binary's (binNMUs).
                    let source_version = p
                        .get("Source")
                        .and_then(|v| v.split_once('('))
                        .map(|(_, v)| v.trim_end_matches(')').trim().to_owned())
                        .unwrap_or_else(|| s.version.to_owned());
                    let mut depends: Vec<String> = Vec::new();
                    for f in ["Depends", "Pre-Depends"] {
                        if let Some(v) = p.get(f) {
                            depends.extend(relation_names(v));
                        }
                    }
                    list.push(Binary {
                        name: s.name.to_owned(),
                        version: s.version.to_owned(),
                        source: s.source.to_owned(),
                        source_version,
                        depends,
                        provides: p
                            .get("Provides")
                            .map(|v| relation_names(v).collect())
                            .unwrap_or_default(),
                    });
                }
            }
            IndexKind::Source => {
                let set = tested_sources.get_or_insert_with(HashSet::new);
                for s in crate::formats::apt::source_stanzas(&text) {
                    let s = s.map_err(malformed)?;
                    if s.paragraph
                        .get("Testsuite")
                        .is_some_and(|t| !t.trim().is_empty())
                    {
                        set.insert(s.name.to_owned());
                    }
                }
            }
            IndexKind::Udeb => {}
        }
    }
    Ok(Packages {
        by_arch,
        tested_sources,
    })
}

/// `depot test plan FROM TO`.
pub fn plan(root: &Root, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let pool = Pool::new(root);
    let (from_snap, to_snap) = (
        snapshot::load(root, &opts.from)?,
        snapshot::load(root, &opts.to)?,
    );
    let from_content = apt_content(&opts.from, &from_snap)?;
    let to_content = apt_content(&opts.to, &to_snap)?;
    let release = opts.release.clone().unwrap_or_else(|| {
        to_content
            .codename
            .clone()
            .unwrap_or_else(|| to_content.suite.trim_end_matches('/').to_owned())
    });
    let old = read_packages(&pool, &opts.from, from_content)?;
    let new = read_packages(&pool, &opts.to, to_content)?;
    let has_tests = |src: &str| new.tested_sources.as_ref().is_none_or(|s| s.contains(src));

    let mut tests: BTreeSet<PlannedTest> = BTreeSet::new();
    let mut triggers: BTreeSet<String> = BTreeSet::new();
    for (arch, binaries) in &new.by_arch {
        if !opts.archs.is_empty() && !opts.archs.contains(arch) {
            continue;
        }
        let before: HashSet<(&str, &str)> = old
            .by_arch
            .get(arch)
            .into_iter()
            .flatten()
            .map(|b| (b.name.as_str(), b.version.as_str()))
            .collect();
        // trigger source → its version in TO
        let mut changed: BTreeMap<&str, &str> = BTreeMap::new();
        for b in binaries {
            if !before.contains(&(b.name.as_str(), b.version.as_str())) {
                changed.insert(&b.source, &b.source_version);
            }
        }
        if changed.is_empty() {
            continue;
        }
        // Reverse dependencies on this arch: package name (real or
        // virtual) → sources of the binaries that depend on it.
        let mut rdeps: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for b in binaries {
            for d in &b.depends {
                rdeps.entry(d).or_default().insert(&b.source);
            }
        }
        let mut binaries_of: HashMap<&str, Vec<&Binary>> = HashMap::new();
        for b in binaries {
            binaries_of.entry(&b.source).or_default().push(b);
        }
        for (src, ver) in changed {
            let trigger = format!("{src}/{ver}");
            let mut candidates: BTreeSet<&str> = BTreeSet::new();
            candidates.insert(src);
            for b in binaries_of.get(src).into_iter().flatten() {
                for name in std::iter::once(&b.name).chain(&b.provides) {
                    if let Some(users) = rdeps.get(name.as_str()) {
                        candidates.extend(users);
                    }
                }
            }
            for c in candidates.into_iter().filter(|c| has_tests(c)) {
                tests.insert(PlannedTest {
                    package: c.to_owned(),
                    arch: arch.clone(),
                    trigger: trigger.clone(),
                });
            }
            triggers.insert(trigger);
        }
    }
    Ok(Plan {
        from: opts.from.clone(),
        to: opts.to.clone(),
        release,
        triggers: triggers.into_iter().collect(),
        tests: tests.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn relation_names_take_every_alternative_without_qualifiers() {
        let names: Vec<String> = super::relation_names(
            "libc6 (>= 2.36), python3:any | python3-dev [amd64], debconf <!nocheck>",
        )
        .collect();
        assert_eq!(names, vec!["libc6", "python3", "python3-dev", "debconf"]);
    }
}
