//! Compression formats of repository indices.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gz,
    Xz,
    Zst,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown compression `{0}` (expected gz, xz or zst)")]
pub struct UnknownCompression(pub String);

impl std::str::FromStr for Compression {
    type Err = UnknownCompression;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gz" | "gzip" => Ok(Self::Gz),
            "xz" => Ok(Self::Xz),
            "zst" | "zstd" => Ok(Self::Zst),
            "none" => Ok(Self::None),
            other => Err(UnknownCompression(other.to_owned())),
        }
    }
}

impl Compression {
    /// The file-name suffix, including the dot (empty for none).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gz => ".gz",
            Self::Xz => ".xz",
            Self::Zst => ".zst",
        }
    }

    /// Guesses the compression of a file from its name.
    pub fn from_path(path: &str) -> Self {
        if path.ends_with(".gz") {
            Self::Gz
        } else if path.ends_with(".xz") {
            Self::Xz
        } else if path.ends_with(".zst") {
            Self::Zst
        } else {
            Self::None
        }
    }

    pub fn decompress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() * 4);
        match self {
            Self::None => out.extend_from_slice(data),
            Self::Gz => {
                flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
            }
            Self::Xz => {
                liblzma::read::XzDecoder::new_multi_decoder(data).read_to_end(&mut out)?;
            }
            Self::Zst => {
                zstd::stream::read::Decoder::new(data)?.read_to_end(&mut out)?;
            }
        }
        Ok(out)
    }

    pub fn compress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Self::None => Ok(data.to_vec()),
            Self::Gz => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 4),
                    flate2::Compression::new(6),
                );
                enc.write_all(data)?;
                enc.finish()
            }
            Self::Xz => {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .preset(6)
                    .threads(threads)
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(io::Error::other)?;
                let mut enc = liblzma::write::XzEncoder::new_stream(
                    Vec::with_capacity(data.len() / 5),
                    stream,
                );
                enc.write_all(data)?;
                enc.finish()
            }
            Self::Zst => zstd::stream::encode_all(data, 19),
        }
    }
}

/// Decompresses `data` by the suffix of `name`: `.gz`, `.xz`, `.zst`, and
/// `.bz2` (read-only: old rpm repositories use it; depot never writes it).
pub fn decompress_named(name: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    if name.ends_with(".bz2") {
        let mut out = Vec::with_capacity(data.len() * 4);
        bzip2::read::MultiBzDecoder::new(data).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Compression::from_path(name).decompress(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_format() {
        let data = b"Package: a\nVersion: 1\n\n".repeat(100);
        for c in [
            Compression::None,
            Compression::Gz,
            Compression::Xz,
            Compression::Zst,
        ] {
            let packed = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&packed).unwrap(), data, "{c:?}");
        }
        assert!(Compression::Xz.decompress(b"not xz").is_err());
    }
}
