//! The reference rules of blob octets outside the database, written once for both blob
//! stores (files and S3, [`crate::blob::BlobDir`]): when octets may be written, trusted
//! and removed.
//!
//! Files (the default) keep the rule of `blob.rs`: written and fsynced before the
//! transaction that references them, checked under the write lock (rewritten if a
//! collector removed them meanwhile), removed only under the write lock.
//!
//! An object store cannot be checked cheaply under the lock (a HEAD costs a round trip)
//! and is never listed, so (issue 17):
//! - **Hold before upload.** A delivery first commits a hold row (`object_holds`) for
//!   each object it is about to upload, then uploads, then its message transaction takes
//!   the reference and drops the hold. Collection runs under the write lock and never
//!   deletes a held object, so an object a delivery is about to reference is never
//!   removed: either collection deleted it before the hold (and the upload comes after),
//!   or it sees the hold. A held object is trusted to be present without a request.
//! - **Deletion queue.** An object whose last reference goes is not deleted in that
//!   transaction (a delivery must not wait for S3, and a rolled-back transaction must
//!   not have deleted anything): its key goes into `object_deletions`. Collection
//!   (`letterbox gc`) then deletes queued objects that are neither held nor referenced,
//!   a batch per write transaction, and keeps the rest of the queue when S3 fails.
//! - **Abandoned holds.** A process killed between hold and commit leaves a hold; after
//!   `[blobs] hold_max` seconds collection queues its object unless something references
//!   it. No step lists the bucket.

use super::{SqliteBackend, WriteCtx};
use crate::blob::{BlobDir, BlobId};
use crate::Result;
use rusqlite::params;

/// Kinds of objects: whole bodies (`blobs/`) and shared MIME parts (`parts/`).
pub(super) const KIND_BLOB: i64 = 0;
pub(super) const KIND_PART: i64 = 1;

/// Queued deletions carried out per write transaction.
const DELETE_BATCH: usize = 64;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl SqliteBackend {
    /// Before uploading objects (outside the write lock): commits their hold rows. Does
    /// nothing for files.
    pub(super) fn hold_objects(&self, kind: i64, ids: Vec<BlobId>) -> Result<()> {
        if self.blobs.remote().is_none() || ids.is_empty() {
            return Ok(());
        }
        let since = now();
        self.write_lazy(move |ctx| {
            let mut st = ctx.tx.prepare_cached(
                "INSERT OR REPLACE INTO object_holds (kind, hash, since) VALUES (?1, ?2, ?3)",
            )?;
            for id in &ids {
                st.execute(params![kind, &id.0[..], since])?;
            }
            Ok(())
        })
    }

    /// Collection's object step: abandoned holds are queued, then queued objects that no
    /// row references or holds are deleted. Returns how many objects were deleted.
    pub(super) fn collect_objects(&self) -> Result<u64> {
        let Some(remote) = self.blobs.remote() else {
            return Ok(0);
        };
        let hold_max = remote.hold_max as i64;
        self.write(move |ctx| {
            let cutoff = now() - hold_max;
            ctx.tx.execute(
                "INSERT OR IGNORE INTO object_deletions (kind, hash)
                 SELECT kind, hash FROM object_holds WHERE since <= ?1",
                [cutoff],
            )?;
            ctx.tx
                .execute("DELETE FROM object_holds WHERE since <= ?1", [cutoff])?;
            Ok(())
        })?;
        let mut deleted = 0;
        loop {
            let (n, done) = self.write(|ctx| ctx.delete_queued())?;
            deleted += n;
            if done {
                return Ok(deleted);
            }
        }
    }
}

impl WriteCtx<'_> {
    fn dir(&self, kind: i64) -> &BlobDir {
        if kind == KIND_PART {
            self.parts
        } else {
            self.blobs
        }
    }

    fn held(&self, kind: i64, id: &[u8]) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM object_holds WHERE kind = ?1 AND hash = ?2")?
            .exists(params![kind, id])?)
    }

    fn referenced(&self, kind: i64, id: &[u8]) -> Result<bool> {
        let sql = if kind == KIND_PART {
            "SELECT 1 FROM parts WHERE hash = ?1 AND refcount > 0"
        } else {
            "SELECT 1 FROM blobs WHERE hash = ?1 AND refcount > 0"
        };
        Ok(self.tx.prepare_cached(sql)?.exists([id])?)
    }

    /// Under the write lock: whether the octets of `id` are stored. `uploaded`: this
    /// job's caller held and uploaded them itself before its transaction; then a hold
    /// still there proves they are (collection leaves held objects alone). Otherwise
    /// (someone else's hold may be for an upload still under way) the store is asked.
    pub(super) fn object_present(&self, kind: i64, id: &BlobId, uploaded: bool) -> Result<bool> {
        let dir = self.dir(kind);
        if dir.remote().is_some() && uploaded && self.held(kind, &id.0)? {
            return Ok(true);
        }
        Ok(dir.exists(id)?)
    }

    /// The reference to `id` is taken in this transaction: its hold is no longer needed.
    pub(super) fn release_hold(&self, kind: i64, id: &BlobId) -> Result<()> {
        if self.blobs.remote().is_some() {
            self.tx
                .prepare_cached("DELETE FROM object_holds WHERE kind = ?1 AND hash = ?2")?
                .execute(params![kind, &id.0[..]])?;
        }
        Ok(())
    }

    /// The octets of `id` are no longer referenced: a file is removed now (under the
    /// lock, as always); an object is queued for collection.
    pub(super) fn drop_object(&self, kind: i64, id: &BlobId) -> Result<()> {
        let dir = self.dir(kind);
        if dir.remote().is_none() {
            return Ok(dir.remove(id)?);
        }
        if kind == KIND_BLOB {
            // A body kept in the database (inline or split) has no object of its own.
            let in_db = self
                .tx
                .prepare_cached(
                    "SELECT 1 FROM blob_data WHERE hash = ?1 UNION ALL SELECT 1 FROM blob_split WHERE hash = ?1",
                )?
                .exists([&id.0[..]])?;
            if in_db {
                return Ok(());
            }
        }
        self.tx
            .prepare_cached("INSERT OR IGNORE INTO object_deletions (kind, hash) VALUES (?1, ?2)")?
            .execute(params![kind, &id.0[..]])?;
        Ok(())
    }

    /// Deletes up to a batch of queued objects. Returns how many went and whether the
    /// queue is done. A failed deletion fails the job: its changes are undone and the
    /// queue keeps every key of the batch (deleting an object twice is harmless).
    fn delete_queued(&mut self) -> Result<(u64, bool)> {
        let queued: Vec<(i64, Vec<u8>)> = {
            let mut st = self
                .tx
                .prepare_cached("SELECT kind, hash FROM object_deletions LIMIT ?1")?;
            let v = st
                .query_map([DELETE_BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v
        };
        let mut deleted = 0;
        for (kind, hash) in &queued {
            if !self.held(*kind, hash)? && !self.referenced(*kind, hash)? {
                if let Ok(arr) = <[u8; 32]>::try_from(hash.as_slice()) {
                    // On failure (S3 down) the whole job is undone: the queue keeps every
                    // key, and deleting some of them twice later is harmless.
                    self.dir(*kind).remove(&BlobId(arr))?;
                    deleted += 1;
                }
            }
            self.tx
                .prepare_cached("DELETE FROM object_deletions WHERE kind = ?1 AND hash = ?2")?
                .execute(params![kind, hash])?;
        }
        Ok((deleted, queued.len() < DELETE_BATCH))
    }
}
