//! Submission's remote recipients (RFC 6409; issue 12). An authenticated account may send
//! to any address from an address it owns ([`super::mail`]). A recipient outside the local
//! domains is checked against the account's outbound limits
//! (`letterbox_queue::limits`: `452 4.5.3` / `451 4.7.1`) and kept; at the end of the data
//! the message goes into the outbound queue (`Backend::queue_insert`, one fsynced
//! transaction) with a `Received:` header of its own, before the local recipients get
//! their copies, and only then does the client hear `250`. An account the operator put on
//! hold (`letterbox user set ADDRESS outbound hold`) has its mail queued held: it leaves
//! only when released (`letterbox queue release ID`).
//!
//! RFC 3461 DSN parameters are kept with the entry: NOTIFY and ORCPT per recipient, RET
//! and ENVID per message. Port 25 never gets here: its remote recipients are refused
//! (`554 5.7.1`, never a relay).

use super::{Flow, Session, Transaction};
use crate::trace;
use letterbox_proto::Context;
use letterbox_store::queue::{NewQueued, NewQueuedRcpt};
use letterbox_store::AccountId;
use std::sync::{Arc, Mutex};

/// One DKIM signer per store (it caches parsed keys); the entry holds a clone of the
/// store, so a backend's address is never reused while it is a key here.
pub(super) fn signer(store: &letterbox_store::Store) -> Arc<letterbox_dkim::Signer> {
    static SIGNERS: Mutex<Vec<(usize, Arc<letterbox_dkim::Signer>)>> = Mutex::new(Vec::new());
    let key = &**store as *const dyn letterbox_store::Backend as *const () as usize;
    let mut v = SIGNERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, s)) = v.iter().find(|(k, _)| *k == key) {
        return s.clone();
    }
    let s = Arc::new(letterbox_dkim::Signer::new(store.clone()));
    if v.len() >= 8 {
        v.remove(0);
    }
    v.push((key, s.clone()));
    s
}

/// `Some(message)` with its DKIM-Signature field(s) prepended when its From domain has
/// active keys; unchanged otherwise, or (logged) when the keys cannot be read: a signing
/// problem never refuses mail. `None` only if the signing task died (the caller answers
/// 451).
async fn dkim_sign(ctx: &Context, message: Vec<u8>, id: &str) -> Option<Vec<u8>> {
    let signer = signer(&ctx.store);
    let work = tokio::task::spawn_blocking(move || {
        let r = signer.sign(&message);
        (message, r)
    });
    match work.await {
        Ok((message, Ok(Some(sig)))) => {
            let mut out = sig;
            out.extend_from_slice(&message);
            Some(out)
        }
        Ok((message, Ok(None))) => Some(message),
        Ok((message, Err(e))) => {
            tracing::error!(id, "DKIM: keys unavailable, message queued unsigned: {e}");
            Some(message)
        }
        Err(e) => {
            tracing::error!(id, "DKIM signing task failed: {e}");
            None
        }
    }
}

/// A remote recipient accepted at RCPT.
pub(super) struct RemoteRcpt {
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: u8,
}

impl Session {
    pub(super) async fn remote_rcpt(
        &mut self,
        address: String,
        orcpt: Option<String>,
        notify: u8,
    ) -> Flow {
        let Some(account) = self.auth.clone() else {
            return self.bad(530, "5.7.0", "Authentication required");
        };
        let (total, remote) = match &self.tx {
            Some(tx) => (tx.rcpts.len() + tx.remote.len(), tx.remote.len()),
            None => return self.bad(503, "5.5.1", "Need MAIL before RCPT"),
        };
        if let Err(r) = letterbox_queue::limits::check_rcpt(
            &self.ctx.store,
            &self.ctx.config,
            account.id,
            &account.address,
            total,
            remote,
        )
        .await
        {
            return self.ok(r.code, r.esc, &r.text);
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.remote.push(RemoteRcpt {
                address,
                orcpt,
                notify,
            });
        }
        self.ok(250, "2.1.5", "Recipient OK")
    }
}

/// Queues the message for the remote recipients; `Err` (logged) when it could not be.
pub(super) async fn enqueue(
    ctx: &Context,
    account: Option<AccountId>,
    tx: &Transaction,
    trace: &trace::Trace<'_>,
    body: &[u8],
) -> Result<(), ()> {
    let mut message = trace::received(trace);
    message.extend_from_slice(body);
    // DKIM (RFC 6376): signed once, here, and the signed octets are what the queue keeps.
    let Some(message) = dkim_sign(ctx, message, &tx.id).await else {
        return Err(());
    };
    let held = match account {
        Some(a) => ctx
            .store
            .run(move |s| s.outbound_held(a))
            .await
            .unwrap_or(false),
        None => false,
    };
    let entry = NewQueued {
        sender: tx.sender.clone(),
        account,
        message,
        rcpts: tx
            .remote
            .iter()
            .map(|r| NewQueuedRcpt {
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                notify: r.notify,
            })
            .collect(),
        envid: tx.envid.clone(),
        ret_full: tx.ret_full,
        smtputf8: tx.smtputf8,
        body_8bit: tx.body_8bit,
        held,
        now: trace.date,
    };
    let n = entry.rcpts.len();
    match ctx.store.run(move |s| s.queue_insert(entry)).await {
        Ok(qid) => {
            let sender = trace::sanitize(&tx.sender, 256);
            for r in &tx.remote {
                tracing::info!(id = %tx.id, queue_id = qid, from = %sender, to = %trace::sanitize(&r.address, 256), held, "queued for remote delivery");
            }
            tracing::debug!(id = %tx.id, queue_id = qid, rcpts = n, "queued");
            letterbox_queue::wake();
            Ok(())
        }
        Err(e) => {
            tracing::error!(id = %tx.id, "could not queue the message: {e}");
            Err(())
        }
    }
}
