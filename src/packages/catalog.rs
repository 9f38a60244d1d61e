//! Catalogs: a compact binary summary of one index, so that filter, merge,
//! diff, search and verify never parse an index text.
//!
//! For each package a catalog holds its name, version, architecture,
//! source, priority, dependency groups, provides and (rpm) listed files,
//! plus the byte span of its entry in the index, by which selections
//! (`content::Selection`) are mapped to entries and written back verbatim.
//! Entries keep the index's order.
//!
//! A catalog is derived data. An index's catalog is built the first time
//! it is needed (mirror updates build them as their indices arrive) and
//! cached at `cache/catalog/ab/<sha256>.<deb|src|rpm>`; a missing, stale or
//! damaged file is rebuilt: the header names the index blob and the format
//! version, and every handle and range is bounds-checked when used, so a
//! damaged table cannot crash depot. Beyond that a catalog is trusted as
//! pool blobs are (neither is re-hashed when read).
//!
//! An rpm catalog is built from a repository state's `primary.xml`,
//! `filelists.xml` and `other.xml` blobs: each entry also holds the byte
//! spans of its package's records in the latter two ([`Companions`],
//! matched by `pkgid`), so a selection of packages is written back as
//! selections of all three files. Its file is named by the primary blob
//! and by the start of the other two blobs' names
//! (`<primary>.<filelists 64 bits><other 64 bits>.rpm`), so spans are
//! never read against another state's files.
//!
//! Layout: a header and the entry, dependency, provide and file tables as
//! native-endian `u32` words (a cache is local to its host), then the
//! string bytes, each distinct string once. Loading reads the tables into a
//! word buffer, casts them in place (`bytemuck`) and checks once that the
//! strings are UTF-8, so a 63k-package catalog loads in a few milliseconds
//! with no parsing. A general serialisation crate would
//! decode every record (and allocate its strings) on each load, which is
//! the cost this module exists to avoid.
//!
//! This module owns `cache/catalog/` (where: [`crate::root::Root`]); it
//! reads pool blobs but never writes or removes them.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};
use rustc_hash::FxHashMap;

use super::query::Op;
use crate::content::{IndexKind, RpmCompanions};
use crate::digest::Sha256Digest;
use crate::formats::{apt as aptfmt, deb822, rpm as rpmfmt};
use crate::pool::Pool;

const MAGIC: u32 = u32::from_ne_bytes(*b"DCAT");
const VERSION: u32 = 6;
const HEADER_WORDS: usize = 2 + 8 + 7;

/// A string in the catalog's string bytes; `off == u32::MAX` is "none".
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Str {
    off: u32,
    len: u32,
}

impl Str {
    const NONE: Self = Self {
        off: u32::MAX,
        len: 0,
    };
}

/// One package.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Entry {
    pub name: Str,
    pub version: Str,
    pub arch: Str,
    pub source: Str,
    pub priority: Str,
    /// rpm: the package's checksum, its key in filelists/other.
    pub pkgid: Str,
    /// Byte range of the entry in its index (apt stanza, rpm `<package>`).
    pub span: [u32; 2],
    /// Ranges into the dependency, provide and file tables.
    pub deps: [u32; 2],
    pub provides: [u32; 2],
    pub files: [u32; 2],
}

const ENTRY_WORDS: usize = size_of::<Entry>() / 4;

/// Where an apt binary entry's package file is named, for publishing
/// without parsing the index: one per entry of a `Packages` catalog.
/// `line` is the byte range of the whole `Filename` field (name to final
/// newline), `path` that of its checked value (without a leading `./`).
/// A stanza that is not a valid binary stanza gets [`Location::NONE`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Location {
    pub line: [u32; 2],
    pub path: [u32; 2],
    pub size: [u32; 2],
    pub sha256: [u8; 32],
}

const LOCATION_WORDS: usize = size_of::<Location>() / 4;

/// Where an rpm entry's package has its records in `filelists.xml` and
/// `other.xml` (byte spans of the `<package>` elements; `[u32::MAX; 2]`:
/// none): one per entry of an rpm catalog.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Companions {
    pub filelists: [u32; 2],
    pub other: [u32; 2],
}

const COMPANION_WORDS: usize = size_of::<Companions>() / 4;

impl Companions {
    pub const NONE: [u32; 2] = [u32::MAX; 2];
}

impl Location {
    const NONE: Self = Self {
        line: [u32::MAX; 2],
        path: [u32::MAX; 2],
        size: [0; 2],
        sha256: [0; 32],
    };

    pub fn size(&self) -> u64 {
        u64::from(self.size[0]) | (u64::from(self.size[1]) << 32)
    }

    pub fn sha256(&self) -> Sha256Digest {
        Sha256Digest::from_bytes(self.sha256)
    }
}

/// A package's identity for merging and comparing: the first 128 bits of
/// the SHA-256 of its name and architecture. Like the pool's names, it is
/// trusted to be unique; nobody can make two names collide.
pub type Key = [u32; 4];

pub fn key_of(name: &str, arch: &str) -> Key {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::new()
        .chain_update(name)
        .chain_update([0])
        .chain_update(arch)
        .finalize();
    let w = |i: usize| u32::from_be_bytes([digest[i], digest[i + 1], digest[i + 2], digest[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// A key as one number, ordered as the key (cheaper to compare).
pub fn key_number(k: &Key) -> u128 {
    k.iter().fold(0, |n, w| (n << 32) | u128::from(*w))
}

/// One entry of the by-key table: every entry, sorted by key (then by
/// position), so merges and diffs walk catalogs in step instead of
/// hashing every package.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct KeyRec {
    pub key: Key,
    pub ordinal: u32,
    pub version: Str,
}

const KEY_WORDS: usize = size_of::<KeyRec>() / 4;

const GROUP_START: u32 = 0x100;
const ANY_ARCH: u32 = 0x200;

/// One dependency alternative; `flags` holds the relation operator in its
/// low byte, and whether it starts a new group (`a | b` is one group).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct DepRec {
    name: Str,
    version: Str,
    flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Provide {
    name: Str,
    version: Str,
}

/// A dependency alternative as read from a catalog or an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dep<'a> {
    pub name: &'a str,
    /// `:any` (apt multi-arch): any architecture satisfies it.
    pub any_arch: bool,
    pub rel: Option<(Op, &'a str)>,
}

impl std::fmt::Display for Dep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if self.any_arch {
            write!(f, ":any")?;
        }
        if let Some((op, v)) = &self.rel {
            let op = match op {
                Op::Eq => "=",
                Op::Ge => ">=",
                Op::Le => "<=",
                Op::Gt => ">>",
                Op::Lt => "<<",
                Op::Glob => "%",
                Op::Regex => "~",
            };
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

fn op_code(op: Op) -> u32 {
    match op {
        Op::Eq => 1,
        Op::Ge => 2,
        Op::Le => 3,
        Op::Gt => 4,
        Op::Lt => 5,
        Op::Glob | Op::Regex => 0,
    }
}

fn code_op(code: u32) -> Option<Op> {
    Some(match code & 0xff {
        1 => Op::Eq,
        2 => Op::Ge,
        3 => Op::Le,
        4 => Op::Gt,
        5 => Op::Lt,
        _ => return None,
    })
}

/// Parses `a (>= 1), b | c:any [amd64] <!nocheck>` into groups of
/// alternatives, borrowing from `value`. Architecture restrictions and
/// build profiles do not apply to binary indices and are dropped.
pub fn parse_apt_deps(value: &str) -> Vec<Vec<Dep<'_>>> {
    value
        .split(',')
        .filter_map(|group| {
            let alts: Vec<Dep<'_>> = group.split('|').filter_map(parse_apt_dep).collect();
            (!alts.is_empty()).then_some(alts)
        })
        .collect()
}

fn parse_apt_dep(alt: &str) -> Option<Dep<'_>> {
    let s = alt.trim();
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<'))
        .unwrap_or(s.len());
    let name_part = &s[..end];
    if name_part.is_empty() {
        return None;
    }
    let rel = match s[end..].trim_start().strip_prefix('(') {
        Some(r) => {
            let r = r[..r.find(')').unwrap_or(r.len())].trim();
            let op_len = r
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .unwrap_or(r.len());
            Some((Op::parse(&r[..op_len])?, r[op_len..].trim()))
        }
        None => None,
    };
    let (name, any_arch) = match name_part.split_once(':') {
        Some((n, q)) => (n, q == "any"),
        None => (name_part, false),
    };
    Some(Dep {
        name,
        any_arch,
        rel,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("index {index} is malformed")]
    Malformed {
        index: Sha256Digest,
        #[source]
        source: Box<aptfmt::AptFormatError>,
    },
    #[error("rpm metadata {index} is malformed")]
    MalformedRpm {
        index: Sha256Digest,
        #[source]
        source: Box<rpmfmt::RpmFormatError>,
    },
    #[error("index {index} is larger than 4 GiB")]
    TooLarge { index: Sha256Digest },
    #[error(transparent)]
    Index(#[from] crate::content::IndexError),
}

/// A package as given to [`Builder::push`].
pub struct NewEntry<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub arch: &'a str,
    pub source: &'a str,
    pub priority: Option<&'a str>,
    pub pkgid: Option<&'a str>,
    pub span: Range<usize>,
    pub deps: Vec<Vec<Dep<'a>>>,
    pub provides: Vec<(&'a str, Option<&'a str>)>,
    pub files: Vec<&'a str>,
    /// apt binary entries only.
    pub location: Option<Location>,
    /// rpm entries only.
    pub companions: Option<Companions>,
}

/// Collects entries, interning their strings, into a [`Catalog`].
#[derive(Default)]
pub struct Builder {
    entries: Vec<Entry>,
    deps: Vec<DepRec>,
    provides: Vec<Provide>,
    files: Vec<Str>,
    locations: Vec<Location>,
    companions: Vec<Companions>,
    strings: Vec<u8>,
    interned: FxHashMap<Box<str>, Str>,
    keys: Vec<Key>,
}

impl Builder {
    fn intern(&mut self, s: &str) -> Str {
        if let Some(v) = self.interned.get(s) {
            return *v;
        }
        let v = Str {
            off: self.strings.len() as u32,
            len: s.len() as u32,
        };
        self.strings.extend_from_slice(s.as_bytes());
        self.interned.insert(s.into(), v);
        v
    }

    fn opt(&mut self, s: Option<&str>) -> Str {
        s.map_or(Str::NONE, |s| self.intern(s))
    }

    fn range(start: usize, end: usize) -> [u32; 2] {
        [start as u32, end as u32]
    }

    pub fn push(&mut self, e: NewEntry<'_>) {
        let deps_start = self.deps.len();
        for group in &e.deps {
            for (i, d) in group.iter().enumerate() {
                let mut flags = d.rel.map_or(0, |(op, _)| op_code(op));
                if i == 0 {
                    flags |= GROUP_START;
                }
                if d.any_arch {
                    flags |= ANY_ARCH;
                }
                let rec = DepRec {
                    name: self.intern(d.name),
                    version: self.opt(d.rel.map(|(_, v)| v)),
                    flags,
                };
                self.deps.push(rec);
            }
        }
        let provides_start = self.provides.len();
        for (name, version) in &e.provides {
            let p = Provide {
                name: self.intern(name),
                version: self.opt(*version),
            };
            self.provides.push(p);
        }
        let files_start = self.files.len();
        for f in &e.files {
            let f = self.intern(f);
            self.files.push(f);
        }
        self.keys.push(key_of(e.name, e.arch));
        if let Some(l) = e.location {
            self.locations.push(l);
        }
        if let Some(c) = e.companions {
            self.companions.push(c);
        }
        let entry = Entry {
            name: self.intern(e.name),
            version: self.intern(e.version),
            arch: self.intern(e.arch),
            source: self.intern(e.source),
            priority: self.opt(e.priority),
            pkgid: self.opt(e.pkgid),
            span: Self::range(e.span.start, e.span.end),
            deps: Self::range(deps_start, self.deps.len()),
            provides: Self::range(provides_start, self.provides.len()),
            files: Self::range(files_start, self.files.len()),
        };
        self.entries.push(entry);
    }

    pub fn finish(self, index: Sha256Digest) -> Catalog {
        let mut words: Vec<u32> = Vec::with_capacity(
            HEADER_WORDS
                + self.entries.len() * ENTRY_WORDS
                + self.deps.len() * 5
                + self.provides.len() * 4
                + self.files.len() * 2
                + self.locations.len() * LOCATION_WORDS
                + self.companions.len() * COMPANION_WORDS
                + self.entries.len() * KEY_WORDS,
        );
        words.push(MAGIC);
        words.push(VERSION);
        words.extend(
            index
                .as_bytes()
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
        );
        for n in [
            self.entries.len(),
            self.deps.len(),
            self.provides.len(),
            self.files.len(),
            self.strings.len(),
            self.locations.len(),
            self.companions.len(),
        ] {
            words.push(n as u32);
        }
        words.extend_from_slice(bytemuck::cast_slice(&self.entries));
        words.extend_from_slice(bytemuck::cast_slice(&self.deps));
        words.extend_from_slice(bytemuck::cast_slice(&self.provides));
        words.extend_from_slice(bytemuck::cast_slice(&self.files));
        // None (Sources, rpm) or one per entry (Packages).
        debug_assert!(self.locations.is_empty() || self.locations.len() == self.entries.len());
        words.extend_from_slice(bytemuck::cast_slice(&self.locations));
        // None (apt) or one per entry (rpm).
        debug_assert!(self.companions.is_empty() || self.companions.len() == self.entries.len());
        words.extend_from_slice(bytemuck::cast_slice(&self.companions));
        let mut by_key: Vec<KeyRec> = self
            .keys
            .iter()
            .zip(&self.entries)
            .enumerate()
            .map(|(i, (key, e))| KeyRec {
                key: *key,
                ordinal: i as u32,
                version: e.version,
            })
            .collect();
        by_key.sort_unstable_by_key(|r| (r.key, r.ordinal));
        words.extend_from_slice(bytemuck::cast_slice(&by_key));
        let strings = String::from_utf8(self.strings).expect("interned from &str");
        Catalog::from_tables(Tables::Built { words, strings }, index)
            .expect("a catalog just built is well-formed")
    }
}

/// The header, the tables and the strings: as built, or the cache file
/// mapped (page-aligned, so castable to words; only the pages used are
/// read, and nothing is copied).
#[derive(Debug)]
enum Tables {
    Built {
        words: Vec<u32>,
        strings: String,
    },
    /// `words` words of tables, then the strings, checked to be UTF-8.
    Mapped {
        map: memmap2::Mmap,
        words: usize,
    },
}

impl Tables {
    fn words(&self) -> &[u32] {
        match self {
            Self::Built { words, .. } => words,
            Self::Mapped { map, words } => bytemuck::cast_slice(&map[..words * 4]),
        }
    }

    fn strings(&self) -> &str {
        match self {
            Self::Built { strings, .. } => strings,
            // SAFETY: `Catalog::read` checked these bytes are UTF-8, and the
            // mapping does not change (see there).
            Self::Mapped { map, words } => unsafe {
                std::str::from_utf8_unchecked(&map[words * 4..])
            },
        }
    }
}

/// A loaded catalog. Cheap to query; see the module docs.
#[derive(Debug)]
pub struct Catalog {
    tables: Tables,
    entries: Range<usize>,
    deps: Range<usize>,
    provides: Range<usize>,
    files: Range<usize>,
    locations: Range<usize>,
    companions: Range<usize>,
    by_key: Range<usize>,
}

/// The word ranges of the tables a header announces, and the length of
/// the strings; `None` unless it is a header of this format for `index`.
fn layout(header: &[u32], index: Sha256Digest) -> Option<([Range<usize>; 7], usize)> {
    if header.len() < HEADER_WORDS || header[0] != MAGIC || header[1] != VERSION {
        return None;
    }
    if bytemuck::cast_slice::<u32, u8>(&header[2..10]) != index.as_bytes() {
        return None;
    }
    let mut at = HEADER_WORDS;
    let mut tables = [(); 7].map(|_| 0..0);
    // The by-key table has one record per entry.
    let counts = [10, 11, 12, 13, 15, 16, 10].map(|i| header[i] as usize);
    let sizes = [
        ENTRY_WORDS,
        5,
        4,
        2,
        LOCATION_WORDS,
        COMPANION_WORDS,
        KEY_WORDS,
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let end = at.checked_add(counts[i].checked_mul(size)?)?;
        tables[i] = at..end;
        at = end;
    }
    Some((tables, header[14] as usize))
}

impl Catalog {
    /// Lets the kernel drop the pages of a mapped catalog from this
    /// process (they stay in the page cache, and a later read maps them
    /// again): a command that goes through several large catalogs one at
    /// a time (publish, a part after another) then holds one at a time.
    pub fn release_pages(&self) {
        if let Tables::Mapped { map, .. } = &self.tables {
            // SAFETY: a read-only shared mapping of a file that does not
            // change (see `Catalog::read`): dropped pages read back the
            // same bytes.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// `None` when `tables` are not a catalog of `index` in this format.
    fn from_tables(tables: Tables, index: Sha256Digest) -> Option<Self> {
        let words = tables.words();
        let (
            [
                entries,
                deps,
                provides,
                files,
                locations,
                companions,
                by_key,
            ],
            strings_len,
        ) = layout(words, index)?;
        if by_key.end != words.len() || strings_len != tables.strings().len() {
            return None;
        }
        Some(Self {
            tables,
            entries,
            deps,
            provides,
            files,
            locations,
            companions,
            by_key,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len() / ENTRY_WORDS
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        bytemuck::cast_slice(&self.tables.words()[self.entries.clone()])
    }

    /// apt binary catalogs: where entry `ordinal` names its package file;
    /// `None` for a stanza that is not a valid binary stanza, and for
    /// other catalogs.
    pub fn location(&self, ordinal: u32) -> Option<&Location> {
        self.table::<Location>(&self.locations, [ordinal, ordinal.saturating_add(1)])
            .first()
            .filter(|l| **l != Location::NONE)
    }

    /// rpm catalogs: where entry `ordinal`'s package has its records in
    /// `filelists.xml` and `other.xml`.
    pub fn companions(&self, ordinal: u32) -> Option<&Companions> {
        self.table::<Companions>(&self.companions, [ordinal, ordinal.saturating_add(1)])
            .first()
    }

    /// The entries whose stanzas lie within the runs of `selection`, in
    /// order.
    pub fn selected(&self, selection: &crate::content::Selection) -> Vec<u32> {
        let entries = self.entries();
        let mut out = Vec::new();
        let mut i = 0;
        for run in &selection.0 {
            while i < entries.len() && entries[i].span[0] < run.start {
                i += 1;
            }
            while i < entries.len() && entries[i].span[1] <= run.end {
                out.push(i as u32);
                i += 1;
            }
        }
        out
    }

    /// Every entry's key, sorted by key then position.
    pub fn by_key(&self) -> &[KeyRec] {
        bytemuck::cast_slice(&self.tables.words()[self.by_key.clone()])
    }

    fn table<T: Pod>(&self, words: &Range<usize>, range: [u32; 2]) -> &[T] {
        let all: &[T] = bytemuck::cast_slice(&self.tables.words()[words.clone()]);
        all.get(range[0] as usize..range[1] as usize).unwrap_or(&[])
    }

    /// The string a handle names; a damaged handle reads as `""`.
    pub fn str(&self, s: Str) -> &str {
        self.get(s).unwrap_or("")
    }

    pub fn get(&self, s: Str) -> Option<&str> {
        if s.off == u32::MAX {
            return None;
        }
        let start = s.off as usize;
        self.tables.strings().get(start..start + s.len as usize)
    }

    /// The dependency groups of `e` (read each alternative with
    /// [`Catalog::dep`]).
    pub fn dep_groups<'a>(&'a self, e: &Entry) -> impl Iterator<Item = &'a [DepRec]> + 'a {
        let mut rest: &[DepRec] = self.table(&self.deps, e.deps);
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let len = 1 + rest[1..]
                .iter()
                .take_while(|d| d.flags & GROUP_START == 0)
                .count();
            let (group, next) = rest.split_at(len);
            rest = next;
            Some(group)
        })
    }

    pub fn dep(&self, d: &DepRec) -> Dep<'_> {
        Dep {
            name: self.str(d.name),
            any_arch: d.flags & ANY_ARCH != 0,
            rel: code_op(d.flags).zip(self.get(d.version)),
        }
    }

    /// What `e` provides, with the provided version if any.
    pub fn provides<'a>(
        &'a self,
        e: &Entry,
    ) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let recs: &[Provide] = self.table(&self.provides, e.provides);
        recs.iter().map(|p| (self.str(p.name), self.get(p.version)))
    }

    /// rpm: the files `e` lists.
    pub fn files<'a>(&'a self, e: &Entry) -> impl Iterator<Item = &'a str> + 'a {
        let recs: &[Str] = self.table(&self.files, e.files);
        recs.iter().map(|s| self.str(*s))
    }

    fn write_to(&self, out: &mut impl io::Write) -> io::Result<()> {
        out.write_all(bytemuck::cast_slice(self.tables.words()))?;
        out.write_all(self.tables.strings().as_bytes())
    }

    /// Reads the catalog of `index` from `path`; `None` if it is missing,
    /// of another index or format, or damaged.
    fn read(path: &Path, index: Sha256Digest) -> Option<Self> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: a mapping is undefined behaviour if the file changes while
        // mapped. Catalog files are written whole to a temporary file and
        // renamed into place, never written again (a rebuild replaces the
        // name, not the inode), and the cache is depot's private data.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let header: &[u32] = bytemuck::try_cast_slice(map.get(..HEADER_WORDS * 4)?).ok()?;
        let ([.., by_key], strings_len) = layout(header, index)?;
        let strings = map.get(by_key.end * 4..)?;
        if strings.len() != strings_len || std::str::from_utf8(strings).is_err() {
            return None;
        }
        let tables = Tables::Mapped {
            words: by_key.end,
            map,
        };
        Self::from_tables(tables, index)
    }
}

/// Builds the catalog of an apt index text (`Packages` or `Sources`).
pub fn build_apt(
    index: Sha256Digest,
    kind: IndexKind,
    text: &str,
) -> Result<Catalog, CatalogError> {
    if text.len() >= u32::MAX as usize {
        return Err(CatalogError::TooLarge { index });
    }
    let malformed = |source| CatalogError::Malformed {
        index,
        source: Box::new(source),
    };
    let mut b = Builder::default();
    for p in deb822::paragraphs(text) {
        let p = p.map_err(|e| malformed(e.into()))?;
        let missing = |field| {
            malformed(aptfmt::AptFormatError::MissingField {
                line: p.line,
                field,
            })
        };
        let name = p.get("Package").ok_or_else(|| missing("Package"))?;
        let version = p.get("Version").ok_or_else(|| missing("Version"))?;
        let (arch, source) = match kind {
            IndexKind::Source => ("source", name),
            _ => (
                p.get("Architecture")
                    .ok_or_else(|| missing("Architecture"))?,
                p.get("Source")
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or(name),
            ),
        };
        let mut deps = Vec::new();
        if kind != IndexKind::Source {
            for f in ["Pre-Depends", "Depends"] {
                if let Some(v) = p.get(f) {
                    deps.extend(parse_apt_deps(v));
                }
            }
        }
        let provides = p
            .get("Provides")
            .map(|v| {
                parse_apt_deps(v)
                    .into_iter()
                    .flatten()
                    .map(|d| (d.name, d.rel.map(|(_, v)| v)))
                    .collect()
            })
            .unwrap_or_default();
        let location = (kind != IndexKind::Source).then(|| location_of(text, &p));
        b.push(NewEntry {
            name,
            version,
            arch,
            source,
            priority: p.get("Priority"),
            pkgid: None,
            span: p.span.clone(),
            deps,
            provides,
            files: Vec::new(),
            location,
            companions: None,
        });
    }
    Ok(b.finish(index))
}

/// The texts of one rpm repository state's `primary.xml`, and of its
/// `filelists.xml` and `other.xml` when it has them.
pub struct RpmTexts {
    pub primary: String,
    pub filelists: Option<String>,
    pub other: Option<String>,
}

/// rpm's comparison flags as an [`Op`].
fn rpm_op(flags: &str) -> Option<Op> {
    Some(match flags {
        "EQ" => Op::Eq,
        "LT" => Op::Lt,
        "LE" => Op::Le,
        "GT" => Op::Gt,
        "GE" => Op::Ge,
        _ => return None,
    })
}

/// Builds the catalog of an rpm repository state, named by its primary
/// blob `index`. A package's files are those primary lists (`/etc`, bin
/// directories), plus, from filelists, any path that a package of the
/// same state requires and primary does not list.
pub fn build_rpm(index: Sha256Digest, texts: &RpmTexts) -> Result<Catalog, CatalogError> {
    let too_large = [
        Some(&texts.primary),
        texts.filelists.as_ref(),
        texts.other.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|t| t.len() >= u32::MAX as usize);
    if too_large {
        return Err(CatalogError::TooLarge { index });
    }
    let malformed = |source| CatalogError::MalformedRpm {
        index,
        source: Box::new(source),
    };
    let (_, parsed) = rpmfmt::parse_primary(&texts.primary).map_err(malformed)?;
    // Each companion document's `<package>` spans by pkgid.
    let spans = |text: &Option<String>| -> Result<FxHashMap<String, [u32; 2]>, CatalogError> {
        let Some(text) = text else {
            return Ok(FxHashMap::default());
        };
        let split = rpmfmt::split_packages(text).map_err(malformed)?;
        Ok(split
            .packages
            .into_iter()
            .filter_map(|(r, id)| id.map(|id| (id, [r.start as u32, r.end as u32])))
            .collect())
    };
    let (filelists, other) = (spans(&texts.filelists)?, spans(&texts.other)?);
    let listed: std::collections::HashSet<&str> = parsed
        .iter()
        .flat_map(|p| p.files.iter().map(String::as_str))
        .collect();
    let wanted: std::collections::BTreeSet<&str> = parsed
        .iter()
        .flat_map(|p| p.requires.iter())
        .map(|d| d.name.as_str())
        .filter(|n| n.starts_with('/') && !listed.contains(n))
        .collect();
    let mut b = Builder::default();
    for p in &parsed {
        let version = p.evr.to_string();
        let evrs: Vec<Option<String>> = p
            .requires
            .iter()
            .map(|e| e.evr.as_ref().map(ToString::to_string))
            .collect();
        let deps = p
            .requires
            .iter()
            .zip(&evrs)
            // rpmlib() capabilities are provided by rpm itself, and
            // rich (boolean) dependencies are not resolved here.
            .filter(|(e, _)| !e.name.starts_with("rpmlib(") && !e.name.starts_with('('))
            .map(|(e, evr)| {
                vec![Dep {
                    name: &e.name,
                    any_arch: true,
                    rel: e.flags.as_deref().and_then(rpm_op).zip(evr.as_deref()),
                }]
            })
            .collect();
        let provided: Vec<Option<String>> = p
            .provides
            .iter()
            .map(|e| e.evr.as_ref().map(ToString::to_string))
            .collect();
        let mut provides: Vec<(&str, Option<&str>)> = p
            .provides
            .iter()
            .zip(&provided)
            .map(|(e, v)| (e.name.as_str(), v.as_deref()))
            .collect();
        provides.push((&p.name, Some(&version)));
        let mut files: Vec<&str> = p.files.iter().map(String::as_str).collect();
        let in_filelists = filelists.get(&p.sha256);
        if let (Some(text), Some(span)) = (&texts.filelists, in_filelists)
            && !wanted.is_empty()
        {
            let fragment = &text[span[0] as usize..span[1] as usize];
            files.extend(
                wanted
                    .iter()
                    .filter(|f| fragment.contains(&format!(">{f}</file>"))),
            );
        }
        b.push(NewEntry {
            name: &p.name,
            version: &version,
            arch: &p.arch,
            source: &p.name,
            priority: None,
            pkgid: Some(&p.sha256),
            span: p.span.clone(),
            deps,
            provides,
            files,
            location: None,
            companions: Some(Companions {
                filelists: in_filelists.copied().unwrap_or(Companions::NONE),
                other: other.get(&p.sha256).copied().unwrap_or(Companions::NONE),
            }),
        });
    }
    Ok(b.finish(index))
}

/// Where binary stanza `p` of `text` names its file, if it is a valid
/// binary stanza.
fn location_of(text: &str, p: &deb822::Paragraph<'_>) -> Location {
    let (Ok(fields), Some(line)) = (aptfmt::BinaryStanza::of(p), p.field("Filename")) else {
        return Location::NONE;
    };
    let start = fields.filename.as_ptr() as usize - text.as_ptr() as usize;
    let size = fields.expected.size;
    Location {
        line: [line.span.start as u32, line.span.end as u32],
        path: [start as u32, (start + fields.filename.len()) as u32],
        size: [size as u32, (size >> 32) as u32],
        sha256: *fields.expected.sha256.as_bytes(),
    }
}

/// A catalog being loaded or loaded, shared by the threads that want it.
type Slot = Arc<Mutex<Option<Arc<Catalog>>>>;

/// The catalog cache under the data root, the catalogs this process has
/// loaded (two snapshots of one mirror share their index blobs), and the
/// pool their index blobs are read from. Clones share what was loaded.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    loaded: Arc<Mutex<FxHashMap<(Sha256Digest, Tag), Slot>>>,
    pool: Pool,
}

impl Cache {
    /// The pool whose index blobs the catalogs describe.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn new(root: &crate::root::Root) -> Self {
        Self {
            pool: Pool::new(root),
            dir: root.catalog_cache_dir(),
            loaded: Arc::default(),
        }
    }

    pub fn path(&self, index: &Sha256Digest, kind: IndexKind) -> PathBuf {
        self.tagged(index, Tag::of(kind))
    }

    /// The cache file of the rpm catalog of `primary` with its state's
    /// `filelists` and `other` blobs.
    pub fn rpm_path(&self, primary: &Sha256Digest, companions: &RpmCompanions) -> PathBuf {
        self.tagged(primary, Tag::rpm(companions))
    }

    fn tagged(&self, index: &Sha256Digest, tag: Tag) -> PathBuf {
        let hex = index.to_hex();
        self.dir
            .join(&hex[..2])
            .join(format!("{hex}.{}", tag.ext()))
    }

    /// The catalog of apt index `index`: the cached one, else built from
    /// the text `read` returns and cached (best effort: a read-only data
    /// root still works, only slower).
    pub fn apt<E: From<CatalogError>>(
        &self,
        index: Sha256Digest,
        kind: IndexKind,
        read: impl FnOnce() -> Result<String, E>,
    ) -> Result<Arc<Catalog>, E> {
        self.load(index, Tag::of(kind), || {
            Ok(build_apt(index, kind, &read()?)?)
        })
    }

    /// The catalog of the rpm repository state whose primary blob is
    /// `primary`: the cached one, else built from the texts `read`
    /// returns and cached (best effort, as [`Self::apt`]).
    pub fn rpm<E: From<CatalogError>>(
        &self,
        primary: Sha256Digest,
        companions: &RpmCompanions,
        read: impl FnOnce() -> Result<RpmTexts, E>,
    ) -> Result<Arc<Catalog>, E> {
        self.load(primary, Tag::rpm(companions), || {
            Ok(build_rpm(primary, &read()?)?)
        })
    }

    /// The cached rpm catalog of `primary` with `companions`, if sound
    /// (as [`Self::cached`]).
    pub fn cached_rpm(&self, primary: Sha256Digest, companions: &RpmCompanions) -> Option<Catalog> {
        Catalog::read(&self.rpm_path(&primary, companions), primary)
    }

    fn load<E>(
        &self,
        index: Sha256Digest,
        tag: Tag,
        build: impl FnOnce() -> Result<Catalog, E>,
    ) -> Result<Arc<Catalog>, E> {
        let slot = self.slot(index, tag);
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let path = self.tagged(&index, tag);
        let catalog = match Catalog::read(&path, index) {
            Some(c) => c,
            None => {
                let catalog = build()?;
                store(&path, &catalog);
                catalog
            }
        };
        let catalog = Arc::new(catalog);
        *slot = Some(catalog.clone());
        Ok(catalog)
    }

    /// The cached catalog of apt index `index`, if the cache holds a sound
    /// one; never builds or writes one (for `depot check`, which is
    /// read-only, and gc's mark, which falls back to the index text), and
    /// does not keep it: a walk over thirty nights reads each catalog
    /// once, and holding them all would hold thirty mappings.
    pub fn cached(&self, index: Sha256Digest, kind: IndexKind) -> Option<Catalog> {
        Catalog::read(&self.path(&index, kind), index)
    }

    /// Builds the catalog of apt index `index` from its `text` afresh and
    /// replaces the cached one: for a cache file that loads but turns out
    /// damaged.
    pub fn rebuild(
        &self,
        index: Sha256Digest,
        kind: IndexKind,
        text: &str,
    ) -> Result<Arc<Catalog>, CatalogError> {
        let catalog = build_apt(index, kind, text)?;
        store(&self.path(&index, kind), &catalog);
        let catalog = Arc::new(catalog);
        let slot = self.slot(index, Tag::of(kind));
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(catalog.clone());
        Ok(catalog)
    }

    /// This process's slot for the catalog of `index`.
    fn slot(&self, index: Sha256Digest, tag: Tag) -> Slot {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.entry((index, tag)).or_default().clone()
    }
}

/// What a cached catalog describes, and its file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tag {
    /// `Packages` (of debs or, all the same, of udebs).
    Deb,
    Src,
    /// An rpm state, named by its primary blob and the first 64 bits of
    /// its filelists' and other's (0: none).
    Rpm(u64, u64),
}

impl Tag {
    fn of(kind: IndexKind) -> Self {
        match kind {
            IndexKind::Binary | IndexKind::Udeb => Self::Deb,
            IndexKind::Source => Self::Src,
        }
    }

    fn rpm(companions: &RpmCompanions) -> Self {
        let start = |d: &Option<Sha256Digest>| {
            d.map_or(0, |d| {
                let b = d.as_bytes();
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            })
        };
        Self::Rpm(start(&companions.filelists), start(&companions.other))
    }

    fn ext(self) -> String {
        match self {
            Self::Deb => "deb".into(),
            Self::Src => "src".into(),
            Self::Rpm(f, o) => format!("{f:016x}{o:016x}.rpm"),
        }
    }
}

/// Writes `catalog` to the cache at `path` (best effort: a read-only data
/// root still works, only slower).
fn store(path: &Path, catalog: &Catalog) {
    if let Err(e) = write_atomic(path, catalog) {
        tracing::debug!("cannot cache the catalog at {}: {e}", path.display());
    }
}

/// Builds and caches the catalog of every index blob of `content` not
/// cached yet. A failure only means the catalog is built when first needed.
pub fn warm(cache: &Cache, content: &crate::content::AptContent) {
    for index in &content.indices {
        for part in &index.parts {
            if cache.path(&part.blob, index.kind).exists() {
                continue;
            }
            let read =
                || crate::content::index_text(cache.pool(), &part.blob).map_err(CatalogError::from);
            if let Err(e) = cache.apt(part.blob, index.kind, read) {
                tracing::debug!("catalog of index {}: {e}", part.blob);
            }
        }
    }
}

fn write_atomic(path: &Path, catalog: &Catalog) -> io::Result<()> {
    let dir = path.parent().expect("catalog paths have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    let mut out = io::BufWriter::new(tmp.as_file_mut());
    catalog.write_to(&mut out)?;
    io::Write::flush(&mut out)?;
    drop(out);
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "Package: a\nVersion: 1.0\nArchitecture: amd64\nPriority: required\n\
Depends: b (>= 2) | c:any, d [i386]\nProvides: x (= 3), y\n\n\
Package: b\nVersion: 2\nArchitecture: all\nSource: bsrc (1)\n";

    /// A cache in a temporary folder (kept while the folder lives).
    fn temp_cache() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&crate::root::Root::open(dir.path()).unwrap());
        (dir, cache)
    }

    #[test]
    fn apt_catalog_round_trips_through_the_cache() {
        let (_dir, cache) = temp_cache();
        let digest = Sha256Digest::of(INDEX.as_bytes());
        let built = cache
            .apt::<CatalogError>(digest, IndexKind::Binary, || Ok(INDEX.to_owned()))
            .unwrap();
        let cached = cache
            .apt::<CatalogError>(digest, IndexKind::Binary, || panic!("read from the cache"))
            .unwrap();
        for c in [&built, &cached] {
            assert_eq!(c.len(), 2);
            let [a, b] = c.entries() else { panic!() };
            assert_eq!(c.str(a.name), "a");
            assert_eq!(c.get(a.priority), Some("required"));
            assert_eq!(c.get(b.priority), None);
            assert_eq!(c.str(b.source), "bsrc");
            let deps: Vec<Vec<String>> = c
                .dep_groups(a)
                .map(|g| g.iter().map(|d| c.dep(d).to_string()).collect())
                .collect();
            assert_eq!(deps, [vec!["b (>= 2)", "c:any"], vec!["d"]]);
            let mut by_key: Vec<(Key, u32)> =
                c.by_key().iter().map(|r| (r.key, r.ordinal)).collect();
            assert!(by_key.is_sorted());
            by_key.sort_by_key(|(_, o)| *o);
            assert_eq!(by_key, [(key_of("a", "amd64"), 0), (key_of("b", "all"), 1)]);
            let provides: Vec<_> = c.provides(a).collect();
            assert_eq!(provides, [("x", Some("3")), ("y", None)]);
            assert_eq!(
                &INDEX[a.span[0] as usize..a.span[1] as usize],
                &INDEX[..INDEX.find("\n\n").unwrap() + 1]
            );
        }
    }

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm"><name>a</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/><checksum type="sha256" pkgid="YES">aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</checksum><size package="1"/><location href="a.rpm"/><format><rpm:requires><rpm:entry name="/opt/b/data"/></rpm:requires></format></package>
<package type="rpm"><name>b</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/><checksum type="sha256" pkgid="YES">bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb</checksum><size package="1"/><location href="b.rpm"/></package>
</metadata>
"#;

    fn filelists(b_file: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\n<filelists packages=\"2\">\n\
             <package pkgid=\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\" name=\"b\"><file>{b_file}</file></package>\n\
             <package pkgid=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" name=\"a\"></package>\n\
             </filelists>\n"
        )
    }

    /// An rpm catalog holds each package's filelists span (matched by
    /// pkgid, whatever the order) and the filelists paths its state's
    /// packages require; it is cached per primary *and* companion blobs,
    /// so the same primary with other filelists gets a catalog of its own.
    #[test]
    fn rpm_catalogs_hold_companion_spans_and_are_cached_per_state() {
        let (_dir, cache) = temp_cache();
        let primary = Sha256Digest::of(PRIMARY.as_bytes());
        let load = |files: &str| {
            let companions = RpmCompanions {
                filelists: Some(Sha256Digest::of(files.as_bytes())),
                other: None,
            };
            let texts = || {
                Ok::<_, CatalogError>(RpmTexts {
                    primary: PRIMARY.to_owned(),
                    filelists: Some(files.to_owned()),
                    other: None,
                })
            };
            let built = cache.rpm(primary, &companions, texts).unwrap();
            assert!(cache.rpm_path(&primary, &companions).is_file());
            let again = cache.cached_rpm(primary, &companions).unwrap();
            (built, again)
        };
        let first = filelists("/opt/b/data");
        for c in [&*load(&first).0, &load(&first).1] {
            let [a, b] = c.entries() else { panic!() };
            assert_eq!((c.str(a.name), c.str(b.name)), ("a", "b"));
            let span = c.companions(1).unwrap().filelists;
            assert!(first[span[0] as usize..span[1] as usize].contains("name=\"b\""));
            assert!(c.companions(1).unwrap().other == Companions::NONE);
            assert_eq!(c.files(b).collect::<Vec<_>>(), ["/opt/b/data"]);
        }
        let second = filelists("/opt/b/other");
        let (c, _) = load(&second);
        let [_, b] = c.entries() else { panic!() };
        assert_eq!(c.files(b).count(), 0, "a catalog of its own");
    }

    #[test]
    fn damaged_or_foreign_cache_files_are_rebuilt() {
        let (_dir, cache) = temp_cache();
        let digest = Sha256Digest::of(INDEX.as_bytes());
        let path = cache.path(&digest, IndexKind::Binary);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        for junk in [&b"DCAT"[..], b"", b"0123456789abcdef"] {
            std::fs::write(&path, junk).unwrap();
            let c = cache
                .apt::<CatalogError>(digest, IndexKind::Binary, || Ok(INDEX.to_owned()))
                .unwrap();
            assert_eq!(c.len(), 2);
        }
        // A catalog of another index under this name is not used.
        let other = build_apt(Sha256Digest::of(b"x"), IndexKind::Binary, INDEX).unwrap();
        write_atomic(&path, &other).unwrap();
        assert!(Catalog::read(&path, digest).is_none());
        // A truncated one neither.
        write_atomic(&path, &build_apt(digest, IndexKind::Binary, INDEX).unwrap()).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 1).unwrap();
        assert!(Catalog::read(&path, digest).is_none());
    }

    #[test]
    fn binary_entries_locate_their_checked_files() {
        let sha = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
        let text = format!(
            "Package: a\nVersion: 1\nArchitecture: all\nFilename: ./a_1_all.deb\n\
             Size: 4294967299\nSHA256: {sha}\n\n\
             Package: b\nVersion: 1\nArchitecture: all\nFilename: ../b.deb\nSize: 1\nSHA256: {sha}\n"
        );
        let c = build_apt(Sha256Digest::of(text.as_bytes()), IndexKind::Binary, &text).unwrap();
        let a = c.location(0).unwrap();
        let range = |r: [u32; 2]| &text[r[0] as usize..r[1] as usize];
        assert_eq!(range(a.line), "Filename: ./a_1_all.deb\n");
        assert_eq!(range(a.path), "a_1_all.deb");
        assert_eq!(a.size(), 4_294_967_299);
        assert_eq!(a.sha256().to_hex(), sha);
        // A hostile path gets no location; publishing then parses the
        // index and names the stanza.
        assert!(c.location(1).is_none());
        let sources = build_apt(Sha256Digest::of(b"s"), IndexKind::Source, INDEX).unwrap();
        assert!(sources.location(0).is_none());
    }

    #[test]
    fn apt_dependencies_parse_with_alternatives_and_qualifiers() {
        let groups = parse_apt_deps(
            "libc6 (>= 2.36), python3:any | python3-minimal, foo [amd64] <!nocheck>, bar (<< 2) [i386]",
        );
        assert_eq!(groups[3][0].rel, Some((Op::Lt, "2")));
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0][0].rel, Some((Op::Ge, "2.36")));
        assert!(groups[1][0].any_arch);
        assert_eq!(groups[1][1].name, "python3-minimal");
        assert_eq!(groups[2][0].name, "foo");
        assert_eq!(groups[0][0].to_string(), "libc6 (>= 2.36)");
    }
}
