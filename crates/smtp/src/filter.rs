//! Delivery through the recipients' Sieve scripts (issue 13): for each account, its
//! active script (if any) decides the copies (folder, `:create`, flags), then the store
//! stores them all in one transaction (`Backend::deliver_to`: quota and UIDs stay the
//! store's). What a script sends (vacation replies, redirects) goes out after the
//! delivery is durable.
//!
//! Mail is never lost to a script: a failing script delivers to the default folder
//! (INBOX, or Junk for spam) and is logged; a redirect to an address that is not local
//! keeps the message in INBOX instead, since there is no outbound delivery yet.
//!
//! Vacation replies to local addresses are delivered at once; replies to other addresses
//! go into the outbound queue (from `<>`), which delivers them like submitted mail.

use crate::trace;
use letterbox_filter::sieve::{Message, Outgoing, Target};
use letterbox_filter::{Filter, Scan};
use letterbox_store::{AccountId, Backend, Delivery, Error as StoreError, Resolved};
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
}

impl FilteredDelivery {
    /// Runs the scripts and stores the copies (blocking). Per item: `Ok(crossed)` when
    /// the account has its copies (or its script discarded the message), `crossed` when
    /// one of them took usage across a quota warning threshold.
    pub fn run(self, s: &dyn Backend, filter: &Filter) -> Vec<Result<bool, StoreError>> {
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
                        octets: seen,
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
                        _ => {
                            tracing::warn!(id = %self.id, account = item.account, to = %trace::sanitize(&r, 256), "sieve: redirect to a non-local address is not possible without outbound delivery; kept in INBOX instead");
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
        let mut results: Vec<Result<bool, StoreError>> = (0..n).map(|_| Ok(false)).collect();
        if !deliveries.is_empty() {
            match s.deliver_to(self.body.clone(), self.date, deliveries, true) {
                Ok(rs) => {
                    // Per item: delivered if any copy was; full if every copy was refused
                    // for quota; failed otherwise.
                    let mut got: Vec<Vec<Result<bool, StoreError>>> = (0..n).map(|_| Vec::new()).collect();
                    for (k, r) in rs.into_iter().enumerate() {
                        if let Some(&i) = owner.get(k) {
                            got[i].push(r.map(|a| a.crossed_warning.is_some()));
                        }
                    }
                    for (i, g) in got.into_iter().enumerate() {
                        if g.is_empty() {
                            continue;
                        }
                        let crossed = g.iter().any(|r| matches!(r, Ok(true)));
                        if g.iter().any(|r| r.is_ok()) {
                            results[i] = Ok(crossed);
                        } else if g.iter().all(|r| matches!(r, Err(StoreError::OverQuota))) {
                            results[i] = Err(StoreError::OverQuota);
                        } else {
                            results[i] = g.into_iter().find(|r| r.is_err()).unwrap_or(Ok(false));
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
