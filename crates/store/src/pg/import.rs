//! Imports with identities kept (issue 16) on PostgreSQL (issue 17), with the meaning
//! and rules of the embedded store's (`import.rs`): a mailbox with the source's
//! UIDVALIDITY, messages with the source's UIDs when never used here, each recorded
//! under its source key in the transaction that stores it (`imported`, whose primary
//! key makes two importers of one key store it once), POP3 UIDLs kept.

use super::{rows, PgBackend};
use crate::rules::{NewRow, StoreTx};
use crate::*;
use postgres::GenericClient;

/// [`Backend::import_begin`]. The account row is locked, so that two imports started at
/// once into one account see each other's run.
pub(crate) fn begin(
    c: &mut impl GenericClient,
    account: AccountId,
    source: &str,
    merge: bool,
) -> Result<ImportStart> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &[&account])?;
    let unfinished = tx
        .query_opt(
            "SELECT 1 FROM import_runs WHERE account_id = $1 AND source = $2 AND finished IS NULL",
            &[&account, &source],
        )?
        .is_some();
    let has_mail = tx
        .query_opt(
            "SELECT 1 FROM messages WHERE mailbox_id IN
               (SELECT id FROM mailboxes WHERE account_id = $1) LIMIT 1",
            &[&account],
        )?
        .is_some();
    let start = ImportStart::decide(unfinished, has_mail, merge)?;
    tx.execute(
        "INSERT INTO import_runs (account_id, source, finished) VALUES ($1, $2, NULL)
         ON CONFLICT (account_id, source) DO UPDATE SET finished = NULL",
        &[&account, &source],
    )?;
    tx.commit()?;
    Ok(start)
}

pub(crate) fn finish(c: &mut impl GenericClient, account: AccountId, source: &str) -> Result<()> {
    c.execute(
        "UPDATE import_runs SET finished = $3 WHERE account_id = $1 AND source = $2",
        &[&account, &source, &now()],
    )?;
    Ok(())
}

/// Records an imported message's key, in the transaction that stores it; `false` when
/// the key was imported already (the caller then stores nothing).
fn record(
    c: &mut impl GenericClient,
    account: AccountId,
    key: &str,
) -> Result<bool> {
    Ok(c.execute(
        "INSERT INTO imported (account_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&account, &key],
    )? > 0)
}

fn record_uidl(
    c: &mut impl GenericClient,
    mailbox: MailboxId,
    uid: u32,
    uidl: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO pop3_uidl (mailbox_id, uid, uidl) VALUES ($1, $2, $3)
         ON CONFLICT (mailbox_id, uid) DO UPDATE SET uidl = excluded.uidl",
        &[&mailbox, &i64::from(uid), &uidl],
    )?;
    Ok(())
}

pub(crate) fn pop3_uidls(c: &mut impl GenericClient, mailbox: MailboxId) -> Result<Vec<(u32, String)>> {
    Ok(c
        .query(
            "SELECT p.uid, p.uidl FROM pop3_uidl p
             JOIN messages m ON m.mailbox_id = p.mailbox_id AND m.uid = p.uid
             WHERE p.mailbox_id = $1 ORDER BY p.uid",
            &[&mailbox],
        )?
        .iter()
        .map(|r| (r.get::<_, i64>(0).clamp(0, u32::MAX as i64) as u32, r.get(1)))
        .collect())
}

pub(crate) fn imported_keys(
    c: &mut impl GenericClient,
    account: AccountId,
    prefix: &str,
) -> Result<Vec<String>> {
    // starts_with rather than LIKE, whose wildcards a key may hold.
    Ok(c
        .query(
            "SELECT key FROM imported WHERE account_id = $1 AND starts_with(key, $2) ORDER BY key",
            &[&account, &prefix],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// [`Backend::import_mailbox`].
pub(crate) fn mailbox(
    b: &PgBackend,
    account: AccountId,
    name: &str,
    uidvalidity: u32,
) -> Result<ImportMailbox> {
    if uidvalidity == 0 {
        return Err(Error::Invalid("UIDVALIDITY 0 is not valid".into()));
    }
    let name = normalize_mailbox_name(name)?;
    b.rules(|t| {
        // UIDVALIDITYs handed out later (a mailbox deleted and made again) stay above
        // every imported one.
        t.tx.execute(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', $1)
             ON CONFLICT (key) DO UPDATE SET value = GREATEST(meta.value, excluded.value)",
            &[&i64::from(uidvalidity)],
        )?;
        let mb = match rows::mailbox_named(&mut *t.tx, account, &name) {
            Ok(mb) => mb,
            Err(Error::NotFound(_)) => {
                let name = validate_new_mailbox_name(&name)?;
                let id: MailboxId = t
                    .tx
                    .query_opt(
                        "INSERT INTO mailboxes (account_id, name, uidvalidity) VALUES ($1, $2, $3)
                         ON CONFLICT (account_id, name) DO NOTHING RETURNING id",
                        &[&account, &name, &i64::from(uidvalidity)],
                    )?
                    .ok_or_else(|| Error::Exists(format!("mailbox {name}")))?
                    .get(0);
                let mb = rows::mailbox_by_id(&mut *t.tx, id)?;
                t.push_change(Change {
                    account,
                    mailbox: mb.id,
                    modseq: mb.highestmodseq,
                    kind: ChangeKind::MailboxCreated { name },
                });
                return Ok(ImportMailbox { mailbox: mb, keeps_uids: true });
            }
            Err(e) => return Err(e),
        };
        if mb.uidvalidity == uidvalidity {
            return Ok(ImportMailbox { mailbox: mb, keeps_uids: true });
        }
        // A mailbox that never held a message (the defaults every account gets) takes
        // the source's UIDVALIDITY: no client can have cached anything of it. Its row is
        // locked, so that a delivery cannot slip in between the test and the change.
        let uidnext: i64 = t
            .tx
            .query_one("SELECT uidnext FROM mailboxes WHERE id = $1 FOR UPDATE", &[&mb.id])?
            .get(0);
        let used = t
            .tx
            .query_opt(
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM messages WHERE mailbox_id = $1)
                    OR EXISTS (SELECT 1 FROM expunged WHERE mailbox_id = $1)",
                &[&mb.id],
            )?
            .is_some();
        if used || uidnext != 1 {
            return Ok(ImportMailbox { mailbox: mb, keeps_uids: false });
        }
        t.tx.execute(
            "UPDATE mailboxes SET uidvalidity = $2 WHERE id = $1",
            &[&mb.id, &i64::from(uidvalidity)],
        )?;
        Ok(ImportMailbox {
            mailbox: rows::mailbox_by_id(&mut *t.tx, mb.id)?,
            keeps_uids: true,
        })
    })
}

/// [`Backend::import_message`]: once per key; with its UID when never used in the
/// mailbox; the usage grows in the same transaction (never refused for quota).
pub(crate) fn message(b: &PgBackend, mailbox: MailboxId, msg: ImportMessage) -> Result<Imported> {
    crate::sqlite::import::validate(&msg)?;
    let prep = b.prepare_body(&msg.message.body)?;
    b.rules(|t| {
        let mb = rows::mailbox_by_id(&mut *t.tx, mailbox)?;
        t.lock_account(mb.account_id)?;
        if !record(&mut *t.tx, mb.account_id, &msg.key)? {
            return Ok(Imported::AlreadyImported);
        }
        let m = &msg.message;
        let size = (m.prefix.len() + m.body.len()) as u64;
        let kw: std::collections::BTreeSet<String> = m.keywords.iter().cloned().collect();
        let kw = crate::rules::join_keywords(&kw);
        t.take_blob_ref(&prep.id, Some(&m.body), Some(&prep))?;
        let free = match msg.uid {
            Some(uid) => t
                .tx
                .query_opt(
                    "SELECT 1 WHERE EXISTS (SELECT 1 FROM messages WHERE mailbox_id = $1 AND uid = $2)
                        OR EXISTS (SELECT 1 FROM expunged WHERE mailbox_id = $1 AND uid = $2)",
                    &[&mb.id, &i64::from(uid)],
                )?
                .is_none()
                .then_some(uid),
            None => None,
        };
        let (uid, modseq) = match free {
            Some(uid) => {
                let modseq = t
                    .tx
                    .query_one(
                        "UPDATE mailboxes SET uidnext = GREATEST(uidnext, $2::BIGINT + 1),
                            highestmodseq = highestmodseq + 1
                         WHERE id = $1 RETURNING highestmodseq",
                        &[&mb.id, &i64::from(uid)],
                    )?
                    .get::<_, i64>(0) as u64;
                t.insert_row(NewRow {
                    mailbox: mb.id,
                    uid,
                    modseq,
                    flags: m.flags,
                    keywords: &kw,
                    internal_date: m.internal_date,
                    size,
                    prefix: &m.prefix,
                    blob: &prep.id,
                })?;
                t.push_change(Change {
                    account: mb.account_id,
                    mailbox: mb.id,
                    modseq,
                    kind: ChangeKind::Added { uid },
                });
                (uid, modseq)
            }
            None => crate::rules::insert_message(
                t,
                &mb,
                &m.prefix,
                &prep.id,
                size,
                m.flags,
                &kw,
                m.internal_date,
            )?,
        };
        crate::rules::add_usage(t, mb.account_id, size as i64)?;
        if let Some(u) = &msg.pop3_uidl {
            record_uidl(&mut *t.tx, mb.id, uid, u)?;
        }
        Ok(Imported::Stored { uid, modseq })
    })
}

/// [`Backend::import_finish_mailbox`]: UIDNEXT raised to the source's, and the imported
/// messages not `\Recent` to anyone.
pub(crate) fn finish_mailbox(c: &mut impl GenericClient, mailbox: MailboxId, uidnext: u32) -> Result<()> {
    c.execute(
        "UPDATE mailboxes SET uidnext = GREATEST(uidnext, $2),
             first_recent = GREATEST(first_recent, GREATEST(uidnext, $2)) WHERE id = $1",
        &[&mailbox, &i64::from(uidnext)],
    )?;
    Ok(())
}

/// [`Backend::import_modseq_floor`].
pub(crate) fn modseq_floor(c: &mut impl GenericClient, mailbox: MailboxId, floor: u64) -> Result<()> {
    let floor = i64::try_from(floor).unwrap_or(i64::MAX);
    c.execute(
        "UPDATE mailboxes SET highestmodseq = GREATEST(highestmodseq, $2) WHERE id = $1",
        &[&mailbox, &floor],
    )?;
    Ok(())
}
