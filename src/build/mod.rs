//! Build repositories for CI, as ceph's chacra and shaman make them.
//!
//! A CI job uploads the packages of one *build* — `PROJECT/REF/SHA1/
//! DISTRO/DISTRO_VERSION` and a flavor (`default` unless given) — one
//! file at a time, over HTTP to `depot serve` ([`api`]) or with `depot
//! build upload`. Each file is verified as `repo add` verifies it (its
//! kind must be the distro's, its architecture the one it was uploaded
//! as) and pooled; the build's manifest lists its packages. After a quiet
//! time with no upload to it, the builder ([`builder`]) in `depot serve`
//! publishes the build as a signed apt or rpm repository, and every state
//! a build goes through (`requested`, `queued`, `building`, `ready`,
//! `failed`) is recorded in the manifest with its time and POSTed to the
//! configured webhooks. Queries answer which builds are ready, which SHA1
//! of a ref is the newest ready on every one of a list of distros, and
//! give the repo file a client drops into its configuration.
//!
//! On disk (under the data root):
//!
//! ```text
//! builds/P/R/SHA1/D/V/FLAVOR/build.json   the build's manifest (state,
//!                                         packages, history, extra)
//! builds/P/R/SHA1/D/V/FLAVOR/tree-N/      published tree of generation N
//! builds/P/R/SHA1/D/V/FLAVOR/current      symlink to the tree served
//! builds/.pending/ID                      a build needing a publish
//!                                         (ID: its key's digest; the
//!                                         file holds the key's path)
//! ```
//!
//! The distro decides the repository kind ([`DistroMap`]): `ubuntu` and
//! `debian` are apt, `centos`, `rhel`, `fedora`, `rocky`, `alma` and
//! `almalinux` are rpm; the settings file's `build-distros` adds or
//! overrides names.
//!
//! This module owns `builds/` and the build locks (`locks/build-ID.lock`
//! for a manifest, `locks/build-run-ID.lock` for a publish). It adds to
//! the pool (holding the pool's writer guard) but never removes from it,
//! and never touches distributions, their publish roots or stages.

pub mod api;
pub mod builder;
pub mod client;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::content::RepoKind;
use crate::digest::Sha256Digest;
use crate::lock::{LockError, ObjectLock, Wait};
use crate::names::InvalidName;
use crate::pool::{Pool, PoolError};
use crate::repo::{RepoDef, RepoError, RepoPackage};
use crate::root::Root;
use crate::store::{Format, ObjectKind, Store, StoreError};

pub use builder::{Builder, BuilderOptions, Hooks};

/// The flavor of a build uploaded without one.
pub const DEFAULT_FLAVOR: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`latest` names no SHA1 of its own; upload to the build's real SHA1")]
    LatestIsReserved,
    #[error("sha1=latest needs a project, a ref and at least one distro")]
    LatestNeedsScope,
    #[error(
        "unknown distro `{distro}`: depot knows ubuntu, debian (apt) and centos, rhel, fedora, rocky, alma, almalinux (rpm); add it to `build-distros` in the settings file"
    )]
    UnknownDistro { distro: String },
    #[error("build {build}: the upload is not an acceptable package")]
    Package {
        build: String,
        #[source]
        source: Box<RepoError>,
    },
    #[error("build {build}: {file} is for architecture `{found}`, but was uploaded as `{arch}`")]
    WrongArch {
        build: String,
        file: String,
        found: String,
        arch: String,
    },
    #[error(
        "build {build}: {file} is already there with other content; pass force=1 (`--force`) to replace it"
    )]
    Conflict { build: String, file: String },
    #[error("build {build}: cannot store the package")]
    Pool {
        build: String,
        #[source]
        source: PoolError,
    },
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no build {build}")]
    NotFound { build: String },
    #[error("no SHA1 of {project}/{reference} is ready on {distros}")]
    NoneReady {
        project: String,
        reference: String,
        distros: String,
    },
    #[error("build {build} is not ready yet ({status})")]
    NotReady { build: String, status: Status },
    #[error("invalid distro `{0}`: give DISTRO/VERSION (or DISTRO/VERSION/ARCH)")]
    DistroSpec(String),
    #[error("build {build}: publishing failed")]
    Publish {
        build: String,
        #[source]
        source: Box<crate::promote::PublishError>,
    },
    #[error("signing key `{key}`")]
    SignKey {
        key: String,
        #[source]
        source: crate::signing::SigningError,
    },
    #[error("`depot serve` at {url} refused or failed the request ({status}): {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error("cannot reach `depot serve` at {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl BuildError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_)
            | Self::LatestIsReserved
            | Self::LatestNeedsScope
            | Self::UnknownDistro { .. }
            | Self::DistroSpec(_) => Usage,
            Self::Lock(l) => l.kind(),
            Self::Store(s) => s.kind(),
            Self::NotReady { .. } => Pending,
            Self::Package { .. }
            | Self::WrongArch { .. }
            | Self::Conflict { .. }
            | Self::Pool { .. }
            | Self::Io { .. }
            | Self::NotFound { .. }
            | Self::NoneReady { .. }
            | Self::Publish { .. }
            | Self::SignKey { .. }
            | Self::Server { .. }
            | Self::Http { .. } => Failure,
        }
    }

    /// The HTTP status an API answer gives for it.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidName(_)
            | Self::LatestIsReserved
            | Self::LatestNeedsScope
            | Self::UnknownDistro { .. }
            | Self::DistroSpec(_)
            | Self::Package { .. }
            | Self::WrongArch { .. } => 400,
            Self::Conflict { .. } => 409,
            Self::NotFound { .. } | Self::NoneReady { .. } | Self::NotReady { .. } => 404,
            Self::Lock(_)
            | Self::Store(_)
            | Self::Pool { .. }
            | Self::Io { .. }
            | Self::Publish { .. }
            | Self::SignKey { .. }
            | Self::Server { .. }
            | Self::Http { .. } => 500,
        }
    }
}

/// Which repository kind each distro gets.
#[derive(Debug, Clone)]
pub struct DistroMap(BTreeMap<String, RepoKind>);

impl Default for DistroMap {
    fn default() -> Self {
        let mut map = BTreeMap::new();
        for d in ["ubuntu", "debian"] {
            map.insert(d.to_owned(), RepoKind::Apt);
        }
        for d in ["centos", "rhel", "fedora", "rocky", "alma", "almalinux"] {
            map.insert(d.to_owned(), RepoKind::Rpm);
        }
        Self(map)
    }
}

impl DistroMap {
    /// The built-in map with `overrides` (the settings file's
    /// `build-distros`) added over it.
    pub fn with(overrides: &BTreeMap<String, RepoKind>) -> Self {
        let mut map = Self::default();
        map.0.extend(overrides.iter().map(|(k, v)| (k.clone(), *v)));
        map
    }

    pub fn kind(&self, distro: &str) -> Result<RepoKind, BuildError> {
        self.0
            .get(distro)
            .copied()
            .ok_or_else(|| BuildError::UnknownDistro {
                distro: distro.to_owned(),
            })
    }
}

/// Which build: `PROJECT/REF/SHA1/DISTRO/DISTRO_VERSION` and a flavor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BuildKey {
    pub project: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub sha1: String,
    pub distro: String,
    pub distro_version: String,
    pub flavor: String,
}

impl BuildKey {
    /// Checks every part (each is a path segment: depot's name alphabet).
    pub fn new(
        project: &str,
        reference: &str,
        sha1: &str,
        distro: &str,
        distro_version: &str,
        flavor: Option<&str>,
    ) -> Result<Self, BuildError> {
        let flavor = flavor.unwrap_or(DEFAULT_FLAVOR);
        for (what, v) in [
            ("project", project),
            ("ref", reference),
            ("sha1", sha1),
            ("distro", distro),
            ("distro version", distro_version),
            ("flavor", flavor),
        ] {
            crate::names::validate(what, v)?;
        }
        if sha1 == "latest" {
            return Err(BuildError::LatestIsReserved);
        }
        Ok(Self {
            project: project.to_owned(),
            reference: reference.to_owned(),
            sha1: sha1.to_owned(),
            distro: distro.to_owned(),
            distro_version: distro_version.to_owned(),
            flavor: flavor.to_owned(),
        })
    }

    /// `P/R/SHA1/D/V/FLAVOR`: the manifest's folder under `builds/`.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}/{}",
            self.project, self.reference, self.sha1, self.distro, self.distro_version, self.flavor
        )
    }

    /// Parses [`Self::path`] back (a pending marker's content).
    fn from_path(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim().split('/').collect();
        let [p, r, s, d, v, f] = parts.as_slice() else {
            return None;
        };
        Self::new(p, r, s, d, v, Some(f)).ok()
    }

    /// Where its repository is served: `r/P/R/SHA1/D/V/` and, for a flavor
    /// other than `default`, `flavors/FLAVOR/`.
    pub fn repo_path(&self) -> String {
        let mut p = format!(
            "r/{}/{}/{}/{}/{}/",
            self.project, self.reference, self.sha1, self.distro, self.distro_version
        );
        if self.flavor != DEFAULT_FLAVOR {
            p.push_str(&format!("flavors/{}/", self.flavor));
        }
        p
    }

    /// A short, file-name-safe id (locks, pending markers).
    fn id(&self) -> String {
        Sha256Digest::of(self.path().as_bytes()).to_hex()[..32].to_owned()
    }
}

impl std::fmt::Display for BuildKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

/// A build's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Uploads arrived; the repository will be made after the quiet time.
    Requested,
    /// The quiet time is over; waiting for a builder slot.
    Queued,
    Building,
    Ready,
    Failed,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Queued => "queued",
            Self::Building => "building",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Requested,
            Self::Queued,
            Self::Building,
            Self::Ready,
            Self::Failed,
        ]
        .into_iter()
        .find(|st| st.label() == s)
        .ok_or_else(|| format!("unknown status `{s}`"))
    }
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub status: Status,
    pub time: Timestamp,
}

/// A build's manifest (`builds/P/R/SHA1/D/V/FLAVOR/build.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    #[serde(flatten)]
    pub key: BuildKey,
    pub kind: RepoKind,
    pub status: Status,
    /// Every state change, oldest first.
    pub history: Vec<Transition>,
    /// The first upload.
    pub created: Timestamp,
    /// The newest upload (the quiet time counts from it).
    pub last_upload: Timestamp,
    /// Bumped by every upload that changes the packages.
    pub generation: u64,
    /// The generation the served tree was made from (0: none yet).
    pub published: u64,
    /// Why the last publish failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Metadata the uploader posted (build URL, job, version…).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub packages: Vec<RepoPackage>,
}

impl Build {
    /// Architectures of its packages (`all`/`noarch` included).
    pub fn archs(&self) -> Vec<String> {
        let mut a: Vec<String> = self.packages.iter().map(|p| p.arch.clone()).collect();
        a.sort();
        a.dedup();
        a
    }

    fn set_status(&mut self, status: Status, now: Timestamp) {
        self.status = status;
        self.history.push(Transition { status, time: now });
    }

    /// Whether its packages hold anything for `arch`.
    fn has_arch(&self, arch: &str) -> bool {
        self.packages
            .iter()
            .any(|p| arch_matches(&p.arch, arch) || p.arch == "all" || p.arch == "noarch")
    }
}

/// apt and rpm names of one architecture are the same one: a CI job may
/// upload its x86_64 rpms and its amd64 debs under either name.
fn arch_matches(found: &str, wanted: &str) -> bool {
    let canon = |a: &str| match a {
        "x86_64" => "amd64".to_owned(),
        "aarch64" => "arm64".to_owned(),
        "ppc64le" => "ppc64el".to_owned(),
        other => other.to_owned(),
    };
    canon(found) == canon(wanted)
}

/// What a query or an API answer says about a build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    #[serde(flatten)]
    pub key: BuildKey,
    pub status: Status,
    pub archs: Vec<String>,
    pub packages: usize,
    pub created: Timestamp,
    pub last_upload: Timestamp,
    /// When it last became `ready`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Timestamp>,
    /// Its repository's path below the server (`r/…/`).
    pub repo_path: String,
    pub history: Vec<Transition>,
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&Build> for BuildInfo {
    fn from(b: &Build) -> Self {
        Self {
            key: b.key.clone(),
            status: b.status,
            archs: b.archs(),
            packages: b.packages.len(),
            created: b.created,
            last_upload: b.last_upload,
            ready: b
                .history
                .iter()
                .rev()
                .find(|t| t.status == Status::Ready)
                .map(|t| t.time),
            repo_path: b.key.repo_path(),
            history: b.history.clone(),
            extra: b.extra.clone(),
            error: b.error.clone(),
        }
    }
}

pub(crate) fn manifests(root: &Root) -> Store<Build> {
    Store::folders(
        ObjectKind::Build,
        root.builds_dir(),
        "build.json",
        Format::Json,
    )
}

/// Loads a build's manifest, if it has one.
pub fn load(root: &Root, key: &BuildKey) -> Result<Option<Build>, BuildError> {
    Ok(manifests(root).load_opt(&key.path())?)
}

fn save(root: &Root, build: &Build) -> Result<(), BuildError> {
    Ok(manifests(root).save(&build.key.path(), build)?)
}

/// The lock guarding a build's manifest (held for a read-modify-write).
fn manifest_lock(root: &Root, key: &BuildKey) -> Result<ObjectLock, BuildError> {
    Ok(ObjectLock::acquire(root, "build", &key.id(), Wait::Yes)?)
}

fn pending_marker(root: &Root, key: &BuildKey) -> PathBuf {
    root.build_pending_dir().join(key.id())
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A package file received into the pool's temp area, hashed as it came.
pub struct Received {
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// The name the client gave it, for messages (else `upload`).
    pub name: String,
}

/// Writes into the pool's temp area while hashing: the receiving end of a
/// streamed upload, whatever its size.
pub struct Receiver {
    file: tempfile::NamedTempFile,
    hasher: sha2::Sha256,
    size: u64,
}

impl Receiver {
    pub fn new(root: &Root) -> Result<Self, BuildError> {
        let file = Pool::new(root)
            .temp_file()
            .map_err(|source| BuildError::Pool {
                build: "upload".into(),
                source,
            })?;
        Ok(Self {
            file,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            size: 0,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BuildError> {
        use std::io::Write;
        sha2::Digest::update(&mut self.hasher, chunk);
        self.size += chunk.len() as u64;
        let path = self.file.path().to_owned();
        self.file
            .as_file_mut()
            .write_all(chunk)
            .map_err(io("write", &path))
    }

    pub fn finish(self, name: String) -> Received {
        Received {
            file: self.file,
            size: self.size,
            sha256: Sha256Digest::from_hasher(self.hasher),
            name,
        }
    }

    /// Copies a local file in (`depot build upload` on a local root).
    pub fn from_file(root: &Root, path: &Path) -> Result<Received, BuildError> {
        use std::io::Read;
        let mut r = Self::new(root)?;
        let mut f = std::fs::File::open(path).map_err(io("read", path))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(io("read", path))?;
            if n == 0 {
                break;
            }
            r.write(&buf[..n])?;
        }
        Ok(r.finish(path.display().to_string()))
    }
}

/// What one upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A new file (HTTP 201).
    Created,
    /// The same file was there already (HTTP 200).
    Unchanged,
    /// Another file of that name was replaced (`force`; HTTP 201).
    Replaced,
}

#[derive(Debug, Clone, Serialize)]
pub struct UploadSummary {
    pub build: String,
    pub file: String,
    pub package: String,
    pub sha256: Sha256Digest,
    pub outcome: Outcome,
    pub status: Status,
    /// This upload moved the build to `requested` (webhooks are told).
    #[serde(skip)]
    pub requested: bool,
}

/// Verifies a received package for `key` (uploaded as `arch`), pools it
/// and adds it to the build's manifest, marking the build as needing a
/// publish. Nothing is stored when it is refused.
pub fn accept(
    root: &Root,
    distros: &DistroMap,
    key: &BuildKey,
    arch: &str,
    force: bool,
    received: Received,
    now: Timestamp,
) -> Result<UploadSummary, BuildError> {
    crate::names::validate("arch", arch)?;
    let kind = distros.kind(&key.distro)?;
    let build = key.path();
    let def = RepoDef {
        name: format!("{}/{}", key.distro, key.distro_version),
        kind,
        component: "main".into(),
        architectures: Vec::new(),
        created: now,
    };
    let shown = PathBuf::from(&received.name);
    // The file is mapped, not read: a 2 GB package is paged through for
    // its digest and header, never held in memory.
    let file = received.file.as_file();
    let map = if received.size == 0 {
        None
    } else {
        // SAFETY: the temp file is private to this process (created with a
        // random name, never shared) and not written while mapped.
        Some(unsafe { memmap2::Mmap::map(file) }.map_err(io("map", received.file.path()))?)
    };
    let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
    let pkg =
        crate::repo::parse_package(&def, &shown, bytes).map_err(|source| BuildError::Package {
            build: build.clone(),
            source: Box::new(source),
        })?;
    if !(arch_matches(&pkg.arch, arch) || pkg.arch == "all" || pkg.arch == "noarch") {
        return Err(BuildError::WrongArch {
            build,
            file: pkg.file_name,
            found: pkg.arch,
            arch: arch.to_owned(),
        });
    }
    drop(map);
    let _pool = crate::lock::PoolGuard::writer(root)?;
    let _lock = manifest_lock(root, key)?;
    let mut b = load(root, key)?.unwrap_or_else(|| Build {
        key: key.clone(),
        kind,
        status: Status::Requested,
        history: Vec::new(),
        created: now,
        last_upload: now,
        generation: 0,
        published: 0,
        error: None,
        extra: serde_json::Map::new(),
        packages: Vec::new(),
    });
    let label = format!("{} {} {}", pkg.name, pkg.version, pkg.arch);
    let existing = b.packages.iter().position(|p| p.file_name == pkg.file_name);
    let outcome = match existing {
        Some(i) if b.packages[i].sha256 == pkg.sha256 => Outcome::Unchanged,
        Some(_) if !force => {
            return Err(BuildError::Conflict {
                build,
                file: pkg.file_name,
            });
        }
        Some(_) => Outcome::Replaced,
        None => Outcome::Created,
    };
    let sha256 = pkg.sha256;
    let file_name = pkg.file_name.clone();
    let mut requested = false;
    if outcome != Outcome::Unchanged {
        Pool::new(root)
            .adopt(received.file, &sha256)
            .map_err(|source| BuildError::Pool {
                build: build.clone(),
                source,
            })?;
        match existing {
            Some(i) => b.packages[i] = pkg,
            None => b.packages.push(pkg),
        }
        b.packages.sort_by(|x, y| x.file_name.cmp(&y.file_name));
        b.generation += 1;
        b.last_upload = now;
        // A build being queued or built stays so: the builder sees the
        // newer generation when it finishes and builds once more.
        if b.history.is_empty() || matches!(b.status, Status::Ready | Status::Failed) {
            b.set_status(Status::Requested, now);
            requested = true;
        }
        save(root, &b)?;
        mark_pending(root, key)?;
    }
    Ok(UploadSummary {
        build,
        file: file_name,
        package: label,
        sha256,
        outcome,
        status: b.status,
        requested,
    })
}

/// Marks the build as pending; the marker's modification time is its
/// last upload's, so the builder skips builds still in their quiet time
/// without reading their manifests.
fn mark_pending(root: &Root, key: &BuildKey) -> Result<(), BuildError> {
    let marker = pending_marker(root, key);
    let touched = std::fs::File::options()
        .write(true)
        .open(&marker)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if touched.is_err() {
        crate::fsutil::write_atomic(&marker, key.path().as_bytes())
            .map_err(io("write", &marker))?;
    }
    Ok(())
}

/// Merges `extra` into a build's metadata (`POST /api/extra/…`, `depot
/// build upload --extra`); the build must exist.
pub fn set_extra(
    root: &Root,
    key: &BuildKey,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<BuildInfo, BuildError> {
    let _lock = manifest_lock(root, key)?;
    let mut b = load(root, key)?.ok_or_else(|| BuildError::NotFound { build: key.path() })?;
    b.extra.extend(extra);
    save(root, &b)?;
    Ok(BuildInfo::from(&b))
}

/// The names (`P/R/SHA1/D/V/FLAVOR`) of every build folder, sorted
/// (walking `builds/`; `project`, `ref` narrow the walk).
pub(crate) fn names(root: &Root, project: Option<&str>, reference: Option<&str>) -> Vec<String> {
    fn dirs(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
    let mut level: Vec<String> = vec![String::new()];
    for depth in 0..6 {
        let only = match depth {
            0 => project,
            1 => reference,
            _ => None,
        };
        let base = root.builds_dir();
        level = level
            .iter()
            .flat_map(|prefix| {
                dirs(&base.join(prefix))
                    .into_iter()
                    .filter(|n| only.is_none_or(|o| o == n))
                    .map(move |n| {
                        if prefix.is_empty() {
                            n
                        } else {
                            format!("{prefix}/{n}")
                        }
                    })
            })
            .collect();
    }
    level
}

/// Every build's manifest (`project`, `ref` narrow the walk).
pub fn all(
    root: &Root,
    project: Option<&str>,
    reference: Option<&str>,
) -> Result<Vec<Build>, BuildError> {
    let store = manifests(root);
    let mut out = Vec::new();
    for name in names(root, project, reference) {
        // Dropped between the listing and the load: gone.
        if let Some(b) = store.load_opt(&name)? {
            out.push(b);
        }
    }
    Ok(out)
}

/// One `DISTRO/VERSION[/ARCH]` of a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistroSpec {
    pub distro: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

impl std::str::FromStr for DistroSpec {
    type Err = BuildError;
    fn from_str(s: &str) -> Result<Self, BuildError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || BuildError::DistroSpec(s.to_owned());
        let (d, v, a) = match parts.as_slice() {
            [d, v] => (*d, *v, None),
            [d, v, a] => (*d, *v, Some(*a)),
            _ => return Err(bad()),
        };
        for x in [Some(d), Some(v), a].into_iter().flatten() {
            crate::names::validate("distro", x).map_err(|_| bad())?;
        }
        Ok(Self {
            distro: d.to_owned(),
            version: v.to_owned(),
            arch: a.map(str::to_owned),
        })
    }
}

impl DistroSpec {
    fn matches(&self, b: &Build) -> bool {
        b.key.distro == self.distro
            && b.key.distro_version == self.version
            && self.arch.as_deref().is_none_or(|a| b.has_arch(a))
    }
}

/// What to search for (`GET /api/search/`, `depot build list`).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub project: Option<String>,
    pub reference: Option<String>,
    /// A SHA1, or `latest`: the newest SHA1 of the ref ready on every
    /// listed distro.
    pub sha1: Option<String>,
    pub distros: Vec<DistroSpec>,
    pub flavor: Option<String>,
    pub status: Option<Status>,
}

/// The SHA1 newest first: by the time of its first upload (when CI first
/// reported it), then by name for a stable order.
fn sha1_order(builds: &[Build]) -> Vec<String> {
    let mut first: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for b in builds {
        let e = first.entry(&b.key.sha1).or_insert(b.created);
        if b.created < *e {
            *e = b.created;
        }
    }
    let mut v: Vec<(&str, Timestamp)> = first.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(a.0)));
    v.into_iter().map(|(s, _)| s.to_owned()).collect()
}

/// The newest SHA1 of `builds` (one project and ref) ready on every one of
/// `distros` (with `flavor`).
fn latest_sha1(builds: &[Build], distros: &[DistroSpec], flavor: &str) -> Option<String> {
    sha1_order(builds).into_iter().find(|sha1| {
        !distros.is_empty()
            && distros.iter().all(|d| {
                builds.iter().any(|b| {
                    b.key.sha1 == *sha1
                        && b.key.flavor == flavor
                        && b.status == Status::Ready
                        && d.matches(b)
                })
            })
    })
}

/// `GET /api/search/`, `depot build list`: builds matching `q`, newest
/// first (by SHA1 age as in [`latest`], then distro).
pub fn search(root: &Root, q: &Query) -> Result<Vec<BuildInfo>, BuildError> {
    let builds = all(root, q.project.as_deref(), q.reference.as_deref())?;
    let flavor = q.flavor.as_deref();
    let sha1 = match q.sha1.as_deref() {
        Some("latest") => {
            let (Some(p), Some(r), false) = (&q.project, &q.reference, q.distros.is_empty()) else {
                return Err(BuildError::LatestNeedsScope);
            };
            match latest_sha1(&builds, &q.distros, flavor.unwrap_or(DEFAULT_FLAVOR)) {
                Some(s) => Some(s),
                None => {
                    return Err(BuildError::NoneReady {
                        project: p.clone(),
                        reference: r.clone(),
                        distros: describe(&q.distros),
                    });
                }
            }
        }
        other => other.map(str::to_owned),
    };
    let order = sha1_order(&builds);
    let mut hits: Vec<&Build> = builds
        .iter()
        .filter(|b| sha1.as_deref().is_none_or(|s| b.key.sha1 == s))
        .filter(|b| flavor.is_none_or(|f| b.key.flavor == f))
        .filter(|b| q.status.is_none_or(|s| b.status == s))
        .filter(|b| q.distros.is_empty() || q.distros.iter().any(|d| d.matches(b)))
        .collect();
    let rank = |b: &Build| order.iter().position(|s| *s == b.key.sha1).unwrap_or(0);
    hits.sort_by(|a, b| {
        (a.key.project.as_str(), a.key.reference.as_str())
            .cmp(&(b.key.project.as_str(), b.key.reference.as_str()))
            .then(rank(a).cmp(&rank(b)))
            .then(a.key.cmp(&b.key))
    });
    Ok(hits.into_iter().map(BuildInfo::from).collect())
}

fn describe(distros: &[DistroSpec]) -> String {
    distros
        .iter()
        .map(|d| {
            let mut s = format!("{}/{}", d.distro, d.version);
            if let Some(a) = &d.arch {
                s.push('/');
                s.push_str(a);
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `depot build latest`: the newest SHA1 of `project`/`reference` ready on
/// every one of `distros`, with its builds there.
#[derive(Debug, Clone, Serialize)]
pub struct Latest {
    pub sha1: String,
    pub builds: Vec<BuildInfo>,
}

pub fn latest(
    root: &Root,
    project: &str,
    reference: &str,
    distros: &[DistroSpec],
    flavor: Option<&str>,
) -> Result<Latest, BuildError> {
    let q = Query {
        project: Some(project.to_owned()),
        reference: Some(reference.to_owned()),
        sha1: Some("latest".into()),
        distros: distros.to_vec(),
        flavor: Some(flavor.unwrap_or(DEFAULT_FLAVOR).to_owned()),
        status: Some(Status::Ready),
    };
    let builds = search(root, &q)?;
    let sha1 = builds
        .first()
        .map(|b| b.key.sha1.clone())
        .unwrap_or_default();
    Ok(Latest { sha1, builds })
}

/// `depot build show`: one build, with its packages.
#[derive(Debug, Clone, Serialize)]
pub struct BuildDetails {
    #[serde(flatten)]
    pub info: BuildInfo,
    pub files: Vec<String>,
}

pub fn show(root: &Root, key: &BuildKey) -> Result<BuildDetails, BuildError> {
    let b = load(root, key)?.ok_or_else(|| BuildError::NotFound { build: key.path() })?;
    Ok(BuildDetails {
        info: BuildInfo::from(&b),
        files: b.packages.iter().map(|p| p.file_name.clone()).collect(),
    })
}

/// The build a repo-file request names: `sha1` may be `latest` (the newest
/// SHA1 ready on this one distro).
pub fn resolve(
    root: &Root,
    project: &str,
    reference: &str,
    sha1: &str,
    distro: &str,
    version: &str,
    flavor: Option<&str>,
) -> Result<Build, BuildError> {
    let sha1 = if sha1 == "latest" {
        let spec = DistroSpec {
            distro: distro.to_owned(),
            version: version.to_owned(),
            arch: None,
        };
        latest(root, project, reference, &[spec], flavor)?.sha1
    } else {
        sha1.to_owned()
    };
    let key = BuildKey::new(project, reference, &sha1, distro, version, flavor)?;
    let b = load(root, &key)?.ok_or_else(|| BuildError::NotFound { build: key.path() })?;
    if b.published == 0 {
        return Err(BuildError::NotReady {
            build: key.path(),
            status: b.status,
        });
    }
    Ok(b)
}

/// What a client drops into its configuration for `build`, served from
/// `base` (`http://HOST:PORT/`, ending in `/`): for apt a deb822
/// `.sources` stanza with `key` (the armoured publishing key) embedded in
/// `Signed-By:`, or with `one_line` the one-line form naming a keyring
/// file fetched from `BASE/api/key`; for rpm a `.repo` file with
/// `gpgkey=BASE/api/key` and `repo_gpgcheck=1`.
pub fn repo_file(build: &Build, base: &str, key: Option<&str>, one_line: bool) -> String {
    let url = format!("{base}{}", build.key.repo_path());
    let k = &build.key;
    let id = format!(
        "{}-{}-{}-{}-{}{}",
        k.project,
        k.reference,
        &k.sha1[..k.sha1.len().min(12)],
        k.distro,
        k.distro_version,
        if k.flavor == DEFAULT_FLAVOR {
            String::new()
        } else {
            format!("-{}", k.flavor)
        }
    );
    match build.kind {
        RepoKind::Apt if one_line => format!(
            "# keyring: curl -fsSo /etc/apt/keyrings/depot.asc {base}api/key\ndeb [signed-by=/etc/apt/keyrings/depot.asc] {url} {} main\n",
            k.distro_version
        ),
        RepoKind::Apt => {
            let mut s = format!(
                "Types: deb\nURIs: {url}\nSuites: {}\nComponents: main\n",
                k.distro_version
            );
            match key {
                Some(key) => {
                    s.push_str("Signed-By:\n");
                    for line in key.trim_end().lines() {
                        if line.trim().is_empty() {
                            s.push_str(" .\n");
                        } else {
                            s.push(' ');
                            s.push_str(line);
                            s.push('\n');
                        }
                    }
                }
                None => s.push_str("Trusted: yes\n"),
            }
            s
        }
        RepoKind::Rpm => format!(
            "[{id}]\nname={id}\nbaseurl={url}\nenabled=1\n{}",
            if key.is_some() {
                format!("gpgcheck=0\nrepo_gpgcheck=1\ngpgkey={base}api/key\n")
            } else {
                "gpgcheck=0\nrepo_gpgcheck=0\n".to_owned()
            }
        ),
    }
}

/// The served tree of a ready build: `builds/…/current`.
pub fn served_tree(root: &Root, key: &BuildKey) -> PathBuf {
    root.builds_dir().join(key.path()).join("current")
}

/// One SHA1 of a ref, as retention sees it (chacra's `purge_rotation`
/// keeps repos per ref).
#[derive(Debug, Clone)]
pub struct Sha1Builds {
    pub project: String,
    pub reference: String,
    pub sha1: String,
    /// Its first upload: how old it is.
    pub created: Timestamp,
    /// A build of it is queued for or in a publish.
    pub pending: bool,
    /// Its builds' names (`P/R/SHA1/D/V/FLAVOR`).
    pub builds: Vec<String>,
}

/// Every SHA1 of every ref (of `project`, if given).
pub fn sha1s(root: &Root, project: Option<&str>) -> Result<Vec<Sha1Builds>, BuildError> {
    let mut out: BTreeMap<(String, String, String), Sha1Builds> = BTreeMap::new();
    for b in all(root, project, None)? {
        let k = &b.key;
        let e = out
            .entry((k.project.clone(), k.reference.clone(), k.sha1.clone()))
            .or_insert_with(|| Sha1Builds {
                project: k.project.clone(),
                reference: k.reference.clone(),
                sha1: k.sha1.clone(),
                created: b.created,
                pending: false,
                builds: Vec::new(),
            });
        e.created = e.created.min(b.created);
        e.pending |= matches!(b.status, Status::Queued | Status::Building);
        e.builds.push(k.path());
    }
    Ok(out.into_values().collect())
}

/// Drops every build of one SHA1 (manifests and published trees): the
/// folder is renamed aside first, so it vanishes at once, then deleted.
/// The pool blobs stay for `depot gc`.
pub fn drop_sha1(
    root: &Root,
    project: &str,
    reference: &str,
    sha1: &str,
) -> Result<(), BuildError> {
    for (what, v) in [("project", project), ("ref", reference), ("sha1", sha1)] {
        crate::names::validate(what, v)?;
    }
    let parent = root.builds_dir().join(project).join(reference);
    let dir = parent.join(sha1);
    let aside = parent.join(format!(".{sha1}.dropping-{}", std::process::id()));
    match std::fs::rename(&dir, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("drop", &dir)(e)),
    }
    std::fs::remove_dir_all(&aside).map_err(io("drop", &aside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_path_segments_and_latest_is_reserved() {
        assert!(BuildKey::new("ceph", "main", "abc", "ubuntu", "jammy", None).is_ok());
        assert!(BuildKey::new("ceph", "..", "abc", "ubuntu", "jammy", None).is_err());
        assert!(BuildKey::new("ceph", "main", "latest", "ubuntu", "jammy", None).is_err());
        let k = BuildKey::new("ceph", "main", "abc", "centos", "9", Some("crimson")).unwrap();
        assert_eq!(k.repo_path(), "r/ceph/main/abc/centos/9/flavors/crimson/");
        assert_eq!(BuildKey::from_path(&k.path()), Some(k));
        assert!(arch_matches("x86_64", "amd64") && !arch_matches("arm64", "amd64"));
        let d: DistroSpec = "ubuntu/jammy/amd64".parse().unwrap();
        assert_eq!(d.arch.as_deref(), Some("amd64"));
        assert!("ubuntu".parse::<DistroSpec>().is_err());
        assert_eq!(DistroMap::default().kind("rocky").unwrap(), RepoKind::Rpm);
        assert!(DistroMap::default().kind("gentoo").is_err());
    }
}
