//! Importing mail with its identities kept (issue 16): a mailbox with a given
//! UIDVALIDITY, messages with given UIDs, and the POP3 UIDL each had before, so that
//! IMAP clients (RFC 9051 2.3.1.1: UIDs are valid only with their UIDVALIDITY) and
//! leave-on-server POP3 clients (RFC 1939 7: UIDL) see nothing new after a move.
//!
//! The rules stay those of the store:
//! - A UID is taken only if this mailbox never had it: not present, and not expunged
//!   (the `expunged` table keeps every UID ever removed, for QRESYNC), so a UID is never
//!   reused. An imported UID at or past UIDNEXT moves UIDNEXT past it; one below UIDNEXT
//!   that was never used is filled in (an import resumed after an interruption).
//! - Every imported message takes a new MODSEQ from the mailbox (RFC 7162), above the
//!   floor the importer sets from the source (`import_modseq_floor`: the highest
//!   mod-sequence the source can have shown), so a CONDSTORE client that kept a MODSEQ
//!   from the old server sees the messages changed and fetches their flags again (never
//!   their bodies: the UIDs are the same), and misses no later change.
//! - Quota usage grows with each message in the same transaction; an import is an
//!   operator's act and is not refused for quota (the caller reports an account left
//!   over its limit).
//! - Each message is recorded under a key naming it in its source (table `imported`), in
//!   the same transaction as its insert, so that a rerun after an interruption skips
//!   exactly what was stored.
//!
//! Inserts are durable writes (fsynced), as deliveries are, and publish `Added` on the
//! change feed, so imports run while `serve` runs and its sessions see the new mail.

use super::{get_mailbox, get_mailbox_by_id, join_keywords, SqliteBackend};
use crate::*;
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeSet;

/// What [`Backend::import_begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStart {
    /// The account had no mail: a fresh import.
    Fresh,
    /// An earlier run from the same source did not finish: this one resumes it.
    Resumed,
    /// The account has mail and the caller asked to merge.
    Merge,
}

impl ImportStart {
    /// The rule of [`Backend::import_begin`], the same on every backend: an unfinished run
    /// from the same source resumes; an account without mail starts fresh; one with mail
    /// takes an import only when the caller asked to merge.
    pub(crate) fn decide(unfinished: bool, has_mail: bool, merge: bool) -> Result<ImportStart> {
        if unfinished {
            Ok(ImportStart::Resumed)
        } else if !has_mail {
            Ok(ImportStart::Fresh)
        } else if merge {
            Ok(ImportStart::Merge)
        } else {
            Err(Error::Refused(
                "the account already has mail; use --merge to import into it anyway".into(),
            ))
        }
    }
}

/// A mailbox made ready for an import.
#[derive(Debug, Clone)]
pub struct ImportMailbox {
    pub mailbox: Mailbox,
    /// The mailbox has the source's UIDVALIDITY: messages keep their UIDs. False when an
    /// existing mailbox with mail under another UIDVALIDITY receives them (a merge): they
    /// then get new UIDs.
    pub keeps_uids: bool,
}

/// What became of one imported message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Stored under this UID (the one asked for, if any and it was free).
    Stored { uid: u32, modseq: u64 },
    /// An earlier run stored it already (same key): nothing done.
    AlreadyImported,
}

/// One message to import.
#[derive(Debug, Clone)]
pub struct ImportMessage {
    /// Names the message in its source; unique within the account.
    pub key: String,
    /// The UID to keep, if the source had one and the mailbox keeps UIDs.
    pub uid: Option<u32>,
    pub message: NewMessage,
    /// The POP3 UIDL to serve for it (INBOX only, where POP3 looks).
    pub pop3_uidl: Option<String>,
}

/// The longest UIDL RFC 1939 allows: 70 characters in 0x21..=0x7E.
const MAX_UIDL: usize = 70;

/// What every backend checks of a message to import before storing it: keywords,
/// the POP3 UIDL (RFC 1939 7), a UID other than 0.
pub(crate) fn validate(msg: &ImportMessage) -> Result<()> {
    crate::sqlite::check_keywords(&msg.message.keywords)?;
    if let Some(u) = &msg.pop3_uidl {
        if u.is_empty() || u.len() > MAX_UIDL || !u.bytes().all(|c| (0x21..=0x7e).contains(&c)) {
            return Err(Error::Invalid(format!("invalid POP3 UIDL '{u}'")));
        }
    }
    if msg.uid == Some(0) {
        return Err(Error::Invalid("UID 0 is not valid".into()));
    }
    Ok(())
}

pub(super) fn begin(
    b: &SqliteBackend,
    account: AccountId,
    source: String,
    merge: bool,
) -> Result<ImportStart> {
    b.write(move |ctx| {
        let unfinished: bool = ctx
            .tx
            .query_row(
                "SELECT 1 FROM import_runs WHERE account_id = ?1 AND source = ?2 AND finished IS NULL",
                params![account, source],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        let has_mail: bool = ctx
            .tx
            .query_row(
                "SELECT 1 FROM messages WHERE mailbox_id IN
                   (SELECT id FROM mailboxes WHERE account_id = ?1) LIMIT 1",
                [account],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        let start = ImportStart::decide(unfinished, has_mail, merge)?;
        ctx.tx.execute(
            "INSERT INTO import_runs (account_id, source, finished) VALUES (?1, ?2, NULL)
             ON CONFLICT (account_id, source) DO UPDATE SET finished = NULL",
            params![account, source],
        )?;
        Ok(start)
    })
}

pub(super) fn finish(b: &SqliteBackend, account: AccountId, source: String) -> Result<()> {
    b.write(move |ctx| {
        ctx.tx.execute(
            "UPDATE import_runs SET finished = ?3 WHERE account_id = ?1 AND source = ?2",
            params![account, source, now()],
        )?;
        Ok(())
    })
}

pub(super) fn mailbox(
    b: &SqliteBackend,
    account: AccountId,
    name: String,
    uidvalidity: u32,
) -> Result<ImportMailbox> {
    if uidvalidity == 0 {
        return Err(Error::Invalid("UIDVALIDITY 0 is not valid".into()));
    }
    b.write(move |ctx| {
        // UIDVALIDITYs handed out later (a mailbox deleted and made again) stay above
        // every imported one.
        ctx.tx.execute(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            [i64::from(uidvalidity)],
        )?;
        let name = normalize_mailbox_name(&name)?;
        let existing = get_mailbox(&ctx.tx, account, &name).ok();
        let mb = match existing {
            None => {
                let name = validate_new_mailbox_name(&name)?;
                ctx.tx.execute(
                    "INSERT INTO mailboxes (account_id, name, uidvalidity) VALUES (?1, ?2, ?3)",
                    params![account, name, uidvalidity],
                )?;
                let mb = get_mailbox_by_id(&ctx.tx, ctx.tx.last_insert_rowid())?;
                ctx.changes.push(Change {
                    account,
                    mailbox: mb.id,
                    modseq: mb.highestmodseq,
                    kind: ChangeKind::MailboxCreated { name: name.clone() },
                });
                return Ok(ImportMailbox {
                    mailbox: mb,
                    keeps_uids: true,
                });
            }
            Some(mb) => mb,
        };
        if mb.uidvalidity == uidvalidity {
            return Ok(ImportMailbox {
                mailbox: mb,
                keeps_uids: true,
            });
        }
        // A mailbox that never held a message (the defaults every account gets) takes
        // the source's UIDVALIDITY: no client can have cached anything of it.
        let used: bool = ctx
            .tx
            .query_row(
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1)
                    OR EXISTS (SELECT 1 FROM expunged WHERE mailbox_id = ?1)",
                [mb.id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if used || mb.uidnext != 1 {
            return Ok(ImportMailbox {
                mailbox: mb,
                keeps_uids: false,
            });
        }
        ctx.tx.execute(
            "UPDATE mailboxes SET uidvalidity = ?2 WHERE id = ?1",
            params![mb.id, uidvalidity],
        )?;
        Ok(ImportMailbox {
            mailbox: get_mailbox_by_id(&ctx.tx, mb.id)?,
            keeps_uids: true,
        })
    })
}

pub(super) fn message(
    b: &SqliteBackend,
    mailbox: MailboxId,
    msg: ImportMessage,
) -> Result<Imported> {
    validate(&msg)?;
    let prep = b.prepare_blob(&msg.message.body)?;
    b.write(move |ctx| {
        let mb = get_mailbox_by_id(&ctx.tx, mailbox)?;
        let done = ctx
            .tx
            .prepare_cached("SELECT 1 FROM imported WHERE account_id = ?1 AND key = ?2")?
            .query_row(params![mb.account_id, msg.key], |_| Ok(()))
            .optional()?
            .is_some();
        if done {
            return Ok(Imported::AlreadyImported);
        }
        let m = &msg.message;
        let size = (m.prefix.len() + m.body.len()) as u64;
        let kw: BTreeSet<String> = m.keywords.iter().cloned().collect();
        let kw = join_keywords(&kw);
        ctx.ref_blob(&prep.id, Some(&m.body), Some(&prep))?;
        let free = match msg.uid {
            Some(uid) => {
                let taken: bool = ctx
                    .tx
                    .prepare_cached(
                        "SELECT 1 WHERE EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uid = ?2)
                            OR EXISTS (SELECT 1 FROM expunged WHERE mailbox_id = ?1 AND uid = ?2)",
                    )?
                    .query_row(params![mb.id, uid], |_| Ok(()))
                    .optional()?
                    .is_some();
                (!taken).then_some(uid)
            }
            None => None,
        };
        let (uid, modseq) = match free {
            Some(uid) => {
                let modseq: i64 = ctx
                    .tx
                    .prepare_cached(
                        "UPDATE mailboxes SET uidnext = max(uidnext, ?2 + 1),
                            highestmodseq = highestmodseq + 1
                         WHERE id = ?1 RETURNING highestmodseq",
                    )?
                    .query_row(params![mb.id, i64::from(uid)], |r| r.get(0))?;
                ctx.tx
                    .prepare_cached(
                        "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internal_date, size, prefix, blob,
                                       sortkeys)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                     (SELECT data FROM blob_sortkeys WHERE hash = ?9))",
                    )?
                    .execute(params![
                        mb.id,
                        uid,
                        modseq,
                        m.flags.0,
                        kw,
                        m.internal_date,
                        size as i64,
                        m.prefix,
                        &prep.id.0[..]
                    ])?;
                crate::searchables::copy_to_row(&ctx.tx, mb.id, uid, &prep.id.0)?;
                ctx.changes.push(Change {
                    account: mb.account_id,
                    mailbox: mb.id,
                    modseq: modseq as u64,
                    kind: ChangeKind::Added { uid },
                });
                (uid, modseq as u64)
            }
            None => ctx.insert_message(
                &mb,
                &m.prefix,
                &prep.id,
                size,
                m.flags,
                &kw,
                m.internal_date,
            )?,
        };
        ctx.add_usage(mb.account_id, size as i64)?;
        ctx.tx
            .prepare_cached("INSERT INTO imported (account_id, key) VALUES (?1, ?2)")?
            .execute(params![mb.account_id, msg.key])?;
        if let Some(u) = &msg.pop3_uidl {
            ctx.tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO pop3_uidl (mailbox_id, uid, uidl) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![mb.id, uid, u])?;
        }
        Ok(Imported::Stored { uid, modseq })
    })
}

pub(super) fn finish_mailbox(b: &SqliteBackend, mailbox: MailboxId, uidnext: u32) -> Result<()> {
    b.write(move |ctx| {
        // The source's UIDNEXT: UIDs it gave to messages expunged there are not handed
        // out again here either. Imported messages are not \Recent to anyone.
        ctx.tx.execute(
            "UPDATE mailboxes SET uidnext = max(uidnext, ?2) WHERE id = ?1",
            params![mailbox, i64::from(uidnext)],
        )?;
        ctx.tx.execute(
            "UPDATE mailboxes SET first_recent = max(first_recent, uidnext) WHERE id = ?1",
            [mailbox],
        )?;
        Ok(())
    })
}

pub(super) fn modseq_floor(b: &SqliteBackend, mailbox: MailboxId, floor: u64) -> Result<()> {
    let floor = i64::try_from(floor).unwrap_or(i64::MAX);
    b.write(move |ctx| {
        ctx.tx.execute(
            "UPDATE mailboxes SET highestmodseq = max(highestmodseq, ?2) WHERE id = ?1",
            params![mailbox, floor],
        )?;
        Ok(())
    })
}

pub(super) fn pop3_uidls(b: &SqliteBackend, mailbox: MailboxId) -> Result<Vec<(u32, String)>> {
    b.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT p.uid, p.uidl FROM pop3_uidl p
             JOIN messages m ON m.mailbox_id = p.mailbox_id AND m.uid = p.uid
             WHERE p.mailbox_id = ?1 ORDER BY p.uid",
        )?;
        let v = st
            .query_map([mailbox], |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    })
}

pub(super) fn imported_keys(
    b: &SqliteBackend,
    account: AccountId,
    prefix: String,
) -> Result<Vec<String>> {
    b.read(move |c| {
        // A range on the primary key rather than LIKE, whose wildcards a key may hold.
        let mut st = c.prepare_cached(
            "SELECT key FROM imported WHERE account_id = ?1 AND key >= ?2 AND substr(key, 1, length(?2)) = ?2",
        )?;
        let v = st
            .query_map(params![account, prefix], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(v)
    })
}
