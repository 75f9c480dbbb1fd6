//! Server settings, layered: defaults < TOML file (`--config`) < environment < flags.
//!
//! Clap already merges flags over their environment twins; this module lays that
//! result over the file and the defaults, then validates everything once, so the rest
//! of the program only sees a well-formed [`Settings`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use ripplekv_core::limits::{DEFAULT_MAX_KEY_BYTES, DEFAULT_MAX_VALUE_BYTES};
use ripplekv_core::{Limits, Retention};
use ripplekv_server::RateLimit;
use ripplekv_storage::Durability;
use serde::Deserialize;

/// Default listen address.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default data directory.
pub(crate) const DEFAULT_DATA_DIR: &str = "./data";
/// Largest value limit accepted, so a frame limit derived from it stays sane.
const MAX_VALUE_LIMIT: usize = 16 * 1024 * 1024;
/// Largest key limit accepted.
const MAX_KEY_LIMIT: usize = 64 * 1024;

/// Flags of `ripplekv serve`; each has an environment twin.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML file with any of the settings below, named with underscores
    /// (listen, data_dir, api_keys, durability, max_value_bytes, ...).
    #[arg(long, env = "RIPPLEKV_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "RIPPLEKV_LISTEN", value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Serve `/metrics` on this address only, and not on --listen (metrics carry no
    /// authentication) [default: /metrics on the --listen address].
    #[arg(long, env = "RIPPLEKV_METRICS_LISTEN", value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// Directory of the database and generated secrets [default: ./data].
    #[arg(long, env = "RIPPLEKV_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the data in PostgreSQL instead of the data directory, shared by every node
    /// given the same URL (postgres://USER@HOST:PORT/DB); generated secrets are kept
    /// there too [default: the embedded store in --data-dir].
    #[arg(long, env = "RIPPLEKV_STORE", value_name = "URL")]
    store: Option<String>,
    /// With --store: nodes learn of each other's commits through Redis pub/sub at this
    /// URL (redis://HOST:PORT) [default: PostgreSQL LISTEN/NOTIFY].
    #[arg(long, env = "RIPPLEKV_BUS", value_name = "URL")]
    bus: Option<String>,
    /// API key accepted by the server; repeat for several (env: comma-separated; the
    /// clients' RIPPLEKV_API_KEY is read too when RIPPLEKV_API_KEYS is unset). Without
    /// any, one is generated on first start and kept in the data directory.
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
    /// Secret that signs WebSocket tokens; servers sharing it accept each other's tokens.
    /// Without one, a secret is generated once and kept in the data directory.
    #[arg(long, env = "RIPPLEKV_TOKEN_SECRET", value_name = "SECRET")]
    token_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds [default: 7200].
    #[arg(long, env = "RIPPLEKV_TOKEN_TTL", value_name = "SECONDS")]
    token_ttl: Option<u64>,
    /// Changes kept for `since` replays [default: 100000].
    #[arg(long, env = "RIPPLEKV_CHANGELOG_MAX_ENTRIES", value_name = "COUNT")]
    changelog_max_entries: Option<u64>,
    /// Age after which changes are dropped from the replay log, in seconds [default: 86400].
    #[arg(long, env = "RIPPLEKV_CHANGELOG_MAX_AGE", value_name = "SECONDS")]
    changelog_max_age: Option<u64>,
    /// Frames one connection may have queued before it is a slow consumer [default: 1024].
    #[arg(long, env = "RIPPLEKV_OUTBOX_MESSAGES", value_name = "COUNT")]
    outbox_messages: Option<usize>,
    /// Bytes one connection may have queued before it is a slow consumer [default: 8388608].
    #[arg(long, env = "RIPPLEKV_OUTBOX_BYTES", value_name = "BYTES")]
    outbox_bytes: Option<usize>,
    /// WebSocket connections served at once; more get HTTP 503 [default: 100000].
    #[arg(long, env = "RIPPLEKV_MAX_CONNECTIONS", value_name = "COUNT")]
    max_connections: Option<usize>,
    /// Seconds of silence before a connection is pinged [default: 30].
    #[arg(long, env = "RIPPLEKV_PING_INTERVAL", value_name = "SECONDS")]
    ping_interval: Option<f64>,
    /// Seconds a pinged connection may stay silent before it is closed [default: 30].
    #[arg(long, env = "RIPPLEKV_PONG_TIMEOUT", value_name = "SECONDS")]
    pong_timeout: Option<f64>,
    /// Log lines as `pretty` text or `json` objects [default: pretty].
    #[arg(long, env = "RIPPLEKV_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Patterns one WebSocket connection may subscribe to at once [default: 1000].
    #[arg(long, env = "RIPPLEKV_MAX_SUBSCRIPTIONS", value_name = "COUNT")]
    max_subscriptions: Option<usize>,
    /// Seconds a new connection has to send its request head (and so its credentials);
    /// also how long an idle keep-alive HTTP connection is kept [default: 10].
    #[arg(long, env = "RIPPLEKV_HANDSHAKE_TIMEOUT", value_name = "SECONDS")]
    handshake_timeout: Option<f64>,
    /// Requests per second one API key or token may make, as RATE or RATE:BURST;
    /// more get 429 with a retry hint [default: no limit].
    #[arg(long, env = "RIPPLEKV_KEY_RATE_LIMIT", value_name = "RATE[:BURST]")]
    key_rate_limit: Option<String>,
    /// HTTP requests and WebSocket upgrades per second one client IP may make, as RATE
    /// or RATE:BURST [default: no limit].
    #[arg(long, env = "RIPPLEKV_IP_RATE_LIMIT", value_name = "RATE[:BURST]")]
    ip_rate_limit: Option<String>,
    /// The token secret being replaced: tokens it signed stay valid for the rotation
    /// grace period.
    #[arg(long, env = "RIPPLEKV_PREVIOUS_TOKEN_SECRET", value_name = "SECRET")]
    previous_token_secret: Option<String>,
    /// Seconds after start that tokens of the previous secret are accepted [default: 7200].
    #[arg(long, env = "RIPPLEKV_TOKEN_ROTATION_GRACE", value_name = "SECONDS")]
    token_rotation_grace: Option<u64>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Pretty,
    Json,
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
    metrics_listen: Option<String>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    bus: Option<String>,
    api_keys: Option<Vec<String>>,
    durability: Option<DurabilityArg>,
    max_value_bytes: Option<usize>,
    max_key_bytes: Option<usize>,
    token_secret: Option<String>,
    token_ttl: Option<u64>,
    changelog_max_entries: Option<u64>,
    changelog_max_age: Option<u64>,
    outbox_messages: Option<usize>,
    outbox_bytes: Option<usize>,
    max_connections: Option<usize>,
    ping_interval: Option<f64>,
    pong_timeout: Option<f64>,
    log_format: Option<LogFormat>,
    max_subscriptions: Option<usize>,
    handshake_timeout: Option<f64>,
    key_rate_limit: Option<String>,
    ip_rate_limit: Option<String>,
    previous_token_secret: Option<String>,
    token_rotation_grace: Option<u64>,
}

/// Validated settings of one server run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub listen: String,
    /// Where `/metrics` is served instead of on `listen`, if anywhere.
    pub metrics_listen: Option<String>,
    pub data_dir: PathBuf,
    /// A PostgreSQL URL, or `None` for the embedded store in `data_dir`.
    pub store: Option<String>,
    /// A Redis URL for the nodes' fan-out, or `None` for LISTEN/NOTIFY.
    pub bus: Option<String>,
    /// Configured keys; empty means "use the generated key".
    pub api_keys: Vec<String>,
    pub durability: Durability,
    pub limits: Limits,
    /// Configured token secret; `None` means "use the generated one".
    pub token_secret: Option<String>,
    pub token_lifetime: Duration,
    pub retention: Retention,
    pub outbox_messages: usize,
    pub outbox_bytes: usize,
    pub max_connections: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub log_format: LogFormat,
    pub max_subscriptions: usize,
    pub handshake_timeout: Duration,
    pub key_rate_limit: Option<RateLimit>,
    pub ip_rate_limit: Option<RateLimit>,
    pub previous_token_secret: Option<String>,
    pub token_rotation_grace: Duration,
}

impl ServeArgs {
    /// Layers flags and environment over the file and the defaults, and validates.
    pub(crate) fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        // `RIPPLEKV_API_KEY` is the clients' variable; the server accepts it too (after
        // `RIPPLEKV_API_KEYS` and `--api-key`), so one exported variable serves both.
        let single_key = std::env::var("RIPPLEKV_API_KEY")
            .ok()
            .filter(|keys| !keys.trim().is_empty())
            .map(|keys| keys.split(',').map(str::to_owned).collect::<Vec<_>>());
        let api_keys = if !self.api_keys.is_empty() {
            self.api_keys
        } else if let Some(keys) = single_key {
            keys
        } else {
            file.api_keys.unwrap_or_default()
        };
        let settings = Settings {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            store: self
                .store
                .or(file.store)
                .filter(|url| !url.trim().is_empty()),
            bus: self.bus.or(file.bus).filter(|url| !url.trim().is_empty()),
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
            token_secret: self.token_secret.or(file.token_secret),
            token_lifetime: Duration::from_secs(self.token_ttl.or(file.token_ttl).unwrap_or(7200)),
            retention: Retention {
                max_entries: self
                    .changelog_max_entries
                    .or(file.changelog_max_entries)
                    .unwrap_or(Retention::default().max_entries),
                max_age: self
                    .changelog_max_age
                    .or(file.changelog_max_age)
                    .map_or(Retention::default().max_age, Duration::from_secs),
            },
            outbox_messages: self
                .outbox_messages
                .or(file.outbox_messages)
                .unwrap_or(1024),
            outbox_bytes: self
                .outbox_bytes
                .or(file.outbox_bytes)
                .unwrap_or(8 * 1024 * 1024),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(100_000),
            ping_interval: seconds(
                self.ping_interval.or(file.ping_interval).unwrap_or(30.0),
                "ping_interval",
            )?,
            pong_timeout: seconds(
                self.pong_timeout.or(file.pong_timeout).unwrap_or(30.0),
                "pong_timeout",
            )?,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            max_subscriptions: self
                .max_subscriptions
                .or(file.max_subscriptions)
                .unwrap_or(1000),
            handshake_timeout: seconds(
                self.handshake_timeout
                    .or(file.handshake_timeout)
                    .unwrap_or(10.0),
                "handshake_timeout",
            )?,
            key_rate_limit: rate_limit(self.key_rate_limit.or(file.key_rate_limit))?,
            ip_rate_limit: rate_limit(self.ip_rate_limit.or(file.ip_rate_limit))?,
            previous_token_secret: self.previous_token_secret.or(file.previous_token_secret),
            token_rotation_grace: Duration::from_secs(
                self.token_rotation_grace
                    .or(file.token_rotation_grace)
                    .unwrap_or(7200),
            ),
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// A rate limit from `RATE[:BURST]`; absent means none.
fn rate_limit(text: Option<String>) -> anyhow::Result<Option<RateLimit>> {
    text.map(|text| text.parse::<RateLimit>().map_err(anyhow::Error::msg))
        .transpose()
}

/// A positive number of seconds as a duration.
fn seconds(value: f64, name: &str) -> anyhow::Result<Duration> {
    if !(value > 0.0 && value <= 86_400.0) {
        bail!("{name} must be more than 0 and at most 86400 seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

impl Settings {
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(bus) = &self.bus {
            if self.store.is_none() {
                bail!("--bus connects the nodes of a PostgreSQL store: give --store too");
            }
            if !bus.starts_with("redis://") {
                bail!("--bus must be a redis:// URL");
            }
        }
        if let Some(url) = &self.store {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("--store must be a postgres:// URL (without it, the embedded store in --data-dir is used)");
            }
            if self.durability == Durability::Relaxed {
                bail!("--durability relaxed applies to the embedded store; PostgreSQL acknowledges a write once its commit is durable");
            }
        }
        if self.api_keys.iter().any(String::is_empty) {
            bail!("an API key must not be empty");
        }
        // HPKV clients put the key into `?apiKey=` as it is, and the query is decoded, so
        // a key with `%`, `+`, `&`, `#` or a space would arrive changed or cut short.
        let unsafe_in_url = |c: char| c.is_control() || " &%+#?=".contains(c);
        if let Some(key) = self
            .api_keys
            .iter()
            .find(|key| key.chars().any(unsafe_in_url))
        {
            bail!(
                "API key {:?}... contains a space, a control character or one of & % + # ? =; \
                 clients send keys unencoded in URLs, where these change meaning",
                key.chars().take(4).collect::<String>()
            );
        }
        if !(1..=MAX_VALUE_LIMIT).contains(&self.limits.max_value_bytes) {
            bail!("max_value_bytes must be between 1 and {MAX_VALUE_LIMIT}");
        }
        if !(1..=MAX_KEY_LIMIT).contains(&self.limits.max_key_bytes) {
            bail!("max_key_bytes must be between 1 and {MAX_KEY_LIMIT}");
        }
        if self
            .token_secret
            .as_ref()
            .is_some_and(|secret| secret.len() < 16)
        {
            bail!("token_secret must be at least 16 characters");
        }
        if self
            .previous_token_secret
            .as_ref()
            .is_some_and(|previous| Some(previous) == self.token_secret.as_ref())
        {
            bail!("previous_token_secret is the same as token_secret; nothing is being rotated");
        }
        if self.max_subscriptions == 0 {
            bail!("max_subscriptions must be at least 1");
        }
        if self.token_lifetime.is_zero() {
            bail!("token_ttl must be at least 1 second");
        }
        if self.retention.max_entries == 0 {
            bail!("changelog_max_entries must be at least 1");
        }
        if self.outbox_messages == 0 || self.outbox_bytes == 0 {
            bail!("outbox_messages and outbox_bytes must be at least 1");
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
        for unsafe_key in ["has space", "a+b", "50%off", "x#y", "a&b=c"] {
            assert!(resolve(&["--api-key", unsafe_key]).is_err(), "{unsafe_key}");
        }
        assert!(resolve(&["--durability", "sometimes"]).is_err());
        assert!(resolve(&["--ping-interval", "0"]).is_err());
        assert!(resolve(&["--log-format", "xml"]).is_err());
        let settings = resolve(&[
            "--log-format",
            "json",
            "--max-connections",
            "7",
            "--pong-timeout",
            "2.5",
        ])
        .unwrap();
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.max_connections, 7);
        assert_eq!(settings.pong_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn defences_are_off_or_generous_by_default_and_configurable() {
        let defaults = resolve(&[]).unwrap();
        assert_eq!(defaults.key_rate_limit, None);
        assert_eq!(defaults.ip_rate_limit, None);
        assert_eq!(defaults.max_subscriptions, 1000);
        assert_eq!(defaults.handshake_timeout, Duration::from_secs(10));
        assert_eq!(defaults.previous_token_secret, None);
        let settings = resolve(&[
            "--key-rate-limit",
            "100:250",
            "--ip-rate-limit",
            "20",
            "--max-subscriptions",
            "5",
            "--handshake-timeout",
            "0.5",
            "--token-secret",
            "new-secret-0123456789",
            "--previous-token-secret",
            "old-secret-0123456789",
            "--token-rotation-grace",
            "60",
        ])
        .unwrap();
        assert_eq!(
            settings.key_rate_limit,
            Some(RateLimit {
                per_second: 100.0,
                burst: 250
            })
        );
        assert_eq!(settings.ip_rate_limit.unwrap().burst, 20);
        assert_eq!(settings.max_subscriptions, 5);
        assert_eq!(settings.handshake_timeout, Duration::from_millis(500));
        assert_eq!(settings.token_rotation_grace, Duration::from_secs(60));
        for bad in [
            &["--key-rate-limit", "0"][..],
            &["--ip-rate-limit", "10:0"],
            &["--max-subscriptions", "0"],
            &["--handshake-timeout", "0"],
            &[
                "--token-secret",
                "same-secret-0123456789",
                "--previous-token-secret",
                "same-secret-0123456789",
            ],
        ] {
            assert!(resolve(bad).is_err(), "{bad:?} accepted");
        }
    }
}
