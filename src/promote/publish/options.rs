//! What a publish is told ([`PublishOptions`]), what it reports
//! ([`PublishSummary`]) and how it fails ([`PublishError`]): shared by the
//! orchestration and both formats' writers.
//!
//! Types only; no I/O.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::Serialize;

use crate::digest::Sha256Digest;
use crate::formats::apt::AptFormatError;
use crate::formats::compress::Compression;
use crate::http::FetchError;
use crate::lock::LockError;
use crate::names::InvalidName;
use crate::pool::PoolError;
use crate::signing::SigningError;
use crate::snapshot::SnapshotError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("invalid suite `{0}`")]
    InvalidSuite(String),
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("distribution `{dist}`: cannot read an index of the snapshot")]
    Index {
        dist: String,
        #[source]
        source: crate::packages::catalog::CatalogError,
    },
    #[error("distribution `{dist}`: cannot read from the pool")]
    Pool {
        dist: String,
        #[source]
        source: PoolError,
    },
    #[error("distribution `{dist}`: a package file is missing and could not be fetched")]
    Fetch {
        dist: String,
        #[source]
        source: Box<FetchError>,
    },
    #[error("distribution `{dist}`: an index of the snapshot is malformed")]
    Malformed {
        dist: String,
        #[source]
        source: AptFormatError,
    },
    #[error("distribution `{dist}`: the snapshot's rpm metadata is malformed")]
    MalformedRpm {
        dist: String,
        #[source]
        source: crate::formats::rpm::RpmFormatError,
    },
    #[error("distribution `{dist}`: {path} would hold two different files")]
    Conflict { dist: String, path: String },
    /// The distribution's generation holds another file at `path`: the
    /// version needs a generation of its own (handled by publish).
    #[error("distribution `{dist}`: {path} in {generation} is another file")]
    NewGeneration {
        dist: String,
        generation: String,
        path: String,
    },
    #[error("distribution `{dist}`: cannot record the new version")]
    Record {
        dist: String,
        #[source]
        source: Box<crate::promote::dist::DistError>,
    },
    #[error(
        "distribution `{dist}` already has a version `{version}`{}",
        if from.is_empty() { String::new() } else { format!(" (published from `{from}`)") }
    )]
    VersionExists {
        dist: String,
        version: String,
        /// What the existing version was published from, if recorded.
        from: String,
    },
    #[error("distribution `{dist}`: signing failed")]
    Signing {
        dist: String,
        #[source]
        source: SigningError,
    },
}

impl PublishError {
    /// How this failure is reported (exit code); see [`crate::error`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind::*;
        match self {
            Self::InvalidName(_) | Self::InvalidSuite(_) => Usage,
            Self::Lock(l) => l.kind(),
            Self::Snapshot(s) => s.kind(),
            Self::Io { .. }
            | Self::Index { .. }
            | Self::Pool { .. }
            | Self::Fetch { .. }
            | Self::Malformed { .. }
            | Self::MalformedRpm { .. }
            | Self::Conflict { .. }
            | Self::NewGeneration { .. }
            | Self::Record { .. }
            | Self::Signing { .. }
            | Self::VersionExists { .. } => Failure,
        }
    }
}

/// Options of `depot publish`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub snapshot: String,
    pub dist: String,
    /// `Suite`/`Codename` of the published Release; default: upstream's.
    pub suite: Option<String>,
    /// Compressed copies of each index (apt: beside the uncompressed one;
    /// rpm: the first is used). Empty means the format's default: apt
    /// `gz,xz`, rpm `gz`.
    pub compress: Vec<Compression>,
    /// The publish root; default `public/` in the data root.
    pub to: Option<PathBuf>,
    /// The version to make (a name); default: the UTC time of the publish
    /// (the next free second). A given version that exists is refused with
    /// [`PublishError::VersionExists`] unless `adopt` says otherwise.
    pub version: Option<String>,
    /// With `version`: a version of that name left by an earlier,
    /// interrupted publish of the same snapshot is completed or taken as
    /// it is rather than refused (a train resuming its night).
    pub adopt: bool,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishSummary {
    pub dist: String,
    pub version: String,
    pub path: PathBuf,
    /// apt only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub packages: usize,
    pub signed: bool,
    /// Package files fetched now because the mirror defers downloads.
    pub fetched_on_demand: usize,
    /// SHA-256 of the top-level metadata (Release, repomd.xml).
    pub release_sha256: Sha256Digest,
    /// The version existed already (an interrupted publish of the same
    /// snapshot, with [`PublishOptions::adopt`]) and was taken as it was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
}
