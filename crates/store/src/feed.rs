//! The change feed: every committed change to an account's mailboxes, published after
//! the commit, so IMAP IDLE and concurrent sessions learn of it at once.
//!
//! A change carries its mailbox and MODSEQ; it is a wake-up, not the data: a session that
//! hears of one asks the store for what changed since the MODSEQ it knows. A receiver
//! that falls behind (`RecvError::Lagged`) therefore loses nothing by resynchronising.
//! The embedded backend publishes in-process; a PostgreSQL backend would publish what
//! arrives by LISTEN/NOTIFY from other machines into the same feed. Changes committed by
//! another process on the same data (the admin CLI's `deliver`, `message`, `quota set`)
//! reach the feed through [`ChangeFeed::publish_external`], fed by the embedded backend's
//! watcher (`SqliteBackend::watch_other_processes`).

use crate::{AccountId, MailboxId};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A message arrived (APPEND, delivery, COPY, MOVE).
    Added {
        uid: u32,
    },
    /// Flags of a message changed.
    Flags {
        uid: u32,
    },
    /// A message was expunged.
    Expunged {
        uid: u32,
    },
    MailboxCreated {
        name: String,
    },
    MailboxDeleted {
        name: String,
    },
    MailboxRenamed {
        from: String,
        to: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub modseq: u64,
    pub kind: ChangeKind,
}

/// Changes a slow receiver may fall behind by before it is told it lagged.
const CAPACITY: usize = 1024;

/// Per-account broadcast channels, created on first subscription and forgotten once the
/// last receiver is gone, so a change wakes only the sessions of its account.
#[derive(Default)]
pub struct ChangeFeed {
    channels: Mutex<HashMap<AccountId, broadcast::Sender<Change>>>,
    /// The highest MODSEQ the feed has announced per mailbox, so that the watcher of
    /// other processes' commits wakes sessions only for what they have not heard of.
    /// Kept for watched accounts only (see [`ChangeFeed::forget_unwatched`]).
    announced: Mutex<HashMap<MailboxId, (AccountId, u64)>>,
}

impl ChangeFeed {
    pub fn subscribe(&self, account: AccountId) -> broadcast::Receiver<Change> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(account)
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    pub fn publish(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        {
            let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
            for c in &changes {
                let m = announced.entry(c.mailbox).or_insert((c.account, 0));
                m.1 = m.1.max(c.modseq);
            }
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for change in changes {
            let account = change.account;
            if let Some(sender) = channels.get(&account) {
                if sender.send(change).is_err() {
                    channels.remove(&account);
                }
            }
        }
    }
}

impl ChangeFeed {
    /// Accounts that have at least one live receiver.
    pub fn watched_accounts(&self) -> Vec<AccountId> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .iter()
            .filter(|(_, s)| s.receiver_count() > 0)
            .map(|(a, _)| *a)
            .collect()
    }

    /// Mailbox states read from the store after another process committed: each
    /// `(account, mailbox, highestmodseq)` above what the feed announced wakes that
    /// account's sessions (as a `Flags` change of UID 0: a wake-up; sessions ask the
    /// store what changed). A mailbox the feed has not announced yet wakes them too: the
    /// watcher cannot tell whether a session already saw its state, and a needless
    /// wake-up costs a session one look at the store.
    pub fn publish_external(&self, states: &[(AccountId, MailboxId, u64)]) {
        let mut wake = Vec::new();
        {
            let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
            for &(account, mailbox, modseq) in states {
                match announced.get(&mailbox) {
                    Some(&(_, known)) if known >= modseq => {}
                    _ => {
                        announced.insert(mailbox, (account, modseq));
                        wake.push(Change {
                            account,
                            mailbox,
                            modseq,
                            kind: ChangeKind::Flags { uid: 0 },
                        });
                    }
                }
            }
        }
        if !wake.is_empty() {
            self.publish(wake);
        }
    }

    /// Drops what the feed remembers of accounts nobody watches any more.
    pub fn forget_unwatched(&self, watched: &std::collections::HashSet<AccountId>) {
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        announced.retain(|_, (account, _)| watched.contains(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn external_states_wake_only_what_was_not_announced() {
        let feed = ChangeFeed::default();
        let mut rx = feed.subscribe(7);
        let _other = feed.subscribe(8);
        assert_eq!(feed.watched_accounts().len(), 2);
        feed.publish(vec![Change {
            account: 7,
            mailbox: 70,
            modseq: 5,
            kind: ChangeKind::Added { uid: 1 },
        }]);
        assert_eq!(rx.try_recv().unwrap().modseq, 5);
        // Already announced in-process: no second wake-up.
        feed.publish_external(&[(7, 70, 5)]);
        assert!(rx.try_recv().is_err());
        // Another process went further, and a mailbox never announced: both wake.
        feed.publish_external(&[(7, 70, 6), (7, 71, 1)]);
        let woken: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(woken.len(), 2);
        assert!(woken.iter().all(|c| c.kind == ChangeKind::Flags { uid: 0 }));
        assert_eq!((woken[0].mailbox, woken[0].modseq), (70, 6));
        feed.publish_external(&[(7, 70, 6), (7, 71, 1)]);
        assert!(rx.try_recv().is_err());
        // Forgetting an unwatched account's mailboxes keeps the watched ones.
        feed.forget_unwatched(&HashSet::from([8]));
        feed.publish_external(&[(7, 70, 6)]);
        assert_eq!(rx.try_recv().unwrap().mailbox, 70);
    }
}
