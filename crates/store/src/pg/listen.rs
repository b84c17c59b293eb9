//! The cross-node change feed (issue 17): every transaction that changes an account's
//! mail sends `NOTIFY letterbox, '<account id>'` (delivered by PostgreSQL at commit:
//! `PgBackend::rules`), carrying only "account N changed". Each node keeps one LISTEN
//! connection on a thread of its own; on a notification it reads the account's mailbox
//! states (HIGHESTMODSEQ, RFC 7162 3.1) and wakes the sessions that have not heard of
//! them ([`ChangeFeed::publish_external`]), which then read the changes by MODSEQ as
//! after any wake-up.
//!
//! - A signal that arrives during a read is never dropped: notifications queue on the
//!   LISTEN connection while the states are read on a pooled one, and the next turn of
//!   the loop takes them.
//! - After a reconnect every watched account is read again (what was committed while
//!   the connection was down sent its notifications to nobody).
//! - An account a session starts watching is read once as well (its baseline).

use super::PgBackend;
use crate::*;
use r2d2_postgres::postgres::{self, fallible_iterator::FallibleIterator};
use std::collections::HashSet;
use std::sync::Weak;
use std::time::Duration;

/// The NOTIFY channel.
pub(crate) const CHANNEL: &str = "letterbox";

/// How long the listener waits before trying to reconnect after losing PostgreSQL.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

pub(crate) fn start(b: &PgBackend, url: String, interval: Duration) -> Result<()> {
    let feed = Arc::downgrade(&b.feed);
    let pool = b.pool()?.clone();
    std::thread::Builder::new()
        .name("letterbox-listen".into())
        .spawn(move || run(url, pool, feed, interval))?;
    Ok(())
}

type Pool = r2d2_postgres::r2d2::Pool<
    r2d2_postgres::PostgresConnectionManager<super::tls::Tls>,
>;

/// Reads the mailbox states of `accounts` and wakes whoever has not heard of them.
fn wake(pool: &Pool, feed: &ChangeFeed, accounts: &[AccountId]) -> Result<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    let mut c = pool
        .get()
        .map_err(|e| Error::Unavailable(format!("database: {e}")))?;
    let states: Vec<(AccountId, MailboxId, u64)> = c
        .query(
            "SELECT account_id, id, highestmodseq FROM mailboxes WHERE account_id = ANY($1)",
            &[&accounts],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
        .collect();
    feed.publish_external(&states);
    Ok(())
}

fn run(url: String, pool: Pool, feed: Weak<ChangeFeed>, interval: Duration) {
    let mut baselined: HashSet<AccountId> = HashSet::new();
    let mut down = false;
    loop {
        let mut client = match super::connect(&url).and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                // Once per outage, not at every retry.
                if !down {
                    tracing::warn!("change feed: cannot listen (retrying): {e}");
                    down = true;
                }
                std::thread::sleep(RECONNECT_DELAY);
                if feed.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        if down {
            tracing::info!("change feed: listening again");
            down = false;
        }
        // (Re)connected: everything watched is read again.
        baselined.clear();
        loop {
            let Some(feed) = feed.upgrade() else { return };
            let watched: HashSet<AccountId> = feed.watched_accounts().into_iter().collect();
            baselined.retain(|a| watched.contains(a));
            feed.forget_unwatched(&watched);
            let mut due: Vec<AccountId> = watched
                .iter()
                .copied()
                .filter(|a| !baselined.contains(a))
                .collect();
            // Wait up to `interval` for a notification, then take every one queued.
            let mut lost = false;
            {
                let mut notes = client.notifications();
                let mut take = |n: postgres::Notification| {
                    if let Ok(a) = n.payload().parse::<AccountId>() {
                        if watched.contains(&a) && !due.contains(&a) {
                            due.push(a);
                        }
                    }
                };
                match notes.timeout_iter(interval).next() {
                    Ok(Some(n)) => take(n),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!("change feed: LISTEN connection lost: {e}");
                        lost = true;
                    }
                }
                if !lost {
                    let mut queued = notes.iter();
                    loop {
                        match queued.next() {
                            Ok(Some(n)) => take(n),
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!("change feed: LISTEN connection lost: {e}");
                                lost = true;
                                break;
                            }
                        }
                    }
                }
            }
            if let Err(e) = wake(&pool, &feed, &due) {
                tracing::warn!("change feed: cannot read changes: {e}");
                // Read again next time round.
                for a in &due {
                    baselined.remove(a);
                }
            } else {
                baselined.extend(due);
            }
            if lost || client.is_closed() {
                break;
            }
        }
        std::thread::sleep(RECONNECT_DELAY);
    }
}
