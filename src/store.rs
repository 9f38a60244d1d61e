//! One store for named objects: mirror and repo definitions and states,
//! guards, distributions and their version records, snapshot and release
//! manifests.
//!
//! A [`Store`] is a directory of a data root (which one, [`crate::root`]
//! says) holding one file per object, named after it: `DIR/NAME.yaml`
//! (YAML, for definitions people edit by hand) or `DIR/NAME.json` (JSON,
//! for manifests and states), or, for objects that are folders,
//! `DIR/NAME/FILE`. It saves by atomic replacement, creates without
//! clobbering (a second create fails with [`StoreError::Exists`]), loads,
//! lists names sorted and removes, and its errors say which kind of object
//! and which name they are about.
//!
//! It owns only the files its callers point it at. It does not validate
//! names (callers do, with [`crate::names::validate`], before a name
//! becomes a path), does not lock (per-object locks are the callers'), and
//! knows nothing of what the objects mean.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a stored object is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Mirror,
    MirrorState,
    Repo,
    RepoState,
    Guard,
    Dist,
    /// A published version's record (`dists/DIST/VERSION.json`).
    Version,
    /// The tests recorded for a published version.
    VersionTests,
    Snapshot,
    Release,
    /// A name looked up among snapshots, then releases.
    SnapshotOrRelease,
    /// The journal of one run of a train (`trains/NAME/RUN.json`).
    TrainRun,
    /// A CI build's manifest (`builds/P/R/SHA1/D/V/FLAVOR/build.json`).
    Build,
}

impl ObjectKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Mirror => "mirror",
            Self::MirrorState => "mirror state",
            Self::Repo => "repo",
            Self::RepoState => "repo state",
            Self::Guard => "guard",
            Self::Dist => "distribution",
            Self::Version => "version record",
            Self::VersionTests => "test record",
            Self::Snapshot => "snapshot",
            Self::Release => "release",
            Self::SnapshotOrRelease => "snapshot or release",
            Self::TrainRun => "train run",
            Self::Build => "build",
        }
    }

    /// What to do about a missing object, where there is a usual answer.
    fn not_found_hint(self) -> &'static str {
        match self {
            Self::Dist => " (publish to it first)",
            Self::Mirror
            | Self::MirrorState
            | Self::Repo
            | Self::RepoState
            | Self::Guard
            | Self::Version
            | Self::VersionTests
            | Self::Snapshot
            | Self::Release
            | Self::SnapshotOrRelease
            | Self::Build => "",
            Self::TrainRun => " (`depot train list FILE` lists the runs)",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The format of a store's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (`serde_norway`), for definitions edited by hand.
    Yaml,
    /// Pretty-printed JSON, for manifests and states.
    Json,
}

/// Why bytes could not be read as (or made from) an object.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Yaml(#[from] serde_norway::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no {kind} named `{name}`{}", kind.not_found_hint())]
    NotFound { kind: ObjectKind, name: String },
    #[error("{kind} `{name}` already exists")]
    Exists { kind: ObjectKind, name: String },
    #[error("{kind} `{name}`: {} is corrupt", path.display())]
    Corrupt {
        kind: ObjectKind,
        name: String,
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error("{kind} `{name}`: cannot encode it")]
    Encode {
        kind: ObjectKind,
        name: String,
        #[source]
        source: FormatError,
    },
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// How the binary reports it. A missing or existing object is a failed
    /// operation (exit 1), as each kind's own errors were before this store.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::NotFound { .. }
            | Self::Exists { .. }
            | Self::Corrupt { .. }
            | Self::Encode { .. }
            | Self::Io { .. } => crate::ErrorKind::Failure,
        }
    }

    /// Whether this says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Where each object's file is inside the store's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `DIR/NAME<suffix>`.
    File(&'static str),
    /// `DIR/NAME/<file>`: the object is a folder.
    Dir(&'static str),
}

/// One object of [`Store::load_listed`]: its name and what loading it gave.
pub type Listed<T> = (String, Result<T, StoreError>);

/// A directory of named objects of type `T`.
#[derive(Debug, Clone)]
pub struct Store<T> {
    kind: ObjectKind,
    dir: PathBuf,
    layout: Layout,
    format: Format,
    header: Option<&'static str>,
    _objects: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Store<T> {
    /// Objects stored as `dir/NAME<suffix>` (`suffix` such as `.yaml`,
    /// `.state.json`).
    pub fn files(kind: ObjectKind, dir: PathBuf, suffix: &'static str, format: Format) -> Self {
        Self {
            kind,
            dir,
            layout: Layout::File(suffix),
            format,
            header: None,
            _objects: PhantomData,
        }
    }

    /// Objects that are folders, stored as `dir/NAME/file`.
    pub fn folders(kind: ObjectKind, dir: PathBuf, file: &'static str, format: Format) -> Self {
        Self {
            kind,
            dir,
            layout: Layout::Dir(file),
            format,
            header: None,
            _objects: PhantomData,
        }
    }

    /// A comment written above every saved object (YAML: `# …` lines).
    pub fn with_header(mut self, header: &'static str) -> Self {
        self.header = Some(header);
        self
    }

    pub fn object_kind(&self) -> ObjectKind {
        self.kind
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the object `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        match self.layout {
            Layout::File(suffix) => self.dir.join(format!("{name}{suffix}")),
            Layout::Dir(file) => self.dir.join(name).join(file),
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// The object `name`; [`StoreError::NotFound`] if there is none.
    pub fn load(&self, name: &str) -> Result<T, StoreError> {
        self.load_opt(name)?.ok_or_else(|| self.not_found(name))
    }

    /// The object `name`, or `None` if there is none.
    pub fn load_opt(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let decoded = match self.format {
            Format::Yaml => serde_norway::from_slice(&bytes).map_err(FormatError::from),
            Format::Json => serde_json::from_slice(&bytes).map_err(FormatError::from),
        };
        decoded.map(Some).map_err(|source| StoreError::Corrupt {
            kind: self.kind,
            name: name.to_owned(),
            path,
            source,
        })
    }

    /// Every stored object, by name, sorted, as a listing taken a moment
    /// later would show them: one dropped by another process between the
    /// listing and its load is left out rather than reported missing.
    pub fn load_listed(&self) -> Result<Vec<Listed<T>>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|name| match self.load_opt(&name) {
                Ok(None) => None,
                loaded => Some((name, loaded.map(|o| o.expect("None was filtered")))),
            })
            .collect())
    }

    /// Saves `value` as `name`, replacing any previous version atomically.
    pub fn save(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let path = self.path(name);
        let bytes = self.encode(name, value)?;
        crate::fsutil::write_atomic(&path, &bytes).map_err(|source| StoreError::Io { path, source })
    }

    /// Saves `value` as `name` unless an object of that name exists
    /// ([`StoreError::Exists`]); of two racing creators, one wins.
    pub fn create(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.create_synced(name, value, true)
    }

    /// [`Self::create`] without waiting for the disk: for an object its
    /// owner saves again at once (a train's journal), which then makes it
    /// durable. A power loss before that may leave the file empty, so its
    /// readers must accept an empty file.
    pub fn claim(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.create_synced(name, value, false)
    }

    fn create_synced(&self, name: &str, value: &T, sync: bool) -> Result<(), StoreError> {
        let path = self.path(name);
        let bytes = self.encode(name, value)?;
        match crate::fsutil::write_new_atomic(&path, &bytes, sync) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Exists {
                kind: self.kind,
                name: name.to_owned(),
            }),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// The names of the stored objects, sorted. A store whose directory
    /// does not exist yet is empty.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let io_err = |source| StoreError::Io {
            path: self.dir.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err)?;
            let file = entry.file_name();
            // Not UTF-8: not a name depot gave.
            let Some(file) = file.to_str() else { continue };
            let name = match self.layout {
                Layout::File(suffix) => file.strip_suffix(suffix),
                Layout::Dir(_) => entry.file_type().map_err(io_err)?.is_dir().then_some(file),
            };
            // Dot files are temp files of atomic writes in flight.
            if let Some(name) = name.filter(|n| !n.is_empty() && !n.starts_with('.')) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes the object `name`; [`StoreError::NotFound`] if there is
    /// none. For a folder object, only its file goes (the folder may hold
    /// other stores' objects).
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        if self.remove_if_present(name)? {
            Ok(())
        } else {
            Err(self.not_found(name))
        }
    }

    /// Removes the object `name` if there is one; whether there was.
    pub fn remove_if_present(&self, name: &str) -> Result<bool, StoreError> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// The error for a missing `name`.
    pub fn not_found(&self, name: &str) -> StoreError {
        StoreError::NotFound {
            kind: self.kind,
            name: name.to_owned(),
        }
    }

    fn encode(&self, name: &str, value: &T) -> Result<Vec<u8>, StoreError> {
        let encode_err = |source| StoreError::Encode {
            kind: self.kind,
            name: name.to_owned(),
            source,
        };
        let mut bytes = self.header.unwrap_or_default().as_bytes().to_vec();
        match self.format {
            Format::Yaml => bytes.extend(
                serde_norway::to_string(value)
                    .map_err(|e| encode_err(e.into()))?
                    .into_bytes(),
            ),
            Format::Json => {
                bytes.extend(serde_json::to_vec_pretty(value).map_err(|e| encode_err(e.into()))?)
            }
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Thing {
        name: String,
        size: u32,
    }

    fn thing(name: &str) -> Thing {
        Thing {
            name: name.to_owned(),
            size: 7,
        }
    }

    fn stores(dir: &Path) -> [Store<Thing>; 2] {
        [
            Store::files(ObjectKind::Mirror, dir.join("m"), ".yaml", Format::Yaml)
                .with_header("# a header\n"),
            Store::files(ObjectKind::Snapshot, dir.join("s"), ".json", Format::Json),
        ]
    }

    #[test]
    fn create_twice_fails_with_exists_naming_kind_and_name() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(dir.path()) {
            store.create("a", &thing("a")).unwrap();
            let err = store.create("a", &thing("other")).unwrap_err();
            assert!(
                matches!(&err, StoreError::Exists { kind, name } if *kind == store.object_kind() && name == "a"),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("{} `a` already exists", store.object_kind())
            );
            assert_eq!(err.kind(), crate::ErrorKind::Failure);
            // The first one is untouched.
            assert_eq!(store.load("a").unwrap(), thing("a"));
        }
    }

    #[test]
    fn load_of_a_missing_object_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let [mirrors, snapshots] = stores(dir.path());
        let err = mirrors.load("nope").unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(err.to_string(), "no mirror named `nope`");
        assert_eq!(snapshots.load_opt("nope").unwrap(), None);
        let dists: Store<Thing> = Store::folders(
            ObjectKind::Dist,
            dir.path().join("d"),
            "d.json",
            Format::Json,
        );
        assert_eq!(
            dists.load("x").unwrap_err().to_string(),
            "no distribution named `x` (publish to it first)"
        );
    }

    #[test]
    fn a_corrupt_file_is_corrupt_with_its_path_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(dir.path()) {
            let path = store.path("bad");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "name: [unclosed\n").unwrap();
            let err = store.load("bad").unwrap_err();
            let StoreError::Corrupt {
                kind,
                name,
                path: at,
                ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!(
                (*kind, name.as_str(), at),
                (store.object_kind(), "bad", &path)
            );
            assert!(err.to_string().contains(&path.display().to_string()));
            assert!(std::error::Error::source(&err).is_some());
        }
    }

    #[test]
    fn save_replaces_and_keeps_the_header_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let [mirrors, snapshots] = stores(dir.path());
        mirrors.save("a", &thing("a")).unwrap();
        mirrors
            .save(
                "a",
                &Thing {
                    size: 8,
                    ..thing("a")
                },
            )
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("m/a.yaml")).unwrap();
        assert_eq!(text, "# a header\nname: a\nsize: 8\n");
        snapshots.save("b", &thing("b")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("s/b.json")).unwrap();
        assert_eq!(text, "{\n  \"name\": \"b\",\n  \"size\": 7\n}");
    }

    #[test]
    fn list_is_sorted_and_skips_other_files_and_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let [mirrors, _] = stores(dir.path());
        assert!(mirrors.list().unwrap().is_empty(), "no directory yet");
        for n in ["b", "c", "a"] {
            mirrors.save(n, &thing(n)).unwrap();
        }
        std::fs::write(dir.path().join("m/a.state.json"), "{}").unwrap();
        std::fs::write(dir.path().join("m/.tmp-x.yaml"), "").unwrap();
        assert_eq!(mirrors.list().unwrap(), ["a", "b", "c"]);

        let dists: Store<Thing> = Store::folders(
            ObjectKind::Dist,
            dir.path().join("d"),
            "d.json",
            Format::Json,
        );
        dists.save("y", &thing("y")).unwrap();
        dists.save("x", &thing("x")).unwrap();
        std::fs::write(dir.path().join("d/stray"), "").unwrap();
        assert_eq!(dists.list().unwrap(), ["x", "y"]);
    }

    #[test]
    fn remove_drops_the_object_and_a_missing_one_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let [_, snapshots] = stores(dir.path());
        snapshots.create("a", &thing("a")).unwrap();
        snapshots.remove("a").unwrap();
        assert!(!snapshots.exists("a"));
        assert!(snapshots.list().unwrap().is_empty());
        assert!(snapshots.remove("a").unwrap_err().is_not_found());
        assert!(!snapshots.remove_if_present("a").unwrap());
        // Dropped names can be created again.
        snapshots.create("a", &thing("a")).unwrap();
    }
}
