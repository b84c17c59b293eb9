//! The object store's reference rules on PostgreSQL (issue 17): the rule of the embedded
//! store (`objects.rs`, whose module doc states it) kept with many writers at once.
//!
//! - **Hold before upload.** [`hold`] commits a hold row (`object_holds`) for each
//!   object a delivery is about to upload; then the upload; then the message
//!   transaction takes the reference and drops the hold ([`PgTx::release_hold`]), so
//!   a held object is trusted to be present without a request.
//! - **Deletion queue.** A blob row whose last reference went is deleted by collection
//!   (`maintenance.rs`), which queues its object (`object_deletions`) in the same
//!   transaction instead of deleting it there; [`collect`] then deletes queued objects
//!   that are neither held nor referenced. Abandoned holds (a refused delivery, a node
//!   killed between upload and commit) are queued once older than `[blobs] hold_max`.
//!   No step lists the bucket.
//!
//! SQLite has one writer, so "collection never deletes a held object" holds by itself.
//! Here nodes run concurrently, so each object has an advisory lock
//! ([`super::maintenance::blob_lock_key`]): taken *shared* by the transaction that
//! commits a hold and by the message transaction that references the object (until
//! commit), and *exclusively* (try, never wait) by the collector around its check and
//! its DELETE request. Hence a hold or a reference is either committed before the
//! collector looks (it sees it and keeps the object), or waits until the collector has
//! committed (the upload, or the HEAD of the message transaction, comes after the
//! deletion and stores the object again).

use super::maintenance::blob_lock_key;
use super::tx::PgTx;
use super::PgBackend;
use crate::blob::BlobId;
use crate::*;
use r2d2_postgres::postgres::GenericClient;

/// Kinds of objects, as in the embedded store: whole bodies (`blobs/`) and shared MIME
/// parts (`parts/`, `pg/parts.rs`).
pub(crate) const KIND_BLOB: i32 = 0;
pub(crate) const KIND_PART: i32 = 1;

/// Where objects of a kind live.
pub(crate) fn dir_of(b: &PgBackend, kind: i32) -> &crate::blob::BlobDir {
    if kind == KIND_PART {
        &b.parts
    } else {
        &b.blobs
    }
}

/// Queued deletions carried out per transaction.
const DELETE_BATCH: i64 = 64;

/// A key of the deletion queue: (kind, hash).
type QueueKey = (i32, Vec<u8>);

/// The advisory lock of an object (see the module doc).
pub(crate) fn lock_key(kind: i32, id: &[u8]) -> i64 {
    let mut k = [0u8; 32];
    let n = id.len().min(32);
    k[..n].copy_from_slice(&id[..n]);
    blob_lock_key(&BlobId(k)) ^ i64::from(kind)
}

/// Before uploading objects (outside any message transaction): commits their hold
/// rows. Does nothing when blobs are files.
pub(crate) fn hold(b: &PgBackend, kind: i32, ids: &[BlobId]) -> Result<()> {
    if b.blobs.remote().is_none() || ids.is_empty() {
        return Ok(());
    }
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let since = now();
    b.with_tx(|tx| {
        for id in &ids {
            tx.execute(
                "SELECT pg_advisory_xact_lock_shared($1)",
                &[&lock_key(kind, &id.0)],
            )?;
            tx.execute(
                "INSERT INTO object_holds (kind, hash, since) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, hash) DO UPDATE SET since = EXCLUDED.since",
                &[&kind, &&id.0[..], &since],
            )?;
        }
        Ok(())
    })
}

impl PgTx<'_, '_> {
    /// Until commit, no collector deletes the object of `id` (module doc).
    pub(crate) fn pin_object(&mut self, kind: i32, id: &BlobId) -> Result<()> {
        self.tx.execute(
            "SELECT pg_advisory_xact_lock_shared($1)",
            &[&lock_key(kind, &id.0)],
        )?;
        Ok(())
    }

    fn held(&mut self, kind: i32, id: &BlobId) -> Result<bool> {
        Ok(self
            .tx
            .query_opt(
                "SELECT 1 FROM object_holds WHERE kind = $1 AND hash = $2",
                &[&kind, &&id.0[..]],
            )?
            .is_some())
    }

    /// With the object pinned: whether its octets are stored. `uploaded`: this call's
    /// caller held and uploaded them itself; then a hold still there proves they are.
    /// Otherwise the store is asked (a HEAD request, or the file).
    pub(crate) fn object_present(
        &mut self,
        kind: i32,
        id: &BlobId,
        uploaded: bool,
    ) -> Result<bool> {
        if self.blobs.remote().is_some() && uploaded && self.held(kind, id)? {
            return Ok(true);
        }
        let dir = if kind == KIND_PART { self.parts } else { self.blobs };
        Ok(dir.exists(id)?)
    }

    /// The reference to `id` is taken in this transaction: its hold is no longer needed.
    pub(crate) fn release_hold(&mut self, kind: i32, id: &BlobId) -> Result<()> {
        if self.blobs.remote().is_some() {
            self.tx.execute(
                "DELETE FROM object_holds WHERE kind = $1 AND hash = $2",
                &[&kind, &&id.0[..]],
            )?;
        }
        Ok(())
    }
}

/// In collection's transaction that deleted a blob row: its octets are no longer
/// referenced. A file is removed now; an object is queued.
pub(crate) fn drop_object(
    b: &PgBackend,
    tx: &mut impl GenericClient,
    kind: i32,
    id: &BlobId,
) -> Result<()> {
    if b.blobs.remote().is_none() {
        return Ok(dir_of(b, kind).remove(id)?);
    }
    tx.execute(
        "INSERT INTO object_deletions (kind, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&kind, &&id.0[..]],
    )?;
    Ok(())
}

/// Collection's object step: abandoned holds are queued, then queued objects that no
/// row references or holds are deleted. Returns how many objects were deleted.
pub(crate) fn collect(b: &PgBackend) -> Result<u64> {
    let Some(remote) = b.blobs.remote() else {
        return Ok(0);
    };
    let cutoff = now() - remote.hold_max.min(i64::MAX as u64) as i64;
    b.with_tx(|tx| {
        tx.execute(
            "WITH gone AS (DELETE FROM object_holds WHERE since <= $1 RETURNING kind, hash)
             INSERT INTO object_deletions (kind, hash) SELECT kind, hash FROM gone
             ON CONFLICT DO NOTHING",
            &[&cutoff],
        )?;
        Ok(())
    })?;
    let mut deleted = 0;
    // A cursor over the queue: an object whose lock is taken (a delivery about to
    // reference it) stays queued for the next collection, and this one goes on.
    let mut after: QueueKey = (-1, Vec::new());
    loop {
        let (n, last) = b.with_tx(|tx| delete_queued(b, tx, &after))?;
        deleted += n;
        match last {
            Some(l) => after = l,
            None => return Ok(deleted),
        }
    }
}

/// Deletes up to a batch of queued objects after `after`; returns how many went and
/// the last key looked at (`None`: the queue is done). Two collectors (two nodes) skip
/// each other's rows. A failed deletion fails the batch: its transaction is rolled
/// back, so the queue keeps every key (deleting an object twice is harmless).
fn delete_queued(
    b: &PgBackend,
    tx: &mut impl GenericClient,
    after: &QueueKey,
) -> Result<(u64, Option<QueueKey>)> {
    let queued = tx.query(
        "SELECT kind, hash FROM object_deletions WHERE (kind, hash) > ($1, $2)
         ORDER BY kind, hash LIMIT $3 FOR UPDATE SKIP LOCKED",
        &[&after.0, &after.1, &DELETE_BATCH],
    )?;
    let mut deleted = 0;
    let mut last = None;
    for r in &queued {
        let (kind, hash): (i32, Vec<u8>) = (r.get(0), r.get(1));
        last = Some((kind, hash.clone()));
        let free: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1)",
                &[&lock_key(kind, &hash)],
            )?
            .get(0);
        if !free {
            continue;
        }
        let held = tx
            .query_opt(
                "SELECT 1 FROM object_holds WHERE kind = $1 AND hash = $2",
                &[&kind, &hash],
            )?
            .is_some();
        let referenced = tx
            .query_opt(
                if kind == KIND_PART {
                    "SELECT 1 FROM parts WHERE hash = $1 AND refcount > 0"
                } else {
                    "SELECT 1 FROM blobs WHERE hash = $1 AND refcount > 0"
                },
                &[&hash],
            )?
            .is_some();
        if !held && !referenced {
            if let Ok(arr) = <[u8; 32]>::try_from(hash.as_slice()) {
                dir_of(b, kind).remove(&BlobId(arr))?;
                deleted += 1;
            }
        }
        // A held or referenced object leaves the queue: it is queued again when its
        // last reference goes or its hold is abandoned.
        tx.execute(
            "DELETE FROM object_deletions WHERE kind = $1 AND hash = $2",
            &[&kind, &hash],
        )?;
    }
    if (queued.len() as i64) < DELETE_BATCH {
        last = None;
    }
    Ok((deleted, last))
}
