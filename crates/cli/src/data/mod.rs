//! Data commands: `backup` and `restore` (a consistent snapshot with revisions and
//! TTLs), `export` and `import` (plain JSON lines of keys and values).
//!
//! - `ripplekv backup FILE` streams `GET /admin/snapshot` from a running server into
//!   FILE. It writes to `FILE.partial`, checks the trailer, fsyncs, then renames, so
//!   FILE only ever holds a complete snapshot.
//! - `ripplekv restore FILE --data-dir DIR` builds a new store in an empty DIR from a
//!   backup, offline, keeping every record's revision and expiry and the store's
//!   revision. Start the server on DIR afterwards.
//! - `ripplekv export FILE` writes `{"key":..,"value":..}` lines (plus `expiresAtMs`
//!   for keys with a TTL) from the same consistent snapshot; `-` is stdout.
//! - `ripplekv import FILE` SETs every line of an export (or a backup) through the
//!   normal API, many requests in flight; keys whose TTL already ran out are skipped.
//!
//! All four show a progress bar on a terminal.

mod fetch;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use futures_util::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use ripplekv_client::WriteOptions;
use ripplekv_core::{now_ms, Record};
use ripplekv_proto::snapshot::{Entry, Header, Line, Trailer};

use crate::commands::Connection;
use fetch::{fetch_snapshot, Accepted, Checker, SnapshotSink};

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Save a consistent snapshot of a running server (revisions and TTLs included).
    Backup {
        /// Where to write the snapshot (JSON lines).
        file: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Build a new store from a backup, offline, in an empty data directory.
    Restore {
        /// A file written by `ripplekv backup`.
        file: PathBuf,
        /// The data directory to create the store in (must hold no database).
        #[arg(long, env = "RIPPLEKV_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Write every key and value as JSON lines (`-` for stdout).
    Export {
        file: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// SET every key of an export (or a backup) on a running server.
    Import {
        file: PathBuf,
        /// Writes in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[command(flatten)]
        connection: Connection,
    },
}

pub(crate) fn main(command: DataCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(command))
}

async fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Backup { file, connection } => backup(&file, &connection).await,
        DataCommand::Restore { file, data_dir } => restore(&file, &data_dir),
        DataCommand::Export { file, connection } => export(&file, &connection).await,
        DataCommand::Import {
            file,
            concurrency,
            connection,
        } => import(&file, concurrency.max(1), &connection).await,
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress(label: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} records ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label);
    bar
}

/// Writes snapshot lines to a file as they arrive.
struct FileSink {
    out: BufWriter<Box<dyn Write>>,
    bar: ProgressBar,
    /// Export drops revisions and the header: plain key/value lines.
    plain: bool,
}

impl SnapshotSink for FileSink {
    fn header(&mut self, header: &Header) -> anyhow::Result<()> {
        self.bar.set_length(header.keys);
        if !self.plain {
            writeln!(self.out, "{}", Line::Header(header.clone()).to_json())?;
        }
        Ok(())
    }

    fn entry(&mut self, mut entry: Entry) -> anyhow::Result<()> {
        if self.plain {
            entry.revision = None;
        }
        writeln!(self.out, "{}", Line::Entry(entry).to_json())?;
        self.bar.inc(1);
        Ok(())
    }
}

/// `FILE.partial`: where a file is written before it is complete.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Streams the snapshot into `FILE.partial`, then fsyncs and renames it to `file`,
/// so `file` only ever holds a complete snapshot. Nothing is left behind on failure.
async fn fetch_into_file(
    file: &Path,
    connection: &Connection,
    label: &'static str,
    plain: bool,
) -> anyhow::Result<(Header, u64)> {
    let partial = partial_path(file);
    let written = async {
        let out = File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut sink = FileSink {
            out: BufWriter::new(Box::new(out.try_clone()?)),
            bar: progress(label),
            plain,
        };
        let (header, records) =
            fetch_snapshot(connection.url(), &connection.api_key()?, &mut sink).await?;
        if !plain {
            let trailer = Line::Trailer(Trailer { end: true, records });
            writeln!(sink.out, "{}", trailer.to_json())?;
        }
        sink.out.flush()?;
        drop(sink.out);
        out.sync_all()
            .with_context(|| format!("cannot sync {}", partial.display()))?;
        std::fs::rename(&partial, file).with_context(|| {
            format!("cannot rename {} to {}", partial.display(), file.display())
        })?;
        sink.bar.finish_and_clear();
        anyhow::Ok((header, records))
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

async fn backup(file: &Path, connection: &Connection) -> anyhow::Result<()> {
    let (header, records) = fetch_into_file(file, connection, "backup", false).await?;
    println!(
        "backed up {records} records at revision {} to {}",
        header.revision,
        file.display()
    );
    Ok(())
}

async fn export(file: &Path, connection: &Connection) -> anyhow::Result<()> {
    if file.as_os_str() == "-" {
        let mut sink = FileSink {
            out: BufWriter::new(Box::new(std::io::stdout())),
            bar: progress("export"),
            plain: true,
        };
        fetch_snapshot(connection.url(), &connection.api_key()?, &mut sink).await?;
        sink.out.flush()?;
        sink.bar.finish_and_clear();
        return Ok(());
    }
    let (header, records) = fetch_into_file(file, connection, "export", true).await?;
    println!(
        "exported {records} records at revision {} to {}",
        header.revision,
        file.display()
    );
    Ok(())
}

fn open_lines(file: &Path) -> anyhow::Result<std::io::Lines<BufReader<File>>> {
    let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok(BufReader::new(opened).lines())
}

fn restore(file: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let mut lines = open_lines(file)?.enumerate();
    let mut checker = Checker::default();
    let header = match lines.next() {
        Some((_, line)) => match checker.accept(&line?)? {
            Accepted::Header(header) => header,
            _ => bail!("{} does not start with a snapshot header", file.display()),
        },
        None => bail!("{} is empty", file.display()),
    };
    let bar = progress("restore");
    bar.set_length(header.keys);
    // Records are pulled as the store writes them; any bad line, or a missing
    // trailer, fails the restore and nothing is left behind.
    let mut finished = false;
    let records = std::iter::from_fn(|| loop {
        if finished {
            return None;
        }
        let Some((number, line)) = lines.next() else {
            finished = true;
            return std::mem::take(&mut checker)
                .finish()
                .err()
                .map(|err| Err(invalid(err)));
        };
        let accepted = line
            .map_err(anyhow::Error::from)
            .and_then(|line| checker.accept(&line))
            .with_context(|| format!("line {}", number + 1));
        match accepted {
            Ok(Accepted::Entry(entry)) => {
                bar.inc(1);
                let record = Record {
                    value: entry.value,
                    revision: entry.revision.unwrap_or(0),
                    expires_at_ms: entry.expires_at_ms,
                };
                return Some(Ok((entry.key, record)));
            }
            Ok(_) => continue,
            Err(err) => {
                finished = true;
                return Some(Err(invalid(err)));
            }
        }
    });
    let count = ripplekv_storage::restore(data_dir, header.revision, records)
        .map_err(|err| anyhow::anyhow!("restore failed: {err}"))?;
    bar.finish_and_clear();
    println!(
        "restored {count} records from revision {} into {}; new writes start after revision {}",
        header.revision,
        data_dir.display(),
        header
            .revision
            .saturating_add(ripplekv_storage::RESTORE_REVISION_GAP)
    );
    Ok(())
}

fn invalid(err: anyhow::Error) -> ripplekv_core::Error {
    ripplekv_core::Error::invalid(format!("{err:#}"))
}

/// One line of an import file: an entry, or a backup's header/trailer to skip.
fn import_line(number: usize, line: std::io::Result<String>) -> anyhow::Result<Option<Entry>> {
    let line = line?;
    if line.trim().is_empty() {
        return Ok(None);
    }
    match Line::parse(&line).map_err(anyhow::Error::msg) {
        Ok(Line::Entry(entry)) => Ok(Some(entry)),
        Ok(Line::Header(header)) => header.check().map(|()| None).map_err(anyhow::Error::msg),
        Ok(Line::Trailer(_)) => Ok(None),
        Err(err) => Err(err),
    }
    .with_context(|| format!("line {}", number + 1))
}

async fn import(file: &Path, concurrency: usize, connection: &Connection) -> anyhow::Result<()> {
    let total = open_lines(file)?.count() as u64;
    let bar = progress("import");
    bar.set_length(total);
    let client = connection.client().await?;
    let skipped = std::cell::Cell::new(0u64);
    let writes = futures_util::stream::iter(open_lines(file)?.enumerate())
        .map(|(number, line)| import_line(number, line))
        .try_filter_map(|entry| {
            let kept = entry.filter(|entry| match entry.expires_at_ms {
                Some(at) if at <= now_ms() => {
                    skipped.set(skipped.get() + 1);
                    false
                }
                _ => true,
            });
            bar.inc(1);
            async move { Ok(kept) }
        })
        .map_ok(|entry| {
            let client = &client;
            async move {
                // The time left is measured as each key is written, not when the
                // import began, so a long import does not stretch TTLs.
                let ttl = entry
                    .expires_at_ms
                    .map(|at| Duration::from_millis(at.saturating_sub(now_ms()).max(1)));
                let options = WriteOptions {
                    if_revision: None,
                    ttl,
                };
                client
                    .set_with(&entry.key, &entry.value, options)
                    .await
                    .with_context(|| format!("SET {:?} failed", entry.key))
            }
        })
        .try_buffer_unordered(concurrency);
    let imported = writes
        .try_fold(0u64, |count, _| async move { Ok(count + 1) })
        .await?;
    bar.finish_and_clear();
    println!(
        "imported {imported} records from {} ({} already expired, skipped)",
        file.display(),
        skipped.get()
    );
    Ok(())
}
