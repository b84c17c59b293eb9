//! Single-instance storage of large MIME parts on PostgreSQL (issues 15 and 17): the
//! tables `parts` and `blob_split` (migration 111) and the part octets, files under
//! `data_dir/parts` (a directory every node shares, as `blobs/`) or objects under
//! `parts/` in `[blobs]`'s object store. The rules (which parts are cut, the skeleton
//! and map, reassembly, what `check` verifies) are `parts.rs`'s, shared with the
//! embedded store (`dedup.rs`); here are only the queries and the many-writer
//! discipline, the same as whole bodies' (`pg/objects.rs`, `pg/maintenance.rs`):
//! - Before the message transaction, each part not already referenced is held
//!   (`object_holds`, kind 1) and written or uploaded.
//! - The transaction that inserts a split body's `blobs` row inserts its `blob_split`
//!   row and counts one reference per map record on `parts` (upserts, in hash order).
//!   A part it brings from zero (or inserts) is pinned against collection (the
//!   object's advisory lock, shared) and looked for, and written again from the body if
//!   a collector removed it meanwhile; a part this delivery held and uploaded is
//!   trusted while its hold is there. The holds go in the same transaction.
//! - Collection deletes a body's `blob_split` row with its `blobs` row and takes back
//!   the references; then it deletes `parts` rows at zero (row-locked, `SKIP LOCKED`)
//!   with their files, or queues their objects (`object_deletions`, deleted by
//!   `objects::collect` once neither held nor referenced). Part files no row names are
//!   removed once older than the orphan grace, as blob files are.
//!
//! The header, parse and search text of a split body stay in its `blobs` row, as for
//! any body: readers other than the octets' do not know it is split.

use super::objects::{self, KIND_PART};
use super::tx::PgTx;
use super::PgBackend;
use crate::blob::BlobId;
use crate::parts::{self, PartRef};
use crate::*;
use r2d2_postgres::postgres::GenericClient;
use std::collections::{BTreeMap, HashSet};

/// A body prepared for split storage: the parts not already referenced are held and
/// stored.
pub(crate) struct PgSplit {
    /// The skeleton, compressed with the mail dictionary (`mailpack.rs`).
    pub skeleton: Vec<u8>,
    pub parts: Vec<PartRef>,
    /// The parts this delivery held and wrote or uploaded itself.
    pub uploaded: HashSet<BlobId>,
}

/// Each part named by a map with its number of records, in hash order (the lock order
/// of `parts` rows).
fn counted(refs: &[PartRef]) -> BTreeMap<BlobId, (i64, u64)> {
    let mut m = BTreeMap::new();
    for p in refs {
        m.entry(p.id).or_insert((0, p.len)).0 += 1;
    }
    m
}

impl PgBackend {
    /// Outside any transaction: cuts a body into skeleton and large parts (`None` if it
    /// has none, or `[store] part_dedup_min` is 0), holds and stores the parts no body
    /// references yet.
    pub(crate) fn prepare_split(
        &self,
        body: &[u8],
        root: &letterbox_message::Part,
    ) -> Result<Option<PgSplit>> {
        let Some(split) = parts::split(body, root, self.opts.part_dedup_min) else {
            return Ok(None);
        };
        let ids: Vec<Vec<u8>> = split.parts.iter().map(|p| p.id.0.to_vec()).collect();
        let live: HashSet<Vec<u8>> = self.with_conn(|c| {
            Ok(c.query(
                "SELECT hash FROM parts WHERE hash = ANY($1) AND refcount > 0",
                &[&ids],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        let fresh: Vec<BlobId> = split
            .parts
            .iter()
            .map(|p| p.id)
            .filter(|id| !live.contains(&id.0[..]))
            .collect();
        objects::hold(self, KIND_PART, &fresh)?;
        let mut uploaded = HashSet::new();
        for (i, p) in split.parts.iter().enumerate() {
            if fresh.contains(&p.id) && uploaded.insert(p.id) {
                self.parts.put(&p.id, split.part(body, i))?;
            }
        }
        Ok(Some(PgSplit {
            skeleton: crate::mailpack::compress(&split.skeleton)?,
            parts: split.parts,
            uploaded,
        }))
    }

    /// A reader of a split body from its stored skeleton and map.
    pub(crate) fn joined_reader(&self, skeleton: &[u8], map: &[u8]) -> Result<blob::BlobReader> {
        let dir = self.parts.clone();
        let open: parts::PartOpener = Box::new(move |id| {
            Ok(Box::new(dir.open_reader(id)?) as Box<dyn std::io::Read + Send>)
        });
        Ok(blob::BlobReader::joined(skeleton, map, open)?)
    }
}

impl PgTx<'_, '_> {
    /// In the transaction that inserts the `blobs` row of `id`: its `blob_split` row and
    /// one reference per map record on its parts (module doc). A part a collector
    /// removed since it was prepared is stored again from `body`.
    pub(crate) fn put_split(&mut self, id: &BlobId, body: &[u8], sp: &PgSplit) -> Result<()> {
        for (pid, (n, len)) in counted(&sp.parts) {
            self.pin_object(KIND_PART, &pid)?;
            let before: i64 = self
                .tx
                .query_one(
                    "INSERT INTO parts (hash, size, refcount) VALUES ($1, $2, $3)
                     ON CONFLICT (hash) DO UPDATE SET refcount = parts.refcount + EXCLUDED.refcount
                     RETURNING refcount - $3",
                    &[&&pid.0[..], &(len as i64), &n],
                )?
                .get(0);
            let uploaded = sp.uploaded.contains(&pid);
            if before <= 0 && !self.object_present(KIND_PART, &pid, uploaded)? {
                let p = sp.parts.iter().find(|p| p.id == pid).expect("counted from these");
                let octets = usize::try_from(p.offset)
                    .ok()
                    .zip(usize::try_from(p.offset + p.len).ok())
                    .and_then(|(a, b)| body.get(a..b))
                    .ok_or_else(|| Error::Invalid("part outside its body".into()))?;
                self.parts.put(&pid, octets)?;
            }
        }
        self.release_split_holds(sp)?;
        self.tx.execute(
            "INSERT INTO blob_split (hash, skeleton, parts) VALUES ($1, $2, $3)",
            &[&&id.0[..], &sp.skeleton, &parts::encode_map(&sp.parts)],
        )?;
        Ok(())
    }

    /// The holds of a prepared split's parts, when its body is referenced (stored split
    /// or found stored already by another delivery).
    pub(crate) fn release_split_holds(&mut self, sp: &PgSplit) -> Result<()> {
        let mut ids: Vec<&BlobId> = sp.uploaded.iter().collect();
        ids.sort();
        for pid in ids {
            self.release_hold(KIND_PART, pid)?;
        }
        Ok(())
    }
}

/// In collection's transaction that deleted the `blobs` row `hash`: its `blob_split`
/// row and the references its map held. Returns whether the body was split.
pub(crate) fn free_split(tx: &mut impl GenericClient, hash: &[u8]) -> Result<bool> {
    let Some(r) = tx.query_opt("DELETE FROM blob_split WHERE hash = $1 RETURNING parts", &[&hash])?
    else {
        return Ok(false);
    };
    match parts::decode_map(r.get(0)) {
        Some(refs) => {
            for (pid, (n, _)) in counted(&refs) {
                tx.execute(
                    "UPDATE parts SET refcount = refcount - $2 WHERE hash = $1",
                    &[&&pid.0[..], &n],
                )?;
            }
        }
        // Its parts keep a reference too many: `check` reports them.
        None => tracing::error!("store: malformed part map of blob {}", hex::encode(hash)),
    }
    Ok(true)
}

/// Collection: deletes the parts at zero references, removing their files or queueing
/// their objects in the same transaction (a delivery bringing one back waits on its row,
/// then finds it gone and stores it again). Returns how many went.
pub(crate) fn collect(b: &PgBackend) -> Result<u64> {
    let mut removed = 0;
    loop {
        let n = b.with_tx(|tx| {
            let gone = tx.query(
                "DELETE FROM parts WHERE hash IN
                     (SELECT hash FROM parts WHERE refcount <= 0 LIMIT 500 FOR UPDATE SKIP LOCKED)
                 AND refcount <= 0 RETURNING hash",
                &[],
            )?;
            for r in &gone {
                let id = super::messages::blob_id(r.get(0))?;
                objects::drop_object(b, &mut *tx, KIND_PART, &id)?;
            }
            Ok(gone.len() as u64)
        })?;
        removed += n;
        if n == 0 {
            return Ok(removed);
        }
    }
}

/// What `check` finds wrong with split bodies and parts (the rule is `parts::check`).
pub(crate) fn check(b: &PgBackend, deep: bool, problems: &mut Vec<String>) -> Result<()> {
    let (rows, splits) = b.with_tx(|tx| {
        // One snapshot for both reads: a delivery committing between them would
        // otherwise look like a count that does not match its maps.
        tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
        let rows = tx
            .query("SELECT hash, size, refcount FROM parts", &[])?
            .iter()
            .map(|r| parts::PartRow {
                hash: r.get(0),
                size: r.get(1),
                refcount: r.get(2),
            })
            .collect::<Vec<_>>();
        let splits = tx
            .query(
                "SELECT s.hash, s.skeleton, s.parts, b.size FROM blob_split s
                 LEFT JOIN blobs b ON b.hash = s.hash",
                &[],
            )?
            .iter()
            .map(|r| parts::SplitRow {
                hash: r.get(0),
                skeleton: r.get(1),
                map: r.get(2),
                size: r.get(3),
            })
            .collect::<Vec<_>>();
        Ok((rows, splits))
    })?;
    parts::check(&rows, &splits, &b.parts, None, deep, problems)
}
