//! Updating an rpm mirror: repomd.xml (+ signature) → verified metadata →
//! verified packages. See [`crate::formats::rpm`] for the format; the steps
//! are shared with apt ([`super::steps`]) and [`Rpm`] supplies the rpm side
//! of each.
//!
//! Modes: `mirror` makes each update equal to upstream; `additive` keeps
//! the packages an earlier update saw and upstream has since dropped (their
//! `primary`/`filelists`/`other` entries are carried over and spliced into
//! the new metadata), like Pulp's additive sync. `updateinfo`, `group` and
//! `modules` always come from the newest upstream state.
//!
//! The rpm half of the update steps (`steps.rs`): what differs for rpm.
//! It never writes the mirror's state; the shared commit step does.

use std::collections::{HashMap, HashSet};

use url::Url;

use super::download::{Outcome, Wanted};
use super::steps::{self, Kind, Listed, Planned, Run, Signed};
use super::{MirrorDef, MirrorError, MirrorState, Mode, SignedIndex};
use crate::content::{Content, RpmContent, RpmMetadataRef};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::rpm::{self as fmt, PrimaryPackage, RepomdRecord, RpmFormatError};
use crate::http::redact;

/// The metadata types depot keeps; others (sqlite databases, zchunk
/// variants, prestodelta) are skipped because they can be regenerated or
/// are optional for dnf.
const KEPT: [&str; 6] = [
    "primary",
    "filelists",
    "other",
    "updateinfo",
    "group",
    "modules",
];

/// `group_gz` → `group`; `primary_db` etc. are not wanted.
fn base_type(mdtype: &str) -> Option<&'static str> {
    let kept = |t: &str| KEPT.iter().find(|k| **k == t).copied();
    if let Some(t) = kept(mdtype) {
        return Some(t);
    }
    let (base, suffix) = mdtype.rsplit_once('_')?;
    kept(base).filter(|_| matches!(suffix, "gz" | "xz" | "zst" | "bz2"))
}

fn malformed(def: &MirrorDef, url: &Url, source: RpmFormatError) -> MirrorError {
    MirrorError::Upstream {
        mirror: def.name.clone(),
        problem: format!("{} is malformed: {source}", redact(url)),
    }
}

fn hex_digest(def: &MirrorDef, url: &Url, value: &str) -> Result<Sha256Digest, MirrorError> {
    value
        .parse()
        .map_err(|_| malformed(def, url, RpmFormatError::ChecksumType(value.to_owned())))
}

/// An rpm upstream: the folder that holds `repodata/`.
pub(super) struct Rpm {
    base: Url,
}

impl Rpm {
    pub(super) fn new(def: &MirrorDef) -> Result<Self, MirrorError> {
        let base =
            Url::parse(&def.url).map_err(|e| MirrorError::InvalidDefinition(e.to_string()))?;
        Ok(Self { base })
    }
}

/// The verified metadata texts, by kept type, in repomd.xml's order.
#[derive(Default)]
pub(super) struct RpmVerified {
    chosen: Vec<&'static str>,
    /// Uncompressed text and the URL it came from.
    texts: HashMap<&'static str, (String, Url)>,
    /// The file's own extension (`xml`, `yaml`, …) once decompressed.
    exts: HashMap<&'static str, String>,
}

/// The packages an rpm plan needs in the pool.
pub(super) struct RpmFiles {
    packages: Vec<PrimaryPackage>,
    /// Where their entries came from, for error messages.
    primary_url: Url,
}

/// Packages whose own signatures to check: href and SHA-256.
type ToCheck = Vec<(String, Sha256Digest)>;

/// Per-package copies of the `primary`/`filelists`/`other` entries and
/// their documents' root tags, for splicing in additive mode.
#[derive(Default)]
struct Fragments {
    entries: HashMap<&'static str, Vec<String>>,
    roots: HashMap<&'static str, (String, String)>,
}

impl Kind for Rpm {
    type Verified = RpmVerified;
    type Files = RpmFiles;

    async fn fetch(&self, run: &Run<'_>) -> Result<Signed, MirrorError> {
        run.phase("fetching repomd.xml");
        let repomd_url = self.url_of("repodata/repomd.xml")?;
        let repomd = run
            .get_listed(&repomd_url, "fetching repomd.xml".into(), || {
                format!("no repository at {} (404)", redact(&repomd_url))
            })
            .await?;
        let mut raw_digest = steps::raw_digest(&repomd);
        let sig_url = self.url_of("repodata/repomd.xml.asc")?;
        run.check_detached(&repomd, &repomd_url, &sig_url, &mut raw_digest)
            .await?;
        Ok(Signed {
            trusted: repomd,
            url: repomd_url,
            raw_digest: Sha256Digest::from_hasher(raw_digest),
        })
    }

    async fn verify(&self, run: &Run<'_>, signed: &str) -> Result<RpmVerified, MirrorError> {
        let repomd_url = self.url_of("repodata/repomd.xml")?;
        let records = fmt::parse_repomd(signed).map_err(|e| malformed(run.def, &repomd_url, e))?;
        // One record per kept type; an uncompressed `group` beside
        // `group_gz` is the same content, so the first one listed wins.
        let mut chosen: Vec<(&'static str, &RepomdRecord)> = Vec::new();
        for r in &records {
            if let Some(t) = base_type(&r.mdtype)
                && !chosen.iter().any(|(c, _)| *c == t)
            {
                chosen.push((t, r));
            }
        }
        if !chosen.iter().any(|(t, _)| *t == "primary") {
            let e = RpmFormatError::NoRecord("primary");
            return Err(malformed(run.def, &repomd_url, e));
        }
        run.phase("fetching metadata");
        let mut verified = RpmVerified::default();
        for (mdtype, rec) in chosen {
            let text = self.fetch_record(run, &repomd_url, rec).await?;
            let file = rec.href.rsplit('/').next().unwrap_or(&rec.href);
            let file = file
                .trim_end_matches(".gz")
                .trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .trim_end_matches(".bz2");
            let ext = file.rsplit_once('.').map_or("xml", |(_, e)| e);
            verified.chosen.push(mdtype);
            verified.exts.insert(mdtype, ext.to_owned());
            verified.texts.insert(mdtype, text);
        }
        Ok(verified)
    }

    fn plan(
        &self,
        run: &Run<'_>,
        verified: RpmVerified,
        previous: Option<&MirrorState>,
    ) -> Result<Planned<RpmFiles>, MirrorError> {
        let RpmVerified {
            chosen,
            texts,
            exts,
        } = verified;
        let def = run.def;
        let primary_url = texts["primary"].1.clone();
        let (split, mut packages) =
            fmt::parse_primary(&texts["primary"].0).map_err(|e| malformed(def, &primary_url, e))?;
        let mut fragments = check_documents(run, &texts, &exts, split)?;
        let carried = match previous {
            Some(prev) if def.mode == Mode::Additive => {
                carry_over(run, prev, &primary_url, &mut packages, &mut fragments)?
            }
            _ => 0,
        };
        let mut metadata = Vec::new();
        for mdtype in chosen {
            let blob = match (fragments.entries.get(mdtype), fragments.roots.get(mdtype)) {
                (Some(frags), Some((tag, name))) if carried > 0 => {
                    let refs: Vec<&str> = frags.iter().map(String::as_str).collect();
                    run.pool.put(fmt::splice(tag, name, &refs).as_bytes())
                }
                _ => run.pool.put(texts[mdtype].0.as_bytes()),
            };
            metadata.push(RpmMetadataRef::whole(
                mdtype,
                &exts[mdtype],
                blob.map_err(|e| run.pool_err(e))?,
            ));
        }
        // Nothing after the plan needs the texts: they are freed here,
        // before the downloads.
        let content = RpmContent {
            files_url: self.base.to_string(),
            metadata,
            packages: packages.len(),
        };
        Ok(Planned {
            content: Content::Rpm(content),
            files: RpmFiles {
                packages,
                primary_url,
            },
        })
    }

    fn files_of_filtered(
        &self,
        run: &Run<'_>,
        filtered: &Content,
        mut files: RpmFiles,
    ) -> Result<RpmFiles, MirrorError> {
        let Content::Rpm(content) = filtered else {
            return Ok(files);
        };
        let Some(primary) = content.get("primary") else {
            return Ok(files);
        };
        let text = primary
            .text(&run.pool, content.packages)
            .map_err(|source| MirrorError::Index {
                mirror: run.def.name.clone(),
                source,
            })?;
        files.packages = fmt::primary_locations(&text)
            .map_err(|e| malformed(run.def, &files.primary_url, e))?
            .1;
        Ok(files)
    }

    async fn download(
        &self,
        run: &Run<'_>,
        _content: &Content,
        files: RpmFiles,
    ) -> Result<Outcome, MirrorError> {
        let (wanted, signed) = self.wanted(run, &files)?;
        drop(files);
        let outcome = run.download_missing(wanted).await?;
        if run.def.verify_packages {
            run.phase("checking package signatures");
            let (root, pool, def) = (run.root.clone(), run.pool.clone(), run.def.clone());
            tokio::task::spawn_blocking(move || {
                super::rpm_verify::verify_packages(&root, &pool, &def, &signed)
            })
            .await
            .expect("signature checks do not panic")?;
        }
        Ok(outcome)
    }
}

impl Rpm {
    fn url_of(&self, path: &str) -> Result<Url, MirrorError> {
        self.base
            .join(path)
            .map_err(|e| MirrorError::InvalidDefinition(e.to_string()))
    }

    /// Fetches the metadata file a repomd.xml record lists and checks it.
    async fn fetch_record(
        &self,
        run: &Run<'_>,
        repomd_url: &Url,
        rec: &RepomdRecord,
    ) -> Result<(String, Url), MirrorError> {
        if let Some(why) = fmt::unsafe_href(&rec.href) {
            let href = rec.href.clone();
            let e = RpmFormatError::UnsafePath { href, why };
            return Err(malformed(run.def, repomd_url, e));
        }
        if rec.checksum_type != "sha256" {
            let e = RpmFormatError::ChecksumType(rec.checksum_type.clone());
            return Err(malformed(run.def, repomd_url, e));
        }
        let url = run.upstream_url(&self.base, "location href", &rec.href)?;
        let expected = (rec.size, hex_digest(run.def, &url, &rec.checksum)?);
        let open = match &rec.open_checksum {
            Some(open) => Some((
                (rec.open_size, hex_digest(run.def, &url, open)?),
                SignedIndex::RepomdOpen,
            )),
            None => None,
        };
        let text = run
            .fetch_listed(Listed {
                url: url.clone(),
                name: &rec.href,
                signed: SignedIndex::Repomd,
                expected,
                open,
            })
            .await?;
        Ok((text, url))
    }

    /// The package files to download, each once, and (with
    /// `verify_packages`) the packages whose signatures to check.
    fn wanted(
        &self,
        run: &Run<'_>,
        files: &RpmFiles,
    ) -> Result<(Vec<Wanted>, ToCheck), MirrorError> {
        let def = run.def;
        let mut wanted = Vec::with_capacity(files.packages.len());
        let mut signed = Vec::new();
        let mut seen = HashSet::new();
        for p in &files.packages {
            let sha256 = hex_digest(def, &files.primary_url, &p.sha256)?;
            if !seen.insert(sha256) {
                continue;
            }
            if def.verify_packages {
                signed.push((p.href.clone(), sha256));
            }
            let from = match &p.base {
                Some(b) => self.xml_base(run, b)?,
                None => self.base.clone(),
            };
            wanted.push(Wanted {
                url: run.upstream_url(&from, "location href", &p.href)?,
                expected: Expected {
                    size: p.size,
                    sha256,
                },
            });
        }
        Ok((wanted, signed))
    }

    /// A package's `xml:base`. A relative one is resolved against the
    /// repository URL (not primary.xml's): createrepo_c --baseurl accepts it.
    fn xml_base(&self, run: &Run<'_>, base: &str) -> Result<Url, MirrorError> {
        let mut b = base.to_owned();
        if !b.ends_with('/') {
            b.push('/');
        }
        Url::parse(&b)
            .or_else(|_| self.base.join(&b))
            .map_err(|e| run.upstream(format!("invalid xml:base `{b}`: {e}")))
    }
}

/// Checks that every metadata document splits into packages; in additive
/// mode also keeps a copy of each `primary`/`filelists`/`other` entry (the
/// mirror mode stores texts as they came, so a large repository's metadata
/// is held once, not twice).
fn check_documents(
    run: &Run<'_>,
    texts: &HashMap<&'static str, (String, Url)>,
    exts: &HashMap<&'static str, String>,
    primary: fmt::Split,
) -> Result<Fragments, MirrorError> {
    let mut splits = vec![("primary", primary)];
    for t in ["filelists", "other"] {
        if let Some((text, url)) = texts.get(t) {
            let split = fmt::split_packages(text).map_err(|e| malformed(run.def, url, e))?;
            splits.push((t, split));
        }
    }
    let mut fragments = Fragments::default();
    if run.def.mode == Mode::Additive {
        for (t, split) in &splits {
            let text = &texts[t].0;
            let entries = split
                .packages
                .iter()
                .map(|(r, _)| text[r.clone()].to_owned());
            fragments.entries.insert(t, entries.collect());
            let root = text[split.root_tag.clone()].to_owned();
            fragments.roots.insert(t, (root, split.root_name.clone()));
        }
    }
    drop(splits);
    for t in ["updateinfo", "group", "modules"] {
        if let Some((text, url)) = texts.get(t)
            && exts.get(t).is_some_and(|e| e == "xml")
        {
            fmt::split_packages(text).map_err(|e| malformed(run.def, url, e))?;
        }
    }
    Ok(fragments)
}

/// Additive mode: brings back what the previous state had and upstream
/// dropped; returns how many packages it carried over.
fn carry_over(
    run: &Run<'_>,
    previous: &MirrorState,
    primary_url: &Url,
    packages: &mut Vec<PrimaryPackage>,
    fragments: &mut Fragments,
) -> Result<usize, MirrorError> {
    let Content::Rpm(prev) = &previous.content else {
        return Ok(0);
    };
    let def = run.def;
    let read = |t: &str| -> Result<Option<String>, MirrorError> {
        match prev.get(t) {
            None => Ok(None),
            Some(m) => m
                .text(&run.pool, prev.packages)
                .map(Some)
                .map_err(|source| MirrorError::Index {
                    mirror: def.name.clone(),
                    source,
                }),
        }
    };
    let Some(old_primary) = read("primary")? else {
        return Ok(0);
    };
    let have: HashSet<String> = packages.iter().map(|p| p.sha256.clone()).collect();
    let (old_split, old_pkgs) =
        fmt::parse_primary(&old_primary).map_err(|e| malformed(def, primary_url, e))?;
    let dropped: HashSet<String> = old_pkgs
        .iter()
        .filter(|p| !have.contains(&p.sha256))
        .map(|p| p.sha256.clone())
        .collect();
    let mut carried = 0;
    for (p, (range, _)) in old_pkgs.into_iter().zip(&old_split.packages) {
        if dropped.contains(&p.sha256) {
            if let Some(f) = fragments.entries.get_mut("primary") {
                f.push(old_primary[range.clone()].to_owned());
            }
            carried += 1;
            packages.push(p);
        }
    }
    for t in ["filelists", "other"] {
        if let (Some(old), Some(frags)) = (read(t)?, fragments.entries.get_mut(t)) {
            let s = fmt::split_packages(&old).map_err(|e| malformed(def, primary_url, e))?;
            for (range, id) in &s.packages {
                if id.as_ref().is_some_and(|id| dropped.contains(id)) {
                    frags.push(old[range.clone()].to_owned());
                }
            }
        }
    }
    Ok(carried)
}
