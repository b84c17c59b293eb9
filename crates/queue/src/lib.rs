//! The outbound queue's scheduler: it takes due entries from the store's queue
//! (`letterbox_store::queue`, an index on `next_attempt`, a bounded batch at a time, so
//! memory stays flat in the queue size), delivers each to its destinations through
//! `letterbox-outbound`, records per-recipient outcomes, retries temporary failures with
//! exponential backoff (`[queue] min_backoff` doubling up to `max_backoff`) until
//! `[queue] max_age`, and sends DSNs ([`dsn`], RFC 3464): failures (5xx, or expiry), one
//! delay notice after `[queue] delay_warning`, and successes when NOTIFY=SUCCESS asked
//! for them (RFC 3461). A DSN to a local sender is delivered into its INBOX at once; to a
//! remote one it is queued with the null sender. A message from the null sender (a
//! bounce) never causes a DSN (RFC 3461 6.2, RFC 5321 6.1). Every DSN and delay notice
//! is DKIM-signed (RFC 6376) before it is delivered or queued, by the keys of its From
//! domain (`MAILER-DAEMON@hostname`) or the nearest parent domain that has keys
//! (`letterbox_dkim::Signer::sign_generated`).
//!
//! Concurrency: `[queue] max_concurrency` messages in delivery at once (one SMTP
//! connection each at a time), at most `[queue] max_per_destination` of them to one
//! domain.
//!
//! Crash safety, at-least-once: the submission's `250` comes after the queue entry is
//! fsynced. Each destination's accepted recipients are written (fsynced) as delivered
//! right after the remote server's final reply. **A message goes out twice** to the
//! recipients of one destination exactly when the process dies (kill -9, power cut)
//! between the remote server's `250` after the data and that write: the next run
//! delivers them again. Likewise a DSN is sent before the failure it reports is written,
//! so a crash between the two can send that DSN twice; none is ever lost.

pub mod dsn;
pub mod limits;

use dsn::{Action, Entry};
use letterbox_config::Config;
use letterbox_outbound::{Envelope, Outbound, Rcpt, RcptResult};
use letterbox_store::queue::{
    notify_wants, NewQueued, NewQueuedRcpt, QueueId, QueueUpdate, QueuedMessage, RcptStatus,
    NOTIFY_DELAY, NOTIFY_FAILURE, NOTIFY_SUCCESS,
};
use letterbox_store::{Resolved, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

static WAKE: Notify = Notify::const_new();

/// Tells the scheduler (in this process) that something was queued or made due.
pub fn wake() {
    WAKE.notify_one();
}

/// The scheduler.
pub struct Queue {
    store: Store,
    config: Arc<Config>,
    outbound: Arc<Outbound>,
    in_flight: Mutex<HashSet<QueueId>>,
    per_destination: Mutex<HashMap<String, Arc<Semaphore>>>,
    done: Notify,
    signer: Arc<letterbox_dkim::Signer>,
}

impl Queue {
    pub fn new(store: Store, config: Arc<Config>) -> Result<Arc<Queue>, String> {
        let outbound = Arc::new(Outbound::new(config.clone())?);
        let signer = Arc::new(letterbox_dkim::Signer::new(store.clone()));
        Ok(Arc::new(Queue {
            signer,
            store,
            config,
            outbound,
            in_flight: Mutex::new(HashSet::new()),
            per_destination: Mutex::new(HashMap::new()),
            done: Notify::new(),
        }))
    }

    /// Runs forever: picks due entries, up to `[queue] max_concurrency` at once.
    pub async fn run(self: Arc<Self>) {
        let max = self.config.queue.max_concurrency.max(1) as usize;
        let poll = Duration::from_secs(self.config.queue.poll_interval.0.max(1));
        loop {
            let busy = self.in_flight.lock().map(|s| s.len()).unwrap_or(max);
            if busy < max {
                let now = letterbox_store::now();
                let want = max - busy;
                let due = self.store.run(move |s| s.queue_due(now, want + max)).await;
                match due {
                    Ok(ids) => {
                        let mut ids = ids.into_iter();
                        let mut unused = Vec::new();
                        for id in ids.by_ref() {
                            let mut f = match self.in_flight.lock() {
                                Ok(f) => f,
                                Err(e) => e.into_inner(),
                            };
                            if f.len() >= max {
                                unused.push(id);
                                break;
                            }
                            if !f.insert(id) {
                                continue;
                            }
                            drop(f);
                            let q = self.clone();
                            tokio::spawn(async move {
                                q.process(id).await;
                                if let Ok(mut f) = q.in_flight.lock() {
                                    f.remove(&id);
                                }
                                q.done.notify_one();
                            });
                        }
                        // Not attempted now: given back, so that they wait for no lease
                        // (`Backend::queue_due` on a shared backend).
                        unused.extend(ids);
                        if !unused.is_empty() {
                            self.release(unused).await;
                        }
                    }
                    Err(e) => tracing::error!("queue: cannot read due entries: {e}"),
                }
            }
            tokio::select! {
                _ = WAKE.notified() => {}
                _ = self.done.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Gives back entries taken by `queue_due` that this round will not attempt.
    async fn release(&self, ids: Vec<QueueId>) {
        let r = self
            .store
            .run(move |s| ids.iter().try_for_each(|id| s.queue_release(*id)))
            .await;
        if let Err(e) = r {
            tracing::error!("queue: cannot give back due entries: {e}");
        }
    }

    fn destination_slot(&self, domain: &str) -> Arc<Semaphore> {
        let mut m = match self.per_destination.lock() {
            Ok(m) => m,
            Err(e) => e.into_inner(),
        };
        if m.len() > 10_000 {
            m.retain(|_, s| Arc::strong_count(s) > 1);
        }
        m.entry(domain.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.queue.max_per_destination.max(1) as usize
                ))
            })
            .clone()
    }

    /// One attempt at one entry.
    async fn process(&self, id: QueueId) {
        let got = self
            .store
            .run(move |s| Ok((s.queue_get(id)?, s.queue_body(id)?)))
            .await;
        let (msg, body) = match got {
            Ok(v) => v,
            Err(letterbox_store::Error::NotFound(_)) => return,
            Err(e) => {
                tracing::error!(queue_id = id, "queue: cannot read entry: {e}");
                return;
            }
        };
        if msg.held {
            // Held since it was taken: given back, so that a release finds it due.
            self.release(vec![id]).await;
            return;
        }
        let now = letterbox_store::now();
        let max_age = self.config.queue.max_age.0 as i64;
        let expired = now - msg.created >= max_age;
        // Pending recipients by destination domain, in recipient order. The domain is the
        // A-label (RFC 5890/5891): `bücher.example` and `xn--bcher-kva.example` are one
        // destination, one transaction; the recipients keep the form they were given in.
        let mut domains: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, r) in msg.rcpts.iter().enumerate() {
            if r.status != RcptStatus::Pending {
                continue;
            }
            let d = letterbox_outbound::wire_domain(&r.domain());
            match domains.iter_mut().find(|(x, _)| *x == d) {
                Some((_, v)) => v.push(i),
                None => domains.push((d, vec![i])),
            }
        }
        let mut outcome: Vec<Option<RcptResult>> = vec![None; msg.rcpts.len()];
        for (domain, idx) in &domains {
            let results = if expired {
                None
            } else {
                let slot = self.destination_slot(domain);
                let _permit = slot.acquire().await;
                let env = Envelope {
                    sender: &msg.sender,
                    rcpts: idx
                        .iter()
                        .map(|&i| Rcpt {
                            address: &msg.rcpts[i].address,
                            orcpt: msg.rcpts[i].orcpt.as_deref(),
                            notify: msg.rcpts[i].notify,
                        })
                        .collect(),
                    body: &body,
                    smtputf8: msg.smtputf8,
                    body_8bit: msg.body_8bit,
                    ret_full: msg.ret_full,
                    envid: msg.envid.as_deref(),
                };
                Some(self.outbound.deliver(domain, &env).await)
            };
            let Some(results) = results else { continue };
            let mut delivered = Vec::new();
            for (&i, r) in idx.iter().zip(results) {
                let rcpt = &msg.rcpts[i];
                match &r {
                    RcptResult::Delivered(t) => {
                        tracing::info!(queue_id = id, from = %msg.sender, to = %rcpt.address, reply = %t, "sent");
                        delivered.push((rcpt.id, RcptStatus::Delivered, t.clone()));
                    }
                    RcptResult::Temp(t) => {
                        tracing::info!(queue_id = id, from = %msg.sender, to = %rcpt.address, reply = %t, "deferred")
                    }
                    RcptResult::Perm(t) => {
                        tracing::info!(queue_id = id, from = %msg.sender, to = %rcpt.address, reply = %t, "bounced")
                    }
                }
                outcome[i] = Some(r);
            }
            // At once, so that a crash now does not send these again.
            if !delivered.is_empty() {
                let u = QueueUpdate {
                    rcpts: delivered,
                    next_attempt: msg.next_attempt,
                    count_attempt: false,
                    last_error: msg.last_error.clone(),
                    warned: msg.warned,
                };
                if let Err(e) = self.store.run(move |s| s.queue_update(id, u)).await {
                    tracing::error!(queue_id = id, "queue: cannot record deliveries: {e}");
                }
            }
        }
        // Failures: permanent replies, and whatever is still pending at expiry.
        let mut failed: Vec<(usize, String)> = Vec::new();
        let mut still: Vec<(usize, String)> = Vec::new();
        let mut succeeded: Vec<(usize, String)> = Vec::new();
        for (i, r) in msg.rcpts.iter().enumerate() {
            if r.status != RcptStatus::Pending {
                continue;
            }
            match &outcome[i] {
                Some(RcptResult::Perm(t)) => failed.push((i, t.clone())),
                Some(RcptResult::Delivered(t)) => succeeded.push((i, t.clone())),
                Some(RcptResult::Temp(t)) if expired => failed.push((
                    i,
                    format!(
                        "{t} (gave up after {}; message expired)",
                        human_age(max_age)
                    ),
                )),
                Some(RcptResult::Temp(t)) => still.push((i, t.clone())),
                None if expired => {
                    let last = if r.last_reply.is_empty() {
                        msg.last_error.clone()
                    } else {
                        r.last_reply.clone()
                    };
                    failed.push((
                        i,
                        format!(
                            "4.4.7 message expired after {} in the queue; last error: {last}",
                            human_age(max_age)
                        ),
                    ))
                }
                None => still.push((i, r.last_reply.clone())),
            }
        }
        if !failed.is_empty() {
            self.count_bounces(&msg.sender, failed.len()).await;
        }
        let bounceable = !msg.sender.is_empty();
        let mut warned = msg.warned;
        if bounceable {
            let entries = |list: &[(usize, String)], action: Action, bit: u8| -> Vec<Entry> {
                list.iter()
                    .filter(|(i, _)| notify_wants(msg.rcpts[*i].notify, bit))
                    .map(|(i, t)| Entry {
                        address: msg.rcpts[*i].address.clone(),
                        orcpt: msg.rcpts[*i].orcpt.clone(),
                        action,
                        diagnostic: t.clone(),
                    })
                    .collect()
            };
            let f = entries(&failed, Action::Failed, NOTIFY_FAILURE);
            if !f.is_empty() {
                self.send_dsn(&msg, &body, &f, now, None).await;
            }
            let s = entries(&succeeded, Action::Delivered, NOTIFY_SUCCESS);
            if !s.is_empty() {
                self.send_dsn(&msg, &body, &s, now, None).await;
            }
            let delay = self.config.queue.delay_warning.0 as i64;
            if !warned && !still.is_empty() && delay < max_age && now - msg.created >= delay {
                let d = entries(&still, Action::Delayed, NOTIFY_DELAY);
                if !d.is_empty() {
                    self.send_dsn(&msg, &body, &d, now, Some(msg.created + max_age))
                        .await;
                }
                warned = true;
            }
        }
        let mut rcpts: Vec<(i64, RcptStatus, String)> = Vec::new();
        for (i, t) in &failed {
            rcpts.push((msg.rcpts[*i].id, RcptStatus::Failed, t.clone()));
        }
        for (i, t) in &still {
            rcpts.push((msg.rcpts[*i].id, RcptStatus::Pending, t.clone()));
        }
        let backoff = self.backoff(msg.attempts);
        let next = (now + backoff).min(msg.created + max_age).max(now + 1);
        let last_error = still.first().map(|(_, t)| t.clone()).unwrap_or_default();
        let u = QueueUpdate {
            rcpts,
            next_attempt: next,
            count_attempt: true,
            last_error,
            warned,
        };
        if let Err(e) = self.store.run(move |s| s.queue_update(id, u)).await {
            tracing::error!(queue_id = id, "queue: cannot record the attempt: {e}");
        }
        if !still.is_empty() {
            tracing::info!(
                queue_id = id,
                pending = still.len(),
                retry_in = next - now,
                "queue: will retry"
            );
        }
    }

    fn backoff(&self, attempts: u32) -> i64 {
        let min = self.config.queue.min_backoff.0.max(1);
        let max = self.config.queue.max_backoff.0.max(min);
        let b = min.saturating_mul(1u64 << attempts.min(30));
        b.min(max) as i64
    }

    /// Sends a DSN to the message's sender: into the INBOX when the sender is local,
    /// queued (null sender) otherwise.
    /// Counts recipients that failed for good: `letterbox_bounces_total{protocol="queue"}`,
    /// and the "bounced" column of the sender's domain on the portal's domains page (when
    /// the sender is local). A failure to count is logged, never fatal.
    async fn count_bounces(&self, sender: &str, n: usize) {
        for _ in 0..n {
            letterbox_proto::metrics::metrics().bounced("queue", "remote");
        }
        let Some((_, domain)) = sender.rsplit_once('@') else {
            return;
        };
        // The store's form: a sender given as U-label counts in its A-label domain.
        let domain = letterbox_outbound::wire_domain(domain);
        let day = letterbox_store::web::day_of(letterbox_store::now());
        let r = self
            .store
            .run(move |s| {
                if s.list_domains()?.contains(&domain) {
                    for _ in 0..n {
                        s.web().count_delivery(&domain, day, letterbox_store::web::DeliveryOutcome::Bounced)?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("bounce count not recorded: {e}");
        }
    }

    async fn send_dsn(
        &self,
        msg: &QueuedMessage,
        body: &[u8],
        entries: &[Entry],
        now: i64,
        retry_until: Option<i64>,
    ) {
        send_dsn(
            &self.store,
            &self.config.hostname,
            &self.signer,
            msg,
            body,
            entries,
            now,
            retry_until,
        )
        .await
    }
}

/// Builds the DSN about `entries` of `msg` (its octets `body`), signs it, and delivers it
/// into the sender's INBOX when the sender is local, else queues it with the null sender.
/// Logged either way; also used by inbound SMTP for a recipient refused after the data
/// while the message was accepted for others (RFC 5321 6.1).
#[allow(clippy::too_many_arguments)]
pub async fn send_dsn(
    store: &Store,
    hostname: &str,
    signer: &Arc<letterbox_dkim::Signer>,
    msg: &QueuedMessage,
    body: &[u8],
    entries: &[Entry],
    now: i64,
    retry_until: Option<i64>,
) {
    let report = dsn::build(hostname, msg, body, entries, now, retry_until);
    let signer = signer.clone();
    let id = msg.id;
    let report = Arc::new(report);
    let unsigned = report.clone();
    // A signing problem never stops the DSN: it goes unsigned (logged).
    let report =
        match tokio::task::spawn_blocking(move || signer.sign_generated(&unsigned)).await {
            Ok(Ok(Some(mut sig))) => {
                sig.extend_from_slice(&report);
                sig
            }
            Ok(Ok(None)) => report.to_vec(),
            Ok(Err(e)) => {
                tracing::error!(
                    queue_id = id,
                    "DKIM: keys unavailable, DSN sent unsigned: {e}"
                );
                report.to_vec()
            }
            Err(e) => {
                tracing::error!(
                    queue_id = id,
                    "DKIM signing task failed, DSN sent unsigned: {e}"
                );
                report.to_vec()
            }
        };
    let sender = msg.sender.clone();
    let hostname = hostname.to_string();
    let r = store
        .run(move |s| {
            match s.resolve(&sender)? {
                Resolved::Accounts(accounts) if !accounts.is_empty() => {
                    let prefix = format!(
                        "Return-Path: <>\r\nDelivered-To: {sender}\r\nReceived: from localhost by {hostname} (Letterbox) for <{sender}>; {}\r\n",
                        dsn::rfc822_date(now)
                    );
                    let items = accounts
                        .iter()
                        .map(|a| (a.id, prefix.clone().into_bytes()))
                        .collect();
                    // A DSN reaches even a full mailbox (it says why mail is missing).
                    for r in s.deliver(Arc::new(report), now, items, false)? {
                        r?;
                    }
                    Ok("delivered to the sender's INBOX".to_string())
                }
                Resolved::NotLocal => {
                    let q = s.queue_insert(NewQueued {
                        sender: String::new(),
                        account: None,
                        message: report,
                        rcpts: vec![NewQueuedRcpt {
                            address: sender.clone(),
                            orcpt: None,
                            notify: 0,
                        }],
                        now,
                        ..NewQueued::default()
                    })?;
                    Ok(format!("queued as {q}"))
                }
                _ => Ok("dropped: the sender is no longer a local address".to_string()),
            }
        })
        .await;
    match r {
        Ok(how) => {
            tracing::info!(queue_id = id, to = %msg.sender, action = entries.first().map(|e| format!("{:?}", e.action)).unwrap_or_default(), "DSN {how}");
            wake();
        }
        Err(e) => tracing::error!(queue_id = id, "DSN not sent: {e}"),
    }
}

fn human_age(secs: i64) -> String {
    if secs >= 86_400 && secs % 86_400 == 0 {
        format!("{} days", secs / 86_400)
    } else if secs >= 3600 && secs % 3600 == 0 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{secs} seconds")
    }
}
