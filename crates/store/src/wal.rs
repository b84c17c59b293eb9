//! The embedded store's write-ahead log kept small (issue 15).
//!
//! SQLite in WAL mode (sqlite.org, "Write-Ahead Logging") appends every commit to
//! `store.db-wal`; an automatic checkpoint copies the pages into `store.db` every 1,000
//! pages or so, and the next writer starts the log over from its beginning, but the
//! file keeps its largest size (up to `journal_size_limit`). After a burst of
//! deliveries the log is then megabytes of pages that are also in the database.
//!
//! So the writer thread, once it has had nothing to write for `[store]
//! wal_checkpoint_idle` seconds, runs `PRAGMA wal_checkpoint(TRUNCATE)` (sqlite.org,
//! "PRAGMA wal_checkpoint"): every page goes into the database, which is fsynced, and
//! the log is cut to zero octets. It does the same when the store closes. Durability
//! does not change: a commit was durable in the log before, and the checkpoint only
//! copies pages already committed (it fsyncs the log before and the database after
//! copying, under `synchronous=FULL` or `NORMAL`).
//!
//! A checkpoint never waits: it runs with no busy timeout, so if another process holds
//! the write lock or a reader still uses an older snapshot, SQLite answers "busy" at
//! once, and the writer tries again after its next idle period. Deliveries that arrive
//! meanwhile wait for at most one checkpoint of what the log holds (a few MiB:
//! milliseconds), and only once the store has been idle.
//!
//! A log that was cut to nothing costs the next write more: SQLite writes the log's
//! header anew and fsyncs it before the first frame, even for a commit that is not
//! fsynced itself (`synchronous=NORMAL`: a `\Recent` claim, a flag change). That was
//! 8-12 ms on the SELECT after a quiet spell, whose claim is such a write (issue 18).
//! So right after the idle checkpoint, still idle, the writer starts the log again
//! ([`start`]: one page, a counter in `meta` that nothing reads, not fsynced), and
//! `serve` does the same at its start (`Backend::start_log`). The next write appends
//! to a started log. Durability does not change: a durable commit (250, APPEND OK) is
//! fsynced as before; only the header's fsync moves out of the client's way. The
//! log then holds that one page (4 KiB) instead of nothing.
//!
//! `[store] wal_size_limit` is SQLite's `journal_size_limit`: what the log is cut back
//! to when a writer starts it over during a long burst (when the store is never idle).

use rusqlite::Connection;
use std::time::Duration;

/// The default of `[store] wal_checkpoint_idle`: one second without writes. A busy
/// server never reaches it; a quiet one checkpoints once per quiet spell, which costs
/// one copy of the pages written since and two fsyncs.
pub const DEFAULT_WAL_CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// The default of `[store] wal_size_limit`: 16 MiB.
pub const DEFAULT_WAL_SIZE_LIMIT: u64 = 16 << 20;

/// Runs `wal_checkpoint(TRUNCATE)` on `conn` without waiting for other connections,
/// then puts `busy` back as its busy timeout. `true` if the log is now empty; `false`
/// if another connection was in the way (try again later) or SQLite failed (logged).
pub(crate) fn truncate(conn: &Connection, busy: Duration) -> bool {
    if let Err(e) = conn.busy_timeout(Duration::ZERO) {
        tracing::warn!("store: cannot clear the busy timeout for a checkpoint: {e}");
        return false;
    }
    // The pragma's row: (busy, frames in the log, frames checkpointed); on success
    // TRUNCATE leaves the log empty, and the counts are 0.
    let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    if let Err(e) = conn.busy_timeout(busy) {
        tracing::error!("store: cannot restore the busy timeout after a checkpoint: {e}");
    }
    match r {
        Ok((0, _, _)) => true,
        Ok(_) => false,
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            false
        }
        Err(e) => {
            tracing::warn!("store: WAL checkpoint failed: {e}");
            false
        }
    }
}

/// Starts an empty log: one write that changes one page (a counter in `meta` no one
/// reads), so that SQLite writes the log's header and fsyncs it now, not in the next
/// client's write. Run on the writer's connection (or in a write job).
pub(crate) fn start(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('log_started', 1)
         ON CONFLICT (key) DO UPDATE SET value = value + 1",
    )?
    .execute([])?;
    Ok(())
}

/// The size of the store's log file now (0 when there is none).
pub fn wal_size(db_path: &std::path::Path) -> u64 {
    let mut p = db_path.as_os_str().to_owned();
    p.push("-wal");
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_empties_the_log_and_keeps_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE t (x BLOB);",
        )
        .unwrap();
        for _ in 0..50 {
            c.execute("INSERT INTO t VALUES (randomblob(4000))", []).unwrap();
        }
        assert!(wal_size(&path) > 50 * 4000, "the log holds the commits");
        // A reader on an older snapshot is in the way: busy at once, nothing lost.
        let r = Connection::open(&path).unwrap();
        r.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
        c.execute("INSERT INTO t VALUES (randomblob(4000))", []).unwrap();
        let started = std::time::Instant::now();
        assert!(!truncate(&c, Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(5), "it did not wait for the reader");
        r.execute_batch("COMMIT").unwrap();
        assert!(truncate(&c, Duration::from_secs(30)));
        assert_eq!(wal_size(&path), 0);
        drop(r);
        drop(c);
        let c = Connection::open(&path).unwrap();
        let n: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 51);
    }

    #[test]
    fn start_writes_the_header_of_an_emptied_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
        )
        .unwrap();
        assert!(truncate(&c, Duration::from_secs(30)));
        assert_eq!(wal_size(&path), 0);
        start(&c).unwrap();
        // The header (32 octets) and one frame: the next write appends to it.
        assert!(wal_size(&path) > 32, "{}", wal_size(&path));
        start(&c).unwrap();
        let n: i64 = c
            .query_row("SELECT value FROM meta WHERE key = 'log_started'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
