//! The end of the content: storing the message for every recipient and the replies.
//!
//! Durability: the `250` after the data is sent only once `Store::deliver` has returned,
//! and the store returns only after its fsyncs. A client that disconnects or goes silent
//! before the end of the data leaves nothing stored and nothing counted.
//!
//! SMTP has one reply after the data for all recipients (RFC 5321 4.1.1.4); LMTP one per
//! recipient (RFC 2033 4.2), and an alias's recipient is `250` when any of its accounts
//! has the message. A full mailbox behind such a `250` (another recipient's, or another
//! account of the alias), an alias's account that an operator disabled, or an account
//! the store failed for (an I/O error, removed since RCPT), gets the sender a DSN (RFC
//! 3464), delivered or queued before the reply (RFC 5321 6.1: after a 250, a failure is
//! reported to the sender). In SMTP a failure for every recipient is `451 4.3.0` (`452
//! 4.3.1` for a full disk), for the client to try again; in LMTP the recipient that
//! failed gets that reply of its own.

use super::counts::count;
use super::Session;
use crate::filter::{FilteredDelivery, Item};
use crate::{trace, warning};
use letterbox_store::web::DeliveryOutcome;
use letterbox_filter::Verdict;
use letterbox_store::{AccountId, Error as StoreError};
use std::sync::Arc;

/// Why an account behind an accepted recipient has no copy (the DSN's status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its mailbox was full at the end of the data.
    Full,
    /// An operator disabled it (an alias's member; found at RCPT).
    Disabled,
    /// The store failed for it (not its quota: an I/O error, the account removed since
    /// RCPT) while another recipient has the message.
    Failed,
}

/// What happened to one recipient after the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Full,
    Failed,
}

impl Session {
    /// Stores the content for every recipient of the transaction and queues the replies:
    /// one per recipient in LMTP, one in SMTP.
    pub(super) async fn deliver(&mut self, body: Vec<u8>) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let now = letterbox_store::now();
        let size = body.len();
        let body = Arc::new(body);
        let helo = self.helo.clone().unwrap_or_default();
        let trace = trace::Trace {
            hostname: &self.ctx.config.hostname,
            helo: &helo,
            peer: self.peer.addr,
            protocol: {
                let p = trace::protocol(self.lmtp(), self.esmtp, self.peer.tls, tx.smtputf8);
                if self.auth.is_some() {
                    trace::authenticated(p)
                } else {
                    p
                }
            },
            id: &tx.id,
            sender: &tx.sender,
            date: now,
        };
        // Message-level filters (rspamd): a refusal is the answer to the content.
        let filter = letterbox_filter::Filter::shared(&self.ctx.config);
        let env = letterbox_filter::Envelope {
            id: tx.id.clone(),
            sender: tx.sender.clone(),
            helo: helo.clone(),
            ip: self.peer.addr.ip(),
            rcpts: tx.rcpts.iter().map(|r| r.address.clone()).collect(),
            authenticated: self.auth.is_some(),
        };
        let mut scan = filter.scan(&env, &body).await;
        // A forged Authentication-Results removed: that message is the one stored.
        let body = match scan.body.take() {
            Some(b) => Arc::new(b),
            None => body,
        };
        if let Verdict::Reject { code, esc, text } | Verdict::Tempfail { code, esc, text } =
            &scan.verdict
        {
            let sender = trace::sanitize(&tx.sender, 256);
            tracing::info!(id = %tx.id, from = %sender, size, "refused by the filter: {code} {esc} {text}");
            if self.lmtp() {
                for r in &tx.rcpts {
                    let rcpt = trace::address(&r.address, 256);
                    self.reply(*code, esc, &format!("<{rcpt}> {text}"));
                }
            } else {
                self.ok(*code, esc, text);
            }
            return;
        }
        // Remote recipients first (submission): queued, fsynced. If that fails nothing is
        // delivered locally either, so the client's retry makes no duplicate.
        let queued = !tx.remote.is_empty();
        if queued {
            let account = self.auth.as_ref().map(|a| a.id);
            if super::submit::enqueue(&self.ctx, account, &tx, &trace, &body)
                .await
                .is_err()
            {
                self.ok(451, "4.3.0", "Temporary failure, try again later");
                return;
            }
            if tx.rcpts.is_empty() {
                self.ok(
                    250,
                    "2.0.0",
                    &format!("Message queued for delivery, id={}", tx.id),
                );
                return;
            }
        }
        // One copy per account, even when several recipients (aliases, +tags) lead to it;
        // its prefix names the first of them. Each account's Sieve script then decides
        // where its copies go (filter::deliver).
        let mut items: Vec<Item> = Vec::new();
        let mut per_rcpt: Vec<Vec<usize>> = Vec::with_capacity(tx.rcpts.len());
        for r in &tx.rcpts {
            let mut idx = Vec::new();
            for &a in &r.accounts {
                let i = match items.iter().position(|it| it.account == a) {
                    Some(i) => i,
                    None => {
                        let mut prefix = trace::prefix(&trace, &r.address);
                        prefix.extend_from_slice(&scan.headers);
                        items.push(Item {
                            account: a,
                            rcpt: r.address.clone(),
                            prefix,
                        });
                        items.len() - 1
                    }
                };
                if !idx.contains(&i) {
                    idx.push(i);
                }
            }
            per_rcpt.push(idx);
        }
        let n = items.len();
        let accounts: Vec<AccountId> = items.iter().map(|it| it.account).collect();
        let job = FilteredDelivery {
            id: tx.id.clone(),
            sender: tx.sender.clone(),
            hostname: self.ctx.config.hostname.clone(),
            peer: self.peer.addr,
            // Kept for a DSN about a recipient the content could not reach.
            body: body.clone(),
            date: now,
            items,
            scan,
            received: trace::received(&trace),
        };
        let result = self
            .ctx
            .store
            .run(move |s| Ok(job.run(s, &filter)))
            .await;
        let mut outcomes = vec![Outcome::Failed; n];
        // A full disk is told apart: 452 4.3.1 (RFC 3463: mail system full).
        let disk_full = match &result {
            Err(e) => matches!(e, StoreError::DiskFull),
            Ok(r) => r.iter().any(|r| matches!(r, Err(StoreError::DiskFull))),
        };
        let (fail_code, fail_status, fail_text) = match disk_full {
            true => (452, "4.3.1", "Insufficient system storage, try again later"),
            false => (451, "4.3.0", "Temporary failure, try again later"),
        };
        match result {
            Ok(results) => {
                for (i, r) in results.into_iter().enumerate().take(n) {
                    outcomes[i] = match r {
                        Ok(crossed) => {
                            if crossed {
                                // Before the reply, so that the warning is there when the
                                // sender learns of the delivery.
                                if let Err(e) = warning::deliver_pending(
                                    &self.ctx.store,
                                    &self.ctx.config,
                                    accounts[i],
                                )
                                .await
                                {
                                    tracing::error!(id = %tx.id, account = accounts[i], "quota warning not delivered: {e}");
                                }
                            }
                            Outcome::Delivered
                        }
                        Err(StoreError::OverQuota) => Outcome::Full,
                        Err(e) => {
                            tracing::error!(id = %tx.id, account = accounts[i], "delivery failed: {e}");
                            Outcome::Failed
                        }
                    };
                }
            }
            Err(e) => tracing::error!(id = %tx.id, "delivery failed: {e}"),
        }
        let rcpt_outcome = |idx: &Vec<usize>| -> Outcome {
            if idx.iter().any(|&i| outcomes[i] == Outcome::Delivered) {
                Outcome::Delivered
            } else if !idx.is_empty() && idx.iter().all(|&i| outcomes[i] == Outcome::Full) {
                Outcome::Full
            } else {
                Outcome::Failed
            }
        };
        let results: Vec<(String, Outcome)> = tx
            .rcpts
            .iter()
            .zip(&per_rcpt)
            .map(|(r, idx)| (trace::address(&r.address, 256), rcpt_outcome(idx)))
            .collect();
        let sender = trace::sanitize(&tx.sender, 256);
        for (rcpt, o) in &results {
            match o {
                Outcome::Delivered => {
                    tracing::info!(id = %tx.id, from = %sender, to = %rcpt, size, proto = trace.protocol, "delivered")
                }
                Outcome::Full => {
                    tracing::info!(id = %tx.id, from = %sender, to = %rcpt, size, "not delivered: mailbox full")
                }
                Outcome::Failed => {
                    tracing::warn!(id = %tx.id, from = %sender, to = %rcpt, size, "not delivered: temporary failure")
                }
            }
        }
        for (rcpt, o) in &results {
            let m = letterbox_proto::metrics::metrics();
            match o {
                Outcome::Delivered => m.delivered(self.mode_name(), 1),
                Outcome::Full => {
                    m.quota_refused(self.mode_name());
                    m.bounced(self.mode_name(), "quota");
                }
                Outcome::Failed => {}
            }
            match o {
                Outcome::Delivered => count(&self.ctx, rcpt, DeliveryOutcome::Delivered).await,
                Outcome::Full => count(&self.ctx, rcpt, DeliveryOutcome::Bounced).await,
                Outcome::Failed => {}
            }
        }
        let delivered = results
            .iter()
            .filter(|(_, o)| *o == Outcome::Delivered)
            .count();
        // Which recipients the client is told took the message: in LMTP each its own
        // reply; in SMTP all of them, when any has it (one reply for all).
        let smtp_accepted = delivered > 0 || queued;
        let lmtp = self.lmtp();
        let told_ok: Vec<bool> = results
            .iter()
            .map(|(_, o)| if lmtp { *o == Outcome::Delivered } else { smtp_accepted })
            .collect();
        // Copies refused by a full mailbox behind such a reply: a recipient alone in its
        // transaction, or one account among an alias's. RFC 5321 6.1: after the 250 the
        // sender is told by a DSN (RFC 3464), stored before the reply is sent so that a
        // crash cannot lose it; never to the null sender (a bounce is not bounced).
        let mut lost: Vec<(usize, String)> = Vec::new();
        let mut failed: Vec<(usize, String)> = Vec::new();
        for (r, idx) in per_rcpt.iter().enumerate() {
            if !told_ok[r] {
                continue;
            }
            for &i in idx {
                let list = match outcomes[i] {
                    Outcome::Full => &mut lost,
                    Outcome::Failed => &mut failed,
                    Outcome::Delivered => continue,
                };
                if !list.iter().any(|(j, _)| *j == i) {
                    list.push((i, trace::address(&tx.rcpts[r].address, 256)));
                }
            }
        }
        let mut bounced: Vec<(AccountId, String, Refusal)> = lost
            .iter()
            .map(|(i, r)| (accounts[*i], r.clone(), Refusal::Full))
            .chain(
                failed
                    .iter()
                    .map(|(i, r)| (accounts[*i], r.clone(), Refusal::Failed)),
            )
            .collect();
        // An alias's members an operator disabled took no copy (rcpt.rs): told to the
        // sender the same way, once another account of the transaction has the message.
        for (r, rcpt) in tx.rcpts.iter().enumerate() {
            if !told_ok[r] {
                continue;
            }
            for &a in &rcpt.disabled {
                let has_it = accounts
                    .iter()
                    .zip(&outcomes)
                    .any(|(b, o)| *b == a && *o == Outcome::Delivered);
                if !has_it && !bounced.iter().any(|(b, _, _)| *b == a) {
                    bounced.push((a, trace::address(&rcpt.address, 256), Refusal::Disabled));
                }
            }
        }
        if !bounced.is_empty() {
            let dsn_sent = !tx.sender.is_empty();
            let addresses = self
                .bounce_refused(&tx, &body, &bounced, now, dsn_sent)
                .await;
            for ((_, rcpt, why), address) in bounced.iter().zip(&addresses) {
                let via = match rcpt.eq_ignore_ascii_case(address) {
                    true => String::new(),
                    false => format!(" (via <{rcpt}>)"),
                };
                let told = match dsn_sent {
                    true => "a DSN was sent to the sender",
                    false => "no DSN to the null sender",
                };
                let why = match why {
                    Refusal::Full => "mailbox full",
                    Refusal::Disabled => "mailbox disabled",
                    Refusal::Failed => "storage failure",
                };
                tracing::warn!(
                    id = %tx.id,
                    from = %sender,
                    to = %address,
                    "message accepted but NOT delivered to <{address}>{via}: {why}; {told}"
                );
            }
        }
        if self.lmtp() {
            // RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
            for (rcpt, o) in &results {
                match o {
                    Outcome::Delivered => {
                        self.reply(250, "2.0.0", &format!("<{rcpt}> Delivered, id={}", tx.id))
                    }
                    Outcome::Full => self.reply(552, "5.2.2", &format!("<{rcpt}> Mailbox full")),
                    Outcome::Failed => {
                        self.reply(fail_code, fail_status, &format!("<{rcpt}> {fail_text}"))
                    }
                }
            }
            return;
        }
        if smtp_accepted {
            self.ok(
                250,
                "2.0.0",
                &format!("Message accepted for delivery, id={}", tx.id),
            );
        } else if results.iter().all(|(_, o)| *o == Outcome::Full) {
            self.ok(552, "5.2.2", "Mailbox full");
        } else {
            self.ok(fail_code, fail_status, fail_text);
        }
    }

    /// The DSN for copies that an account could not take while the client was told the
    /// message was taken (`refused`: each account, the recipient address that led to it
    /// and why): delivered into the sender's INBOX when the sender is local, queued to
    /// it otherwise (`letterbox_queue::send_dsn`); only when `send`. Returns the
    /// accounts' addresses (the recipient's when it cannot be read).
    async fn bounce_refused(
        &mut self,
        tx: &super::Transaction,
        body: &[u8],
        refused: &[(AccountId, String, Refusal)],
        now: i64,
        send: bool,
    ) -> Vec<String> {
        use letterbox_queue::dsn::{Action, Entry};
        use std::hash::{Hash, Hasher};
        let ids: Vec<AccountId> = refused.iter().map(|(a, _, _)| *a).collect();
        let found = self
            .ctx
            .store
            .run(move |s| {
                Ok(ids
                    .iter()
                    .map(|id| s.account_by_id(*id).map(|a| a.address).ok())
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default();
        let addresses: Vec<String> = refused
            .iter()
            .enumerate()
            .map(|(k, (_, rcpt, _))| found.get(k).cloned().flatten().unwrap_or_else(|| rcpt.clone()))
            .collect();
        if !send {
            return addresses;
        }
        // The report's Message-ID and logs take a number: this transaction's, hashed.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        tx.id.hash(&mut h);
        let msg = letterbox_store::queue::QueuedMessage {
            id: (h.finish() >> 1) as i64,
            sender: tx.sender.clone(),
            account: self.auth.as_ref().map(|a| a.id),
            created: now,
            size: body.len() as u64,
            envid: tx.envid.clone(),
            ret_full: false,
            smtputf8: tx.smtputf8,
            body_8bit: tx.body_8bit,
            held: false,
            warned: false,
            attempts: 0,
            next_attempt: now,
            last_error: String::new(),
            rcpts: Vec::new(),
        };
        let entries: Vec<Entry> = refused
            .iter()
            .zip(&addresses)
            .map(|((_, rcpt, why), address)| Entry {
                address: address.clone(),
                // RFC 3464 2.3.1: the recipient as the client gave it, when an alias
                // led to this account.
                orcpt: (!rcpt.eq_ignore_ascii_case(address)).then(|| rcpt.clone()),
                action: Action::Failed,
                // RFC 3463: X.2.2 mailbox full, X.2.1 mailbox disabled, X.3.0 a
                // failure of the mail system.
                diagnostic: match why {
                    Refusal::Full => format!("552 5.2.2 <{address}>: Mailbox full"),
                    Refusal::Disabled => format!("550 5.2.1 <{address}>: Mailbox disabled"),
                    Refusal::Failed => {
                        format!("550 5.3.0 <{address}>: The message could not be stored")
                    }
                },
            })
            .collect();
        let signer = super::submit::signer(&self.ctx.store);
        letterbox_queue::send_dsn(
            &self.ctx.store,
            &self.ctx.config.hostname,
            &signer,
            &msg,
            body,
            &entries,
            now,
            None,
        )
        .await;
        addresses
    }
}
