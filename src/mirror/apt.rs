//! Updating an apt mirror: Release → verified indices → verified packages.
//!
//! See [`crate::formats::apt`] for the repository format. The order is what
//! makes a failed update harmless: the Release is verified first, every
//! index is checked against it, every stanza is checked (fields present,
//! paths safe) before any package is fetched, and the new state is returned
//! for saving only when every package is in the pool.
//!
//! The apt half of the update steps (`steps.rs`): what differs for apt.
//! It never writes the mirror's state; the shared commit step does.

//!
//! The steps themselves are shared with rpm ([`super::steps`]); [`Apt`]
//! supplies the apt side of each.

use std::collections::HashSet;

use url::Url;

use super::download::{Outcome, Wanted};
use super::steps::{self, Kind, Listed, Planned, Run, Signed};
use super::{MirrorDef, MirrorError, MirrorState, SignedIndex};
use crate::content::{AptContent, Content, IndexKind, IndexPart, IndexRef};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::apt::{self as fmt, Release};
use crate::formats::deb822;
use crate::http::redact;

/// An apt upstream: where its Release and indices live, and where the
/// `Filename`s of its indices are relative to.
pub(super) struct Apt {
    dir: Url,
    files_url: Url,
}

impl Apt {
    pub(super) fn new(def: &MirrorDef) -> Result<Self, MirrorError> {
        let invalid = |e: url::ParseError| MirrorError::InvalidDefinition(e.to_string());
        let base = Url::parse(&def.url).map_err(invalid)?;
        let rel = if def.is_flat() {
            def.suite.clone()
        } else {
            format!("dists/{}/", def.suite)
        };
        let dir = base.join(&rel).map_err(invalid)?;
        let files_url = if def.is_flat() { dir.clone() } else { base };
        Ok(Self { dir, files_url })
    }
}

/// The files an apt plan needs in the pool, paths as the indices give them.
#[derive(Default)]
pub(super) struct AptFiles {
    wanted: Vec<FileRef>,
    /// Each file once, though several indices name it.
    seen: HashSet<Sha256Digest>,
}

struct FileRef {
    path: String,
    expected: Expected,
}

/// An index the plan fetches.
struct PlannedIndex {
    component: String,
    kind: IndexKind,
    arch: Option<String>,
    /// Under the Release's directory, uncompressed.
    path: String,
}

/// Verified indices, pooled, and the files they name.
pub(super) struct AptVerified {
    content: AptContent,
    files: AptFiles,
}

impl Kind for Apt {
    type Verified = AptVerified;
    type Files = AptFiles;

    async fn fetch(&self, run: &Run<'_>) -> Result<Signed, MirrorError> {
        run.phase("fetching Release");
        let inrelease_url = self.url_of("InRelease")?;
        let fetched = run
            .fetcher
            .get_optional(&inrelease_url, run.reporter)
            .await
            .map_err(run.fetch_err("fetching InRelease".into()))?;
        if let Some(raw) = fetched {
            let raw_digest = Sha256Digest::of(&raw);
            let trusted = match run.verifier()? {
                Some(mut v) => {
                    v.verify_clearsigned(&raw)
                        .map_err(|source| MirrorError::Signature {
                            mirror: run.def.name.clone(),
                            url: redact(&inrelease_url),
                            source,
                        })?
                }
                None => {
                    let text = String::from_utf8_lossy(&raw);
                    deb822::strip_clearsign(&text)
                        .unwrap_or_else(|| text.into_owned())
                        .into_bytes()
                }
            };
            return Ok(Signed {
                trusted,
                url: inrelease_url,
                raw_digest,
            });
        }
        let release_url = self.url_of("Release")?;
        let raw = run
            .get_listed(&release_url, "fetching Release".into(), || {
                format!("no InRelease or Release at {}", redact(&self.dir))
            })
            .await?;
        let mut raw_digest = steps::raw_digest(&raw);
        let sig_url = self.url_of("Release.gpg")?;
        run.check_detached(&raw, &release_url, &sig_url, &mut raw_digest)
            .await?;
        Ok(Signed {
            trusted: raw,
            url: release_url,
            raw_digest: Sha256Digest::from_hasher(raw_digest),
        })
    }

    async fn verify(&self, run: &Run<'_>, signed: &str) -> Result<AptVerified, MirrorError> {
        let release = Release::parse(signed).map_err(|source| MirrorError::Malformed {
            mirror: run.def.name.clone(),
            url: redact(&self.dir) + "Release",
            source: Box::new(source),
        })?;
        let planned = plan_indices(run, &release)?;
        run.phase("fetching indices");
        let mut indices = Vec::new();
        let mut files = AptFiles::default();
        for index in planned {
            let text = self.fetch_index(run, &release, &index.path).await?;
            let shown = redact(&self.dir) + &index.path;
            if run.def.is_flat() {
                let archs = flat_archs(run.def, &release);
                pool_flat(run, index, archs, &text, &shown, &mut indices, &mut files)?;
            } else {
                let entries = collect_files(run, index.kind, &text, &shown, &mut files)?;
                let blob = run.pool.put(text.as_bytes()).map_err(|e| run.pool_err(e))?;
                indices.push(IndexRef {
                    component: index.component,
                    kind: index.kind,
                    arch: index.arch,
                    parts: vec![IndexPart::whole(blob)],
                    entries,
                });
            }
        }
        let content = AptContent {
            origin: release.origin,
            label: release.label,
            suite: release.suite.unwrap_or_else(|| run.def.suite.clone()),
            codename: release.codename,
            files_url: self.files_url.to_string(),
            indices,
        };
        Ok(AptVerified { content, files })
    }

    /// The verify step pooled the indices and collected their files in the
    /// same pass over each index: the plan is what it found.
    fn plan(
        &self,
        _run: &Run<'_>,
        verified: AptVerified,
        _previous: Option<&MirrorState>,
    ) -> Result<Planned<AptFiles>, MirrorError> {
        Ok(Planned {
            content: Content::Apt(verified.content),
            files: verified.files,
        })
    }

    /// Only the kept stanzas' files (every stanza was checked all the same).
    fn files_of_filtered(
        &self,
        run: &Run<'_>,
        filtered: &Content,
        mut files: AptFiles,
    ) -> Result<AptFiles, MirrorError> {
        let Content::Apt(content) = filtered else {
            return Ok(files);
        };
        files.wanted.clear();
        files.seen.clear();
        for index in &content.indices {
            let text = index.text(&run.pool).map_err(|source| MirrorError::Index {
                mirror: run.def.name.clone(),
                source,
            })?;
            collect_files(run, index.kind, &text, &index.dist_path(), &mut files)?;
        }
        Ok(files)
    }

    async fn download(
        &self,
        run: &Run<'_>,
        content: &Content,
        files: AptFiles,
    ) -> Result<Outcome, MirrorError> {
        let wanted = files
            .wanted
            .into_iter()
            .map(|w| {
                Ok(Wanted {
                    url: run.upstream_url(&self.files_url, "path", &w.path)?,
                    expected: w.expected,
                })
            })
            .collect::<Result<Vec<_>, MirrorError>>()?;
        // Catalogs are built while the packages download, so the first
        // filter or merge of a snapshot of this state does not wait for them.
        // (An rpm state's catalog is built by the first command that reads
        // its packages: built here it would hold the state's ~100 MB of
        // repodata text while the downloads run.)
        let warming = match content {
            Content::Apt(a) => {
                let (catalogs, a) = (crate::packages::catalog::Cache::new(run.root), a.clone());
                Some(std::thread::spawn(move || {
                    crate::packages::catalog::warm(&catalogs, &a)
                }))
            }
            Content::Rpm(_) => None,
        };
        let outcome = run.download_missing(wanted).await?;
        if let Some(w) = warming {
            let _ = w.join();
        }
        Ok(outcome)
    }
}

impl Apt {
    /// A file of the Release's directory (InRelease, Release, Release.gpg).
    fn url_of(&self, name: &str) -> Result<Url, MirrorError> {
        self.dir
            .join(name)
            .map_err(|e| MirrorError::InvalidDefinition(e.to_string()))
    }

    /// Fetches one index (best compression Release lists), checks it
    /// against Release and returns its uncompressed text.
    async fn fetch_index(
        &self,
        run: &Run<'_>,
        release: &Release,
        path: &str,
    ) -> Result<String, MirrorError> {
        let candidates = [".xz", ".gz", ""].map(|s| format!("{path}{s}"));
        let Some((chosen, expected)) = candidates
            .iter()
            .find_map(|c| release.sha256.get(c).map(|e| (c, e)))
        else {
            return Err(run.upstream(format!(
                "the Release file lists no `{path}` index (with SHA256)"
            )));
        };
        let open = release
            .sha256
            .get(path)
            .filter(|_| chosen != path)
            .map(|e| ((Some(e.size), e.sha256), SignedIndex::Release));
        run.fetch_listed(Listed {
            url: run.upstream_url(&self.dir, "index path", chosen)?,
            name: chosen,
            signed: SignedIndex::Release,
            expected: (Some(expected.size), expected.sha256),
            open,
        })
        .await
    }
}

/// Which indices to fetch: every component × architecture the mirror asks
/// for (all Release lists when it asks for none), or a flat repository's
/// single `Packages`.
fn plan_indices(run: &Run<'_>, release: &Release) -> Result<Vec<PlannedIndex>, MirrorError> {
    let def = run.def;
    if def.is_flat() {
        if def.architectures.is_empty() && release.architectures.is_empty() {
            return Err(run.upstream(
                "a flat repository whose Release lists no Architectures needs --arch".into(),
            ));
        }
        return Ok(vec![PlannedIndex {
            component: "main".into(),
            kind: IndexKind::Binary,
            arch: None,
            path: "Packages".into(),
        }]);
    }
    let components = if def.components.is_empty() {
        &release.components
    } else {
        &def.components
    };
    let archs: Vec<&String> = if def.architectures.is_empty() {
        release
            .architectures
            .iter()
            .filter(|a| *a != "all" && *a != "source")
            .collect()
    } else {
        def.architectures.iter().collect()
    };
    if components.is_empty() || archs.is_empty() {
        return Err(run.upstream(
            "no components or architectures to mirror (none given, none in Release)".into(),
        ));
    }
    let mut plan = Vec::new();
    let index = |c: &String, kind, arch: Option<&String>, path| PlannedIndex {
        component: c.clone(),
        kind,
        arch: arch.cloned(),
        path,
    };
    for c in components {
        for a in &archs {
            plan.push(index(
                c,
                IndexKind::Binary,
                Some(a),
                format!("{c}/binary-{a}/Packages"),
            ));
            if def.with_udebs {
                let path = format!("{c}/debian-installer/binary-{a}/Packages");
                plan.push(index(c, IndexKind::Udeb, Some(a), path));
            }
        }
        if def.with_sources {
            plan.push(index(
                c,
                IndexKind::Source,
                None,
                format!("{c}/source/Sources"),
            ));
        }
    }
    Ok(plan)
}

/// The architectures a flat repository's index is split into.
fn flat_archs(def: &MirrorDef, release: &Release) -> Vec<String> {
    if def.architectures.is_empty() {
        release
            .architectures
            .iter()
            .filter(|a| *a != "all")
            .cloned()
            .collect()
    } else {
        def.architectures.clone()
    }
}

/// Pools a flat repository's single index as one index per architecture.
fn pool_flat(
    run: &Run<'_>,
    index: PlannedIndex,
    archs: Vec<String>,
    text: &str,
    shown: &str,
    indices: &mut Vec<IndexRef>,
    files: &mut AptFiles,
) -> Result<(), MirrorError> {
    // Check every stanza of the whole index first, so a malformed stanza of
    // another architecture is not silently skipped.
    collect_files(run, index.kind, text, shown, &mut AptFiles::default())?;
    for a in archs {
        let subset = flat_arch_subset(text, &a).map_err(|source| MirrorError::Malformed {
            mirror: run.def.name.clone(),
            url: shown.to_owned(),
            source: Box::new(source),
        })?;
        let entries = collect_files(run, index.kind, &subset, shown, files)?;
        let blob = run
            .pool
            .put(subset.as_bytes())
            .map_err(|e| run.pool_err(e))?;
        indices.push(IndexRef {
            component: index.component.clone(),
            kind: index.kind,
            arch: Some(a),
            parts: vec![IndexPart::whole(blob)],
            entries,
        });
    }
    Ok(())
}

/// Checks every stanza of an index and collects the files it names.
fn collect_files(
    run: &Run<'_>,
    kind: IndexKind,
    text: &str,
    index_name: &str,
    files: &mut AptFiles,
) -> Result<usize, MirrorError> {
    let malformed = |source| MirrorError::Malformed {
        mirror: run.def.name.clone(),
        url: index_name.to_owned(),
        source: Box::new(source),
    };
    let mut entries = 0;
    match kind {
        IndexKind::Binary | IndexKind::Udeb => {
            for stanza in fmt::binary_stanzas(text) {
                let stanza = stanza.map_err(malformed)?;
                entries += 1;
                if files.seen.insert(stanza.expected.sha256) {
                    files.wanted.push(FileRef {
                        path: stanza.filename.to_owned(),
                        expected: stanza.expected,
                    });
                }
            }
        }
        IndexKind::Source => {
            for stanza in fmt::source_stanzas(text) {
                let stanza = stanza.map_err(malformed)?;
                entries += 1;
                for (file, expected) in &stanza.files {
                    if files.seen.insert(expected.sha256) {
                        files.wanted.push(FileRef {
                            path: format!("{}/{file}", stanza.directory),
                            expected: *expected,
                        });
                    }
                }
            }
        }
    }
    Ok(entries)
}

/// The stanzas of a flat repository's single Packages index that belong to
/// `arch` (its own and `Architecture: all`).
fn flat_arch_subset(text: &str, arch: &str) -> Result<String, fmt::AptFormatError> {
    let mut out = String::new();
    for p in deb822::paragraphs(text) {
        let p = p?;
        let a = p.get("Architecture").unwrap_or("");
        if a == arch || a == "all" {
            out.push_str(&text[p.span.clone()]);
            out.push('\n');
        }
    }
    Ok(out)
}
