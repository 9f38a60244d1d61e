//! Publishing an rpm repository: every package is linked at its
//! `<location href>` (checked safe when it was mirrored), and each
//! metadata file of the snapshot is written compressed under a
//! hash-prefixed name (`repodata/<sha256>-primary.xml.gz`, as createrepo_c
//! names them) and listed in a new `repomd.xml` with its checksum, size,
//! open-checksum and open-size. Metadata is re-spliced only when a package
//! came from an `xml:base` URL (the attribute is dropped: the file is now
//! local); otherwise upstream's XML is published byte for byte, which is
//! why publishing a 20k-package snapshot costs a compression pass and no
//! XML generation.
//!
//! Memory: only `primary` is kept from preparing to writing; each other
//! file is read from the pool when it is compressed, and the files are
//! compressed one after the other, each on every core (a real
//! distribution's `filelists` is ~80 MB of XML: held all at once, with
//! their compressed copies, the files of 20k packages took 200 MB).
//!
//! Default compression: gz. dnf 4 and EL8's librepo/libsolv read gz and xz;
//! zstd-compressed repodata needs EL9 or newer, so zst is opt-in
//! (`--compress zst`). gz is chosen over xz for its speed.
//!
//! It writes only inside the staging folder its [`super::writer::Writer`] was
//! given; it never changes a published version or a stage.

use jiff::Timestamp;
use url::Url;

use super::options::{PublishError, PublishOptions};
use super::writer::Writer;
use crate::content::RpmContent;
use crate::digest::{Expected, Sha256Digest};
use crate::formats::compress::Compression;
use crate::formats::rpm::{self as fmt, NewRecord, PrimaryPackage};
use crate::pool::Pool;
use crate::signing::Signer;

pub(super) struct Prepared {
    /// (mdtype, extension, blob of the uncompressed text), in the
    /// snapshot's order.
    files: Vec<(String, String, Sha256Digest)>,
    /// The text of `primary`, the one file that is parsed.
    primary_text: MetadataText,
    packages: Vec<PrimaryPackage>,
    primary: usize,
    pub missing: Vec<(Url, Expected)>,
}

/// A metadata blob's text: the pool file mapped when it is UTF-8 (then
/// its SHA-256 is the blob's name), else a repaired copy. Mapped, not
/// read: a real `filelists` is ~80 MB, which a read would first have the
/// kernel zero in fresh pages.
enum MetadataText {
    Blob(memmap2::Mmap),
    Repaired(String),
}

impl MetadataText {
    fn read(pool: &Pool, dist: &str, blob: &Sha256Digest) -> Result<Self, PublishError> {
        let path = pool.path(blob);
        let pool_err = |source: std::io::Error| PublishError::Pool {
            dist: dist.to_owned(),
            source: if source.kind() == std::io::ErrorKind::NotFound {
                crate::pool::PoolError::Missing {
                    digest: *blob,
                    path: path.clone(),
                }
            } else {
                crate::pool::PoolError::Io {
                    path: path.clone(),
                    source,
                }
            },
        };
        let file = std::fs::File::open(&path).map_err(pool_err)?;
        if file.metadata().map_err(pool_err)?.len() == 0 {
            return Ok(Self::Repaired(String::new()));
        }
        // SAFETY: a pool blob is written whole under a temporary name and
        // renamed into place, never written again, and deleted only by gc,
        // which waits for this publish (the pool's lock); an unlinked file
        // stays mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(pool_err)?;
        Ok(match std::str::from_utf8(&map) {
            Ok(_) => Self::Blob(map),
            Err(_) => Self::Repaired(String::from_utf8_lossy(&map).into_owned()),
        })
    }

    fn text(&self) -> &str {
        match self {
            // SAFETY: checked to be UTF-8 by `read`, and it does not change.
            Self::Blob(map) => unsafe { std::str::from_utf8_unchecked(map) },
            Self::Repaired(text) => text,
        }
    }

    /// Whether the text is the blob's bytes.
    fn is_blob(&self) -> bool {
        matches!(self, Self::Blob(_))
    }
}

fn malformed(dist: &str) -> impl Fn(fmt::RpmFormatError) -> PublishError + '_ {
    move |source| PublishError::MalformedRpm {
        dist: dist.to_owned(),
        source,
    }
}

pub(super) fn prepare(
    pool: &Pool,
    dist: &str,
    content: &RpmContent,
    complete: bool,
) -> Result<Prepared, PublishError> {
    let files: Vec<(String, String, Sha256Digest)> = content
        .metadata
        .iter()
        .map(|m| (m.mdtype.clone(), m.ext.clone(), m.blob))
        .collect();
    let primary = files
        .iter()
        .position(|(t, _, _)| t == "primary")
        .ok_or_else(|| malformed(dist)(fmt::RpmFormatError::NoRecord("primary")))?;
    let primary_text = MetadataText::read(pool, dist, &files[primary].2)?;
    let (_, packages) = fmt::parse_primary(primary_text.text()).map_err(malformed(dist))?;
    let files_url = Url::parse(&content.files_url)
        .map_err(|_| PublishError::InvalidSuite(content.files_url.clone()))?;
    let mut missing = Vec::new();
    for p in packages.iter().filter(|_| !complete) {
        let Ok(sha256) = p.sha256.parse::<Sha256Digest>() else {
            return Err(malformed(dist)(fmt::RpmFormatError::ChecksumType(
                p.sha256.clone(),
            )));
        };
        if pool.contains(&sha256)
            || missing
                .iter()
                .any(|(_, e): &(Url, Expected)| e.sha256 == sha256)
        {
            continue;
        }
        let base = match &p.base {
            Some(b) => {
                let b = format!("{}/", b.trim_end_matches('/'));
                Url::parse(&b).or_else(|_| files_url.join(&b)).ok()
            }
            None => Some(files_url.clone()),
        };
        if let Some(url) = base.and_then(|b| b.join(&p.href).ok()) {
            missing.push((
                url,
                Expected {
                    size: p.size,
                    sha256,
                },
            ));
        }
    }
    Ok(Prepared {
        files,
        primary_text,
        packages,
        primary,
        missing,
    })
}

/// `<location xml:base="…" href="…"/>` → `<location href="…"/>`.
fn drop_xml_base(fragment: &str) -> String {
    match fragment.find(" xml:base=\"") {
        Some(i) => match fragment[i + 11..].find('"') {
            Some(j) => format!("{}{}", &fragment[..i], &fragment[i + 11 + j + 1..]),
            None => fragment.to_owned(),
        },
        None => fragment.to_owned(),
    }
}

pub(super) fn write_version(
    w: &mut Writer<'_>,
    opts: &PublishOptions,
    prepared: &Prepared,
    when: Timestamp,
    signer: Option<&dyn Signer>,
) -> Result<Sha256Digest, PublishError> {
    for p in &prepared.packages {
        let sha = p
            .sha256
            .parse()
            .map_err(|_| malformed(w.dist)(fmt::RpmFormatError::ChecksumType(p.sha256.clone())))?;
        w.link(&p.href, sha)?;
    }
    w.with_links(|w| write_metadata(w, opts, prepared, when, signer))
}

fn write_metadata(
    w: &mut Writer<'_>,
    opts: &PublishOptions,
    prepared: &Prepared,
    when: Timestamp,
    signer: Option<&dyn Signer>,
) -> Result<Sha256Digest, PublishError> {
    let compression = opts.compress.first().copied().unwrap_or(Compression::Gz);
    let primary_text = prepared.primary_text.text();
    let rebuilt_primary = if prepared.packages.iter().any(|p| p.base.is_some()) {
        let (split, _) = fmt::parse_primary(primary_text).map_err(malformed(w.dist))?;
        let frags: Vec<String> = split
            .packages
            .iter()
            .map(|(r, _)| drop_xml_base(&primary_text[r.clone()]))
            .collect();
        let refs: Vec<&str> = frags.iter().map(String::as_str).collect();
        Some(fmt::splice(
            &primary_text[split.root_tag.clone()],
            &split.root_name,
            &refs,
        ))
    } else {
        None
    };

    // One file after the other, each compressed on every core (it is
    // most of publishing's work).
    let mut records = Vec::new();
    for (i, (mdtype, ext, blob)) in prepared.files.iter().enumerate() {
        let read;
        // The text, and whether it is the blob's bytes: its SHA-256 (the
        // open-checksum) is then the blob's name.
        let (text, exact): (&str, bool) = if i == prepared.primary {
            match &rebuilt_primary {
                Some(rebuilt) => (rebuilt, false),
                None => (primary_text, prepared.primary_text.is_blob()),
            }
        } else {
            read = MetadataText::read(w.pool(), w.dist, blob)?;
            (read.text(), read.is_blob())
        };
        // comps is listed both plain (`group`) and compressed
        // (`group_gz`), as createrepo_c does: tools differ in which one
        // they read.
        let mut outputs = vec![(mdtype.clone(), compression)];
        if mdtype == "group" {
            outputs[0].0 = format!("group_{}", &compression.suffix().trim_start_matches('.'));
            outputs.push(("group".to_owned(), Compression::None));
        }
        let open_sha256 = match exact {
            true => blob.to_hex(),
            false => Sha256Digest::of(text.as_bytes()).to_hex(),
        };
        for (mdtype, c) in outputs {
            let bytes = c
                .compress(text.as_bytes())
                .map_err(w.io(std::path::Path::new("repodata")))?;
            let sha = Sha256Digest::of(&bytes).to_hex();
            let href = format!(
                "repodata/{sha}-{}.{ext}{}",
                mdtype.split('_').next().unwrap_or(&mdtype),
                c.suffix()
            );
            w.write_file(&href, &bytes)?;
            records.push(NewRecord {
                mdtype,
                href,
                sha256: sha,
                size: bytes.len() as u64,
                open_sha256: open_sha256.clone(),
                open_size: text.len() as u64,
            });
        }
    }
    let seconds = u64::try_from(when.as_second()).unwrap_or(0);
    let repomd = fmt::write_repomd(seconds, seconds, &records);
    w.write_file("repodata/repomd.xml", repomd.as_bytes())?;
    if let Some(signer) = signer {
        let sig =
            signer
                .detach_sign(repomd.as_bytes())
                .map_err(|source| PublishError::Signing {
                    dist: w.dist.to_owned(),
                    source,
                })?;
        w.write_file("repodata/repomd.xml.asc", &sig)?;
    }
    Ok(Sha256Digest::of(repomd.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_base_is_dropped_from_a_location() {
        let f = r#"<package><location xml:base="http://x/y" href="a.rpm"/></package>"#;
        assert_eq!(
            super::drop_xml_base(f),
            r#"<package><location href="a.rpm"/></package>"#
        );
    }
}
