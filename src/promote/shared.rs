//! Package files shared between the versions of a distribution.
//!
//! ```text
//! DIR/DIST/.pool-G/pool/…      a generation: package files, by path
//! DIR/DIST/VERSION/pool        symlink to ../.pool-G/pool
//! DIR/DIST/VERSION/.depot-files  the version's file list (below)
//! ```
//!
//! A version's package files live in a *generation* of its distribution,
//! `.pool-G` (G is the version that started it), at the same paths the
//! version's indices name, and each top-level folder of package files in
//! the version (`pool` for apt; the folders of `<location href>` for rpm)
//! is a symlink into it. A publish whose previous version is in a
//! generation links only the files that version lacks: a night that
//! changed 1% of the packages makes 1% of the links. A path can hold one
//! file per generation; a version that needs another file at a path the
//! generation already fills (upstream replaced a package under the same
//! name) starts a generation of its own, so published files never change.
//!
//! `.depot-files` lists the version's package files (`SHA256 PATH`, one
//! per line, after a header naming the generation and the shared folders).
//! It is written inside the staging folder, so it appears with the
//! version. From it `depot serve` answers exactly the version's files (a
//! path that only another version of the generation holds is 404), a push
//! knows each file's digest without reading it, the next publish knows
//! what it can reuse, and gc which generation files no version needs
//! (deleted, under the distribution's lock; a generation no version uses
//! goes whole). A static web server follows the symlinks: a reader who
//! knows a path can fetch any file of the generation, the package files of
//! the distribution's other versions (newer and older, until gc), which
//! the same server serves anyway under their own version folders.
//!
//! Versions published before this layout have real folders and no list;
//! every reader here treats them as before.

use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::digest::Sha256Digest;

/// The file list's name inside a version folder.
pub const LIST: &str = ".depot-files";
/// Generations are `DIR/DIST/.pool-G`.
pub const GENERATION_PREFIX: &str = ".pool-";
const MAGIC: &str = "depot-files 1";

/// Paths looked up in a version's list by readers that keep less than
/// the list: each path as a 64-bit hash under a key new to this process
/// (8 bytes a path instead of its ~50), with a value, sorted by hash.
/// Fill it with [`PathHashes::push`], then [`PathHashes::sorted`].
#[derive(Debug)]
pub struct PathHashes<V> {
    key: std::hash::RandomState,
    entries: Vec<(u64, V)>,
}

impl<V> Default for PathHashes<V> {
    fn default() -> Self {
        Self {
            key: std::hash::RandomState::new(),
            entries: Vec::new(),
        }
    }
}

impl<V: Copy> PathHashes<V> {
    pub fn push(&mut self, path: &str, value: V) {
        use std::hash::BuildHasher;
        self.entries.push((self.key.hash_one(path), value));
    }

    /// Ready for [`PathHashes::get`].
    pub fn sorted(mut self) -> Self {
        self.entries.sort_unstable_by_key(|(hash, _)| *hash);
        self
    }

    /// The value of `path`, if it was pushed.
    pub fn get(&self, path: &str) -> Option<V> {
        use std::hash::BuildHasher;
        let hash = self.key.hash_one(path);
        self.entries
            .binary_search_by_key(&hash, |(h, _)| *h)
            .ok()
            .map(|i| self.entries[i].1)
    }
}

/// Paths → digests, the paths in one buffer: a 63k-file version is a
/// few allocations, not one per path. Iterates in insertion order.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    text: String,
    /// (path start, path end, digest), in insertion order.
    entries: Vec<(usize, usize, Sha256Digest)>,
    /// Indices into `entries`, hashed by path.
    table: hashbrown::HashTable<usize>,
}

fn hash_path(path: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(path)
}

impl PathMap {
    pub fn with_capacity(paths: usize) -> Self {
        Self {
            text: String::with_capacity(paths * 48),
            entries: Vec::with_capacity(paths),
            table: hashbrown::HashTable::with_capacity(paths),
        }
    }

    fn path(&self, i: usize) -> &str {
        let (start, end, _) = self.entries[i];
        &self.text[start..end]
    }

    /// The map of the paths at `entries` (start, end, digest) of `text`;
    /// `None` if a path is there twice.
    fn over(text: String, entries: Vec<(usize, usize, Sha256Digest)>) -> Option<Self> {
        let mut table = hashbrown::HashTable::with_capacity(entries.len());
        for (i, &(s, e, _)) in entries.iter().enumerate() {
            let path = &text[s..e];
            match table.entry(
                hash_path(path),
                |&j: &usize| {
                    let (s, e, _) = entries[j];
                    &text[s..e] == path
                },
                |&j| {
                    let (s, e, _) = entries[j];
                    hash_path(&text[s..e])
                },
            ) {
                hashbrown::hash_table::Entry::Occupied(_) => return None,
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        Some(Self {
            text,
            entries,
            table,
        })
    }

    pub fn get(&self, path: &str) -> Option<Sha256Digest> {
        self.table
            .find(hash_path(path), |&i| self.path(i) == path)
            .map(|&i| self.entries[i].2)
    }

    /// [`PathMap::get`] for a reader that asks in about the map's order
    /// (the next version's publish, in the previous one's): the entry
    /// after the one `cursor` last found is tried first, so the map is
    /// read in sequence rather than hashed into.
    pub fn get_next(&self, path: &str, cursor: &mut usize) -> Option<Sha256Digest> {
        if let Some(&(s, e, digest)) = self.entries.get(*cursor)
            && &self.text[s..e] == path
        {
            *cursor += 1;
            return Some(digest);
        }
        let &i = self
            .table
            .find(hash_path(path), |&i| self.path(i) == path)?;
        *cursor = i + 1;
        Some(self.entries[i].2)
    }

    /// Adds `path`, unless it is there: then the digest it has.
    pub fn insert(&mut self, path: &str, digest: Sha256Digest) -> Option<Sha256Digest> {
        let hash = hash_path(path);
        if let Some(&i) = self.table.find(hash, |&i| self.path(i) == path) {
            return Some(self.entries[i].2);
        }
        let start = self.text.len();
        self.text.push_str(path);
        self.entries.push((start, self.text.len(), digest));
        let (text, entries) = (&self.text, &self.entries);
        self.table.insert_unique(hash, entries.len() - 1, |&i| {
            let (s, e, _) = entries[i];
            hash_path(&text[s..e])
        });
        None
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Sha256Digest)> + '_ {
        self.entries.iter().map(|&(s, e, d)| (&self.text[s..e], d))
    }
}

/// A version's file list.
#[derive(Debug, Clone, Default)]
pub struct FileList {
    /// The generation's folder name (`.pool-G`).
    pub generation: String,
    /// Top-level folders of the version that are symlinks into the
    /// generation.
    pub shared: Vec<String>,
    /// Every package file of the version, in the order its indices name
    /// them.
    pub files: PathMap,
}

fn invalid(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

impl FileList {
    /// The generation name of version `version`'s own generation.
    pub fn generation_of(version: &str) -> String {
        format!("{GENERATION_PREFIX}{version}")
    }

    /// Whether `rel` (a path inside the version) lies in a shared folder.
    pub fn is_shared(&self, rel: &str) -> bool {
        top_folder(rel).is_some_and(|top| self.shared.iter().any(|s| s == top))
    }

    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.files.len() * 112);
        self.write_to(&mut out)
            .expect("writing to memory does not fail");
        out
    }

    /// Writes the list to file `path` (a new file), a buffer at a time: a
    /// 63k-file list is 6 MB, never in memory as one piece.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(256 << 10, std::fs::File::create(path)?);
        self.write_to(&mut out)?;
        out.flush()
    }

    fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(MAGIC.as_bytes())?;
        out.write_all(b"\ngeneration ")?;
        out.write_all(self.generation.as_bytes())?;
        out.write_all(b"\nshared")?;
        for s in &self.shared {
            out.write_all(b" ")?;
            out.write_all(s.as_bytes())?;
        }
        out.write_all(b"\n")?;
        let mut line = Vec::with_capacity(256);
        for (path, digest) in self.files.iter() {
            line.clear();
            line.extend_from_slice(&digest.hex_digits());
            line.push(b' ');
            line.extend_from_slice(path.as_bytes());
            line.push(b'\n');
            out.write_all(&line)?;
        }
        Ok(())
    }

    /// Reads the list of the version folder `version_dir`: `None` when it
    /// has none (a version of the older layout). The list's text becomes
    /// the map's buffer (one read, no path copied): the next publish reads
    /// the previous version's list whole.
    pub fn read(version_dir: &Path) -> std::io::Result<Option<Self>> {
        let path = version_dir.join(LIST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |why| invalid(&path, why);
        let mut lines = Vec::with_capacity(3);
        let mut at = 0;
        for _ in 0..3 {
            let end = memchr::memchr(b'\n', &text.as_bytes()[at..])
                .map(|i| at + i)
                .ok_or_else(|| bad("not a depot file list"))?;
            lines.push(&text[at..end]);
            at = end + 1;
        }
        let this = Self::header(&lines).ok_or_else(|| bad("not a depot file list"))?;
        let mut files = Vec::with_capacity(text.len() / 100);
        while at < text.len() {
            let end = memchr::memchr(b'\n', &text.as_bytes()[at..]).map_or(text.len(), |i| at + i);
            let line = &text[at..end];
            let (hex, rel) = line
                .split_once(' ')
                .ok_or_else(|| bad("not a depot file list"))?;
            let digest = hex.parse().map_err(|_| bad("not a depot file list"))?;
            let start = at + hex.len() + 1;
            files.push((start, start + rel.len(), digest));
            at = end + 1;
        }
        // A path twice is not a list depot wrote.
        let files = PathMap::over(text, files).ok_or_else(|| bad("a path listed twice"))?;
        Ok(Some(Self { files, ..this }))
    }

    /// Reads the list of `version_dir` a line at a time, handing each
    /// file to `each` with the list's header (which has no files): the
    /// header, `None` when there is no list. For readers that keep less
    /// than the list (a hash per path, the shared paths), so that a
    /// 63k-file list is never in memory whole.
    pub fn read_each(
        version_dir: &Path,
        mut each: impl FnMut(&Self, &str, Sha256Digest),
    ) -> std::io::Result<Option<Self>> {
        use std::io::BufRead;
        let path = version_dir.join(LIST);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
        let mut line = String::new();
        let mut next = |line: &mut String| -> std::io::Result<bool> {
            line.clear();
            let more = reader.read_line(line)? > 0;
            if line.ends_with('\n') {
                line.pop();
            }
            Ok(more)
        };
        let bad = || invalid(&path, "not a depot file list");
        let mut header = Vec::with_capacity(3);
        for _ in 0..3 {
            if !next(&mut line)? {
                return Err(bad());
            }
            header.push(line.clone());
        }
        let lines: Vec<&str> = header.iter().map(String::as_str).collect();
        let this = Self::header(&lines).ok_or_else(bad)?;
        while next(&mut line)? {
            let (hex, rel) = line.split_once(' ').ok_or_else(bad)?;
            each(&this, rel, hex.parse().map_err(|_| bad())?);
        }
        Ok(Some(this))
    }

    /// The list's first three lines: magic, generation, shared folders.
    fn header(lines: &[&str]) -> Option<Self> {
        (*lines.first()? == MAGIC).then_some(())?;
        let generation = lines.get(1)?.strip_prefix("generation ")?.to_owned();
        let valid_generation = generation
            .strip_prefix(GENERATION_PREFIX)
            .is_some_and(|v| crate::names::validate("version", v).is_ok());
        valid_generation.then_some(())?;
        let shared: Vec<String> = lines
            .get(2)?
            .strip_prefix("shared")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if shared.iter().any(|s| s.starts_with('.') || s.contains('/')) {
            return None;
        }
        Some(Self {
            generation,
            shared,
            files: PathMap::default(),
        })
    }

    /// The shared files: (path, digest).
    pub fn shared_files(&self) -> impl Iterator<Item = (&str, Sha256Digest)> + '_ {
        self.files.iter().filter(|(p, _)| self.is_shared(p))
    }
}

/// The top-level folder of `rel`, a path inside a version (`None` for a
/// file at the top).
pub fn top_folder(rel: &str) -> Option<&str> {
    rel.as_bytes()
        .iter()
        .position(|&b| b == b'/')
        .map(|end| &rel[..end])
}

/// What [`unneeded`] finds in one distribution folder.
#[derive(Debug, Default)]
pub struct Unneeded {
    /// Generations no version uses: delete their files, then them.
    pub generations: Vec<PathBuf>,
    /// Files no version lists: those of the unused generations, and
    /// those of used generations that no version of theirs lists.
    pub files: Vec<PathBuf>,
}

/// The names of the version folders in `dist_dir` (not the hidden
/// generations and half-written or half-dropped versions, not the stage
/// symlinks). A version folder without a record yet (a publish killed
/// before recording it, which a rerun adopts) counts.
pub fn version_folders(dist_dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dist_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        if let Ok(name) = e.file_name().into_string()
            && !name.starts_with('.')
            && e.file_type()?.is_dir()
        {
            out.push(name);
        }
    }
    Ok(out)
}

/// The generations and generation files of `dist_dir` that none of
/// `versions` (the version folders' names, [`version_folders`]) needs.
/// When a version's list cannot be read, which generation it needs is
/// unknown: nothing is reported then (`depot check` names the list). The
/// caller holds the distribution's lock, so no publish adds to a
/// generation meanwhile.
pub fn unneeded(dist_dir: &Path, versions: &[String]) -> std::io::Result<Unneeded> {
    let mut out = Unneeded::default();
    let generations: Vec<String> = match std::fs::read_dir(dist_dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(GENERATION_PREFIX))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    if generations.is_empty() {
        return Ok(out);
    }
    // Per generation, the shared files of the versions in it, read a
    // line at a time: memory is the generation's, not 30 lists'.
    let mut needed: FxHashMap<String, PathMap> = FxHashMap::default();
    for v in versions {
        let read = FileList::read_each(&dist_dir.join(v), |header, path, digest| {
            if !header.is_shared(path) {
                return;
            }
            if !needed.contains_key(&header.generation) {
                needed.insert(header.generation.clone(), PathMap::default());
            }
            if let Some(set) = needed.get_mut(&header.generation) {
                set.insert(path, digest);
            }
        });
        match read {
            // A version in a generation uses it, files or not.
            Ok(Some(header)) => {
                needed.entry(header.generation).or_default();
            }
            Ok(None) => {}
            // Dropped since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return Ok(Unneeded::default()),
        }
    }
    for g in generations {
        let dir = dist_dir.join(&g);
        let set = needed.get(&g);
        if set.is_none() {
            out.generations.push(dir.clone());
        }
        let mut stack = vec![(dir, String::new())];
        while let Some((d, rel)) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if e.file_type()?.is_dir() {
                    stack.push((e.path(), child));
                } else if set.is_none_or(|s| s.get(&child).is_none()) {
                    out.files.push(e.path());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_hashes_find_what_was_pushed_and_nothing_else() {
        let mut paths = PathHashes::default();
        for i in 0..1000 {
            paths.push(&format!("pool/main/p/p{i}_1_all.deb"), i);
        }
        let paths = paths.sorted();
        for i in 0..1000 {
            assert_eq!(paths.get(&format!("pool/main/p/p{i}_1_all.deb")), Some(i));
        }
        assert_eq!(paths.get("pool/main/p/p1000_1_all.deb"), None);
        assert_eq!(paths.get(""), None);
    }

    #[test]
    fn get_next_finds_paths_in_order_and_out_of_it() {
        let mut map = PathMap::default();
        for i in 0..100 {
            map.insert(&format!("pool/p{i}.deb"), Sha256Digest::of(&[i]));
        }
        let mut cursor = 0;
        for i in [0u8, 1, 2, 50, 51, 3, 99, 99] {
            let got = map.get_next(&format!("pool/p{i}.deb"), &mut cursor);
            assert_eq!(got, Some(Sha256Digest::of(&[i])), "{i}");
            assert_eq!(cursor, usize::from(i) + 1);
        }
        assert_eq!(map.get_next("pool/none.deb", &mut cursor), None);
        assert_eq!(cursor, 100);
    }

    #[test]
    fn a_list_reads_back_as_written_and_refuses_what_it_did_not_write() {
        let d = Sha256Digest::of(b"x");
        let mut files = PathMap::default();
        files.insert("top.rpm", Sha256Digest::of(b"y"));
        files.insert("pool/main/h/hello_1_all.deb", d);
        assert_eq!(
            files.insert("pool/main/h/hello_1_all.deb", Sha256Digest::of(b"z")),
            Some(d)
        );
        let list = FileList {
            generation: ".pool-20261207T010203Z".into(),
            shared: vec!["pool".into()],
            files,
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LIST), list.to_bytes()).unwrap();
        let read = FileList::read(dir.path()).unwrap().unwrap();
        assert_eq!(read.to_bytes(), list.to_bytes());
        assert_eq!(read.files.get("top.rpm"), Some(Sha256Digest::of(b"y")));
        assert_eq!(read.files.get("pool/main/h/hello_1_all.deb"), Some(d));
        assert_eq!(read.files.get("pool/main/h/other_1_all.deb"), None);
        assert!(list.is_shared("pool/main/h/hello_1_all.deb"));
        assert!(!list.is_shared("top.rpm"));
        assert!(!list.is_shared("pool"));
        assert_eq!(list.shared_files().count(), 1);

        let twice = format!(
            "depot-files 1\ngeneration .pool-20261207T010203Z\nshared pool\n{d} pool/a\n{d} pool/a\n",
            d = d.to_hex()
        );
        for bad in [
            "depot-files 2\ngeneration .pool-20261207T010203Z\nshared pool\n",
            "depot-files 1\ngeneration .pool-20261207T010203Z",
            "depot-files 1\ngeneration ../x\nshared pool\n",
            "depot-files 1\ngeneration .pool-20261207T010203Z\nshared ..\n",
            "depot-files 1\ngeneration .pool-20261207T010203Z\nshared pool\nzz pool/a\n",
            twice.as_str(),
        ] {
            std::fs::write(dir.path().join(LIST), bad).unwrap();
            assert!(FileList::read(dir.path()).is_err(), "{bad}");
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(FileList::read(empty.path()).unwrap().is_none());
    }
}
