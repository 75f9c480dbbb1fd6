//! `ripplekv serve`: logging, storage, the listener, signals, and then the server.

use std::sync::Arc;

use anyhow::Context;
use ripplekv_core::Store;
use ripplekv_server::ServerConfig;
use ripplekv_storage::{PostgresOptions, PostgresStore, RedbStore};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::secrets;
use crate::settings::{LogFormat, ServeArgs, Settings};

/// Runs the server until SIGINT or SIGTERM.
pub(crate) fn main(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.resolve()?;
    // Where the API key is, the key itself when it was just generated, and the address
    // being served are printed whatever `RUST_LOG` says: a newcomer who quietened the
    // log must still learn how to connect.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("ripplekv::secrets=info".parse()?)
        .add_directive("ripplekv::serve=info".parse()?);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match settings.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Pretty => logs.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Bind and open the store before generating any secret, so a start that cannot
    // serve (port taken, store locked) leaves no key behind that nobody saw work.
    let listener = TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let metrics_listener = match &settings.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        None => None,
    };
    let (store, api_keys, token_secret) = match &settings.store {
        None => open_embedded(&settings)?,
        Some(url) => open_postgres(&settings, url).await?,
    };
    let address = listener.local_addr()?;
    tracing::info!("listening on http://{address} (WebSocket at ws://{address}/ws)");
    if let Some(metrics) = &metrics_listener {
        tracing::info!("metrics on http://{}/metrics only", metrics.local_addr()?);
    }
    let mut config = ServerConfig::new(api_keys, token_secret.into_bytes());
    config.limits = settings.limits;
    config.token_lifetime = settings.token_lifetime;
    config.outbox_messages = settings.outbox_messages;
    config.outbox_bytes = settings.outbox_bytes;
    config.max_connections = settings.max_connections;
    config.ping_interval = settings.ping_interval;
    config.pong_timeout = settings.pong_timeout;
    config.max_subscriptions = settings.max_subscriptions;
    config.handshake_timeout = settings.handshake_timeout;
    config.credential_rate_limit = settings.key_rate_limit;
    config.ip_rate_limit = settings.ip_rate_limit;
    config.previous_token_secret = settings
        .previous_token_secret
        .clone()
        .map(String::into_bytes);
    if let Some(previous) = &settings.previous_token_secret {
        config.previous_token_secret_until_ms = secrets::rotation_deadline(
            &settings.data_dir,
            previous,
            settings.token_rotation_grace,
        )?;
    }
    let listeners = ripplekv_server::Listeners {
        main: listener,
        metrics: metrics_listener,
    };
    ripplekv_server::run(config, store, listeners, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The store, API keys and token secret a server runs with.
type Opened = (Arc<dyn Store>, Vec<String>, String);

/// The embedded store in the data directory, with the secrets generated there.
fn open_embedded(settings: &Settings) -> anyhow::Result<Opened> {
    let store = RedbStore::open_with(
        &settings.data_dir,
        settings.durability,
        settings.limits,
        settings.retention,
    )
    .with_context(|| format!("cannot open the store in {}", settings.data_dir.display()))?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        durability = ?settings.durability,
        revision = store.revision(),
        "store opened"
    );
    let api_keys = match configured_keys(settings) {
        Some(keys) => keys,
        None => vec![secrets::api_key(&settings.data_dir)?],
    };
    let token_secret = match &settings.token_secret {
        Some(secret) => secret.clone(),
        None => secrets::token_secret(&settings.data_dir)?,
    };
    Ok((Arc::new(store), api_keys, token_secret))
}

/// The PostgreSQL store at `url`, with the secrets every node on it shares.
async fn open_postgres(settings: &Settings, url: &str) -> anyhow::Result<Opened> {
    let options = PostgresOptions {
        limits: settings.limits,
        retention: settings.retention,
        bus: settings.bus.clone(),
    };
    let store = PostgresStore::open(url, options)
        .await
        .with_context(|| format!("cannot open the PostgreSQL store at {}", redacted(url)))?;
    tracing::info!(
        store = %redacted(url),
        bus = settings.bus.as_deref().map_or("postgres LISTEN/NOTIFY".to_owned(), redacted),
        revision = store.revision(),
        "store opened"
    );
    let api_keys = match configured_keys(settings) {
        Some(keys) => keys,
        None => vec![secrets::shared_api_key(&store).await?],
    };
    let token_secret = match &settings.token_secret {
        Some(secret) => secret.clone(),
        None => secrets::shared_token_secret(&store).await?,
    };
    Ok((Arc::new(store), api_keys, token_secret))
}

/// The configured API keys, if any (logged as such).
fn configured_keys(settings: &Settings) -> Option<Vec<String>> {
    if settings.api_keys.is_empty() {
        return None;
    }
    tracing::info!(
        target: "ripplekv::secrets",
        count = settings.api_keys.len(),
        "using the API keys given in the configuration"
    );
    Some(settings.api_keys.clone())
}

/// A database URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (credentials, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
}
