//! Local repositories of CI-built packages (`depot repo`).
//!
//! A repo is a definition (`repos/NAME.yaml`) and its current package list
//! (`repos/NAME.state.json`): for each `.deb`, its control stanza, size and
//! SHA-256; the file itself is pooled like everything else. Adding is
//! all-or-nothing: every file is read and checked before the list changes,
//! so a corrupt file, a non-package or a conflicting rebuild leaves the
//! repo as it was. A rebuild (same name, version and architecture, other
//! bytes) is refused unless `--replace`: a version must name one content.
//!
//! Reading and checking each package file is [`intake`]'s.
//!
//! This module owns `repos/` (through [`crate::store`]); it adds to the
//! pool but never removes from it, and never touches snapshots made from a
//! repo (they hold their own pool references).

mod intake;

pub(crate) use intake::parse_package;
pub use intake::read_deb_control;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::content::{AptContent, Content, IndexKind, IndexPart, IndexRef, RepoKind};
use crate::digest::Sha256Digest;
use crate::formats::deb822;
use crate::lock::{LockError, ObjectLock, Wait};
use crate::names::InvalidName;
use crate::packages::query::{Flavor, PackageFields, Query, QueryError};
use crate::pool::{Pool, PoolError};
use crate::root::Root;
use crate::store::{Format, ObjectKind, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid .deb: {problem}", path.display())]
    BadPackage { path: PathBuf, problem: String },
    #[error("{} is not a valid .rpm: {problem}", path.display())]
    BadRpm { path: PathBuf, problem: String },
    #[error("{} is {found}, but repo `{repo}` holds {kind} packages", path.display())]
    WrongKind {
        repo: String,
        path: PathBuf,
        found: &'static str,
        kind: RepoKind,
    },
    #[error(
        "{name} {version} ({arch}) is already in repo `{repo}` with different content ({} differs); a version must name one build — bump the version, or pass --replace",
        path.display()
    )]
    Conflict {
        repo: String,
        name: String,
        version: String,
        arch: String,
        path: PathBuf,
    },
    #[error("repo `{repo}`: cannot store a package")]
    Pool {
        repo: String,
        #[source]
        source: PoolError,
    },
}

impl RepoError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_) | Self::Query(_) => Usage,
            Self::Lock(l) => l.kind(),
            Self::Store(s) => s.kind(),
            Self::Io { .. }
            | Self::BadPackage { .. }
            | Self::BadRpm { .. }
            | Self::WrongKind { .. }
            | Self::Conflict { .. }
            | Self::Pool { .. } => Failure,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoDef {
    pub name: String,
    pub kind: RepoKind,
    /// Component the packages are published in.
    pub component: String,
    /// Architectures of the published indices; empty: those of the
    /// packages (`amd64` if there are only `all` packages).
    #[serde(default)]
    pub architectures: Vec<String>,
    pub created: Timestamp,
}

/// One package of a repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub source: String,
    pub file_name: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// apt: the control stanza as the package carries it; rpm: its
    /// primary.xml `<package>` entry.
    pub control: String,
    /// rpm: the filelists.xml and other.xml entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filelists: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepoState {
    pub packages: Vec<RepoPackage>,
}

/// `repos/NAME.yaml`.
fn defs(root: &Root) -> Store<RepoDef> {
    Store::files(ObjectKind::Repo, root.repos_dir(), ".yaml", Format::Yaml)
}

/// `repos/NAME.state.json`.
pub(crate) fn states(root: &Root) -> Store<RepoState> {
    Store::files(
        ObjectKind::RepoState,
        root.repos_dir(),
        ".state.json",
        Format::Json,
    )
}

/// `depot repo create NAME --kind apt`.
pub fn create(
    root: &Root,
    name: &str,
    kind: RepoKind,
    component: Option<String>,
    architectures: Vec<String>,
    now: Timestamp,
) -> Result<RepoDef, RepoError> {
    crate::names::validate("repo", name)?;
    let def = RepoDef {
        name: name.to_owned(),
        kind,
        component: component.unwrap_or_else(|| "main".into()),
        architectures,
        created: now,
    };
    defs(root).create(name, &def)?;
    Ok(def)
}

pub fn load(root: &Root, name: &str) -> Result<(RepoDef, RepoState), RepoError> {
    crate::names::validate("repo", name)?;
    let def = defs(root).load(name)?;
    let state = states(root).load_opt(name)?.unwrap_or_default();
    Ok((def, state))
}

fn save_state(root: &Root, name: &str, state: &RepoState) -> Result<(), RepoError> {
    Ok(states(root).save(name, state)?)
}

/// What `repo add` did.
#[derive(Debug, Clone, Serialize)]
pub struct AddSummary {
    pub added: Vec<String>,
    pub unchanged: Vec<String>,
    pub replaced: Vec<String>,
}

/// `depot repo add NAME FILE…`.
pub fn add(
    root: &Root,
    name: &str,
    files: &[PathBuf],
    replace: bool,
) -> Result<AddSummary, RepoError> {
    let _lock = ObjectLock::acquire(root, "repo", name, Wait::Yes)?;
    let _pool = crate::lock::PoolGuard::writer(root)?;
    let (def, mut state) = load(root, name)?;
    let pool = Pool::new(root);
    let mut parsed = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| RepoError::Io {
            what: "cannot read",
            path: path.clone(),
            source,
        })?;
        let pkg = parse_package(&def, path, &bytes)?;
        parsed.push((path.clone(), pkg, bytes));
    }
    let mut summary = AddSummary {
        added: Vec::new(),
        unchanged: Vec::new(),
        replaced: Vec::new(),
    };
    // Check every file before changing anything.
    for (path, pkg, _) in &parsed {
        if let Some(old) = state
            .packages
            .iter()
            .find(|o| o.name == pkg.name && o.version == pkg.version && o.arch == pkg.arch)
            && old.sha256 != pkg.sha256
            && !replace
        {
            return Err(RepoError::Conflict {
                repo: name.to_owned(),
                name: pkg.name.clone(),
                version: pkg.version.clone(),
                arch: pkg.arch.clone(),
                path: path.clone(),
            });
        }
    }
    for (_, pkg, bytes) in parsed {
        let label = format!("{} {} {}", pkg.name, pkg.version, pkg.arch);
        pool.put(&bytes).map_err(|source| RepoError::Pool {
            repo: name.to_owned(),
            source,
        })?;
        match state
            .packages
            .iter_mut()
            .find(|o| o.name == pkg.name && o.version == pkg.version && o.arch == pkg.arch)
        {
            Some(old) if old.sha256 == pkg.sha256 => summary.unchanged.push(label),
            Some(old) => {
                *old = pkg;
                summary.replaced.push(label);
            }
            None => {
                state.packages.push(pkg);
                summary.added.push(label);
            }
        }
    }
    state
        .packages
        .sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
    save_state(root, name, &state)?;
    Ok(summary)
}

struct RepoView<'a>(&'a RepoPackage, RepoKind);

impl PackageFields for RepoView<'_> {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn version(&self) -> &str {
        &self.0.version
    }
    fn arch(&self) -> &str {
        &self.0.arch
    }
    fn source(&self) -> &str {
        &self.0.source
    }
    fn package_type(&self) -> &str {
        match self.1 {
            RepoKind::Apt => "deb",
            RepoKind::Rpm => "rpm",
        }
    }
    fn field(&self, name: &str) -> Option<String> {
        if self.1 == RepoKind::Rpm {
            return None;
        }
        deb822::paragraphs(&self.0.control)
            .next()?
            .ok()?
            .get(name)
            .map(str::to_owned)
    }
}

/// `depot repo remove NAME QUERY`: returns what was removed.
pub fn remove(root: &Root, name: &str, query: &str) -> Result<Vec<String>, RepoError> {
    let query = Query::parse(query)?;
    let _lock = ObjectLock::acquire(root, "repo", name, Wait::Yes)?;
    let (def, mut state) = load(root, name)?;
    let flavor = match def.kind {
        RepoKind::Apt => Flavor::Deb,
        RepoKind::Rpm => Flavor::Rpm,
    };
    let mut removed = Vec::new();
    state.packages.retain(|p| {
        let hit = query.matches(&RepoView(p, def.kind), flavor);
        if hit {
            removed.push(format!("{} {} {}", p.name, p.version, p.arch));
        }
        !hit
    });
    save_state(root, name, &state)?;
    Ok(removed)
}

/// `depot repo list`.
pub fn list(root: &Root) -> Result<Vec<(RepoDef, usize)>, RepoError> {
    defs(root)
        .load_listed()?
        .into_iter()
        .map(|(name, def)| {
            let state = states(root).load_opt(&name)?.unwrap_or_default();
            Ok((def?, state.packages.len()))
        })
        .collect()
}

/// `depot repo drop NAME` (pooled files stay for snapshots that use them).
pub fn drop_repo(root: &Root, name: &str) -> Result<(), RepoError> {
    let _lock = ObjectLock::acquire(root, "repo", name, Wait::No)?;
    load(root, name)?;
    states(root).remove_if_present(name)?;
    defs(root).remove_if_present(name)?;
    Ok(())
}

/// The repo's packages as apt content: one index per architecture, with
/// `all` packages in each.
pub fn content(root: &Root, name: &str) -> Result<Content, RepoError> {
    let (def, state) = load(root, name)?;
    let layout = ContentLayout {
        kind: def.kind,
        suite: name,
        component: &def.component,
        architectures: &def.architectures,
        files_url: format!("file://{}/", root.repos_dir().display()),
    };
    packages_content(&Pool::new(root), &layout, &state.packages).map_err(|source| RepoError::Pool {
        repo: name.to_owned(),
        source,
    })
}

/// How [`packages_content`] lays packages out.
pub(crate) struct ContentLayout<'a> {
    pub kind: RepoKind,
    /// apt: the suite.
    pub suite: &'a str,
    /// apt: the one component.
    pub component: &'a str,
    /// apt: the architectures indexed; empty: those of the packages.
    pub architectures: &'a [String],
    /// Where the package files would be fetched from (never, as all are
    /// pooled); a `file://` URL.
    pub files_url: String,
}

/// Pooled packages as publishable content: apt, one index per
/// architecture with `all` packages in each; rpm, primary, filelists and
/// other spliced from each package's entries. The index blobs are pooled.
pub(crate) fn packages_content(
    pool: &Pool,
    layout: &ContentLayout<'_>,
    packages: &[RepoPackage],
) -> Result<Content, PoolError> {
    let put = |text: String| pool.put(text.as_bytes());
    if layout.kind == RepoKind::Rpm {
        use crate::formats::rpm::splice;
        use crate::formats::rpm_header::{FILELISTS_ROOT, OTHER_ROOT, PRIMARY_ROOT};
        let pick = |f: fn(&RepoPackage) -> &str| -> Vec<&str> { packages.iter().map(f).collect() };
        let metadata = [
            (
                "primary",
                splice(PRIMARY_ROOT, "metadata", &pick(|p| &p.control)),
            ),
            (
                "filelists",
                splice(
                    FILELISTS_ROOT,
                    "filelists",
                    &pick(|p| p.filelists.as_deref().unwrap_or("")),
                ),
            ),
            (
                "other",
                splice(
                    OTHER_ROOT,
                    "otherdata",
                    &pick(|p| p.other.as_deref().unwrap_or("")),
                ),
            ),
        ]
        .into_iter()
        .map(|(t, text)| Ok(crate::content::RpmMetadataRef::whole(t, "xml", put(text)?)))
        .collect::<Result<Vec<_>, PoolError>>()?;
        return Ok(Content::Rpm(crate::content::RpmContent {
            files_url: layout.files_url.clone(),
            metadata,
            packages: packages.len(),
        }));
    }
    let mut archs = layout.architectures.to_vec();
    if archs.is_empty() {
        for p in packages {
            if p.arch != "all" && !archs.contains(&p.arch) {
                archs.push(p.arch.clone());
            }
        }
        if archs.is_empty() {
            archs.push("amd64".into());
        }
    }
    let mut indices = Vec::new();
    for arch in archs {
        let mut text = String::new();
        let mut entries = 0;
        for p in packages
            .iter()
            .filter(|p| p.arch == arch || p.arch == "all")
        {
            text.push_str(&p.control);
            text.push_str(&format!(
                "Filename: pool/{}\nSize: {}\nSHA256: {}\n\n",
                p.file_name, p.size, p.sha256
            ));
            entries += 1;
        }
        indices.push(IndexRef {
            component: layout.component.to_owned(),
            kind: IndexKind::Binary,
            arch: Some(arch),
            parts: vec![IndexPart::whole(put(text)?)],
            entries,
        });
    }
    Ok(Content::Apt(AptContent {
        origin: None,
        label: None,
        suite: layout.suite.to_owned(),
        codename: None,
        files_url: layout.files_url.clone(),
        indices,
    }))
}
