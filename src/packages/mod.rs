//! Packages as sets, below every verb: the query language, index catalogs
//! and package sets (selection, dependency closure, merging).
//!
//! Mirrors (filters at update time), local repos (`repo remove QUERY`),
//! snapshots and releases (filter, merge, diff, verify) and test planning
//! all read packages through these, so this folder depends on none of
//! them: it reads repository content ([`crate::content`]) and pool blobs
//! ([`crate::pool`]) and writes only derived data (catalogs under
//! `cache/catalog/`, and the index and selection blobs of new content).
//!
//! - [`query`]: aptly's package query language, parsed and matched.
//! - [`catalog`]: a compact, cached table of each apt index's packages.
//! - [`pkgset`]: the packages of one or more repository states as one
//!   list, and the way back from a selection to new content.
//!
//! It owns `cache/catalog/` (derived, always safe to delete).

pub mod catalog;
pub mod pkgset;
pub mod query;
