//! Test fixture: ONE private PostgreSQL cluster per test process, started on first use
//! with `scripts/pg-test-cluster` and stopped at exit, and a fresh database per test.
//! With `LETTERBOX_TEST_POSTGRES=postgres://user@host:port/db` set, that server is used
//! instead (its databases are created beside `db`; it is neither started nor stopped).

use super::PgBackend;
use crate::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

struct Cluster {
    dir: PathBuf,
    /// `postgres://letterbox@127.0.0.1:PORT/` (no database).
    base: String,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster")
}

extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get().filter(|c| !c.dir.as_os_str().is_empty()) {
        let _ = std::process::Command::new(script())
            .arg("stop")
            .arg(&c.dir)
            .output();
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        if let Ok(url) = std::env::var("LETTERBOX_TEST_POSTGRES") {
            let base = url
                .rsplit_once('/')
                .map(|(b, _)| format!("{b}/"))
                .expect("LETTERBOX_TEST_POSTGRES is a postgres:// URL");
            return Cluster {
                dir: PathBuf::new(),
                base,
            };
        }
        let dir = std::env::temp_dir().join(format!("letterbox-pgtest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test cluster directory");
        let out = std::process::Command::new(script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("scripts/pg-test-cluster runs");
        assert!(
            out.status.success(),
            "pg-test-cluster start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let base = url
            .rsplit_once('/')
            .map(|(b, _)| format!("{b}/"))
            .expect("cluster URL");
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::atexit(stop_cluster);
        }
        Cluster { dir, base }
    })
}

/// A new, empty database on the test cluster: its URL.
pub(crate) fn fresh_database() -> String {
    let c = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    super::blocking(|| {
        let mut admin = super::connect(&format!("{}postgres", c.base)).expect("test cluster");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
    });
    format!("{}{name}", c.base)
}

/// A fresh store on a fresh database, large bodies under `dir`.
pub(crate) fn open_fresh(dir: &Path, opts: StoreOptions) -> Result<Store> {
    let url = fresh_database();
    Ok(Store::new(std::sync::Arc::new(PgBackend::open(
        &url, dir, 4, opts,
    )?)))
}

/// Stops the cluster for a moment and starts it again (outage tests).
#[allow(dead_code)]
pub(crate) fn cluster_url_base() -> &'static str {
    &cluster().base
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes migrating at once: the advisory lock serialises them, each migration is
    /// applied once, and both see the same version.
    #[test]
    fn migrations_apply_once_under_concurrency() {
        let url = fresh_database();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || super::super::migrate_url(&url))
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), super::super::schema_version());
        }
        let mut c = super::super::connect(&url).unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM schema_version", &[])
            .unwrap()
            .get(0);
        assert_eq!(n as usize, super::super::MIGRATIONS.len());
    }

    #[test]
    fn unreachable_database_is_unavailable() {
        // A port nobody listens on: connection refused.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = super::super::migrate_url(&format!("postgres://x@127.0.0.1:{port}/x")).unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    }

    fn two_nodes() -> (tempfile::TempDir, Store, Store) {
        let url = fresh_database();
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Store::new(std::sync::Arc::new(
                PgBackend::open(&url, dir.path(), 4, StoreOptions::default()).unwrap(),
            ))
        };
        let (a, b) = (open(), open());
        (dir, a, b)
    }

    fn message(body: &str) -> NewMessage {
        NewMessage {
            prefix: Vec::new(),
            body: std::sync::Arc::new(body.as_bytes().to_vec()),
            flags: Flags::default(),
            keywords: vec![],
            internal_date: 1_700_000_000,
        }
    }

    /// A delivery committed on node A wakes a watcher of the account on node B
    /// (LISTEN/NOTIFY), with the mailbox's new HIGHESTMODSEQ.
    #[test]
    fn delivery_on_one_node_wakes_the_other() {
        let (_d, a, b) = two_nodes();
        a.add_domain("example.com").unwrap();
        let acct = a
            .add_account("u@example.com", "{PLAIN}x", QuotaLimit::Unlimited)
            .unwrap();
        b.watch_other_processes(std::time::Duration::from_millis(200))
            .unwrap();
        let mut rx = b.watch(acct.id);
        // Let the listener take the new watcher's baseline first.
        std::thread::sleep(std::time::Duration::from_millis(600));
        while rx.try_recv().is_ok() {}
        let r = a
            .deliver(
                std::sync::Arc::new(b"Subject: x\r\n\r\nhello\r\n".to_vec()),
                1_700_000_000,
                vec![(acct.id, Vec::new())],
                true,
            )
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match rx.try_recv() {
                Ok(c) if c.mailbox == r.mailbox && c.modseq >= r.modseq => break,
                Ok(_) => {}
                Err(_) => {
                    assert!(std::time::Instant::now() < deadline, "node B never heard");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }

    /// Appends racing on two nodes into one mailbox: distinct UIDs, and MODSEQ order is
    /// UID order (both taken by one UPDATE under the mailbox row lock), usage exact.
    #[test]
    fn concurrent_appends_on_two_nodes_keep_uid_and_modseq_order() {
        let (_d, a, b) = two_nodes();
        a.add_domain("example.com").unwrap();
        let acct = a
            .add_account("u@example.com", "{PLAIN}x", QuotaLimit::Unlimited)
            .unwrap();
        let inbox = a.mailbox(acct.id, "INBOX").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                std::thread::spawn(move || {
                    for j in 0..10 {
                        s.append(inbox.id, message(&format!("Subject: {i}-{j}\r\n\r\nx")), true)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let msgs = b.list_messages(inbox.id, false).unwrap();
        assert_eq!(msgs.len(), 40);
        for w in msgs.windows(2) {
            assert!(w[0].uid < w[1].uid && w[0].modseq < w[1].modseq);
        }
        let total: u64 = msgs.iter().map(|m| m.size).sum();
        assert_eq!(a.account_by_id(acct.id).unwrap().quota_used, total);
        assert_eq!(a.check(true).unwrap(), Vec::<String>::new());
    }

    /// Deliveries to the same two accounts listed in opposite orders, and moves between
    /// them both ways, at once on two nodes: accounts are locked in id order, so no
    /// transaction waits on another in a cycle (a deadlock would surface as a temporary
    /// error here), and usage stays exact.
    #[test]
    fn crossed_deliveries_and_moves_do_not_deadlock() {
        let (_d, a, b) = two_nodes();
        a.add_domain("example.com").unwrap();
        let x = a
            .add_account("x@example.com", "{PLAIN}x", QuotaLimit::Unlimited)
            .unwrap();
        let y = a
            .add_account("y@example.com", "{PLAIN}x", QuotaLimit::Unlimited)
            .unwrap();
        let xi = a.mailbox(x.id, "INBOX").unwrap().id;
        let yi = a.mailbox(y.id, "INBOX").unwrap().id;
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (first, second) = if i % 2 == 0 { (x.id, y.id) } else { (y.id, x.id) };
                let (from, to) = if i % 2 == 0 { (xi, yi) } else { (yi, xi) };
                std::thread::spawn(move || {
                    for j in 0..15 {
                        let body = format!("Subject: {i}-{j}\r\n\r\nbody").into_bytes();
                        for r in s
                            .deliver(
                                std::sync::Arc::new(body),
                                1_700_000_000,
                                vec![(first, Vec::new()), (second, Vec::new())],
                                true,
                            )
                            .unwrap()
                        {
                            r.unwrap();
                        }
                        let uids: Vec<u32> = s
                            .list_messages(from, false)
                            .unwrap()
                            .iter()
                            .take(1)
                            .map(|m| m.uid)
                            .collect();
                        s.move_messages(from, &uids, to).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = a.list_messages(xi, false).unwrap().len() + a.list_messages(yi, false).unwrap().len();
        assert_eq!(n, 4 * 15 * 2);
        assert_eq!(a.check(true).unwrap(), Vec::<String>::new());
    }
}
