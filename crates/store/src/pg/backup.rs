//! `letterbox backup DEST` on PostgreSQL (issue 17): an online, consistent backup taken
//! from any node while deliveries go on, in the embedded store's backup format
//! (`DEST/store.db`, `DEST/blobs`, `DEST/parts`: `backup.rs`), so that one format
//! restores anywhere: into an empty data directory (`letterbox restore` with the
//! embedded configuration) or into an empty PostgreSQL database (the same command
//! with `[store] backend = "postgres"`: a [`crate::transfer`] of the backup).
//!
//! # One snapshot
//! A holder connection opens `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` and
//! exports its snapshot (`pg_export_snapshot()`, PostgreSQL manual 9.28.5 "Snapshot
//! Synchronization Functions"), and keeps the transaction open for the backup's
//! length. The backup reads through a view of the backend ([`PgBackend::snapshot`])
//! whose every call runs in a `REPEATABLE READ READ ONLY` transaction that first
//! imports that snapshot (`SET TRANSACTION SNAPSHOT`): every read sees the database as
//! it was at one instant. So everything committed (acknowledged: a 250, an APPEND OK)
//! before the backup began is in it, nothing committed later is, and no message is
//! half in. Writers are neither blocked nor waited for. A call whose code ended the
//! snapshot's transaction itself would read outside it: that is checked after every
//! call and is an error, never a silently mixed backup.
//!
//! # The copy
//! [`crate::transfer::transfer`] copies the view into a fresh embedded store built in
//! `DEST` under a temporary name, through the [`Backend`] trait alone: message octets
//! are read as the source serves them (inline rows, blob files, S3 objects, shared
//! parts), so the backup is right whatever the source stores. The embedded store writes
//! each blob file only if `DEST` does not hold it yet (files are named by the BLAKE3 of
//! their content): a second backup into the same `DEST` writes only new mail's files
//! (it still reads every message once from the source). The database is then written
//! whole with `VACUUM INTO` as `store.db.tmp`, fsynced and renamed over `store.db`, so
//! `DEST` always holds a complete backup (the previous one until the new one is whole).
//!
//! An object the snapshot references may be collected meanwhile (its message expunged,
//! then garbage-collected): the backup then starts again with a new snapshot, a bounded
//! number of times, as the embedded backup does.
//!
//! # What a backup leaves out
//! What [`crate::transfer`] does not move (its module doc): histories (logins, usage
//! samples, delivery counts, the space log, quota requests), portal sessions, login
//! blocks, Sieve vacation memory, POP3 first-retrieval times and queued messages'
//! attempt counts. The quota warnings already sent do go with it, so a restored account
//! is not warned again.

use super::{blocking, connect, pg_err, PgBackend};
use crate::sqlite::backup::{file_blobs, io, part_files, sync_dir, MAX_ATTEMPTS};
use crate::sqlite::SqliteBackend;
use crate::*;
use r2d2_postgres::postgres;
use std::path::Path;
use std::sync::Arc;

/// The temporary name the embedded store is built under in `DEST` (with the attempt's
/// number: the store of a failed attempt is closed by its writer thread a little
/// later, and SQLite removes its WAL by name then).
const BUILDING: &str = "store.db.building";

/// The source name the backup's own records carry (`transfer.rs`'s marker).
const SOURCE: &str = "postgres backup";

/// Whether the connection is still inside the snapshot's read-only repeatable-read
/// transaction (a call that committed it would have read later data).
fn still_in_snapshot(c: &mut postgres::Client) -> Result<()> {
    let ok: bool = c
        .query_one(
            "SELECT current_setting('transaction_isolation') = 'repeatable read'
                AND current_setting('transaction_read_only') = 'on'",
            &[],
        )?
        .get(0);
    if ok {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::other(
            "backup: a read left the snapshot's transaction",
        )))
    }
}

/// The statement that makes a new transaction read at snapshot `id`.
fn set_snapshot(id: &str) -> Result<String> {
    // pg_export_snapshot() ids are hex digits and dashes; anything else is refused
    // rather than quoted.
    if id.is_empty() || !id.chars().all(|ch| ch.is_ascii_hexdigit() || ch == '-') {
        return Err(Error::Invalid(format!("not a snapshot id: {id:?}")));
    }
    Ok(format!("SET TRANSACTION SNAPSHOT '{id}'"))
}

/// Runs `f` on `c` inside a read-only transaction at snapshot `id` (the view's
/// [`PgBackend::with_conn`]); always rolled back, so the pooled connection goes back
/// idle.
pub(super) fn in_snapshot<T>(
    c: &mut postgres::Client,
    id: &str,
    f: impl FnOnce(&mut postgres::Client) -> Result<T>,
) -> Result<T> {
    let set = set_snapshot(id)?;
    c.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {set}"
    ))?;
    let r = f(c).and_then(|v| still_in_snapshot(c).map(|()| v));
    let end = c.batch_execute("ROLLBACK").map_err(pg_err);
    let v = r?;
    end?;
    Ok(v)
}

/// A read-only transaction at snapshot `id` (the view's [`PgBackend::with_tx`]).
pub(super) fn snapshot_tx<'a>(
    c: &'a mut postgres::Client,
    id: &str,
) -> Result<postgres::Transaction<'a>> {
    let set = set_snapshot(id)?;
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    tx.batch_execute(&set)?;
    Ok(tx)
}

impl PgBackend {
    /// A read-only view of this store at exported snapshot `id` (see the module doc),
    /// sharing the connection pool and the blob store.
    fn snapshot(&self, id: &str) -> PgBackend {
        PgBackend {
            url: self.url.clone(),
            pool: self.pool.clone(),
            opts: self.opts.clone(),
            feed: Arc::new(ChangeFeed::default()),
            blobs: self.blobs.clone(),
            parts: self.parts.clone(),
            auth_cache: password::VerifiedCache::new(0),
            snapshot: Some(id.to_string()),
        }
    }
}

/// Removes the embedded stores being built (and their WALs) in `dest`.
fn remove_building(dest: &Path) {
    for attempt in 1..=MAX_ATTEMPTS {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(dest.join(format!("{BUILDING}.{attempt}{suffix}")));
        }
    }
}

/// Blob files and shared parts `dest` holds.
fn files_in(dest: &Path) -> Result<u64> {
    let mut n = 0;
    for d in ["blobs", "parts"] {
        n += crate::blob::BlobDir::open(dest.join(d))?.scan()?.len() as u64;
    }
    Ok(n)
}

/// Whether `e` says an object or blob file was not there (collected under the backup).
fn vanished(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
}

pub(super) fn backup(b: &PgBackend, dest: &Path) -> Result<BackupReport> {
    std::fs::create_dir_all(dest.join("blobs")).map_err(|e| io(dest, e))?;
    std::fs::create_dir_all(dest.join("parts")).map_err(|e| io(dest, e))?;
    let before = files_in(dest)?;
    let tmp = dest.join("store.db.tmp");
    // The embedded store the backup is built in: blob files in DEST itself, no disk
    // reserve file, no object store.
    let opts = StoreOptions {
        objects: None,
        disk_reserve: 0,
        ..b.opts.clone()
    };
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt == 1 {
            // Left by a backup that was killed.
            remove_building(dest);
        }
        let _ = std::fs::remove_file(&tmp);
        let built =
            SqliteBackend::open_named(dest, &format!("{BUILDING}.{attempt}"), opts.clone())?;
        // The holder's transaction exports the snapshot and stays open until the copy
        // is whole; the client is dropped where blocking is allowed (as the pool is).
        let (holder, id) = blocking(|| -> Result<(postgres::Client, String)> {
            let mut holder = connect(&b.url)?;
            holder.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
            let id = holder.query_one("SELECT pg_export_snapshot()", &[]);
            match id {
                Ok(row) => Ok((holder, row.get(0))),
                Err(e) => {
                    drop(holder);
                    Err(e.into())
                }
            }
        })?;
        let view = b.snapshot(&id);
        let mut progress = |line: &str| tracing::info!("backup: {line}");
        let r = crate::transfer::transfer(&view, &built, SOURCE, &mut progress).and_then(|_| {
            let tmp_str = tmp
                .to_str()
                .ok_or_else(|| Error::Invalid("backup path is not UTF-8".into()))?
                .to_string();
            built.read(|c| {
                c.execute("VACUUM INTO ?1", [&tmp_str])?;
                Ok(())
            })
        });
        drop(built);
        drop(view);
        // Ends the snapshot's transaction (the connection closes with it).
        blocking(move || drop(holder));
        remove_building(dest);
        match r {
            Ok(()) => {}
            Err(e) if vanished(&e) && attempt < MAX_ATTEMPTS => {
                tracing::info!(
                    "backup: a body was collected during attempt {attempt} ({e}); starting again"
                );
                continue;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&tmp, e))?;
        let db_bytes = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        let blob_files = (file_blobs(&tmp)?.len() + part_files(&tmp)?.len()) as u64;
        std::fs::rename(&tmp, dest.join("store.db")).map_err(|e| io(dest, e))?;
        sync_dir(dest)?;
        return Ok(BackupReport {
            blob_files,
            copied: files_in(dest)?.saturating_sub(before),
            db_bytes,
        });
    }
    Err(Error::Refused(format!(
        "backup: bodies kept disappearing under {MAX_ATTEMPTS} snapshots; try again"
    )))
}

/// The temporary copy of a backup's database that a restore reads (`SRC/store.db`
/// itself stays as it was).
const RESTORING: &str = "store.db.restoring";

/// Restores the backup in `src` (made by `letterbox backup` on either backend) into
/// `target`, an empty store (another backend's, typically PostgreSQL): a
/// [`crate::transfer::transfer`] from the backup, read as an embedded store (`opts`,
/// blob files from `src/blobs` and `src/parts`), so every store rule is the target's.
/// The backup's database is read from a copy made next to it (`src` must be
/// writable). A target holding other data is refused ([`Error::Refused`]); a restore
/// that stopped (the database went away) resumes when run again with the same `src`.
pub fn restore_into(
    src: &Path,
    target: &dyn Backend,
    opts: StoreOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<crate::transfer::TransferReport> {
    let db = src.join("store.db");
    if !db.is_file() {
        return Err(Error::Invalid(format!(
            "{} holds no backup (no store.db)",
            src.display()
        )));
    }
    let remove = || {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(src.join(format!("{RESTORING}{suffix}")));
        }
    };
    remove();
    std::fs::copy(&db, src.join(RESTORING)).map_err(|e| io(&db, e))?;
    let opts = StoreOptions {
        objects: None,
        disk_reserve: 0,
        ..opts
    };
    let r = SqliteBackend::open_named(src, RESTORING, opts).and_then(|source| {
        let name = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
        crate::transfer::transfer(
            &source,
            target,
            &format!("backup {}", name.display()),
            progress,
        )
    });
    remove();
    r
}
