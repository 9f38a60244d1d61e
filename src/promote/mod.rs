//! Publishing and promotion: turning snapshots into signed repositories
//! under a publish root, one immutable version per publish.
//!
//! ```text
//! DIR/DIST/VERSION/   a complete, signed repository root (VERSION is the
//!                     UTC time of the publish, YYYYMMDDTHHMMSSZ)
//! DIR/DIST/dev        symlink to the version the dev stage serves
//! DIR/DIST/release    symlink to the version the release stage serves
//! DIR/DIST/.pool-G/   package files the versions share (see [`shared`])
//! ```
//!
//! A version is built in a hidden `.VERSION.partial-PID` folder next to its
//! final place, renamed into place when complete, and only then does the
//! `dev` symlink switch to it (by atomic rename), so a client never sees a
//! half-written tree. This module owns the publish root; it reads snapshots
//! and the pool but never changes them.

pub mod dist;
pub mod guard;
pub mod publish;
pub mod push;
pub mod serve;
pub mod shared;

pub use publish::{PublishError, PublishOptions, PublishSummary, publish};
