//! Updating an apt mirror: Release → verified indices → verified packages.
//!
//! See [`crate::formats::apt`] for the repository format. The order is what
//! makes a failed update harmless: the Release is verified first, every
//! index is checked against it, every stanza is checked (fields present,
//! paths safe) before any package is fetched, and the new state is returned
//! for saving only when every package is in the pool.

use std::collections::HashSet;

use url::Url;

use super::{MirrorDef, MirrorError, MirrorState, SignedIndex, UpdateOptions, UpdateSummary};
use crate::content::{AptContent, Content, IndexKind, IndexPart, IndexRef};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::apt::{self as fmt, Release};
use crate::formats::compress::Compression;
use crate::formats::deb822;
use crate::http::{Fetcher, redact};
use crate::report::{Event, Reporter};
use crate::root::Root;
use crate::signing::Verifier;

struct Ctx<'a> {
    def: &'a MirrorDef,
    fetcher: Fetcher,
    reporter: &'a dyn Reporter,
}

impl Ctx<'_> {
    fn fetch_err(&self, what: String) -> impl FnOnce(crate::http::FetchError) -> MirrorError + '_ {
        move |source| MirrorError::Fetch {
            mirror: self.def.name.clone(),
            what,
            source: Box::new(source),
        }
    }

    fn upstream(&self, problem: String) -> MirrorError {
        MirrorError::Upstream {
            mirror: self.def.name.clone(),
            problem,
        }
    }
}

fn join(base: &Url, path: &str) -> Result<Url, url::ParseError> {
    base.join(path)
}

/// Where the Release and the indices of `def` live.
fn release_dir(def: &MirrorDef) -> Result<Url, MirrorError> {
    let base = Url::parse(&def.url).map_err(|e| MirrorError::Invalid(e.to_string()))?;
    let rel = if def.is_flat() {
        def.suite.clone()
    } else {
        format!("dists/{}/", def.suite)
    };
    join(&base, &rel).map_err(|e| MirrorError::Invalid(e.to_string()))
}

/// Fetches and verifies the Release; returns its trusted text and the digest
/// of the raw upstream bytes (for no-op detection).
async fn fetch_release(ctx: &Ctx<'_>, dir: &Url) -> Result<(String, Sha256Digest), MirrorError> {
    let def = ctx.def;
    let mut verifier = match &def.keyring {
        Some(k) if !def.no_verify => {
            Some(Verifier::new(k).map_err(|source| MirrorError::Signature {
                mirror: def.name.clone(),
                url: k.display().to_string(),
                source,
            })?)
        }
        _ => None,
    };
    let url_of = |name: &str| join(dir, name).map_err(|e| MirrorError::Invalid(e.to_string()));
    let inrelease_url = url_of("InRelease")?;
    let fetched = ctx
        .fetcher
        .get_optional(&inrelease_url, ctx.reporter)
        .await
        .map_err(ctx.fetch_err("fetching InRelease".into()))?;
    if let Some(raw) = fetched {
        let raw_digest = Sha256Digest::of(&raw);
        let text = match verifier.as_mut() {
            Some(v) => v
                .verify_clearsigned(&raw)
                .map_err(|source| MirrorError::Signature {
                    mirror: def.name.clone(),
                    url: redact(&inrelease_url),
                    source,
                })?,
            None => {
                let text = String::from_utf8_lossy(&raw);
                deb822::strip_clearsign(&text)
                    .unwrap_or_else(|| text.into_owned())
                    .into_bytes()
            }
        };
        let text = String::from_utf8(text)
            .map_err(|_| ctx.upstream(format!("{} is not UTF-8", redact(&inrelease_url))))?;
        return Ok((text, raw_digest));
    }
    let release_url = url_of("Release")?;
    let raw = ctx
        .fetcher
        .get_optional(&release_url, ctx.reporter)
        .await
        .map_err(ctx.fetch_err("fetching Release".into()))?
        .ok_or_else(|| ctx.upstream(format!("no InRelease or Release at {}", redact(dir))))?;
    let mut digest_input = raw.clone();
    if let Some(v) = verifier.as_mut() {
        let sig_url = url_of("Release.gpg")?;
        let sig = ctx
            .fetcher
            .get_optional(&sig_url, ctx.reporter)
            .await
            .map_err(ctx.fetch_err("fetching Release.gpg".into()))?
            .ok_or_else(|| MirrorError::Unsigned {
                mirror: def.name.clone(),
                url: redact(&release_url),
            })?;
        v.verify_detached(&raw, &sig)
            .map_err(|source| MirrorError::Signature {
                mirror: def.name.clone(),
                url: redact(&sig_url),
                source,
            })?;
        digest_input.extend_from_slice(&sig);
    }
    let text = String::from_utf8(raw)
        .map_err(|_| ctx.upstream(format!("{} is not UTF-8", redact(&release_url))))?;
    Ok((text, Sha256Digest::of(&digest_input)))
}

/// Fetches one index (best compression Release lists), checks it against
/// Release and returns its uncompressed text.
async fn fetch_index(
    ctx: &Ctx<'_>,
    dir: &Url,
    release: &Release,
    path: &str,
) -> Result<String, MirrorError> {
    let candidates = [".xz", ".gz", ""].map(|s| format!("{path}{s}"));
    let Some((chosen, expected)) = candidates
        .iter()
        .find_map(|c| release.sha256.get(c).map(|e| (c, e)))
    else {
        return Err(ctx.upstream(format!(
            "the Release file lists no `{path}` index (with SHA256)"
        )));
    };
    let url = join(dir, chosen).map_err(|e| MirrorError::Invalid(e.to_string()))?;
    let shown = redact(&url);
    let raw = ctx
        .fetcher
        .get_optional(&url, ctx.reporter)
        .await
        .map_err(ctx.fetch_err(format!("fetching {chosen}")))?
        .ok_or_else(|| ctx.upstream(format!("{shown} is listed in Release but missing")))?;
    check(&raw, expected).map_err(|source| MirrorError::IndexMismatch {
        mirror: ctx.def.name.clone(),
        subject: shown.clone(),
        signed: SignedIndex::Release,
        source: Box::new(source),
    })?;
    let plain = Compression::from_path(chosen)
        .decompress(&raw)
        .map_err(|source| MirrorError::Decompress {
            mirror: ctx.def.name.clone(),
            url: shown.clone(),
            source,
        })?;
    if let Some(expected) = release.sha256.get(path).filter(|_| chosen != path) {
        check(&plain, expected).map_err(|source| MirrorError::IndexMismatch {
            mirror: ctx.def.name.clone(),
            subject: format!("the uncompressed content of {shown}"),
            signed: SignedIndex::Release,
            source: Box::new(source),
        })?;
    }
    String::from_utf8(plain).map_err(|_| ctx.upstream(format!("{shown} is not UTF-8")))
}

fn check(bytes: &[u8], expected: &Expected) -> Result<(), crate::pool::PoolError> {
    crate::pool::check_bytes(bytes, Some(expected.size), expected.sha256)
}

/// A file the update needs in the pool.
struct Wanted {
    path: String,
    expected: Expected,
}

/// Checks every stanza of an index and collects the files it names.
fn collect_files(
    ctx: &Ctx<'_>,
    kind: IndexKind,
    text: &str,
    index_name: &str,
    wanted: &mut Vec<Wanted>,
    seen: &mut HashSet<Sha256Digest>,
) -> Result<usize, MirrorError> {
    let malformed = |source| MirrorError::Malformed {
        mirror: ctx.def.name.clone(),
        url: index_name.to_owned(),
        source: Box::new(source),
    };
    let mut entries = 0;
    match kind {
        IndexKind::Binary | IndexKind::Udeb => {
            for stanza in fmt::binary_stanzas(text) {
                let stanza = stanza.map_err(malformed)?;
                entries += 1;
                if seen.insert(stanza.expected.sha256) {
                    wanted.push(Wanted {
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
                    if seen.insert(expected.sha256) {
                        wanted.push(Wanted {
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

pub(super) async fn update(
    root: &Root,
    def: &MirrorDef,
    previous: Option<&MirrorState>,
    opts: &UpdateOptions,
    reporter: &dyn Reporter,
) -> Result<(Option<MirrorState>, UpdateSummary), MirrorError> {
    let (pool, fetcher) = super::start(root, def)?;
    let ctx = Ctx {
        def,
        fetcher,
        reporter,
    };
    let dir = release_dir(def)?;
    reporter.report(Event::Phase {
        subject: &def.name,
        message: "fetching Release",
    });
    let (release_text, release_raw) = fetch_release(&ctx, &dir).await?;
    let fetch_digest = def.fetch_digest();
    if let Some(summary) = UpdateSummary::unchanged(def, previous, release_raw) {
        return Ok((None, summary));
    }
    let release = Release::parse(&release_text).map_err(|source| MirrorError::Malformed {
        mirror: def.name.clone(),
        url: redact(&dir) + "Release",
        source: Box::new(source),
    })?;

    // Which indices to fetch.
    let mut plan: Vec<(String, IndexKind, Option<String>, String)> = Vec::new();
    let files_url;
    if def.is_flat() {
        files_url = dir.clone();
        let archs = def.architectures.clone();
        plan.push(("main".into(), IndexKind::Binary, None, "Packages".into()));
        if archs.is_empty() && release.architectures.is_empty() {
            return Err(ctx.upstream(
                "a flat repository whose Release lists no Architectures needs --arch".into(),
            ));
        }
    } else {
        files_url = Url::parse(&def.url).map_err(|e| MirrorError::Invalid(e.to_string()))?;
        let components = if def.components.is_empty() {
            release.components.clone()
        } else {
            def.components.clone()
        };
        let archs: Vec<String> = if def.architectures.is_empty() {
            release
                .architectures
                .iter()
                .filter(|a| *a != "all" && *a != "source")
                .cloned()
                .collect()
        } else {
            def.architectures.clone()
        };
        if components.is_empty() || archs.is_empty() {
            return Err(ctx.upstream(
                "no components or architectures to mirror (none given, none in Release)".into(),
            ));
        }
        for c in &components {
            for a in &archs {
                plan.push((
                    c.clone(),
                    IndexKind::Binary,
                    Some(a.clone()),
                    format!("{c}/binary-{a}/Packages"),
                ));
                if def.with_udebs {
                    plan.push((
                        c.clone(),
                        IndexKind::Udeb,
                        Some(a.clone()),
                        format!("{c}/debian-installer/binary-{a}/Packages"),
                    ));
                }
            }
            if def.with_sources {
                plan.push((
                    c.clone(),
                    IndexKind::Source,
                    None,
                    format!("{c}/source/Sources"),
                ));
            }
        }
    }

    reporter.report(Event::Phase {
        subject: &def.name,
        message: "fetching indices",
    });
    let mut indices = Vec::new();
    let mut wanted = Vec::new();
    let mut seen = HashSet::new();
    let pool_err = |source| MirrorError::Pool {
        mirror: def.name.clone(),
        source,
    };
    for (component, kind, arch, path) in plan {
        let text = fetch_index(&ctx, &dir, &release, &path).await?;
        let shown = redact(&dir) + &path;
        if def.is_flat() {
            let archs = if def.architectures.is_empty() {
                release
                    .architectures
                    .iter()
                    .filter(|a| *a != "all")
                    .cloned()
                    .collect()
            } else {
                def.architectures.clone()
            };
            // Check every stanza of the whole index first, so a malformed
            // stanza of another architecture is not silently skipped.
            collect_files(
                &ctx,
                kind,
                &text,
                &shown,
                &mut Vec::new(),
                &mut HashSet::new(),
            )?;
            for a in archs {
                let subset =
                    flat_arch_subset(&text, &a).map_err(|source| MirrorError::Malformed {
                        mirror: def.name.clone(),
                        url: shown.clone(),
                        source: Box::new(source),
                    })?;
                let entries = collect_files(&ctx, kind, &subset, &shown, &mut wanted, &mut seen)?;
                let blob = pool.put(subset.as_bytes()).map_err(pool_err)?;
                indices.push(IndexRef {
                    component: component.clone(),
                    kind,
                    arch: Some(a),
                    parts: vec![IndexPart::whole(blob)],
                    entries,
                });
            }
        } else {
            let entries = collect_files(&ctx, kind, &text, &shown, &mut wanted, &mut seen)?;
            let blob = pool.put(text.as_bytes()).map_err(pool_err)?;
            indices.push(IndexRef {
                component,
                kind,
                arch,
                parts: vec![IndexPart::whole(blob)],
                entries,
            });
        }
    }

    // With a filter, only the kept stanzas' files are wanted (every stanza
    // was checked above all the same).
    let mut content = AptContent {
        origin: release.origin.clone(),
        label: release.label.clone(),
        suite: release.suite.clone().unwrap_or_else(|| def.suite.clone()),
        codename: release.codename.clone(),
        files_url: files_url.to_string(),
        indices,
    };
    let (filtered, filtered_out, unsatisfied) =
        super::apply_filter(root, def, Content::Apt(content.clone()))?;
    if def.filter.is_some()
        && let Content::Apt(f) = filtered
    {
        content = f;
        wanted.clear();
        seen.clear();
        for index in &content.indices {
            let text = index.text(&pool).map_err(|source| MirrorError::Index {
                mirror: def.name.clone(),
                source,
            })?;
            collect_files(
                &ctx,
                index.kind,
                &text,
                &index.dist_path(),
                &mut wanted,
                &mut seen,
            )?;
        }
    }
    let wanted = wanted
        .into_iter()
        .map(|w| {
            files_url
                .join(&w.path)
                .map(|url| super::download::Wanted {
                    url,
                    expected: w.expected,
                })
                .map_err(|e| MirrorError::Invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Catalogs are built while the packages download, so the first filter
    // or merge of a snapshot of this state does not wait for them.
    let warming = {
        let (catalogs, content) = (crate::packages::catalog::Cache::new(root), content.clone());
        std::thread::spawn(move || crate::packages::catalog::warm(&catalogs, &content))
    };
    let outcome =
        super::download::download_missing(def, &ctx.fetcher, &pool, wanted, opts, reporter).await?;
    let _ = warming.join();
    let mut summary = UpdateSummary {
        mirror: def.name.clone(),
        changed: true,
        indices: content.indices.len(),
        packages: 0,
        downloaded_files: outcome.downloaded_files,
        downloaded_bytes: outcome.downloaded_bytes,
        already_pooled: outcome.already_pooled,
        deferred: outcome.deferred,
        filtered_out,
        unsatisfied,
    };
    summary.packages = content.package_count();
    let state = MirrorState {
        updated: opts.now,
        release_raw,
        fetch_digest,
        deferred: summary.deferred,
        content: Content::Apt(content),
    };
    Ok((Some(state), summary))
}
