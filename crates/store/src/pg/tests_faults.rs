//! Lost races on PostgreSQL, made to happen: another connection holds a row a store
//! transaction needs and then asks for one the store transaction holds (the account
//! row, which every rule takes first), so that PostgreSQL's deadlock detector aborts one
//! of the two. The store's transaction starts
//! waiting first, so its check (after `deadlock_timeout`) runs first and it is the one
//! aborted (40P01). With `[store] conflict_retries` it is run again and succeeds once
//! the other commits; with 0 the caller gets the temporary error.

use super::testing::fresh_database;
use super::PgBackend;
use crate::*;
use std::sync::Arc;
use std::time::Duration;

fn open(url: &str, dir: &std::path::Path, retries: u32) -> Store {
    let opts = StoreOptions {
        conflict_retries: retries,
        ..StoreOptions::default()
    };
    Store::new(Arc::new(PgBackend::open(url, dir, 4, opts).unwrap()))
}

fn message(body: &[u8]) -> NewMessage {
    NewMessage {
        prefix: Vec::new(),
        body: Arc::new(body.to_vec()),
        flags: Flags::default(),
        keywords: vec![],
        internal_date: 1_700_000_000,
    }
}

/// Runs `store_side` on a thread while a raw connection first runs `first` (in an open
/// transaction), waits for the store's transaction to block on it, then runs `second`
/// (which waits on the store's transaction: the cycle), and commits. Returns the
/// store's result.
fn crossed<T: Send + 'static>(
    url: &str,
    first: &str,
    second: &str,
    store_side: impl FnOnce() -> T + Send + 'static,
) -> T {
    let mut raw = super::connect(url).unwrap();
    let mut tx = raw.transaction().unwrap();
    tx.batch_execute(first).unwrap();
    let h = std::thread::spawn(store_side);
    std::thread::sleep(Duration::from_millis(300));
    // Blocks until the deadlock detector aborts the store's transaction.
    tx.batch_execute(second).unwrap();
    tx.commit().unwrap();
    h.join().unwrap()
}

fn hex(b: &[u8]) -> String {
    crate::blob::BlobId::of(b).hex()
}

/// A MULTIAPPEND that deadlocks with another transaction (the account row and a blob
/// row, taken in opposite orders) is run again as a whole.
#[test]
fn deadlocked_append_is_run_again() {
    for retries in [0, super::DEFAULT_CONFLICT_RETRIES] {
        let url = fresh_database();
        let dir = tempfile::tempdir().unwrap();
        let s = open(&url, dir.path(), retries);
        s.add_domain("example.com").unwrap();
        let acct = s
            .add_account("u@example.com", "{PLAIN}x", QuotaLimit::Unlimited)
            .unwrap();
        let inbox = s.mailbox(acct.id, "INBOX").unwrap();
        let (x, y) = (
            &b"Subject: x\r\n\r\nx\r\n"[..],
            &b"Subject: y\r\n\r\ny\r\n"[..],
        );
        s.append_many(inbox.id, vec![message(x), message(y)], true)
            .unwrap();
        let first = format!(
            "UPDATE blobs SET refcount = refcount WHERE hash = decode('{}', 'hex')",
            hex(x)
        );
        let second = format!("SELECT 1 FROM accounts WHERE id = {} FOR UPDATE", acct.id);
        let s2 = s.clone();
        let r = crossed(&url, &first, &second, move || {
            // Locks the account, then waits for X's row.
            s2.append_many(inbox.id, vec![message(y), message(x)], true)
        });
        if retries == 0 {
            assert!(matches!(&r, Err(e) if super::is_conflict(e)), "{r:?}");
            assert_eq!(s.list_messages(inbox.id, false).unwrap().len(), 2);
        } else {
            assert_eq!(r.unwrap().len(), 2);
            let msgs = s.list_messages(inbox.id, false).unwrap();
            assert_eq!(msgs.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 3, 4]);
        }
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    }
}

/// A delivery whose recipient deadlocks inside its savepoint: that recipient is
/// delivered again in a new transaction rather than refused.
#[test]
fn deadlocked_recipient_is_delivered_again() {
    for retries in [0, super::DEFAULT_CONFLICT_RETRIES] {
        let url = fresh_database();
        let dir = tempfile::tempdir().unwrap();
        let s = open(&url, dir.path(), retries);
        s.add_domain("example.com").unwrap();
        let acct = s
            .add_account("u@example.com", "{PLAIN}x", QuotaLimit::Unlimited)
            .unwrap();
        let inbox = s.mailbox(acct.id, "INBOX").unwrap();
        let body = b"Subject: d\r\n\r\nd\r\n".to_vec();
        s.append(inbox.id, message(&body), true).unwrap();
        let first = format!(
            "UPDATE blobs SET refcount = refcount WHERE hash = decode('{}', 'hex')",
            hex(&body)
        );
        let second = format!("SELECT 1 FROM accounts WHERE id = {} FOR UPDATE", acct.id);
        let s2 = s.clone();
        let b2 = body.clone();
        // Locks the account, then waits for the blob row.
        let r = crossed(&url, &first, &second, move || {
            s2.deliver(
                Arc::new(b2),
                1_700_000_000,
                vec![(acct.id, Vec::new())],
                true,
            )
        })
        .unwrap()
        .pop()
        .unwrap();
        if retries == 0 {
            assert!(matches!(&r, Err(e) if super::is_conflict(e)), "{r:?}");
            assert_eq!(s.list_messages(inbox.id, false).unwrap().len(), 1);
        } else {
            assert_eq!(r.unwrap().uid, 2);
            assert_eq!(s.list_messages(inbox.id, false).unwrap().len(), 2);
        }
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    }
}
