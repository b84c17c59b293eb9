//! The end of the content: storing the message for every recipient and the replies.
//!
//! Durability: the `250` after the data is sent only once `Store::deliver` has returned,
//! and the store returns only after its fsyncs. A client that disconnects or goes silent
//! before the end of the data leaves nothing stored and nothing counted.
//!
//! SMTP has one reply after the data for all recipients (RFC 5321 4.1.1.4). When some
//! have the message and another's mailbox is full, the reply is `250` and the sender
//! gets a DSN (RFC 3464) for the full one(s), delivered or queued before that reply
//! (RFC 5321 6.1: after a 250, a failure is reported to the sender). LMTP answers per
//! recipient (RFC 2033 4.2).

use super::counts::count;
use super::Session;
use crate::filter::{FilteredDelivery, Item};
use crate::{trace, warning};
use letterbox_store::web::DeliveryOutcome;
use letterbox_filter::Verdict;
use letterbox_store::{AccountId, Error as StoreError};
use std::sync::Arc;

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
                    let rcpt = trace::sanitize(&r.address, 256);
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
            .map(|(r, idx)| (trace::sanitize(&r.address, 256), rcpt_outcome(idx)))
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
        let delivered = results
            .iter()
            .filter(|(_, o)| *o == Outcome::Delivered)
            .count();
        if delivered > 0 || queued {
            // SMTP has one reply for all recipients: the others have the message, so it is
            // accepted. RFC 5321 6.1: a recipient that then cannot have it is told to the
            // sender by a DSN (RFC 3464), sent before the 250 so that a crash cannot lose
            // it; never to the null sender (a bounce is not bounced).
            let full: Vec<&String> = results
                .iter()
                .filter(|(_, o)| *o == Outcome::Full)
                .map(|(r, _)| r)
                .collect();
            let dsn_sent = !full.is_empty() && !tx.sender.is_empty();
            if dsn_sent {
                self.bounce_full(&tx, &body, &full, now).await;
            }
            for (rcpt, o) in results.iter().filter(|(_, o)| *o != Outcome::Delivered) {
                let (why, told) = match o {
                    Outcome::Full if dsn_sent => ("mailbox full", "a DSN was sent to the sender"),
                    Outcome::Full => ("mailbox full", "no DSN to the null sender"),
                    _ => ("storage failure", "no bounce was sent"),
                };
                tracing::warn!(
                    id = %tx.id,
                    from = %sender,
                    to = %rcpt,
                    "message accepted for {} other recipient(s) but NOT delivered to <{rcpt}>: {why}; {told}",
                    delivered + tx.remote.len(),
                );
            }
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

    /// The DSN for recipients whose mailbox was full at the end of the data while the
    /// message went to others: delivered into the sender's INBOX when the sender is local,
    /// queued to it otherwise (`letterbox_queue::send_dsn`).
    async fn bounce_full(
        &mut self,
        tx: &super::Transaction,
        body: &[u8],
        full: &[&String],
        now: i64,
    ) {
        use letterbox_queue::dsn::{Action, Entry};
        use std::hash::{Hash, Hasher};
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
        let entries: Vec<Entry> = full
            .iter()
            .map(|rcpt| Entry {
                address: (*rcpt).clone(),
                orcpt: None,
                action: Action::Failed,
                diagnostic: format!("552 5.2.2 <{rcpt}>: Mailbox full"),
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
    }
}
