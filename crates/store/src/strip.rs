//! Attachment removal over an account (issue 15), written once for every caller:
//! `letterbox attachments strip` (a selection from the command line), `serve`'s
//! automatic policies (`[attachments]`, `letterbox attachments policy`), and the portal.
//!
//! For each message of the chosen folders that passes the filters, the message is read,
//! rewritten by [`letterbox_message::strip`] (Thunderbird's placeholders; every other
//! octet unchanged), and replaced in one transaction by
//! [`Backend::replace_message_logged`] (`replace.rs`: new UID, same flags, keywords,
//! internal date and save date, old UID expunged, quota freed, a `strip` entry in the
//! account's space log). A message that changed meanwhile (its size no longer the one
//! read) is left alone and reported.
//!
//! POP3 (RFC 1939 7): a replaced message has a new UID and so a new UIDL, which a
//! leave-on-server POP3 client downloads again as new mail. The INBOX, the only folder
//! POP3 shows, is therefore skipped for accounts whose POP3 retention is `delete` or
//! `<N>d` (mail meant to be fetched and then leave the server); for `keep` accounts the
//! stripped copy shows up once more in such a client, which is what a user asking for
//! the removal can expect.
//!
//! Folders are named by name (`Archive`, `Lists/rust`) or by RFC 6154 special-use
//! attribute (`\Sent`), so a policy for `\Sent` finds "Sent Items" as well.

use crate::{Account, Backend, Error, Mailbox, Result, Retention, StripPolicy};
use letterbox_message::strip::{strip_sections, Outcome, Removed};

/// What to remove.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Folder names or special-use attributes; empty: every folder.
    pub folders: Vec<String>,
    /// Only messages whose internal date is before this time (seconds since the epoch).
    pub before: Option<i64>,
    /// Only attachments whose encoded body has at least this many octets.
    pub larger_than: u64,
    /// Only messages with this From address (case-insensitive).
    pub from: Option<String>,
    /// Also signed or encrypted messages (their signature breaks).
    pub force: bool,
    /// Report, change nothing.
    pub dry_run: bool,
    /// Only these UIDs (`(mailbox name, uid)`), for a user's choice in the portal.
    pub only: Option<Vec<(String, u32)>>,
    /// Only these parts (IMAP section numbers such as `2` or `1.3`) of the chosen
    /// messages, for a user's choice of attachments; the refusals still hold.
    pub sections: Option<Vec<String>>,
    /// Recorded in the message's `X-Letterbox-Attachments-Removed` header and the log.
    pub rule: String,
}

impl Selection {
    /// The selection a policy makes at time `now`.
    pub fn from_policy(p: &StripPolicy, now: i64, scope: &str) -> Selection {
        Selection {
            folders: p.folders.clone(),
            before: Some(now - i64::from(p.older_than_days) * 86_400),
            larger_than: p.larger_than,
            rule: format!(
                "policy ({scope}): attachments over {} octets older than {} days in {}",
                p.larger_than,
                p.older_than_days,
                p.folders.join(", ")
            ),
            ..Selection::default()
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Replaced (or, in a dry run, would be: `new_uid` is `None`).
    Stripped {
        mailbox: String,
        uid: u32,
        new_uid: Option<u32>,
        removed: Vec<Removed>,
        freed: u64,
    },
    /// Signed or encrypted and not forced.
    Refused { mailbox: String, uid: u32 },
    /// Changed or expunged while it was being rewritten: left as it is.
    Changed { mailbox: String, uid: u32 },
    /// A folder left out, and why.
    SkippedFolder { mailbox: String, reason: String },
}

/// The folders `sel` names in the account (all when it names none). A name that matches
/// nothing is an error only when `strict` (the command line; a policy's folder may
/// simply not exist in some accounts).
pub fn folders(b: &dyn Backend, account: &Account, names: &[String], strict: bool) -> Result<Vec<Mailbox>> {
    let all = b.list_mailboxes(account.id)?;
    if names.is_empty() {
        return Ok(all);
    }
    let mut out: Vec<Mailbox> = Vec::new();
    for n in names {
        let hits: Vec<&Mailbox> = match crate::SpecialUse::parse(n) {
            Some(su) => all.iter().filter(|m| m.special_use == Some(su)).collect(),
            None => all
                .iter()
                .filter(|m| m.name == *n || (n.eq_ignore_ascii_case("INBOX") && m.name == "INBOX"))
                .collect(),
        };
        if hits.is_empty() && strict {
            return Err(Error::NotFound(format!("folder {n}")));
        }
        for m in hits {
            if !out.iter().any(|o| o.id == m.id) {
                out.push(m.clone());
            }
        }
    }
    Ok(out)
}

/// Applies `sel` to one account at time `now`; `each` hears every step as it happens.
pub fn run(
    b: &dyn Backend,
    account: &Account,
    sel: &Selection,
    strict_folders: bool,
    now: i64,
    each: &mut dyn FnMut(&Step),
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut push = |s: Step, steps: &mut Vec<Step>| {
        each(&s);
        steps.push(s);
    };
    let from = sel.from.as_deref().map(str::to_ascii_lowercase);
    for mb in folders(b, account, &sel.folders, strict_folders)? {
        if mb.name == "INBOX" && account.effective_retention != Retention::Keep {
            push(
                Step::SkippedFolder {
                    mailbox: mb.name.clone(),
                    reason: format!("POP3 retention {}", account.effective_retention),
                },
                &mut steps,
            );
            continue;
        }
        for m in b.list_messages(mb.id, false)? {
            if sel.before.is_some_and(|c| m.internal_date >= c) || m.size < sel.larger_than {
                continue;
            }
            if let Some(only) = &sel.only {
                if !only.iter().any(|(n, u)| *n == mb.name && *u == m.uid) {
                    continue;
                }
            }
            let raw = match b.open_message(mb.id, m.uid).and_then(|r| Ok(r.read_all()?)) {
                Ok(r) => r,
                Err(Error::NotFound(_)) => continue, // expunged meanwhile
                Err(e) => return Err(e),
            };
            let parsed = letterbox_message::parse(&raw);
            if let Some(f) = &from {
                let hit = parsed.envelope.from.iter().any(|ad| {
                    let addr = format!(
                        "{}@{}",
                        ad.mailbox.as_deref().unwrap_or(""),
                        ad.host.as_deref().unwrap_or("")
                    );
                    addr.eq_ignore_ascii_case(f)
                });
                if !hit {
                    continue;
                }
            }
            let (octets, removed) = match strip_sections(
                &raw,
                &parsed,
                sel.sections.as_deref(),
                sel.larger_than,
                sel.force,
                now,
                &sel.rule,
            ) {
                Outcome::Nothing => continue,
                Outcome::Signed => {
                    push(Step::Refused { mailbox: mb.name.clone(), uid: m.uid }, &mut steps);
                    continue;
                }
                Outcome::Stripped { octets, removed } => (octets, removed),
            };
            let freed = (raw.len() as u64).saturating_sub(octets.len() as u64);
            if sel.dry_run {
                push(
                    Step::Stripped { mailbox: mb.name.clone(), uid: m.uid, new_uid: None, removed, freed },
                    &mut steps,
                );
                continue;
            }
            let detail = describe(&removed, &sel.rule);
            match b.replace_message_logged(mb.id, m.uid, raw.len() as u64, octets, detail) {
                Ok(r) => push(
                    Step::Stripped { mailbox: mb.name.clone(), uid: m.uid, new_uid: Some(r.uid), removed, freed },
                    &mut steps,
                ),
                Err(Error::NotFound(_)) | Err(Error::Refused(_)) => {
                    push(Step::Changed { mailbox: mb.name.clone(), uid: m.uid }, &mut steps)
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(steps)
}

/// The space log's detail for one message: each part removed, then the rule.
pub fn describe(removed: &[Removed], rule: &str) -> String {
    let mut s = String::new();
    for r in removed {
        s.push_str(&format!("part {} {} {:?} {} octets; ", r.section, r.mime_type, r.filename, r.size));
    }
    s.push_str("rule: ");
    s.push_str(rule);
    s
}

/// Applies every account's policy in force (its own, its domain's, `[attachments]`'s)
/// at time `now`; `each` hears each account's steps.
pub fn run_policies(
    b: &dyn Backend,
    now: i64,
    each: &mut dyn FnMut(&Account, &Step),
) -> Result<(u64, u64)> {
    let (mut messages, mut freed) = (0u64, 0u64);
    for acct in b.list_accounts()? {
        let p = b.strip_policy_for(&acct.address)?;
        if p.older_than_days == 0 || p.folders.is_empty() {
            continue;
        }
        let sel = Selection::from_policy(&p, now, &acct.address);
        let steps = run(b, &acct, &sel, false, now, &mut |s| each(&acct, s))?;
        for s in steps {
            if let Step::Stripped { freed: f, .. } = s {
                messages += 1;
                freed += f;
            }
        }
    }
    Ok((messages, freed))
}
