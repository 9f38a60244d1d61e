//! `depot build …`: CI build repositories (clap definitions only).
//!
//! Definitions only: no value here is acted on; `build_cmd.rs` passes them
//! to the core.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `DISTRO/VERSION` or `DISTRO/VERSION/ARCH` (validated, kept as text).
fn distro(text: &str) -> Result<String, String> {
    text.parse::<depot::build::DistroSpec>()
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// `KEY=VALUE`.
fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}`: give KEY=VALUE"))
}

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Upload packages of one build (to `depot serve`, or into the local root)
    Upload(UploadArgs),
    /// List builds (newest SHA1 first)
    List(ListArgs),
    /// Show one build: state history, packages, extra metadata
    Show(ShowArgs),
    /// The newest SHA1 of a ref that is ready on every given distro
    Latest(LatestArgs),
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    pub project: String,
    #[arg(value_name = "REF")]
    pub reference: String,
    pub sha1: String,
    /// DISTRO/VERSION, e.g. ubuntu/jammy or centos/9
    #[arg(value_parser = distro)]
    pub distro: String,
    /// Architecture the packages are built for (amd64, x86_64, …)
    pub arch: String,
    /// .deb or .rpm files
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub flavor: Option<String>,
    /// Replace a file of the same name that has other content
    #[arg(long)]
    pub force: bool,
    /// Metadata for the build's `extra` (build URL, job, version), repeatable
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub extra: Vec<(String, String)>,
    /// Upload to this `depot serve` (http://HOST:PORT/) instead of the local root
    #[arg(long, value_name = "URL", requires = "token_file")]
    pub server: Option<String>,
    /// File holding the upload token (first line)
    #[arg(long, value_name = "FILE", requires = "server")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// A SHA1, or `latest` (needs --project, --ref and --distro)
    #[arg(long)]
    pub sha1: Option<String>,
    /// DISTRO/VERSION[/ARCH] (repeatable)
    #[arg(long = "distro", value_name = "D/V", value_parser = distro)]
    pub distros: Vec<String>,
    #[arg(long)]
    pub flavor: Option<String>,
    /// requested, queued, building, ready or failed
    #[arg(long)]
    pub status: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub project: String,
    #[arg(value_name = "REF")]
    pub reference: String,
    pub sha1: String,
    #[arg(value_parser = distro)]
    pub distro: String,
    #[arg(long)]
    pub flavor: Option<String>,
}

#[derive(Debug, Args)]
pub struct LatestArgs {
    #[arg(long)]
    pub project: String,
    #[arg(long = "ref", value_name = "REF")]
    pub reference: String,
    /// DISTRO/VERSION[/ARCH] the SHA1 must be ready on (repeatable)
    #[arg(long = "distro", value_name = "D/V", value_parser = distro, required = true)]
    pub distros: Vec<String>,
    #[arg(long)]
    pub flavor: Option<String>,
}
