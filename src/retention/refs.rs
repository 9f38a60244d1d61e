//! What references what: the blobs one repository state names.
//!
//! A [`Content`] (a mirror's or repo's state, a snapshot, a release) names
//! index blobs (apt `Packages`/`Sources` texts, rpm repodata files), the
//! selection blobs that keep byte ranges of an index, and — through the
//! `SHA256` fields of the stanzas kept, the `Checksums-Sha256` files of the
//! source stanzas kept, or primary.xml's checksums — the package blobs.
//! [`Walker`] walks them, reading each distinct (index, selection) pair
//! once however many states share it, so a walk over every manifest costs
//! (and holds) what the distinct indices do, not manifests × packages.
//! A `Packages` part is read from its cached catalog when there is a
//! sound one (the package digests without parsing 60k stanzas, which was
//! most of gc's and check's time), else from the index text; the catalog
//! is trusted as the index blob it was built from is (see
//! [`crate::packages::catalog`]), and a stanza it could not place sends
//! the walk back to the text, which says what is wrong with it.

use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::content::{AptContent, Content, IndexKind, IndexPart, RpmContent, Selection};
use crate::digest::Sha256Digest;
use crate::formats::apt as aptfmt;
use crate::packages::catalog::Cache;
use crate::pool::{Pool, PoolError};

/// The role of a referenced blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An apt index text or an rpm repodata file.
    Index,
    /// A [`Selection`] of an index.
    Selection,
    /// A package file.
    Package,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Self::Index => "index",
            Self::Selection => "selection",
            Self::Package => "package",
        }
    }
}

/// Why the packages an index names could not be known.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("{} blob {digest} is missing from the pool", role.label())]
    Missing { role: Role, digest: Sha256Digest },
    #[error("cannot read {} blob {digest}", role.label())]
    Read {
        role: Role,
        digest: Sha256Digest,
        #[source]
        source: PoolError,
    },
    #[error("{} blob {digest} is damaged: {why}", role.label())]
    Damaged {
        role: Role,
        digest: Sha256Digest,
        why: String,
    },
}

impl RefError {
    pub fn digest(&self) -> Sha256Digest {
        match self {
            Self::Missing { digest, .. }
            | Self::Read { digest, .. }
            | Self::Damaged { digest, .. } => *digest,
        }
    }
}

/// An index part: its blob and selection (rpm: a part of `primary`).
pub type Part = (Sha256Digest, Option<Sha256Digest>);

/// The parts whose packages a walk of `content` covers.
pub fn parts(content: &Content) -> Vec<Part> {
    match content {
        Content::Apt(a) => a
            .indices
            .iter()
            .flat_map(|i| i.parts.iter().map(|p| (p.blob, p.select)))
            .collect(),
        Content::Rpm(r) => r
            .get("primary")
            .into_iter()
            .flat_map(|p| p.parts.iter().map(|p| (p.blob, p.select)))
            .collect(),
    }
}

/// Walks the blobs of repository states, each distinct index part's
/// packages once.
pub struct Walker<'a> {
    /// The catalogs, and through them the pool.
    catalogs: &'a Cache,
    /// (index blob, selection) pairs whose packages were walked (rpm:
    /// parts of `primary`).
    walked: FxHashSet<(Sha256Digest, Option<Sha256Digest>)>,
}

fn read(pool: &Pool, role: Role, digest: Sha256Digest) -> Result<Vec<u8>, RefError> {
    pool.read(&digest).map_err(|source| match source {
        PoolError::Missing { .. } => RefError::Missing { role, digest },
        source => RefError::Read {
            role,
            digest,
            source,
        },
    })
}

impl<'a> Walker<'a> {
    pub fn new(catalogs: &'a Cache) -> Self {
        Self {
            catalogs,
            walked: FxHashSet::default(),
        }
    }

    /// Calls `f` for every blob `content` names (with the part it belongs
    /// to): each index and selection, and the packages of each index part
    /// not walked before. Returns what
    /// could not be read (the packages of those parts are unknown).
    pub fn walk(
        &mut self,
        content: &Content,
        f: &mut dyn FnMut(Role, Sha256Digest, Part),
    ) -> Vec<RefError> {
        match content {
            Content::Apt(a) => self.walk_apt(a, f),
            Content::Rpm(r) => self.walk_rpm(r, f),
        }
    }

    fn walk_apt(
        &mut self,
        content: &AptContent,
        f: &mut dyn FnMut(Role, Sha256Digest, Part),
    ) -> Vec<RefError> {
        let mut errors = Vec::new();
        for index in &content.indices {
            for part in &index.parts {
                f(Role::Index, part.blob, (part.blob, part.select));
                if let Some(s) = part.select {
                    f(Role::Selection, s, (part.blob, part.select));
                }
                // A selection keeps a subset of the whole blob's stanzas.
                let key = (part.blob, part.select);
                if self.walked.contains(&(part.blob, None)) || !self.walked.insert(key) {
                    continue;
                }
                if let Err(e) = self.part_packages(index.kind, part, f) {
                    self.walked.remove(&key);
                    errors.push(e);
                }
            }
        }
        errors
    }

    fn part_packages(
        &self,
        kind: IndexKind,
        part: &IndexPart,
        f: &mut dyn FnMut(Role, Sha256Digest, Part),
    ) -> Result<(), RefError> {
        if matches!(kind, IndexKind::Binary | IndexKind::Udeb)
            && let Some(packages) = self.catalog_packages(kind, part)?
        {
            for d in packages {
                f(Role::Package, d, (part.blob, part.select));
            }
            return Ok(());
        }
        let bytes = read(self.catalogs.pool(), Role::Index, part.blob)?;
        let damaged = |why: String| RefError::Damaged {
            role: Role::Index,
            digest: part.blob,
            why,
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| damaged("not UTF-8".into()))?;
        let runs: Vec<&str> = match part.select {
            None => vec![text],
            Some(select) => {
                let sel_bytes = read(self.catalogs.pool(), Role::Selection, select)?;
                let bad_selection = || RefError::Damaged {
                    role: Role::Selection,
                    digest: select,
                    why: "not a selection of its index".into(),
                };
                let selection =
                    Selection::decode(&sel_bytes, text.len()).ok_or_else(bad_selection)?;
                selection
                    .0
                    .iter()
                    .map(|r| text.get(r.start as usize..r.end as usize))
                    .collect::<Option<_>>()
                    .ok_or_else(bad_selection)?
            }
        };
        for run in runs {
            match kind {
                IndexKind::Binary | IndexKind::Udeb => {
                    for s in aptfmt::binary_stanzas(run) {
                        let s = s.map_err(|e| damaged(e.to_string()))?;
                        f(Role::Package, s.expected.sha256, (part.blob, part.select));
                    }
                }
                IndexKind::Source => {
                    for s in aptfmt::source_stanzas(run) {
                        let s = s.map_err(|e| damaged(e.to_string()))?;
                        for (_, e) in &s.files {
                            f(Role::Package, e.sha256, (part.blob, part.select));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The package digests of a `Packages` part from its cached catalog;
    /// `None` when there is no sound catalog, the index blob is gone, or a
    /// stanza has no place (the text walk then tells what is wrong).
    fn catalog_packages(
        &self,
        kind: IndexKind,
        part: &IndexPart,
    ) -> Result<Option<Vec<Sha256Digest>>, RefError> {
        let Some(catalog) = self.catalogs.cached(part.blob, kind) else {
            return Ok(None);
        };
        let ordinals: Vec<u32> = match part.select {
            None => (0..catalog.len() as u32).collect(),
            Some(select) => {
                let Ok(index) = self.catalogs.pool().path(&part.blob).metadata() else {
                    return Ok(None);
                };
                let bytes = read(self.catalogs.pool(), Role::Selection, select)?;
                let selection =
                    Selection::decode(&bytes, index.len() as usize).ok_or(RefError::Damaged {
                        role: Role::Selection,
                        digest: select,
                        why: "not a selection of its index".into(),
                    })?;
                catalog.selected(&selection)
            }
        };
        Ok(ordinals
            .into_iter()
            .map(|i| catalog.location(i).map(|l| l.sha256()))
            .collect())
    }

    fn walk_rpm(
        &mut self,
        content: &RpmContent,
        f: &mut dyn FnMut(Role, Sha256Digest, Part),
    ) -> Vec<RefError> {
        let mut errors = Vec::new();
        let primary = content.get("primary");
        // Part `i` of every file belongs to part `i` of primary.
        let owner = |i: usize| -> Part {
            primary
                .and_then(|p| p.parts.get(i))
                .map_or((Sha256Digest::from_bytes([0; 32]), None), |p| {
                    (p.blob, p.select)
                })
        };
        for m in &content.metadata {
            for (i, part) in m.parts.iter().enumerate() {
                f(Role::Index, part.blob, owner(i));
                if let Some(s) = part.select {
                    f(Role::Selection, s, owner(i));
                }
            }
        }
        for (i, part) in primary.into_iter().flat_map(|p| &p.parts).enumerate() {
            // A selection keeps a subset of the whole blob's packages.
            let key = (part.blob, part.select);
            if self.walked.contains(&(part.blob, None)) || !self.walked.insert(key) {
                continue;
            }
            let companions = content.companions(i);
            if let Err(e) = self.rpm_packages(part, &companions, f) {
                self.walked.remove(&key);
                errors.push(e);
            }
        }
        errors
    }

    /// The packages of a part of `primary`: from the cached catalog when
    /// there is a sound one, else from the text.
    fn rpm_packages(
        &self,
        part: &IndexPart,
        companions: &crate::content::RpmCompanions,
        f: &mut dyn FnMut(Role, Sha256Digest, Part),
    ) -> Result<(), RefError> {
        let owner = (part.blob, part.select);
        let pool = self.catalogs.pool();
        let damaged = |why: String| RefError::Damaged {
            role: Role::Index,
            digest: part.blob,
            why,
        };
        let selection = |len: usize| -> Result<Option<Selection>, RefError> {
            let Some(select) = part.select else {
                return Ok(None);
            };
            let bytes = read(pool, Role::Selection, select)?;
            Selection::decode(&bytes, len)
                .map(Some)
                .ok_or(RefError::Damaged {
                    role: Role::Selection,
                    digest: select,
                    why: "not a selection of its index".into(),
                })
        };
        let checksum = |name: &str, sha256: &str| {
            sha256
                .parse::<Sha256Digest>()
                .map_err(|_| damaged(format!("`{name}`: no SHA-256 checksum")))
        };
        if let Some(catalog) = self.catalogs.cached_rpm(part.blob, companions)
            && let Ok(index) = pool.path(&part.blob).metadata()
        {
            let ordinals: Vec<u32> = match selection(index.len() as usize)? {
                None => (0..catalog.len() as u32).collect(),
                Some(s) => catalog.selected(&s),
            };
            for o in ordinals {
                let e = &catalog.entries()[o as usize];
                let digest = checksum(catalog.str(e.name), catalog.str(e.pkgid))?;
                f(Role::Package, digest, owner);
            }
            return Ok(());
        }
        let bytes = read(pool, Role::Index, part.blob)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| damaged("not UTF-8".into()))?;
        let runs = selection(text.len())?;
        let (_, packages) =
            crate::formats::rpm::parse_primary(text).map_err(|e| damaged(e.to_string()))?;
        for p in packages {
            let kept = runs.as_ref().is_none_or(|s| {
                s.0.iter()
                    .any(|r| r.start as usize <= p.span.start && p.span.end <= r.end as usize)
            });
            if kept {
                f(Role::Package, checksum(&p.name, &p.sha256)?, owner);
            }
        }
        Ok(())
    }
}
