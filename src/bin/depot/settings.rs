//! Settings: command-line flags, then environment, then the YAML settings
//! file, then built-in defaults (ripgrep's low-args/high-args split: the
//! clap types stay here, the core sees only resolved values).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use depot::cli::{GlobalArgs, OutputFormat};
use jiff::Timestamp;
use serde::Deserialize;

/// `$XDG_CONFIG_HOME/depot/config.yaml` (or `--config FILE`).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Data root.
    pub root: Option<PathBuf>,
    /// Default `--sign-key` of `depot publish`.
    pub sign_key: Option<String>,
    /// Default `--concurrency` of `depot mirror update`.
    pub concurrency: Option<u16>,
    /// Default `--compress` of `depot publish`.
    pub compress: Option<Vec<String>>,
    /// RabbitMQ URL for `depot test` when neither `--broker`, `$DEPOT_BROKER`
    /// nor `--spool` is given. Keep the file private: it holds a password.
    pub broker: Option<String>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("root", &self.root)
            .field("sign_key", &self.sign_key)
            .field("concurrency", &self.concurrency)
            .field("compress", &self.compress)
            .field("broker", &self.broker.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug)]
pub struct Settings {
    pub root: PathBuf,
    pub config: ConfigFile,
    pub quiet: bool,
    pub verbose: u8,
    pub progress: bool,
    pub format: OutputFormat,
    /// The clock: `$DEPOT_NOW` (RFC 3339) pins it, for tests and replays.
    pub now: Timestamp,
}

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(fallback)))
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let config_path = args
            .config
            .clone()
            .or_else(|| std::env::var_os("DEPOT_CONFIG").map(PathBuf::from))
            .or_else(|| {
                xdg("XDG_CONFIG_HOME", ".config")
                    .map(|d| d.join("depot/config.yaml"))
                    .filter(|p| p.is_file())
            });
        let config = match &config_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the settings file {}", path.display()))?;
                serde_norway::from_str(&text)
                    .with_context(|| format!("invalid settings file {}", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let root = args
            .root
            .clone()
            .or_else(|| {
                std::env::var_os("DEPOT_ROOT")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| config.root.clone())
            .or_else(|| xdg("XDG_DATA_HOME", ".local/share").map(|d| d.join("depot")))
            .context("cannot find a data root: give --root DIR or set DEPOT_ROOT")?;
        let now = match std::env::var("DEPOT_NOW") {
            Ok(t) if !t.is_empty() => t
                .parse()
                .with_context(|| format!("DEPOT_NOW=`{t}` is not an RFC 3339 timestamp"))?,
            _ => Timestamp::now(),
        };
        let progress = !args.quiet
            && !args.no_progress
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Ok(Self {
            root,
            config,
            quiet: args.quiet,
            verbose: args.verbose,
            progress,
            format: args.output_format,
            now,
        })
    }
}
