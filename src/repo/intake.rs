//! Reading one package file as `repo add` takes it: a `.deb`'s control
//! stanza, or an `.rpm`'s header, checked against the repo's kind and the
//! file's own size and digests. Nothing here writes.
//!
//! A `.deb` is an `ar` archive of `debian-binary`, `control.tar.*` and
//! `data.tar.*`; only `control.tar` is read (for its `control` file), the
//! payload never is. The ar reader is a few lines here rather than a crate:
//! depot reads one member of a format that has not changed since the 1990s.
//!
//! An `.rpm` is read with the `rpm` crate up to the end of its header (the
//! payload is never read) and becomes primary/filelists/other entries
//! (`formats::rpm_header`).

use std::io::Read;
use std::path::Path;

use super::{RepoDef, RepoError, RepoPackage};
use crate::content::RepoKind;
use crate::digest::Sha256Digest;
use crate::formats::compress::decompress_named;
use crate::formats::deb822;

/// Reads the control stanza of a `.deb` without touching its payload.
pub fn read_deb_control(path: &Path, bytes: &[u8]) -> Result<String, RepoError> {
    let bad = |problem: &str| RepoError::BadPackage {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let mut rest = bytes
        .strip_prefix(b"!<arch>\n")
        .ok_or_else(|| bad("not an ar archive (no `!<arch>` magic)"))?;
    let mut saw_debian_binary = false;
    while !rest.is_empty() {
        if rest.len() < 60 {
            return Err(bad("truncated ar member header"));
        }
        let (header, body) = rest.split_at(60);
        if &header[58..60] != b"`\n" {
            return Err(bad("corrupt ar member header"));
        }
        let name = std::str::from_utf8(&header[0..16])
            .map_err(|_| bad("corrupt ar member name"))?
            .trim_end()
            .trim_end_matches('/');
        let size: usize = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("corrupt ar member size"))?;
        if body.len() < size {
            return Err(bad("truncated (an ar member is cut short)"));
        }
        let data = &body[..size];
        if name == "debian-binary" {
            if !data.starts_with(b"2.") {
                return Err(bad("unsupported debian-binary version"));
            }
            saw_debian_binary = true;
        } else if name.starts_with("control.tar") {
            if !saw_debian_binary {
                return Err(bad("control.tar before debian-binary"));
            }
            let tar_bytes =
                decompress_named(name, data).map_err(|e| bad(&format!("{name}: {e}")))?;
            let mut archive = tar::Archive::new(&tar_bytes[..]);
            let entries = archive
                .entries()
                .map_err(|e| bad(&format!("{name}: {e}")))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| bad(&format!("{name}: {e}")))?;
                let is_control = entry
                    .path()
                    .map(|p| p == Path::new("./control") || p == Path::new("control"))
                    .unwrap_or(false);
                if is_control {
                    let mut text = String::new();
                    entry
                        .read_to_string(&mut text)
                        .map_err(|e| bad(&format!("control: {e}")))?;
                    return Ok(text);
                }
            }
            return Err(bad("control.tar has no control file"));
        }
        let padded = size + (size % 2);
        rest = body.get(padded..).unwrap_or(&[]);
    }
    Err(bad("no control.tar member"))
}

/// Checks that a `.deb`'s ar members fill the file exactly: reading the
/// control stanza stops at `control.tar`, so a file cut short in its
/// payload would otherwise pass.
fn check_ar_members(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let bad = |problem: &str| RepoError::BadPackage {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let mut rest = bytes
        .strip_prefix(b"!<arch>\n")
        .ok_or_else(|| bad("not an ar archive (no `!<arch>` magic)"))?;
    let mut members = 0;
    while !rest.is_empty() {
        if rest.len() < 60 || &rest[58..60] != b"`\n" {
            return Err(bad("truncated or corrupt ar member header"));
        }
        let size: usize = std::str::from_utf8(&rest[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("corrupt ar member size"))?;
        let body = &rest[60..];
        if body.len() < size {
            return Err(bad("truncated (an ar member is cut short)"));
        }
        members += 1;
        rest = body.get(size + (size % 2)..).unwrap_or(&[]);
    }
    if members < 3 {
        return Err(bad("truncated (fewer than three ar members)"));
    }
    Ok(())
}

const RPM_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];

pub(crate) fn parse_package(
    def: &RepoDef,
    path: &Path,
    bytes: &[u8],
) -> Result<RepoPackage, RepoError> {
    let is_rpm = bytes.starts_with(&RPM_MAGIC);
    let wrong = |found| RepoError::WrongKind {
        repo: def.name.clone(),
        path: path.to_owned(),
        found,
        kind: def.kind,
    };
    match (def.kind, is_rpm) {
        (RepoKind::Rpm, true) => return parse_rpm(path, bytes),
        (RepoKind::Apt, true) => return Err(wrong("an rpm")),
        (RepoKind::Rpm, false) if bytes.starts_with(b"!<arch>\n") => return Err(wrong("a .deb")),
        (RepoKind::Rpm, false) => {
            return Err(RepoError::BadRpm {
                path: path.to_owned(),
                problem: "no rpm lead (magic ed ab ee db)".into(),
            });
        }
        (RepoKind::Apt, false) => {}
    }
    let control = read_deb_control(path, bytes)?;
    check_ar_members(path, bytes)?;
    let bad = |problem: String| RepoError::BadPackage {
        path: path.to_owned(),
        problem,
    };
    let p = deb822::paragraphs(&control)
        .next()
        .ok_or_else(|| bad("empty control file".into()))?
        .map_err(|e| bad(format!("control: {e}")))?;
    let field = |f: &'static str| {
        p.get(f)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("control has no `{f}` field")))
    };
    let (name, version, arch) = (field("Package")?, field("Version")?, field("Architecture")?);
    let source = p
        .get("Source")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or(&name)
        .to_owned();
    let upstream = version.split_once(':').map_or(version.as_str(), |(_, v)| v);
    Ok(RepoPackage {
        filelists: None,
        other: None,
        file_name: format!("{name}_{upstream}_{arch}.deb"),
        size: bytes.len() as u64,
        sha256: Sha256Digest::of(bytes),
        control: control.trim_end().to_owned() + "\n",
        name,
        version,
        arch,
        source,
    })
}

/// Reads an rpm's header (never its payload) into repodata entries.
fn parse_rpm(path: &Path, bytes: &[u8]) -> Result<RepoPackage, RepoError> {
    let sha256 = Sha256Digest::of(bytes);
    let bad = |problem: String| RepoError::BadRpm {
        path: path.to_owned(),
        problem,
    };
    // A first pass names the file; the location is part of the entry.
    let probe = crate::formats::rpm_header::fragments(bytes, "", "", 0)
        .map_err(|e| bad(crate::http::error_chain(&e)))?;
    let file_name = format!(
        "{}-{}.{}.rpm",
        probe.name,
        probe.evr.rsplit(':').next().unwrap_or(&probe.evr),
        probe.arch
    );
    let prefix = probe
        .name
        .chars()
        .next()
        .unwrap_or('_')
        .to_ascii_lowercase();
    let href = format!("Packages/{prefix}/{file_name}");
    let mtime = std::fs::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let f = crate::formats::rpm_header::fragments(bytes, &sha256.to_hex(), &href, mtime)
        .map_err(|e| bad(crate::http::error_chain(&e)))?;
    Ok(RepoPackage {
        source: f.name.clone(),
        name: f.name,
        version: f.evr,
        arch: f.arch,
        file_name,
        size: bytes.len() as u64,
        sha256,
        control: f.primary,
        filelists: Some(f.filelists),
        other: Some(f.other),
    })
}
