//! Server settings, layered: defaults < TOML file (`--config`) < environment < flags.
//!
//! Clap already merges flags over their environment twins; this module lays that
//! result over the file and the defaults, then validates everything once, so the rest
//! of the program only sees a well-formed [`Settings`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ripplekv_core::limits::{DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES};
use ripplekv_core::Limits;
use ripplekv_storage::Durability;
use serde::Deserialize;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Largest value limit accepted, so a frame limit derived from it stays sane.
const MAX_VALUE_LIMIT: usize = 16 * 1024 * 1024;
/// Largest key limit accepted.
const MAX_KEY_LIMIT: usize = 64 * 1024;

/// Flags of `ripplekv serve`; each has an environment twin.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with any of: listen, data_dir, api_keys, durability, max_value_bytes,
    /// max_key_bytes.
    #[arg(long, env = "RIPPLEKV_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "RIPPLEKV_LISTEN", value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Directory of the database and generated secrets [default: ./data].
    #[arg(long, env = "RIPPLEKV_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// API key accepted by the server; repeat for several (env: comma-separated).
    /// Without any, one is generated on first start and kept in the data directory.
    #[arg(
        long = "api-key",
        env = "RIPPLEKV_API_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    api_keys: Vec<String>,
    /// When a write is acknowledged: after fsync (sync), or after it is applied with an
    /// fsync at least every 100 ms (relaxed) [default: sync].
    #[arg(long, env = "RIPPLEKV_DURABILITY", value_enum)]
    durability: Option<DurabilityArg>,
    /// Largest value in bytes [default: 65536].
    #[arg(long, env = "RIPPLEKV_MAX_VALUE_BYTES", value_name = "BYTES")]
    max_value_bytes: Option<usize>,
    /// Longest key in bytes [default: 512].
    #[arg(long, env = "RIPPLEKV_MAX_KEY_BYTES", value_name = "BYTES")]
    max_key_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DurabilityArg {
    Sync,
    Relaxed,
}

/// The optional TOML file; same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    api_keys: Option<Vec<String>>,
    durability: Option<DurabilityArg>,
    max_value_bytes: Option<usize>,
    max_key_bytes: Option<usize>,
}

/// Validated settings of one server run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    /// Configured keys; empty means "use the generated key".
    pub api_keys: Vec<String>,
    pub durability: Durability,
    pub limits: Limits,
}

impl ServeArgs {
    /// Layers flags and environment over the file and the defaults, and validates.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let api_keys = if self.api_keys.is_empty() {
            file.api_keys.unwrap_or_default()
        } else {
            self.api_keys
        };
        let settings = Settings {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            api_keys: api_keys
                .into_iter()
                .map(|key| key.trim().to_owned())
                .collect(),
            durability: match self.durability.or(file.durability) {
                Some(DurabilityArg::Relaxed) => Durability::Relaxed,
                Some(DurabilityArg::Sync) | None => Durability::Sync,
            },
            limits: Limits {
                max_key_bytes: self
                    .max_key_bytes
                    .or(file.max_key_bytes)
                    .unwrap_or(DEFAULT_MAX_KEY_BYTES),
                max_value_bytes: self
                    .max_value_bytes
                    .or(file.max_value_bytes)
                    .unwrap_or(DEFAULT_MAX_VALUE_BYTES),
            },
        };
        settings.validate()?;
        Ok(settings)
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

impl Settings {
    fn validate(&self) -> anyhow::Result<()> {
        if self.api_keys.iter().any(String::is_empty) {
            bail!("an API key must not be empty");
        }
        if let Some(key) = self
            .api_keys
            .iter()
            .find(|key| key.chars().any(|c| c.is_control() || c == '&' || c == ' '))
        {
            bail!(
                "API key {:?}... contains a space, '&' or a control character; it could not be sent in a URL",
                key.chars().take(4).collect::<String>()
            );
        }
        if !(1..=MAX_VALUE_LIMIT).contains(&self.limits.max_value_bytes) {
            bail!("max_value_bytes must be between 1 and {MAX_VALUE_LIMIT}");
        }
        if !(1..=MAX_KEY_LIMIT).contains(&self.limits.max_key_bytes) {
            bail!("max_key_bytes must be between 1 and {MAX_KEY_LIMIT}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Test {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn resolve(argv: &[&str]) -> anyhow::Result<Settings> {
        let test = Test::try_parse_from(std::iter::once("ripplekv").chain(argv.iter().copied()))?;
        test.args.resolve()
    }

    #[test]
    fn defaults() {
        let settings = resolve(&[]).unwrap();
        assert_eq!(settings.listen, DEFAULT_LISTEN);
        assert_eq!(settings.data_dir, PathBuf::from("./data"));
        assert!(settings.api_keys.is_empty());
        assert_eq!(settings.durability, Durability::Sync);
        assert_eq!(settings.limits, Limits::default());
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ripplekv.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\napi_keys = [\"from-file\"]\ndurability = \"relaxed\"\nmax_key_bytes = 100\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let settings = resolve(&["--config", path]).unwrap();
        assert_eq!(settings.listen, "0.0.0.0:9000");
        assert_eq!(settings.api_keys, ["from-file"]);
        assert_eq!(settings.durability, Durability::Relaxed);
        assert_eq!(settings.limits.max_key_bytes, 100);
        let settings = resolve(&[
            "--config",
            path,
            "--listen",
            "127.0.0.1:1",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--durability",
            "sync",
        ])
        .unwrap();
        assert_eq!(settings.listen, "127.0.0.1:1");
        assert_eq!(settings.api_keys, ["a", "b"]);
        assert_eq!(settings.durability, Durability::Sync);
        assert_eq!(settings.limits.max_key_bytes, 100);
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        let err = resolve(&["--config", path.to_str().unwrap()]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        assert!(resolve(&["--max-value-bytes", "0"]).is_err());
        assert!(resolve(&["--api-key", "has space"]).is_err());
        assert!(resolve(&["--durability", "sometimes"]).is_err());
    }
}
