//! File formats shared by the verbs: deb822 paragraphs, apt's Release and
//! Packages indices, and (de)compression (gzip that a next version reuses:
//! [`gzip_blocks`]).
//!
//! Every module here works on bytes in memory; none touches the file system,
//! the network or the data root.

pub mod apt;
pub mod compress;
pub mod deb822;
pub mod debversion;
pub mod gzip_blocks;
pub mod rpm;
pub mod rpm_header;
