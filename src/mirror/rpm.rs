//! Updating an rpm mirror: repomd.xml (+ signature) → verified metadata →
//! verified packages. See [`crate::formats::rpm`] for the format.
//!
//! Modes: `mirror` makes each update equal to upstream; `additive` keeps
//! the packages an earlier update saw and upstream has since dropped (their
//! `primary`/`filelists`/`other` entries are carried over and spliced into
//! the new metadata), like Pulp's additive sync. `updateinfo`, `group` and
//! `modules` always come from the newest upstream state.

use std::collections::{HashMap, HashSet};

use url::Url;

use super::download::{Wanted, download_missing};
use super::{MirrorDef, MirrorError, MirrorState, Mode, SignedIndex, UpdateOptions, UpdateSummary};
use crate::content::{Content, RpmContent, RpmMetadataRef};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::compress::decompress_named;
use crate::formats::rpm::{self as fmt, RepomdRecord, RpmFormatError};
use crate::http::redact;
use crate::report::{Event, Reporter};
use crate::root::Root;
use crate::signing::Verifier;

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
fn base_type(mdtype: &str) -> Option<&str> {
    if KEPT.contains(&mdtype) {
        return Some(mdtype);
    }
    let (base, suffix) = mdtype.rsplit_once('_')?;
    (KEPT.contains(&base) && matches!(suffix, "gz" | "xz" | "zst" | "bz2")).then_some(base)
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

pub(super) async fn update(
    root: &Root,
    def: &MirrorDef,
    previous: Option<&MirrorState>,
    opts: &UpdateOptions,
    reporter: &dyn Reporter,
) -> Result<(Option<MirrorState>, UpdateSummary), MirrorError> {
    let (pool, fetcher) = super::start(root, def)?;
    let fetch_err = |what: String| {
        move |source| MirrorError::Fetch {
            mirror: def.name.clone(),
            what,
            source: Box::new(source),
        }
    };
    let base = Url::parse(&def.url).map_err(|e| MirrorError::Invalid(e.to_string()))?;
    let join = |p: &str| {
        base.join(p)
            .map_err(|e| MirrorError::Invalid(e.to_string()))
    };
    reporter.report(Event::Phase {
        subject: &def.name,
        message: "fetching repomd.xml",
    });
    let repomd_url = join("repodata/repomd.xml")?;
    let repomd = fetcher
        .get_optional(&repomd_url, reporter)
        .await
        .map_err(fetch_err("fetching repomd.xml".into()))?
        .ok_or_else(|| MirrorError::Upstream {
            mirror: def.name.clone(),
            problem: format!("no repository at {} (404)", redact(&repomd_url)),
        })?;
    let mut digest_input = repomd.clone();
    if let (Some(keyring), false) = (&def.keyring, def.no_verify) {
        let sig_url = join("repodata/repomd.xml.asc")?;
        let sig = fetcher
            .get_optional(&sig_url, reporter)
            .await
            .map_err(fetch_err("fetching repomd.xml.asc".into()))?
            .ok_or_else(|| MirrorError::Unsigned {
                mirror: def.name.clone(),
                url: redact(&repomd_url),
            })?;
        let sig_err = |source| MirrorError::Signature {
            mirror: def.name.clone(),
            url: redact(&sig_url),
            source,
        };
        Verifier::new(keyring)
            .map_err(sig_err)?
            .verify_detached(&repomd, &sig)
            .map_err(sig_err)?;
        digest_input.extend_from_slice(&sig);
    }
    let release_raw = Sha256Digest::of(&digest_input);
    let fetch_digest = def.fetch_digest();
    if let Some(summary) = UpdateSummary::unchanged(def, previous, release_raw) {
        return Ok((None, summary));
    }
    let repomd_text = String::from_utf8(repomd).map_err(|_| MirrorError::Upstream {
        mirror: def.name.clone(),
        problem: format!("{} is not UTF-8", redact(&repomd_url)),
    })?;
    let records = fmt::parse_repomd(&repomd_text).map_err(|e| malformed(def, &repomd_url, e))?;

    // One record per kept type; an uncompressed `group` beside `group_gz`
    // is the same content, so the first one listed wins.
    let mut chosen: Vec<(&str, &RepomdRecord)> = Vec::new();
    for r in &records {
        if let Some(t) = base_type(&r.mdtype)
            && !chosen.iter().any(|(c, _)| *c == t)
        {
            chosen.push((t, r));
        }
    }
    if !chosen.iter().any(|(t, _)| *t == "primary") {
        return Err(malformed(
            def,
            &repomd_url,
            RpmFormatError::NoRecord("primary"),
        ));
    }

    reporter.report(Event::Phase {
        subject: &def.name,
        message: "fetching metadata",
    });
    let mut texts: HashMap<&str, (String, Url)> = HashMap::new();
    let mut exts: HashMap<&str, String> = HashMap::new();
    for (mdtype, rec) in &chosen {
        if let Some(why) = fmt::unsafe_href(&rec.href) {
            return Err(malformed(
                def,
                &repomd_url,
                RpmFormatError::UnsafePath {
                    href: rec.href.clone(),
                    why,
                },
            ));
        }
        if rec.checksum_type != "sha256" {
            return Err(malformed(
                def,
                &repomd_url,
                RpmFormatError::ChecksumType(rec.checksum_type.clone()),
            ));
        }
        let url = join(&rec.href)?;
        let raw = fetcher
            .get_optional(&url, reporter)
            .await
            .map_err(fetch_err(format!("fetching {}", rec.href)))?
            .ok_or_else(|| MirrorError::Upstream {
                mirror: def.name.clone(),
                problem: format!("{} is listed in repomd.xml but missing", redact(&url)),
            })?;
        let mismatch = |source| MirrorError::IndexMismatch {
            mirror: def.name.clone(),
            subject: redact(&url),
            signed: SignedIndex::Repomd,
            source: Box::new(source),
        };
        let expected_sha = hex_digest(def, &url, &rec.checksum)?;
        crate::pool::check_bytes(&raw, rec.size, expected_sha).map_err(mismatch)?;
        let plain =
            decompress_named(&rec.href, &raw).map_err(|source| MirrorError::Decompress {
                mirror: def.name.clone(),
                url: redact(&url),
                source,
            })?;
        if let Some(open) = &rec.open_checksum {
            let open_sha = hex_digest(def, &url, open)?;
            crate::pool::check_bytes(&plain, rec.open_size, open_sha).map_err(|source| {
                MirrorError::IndexMismatch {
                    mirror: def.name.clone(),
                    subject: format!("the uncompressed content of {}", redact(&url)),
                    signed: SignedIndex::RepomdOpen,
                    source: Box::new(source),
                }
            })?;
        }
        let text = String::from_utf8(plain).map_err(|_| MirrorError::Upstream {
            mirror: def.name.clone(),
            problem: format!("{} is not UTF-8", redact(&url)),
        })?;
        let file = rec.href.rsplit('/').next().unwrap_or(&rec.href);
        let file = file
            .trim_end_matches(".gz")
            .trim_end_matches(".xz")
            .trim_end_matches(".zst")
            .trim_end_matches(".bz2");
        exts.insert(
            mdtype,
            file.rsplit_once('.').map_or("xml", |(_, e)| e).to_owned(),
        );
        texts.insert(mdtype, (text, url));
    }

    let primary_url = texts["primary"].1.clone();
    let primary_url = &primary_url;
    let (split, mut packages) =
        fmt::parse_primary(&texts["primary"].0).map_err(|e| malformed(def, primary_url, e))?;
    // Per-package copies of the entries are needed only to carry dropped
    // packages over (additive mode); the mirror mode stores texts as they
    // came, so a large repository's metadata is held once, not twice.
    let additive = def.mode == Mode::Additive;
    let mut fragments: HashMap<&str, Vec<String>> = HashMap::new();
    let mut roots: HashMap<&str, (String, String)> = HashMap::new();
    let mut splits = vec![("primary", split)];
    for t in ["filelists", "other"] {
        if let Some((text, url)) = texts.get(t) {
            splits.push((
                t,
                fmt::split_packages(text).map_err(|e| malformed(def, url, e))?,
            ));
        }
    }
    if additive {
        for (t, split) in &splits {
            let text = &texts[t].0;
            fragments.insert(
                t,
                split
                    .packages
                    .iter()
                    .map(|(r, _)| text[r.clone()].to_owned())
                    .collect(),
            );
            roots.insert(
                t,
                (
                    text[split.root_tag.clone()].to_owned(),
                    split.root_name.clone(),
                ),
            );
        }
    }
    drop(splits);
    for t in ["updateinfo", "group", "modules"] {
        if let Some((text, url)) = texts.get(t)
            && exts.get(t).is_some_and(|e| e == "xml")
        {
            fmt::split_packages(text).map_err(|e| malformed(def, url, e))?;
        }
    }

    // Additive: bring back what the previous state had and upstream dropped.
    let mut carried = 0;
    if additive
        && let Some(MirrorState {
            content: Content::Rpm(prev),
            ..
        }) = previous
    {
        let have: HashSet<String> = packages.iter().map(|p| p.sha256.clone()).collect();
        let read = |t: &str| -> Result<Option<String>, MirrorError> {
            match prev.get(t) {
                None => Ok(None),
                Some(m) => {
                    let bytes = pool.read(&m.blob).map_err(|source| MirrorError::Pool {
                        mirror: def.name.clone(),
                        source,
                    })?;
                    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
                }
            }
        };
        if let Some(old_primary) = read("primary")? {
            let (old_split, old_pkgs) =
                fmt::parse_primary(&old_primary).map_err(|e| malformed(def, primary_url, e))?;
            let dropped: HashSet<String> = old_pkgs
                .iter()
                .filter(|p| !have.contains(&p.sha256))
                .map(|p| p.sha256.clone())
                .collect();
            for (p, (range, _)) in old_pkgs.into_iter().zip(&old_split.packages) {
                if dropped.contains(&p.sha256) {
                    if let Some(f) = fragments.get_mut("primary") {
                        f.push(old_primary[range.clone()].to_owned());
                    }
                    carried += 1;
                    packages.push(p);
                }
            }
            for t in ["filelists", "other"] {
                if let (Some(old), Some(frags)) = (read(t)?, fragments.get_mut(t)) {
                    let s =
                        fmt::split_packages(&old).map_err(|e| malformed(def, primary_url, e))?;
                    for (range, id) in &s.packages {
                        if id.as_ref().is_some_and(|id| dropped.contains(id)) {
                            frags.push(old[range.clone()].to_owned());
                        }
                    }
                }
            }
        }
    }

    let pool_err = |source| MirrorError::Pool {
        mirror: def.name.clone(),
        source,
    };
    let mut metadata = Vec::new();
    for (mdtype, _) in &chosen {
        let blob = match (fragments.get(mdtype), roots.get(mdtype)) {
            (Some(frags), Some((tag, name))) if carried > 0 => {
                let refs: Vec<&str> = frags.iter().map(String::as_str).collect();
                pool.put(fmt::splice(tag, name, &refs).as_bytes())
            }
            _ => pool.put(texts[mdtype].0.as_bytes()),
        };
        metadata.push(RpmMetadataRef {
            mdtype: (*mdtype).to_owned(),
            ext: exts[mdtype].clone(),
            blob: blob.map_err(pool_err)?,
        });
    }
    // Nothing below needs the texts: free them before the downloads.
    drop(fragments);
    drop(texts);

    let mut content = RpmContent {
        files_url: base.to_string(),
        metadata,
        packages: packages.len(),
    };
    let (filtered, filtered_out, unsatisfied) =
        super::apply_filter(root, def, Content::Rpm(content.clone()))?;
    if def.filter.is_some()
        && let Content::Rpm(f) = filtered
    {
        content = f;
        let primary = content.get("primary").map(|m| m.blob);
        if let Some(blob) = primary {
            let bytes = pool.read(&blob).map_err(pool_err)?;
            let text = String::from_utf8_lossy(&bytes);
            packages = fmt::parse_primary(&text)
                .map_err(|e| malformed(def, primary_url, e))?
                .1;
        }
    }
    let mut wanted = Vec::with_capacity(packages.len());
    let mut signed = Vec::new();
    let mut seen = HashSet::new();
    for p in &packages {
        let sha256 = hex_digest(def, primary_url, &p.sha256)?;
        if !seen.insert(sha256) {
            continue;
        }
        if def.verify_packages {
            signed.push((p.href.clone(), sha256));
        }
        let from = match &p.base {
            Some(b) => {
                let mut b = b.clone();
                if !b.ends_with('/') {
                    b.push('/');
                }
                // A relative xml:base is resolved against the repository
                // URL (not primary.xml's): createrepo_c --baseurl accepts it.
                Url::parse(&b)
                    .or_else(|_| base.join(&b))
                    .map_err(|e| MirrorError::Upstream {
                        mirror: def.name.clone(),
                        problem: format!("invalid xml:base `{b}`: {e}"),
                    })?
            }
            None => base.clone(),
        };
        let url = from
            .join(&p.href)
            .map_err(|e| MirrorError::Invalid(e.to_string()))?;
        wanted.push(Wanted {
            url,
            expected: Expected {
                size: p.size,
                sha256,
            },
        });
    }
    let outcome = download_missing(def, &fetcher, &pool, wanted, opts, reporter).await?;
    if def.verify_packages {
        reporter.report(Event::Phase {
            subject: &def.name,
            message: "checking package signatures",
        });
        let (root, pool, def) = (root.clone(), pool.clone(), def.clone());
        tokio::task::spawn_blocking(move || {
            super::rpm_verify::verify_packages(&root, &pool, &def, &signed)
        })
        .await
        .expect("signature checks do not panic")?;
    }
    let summary = UpdateSummary {
        mirror: def.name.clone(),
        changed: true,
        indices: content.metadata.len(),
        packages: content.packages,
        downloaded_files: outcome.downloaded_files,
        downloaded_bytes: outcome.downloaded_bytes,
        already_pooled: outcome.already_pooled,
        deferred: outcome.deferred,
        filtered_out,
        unsatisfied,
    };
    let state = MirrorState {
        updated: opts.now,
        release_raw,
        fetch_digest,
        deferred: outcome.deferred,
        content: Content::Rpm(content),
    };
    Ok((Some(state), summary))
}
