//! apt repository indices.
//!
//! An apt repository is a tree served over HTTP:
//!
//! ```text
//! dists/SUITE/InRelease                clearsigned Release
//! dists/SUITE/Release, Release.gpg     the same, with a detached signature
//! dists/SUITE/COMP/binary-ARCH/Packages[.xz|.gz]
//! dists/SUITE/COMP/debian-installer/binary-ARCH/Packages   (udebs)
//! dists/SUITE/COMP/source/Sources[.xz|.gz]
//! pool/COMP/p/pkg/pkg_1.0-1_amd64.deb  the package files
//! ```
//!
//! `Release` lists the size and SHA-256 of every index (`SHA256:` lines are
//! ` HASH SIZE PATH`, in that order — apt finds nothing if they are swapped).
//! Each `Packages` stanza names its file by `Filename` (relative to the
//! repository root) with `Size` and `SHA256`; each `Sources` stanza names a
//! `Directory` and its files in `Checksums-Sha256`. A *flat* repository
//! (`deb URL DIR/`) has `Release` and `Packages` directly in `DIR/`.
//!
//! Everything here is parsed from untrusted input: paths are checked by
//! [`check_relative_path`] before they are ever joined to a URL or a
//! directory.
//!
//! Like all of `formats/`, it parses and writes bytes in memory and never
//! touches the file system or the network.

use std::collections::BTreeMap;

use crate::digest::{Expected, Sha256Digest};
use crate::formats::deb822::{self, Deb822Error, Paragraph};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AptFormatError {
    #[error(transparent)]
    Syntax(#[from] Deb822Error),
    #[error("line {line}: the stanza has no `{field}` field")]
    MissingField { line: usize, field: &'static str },
    #[error("line {line}: invalid `{field}` value `{value}`")]
    InvalidField {
        line: usize,
        field: &'static str,
        value: String,
    },
    #[error("line {line}: unsafe path `{path}` ({why})")]
    UnsafePath {
        line: usize,
        path: String,
        why: &'static str,
    },
    #[error("the Release file is empty")]
    EmptyRelease,
}

/// Why a path from an upstream index is refused, if it is.
pub fn unsafe_path_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("empty")
    } else if path.starts_with('/') {
        Some("absolute path")
    } else if path.contains('\0') || path.contains('\\') {
        Some("forbidden character")
    } else if path.split('/').any(|c| c == ".." || c == ".") {
        Some("`.` or `..` component")
    } else if path.split('/').any(str::is_empty) {
        Some("empty path component")
    } else if path.contains("://") || path.starts_with('~') {
        Some("not a relative path")
    } else {
        None
    }
}

fn check_relative_path(line: usize, path: &str) -> Result<(), AptFormatError> {
    match unsafe_path_reason(path) {
        Some(why) => Err(AptFormatError::UnsafePath {
            line,
            path: path.chars().take(200).collect(),
            why,
        }),
        None => Ok(()),
    }
}

fn required<'a>(p: &Paragraph<'a>, field: &'static str) -> Result<&'a str, AptFormatError> {
    match p.get(field) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(AptFormatError::MissingField {
            line: p.line,
            field,
        }),
    }
}

fn parse_size(line: usize, field: &'static str, value: &str) -> Result<u64, AptFormatError> {
    value.parse().map_err(|_| AptFormatError::InvalidField {
        line,
        field,
        value: value.to_owned(),
    })
}

fn parse_sha(
    line: usize,
    field: &'static str,
    value: &str,
) -> Result<Sha256Digest, AptFormatError> {
    value.parse().map_err(|_| AptFormatError::InvalidField {
        line,
        field,
        value: value.chars().take(80).collect(),
    })
}

/// The parts of a `Release` file depot uses.
#[derive(Debug, Clone, Default)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// SHA-256 and size of each file, by path relative to the Release file.
    pub sha256: BTreeMap<String, Expected>,
}

impl Release {
    pub fn parse(text: &str) -> Result<Self, AptFormatError> {
        let p = deb822::paragraphs(text)
            .next()
            .ok_or(AptFormatError::EmptyRelease)??;
        let words = |f: &str| -> Vec<String> {
            p.get(f)
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let mut sha256 = BTreeMap::new();
        if let Some(field) = p.field("SHA256") {
            for (i, line) in field.value.lines().enumerate() {
                let line_no = p.line + i;
                let parts: Vec<&str> = line.split_whitespace().collect();
                if parts.is_empty() {
                    continue;
                }
                let [sha, size, path] = parts[..] else {
                    return Err(AptFormatError::InvalidField {
                        line: line_no,
                        field: "SHA256",
                        value: line.trim().to_owned(),
                    });
                };
                check_relative_path(line_no, path)?;
                sha256.insert(
                    path.to_owned(),
                    Expected {
                        size: parse_size(line_no, "SHA256", size)?,
                        sha256: parse_sha(line_no, "SHA256", sha)?,
                    },
                );
            }
        }
        Ok(Self {
            origin: p.get("Origin").map(str::to_owned),
            label: p.get("Label").map(str::to_owned),
            suite: p.get("Suite").map(str::to_owned),
            codename: p.get("Codename").map(str::to_owned),
            architectures: words("Architectures"),
            components: words("Components"),
            sha256,
        })
    }
}

/// A binary package stanza (`Packages`), checked: its fields, borrowed
/// from the paragraph.
#[derive(Debug, Clone, Copy)]
pub struct BinaryStanza<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub architecture: &'a str,
    pub source: &'a str,
    /// Relative, inside the repository, without a leading `./`.
    pub filename: &'a str,
    pub expected: Expected,
}

impl<'a> BinaryStanza<'a> {
    pub fn of(p: &Paragraph<'a>) -> Result<Self, AptFormatError> {
        let name = required(p, "Package")?;
        let version = required(p, "Version")?;
        let architecture = required(p, "Architecture")?;
        // Flat repositories (apt-ftparchive) write `Filename: ./pkg.deb`.
        let filename = required(p, "Filename")?;
        let filename = filename.strip_prefix("./").unwrap_or(filename);
        check_relative_path(p.line, filename)?;
        let size = parse_size(p.line, "Size", required(p, "Size")?)?;
        let sha256 = parse_sha(p.line, "SHA256", required(p, "SHA256")?)?;
        let source = p
            .get("Source")
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or(name);
        Ok(Self {
            name,
            version,
            architecture,
            source,
            filename,
            expected: Expected { size, sha256 },
        })
    }
}

/// A source package stanza (`Sources`), checked.
#[derive(Debug, Clone)]
pub struct SourceStanza<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub directory: &'a str,
    /// File name (inside `directory`) and what it must be.
    pub files: Vec<(&'a str, Expected)>,
    pub paragraph: Paragraph<'a>,
}

impl<'a> SourceStanza<'a> {
    pub fn from_paragraph(p: Paragraph<'a>) -> Result<Self, AptFormatError> {
        let name = required(&p, "Package")?;
        let version = required(&p, "Version")?;
        let directory = required(&p, "Directory")?;
        check_relative_path(p.line, directory)?;
        let mut files = Vec::new();
        for line in required(&p, "Checksums-Sha256")?.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.is_empty() {
                continue;
            }
            let [sha, size, file] = parts[..] else {
                return Err(AptFormatError::InvalidField {
                    line: p.line,
                    field: "Checksums-Sha256",
                    value: line.trim().to_owned(),
                });
            };
            check_relative_path(p.line, file)?;
            if file.contains('/') {
                return Err(AptFormatError::UnsafePath {
                    line: p.line,
                    path: file.to_owned(),
                    why: "a source file name must not contain `/`",
                });
            }
            files.push((
                file,
                Expected {
                    size: parse_size(p.line, "Checksums-Sha256", size)?,
                    sha256: parse_sha(p.line, "Checksums-Sha256", sha)?,
                },
            ));
        }
        Ok(Self {
            name,
            version,
            directory,
            files,
            paragraph: p,
        })
    }
}

/// Iterates over the checked binary stanzas of a `Packages` text.
pub fn binary_stanzas(
    text: &str,
) -> impl Iterator<Item = Result<BinaryStanza<'_>, AptFormatError>> {
    binary_stanzas_from(text, 1)
}

/// [`binary_stanzas`] of a piece of an index that starts at line `line`.
pub fn binary_stanzas_from(
    text: &str,
    line: usize,
) -> impl Iterator<Item = Result<BinaryStanza<'_>, AptFormatError>> {
    deb822::paragraphs_from(text, line).map(|p| BinaryStanza::of(&p?))
}

/// Iterates over the checked source stanzas of a `Sources` text.
pub fn source_stanzas(
    text: &str,
) -> impl Iterator<Item = Result<SourceStanza<'_>, AptFormatError>> {
    source_stanzas_from(text, 1)
}

/// [`source_stanzas`] of a piece of an index that starts at line `line`.
pub fn source_stanzas_from(
    text: &str,
    line: usize,
) -> impl Iterator<Item = Result<SourceStanza<'_>, AptFormatError>> {
    deb822::paragraphs_from(text, line).map(|p| SourceStanza::from_paragraph(p?))
}

/// The pool directory Debian puts a source package's files in: `lib`
/// packages under their first four letters, others under their first.
pub fn pool_prefix(source: &str) -> &str {
    let n = if source.starts_with("lib") && source.len() > 3 {
        4
    } else {
        1
    };
    source.get(..n).unwrap_or(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_checksums_are_hash_size_path() {
        let text = "Suite: stable\nComponents: main contrib\nArchitectures: amd64 arm64\nSHA256:\n 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 3 main/binary-amd64/Packages\n";
        let r = Release::parse(text).unwrap();
        assert_eq!(r.components, ["main", "contrib"]);
        let e = r.sha256["main/binary-amd64/Packages"];
        assert_eq!(e.size, 3);
        assert_eq!(e.sha256, Sha256Digest::of(b"foo"));
    }

    #[test]
    fn hostile_filenames_are_refused() {
        let base = "Package: a\nVersion: 1\nArchitecture: all\nSize: 1\nSHA256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\n";
        for bad in ["../x.deb", "pool/../../x.deb", "/etc/passwd", "pool//x.deb"] {
            let text = format!("{base}Filename: {bad}\n");
            let err = binary_stanzas(&text).next().unwrap().unwrap_err();
            assert!(
                matches!(err, AptFormatError::UnsafePath { .. }),
                "{bad}: {err}"
            );
        }
        let ok = format!("{base}Filename: pool/main/a/a_1_all.deb\n");
        let s = binary_stanzas(&ok).next().unwrap().unwrap();
        assert_eq!(s.source, "a");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = binary_stanzas("Package: a\nVersion: 1\n")
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: the stanza has no `Architecture` field"
        );
    }

    #[test]
    fn pool_prefix_follows_debian() {
        assert_eq!(pool_prefix("libc6"), "libc");
        assert_eq!(pool_prefix("bash"), "b");
        assert_eq!(pool_prefix("lib"), "l");
    }
}
