//! depot's library core.
//!
//! The `depot` binary is a thin shell over this crate: every subcommand
//! parses its arguments, builds one of the typed options structs defined
//! here, calls one core function and renders the result. Nothing in this
//! crate prints; progress flows out through [`report::Reporter`], and every
//! failure is a typed error that names its subject.
//!
//! The verbs of the product live in their own folders: [`mirror`] (fetch
//! and verify upstream repositories), [`repo`] (local repos of CI-built
//! packages), [`snapshot`] (immutable manifests, releases), [`promote`]
//! (publishing, stages, guards, serving) and [`testreq`] (test requests);
//! [`train`] runs them as one resumable night from a YAML file, and
//! [`retention`] prunes, collects garbage and checks a root.
//! Below them, [`packages`] (queries, catalogs, package sets) serves every
//! verb; shared machinery sits at the bottom: [`content`] (what a
//! repository state references), [`store`] (named objects on disk),
//! [`root`] (the data root's layout), [`pool`] (content-addressed blobs),
//! [`lock`] (per-object locks), [`http`] (fetching with retries),
//! [`signing`] (GnuPG through gpgme) and [`formats`]. [`settings`]
//! resolves what a command was told; [`error`] says how each failure is
//! reported.

pub mod audit;
pub mod build;
pub mod choice;
pub mod classify;
pub mod content;
pub mod digest;
pub mod duration;
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
pub mod train;

pub use classify::error_kind;
pub use error::ErrorKind;
