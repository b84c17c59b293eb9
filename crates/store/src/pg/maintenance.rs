//! Collection and checking on PostgreSQL.
//!
//! Collection removes blob rows at zero references with their files: the row is
//! deleted first and the file removed before commit, so a delivery inserting the same
//! blob meanwhile waits on the row and then finds the file gone and writes it again
//! (`tx.rs`, `take_blob_ref`). With an object store the row's object is queued instead
//! and deleted afterwards under the rules of `pg/objects.rs` (holds, no listing). Orphan
//! files (no row: a refused delivery's, or a node killed between writing a file and
//! committing) are removed only when older than [`ORPHAN_GRACE`], so that a delivery in
//! flight on any node keeps its file. Shared MIME parts (`pg/parts.rs`) follow the same
//! rules one level down: a body's row takes its references on its parts with it, and
//! parts at zero go with their files or objects.

use super::messages::blob_id;
use super::objects::{KIND_BLOB, KIND_PART};
use super::PgBackend;
use crate::*;
use std::io::Read;

/// A blob file without a row is left alone this long (a delivery on another node may
/// be about to commit the row that names it).
const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The advisory lock key of a blob: a delivery that inserts the blob's row holds it
/// shared until commit; the orphan sweep takes it exclusively before removing a file,
/// so it never removes the file of a row about to be committed.
pub(crate) fn blob_lock_key(id: &BlobId) -> i64 {
    let mut k = [0u8; 8];
    k.copy_from_slice(&id.0[..8]);
    i64::from_be_bytes(k)
}

pub(crate) fn gc(b: &PgBackend) -> Result<GcReport> {
    let mut report = GcReport {
        blobs_removed: free_unreferenced(b)?,
        ..GcReport::default()
    };
    // Shared parts whose last reference went above (`pg/parts.rs`).
    report.orphan_files_removed += super::parts::collect(b)?;
    if b.blobs.remote().is_none() {
        report.orphan_files_removed += sweep_orphans(b, KIND_BLOB)?;
        report.orphan_files_removed += sweep_orphans(b, KIND_PART)?;
    }
    // Objects in an object store: the queue filled above, and abandoned holds.
    report.objects_deleted = super::objects::collect(b)?;
    Ok(report)
}

/// Removes the files of one kind (bodies, parts) that no row names, once older than
/// [`ORPHAN_GRACE`] and not pinned by a delivery (the object's advisory lock); returns
/// how many.
fn sweep_orphans(b: &PgBackend, kind: i32) -> Result<u64> {
    let dir = super::objects::dir_of(b, kind);
    let mut removed = 0;
    for id in dir.scan()? {
        let old = std::fs::metadata(dir.path(&id))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= ORPHAN_GRACE);
        if !old {
            continue;
        }
        let gone = b.with_tx(|tx| {
            let free: bool = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock($1)",
                    &[&super::objects::lock_key(kind, &id.0)],
                )?
                .get(0);
            let named = tx
                .query_opt(
                    if kind == KIND_PART {
                        "SELECT 1 FROM parts WHERE hash = $1"
                    } else {
                        "SELECT 1 FROM blobs WHERE hash = $1"
                    },
                    &[&&id.0[..]],
                )?
                .is_some();
            if free && !named {
                dir.remove(&id)?;
                return Ok(true);
            }
            Ok(false)
        })?;
        if gone {
            removed += 1;
        }
    }
    Ok(removed)
}

pub(crate) fn check(b: &PgBackend, deep: bool) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    b.with_tx(|tx| {
        for r in tx.query(
            "SELECT a.address, a.quota_used, coalesce((SELECT sum(m.size) FROM messages m
                 JOIN mailboxes x ON x.id = m.mailbox_id WHERE x.account_id = a.id), 0)::BIGINT
             FROM accounts a ORDER BY a.address",
            &[],
        )? {
            let (addr, used, sum): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            if used != sum {
                problems.push(format!(
                    "account {addr}: quota usage {used} but messages sum to {sum}"
                ));
            }
        }
        for r in tx.query(
            "SELECT b.hash, b.refcount, (SELECT count(*) FROM messages m WHERE m.blob = b.hash)
             FROM blobs b",
            &[],
        )? {
            let (hash, rc, n): (Vec<u8>, i64, i64) = (r.get(0), r.get(1), r.get(2));
            if rc != n {
                problems.push(format!(
                    "blob {}: reference count {rc} but {n} message(s) use it",
                    hex::encode(hash)
                ));
            }
        }
        Ok(())
    })?;
    let blobs = b.with_conn(|c| {
        // A split body's octets are its skeleton and parts: checked below.
        Ok(c.query(
            "SELECT b.hash, b.size, b.data FROM blobs b WHERE b.refcount > 0
             AND NOT EXISTS (SELECT 1 FROM blob_split s WHERE s.hash = b.hash)",
            &[],
        )?)
    })?;
    for r in blobs {
        let id = blob_id(r.get(0))?;
        let size: i64 = r.get(1);
        let data: Option<&[u8]> = r.get(2);
        if data.is_none() && !b.blobs.exists(&id)? {
            problems.push(format!("blob {}: octets missing (no file, no object)", id.hex()));
            continue;
        }
        if deep {
            let mut octets = Vec::new();
            let read = match data {
                Some(d) => crate::blob::BlobReader::inline(d)
                    .and_then(|mut rd| rd.read_to_end(&mut octets)),
                None => b
                    .blobs
                    .open_reader(&id)
                    .and_then(|mut rd| rd.read_to_end(&mut octets)),
            };
            if let Err(e) = read {
                problems.push(format!("blob {}: cannot be read: {e}", id.hex()));
            } else if BlobId::of(&octets) != id || octets.len() as i64 != size {
                problems.push(format!("blob {}: octets do not match its name", id.hex()));
            }
        }
    }
    super::parts::check(b, deep, &mut problems)?;
    Ok(problems)
}

/// Removes the blob rows at zero references, with their files (as `user remove` does
/// at once on SQLite); returns how many.
pub(crate) fn free_unreferenced(b: &PgBackend) -> Result<u64> {
    let mut removed = 0;
    // Batches, so that one transaction never holds too many row locks.
    loop {
        let n = b.with_tx(|tx| {
            let gone = tx.query(
                "DELETE FROM blobs WHERE hash IN
                     (SELECT hash FROM blobs WHERE refcount <= 0 LIMIT 500 FOR UPDATE SKIP LOCKED)
                 AND refcount <= 0 RETURNING hash, data IS NULL",
                &[],
            )?;
            for r in &gone {
                // A split body's references on its parts go with it (`pg/parts.rs`).
                let split = super::parts::free_split(&mut *tx, r.get(0))?;
                if r.get::<_, bool>(1) && !split {
                    // Into the deletion queue, not off the disk or bucket here
                    // (`pg/objects.rs`: a delivery may be re-uploading it).
                    super::objects::drop_object(b, &mut *tx, KIND_BLOB, &blob_id(r.get(0))?)?;
                }
            }
            Ok(gone.len() as u64)
        })?;
        removed += n;
        if n == 0 {
            return Ok(removed);
        }
    }
}
