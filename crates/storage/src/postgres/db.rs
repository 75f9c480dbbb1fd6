//! Connections to the database and what their failures mean to clients.

use ripplekv_core::Error;
use tokio_postgres::{Client, Config, NoTls};

/// A database failure as clients see it: a lost or refused connection is 503 (the
/// request may be retried), anything else an internal error (logged, never shown).
pub(super) fn db_error(err: tokio_postgres::Error) -> Error {
    let connection_lost = err.is_closed()
        || err.code().is_none_or(|code| {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P")
        });
    if connection_lost {
        tracing::warn!(error = %err, "database unavailable");
        Error::Unavailable
    } else {
        Error::internal(err)
    }
}

/// The id naming this cluster's Redis channel, made once by the first node to ask.
pub(super) async fn cluster_id(client: &Client) -> Result<String, Error> {
    client
        .execute(
            "INSERT INTO ripplekv.secrets (name, value) \
             VALUES ('cluster_id', md5(random()::text || clock_timestamp()::text)) \
             ON CONFLICT (name) DO NOTHING",
            &[],
        )
        .await
        .map_err(db_error)?;
    let row = client
        .query_one(
            "SELECT value FROM ripplekv.secrets WHERE name = 'cluster_id'",
            &[],
        )
        .await
        .map_err(db_error)?;
    Ok(row.get(0))
}

/// A connection of its own (not pooled), driven by a task of its own.
pub(super) async fn connect(config: &Config) -> Result<Client, Error> {
    let (client, connection) = config.connect(NoTls).await.map_err(db_error)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "database connection ended");
        }
    });
    Ok(client)
}
