//! The data root and where each kind of object lives inside it.
//!
//! ```text
//! ROOT/
//!   pool/ab/<sha256>        content-addressed blobs (packages, indices)
//!   tmp/                    downloads in flight (same filesystem as pool/)
//!   cache/catalog/ab/<sha256>.<deb|src>  index catalogs (derived, rebuildable)
//!   cache/rpm-verified/<keyring sha256>  digests of the rpm packages whose
//!                           signatures checked out against that keyring
//!   mirrors/NAME.yaml       hand-editable mirror definitions
//!   mirrors/NAME.state.json what the last successful update fetched
//!   repos/NAME.yaml, NAME.state.json   local repos of CI-built packages
//!   snapshots/NAME.json     immutable snapshot manifests
//!   releases/NAME.json      immutable integrated releases (same format)
//!   guards/NAME.yaml        content guards (and NAME.ca.pem, x509 guards)
//!   dists/DIST/dist.json    a distribution: publish root (relative to the data root when inside it), stage guards
//!   dists/DIST/VERSION.json        a published version's record
//!   dists/DIST/VERSION.tests.json  the tests requested for it
//!   spool/                  the embedded test queue (`test submit`, default)
//!   results/                the embedded test results store (default)
//!   trains/NAME/RUN.json    the journal of each run of a train: every
//!                           step's state and what it made
//!   locks/KIND-NAME.lock    per-object locks (a train's: `train-NAME`)
//!   locks/pool.lock         shared by every writer to the pool, exclusive
//!                           for `depot gc` (see `crate::lock::PoolGuard`)
//!   locks/pool-turnstile.lock  taken by gc before pool.lock, so that
//!                           writers arriving meanwhile queue behind it
//!   builds/P/R/SHA1/D/V/FLAVOR/  a CI build: build.json (its manifest),
//!                           tree-N/ (published trees), current -> tree-N
//!   builds/.pending/ID      builds waiting for a publish (`crate::build`)
//!   public/                 the default publish root (see PUBLISH ROOT)
//!   audit.log               JSON lines: one per publish or promotion
//! ```
//!
//! The publish root (`--to DIR`, `public/` by default) may lie outside the
//! data root; [`PublishRoot`] names its paths:
//!
//! ```text
//! DIR/DIST/VERSION/         a complete, signed repository root
//! DIR/DIST/.VERSION.partial-PID/   a version being written
//! DIR/DIST/.VERSION.dropping/      a version being deleted (renamed aside
//!                                  first, so it vanishes at once)
//! DIR/DIST/dev, DIR/DIST/release   symlinks to the VERSION each stage serves
//! ```
//!
//! Every file here is replaced by atomic rename, never edited in place, so a
//! killed process leaves either the old or the new version.
//!
//! This module owns the layout only: every path into a data root or a
//! publish root is built here, and nothing here reads or writes the
//! objects themselves (their modules do, most through [`crate::store`]).

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the data root {}", path.display())]
pub struct RootError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl RootError {
    /// The data root cannot be prepared.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failure
    }
}

#[derive(Debug, Clone)]
pub struct Root {
    path: PathBuf,
}

impl Root {
    /// Opens (creating as needed) the data root at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RootError> {
        let path = path.into();
        let root = Self { path };
        for dir in [
            root.pool_dir(),
            root.tmp_dir(),
            root.mirrors_dir(),
            root.snapshots_dir(),
            root.releases_dir(),
            root.repos_dir(),
            root.locks_dir(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| RootError {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(root)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn pool_dir(&self) -> PathBuf {
        self.path.join("pool")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.path.join("tmp")
    }
    pub fn mirrors_dir(&self) -> PathBuf {
        self.path.join("mirrors")
    }
    pub fn snapshots_dir(&self) -> PathBuf {
        self.path.join("snapshots")
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.path.join("locks")
    }
    pub fn releases_dir(&self) -> PathBuf {
        self.path.join("releases")
    }
    pub fn repos_dir(&self) -> PathBuf {
        self.path.join("repos")
    }
    pub fn public_dir(&self) -> PathBuf {
        self.path.join("public")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.path.join("audit.log")
    }
    pub fn guards_dir(&self) -> PathBuf {
        self.path.join("guards")
    }
    /// The CA bundle of the x509 guard `name`.
    pub fn guard_ca_file(&self, name: &str) -> PathBuf {
        self.guards_dir().join(format!("{name}.ca.pem"))
    }
    pub fn dists_dir(&self) -> PathBuf {
        self.path.join("dists")
    }
    /// `dists/DIST/`: the distribution's configuration and version records.
    pub fn dist_dir(&self, dist: &str) -> PathBuf {
        self.dists_dir().join(dist)
    }
    pub fn catalog_cache_dir(&self) -> PathBuf {
        self.path.join("cache").join("catalog")
    }
    /// The digests of the rpm packages whose signatures checked out
    /// against the keyring whose SHA-256 is `keyring_hex`.
    pub fn rpm_verified_list(&self, keyring_hex: &str) -> PathBuf {
        self.rpm_verified_dir().join(keyring_hex)
    }
    /// The embedded test queue used when no broker or spool is given.
    pub fn spool_dir(&self) -> PathBuf {
        self.path.join("spool")
    }
    /// The embedded test results store used when no results URL is given.
    pub fn results_dir(&self) -> PathBuf {
        self.path.join("results")
    }
    /// `trains/`: one folder per train, holding its runs' journals.
    pub fn trains_dir(&self) -> PathBuf {
        self.path.join("trains")
    }
    /// `trains/NAME/`: the journals of train `name`.
    pub fn train_dir(&self, name: &str) -> PathBuf {
        self.trains_dir().join(name)
    }
    /// `trains/NAME/RUN.json`: the journal of run `run` of train `name`.
    pub fn train_journal(&self, name: &str, run: &str) -> PathBuf {
        self.train_dir(name).join(format!("{run}.json"))
    }
    /// The lock file of the object `name` of kind `kind` (`mirror`, `dist`…).
    pub fn lock_file(&self, kind: &str, name: &str) -> PathBuf {
        self.locks_dir().join(format!("{kind}-{name}.lock"))
    }
    /// `locks/pool.lock`: held shared by writers to the pool, exclusive
    /// by `depot gc`.
    pub fn pool_lock_file(&self) -> PathBuf {
        self.locks_dir().join("pool.lock")
    }
    /// `locks/pool-turnstile.lock`: gc holds it while it waits for
    /// `pool.lock`, so that new writers queue behind gc.
    pub fn pool_turnstile_file(&self) -> PathBuf {
        self.locks_dir().join("pool-turnstile.lock")
    }
    /// `builds/`: CI build repositories (see [`crate::build`]).
    pub fn builds_dir(&self) -> PathBuf {
        self.path.join("builds")
    }
    /// `builds/.pending/`: one marker per build waiting for a publish.
    pub fn build_pending_dir(&self) -> PathBuf {
        self.builds_dir().join(".pending")
    }
    /// `cache/rpm-verified/`: one list per keyring.
    pub fn rpm_verified_dir(&self) -> PathBuf {
        self.path.join("cache").join("rpm-verified")
    }
    /// The default publish root.
    pub fn default_publish_root(&self) -> PublishRoot {
        PublishRoot::new(self.public_dir())
    }
}

/// A publish root (`--to DIR`): one folder per distribution, holding its
/// versions and the stage symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRoot {
    path: PathBuf,
}

impl PublishRoot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// `DIR/DIST/`.
    pub fn dist_dir(&self, dist: &str) -> PathBuf {
        self.path.join(dist)
    }
    /// `DIR/DIST/VERSION/`: a published version.
    pub fn version_dir(&self, dist: &str, version: &str) -> PathBuf {
        self.dist_dir(dist).join(version)
    }
    /// `DIR/DIST/.VERSION.partial-PID/`: a version being written by
    /// process `pid`, renamed to [`Self::version_dir`] when complete.
    pub fn partial_dir(&self, dist: &str, version: &str, pid: u32) -> PathBuf {
        self.dist_dir(dist)
            .join(format!(".{version}.partial-{pid}"))
    }
    /// `DIR/DIST/.VERSION.dropping/`: a version being deleted, renamed
    /// aside so that it disappears from `DIR/DIST/VERSION` in one step.
    pub fn dropping_dir(&self, dist: &str, version: &str) -> PathBuf {
        self.dist_dir(dist).join(format!(".{version}.dropping"))
    }
    /// `DIR/DIST/STAGE`: the symlink to the version a stage serves.
    pub fn stage_link(&self, dist: &str, stage: &str) -> PathBuf {
        self.dist_dir(dist).join(stage)
    }
}
