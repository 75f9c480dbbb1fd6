//! Filling a new store from a snapshot (`ripplekv restore`), in one transaction.

use std::path::Path;

use redb::Database;
use ripplekv_core::{Error, Record, Revision};

use super::writer::Tables;
use super::{init_tables, DB_FILE, EXPIRY, KV, LOG_FLOOR, META, REVISION};

/// How far a restored store's revision jumps past its snapshot's. The server the
/// backup came from may have gone on past the snapshot; clients that saw those later
/// revisions must not mistake the restored store's new writes for the ones they saw.
/// With the jump, every revision a client could hold from before the restore is below
/// the change log's floor, so resuming from it asks for a resync.
pub const RESTORE_REVISION_GAP: Revision = 1 << 32;

/// Writes the records of a snapshot taken at `revision` into a new store in `dir`,
/// keeping each record's revision and expiry. The store's revision, and the floor of
/// its (empty) change log, are `revision + RESTORE_REVISION_GAP`. Refuses a directory
/// that already holds a database.
/// Returns the number of records written. Everything is one transaction: a restore
/// that fails leaves no half-filled store behind (the file is removed).
pub fn restore(
    dir: &Path,
    revision: Revision,
    records: impl Iterator<Item = Result<(String, Record), Error>>,
) -> Result<u64, Error> {
    let path = dir.join(DB_FILE);
    if path.exists() {
        return Err(Error::invalid(format!(
            "{} already exists; restore into an empty data directory",
            path.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    let written = write_restored(&path, revision, records);
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    written
}

fn write_restored(
    path: &Path,
    revision: Revision,
    records: impl Iterator<Item = Result<(String, Record), Error>>,
) -> Result<u64, Error> {
    let db = Database::create(path)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", path.display())))?;
    init_tables(&db)?;
    let txn = db.begin_write().map_err(Error::internal)?;
    let mut count = 0;
    {
        let mut tables = Tables {
            kv: txn.open_table(KV).map_err(Error::internal)?,
            expiry: txn.open_table(EXPIRY).map_err(Error::internal)?,
            committed: Vec::new(),
        };
        for record in records {
            let (key, record) = record?;
            if record.revision > revision {
                return Err(Error::invalid(format!(
                    "record {key:?} has revision {} above the snapshot's {revision}",
                    record.revision
                )));
            }
            let old = tables.get(&key)?;
            tables.put(&key, old.as_ref(), Some(&record))?;
            count += 1;
        }
        let restarted_at = revision.saturating_add(RESTORE_REVISION_GAP);
        let mut meta = txn.open_table(META).map_err(Error::internal)?;
        meta.insert(REVISION, restarted_at)
            .map_err(Error::internal)?;
        meta.insert(LOG_FLOOR, restarted_at)
            .map_err(Error::internal)?;
    }
    txn.commit().map_err(Error::internal)?;
    Ok(count)
}
