//! The data root and where each kind of object lives inside it.
//!
//! ```text
//! ROOT/
//!   pool/ab/<sha256>        content-addressed blobs (packages, indices)
//!   tmp/                    downloads in flight (same filesystem as pool/)
//!   cache/catalog/ab/<sha256>.<deb|src>  index catalogs (derived, rebuildable)
//!   mirrors/NAME.yaml       hand-editable mirror definitions
//!   mirrors/NAME.state.json what the last successful update fetched
//!   snapshots/NAME.json     immutable snapshot manifests
//!   releases/NAME.json      immutable integrated releases (same format)
//!   repos/NAME.yaml, NAME.state.json   local repos of CI-built packages
//!   locks/KIND-NAME.lock    per-object locks
//!   public/DIST/VERSION/    published repositories (default publish root)
//!   audit.log               JSON lines: one per publish or promotion
//! ```
//!
//! Every file here is replaced by atomic rename, never edited in place, so a
//! killed process leaves either the old or the new version.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the data root {}", path.display())]
pub struct RootError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
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
    /// The embedded test queue's default spool.
    pub fn spool_dir(&self) -> PathBuf {
        self.path.join("spool")
    }
    /// The default `file://` results store of test runs.
    pub fn results_dir(&self) -> PathBuf {
        self.path.join("results")
    }
    pub fn public_dir(&self) -> PathBuf {
        self.path.join("public")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.path.join("audit.log")
    }
}
