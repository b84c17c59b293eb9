//! Test fixture: ONE private PostgreSQL cluster per test process, started on first use
//! with `scripts/pg-test-cluster` and stopped at exit, and a fresh database per test.

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
    if let Some(c) = CLUSTER.get() {
        let _ = std::process::Command::new(script())
            .arg("stop")
            .arg(&c.dir)
            .output();
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
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
    let mut admin = super::connect(&format!("{}postgres", c.base)).expect("test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("CREATE DATABASE");
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
}
