//! What the auxiliary methods promise on PostgreSQL beyond the conformance suite: that
//! N nodes sharing the database never both take one due queue entry, and that a
//! periodic task is won by one node per interval. Each "node" is a store opened on the
//! same database (its own pool), as `serve` processes on several machines would be.

use super::testing;
use crate::queue::{NewQueued, NewQueuedRcpt, QueueUpdate};
use crate::*;
use std::collections::HashSet;

/// Two stores (nodes) on one fresh database.
fn two_nodes() -> (tempfile::TempDir, Store, Store) {
    let (d, a, b, _) = two_nodes_at();
    (d, a, b)
}

/// Two stores (nodes) on one fresh database, and its URL.
fn two_nodes_at() -> (tempfile::TempDir, Store, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database();
    let open = || {
        Store::new(std::sync::Arc::new(
            super::PgBackend::open(&url, dir.path(), 4, StoreOptions::default()).unwrap(),
        ))
    };
    let (a, b) = (open(), open());
    (dir, a, b, url)
}

fn entry(now: i64) -> NewQueued {
    NewQueued {
        sender: "a@example.com".into(),
        message: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        rcpts: vec![NewQueuedRcpt {
            address: "r@remote.test".into(),
            ..Default::default()
        }],
        now,
        ..Default::default()
    }
}

#[test]
fn concurrent_takers_never_share_a_due_entry() {
    let (_d, a, b) = two_nodes();
    let mut ids = HashSet::new();
    for i in 0..200 {
        ids.insert(a.queue_insert(entry(1000 + i)).unwrap());
    }
    // Each node takes small batches as fast as it can, like schedulers racing.
    let take = |s: Store| {
        std::thread::spawn(move || {
            // Bounded: 200 entries in batches of 7 need 29 rounds at most, in total.
            let mut got = Vec::new();
            for _ in 0..40 {
                let batch = s.queue_due(5000, 7).unwrap();
                if batch.is_empty() {
                    break;
                }
                got.extend(batch);
            }
            got
        })
    };
    let (ta, tb, tc) = (take(a.clone()), take(b.clone()), take(b.clone()));
    let (ga, gb, gc) = (ta.join().unwrap(), tb.join().unwrap(), tc.join().unwrap());
    let mut all: Vec<_> = ga.iter().chain(&gb).chain(&gc).copied().collect();
    assert_eq!(all.len(), 200, "each entry taken exactly once ({} + {} + {})", ga.len(), gb.len(), gc.len());
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), ids);
    // Taken entries stay taken until their lease ends, then are due again.
    assert!(a.queue_due(5000, 10).unwrap().is_empty());
    assert_eq!(b.queue_due(5000 + super::queue::QUEUE_LEASE, 500).unwrap().len(), 200);
}

#[test]
fn a_lease_ends_with_the_attempt_or_a_release() {
    let (_d, a, b) = two_nodes();
    let x = a.queue_insert(entry(100)).unwrap();
    let y = a.queue_insert(entry(200)).unwrap();
    assert_eq!(a.queue_due(300, 10).unwrap(), vec![x, y]);
    assert!(b.queue_due(300, 10).unwrap().is_empty(), "taken by node a");
    assert_eq!(b.queue_next_due().unwrap(), Some(300 + super::queue::QUEUE_LEASE));
    // Node a gives y back: node b may take it at once.
    a.queue_release(y).unwrap();
    assert_eq!(b.queue_due(300, 10).unwrap(), vec![y]);
    // A mid-attempt record (one destination's deliveries) keeps x taken...
    let rcpt = a.queue_get(x).unwrap().rcpts[0].id;
    let mid = QueueUpdate { next_attempt: 100, count_attempt: false, ..Default::default() };
    assert!(a.queue_update(x, mid).unwrap());
    assert!(b.queue_due(300, 10).unwrap().is_empty());
    // ...the attempt's outcome ends it: x is due again at its next attempt.
    let done = QueueUpdate {
        rcpts: vec![(rcpt, queue::RcptStatus::Pending, "451 later".into())],
        next_attempt: 400,
        count_attempt: true,
        ..Default::default()
    };
    assert!(a.queue_update(x, done).unwrap());
    assert!(b.queue_due(399, 10).unwrap().is_empty());
    assert_eq!(b.queue_due(400, 10).unwrap(), vec![x]);
}

#[test]
fn one_node_wins_a_maintenance_interval() {
    let (_d, a, b) = two_nodes();
    let race = |now: i64| {
        let hs: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .map(|s| std::thread::spawn(move || s.maintenance_due("daily", now, 86_400).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).filter(|w| *w).count()
    };
    for day in 0..5 {
        assert_eq!(race(1_000_000 + day * 86_400), 1, "day {day}");
        assert_eq!(race(1_000_000 + day * 86_400 + 3600), 0, "day {day}, an hour later");
    }
}

#[test]
fn dkim_version_moves_with_a_removed_domains_keys() {
    let (_d, a, b, url) = two_nodes_at();
    a.add_domain("example.com").unwrap();
    let v0 = b.dkim_version().unwrap();
    a.add_dkim_keys(vec![DkimKey {
        domain: "example.com".into(),
        selector: "s1".into(),
        algorithm: DkimAlgorithm::Ed25519,
        private_key: vec![1],
        public_key: vec![2],
        created: 1,
        state: DkimState::Active,
        changed: 1,
    }])
    .unwrap();
    let v1 = b.dkim_version().unwrap();
    assert_eq!(v1, v0 + 1, "seen by the other node");
    let mut c = super::connect(&url).unwrap();
    c.execute("DELETE FROM domains WHERE name = 'example.com'", &[]).unwrap();
    assert_eq!(b.dkim_version().unwrap(), v1 + 1, "the cascade moved it too");
    assert!(b.active_dkim_keys().unwrap().is_empty());
}

#[test]
fn stats_count_what_the_database_holds() {
    let (_d, a, _b) = two_nodes();
    let st = a.stats().unwrap();
    assert_eq!((st.accounts, st.messages, st.usage_bytes, st.blobs, st.blob_bytes), (0, 0, 0, 0, 0));
    assert!(st.database_bytes > 1 << 20, "a database's catalog alone: {}", st.database_bytes);
}

#[test]
fn the_lease_is_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = testing::fresh_database();
    let opts = StoreOptions { queue_lease: 60, ..StoreOptions::default() };
    let open = || {
        Store::new(std::sync::Arc::new(
            super::PgBackend::open(&url, dir.path(), 4, opts.clone()).unwrap(),
        ))
    };
    let (a, b) = (open(), open());
    let x = a.queue_insert(entry(100)).unwrap();
    assert_eq!(a.queue_due(300, 10).unwrap(), vec![x]);
    assert_eq!(b.queue_next_due().unwrap(), Some(360));
    assert!(b.queue_due(359, 10).unwrap().is_empty(), "still held by node a");
    assert_eq!(b.queue_due(360, 10).unwrap(), vec![x], "lease of 60 s over");
}

#[test]
fn failed_logins_count_across_nodes_and_expire_with_the_window() {
    let (_d, a, b) = two_nodes();
    let key = "user:alice@example.com";
    // Failures on either node add up: the third is 3 wherever it lands.
    assert_eq!(a.count_login_failure(&[key.to_string()], 60, 1000).unwrap(), Some(vec![1]));
    assert_eq!(b.count_login_failure(&[key.to_string()], 60, 1010).unwrap(), Some(vec![2]));
    assert_eq!(a.count_login_failure(&[key.to_string()], 60, 1020).unwrap(), Some(vec![3]));
    // Another key counts apart; one call counts several, in order.
    let both = ["ip:192.0.2.7".to_string(), key.to_string()];
    assert_eq!(b.count_login_failure(&both, 60, 1020).unwrap(), Some(vec![1, 4]));
    // A failure a whole window after the latest starts again at 1.
    assert_eq!(b.count_login_failure(&[key.to_string()], 60, 1080).unwrap(), Some(vec![1]));
    assert_eq!(a.count_login_failure(&[key.to_string()], 60, 1081).unwrap(), Some(vec![2]));
    // A success on one node clears the count for both.
    b.clear_login_failures(&[key.to_string()]).unwrap();
    assert_eq!(a.count_login_failure(&[key.to_string()], 60, 1082).unwrap(), Some(vec![1]));
    // Concurrent failures on two nodes are all counted.
    let hammer = |s: Store| {
        std::thread::spawn(move || {
            for _ in 0..50 {
                s.count_login_failure(&["ip:198.51.100.1".to_string()], 600, 2000).unwrap();
            }
        })
    };
    let (ta, tb) = (hammer(a.clone()), hammer(b.clone()));
    ta.join().unwrap();
    tb.join().unwrap();
    assert_eq!(a.count_login_failure(&["ip:198.51.100.1".to_string()], 600, 2000).unwrap(), Some(vec![101]));
}
