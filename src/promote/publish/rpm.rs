//! Publishing an rpm repository: every package is linked at its
//! `<location href>` (checked safe when it was mirrored), and each
//! metadata file of the snapshot is written compressed under a
//! hash-prefixed name (`repodata/<sha256>-primary.xml.gz`, as createrepo_c
//! names them) and listed in a new `repomd.xml` with its checksum, size,
//! open-checksum and open-size. Metadata is re-spliced only when a package
//! came from an `xml:base` URL (the attribute is dropped: the file is now
//! local); otherwise upstream's XML is published byte for byte (a
//! filtered snapshot's or a release's file is put together from the kept
//! `<package>` elements of its blobs, [`RpmMetadataRef::text`]), which is
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
use crate::content::{RpmContent, RpmMetadataRef};
use crate::digest::{Expected, Sha256Digest};
use crate::formats::compress::Compression;
use crate::formats::rpm::{self as fmt, NewRecord};
use crate::pool::Pool;
use crate::signing::Signer;

pub(super) struct Prepared {
    /// The metadata files, in the snapshot's order.
    files: Vec<RpmMetadataRef>,
    /// How many packages the snapshot has (each assembled file's count).
    count: usize,
    /// The text of `primary`, the one file that is parsed.
    primary_text: MetadataText,
    /// Each package's `<location href>` and SHA-256, all that linking
    /// needs (the parsed packages are let go: for 20k packages they are
    /// tens of megabytes).
    links: Vec<(String, Sha256Digest)>,
    /// Whether a package names an `xml:base` (primary is then rebuilt).
    xml_base: bool,
    primary: usize,
    pub missing: Vec<(Url, Expected)>,
}

/// A metadata file's text: a whole blob's pool file mapped when it is
/// UTF-8 (then its SHA-256 is the blob's name), else a repaired copy, or
/// the file put together from its parts. Mapped, not read: a real
/// `filelists` is ~80 MB, which a read would first have the kernel zero
/// in fresh pages.
enum MetadataText {
    Blob(memmap2::Mmap, Sha256Digest),
    Text(String),
}

impl MetadataText {
    fn read(
        pool: &Pool,
        dist: &str,
        file: &RpmMetadataRef,
        count: usize,
    ) -> Result<Self, PublishError> {
        match file.blob() {
            Some(blob) => Self::map(pool, dist, &blob),
            None => file
                .text(pool, count)
                .map(Self::Text)
                .map_err(|e| PublishError::Index {
                    dist: dist.to_owned(),
                    source: e.into(),
                }),
        }
    }

    fn map(pool: &Pool, dist: &str, blob: &Sha256Digest) -> Result<Self, PublishError> {
        let map = pool.map(blob).map_err(|source| PublishError::Pool {
            dist: dist.to_owned(),
            source,
        })?;
        Ok(match std::str::from_utf8(&map) {
            Ok(_) => Self::Blob(map, *blob),
            Err(_) => Self::Text(String::from_utf8_lossy(&map).into_owned()),
        })
    }

    fn text(&self) -> &str {
        match self {
            // SAFETY: checked to be UTF-8 by `map`, and it does not change.
            Self::Blob(map, _) => unsafe { std::str::from_utf8_unchecked(map) },
            Self::Text(text) => text,
        }
    }

    /// The blob whose bytes the text is (its SHA-256 is then the blob's
    /// name).
    fn exact(&self) -> Option<Sha256Digest> {
        match self {
            Self::Blob(_, blob) => Some(*blob),
            Self::Text(_) => None,
        }
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
    let files = content.metadata.clone();
    let primary = files
        .iter()
        .position(|m| m.mdtype == "primary")
        .ok_or_else(|| malformed(dist)(fmt::RpmFormatError::NoRecord("primary")))?;
    let primary_text = MetadataText::read(pool, dist, &files[primary], content.packages)?;
    let (_, packages) = fmt::primary_locations(primary_text.text()).map_err(malformed(dist))?;
    let files_url = Url::parse(&content.files_url)
        .map_err(|_| PublishError::InvalidSuite(content.files_url.clone()))?;
    let mut missing = Vec::new();
    let mut links = Vec::with_capacity(packages.len());
    for p in &packages {
        let Ok(sha256) = p.sha256.parse::<Sha256Digest>() else {
            return Err(malformed(dist)(fmt::RpmFormatError::ChecksumType(
                p.sha256.clone(),
            )));
        };
        links.push((p.href.clone(), sha256));
        if complete
            || pool.contains(&sha256)
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
        count: content.packages,
        primary_text,
        xml_base: packages.iter().any(|p| p.base.is_some()),
        links,
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
    for (href, sha) in &prepared.links {
        w.link(href, *sha)?;
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
    let rebuilt_primary = if prepared.xml_base {
        let (split, _) = fmt::primary_locations(primary_text).map_err(malformed(w.dist))?;
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
    for (i, file) in prepared.files.iter().enumerate() {
        let (mdtype, ext) = (&file.mdtype, &file.ext);
        let read;
        // The text, and the blob it is the bytes of: its SHA-256 (the
        // open-checksum) is then the blob's name.
        let (text, exact): (&str, Option<Sha256Digest>) = if i == prepared.primary {
            match &rebuilt_primary {
                Some(rebuilt) => (rebuilt, None),
                None => (primary_text, prepared.primary_text.exact()),
            }
        } else {
            read = MetadataText::read(w.pool(), w.dist, file, prepared.count)?;
            (read.text(), read.exact())
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
            Some(blob) => blob.to_hex(),
            None => Sha256Digest::of(text.as_bytes()).to_hex(),
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
