//! What one state of a repository holds, as a few pool references.
//!
//! A mirror's last update, a snapshot and (later) a release all describe
//! their packages the same way: a list of index blobs — verbatim,
//! uncompressed `Packages`/`Sources` texts (apt) or repodata XML files
//! (rpm) whose entries name each package file by SHA-256 — plus the
//! metadata needed to publish them. The package files themselves are pool
//! blobs named by those SHA-256 fields, so a snapshot is a small manifest
//! however many packages it has.
//!
//! It owns the types of repository content (what mirror states, snapshots and
//! releases reference: index blobs, selections, rpm metadata) and reading
//! index text from the pool; it never writes the pool and knows nothing of
//! where content is stored or how it is queried (`packages/`).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::pool::{Pool, PoolError};

/// Appends a run of stanzas, separated from what precedes by a blank line.
fn push_run(out: &mut String, run: &str) {
    let run = run.trim_start_matches('\n');
    if run.trim().is_empty() {
        return;
    }
    if !out.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(run);
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Apt,
    Rpm,
}

impl crate::choice::Choice for RepoKind {
    const WHAT: &'static str = "kind";
    const CHOICES: &'static [(Self, &'static str, &'static str)] = &[
        (Self::Apt, "apt", "Debian/Ubuntu repositories (apt)"),
        (Self::Rpm, "rpm", "RPM repositories (dnf, yum)"),
    ];
}
crate::choice_words!(RepoKind);

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

/// One uncompressed index: the stanzas of one or more index blobs.
///
/// A mirrored index is one whole blob. A filtered snapshot or a release
/// does not copy stanzas into new blobs: each of its indices names the
/// blobs its stanzas come from and, per blob, which byte ranges it keeps
/// (a [`Selection`]). Making one therefore writes a few kilobytes however
/// large the indices, and the text is put together when it is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "IndexRefOnDisk")]
pub struct IndexRef {
    pub component: String,
    pub kind: IndexKind,
    /// The architecture of a binary or udeb index; `None` for sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub parts: Vec<IndexPart>,
    /// Number of stanzas in the index.
    pub entries: usize,
}

/// An [`IndexRef`] as manifests store it; those written before indices
/// had parts name one whole blob.
#[derive(Deserialize)]
struct IndexRefOnDisk {
    component: String,
    kind: IndexKind,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    parts: Vec<IndexPart>,
    #[serde(default)]
    blob: Option<Sha256Digest>,
    entries: usize,
}

impl From<IndexRefOnDisk> for IndexRef {
    fn from(d: IndexRefOnDisk) -> Self {
        let mut parts = d.parts;
        parts.extend(d.blob.map(IndexPart::whole));
        Self {
            component: d.component,
            kind: d.kind,
            arch: d.arch,
            parts,
            entries: d.entries,
        }
    }
}

/// Stanzas of one index blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPart {
    pub blob: Sha256Digest,
    /// A pool blob holding the [`Selection`] of `blob` kept; the whole
    /// blob when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Sha256Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("selection blob {0} is damaged")]
    Selection(Sha256Digest),
    #[error("index blob {0} is not UTF-8")]
    Utf8(Sha256Digest),
    #[error("rpm metadata blob {0} has no root element")]
    NoRoot(Sha256Digest),
}

/// Byte ranges of an index blob, each a run of whole stanzas (from the
/// first byte of one to the last newline of another), increasing and not
/// overlapping. Stored as a pool blob of little-endian `u32` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection(pub Vec<Range<u32>>);

impl Selection {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 8);
        for r in &self.0 {
            out.extend_from_slice(&r.start.to_le_bytes());
            out.extend_from_slice(&r.end.to_le_bytes());
        }
        out
    }

    /// `None` unless the runs are well-formed and within `len` bytes.
    pub fn decode(bytes: &[u8], len: usize) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut runs = Vec::with_capacity(bytes.len() / 8);
        let mut last_end = 0;
        for c in bytes.chunks_exact(8) {
            let start = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let end = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            if start < last_end || end < start || end as usize > len {
                return None;
            }
            last_end = end;
            runs.push(start..end);
        }
        Some(Self(runs))
    }

    pub fn load(pool: &Pool, digest: &Sha256Digest, len: usize) -> Result<Self, IndexError> {
        Self::decode(&pool.read(digest)?, len).ok_or(IndexError::Selection(*digest))
    }
}

impl IndexPart {
    pub fn whole(blob: Sha256Digest) -> Self {
        Self { blob, select: None }
    }
}

/// The text of a whole index blob.
pub fn index_text(pool: &Pool, blob: &Sha256Digest) -> Result<String, IndexError> {
    String::from_utf8(pool.read(blob)?).map_err(|_| IndexError::Utf8(*blob))
}

impl IndexRef {
    /// The index's text: each part's kept stanzas, a blank line between
    /// runs.
    pub fn text(&self, pool: &Pool) -> Result<String, IndexError> {
        let mut out = String::new();
        for part in &self.parts {
            let text = index_text(pool, &part.blob)?;
            let Some(select) = &part.select else {
                if self.parts.len() == 1 {
                    return Ok(text);
                }
                push_run(&mut out, &text);
                continue;
            };
            let selection = Selection::load(pool, select, text.len())?;
            for run in &selection.0 {
                let run = text
                    .get(run.start as usize..run.end as usize)
                    .ok_or(IndexError::Selection(*select))?;
                push_run(&mut out, run);
            }
        }
        Ok(out)
    }

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
///
/// A mirrored file is one whole blob, published byte for byte. A filtered
/// snapshot or a release keeps, as apt indices do, the blobs its
/// `<package>` elements come from and a [`Selection`] of each (for
/// `primary`, `filelists` and `other`, part `i` of each is the same
/// repository state's); the document is put together when it is
/// published ([`Self::text`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RpmMetadataOnDisk", into = "RpmMetadataOnDisk")]
pub struct RpmMetadataRef {
    /// The repomd `type` (`primary`, `group`, …).
    pub mdtype: String,
    /// The file extension before compression (`xml`, or `yaml` for modules).
    pub ext: String,
    pub parts: Vec<IndexPart>,
}

/// An [`RpmMetadataRef`] as manifests store it: a whole blob as `blob`
/// (as every manifest did before selections), anything else as `parts`.
#[derive(Serialize, Deserialize)]
struct RpmMetadataOnDisk {
    mdtype: String,
    ext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<Sha256Digest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<IndexPart>,
}

impl From<RpmMetadataOnDisk> for RpmMetadataRef {
    fn from(d: RpmMetadataOnDisk) -> Self {
        let mut parts = d.parts;
        parts.extend(d.blob.map(IndexPart::whole));
        Self {
            mdtype: d.mdtype,
            ext: d.ext,
            parts,
        }
    }
}

impl From<RpmMetadataRef> for RpmMetadataOnDisk {
    fn from(m: RpmMetadataRef) -> Self {
        let blob = m.blob();
        Self {
            mdtype: m.mdtype,
            ext: m.ext,
            blob,
            parts: if blob.is_some() { Vec::new() } else { m.parts },
        }
    }
}

impl RpmMetadataRef {
    /// A file that is the whole of one blob.
    pub fn whole(mdtype: &str, ext: &str, blob: Sha256Digest) -> Self {
        Self {
            mdtype: mdtype.to_owned(),
            ext: ext.to_owned(),
            parts: vec![IndexPart::whole(blob)],
        }
    }

    /// The blob the file is, when it is one whole blob.
    pub fn blob(&self) -> Option<Sha256Digest> {
        match self.parts.as_slice() {
            [IndexPart { blob, select: None }] => Some(*blob),
            _ => None,
        }
    }

    /// The document: the blob itself when the file is one whole blob;
    /// else the XML declaration, the first part's root element with its
    /// `packages` count set to `packages`, the kept `<package>` elements
    /// of every part in order, and the closing tag.
    ///
    /// Each part's blob is mapped, not read (a real `filelists` is ~80
    /// MB), and its pages are let go as they are copied, so the document
    /// is about all this holds.
    pub fn text(&self, pool: &Pool, packages: usize) -> Result<String, IndexError> {
        if let Some(blob) = self.blob() {
            return index_text(pool, &blob);
        }
        let mut root: Option<crate::formats::rpm::Frame> = None;
        let mut pieces = Vec::new();
        for part in &self.parts {
            let map = pool.map(&part.blob)?;
            let frame = crate::formats::rpm::frame(&map).ok_or(IndexError::NoRoot(part.blob))?;
            let runs: Vec<Range<usize>> = match &part.select {
                None => vec![frame.body.clone()],
                Some(select) => Selection::load(pool, select, map.len())?
                    .0
                    .into_iter()
                    .map(|r| r.start as usize..r.end as usize)
                    .collect(),
            };
            // Whole elements, trimmed of the whitespace around them. Only
            // the kept bytes are read (and checked to be UTF-8 once
            // copied): the rest of a mapped blob's pages stay untouched.
            let mut kept = Vec::with_capacity(runs.len());
            for run in runs {
                let t = map
                    .get(run.clone())
                    .ok_or(IndexError::Selection(part.select.unwrap_or(part.blob)))?;
                let lead = t.iter().take_while(|b| b.is_ascii_whitespace()).count();
                let trail = t[lead..]
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
                if lead + trail < t.len() {
                    kept.push(run.start + lead..run.end - trail);
                }
            }
            root.get_or_insert(frame);
            pieces.push((map, kept));
        }
        let root = root.unwrap_or(crate::formats::rpm::Frame {
            root_tag: String::new(),
            root_name: String::new(),
            body: 0..0,
        });
        let head = crate::formats::rpm::head(&root.root_tag, packages);
        let tail = crate::formats::rpm::tail(&root.root_name);
        let body: usize = pieces
            .iter()
            .flat_map(|(_, runs)| runs.iter().map(|r| r.len() + 1))
            .sum();
        let mut out = Vec::with_capacity(head.len() + body + tail.len());
        out.extend_from_slice(head.as_bytes());
        const CHUNK: usize = 8 << 20;
        for (map, runs) in pieces {
            let mut released = 0;
            for run in runs {
                let mut at = run.start;
                while at < run.end {
                    let end = (at + CHUNK).min(run.end);
                    out.extend_from_slice(&map[at..end]);
                    at = end;
                    // Pages before `at` are done with (runs increase).
                    let upto = at / PAGE * PAGE;
                    if upto >= released + CHUNK {
                        // SAFETY: a read-only shared mapping of a pool blob,
                        // which does not change (`Pool::map`): a page let go
                        // reads back the same bytes if touched again.
                        let _ = unsafe {
                            map.unchecked_advise_range(
                                memmap2::UncheckedAdvice::DontNeed,
                                released,
                                upto - released,
                            )
                        };
                        released = upto;
                    }
                }
                out.push(b'\n');
            }
        }
        out.extend_from_slice(tail.as_bytes());
        String::from_utf8(out).map_err(|_| IndexError::Utf8(self.parts[0].blob))
    }
}

/// The page size that advice ranges are aligned to.
const PAGE: usize = 4096;

/// The `filelists.xml` and `other.xml` blobs of the rpm repository state
/// a `primary.xml` blob belongs to, when it has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpmCompanions {
    pub filelists: Option<Sha256Digest>,
    pub other: Option<Sha256Digest>,
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

    /// Part `i` of `mdtype`: of the same repository state as part `i` of
    /// `primary`.
    pub fn part(&self, mdtype: &str, i: usize) -> Option<&IndexPart> {
        self.get(mdtype).and_then(|m| m.parts.get(i))
    }

    /// The `filelists` and `other` blobs of part `i` of `primary`'s state.
    pub fn companions(&self, i: usize) -> RpmCompanions {
        RpmCompanions {
            filelists: self.part("filelists", i).map(|p| p.blob),
            other: self.part("other", i).map(|p| p.blob),
        }
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
    /// The apt suite; rpm content has none.
    pub fn suite(&self) -> Option<&str> {
        match self {
            Self::Apt(a) => Some(&a.suite),
            Self::Rpm(_) => None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_round_trip_and_malformed_ones_are_refused() {
        let s = Selection(vec![0..10, 12..40, 40..41]);
        assert_eq!(Selection::decode(&s.encode(), 41), Some(s.clone()));
        // Beyond the blob, overlapping, backwards, or not whole pairs.
        assert_eq!(Selection::decode(&s.encode(), 40), None);
        let backwards = Range { start: 10, end: 5 };
        for bad in [vec![5..10, 8..12], vec![0..1, backwards]] {
            assert_eq!(Selection::decode(&Selection(bad).encode(), 100), None);
        }
        assert_eq!(Selection::decode(&s.encode()[..7], 100), None);
    }

    #[test]
    fn manifests_from_before_parts_name_one_whole_blob() {
        let blob = Sha256Digest::of(b"x");
        let old = format!(
            r#"{{"component":"main","kind":"binary","arch":"amd64","blob":"{blob}","entries":3}}"#
        );
        let index: IndexRef = serde_json::from_str(&old).unwrap();
        assert_eq!(index.parts, [IndexPart::whole(blob)]);
        let again: IndexRef = serde_json::from_slice(&serde_json::to_vec(&index).unwrap()).unwrap();
        assert_eq!(again, index);
    }

    #[test]
    fn rpm_files_of_one_whole_blob_are_stored_as_before_parts() {
        let blob = Sha256Digest::of(b"x");
        let old = format!(r#"{{"mdtype":"primary","ext":"xml","blob":"{blob}"}}"#);
        let file: RpmMetadataRef = serde_json::from_str(&old).unwrap();
        assert_eq!(file, RpmMetadataRef::whole("primary", "xml", blob));
        assert_eq!(file.blob(), Some(blob));
        assert_eq!(serde_json::to_string(&file).unwrap(), old);
        let kept = RpmMetadataRef {
            parts: vec![IndexPart {
                blob,
                select: Some(Sha256Digest::of(b"s")),
            }],
            ..file
        };
        assert_eq!(kept.blob(), None);
        let json = serde_json::to_string(&kept).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v.get("blob").is_none() && v["parts"].is_array(), "{json}");
        assert_eq!(serde_json::from_str::<RpmMetadataRef>(&json).unwrap(), kept);
    }

    #[test]
    fn runs_are_joined_by_one_blank_line() {
        let mut out = String::new();
        for run in ["A: 1\n", "\nB: 2\n\nC: 3\n", "", "D: 4"] {
            push_run(&mut out, run);
        }
        assert_eq!(out, "A: 1\n\nB: 2\n\nC: 3\n\nD: 4\n");
    }
}
