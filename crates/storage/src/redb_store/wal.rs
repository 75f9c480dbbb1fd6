//! The write-ahead log that makes sync-mode commits durable with one small fsync.
//!
//! A durable redb commit writes every B-tree page the batch touched (the records, the
//! expiry index, the change log, the revision) and fsyncs them: about 0.6 ms per batch
//! on the disk this was measured on, where a bare `fdatasync` of a few KiB appended to
//! one file takes about 0.15 ms. So in sync mode the writer commits each batch to redb
//! without an fsync, and first appends the batch's changes to this log and
//! `fdatasync`s it: a batch is answered (and published, and visible to readers) only
//! once its log record is on disk. Every [`CHECKPOINT_INTERVAL`] or
//! [`CHECKPOINT_BYTES`] of log, a durable redb commit makes everything before it safe
//! and the log starts again from the front of its (preallocated) file.
//!
//! After a crash, redb comes back at its last durable commit, revision R; the log's
//! changes above R, which are consecutive, are applied again ([`replay`]), and a durable
//! commit then makes them part of the database.
//!
//! On disk, a record is: payload length (u32 LE), CRC-32 of the payload (u32 LE), then
//! the payload: for each change, its revision (u64 LE), the length of its encoding
//! (u32 LE) and the change as the change log encodes it. A torn or corrupt record ends
//! the log: it was never fsynced, so nobody was answered for it. So do zeros, and a
//! revision that does not follow on from the one before (a record left from before
//! the last checkpoint, whose revisions the database already holds).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ripplekv_core::{Change, Error, Revision};

use super::codec::decode_change;

/// The log file inside the data directory.
pub const WAL_FILE: &str = "ripplekv.wal";
/// Longest time between durable redb commits (each makes the log before it obsolete).
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Log size past which the next batch triggers a durable redb commit.
pub(super) const CHECKPOINT_BYTES: u64 = PREALLOCATED;
/// Bytes the log file is kept at, at least (see [`Wal::start`]); a log that outgrows
/// it before its checkpoint just grows.
pub(super) const PREALLOCATED: u64 = 4 << 20;
/// Bytes before a record's payload: its length and its CRC.
const HEADER: usize = 8;

/// The open log, appended to by the writer thread only.
#[derive(Debug)]
pub(super) struct Wal {
    file: File,
    path: PathBuf,
    /// Where the next record goes: the end of the records of this generation.
    len: u64,
    /// Where the last record appended starts (to take it back if its commit fails).
    last_start: u64,
    /// When the oldest record not yet checkpointed was appended.
    oldest: Option<Instant>,
    /// The record being built, reused between batches.
    buffer: Vec<u8>,
}

impl Wal {
    /// Opens the log in `dir` for a new run, writing from its start. Call only once
    /// what it held was applied ([`replay`]) and made durable: it is overwritten.
    ///
    /// The file is kept at least [`PREALLOCATED`] bytes long, written once with zeros,
    /// so appending a record and `fdatasync`ing it writes only that data; growing a
    /// file makes every `fdatasync` write its inode too.
    pub(super) fn start(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(WAL_FILE);
        let failed = |e: std::io::Error| Error::internal(format!("{}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        let size = file.metadata().map_err(failed)?.len();
        if size < PREALLOCATED {
            file.seek(SeekFrom::Start(size)).map_err(failed)?;
            let zeros = vec![0; (PREALLOCATED - size) as usize];
            file.write_all(&zeros).map_err(failed)?;
            file.sync_all().map_err(failed)?;
        }
        Ok(Wal {
            file,
            path,
            len: 0,
            last_start: 0,
            oldest: None,
            buffer: Vec::new(),
        })
    }

    /// Appends one record holding `changes` (each with its change-log encoding) and
    /// fsyncs it. Nothing is written for an empty batch.
    pub(super) fn append<'a>(
        &mut self,
        changes: impl Iterator<Item = (Revision, &'a [u8])>,
    ) -> Result<(), Error> {
        self.buffer.clear();
        self.buffer.extend_from_slice(&[0; HEADER]);
        for (revision, encoded) in changes {
            self.buffer.extend_from_slice(&revision.to_le_bytes());
            let len = u32::try_from(encoded.len()).map_err(Error::internal)?;
            self.buffer.extend_from_slice(&len.to_le_bytes());
            self.buffer.extend_from_slice(encoded);
        }
        if self.buffer.len() == HEADER {
            return Ok(());
        }
        let payload_len = u32::try_from(self.buffer.len() - HEADER).map_err(Error::internal)?;
        let crc = crc32fast::hash(&self.buffer[HEADER..]);
        self.buffer[..4].copy_from_slice(&payload_len.to_le_bytes());
        self.buffer[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        // The bytes after the record are zeros or an older record: either ends a replay
        // that reaches them, so the record needs no end marker.
        let written = self
            .file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&self.buffer))
            .and_then(|()| self.file.sync_data());
        if let Err(err) = written {
            // Whatever reached the file is unmarked again, so a later record never
            // follows a broken one (replay would stop there and miss it).
            let _ = self.erase_from(self.len);
            return Err(Error::internal(format!(
                "cannot write {}: {err}",
                self.path.display()
            )));
        }
        self.last_start = self.len;
        self.len += self.buffer.len() as u64;
        self.oldest.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Takes back the record appended last, whose batch then failed to commit, so a
    /// restart does not apply what its writers were told failed.
    pub(super) fn undo_last(&mut self) -> Result<(), Error> {
        self.erase_from(self.last_start)?;
        self.len = self.last_start;
        Ok(())
    }

    /// Zeroes the record header at `offset` (and fsyncs), ending the log there.
    fn erase_from(&mut self, offset: u64) -> Result<(), Error> {
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(&[0; HEADER]))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::internal(format!("cannot cut {}: {e}", self.path.display())))
    }

    /// True when the log holds nothing a checkpoint would need to keep.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When the log is due to be emptied by a durable commit, if it holds anything.
    pub(super) fn checkpoint_due(&self) -> Option<Instant> {
        if self.len >= CHECKPOINT_BYTES {
            return Some(Instant::now());
        }
        self.oldest.map(|oldest| oldest + CHECKPOINT_INTERVAL)
    }

    /// True when the log has grown or aged enough that a durable commit should empty it.
    pub(super) fn wants_checkpoint(&self) -> bool {
        self.checkpoint_due()
            .is_some_and(|due| due <= Instant::now())
    }

    /// Starts the log again from the front: call only after a durable commit holding
    /// everything in it. Nothing is erased: if the database is at revision R, every
    /// record left behind holds revisions up to R, which a replay skips.
    pub(super) fn reset(&mut self) {
        self.oldest = None;
        self.len = 0;
        self.last_start = 0;
    }
}

/// The changes the log holds above `durable`, oldest first: consecutive revisions from
/// `durable + 1`. Stops at the end, at a torn or corrupt record, or at a revision that
/// does not follow on (records of an earlier log whose emptying was lost, all at or
/// below `durable`).
pub(super) fn replay(dir: &Path, durable: Revision) -> Result<Vec<Change>, Error> {
    let path = dir.join(WAL_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut file) => file
            .read_to_end(&mut bytes)
            .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(Error::internal(format!(
                "cannot open {}: {err}",
                path.display()
            )))
        }
    };
    let mut changes = Vec::new();
    let mut next = durable + 1;
    let mut rest = bytes.as_slice();
    'records: while let Some((payload, after)) = record(rest) {
        rest = after;
        let mut entries = payload;
        while !entries.is_empty() {
            let Some((revision, encoded, after)) = entry(entries) else {
                break 'records; // cannot happen for a record whose CRC matched
            };
            entries = after;
            if revision < next {
                continue; // already in the database
            }
            if revision > next {
                break 'records;
            }
            changes.push(decode_change(revision, encoded)?);
            next += 1;
        }
    }
    Ok(changes)
}

/// Splits off one whole record whose CRC matches: its payload and what follows.
fn record(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..HEADER)?.try_into().ok()?);
    let payload = bytes.get(HEADER..HEADER + len)?;
    (len > 0 && crc32fast::hash(payload) == crc).then(|| (payload, &bytes[HEADER + len..]))
}

/// Splits off one change of a payload: its revision, its encoding and what follows.
fn entry(bytes: &[u8]) -> Option<(Revision, &[u8], &[u8])> {
    let revision = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let len = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    let encoded = bytes.get(12..12 + len)?;
    Some((revision, encoded, &bytes[12 + len..]))
}

#[cfg(test)]
mod tests {
    use ripplekv_core::{ChangeOp, Previous};

    use super::super::codec::encode_change;
    use super::*;

    fn change(revision: Revision) -> Change {
        Change {
            revision,
            key: format!("k{revision}"),
            op: ChangeOp::Set,
            value: Some("v".into()),
            timestamp_ms: 1,
            previous: Previous::Absent,
            stored: Some("v".into()),
            expires_at_ms: None,
            removed: None,
        }
    }

    fn append(wal: &mut Wal, revisions: std::ops::RangeInclusive<Revision>) {
        let encoded: Vec<_> = revisions.map(|r| (r, encode_change(&change(r)))).collect();
        wal.append(encoded.iter().map(|(r, e)| (*r, e.as_slice())))
            .unwrap();
    }

    fn revisions(changes: &[Change]) -> Vec<Revision> {
        changes.iter().map(|c| c.revision).collect()
    }

    #[test]
    fn replays_what_is_above_the_durable_revision() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::start(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(),
            PREALLOCATED
        );
        assert!(
            replay(dir.path(), 0).unwrap().is_empty(),
            "zeros end the log"
        );
        append(&mut wal, 1..=3);
        append(&mut wal, 4..=5);
        assert_eq!(revisions(&replay(dir.path(), 0).unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(revisions(&replay(dir.path(), 2).unwrap()), [3, 4, 5]);
        assert!(replay(dir.path(), 5).unwrap().is_empty());
        let replayed = replay(dir.path(), 3).unwrap();
        assert_eq!(replayed[0], change(4));
    }

    #[test]
    fn a_torn_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::start(dir.path()).unwrap();
        append(&mut wal, 1..=2);
        let second = wal.len;
        append(&mut wal, 3..=4);
        let path = dir.path().join(WAL_FILE);
        // The second record loses its last byte, as if the crash came mid-write.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[wal.len as usize - 1] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(revisions(&replay(dir.path(), 0).unwrap()), [1, 2]);
        // So does a header cut short.
        bytes.truncate(second as usize + 3);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(revisions(&replay(dir.path(), 0).unwrap()), [1, 2]);
        // A flipped byte in the first record ends the log at once.
        bytes[HEADER + 3] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        assert!(replay(dir.path(), 0).unwrap().is_empty());
    }

    #[test]
    fn records_left_from_before_a_checkpoint_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::start(dir.path()).unwrap();
        append(&mut wal, 1..=4);
        append(&mut wal, 5..=9);
        // A checkpoint at 9; the new generation overwrites the front of the file.
        wal.reset();
        append(&mut wal, 10..=11);
        assert_eq!(revisions(&replay(dir.path(), 9).unwrap()), [10, 11]);
        // A gap ends the log: revisions must follow on from the durable one.
        assert!(replay(dir.path(), 12).unwrap().is_empty());
        assert!(replay(dir.path(), 7).unwrap().is_empty());
        // A new run starts writing from the front again.
        let mut restarted = Wal::start(dir.path()).unwrap();
        append(&mut restarted, 12..=12);
        assert_eq!(revisions(&replay(dir.path(), 11).unwrap()), [12]);
    }

    #[test]
    fn a_failed_commit_takes_its_record_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::start(dir.path()).unwrap();
        append(&mut wal, 1..=2);
        append(&mut wal, 3..=3);
        wal.undo_last().unwrap();
        assert_eq!(revisions(&replay(dir.path(), 0).unwrap()), [1, 2]);
        append(&mut wal, 3..=3);
        assert_eq!(revisions(&replay(dir.path(), 0).unwrap()), [1, 2, 3]);
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::start(dir.path()).unwrap();
        wal.append(std::iter::empty()).unwrap();
        assert_eq!(wal.len, 0);
        assert!(!wal.wants_checkpoint());
    }
}
