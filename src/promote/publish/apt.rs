//! Publishing an apt repository: `Packages`/`Sources` are the snapshot's
//! stanzas copied verbatim except for `Filename`/`Directory`, which point
//! into the version's own `pool/`.
//!
//! The pool is `pool/COMPONENT/PREFIX/FILE` (PREFIX as in Debian: `b`,
//! `libc`, …) without Debian's extra folder per source package: apt follows
//! `Filename` wherever it points, and for a 63k-package archive the ~30k
//! per-source folders cost as much time to create as all the links. File
//! names are unique in a consistent archive; two different files claiming
//! one name are refused. `Release` lists SHA-256 and size of
//! every index, and `Acquire-By-Hash: yes` with `by-hash/SHA256/` copies
//! lets apt fetch indices race-free while a newer version is switched in.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use url::Url;

use super::options::{PublishError, PublishOptions};
use super::writer::{Writer, rfc2822};
use crate::content::{AptContent, IndexError, IndexKind, IndexPart, Selection, index_text};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::apt as fmt;
use crate::formats::compress::Compression;
use crate::formats::gzip_blocks::{Previous, gzip_paragraphs};
use crate::packages::catalog::{Cache, CatalogError};
use crate::packages::catalog::{Catalog, Entry, Location};
use crate::pool::Pool;
use crate::signing::Signer;

/// An apt snapshot loaded for publishing.
pub(super) struct Prepared {
    pub content: AptContent,
    /// What each index of `content` is written from.
    sources: Vec<IndexSource>,
    pub suite: String,
    /// Package files the pool lacks (on-demand mirrors), with their URLs.
    pub missing: Vec<(Url, Expected)>,
}

/// What one index is written from.
enum IndexSource {
    /// `Packages`: the parts' blobs, spliced by their catalogs' locations
    /// without parsing a stanza.
    Binary(Vec<BinaryPart>),
    /// `Sources`: the text, parsed as it is written.
    Text(String),
}

/// One part of a `Packages` index whose catalog locates every selected
/// entry's `Filename` inside the text of blob `blob` (checked by
/// [`BinaryPart::load`]). The text is mapped from the pool, not copied,
/// and not kept: a release merged from ten 63k-package mirrors has ten
/// 16 MB parts, mapped one at a time, when checked and again when
/// written.
struct BinaryPart {
    blob: Sha256Digest,
    catalog: Arc<Catalog>,
    /// The entries kept, in order; all of them when `None`.
    selected: Option<Vec<u32>>,
}

impl BinaryPart {
    /// The part and its text, checked.
    fn load(
        catalogs: &Cache,
        dist: &str,
        kind: IndexKind,
        part: &IndexPart,
    ) -> Result<(Self, memmap2::Mmap), PublishError> {
        let index_err = |source| PublishError::Index {
            dist: dist.to_owned(),
            source,
        };
        let pool = catalogs.pool();
        let text = pool
            .map(&part.blob)
            .map_err(|e| index_err(IndexError::Pool(e).into()))?;
        let read = || index_text(pool, &part.blob).map_err(CatalogError::from);
        let catalog = catalogs.apt(part.blob, kind, read).map_err(index_err)?;
        let selection = match &part.select {
            None => None,
            Some(select) => {
                Some(Selection::load(pool, select, text.len()).map_err(|e| index_err(e.into()))?)
            }
        };
        let mut this = Self {
            blob: part.blob,
            selected: selection.as_ref().map(|s| catalog.selected(s)),
            catalog,
        };
        if !this.locates_all(&text) {
            // A stanza without a valid file, or a damaged cache: parsing
            // names the stanza; if it finds nothing, the catalog is built
            // afresh from the text and replaces the cached one.
            let utf8 = std::str::from_utf8(&text)
                .map_err(|_| index_err(IndexError::Utf8(part.blob).into()))?;
            if let Some(Err(source)) = fmt::binary_stanzas(utf8).find(Result::is_err) {
                return Err(PublishError::Malformed {
                    dist: dist.to_owned(),
                    source,
                });
            }
            this.catalog = catalogs.rebuild(part.blob, kind, utf8).map_err(index_err)?;
            // The selection maps to entries by their spans: map it again.
            this.selected = selection.as_ref().map(|s| this.catalog.selected(s));
            assert!(
                this.locates_all(&text),
                "a fresh catalog of a well-formed index locates every entry"
            );
        }
        this.catalog.release_pages();
        Ok((this, text))
    }

    /// The part's text, mapped again to be written: the blob that
    /// [`BinaryPart::load`] checked, else an error naming the damage.
    fn text(&self, pool: &Pool, dist: &str) -> Result<memmap2::Mmap, PublishError> {
        let pool_err = |source| PublishError::Index {
            dist: dist.to_owned(),
            source: IndexError::Pool(source).into(),
        };
        let text = pool.map(&self.blob).map_err(pool_err)?;
        if !self.locates_all(&text) {
            return Err(pool_err(crate::pool::PoolError::ChecksumMismatch {
                expected: self.blob,
                actual: Sha256Digest::of(&text),
            }));
        }
        Ok(text)
    }

    fn ordinals(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match &self.selected {
            Some(s) => Box::new(s.iter().copied()),
            None => Box::new(0..self.catalog.len() as u32),
        }
    }

    /// Whether every kept entry has a location whose ranges nest inside
    /// its stanza and the text, stanzas in order and not overlapping, each
    /// `Filename` line where the location says, with a non-empty UTF-8
    /// path. (A catalog is trusted as pool blobs are; this catches a
    /// damaged cache file, not a forged one.)
    fn locates_all(&self, text: &[u8]) -> bool {
        let entries = self.catalog.entries();
        let mut previous_end = 0;
        self.ordinals().all(|o| {
            let (Some(e), Some(l)) = (entries.get(o as usize), self.catalog.location(o)) else {
                return false;
            };
            let [s0, s1] = e.span.map(|x| x as usize);
            let [l0, l1] = l.line.map(|x| x as usize);
            let [p0, p1] = l.path.map(|x| x as usize);
            let ok = previous_end <= s0
                && s0 <= l0
                && l0 < p0
                && p0 < p1
                && p1 <= l1
                && l1 <= s1
                && s1 <= text.len()
                && text[l0..]
                    .get(..9)
                    .is_some_and(|f| f.eq_ignore_ascii_case(b"Filename:"))
                && std::str::from_utf8(&text[p0..p1]).is_ok();
            previous_end = s1;
            ok
        })
    }

    /// The kept entries, each with its location and its file's path
    /// upstream, in `text` (checked by [`BinaryPart::locates_all`]).
    fn kept<'a>(
        &'a self,
        text: &'a [u8],
    ) -> impl Iterator<Item = (&'a Entry, &'a Location, &'a str)> + 'a {
        let entries = self.catalog.entries();
        self.ordinals().map(move |o| {
            let l = self.catalog.location(o).expect("checked by load");
            let [p0, p1] = l.path.map(|x| x as usize);
            let path = std::str::from_utf8(&text[p0..p1]).expect("checked by load");
            (&entries[o as usize], l, path)
        })
    }

    /// The kept entries' package files: (path upstream, what it must be).
    fn files<'a>(&'a self, text: &'a [u8]) -> impl Iterator<Item = (&'a str, Expected)> + 'a {
        self.kept(text).map(|(_, l, path)| {
            let expected = Expected {
                size: l.size(),
                sha256: l.sha256(),
            };
            (path, expected)
        })
    }
}

pub(super) fn prepare(
    catalogs: &Cache,
    dist: &str,
    content: &AptContent,
    opts: &PublishOptions,
    complete: bool,
) -> Result<Prepared, PublishError> {
    let suite = match &opts.suite {
        Some(s) => s.clone(),
        None => content
            .codename
            .clone()
            .or_else(|| Some(content.suite.clone()))
            .filter(|s| fmt::unsafe_path_reason(s).is_none())
            .unwrap_or_else(|| dist.to_owned()),
    };
    if fmt::unsafe_path_reason(&suite).is_some() {
        return Err(PublishError::InvalidSuite(suite));
    }
    let pool = catalogs.pool();
    let base = Url::parse(&content.files_url)
        .map_err(|_| PublishError::InvalidSuite(content.files_url.clone()))?;
    let mut missing = Missing {
        pool: (!complete).then_some(pool),
        base: &base,
        seen: HashSet::new(),
        files: Vec::new(),
    };
    let mut sources = Vec::with_capacity(content.indices.len());
    for index in &content.indices {
        sources.push(match index.kind {
            IndexKind::Binary | IndexKind::Udeb => {
                let mut parts = Vec::with_capacity(index.parts.len());
                for part in &index.parts {
                    let (part, text) = BinaryPart::load(catalogs, dist, index.kind, part)?;
                    if !complete {
                        for (path, e) in part.files(&text) {
                            missing.want(path, e);
                        }
                    }
                    parts.push(part);
                }
                IndexSource::Binary(parts)
            }
            IndexKind::Source => {
                let text = index.text(pool).map_err(|source| PublishError::Index {
                    dist: dist.to_owned(),
                    source: source.into(),
                })?;
                if !complete {
                    for s in fmt::source_stanzas(&text) {
                        let s = s.map_err(|source| PublishError::Malformed {
                            dist: dist.to_owned(),
                            source,
                        })?;
                        for (file, e) in &s.files {
                            missing.want(&format!("{}/{file}", s.directory), *e);
                        }
                    }
                }
                IndexSource::Text(text)
            }
        });
    }
    Ok(Prepared {
        content: content.clone(),
        sources,
        suite,
        missing: missing.files,
    })
}

/// Writes one `Packages` index: each kept stanza copied verbatim but for
/// its `Filename` line, and every file linked into the version's pool.
fn write_binary(
    w: &mut Writer<'_>,
    component: &str,
    parts: &[BinaryPart],
) -> Result<Vec<u8>, PublishError> {
    // The kept stanzas, and a little for the longer `Filename` lines: a
    // release keeps a part of each source's stanzas.
    let kept: usize = parts
        .iter()
        .flat_map(|p| p.ordinals().map(|o| &p.catalog.entries()[o as usize]))
        .map(|e| (e.span[1] - e.span[0]) as usize + 16)
        .sum();
    for part in parts {
        part.catalog.release_pages();
    }
    let mut out = Vec::with_capacity(kept);
    let mut rel = String::new();
    for part in parts {
        let text = &part.text(w.pool(), w.dist)?;
        for (e, l, path) in part.kept(text) {
            let base = path.rsplit('/').next().unwrap_or(path);
            let source = part.catalog.str(e.source);
            rel.clear();
            let _ = write!(rel, "pool/{component}/{}/{base}", fmt::pool_prefix(source));
            w.link(&rel, l.sha256())?;
            out.extend_from_slice(&text[e.span[0] as usize..l.line[0] as usize]);
            out.extend_from_slice(b"Filename: ");
            out.extend_from_slice(rel.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&text[l.line[1] as usize..e.span[1] as usize]);
            if out.last() != Some(&b'\n') {
                out.push(b'\n');
            }
            out.push(b'\n');
        }
        part.catalog.release_pages();
    }
    Ok(out)
}

/// Writes one `Sources` index: stanzas copied verbatim but for
/// `Directory`, and every file linked into the version's pool.
fn write_sources(w: &mut Writer<'_>, component: &str, text: &str) -> Result<Vec<u8>, PublishError> {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for stanza in fmt::source_stanzas(text) {
        let s = stanza.map_err(|source| PublishError::Malformed {
            dist: w.dist.to_owned(),
            source,
        })?;
        let dir = format!("pool/{component}/{}", fmt::pool_prefix(s.name));
        for (file, expected) in &s.files {
            w.link(&format!("{dir}/{file}"), expected.sha256)?;
        }
        let field = s
            .paragraph
            .field("Directory")
            .expect("checked by source_stanzas");
        out.push_str(&text[s.paragraph.span.start..field.span.start]);
        let _ = writeln!(out, "Directory: {dir}");
        out.push_str(&text[field.span.end..s.paragraph.span.end]);
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// Package files the pool lacks (mirrors with the on-demand policy), each
/// once, with their URLs; nothing is looked up when `pool` is `None` (a
/// complete snapshot).
struct Missing<'a> {
    pool: Option<&'a Pool>,
    base: &'a Url,
    seen: HashSet<Sha256Digest>,
    files: Vec<(Url, Expected)>,
}

impl Missing<'_> {
    fn want(&mut self, path: &str, e: Expected) {
        if let Some(pool) = self.pool
            && self.seen.insert(e.sha256)
            && !pool.contains(&e.sha256)
            && let Ok(url) = self.base.join(path)
        {
            self.files.push((url, e));
        }
    }
}

/// The previous version's `dists/SUITE/`: its indices and the SHA-256 and
/// size its `Release` lists for each.
struct PreviousVersion {
    dir: std::path::PathBuf,
    release: std::collections::BTreeMap<String, Expected>,
}

impl PreviousVersion {
    fn open(dists: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dists.join("Release")).ok()?;
        let release = fmt::Release::parse(&text).ok()?.sha256;
        Some(Self {
            dir: dists.to_owned(),
            release,
        })
    }

    /// The plain and gzip copies of index `rel` (`main/binary-amd64/
    /// Packages`), mapped, when both are there as the `Release` lists them
    /// (the gzip copy hashed: its members are copied as they are).
    fn index(&self, rel: &str) -> Option<(memmap2::Mmap, memmap2::Mmap)> {
        let gz_rel = format!("{rel}.gz");
        let map = |rel: &str| {
            let expected = self.release.get(rel)?;
            let file = std::fs::File::open(self.dir.join(rel)).ok()?;
            // SAFETY: the files of a published version are never written
            // again (a version is renamed aside and then deleted whole,
            // and a mapped file outlives its unlinking).
            let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
            (map.len() as u64 == expected.size).then_some((map, expected.sha256))
        };
        let (plain, _) = map(rel)?;
        let (gz, sha256) = map(&gz_rel)?;
        (Sha256Digest::of(&gz) == sha256).then_some((plain, gz))
    }
}

/// One compressed copy of an index: gzip as blocks of paragraphs, reusing
/// the previous version's members for the blocks that did not change.
fn compress_index(
    c: Compression,
    plain: &[u8],
    previous: Option<Previous<'_>>,
) -> std::io::Result<Vec<u8>> {
    match c {
        Compression::Gz => {
            let made = gzip_paragraphs(plain, previous)?;
            tracing::debug!(
                blocks = made.blocks,
                reused = made.reused,
                "gzip blocks of an index"
            );
            Ok(made.gz)
        }
        c => c.compress(plain),
    }
}

/// Writes every file of the version into `w.stage`; returns the Release's
/// SHA-256. The gzip copies of the indices reuse what they can of those
/// of `previous` (the version folder `dev` served, when there is one).
pub(super) fn write_version(
    w: &mut Writer<'_>,
    opts: &PublishOptions,
    prepared: &Prepared,
    when: Timestamp,
    signer: Option<&dyn Signer>,
    previous: Option<&Path>,
) -> Result<Sha256Digest, PublishError> {
    let (content, sources, suite) = (
        &prepared.content,
        &prepared.sources,
        prepared.suite.as_str(),
    );
    let dists = format!("dists/{suite}");
    let previous = previous.and_then(|dir| PreviousVersion::open(&dir.join(&dists)));
    let mut checksums: Vec<(String, u64, Sha256Digest)> = Vec::new();
    let mut compressions = vec![Compression::None];
    let requested = if opts.compress.is_empty() {
        vec![Compression::Gz, Compression::Xz]
    } else {
        opts.compress.clone()
    };
    for c in &requested {
        if !compressions.contains(c) {
            compressions.push(*c);
        }
    }
    w.with_links(|w| {
        // Rewriting plans the links, which workers make meanwhile.
        let mut plains = Vec::with_capacity(sources.len());
        for (index, source) in content.indices.iter().zip(sources) {
            plains.push(match source {
                IndexSource::Binary(parts) => write_binary(w, &index.component, parts)?,
                IndexSource::Text(text) => write_sources(w, &index.component, text)?,
            });
        }
        // A night that changed little plans fewer links than a batch:
        // they are made while the indices are compressed, and the file
        // list is written meanwhile.
        w.hand_off();
        w.finish_early()?;
        for (index, plain) in content.indices.iter().zip(&plains) {
            let rel = index.dist_path();
            let old = previous.as_ref().and_then(|p| p.index(&rel));
            let old = old.as_ref().map(|(plain, gz)| Previous { plain, gz });
            let stage = w.stage.clone();
            let path = |c: Compression| stage.join(format!("{dists}/{rel}{}", c.suffix()));
            // Made with the index's own folder, its parent.
            let by_hash_dir = path(Compression::None).with_file_name("by-hash/SHA256");
            w.ensure_dir(&by_hash_dir)?;
            // The plain text is written on a thread of its own and hashed
            // on this one, while each compressed copy is made, hashed and
            // written on another (gzip on every core when much changed):
            // on a small night, writing is as much of the work as the rest.
            let written = std::thread::scope(|s| {
                let write = |c: Compression, bytes: &[u8]| {
                    let path = path(c);
                    std::fs::write(&path, bytes).map_err(|source| PublishError::Io { path, source })
                };
                let plain_writer = s.spawn(move || write(Compression::None, plain));
                let handles: Vec<_> = compressions
                    .iter()
                    .filter(|c| **c != Compression::None)
                    .map(|&c| {
                        s.spawn(move || {
                            let bytes = compress_index(c, plain, old).map_err(|source| {
                                PublishError::Io {
                                    path: path(c),
                                    source,
                                }
                            })?;
                            let digest = Sha256Digest::of(&bytes);
                            write(c, &bytes)?;
                            Ok::<_, PublishError>((c, bytes.len() as u64, digest))
                        })
                    })
                    .collect();
                let mut written = vec![(
                    Compression::None,
                    plain.len() as u64,
                    Sha256Digest::of(plain),
                )];
                let panicked = "index writers do not panic";
                plain_writer.join().expect(panicked)?;
                for h in handles {
                    written.push(h.join().expect(panicked)?);
                }
                Ok::<_, PublishError>(written)
            })?;
            for (c, size, digest) in written {
                let file_rel = format!("{rel}{}", c.suffix());
                let by_hash = by_hash_dir.join(digest.to_string());
                crate::fsutil::link_or_copy(&path(c), &by_hash).map_err(w.io(&by_hash))?;
                checksums.push((file_rel, size, digest));
            }
        }
        Ok(())
    })?;

    let components = content.components();
    let archs = content.architectures();
    let mut release = String::new();
    let origin = content.origin.clone().unwrap_or_else(|| opts.dist.clone());
    let label = content.label.clone().unwrap_or_else(|| opts.dist.clone());
    let _ = writeln!(release, "Origin: {origin}");
    let _ = writeln!(release, "Label: {label}");
    let _ = writeln!(release, "Suite: {suite}");
    let _ = writeln!(release, "Codename: {suite}");
    let _ = writeln!(release, "Date: {}", rfc2822(when));
    let _ = writeln!(release, "Architectures: {}", archs.join(" "));
    let _ = writeln!(release, "Components: {}", components.join(" "));
    let _ = writeln!(
        release,
        "Description: {} published by depot from snapshot {}",
        opts.dist, opts.snapshot
    );
    let _ = writeln!(release, "Acquire-By-Hash: yes");
    let _ = writeln!(release, "SHA256:");
    for (path, size, digest) in &checksums {
        let _ = writeln!(release, " {digest} {size:>10} {path}");
    }
    w.write_file(&format!("{dists}/Release"), release.as_bytes())?;
    if let Some(signer) = signer {
        let sign_err = |source| PublishError::Signing {
            dist: opts.dist.clone(),
            source,
        };
        let inrelease = signer.clearsign(release.as_bytes()).map_err(sign_err)?;
        w.write_file(&format!("{dists}/InRelease"), &inrelease)?;
        let detached = signer.detach_sign(release.as_bytes()).map_err(sign_err)?;
        w.write_file(&format!("{dists}/Release.gpg"), &detached)?;
    }
    Ok(Sha256Digest::of(release.as_bytes()))
}
