//! repodata entries for an rpm file, read from its header only.
//!
//! `repo add` of an `.rpm` reads the lead, signature and main header with
//! the `rpm` crate (`PackageMetadata::parse` stops before the payload) and
//! writes the `<package>` elements createrepo_c would: primary (with the
//! header range, dependencies and the files dependency resolution needs),
//! filelists (every file), other (no changelogs).
//!
//! Like all of `formats/`, in memory only: no file system, no network.

use std::io::{Read, Seek, SeekFrom};

use quick_xml::escape::escape;

#[derive(Debug, thiserror::Error)]
pub enum RpmHeaderError {
    #[error("unreadable rpm header")]
    Header(#[from] rpm::Error),
    #[error("malformed rpm: {0}")]
    Malformed(String),
    #[error("cannot read the rpm headers")]
    Read(#[source] std::io::Error),
    #[error("{0}")]
    Payload(String),
}

/// rpm's own bounds on one header (`HEADER_TAGS_MAX`, `HEADER_DATA_MAX`
/// in rpm's `header.c`).
const TAGS_MAX: u32 = 0xffff;
const DATA_MAX: u32 = 0x0fff_ffff;

/// Checks the lead and both headers' index entries against their data
/// before the `rpm` crate parses them, and leaves `r` where it was. That
/// crate trusts what a header says: an entry offset past the data panics
/// in its parser (rpm 0.30, `Header::parse_header`), and a header's
/// claimed size makes it allocate that much (up to 4 GiB) before reading.
/// Found by the `rpm_header` fuzz target; its crash input is a regression
/// test below.
fn check_structure(r: &mut (impl Read + Seek)) -> Result<(), RpmHeaderError> {
    let bad = |what: String| RpmHeaderError::Malformed(what);
    let start = r.stream_position().map_err(RpmHeaderError::Read)?;
    let len = r.seek(SeekFrom::End(0)).map_err(RpmHeaderError::Read)? - start;
    r.seek(SeekFrom::Start(start))
        .map_err(RpmHeaderError::Read)?;
    let mut lead = [0u8; 96];
    if len < 96 {
        return Err(bad("shorter than an rpm lead (96 bytes)".into()));
    }
    r.read_exact(&mut lead).map_err(RpmHeaderError::Read)?;
    if lead[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err(bad("no rpm lead (magic ed ab ee db)".into()));
    }
    let mut at = 96u64;
    for (which, padded) in [("signature", true), ("main", false)] {
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let mut intro = [0u8; 16];
        if at + 16 > len {
            return Err(bad(format!("the {which} header is cut short")));
        }
        r.read_exact(&mut intro).map_err(RpmHeaderError::Read)?;
        if intro[..4] != [0x8e, 0xad, 0xe8, 0x01] {
            return Err(bad(format!("no {which} header magic")));
        }
        let (entries, data) = (be(&intro[8..12]), be(&intro[12..16]));
        if entries > TAGS_MAX || data > DATA_MAX {
            return Err(bad(format!(
                "the {which} header claims {entries} entries and {data} bytes, past rpm's limits"
            )));
        }
        let size = 16 + 16 * u64::from(entries) + u64::from(data);
        if at + size > len {
            return Err(bad(format!("the {which} header is cut short")));
        }
        let mut index = vec![0u8; 16 * entries as usize];
        r.read_exact(&mut index).map_err(RpmHeaderError::Read)?;
        for e in index.chunks_exact(16) {
            let (tag, kind, offset, count) =
                (be(&e[..4]), be(&e[4..8]), be(&e[8..12]), be(&e[12..]));
            // Bytes per item, and whether the first item must start inside
            // the data (the crate slices from every entry's offset, even
            // a NULL one's).
            let (unit, inside): (u64, bool) = match kind {
                0 => (0, false),
                1 | 2 | 7 => (1, true),
                3 => (2, true),
                4 => (4, true),
                5 => (8, true),
                // Strings: each takes at least its NUL, which also bounds
                // what the crate reserves for an array (`count` items).
                6 | 8 | 9 => (1, true),
                _ => {
                    return Err(bad(format!(
                        "{which} header tag {tag} has unknown type {kind}"
                    )));
                }
            };
            if (inside && offset >= data)
                || u64::from(offset) + unit * u64::from(count) > u64::from(data)
            {
                return Err(bad(format!(
                    "{which} header tag {tag} points past the header's data"
                )));
            }
        }
        r.seek(SeekFrom::Current(i64::from(data)))
            .map_err(RpmHeaderError::Read)?;
        at += size;
        if padded {
            let pad = (8 - at % 8) % 8;
            r.seek(SeekFrom::Current(pad as i64))
                .map_err(RpmHeaderError::Read)?;
            at += pad;
        }
    }
    r.seek(SeekFrom::Start(start))
        .map_err(RpmHeaderError::Read)?;
    Ok(())
}

/// A package's three repodata fragments.
pub struct Fragments {
    pub name: String,
    pub arch: String,
    /// `[epoch:]version-release`
    pub evr: String,
    pub primary: String,
    pub filelists: String,
    pub other: String,
}

fn flags(f: rpm::DependencyFlags) -> Option<&'static str> {
    use rpm::DependencyFlags as F;
    let cmp = f & (F::LESS | F::GREATER | F::EQUAL);
    Some(if cmp == F::LESS | F::EQUAL {
        "LE"
    } else if cmp == F::GREATER | F::EQUAL {
        "GE"
    } else if cmp == F::EQUAL {
        "EQ"
    } else if cmp == F::LESS {
        "LT"
    } else if cmp == F::GREATER {
        "GT"
    } else {
        return None;
    })
}

fn entries(tag: &str, deps: &[rpm::Dependency]) -> String {
    let deps: Vec<&rpm::Dependency> = deps
        .iter()
        .filter(|d| !d.name.starts_with("rpmlib("))
        .collect();
    if deps.is_empty() {
        return String::new();
    }
    let mut out = format!("    <rpm:{tag}>\n");
    for d in deps {
        out.push_str(&format!("      <rpm:entry name=\"{}\"", escape(&d.name)));
        if let (Some(f), false) = (flags(d.flags), d.version.is_empty()) {
            let evr = super::rpm::Evr::parse(&d.version);
            out.push_str(&format!(
                " flags=\"{f}\" epoch=\"{}\" ver=\"{}\"",
                evr.epoch,
                escape(&evr.version)
            ));
            if !evr.release.is_empty() {
                out.push_str(&format!(" rel=\"{}\"", escape(&evr.release)));
            }
        }
        if d.flags.intersects(
            rpm::DependencyFlags::PREREQ
                | rpm::DependencyFlags::SCRIPT_PRE
                | rpm::DependencyFlags::SCRIPT_POST,
        ) {
            out.push_str(" pre=\"1\"");
        }
        out.push_str("/>\n");
    }
    out.push_str(&format!("    </rpm:{tag}>\n"));
    out
}

/// The files createrepo_c lists in primary (what dependencies usually name).
fn in_primary(path: &str) -> bool {
    path.starts_with("/etc/") || path.contains("bin/") || path == "/usr/lib/sendmail"
}

/// RPMTAG_PAYLOADSHA256 (rpm ≥ 4.14): the digest of the compressed payload
/// as stored; older rpms lack it.
fn payload_sha256(meta: &rpm::PackageMetadata) -> Option<String> {
    let digests = meta
        .header
        .get_entry_data_as_string_array(rpm::IndexTag::RPMTAG_PAYLOADSHA256)
        .ok()?;
    digests.first().map(|d| (*d).to_owned())
}

/// Checks the payload without unpacking it: the signature header's size
/// (header + payload) against the file, and the header's payload digest
/// (SHA-256) against the payload bytes. A truncated or tampered rpm is
/// refused here rather than by a client's install.
fn check_payload(
    meta: &rpm::PackageMetadata,
    bytes: &[u8],
    header_start: u64,
    payload_start: u64,
) -> Result<(), RpmHeaderError> {
    let bad = RpmHeaderError::Payload;
    let size = meta
        .signature
        .get_entry_data_as_u64(rpm::IndexSignatureTag::RPMSIGTAG_LONGSIZE)
        .ok()
        .or_else(|| {
            meta.signature
                .get_entry_data_as_u32(rpm::IndexSignatureTag::RPMSIGTAG_SIZE)
                .ok()
                .map(u64::from)
        });
    if let Some(size) = size
        && header_start + size != bytes.len() as u64
    {
        return Err(bad(format!(
            "size: the header says {} bytes, the file has {}",
            header_start + size,
            bytes.len()
        )));
    }
    if let Some(want) = payload_sha256(meta) {
        let payload = bytes.get(payload_start as usize..).unwrap_or(&[]);
        let got = crate::digest::Sha256Digest::of(payload).to_hex();
        if !got.eq_ignore_ascii_case(&want) {
            return Err(bad("payload digest mismatch (the file was altered)".into()));
        }
    }
    Ok(())
}

/// What an rpm's own signature covers and says: the main header's bytes
/// and the OpenPGP signatures over them that the signature header holds.
pub struct HeaderSignatures {
    pub header: Vec<u8>,
    /// Binary OpenPGP signatures (`RSAHEADER` and `DSAHEADER`, what
    /// `rpmsign` writes for RSA, EdDSA and DSA keys); empty when unsigned.
    pub signatures: Vec<Vec<u8>>,
    /// The payload's SHA-256 the header records (rpm ≥ 4.14).
    pub payload_sha256: Option<String>,
}

/// Reads the lead, the signature header and the main header of an rpm
/// file, and nothing of its payload: `file` is left at the payload's
/// start.
pub fn header_signatures(
    file: &mut (impl std::io::BufRead + std::io::Seek),
) -> Result<HeaderSignatures, RpmHeaderError> {
    use rpm::IndexSignatureTag as T;
    check_structure(file)?;
    let meta = rpm::PackageMetadata::parse(file)?;
    let offsets = meta.get_package_segment_offsets();
    let len = offsets.payload.saturating_sub(offsets.header);
    let mut header = vec![0; len as usize];
    file.seek(std::io::SeekFrom::Start(offsets.header))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(|e| RpmHeaderError::Header(e.into()))?;
    let signatures = [T::RPMSIGTAG_RSA, T::RPMSIGTAG_DSA]
        .into_iter()
        .filter_map(|tag| meta.signature.get_entry_data_as_binary(tag).ok())
        .map(<[u8]>::to_vec)
        .collect();
    Ok(HeaderSignatures {
        header,
        signatures,
        payload_sha256: payload_sha256(&meta),
    })
}

/// Reads the header of an rpm file (`bytes`) and writes its entries.
pub fn fragments(
    bytes: &[u8],
    sha256: &str,
    href: &str,
    mtime: u64,
) -> Result<Fragments, RpmHeaderError> {
    check_structure(&mut std::io::Cursor::new(bytes))?;
    let meta = rpm::PackageMetadata::parse(&mut std::io::BufReader::new(bytes))?;
    let name = meta.get_name()?.to_owned();
    let arch = if meta.is_source_package() {
        "src".to_owned()
    } else {
        meta.get_arch()?.to_owned()
    };
    let epoch = meta.get_epoch().unwrap_or(0);
    let (ver, rel) = (
        meta.get_version()?.to_owned(),
        meta.get_release()?.to_owned(),
    );
    let opt = |r: Result<&str, rpm::Error>| escape(r.unwrap_or("")).into_owned();
    let offsets = meta.get_package_segment_offsets();
    check_payload(&meta, bytes, offsets.header, offsets.payload)?;
    let files: Vec<(String, bool)> = meta
        .get_file_entries()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            (
                f.path().to_string_lossy().into_owned(),
                f.mode().file_type() == rpm::FileType::Dir,
            )
        })
        .collect();
    let version = format!(
        "<version epoch=\"{epoch}\" ver=\"{}\" rel=\"{}\"/>",
        escape(&ver),
        escape(&rel)
    );
    let mut primary = format!(
        "<package type=\"rpm\">\n  <name>{}</name>\n  <arch>{}</arch>\n  {version}\n  <checksum type=\"sha256\" pkgid=\"YES\">{sha256}</checksum>\n  <summary>{}</summary>\n  <description>{}</description>\n  <packager>{}</packager>\n  <url>{}</url>\n  <time file=\"{mtime}\" build=\"{}\"/>\n  <size package=\"{}\" installed=\"{}\" archive=\"{}\"/>\n  <location href=\"{}\"/>\n  <format>\n    <rpm:license>{}</rpm:license>\n    <rpm:vendor>{}</rpm:vendor>\n    <rpm:group>{}</rpm:group>\n    <rpm:buildhost>{}</rpm:buildhost>\n    <rpm:sourcerpm>{}</rpm:sourcerpm>\n    <rpm:header-range start=\"{}\" end=\"{}\"/>\n",
        escape(&name),
        escape(&arch),
        opt(meta.get_summary()),
        opt(meta.get_description()),
        opt(meta.get_packager()),
        opt(meta.get_url()),
        meta.get_build_time().unwrap_or(0),
        bytes.len(),
        meta.get_installed_size().unwrap_or(0),
        offsets.payload.saturating_sub(offsets.header),
        escape(href),
        opt(meta.get_license()),
        opt(meta.get_vendor()),
        opt(meta.get_group()),
        opt(meta.get_build_host()),
        opt(meta.get_source_rpm()),
        offsets.header,
        offsets.payload,
    );
    for (tag, deps) in [
        ("provides", meta.get_provides()),
        ("requires", meta.get_requires()),
        ("conflicts", meta.get_conflicts()),
        ("obsoletes", meta.get_obsoletes()),
        ("recommends", meta.get_recommends()),
        ("suggests", meta.get_suggests()),
    ] {
        primary.push_str(&entries(tag, &deps.unwrap_or_default()));
    }
    for (path, is_dir) in &files {
        if in_primary(path) {
            let ty = if *is_dir { " type=\"dir\"" } else { "" };
            primary.push_str(&format!("    <file{ty}>{}</file>\n", escape(path)));
        }
    }
    primary.push_str("  </format>\n</package>");
    let head = format!(
        "<package pkgid=\"{sha256}\" name=\"{}\" arch=\"{}\">\n  {version}\n",
        escape(&name),
        escape(&arch)
    );
    let mut filelists = head.clone();
    for (path, is_dir) in &files {
        let ty = if *is_dir { " type=\"dir\"" } else { "" };
        filelists.push_str(&format!("  <file{ty}>{}</file>\n", escape(path)));
    }
    filelists.push_str("</package>");
    let other = head + "</package>";
    let evr = if epoch == 0 {
        format!("{ver}-{rel}")
    } else {
        format!("{epoch}:{ver}-{rel}")
    };
    Ok(Fragments {
        name,
        arch,
        evr,
        primary,
        filelists,
        other,
    })
}

/// Root start tags of the three documents.
pub const PRIMARY_ROOT: &str = "<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"0\">";
pub const FILELISTS_ROOT: &str =
    "<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"0\">";
pub const OTHER_ROOT: &str =
    "<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"0\">";

#[cfg(test)]
mod tests {
    #[test]
    fn fixture_rpm_header_becomes_primary_entries() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rpm/state1/Packages/beta-2.0-1.x86_64.rpm"
        );
        let bytes = std::fs::read(path).unwrap();
        let f = super::fragments(
            &bytes,
            &"0".repeat(64),
            "Packages/b/beta-2.0-1.x86_64.rpm",
            0,
        )
        .unwrap();
        assert_eq!(
            (f.name.as_str(), f.arch.as_str(), f.evr.as_str()),
            ("beta", "x86_64", "2.0-1")
        );
        let doc = crate::formats::rpm::splice(super::PRIMARY_ROOT, "metadata", &[&f.primary]);
        let (_, pkgs) = crate::formats::rpm::parse_primary(&doc).unwrap();
        assert_eq!(pkgs[0].name, "beta");
        assert!(
            pkgs[0]
                .requires
                .iter()
                .any(|r| r.name == "/usr/share/doc/alpha/README")
        );
        assert!(pkgs[0].requires.iter().any(|r| r.name == "alpha"));
        assert!(
            f.filelists
                .contains("<file>/usr/share/doc/beta/README</file>"),
            "{}",
            f.filelists
        );
        let garbage = super::fragments(b"not an rpm at all", "x", "y", 0);
        assert!(garbage.is_err());
        let truncated = super::fragments(&bytes[..bytes.len() - 10], "x", "y", 0);
        assert!(truncated.is_err());
        let mut tampered = bytes.clone();
        let n = tampered.len() - 20;
        tampered[n] ^= 0xff;
        let err = super::fragments(&tampered, "x", "y", 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("payload digest"), "{err}");
    }

    /// Inputs the `rpm_header` fuzz target found (tests/fixtures/fuzz/):
    /// each is refused with an error, never a panic or a huge allocation.
    #[test]
    fn fuzz_findings_are_refused() {
        let offset_past_data =
            include_bytes!("../../tests/fixtures/fuzz/rpm_header/offset-past-data");
        let err = super::fragments(offset_past_data, "x", "y", 0)
            .err()
            .unwrap();
        assert!(err.to_string().contains("points past"), "{err}");
        let err = super::header_signatures(&mut std::io::Cursor::new(&offset_past_data[..]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("points past"), "{err}");
        // A string array of 4 billion items: the crate reserved room for
        // them all before reading one.
        let count = include_bytes!("../../tests/fixtures/fuzz/rpm_header/string-array-count");
        let err = super::fragments(count, "x", "y", 0).err().unwrap();
        assert!(err.to_string().contains("points past"), "{err}");
        // A header claiming 4 GiB: refused before anything is allocated.
        let mut huge = offset_past_data.to_vec();
        huge[96 + 12..96 + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = super::fragments(&huge, "x", "y", 0).err().unwrap();
        assert!(err.to_string().contains("past rpm's limits"), "{err}");
    }
}
