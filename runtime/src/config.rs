//! Typed configuration: a TOML file, then environment overrides, then validation.
//! `PREFIX_SECTION__KEY=value` overrides `[section] key`, e.g.
//! `INGEST_KAFKA__BROKERS=10.0.0.5:9092`.

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    MissingFile { path: String },
    /// figment's message names the key and the source (file or variable) it came from.
    #[error("configuration: {0}")]
    Parse(Box<figment::Error>),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    pub fn invalid(key: &str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A numeric key's bounds, checked at start-up: the error names the key and the range.
pub fn within(
    key: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!(
                "must be between {} and {}, not {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// Start-up checks a config struct makes beyond what serde can express.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads `T` from `file` (if given) with `{env_prefix}_*` overrides, and validates it.
pub fn load<T: DeserializeOwned + Validate>(
    file: Option<&Path>,
    env_prefix: &str,
) -> Result<T, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile {
                path: path.display().to_string(),
            });
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed(&format!("{env_prefix}_")).split("__"));
    let config: T = figment
        .extract()
        .map_err(|e| ConfigError::Parse(Box::new(e)))?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
// `figment::Jail`'s closure type returns figment's own (large) error; not ours to box.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Sample {
        http: Http,
    }
    #[derive(Debug, Deserialize)]
    struct Http {
        listen: std::net::SocketAddr,
        #[serde(default)]
        body_limit_bytes: usize,
    }
    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            if self.http.body_limit_bytes == 1 {
                return Err(ConfigError::invalid("http.body_limit_bytes", "too small"));
            }
            Ok(())
        }
    }

    fn sample_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[http]\nlisten = \"127.0.0.1:1\"\nbody_limit_bytes = 5\n",
        )
        .unwrap();
        path
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample_file(&dir);
        figment::Jail::expect_with(|jail| {
            let loaded: Sample = load(Some(&path), "CFGA").unwrap();
            assert_eq!(loaded.http.body_limit_bytes, 5);
            assert_eq!(loaded.http.listen.port(), 1);
            jail.set_env("CFGA_HTTP__BODY_LIMIT_BYTES", "7");
            let loaded: Sample = load(Some(&path), "CFGA").unwrap();
            assert_eq!(loaded.http.body_limit_bytes, 7);
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample_file(&dir);
        figment::Jail::expect_with(|jail| {
            jail.set_env("CFGB_HTTP__LISTEN", "not an address");
            let err = load::<Sample>(Some(&path), "CFGB").unwrap_err().to_string();
            assert!(err.to_lowercase().contains("http.listen"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn validation_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample_file(&dir);
        figment::Jail::expect_with(|jail| {
            jail.set_env("CFGC_HTTP__BODY_LIMIT_BYTES", "1");
            let err = load::<Sample>(Some(&path), "CFGC").unwrap_err().to_string();
            assert!(err.contains("http.body_limit_bytes"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_named() {
        let err = load::<Sample>(Some(Path::new("/nope/x.toml")), "CFGTEST").unwrap_err();
        assert!(err.to_string().contains("/nope/x.toml"));
    }
}
