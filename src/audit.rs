//! The append-only audit log (`audit.log` in the data root): one JSON line
//! per publish or promotion — who, when, what, from, to.
//!
//! It owns `audit.log` in the data root and only ever appends to it: a line
//! once written is never rewritten or removed.

use std::io::Write;

use jiff::Timestamp;
use serde::Serialize;

use crate::root::Root;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry<'a> {
    pub time: Timestamp,
    pub user: String,
    pub action: &'a str,
    pub dist: &'a str,
    pub version: &'a str,
    /// What was published or promoted from (a snapshot, a stage).
    pub from: &'a str,
    /// Where it went (a stage).
    pub to: &'a str,
    /// SHA-256 of the version's top-level metadata (Release).
    pub digest: String,
}

/// The name of whoever runs depot: `$USER`, else the numeric uid.
pub fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m).to_string())
                .unwrap_or_else(|_| "unknown".into())
        })
}

/// Appends one entry. A single `write` of a line under `O_APPEND` keeps
/// concurrent writers' lines whole.
pub fn append(root: &Root, entry: &AuditEntry<'_>) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.audit_log())?;
    file.write_all(&line)?;
    file.sync_data()
}
