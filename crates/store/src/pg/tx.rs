//! PostgreSQL's queries for the store's rules ([`crate::rules::StoreTx`]): one
//! transaction per [`crate::Backend`] call. Unlike SQLite's single writer, many
//! transactions run at once, so the rules' lock order is real here:
//! [`StoreTx::lock_account`] is `SELECT ... FOR UPDATE` on the account row, and
//! [`StoreTx::take_uid_modseq`] is one `UPDATE mailboxes ... RETURNING` that keeps the
//! mailbox row locked until commit. Hence a mailbox's commits happen in MODSEQ order
//! (RFC 7162 3.1: a client that asks for changes since MODSEQ n must never later find a
//! change below n it was not told of).

use super::objects::KIND_BLOB;
use super::rows::{self, account_from_row, meta_from_row};
use crate::blob::BlobDir;
use crate::body::Encoded;
use crate::rules::{CopyRow, NewRow, StoreTx, WarnState};
use crate::*;
use r2d2_postgres::postgres::Transaction;

/// What [`super::PgBackend::prepare_body`] made of a body before the transaction.
pub(crate) struct PgPrepared {
    pub id: BlobId,
    /// The parse, unless the blob was already stored when prepared.
    pub encoded: Option<Encoded>,
    /// The compressed octets, when small enough to live in the row (`[store] inline_max`).
    pub inline: Option<Vec<u8>>,
    /// Held and uploaded to the object store, or written as a file, before the
    /// transaction (`pg/objects.rs`).
    pub uploaded: bool,
    /// Its skeleton and shared parts, when it is stored split (`[store]
    /// part_dedup_min`, `pg/parts.rs`).
    pub split: Option<super::parts::PgSplit>,
}

/// One transaction as the rules see it.
pub(crate) struct PgTx<'a, 'b> {
    pub tx: &'a mut Transaction<'b>,
    pub opts: &'a StoreOptions,
    pub blobs: &'a BlobDir,
    /// Shared MIME parts (`pg/parts.rs`).
    pub parts: &'a BlobDir,
    pub changes: Vec<Change>,
}

impl<'a, 'b> PgTx<'a, 'b> {
    pub fn new(
        tx: &'a mut Transaction<'b>,
        opts: &'a StoreOptions,
        blobs: &'a BlobDir,
        parts: &'a BlobDir,
    ) -> Self {
        PgTx {
            tx,
            opts,
            blobs,
            parts,
            changes: Vec::new(),
        }
    }
}

impl PgTx<'_, '_> {
    /// Locks several accounts at once, in id order, before a rule that touches more than
    /// one (a delivery to many recipients, COPY or MOVE between accounts): the rules then
    /// lock them again one by one (no-ops), and two such transactions never wait on each
    /// other in a cycle. Accounts that no longer exist are skipped (the rule reports them).
    pub fn lock_accounts(&mut self, accounts: &[AccountId]) -> Result<()> {
        let mut ids = accounts.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > 1 {
            self.tx.execute(
                "SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )?;
        }
        Ok(())
    }

    /// Locks the blob rows a rule will count references on, in hash order, after the
    /// accounts: blob rows are what transactions of different accounts share, and the
    /// rules take them in message order, so two MULTIAPPENDs (or an expunge and a
    /// copy) of the same bodies in opposite orders would otherwise deadlock, and keep
    /// doing so when run again. Rows that do not exist yet are not locked.
    pub fn lock_blobs(&mut self, hashes: &[&[u8]]) -> Result<()> {
        if hashes.len() > 1 {
            self.tx.execute(
                "SELECT 1 FROM blobs WHERE hash = ANY($1) ORDER BY hash FOR UPDATE",
                &[&hashes],
            )?;
        }
        Ok(())
    }

    /// [`Self::lock_blobs`] for the blob rows of stored messages.
    pub fn lock_blobs_of(&mut self, mailbox: MailboxId, uids: &[u32]) -> Result<()> {
        if uids.len() > 1 {
            self.tx.execute(
                "SELECT 1 FROM blobs WHERE hash IN
                     (SELECT blob FROM messages WHERE mailbox_id = $1 AND uid = ANY($2))
                 ORDER BY hash FOR UPDATE",
                &[&mailbox, &super::messages::uid_array(uids)],
            )?;
        }
        Ok(())
    }
}

impl StoreTx for PgTx<'_, '_> {
    type Prepared = PgPrepared;

    fn options(&self) -> &StoreOptions {
        self.opts
    }

    fn push_change(&mut self, change: Change) {
        self.changes.push(change);
    }

    fn savepoint(&mut self, name: &'static str) -> Result<()> {
        self.tx.batch_execute(&format!("SAVEPOINT {name}"))?;
        Ok(())
    }

    fn release(&mut self, name: &'static str) -> Result<()> {
        self.tx.batch_execute(&format!("RELEASE SAVEPOINT {name}"))?;
        Ok(())
    }

    fn rollback_to(&mut self, name: &'static str) -> Result<()> {
        self.tx
            .batch_execute(&format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"))?;
        Ok(())
    }

    fn lock_account(&mut self, account: AccountId) -> Result<()> {
        self.tx
            .query_opt("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &[&account])?
            .ok_or_else(|| Error::NotFound(format!("account #{account}")))?;
        Ok(())
    }

    fn account(&mut self, account: AccountId) -> Result<Account> {
        let r = self
            .tx
            .query_opt(
                &format!("SELECT {} FROM accounts WHERE id = $1", rows::ACCOUNT_COLS),
                &[&account],
            )?
            .ok_or_else(|| Error::NotFound(format!("account #{account}")))?;
        Ok(account_from_row(&r, self.opts))
    }

    fn warn_state(&mut self, account: AccountId) -> Result<WarnState> {
        let r = self.tx.query_one(
            "SELECT warn_level, warn_pending FROM accounts WHERE id = $1",
            &[&account],
        )?;
        Ok(WarnState {
            level: r.get::<_, i32>(0).clamp(0, 100) as u8,
            pending: r.get::<_, i32>(1).clamp(0, 100) as u8,
        })
    }

    fn set_usage(&mut self, account: AccountId, used: u64, warn: WarnState) -> Result<()> {
        self.tx.execute(
            "UPDATE accounts SET quota_used = $2, warn_level = $3, warn_pending = $4 WHERE id = $1",
            &[
                &account,
                &(used.min(i64::MAX as u64) as i64),
                &i32::from(warn.level),
                &i32::from(warn.pending),
            ],
        )?;
        Ok(())
    }

    fn set_warn_state(&mut self, account: AccountId, warn: WarnState) -> Result<()> {
        self.tx.execute(
            "UPDATE accounts SET warn_level = $2, warn_pending = $3 WHERE id = $1",
            &[&account, &i32::from(warn.level), &i32::from(warn.pending)],
        )?;
        Ok(())
    }

    fn add_used(&mut self, account: AccountId, delta: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE accounts SET quota_used = GREATEST(quota_used + $2, 0) WHERE id = $1",
            &[&account, &delta],
        )?;
        Ok(())
    }

    fn set_used(&mut self, account: AccountId, used: u64) -> Result<()> {
        self.tx.execute(
            "UPDATE accounts SET quota_used = $2 WHERE id = $1",
            &[&account, &(used.min(i64::MAX as u64) as i64)],
        )?;
        Ok(())
    }

    fn set_limit(&mut self, account: AccountId, limit: QuotaLimit) -> Result<()> {
        self.tx.execute(
            "UPDATE accounts SET quota_limit = $2 WHERE id = $1",
            &[&account, &rows::quota_to_sql(limit)],
        )?;
        Ok(())
    }

    fn usage_rows(&mut self, address: Option<&str>) -> Result<Vec<(AccountId, String, i64)>> {
        let rs = match address {
            Some(a) => {
                let a = normalize_address(a);
                let rs = self.tx.query(
                    "SELECT id, address, quota_used FROM accounts WHERE address = $1",
                    &[&a],
                )?;
                if rs.is_empty() {
                    return Err(Error::NotFound(format!("user {a}")));
                }
                rs
            }
            None => self.tx.query(
                "SELECT id, address, quota_used FROM accounts ORDER BY address",
                &[],
            )?,
        };
        Ok(rs.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    fn stored_size(&mut self, account: AccountId) -> Result<u64> {
        let n: i64 = self
            .tx
            .query_one(
                "SELECT coalesce(sum(size), 0)::BIGINT FROM messages
                 WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = $1)",
                &[&account],
            )?
            .get(0);
        Ok(n.max(0) as u64)
    }

    fn mailbox(&mut self, id: MailboxId) -> Result<Mailbox> {
        rows::mailbox_by_id(&mut *self.tx, id)
    }

    fn mailbox_named(&mut self, account: AccountId, name: &str) -> Result<Mailbox> {
        rows::mailbox_named(&mut *self.tx, account, name)
    }

    fn create_mailbox(&mut self, account: AccountId, name: &str) -> Result<Mailbox> {
        let (mb, change) = rows::create_mailbox(&mut *self.tx, account, name, None)?;
        self.changes.push(change);
        Ok(mb)
    }

    fn take_uid_modseq(&mut self, mailbox: MailboxId) -> Result<(i64, u64)> {
        let r = self
            .tx
            .query_opt(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                 WHERE id = $1 RETURNING uidnext - 1, highestmodseq",
                &[&mailbox],
            )?
            .ok_or_else(|| Error::NotFound(format!("mailbox #{mailbox}")))?;
        Ok((r.get(0), r.get::<_, i64>(1) as u64))
    }

    fn take_modseq(&mut self, mailbox: MailboxId) -> Result<u64> {
        let r = self
            .tx
            .query_opt(
                "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1
                 RETURNING highestmodseq",
                &[&mailbox],
            )?
            .ok_or_else(|| Error::NotFound(format!("mailbox #{mailbox}")))?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    fn insert_row(&mut self, row: NewRow) -> Result<()> {
        // The row, and the copies of its blob's searchable head (pg/searchables.rs),
        // ENVELOPE and BODYSTRUCTURE renderings (crates/store/src/envelopes.rs,
        // bodystructures.rs) in the same statement.
        self.tx.execute(
            "WITH m AS (
               INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internal_date, size,
                                     prefix, blob, saved, sortkeys)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                       (SELECT sortkeys FROM blobs WHERE hash = $9))
               RETURNING mailbox_id, uid),
             s AS (
               INSERT INTO message_searchable (mailbox_id, uid, data)
               SELECT m.mailbox_id, m.uid, b.searchable FROM m JOIN blobs b ON b.hash = $9
               WHERE b.searchable IS NOT NULL),
             bs AS (
               INSERT INTO message_bodystructure (mailbox_id, uid, data)
               SELECT m.mailbox_id, m.uid, b.bodystructure FROM m JOIN blobs b ON b.hash = $9
               WHERE b.bodystructure IS NOT NULL)
             INSERT INTO message_envelope (mailbox_id, uid, data)
             SELECT m.mailbox_id, m.uid, b.envelope FROM m JOIN blobs b ON b.hash = $9
             WHERE b.envelope IS NOT NULL",
            &[
                &row.mailbox,
                &i64::from(row.uid),
                &(row.modseq as i64),
                &i32::from(row.flags.0),
                &row.keywords,
                &row.internal_date,
                &(row.size as i64),
                &row.prefix,
                &&row.blob.0[..],
                &now(),
            ],
        )?;
        Ok(())
    }

    fn message(&mut self, mailbox: MailboxId, uid: u32) -> Result<MessageMeta> {
        let r = self
            .tx
            .query_opt(
                &format!(
                    "SELECT {} FROM messages WHERE mailbox_id = $1 AND uid = $2",
                    rows::MESSAGE_COLS
                ),
                &[&mailbox, &i64::from(uid)],
            )?
            .ok_or_else(|| Error::NotFound(format!("message UID {uid}")))?;
        Ok(meta_from_row(&r))
    }

    fn copy_row(&mut self, mailbox: MailboxId, uid: u32) -> Result<Option<CopyRow>> {
        Ok(self
            .tx
            .query_opt(
                "SELECT uid, flags, keywords, internal_date, size, prefix, blob FROM messages
                 WHERE mailbox_id = $1 AND uid = $2",
                &[&mailbox, &i64::from(uid)],
            )?
            .map(|r| CopyRow {
                uid: r.get::<_, i64>(0) as u32,
                flags: Flags(r.get::<_, i32>(1) as u8),
                keywords: r.get(2),
                internal_date: r.get(3),
                size: r.get::<_, i64>(4).max(0) as u64,
                prefix: r.get(5),
                blob: r.get(6),
            }))
    }

    fn set_flags(
        &mut self,
        mailbox: MailboxId,
        uid: u32,
        flags: Flags,
        keywords: &str,
        modseq: u64,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE messages SET flags = $3, keywords = $4, modseq = $5
             WHERE mailbox_id = $1 AND uid = $2",
            &[
                &mailbox,
                &i64::from(uid),
                &i32::from(flags.0),
                &keywords,
                &(modseq as i64),
            ],
        )?;
        Ok(())
    }

    fn delete_row(&mut self, mailbox: MailboxId, uid: u32) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self
            .tx
            .query_opt(
                "DELETE FROM messages WHERE mailbox_id = $1 AND uid = $2 RETURNING size, blob",
                &[&mailbox, &i64::from(uid)],
            )?
            .map(|r| (r.get::<_, i64>(0).max(0) as u64, r.get(1))))
    }

    fn record_expunged(&mut self, mailbox: MailboxId, uid: u32, modseq: u64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES ($1, $2, $3)
             ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq",
            &[&mailbox, &i64::from(uid), &(modseq as i64)],
        )?;
        Ok(())
    }

    /// The save date is the message row's own `saved` column, written by
    /// [`StoreTx::insert_row`].
    fn record_saved(&mut self, _mailbox: MailboxId, _uid: u32) -> Result<()> {
        Ok(())
    }

    /// Leaves with the message row.
    fn forget_saved(&mut self, _mailbox: MailboxId, _uid: u32) -> Result<()> {
        Ok(())
    }

    fn prepared_id<'p>(&self, prep: &'p PgPrepared) -> &'p BlobId {
        &prep.id
    }

    /// Inserts the blob row (or counts one more reference on it). The row is locked by
    /// the upsert until commit, so a collection running at the same time either removed
    /// it (with its file, or queued its object) before, and the row is new here, or
    /// waits and then finds it referenced. A new row without inline octets, or one
    /// brought back from zero references, pins its octets against collection until
    /// commit and makes sure they are stored (`pg/objects.rs`): an object this call held
    /// and uploaded is trusted while its hold is there; otherwise the file or object is
    /// looked for and written again if a collector removed it meanwhile.
    fn take_blob_ref(
        &mut self,
        id: &BlobId,
        body: Option<&[u8]>,
        prep: Option<&PgPrepared>,
    ) -> Result<()> {
        let uploaded = prep.is_some_and(|p| p.uploaded);
        let split = prep.and_then(|p| p.split.as_ref());
        // (A split body's octets are its skeleton and parts, which keep their
        // references while its row stays, even at zero: `pg/parts.rs`.)
        let bumped = self.tx.query_opt(
            "UPDATE blobs SET refcount = refcount + 1 WHERE hash = $1
             RETURNING refcount - 1,
                       data IS NULL AND NOT EXISTS (SELECT 1 FROM blob_split s WHERE s.hash = $1)",
            &[&&id.0[..]],
        )?;
        let missing = || Error::Io(std::io::Error::other(format!("blob {} is missing", id.hex())));
        if let Some(r) = bumped {
            // A row at zero may have lost its file to a collection that then failed to
            // commit, or have its object queued for deletion: a body at hand puts it back.
            if r.get::<_, i64>(0) <= 0 && r.get::<_, bool>(1) {
                self.pin_object(KIND_BLOB, id)?;
                if !self.object_present(KIND_BLOB, id, uploaded)? {
                    self.blobs.put(id, body.ok_or_else(missing)?)?;
                }
            }
            if uploaded {
                self.release_hold(KIND_BLOB, id)?;
            }
            if let Some(sp) = split {
                self.release_split_holds(sp)?;
            }
            return Ok(());
        }
        let body = body.ok_or_else(missing)?;
        let fresh;
        let enc = match prep.and_then(|p| p.encoded.as_ref()) {
            Some(e) => e,
            None => {
                fresh = crate::body::encode_parsed(body);
                &fresh
            }
        };
        let compressed;
        let inline: Option<&[u8]> = match prep.and_then(|p| p.inline.as_deref()) {
            Some(d) => Some(d),
            None if body.len() as u64 <= self.opts.inline_max => {
                compressed = blob::compress(body)?;
                Some(&compressed[..])
            }
            None => None,
        };
        let inserted: bool = self.tx.query_one(
            "INSERT INTO blobs (hash, size, refcount, data, structure, header, search, grams,
                                bare_lf, ends_lf, bodystructure, searchable, sortkeys, envelope)
             VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (hash) DO UPDATE SET refcount = blobs.refcount + 1
             RETURNING (xmax = 0)",
            &[
                &&id.0[..],
                &(body.len() as i64),
                &inline,
                &enc.structure,
                &enc.header,
                &enc.search,
                &enc.grams,
                &(enc.line_ends.bare_lf as i64),
                &enc.line_ends.ends_with_lf,
                &enc.bodystructure,
                &enc.searchable,
                &enc.sortkeys,
                &enc.envelope,
            ],
        )?.get(0);
        match split {
            // Stored as its skeleton and shared parts (`pg/parts.rs`).
            Some(sp) if inserted => self.put_split(id, body, sp)?,
            Some(sp) => self.release_split_holds(sp)?,
            None if inserted && inline.is_none() => {
                // Also held against collection's orphan file sweep (maintenance.rs).
                self.pin_object(KIND_BLOB, id)?;
                if !self.object_present(KIND_BLOB, id, uploaded)? {
                    self.blobs.put(id, body)?;
                }
            }
            None => {}
        }
        if uploaded {
            self.release_hold(KIND_BLOB, id)?;
        }
        Ok(())
    }

    fn drop_blob_ref(&mut self, hash: &[u8]) -> Result<()> {
        self.tx.execute(
            "UPDATE blobs SET refcount = refcount - 1 WHERE hash = $1",
            &[&hash],
        )?;
        Ok(())
    }

    /// A refused write's file stays until the next collection: another delivery of the
    /// same body on another node may be about to reference it, and [`Backend::gc`] only
    /// removes files no row names.
    fn discard_prepared(&mut self, _prep: &PgPrepared) -> Result<()> {
        Ok(())
    }
}
