//! SHA-256 digests: the names of everything in the pool.
//!
//! It owns the SHA-256 digest type and its hex form; no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest. Displayed and serialised as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a SHA-256 digest (64 hex digits)")]
pub struct ParseDigestError {
    text: String,
}

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits, without allocating (the pool names
    /// every blob so).
    pub fn hex_digits(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        const_hex::encode_to_slice(self.0, &mut out).expect("64 digits for 32 bytes");
        out
    }

    pub fn to_hex(self) -> String {
        let digits = self.hex_digits();
        std::str::from_utf8(&digits).expect("hex digits").to_owned()
    }
}

impl FromStr for Sha256Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        // const-hex decodes with SIMD: an index names a digest per
        // package, and scanning one is otherwise mostly this.
        if s.len() != 64 || const_hex::decode_to_slice(s, &mut out).is_err() {
            return Err(ParseDigestError {
                text: s.chars().take(80).collect(),
            });
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.hex_digits();
        f.write_str(std::str::from_utf8(&digits).expect("hex digits"))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a downloaded or pooled file must be: its size and SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub size: u64,
    pub sha256: Sha256Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_through_hex() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_string().parse::<Sha256Digest>().unwrap(), d);
        assert!("xyz".parse::<Sha256Digest>().is_err());
    }

    #[test]
    fn only_64_hex_digits_parse() {
        let d = Sha256Digest::of(b"abc");
        let upper = d.to_string().to_uppercase();
        assert_eq!(upper.parse::<Sha256Digest>().unwrap(), d);
        let lower = d.to_string();
        for bad in [
            format!("0x{}", &lower[2..]),
            format!("{}g", &lower[1..]),
            format!("{} ", &lower[1..]),
            format!("{lower}0"),
            lower[2..].to_owned(),
        ] {
            assert!(bad.parse::<Sha256Digest>().is_err(), "{bad}");
        }
    }
}
