//! Delivery through the recipients' Sieve scripts (issue 13): for each account, its
//! active script (if any) decides the copies (folder, `:create`, flags), then the store
//! stores them all in one transaction (`Backend::deliver_to`: quota and UIDs stay the
//! store's). What a script sends (vacation replies, redirects) goes out after the
//! delivery is durable.
//!
//! The message is parsed once (`letterbox_message::parse_shared`), when the first script
//! needs it: the scripts read mail-parser's reading of it, with the scan's header fields
//! above it (`letterbox_message::with_prefix`), and the store takes its structure with
//! the copies instead of parsing the body again.
//!
//! Mail is never lost to a script: a failing script delivers to the default folder
//! (INBOX, or Junk for spam) and is logged.
//!
//! `redirect` to a local address delivers into that account's INBOX in the same
//! transaction. To another domain, the copy goes into the outbound queue (fsynced)
//! before the delivery, from the original envelope sender (null stays null, RFC 5228
//! 4.2), with the loop control of `letterbox_filter::redirect`; when it cannot be queued
//! (a loop, the queue failing, a local address that does not exist) the message is kept
//! in INBOX instead and the log says why. A message already redirected to that address
//! (same Message-ID, within `sieve_redirect_duplicate_period`) is not sent again: that is
//! also what keeps a client's retry after a temporary failure from sending it twice.
//!
//! Vacation replies to local addresses are delivered at once; replies to other addresses
//! go into the outbound queue (from `<>`), which delivers them like submitted mail.

use crate::trace;
use letterbox_filter::redirect;
use letterbox_filter::sieve::{Message, Outgoing, Target};
use letterbox_filter::{Filter, Scan};
use letterbox_message::mail_parser::Message as MailMessage;
use letterbox_store::{AccountId, Backend, Delivery, Error as StoreError, ParsedMessage, Resolved};
use std::cell::OnceCell;
use std::net::SocketAddr;
use std::sync::Arc;

/// One account's copy: the recipient address that led to it and its prefix.
pub struct Item {
    pub account: AccountId,
    pub rcpt: String,
    pub prefix: Vec<u8>,
}

/// A message on its way to local mailboxes, after the message-level scan.
pub struct FilteredDelivery {
    pub id: String,
    pub sender: String,
    pub hostname: String,
    pub peer: SocketAddr,
    pub body: Arc<Vec<u8>>,
    pub date: i64,
    pub items: Vec<Item>,
    pub scan: Scan,
    /// Our `Received` field (`trace::received`), for copies that leave (redirect).
    pub received: Vec<u8>,
}

/// What one account got (`FilteredDelivery::run_detailed`).
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// One of the copies took usage across a quota warning threshold.
    pub crossed: bool,
    /// The UIDs of the copies stored (none: the script discarded or redirected it).
    pub uids: Vec<u32>,
}

impl FilteredDelivery {
    /// Runs the scripts and stores the copies (blocking). Per item: `Ok(crossed)` when
    /// the account has its copies (or its script discarded the message), `crossed` when
    /// one of them took usage across a quota warning threshold.
    pub fn run(self, s: &dyn Backend, filter: &Filter) -> Vec<Result<bool, StoreError>> {
        self.run_detailed(s, filter)
            .into_iter()
            .map(|r| r.map(|d| d.crossed))
            .collect()
    }

    /// Like [`FilteredDelivery::run`], with the UIDs of the stored copies.
    pub fn run_detailed(self, s: &dyn Backend, filter: &Filter) -> Vec<Result<Delivered, StoreError>> {
        let default_folder = if self.scan.junk {
            filter.junk_folder().to_string()
        } else {
            "INBOX".to_string()
        };
        let sieve_on = filter.config().filter.sieve;
        // What a script sees: the headers the scan added, then the message.
        let octets: Vec<u8>;
        let seen: &[u8] = if self.scan.headers.is_empty() {
            &self.body
        } else {
            octets = [&self.scan.headers[..], &self.body[..]].concat();
            &octets
        };
        // The one parse of the message at delivery, made when a script first needs it:
        // its structure goes to the store with the copies (`Backend::deliver_to` does not
        // parse again), mail-parser's reading of it (the scan's headers put above it) to
        // every recipient's script.
        let shared: OnceCell<(ParsedMessage, Option<MailMessage>)> = OnceCell::new();
        let parsed = || {
            shared
                .get_or_init(|| {
                    let (structure, message) = letterbox_message::parse_shared(&self.body);
                    (structure, letterbox_message::with_prefix(message, &self.body, seen))
                })
                .1
                .clone()
        };
        let mut deliveries: Vec<Delivery> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        let mut outgoing: Vec<(AccountId, Outgoing)> = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            let keep = |folder: &str| Target {
                mailbox: folder.to_string(),
                create: false,
                flags: Default::default(),
                keywords: Vec::new(),
            };
            let targets = if sieve_on {
                let outcome = filter.sieve().run(
                    s,
                    &Message {
                        account: item.account,
                        rcpt: &item.rcpt,
                        sender: &self.sender,
                        parsed: &parsed,
                        spamtest: self.scan.spamtest,
                        default_folder: &default_folder,
                    },
                );
                if let Some(e) = &outcome.error {
                    tracing::warn!(id = %self.id, account = item.account, "sieve: {e}; delivered to {default_folder}");
                }
                let mut targets = outcome.targets;
                for r in outcome.redirects {
                    match s.resolve(&r) {
                        Ok(Resolved::Accounts(list)) => {
                            for a in list {
                                tracing::info!(id = %self.id, account = item.account, "sieve: redirected to a local account");
                                deliveries.push(Delivery::inbox(a.id, item.prefix.clone()));
                                owner.push(i);
                            }
                        }
                        Ok(Resolved::NotLocal) => {
                            if let Err(e) = self.redirect_remote(s, filter, item.account, &r, seen) {
                                tracing::warn!(id = %self.id, account = item.account, to = %trace::sanitize(&r, 256), "sieve: not redirected ({e}); kept in INBOX instead");
                                targets.push(keep("INBOX"));
                            }
                        }
                        Ok(Resolved::NoSuchUser) => {
                            tracing::warn!(id = %self.id, account = item.account, to = %trace::sanitize(&r, 256), "sieve: redirect to a local address that does not exist; kept in INBOX instead");
                            targets.push(keep("INBOX"));
                        }
                        Err(e) => {
                            tracing::warn!(id = %self.id, account = item.account, to = %trace::sanitize(&r, 256), "sieve: redirect failed ({e}); kept in INBOX instead");
                            targets.push(keep("INBOX"));
                        }
                    }
                }
                outgoing.extend(outcome.outgoing.into_iter().map(|o| (item.account, o)));
                targets
            } else {
                vec![keep(&default_folder)]
            };
            for t in targets {
                deliveries.push(Delivery {
                    account: item.account,
                    prefix: item.prefix.clone(),
                    mailbox: t.mailbox,
                    create: t.create,
                    flags: t.flags,
                    keywords: t.keywords,
                });
                owner.push(i);
            }
        }
        let n = self.items.len();
        let mut results: Vec<Result<Delivered, StoreError>> =
            (0..n).map(|_| Ok(Delivered::default())).collect();
        if !deliveries.is_empty() {
            let structure = shared.into_inner().map(|(p, _)| p);
            match s.deliver_to(self.body.clone(), structure, self.date, deliveries, true) {
                Ok(rs) => {
                    // Per item: delivered if any copy was; full if every copy was refused
                    // for quota; failed otherwise.
                    let mut got: Vec<Vec<Result<letterbox_store::Appended, StoreError>>> =
                        (0..n).map(|_| Vec::new()).collect();
                    for (k, r) in rs.into_iter().enumerate() {
                        if let Some(&i) = owner.get(k) {
                            got[i].push(r);
                        }
                    }
                    for (i, g) in got.into_iter().enumerate() {
                        if g.is_empty() {
                            continue;
                        }
                        if g.iter().any(|r| r.is_ok()) {
                            let ok = g.iter().filter_map(|r| r.as_ref().ok());
                            results[i] = Ok(Delivered {
                                crossed: ok.clone().any(|a| a.crossed_warning.is_some()),
                                uids: ok.map(|a| a.uid).collect(),
                            });
                        } else if g.iter().all(|r| matches!(r, Err(StoreError::OverQuota))) {
                            results[i] = Err(StoreError::OverQuota);
                        } else {
                            results[i] = match g.into_iter().find_map(|r| r.err()) {
                                Some(e) => Err(e),
                                None => Ok(Delivered::default()),
                            };
                        }
                    }
                }
                Err(e) => {
                    let disk_full = matches!(e, StoreError::DiskFull);
                    let msg = e.to_string();
                    for r in results.iter_mut() {
                        *r = Err(if disk_full {
                            StoreError::DiskFull
                        } else {
                            StoreError::Io(std::io::Error::other(msg.clone()))
                        });
                    }
                }
            }
        }
        for (account, o) in outgoing {
            // Only for accounts that have the message: no reply for mail not delivered.
            let delivered = self
                .items
                .iter()
                .zip(&results)
                .any(|(it, r)| it.account == account && r.is_ok());
            if delivered {
                send(s, &self.id, &self.hostname, self.peer, o);
            }
        }
        results
    }
}

impl FilteredDelivery {
    /// Queues a redirected copy for an address of another domain (see the module doc).
    /// `Ok` when it is queued, or was sent to that address before (not again).
    fn redirect_remote(
        &self,
        s: &dyn Backend,
        filter: &Filter,
        account: AccountId,
        to: &str,
        seen: &[u8],
    ) -> Result<(), String> {
        let user = s.account_by_id(account).map_err(|e| e.to_string())?.address;
        if redirect::looped(seen, &user) {
            return Err(format!(
                "a loop: the message carries {} for this account",
                redirect::REDIRECTED_FROM
            ));
        }
        let now = letterbox_store::now();
        if let Some(key) = redirect::duplicate_id(seen, to) {
            let period = filter.config().filter.sieve_redirect_duplicate_period;
            let expires = now.saturating_add(period.min(i64::MAX as u64) as i64);
            if s.sieve_seen(account, &key, expires, now).map_err(|e| e.to_string())? {
                tracing::info!(id = %self.id, account, to = %trace::sanitize(to, 256), "sieve: this message was redirected there before; not sent again");
                return Ok(());
            }
        }
        let message = redirect::message(&user, &self.received, seen);
        let entry = letterbox_store::queue::NewQueued {
            sender: self.sender.clone(),
            account: None,
            body_8bit: message.iter().any(|b| *b >= 0x80),
            smtputf8: !to.is_ascii() || !self.sender.is_ascii(),
            message,
            rcpts: vec![letterbox_store::queue::NewQueuedRcpt {
                address: to.to_string(),
                orcpt: None,
                notify: 0,
            }],
            envid: None,
            ret_full: false,
            held: false,
            now,
        };
        let qid = s.queue_insert(entry).map_err(|e| format!("queue: {e}"))?;
        tracing::info!(id = %self.id, account, queue_id = qid, to = %trace::sanitize(to, 256), "sieve: redirect queued");
        letterbox_queue::wake();
        Ok(())
    }
}

/// Sends what a script produced (a vacation reply): to local recipients at once.
fn send(s: &dyn Backend, id: &str, hostname: &str, peer: SocketAddr, o: Outgoing) {
    let to = trace::sanitize(&o.to, 256);
    match s.resolve(&o.to) {
        Ok(Resolved::Accounts(list)) => {
            let now = letterbox_store::now();
            let reply_id = format!("{id}.v");
            let t = trace::Trace {
                hostname,
                helo: hostname,
                peer,
                protocol: "LMTP",
                id: &reply_id,
                sender: &o.from,
                date: now,
            };
            let message = Arc::new(crlf(&o.message));
            let items = list
                .iter()
                .map(|a| (a.id, trace::prefix(&t, &o.to)))
                .collect();
            match s.deliver(message, now, items, true) {
                Ok(rs) if rs.iter().any(|r| r.is_ok()) => {
                    tracing::info!(id = %reply_id, to = %to, "sieve: vacation reply delivered")
                }
                Ok(_) => tracing::warn!(id = %reply_id, to = %to, "sieve: vacation reply not delivered (mailbox full)"),
                Err(e) => tracing::warn!(id = %reply_id, to = %to, "sieve: vacation reply not delivered: {e}"),
            }
        }
        _ => {
            // Other domains: through the outbound queue, from the null sender (RFC 5230
            // 5.1), so it is never answered or bounced; fsynced like a submission;
            // DKIM-signed like a submission (the From is the account's own address).
            let mut message = crlf(&o.message);
            match letterbox_dkim::sign_uncached(s, &message) {
                Ok(Some(mut sig)) => {
                    sig.extend_from_slice(&message);
                    message = sig;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(
                    id,
                    "DKIM: keys unavailable, vacation reply queued unsigned: {e}"
                ),
            }
            let entry = letterbox_store::queue::NewQueued {
                sender: String::new(),
                account: None,
                body_8bit: message.iter().any(|b| *b >= 0x80),
                smtputf8: !o.to.is_ascii(),
                message,
                rcpts: vec![letterbox_store::queue::NewQueuedRcpt {
                    address: o.to.clone(),
                    orcpt: None,
                    notify: 0,
                }],
                envid: None,
                ret_full: false,
                held: false,
                now: letterbox_store::now(),
            };
            match s.queue_insert(entry) {
                Ok(qid) => {
                    tracing::info!(id, queue_id = qid, to = %to, "sieve: vacation reply queued");
                    letterbox_queue::wake();
                }
                Err(e) => tracing::warn!(id, to = %to, "sieve: vacation reply not queued: {e}"),
            }
        }
    }
}

/// The message with CRLF line ends (what the store keeps).
fn crlf(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() + m.len() / 32);
    let mut prev = 0u8;
    for &b in m {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
