//! Online backup and restore of the embedded store (issue 16).
//!
//! Backup (`letterbox backup DEST`, while `serve` runs): SQLite's `VACUUM INTO`
//! (sqlite.org/lang_vacuum.html#vacuuminto) writes a transactionally consistent copy of
//! the database as one reader sees it: in WAL mode it neither blocks nor waits for the
//! writer, so deliveries go on. Everything committed (acknowledged) before it began is
//! in the copy. Then the blob files that copy references and that are not inline are
//! copied into `DEST/blobs` (and the shared parts it references into `DEST/parts`),
//! skipping those already there: blob files are named by the
//! BLAKE3 of their content and never change, so a backup into the same DEST copies
//! only new mail (incremental). A blob file the snapshot needs may have been removed
//! meanwhile (its message expunged, then garbage-collected): the backup then starts
//! again with a fresh snapshot, a bounded number of times.
//!
//! The database copy is written as `store.db.tmp`, fsynced, and renamed over
//! `store.db` last, so DEST always holds a complete backup (the previous one until the
//! new one is whole).
//!
//! Restore (`letterbox restore SRC`): into a data directory holding no store, copies
//! `store.db` and the blob files, fsyncs them, then verifies the result as
//! `check --deep` does.

use super::SqliteBackend;
use crate::blob::BlobId;
use crate::{Error, Result};
use std::path::Path;

/// How many times a backup retries when a blob vanished under it.
pub(crate) const MAX_ATTEMPTS: usize = 5;

/// What a backup did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Blob files in the snapshot (not inline).
    pub blob_files: u64,
    /// Of those, copied now (the others were in DEST already).
    pub copied: u64,
    /// Octets of the database copy.
    pub db_bytes: u64,
}

pub(crate) fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// Copies `from` to `to` through a temporary name, fsynced.
fn copy_durable(from: &Path, to: &Path) -> std::io::Result<()> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, to)
}

/// The hashes of the blobs a database references whose octets live in files
/// (neither inline nor split into shared parts).
pub(crate) fn file_blobs(db: &Path) -> Result<Vec<BlobId>> {
    ids(
        db,
        "SELECT hash FROM blobs WHERE refcount > 0
           AND hash NOT IN (SELECT hash FROM blob_data)
           AND hash NOT IN (SELECT hash FROM blob_split)",
    )
}

/// The shared parts (`data_dir/parts`, issue 15) a database references.
pub(crate) fn part_files(db: &Path) -> Result<Vec<BlobId>> {
    ids(db, "SELECT hash FROM parts WHERE refcount > 0")
}

fn ids(db: &Path, sql: &str) -> Result<Vec<BlobId>> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = c.prepare(sql)?;
    let v = st
        .query_map([], |r| r.get::<_, Vec<u8>>(0))?
        .filter_map(|h| h.ok().and_then(|h| h.try_into().ok().map(BlobId)))
        .collect();
    Ok(v)
}

pub(super) fn backup(b: &SqliteBackend, dest: &Path) -> Result<BackupReport> {
    if b.blobs.remote().is_some() {
        // The octets are in the object store, which has its own versioning/replication.
        return Err(Error::Refused(
            "backup copies blob files; with [blobs] url the octets are in the object store (back it up there)".into(),
        ));
    }
    std::fs::create_dir_all(dest.join("blobs")).map_err(|e| io(dest, e))?;
    std::fs::create_dir_all(dest.join("parts")).map_err(|e| io(dest, e))?;
    let tmp = dest.join("store.db.tmp");
    for attempt in 1..=MAX_ATTEMPTS {
        let _ = std::fs::remove_file(&tmp);
        let tmp_str = tmp
            .to_str()
            .ok_or_else(|| Error::Invalid("backup path is not UTF-8".into()))?
            .to_string();
        b.read(|c| {
            c.execute("VACUUM INTO ?1", [&tmp_str])?;
            Ok(())
        })?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&tmp, e))?;
        let mut report = BackupReport {
            db_bytes: std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0),
            ..BackupReport::default()
        };
        let dest_blobs = crate::blob::BlobDir::open(dest.join("blobs"))?;
        let dest_parts = crate::blob::BlobDir::open(dest.join("parts"))?;
        let mut vanished = false;
        let mut dirs = std::collections::BTreeSet::new();
        let files = file_blobs(&tmp)?.into_iter().map(|id| (id, &b.blobs, &dest_blobs));
        let parts = part_files(&tmp)?.into_iter().map(|id| (id, &b.parts, &dest_parts));
        for (id, from_dir, to_dir) in files.chain(parts) {
            report.blob_files += 1;
            let to = to_dir.path(&id);
            if to.exists() {
                continue;
            }
            let from = from_dir.path(&id);
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
                dirs.insert(p.to_path_buf());
            }
            match copy_durable(&from, &to) {
                Ok(()) => report.copied += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    vanished = true;
                    break;
                }
                Err(e) => return Err(io(&from, e)),
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        if vanished {
            tracing::info!("backup: a blob was collected during attempt {attempt}; starting again");
            continue;
        }
        std::fs::rename(&tmp, dest.join("store.db")).map_err(|e| io(dest, e))?;
        sync_dir(dest)?;
        return Ok(report);
    }
    let _ = std::fs::remove_file(&tmp);
    Err(Error::Refused(format!(
        "backup: blobs kept disappearing under {MAX_ATTEMPTS} snapshots; try again"
    )))
}

/// Restores a backup made by [`backup`] into `data_dir`, which must hold no store.
pub fn restore(src: &Path, data_dir: &Path) -> Result<u64> {
    let db = src.join("store.db");
    if !db.is_file() {
        return Err(Error::Invalid(format!(
            "{} holds no backup (no store.db)",
            src.display()
        )));
    }
    if data_dir.join("store.db").exists() {
        return Err(Error::Refused(format!(
            "{} already holds a store; restore only into an empty data directory",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir.join("blobs")).map_err(|e| io(data_dir, e))?;
    let from_blobs = crate::blob::BlobDir::open(src.join("blobs"))?;
    let to_blobs = crate::blob::BlobDir::open(data_dir.join("blobs"))?;
    let from_parts = crate::blob::BlobDir::open(src.join("parts"))?;
    let to_parts = crate::blob::BlobDir::open(data_dir.join("parts"))?;
    let mut n = 0;
    let mut dirs = std::collections::BTreeSet::new();
    let files = file_blobs(&db)?.into_iter().map(|id| (id, &from_blobs, &to_blobs));
    let parts = part_files(&db)?.into_iter().map(|id| (id, &from_parts, &to_parts));
    for (id, from_dir, to_dir) in files.chain(parts) {
        let to = to_dir.path(&id);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
            dirs.insert(p.to_path_buf());
        }
        let from = from_dir.path(&id);
        copy_durable(&from, &to).map_err(|e| io(&from, e))?;
        n += 1;
    }
    for d in &dirs {
        sync_dir(d)?;
    }
    copy_durable(&db, &data_dir.join("store.db")).map_err(|e| io(&db, e))?;
    sync_dir(data_dir)?;
    Ok(n)
}
