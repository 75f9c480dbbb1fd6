//! Client subcommands: `get`, `set`, `patch`, `del`, `range`, `incr`, `watch`, `token`,
//! `health`.
//!
//! Plain output is for people; `--json` prints one JSON value (or, for `watch`, one per
//! line) for scripts. Exit codes: 0 success, 1 the server answered with an error (its
//! message on stderr), 2 bad usage, 3 the server could not be reached, 4 the server
//! refused the credentials.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::{StreamExt, TryStreamExt};
use ripplekv_client::{Auth, Client, Error, Event, WriteOptions};
use serde_json::{json, Value};

use crate::rest;

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// Server base URL.
    #[arg(
        long,
        env = "RIPPLEKV_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    url: String,
    /// API key [default: $RIPPLEKV_API_KEYS's first key, else the generated key in
    /// $RIPPLEKV_DATA_DIR/api-key (./data/api-key)].
    #[arg(long, env = "RIPPLEKV_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
    /// Print JSON instead of plain text.
    #[arg(long, global = true)]
    json: bool,
}

/// Conditions of a write.
#[derive(Debug, Args)]
pub(crate) struct WriteFlags {
    /// Write only if the key is at this revision (0: only if it does not exist).
    #[arg(long)]
    if_revision: Option<u64>,
    /// Expire the key after this many seconds (SET and PATCH).
    #[arg(long)]
    ttl: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Print a key's value.
    Get {
        key: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Create or replace a key.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        write: WriteFlags,
        #[command(flatten)]
        connection: Connection,
    },
    /// JSON-merge into a key, or append to its text.
    Patch {
        key: String,
        value: String,
        #[command(flatten)]
        write: WriteFlags,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a key.
    Del {
        key: String,
        /// Delete only if the key is at this revision.
        #[arg(long)]
        if_revision: Option<u64>,
        #[command(flatten)]
        connection: Connection,
    },
    /// List keys from START to END inclusive, in byte order.
    Range {
        start: String,
        end: String,
        /// At most this many records (default: all, fetched in pages).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Add DELTA (default 1) to an integer key and print the result.
    Incr {
        key: String,
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        delta: i64,
        #[command(flatten)]
        connection: Connection,
    },
    /// Print changes to keys matching PATTERNs as they happen (resumes across reconnects).
    Watch {
        #[arg(required = true)]
        patterns: Vec<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Check that the server is up and serving (`GET /health`); exit 0 if it is.
    Health {
        #[command(flatten)]
        connection: Connection,
    },
    /// Mint a WebSocket token.
    Token {
        /// A key or pattern whose changes the token's connections receive (repeatable).
        #[arg(long = "subscribe")]
        subscribe: Vec<String>,
        /// The keys the token may read and write.
        #[arg(long = "access")]
        access: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

/// Runs a client subcommand and maps the outcome to an exit code.
pub(crate) fn main(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Prints `err` for a person and returns the exit code that classifies it.
pub(crate) fn fail(err: &Error) -> ExitCode {
    let (text, code) = match err {
        Error::Server { code, message, .. } => (format!("{message} ({code})"), 1),
        Error::Unauthorized { status, message } => (
            format!(
                "authentication refused ({status}): {message}. Pass the server's key with \
                 --api-key or RIPPLEKV_API_KEY (a generated key is in the server's data \
                 directory, data/api-key), or a valid token"
            ),
            4,
        ),
        other => (other.to_string(), 3),
    };
    eprintln!("error: {text}");
    ExitCode::from(code)
}

/// The API key a client command uses: `explicit` (the flag or `RIPPLEKV_API_KEY`), else
/// the first of `RIPPLEKV_API_KEYS` (the server's variable, so one environment serves
/// both), else the key the server generated in its data directory.
pub(crate) fn resolve_api_key(explicit: Option<&str>) -> Result<String, Error> {
    if let Some(key) = explicit.filter(|key| !key.is_empty()) {
        return Ok(key.to_owned());
    }
    let listed = std::env::var("RIPPLEKV_API_KEYS").unwrap_or_default();
    if let Some(key) = listed.split(',').map(str::trim).find(|key| !key.is_empty()) {
        return Ok(key.to_owned());
    }
    let data_dir = std::env::var_os("RIPPLEKV_DATA_DIR").unwrap_or_else(|| "data".into());
    let path = Path::new(&data_dir).join(crate::secrets::API_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        _ => Err(Error::Unauthorized {
            status: 401,
            message: format!(
                "no API key found (looked at --api-key, RIPPLEKV_API_KEY, RIPPLEKV_API_KEYS and {})",
                path.display()
            ),
        }),
    }
}

impl Connection {
    /// The server's base URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn api_key(&self) -> Result<String, Error> {
        resolve_api_key(self.api_key.as_deref())
    }

    pub(crate) async fn client(&self) -> Result<Client, Error> {
        Client::connect(&self.url, Auth::ApiKey(self.api_key()?)).await
    }

    /// Reports a committed write.
    fn print_written(&self, written: ripplekv_client::Written) {
        self.print(json!({"revision": written.revision}), || {
            format!("OK (revision {})", written.revision)
        });
    }

    /// Prints `value` as JSON with --json, or `plain` otherwise.
    fn print(&self, value: Value, plain: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", plain());
        }
    }
}

impl WriteFlags {
    fn options(&self) -> WriteOptions {
        WriteOptions {
            if_revision: self.if_revision,
            ttl: self.ttl.map(Duration::from_secs_f64),
        }
    }
}

async fn run(command: ClientCommand) -> Result<(), Error> {
    match command {
        ClientCommand::Get { key, connection } => {
            let record = connection.client().await?.get(&key).await?;
            connection.print(
                json!({"key": record.key, "value": record.value, "revision": record.revision}),
                || record.value.clone(),
            );
        }
        ClientCommand::Set {
            key,
            value,
            write,
            connection,
        } => {
            let written = connection
                .client()
                .await?
                .set_with(&key, &value, write.options())
                .await?;
            connection.print_written(written);
        }
        ClientCommand::Patch {
            key,
            value,
            write,
            connection,
        } => {
            let written = connection
                .client()
                .await?
                .patch_with(&key, &value, write.options())
                .await?;
            connection.print_written(written);
        }
        ClientCommand::Del {
            key,
            if_revision,
            connection,
        } => {
            let options = WriteOptions {
                if_revision,
                ttl: None,
            };
            let written = connection
                .client()
                .await?
                .delete_with(&key, options)
                .await?;
            connection.print_written(written);
        }
        ClientCommand::Range {
            start,
            end,
            limit,
            connection,
        } => {
            let client = connection.client().await?;
            let records: Vec<_> = match limit {
                Some(limit) => client.range(&start, &end, Some(limit)).await?.records,
                None => client.range_all(&start, &end, 1000).try_collect().await?,
            };
            let as_json: Vec<Value> = records
                .iter()
                .map(|r| json!({"key": r.key, "value": r.value, "revision": r.revision}))
                .collect();
            connection.print(Value::Array(as_json), || {
                records
                    .iter()
                    .map(|r| format!("{}\t{}", r.key, r.value))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ClientCommand::Incr {
            key,
            delta,
            connection,
        } => {
            let value = connection.client().await?.atomic(&key, delta).await?;
            connection.print(json!({"key": key, "value": value}), || value.to_string());
        }
        ClientCommand::Watch {
            patterns,
            connection,
        } => {
            let client = connection.client().await?;
            let mut changes = client.subscribe(patterns.clone()).await?;
            eprintln!("watching {} (Ctrl-C to stop)", patterns.join(" "));
            while let Some(event) = changes.next().await {
                match event {
                    Event::Change(change) => {
                        // A server that does not name the op (HPKV) gets "change".
                        let op = change.op.as_deref().unwrap_or("change");
                        connection.print(
                            json!({"op": change.op, "key": change.key, "value": change.value, "revision": change.revision, "timestamp": change.timestamp}),
                            || match &change.value {
                                Some(value) => format!("{op} {} = {value} (revision {})", change.key, change.revision),
                                None => format!("{op} {} (revision {})", change.key, change.revision),
                            },
                        )
                    }
                    Event::Resync { revision } => connection.print(json!({"resync": revision}), || {
                        format!("(missed changes beyond the server's log; re-read what you watch; now at revision {revision})")
                    }),
                }
            }
            return Err(Error::Closed);
        }
        ClientCommand::Health { connection } => health(&connection).await?,
        ClientCommand::Token {
            subscribe,
            access,
            connection,
        } => {
            let body = json!({"subscribePatterns": subscribe, "accessPattern": access});
            let token = rest::mint_token(&connection.url, &connection.api_key()?, &body).await?;
            connection.print(json!({"token": token}), || token.clone());
        }
    }
    Ok(())
}

/// `GET /health`: succeeds only when the server answers 200 with `"status":"ok"`.
async fn health(connection: &Connection) -> Result<(), Error> {
    let (status, payload) =
        rest::call(&connection.url, "GET", "/health", None, &Value::Null).await?;
    if status != 200 || payload["status"] != "ok" {
        return Err(Error::Server {
            code: status,
            message: format!("unhealthy: {payload}"),
            revision: None,
        });
    }
    connection.print(payload.clone(), || {
        format!(
            "ok (version {}, revision {})",
            payload["version"].as_str().unwrap_or("?"),
            payload["revision"]
        )
    });
    Ok(())
}
