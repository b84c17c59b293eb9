//! Submission's abuse control: a stolen password must not turn the host into a spam
//! cannon. Per account (`[outbound]`): messages with remote recipients per hour
//! (`max_messages_per_hour`), recipients of one message (`max_recipients_per_message`),
//! remote recipients per day (`max_recipients_per_day`); and the operator's hold
//! (`letterbox user set ADDRESS outbound hold|allow`), under which remote mail is
//! accepted into the queue but held there until released (`letterbox queue release`).
//!
//! Replies: recipients per message over the limit `452 4.5.3` at that RCPT (RFC 5321
//! 4.5.3.1.10: the client sends the rest later); hourly messages or daily recipients
//! spent: `451 4.7.1` at RCPT (temporary: the client retries when the window moves).
//! Each refusal is logged (`outbound limit reached`) and counted ([`hits`]).
//! What is counted: messages and recipients queued for remote delivery (the
//! `outbound_sent` records written with the queue entry); local deliveries are not.

use letterbox_config::Config;
use letterbox_store::{AccountId, Store};
use std::sync::atomic::{AtomicU64, Ordering};

static HITS: AtomicU64 = AtomicU64::new(0);

/// How many times an account hit an outbound limit since the process started.
pub fn hits() -> u64 {
    HITS.load(Ordering::Relaxed)
}

/// A refusal: SMTP code, enhanced status and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub esc: &'static str,
    pub text: String,
}

/// Checks whether `account` may add one more remote recipient to a message that has
/// `remote_so_far` of them (and `total_so_far` recipients in all).
pub async fn check_rcpt(
    store: &Store,
    config: &Config,
    account: AccountId,
    address: &str,
    total_so_far: usize,
    remote_so_far: usize,
) -> Result<(), Refusal> {
    let o = &config.outbound;
    let per_msg = if o.max_recipients_per_message > 0 {
        o.max_recipients_per_message as usize
    } else {
        config.smtp.max_recipients as usize
    };
    if total_so_far >= per_msg {
        return Err(hit(
            address,
            "recipients per message",
            Refusal {
                code: 452,
                esc: "4.5.3",
                text: format!("Too many recipients for one message (limit {per_msg}); send the rest in another message"),
            },
        ));
    }
    if o.max_messages_per_hour == 0 && o.max_recipients_per_day == 0 {
        return Ok(());
    }
    let now = letterbox_store::now();
    let used = match store.run(move |s| s.outbound_use(account, now)).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("outbound limits: cannot read use: {e}");
            return Err(Refusal {
                code: 451,
                esc: "4.3.0",
                text: "Temporary lookup failure, try again later".into(),
            });
        }
    };
    if remote_so_far == 0
        && o.max_messages_per_hour > 0
        && used.messages_hour >= o.max_messages_per_hour as u64
    {
        return Err(hit(
            address,
            "messages per hour",
            Refusal {
                code: 451,
                esc: "4.7.1",
                text: format!(
                    "Sending limit reached: {} messages per hour to remote recipients; try again later",
                    o.max_messages_per_hour
                ),
            },
        ));
    }
    if o.max_recipients_per_day > 0
        && used.rcpts_day + remote_so_far as u64 >= o.max_recipients_per_day as u64
    {
        return Err(hit(
            address,
            "recipients per day",
            Refusal {
                code: 451,
                esc: "4.7.1",
                text: format!(
                    "Sending limit reached: {} remote recipients per day; try again later",
                    o.max_recipients_per_day
                ),
            },
        ));
    }
    Ok(())
}

fn hit(address: &str, which: &str, r: Refusal) -> Refusal {
    let n = HITS.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::warn!(user = %address, limit = which, hits_total = n, "outbound limit reached");
    r
}
