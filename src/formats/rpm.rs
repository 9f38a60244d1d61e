//! rpm repository metadata ("repodata").
//!
//! An rpm repository is a tree with `repodata/repomd.xml` at its top.
//! `repomd.xml` lists metadata files by type — `primary` (one `<package>`
//! per rpm: name, arch, epoch/version/release, checksum, size, location,
//! dependencies and some file names), `filelists`, `other` (changelogs),
//! and optionally `updateinfo` (advisories), `group` (comps), `modules` —
//! each with the checksum and size of the compressed file and the
//! `open-checksum`/`open-size` of its uncompressed XML. A detached signature
//! `repomd.xml.asc` signs the whole. Package files live wherever their
//! `<location href>` says, relative to the repository root or to the
//! `xml:base` URL when one is given.
//!
//! depot never re-serialises what it does not change: a metadata file is
//! split into its `<package>` elements as byte ranges (like deb822 stanzas
//! on the apt side), and new files are spliced from those ranges. This is
//! why the streaming `quick-xml` reader is used directly instead of
//! `rpmrepo_metadata`, whose reader materialises every package with all
//! its files and changelogs — the memory profile that makes Pulp need
//! gigabytes for large repositories — when depot needs seven fields and
//! the byte span of each package.

use std::cmp::Ordering;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};

use crate::formats::compress::Compression;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpmFormatError {
    #[error("malformed XML at byte {position}: {message}")]
    Xml { position: u64, message: String },
    #[error("package at byte {position} has no `{what}`")]
    Missing { position: u64, what: &'static str },
    #[error("unsupported checksum type `{0}` (depot needs sha256)")]
    ChecksumType(String),
    #[error("unsafe location `{href}` ({why})")]
    UnsafePath { href: String, why: &'static str },
    #[error("repomd.xml lists no `{0}` metadata")]
    NoRecord(&'static str),
}

fn xml_err(reader: &quick_xml::Reader<&[u8]>, e: impl std::fmt::Display) -> RpmFormatError {
    RpmFormatError::Xml {
        position: reader.error_position(),
        message: e.to_string(),
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name).ok().flatten().and_then(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .ok()
            .map(|v| v.into_owned())
    })
}

/// One `<data>` record of `repomd.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepomdRecord {
    pub mdtype: String,
    pub href: String,
    pub checksum_type: String,
    pub checksum: String,
    pub open_checksum: Option<String>,
    pub size: Option<u64>,
    pub open_size: Option<u64>,
}

impl RepomdRecord {
    pub fn compression(&self) -> Compression {
        if self.href.ends_with(".bz2") {
            // bz2 has no Compression variant: it is read, never written.
            Compression::None
        } else {
            Compression::from_path(&self.href)
        }
    }
}

/// Parses `repomd.xml`.
pub fn parse_repomd(text: &str) -> Result<Vec<RepomdRecord>, RpmFormatError> {
    let mut reader = quick_xml::Reader::from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut current: Option<RepomdRecord> = None;
    let mut field: Option<String> = None;
    let mut depth = 0usize;
    loop {
        let ev = reader.read_event().map_err(|e| xml_err(&reader, e))?;
        match ev {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name().as_ref().to_owned();
                match name.as_str() {
                    "data" => {
                        current = Some(RepomdRecord {
                            mdtype: attr(&e, "type").unwrap_or_default(),
                            href: String::new(),
                            checksum_type: String::new(),
                            checksum: String::new(),
                            open_checksum: None,
                            size: None,
                            open_size: None,
                        });
                    }
                    "checksum" => {
                        if let Some(c) = current.as_mut() {
                            c.checksum_type = attr(&e, "type").unwrap_or_default();
                        }
                        field = Some(name);
                    }
                    _ => field = Some(name),
                }
            }
            Event::Empty(e) => {
                if e.local_name().as_ref() == "location"
                    && let Some(c) = current.as_mut()
                {
                    c.href = attr(&e, "href").unwrap_or_default();
                }
            }
            Event::Text(t) => {
                if let (Some(c), Some(f)) = (current.as_mut(), field.as_deref()) {
                    let v = t.trim().to_owned();
                    match f {
                        "checksum" => c.checksum = v,
                        "open-checksum" => c.open_checksum = Some(v),
                        "size" => c.size = v.parse().ok(),
                        "open-size" => c.open_size = v.parse().ok(),
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                field = None;
                if e.local_name().as_ref() == "data"
                    && let Some(c) = current.take()
                {
                    records.push(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err(RpmFormatError::Xml {
            position: text.len() as u64,
            message: "unexpected end of document".into(),
        });
    }
    Ok(records)
}

/// A dependency entry (`<rpm:entry>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    pub name: String,
    pub flags: Option<String>,
    pub evr: Option<Evr>,
}

/// One `<package>` of `primary.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryPackage {
    /// Byte range of the whole `<package>…</package>` element.
    pub span: Range<usize>,
    pub name: String,
    pub arch: String,
    pub evr: Evr,
    /// SHA-256 of the package file (the pool name).
    pub sha256: String,
    pub size: u64,
    pub href: String,
    pub base: Option<String>,
    pub provides: Vec<DepEntry>,
    pub requires: Vec<DepEntry>,
    /// Files listed in primary (those used for file dependencies).
    pub files: Vec<String>,
}

/// Why a location from upstream metadata is refused, if it is.
pub fn unsafe_href(href: &str) -> Option<&'static str> {
    crate::formats::apt::unsafe_path_reason(href)
}

/// Splits a metadata document into the byte ranges of its top-level
/// children (`<package>` elements) and returns the root start tag's span.
pub struct Split {
    pub root_tag: Range<usize>,
    pub root_name: String,
    pub packages: Vec<(Range<usize>, Option<String>)>,
}

/// Splits `filelists.xml`/`other.xml` (or any repodata document) into its
/// `<package pkgid="…">` children.
pub fn split_packages(text: &str) -> Result<Split, RpmFormatError> {
    let mut reader = quick_xml::Reader::from_reader(text.as_bytes());
    let mut depth = 0usize;
    let mut root_tag = 0..0;
    let mut root_name = String::new();
    let mut packages = Vec::new();
    let mut start = 0usize;
    let mut pkgid = None;
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| xml_err(&reader, e))?;
        match ev {
            Event::Start(e) => {
                if depth == 0 {
                    root_tag = before..reader.buffer_position() as usize;
                    root_name = e.name().as_ref().to_owned();
                } else if depth == 1 {
                    start = before;
                    pkgid = attr(&e, "pkgid");
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 1 => {
                packages.push((before..reader.buffer_position() as usize, attr(&e, "pkgid")));
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    packages.push((start..reader.buffer_position() as usize, pkgid.take()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || root_name.is_empty() {
        return Err(RpmFormatError::Xml {
            position: text.len() as u64,
            message: "unexpected end of document".into(),
        });
    }
    Ok(Split {
        root_tag,
        root_name,
        packages,
    })
}

fn dep_entry(e: &BytesStart<'_>) -> DepEntry {
    let ver = attr(e, "ver");
    DepEntry {
        name: attr(e, "name").unwrap_or_default(),
        flags: attr(e, "flags"),
        evr: ver.map(|v| Evr {
            epoch: attr(e, "epoch").and_then(|x| x.parse().ok()).unwrap_or(0),
            version: v,
            release: attr(e, "rel").unwrap_or_default(),
        }),
    }
}

/// Parses `primary.xml` into its packages (every location checked).
pub fn parse_primary(text: &str) -> Result<(Split, Vec<PrimaryPackage>), RpmFormatError> {
    parse_primary_with(text, true)
}

/// [`parse_primary`] without the dependencies and files: each package's
/// identity, checksum, size and location, all that publishing needs (for
/// 20k packages, far fewer allocations).
pub fn primary_locations(text: &str) -> Result<(Split, Vec<PrimaryPackage>), RpmFormatError> {
    parse_primary_with(text, false)
}

fn parse_primary_with(
    text: &str,
    deps: bool,
) -> Result<(Split, Vec<PrimaryPackage>), RpmFormatError> {
    let mut reader = quick_xml::Reader::from_reader(text.as_bytes());
    let mut depth = 0usize;
    let mut root_tag = 0..0;
    let mut root_name = String::new();
    let mut out = Vec::new();
    let mut spans = Vec::new();
    let mut cur: Option<PrimaryPackage> = None;
    let mut text_buf = String::new();
    let mut dep_list = "";
    let mut checksum_type = String::new();
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| xml_err(&reader, e))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                if depth == 0 {
                    root_tag = before..reader.buffer_position() as usize;
                    root_name = e.name().as_ref().to_owned();
                } else if depth == 1 && local == "package" {
                    cur = Some(PrimaryPackage {
                        span: before..before,
                        name: String::new(),
                        arch: String::new(),
                        evr: Evr::default(),
                        sha256: String::new(),
                        size: 0,
                        href: String::new(),
                        base: None,
                        provides: Vec::new(),
                        requires: Vec::new(),
                        files: Vec::new(),
                    });
                } else if let Some(p) = cur.as_mut() {
                    match local {
                        "version" => {
                            p.evr = Evr {
                                epoch: attr(e, "epoch").and_then(|x| x.parse().ok()).unwrap_or(0),
                                version: attr(e, "ver").unwrap_or_default(),
                                release: attr(e, "rel").unwrap_or_default(),
                            };
                        }
                        "checksum" => checksum_type = attr(e, "type").unwrap_or_default(),
                        "size" => {
                            p.size = attr(e, "package").and_then(|s| s.parse().ok()).unwrap_or(0)
                        }
                        "location" => {
                            p.href = attr(e, "href").unwrap_or_default();
                            p.base = attr(e, "xml:base");
                        }
                        "provides" => dep_list = "provides",
                        "requires" => dep_list = "requires",
                        "conflicts" | "obsoletes" | "recommends" | "suggests" | "supplements"
                        | "enhances" => dep_list = "",
                        "entry" if deps => match dep_list {
                            "provides" => p.provides.push(dep_entry(e)),
                            "requires" => p.requires.push(dep_entry(e)),
                            _ => {}
                        },
                        _ => {}
                    }
                    text_buf.clear();
                }
                if !is_empty {
                    depth += 1;
                }
            }
            Event::Text(t) if cur.is_some() => text_buf.push_str(&t),
            Event::GeneralRef(r) if cur.is_some() => {
                text_buf.push_str(match r.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let local = e.local_name();
                if let Some(p) = cur.as_mut() {
                    match local.as_ref() {
                        "name" if depth == 2 => p.name = text_buf.trim().to_owned(),
                        "arch" if depth == 2 => p.arch = text_buf.trim().to_owned(),
                        "checksum" => {
                            if checksum_type != "sha256" {
                                return Err(RpmFormatError::ChecksumType(checksum_type));
                            }
                            p.sha256 = text_buf.trim().to_owned();
                        }
                        "file" if deps => p.files.push(text_buf.trim().to_owned()),
                        "provides" | "requires" => dep_list = "",
                        _ => {}
                    }
                    text_buf.clear();
                }
                if depth == 1
                    && local.as_ref() == "package"
                    && let Some(mut p) = cur.take()
                {
                    p.span = p.span.start..reader.buffer_position() as usize;
                    let pos = p.span.start as u64;
                    for (ok, what) in [
                        (!p.name.is_empty(), "name"),
                        (!p.arch.is_empty(), "arch"),
                        (!p.evr.version.is_empty(), "version"),
                        (p.sha256.len() == 64, "sha256 checksum"),
                        (!p.href.is_empty(), "location"),
                    ] {
                        if !ok {
                            return Err(RpmFormatError::Missing {
                                position: pos,
                                what,
                            });
                        }
                    }
                    if let Some(why) = unsafe_href(&p.href) {
                        return Err(RpmFormatError::UnsafePath { href: p.href, why });
                    }
                    spans.push((p.span.clone(), Some(p.sha256.clone())));
                    out.push(p);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || root_name.is_empty() {
        return Err(RpmFormatError::Xml {
            position: text.len() as u64,
            message: "unexpected end of document".into(),
        });
    }
    Ok((
        Split {
            root_tag,
            root_name,
            packages: spans,
        },
        out,
    ))
}

/// Rebuilds a metadata document from the root tag of `text` and the given
/// package fragments, with the `packages="N"` count updated.
pub fn splice(root_tag: &str, root_name: &str, fragments: &[&str]) -> String {
    let mut body = String::with_capacity(fragments.iter().map(|f| f.len() + 1).sum());
    for f in fragments {
        body.push_str(f);
        body.push('\n');
    }
    document(root_tag, root_name, fragments.len(), &body)
}

/// A metadata document: the XML declaration, `root_tag` with its
/// `packages="N"` count set to `packages`, `body` (whole elements, each
/// line ended), and the closing tag.
pub fn document(root_tag: &str, root_name: &str, packages: usize, body: &str) -> String {
    let mut out = head(root_tag, packages);
    out.reserve(body.len() + root_name.len() + 4);
    out.push_str(body);
    out.push_str(&tail(root_name));
    out
}

/// The end of a metadata document: the root element's closing tag.
pub fn tail(root_name: &str) -> String {
    format!("</{root_name}>\n")
}

/// The start of a metadata document: the XML declaration and `root_tag`
/// with its `packages="N"` count set to `packages`, each on a line.
pub fn head(root_tag: &str, packages: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        set_packages_attr(root_tag, packages)
    )
}

/// Where a metadata document's root element is: its start tag (as a
/// start tag, also when the root is empty), its name, and its content
/// (between the start tag and the closing tag).
pub struct Frame {
    pub root_tag: String,
    pub root_name: String,
    pub body: Range<usize>,
}

/// The [`Frame`] of `text`, read from its first element and its last
/// closing tag (the elements between are neither parsed nor read, so a
/// mapped file's pages between stay untouched); `None` if it has no root
/// element.
pub fn frame(text: &[u8]) -> Option<Frame> {
    let mut reader = quick_xml::Reader::from_reader(text);
    loop {
        let before = reader.buffer_position() as usize;
        let (empty, e) = match reader.read_event().ok()? {
            Event::Start(e) => (false, e),
            Event::Empty(e) => (true, e),
            Event::Eof => return None,
            _ => continue,
        };
        let root_name: String = e.name().as_ref().to_owned();
        let start = reader.buffer_position() as usize;
        let tag = std::str::from_utf8(&text[before..start]).ok()?;
        if empty {
            // `<metadata packages="0"/>`: a document with no packages.
            return Some(Frame {
                root_tag: format!("{}>", tag.trim_end_matches('>').trim_end_matches('/')),
                root_name,
                body: start..start,
            });
        }
        let closing = format!("</{root_name}");
        let end = text
            .windows(closing.len())
            .rposition(|w| w == closing.as_bytes())?;
        return (end >= start).then(|| Frame {
            root_tag: tag.to_owned(),
            root_name,
            body: start..end,
        });
    }
}

fn set_packages_attr(tag: &str, n: usize) -> String {
    if let Some(i) = tag.find(" packages=\"") {
        let rest = &tag[i + 11..];
        if let Some(j) = rest.find('"') {
            return format!("{} packages=\"{n}\"{}", &tag[..i], &rest[j + 1..]);
        }
    }
    tag.to_owned()
}

/// An rpm epoch:version-release, ordered by rpmvercmp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Evr {
    pub epoch: u64,
    pub version: String,
    pub release: String,
}

impl std::fmt::Display for Evr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        write!(f, "{}", self.version)?;
        if !self.release.is_empty() {
            write!(f, "-{}", self.release)?;
        }
        Ok(())
    }
}

impl Evr {
    /// Parses `[epoch:]version[-release]`.
    pub fn parse(s: &str) -> Self {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) && !e.is_empty() => {
                (e.parse().unwrap_or(0), r)
            }
            _ => (0, s),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v.to_owned(), r.to_owned()),
            None => (rest.to_owned(), String::new()),
        };
        Self {
            epoch,
            version,
            release,
        }
    }
}

impl Ord for Evr {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| {
                // A missing release matches any release (as rpm compares
                // a requirement without release against a package).
                if self.release.is_empty() || other.release.is_empty() {
                    Ordering::Equal
                } else {
                    rpmvercmp(&self.release, &other.release)
                }
            })
    }
}

impl PartialOrd for Evr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// rpm's version comparison (`rpmvercmp`): alternating runs of digits and
/// letters compared segment by segment; `~` sorts before anything (even the
/// end), `^` after the end but before anything else.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let is_sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while let Some((&c, rest)) = a.split_first() {
            if is_sep(c) { a = rest } else { break }
        }
        while let Some((&c, rest)) = b.split_first() {
            if is_sep(c) { b = rest } else { break }
        }
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (Some(b'^'), Some(b'^')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'^'), None) => return Ordering::Greater,
            (None, Some(b'^')) => return Ordering::Less,
            (Some(b'^'), _) => return Ordering::Less,
            (_, Some(b'^')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            _ => {}
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (take(a), take(b));
        if nb == 0 {
            // Segments of different kinds: numeric is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (sa, sb) = (&a[..na], &b[..nb]);
        let ord = if numeric {
            let ta = trim_zeros(sa);
            let tb = trim_zeros(sb);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

/// The name of a repodata file as createrepo_c writes it: `HASH-TYPE.xml.EXT`.
pub fn data_file_name(sha256: &str, mdtype: &str, compression: Compression) -> String {
    format!("{sha256}-{mdtype}.xml{}", compression.suffix())
}

/// A record of the `repomd.xml` depot writes.
pub struct NewRecord {
    pub mdtype: String,
    pub href: String,
    pub sha256: String,
    pub size: u64,
    pub open_sha256: String,
    pub open_size: u64,
}

fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// Writes `repomd.xml`.
pub fn write_repomd(revision: u64, timestamp: u64, records: &[NewRecord]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n",
    );
    out.push_str(&format!("  <revision>{revision}</revision>\n"));
    for r in records {
        out.push_str(&format!(
            "  <data type=\"{}\">\n    <checksum type=\"sha256\">{}</checksum>\n    <open-checksum type=\"sha256\">{}</open-checksum>\n    <location href=\"{}\"/>\n    <timestamp>{timestamp}</timestamp>\n    <size>{}</size>\n    <open-size>{}</open-size>\n  </data>\n",
            escape(&r.mdtype),
            r.sha256,
            r.open_sha256,
            escape(&r.href),
            r.size,
            r.open_size
        ));
    }
    out.push_str("</repomd>\n");
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_document_frame_is_found_without_reading_its_packages() {
        let doc = b"<?xml version=\"1.0\"?>\n<metadata packages=\"2\">\n<package/>\n<package/>\n</metadata>\n";
        let f = frame(doc).unwrap();
        assert_eq!(f.root_tag, "<metadata packages=\"2\">");
        assert_eq!(f.root_name, "metadata");
        assert_eq!(&doc[f.body.clone()], b"\n<package/>\n<package/>\n");
        let empty = frame(b"<?xml version=\"1.0\"?>\n<filelists packages=\"0\"/>\n").unwrap();
        assert_eq!(empty.root_tag, "<filelists packages=\"0\">");
        assert!(empty.body.is_empty());
        assert_eq!(
            document(&empty.root_tag, &empty.root_name, 0, ""),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists packages=\"0\">\n</filelists>\n"
        );
        assert!(frame(b"<?xml version=\"1.0\"?>\n").is_none());
        assert!(frame(b"<metadata>").is_none());
    }

    use super::*;

    #[test]
    fn rpmvercmp_matches_rpm() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^post", "1.0", Greater),
            ("1.0^post", "1.0.1", Less),
            ("1.0~rc", "1.0^post", Less),
            ("10", "9", Greater),
            ("010", "10", Equal),
            ("1.el9", "1", Greater),
            ("a", "1", Less),
            ("1.0-1", "1.0_1", Equal),
        ] {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn evr_orders_epoch_first() {
        assert!(Evr::parse("1:0.9-1") > Evr::parse("2.0-1"));
        assert!(Evr::parse("1.0-1") < Evr::parse("1.0-1.el9"));
        assert_eq!(Evr::parse("2:1.0-3").to_string(), "2:1.0-3");
    }

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">
<package type="rpm">
  <name>alpha</name>
  <arch>noarch</arch>
  <version epoch="1" ver="1.0" rel="1"/>
  <checksum type="sha256" pkgid="YES">2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae</checksum>
  <size package="1234" installed="10" archive="100"/>
  <location href="Packages/a/alpha-1.0-1.noarch.rpm"/>
  <format>
    <rpm:provides><rpm:entry name="alpha" flags="EQ" epoch="1" ver="1.0" rel="1"/></rpm:provides>
    <rpm:requires><rpm:entry name="/bin/sh"/></rpm:requires>
    <file>/usr/bin/alpha</file>
  </format>
</package>
</metadata>
"#;

    #[test]
    fn primary_packages_and_spans() {
        let (split, pkgs) = parse_primary(PRIMARY).unwrap();
        assert_eq!(pkgs.len(), 1);
        let p = &pkgs[0];
        assert_eq!((p.name.as_str(), p.arch.as_str()), ("alpha", "noarch"));
        assert_eq!(p.evr.to_string(), "1:1.0-1");
        assert_eq!(p.size, 1234);
        assert_eq!(p.requires[0].name, "/bin/sh");
        assert_eq!(p.files, ["/usr/bin/alpha"]);
        assert!(
            PRIMARY[p.span.clone()].starts_with("<package")
                && PRIMARY[p.span.clone()].ends_with("</package>")
        );
        let again = splice(
            &PRIMARY[split.root_tag.clone()],
            &split.root_name,
            &[&PRIMARY[p.span.clone()]],
        );
        assert_eq!(
            parse_primary(&again).unwrap().1,
            pkgs.iter()
                .map(|p| PrimaryPackage {
                    span: again.find("<package").unwrap()..again.find("</package>").unwrap() + 10,
                    ..p.clone()
                })
                .collect::<Vec<_>>()
        );
    }

    /// Locations only: the same packages, spans, checksums and hrefs, and
    /// no dependency or file lists.
    #[test]
    fn primary_locations_are_the_packages_without_their_lists() {
        let (_, full) = parse_primary(PRIMARY).unwrap();
        let (_, lean) = primary_locations(PRIMARY).unwrap();
        let without_lists: Vec<PrimaryPackage> = full
            .into_iter()
            .map(|p| PrimaryPackage {
                provides: Vec::new(),
                requires: Vec::new(),
                files: Vec::new(),
                ..p
            })
            .collect();
        assert_eq!(lean, without_lists);
        assert!(!lean[0].href.is_empty() && lean[0].sha256.len() == 64);
    }

    #[test]
    fn hostile_and_malformed_primary_is_refused() {
        let bad = PRIMARY.replace("Packages/a/alpha", "../../alpha");
        assert!(matches!(
            parse_primary(&bad),
            Err(RpmFormatError::UnsafePath { .. })
        ));
        let bad = PRIMARY.replace("Packages/a/alpha", "/etc/alpha");
        assert!(matches!(
            parse_primary(&bad),
            Err(RpmFormatError::UnsafePath { .. })
        ));
        let bad = PRIMARY.replace("</name>", "");
        assert!(parse_primary(&bad).is_err());
        assert!(parse_primary(&PRIMARY[..PRIMARY.len() / 2]).is_err());
    }
}
