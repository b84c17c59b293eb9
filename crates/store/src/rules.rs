//! The store's rules, written once for every backend: UID and MODSEQ assignment, quota
//! enforcement, usage and warnings, blob references, flag changes, expunge, copy/move and
//! delivery. A backend contributes only a transaction, [`StoreTx`]: small query methods
//! (read a mailbox, take the next UID and MODSEQ, insert a message row, delete one, adjust
//! a blob's references, read and write an account's usage...) that decide nothing.
//!
//! # The shape
//! A [`crate::Backend`] method of the message path is three steps:
//! 1. outside any transaction, the backend prepares what is slow and needs no lock (hash,
//!    parse and compress a body; write a large one's file): its [`StoreTx::Prepared`];
//! 2. it opens a transaction and hands it to a function here ([`append_many`],
//!    [`deliver_to`], [`store_flags`], [`expunge`], [`copy`], [`move_messages`],
//!    [`set_quota_limit`], [`recalc_quota`]), which reads, decides, and writes through the
//!    [`StoreTx`] methods, queueing change-feed events with [`StoreTx::push_change`];
//! 3. it commits (fsynced for new mail), and only then answers and publishes the events.
//!
//! The rules never see SQL, a connection or a file; a backend never decides a UID, a
//! MODSEQ, a quota refusal or a warning. Conformance is checked by one test suite run
//! against every backend (`conformance.rs`).
//!
//! # How the two backends fit
//! The [`crate::Backend`] trait stays synchronous: protocol crates reach it through
//! [`crate::Store::run`] on tokio's blocking pool, so a blocking transaction is in its
//! right place.
//! - SQLite (`sqlite.rs`, rusqlite): one writer thread batches the queued jobs into one
//!   `BEGIN IMMEDIATE` transaction (group commit: one fsync for many deliveries); each job
//!   runs in its own savepoint, and its [`StoreTx`] is that savepoint (`sqlite_tx.rs`).
//!   Being the only writer, it needs no row locks.
//! - PostgreSQL (planned, issue 17): the synchronous `postgres` crate (tokio-postgres
//!   driven by its own small runtime) with a connection pool, one transaction per call on
//!   the caller's blocking thread; PostgreSQL's own group commit batches the fsyncs. Its
//!   [`StoreTx`] takes row locks where SQLite needs none: [`StoreTx::lock_account`] is
//!   `SELECT ... FOR UPDATE`, and [`StoreTx::take_uid_modseq`] is `UPDATE mailboxes SET
//!   uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 ... RETURNING`, so the UID,
//!   the MODSEQ, the message row and the usage are one transaction: nothing is stored
//!   without a UID, and since the mailbox row stays locked until commit, commit order is
//!   MODSEQ order (what a reader of changes by MODSEQ relies on, RFC 7162 3.1).
//!
//! # Lock order
//! Every rule that changes usage takes the account first ([`StoreTx::lock_account`]),
//! then mailbox rows, then blob rows, so that two PostgreSQL transactions never wait on
//! each other in a cycle. SQLite's implementation of the lock is a no-op.
//!
//! # Invariants kept here (see the crate doc)
//! - UIDs strictly increase and MODSEQs are taken from the mailbox's HIGHESTMODSEQ (RFC
//!   3501 2.3.1.1, RFC 7162 3.1.1); one change to many messages takes one MODSEQ; an
//!   expunged UID is recorded with its MODSEQ (RFC 7162 3.2.5, VANISHED).
//! - `quota_used` moves in the same transaction as every insert and delete, by exactly the
//!   sizes inserted or deleted; a refusal over quota stores nothing.
//! - A blob gains one reference per message row pointing at it and loses one per row
//!   deleted.

use crate::*;
use std::collections::BTreeSet;

/// A message row as the rules insert it.
pub(crate) struct NewRow<'a> {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub modseq: u64,
    pub flags: Flags,
    /// Space-separated keywords ([`join_keywords`]).
    pub keywords: &'a str,
    pub internal_date: i64,
    pub size: u64,
    pub prefix: &'a [u8],
    pub blob: &'a BlobId,
}

/// A stored message row as COPY needs it.
pub(crate) struct CopyRow {
    pub uid: u32,
    pub flags: Flags,
    pub keywords: String,
    pub internal_date: i64,
    pub size: u64,
    pub prefix: Vec<u8>,
    pub blob: Vec<u8>,
}

/// An account's usage and warning state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WarnState {
    /// The highest threshold crossed and not fallen below since.
    pub level: u8,
    /// A threshold crossed whose warning nobody has sent yet (0: none).
    pub pending: u8,
}

/// One backend transaction, as the rules use it. Methods are queries: none decides.
/// Errors abort the rule, and the backend rolls the transaction (or savepoint) back.
pub(crate) trait StoreTx {
    /// What the backend made of a body before the transaction (its hash, parse, and
    /// octets written or compressed).
    type Prepared;

    fn options(&self) -> &StoreOptions;
    fn push_change(&mut self, change: Change);

    /// A nested savepoint, so that one recipient's failure undoes only its own rows.
    fn savepoint(&mut self, name: &'static str) -> Result<()>;
    fn release(&mut self, name: &'static str) -> Result<()>;
    fn rollback_to(&mut self, name: &'static str) -> Result<()>;

    // Accounts.
    /// Locks the account row until commit (PostgreSQL `FOR UPDATE`; SQLite: nothing, its
    /// writer is alone).
    fn lock_account(&mut self, account: AccountId) -> Result<()>;
    /// The account, its default limit resolved.
    fn account(&mut self, account: AccountId) -> Result<Account>;
    fn warn_state(&mut self, account: AccountId) -> Result<WarnState>;
    /// Writes usage and warning state together.
    fn set_usage(&mut self, account: AccountId, used: u64, warn: WarnState) -> Result<()>;
    fn set_warn_state(&mut self, account: AccountId, warn: WarnState) -> Result<()>;
    /// Adds `delta` to the usage (clamped at 0), warning state untouched.
    fn add_used(&mut self, account: AccountId, delta: i64) -> Result<()>;
    /// Sets the usage, warning state untouched.
    fn set_used(&mut self, account: AccountId, used: u64) -> Result<()>;
    fn set_limit(&mut self, account: AccountId, limit: QuotaLimit) -> Result<()>;
    /// `(id, address, stored usage)` of one account (`address`) or of all, by address.
    fn usage_rows(&mut self, address: Option<&str>) -> Result<Vec<(AccountId, String, i64)>>;
    /// The sum of the sizes of the account's messages.
    fn stored_size(&mut self, account: AccountId) -> Result<u64>;

    // Mailboxes.
    fn mailbox(&mut self, id: MailboxId) -> Result<Mailbox>;
    fn mailbox_named(&mut self, account: AccountId, name: &str) -> Result<Mailbox>;
    /// Creates a mailbox (name validated, `Exists` when taken), with a new UIDVALIDITY.
    fn create_mailbox(&mut self, account: AccountId, name: &str) -> Result<Mailbox>;
    /// Takes the next UID and a new MODSEQ of the mailbox, in one statement. The UID is
    /// wider than `u32` so that the rules can refuse an exhausted mailbox.
    fn take_uid_modseq(&mut self, mailbox: MailboxId) -> Result<(i64, u64)>;
    /// Takes a new MODSEQ of the mailbox.
    fn take_modseq(&mut self, mailbox: MailboxId) -> Result<u64>;

    // Messages.
    /// Inserts a message row, with a copy of its blob's BODYSTRUCTURE rendering when
    /// the blob has one (issue 18, `bodystructures.rs`: a mailbox's renderings are then
    /// read in one pass over its rows). Every insert (delivery, APPEND, COPY, MOVE,
    /// import, replace) takes the blob's reference first ([`Self::take_blob_ref`]), so
    /// the blob's parse, and its rendering, are stored by then; the copy goes with the
    /// row ([`Self::delete_row`]).
    fn insert_row(&mut self, row: NewRow) -> Result<()>;
    fn message(&mut self, mailbox: MailboxId, uid: u32) -> Result<MessageMeta>;
    fn copy_row(&mut self, mailbox: MailboxId, uid: u32) -> Result<Option<CopyRow>>;
    fn set_flags(
        &mut self,
        mailbox: MailboxId,
        uid: u32,
        flags: Flags,
        keywords: &str,
        modseq: u64,
    ) -> Result<()>;
    /// Deletes a message row; its size and blob hash when there was one.
    fn delete_row(&mut self, mailbox: MailboxId, uid: u32) -> Result<Option<(u64, Vec<u8>)>>;
    /// Remembers an expunged UID with its MODSEQ.
    fn record_expunged(&mut self, mailbox: MailboxId, uid: u32, modseq: u64) -> Result<()>;
    /// The save date automatic expiry counts from (`expire.rs`).
    fn record_saved(&mut self, mailbox: MailboxId, uid: u32) -> Result<()>;
    fn forget_saved(&mut self, mailbox: MailboxId, uid: u32) -> Result<()>;

    // Blobs.
    fn prepared_id<'p>(&self, prep: &'p Self::Prepared) -> &'p BlobId;
    /// Takes one reference on a blob, storing its octets first when nothing holds them
    /// (`body` and `prep`: what to store; `None` when copying a stored message).
    fn take_blob_ref(
        &mut self,
        id: &BlobId,
        body: Option<&[u8]>,
        prep: Option<&Self::Prepared>,
    ) -> Result<()>;
    fn drop_blob_ref(&mut self, hash: &[u8]) -> Result<()>;
    /// Removes the octets a refused write prepared when no message uses them.
    fn discard_prepared(&mut self, prep: &Self::Prepared) -> Result<()>;
}

/// Keywords are IMAP atoms: no spaces, controls, or atom-specials.
pub(crate) fn check_keywords(keywords: &[String]) -> Result<()> {
    const MAX_KEYWORD: usize = 128;
    for k in keywords {
        let bad = k.is_empty()
            || k.len() > MAX_KEYWORD
            || k.starts_with('\\')
            || k.chars()
                .any(|c| c.is_control() || c.is_whitespace() || "(){%*\"]".contains(c));
        if bad {
            return Err(Error::Invalid(format!("invalid keyword '{k}'")));
        }
    }
    Ok(())
}

/// Keywords as stored: sorted, space-separated.
pub(crate) fn join_keywords(k: &BTreeSet<String>) -> String {
    k.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// Percent of the limit, and the highest warning threshold at or below it.
pub(crate) fn warn_level_for(used: u64, limit: Option<u64>, thresholds: &[u8]) -> u8 {
    let Some(limit) = limit else { return 0 };
    let pct = if limit == 0 {
        100
    } else {
        (used as u128 * 100 / limit as u128) as u64
    };
    thresholds
        .iter()
        .copied()
        .filter(|&t| u64::from(t) <= pct)
        .max()
        .unwrap_or(0)
}

/// Adds `delta` octets to an account's usage, keeping the warning state; returns the
/// threshold crossed upward, if any. A crossing leaves a pending warning until someone
/// sends it (see `Backend::take_pending_warning`); falling below a level cancels it.
pub(crate) fn add_usage<T: StoreTx + ?Sized>(
    tx: &mut T,
    account: AccountId,
    delta: i64,
) -> Result<Option<u8>> {
    let acct = tx.account(account)?;
    let used = (acct.quota_used as i64 + delta).max(0) as u64;
    let old = tx.warn_state(account)?;
    let level = warn_level_for(used, acct.effective_limit, &tx.options().warn_at);
    let crossed = (level > old.level).then_some(level);
    let pending = if crossed.is_some() {
        level
    } else if old.pending > level {
        0
    } else {
        old.pending
    };
    tx.set_usage(account, used, WarnState { level, pending })?;
    Ok(crossed)
}

/// Refuses with [`Error::OverQuota`] when `extra` octets would not fit.
pub(crate) fn check_quota<T: StoreTx + ?Sized>(
    tx: &mut T,
    account: AccountId,
    extra: u64,
) -> Result<()> {
    let acct = tx.account(account)?;
    if let Some(limit) = acct.effective_limit {
        if acct.quota_used.saturating_add(extra) > limit {
            return Err(Error::OverQuota);
        }
    }
    Ok(())
}

/// Sets an account's quota limit (the CLI's `quota set` and an approved quota request).
/// Warnings are re-armed below the new percentage, but a threshold is never marked as
/// warned without a warning: a lowered quota warns at the next delivery. The change
/// itself leaves no pending warning either (the crossing [`add_usage`] records here is
/// undone with the level), or the sweep would send one and the next delivery, crossing
/// again, a second.
pub(crate) fn set_quota_limit<T: StoreTx + ?Sized>(
    tx: &mut T,
    account: AccountId,
    limit: QuotaLimit,
) -> Result<()> {
    tx.lock_account(account)?;
    tx.set_limit(account, limit)?;
    let before = tx.warn_state(account)?;
    add_usage(tx, account, 0)?;
    let now = tx.warn_state(account)?;
    tx.set_warn_state(
        account,
        WarnState {
            level: now.level.min(before.level),
            pending: now.pending.min(before.pending),
        },
    )
}

/// Recomputes usage from the stored sizes, for one account or all.
pub(crate) fn recalc_quota<T: StoreTx + ?Sized>(
    tx: &mut T,
    address: Option<&str>,
) -> Result<Vec<Recalc>> {
    let mut out = Vec::new();
    for (id, address, before) in tx.usage_rows(address)? {
        tx.lock_account(id)?;
        let after = tx.stored_size(id)?;
        tx.set_used(id, after)?;
        add_usage(tx, id, 0)?;
        out.push(Recalc {
            address,
            before: before.max(0) as u64,
            after,
        });
    }
    Ok(out)
}

/// Inserts a message row with the mailbox's next UID and a new MODSEQ.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_message<T: StoreTx + ?Sized>(
    tx: &mut T,
    mailbox: &Mailbox,
    prefix: &[u8],
    blob: &BlobId,
    size: u64,
    flags: Flags,
    keywords: &str,
    internal_date: i64,
) -> Result<(u32, u64)> {
    let (uid, modseq) = tx.take_uid_modseq(mailbox.id)?;
    if uid > u32::MAX as i64 {
        return Err(Error::Refused("mailbox has run out of UIDs".into()));
    }
    let uid = uid as u32;
    tx.insert_row(NewRow {
        mailbox: mailbox.id,
        uid,
        modseq,
        flags,
        keywords,
        internal_date,
        size,
        prefix,
        blob,
    })?;
    tx.record_saved(mailbox.id, uid)?;
    tx.push_change(Change {
        account: mailbox.account_id,
        mailbox: mailbox.id,
        modseq,
        kind: ChangeKind::Added { uid },
    });
    Ok((uid, modseq))
}

/// Removes messages, recording them as expunged under one new MODSEQ, and gives their
/// octets back to the quota. Returns the UIDs removed.
pub(crate) fn expunge<T: StoreTx + ?Sized>(
    tx: &mut T,
    mailbox: &Mailbox,
    uids: &[u32],
) -> Result<Vec<u32>> {
    tx.lock_account(mailbox.account_id)?;
    let mut removed = Vec::new();
    let mut freed = 0i64;
    let mut modseq = None;
    for &uid in uids {
        let Some((size, blob)) = tx.delete_row(mailbox.id, uid)? else {
            continue;
        };
        tx.forget_saved(mailbox.id, uid)?;
        let m = match modseq {
            Some(m) => m,
            None => {
                let m = tx.take_modseq(mailbox.id)?;
                modseq = Some(m);
                m
            }
        };
        tx.drop_blob_ref(&blob)?;
        tx.record_expunged(mailbox.id, uid, m)?;
        freed += size as i64;
        removed.push(uid);
        tx.push_change(Change {
            account: mailbox.account_id,
            mailbox: mailbox.id,
            modseq: m,
            kind: ChangeKind::Expunged { uid },
        });
    }
    if freed > 0 {
        add_usage(tx, mailbox.account_id, -freed)?;
    }
    Ok(removed)
}

/// Copies messages into `to`; with `quota`, refuses when the total would not fit.
pub(crate) fn copy<T: StoreTx + ?Sized>(
    tx: &mut T,
    from: &Mailbox,
    uids: &[u32],
    to: &Mailbox,
    quota: bool,
) -> Result<Vec<(u32, u32)>> {
    tx.lock_account(to.account_id)?;
    let mut rows = Vec::new();
    for &uid in uids {
        rows.extend(tx.copy_row(from.id, uid)?);
    }
    if quota {
        let total: u64 = rows.iter().map(|r| r.size).sum();
        if from.account_id != to.account_id || total > 0 {
            check_quota(tx, to.account_id, total)?;
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut added = 0i64;
    for r in rows {
        let id = BlobId(
            r.blob
                .as_slice()
                .try_into()
                .map_err(|_| Error::Invalid("bad blob id".into()))?,
        );
        tx.take_blob_ref(&id, None, None)?;
        let (new_uid, _) = insert_message(
            tx,
            to,
            &r.prefix,
            &id,
            r.size,
            r.flags,
            &r.keywords,
            r.internal_date,
        )?;
        added += r.size as i64;
        out.push((r.uid, new_uid));
    }
    if added > 0 {
        add_usage(tx, to.account_id, added)?;
    }
    Ok(out)
}

/// MOVE (RFC 6851): a copy, then an expunge of the originals, in one transaction. Within
/// one account the quota is not checked (the usage does not grow).
pub(crate) fn move_messages<T: StoreTx + ?Sized>(
    tx: &mut T,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
) -> Result<Vec<(u32, u32)>> {
    let src = tx.mailbox(from)?;
    let dst = tx.mailbox(to)?;
    let pairs = copy(tx, &src, uids, &dst, src.account_id != dst.account_id)?;
    let moved: Vec<u32> = pairs.iter().map(|p| p.0).collect();
    expunge(tx, &src, &moved)?;
    Ok(pairs)
}

/// One message of [`append_many`], its body prepared and its keywords joined.
pub(crate) struct PreparedMessage<P> {
    pub msg: NewMessage,
    pub prep: P,
    pub keywords: String,
}

/// APPEND of one or more messages (RFC 3502 MULTIAPPEND: all or nothing). Without
/// `arm_warning` (a notice the server writes itself), the usage grows but no quota
/// warning is armed. The crossed warning, if any, is reported on the last message.
pub(crate) fn append_many<T: StoreTx + ?Sized>(
    tx: &mut T,
    mailbox: MailboxId,
    prepared: &[PreparedMessage<T::Prepared>],
    enforce_quota: bool,
    arm_warning: bool,
) -> Result<Vec<Appended>> {
    let mb = tx.mailbox(mailbox)?;
    tx.lock_account(mb.account_id)?;
    let total: u64 = prepared
        .iter()
        .map(|p| (p.msg.prefix.len() + p.msg.body.len()) as u64)
        .sum();
    if enforce_quota {
        if let Err(e) = check_quota(tx, mb.account_id, total) {
            for p in prepared {
                tx.discard_prepared(&p.prep)?;
            }
            return Err(e);
        }
    }
    let mut out = Vec::with_capacity(prepared.len());
    for p in prepared {
        let size = (p.msg.prefix.len() + p.msg.body.len()) as u64;
        let id = tx.prepared_id(&p.prep);
        tx.take_blob_ref(id, Some(&p.msg.body), Some(&p.prep))?;
        let (uid, modseq) = insert_message(
            tx,
            &mb,
            &p.msg.prefix,
            id,
            size,
            p.msg.flags,
            &p.keywords,
            p.msg.internal_date,
        )?;
        out.push(Appended {
            mailbox: mb.id,
            uidvalidity: mb.uidvalidity,
            uid,
            modseq,
            crossed_warning: None,
        });
    }
    let crossed = if arm_warning {
        add_usage(tx, mb.account_id, total as i64)?
    } else {
        tx.add_used(mb.account_id, total as i64)?;
        None
    };
    if let Some(last) = out.last_mut() {
        last.crossed_warning = crossed;
    }
    Ok(out)
}

/// The mailbox a delivery goes to: `name` when it exists; created first when it does
/// not and `create` is set (Sieve `fileinto :create`, RFC 5490); INBOX otherwise, and
/// for a name that is not a valid mailbox name (RFC 5228 4.1: a failed fileinto must
/// not lose the message).
pub(crate) fn delivery_mailbox<T: StoreTx + ?Sized>(
    tx: &mut T,
    account: AccountId,
    name: &str,
    create: bool,
) -> Result<Mailbox> {
    if name != "INBOX" {
        if let Ok(n) = normalize_mailbox_name(name) {
            match tx.mailbox_named(account, &n) {
                Ok(mb) => return Ok(mb),
                Err(Error::NotFound(_)) if create => {
                    if let Ok(mb) = tx.create_mailbox(account, &n) {
                        return Ok(mb);
                    }
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    tx.mailbox_named(account, "INBOX")
}

/// One recipient of [`deliver_to`], in its own savepoint: its failure (over quota, a
/// vanished account) undoes only its own rows.
fn deliver_one<T: StoreTx + ?Sized>(
    tx: &mut T,
    body: &[u8],
    internal_date: i64,
    item: &Delivery,
    enforce_quota: bool,
    prep: &T::Prepared,
) -> Result<Appended> {
    let account = item.account;
    tx.lock_account(account)?;
    let mb = delivery_mailbox(tx, account, &item.mailbox, item.create)?;
    let prefix = &item.prefix;
    let size = (prefix.len() + body.len()) as u64;
    if enforce_quota {
        check_quota(tx, account, size)?;
    }
    let id = tx.prepared_id(prep);
    tx.take_blob_ref(id, Some(body), Some(prep))?;
    // Keywords a filter asked for that are not IMAP atoms are dropped, never a reason to
    // lose the message.
    let keywords: BTreeSet<String> = item
        .keywords
        .iter()
        .filter(|k| check_keywords(std::slice::from_ref(*k)).is_ok())
        .cloned()
        .collect();
    let (uid, modseq) = insert_message(
        tx,
        &mb,
        prefix,
        id,
        size,
        item.flags,
        &join_keywords(&keywords),
        internal_date,
    )?;
    let crossed = add_usage(tx, account, size as i64)?;
    Ok(Appended {
        mailbox: mb.id,
        uidvalidity: mb.uidvalidity,
        uid,
        modseq,
        crossed_warning: crossed,
    })
}

/// Delivery of one body to many recipients (LMTP, SMTP local delivery, Sieve actions):
/// one result per recipient. When every recipient fails, the prepared octets are
/// discarded.
pub(crate) fn deliver_to<T: StoreTx + ?Sized>(
    tx: &mut T,
    body: &[u8],
    internal_date: i64,
    items: &[Delivery],
    enforce_quota: bool,
    prep: &T::Prepared,
) -> Result<Vec<Result<Appended>>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let one = (|| -> Result<Appended> {
            tx.savepoint("rcpt")?;
            let r = deliver_one(tx, body, internal_date, item, enforce_quota, prep);
            match &r {
                Ok(_) => tx.release("rcpt")?,
                Err(_) => tx.rollback_to("rcpt")?,
            }
            r
        })()
        .map_err(crate::disk::classify);
        out.push(one);
    }
    if out.iter().all(|r| r.is_err()) {
        tx.discard_prepared(prep)?;
    }
    Ok(out)
}

/// STORE (RFC 3501 6.4.6) with UNCHANGEDSINCE (RFC 7162 3.1.3): one new MODSEQ for all
/// the messages that change; an unchanged message keeps its MODSEQ and is still
/// reported; one modified since `unchanged_since` is listed as such and left alone.
pub(crate) fn store_flags<T: StoreTx + ?Sized>(
    tx: &mut T,
    mailbox: MailboxId,
    uids: &[u32],
    op: FlagOp,
    flags: Flags,
    keywords: &BTreeSet<String>,
    unchanged_since: Option<u64>,
) -> Result<StoreResult> {
    let mb = tx.mailbox(mailbox)?;
    let mut result = StoreResult::default();
    let mut modseq = None;
    for &uid in uids {
        let Ok(m) = tx.message(mailbox, uid) else { continue };
        if unchanged_since.is_some_and(|u| m.modseq > u) {
            result.modified.push(uid);
            continue;
        }
        let old_kw: BTreeSet<String> = m.keywords.iter().cloned().collect();
        let (nf, nk) = match op {
            FlagOp::Add => (m.flags.union(flags), old_kw.union(keywords).cloned().collect()),
            FlagOp::Remove => (
                m.flags.minus(flags),
                old_kw.difference(keywords).cloned().collect(),
            ),
            FlagOp::Replace => (flags, keywords.clone()),
        };
        if nf == m.flags && nk == old_kw {
            // Unchanged: no new MODSEQ, but the caller still reports the flags.
            result.updated.push(FlagUpdate {
                uid,
                modseq: m.modseq,
                flags: nf,
                keywords: nk.into_iter().collect(),
            });
            continue;
        }
        let ms = match modseq {
            Some(ms) => ms,
            None => {
                let ms = tx.take_modseq(mailbox)?;
                modseq = Some(ms);
                ms
            }
        };
        tx.set_flags(mailbox, uid, nf, &join_keywords(&nk), ms)?;
        tx.push_change(Change {
            account: mb.account_id,
            mailbox,
            modseq: ms,
            kind: ChangeKind::Flags { uid },
        });
        result.updated.push(FlagUpdate {
            uid,
            modseq: ms,
            flags: nf,
            keywords: nk.into_iter().collect(),
        });
    }
    Ok(result)
}
