//! The change feed: every committed change to an account's mailboxes, published after
//! the commit, so IMAP IDLE and concurrent sessions learn of it at once.
//!
//! A change carries its mailbox and MODSEQ; it is a wake-up, not the data: a session that
//! hears of one asks the store for what changed since the MODSEQ it knows. A receiver
//! that falls behind (`RecvError::Lagged`) therefore loses nothing by resynchronising.
//! The embedded backend publishes in-process; a PostgreSQL backend would publish what
//! arrives by LISTEN/NOTIFY from other machines into the same feed.

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
