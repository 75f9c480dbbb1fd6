//! The database schema, created or migrated when a node starts.
//!
//! Every node runs the migrations under one PostgreSQL advisory lock, so two nodes
//! starting at once on an empty database both come up: the second waits, then finds
//! the schema at the current version and does nothing. `meta.schema_version` says which
//! migrations ran; a database newer than this build is refused rather than misread.

use ripplekv_core::Error;
use tokio_postgres::Client;

use super::db::db_error;

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i32 = 1;

/// Advisory lock key held while migrating (the bytes of "ripplekv").
const MIGRATION_LOCK: i64 = 0x7269_7070_6c65_6b76;

/// Migration N (1-based) brings the schema from version N-1 to N.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [r#"
CREATE SCHEMA IF NOT EXISTS ripplekv;
-- The clock: the store-wide revision. Every write transaction locks this one row first
-- and holds it to COMMIT, so revisions are dense and become visible in order.
CREATE TABLE ripplekv.clock (
  id       boolean PRIMARY KEY DEFAULT true CHECK (id),
  revision bigint NOT NULL
);
INSERT INTO ripplekv.clock VALUES (true, 0);
CREATE TABLE ripplekv.meta (
  id             boolean PRIMARY KEY DEFAULT true CHECK (id),
  schema_version int NOT NULL,
  -- Every change up to here has been dropped from the change log.
  log_floor      bigint NOT NULL DEFAULT 0
);
INSERT INTO ripplekv.meta (schema_version) VALUES (0);
-- Keys in byte order (COLLATE "C"), as RANGE needs. Values are bytes, UTF-8 text that
-- may hold U+0000, which PostgreSQL's text type cannot.
CREATE TABLE ripplekv.kv (
  key           text COLLATE "C" PRIMARY KEY,
  value         bytea NOT NULL,
  revision      bigint NOT NULL,
  expires_at_ms bigint
);
CREATE INDEX kv_expiry ON ripplekv.kv (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
-- The change log: one row per revision, written in the transaction that made it.
-- `previous` is NULL for a create; `stored` is NULL when it equals `value`.
CREATE TABLE ripplekv.changes (
  revision      bigint PRIMARY KEY,
  key           text COLLATE "C" NOT NULL,
  op            smallint NOT NULL,
  value         bytea,
  previous      bigint,
  stored        bytea,
  expires_at_ms bigint,
  at_ms         bigint NOT NULL
);
-- Secrets every node on this database shares when none is configured (the generated
-- API key and token secret), created once by whichever node starts first.
CREATE TABLE ripplekv.secrets (
  name  text PRIMARY KEY,
  value text NOT NULL
);
-- The database's clock, in milliseconds: TTLs follow one clock whatever node runs them.
CREATE FUNCTION ripplekv.now_ms() RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
"#];

/// Creates the schema, or brings it to [`SCHEMA_VERSION`].
pub(super) async fn migrate(client: &Client) -> Result<(), Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    let migrated = apply_migrations(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error);
    migrated.and(unlocked.map(drop))
}

async fn apply_migrations(client: &Client) -> Result<(), Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('ripplekv.meta') IS NOT NULL", &[])
        .await
        .map_err(db_error)?
        .get(0);
    let version: i32 = if exists {
        client
            .query_one("SELECT schema_version FROM ripplekv.meta", &[])
            .await
            .map_err(db_error)?
            .get(0)
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "the database holds RippleKV schema version {version}, newer than this build's \
             {SCHEMA_VERSION}: run a newer ripplekv"
        )));
    }
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let next = done as i32 + 1;
        let script = format!(
            "BEGIN;\n{migration}\nUPDATE ripplekv.meta SET schema_version = {next};\nCOMMIT;"
        );
        client.batch_execute(&script).await.map_err(db_error)?;
        tracing::info!(version = next, "database schema migrated");
    }
    Ok(())
}
