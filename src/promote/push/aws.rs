//! AWS credentials, region and endpoint, found where the AWS CLI and SDKs
//! look: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`), else the profile (`AWS_PROFILE`, else `default`)
//! of `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) and
//! `~/.aws/config` (`AWS_CONFIG_FILE`); the region from `AWS_REGION`, else
//! `AWS_DEFAULT_REGION`, else the profile's `region`, else `us-east-1`; the
//! endpoint from `--endpoint`, else `AWS_ENDPOINT_URL_S3`, else
//! `AWS_ENDPOINT_URL`, else the profile's `endpoint_url`, else AWS's own.
//!
//! The environment is read once by [`crate::settings`] into [`AwsEnv`];
//! this module only reads the two INI files it names. Secrets never appear
//! in `Debug` output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::PushError;

/// The AWS variables of the environment (gathered by
/// [`crate::settings::Settings::aws_env`]).
#[derive(Default, Clone)]
pub struct AwsEnv {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub default_region: Option<String>,
    pub profile: Option<String>,
    pub shared_credentials_file: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub endpoint_url_s3: Option<String>,
    pub endpoint_url: Option<String>,
    pub home: Option<PathBuf>,
}

impl std::fmt::Debug for AwsEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEnv")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .field("default_region", &self.default_region)
            .field("profile", &self.profile)
            .field("shared_credentials_file", &self.shared_credentials_file)
            .field("config_file", &self.config_file)
            .field("endpoint_url_s3", &self.endpoint_url_s3)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// Signing keys; the secret and the token are redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// What signing and addressing a request needs.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub credentials: AwsCredentials,
    pub region: String,
    /// From the environment or the profile; `None`: AWS's own endpoint.
    pub endpoint: Option<String>,
}

/// The sections of an INI file (`[name]` → key → value).
type Ini = BTreeMap<String, BTreeMap<String, String>>;

fn read_ini(path: &Path) -> Result<Ini, PushError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ini::new()),
        Err(source) => {
            return Err(PushError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(parse_ini(&text))
}

fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            ini.entry(section.clone())
                .or_default()
                .insert(k.trim().to_lowercase(), v.trim().to_owned());
        }
    }
    ini
}

impl AwsEnv {
    /// Credentials, region and endpoint, or [`PushError::NoCredentials`].
    pub fn resolve(&self) -> Result<AwsConfig, PushError> {
        let profile = self.profile.clone().unwrap_or_else(|| "default".into());
        let aws_dir = self.home.as_ref().map(|h| h.join(".aws"));
        let file = |explicit: &Option<PathBuf>, name: &str| {
            explicit
                .clone()
                .or_else(|| aws_dir.as_ref().map(|d| d.join(name)))
        };
        let credentials_file = file(&self.shared_credentials_file, "credentials");
        let config_file = file(&self.config_file, "config");
        let credentials_ini = match &credentials_file {
            Some(p) => read_ini(p)?,
            None => Ini::new(),
        };
        let config_ini = match &config_file {
            Some(p) => read_ini(p)?,
            None => Ini::new(),
        };
        let config_section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        let from_profile = |key: &str| {
            credentials_ini
                .get(&profile)
                .and_then(|s| s.get(key))
                .or_else(|| config_ini.get(&config_section).and_then(|s| s.get(key)))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let credentials = match (&self.access_key_id, &self.secret_access_key) {
            (Some(key), Some(secret)) => AwsCredentials {
                access_key_id: key.clone(),
                secret_access_key: secret.clone(),
                session_token: self.session_token.clone(),
            },
            _ => match (
                from_profile("aws_access_key_id"),
                from_profile("aws_secret_access_key"),
            ) {
                (Some(key), Some(secret)) => AwsCredentials {
                    access_key_id: key,
                    secret_access_key: secret,
                    session_token: from_profile("aws_session_token"),
                },
                _ => {
                    return Err(PushError::NoCredentials {
                        profile,
                        files: [credentials_file, config_file]
                            .into_iter()
                            .flatten()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            },
        };
        let region = self
            .region
            .clone()
            .or_else(|| self.default_region.clone())
            .or_else(|| {
                config_ini
                    .get(&config_section)
                    .and_then(|s| s.get("region"))
                    .cloned()
            })
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = self
            .endpoint_url_s3
            .clone()
            .or_else(|| self.endpoint_url.clone())
            .or_else(|| {
                config_ini
                    .get(&config_section)
                    .and_then(|s| s.get("endpoint_url"))
                    .cloned()
            });
        Ok(AwsConfig {
            credentials,
            region,
            endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_files(credentials: &str, config: &str) -> (tempfile::TempDir, AwsEnv) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/credentials"), credentials).unwrap();
        std::fs::write(dir.path().join(".aws/config"), config).unwrap();
        let env = AwsEnv {
            home: Some(dir.path().to_owned()),
            ..AwsEnv::default()
        };
        (dir, env)
    }

    #[test]
    fn the_environment_beats_the_profile_and_the_profile_names_its_region() {
        let (_d, mut env) = env_with_files(
            "[default]\naws_access_key_id = AKD\naws_secret_access_key = sd\n\
             [ci]\naws_access_key_id=AKC\naws_secret_access_key=sc\naws_session_token=tc\n",
            "[default]\nregion = eu-west-1\n[profile ci]\nregion = eu-north-1\n\
             endpoint_url = http://127.0.0.1:9000\n",
        );
        let c = env.resolve().unwrap();
        assert_eq!(c.credentials.access_key_id, "AKD");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.endpoint, None);
        env.profile = Some("ci".into());
        let c = env.resolve().unwrap();
        assert_eq!(c.credentials.access_key_id, "AKC");
        assert_eq!(c.credentials.session_token.as_deref(), Some("tc"));
        assert_eq!(c.region, "eu-north-1");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        env.access_key_id = Some("AKE".into());
        env.secret_access_key = Some("se".into());
        env.default_region = Some("ap-south-1".into());
        let c = env.resolve().unwrap();
        assert_eq!(c.credentials.access_key_id, "AKE");
        assert_eq!(c.credentials.session_token, None);
        assert_eq!(c.region, "ap-south-1");
    }

    #[test]
    fn no_credentials_anywhere_is_an_error_naming_the_profile() {
        let (_d, env) = env_with_files("", "");
        let e = env.resolve().unwrap_err().to_string();
        assert!(e.contains("`default`"), "{e}");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let env = AwsEnv {
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("topsecret".into()),
            session_token: Some("tokensecret".into()),
            ..AwsEnv::default()
        };
        let c = env.resolve().unwrap();
        for shown in [format!("{env:?}"), format!("{c:?}")] {
            assert!(
                !shown.contains("topsecret") && !shown.contains("tokensecret"),
                "{shown}"
            );
            assert!(shown.contains("AKID"));
        }
    }
}
