//! SEARCH's searchable heads kept at delivery (issue 18; RFC 9051 6.4.4 header keys):
//! each blob's record (`letterbox_message::searchable`: exactly the fields FROM, TO,
//! CC, BCC, SUBJECT, HEADER and SENT* compare) made from the one parse when it is
//! stored (`body.rs` [`crate::body::searchable`]), in `blob_searchable` keyed by the
//! blob's hash, and copied from there into `message_searchable`, keyed by the message
//! row's (mailbox, UID), when the row is inserted (delivery, APPEND, COPY and MOVE,
//! import, replace: `sqlite_tx.rs` `insert_row`, `import.rs`). The first header search
//! of a big mailbox never searched before (nothing in IMAP's message cache) is then one
//! range scan over the mailbox's records in UID order, instead of a seek by hash per
//! message (the join through `messages`) or every head through `blob_info` and its
//! decoding ([`Backend::heads_many`]). The copies sit in their own narrow table, not in
//! the `messages` rows, so that the scans of those rows (SELECT, FETCH FLAGS) read no
//! more pages; a copy goes with its row (a foreign key, `ON DELETE CASCADE`: expunge,
//! mailbox and account deletion). A row inserted before the table existed has no copy
//! and is read through its blob's record; the record carries its version, and a blob
//! stored before, or by another version, has none and IMAP decodes its head.
//!
//! The blob rows live and die with the blob's parse (`put_blob_parse`/
//! `delete_blob_parse` in sqlite.rs), beside `blob_bodystructure`.

use crate::sqlite::SqliteBackend;
use crate::*;
use rusqlite::{params, Connection};
use std::collections::HashSet;

/// A kind of octets made at delivery, kept per blob (keyed by its hash) and copied into
/// a narrow table keyed by (mailbox, UID) as each message row is inserted: the
/// searchable heads here, the ENVELOPE renderings (`envelopes.rs`).
pub(crate) struct Copies {
    /// The per-blob table (hash, data).
    pub(crate) blob: &'static str,
    /// The per-row table (mailbox_id, uid, data).
    pub(crate) row: &'static str,
}

/// The searchable heads: `blob_searchable`, `message_searchable`.
pub(crate) const SEARCHABLE: Copies = Copies {
    blob: "blob_searchable",
    row: "message_searchable",
};

impl Copies {
    /// Keeps a blob's octets (`stored`: [`crate::body::searchable`], ...).
    pub(crate) fn put(&self, c: &Connection, hash: &[u8], stored: &[u8]) -> Result<()> {
        c.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {} (hash, data) VALUES (?1, ?2)",
            self.blob
        ))?
        .execute(params![hash, stored])?;
        Ok(())
    }

    /// Drops a blob's octets.
    pub(crate) fn delete(&self, c: &Connection, hash: &[u8]) -> Result<()> {
        c.prepare_cached(&format!("DELETE FROM {} WHERE hash = ?1", self.blob))?
            .execute([hash])?;
        Ok(())
    }

    /// Copies the octets of the blob `hash` (if it has some) to the message row just
    /// inserted at (`mailbox`, `uid`).
    pub(crate) fn copy_to_row(
        &self,
        c: &Connection,
        mailbox: MailboxId,
        uid: u32,
        hash: &[u8],
    ) -> Result<()> {
        c.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {} (mailbox_id, uid, data)
             SELECT ?1, ?2, data FROM {} WHERE hash = ?3",
            self.row, self.blob
        ))?
        .execute(params![mailbox, uid, hash])?;
        Ok(())
    }

    /// Per message of `uids`, by ascending UID, the octets `keep` accepts: the rows'
    /// copies in one scan, then the rows without one (inserted before the per-row
    /// table) through their blob's octets.
    pub(crate) fn many(
        &self,
        c: &Connection,
        mailbox: MailboxId,
        uids: &[u32],
        keep: impl Fn(&[u8]) -> Option<&[u8]> + Copy,
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        let out = uid_octets(
            c,
            &format!(
                "SELECT uid, data FROM {}
                 WHERE mailbox_id = ?1 AND uid {{uids}} ORDER BY uid",
                self.row
            ),
            mailbox,
            uids,
            keep,
        )?;
        with_rest(out, uids, |left| {
            uid_octets(
                c,
                &format!(
                    "SELECT m.uid, s.data FROM messages m
                     JOIN {} s ON s.hash = m.blob
                     WHERE m.mailbox_id = ?1 AND m.uid {{uids}} ORDER BY m.uid",
                    self.blob
                ),
                mailbox,
                left,
                keep,
            )
        })
    }
}

/// Copies every kind of per-row octets of the blob `hash` to the message row just
/// inserted at (`mailbox`, `uid`) (`sqlite_tx.rs` `insert_row`, `import.rs`).
pub(crate) fn copy_to_row(c: &Connection, mailbox: MailboxId, uid: u32, hash: &[u8]) -> Result<()> {
    SEARCHABLE.copy_to_row(c, mailbox, uid, hash)?;
    crate::envelopes::ENVELOPE.copy_to_row(c, mailbox, uid, hash)?;
    crate::bodystructures::BODYSTRUCTURE.copy_to_row(c, mailbox, uid, hash)
}

/// Per message row of `uids` in `mailbox`, by ascending UID, the octets `keep` accepts
/// of the second column of `sql`'s rows: `sql` selects (UID, octets) by ascending UID
/// with `?1` the mailbox and `{uids}` where the UID condition goes (`uid {uids}`). A
/// dense run of UIDs (a whole mailbox) is one range scan (`BETWEEN`), not a seek per
/// UID; a sparse set is looked up UID by UID. UIDs that have no row, no octets, or
/// octets `keep` refuses are left out. Shared by the renderings (`bodystructures.rs`)
/// and the records read here.
pub(crate) fn uid_octets(
    c: &Connection,
    sql: &str,
    mailbox: MailboxId,
    uids: &[u32],
    keep: impl Fn(&[u8]) -> Option<&[u8]>,
) -> Result<Vec<(u32, Vec<u8>)>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let range = UidRange::of(uids);
    let mut st = c.prepare_cached(&sql.replace("{uids}", range.condition()))?;
    let mut rows = range.query(&mut st, mailbox, uids)?;
    let mut out = Vec::with_capacity(uids.len());
    while let Some(r) = rows.next()? {
        let uid = r.get::<_, i64>(0)? as u32;
        if !range.wanted(uid) {
            continue;
        }
        if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(1)? {
            if let Some(octets) = keep(b) {
                out.push((uid, octets.to_vec()));
            }
        }
    }
    Ok(out)
}

/// How a set of UIDs of one mailbox is read: a dense run (a whole mailbox, FETCH 1:*)
/// as one range scan (`BETWEEN ?2 AND ?3`) skipping the UIDs not asked, a sparse set UID
/// by UID (`IN (SELECT value FROM json_each(?2))`).
pub(crate) struct UidRange {
    lo: u32,
    /// Dense: which UIDs of the range were asked, one flag per UID (a hash set cost
    /// 3 M instructions at 10,000); `None` for a sparse set.
    asked: Option<Vec<bool>>,
}

impl UidRange {
    pub(crate) fn of(uids: &[u32]) -> UidRange {
        let lo = uids.iter().copied().min().unwrap_or(0);
        let hi = uids.iter().copied().max().unwrap_or(0);
        let dense = u64::from(hi - lo) < 2 * uids.len() as u64;
        let asked = dense.then(|| {
            let mut w = vec![false; (hi - lo) as usize + 1];
            for &u in uids {
                w[(u - lo) as usize] = true;
            }
            w
        });
        UidRange { lo, asked }
    }

    /// The condition on the UID column, for `{uids}` in a query.
    pub(crate) fn condition(&self) -> &'static str {
        match self.asked {
            Some(_) => "BETWEEN ?2 AND ?3",
            None => "IN (SELECT value FROM json_each(?2))",
        }
    }

    /// Runs `st` (prepared with [`condition`](Self::condition), `?1` the mailbox).
    pub(crate) fn query<'s>(
        &self,
        st: &'s mut rusqlite::Statement<'_>,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> rusqlite::Result<rusqlite::Rows<'s>> {
        match &self.asked {
            Some(w) => st.query(params![mailbox, self.lo, i64::from(self.lo) + w.len() as i64 - 1]),
            None => {
                let list: Vec<String> = uids.iter().map(u32::to_string).collect();
                st.query(params![mailbox, format!("[{}]", list.join(","))])
            }
        }
    }

    /// Whether a row's UID was asked for.
    pub(crate) fn wanted(&self, uid: u32) -> bool {
        match &self.asked {
            Some(w) => uid
                .checked_sub(self.lo)
                .is_some_and(|i| w.get(i as usize).copied().unwrap_or(false)),
            None => true,
        }
    }
}

/// `found` (by ascending UID) and, for the UIDs of `uids` it lacks, what `rest` reads
/// of them, merged by ascending UID: the copies kept per message row first, the rows
/// inserted before them through their blob (both backends).
pub(crate) fn with_rest(
    mut found: Vec<(u32, Vec<u8>)>,
    uids: &[u32],
    rest: impl FnOnce(&[u32]) -> Result<Vec<(u32, Vec<u8>)>>,
) -> Result<Vec<(u32, Vec<u8>)>> {
    if found.len() < uids.len() {
        let have: HashSet<u32> = found.iter().map(|(u, _)| *u).collect();
        let left: Vec<u32> = uids.iter().copied().filter(|u| !have.contains(u)).collect();
        let more = rest(&left)?;
        if !more.is_empty() {
            found.extend(more);
            found.sort_unstable_by_key(|(u, _)| *u);
        }
    }
    Ok(found)
}

impl SqliteBackend {
    /// [`Backend::searchables_many`]: the rows' copies in one scan, then the rows
    /// without one (inserted before `message_searchable`) through their blob's record.
    pub(crate) fn searchables_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        self.read_conn(|c| SEARCHABLE.many(c, mailbox, uids, crate::body::stored_searchable))
    }
}
