//! gzip of a deb822 index (`Packages`, `Sources`) that the next version
//! can reuse: one gzip member per block of paragraphs, each member
//! recording its own length, so that a publish compresses only the blocks
//! that changed since the previous version and copies the others' members
//! from the previous version's file.
//!
//! - Blocks end after a paragraph whose first line hashes to 0 mod
//!   [`BLOCK_PARAGRAPHS`] (about that many paragraphs a block, ~8 KB of a
//!   `Packages` file), or once a block reaches [`MAX_BLOCK`]. The cut
//!   points depend on the paragraphs around them only, so a night that
//!   changes 1% of the packages changes about a quarter of the blocks,
//!   wherever the changes are.
//! - Each member's header has an `FEXTRA` subfield `DP` holding the
//!   member's length (like BGZF's `BC`), so the members of a file are
//!   found without inflating it. A file concatenated from gzip members is
//!   one gzip stream to zlib's `gzread`, `gzip -d`, apt and dnf (RFC 1952
//!   allows several members); the subfield is skipped by every reader.
//! - A block is taken from the previous file when a member there has the
//!   same CRC-32 and length and the previous plain text has the same bytes
//!   at that member's offset (compared, not trusted). The caller vouches
//!   that the previous compressed file is the one published with that
//!   text (its SHA-256 is the one its `Release` lists); anything else in
//!   it that is not such a member list makes every block compressed anew.
//! - Smaller members cost some ratio: 9% more bytes than one stream at
//!   the same level on a 63k-package `Packages`.
//!
//! Like all of `formats/`, in memory only.

use std::io;
use std::ops::Range;

use rustc_hash::FxHashMap;

/// About this many paragraphs a block.
pub const BLOCK_PARAGRAPHS: u64 = 32;
/// A block is cut after the paragraph that takes it to this size.
pub const MAX_BLOCK: usize = 256 << 10;
/// zlib-rs's level 1 is its "quick" deflate, whose output is half as
/// large again as level 2's (5.5 MB against 3.5 MB for a 16 MB `Packages`
/// in blocks) for a little more than half the time (29 ms against 52 ms on
/// one core here). Blocks are compressed once and then reused, night after
/// night, and every client downloads them: level 2.
const LEVEL: u32 = 2;
const ID: [u8; 2] = *b"DP";
/// The fixed header, `FEXTRA` with one 4-byte subfield.
const HEADER: usize = 10 + 2 + 4 + 4;
const TRAILER: usize = 8;

/// What [`gzip_paragraphs`] made.
#[derive(Debug)]
pub struct Blocked {
    pub gz: Vec<u8>,
    pub blocks: usize,
    /// Blocks copied from the previous file.
    pub reused: usize,
}

/// The previous version's copy of the same index: its plain text and the
/// gzip file made from it.
#[derive(Clone, Copy)]
pub struct Previous<'a> {
    pub plain: &'a [u8],
    pub gz: &'a [u8],
}

/// `plain` as gzip members of paragraph blocks, those that `previous`
/// holds copied from it, the others compressed on every core.
pub fn gzip_paragraphs(plain: &[u8], previous: Option<Previous<'_>>) -> io::Result<Blocked> {
    let blocks = paragraph_blocks(plain);
    let old = previous.and_then(|p| Some((p, members(p.gz, p.plain.len())?)));
    let index: FxHashMap<(u32, u32), usize> = match &old {
        Some((_, members)) => members
            .iter()
            .enumerate()
            .map(|(i, m)| ((m.crc, m.isize), i))
            .collect(),
        None => FxHashMap::default(),
    };
    // Per block: the previous member's bytes, or `None` (compress it).
    let mut reused = 0;
    let sources: Vec<Option<&[u8]>> = blocks
        .iter()
        .map(|b| {
            let (previous, members) = old.as_ref()?;
            let text = &plain[b.clone()];
            let key = (crc32(text), text.len() as u32);
            let m = &members[*index.get(&key)?];
            (previous.plain.get(m.plain.clone())? == text).then_some(())?;
            reused += 1;
            Some(&previous.gz[m.gz.clone()])
        })
        .collect();
    let todo: Vec<usize> = (0..blocks.len())
        .filter(|&i| sources[i].is_none())
        .collect();
    let made = compress_all(plain, &blocks, &todo)?;
    let mut gz = Vec::with_capacity(plain.len() / 3);
    let mut made = made.into_iter();
    for source in &sources {
        match source {
            Some(bytes) => gz.extend_from_slice(bytes),
            None => gz.extend_from_slice(&made.next().expect("one member per block to make")),
        }
    }
    Ok(Blocked {
        gz,
        blocks: blocks.len(),
        reused,
    })
}

/// The blocks of `plain`, in order, covering it.
fn paragraph_blocks(plain: &[u8]) -> Vec<Range<usize>> {
    use std::hash::Hasher;
    let blank = memchr::memmem::Finder::new(b"\n\n");
    let mut blocks = Vec::with_capacity(plain.len() / 4096 + 1);
    let (mut start, mut at) = (0, 0);
    while at < plain.len() {
        // The paragraph at `at` ends after its blank line (or at the end).
        let end = blank.find(&plain[at..]).map_or(plain.len(), |i| at + i + 2);
        let first_line = memchr::memchr(b'\n', &plain[at..end]).map_or(end, |i| at + i);
        let mut h = rustc_hash::FxHasher::default();
        h.write(&plain[at..first_line]);
        let cut = (h.finish() >> 32).is_multiple_of(BLOCK_PARAGRAPHS);
        at = end;
        if cut || at - start >= MAX_BLOCK || at == plain.len() {
            blocks.push(start..at);
            start = at;
        }
    }
    blocks
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// The blocks `todo` of `plain` compressed, in that order, on every core
/// (a thread for each 16 blocks at most), each thread with one compressor,
/// reset between members (making one allocates and clears its tables).
fn compress_all(plain: &[u8], blocks: &[Range<usize>], todo: &[usize]) -> io::Result<Vec<Vec<u8>>> {
    let threads = crate::fsutil::cores().min(todo.len().div_ceil(16));
    crate::fsutil::on_threads_stealing(
        todo,
        threads,
        || flate2::Compress::new(flate2::Compression::new(LEVEL), false),
        |deflate, &i| member(deflate, &plain[blocks[i].clone()]),
    )
    .into_iter()
    .collect()
}

/// One gzip member of `text`, its length in the header's `DP` subfield,
/// made with `deflate` (a raw deflate compressor, reset here).
fn member(deflate: &mut flate2::Compress, text: &[u8]) -> io::Result<Vec<u8>> {
    use flate2::{FlushCompress, Status};
    deflate.reset();
    let mut out = Vec::with_capacity(HEADER + text.len() / 3 + 64);
    // ID1 ID2 CM=deflate FLG=FEXTRA MTIME=0 XFL=0 OS=unknown, XLEN=8,
    // subfield `DP` of 4 bytes: the member's length, set below.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0]);
    out.extend_from_slice(&ID);
    out.extend_from_slice(&[4, 0, 0, 0, 0, 0]);
    loop {
        out.reserve(text.len() / 4 + 1024);
        let read = deflate.total_in() as usize;
        match deflate.compress_vec(&text[read..], &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => break,
            Ok(_) => {}
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    out.extend_from_slice(&crc32(text).to_le_bytes());
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    let len = u32::try_from(out.len()).map_err(|_| io::Error::other("gzip member over 4 GiB"))?;
    out[16..20].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// A member of a previous file: where it is, where its text was, and its
/// trailer's CRC-32 and length.
struct Member {
    gz: Range<usize>,
    plain: Range<usize>,
    crc: u32,
    isize: u32,
}

/// The members of `gz`, if it is made of members as [`member`] writes
/// them and they hold `plain_len` bytes in all; `None` otherwise.
fn members(gz: &[u8], plain_len: usize) -> Option<Vec<Member>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(gz.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(gz.get(at..at + 4)?.try_into().ok()?));
    let mut out = Vec::new();
    let (mut at, mut text) = (0, 0);
    while at < gz.len() {
        let ours = gz.get(at..at + 4)? == [0x1f, 0x8b, 8, 4]
            && u16_at(at + 10)? == 8
            && gz.get(at + 12..at + 14)? == ID
            && u16_at(at + 14)? == 4;
        let len = u32_at(at + 16)? as usize;
        if !ours || len < HEADER + TRAILER || at + len > gz.len() {
            return None;
        }
        let end = at + len;
        let (crc, isize) = (u32_at(end - 8)?, u32_at(end - 4)?);
        out.push(Member {
            gz: at..end,
            plain: text..text + isize as usize,
            crc,
            isize,
        });
        text += isize as usize;
        at = end;
    }
    (text == plain_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn packages(n: usize, version: impl Fn(usize) -> usize) -> Vec<u8> {
        let mut out = String::new();
        for i in 0..n {
            out.push_str(&format!(
                "Package: pkg{i}\nVersion: {}\nArchitecture: amd64\nFilename: pool/main/p/pkg{i}.deb\nDescription: package number {i}\n\n",
                version(i)
            ));
        }
        out.into_bytes()
    }

    #[test]
    fn blocks_cover_the_text_and_end_after_paragraphs() {
        let text = packages(5000, |_| 1);
        let blocks = paragraph_blocks(&text);
        assert_eq!(blocks.first().unwrap().start, 0);
        assert_eq!(blocks.last().unwrap().end, text.len());
        assert!(blocks.windows(2).all(|w| w[0].end == w[1].start));
        assert!(blocks.iter().all(|b| text[..b.end].ends_with(b"\n\n")));
        // About BLOCK_PARAGRAPHS paragraphs a block.
        assert!((50..400).contains(&blocks.len()), "{}", blocks.len());
        assert_eq!(paragraph_blocks(b""), Vec::<Range<usize>>::new());
        assert_eq!(
            paragraph_blocks(b"Package: a\nNo-Blank-End: x"),
            vec![0..26]
        );
    }

    #[test]
    fn a_text_that_changed_little_reuses_most_members_and_round_trips() {
        let night1 = packages(5000, |_| 1);
        let first = gzip_paragraphs(&night1, None).unwrap();
        assert_eq!(first.reused, 0);
        assert_eq!(gunzip(&first.gz), night1);
        assert_eq!(
            members(&first.gz, night1.len()).unwrap().len(),
            first.blocks
        );

        // 1% of the packages bumped.
        let night2 = packages(5000, |i| if i % 100 == 7 { 2 } else { 1 });
        let previous = Previous {
            plain: &night1,
            gz: &first.gz,
        };
        let second = gzip_paragraphs(&night2, Some(previous)).unwrap();
        assert_eq!(gunzip(&second.gz), night2);
        assert!(
            second.reused * 2 > second.blocks,
            "{} of {} reused",
            second.reused,
            second.blocks
        );
        assert!(second.reused < second.blocks);
        // The same text again: every member reused, the same bytes.
        let again = gzip_paragraphs(&night1, Some(previous)).unwrap();
        assert_eq!(again.reused, again.blocks);
        assert_eq!(again.gz, first.gz);
    }

    #[test]
    fn a_previous_file_that_is_not_ours_or_not_that_text_is_not_used() {
        let text = packages(2000, |_| 1);
        let ours = gzip_paragraphs(&text, None).unwrap().gz;
        let plain_gzip = crate::formats::compress::Compression::Gz
            .compress(&text)
            .unwrap();
        let mut other_text = text.clone();
        other_text[100] ^= 1;
        let mut truncated = ours.clone();
        truncated.truncate(ours.len() - 3);
        for (plain, gz) in [
            (&text[..], &plain_gzip[..]),
            (&other_text[..], &ours[..]),
            (&text[..], &truncated[..]),
            (&text[..10], &ours[..]),
        ] {
            let made = gzip_paragraphs(&text, Some(Previous { plain, gz })).unwrap();
            assert_eq!(gunzip(&made.gz), text);
            if plain == &other_text[..] {
                // Only the block with the changed byte is made again.
                assert_eq!(made.reused, made.blocks - 1);
            } else {
                assert_eq!(made.reused, 0);
            }
        }
    }
}
