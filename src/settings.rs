//! Settings: what a command was told, resolved once.
//!
//! Every value a command takes from more than one place is resolved here,
//! in one order: the command-line flag, then the environment, then the
//! YAML settings file, then the built-in default. A front end passes the
//! flags it parsed as `Option`s (a flag's default never doubles as "not
//! given") and receives resolved values; nothing else in the core reads
//! the environment or the settings file. A nightly train resolves the same
//! way, so a key in the settings file means the same to every caller.
//!
//! This module owns the settings file's format and the defaults named
//! below; it never writes anything.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Deserialize;

use crate::formats::compress::Compression;
use crate::root::Root;
use crate::signing::{GpgSigner, SigningError};
use crate::testreq::amqp::BrokerUrl;
use crate::testreq::ops::QueueTarget;
use crate::testreq::queue::QueueError;

/// Parallel package downloads per mirror when neither `--concurrency` nor
/// the settings file's `concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: u16 = 8;

/// Build repositories `depot serve` publishes at once (each build's own
/// publishes never overlap: see `crate::build::builder`). Publishing is
/// mostly waiting for gpg and for fsyncs, so several per core: with 8 on
/// 2 cores, 50 builds due at once are all ready within 1.7 s
/// (`bench/builds.py`, debug build).
pub const BUILDS_AT_ONCE: usize = 8;

/// `$XDG_CONFIG_HOME/depot/config.yaml`, `$DEPOT_CONFIG` or `--config FILE`.
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
    /// RabbitMQ URL for `depot test` when neither `--broker`, `--spool` nor
    /// `$DEPOT_BROKER` is given. Keep the file private: it holds a password.
    pub broker: Option<String>,
    /// Default `--quiet-time` of `depot serve` (build repositories), e.g.
    /// `30s`.
    pub quiet_time: Option<String>,
    /// Default `--webhook` URLs of `depot serve` (build states).
    pub webhooks: Option<Vec<String>>,
    /// Distro → repository kind, added to or overriding the built-in map
    /// of build repositories (`ubuntu: apt`, `centos: rpm`, …).
    pub build_distros: Option<std::collections::BTreeMap<String, crate::content::RepoKind>>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("root", &self.root)
            .field("sign_key", &self.sign_key)
            .field("concurrency", &self.concurrency)
            .field("compress", &self.compress)
            .field("broker", &self.broker.as_ref().map(|_| "***"))
            .field("quiet_time", &self.quiet_time)
            .field("webhooks", &self.webhooks)
            .field("build_distros", &self.build_distros)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the settings file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid settings file {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("cannot find a data root: give --root DIR or set DEPOT_ROOT")]
    NoRoot,
    #[error("DEPOT_NOW=`{value}` is not an RFC 3339 timestamp")]
    Clock {
        value: String,
        #[source]
        source: jiff::Error,
    },
    #[error("the settings file's compress list")]
    Compress(#[source] crate::formats::compress::UnknownCompression),
    #[error("cannot use signing key `{key}`")]
    SignKey {
        key: String,
        #[source]
        source: SigningError,
    },
    #[error("the test broker")]
    Broker(#[source] QueueError),
    #[error("the settings file's quiet-time: {0}")]
    QuietTime(String),
}

impl SettingsError {
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind::*;
        match self {
            Self::Read { .. }
            | Self::Parse { .. }
            | Self::NoRoot
            | Self::Clock { .. }
            | Self::SignKey { .. } => Failure,
            Self::Compress(_) | Self::Broker(_) | Self::QuietTime(_) => Usage,
        }
    }
}

/// The global flags a front end parsed.
#[derive(Debug, Default, Clone)]
pub struct GlobalFlags {
    /// `--root DIR`.
    pub root: Option<PathBuf>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
}

/// Resolved settings shared by every command.
#[derive(Debug)]
pub struct Settings {
    /// `--root`, else `$DEPOT_ROOT`, else the settings file's `root`, else
    /// `$XDG_DATA_HOME/depot`.
    pub root: PathBuf,
    pub config: ConfigFile,
    /// The clock: `$DEPOT_NOW` (RFC 3339) pins it, for tests and replays.
    pub now: Timestamp,
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    env(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(fallback)))
}

impl Settings {
    pub fn resolve(flags: &GlobalFlags) -> Result<Self, SettingsError> {
        let config_path = flags
            .config
            .clone()
            .or_else(|| env("DEPOT_CONFIG").map(PathBuf::from))
            .or_else(|| {
                xdg("XDG_CONFIG_HOME", ".config")
                    .map(|d| d.join("depot/config.yaml"))
                    .filter(|p| p.is_file())
            });
        let config = match &config_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.clone(),
                    source,
                })?;
                serde_norway::from_str(&text).map_err(|source| SettingsError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => ConfigFile::default(),
        };
        let root = flags
            .root
            .clone()
            .or_else(|| env("DEPOT_ROOT").map(PathBuf::from))
            .or_else(|| config.root.clone())
            .or_else(|| xdg("XDG_DATA_HOME", ".local/share").map(|d| d.join("depot")))
            .ok_or(SettingsError::NoRoot)?;
        let now = match env("DEPOT_NOW") {
            Some(value) => value
                .parse()
                .map_err(|source| SettingsError::Clock { value, source })?,
            None => Timestamp::now(),
        };
        Ok(Self { root, config, now })
    }

    /// Parallel downloads per mirror: `--concurrency`, else the settings
    /// file's `concurrency`, else [`DEFAULT_CONCURRENCY`].
    pub fn concurrency(&self, flag: Option<u16>) -> usize {
        usize::from(
            flag.or(self.config.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY)
                .max(1),
        )
    }

    /// Index compressions of a publish: `--compress`, else the settings
    /// file's `compress`; empty means the format's own default.
    pub fn compress(&self, flag: Vec<Compression>) -> Result<Vec<Compression>, SettingsError> {
        if !flag.is_empty() {
            return Ok(flag);
        }
        self.config
            .compress
            .iter()
            .flatten()
            .map(|w| w.parse().map_err(SettingsError::Compress))
            .collect()
    }

    /// The signer of a publish: `--sign-key`, else the settings file's
    /// `sign-key`; none with `--skip-signing` (or when neither names a key).
    pub fn signer(
        &self,
        flag: Option<String>,
        skip_signing: bool,
    ) -> Result<Option<GpgSigner>, SettingsError> {
        if skip_signing {
            return Ok(None);
        }
        match flag.or_else(|| self.config.sign_key.clone()) {
            Some(key) => GpgSigner::new(&key)
                .map(Some)
                .map_err(|source| SettingsError::SignKey { key, source }),
            None => Ok(None),
        }
    }

    /// What `depot serve` does with build repositories: `--sign-key`,
    /// `--quiet-time`, `--webhook` (all of them replacing the settings
    /// file's list), else the settings file's `sign-key`, `quiet-time`,
    /// `webhooks`, else unsigned, 30 s, none.
    pub fn build_service(
        &self,
        sign_key: Option<String>,
        quiet_time: Option<std::time::Duration>,
        webhooks: Vec<String>,
    ) -> Result<crate::promote::serve::BuildService, SettingsError> {
        let quiet_time = match quiet_time {
            Some(q) => q,
            None => match &self.config.quiet_time {
                Some(text) => crate::duration::parse(text).map_err(SettingsError::QuietTime)?,
                None => crate::build::builder::DEFAULT_QUIET_TIME,
            },
        };
        let webhooks = if webhooks.is_empty() {
            self.config.webhooks.clone().unwrap_or_default()
        } else {
            webhooks
        };
        Ok(crate::promote::serve::BuildService {
            builder: crate::build::BuilderOptions {
                quiet_time,
                sign_key: sign_key.or_else(|| self.config.sign_key.clone()),
                webhooks,
                concurrency: BUILDS_AT_ONCE,
                base_url: String::new(),
            },
            distros: self.distros(),
        })
    }

    /// The distro → repository kind map of build repositories.
    pub fn distros(&self) -> crate::build::DistroMap {
        crate::build::DistroMap::with(&self.config.build_distros.clone().unwrap_or_default())
    }

    /// Where test requests go: `--broker`, else `--spool`, else
    /// `$DEPOT_BROKER`, else the settings file's `broker`, else the data
    /// root's spool.
    pub fn queue(
        &self,
        root: &Root,
        broker: Option<String>,
        spool: Option<PathBuf>,
    ) -> Result<QueueTarget, SettingsError> {
        if let Some(dir) = spool.filter(|_| broker.is_none()) {
            return Ok(QueueTarget::Spool(dir));
        }
        match broker
            .or_else(|| env("DEPOT_BROKER"))
            .or_else(|| self.config.broker.clone())
        {
            Some(url) => BrokerUrl::parse(&url)
                .map(QueueTarget::Broker)
                .map_err(SettingsError::Broker),
            None => Ok(QueueTarget::Spool(root.spool_dir())),
        }
    }

    /// The AWS variables `depot dist push` signs and addresses with (see
    /// [`crate::promote::push::aws`] for the order they are used in).
    pub fn aws_env(&self) -> crate::promote::push::aws::AwsEnv {
        crate::promote::push::aws::AwsEnv {
            access_key_id: env("AWS_ACCESS_KEY_ID"),
            secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
            session_token: env("AWS_SESSION_TOKEN"),
            region: env("AWS_REGION"),
            default_region: env("AWS_DEFAULT_REGION"),
            profile: env("AWS_PROFILE").or_else(|| env("AWS_DEFAULT_PROFILE")),
            shared_credentials_file: env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from),
            config_file: env("AWS_CONFIG_FILE").map(PathBuf::from),
            endpoint_url_s3: env("AWS_ENDPOINT_URL_S3"),
            endpoint_url: env("AWS_ENDPOINT_URL"),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    /// Where test results are stored and read: `--results`, else
    /// `$DEPOT_RESULTS`, else `file://` the data root's results. A
    /// `swift+https://` URL authenticates with
    /// [`crate::testreq::swift::Credentials::from_env`].
    pub fn results(&self, root: &Root, flag: Option<String>) -> String {
        flag.or_else(|| env("DEPOT_RESULTS"))
            .unwrap_or_else(|| format!("file://{}", root.results_dir().display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_config(yaml: &str) -> Settings {
        Settings {
            root: PathBuf::from("/nonexistent"),
            config: serde_norway::from_str(yaml).unwrap(),
            now: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_explicit_flag_beats_the_settings_file_even_at_the_default_value() {
        let s = with_config("concurrency: 2\n");
        assert_eq!(s.concurrency(Some(DEFAULT_CONCURRENCY)), 8);
        assert_eq!(s.concurrency(None), 2);
        assert_eq!(with_config("{}").concurrency(None), 8);
    }

    #[test]
    fn compress_words_come_from_the_flag_else_the_file() {
        let s = with_config("compress: [xz]\n");
        assert_eq!(
            s.compress(vec![Compression::Gz]).unwrap(),
            [Compression::Gz]
        );
        assert_eq!(s.compress(vec![]).unwrap(), [Compression::Xz]);
        assert!(with_config("compress: [lz4]\n").compress(vec![]).is_err());
    }

    #[test]
    fn build_service_flags_beat_the_settings_file() {
        let s = with_config(
            "sign-key: k1\nquiet-time: 5s\nwebhooks: [http://a/]\nbuild-distros: {opensuse: rpm}\n",
        );
        let b = s.build_service(None, None, vec![]).unwrap();
        assert_eq!(b.builder.sign_key.as_deref(), Some("k1"));
        assert_eq!(b.builder.quiet_time, std::time::Duration::from_secs(5));
        assert_eq!(b.builder.webhooks, ["http://a/"]);
        assert!(b.distros.kind("opensuse").is_ok());
        let b = s
            .build_service(
                Some("k2".into()),
                Some(std::time::Duration::from_secs(1)),
                vec!["http://b/".into()],
            )
            .unwrap();
        assert_eq!(b.builder.sign_key.as_deref(), Some("k2"));
        assert_eq!(b.builder.quiet_time, std::time::Duration::from_secs(1));
        assert_eq!(b.builder.webhooks, ["http://b/"]);
        let d = with_config("{}").build_service(None, None, vec![]).unwrap();
        assert_eq!(d.builder.quiet_time, std::time::Duration::from_secs(30));
        assert!(
            with_config("quiet-time: soon\n")
                .build_service(None, None, vec![])
                .is_err()
        );
    }

    #[test]
    fn the_broker_password_is_not_in_debug_output() {
        let s = with_config("broker: amqp://u:secret@127.0.0.1/\n");
        assert!(!format!("{s:?}").contains("secret"));
    }
}
