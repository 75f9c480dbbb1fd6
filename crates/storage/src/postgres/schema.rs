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
pub(super) const SCHEMA_VERSION: i32 = 3;

/// Advisory lock key held while migrating (the bytes of "ripplekv").
const MIGRATION_LOCK: i64 = 0x7269_7070_6c65_6b76;

/// Migration N (1-based) brings the schema from version N-1 to N.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
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
"#,
    // Version 2 created `commit_batch`; version 3 replaces it (dropping a version 2
    // one), so a database at version 1 has nothing to do here.
    "SELECT 1;",
    MIGRATION_3,
];

/// Migration 3: changes keep the value a delete or expiry removed (`removed`), and
/// `commit_batch` writes and returns it.
const MIGRATION_3: &str = r#"
ALTER TABLE ripplekv.changes ADD COLUMN IF NOT EXISTS removed bytea;
DROP FUNCTION IF EXISTS ripplekv.commit_batch(bigint, bigint, bigint, bigint, text[],
  bigint[], text[], bytea[], bigint[], bigint[], text[], bigint[], text[], smallint[],
  bytea[], bigint[], bytea[], bigint[], bigint[]);
-- A batch planned from a snapshot (`base` = the clock in it, every planned revision
-- above it), committed in one call so the clock row is held only while it runs:
-- locks the clock; fails with SQLSTATE RK001, changing nothing, if any of the batch's
-- rows changed since the snapshot (`seen_keys` / `seen_revisions`, NULL for absent);
-- moves every planned revision above `base` to just above the head it finds; writes
-- the rows, the changes and the clock; notifies; trims the log to its retention
-- (`max_entries`, and `max_age_ms` unless NULL). Returns the changes others committed
-- in (`known`, head], oldest first, then one last row with no key: the head the batch
-- followed, the log's floor (in `previous`), and the microseconds spent waiting for
-- the lock and holding it (in `expires_at_ms` and `at_ms`).
CREATE FUNCTION ripplekv.commit_batch(
  base bigint, known bigint, max_entries bigint, max_age_ms bigint,
  seen_keys text[], seen_revisions bigint[],
  row_keys text[], row_values bytea[], row_revisions bigint[], row_expiries bigint[],
  deleted_keys text[],
  change_revisions bigint[], change_keys text[], change_ops smallint[],
  change_values bytea[], change_previous bigint[], change_stored bytea[],
  change_expiries bigint[], change_times bigint[], change_removed bytea[])
RETURNS TABLE (revision bigint, key text, op smallint, value bytea, previous bigint,
               stored bytea, expires_at_ms bigint, at_ms bigint, removed bytea)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  called timestamptz := clock_timestamp();
  locked timestamptz;
  head bigint;
  shift bigint;
  last bigint;
  floor_was bigint;
  floor_now bigint;
  young bigint;
BEGIN
  SELECT c.revision INTO head FROM ripplekv.clock c FOR UPDATE;
  locked := clock_timestamp();
  -- One index lookup per key (a join could be planned as a scan of the whole table).
  IF EXISTS (SELECT 1 FROM unnest(seen_keys, seen_revisions) AS s(k, r)
             WHERE (SELECT kv.revision FROM ripplekv.kv WHERE kv.key = s.k)
                   IS DISTINCT FROM s.r) THEN
    RAISE EXCEPTION 'rows changed since the batch was planned' USING ERRCODE = 'RK001';
  END IF;
  shift := head - base;
  last := head + cardinality(change_revisions);
  RETURN QUERY SELECT c.revision, c.key, c.op, c.value, c.previous, c.stored,
                      c.expires_at_ms, c.at_ms, c.removed
    FROM ripplekv.changes c WHERE c.revision > known AND c.revision <= head
    ORDER BY c.revision;
  DELETE FROM ripplekv.kv WHERE kv.key = ANY(deleted_keys);
  INSERT INTO ripplekv.kv (key, value, revision, expires_at_ms)
    SELECT u.k, u.v, u.r + shift, u.e
    FROM unnest(row_keys, row_values, row_revisions, row_expiries) AS u(k, v, r, e)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
      revision = EXCLUDED.revision, expires_at_ms = EXCLUDED.expires_at_ms;
  INSERT INTO ripplekv.changes
      (revision, key, op, value, previous, stored, expires_at_ms, at_ms, removed)
    SELECT u.r + shift, u.k, u.o, u.v,
           CASE WHEN u.p > base THEN u.p + shift ELSE u.p END, u.s, u.e, u.t, u.d
    FROM unnest(change_revisions, change_keys, change_ops, change_values,
                change_previous, change_stored, change_expiries, change_times,
                change_removed)
         AS u(r, k, o, v, p, s, e, t, d);
  UPDATE ripplekv.clock SET revision = last;
  PERFORM pg_notify('ripplekv_changes', (head + 1) || '-' || last);
  SELECT m.log_floor INTO floor_was FROM ripplekv.meta m;
  floor_now := GREATEST(floor_was, last - max_entries);
  IF max_age_ms IS NOT NULL THEN
    -- Every entry before the first young one is old; with none young, every entry
    -- before this batch's.
    SELECT c.revision INTO young FROM ripplekv.changes c
      WHERE c.revision > floor_was AND c.revision <= head
        AND c.at_ms >= ripplekv.now_ms() - max_age_ms
      ORDER BY c.revision LIMIT 1;
    floor_now := GREATEST(floor_now, COALESCE(young - 1, head));
  END IF;
  IF floor_now > floor_was THEN
    DELETE FROM ripplekv.changes c WHERE c.revision > floor_was AND c.revision <= floor_now;
    UPDATE ripplekv.meta SET log_floor = floor_now;
  END IF;
  RETURN QUERY SELECT head, NULL::text, NULL::smallint, NULL::bytea, floor_now,
    NULL::bytea,
    (extract(epoch FROM locked - called) * 1000000)::bigint,
    (extract(epoch FROM clock_timestamp() - locked) * 1000000)::bigint, NULL::bytea;
END
$fn$;
"#;

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
