//! depot's library core.
//!
//! The `depot` binary is a thin shell over this crate: every subcommand
//! parses its arguments, builds one of the typed options structs defined
//! here, calls one core function and renders the result. Nothing in this
//! crate prints; progress flows out through [`report::Reporter`], and every
//! failure is a typed error that names its subject.
//!
//! The four verbs of the product live in their own folders:
//! [`mirror`] (fetch and verify upstream repositories), [`snapshot`]
//! (immutable point-in-time manifests) and [`promote`] (publishing; stages
//! and guards to come). Shared machinery sits beside them: [`content`] (what
//! a repository state holds), [`root`] (the data root's layout), [`pool`] (content-addressed
//! blobs), [`lock`] (per-object locks), [`store`] (named
//! definitions and manifests on disk), [`http`] (fetching with retries),
//! [`signing`] (GnuPG through gpgme) and [`formats`] (deb822, compression).
//! [`retention`] prunes, collects garbage and checks a root.

pub mod audit;
pub mod choice;
pub mod content;
pub mod digest;
pub mod error;
pub mod formats;
pub mod fsutil;
pub mod http;
pub mod lock;
pub mod mirror;
pub mod names;
pub mod packages;
pub mod pool;
pub mod promote;
pub mod repo;
pub mod report;
pub mod retention;
pub mod root;
pub mod settings;
pub mod signing;
pub mod snapshot;
pub mod store;
pub mod testreq;

pub use error::{ErrorKind, error_kind};
