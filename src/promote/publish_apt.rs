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

use jiff::Timestamp;
use url::Url;

use super::publish::{PublishError, PublishOptions, Writer, rfc2822};
use crate::content::{AptContent, IndexKind};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::apt::{self as fmt, AptFormatError};
use crate::formats::compress::Compression;
use crate::pool::Pool;
use crate::signing::Signer;

/// An apt snapshot loaded for publishing.
pub(super) struct Prepared {
    pub content: AptContent,
    pub texts: Vec<(IndexKind, String)>,
    pub suite: String,
    /// Package files the pool lacks (on-demand mirrors), with their URLs.
    pub missing: Vec<(Url, Expected)>,
}

pub(super) fn prepare(
    pool: &Pool,
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
    let mut texts = Vec::with_capacity(content.indices.len());
    for index in &content.indices {
        let text = index.text(pool).map_err(|source| PublishError::Index {
            dist: dist.to_owned(),
            source,
        })?;
        texts.push((index.kind, text));
    }
    let malformed = |source| PublishError::Malformed {
        dist: dist.to_owned(),
        source,
    };
    let base = Url::parse(&content.files_url)
        .map_err(|_| PublishError::InvalidSuite(content.files_url.clone()))?;
    let missing = if complete {
        Vec::new()
    } else {
        missing_files(pool, &texts)
            .map_err(malformed)?
            .into_iter()
            .filter_map(|(path, e)| base.join(&path).ok().map(|u| (u, e)))
            .collect()
    };
    Ok(Prepared {
        content: content.clone(),
        texts,
        suite,
        missing,
    })
}

/// Rewrites one index: stanzas copied verbatim but for the path field, and
/// every file linked into the version's pool.
fn rewrite_index(
    w: &mut Writer<'_>,
    component: &str,
    kind: IndexKind,
    text: &str,
) -> Result<String, PublishError> {
    let malformed = |source| PublishError::Malformed {
        dist: w.dist.to_owned(),
        source,
    };
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    match kind {
        IndexKind::Binary | IndexKind::Udeb => {
            for stanza in fmt::binary_stanzas(text) {
                let s = stanza.map_err(malformed)?;
                let base = s.filename.rsplit('/').next().unwrap_or(s.filename);
                let rel = format!("pool/{component}/{}/{base}", fmt::pool_prefix(s.source));
                w.link(&rel, s.expected.sha256)?;
                let field = s
                    .paragraph
                    .field("Filename")
                    .expect("checked by binary_stanzas");
                out.push_str(&text[s.paragraph.span.start..field.span.start]);
                let _ = writeln!(out, "Filename: {rel}");
                out.push_str(&text[field.span.end..s.paragraph.span.end]);
                out.push('\n');
            }
        }
        IndexKind::Source => {
            for stanza in fmt::source_stanzas(text) {
                let s = stanza.map_err(malformed)?;
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
        }
    }
    Ok(out)
}

/// Package files the pool lacks (mirrors with the on-demand policy).
fn missing_files(
    pool: &Pool,
    texts: &[(IndexKind, String)],
) -> Result<Vec<(String, Expected)>, AptFormatError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (kind, text) in texts {
        match kind {
            IndexKind::Binary | IndexKind::Udeb => {
                for s in fmt::binary_stanzas(text) {
                    let s = s?;
                    if seen.insert(s.expected.sha256) && !pool.contains(&s.expected.sha256) {
                        out.push((s.filename.to_owned(), s.expected));
                    }
                }
            }
            IndexKind::Source => {
                for s in fmt::source_stanzas(text) {
                    let s = s?;
                    for (file, e) in &s.files {
                        if seen.insert(e.sha256) && !pool.contains(&e.sha256) {
                            out.push((format!("{}/{file}", s.directory), *e));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Writes every file of the version into `w.stage`; returns the Release's
/// SHA-256.
pub(super) fn write_version(
    w: &mut Writer<'_>,
    opts: &PublishOptions,
    prepared: &Prepared,
    when: Timestamp,
    signer: Option<&dyn Signer>,
) -> Result<Sha256Digest, PublishError> {
    let (content, texts, suite) = (&prepared.content, &prepared.texts, prepared.suite.as_str());
    let dists = format!("dists/{suite}");
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
        let mut plains = Vec::with_capacity(texts.len());
        for (index, (kind, text)) in content.indices.iter().zip(texts) {
            plains.push(rewrite_index(w, &index.component, *kind, text)?);
        }
        for (index, plain) in content.indices.iter().zip(&plains) {
            let rel = index.dist_path();
            let by_hash_dir = format!(
                "{dists}/{}/by-hash/SHA256",
                rel.rsplit_once('/').map_or("", |(dir, _)| dir)
            );
            let outputs: Vec<(Compression, Vec<u8>)> = std::thread::scope(|s| {
                let handles: Vec<_> = compressions
                    .iter()
                    .filter(|c| **c != Compression::None)
                    .map(|c| {
                        let plain = plain.as_bytes();
                        s.spawn(move || (*c, c.compress(plain)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("compression threads do not panic"))
                    .map(|(c, r)| r.map(|bytes| (c, bytes)))
                    .collect::<Result<_, _>>()
            })
            .map_err(w.io(Path::new(&rel)))?;
            let plain_output = (Compression::None, plain.as_bytes());
            for (c, bytes) in
                std::iter::once(plain_output).chain(outputs.iter().map(|(c, b)| (*c, b.as_slice())))
            {
                let file_rel = format!("{rel}{}", c.suffix());
                let digest = Sha256Digest::of(bytes);
                w.write_file(&format!("{dists}/{file_rel}"), bytes)?;
                let by_hash = w.stage.join(format!("{by_hash_dir}/{digest}"));
                let src = w.stage.join(format!("{dists}/{file_rel}"));
                if let Some(parent) = by_hash.parent() {
                    w.ensure_dir(parent)?;
                }
                crate::fsutil::link_or_copy(&src, &by_hash).map_err(w.io(&by_hash))?;
                checksums.push((file_rel, bytes.len() as u64, digest));
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
