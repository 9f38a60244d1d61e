//! Packages of a repository state as one list — for queries, dependency
//! closure, verification and merging — and the way back from a selection
//! of packages to new content.
//!
//! A set reads catalogs (`super::catalog`), not index texts: each package
//! is an entry of one part's catalog, so loading a 63k-package snapshot
//! costs a few milliseconds (an rpm state of 20k packages, with ~110 MB
//! of repodata, the same once its catalog is cached). A selection is
//! written back as content that keeps byte ranges of the same blobs
//! (`content::Selection`): apt index stanzas, or rpm `<package>` elements
//! of `primary`, `filelists` and `other`.
//!
//! It reads content and catalogs and writes only new index and selection
//! blobs to the pool; it never writes a manifest or a state (its callers do).

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

use super::catalog::{self, Catalog, Dep, DepRec, Entry, Str};
use super::query::{Flavor, PackageFields};
use crate::content::{
    AptContent, Content, IndexError, IndexKind, IndexPart, IndexRef, RpmContent, RpmMetadataRef,
    Selection, index_text,
};
use crate::digest::Sha256Digest;
use crate::formats::{apt as aptfmt, deb822, rpm as rpmfmt};
use crate::pool::{Pool, PoolError};

#[derive(Debug, thiserror::Error)]
pub enum PackageSetError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    Apt(#[from] aptfmt::AptFormatError),
    #[error(transparent)]
    Rpm(#[from] rpmfmt::RpmFormatError),
    #[error("cannot merge apt and rpm content")]
    MixedKinds,
}

/// The packages of one index blob that a set holds.
#[derive(Debug)]
struct Part {
    catalog: Arc<Catalog>,
    blob: Sha256Digest,
    /// The apt index (of the set's content) the part belongs to.
    index: usize,
    /// apt: the index's kind; rpm: `None` (decided per package).
    kind: Option<IndexKind>,
    /// The architecture domain dependencies resolve in: the index's
    /// architecture for apt (so `all` packages resolve per architecture).
    domain: String,
    /// The blob's text, read only if a query asks for a field the catalog
    /// does not hold.
    text: OnceLock<Option<String>>,
    /// The set's package number of each catalog entry: `base + entry` for
    /// a whole blob, else `base` plus its rank among the selected entries.
    base: u32,
    members: Option<Members>,
}

/// The selected entries of a part as a bit set with a count of the set
/// bits before each word: membership and rank in a few kilobytes, which
/// stay in cache while a walk visits entries in key (random) order.
#[derive(Debug)]
struct Members {
    bits: Vec<u64>,
    before: Vec<u32>,
}

impl Members {
    fn new(len: usize, selected: &[u32]) -> Self {
        let mut bits = vec![0u64; len.div_ceil(64)];
        for &e in selected {
            bits[e as usize / 64] |= 1 << (e % 64);
        }
        let mut before = Vec::with_capacity(bits.len());
        let mut count = 0;
        for w in &bits {
            before.push(count);
            count += w.count_ones();
        }
        Self { bits, before }
    }

    /// The rank of `ordinal` among the selected entries, if selected.
    fn rank(&self, ordinal: u32) -> Option<u32> {
        let (word, bit) = (ordinal as usize / 64, ordinal % 64);
        let w = *self.bits.get(word)?;
        (w & (1 << bit) != 0).then(|| self.before[word] + (w & ((1 << bit) - 1)).count_ones())
    }
}

impl Part {
    /// A part holding all of `blob`'s packages, not yet numbered in a set
    /// ([`add_part`] does).
    fn new(
        catalog: Arc<Catalog>,
        blob: Sha256Digest,
        index: usize,
        kind: Option<IndexKind>,
    ) -> Self {
        Self {
            catalog,
            blob,
            index,
            kind,
            domain: String::new(),
            text: OnceLock::new(),
            base: 0,
            members: None,
        }
    }

    fn in_domain(self, domain: String) -> Self {
        Self { domain, ..self }
    }

    /// The set's package number of catalog entry `ordinal`, if selected.
    fn member(&self, ordinal: u32) -> Option<u32> {
        match &self.members {
            None => ((ordinal as usize) < self.catalog.len()).then_some(self.base + ordinal),
            Some(m) => m.rank(ordinal).map(|r| self.base + r),
        }
    }
}

#[derive(Debug)]
pub struct PackageSet {
    pub flavor: Flavor,
    pool: Pool,
    /// The content the set was loaded from.
    pub apt: Option<AptContent>,
    pub rpm: Option<RpmContent>,
    parts: Vec<Part>,
    /// (part, entry) of each package.
    pkgs: Vec<(u32, u32)>,
}

/// A package of a set.
#[derive(Clone, Copy)]
pub struct Pkg<'a> {
    part: &'a Part,
    pub entry: &'a Entry,
    ordinal: u32,
}

impl<'a> Pkg<'a> {
    fn catalog(&self) -> &'a Catalog {
        &self.part.catalog
    }
    pub fn name(&self) -> &'a str {
        self.catalog().str(self.entry.name)
    }
    pub fn version(&self) -> &'a str {
        self.catalog().str(self.entry.version)
    }
    pub fn arch(&self) -> &'a str {
        self.catalog().str(self.entry.arch)
    }
    pub fn source(&self) -> &'a str {
        self.catalog().str(self.entry.source)
    }
    pub fn kind(&self) -> IndexKind {
        match self.part.kind {
            Some(k) => k,
            None if self.arch() == "src" => IndexKind::Source,
            None => IndexKind::Binary,
        }
    }
    pub fn domain(&self) -> &'a str {
        &self.part.domain
    }
    /// Dependency groups (`a | b` is one group of two alternatives).
    pub fn dep_groups(&self) -> impl Iterator<Item = &'a [DepRec]> + 'a {
        self.catalog().dep_groups(self.entry)
    }
    pub fn dep(&self, d: &DepRec) -> Dep<'a> {
        self.catalog().dep(d)
    }
    /// Provided names, with the provided version if any.
    pub fn provides(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.catalog().provides(self.entry)
    }
    /// rpm: file paths listed in primary (for file dependencies).
    pub fn files(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.catalog().files(self.entry)
    }
    fn span(&self) -> Range<usize> {
        self.entry.span[0] as usize..self.entry.span[1] as usize
    }
}

/// A package met while walking sets by key ([`walk_by_key`]).
#[derive(Debug, Clone, Copy)]
pub struct Keyed {
    pub key: catalog::Key,
    /// The set (its position in the walked slice) and package number.
    pub set: usize,
    pub pkg: usize,
    part: u32,
    version: Str,
}

/// Reads [`Keyed`] packages of the walked sets.
pub struct KeyedOf<'a>(pub &'a [PackageSet]);

impl<'a> KeyedOf<'a> {
    fn part(&self, k: &Keyed) -> &'a Part {
        &self.0[k.set].parts[k.part as usize]
    }

    pub fn version(&self, k: &Keyed) -> &'a str {
        self.part(k).catalog.str(k.version)
    }

    pub fn same_version(&self, a: &Keyed, b: &Keyed) -> bool {
        // Strings are interned per catalog: equal strings, equal handles.
        if Arc::ptr_eq(&self.part(a).catalog, &self.part(b).catalog) {
            a.version == b.version
        } else {
            self.version(a) == self.version(b)
        }
    }

    pub fn pkg(&self, k: &Keyed) -> Pkg<'a> {
        self.0[k.set].pkg(k.pkg)
    }
}

/// Walks the packages of `sets` in key order, calling `run` with each
/// group of packages that share a key (name and architecture) and a
/// domain and kind (`by_domain`) or just a kind — in the order of the
/// sets, then of their parts, then of position. Each part's catalog is
/// read in its by-key order, so this reads memory in sequence and hashes
/// nothing.
pub fn walk_by_key(sets: &[PackageSet], by_domain: bool, mut run: impl FnMut(&[Keyed])) {
    struct Stream<'a> {
        set: usize,
        part_no: u32,
        part: &'a Part,
        recs: &'a [catalog::KeyRec],
    }
    impl Stream<'_> {
        /// Skips entries the part does not select.
        fn settle(&mut self) {
            while let Some((first, rest)) = self.recs.split_first() {
                if self.part.member(first.ordinal).is_some() {
                    break;
                }
                self.recs = rest;
            }
        }
    }
    // Streams by (domain or "", kind).
    type Group<'a> = ((&'a str, Option<IndexKind>), Vec<Stream<'a>>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (set_no, set) in sets.iter().enumerate() {
        for (part_no, part) in set.parts.iter().enumerate() {
            let group = (if by_domain { part.domain.as_str() } else { "" }, part.kind);
            let mut stream = Stream {
                set: set_no,
                part_no: part_no as u32,
                part,
                recs: part.catalog.by_key(),
            };
            stream.settle();
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, streams)) => streams.push(stream),
                None => groups.push((group, vec![stream])),
            }
        }
    }
    let mut same: Vec<Keyed> = Vec::new();
    for (_, mut streams) in groups {
        while let Some(key) = streams
            .iter()
            .filter_map(|s| s.recs.first().map(|r| catalog::key_number(&r.key)))
            .min()
        {
            same.clear();
            for s in &mut streams {
                while let Some(r) = s
                    .recs
                    .first()
                    .filter(|r| catalog::key_number(&r.key) == key)
                {
                    if let Some(pkg) = s.part.member(r.ordinal) {
                        same.push(Keyed {
                            key: r.key,
                            set: s.set,
                            pkg: pkg as usize,
                            part: s.part_no,
                            version: r.version,
                        });
                    }
                    s.recs = &s.recs[1..];
                    s.settle();
                }
            }
            run(&same);
        }
    }
}

/// A package seen through its set, for query evaluation.
pub struct View<'a> {
    pub set: &'a PackageSet,
    pub pkg: Pkg<'a>,
}

impl PackageFields for View<'_> {
    fn name(&self) -> &str {
        self.pkg.name()
    }
    fn version(&self) -> &str {
        self.pkg.version()
    }
    fn arch(&self) -> &str {
        self.pkg.arch()
    }
    fn source(&self) -> &str {
        self.pkg.source()
    }
    fn package_type(&self) -> &str {
        match (self.set.flavor, self.pkg.kind()) {
            (Flavor::Rpm, _) => "rpm",
            (_, IndexKind::Binary) => "deb",
            (_, IndexKind::Udeb) => "udeb",
            (_, IndexKind::Source) => "source",
        }
    }
    fn field(&self, name: &str) -> Option<String> {
        if self.set.flavor == Flavor::Rpm {
            return None;
        }
        if name.eq_ignore_ascii_case("Priority") {
            return self
                .pkg
                .catalog()
                .get(self.pkg.entry.priority)
                .map(str::to_owned);
        }
        let part = self.pkg.part;
        let text = part
            .text
            .get_or_init(|| index_text(&self.set.pool, &part.blob).ok())
            .as_deref()?;
        let p = deb822::paragraphs(text.get(self.pkg.span())?)
            .next()?
            .ok()?;
        p.get(name).map(str::to_owned)
    }
}

impl PackageSet {
    pub fn load(catalogs: &catalog::Cache, content: &Content) -> Result<Self, PackageSetError> {
        match content {
            Content::Apt(a) => Self::load_apt(catalogs, a),
            Content::Rpm(r) => Self::load_rpm(catalogs, r),
        }
    }

    pub fn len(&self) -> usize {
        self.pkgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkgs.is_empty()
    }

    pub fn pkg(&self, i: usize) -> Pkg<'_> {
        let (part, ordinal) = self.pkgs[i];
        let part = &self.parts[part as usize];
        Pkg {
            part,
            entry: &part.catalog.entries()[ordinal as usize],
            ordinal,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Pkg<'_>> + '_ {
        (0..self.pkgs.len()).map(|i| self.pkg(i))
    }

    fn load_apt(catalogs: &catalog::Cache, content: &AptContent) -> Result<Self, PackageSetError> {
        let pool = catalogs.pool();
        let mut parts = Vec::new();
        let mut pkgs = Vec::new();
        for (i, index) in content.indices.iter().enumerate() {
            for IndexPart { blob, select } in &index.parts {
                let catalog = catalogs.apt(*blob, index.kind, || {
                    index_text(pool, blob).map_err(PackageSetError::from)
                })?;
                let part = Part::new(catalog, *blob, i, Some(index.kind));
                let domain = index.arch.clone().unwrap_or_else(|| "source".into());
                add_part(pool, &mut parts, &mut pkgs, part.in_domain(domain), *select)?;
            }
        }
        Ok(Self {
            flavor: Flavor::Deb,
            pool: pool.clone(),
            apt: Some(content.clone()),
            rpm: None,
            parts,
            pkgs,
        })
    }

    /// The packages of an rpm state: per part of its `primary` (one for a
    /// mirrored state), the cached catalog of that primary blob (built
    /// with the same part of `filelists` and `other`) and the part's
    /// selection.
    fn load_rpm(catalogs: &catalog::Cache, content: &RpmContent) -> Result<Self, PackageSetError> {
        let pool = catalogs.pool();
        let primary = content
            .get("primary")
            .ok_or(rpmfmt::RpmFormatError::NoRecord("primary"))?;
        let mut parts = Vec::new();
        let mut pkgs = Vec::new();
        for (i, IndexPart { blob, select }) in primary.parts.iter().enumerate() {
            let companion = |mdtype: &str| -> Result<Option<String>, PackageSetError> {
                match content.part(mdtype, i) {
                    Some(p) => Ok(Some(index_text(pool, &p.blob)?)),
                    None => Ok(None),
                }
            };
            let catalog = catalogs.rpm(*blob, &content.companions(i), || {
                Ok::<_, PackageSetError>(catalog::RpmTexts {
                    primary: index_text(pool, blob)?,
                    filelists: companion("filelists")?,
                    other: companion("other")?,
                })
            })?;
            add_part(
                pool,
                &mut parts,
                &mut pkgs,
                Part::new(catalog, *blob, i, None),
                *select,
            )?;
        }
        Ok(Self {
            flavor: Flavor::Rpm,
            pool: pool.clone(),
            apt: None,
            rpm: Some(content.clone()),
            parts,
            pkgs,
        })
    }
}

/// Adds `part` to a set being loaded: all its catalog's packages, or
/// those its selection `select` keeps.
fn add_part(
    pool: &Pool,
    parts: &mut Vec<Part>,
    pkgs: &mut Vec<(u32, u32)>,
    mut part: Part,
    select: Option<Sha256Digest>,
) -> Result<(), PackageSetError> {
    let no = parts.len() as u32;
    part.base = pkgs.len() as u32;
    let len = part.catalog.len();
    match select {
        None => pkgs.extend((0..len as u32).map(|e| (no, e))),
        Some(select) => {
            let selected = part
                .catalog
                .selected(&selection_of(pool, &part.blob, &select)?);
            pkgs.extend(selected.iter().map(|&e| (no, e)));
            part.members = Some(Members::new(len, &selected));
        }
    }
    parts.push(part);
    Ok(())
}

/// The selection `select` of index blob `blob`.
fn selection_of(
    pool: &Pool,
    blob: &Sha256Digest,
    select: &Sha256Digest,
) -> Result<Selection, PackageSetError> {
    let len = pool
        .path(blob)
        .metadata()
        .map_err(|source| PoolError::Io {
            path: pool.path(blob),
            source,
        })?
        .len() as usize;
    Ok(Selection::load(pool, select, len)?)
}

/// One way a package satisfies a name: itself, a `Provides`, or (rpm) a
/// listed file; `next` chains the others for the same name.
#[derive(Debug, Clone, Copy)]
struct Provider<'a> {
    pkg: u32,
    /// The version it satisfies the name at (`None`: unversioned provide).
    version: Option<&'a str>,
    next: u32,
}

const END: u32 = u32::MAX;

/// Lookup tables for dependency resolution within one set: for each
/// (domain, name), a chain of providers in one vector, so building it
/// allocates nothing per name and a lookup reads no catalog.
pub struct Resolver<'a> {
    set: &'a PackageSet,
    heads: FxHashMap<(&'a str, &'a str), u32>,
    providers: Vec<Provider<'a>>,
}

impl<'a> Resolver<'a> {
    pub fn new(set: &'a PackageSet) -> Self {
        let mut heads: FxHashMap<(&str, &str), u32> = FxHashMap::default();
        heads.reserve(set.len());
        let mut providers: Vec<Provider<'_>> = Vec::with_capacity(set.len());
        let mut add = |domain: &'a str, name: &'a str, pkg: usize, version: Option<&'a str>| {
            let head = heads.entry((domain, name)).or_insert(END);
            providers.push(Provider {
                pkg: pkg as u32,
                version,
                next: *head,
            });
            *head = providers.len() as u32 - 1;
        };
        for (i, p) in set.iter().enumerate() {
            if p.kind() == IndexKind::Source {
                continue;
            }
            let d = p.domain();
            add(d, p.name(), i, Some(p.version()));
            for (name, v) in p.provides() {
                add(d, name, i, v);
            }
            for f in p.files() {
                add(d, f, i, None);
            }
        }
        Self {
            set,
            heads,
            providers,
        }
    }

    /// Packages satisfying `dep` for a package resolving in `domain`.
    pub fn candidates<'s>(
        &'s self,
        dep: &'s Dep<'_>,
        domain: &'s str,
    ) -> impl Iterator<Item = usize> + 's {
        let mut at = self.heads.get(&(domain, dep.name)).copied().unwrap_or(END);
        let flavor = self.set.flavor;
        std::iter::from_fn(move || {
            while at != END {
                let p = self.providers[at as usize];
                at = p.next;
                let ok = match (&dep.rel, p.version) {
                    (None, _) => true,
                    (Some((op, want)), Some(have)) => op.holds(flavor.compare(have, want)),
                    (Some(_), None) => false,
                };
                if ok {
                    return Some(p.pkg as usize);
                }
            }
            None
        })
    }

    fn best(&self, candidates: &[usize]) -> Option<usize> {
        let flavor = self.set.flavor;
        candidates.iter().copied().max_by(|&a, &b| {
            flavor
                .compare(self.set.pkg(a).version(), self.set.pkg(b).version())
                .then(b.cmp(&a))
        })
    }

    /// Adds to `selected` everything the selected packages depend on, until
    /// closed. Returns the dependencies nothing satisfies.
    pub fn close(&self, selected: &mut [bool]) -> Vec<Unsatisfied> {
        let mut queue: Vec<usize> = (0..selected.len()).filter(|&i| selected[i]).collect();
        let mut missing = Vec::new();
        while let Some(i) = queue.pop() {
            let pkg = self.set.pkg(i);
            let domain = pkg.domain();
            for group in pkg.dep_groups() {
                let deps: Vec<Dep<'_>> = group.iter().map(|d| pkg.dep(d)).collect();
                let options: Vec<Vec<usize>> = deps
                    .iter()
                    .map(|d| self.candidates(d, domain).collect())
                    .collect();
                if options.iter().flatten().any(|&c| selected[c]) {
                    continue;
                }
                match options
                    .iter()
                    .find(|o| !o.is_empty())
                    .and_then(|o| self.best(o))
                {
                    Some(c) => {
                        selected[c] = true;
                        queue.push(c);
                    }
                    None => missing.push(Unsatisfied::new(pkg, &deps)),
                }
            }
        }
        missing.sort_by(|a, b| (&a.package, &a.dependency).cmp(&(&b.package, &b.dependency)));
        missing.dedup();
        missing
    }

    /// Every dependency of every package that nothing in the set satisfies.
    pub fn verify(&self) -> Vec<Unsatisfied> {
        let mut missing = Vec::new();
        for pkg in self.set.iter() {
            let domain = pkg.domain();
            for group in pkg.dep_groups() {
                let unsatisfied = group.iter().all(|d| {
                    let d = pkg.dep(d);
                    self.candidates(&d, domain).next().is_none()
                });
                if unsatisfied {
                    let deps: Vec<Dep<'_>> = group.iter().map(|d| pkg.dep(d)).collect();
                    missing.push(Unsatisfied::new(pkg, &deps));
                }
            }
        }
        missing.sort_by(|a, b| (&a.package, &a.dependency).cmp(&(&b.package, &b.dependency)));
        missing.dedup();
        missing
    }
}

/// A dependency nothing satisfies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unsatisfied {
    pub package: String,
    pub version: String,
    pub arch: String,
    pub dependency: String,
}

impl Unsatisfied {
    fn new(pkg: Pkg<'_>, group: &[Dep<'_>]) -> Self {
        Self {
            package: pkg.name().to_owned(),
            version: pkg.version().to_owned(),
            arch: pkg.arch().to_owned(),
            dependency: group
                .iter()
                .map(Dep::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }
}

/// A selected package: (set, package).
pub type Pick = (usize, usize);

/// Writes the picked packages of `sets` as new content; apt packages of
/// set `s` go to component `components[s]` if given, else to their own.
pub fn build(
    pool: &Pool,
    sets: &[PackageSet],
    components: &[Option<String>],
    picks: &[Pick],
) -> Result<Content, PackageSetError> {
    let Some(first) = sets.first() else {
        return Err(PackageSetError::MixedKinds);
    };
    if sets.iter().any(|s| s.flavor != first.flavor) {
        return Err(PackageSetError::MixedKinds);
    }
    match first.flavor {
        Flavor::Deb => build_apt(pool, sets, components, picks),
        Flavor::Rpm => build_rpm(pool, sets, picks),
    }
}

/// Writes apt content keeping byte ranges of the picked packages' index
/// blobs. Within an output index, stanzas are grouped by blob and kept in
/// the blob's order (apt does not care about order), so that picks of
/// neighbouring stanzas make one run, and all of a blob no selection.
fn build_apt(
    pool: &Pool,
    sets: &[PackageSet],
    components: &[Option<String>],
    picks: &[Pick],
) -> Result<Content, PackageSetError> {
    type Key = (String, IndexKind, Option<String>);
    let key_of = |si: usize, idx: &IndexRef| -> Key {
        let comp = components.get(si).cloned().flatten();
        (
            comp.unwrap_or_else(|| idx.component.clone()),
            idx.kind,
            idx.arch.clone(),
        )
    };
    let mut order: Vec<Key> = Vec::new();
    // Every index of every source exists in the output, even if empty, so
    // a filter that selects nothing of an architecture still publishes it.
    for (si, set) in sets.iter().enumerate() {
        let Some(c) = &set.apt else { continue };
        for idx in &c.indices {
            let key = key_of(si, idx);
            if !order.contains(&key) {
                order.push(key);
            }
        }
    }
    // Blobs by first appearance, with their catalogs' sizes.
    let mut blobs: Vec<(Sha256Digest, usize)> = Vec::new();
    let mut blob_no: FxHashMap<Sha256Digest, u32> = FxHashMap::default();
    // Per output index: (blob number, entry, span) of each pick.
    let mut outs: Vec<Vec<(u32, u32, [u32; 2])>> = order.iter().map(|_| Vec::new()).collect();
    // Per output index: blobs picked whole (the common case in merges).
    let mut wholes: Vec<Vec<u32>> = order.iter().map(|_| Vec::new()).collect();
    let mut last: Option<(usize, usize, usize)> = None;
    let mut at = 0;
    while let Some(&(si, pi)) = picks.get(at) {
        let set = &sets[si];
        let Some(c) = &set.apt else {
            at += 1;
            continue;
        };
        let pkg = set.pkg(pi);
        let index = pkg.part.index;
        // Picks come in runs from one index; find its output once per run.
        let pos = match last {
            Some((s, i, pos)) if s == si && i == index => pos,
            _ => {
                let key = key_of(si, &c.indices[index]);
                let pos = order.iter().position(|k| *k == key).unwrap_or(0);
                last = Some((si, index, pos));
                pos
            }
        };
        let blob = pkg.part.blob;
        let no = match blobs.last() {
            // Picks come in runs from one blob too.
            Some((last, _)) if *last == blob => blobs.len() as u32 - 1,
            _ => *blob_no.entry(blob).or_insert_with(|| {
                blobs.push((blob, pkg.part.catalog.len()));
                blobs.len() as u32 - 1
            }),
        };
        // All of a whole blob's packages, in order: no need to visit each.
        let total = pkg.part.catalog.len();
        if pkg.part.members.is_none()
            && pkg.ordinal == 0
            && picks
                .get(at..at + total)
                .is_some_and(|run| run.windows(2).all(|w| w[1] == (si, w[0].1 + 1)))
        {
            wholes[pos].push(no);
            at += total;
            continue;
        }
        outs[pos].push((no, pkg.ordinal, pkg.entry.span));
        at += 1;
    }
    let mut indices = Vec::new();
    for (((component, kind, arch), mut picked), mut whole) in
        order.into_iter().zip(outs).zip(wholes)
    {
        whole.sort_unstable();
        whole.dedup();
        picked.retain(|(no, _, _)| whole.binary_search(no).is_err());
        picked.sort_unstable_by_key(|&(no, ordinal, _)| (no, ordinal));
        picked.dedup_by_key(|&mut (no, ordinal, _)| (no, ordinal));
        let mut entries = picked.len();
        let mut parts: Vec<(u32, IndexPart)> = Vec::new();
        for &no in &whole {
            let (blob, total) = blobs[no as usize];
            entries += total;
            parts.push((no, IndexPart { blob, select: None }));
        }
        for group in picked.chunk_by(|a, b| a.0 == b.0) {
            let (blob, total) = blobs[group[0].0 as usize];
            let select = if group.len() == total {
                None
            } else {
                let mut runs: Vec<Range<u32>> = Vec::new();
                let mut next = None;
                for &(_, ordinal, span) in group {
                    match runs.last_mut() {
                        Some(run) if next == Some(ordinal) => run.end = span[1],
                        _ => runs.push(span[0]..span[1]),
                    }
                    next = Some(ordinal + 1);
                }
                Some(pool.put(&Selection(runs).encode())?)
            };
            parts.push((group[0].0, IndexPart { blob, select }));
        }
        // Blobs in the order they were first picked.
        parts.sort_by_key(|(no, _)| *no);
        indices.push(IndexRef {
            component,
            kind,
            arch,
            parts: parts.into_iter().map(|(_, p)| p).collect(),
            entries,
        });
    }
    let base = sets[0].apt.as_ref().ok_or(PackageSetError::MixedKinds)?;
    Ok(Content::Apt(AptContent {
        origin: base.origin.clone(),
        label: base.label.clone(),
        suite: base.suite.clone(),
        codename: base.codename.clone(),
        files_url: base.files_url.clone(),
        indices,
    }))
}

/// Writes rpm content keeping byte ranges of the picked packages'
/// repodata, as [`build_apt`] does: per source part (in the order first
/// picked), a selection of its `primary` blob and of the same state's
/// `filelists` and `other` (from the catalog's [`catalog::Companions`]),
/// or the whole blobs when every package of the part is picked.
/// `filelists`/`other` are kept when every picked part's state has them.
/// Other metadata (advisories, comps, modules) comes from the first
/// source having it.
fn build_rpm(pool: &Pool, sets: &[PackageSet], picks: &[Pick]) -> Result<Content, PackageSetError> {
    let content = |si: usize| sets[si].rpm.as_ref().ok_or(PackageSetError::MixedKinds);
    let base = content(0)?;
    // Picked entries per (set, part), parts in first-picked order.
    let mut order: Vec<(usize, u32)> = Vec::new();
    let mut picked: FxHashMap<(usize, u32), Vec<u32>> = FxHashMap::default();
    for &(si, pi) in picks {
        let (part, ordinal) = sets[si].pkgs[pi];
        picked
            .entry((si, part))
            .or_insert_with(|| {
                order.push((si, part));
                Vec::new()
            })
            .push(ordinal);
    }
    // Nothing picked: an empty selection of the first part, so that each
    // file is still a document.
    if order.is_empty() && !sets[0].parts.is_empty() {
        order.push((0, 0));
        picked.insert((0, 0), Vec::new());
    }
    let mut companions: Vec<&str> = vec!["filelists", "other"];
    for &(si, part) in &order {
        let index = sets[si].parts[part as usize].index;
        let c = content(si)?;
        companions.retain(|t| c.part(t, index).is_some());
    }
    let mut files: Vec<(&str, String, Vec<IndexPart>)> = vec![("primary", "xml".into(), vec![])];
    for t in &companions {
        let ext = base
            .get(t)
            .map_or_else(|| "xml".to_owned(), |m| m.ext.clone());
        files.push((t, ext, Vec::new()));
    }
    let mut packages = 0;
    for &(si, part_no) in &order {
        let part = &sets[si].parts[part_no as usize];
        let c = content(si)?;
        let mut ordinals = picked.remove(&(si, part_no)).unwrap_or_default();
        ordinals.sort_unstable();
        ordinals.dedup();
        packages += ordinals.len();
        let whole = ordinals.len() == part.catalog.len();
        for (t, _, parts) in &mut files {
            let blob = match *t {
                "primary" => part.blob,
                t => c.part(t, part.index).map_or(part.blob, |p| p.blob),
            };
            let select = if whole {
                None
            } else {
                let spans = ordinals.iter().filter_map(|&o| {
                    let entry = &part.catalog.entries()[o as usize];
                    let companions = part.catalog.companions(o);
                    let span = match *t {
                        "primary" => Some(entry.span),
                        "filelists" => companions.map(|c| c.filelists),
                        _ => companions.map(|c| c.other),
                    };
                    span.filter(|s| *s != catalog::Companions::NONE)
                });
                Some(pool.put(&runs_of(spans).encode())?)
            };
            parts.push(IndexPart { blob, select });
        }
    }
    let mut metadata: Vec<RpmMetadataRef> = files
        .into_iter()
        .map(|(t, ext, parts)| RpmMetadataRef {
            mdtype: t.to_owned(),
            ext,
            parts,
        })
        .collect();
    // Advisories, comps and modules come from the first source having them.
    for set in sets {
        if let Some(c) = &set.rpm {
            for e in &c.metadata {
                if !["primary", "filelists", "other"].contains(&e.mdtype.as_str())
                    && !metadata.iter().any(|m| m.mdtype == e.mdtype)
                {
                    metadata.push(e.clone());
                }
            }
        }
    }
    Ok(Content::Rpm(RpmContent {
        files_url: base.files_url.clone(),
        metadata,
        packages,
    }))
}

/// The byte spans of whole `<package>` elements as a selection: sorted,
/// and spans apart by at most a few bytes (the whitespace between two
/// elements, which no element fits in) joined into one run.
fn runs_of(spans: impl Iterator<Item = [u32; 2]>) -> Selection {
    let mut spans: Vec<[u32; 2]> = spans.collect();
    spans.sort_unstable();
    let mut runs: Vec<Range<u32>> = Vec::new();
    for [start, end] in spans {
        match runs.last_mut() {
            Some(run) if start >= run.end && start - run.end <= 8 => run.end = end,
            Some(run) if start < run.end => {}
            _ => runs.push(start..end),
        }
    }
    Selection(runs)
}

/// Selects the packages of `set` matching `query`, closed under
/// dependencies if asked. Returns the selection and what stayed missing.
pub fn select(
    set: &PackageSet,
    query: &super::query::Query,
    with_deps: bool,
) -> (Vec<bool>, Vec<Unsatisfied>) {
    let mut selected: Vec<bool> = set
        .iter()
        .map(|pkg| query.matches(&View { set, pkg }, set.flavor))
        .collect();
    let missing = if with_deps {
        Resolver::new(set).close(&mut selected)
    } else {
        Vec::new()
    };
    (selected, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_rank_the_selected_entries() {
        let selected = [0, 3, 63, 64, 65, 130];
        let m = Members::new(131, &selected);
        for (rank, &e) in selected.iter().enumerate() {
            assert_eq!(m.rank(e), Some(rank as u32), "entry {e}");
        }
        for e in [1, 2, 62, 66, 129, 131, 1000] {
            assert_eq!(m.rank(e), None, "entry {e}");
        }
    }
}
