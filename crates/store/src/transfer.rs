//! Moving a whole store onto another backend (issue 17): `letterbox migrate --to
//! postgres://... [--blobs s3://...]` copies the embedded store into a PostgreSQL
//! cluster through the [`Backend`] trait alone, so that every store rule (quota usage,
//! UID and MODSEQ assignment, blob references, object-store upload holds) is the
//! target's own, written once in `rules.rs` and the import path (`import.rs`).
//!
//! # What moves
//! Domains with their DKIM keys (state kept); accounts with their password hashes,
//! quota limits, POP3 retention, outbound hold, disabled state, application passwords
//! (hashes), Sieve scripts (the active one too) and subscriptions; aliases; mailboxes
//! with special use, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and expunged UIDs; messages
//! with their UIDs, flags, keywords, internal dates, save dates (expiry's clock) and
//! imported POP3 UIDLs; expiry and attachment policies; API tokens (hashes); portal
//! operators; the outbound queue (recipient states, next attempt, hold); each account's
//! quota warning state (the thresholds already warned about, a pending warning). Not
//! moved: histories (logins, usage samples, delivery counts, the space log, quota
//! requests), portal sessions, login blocks, Sieve vacation memory, POP3
//! first-retrieval times (a `<N>d` retention starts again), queued messages' attempt
//! counts.
//!
//! # Clients see nothing new
//! - Each mailbox keeps its UIDVALIDITY and each message its UID (RFC 9051 2.3.1.1);
//!   UIDNEXT is the source's, so no expunged UID is handed out again.
//! - Expunged UIDs move with the MODSEQs of their expunges, so a QRESYNC client that
//!   cached state from before an expunge still hears VANISHED for it.
//! - HIGHESTMODSEQ starts from the source's (`import_modseq_floor`, RFC 7162 3.1.1), so
//!   every copied message has a MODSEQ above anything a client cached: a CONDSTORE or
//!   QRESYNC client (RFC 7162 3.2.5) fetches flags again, never bodies, and sees no
//!   VANISHED for messages still there.
//! - POP3 UIDLs (RFC 1939 7) are derived from UIDVALIDITY and UID, or copied when they
//!   came from an import.
//!
//! # Resumable
//! - Before it writes anything else the target records which source it is taking
//!   ([`Backend::maintenance_due`] task `migrate-from SOURCE`). A target with domains or
//!   accounts and no such record is refused ([`Error::Refused`]): it holds other data.
//! - Each account is an import run from the source ([`Backend::import_begin`]); each
//!   message is stored under a key naming it in the source (mailbox, UIDVALIDITY, UID)
//!   in the very transaction that stores it, so a rerun after `kill -9` skips exactly
//!   what was stored, with no duplicate and no gap.
//! - Everything else is compared with the target and only what is missing is added.
//!
//! The source is only read.

use crate::queue::{NewQueued, NewQueuedRcpt, QueueUpdate, RcptStatus};
use crate::*;
use std::collections::{HashMap, HashSet};

/// An application password as stored: its hash, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct AppPasswordRecord {
    pub name: String,
    pub selector: String,
    pub hash: String,
    pub protocols: Protocols,
    pub created: i64,
    pub last_used: Option<i64>,
}

/// An API token as stored: its digest, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub name: String,
    pub selector: String,
    pub hash: Vec<u8>,
    pub created: i64,
    pub last_used: Option<i64>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferReport {
    /// The target had taken part of this source before (a resumed run).
    pub resumed: bool,
    pub domains: u64,
    pub accounts: u64,
    pub mailboxes: u64,
    /// Messages stored now, and their octets.
    pub copied: u64,
    pub bytes: u64,
    /// Messages an earlier run had stored already.
    pub skipped: u64,
    /// Outbound queue entries added now.
    pub queued: u64,
}

/// How often (in messages) progress is reported within a mailbox.
const PROGRESS_EVERY: usize = 100;

/// The import-run source name of a migration from `source` (each account's run).
fn run_name(source: &str) -> String {
    format!("migrate {source}")
}

/// The target's record that it is taking `source`.
fn marker(source: &str) -> String {
    format!("migrate-from {source}")
}

/// The key prefix of a source mailbox's messages: a newline cannot occur in a mailbox
/// name, so no mailbox's prefix is the start of another's.
fn key_prefix(mb: &Mailbox) -> String {
    format!("migrate\n{}\n{}\n", mb.name, mb.uidvalidity)
}

/// Copies everything of `src` into `dst` (see the module documentation); `source`
/// names the source for good (the embedded store's data directory), `progress` hears
/// a line now and then.
pub fn transfer(
    src: &dyn Backend,
    dst: &dyn Backend,
    source: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<TransferReport> {
    let mut report = TransferReport::default();
    let mark = marker(source);
    report.resumed = dst.maintenance_last(&mark)?.is_some();
    if !report.resumed {
        if !dst.list_domains()?.is_empty() || !dst.list_accounts()?.is_empty() {
            return Err(Error::Refused(
                "the target already holds domains or accounts that did not come from this source; migrate into an empty database".into(),
            ));
        }
        dst.maintenance_due(&mark, now(), 0)?;
    }

    // Domains and their DKIM keys.
    let have: HashSet<String> = dst.list_domains()?.into_iter().collect();
    for d in src.list_domains()? {
        if !have.contains(&d) {
            dst.add_domain(&d)?;
            report.domains += 1;
        }
        let selectors: HashSet<String> =
            dst.dkim_keys(&d)?.into_iter().map(|k| k.selector).collect();
        let missing: Vec<DkimKey> = src
            .dkim_keys(&d)?
            .into_iter()
            .filter(|k| !selectors.contains(&k.selector))
            .collect();
        if !missing.is_empty() {
            dst.add_dkim_keys(missing)?;
        }
    }

    let run = run_name(source);
    let mut ids: HashMap<AccountId, AccountId> = HashMap::new();
    for a in src.list_accounts()? {
        let to = account(src, dst, &a, &run, &mut report, progress)?;
        ids.insert(a.id, to);
    }

    for (address, targets) in src.list_aliases(None)? {
        dst.add_alias(&address, &targets)?;
    }
    for p in src.expire_policies()? {
        dst.set_expire(&p.scope, SpecialUse::Trash, p.trash)?;
        dst.set_expire(&p.scope, SpecialUse::Junk, p.junk)?;
    }
    for (scope, p) in src.strip_policies()? {
        dst.set_strip_policy(&scope, Some(p))?;
    }
    let tokens: HashSet<String> = dst.api_token_records()?.into_iter().map(|t| t.name).collect();
    for t in src.api_token_records()? {
        if !tokens.contains(&t.name) {
            dst.restore_api_token(&t)?;
        }
    }
    let admins = dst.web().admin_list()?;
    for g in src.web().admin_list()? {
        if !admins.contains(&g) {
            dst.web().admin_add(&g.address, g.domain.as_deref())?;
        }
    }
    report.queued = outbound_queue(src, dst, &ids)?;
    Ok(report)
}

/// One account, its settings and its mail; returns its id on the target.
fn account(
    src: &dyn Backend,
    dst: &dyn Backend,
    a: &Account,
    run: &str,
    report: &mut TransferReport,
    progress: &mut dyn FnMut(&str),
) -> Result<AccountId> {
    let addr = &a.address;
    let to = match dst.account(addr) {
        Ok(t) => {
            dst.set_quota(addr, a.quota_limit)?;
            t
        }
        Err(Error::NotFound(_)) => {
            report.accounts += 1;
            dst.add_account(addr, &src.password_hash(addr)?, a.quota_limit)?
        }
        Err(e) => return Err(e),
    };
    dst.set_retention(addr, a.pop3_retention)?;
    if src.outbound_held(a.id)? {
        dst.set_outbound_hold(to.id, true)?;
    }
    let apps: HashSet<String> =
        dst.app_password_records(addr)?.into_iter().map(|r| r.name).collect();
    for r in src.app_password_records(addr)? {
        if !apps.contains(&r.name) {
            dst.restore_app_password(addr, &r)?;
        }
    }
    let mut active = None;
    for s in src.sieve_list(a.id)? {
        dst.sieve_put(to.id, &s.name, src.sieve_get(a.id, &s.name)?, None)?;
        if s.active {
            active = Some(s.name);
        }
    }
    dst.sieve_activate(to.id, active.as_deref())?;

    // A run that began on this target resumes; a finished one takes the rest (the
    // marker says the target is this source's, and every message goes in once by key).
    dst.import_begin(to.id, run, report.resumed)?;
    let mut names = HashSet::new();
    let mut mailboxes = src.list_mailboxes(a.id)?;
    mailboxes.sort_by(|x, y| x.name.cmp(&y.name));
    for mb in &mailboxes {
        names.insert(mb.name.clone());
        mailbox(src, dst, to.id, mb, addr, report, progress)?;
    }
    // The default folders an account gets that the source account no longer has.
    for mb in dst.list_mailboxes(to.id)? {
        if !names.contains(&mb.name) && mb.name != "INBOX" && dst.mailbox_counts(mb.id)?.messages == 0 {
            dst.delete_mailbox(to.id, &mb.name)?;
        }
    }
    let subs: HashSet<String> = src.subscriptions(a.id)?.into_iter().collect();
    for name in &subs {
        dst.subscribe(to.id, name)?;
    }
    // The default subscriptions an account gets that the source account dropped.
    for name in dst.subscriptions(to.id)? {
        if !subs.contains(&name) {
            dst.unsubscribe(to.id, &name)?;
        }
    }
    dst.import_finish(to.id, run)?;
    // The warnings already sent (or still pending) as on the source: the messages'
    // usage crossed the thresholds again on the target, which would warn again.
    dst.set_quota_warn_state(to.id, src.quota_warn_state(a.id)?)?;
    if src.web().is_disabled(a.id)? && !dst.web().is_disabled(to.id)? {
        dst.web().set_disabled(addr, true, "migrate")?;
    }
    Ok(to.id)
}

/// One mailbox and its messages.
fn mailbox(
    src: &dyn Backend,
    dst: &dyn Backend,
    account: AccountId,
    mb: &Mailbox,
    address: &str,
    report: &mut TransferReport,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    match dst.mailbox(account, &mb.name) {
        Ok(_) => {}
        Err(Error::NotFound(_)) => {
            dst.create_mailbox(account, &mb.name, mb.special_use)?;
        }
        Err(e) => return Err(e),
    }
    let im = dst.import_mailbox(account, &mb.name, mb.uidvalidity)?;
    if !im.keeps_uids {
        return Err(Error::Refused(format!(
            "{address}: mailbox {} on the target holds other mail (UIDVALIDITY {} instead of {})",
            mb.name, im.mailbox.uidvalidity, mb.uidvalidity
        )));
    }
    report.mailboxes += 1;
    let target = im.mailbox.id;
    dst.import_modseq_floor(target, mb.highestmodseq)?;
    dst.import_expunged(target, &src.expunged_uids(mb.id)?)?;
    let prefix = key_prefix(mb);
    let done: HashSet<u32> = dst
        .imported_keys(account, &prefix)?
        .iter()
        .filter_map(|k| k[prefix.len()..].parse().ok())
        .collect();
    let uidls: HashMap<u32, String> = src.pop3_uidls(mb.id)?.into_iter().collect();
    let metas = src.list_messages(mb.id, false)?;
    let total = metas.len();
    for (i, m) in metas.into_iter().enumerate() {
        if done.contains(&m.uid) {
            report.skipped += 1;
        } else {
            let octets = src.open_message(mb.id, m.uid)?.read_all()?;
            let split = (m.prefix_len as usize).min(octets.len());
            let msg = ImportMessage {
                key: format!("{prefix}{}", m.uid),
                uid: Some(m.uid),
                message: NewMessage {
                    prefix: octets[..split].to_vec(),
                    body: Arc::new(octets[split..].to_vec()),
                    flags: m.flags,
                    keywords: m.keywords,
                    internal_date: m.internal_date,
                },
                pop3_uidl: uidls.get(&m.uid).cloned(),
            };
            match dst.import_message(target, msg)? {
                Imported::Stored { uid, .. } if uid != m.uid => {
                    return Err(Error::Refused(format!(
                        "{address}: mailbox {}: UID {} is taken on the target",
                        mb.name, m.uid
                    )));
                }
                Imported::Stored { .. } => {
                    report.copied += 1;
                    report.bytes += octets.len() as u64;
                }
                Imported::AlreadyImported => report.skipped += 1,
            }
        }
        if (i + 1) % PROGRESS_EVERY == 0 && i + 1 < total {
            progress(&format!("{address} {}: {}/{total} messages", mb.name, i + 1));
        }
    }
    dst.set_save_dates(target, &src.save_dates(mb.id)?)?;
    dst.import_finish_mailbox(target, mb.uidnext)?;
    progress(&format!("{address} {}: {total} messages", mb.name));
    Ok(())
}

/// The outbound queue: each entry not on the target yet (same sender, creation time,
/// size and recipients), with its recipients' states, next attempt and hold.
fn outbound_queue(
    src: &dyn Backend,
    dst: &dyn Backend,
    ids: &HashMap<AccountId, AccountId>,
) -> Result<u64> {
    type Key = (String, i64, u64, Vec<String>);
    let key = |q: &queue::QueuedMessage| -> Key {
        let rcpts = q.rcpts.iter().map(|r| r.address.clone()).collect();
        (q.sender.clone(), q.created, q.size, rcpts)
    };
    const PAGE: usize = 500;
    let mut have = HashSet::new();
    let mut after = 0;
    loop {
        let page = dst.queue_list(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        have.extend(page.iter().map(key));
    }
    let mut added = 0;
    let mut after = 0;
    loop {
        let page = src.queue_list(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for q in page {
            if have.contains(&key(&q)) {
                continue;
            }
            let id = dst.queue_insert(NewQueued {
                sender: q.sender.clone(),
                account: q.account.and_then(|a| ids.get(&a).copied()),
                message: src.queue_body(q.id)?,
                rcpts: q
                    .rcpts
                    .iter()
                    .map(|r| NewQueuedRcpt {
                        address: r.address.clone(),
                        orcpt: r.orcpt.clone(),
                        notify: r.notify,
                    })
                    .collect(),
                envid: q.envid.clone(),
                ret_full: q.ret_full,
                smtputf8: q.smtputf8,
                body_8bit: q.body_8bit,
                held: q.held,
                now: q.created,
            })?;
            let new = dst.queue_get(id)?;
            let rcpts = q
                .rcpts
                .iter()
                .zip(&new.rcpts)
                .filter(|(old, _)| old.status != RcptStatus::Pending || !old.last_reply.is_empty())
                .map(|(old, new)| (new.id, old.status, old.last_reply.clone()))
                .collect();
            dst.queue_update(
                id,
                QueueUpdate {
                    rcpts,
                    next_attempt: q.next_attempt,
                    count_attempt: false,
                    last_error: q.last_error.clone(),
                    warned: q.warned,
                },
            )?;
            added += 1;
        }
    }
    Ok(added)
}
