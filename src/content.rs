//! What one state of a repository holds, as a few pool references.
//!
//! A mirror's last update, a snapshot and (later) a release all describe
//! their packages the same way: a list of index blobs — verbatim,
//! uncompressed `Packages`/`Sources` texts (apt) or repodata XML files
//! (rpm) whose entries name each package file by SHA-256 — plus the
//! metadata needed to publish them. The package files themselves are pool
//! blobs named by those SHA-256 fields, so a snapshot is a small manifest
//! however many packages it has.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Apt,
    Rpm,
}

impl std::fmt::Display for RepoKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Apt => "apt",
            Self::Rpm => "rpm",
        })
    }
}

/// The kind of an apt index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// `COMP/binary-ARCH/Packages`
    Binary,
    /// `COMP/debian-installer/binary-ARCH/Packages`
    Udeb,
    /// `COMP/source/Sources`
    Source,
}

/// One uncompressed index, stored in the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRef {
    pub component: String,
    pub kind: IndexKind,
    /// The architecture of a binary or udeb index; `None` for sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub blob: Sha256Digest,
    /// Number of stanzas in the index.
    pub entries: usize,
}

impl IndexRef {
    /// The index's path below `dists/SUITE/`, without compression suffix.
    pub fn dist_path(&self) -> String {
        let arch = self.arch.as_deref().unwrap_or("all");
        match self.kind {
            IndexKind::Binary => format!("{}/binary-{arch}/Packages", self.component),
            IndexKind::Udeb => {
                format!("{}/debian-installer/binary-{arch}/Packages", self.component)
            }
            IndexKind::Source => format!("{}/source/Sources", self.component),
        }
    }
}

/// The packages of one apt repository state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AptContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The upstream suite (or the flat directory) the content came from.
    pub suite: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
    /// The URL that `Filename`/`Directory` fields are relative to, for
    /// fetching on demand what the pool does not hold yet.
    pub files_url: String,
    pub indices: Vec<IndexRef>,
}

impl AptContent {
    pub fn components(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for i in &self.indices {
            if !out.contains(&i.component) {
                out.push(i.component.clone());
            }
        }
        out
    }

    pub fn architectures(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for i in &self.indices {
            if let Some(a) = &i.arch
                && !out.contains(a)
            {
                out.push(a.clone());
            }
        }
        out
    }

    /// Total number of stanzas across binary and udeb indices.
    pub fn package_count(&self) -> usize {
        self.indices
            .iter()
            .filter(|i| i.kind != IndexKind::Source)
            .map(|i| i.entries)
            .sum()
    }
}

/// One uncompressed repodata file (`primary`, `filelists`, `other`,
/// `updateinfo`, `group`, `modules`, …), stored in the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpmMetadataRef {
    /// The repomd `type` (`primary`, `group`, …).
    pub mdtype: String,
    /// The file extension before compression (`xml`, or `yaml` for modules).
    pub ext: String,
    pub blob: Sha256Digest,
}

/// The packages of one rpm repository state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpmContent {
    /// The URL that `<location href>` values are relative to (unless a
    /// package names its own `xml:base`).
    pub files_url: String,
    pub metadata: Vec<RpmMetadataRef>,
    pub packages: usize,
}

impl RpmContent {
    pub fn get(&self, mdtype: &str) -> Option<&RpmMetadataRef> {
        self.metadata.iter().find(|m| m.mdtype == mdtype)
    }
}

/// The packages of a repository state, apt or rpm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum Content {
    Apt(AptContent),
    Rpm(RpmContent),
}

impl Content {
    pub fn kind(&self) -> RepoKind {
        match self {
            Self::Apt(_) => RepoKind::Apt,
            Self::Rpm(_) => RepoKind::Rpm,
        }
    }

    pub fn package_count(&self) -> usize {
        match self {
            Self::Apt(a) => a.package_count(),
            Self::Rpm(r) => r.packages,
        }
    }

    pub fn components(&self) -> Vec<String> {
        match self {
            Self::Apt(a) => a.components(),
            Self::Rpm(_) => Vec::new(),
        }
    }

    pub fn architectures(&self) -> Vec<String> {
        match self {
            Self::Apt(a) => a.architectures(),
            Self::Rpm(_) => Vec::new(),
        }
    }
}
