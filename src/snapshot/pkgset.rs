//! Packages of a repository state as one list — for queries, dependency
//! closure, verification and merging — and the way back from a selection
//! of packages to new index blobs.
//!
//! Each package keeps where its entry lives (an apt stanza's byte span in
//! its index, an rpm `<package>` span in primary plus its pkgid for
//! filelists/other), so selections are written back verbatim.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use std::ops::Range;

use super::query::{Flavor, Op, PackageFields};
use crate::content::{AptContent, Content, IndexKind, IndexRef, RpmContent, RpmMetadataRef};
use crate::formats::{apt as aptfmt, deb822, rpm as rpmfmt};
use crate::pool::{Pool, PoolError};

#[derive(Debug, thiserror::Error)]
pub enum PackageSetError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Apt(#[from] aptfmt::AptFormatError),
    #[error(transparent)]
    Rpm(#[from] rpmfmt::RpmFormatError),
    #[error("cannot merge apt and rpm content")]
    MixedKinds,
}

/// Index texts are UTF-8 (checked when mirrored); a damaged blob is read
/// lossily rather than refused, so it can still be inspected.
fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One dependency alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    /// `:any` (apt multi-arch): any architecture satisfies it.
    pub any_arch: bool,
    pub rel: Option<(Op, String)>,
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if self.any_arch {
            write!(f, ":any")?;
        }
        if let Some((op, v)) = &self.rel {
            let op = match op {
                Op::Eq => "=",
                Op::Ge => ">=",
                Op::Le => "<=",
                Op::Gt => ">>",
                Op::Lt => "<<",
                Op::Glob => "%",
                Op::Regex => "~",
            };
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// Where a package's entry lives.
#[derive(Debug, Clone)]
pub enum Slot {
    Apt { index: usize, span: Range<usize> },
    Rpm { span: Range<usize>, pkgid: String },
}

#[derive(Debug, Clone)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub source: String,
    pub kind: IndexKind,
    pub slot: Slot,
    /// Provided names, with the provided version if any.
    pub provides: Vec<(String, Option<String>)>,
    /// Dependency groups (`a | b` is one group of two alternatives).
    pub depends: Vec<Vec<Dep>>,
    /// rpm: file paths listed in primary (for file dependencies).
    pub files: Vec<String>,
}

/// filelists/other: type, text, (root tag, root name), fragments by pkgid.
pub type OtherMetadata = (
    String,
    String,
    (String, String),
    HashMap<String, Range<usize>>,
);

/// Packages providing a name in a domain, with the provided version.
type ProvideMap<'a> = FxHashMap<(&'a str, &'a str), Vec<(usize, Option<&'a str>)>>;

/// The rpm metadata a set was read from.
#[derive(Debug, Clone)]
pub struct RpmSource {
    pub primary: String,
    pub primary_root: (String, String),
    /// filelists/other: root tag, root name, fragments by pkgid.
    pub others: Vec<OtherMetadata>,
    /// updateinfo, group, modules: carried as they are.
    pub extras: Vec<RpmMetadataRef>,
    pub files_url: String,
}

#[derive(Debug, Clone)]
pub struct PackageSet {
    pub flavor: Flavor,
    /// apt: the content's metadata and each index's text.
    pub apt: Option<(AptContent, Vec<String>)>,
    pub rpm: Option<RpmSource>,
    pub pkgs: Vec<Pkg>,
}

/// A package seen through its set, for query evaluation.
pub struct View<'a> {
    pub set: &'a PackageSet,
    pub pkg: &'a Pkg,
}

impl PackageFields for View<'_> {
    fn name(&self) -> &str {
        &self.pkg.name
    }
    fn version(&self) -> &str {
        &self.pkg.version
    }
    fn arch(&self) -> &str {
        &self.pkg.arch
    }
    fn source(&self) -> &str {
        &self.pkg.source
    }
    fn package_type(&self) -> &str {
        match (self.set.flavor, self.pkg.kind) {
            (Flavor::Rpm, _) => "rpm",
            (_, IndexKind::Binary) => "deb",
            (_, IndexKind::Udeb) => "udeb",
            (_, IndexKind::Source) => "source",
        }
    }
    fn field(&self, name: &str) -> Option<String> {
        match &self.pkg.slot {
            Slot::Apt { index, span } => {
                let (_, texts) = self.set.apt.as_ref()?;
                let text = &texts[*index][span.clone()];
                let p = deb822::paragraphs(text).next()?.ok()?;
                p.get(name).map(str::to_owned)
            }
            Slot::Rpm { .. } => None,
        }
    }
}

/// Parses `a (>= 1), b | c:any [amd64] <!nocheck>` into groups.
pub fn parse_apt_deps(value: &str) -> Vec<Vec<Dep>> {
    value
        .split(',')
        .filter_map(|group| {
            let alts: Vec<Dep> = group.split('|').filter_map(parse_apt_dep).collect();
            (!alts.is_empty()).then_some(alts)
        })
        .collect()
}

fn parse_apt_dep(alt: &str) -> Option<Dep> {
    // Architecture restrictions `[…]` and build profiles `<…>` do not
    // apply to binary package indices; drop them (outside parentheses,
    // where `<<` is an operator).
    let mut cleaned = String::with_capacity(alt.len());
    let (mut paren, mut skip) = (false, None);
    for c in alt.chars() {
        match (skip, c) {
            (Some(close), c) if c == close => skip = None,
            (Some(_), _) => {}
            (None, '(') => {
                paren = true;
                cleaned.push(c);
            }
            (None, ')') => {
                paren = false;
                cleaned.push(c);
            }
            (None, '[') if !paren => skip = Some(']'),
            (None, '<') if !paren => skip = Some('>'),
            (None, c) => cleaned.push(c),
        }
    }
    let s = cleaned.trim();
    let (name_part, rel) = match s.split_once('(') {
        Some((n, r)) => {
            let r = r.trim_end().trim_end_matches(')').trim();
            let op_len = r
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .unwrap_or(r.len());
            let op = Op::parse(&r[..op_len])?;
            (n.trim(), Some((op, r[op_len..].trim().to_owned())))
        }
        None => (s, None),
    };
    if name_part.is_empty() {
        return None;
    }
    let (name, any_arch) = match name_part.split_once(':') {
        Some((n, q)) => (n, q == "any"),
        None => (name_part, false),
    };
    Some(Dep {
        name: name.to_owned(),
        any_arch,
        rel,
    })
}

fn rpm_op(flags: &str) -> Option<Op> {
    Some(match flags {
        "EQ" => Op::Eq,
        "GE" => Op::Ge,
        "LE" => Op::Le,
        "GT" => Op::Gt,
        "LT" => Op::Lt,
        _ => return None,
    })
}

impl PackageSet {
    pub fn load(pool: &Pool, content: &Content) -> Result<Self, PackageSetError> {
        match content {
            Content::Apt(a) => Self::load_apt(pool, a),
            Content::Rpm(r) => Self::load_rpm(pool, r),
        }
    }

    fn load_apt(pool: &Pool, content: &AptContent) -> Result<Self, PackageSetError> {
        let mut texts = Vec::with_capacity(content.indices.len());
        for index in &content.indices {
            texts.push(utf8(pool.read(&index.blob)?));
        }
        let mut pkgs = Vec::new();
        for (i, (index, text)) in content.indices.iter().zip(&texts).enumerate() {
            for p in deb822::paragraphs(text) {
                let p = p.map_err(aptfmt::AptFormatError::from)?;
                let span = p.span.clone();
                // Indices were checked stanza by stanza when they entered
                // the pool; only the fields used here are read again.
                let missing = |field| aptfmt::AptFormatError::MissingField {
                    line: p.line,
                    field,
                };
                let name = p.get("Package").ok_or_else(|| missing("Package"))?;
                let version = p.get("Version").ok_or_else(|| missing("Version"))?;
                let (arch, source) = match index.kind {
                    IndexKind::Source => ("source", name),
                    _ => (
                        p.get("Architecture")
                            .ok_or_else(|| missing("Architecture"))?,
                        p.get("Source")
                            .and_then(|s| s.split_whitespace().next())
                            .unwrap_or(name),
                    ),
                };
                let mut depends = Vec::new();
                for f in ["Pre-Depends", "Depends"] {
                    if let Some(v) = p.get(f) {
                        depends.extend(parse_apt_deps(v));
                    }
                }
                let provides = p
                    .get("Provides")
                    .map(|v| {
                        parse_apt_deps(v)
                            .into_iter()
                            .flatten()
                            .map(|d| (d.name, d.rel.map(|(_, v)| v)))
                            .collect()
                    })
                    .unwrap_or_default();
                pkgs.push(Pkg {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    arch: arch.to_owned(),
                    source: source.to_owned(),
                    kind: index.kind,
                    slot: Slot::Apt { index: i, span },
                    provides,
                    depends,
                    files: Vec::new(),
                });
            }
        }
        Ok(Self {
            flavor: Flavor::Deb,
            apt: Some((content.clone(), texts)),
            rpm: None,
            pkgs,
        })
    }

    fn load_rpm(pool: &Pool, content: &RpmContent) -> Result<Self, PackageSetError> {
        let read = |m: &RpmMetadataRef| -> Result<String, PackageSetError> {
            Ok(utf8(pool.read(&m.blob)?))
        };
        let primary_ref = content
            .get("primary")
            .ok_or(rpmfmt::RpmFormatError::NoRecord("primary"))?;
        let primary = read(primary_ref)?;
        let (split, parsed) = rpmfmt::parse_primary(&primary)?;
        let mut others = Vec::new();
        let mut extras = Vec::new();
        for m in &content.metadata {
            match m.mdtype.as_str() {
                "primary" => {}
                "filelists" | "other" => {
                    let text = read(m)?;
                    let s = rpmfmt::split_packages(&text)?;
                    let by_id: HashMap<String, Range<usize>> = s
                        .packages
                        .iter()
                        .filter_map(|(r, id)| id.clone().map(|id| (id, r.clone())))
                        .collect();
                    let root = (text[s.root_tag.clone()].to_owned(), s.root_name.clone());
                    others.push((m.mdtype.clone(), text, root, by_id));
                }
                _ => extras.push(m.clone()),
            }
        }
        let mut pkgs: Vec<Pkg> = parsed
            .into_iter()
            .map(|p| {
                let mut provides: Vec<(String, Option<String>)> = p
                    .provides
                    .iter()
                    .map(|e| (e.name.clone(), e.evr.as_ref().map(|v| v.to_string())))
                    .collect();
                provides.push((p.name.clone(), Some(p.evr.to_string())));
                let depends = p
                    .requires
                    .iter()
                    // rpmlib() capabilities are provided by rpm itself, and
                    // rich (boolean) dependencies are not resolved here.
                    .filter(|e| !e.name.starts_with("rpmlib(") && !e.name.starts_with('('))
                    .map(|e| {
                        vec![Dep {
                            name: e.name.clone(),
                            any_arch: true,
                            rel: e
                                .flags
                                .as_deref()
                                .and_then(rpm_op)
                                .zip(e.evr.as_ref().map(|v| v.to_string())),
                        }]
                    })
                    .collect();
                Pkg {
                    source: p.name.clone(),
                    version: p.evr.to_string(),
                    kind: if p.arch == "src" {
                        IndexKind::Source
                    } else {
                        IndexKind::Binary
                    },
                    slot: Slot::Rpm {
                        span: p.span.clone(),
                        pkgid: p.sha256.clone(),
                    },
                    provides,
                    depends,
                    files: p.files.clone(),
                    name: p.name,
                    arch: p.arch,
                }
            })
            .collect();
        // primary lists only some files (/etc, bin dirs); a file dependency
        // on any other path is looked up in filelists, for just those paths.
        let listed: std::collections::HashSet<&str> = pkgs
            .iter()
            .flat_map(|p| p.files.iter().map(String::as_str))
            .collect();
        let wanted: Vec<String> = pkgs
            .iter()
            .flat_map(|p| p.depends.iter().flatten())
            .filter(|d| d.name.starts_with('/') && !listed.contains(d.name.as_str()))
            .map(|d| d.name.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !wanted.is_empty()
            && let Some((_, text, _, by_id)) = others.iter().find(|(t, ..)| t == "filelists")
        {
            for p in &mut pkgs {
                let Slot::Rpm { pkgid, .. } = &p.slot else {
                    continue;
                };
                let Some(range) = by_id.get(pkgid) else {
                    continue;
                };
                let fragment = &text[range.clone()];
                for f in &wanted {
                    if fragment.contains(&format!(">{f}</file>")) {
                        p.files.push(f.clone());
                    }
                }
            }
        }
        Ok(Self {
            flavor: Flavor::Rpm,
            apt: None,
            rpm: Some(RpmSource {
                primary_root: (primary[split.root_tag.clone()].to_owned(), split.root_name),
                primary,
                others,
                extras,
                files_url: content.files_url.clone(),
            }),
            pkgs,
        })
    }

    /// The architecture domain a package resolves dependencies in: its
    /// index's architecture for apt (so `all` packages resolve per arch).
    pub fn domain(&self, pkg: &Pkg) -> &str {
        match (&pkg.slot, &self.apt) {
            (Slot::Apt { index, .. }, Some((c, _))) => {
                c.indices[*index].arch.as_deref().unwrap_or("source")
            }
            _ => "",
        }
    }
}

/// Lookup tables for dependency resolution within one set.
pub struct Resolver<'a> {
    set: &'a PackageSet,
    by_name: FxHashMap<(&'a str, &'a str), Vec<usize>>,
    by_provide: ProvideMap<'a>,
    by_file: FxHashMap<&'a str, Vec<usize>>,
}

impl<'a> Resolver<'a> {
    pub fn new(set: &'a PackageSet) -> Self {
        let mut by_name: FxHashMap<(&str, &str), Vec<usize>> = FxHashMap::default();
        let mut by_provide: ProvideMap<'_> = FxHashMap::default();
        let mut by_file: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
        for (i, p) in set.pkgs.iter().enumerate() {
            if p.kind == IndexKind::Source {
                continue;
            }
            let d = set.domain(p);
            by_name.entry((d, &p.name)).or_default().push(i);
            for (name, v) in &p.provides {
                by_provide
                    .entry((d, name))
                    .or_default()
                    .push((i, v.as_deref()));
            }
            for f in &p.files {
                by_file.entry(f).or_default().push(i);
            }
        }
        Self {
            set,
            by_name,
            by_provide,
            by_file,
        }
    }

    /// Packages satisfying `dep` for a package resolving in `domain`.
    pub fn candidates(&self, dep: &Dep, domain: &str) -> Vec<usize> {
        let flavor = self.set.flavor;
        let ok_version = |have: Option<&str>| match (&dep.rel, have) {
            (None, _) => true,
            (Some((op, want)), Some(have)) => op.holds(flavor.compare(have, want)),
            (Some(_), None) => false,
        };
        let mut out: Vec<usize> = Vec::new();
        if let Some(v) = self.by_name.get(&(domain, dep.name.as_str())) {
            out.extend(
                v.iter()
                    .copied()
                    .filter(|&i| ok_version(Some(&self.set.pkgs[i].version))),
            );
        }
        if let Some(v) = self.by_provide.get(&(domain, dep.name.as_str())) {
            out.extend(v.iter().filter(|(_, pv)| ok_version(*pv)).map(|(i, _)| *i));
        }
        if dep.name.starts_with('/')
            && let Some(v) = self.by_file.get(dep.name.as_str())
        {
            out.extend(v.iter().copied());
        }
        out
    }

    fn best(&self, candidates: &[usize]) -> Option<usize> {
        let flavor = self.set.flavor;
        candidates.iter().copied().max_by(|&a, &b| {
            flavor
                .compare(&self.set.pkgs[a].version, &self.set.pkgs[b].version)
                .then(b.cmp(&a))
        })
    }

    /// Adds to `selected` everything the selected packages depend on, until
    /// closed. Returns the dependencies nothing satisfies.
    pub fn close(&self, selected: &mut [bool]) -> Vec<Unsatisfied> {
        let mut queue: Vec<usize> = (0..selected.len()).filter(|&i| selected[i]).collect();
        let mut missing = Vec::new();
        while let Some(i) = queue.pop() {
            let pkg = &self.set.pkgs[i];
            let domain = self.set.domain(pkg);
            for group in &pkg.depends {
                let options: Vec<Vec<usize>> =
                    group.iter().map(|d| self.candidates(d, domain)).collect();
                if options.iter().flatten().any(|&c| selected[c]) {
                    continue;
                }
                match options
                    .iter()
                    .find(|o| !o.is_empty())
                    .and_then(|o| self.best(o))
                {
                    Some(c) => {
                        selected[c] = true;
                        queue.push(c);
                    }
                    None => missing.push(Unsatisfied::new(pkg, group)),
                }
            }
        }
        missing.sort_by(|a, b| (&a.package, &a.dependency).cmp(&(&b.package, &b.dependency)));
        missing.dedup();
        missing
    }

    /// Every dependency of every package that nothing in the set satisfies.
    pub fn verify(&self) -> Vec<Unsatisfied> {
        let mut missing = Vec::new();
        for pkg in &self.set.pkgs {
            let domain = self.set.domain(pkg);
            for group in &pkg.depends {
                if group.iter().all(|d| self.candidates(d, domain).is_empty()) {
                    missing.push(Unsatisfied::new(pkg, group));
                }
            }
        }
        missing.sort_by(|a, b| (&a.package, &a.dependency).cmp(&(&b.package, &b.dependency)));
        missing.dedup();
        missing
    }
}

/// A dependency nothing satisfies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unsatisfied {
    pub package: String,
    pub version: String,
    pub arch: String,
    pub dependency: String,
}

impl Unsatisfied {
    fn new(pkg: &Pkg, group: &[Dep]) -> Self {
        Self {
            package: pkg.name.clone(),
            version: pkg.version.clone(),
            arch: pkg.arch.clone(),
            dependency: group
                .iter()
                .map(Dep::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }
}

/// A selected package: (set, package, component override).
pub type Pick = (usize, usize, Option<String>);

/// Writes the picked packages of `sets` as new content (new index blobs).
pub fn build(pool: &Pool, sets: &[PackageSet], picks: &[Pick]) -> Result<Content, PackageSetError> {
    let Some(first) = sets.first() else {
        return Err(PackageSetError::MixedKinds);
    };
    if sets.iter().any(|s| s.flavor != first.flavor) {
        return Err(PackageSetError::MixedKinds);
    }
    match first.flavor {
        Flavor::Deb => build_apt(pool, sets, picks),
        Flavor::Rpm => build_rpm(pool, sets, picks),
    }
}

fn build_apt(pool: &Pool, sets: &[PackageSet], picks: &[Pick]) -> Result<Content, PackageSetError> {
    type Key = (String, IndexKind, Option<String>);
    let mut order: Vec<Key> = Vec::new();
    let mut texts: BTreeMap<usize, String> = BTreeMap::new();
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    // Every index of every source exists in the output, even if empty, so
    // a filter that selects nothing of an architecture still publishes it.
    for (si, set) in sets.iter().enumerate() {
        let Some((c, _)) = &set.apt else { continue };
        for idx in &c.indices {
            let comp = picks
                .iter()
                .find(|(s, _, _)| *s == si)
                .and_then(|(_, _, comp)| comp.clone())
                .unwrap_or_else(|| idx.component.clone());
            let key = (comp, idx.kind, idx.arch.clone());
            if !order.contains(&key) {
                order.push(key);
            }
        }
    }
    for (si, pi, comp) in picks {
        let set = &sets[*si];
        let pkg = &set.pkgs[*pi];
        let (Slot::Apt { index, span }, Some((c, t))) = (&pkg.slot, &set.apt) else {
            continue;
        };
        let idx = &c.indices[*index];
        let key = (
            comp.clone().unwrap_or_else(|| idx.component.clone()),
            idx.kind,
            idx.arch.clone(),
        );
        let pos = order.iter().position(|k| *k == key).unwrap_or(0);
        let out = texts.entry(pos).or_default();
        out.push_str(&t[*index][span.clone()]);
        out.push_str("\n\n");
        *counts.entry(pos).or_default() += 1;
    }
    let mut indices = Vec::new();
    for (pos, (component, kind, arch)) in order.into_iter().enumerate() {
        let text = texts.remove(&pos).unwrap_or_default();
        indices.push(IndexRef {
            component,
            kind,
            arch,
            blob: pool.put(text.as_bytes())?,
            entries: counts.get(&pos).copied().unwrap_or(0),
        });
    }
    let (base, _) = sets[0].apt.as_ref().ok_or(PackageSetError::MixedKinds)?;
    Ok(Content::Apt(AptContent {
        origin: base.origin.clone(),
        label: base.label.clone(),
        suite: base.suite.clone(),
        codename: base.codename.clone(),
        files_url: base.files_url.clone(),
        indices,
    }))
}

fn build_rpm(pool: &Pool, sets: &[PackageSet], picks: &[Pick]) -> Result<Content, PackageSetError> {
    let base = sets[0].rpm.as_ref().ok_or(PackageSetError::MixedKinds)?;
    let mut primary_frags: Vec<&str> = Vec::new();
    let mut other_frags: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (si, pi, _) in picks {
        let (Some(src), Slot::Rpm { span, pkgid }) = (&sets[*si].rpm, &sets[*si].pkgs[*pi].slot)
        else {
            continue;
        };
        primary_frags.push(&src.primary[span.clone()]);
        for (mdtype, text, _, by_id) in &src.others {
            if let Some(r) = by_id.get(pkgid) {
                other_frags
                    .entry(mdtype.clone())
                    .or_default()
                    .push(&text[r.clone()]);
            }
        }
    }
    let mut metadata = vec![RpmMetadataRef {
        mdtype: "primary".into(),
        ext: "xml".into(),
        blob: pool.put(
            rpmfmt::splice(&base.primary_root.0, &base.primary_root.1, &primary_frags).as_bytes(),
        )?,
    }];
    for (mdtype, _, (tag, name), _) in &base.others {
        let frags = other_frags.get(mdtype).map(Vec::as_slice).unwrap_or(&[]);
        metadata.push(RpmMetadataRef {
            mdtype: mdtype.clone(),
            ext: "xml".into(),
            blob: pool.put(rpmfmt::splice(tag, name, frags).as_bytes())?,
        });
    }
    // Advisories, comps and modules come from the first source having them.
    for set in sets {
        if let Some(src) = &set.rpm {
            for e in &src.extras {
                if !metadata.iter().any(|m| m.mdtype == e.mdtype) {
                    metadata.push(e.clone());
                }
            }
        }
    }
    Ok(Content::Rpm(RpmContent {
        files_url: base.files_url.clone(),
        metadata,
        packages: primary_frags.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_dependencies_parse_with_alternatives_and_qualifiers() {
        let groups = parse_apt_deps(
            "libc6 (>= 2.36), python3:any | python3-minimal, foo [amd64] <!nocheck>, bar (<< 2) [i386]",
        );
        assert_eq!(groups[3][0].rel, Some((Op::Lt, "2".into())));
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0][0].rel, Some((Op::Ge, "2.36".into())));
        assert!(groups[1][0].any_arch);
        assert_eq!(groups[1][1].name, "python3-minimal");
        assert_eq!(groups[2][0].name, "foo");
        assert_eq!(groups[0][0].to_string(), "libc6 (>= 2.36)");
    }
}
