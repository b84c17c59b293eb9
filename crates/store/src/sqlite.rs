//! The embedded backend: SQLite metadata (`store.db`, WAL, `synchronous=FULL`) plus
//! blob files ([`crate::blob`]).
//!
//! Writes go through one writer thread that batches whatever is queued into a single
//! `BEGIN IMMEDIATE` transaction (group commit: one fsync for many deliveries), each job
//! inside its own savepoint so that one failing job does not undo the others. A job's
//! caller hears of its result only after the commit, and change-feed events are published
//! only then. Reads use a small pool of connections; WAL lets them run beside the writer.
//! SQLite's file locks make the admin CLI safe to run while `serve` runs.

use crate::blob::{BlobDir, BlobId};
use crate::*;
use letterbox_message::ParsedMessage;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

#[path = "recent.rs"]
mod recent;
#[path = "import.rs"]
pub mod import;
#[path = "backup.rs"]
pub mod backup;
#[path = "transfer_sqlite.rs"]
mod transfer_q;
#[path = "expire.rs"]
pub(crate) mod expire;
#[path = "replace.rs"]
mod replace;
#[path = "space.rs"]
mod space;
#[path = "dedup.rs"]
pub(crate) mod dedup;
#[path = "objects.rs"]
mod objects;
use objects::{KIND_BLOB, KIND_PART};
#[path = "wal.rs"]
pub mod wal;
#[path = "sqlite_tx.rs"]
mod tx;

pub(crate) use crate::rules::{check_keywords, join_keywords};
use crate::body::{encode_given, encode_parsed, Encoded, SearchDecoder};

/// How many queued write jobs one transaction may take.
const MAX_BATCH: usize = 256;
/// How long a write waits for another process's lock (milliseconds).
const BUSY_TIMEOUT_MS: u64 = 30_000;
/// Alias chains are followed this deep.
const MAX_ALIAS_DEPTH: usize = 8;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type JobFn = Box<dyn FnOnce(&mut WriteCtx) -> Completion + Send>;

/// A write job, and whether its commit must be fsynced before its caller hears of it.
struct Job {
    durable: bool,
    run: JobFn,
}

/// What a write job sees: the open transaction and where to put feed events.
pub struct WriteCtx<'a> {
    pub(crate) tx: Transaction<'a>,
    changes: Vec<Change>,
    blobs: &'a BlobDir,
    opts: &'a StoreOptions,
    /// Shared part files (`dedup.rs`).
    parts: &'a BlobDir,
}

impl WriteCtx<'_> {
    /// The open transaction (for the store's other modules, e.g. `queue.rs`).
    pub(crate) fn tx(&self) -> &Transaction<'_> {
        &self.tx
    }
}

pub struct SqliteBackend {
    db_path: PathBuf,
    blobs: BlobDir,
    opts: StoreOptions,
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
    feed: Arc<ChangeFeed>,
    pub(crate) auth_cache: password::VerifiedCache,
    /// `[store] disk_reserve` (`disk.rs`).
    reserve: crate::disk::Reserve,
    /// Shared part files, `data_dir/parts` (`dedup.rs`).
    parts: BlobDir,
}

/// Prepared statements each connection keeps (the writer's and every reader's).
const READER_STATEMENTS: usize = 64;

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // rusqlite keeps 16 prepared statements by default: a reader connection serves the
    // reads of every command, so a session's FETCH/SEARCH/THREAD evicted SELECT's
    // statements and the next SELECT parsed them again (a third of its instructions).
    conn.set_prepared_statement_cache_capacity(READER_STATEMENTS);
    // journal_size_limit (`[store] wal_size_limit`, set on the writer's connection
    // in `open`): what the WAL is cut back to when a long burst starts it over; an idle
    // store empties it altogether (`wal.rs`).
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
         PRAGMA journal_size_limit={};",
        wal::DEFAULT_WAL_SIZE_LIMIT
    ))?;
    Ok(conn)
}

/// The default of `[store] reader_cache_bytes`: 2 MiB, about SQLite's own (2,000 KiB). At 100,000 messages
/// a cold FETCH ENVELOPE (heads read in UID order, each row joined to `blob_info` by hash)
/// read 393 MB in 96,000 `pread`s through 2 MiB and 123 MB through 8 MiB (110 MB through
/// 64 MiB), but its time and CPU did not move (system time -60 ms, user time +50 ms; wall
/// within noise): the pages read again come from the OS page cache. Cold BODYSTRUCTURE,
/// SEARCH SUBJECT and SORT (DATE) read each page once at any size (docs/BENCHMARKS.md,
/// "the readers' page cache").
pub const DEFAULT_READER_CACHE_BYTES: u64 = 2 << 20;

/// A pooled reader: [`open_conn`] with `[store] reader_cache_bytes` of page cache
/// (SQLite's `cache_size`, negative: in KiB). The writer keeps SQLite's default.
fn open_reader(path: &Path, cache_bytes: u64) -> Result<Connection> {
    let conn = open_conn(path)?;
    conn.execute_batch(&format!(
        "PRAGMA cache_size=-{};",
        (cache_bytes / 1024).max(1)
    ))?;
    Ok(conn)
}

impl SqliteBackend {
    pub fn open(data_dir: &Path, opts: StoreOptions) -> Result<SqliteBackend> {
        Self::open_named(data_dir, "store.db", opts)
    }

    /// Like [`Self::open`], with the database file `db_name` in `data_dir` (the blob
    /// files are still `data_dir/blobs` and `data_dir/parts`): a PostgreSQL backup is
    /// built under a temporary name next to the backup it replaces (`pg/backup.rs`).
    pub(crate) fn open_named(
        data_dir: &Path,
        db_name: &str,
        opts: StoreOptions,
    ) -> Result<SqliteBackend> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot create data directory {}: {e}", data_dir.display()),
            ))
        })?;
        let probe = data_dir.join(".write-test");
        std::fs::write(&probe, b"").map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("data directory {} is not writable: {e}", data_dir.display()),
            ))
        })?;
        let _ = std::fs::remove_file(&probe);
        let db_path = data_dir.join(db_name);
        let (blobs, parts) = match &opts.objects {
            None => (
                BlobDir::open(data_dir.join("blobs"))?,
                BlobDir::open(data_dir.join("parts"))?,
            ),
            Some(o) => {
                let remote = Arc::new(crate::s3::S3Objects::open(o)?);
                (
                    BlobDir::open_remote(data_dir.join("blobs"), remote.clone()),
                    BlobDir::open_remote(data_dir.join("parts"), remote),
                )
            }
        };
        let mut conn = open_conn(&db_path)?;
        conn.execute_batch(&format!("PRAGMA journal_size_limit={}", opts.wal_size_limit))?;
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(include_str!("schema.sql"))?;
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', 1)",
                [],
            )?;
            migrate(&tx)?;
            tx.commit()?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let feed = Arc::new(ChangeFeed::default());
        {
            let blobs = (blobs.clone(), parts.clone());
            let opts = opts.clone();
            let feed = feed.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || writer_loop(conn, rx, blobs, opts, feed))?;
        }
        // One reader ready from the start: opening a connection reads and parses the
        // whole schema (1.7 M instructions), which the first read after a start (the
        // first SELECT) paid.
        let reader = open_reader(&db_path, opts.reader_cache_bytes)?;
        Ok(SqliteBackend {
            reserve: crate::disk::Reserve::open(data_dir, opts.disk_reserve),
            db_path,
            blobs,
            auth_cache: password::VerifiedCache::new(opts.auth_cache_ttl),
            opts,
            writer: Mutex::new(tx),
            readers: Mutex::new(vec![reader]),
            feed,
            parts,
        })
    }

    /// Runs a write job in the writer's next transaction and waits for its fsynced commit.
    pub(crate) fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    {
        self.reserve.before_small_write();
        self.write_with(true, f)
    }

    /// Like [`Self::write`], for a write that brings new mail (delivery, APPEND): refused
    /// with [`Error::DiskFull`] while the disk reserve is released, and never releases it
    /// (`disk.rs`); a full disk met on the way is reported as [`Error::DiskFull`] too.
    fn write_growth<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    {
        if !self.reserve.allows_growth() {
            return Err(Error::DiskFull);
        }
        self.write_with(true, f).map_err(crate::disk::classify)
    }

    /// Like [`Self::write`], for changes whose loss in a power failure harms no mail:
    /// flag changes, `\Recent` marks, POP3 retrieval times, expunges (at worst a removed
    /// message comes back). The commit is not fsynced (`synchronous=NORMAL`), so such a
    /// change survives a crash of the process (kill -9) but not of the machine; the next
    /// durable commit fsyncs it too. Dovecot does not fsync these either.
    pub(crate) fn write_lazy<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    {
        self.reserve.before_small_write();
        self.write_with(false, f)
    }

    fn write_with<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    {
        let (rtx, rrx) = mpsc::sync_channel::<Result<T>>(1);
        let run: JobFn = Box::new(move |ctx: &mut WriteCtx| -> Completion {
            if let Err(e) = ctx
                .tx
                .prepare_cached("SAVEPOINT job")
                .and_then(|mut s| s.execute([]))
            {
                return Box::new(move |_| {
                    let _ = rtx.send(Err(e.into()));
                });
            }
            let mark = ctx.changes.len();
            match f(ctx) {
                Ok(v) => {
                    if let Err(e) = ctx
                        .tx
                        .prepare_cached("RELEASE job")
                        .and_then(|mut s| s.execute([]))
                    {
                        ctx.changes.truncate(mark);
                        return Box::new(move |_| {
                            let _ = rtx.send(Err(e.into()));
                        });
                    }
                    Box::new(move |commit: Result<(), String>| {
                        let _ = rtx.send(commit.map(|_| v).map_err(|e| {
                            Error::Io(std::io::Error::other(format!("commit failed: {e}")))
                        }));
                    })
                }
                Err(e) => {
                    let _ = ctx.tx.execute_batch("ROLLBACK TO job; RELEASE job");
                    ctx.changes.truncate(mark);
                    Box::new(move |_| {
                        let _ = rtx.send(Err(e));
                    })
                }
            }
        });
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Job { durable, run })
            .map_err(|_| Error::Io(std::io::Error::other("store writer has stopped")))?;
        rrx.recv().unwrap_or_else(|_| {
            Err(Error::Io(std::io::Error::other(
                "store write was not carried out",
            )))
        })
    }

    /// Runs a read on a pooled connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_reader(&self.db_path, self.opts.reader_cache_bytes)?,
        };
        let r = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 16 {
            pool.push(conn);
        }
        r
    }

    pub(crate) fn options(&self) -> &StoreOptions {
        &self.opts
    }

    pub(crate) fn effective(&self, row: AccountRow) -> Account {
        row.into_account(&self.opts)
    }
}

// For the store's other files (`line_ends.rs`, `disk.rs`).
impl SqliteBackend {
    /// After an expunge on a full disk (reserve released): the octets of the messages
    /// no longer referenced are removed now rather than at the next hourly collection,
    /// so that the space comes back at once (`disk.rs`).
    fn after_delete(&self) {
        if !self.reserve.in_place() {
            match self.free_unreferenced() {
                Ok(n) => {
                    tracing::info!("store: disk full: removed {n} unreferenced blob(s) at once")
                }
                Err(e) => tracing::warn!("store: disk full: cannot remove unreferenced blobs: {e}"),
            }
        }
    }

    pub(crate) fn read_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.read(f)
    }
    pub(crate) fn write_lazy_pub<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> Result<T> + Send + 'static,
    {
        self.write_lazy(f)
    }
    pub(crate) fn blob_reader_pub(&self, id: &BlobId) -> Result<crate::blob::BlobReader> {
        self.blob_reader(id)
    }
}

/// Brings a store made by an earlier version up to date (columns added since).
fn migrate(tx: &Transaction) -> Result<()> {
    let has_pending: bool = tx
        .prepare("SELECT 1 FROM pragma_table_info('accounts') WHERE name = 'warn_pending'")?
        .exists([])?;
    if !has_pending {
        tx.execute_batch(
            "ALTER TABLE accounts ADD COLUMN warn_pending INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    let has_search: bool = tx
        .prepare("SELECT 1 FROM pragma_table_info('blobs') WHERE name = 'search'")?
        .exists([])?;
    if !has_search {
        tx.execute_batch("ALTER TABLE blobs ADD COLUMN search BLOB")?;
    }
    // Until 2026-12 the BODYSTRUCTURE renderings' copies were a column of the rows:
    // moved once into their own table (bodystructures.rs says why).
    crate::bodystructures::migrate_column(tx)?;
    let has_sortkeys: bool = tx
        .prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'sortkeys'")?
        .exists([])?;
    if !has_sortkeys {
        tx.execute_batch("ALTER TABLE messages ADD COLUMN sortkeys BLOB")?;
    }
    // Version 2: internationalised domains stored as A-labels.
    crate::idn::migrate_sqlite(tx)?;
    // IMAP's chunks of searchable heads (kind 3) written while they duplicated
    // `message_searchable`: dropped once (pg migration 190 says why).
    let dropped: bool = tx
        .prepare("SELECT 1 FROM meta WHERE key = 'searchable_chunks_dropped'")?
        .exists([])?;
    if !dropped {
        tx.execute_batch(
            "DELETE FROM message_cache WHERE kind = 3;
             INSERT INTO meta (key, value) VALUES ('searchable_chunks_dropped', 1);",
        )?;
    }
    Ok(())
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Job>,
    blobs: (BlobDir, BlobDir),
    opts: StoreOptions,
    feed: Arc<ChangeFeed>,
) {
    let mut synced = true; // the connection starts with synchronous=FULL
    conn.set_prepared_statement_cache_capacity(64);
    // Whether the WAL may hold frames an idle checkpoint should empty (`wal.rs`).
    let mut dirty = true;
    // Whether it started the log after a checkpoint (a page to empty at close).
    let mut started = false;
    // Whether this process wrote at all: a store opened only to be read (the source of
    // `migrate --to`, `check`) is left byte for byte as it was, never started.
    let mut wrote = false;
    let busy = std::time::Duration::from_millis(BUSY_TIMEOUT_MS);
    loop {
        let first = if dirty && !opts.wal_checkpoint_idle.is_zero() {
            match rx.recv_timeout(opts.wal_checkpoint_idle) {
                Ok(j) => j,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    dirty = !wal::truncate(&conn, busy);
                    if !dirty && wrote {
                        // Still idle: the log's new header and its fsync now, not in
                        // the next client's write (`wal.rs`). Not fsynced itself.
                        if synced {
                            match conn.execute_batch("PRAGMA synchronous=NORMAL") {
                                Ok(()) => synced = false,
                                Err(e) => tracing::error!("store: cannot set synchronous=NORMAL: {e}"),
                            }
                        }
                        if !synced {
                            match wal::start(&conn) {
                                Ok(()) => started = true,
                                // A full disk, say: the next write starts it itself.
                                Err(e) => tracing::debug!("store: WAL not started: {e}"),
                            }
                        }
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            }
        };
        dirty = true;
        wrote = true;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // The jobs that need no fsync (flags, expunges) are committed first, on their
        // own, so that they do not wait for the durable ones' fsync; that one later fsync
        // covers their WAL frames too. The jobs of a batch were queued by different
        // callers at once, so running them in either order is correct.
        let (durable, lazy): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.durable);
        for (group, want_sync) in [(lazy, false), (durable, true)] {
            if group.is_empty() {
                continue;
            }
            if want_sync != synced {
                let mode = if want_sync { "FULL" } else { "NORMAL" };
                if let Err(e) = conn.execute_batch(&format!("PRAGMA synchronous={mode}")) {
                    tracing::error!("store: cannot set synchronous={mode}: {e}");
                    continue;
                }
                synced = want_sync;
            }
            run_batch(&mut conn, group, &blobs, &opts, &feed);
        }
    }
    // The store is closing: leave no log behind (`wal.rs`).
    if dirty || started {
        wal::truncate(&conn, busy);
    }
}

/// Runs jobs in one transaction and tells each caller the outcome after the commit.
fn run_batch(
    conn: &mut Connection,
    batch: Vec<Job>,
    blobs: &(BlobDir, BlobDir),
    opts: &StoreOptions,
    feed: &ChangeFeed,
) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!("store: cannot begin a write transaction: {e}");
            // Dropping the jobs tells each caller its write was not carried out.
            return;
        }
    };
    let mut ctx = WriteCtx {
        tx,
        changes: Vec::new(),
        blobs: &blobs.0,
        opts,
        parts: &blobs.1,
    };
    let completions: Vec<Completion> = batch.into_iter().map(|job| (job.run)(&mut ctx)).collect();
    let WriteCtx { tx, changes, .. } = ctx;
    let commit = tx.commit().map_err(|e| e.to_string());
    if let Err(e) = &commit {
        tracing::error!("store: commit failed: {e}");
    } else {
        feed.publish(changes);
    }
    for c in completions {
        c(commit.clone());
    }
}

// ---------------------------------------------------------------------------
// Row helpers

pub(crate) struct AccountRow {
    pub(crate) id: i64,
    pub(crate) address: String,
    quota_limit: Option<i64>,
    quota_used: i64,
    retention: Option<String>,
}

pub(crate) const ACCOUNT_COLS: &str = "id, address, quota_limit, quota_used, pop3_retention";

impl AccountRow {
    pub(crate) fn from_row(r: &rusqlite::Row) -> rusqlite::Result<AccountRow> {
        AccountRow::from_row_at(r, 0)
    }
    /// The [`ACCOUNT_COLS`] of a row that has them from column `at` on.
    fn from_row_at(r: &rusqlite::Row, at: usize) -> rusqlite::Result<AccountRow> {
        Ok(AccountRow {
            id: r.get(at)?,
            address: r.get(at + 1)?,
            quota_limit: r.get(at + 2)?,
            quota_used: r.get(at + 3)?,
            retention: r.get(at + 4)?,
        })
    }
    fn into_account(self, opts: &StoreOptions) -> Account {
        let quota_limit = match self.quota_limit {
            None => QuotaLimit::Default,
            Some(n) if n < 0 => QuotaLimit::Unlimited,
            Some(n) => QuotaLimit::Bytes(n as u64),
        };
        let effective_limit = match quota_limit {
            QuotaLimit::Default => Some(opts.default_quota),
            QuotaLimit::Bytes(n) => Some(n),
            QuotaLimit::Unlimited => None,
        };
        let pop3_retention = self.retention.and_then(|s| s.parse().ok());
        Account {
            id: self.id,
            address: self.address,
            quota_limit,
            effective_limit,
            quota_used: self.quota_used.max(0) as u64,
            pop3_retention,
            effective_retention: pop3_retention.unwrap_or(opts.default_retention),
        }
    }
}

fn quota_to_sql(q: QuotaLimit) -> Option<i64> {
    match q {
        QuotaLimit::Default => None,
        QuotaLimit::Bytes(n) => Some(n.min(i64::MAX as u64) as i64),
        QuotaLimit::Unlimited => Some(-1),
    }
}

pub(crate) fn get_account(conn: &Connection, address: &str) -> Result<AccountRow> {
    let a = normalize_address(address);
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLS} FROM accounts WHERE address = ?1"
    ))?
    .query_row([&a], AccountRow::from_row)
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("user {a}")))
}

/// An account and its stored password hash, by normalised address.
fn account_with_hash(conn: &Connection, address: &str) -> Result<Option<(String, AccountRow)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLS}, password_hash FROM accounts WHERE address = ?1"
        ))?
        .query_row([address], |r| Ok((r.get(5)?, AccountRow::from_row(r)?)))
        .optional()?)
}

pub(crate) fn get_account_by_id(conn: &Connection, id: AccountId) -> Result<AccountRow> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1"
    ))?
    .query_row([id], AccountRow::from_row)
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("account #{id}")))
}

const MAILBOX_COLS: &str = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use";

fn mailbox_from_row(r: &rusqlite::Row) -> rusqlite::Result<Mailbox> {
    let special: Option<String> = r.get(6)?;
    Ok(Mailbox {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        uidvalidity: r.get::<_, i64>(3)? as u32,
        uidnext: r.get::<_, i64>(4)? as u32,
        highestmodseq: r.get::<_, i64>(5)? as u64,
        special_use: special.as_deref().and_then(SpecialUse::parse),
    })
}

fn get_mailbox(conn: &Connection, account: AccountId, name: &str) -> Result<Mailbox> {
    let name = normalize_mailbox_name(name)?;
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1 AND name = ?2"
    ))?
    .query_row(params![account, name], mailbox_from_row)
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("mailbox {name}")))
}

/// SELECT's read ([`Backend::mailbox_to_open`]): the mailbox row, `first_recent` and the
/// account, one statement.
fn get_mailbox_to_open(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<(Mailbox, i64, AccountRow)> {
    let name = normalize_mailbox_name(name)?;
    conn.prepare_cached(
        "SELECT m.id, m.account_id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq,
                m.special_use, m.first_recent,
                a.id, a.address, a.quota_limit, a.quota_used, a.pop3_retention
         FROM mailboxes m JOIN accounts a ON a.id = m.account_id
         WHERE m.account_id = ?1 AND m.name = ?2",
    )?
    .query_row(params![account, name], |r| {
        Ok((mailbox_from_row(r)?, r.get(7)?, AccountRow::from_row_at(r, 8)?))
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("mailbox {name}")))
}

fn get_mailbox_by_id(conn: &Connection, id: MailboxId) -> Result<Mailbox> {
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ?1"
    ))?
    .query_row([id], mailbox_from_row)
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("mailbox #{id}")))
}

const MESSAGE_COLS: &str =
    "uid, modseq, flags, keywords, internal_date, size, blob, length(prefix)";

fn meta_from_row(r: &rusqlite::Row) -> rusqlite::Result<MessageMeta> {
    // Keywords and hash read in place, not copied into a String and a Vec first (a
    // FETCH 1:* of metadata reads every row of the mailbox).
    let keywords = match r.get_ref(3)? {
        rusqlite::types::ValueRef::Text(t) => split_keywords(std::str::from_utf8(t).unwrap_or("")),
        _ => Vec::new(),
    };
    let mut id = [0u8; 32];
    if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(6)? {
        if b.len() == 32 {
            id.copy_from_slice(b);
        }
    }
    Ok(MessageMeta {
        uid: r.get::<_, i64>(0)? as u32,
        modseq: r.get::<_, i64>(1)? as u64,
        flags: Flags(r.get::<_, i64>(2)? as u8),
        keywords,
        internal_date: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        blob: BlobId(id),
        prefix_len: r.get::<_, i64>(7)? as u32,
        recent: false,
    })
}

fn split_keywords(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect()
}

fn get_message(conn: &Connection, mailbox: MailboxId, uid: u32) -> Result<MessageMeta> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = ?1 AND uid = ?2"
    ))?
    .query_row(params![mailbox, uid], meta_from_row)
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("message UID {uid}")))
}

/// A UID list as a JSON array, for `uid IN (SELECT value FROM json_each(?))`: one indexed
/// lookup per UID, as good for a sparse set (`1,50000,100000`) as for a dense range.
fn uid_list(uids: &[u32]) -> String {
    let mut s = String::with_capacity(uids.len() * 7 + 2);
    s.push('[');
    for (i, u) in uids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&u.to_string());
    }
    s.push(']');
    s
}

/// Whether the blob's octets are stored inline (table `blob_data`).
fn has_inline(c: &Connection, id: &BlobId) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM blob_data WHERE hash = ?1")?
        .exists([&id.0[..]])?)
}

/// The blob's compressed octets when stored inline.
fn inline_data(c: &Connection, id: &BlobId) -> Result<Option<Vec<u8>>> {
    Ok(
        c.prepare_cached("SELECT data FROM blob_data WHERE hash = ?1")?
            .query_row([&id.0[..]], |r| r.get(0))
            .optional()?,
    )
}

/// Whether any message references the blob (a row at zero awaits collection).
fn blob_live(c: &Connection, id: &BlobId) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT refcount > 0 FROM blobs WHERE hash = ?1")?
            .query_row([&id.0[..]], |r| r.get(0))
            .optional()?
            .unwrap_or(false),
    )
}

impl WriteCtx<'_> {
    /// Sets an account's quota limit inside the current transaction (the CLI's
    /// `quota set` and an approved quota request share it).
    pub(crate) fn set_quota_limit(&mut self, account: AccountId, limit: QuotaLimit) -> Result<()> {
        crate::rules::set_quota_limit(self, account, limit)
    }

    fn next_uidvalidity(&self) -> Result<u32> {
        let last: i64 = self
            .tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'uidvalidity'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let next = (last + 1).max(now()).min(u32::MAX as i64);
        self.tx.execute(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [next],
        )?;
        Ok(next as u32)
    }

    fn create_mailbox(
        &mut self,
        account: AccountId,
        name: &str,
        special: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let name = validate_new_mailbox_name(name)?;
        if get_mailbox(&self.tx, account, &name).is_ok() {
            return Err(Error::Exists(format!("mailbox {name}")));
        }
        // RFC 9051 6.3.4 lets a server create the superior names or not. As Dovecot,
        // none is made: `a` of `a/b` is no mailbox (IMAP lists it `\NonExistent
        // \HasChildren`), so a client that never made `a` never finds it to sync.
        self.insert_mailbox(account, &name, special)
    }

    fn insert_mailbox(
        &mut self,
        account: AccountId,
        name: &str,
        special: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let uidvalidity = self.next_uidvalidity()?;
        self.tx.execute(
            "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES (?1, ?2, ?3, ?4)",
            params![account, name, uidvalidity, special.map(|s| s.as_str())],
        )?;
        let mb = get_mailbox_by_id(&self.tx, self.tx.last_insert_rowid())?;
        self.changes.push(Change {
            account,
            mailbox: mb.id,
            modseq: mb.highestmodseq,
            kind: ChangeKind::MailboxCreated {
                name: name.to_string(),
            },
        });
        Ok(mb)
    }

    /// Removes the file of a blob that no message uses: the one a refused append or
    /// delivery (over quota) prepared, so that a refusal leaves no orphan file behind.
    /// Safe under the write lock: a later [`Self::ref_blob`] rewrites a missing file.
    fn drop_unused_blob(&mut self, prep: &Prepared) -> Result<()> {
        if !blob_live(&self.tx, &prep.id)? {
            // With an object store, only an uploaded body has an object to queue.
            let uploaded = prep.inline.is_none() && prep.split.is_none();
            if uploaded || self.blobs.remote().is_none() {
                self.drop_object(KIND_BLOB, &prep.id)?;
            }
            if let Some(sp) = &prep.split {
                self.drop_unused_parts(sp)?;
            }
        }
        Ok(())
    }

    /// Makes sure the blob row and its octets (inline row or file) exist and takes a
    /// reference. Called under the write lock, so a collector cannot remove the octets
    /// between the check and commit. `prep`: what [`SqliteBackend::prepare_blob`] made
    /// of `body` (its parse; compressed octets when small enough to live in the
    /// database; its skeleton and parts when it is stored split).
    fn ref_blob(&mut self, id: &BlobId, body: Option<&[u8]>, prep: Option<&Prepared>) -> Result<()> {
        let encoded = prep.and_then(|p| p.encoded.as_ref());
        let inline = prep.and_then(|p| p.inline.as_deref());
        let split = prep.and_then(|p| p.split.as_ref());
        let rc: Option<i64> = self
            .tx
            .prepare_cached("SELECT refcount FROM blobs WHERE hash = ?1")?
            .query_row([&id.0[..]], |r| r.get(0))
            .optional()?;
        let live = rc.is_some_and(|n| n > 0);
        // A body compressed for inline storage goes in without looking for a file (an
        // older store may also have one: both homes hold the same octets).
        let mut stored = live || has_inline(&self.tx, id)? || self.has_split(id)?;
        if !stored {
            if let (Some(sp), Some(body)) = (split, body) {
                // An older copy's file serves as well; otherwise the shared parts (with
                // an object store, always the parts: they are held, a whole-body object
                // would cost a request under the lock to look for).
                if self.blobs.remote().is_some() || !self.object_present(KIND_BLOB, id, false)? {
                    self.put_split(id, body, sp)?;
                }
                stored = true;
            }
        }
        // Uploaded by this caller: prepared here (parsed), neither inline nor split.
        let uploaded = encoded.is_some() && split.is_none();
        if !stored && (inline.is_some() || !self.object_present(KIND_BLOB, id, uploaded)?) {
            let body = body.ok_or_else(|| {
                Error::Io(std::io::Error::other(format!("blob {id:?} is missing")))
            })?;
            let fresh;
            let data = match inline {
                Some(d) => Some(d),
                None if body.len() as u64 <= self.opts.inline_max => {
                    fresh = blob::compress(body)?;
                    Some(&fresh[..])
                }
                None => None,
            };
            match data {
                Some(d) => {
                    self.tx
                        .prepare_cached("INSERT INTO blob_data (hash, data) VALUES (?1, ?2)")?
                        .execute(params![&id.0[..], d])?;
                }
                None => self.blobs.put(id, body)?,
            }
        }
        match rc {
            Some(_) => {
                self.tx
                    .prepare_cached("UPDATE blobs SET refcount = refcount + 1 WHERE hash = ?1")?
                    .execute([&id.0[..]])?;
            }
            None => {
                let body =
                    body.ok_or_else(|| Error::Io(std::io::Error::other("blob row missing")))?;
                let fresh;
                let enc = match encoded {
                    Some(e) => e,
                    None => {
                        fresh = encode_parsed(body);
                        &fresh
                    }
                };
                self.tx
                    .prepare_cached(
                        "INSERT INTO blobs (hash, size, refcount, structure) VALUES (?1, ?2, 1, x'')",
                    )?
                    .execute(params![&id.0[..], body.len() as i64])?;
                put_blob_parse(&self.tx, &id.0, enc)?;
            }
        }
        self.release_hold(KIND_BLOB, id)?;
        Ok(())
    }

    /// Adds `delta` octets to an account's usage ([`crate::rules::add_usage`]).
    pub(crate) fn add_usage(&mut self, account: AccountId, delta: i64) -> Result<Option<u8>> {
        crate::rules::add_usage(self, account, delta)
    }

    /// Inserts a message row with the next UID and MODSEQ ([`crate::rules::insert_message`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_message(
        &mut self,
        mailbox: &Mailbox,
        prefix: &[u8],
        blob: &BlobId,
        size: u64,
        flags: Flags,
        keywords: &str,
        internal_date: i64,
    ) -> Result<(u32, u64)> {
        crate::rules::insert_message(self, mailbox, prefix, blob, size, flags, keywords, internal_date)
    }

    /// Removes messages, recording them as expunged ([`crate::rules::expunge`]).
    pub(crate) fn expunge(&mut self, mailbox: &Mailbox, uids: &[u32]) -> Result<Vec<u32>> {
        crate::rules::expunge(self, mailbox, uids)
    }

    fn all_uids(&self, mailbox: MailboxId) -> Result<Vec<u32>> {
        let mut st = self
            .tx
            .prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?;
        let uids = st
            .query_map([mailbox], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(|u| u as u32))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(uids)
    }

    /// Copies messages into `to` ([`crate::rules::copy`]).
    pub(crate) fn copy(
        &mut self,
        from: &Mailbox,
        uids: &[u32],
        to: &Mailbox,
        quota: bool,
    ) -> Result<Vec<(u32, u32)>> {
        crate::rules::copy(self, from, uids, to, quota)
    }
}

impl SqliteBackend {
    /// [`Backend::append_many`]; without `arm_warning` (a notice the server writes), the
    /// usage grows but no quota warning is armed.
    fn append_many_with(
        &self,
        mailbox: MailboxId,
        msgs: Vec<NewMessage>,
        enforce_quota: bool,
        arm_warning: bool,
    ) -> Result<Vec<Appended>> {
        if !self.reserve.allows_growth() {
            return Err(Error::DiskFull);
        }
        let mut prepared = Vec::with_capacity(msgs.len());
        for msg in msgs {
            check_keywords(&msg.keywords)?;
            let prep = self
                .prepare_blob(&msg.body)
                .map_err(crate::disk::classify)?;
            let kw: BTreeSet<String> = msg.keywords.iter().cloned().collect();
            prepared.push(crate::rules::PreparedMessage {
                msg,
                prep,
                keywords: join_keywords(&kw),
            });
        }
        self.write_growth(move |ctx| {
            crate::rules::append_many(ctx, mailbox, &prepared, enforce_quota, arm_warning)
        })
    }
}

fn map_constraint(e: rusqlite::Error, what: String) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Exists(what)
        }
        e => Error::Db(e),
    }
}

pub(crate) struct Prepared {
    id: BlobId,
    encoded: Option<Encoded>,
    /// The compressed body, when it is to be stored inline (`[store] inline_max`).
    inline: Option<Vec<u8>>,
    /// Its skeleton and shared parts, when it is stored split (`[store] part_dedup_min`).
    split: Option<dedup::PreparedSplit>,
}

/// Stores the parse of a blob in the `blob_*` tables, replacing any earlier one. Every
/// new `blobs` row needs it: a blob without them is read correctly but parsed again from
/// its file on first read (what rows of older versions get).
fn put_blob_parse(c: &Connection, hash: &[u8], enc: &Encoded) -> Result<()> {
    delete_blob_parse(c, hash)?;
    // A body stored split leaves out what its skeleton holds (`dedup.rs`).
    let slim = if enc.slim != dedup::Slim::default() && dedup::is_split(c, hash)? {
        enc.slim
    } else {
        dedup::Slim::default()
    };
    let packed = (slim != dedup::Slim::default())
        .then(|| dedup::pack_structure(&enc.structure))
        .flatten();
    c.prepare_cached("INSERT INTO blob_info (hash, structure) VALUES (?1, ?2)")?
        .execute(params![hash, packed.as_ref().unwrap_or(&enc.structure)])?;
    let id = c.last_insert_rowid();
    if !slim.header {
        c.prepare_cached("INSERT INTO blob_header (id, header) VALUES (?1, ?2)")?
            .execute(params![id, enc.header])?;
    }
    c.prepare_cached("INSERT INTO blob_grams (id, grams) VALUES (?1, ?2)")?
        .execute(params![id, enc.grams])?;
    if !slim.search {
        c.prepare_cached("INSERT INTO blob_search (id, search) VALUES (?1, ?2)")?
            .execute(params![id, enc.search])?;
    }
    crate::line_ends::put(c, id, enc.line_ends)?;
    // A split body's head is packed as its structure is (read back by `heads.rs`).
    let packed_head = (slim != dedup::Slim::default())
        .then(|| dedup::pack_structure(&enc.head))
        .flatten();
    crate::heads::put(c, id, packed_head.as_ref().unwrap_or(&enc.head))?;
    crate::bodystructures::BODYSTRUCTURE.put(c, hash, &enc.bodystructure)?;
    crate::searchables::SEARCHABLE.put(c, hash, &enc.searchable)?;
    crate::envelopes::ENVELOPE.put(c, hash, &enc.envelope)?;
    crate::sortkeys::put(c, hash, &enc.sortkeys)?;
    Ok(())
}

fn delete_blob_parse(c: &Connection, hash: &[u8]) -> Result<()> {
    let id: Option<i64> = c
        .prepare_cached("SELECT id FROM blob_info WHERE hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    if let Some(id) = id {
        for t in [
            "blob_header",
            "blob_grams",
            "blob_search",
            "blob_lines",
            "blob_head",
            "blob_info",
        ] {
            c.prepare_cached(&format!("DELETE FROM {t} WHERE id = ?1"))?
                .execute([id])?;
        }
    }
    crate::bodystructures::BODYSTRUCTURE.delete(c, hash)?;
    crate::searchables::SEARCHABLE.delete(c, hash)?;
    crate::envelopes::ENVELOPE.delete(c, hash)?;
    crate::sortkeys::delete(c, hash)?;
    Ok(())
}

impl SqliteBackend {
    /// Outside the write lock: hash, parse (unless already known), and compress a small
    /// body for the database or write a large one's file (fsynced), so that the writer
    /// thread only inserts rows.
    fn prepare_blob(&self, body: &[u8]) -> Result<Prepared> {
        self.prepare_parsed(body, None)
    }

    /// [`SqliteBackend::prepare_blob`] with the body's parse, when the caller has it
    /// (`Backend::deliver_to`).
    fn prepare_parsed(&self, body: &[u8], parsed: Option<ParsedMessage>) -> Result<Prepared> {
        let id = BlobId::of(body);
        let known = self.read(|c| blob_live(c, &id))?;
        if known {
            return Ok(Prepared {
                id,
                encoded: None,
                inline: None,
                split: None,
            });
        }
        let mut encoded = encode_given(body, parsed);
        let mut split = None;
        let inline = if body.len() as u64 <= self.opts.inline_max {
            Some(blob::compress(body)?)
        } else {
            let min = self.opts.part_dedup_min;
            if min > 0 && body.len() as u64 >= min {
                if let Some(p) = ParsedMessage::decode(&encoded.structure) {
                    split = self.prepare_split(body, &p.root)?;
                }
            }
            match &split {
                Some(sp) => encoded.slim = sp.slim(&encoded.header, &encoded.search_raw),
                None => {
                    self.hold_objects(KIND_BLOB, vec![id])?;
                    self.blobs.put(&id, body)?;
                }
            }
            None
        };
        encoded.search_raw = Vec::new();
        Ok(Prepared {
            id,
            encoded: Some(encoded),
            inline,
            split,
        })
    }

    /// A reader of a blob's octets, inline or from its file.
    fn blob_reader(&self, id: &BlobId) -> Result<crate::blob::BlobReader> {
        let data: Option<Vec<u8>> = self.read(|c| inline_data(c, id))?;
        if let Some(d) = data {
            return Ok(crate::blob::BlobReader::inline(&d)?);
        }
        if let Some((skeleton, map)) = self.read(|c| dedup::split_data(c, id))? {
            return dedup::joined_reader(&self.parts, &skeleton, &map);
        }
        Ok(self.blobs.open_reader(id)?)
    }
}

impl Backend for SqliteBackend {
    fn start_log(&self) -> Result<()> {
        // An empty (or absent) log only: one that holds frames is appended to as it is.
        if wal::wal_size(&self.db_path) == 0 {
            self.write_lazy(|ctx| Ok(wal::start(&ctx.tx)?))?;
        }
        Ok(())
    }
    fn close_log(&self) -> Result<bool> {
        // Its own connection: the writer thread may be waiting for its idle period. A
        // second's wait for a last commit of the writer or another process, no more.
        let conn = open_conn(&self.db_path)?;
        Ok(wal::truncate(&conn, std::time::Duration::from_secs(1)) || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            wal::truncate(&conn, std::time::Duration::from_secs(1))
        })
    }
    fn add_domain(&self, name: &str) -> Result<()> {
        let d = validate_domain(name)?;
        self.write(move |ctx| {
            ctx.tx
                .execute("INSERT INTO domains (name) VALUES (?1)", [&d])
                .map_err(|e| map_constraint(e, format!("domain {d}")))?;
            Ok(())
        })
    }

    fn remove_domain(&self, name: &str) -> Result<()> {
        let d = validate_domain(name)?;
        self.write(move |ctx| {
            let id: i64 = ctx
                .tx
                .query_row("SELECT id FROM domains WHERE name = ?1", [&d], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::NotFound(format!("domain {d}")))?;
            let users: i64 = ctx
                .tx
                .query_row("SELECT count(*) FROM accounts WHERE domain_id = ?1", [id], |r| r.get(0))?;
            let aliases: i64 = ctx.tx.query_row(
                "SELECT count(*) FROM aliases WHERE address LIKE '%@' || ?1",
                [&d],
                |r| r.get(0),
            )?;
            if users > 0 || aliases > 0 {
                return Err(Error::Refused(format!(
                    "domain {d} still has {users} user(s) and {aliases} alias(es); remove them first"
                )));
            }
            ctx.tx.execute("DELETE FROM domains WHERE id = ?1", [id])?;
            // Its expiry and attachment policies (issue 15) go with it.
            ctx.tx.execute("DELETE FROM expire_policy WHERE scope = ?1", [&d])?;
            ctx.tx.execute("DELETE FROM strip_policy WHERE scope = ?1", [&d])?;
            Ok(())
        })
    }

    fn list_domains(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT name FROM domains ORDER BY name")?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(v)
        })
    }

    fn add_account(
        &self,
        address: &str,
        password_hash: &str,
        quota: QuotaLimit,
    ) -> Result<Account> {
        let (local, domain) = validate_address(address)?;
        if local.contains('+') {
            return Err(Error::Invalid(format!(
                "invalid address '{address}': '+' is reserved for user+tag delivery"
            )));
        }
        let address = format!("{local}@{domain}");
        let hash = password_hash.to_string();
        let id = self.write(move |ctx| {
            let domain_id: i64 = ctx
                .tx
                .query_row("SELECT id FROM domains WHERE name = ?1", [&domain], |r| {
                    r.get(0)
                })
                .optional()?
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "domain {domain} is not local (add it first: letterbox domain add {domain})"
                    ))
                })?;
            ctx.tx
                .execute(
                    "INSERT INTO accounts (address, domain_id, password_hash, quota_limit, created)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![address, domain_id, hash, quota_to_sql(quota), now()],
                )
                .map_err(|e| map_constraint(e, format!("user {address}")))?;
            let id = ctx.tx.last_insert_rowid();
            for (name, special) in DEFAULT_MAILBOXES {
                ctx.insert_mailbox(id, name, *special)?;
                ctx.tx.execute(
                    "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?1, ?2)",
                    params![id, name],
                )?;
            }
            Ok(id)
        })?;
        self.account_by_id(id)
    }

    fn remove_account(&self, address: &str, force: bool) -> Result<()> {
        let a = normalize_address(address);
        self.write(move |ctx| {
            let acct = get_account(&ctx.tx, &a)?;
            let count: i64 = ctx.tx.query_row(
                "SELECT count(*) FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
                [acct.id],
                |r| r.get(0),
            )?;
            if count > 0 && !force {
                return Err(Error::Refused(format!(
                    "user {a} has {count} message(s); use --force to remove the account and its mail"
                )));
            }
            // Drop blob references, then everything of the account.
            ctx.tx.execute(
                "UPDATE blobs SET refcount = refcount - (
                    SELECT count(*) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id
                    WHERE b.account_id = ?1 AND m.blob = blobs.hash)
                 WHERE hash IN (SELECT m.blob FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id
                    WHERE b.account_id = ?1)",
                [acct.id],
            )?;
            for table in ["messages", "expunged"] {
                ctx.tx.execute(
                    &format!("DELETE FROM {table} WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)"),
                    [acct.id],
                )?;
            }
            ctx.tx.execute("DELETE FROM mailboxes WHERE account_id = ?1", [acct.id])?;
            ctx.tx.execute("DELETE FROM subscriptions WHERE account_id = ?1", [acct.id])?;
            ctx.tx.execute("DELETE FROM aliases WHERE target = ?1", [&a])?;
            // The portal's rows of the account (web.rs): its sessions, operator rights (a
            // new account of the same address must not inherit them), disabled mark.
            ctx.tx.execute("DELETE FROM web_sessions WHERE account_id = ?1", [acct.id])?;
            ctx.tx.execute("DELETE FROM web_admins WHERE address = ?1", [&a])?;
            ctx.tx.execute("DELETE FROM account_disabled WHERE account_id = ?1", [acct.id])?;
            // Its own expiry and attachment policies (issue 15): a new account of the
            // same address starts from its domain's.
            ctx.tx.execute("DELETE FROM expire_policy WHERE scope = ?1", [&a])?;
            ctx.tx.execute("DELETE FROM strip_policy WHERE scope = ?1", [&a])?;
            ctx.tx.execute("DELETE FROM accounts WHERE id = ?1", [acct.id])?;
            Ok(())
        })?;
        self.free_unreferenced()?;
        Ok(())
    }

    fn list_accounts(&self) -> Result<Vec<Account>> {
        let rows = self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {ACCOUNT_COLS} FROM accounts ORDER BY address"
            ))?;
            let v = st
                .query_map([], AccountRow::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })?;
        Ok(rows.into_iter().map(|r| self.effective(r)).collect())
    }

    fn account(&self, address: &str) -> Result<Account> {
        let row = self.read(|c| get_account(c, address))?;
        Ok(self.effective(row))
    }

    fn account_by_id(&self, id: AccountId) -> Result<Account> {
        let row = self.read(|c| get_account_by_id(c, id))?;
        Ok(self.effective(row))
    }

    fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<()> {
        let a = normalize_address(address);
        let h = password_hash.to_string();
        self.write(move |ctx| {
            let n = ctx.tx.execute(
                "UPDATE accounts SET password_hash = ?2 WHERE address = ?1",
                params![a, h],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("user {a}")));
            }
            Ok(())
        })
    }

    fn set_retention(&self, address: &str, retention: Option<Retention>) -> Result<()> {
        let a = normalize_address(address);
        self.write(move |ctx| {
            let n = ctx.tx.execute(
                "UPDATE accounts SET pop3_retention = ?2 WHERE address = ?1",
                params![a, retention.map(|r| r.to_string())],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("user {a}")));
            }
            Ok(())
        })
    }

    fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let a = normalize_address(address);
        let Some((stored, row)) = self.read(|c| account_with_hash(c, &a))? else {
            // Spend the same time as a real check, so timing does not reveal users.
            let _ = password::verify(password, DUMMY_HASH);
            return Ok(None);
        };
        if self.auth_cache.hit(&a, password, &stored) {
            return Ok(Some(self.effective(row)));
        }
        if !password::verify(password, &stored) {
            self.auth_cache.forget(&a);
            return Ok(None);
        }
        if password::needs_rehash(&stored) {
            let new = password::hash(password);
            match self.set_password_hash(&a, &new) {
                Ok(()) => self.auth_cache.insert(&a, password, &new),
                Err(e) => tracing::warn!(user = %a, "could not upgrade password hash: {e}"),
            }
        } else {
            self.auth_cache.insert(&a, password, &stored);
        }
        self.account_by_id(row.id).map(Some)
    }

    fn authenticate_cached(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let a = normalize_address(address);
        Ok(self
            .read(|c| account_with_hash(c, &a))?
            .filter(|(stored, _)| self.auth_cache.hit(&a, password, stored))
            .map(|(_, row)| self.effective(row)))
    }

    fn add_alias(&self, address: &str, targets: &[String]) -> Result<()> {
        let alias = alias_address(address)?;
        if targets.is_empty() {
            return Err(Error::Invalid(
                "an alias needs at least one target address".into(),
            ));
        }
        let mut ts = Vec::new();
        for t in targets {
            let (l, d) = validate_address(t)?;
            ts.push(format!("{l}@{d}"));
        }
        self.write(move |ctx| {
            let domain = alias
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            let known: Option<i64> = ctx
                .tx
                .query_row("SELECT id FROM domains WHERE name = ?1", [&domain], |r| {
                    r.get(0)
                })
                .optional()?;
            if known.is_none() {
                return Err(Error::Invalid(format!("domain {domain} is not local")));
            }
            crate::alias_exists(&alias, &alias_targets(&ctx.tx, &alias)?, &ts)?;
            for t in &ts {
                ctx.tx.execute(
                    "INSERT OR IGNORE INTO aliases (address, target) VALUES (?1, ?2)",
                    params![alias, t],
                )?;
            }
            Ok(())
        })
    }

    fn remove_alias(&self, address: &str, targets: &[String]) -> Result<()> {
        let alias = alias_address(address)?;
        let ts: Vec<String> = targets.iter().map(|t| normalize_address(t)).collect();
        self.write(move |ctx| {
            let n = if ts.is_empty() {
                ctx.tx
                    .execute("DELETE FROM aliases WHERE address = ?1", [&alias])?
            } else {
                let mut n = 0;
                for t in &ts {
                    let k = ctx.tx.execute(
                        "DELETE FROM aliases WHERE address = ?1 AND target = ?2",
                        params![alias, t],
                    )?;
                    if k == 0 {
                        return Err(Error::NotFound(format!("alias {alias} -> {t}")));
                    }
                    n += k;
                }
                n
            };
            if n == 0 {
                return Err(Error::NotFound(format!("alias {alias}")));
            }
            Ok(())
        })
    }

    fn list_aliases(&self, address: Option<&str>) -> Result<Vec<(String, Vec<String>)>> {
        let filter = address.map(alias_address).transpose()?;
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT address, target FROM aliases WHERE ?1 IS NULL OR address = ?1 ORDER BY address, target",
            )?;
            let rows = st
                .query_map([&filter], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out: Vec<(String, Vec<String>)> = Vec::new();
            for (a, t) in rows {
                match out.last_mut() {
                    Some((la, lt)) if *la == a => lt.push(t),
                    _ => out.push((a, vec![t])),
                }
            }
            if out.is_empty() {
                if let Some(f) = &filter {
                    return Err(Error::NotFound(format!("alias {f}")));
                }
            }
            Ok(out)
        })
    }

    fn resolve(&self, address: &str) -> Result<Resolved> {
        let a = normalize_address(address);
        let Some((local, domain)) = a.rsplit_once('@') else {
            return Ok(Resolved::NotLocal);
        };
        let (local, domain) = (local.to_string(), domain.to_string());
        let rows = self.read(move |c| {
            let local_domain: bool = c
                .prepare_cached("SELECT 1 FROM domains WHERE name = ?1")?
                .exists([&domain])?;
            if !local_domain {
                return Ok(None);
            }
            let mut found: Vec<AccountRow> = Vec::new();
            let mut seen = HashSet::new();
            let base = local.split_once('+').map(|(b, _)| b.to_string());
            let mut candidates = vec![format!("{local}@{domain}")];
            if let Some(b) = &base {
                candidates.push(format!("{b}@{domain}"));
            }
            for cand in candidates {
                expand(c, &cand, 0, &mut seen, &mut found)?;
                if !found.is_empty() {
                    return Ok(Some(found));
                }
            }
            // The domain's catch-all.
            let targets = alias_targets(c, &format!("@{domain}"))?;
            for t in targets {
                expand(c, &t, 1, &mut seen, &mut found)?;
            }
            Ok(Some(found))
        })?;
        Ok(match rows {
            None => Resolved::NotLocal,
            Some(v) if v.is_empty() => Resolved::NoSuchUser,
            Some(v) => Resolved::Accounts(v.into_iter().map(|r| self.effective(r)).collect()),
        })
    }

    fn set_quota(&self, address: &str, limit: QuotaLimit) -> Result<Account> {
        let a = normalize_address(address);
        let id = self.write(move |ctx| {
            let acct = get_account(&ctx.tx, &a)?;
            ctx.set_quota_limit(acct.id, limit)?;
            Ok(acct.id)
        })?;
        self.account_by_id(id)
    }

    fn recalc_quota(&self, address: Option<&str>) -> Result<Vec<Recalc>> {
        let a = address.map(normalize_address);
        self.write(move |ctx| crate::rules::recalc_quota(ctx, a.as_deref()))
    }

    fn list_mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1 ORDER BY name"
            ))?;
            let v = st
                .query_map([account], mailbox_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox> {
        self.read(|c| get_mailbox(c, account, name))
    }

    fn mailbox_by_id(&self, id: MailboxId) -> Result<Mailbox> {
        self.read(|c| get_mailbox_by_id(c, id))
    }

    fn mailbox_to_open(&self, account: AccountId, name: &str) -> Result<(Mailbox, u32, Account)> {
        let (mb, first, row) = self.read(|c| get_mailbox_to_open(c, account, name))?;
        Ok((mb, first.clamp(0, u32::MAX as i64) as u32, self.effective(row)))
    }

    fn mailbox_counts(&self, mailbox: MailboxId) -> Result<MailboxCounts> {
        self.read(|c| {
            let r = c.query_row(
                "SELECT count(*), coalesce(sum(flags & 1 = 0), 0), coalesce(sum(flags & 8 != 0), 0),
                        coalesce(sum(size), 0),
                        coalesce(sum(uid >= (SELECT first_recent FROM mailboxes WHERE id = ?1)), 0),
                        coalesce(sum(CASE WHEN flags & 8 != 0 THEN size ELSE 0 END), 0)
                 FROM messages WHERE mailbox_id = ?1",
                [mailbox],
                |r| {
                    Ok(MailboxCounts {
                        messages: r.get::<_, i64>(0)? as u32,
                        unseen: r.get::<_, i64>(1)? as u32,
                        deleted: r.get::<_, i64>(2)? as u32,
                        size: r.get::<_, i64>(3)? as u64,
                        recent: r.get::<_, i64>(4)? as u32,
                        deleted_size: r.get::<_, i64>(5)? as u64,
                    })
                },
            )?;
            Ok(r)
        })
    }

    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let name = name.to_string();
        self.write(move |ctx| ctx.create_mailbox(account, &name, special_use))
    }

    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize_mailbox_name(name)?;
        if name == "INBOX" {
            return Err(Error::Refused("INBOX cannot be deleted".into()));
        }
        self.write(move |ctx| {
            let mb = get_mailbox(&ctx.tx, account, &name)?;
            let uids = ctx.all_uids(mb.id)?;
            ctx.expunge(&mb, &uids)?;
            ctx.tx
                .execute("DELETE FROM expunged WHERE mailbox_id = ?1", [mb.id])?;
            ctx.tx
                .execute("DELETE FROM mailboxes WHERE id = ?1", [mb.id])?;
            ctx.changes.retain(|c| c.mailbox != mb.id);
            ctx.changes.push(Change {
                account,
                mailbox: mb.id,
                modseq: 0,
                kind: ChangeKind::MailboxDeleted { name: name.clone() },
            });
            Ok(())
        })
    }

    fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let from = normalize_mailbox_name(from)?;
        let to = validate_new_mailbox_name(to)?;
        self.write(move |ctx| {
            // A name that is no mailbox but has mailboxes below it (a parent that was
            // never created) renames its children, as Dovecot.
            let src = match get_mailbox(&ctx.tx, account, &from) {
                Err(Error::NotFound(e)) => {
                    let prefix = format!("{from}/");
                    let children: i64 = ctx.tx.query_row(
                        "SELECT count(*) FROM mailboxes WHERE account_id = ?1 AND substr(name, 1, ?2) = ?3",
                        params![account, prefix.chars().count() as i64, prefix],
                        |r| r.get(0),
                    )?;
                    if children == 0 || from == "INBOX" {
                        return Err(Error::NotFound(e));
                    }
                    None
                }
                other => Some(other?),
            };
            if get_mailbox(&ctx.tx, account, &to).is_ok() {
                return Err(Error::Exists(format!("mailbox {to}")));
            }
            if to.starts_with(&format!("{from}/")) {
                return Err(Error::Invalid("cannot rename a mailbox into itself".into()));
            }
            if let (Some(src), "INBOX") = (&src, from.as_str()) {
                // RFC 9051 6.3.6: move INBOX's messages to the new name, leave INBOX empty.
                let dst = ctx.create_mailbox(account, &to, None)?;
                let uids = ctx.all_uids(src.id)?;
                ctx.copy(src, &uids, &dst, false)?;
                ctx.expunge(src, &uids)?;
                return Ok(());
            }
            // Superior names of the target are not created (see `create_mailbox`).
            let prefix = format!("{from}/");
            let mut st = ctx.tx.prepare(
                "SELECT id, name FROM mailboxes WHERE account_id = ?1 AND (name = ?2 OR substr(name, 1, ?3) = ?4)",
            )?;
            let rows = st
                .query_map(params![account, from, prefix.chars().count() as i64, prefix], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(st);
            for (id, old) in rows {
                let new = format!("{to}{}", &old[from.len()..]);
                ctx.tx
                    .execute("UPDATE mailboxes SET name = ?2 WHERE id = ?1", params![id, new])
                    .map_err(|e| map_constraint(e, format!("mailbox {new}")))?;
                ctx.changes.push(Change {
                    account,
                    mailbox: id,
                    modseq: 0,
                    kind: ChangeKind::MailboxRenamed { from: old, to: new },
                });
            }
            // Subscriptions follow, also those of names that are no mailbox.
            ctx.tx.execute(
                "UPDATE OR IGNORE subscriptions SET name = ?3 || substr(name, ?4 + 1)
                 WHERE account_id = ?1 AND (name = ?2 OR substr(name, 1, ?5) = ?6)",
                params![
                    account,
                    from,
                    to,
                    from.chars().count() as i64,
                    prefix.chars().count() as i64,
                    prefix
                ],
            )?;
            Ok(())
        })
    }

    fn subscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize_mailbox_name(name)?;
        self.write(move |ctx| {
            ctx.tx.execute(
                "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?1, ?2)",
                params![account, name],
            )?;
            Ok(())
        })
    }

    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize_mailbox_name(name)?;
        self.write(move |ctx| {
            let n = ctx.tx.execute(
                "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2",
                params![account, name],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("subscription {name}")));
            }
            Ok(())
        })
    }

    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name")?;
            let v = st
                .query_map([account], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(v)
        })
    }

    fn append(&self, mailbox: MailboxId, msg: NewMessage, enforce_quota: bool) -> Result<Appended> {
        self.append_many(mailbox, vec![msg], enforce_quota)?
            .pop()
            .ok_or_else(|| Error::Io(std::io::Error::other("append stored nothing")))
    }

    fn append_many(
        &self,
        mailbox: MailboxId,
        msgs: Vec<NewMessage>,
        enforce_quota: bool,
    ) -> Result<Vec<Appended>> {
        self.append_many_with(mailbox, msgs, enforce_quota, true)
    }

    fn pop3_sizes(&self, mailbox: MailboxId) -> Result<Vec<crate::line_ends::Pop3Size>> {
        self.pop3_sizes_impl(mailbox)
    }

    fn append_notice(&self, mailbox: MailboxId, msg: NewMessage) -> Result<Appended> {
        self.append_many_with(mailbox, vec![msg], false, false)?
            .pop()
            .ok_or_else(|| Error::Io(std::io::Error::other("append stored nothing")))
    }

    fn deliver_to(
        &self,
        body: Arc<Vec<u8>>,
        parsed: Option<ParsedMessage>,
        internal_date: i64,
        items: Vec<Delivery>,
        enforce_quota: bool,
    ) -> Result<Vec<Result<Appended>>> {
        if !self.reserve.allows_growth() {
            return Err(Error::DiskFull);
        }
        let prep = self.prepare_parsed(&body, parsed).map_err(crate::disk::classify)?;
        self.write_growth(move |ctx| {
            crate::rules::deliver_to(ctx, &body, internal_date, &items, enforce_quota, &prep)
        })
    }

    fn list_messages(&self, mailbox: MailboxId, claim_recent: bool) -> Result<Vec<MessageMeta>> {
        let (first_recent, uidnext): (i64, i64) = self.read(|c| {
            c.query_row(
                "SELECT first_recent, uidnext FROM mailboxes WHERE id = ?1",
                [mailbox],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("mailbox #{mailbox}")))
        })?;
        let (recent_from, recent_to) = if claim_recent && first_recent < uidnext {
            self.write_lazy(move |ctx| {
                let (old, next): (i64, i64) = ctx.tx.query_row(
                    "SELECT first_recent, uidnext FROM mailboxes WHERE id = ?1",
                    [mailbox],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                ctx.tx.execute(
                    "UPDATE mailboxes SET first_recent = ?2 WHERE id = ?1",
                    params![mailbox, next],
                )?;
                Ok((old, next))
            })
            // Opening a mailbox must work on a full disk: the claim is best effort.
            .or_else(|e| match crate::disk::is_disk_full(&e) {
                true => {
                    tracing::warn!("store: \\Recent not claimed (disk full): {e}");
                    Ok((0, 0))
                }
                false => Err(e),
            })?
        } else {
            (0, 0)
        };
        let mut v = self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = ?1 ORDER BY uid"
            ))?;
            let v = st
                .query_map([mailbox], meta_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })?;
        for m in &mut v {
            m.recent = (m.uid as i64) >= recent_from && (m.uid as i64) < recent_to;
        }
        Ok(v)
    }

    fn message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageMeta> {
        self.read(|c| get_message(c, mailbox, uid))
    }

    fn messages(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageMeta>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        // A dense run (FETCH 1:* metadata) is one range scan, not a seek per UID.
        let range = crate::searchables::UidRange::of(uids);
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLS} FROM messages
                 WHERE mailbox_id = ?1 AND uid {} ORDER BY uid",
                range.condition()
            ))?;
            let mut rows = range.query(&mut st, mailbox, uids)?;
            let mut v = Vec::with_capacity(uids.len());
            while let Some(r) = rows.next()? {
                let m = meta_from_row(r)?;
                if range.wanted(m.uid) {
                    v.push(m);
                }
            }
            Ok(v)
        })
    }

    fn parsed(&self, mailbox: MailboxId, uid: u32) -> Result<ParsedMessage> {
        self.parsed_many(mailbox, &[uid], true)?
            .pop()
            .map(|(_, p)| p)
            .ok_or_else(|| Error::NotFound(format!("message UID {uid}")))
    }

    fn parsed_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        with_search: bool,
    ) -> Result<Vec<(u32, ParsedMessage)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let list = uid_list(uids);
        type Row = (u32, i64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
        let rows: Vec<Row> = self.read(|c| {
            let mut st = c.prepare_cached(if with_search {
                "SELECT m.uid, length(m.prefix), m.blob, i.structure, s.search
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 LEFT JOIN blob_search s ON s.id = i.id
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2)) ORDER BY m.uid"
            } else {
                "SELECT m.uid, length(m.prefix), m.blob, i.structure, NULL
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2)) ORDER BY m.uid"
            })?;
            let rows = st
                .query_map(params![mailbox, list], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u32,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        let mut dec = SearchDecoder::new();
        for (uid, prefix_len, blob, structure, search) in rows {
            let parsed = match structure
                .as_deref()
                .and_then(|s| ParsedMessage::decode(&dedup::unpack_structure(s)))
            {
                Some(mut p) => {
                    match search {
                        Some(search) => dec.fill(&mut p, &search),
                        // A split body's search text is its skeleton's (`dedup.rs`).
                        None if with_search => {
                            let (h, b) = match self.read(|c| dedup::split_search(c, &blob))? {
                                Some(t) => t,
                                None => {
                                    let u = self.upgrade(&blob)?.0;
                                    (u.search_headers, u.search_body)
                                }
                            };
                            p.search_headers = h;
                            p.search_body = b;
                        }
                        None => {}
                    }
                    p
                }
                // Stored by an older version (or another structure version).
                None => {
                    let mut p = self.upgrade(&blob)?.0;
                    if !with_search {
                        p.search_headers = String::new();
                        p.search_body = String::new();
                    }
                    p
                }
            };
            out.push((uid, with_prefix(parsed, prefix_len as u32)));
        }
        Ok(out)
    }

    fn envelopes_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, letterbox_message::Envelope)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut missing = Vec::new();
        let mut out = self.read(|c| {
            // A dense run of UIDs (FETCH 1:*) is one range scan, not a seek per UID.
            let lo = uids.iter().copied().min().unwrap_or(0);
            let hi = uids.iter().copied().max().unwrap_or(0);
            let dense = u64::from(hi - lo) < 2 * uids.len() as u64;
            let mut st = c.prepare_cached(if dense {
                "SELECT m.uid, i.structure
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            } else {
                "SELECT m.uid, i.structure
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2)) ORDER BY m.uid"
            })?;
            let (mut rows, wanted) = if dense {
                let w: HashSet<u32> = uids.iter().copied().collect();
                (st.query(params![mailbox, lo, hi])?, Some(w))
            } else {
                (st.query(params![mailbox, uid_list(uids)])?, None)
            };
            let mut out = Vec::with_capacity(uids.len());
            while let Some(r) = rows.next()? {
                let uid = r.get::<_, i64>(0)? as u32;
                if wanted.as_ref().is_some_and(|w| !w.contains(&uid)) {
                    continue;
                }
                // Decoded in place: no copy of the structure.
                let env = match r.get_ref(1)? {
                    rusqlite::types::ValueRef::Blob(b) => {
                        ParsedMessage::decode_envelope(&dedup::unpack_structure(b))
                    }
                    _ => None,
                };
                match env {
                    Some(e) => out.push((uid, e)),
                    None => missing.push(uid),
                }
            }
            Ok(out)
        })?;
        if !missing.is_empty() {
            // Stored by an older version: parsed again (and kept) the general way.
            let more = self.parsed_many(mailbox, &missing, false)?;
            out.extend(more.into_iter().map(|(u, p)| (u, p.envelope)));
            out.sort_by_key(|e| e.0);
        }
        Ok(out)
    }

    fn headers_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let list = uid_list(uids);
        type Row = (u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>);
        let rows: Vec<Row> = self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT m.uid, m.prefix, m.blob, h.header
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 LEFT JOIN blob_header h ON h.id = i.id
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2)) ORDER BY m.uid",
            )?;
            let rows = st
                .query_map(params![mailbox, list], |r| {
                    Ok((r.get::<_, i64>(0)? as u32, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (uid, mut prefix, blob, header) in rows {
            let header = match header {
                Some(h) => h,
                // A split body's header is its skeleton's (`dedup.rs`).
                None => match self.read(|c| dedup::split_header(c, &blob))? {
                    Some(h) => h,
                    None => self.upgrade(&blob)?.1,
                },
            };
            prefix.extend_from_slice(&header);
            out.push((uid, prefix));
        }
        Ok(out)
    }

    fn text_candidates(
        &self,
        mailbox: MailboxId,
        needles_lower: &[&str],
    ) -> Result<Option<Vec<u32>>> {
        let Some(probes) = crate::grams::probes(needles_lower) else {
            return Ok(None);
        };
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT m.uid, g.grams
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 LEFT JOIN blob_grams g ON g.id = i.id
                 WHERE m.mailbox_id = ?1 ORDER BY m.uid",
            )?;
            let mut rows = st.query([mailbox])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                // Read in place: no copy of the filter.
                let keep = match r.get_ref(1)? {
                    rusqlite::types::ValueRef::Blob(g) => crate::grams::may_contain(g, &probes),
                    _ => true, // stored before filters existed
                };
                if keep {
                    out.push(r.get::<_, i64>(0)? as u32);
                }
            }
            Ok(Some(out))
        })
    }

    fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader> {
        type Row = (Vec<u8>, Vec<u8>, i64, Option<Vec<u8>>, Option<(Vec<u8>, Vec<u8>)>);
        let (prefix, blob, size, inline, split): Row = self.read(|c| {
            c.prepare_cached(
                "SELECT m.prefix, m.blob, m.size, d.data, s.skeleton, s.parts FROM messages m
                 LEFT JOIN blob_data d ON d.hash = m.blob
                 LEFT JOIN blob_split s ON s.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid = ?2",
            )?
            .query_row(params![mailbox, uid], |r| {
                let split = match (r.get(4)?, r.get(5)?) {
                    (Some(s), Some(p)) => Some((s, p)),
                    _ => None,
                };
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, split))
            })
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("message UID {uid}")))
        })?;
        let id = BlobId(
            blob.as_slice()
                .try_into()
                .map_err(|_| Error::Invalid("bad blob id".into()))?,
        );
        let reader = match (inline, split) {
            (Some(d), _) => crate::blob::BlobReader::inline(&d)?,
            (None, Some((skeleton, map))) => dedup::joined_reader(&self.parts, &skeleton, &map)?,
            (None, None) => self.blobs.open_reader(&id)?,
        };
        Ok(MessageReader::new(prefix, reader, size as u64))
    }

    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<StoreResult> {
        check_keywords(keywords)?;
        let uids = uids.to_vec();
        let keywords: BTreeSet<String> = keywords.iter().cloned().collect();
        self.write_lazy(move |ctx| {
            crate::rules::store_flags(ctx, mailbox, &uids, op, flags, &keywords, unchanged_since)
        })
    }

    fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<u32>> {
        let uids = uids.to_vec();
        let removed = self.write_lazy(move |ctx| {
            let mb = get_mailbox_by_id(&ctx.tx, mailbox)?;
            ctx.expunge(&mb, &uids)
        })?;
        self.after_delete();
        Ok(removed)
    }

    fn copy(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>> {
        let uids = uids.to_vec();
        self.write(move |ctx| {
            let src = get_mailbox_by_id(&ctx.tx, from)?;
            let dst = get_mailbox_by_id(&ctx.tx, to)?;
            ctx.copy(&src, &uids, &dst, true)
        })
    }

    fn move_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
    ) -> Result<Vec<(u32, u32)>> {
        let uids = uids.to_vec();
        self.write(move |ctx| crate::rules::move_messages(ctx, from, &uids, to))
    }

    fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<ChangesSince> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid"
            ))?;
            let changed = st
                .query_map(params![mailbox, modseq as i64], meta_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare("SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid")?;
            let vanished = st
                .query_map(params![mailbox, modseq as i64], |r| r.get::<_, i64>(0))?
                .map(|r| r.map(|u| u as u32))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(ChangesSince { changed, vanished })
        })
    }

    fn mark_pop3_retrieved(&self, mailbox: MailboxId, uids: &[u32], now: i64) -> Result<()> {
        let uids = uids.to_vec();
        self.write_lazy(move |ctx| {
            for uid in uids {
                ctx.tx.execute(
                    "UPDATE messages SET pop3_seen_at = ?3 WHERE mailbox_id = ?1 AND uid = ?2 AND pop3_seen_at IS NULL",
                    params![mailbox, uid, now],
                )?;
            }
            Ok(())
        })
    }

    fn sweep_retention(&self, now: i64) -> Result<u64> {
        let mut total = 0;
        for acct in self.list_accounts()? {
            let Retention::Days(days) = acct.effective_retention else {
                continue;
            };
            let cutoff = now - i64::from(days) * 86_400;
            let id = acct.id;
            total += self.write(move |ctx| {
                let mb = get_mailbox(&ctx.tx, id, "INBOX")?;
                let mut st = ctx.tx.prepare(
                    "SELECT uid FROM messages WHERE mailbox_id = ?1 AND pop3_seen_at IS NOT NULL AND pop3_seen_at <= ?2",
                )?;
                let uids = st
                    .query_map(params![mb.id, cutoff], |r| r.get::<_, i64>(0))?
                    .map(|r| r.map(|u| u as u32))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                drop(st);
                Ok(ctx.expunge(&mb, &uids)?.len() as u64)
            })?;
        }
        Ok(total)
    }

    fn gc(&self) -> Result<GcReport> {
        let blobs_removed = self.free_unreferenced()?;
        let orphan_files_removed = self.write(|ctx| {
            let mut removed = 0;
            for id in ctx.blobs.scan()? {
                if !blob_live(&ctx.tx, &id)? {
                    ctx.drop_object(KIND_BLOB, &id)?;
                    removed += 1;
                }
            }
            // Inline octets whose blob row is gone (none should be: they leave together).
            removed += ctx.tx.execute(
                "DELETE FROM blob_data WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = blob_data.hash AND b.refcount > 0)",
                [],
            )? as u64;
            // Shared parts whose last reference went in `free_unreferenced`'s (earlier,
            // committed) transaction, and part files no row names.
            removed += ctx.collect_parts()?;
            Ok(removed)
        })?;
        // Objects in an object store: the queue filled above, and abandoned holds.
        let objects_deleted = self.collect_objects()?;
        Ok(GcReport {
            blobs_removed,
            orphan_files_removed,
            objects_deleted,
        })
    }

    fn quota_warn_state(&self, account: AccountId) -> Result<(u8, u8)> {
        self.read(|c| {
            let (level, pending): (i64, i64) = c
                .query_row(
                    "SELECT warn_level, warn_pending FROM accounts WHERE id = ?1",
                    [account],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| Error::NotFound(format!("account #{account}")))?;
            Ok((level.clamp(0, 100) as u8, pending.clamp(0, 100) as u8))
        })
    }

    fn set_quota_warn_state(&self, account: AccountId, state: (u8, u8)) -> Result<()> {
        self.write(move |ctx| {
            ctx.tx.execute(
                "UPDATE accounts SET warn_level = ?2, warn_pending = ?3 WHERE id = ?1",
                params![account, state.0, state.1],
            )?;
            Ok(())
        })
    }

    fn take_pending_warning(&self, account: AccountId) -> Result<Option<u8>> {
        self.write(move |ctx| {
            let t: i64 = ctx
                .tx
                .query_row(
                    "SELECT warn_pending FROM accounts WHERE id = ?1",
                    [account],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| Error::NotFound(format!("account #{account}")))?;
            if t == 0 {
                return Ok(None);
            }
            ctx.tx.execute(
                "UPDATE accounts SET warn_pending = 0 WHERE id = ?1",
                [account],
            )?;
            Ok(Some(t as u8))
        })
    }

    fn pending_warnings(&self) -> Result<Vec<AccountId>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id FROM accounts WHERE warn_pending > 0")?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn block(&self, key: &str, until: i64, reason: &str) -> Result<()> {
        let (key, reason) = (key.to_string(), reason.to_string());
        self.write(move |ctx| {
            ctx.tx.execute(
                "INSERT INTO auth_blocks (key, until, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET until = max(until, excluded.until), reason = excluded.reason",
                params![key, until, reason],
            )?;
            Ok(())
        })
    }

    fn blocks(&self, now: i64) -> Result<Vec<(String, i64, String)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT key, until, reason FROM auth_blocks WHERE until > ?1 ORDER BY key",
            )?;
            let v = st
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn unblock(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        self.write(move |ctx| {
            Ok(ctx
                .tx
                .execute("DELETE FROM auth_blocks WHERE key = ?1", [key])?
                > 0)
        })
    }

    fn check(&self, deep: bool) -> Result<Vec<String>> {
        let (usage, refs, blobs, inline, stray) = self.read(|c| {
            let mut st = c.prepare(
                "SELECT a.address, a.quota_used, coalesce((SELECT sum(m.size) FROM messages m
                     JOIN mailboxes b ON m.mailbox_id = b.id WHERE b.account_id = a.id), 0)
                 FROM accounts a",
            )?;
            let usage = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare(
                "SELECT b.hash, b.refcount, (SELECT count(*) FROM messages m WHERE m.blob = b.hash) FROM blobs b",
            )?;
            let refs = st
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare("SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = m.blob)")?;
            let dangling: i64 = st.query_row([], |r| r.get(0))?;
            let mut st = c.prepare("SELECT hash FROM blob_data")?;
            let inline = st
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<HashSet<_>>>()?;
            let stray: i64 = c.query_row(
                "SELECT count(*) FROM blob_data d WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = d.hash)",
                [],
                |r| r.get(0),
            )?;
            Ok((usage, refs, dangling, inline, stray))
        })?;
        let split: HashSet<Vec<u8>> = self.read(|c| {
            let mut st = c.prepare("SELECT hash FROM blob_split")?;
            let v = st
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<HashSet<_>>>()?;
            Ok(v)
        })?;
        let mut problems = Vec::new();
        for (address, used, sum) in usage {
            if used != sum {
                problems.push(format!(
                    "{address}: quota usage {used} but messages sum to {sum}"
                ));
            }
        }
        if blobs > 0 {
            problems.push(format!("{blobs} message(s) point at no blob record"));
        }
        let files: HashSet<BlobId> = self.blobs.scan()?.into_iter().collect();
        let mut known = HashSet::new();
        for (hash, rc, actual) in refs {
            let Ok(arr) = <[u8; 32]>::try_from(hash.as_slice()) else {
                problems.push("malformed blob id in the database".into());
                continue;
            };
            let id = BlobId(arr);
            known.insert(id);
            if rc != actual {
                problems.push(format!(
                    "blob {}: refcount {rc} but {actual} message(s) use it",
                    id.hex()
                ));
            }
            let present = |id: &BlobId| -> Result<bool> {
                Ok(match self.blobs.remote() {
                    // An object store is asked, one HEAD per object (it is never listed).
                    Some(_) => self.blobs.exists(id)?,
                    None => files.contains(id),
                })
            };
            if actual > 0
                && !inline.contains(&hash)
                && !split.contains(&hash)
                && !present(&id)?
            {
                problems.push(format!(
                    "blob {}: octets missing (no file, no inline row)",
                    id.hex()
                ));
            } else if actual > 0 && deep {
                let mut body = Vec::new();
                let ok = self
                    .blob_reader(&id)
                    .and_then(|mut r| Ok(std::io::Read::read_to_end(&mut r, &mut body)?))
                    .is_ok();
                if !ok || BlobId::of(&body) != id {
                    problems.push(format!(
                        "blob {}: content does not match its name",
                        id.hex()
                    ));
                }
            }
        }
        if stray > 0 {
            problems.push(format!(
                "{stray} inline blob(s) without a blob record (run `letterbox gc`)"
            ));
        }
        let orphans = files.difference(&known).count();
        if orphans > 0 {
            problems.push(format!(
                "{orphans} blob file(s) not in the database (run `letterbox gc`)"
            ));
        }
        dedup::check(self, deep, &mut problems)?;
        Ok(problems)
    }

    fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// A thread with its own connection asks SQLite's `PRAGMA data_version` (which moves
    /// when another connection commits) every `interval`; when it moved, it reads the
    /// HIGHESTMODSEQ of every watched account's mailboxes and lets the feed wake those
    /// that went past what was announced in-process. It stops when the backend is dropped.
    fn web(&self) -> &dyn crate::web::WebStore {
        self
    }

    fn watch_other_processes(&self, interval: std::time::Duration) -> Result<()> {
        let conn = open_conn(&self.db_path)?;
        let feed = Arc::downgrade(&self.feed);
        std::thread::Builder::new()
            .name("letterbox-watch".into())
            .spawn(move || watch_loop(conn, feed, interval))
            .map_err(Error::Io)?;
        Ok(())
    }
    fn sieve_list(&self, account: AccountId) -> Result<Vec<SieveScript>> {
        self.sieve_list_impl(account)
    }

    fn sieve_get(&self, account: AccountId, name: &str) -> Result<Vec<u8>> {
        self.sieve_get_impl(account, name)
    }

    fn sieve_put(
        &self,
        account: AccountId,
        name: &str,
        script: Vec<u8>,
        max_scripts: Option<u32>,
    ) -> Result<()> {
        self.sieve_put_impl(account, name, script, max_scripts)
    }

    fn sieve_activate(&self, account: AccountId, name: Option<&str>) -> Result<()> {
        self.sieve_activate_impl(account, name)
    }

    fn sieve_delete(&self, account: AccountId, name: &str) -> Result<()> {
        self.sieve_delete_impl(account, name)
    }

    fn sieve_rename(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        self.sieve_rename_impl(account, from, to)
    }

    fn sieve_active(&self, account: AccountId) -> Result<Option<(String, Vec<u8>)>> {
        self.sieve_active_impl(account)
    }

    fn sieve_version(&self, account: AccountId) -> Result<Option<u64>> {
        self.sieve_version_impl(account).map(Some)
    }

    fn sieve_seen(&self, account: AccountId, id: &str, expires: i64, now: i64) -> Result<bool> {
        self.sieve_seen_impl(account, id, expires, now)
    }

    fn claim_recent(&self, mailbox: MailboxId, take: bool) -> Result<(u32, u32)> {
        recent::claim(self, mailbox, take)
    }

    fn load_mailbox_index(&self, mailbox: MailboxId) -> Result<Option<(u32, u64, Vec<u8>)>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT uidvalidity, modseq, data FROM mailbox_index WHERE mailbox_id = ?1",
            )?
            .query_row([mailbox], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u32,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .optional()?)
        })
    }

    fn read_mailbox_index(
        &self,
        mailbox: MailboxId,
        f: &mut dyn FnMut(u32, u64, &[u8]),
    ) -> Result<bool> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT uidvalidity, modseq, data FROM mailbox_index WHERE mailbox_id = ?1",
            )?;
            let mut rows = stmt.query([mailbox])?;
            let Some(r) = rows.next()? else {
                return Ok(false);
            };
            let (uidvalidity, modseq) = (r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u64);
            // Not a blob (never written so): no octets, which IMAP refuses as a copy.
            let data = match r.get_ref(2)? {
                rusqlite::types::ValueRef::Blob(b) => b,
                _ => &[],
            };
            f(uidvalidity, modseq, data);
            Ok(true)
        })
    }

    fn list_mailbox_indexes(&self, limit: usize) -> Result<Vec<(MailboxId, u64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT mailbox_id, length(data) FROM mailbox_index
                 ORDER BY length(data) DESC, mailbox_id LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit.min(i64::MAX as usize) as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn save_mailbox_index(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        modseq: u64,
        data: Vec<u8>,
    ) -> Result<()> {
        // Not for a mailbox deleted meanwhile (the foreign key would refuse it).
        self.write_lazy(move |ctx| {
            ctx.tx.execute(
                "INSERT OR REPLACE INTO mailbox_index (mailbox_id, uidvalidity, modseq, data)
                 SELECT id, ?2, ?3, ?4 FROM mailboxes WHERE id = ?1 AND uidvalidity = ?2",
                params![mailbox, i64::from(uidvalidity), modseq as i64, data],
            )?;
            Ok(())
        })
    }

    fn load_message_cache(
        &self,
        mailbox: MailboxId,
        kind: u8,
        first: u32,
        last: u32,
    ) -> Result<Vec<(u32, u32, Vec<u8>)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT chunk, uidvalidity, data FROM message_cache
                 WHERE mailbox_id = ?1 AND kind = ?2 AND chunk BETWEEN ?3 AND ?4 ORDER BY chunk",
            )?;
            let rows = st.query_map(params![mailbox, kind, first, last], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u32,
                    r.get::<_, i64>(1)? as u32,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn save_message_cache(
        &self,
        mailbox: MailboxId,
        kind: u8,
        chunk: u32,
        uidvalidity: u32,
        data: Vec<u8>,
    ) -> Result<()> {
        // Not for a mailbox deleted or recreated meanwhile.
        self.write_lazy(move |ctx| {
            ctx.tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO message_cache (mailbox_id, kind, chunk, uidvalidity, data)
                     SELECT id, ?2, ?3, ?4, ?5 FROM mailboxes WHERE id = ?1 AND uidvalidity = ?4",
                )?
                .execute(params![mailbox, kind, chunk, i64::from(uidvalidity), data])?;
            Ok(())
        })
    }

    fn add_app_password(&self, address: &str, name: &str, protocols: Protocols) -> Result<String> {
        self.app_password_add(address, name, protocols)
    }

    fn list_app_passwords(&self, address: &str) -> Result<Vec<AppPassword>> {
        self.app_password_list(address)
    }

    fn remove_app_password(&self, address: &str, name: &str) -> Result<()> {
        self.app_password_remove(address, name)
    }

    fn authenticate_app_password(
        &self,
        address: &str,
        password: &str,
        protocol: Protocol,
        cached_only: bool,
    ) -> Result<Option<(Account, String)>> {
        self.app_password_check(address, password, protocol, cached_only)
    }

    fn record_login(&self, account: AccountId, login: LoginRecord, keep: u32) -> Result<()> {
        self.login_record(account, login, keep)
    }

    fn recent_logins(&self, address: &str) -> Result<Vec<LoginRecord>> {
        self.login_list(address)
    }

    fn add_api_token(&self, name: &str) -> Result<String> {
        self.api_token_add(name)
    }

    fn list_api_tokens(&self) -> Result<Vec<ApiToken>> {
        self.api_token_list()
    }

    fn remove_api_token(&self, name: &str) -> Result<()> {
        self.api_token_remove(name)
    }

    fn check_api_token(&self, token: &str) -> Result<Option<String>> {
        self.api_token_check(token)
    }

    fn stats(&self) -> Result<StoreStats> {
        let mut st = self.read(|c| {
            let (accounts, usage): (i64, i64) = c.query_row(
                "SELECT count(*), coalesce(sum(quota_used), 0) FROM accounts",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let messages: i64 = c.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
            let (blobs, blob_bytes): (i64, i64) = c.query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM blobs WHERE refcount > 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(StoreStats {
                accounts: accounts.max(0) as u64,
                messages: messages.max(0) as u64,
                usage_bytes: usage.max(0) as u64,
                blobs: blobs.max(0) as u64,
                blob_bytes: blob_bytes.max(0) as u64,
                database_bytes: 0,
            })
        })?;
        let mut wal = self.db_path.clone().into_os_string();
        wal.push("-wal");
        st.database_bytes = [self.db_path.clone(), PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(st)
    }

    fn add_dkim_keys(&self, keys: Vec<DkimKey>) -> Result<()> {
        self.write(move |ctx| crate::dkim::add_keys(&ctx.tx, &keys))
    }

    fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>> {
        self.read(|c| crate::dkim::keys(c, domain))
    }

    fn active_dkim_keys(&self) -> Result<Vec<DkimKey>> {
        self.read(crate::dkim::active_keys)
    }

    fn activate_dkim_keys(&self, domain: &str, selectors: &[String]) -> Result<Vec<String>> {
        let (d, s) = (domain.to_string(), selectors.to_vec());
        self.write(move |ctx| crate::dkim::activate(&ctx.tx, &d, &s, now()))
    }

    fn dkim_version(&self) -> Result<i64> {
        self.read(crate::dkim::version)
    }

    // --- outbound queue and limits (queue.rs) ---
    fn queue_insert(&self, msg: crate::queue::NewQueued) -> Result<crate::queue::QueueId> {
        self.q_insert(msg)
    }
    fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<crate::queue::QueueId>> {
        self.q_due(now, limit)
    }
    fn queue_next_due(&self) -> Result<Option<i64>> {
        self.q_next_due()
    }
    fn queue_get(&self, id: crate::queue::QueueId) -> Result<crate::queue::QueuedMessage> {
        self.q_get(id)
    }
    fn queue_body(&self, id: crate::queue::QueueId) -> Result<Vec<u8>> {
        self.q_body(id)
    }
    fn queue_list(
        &self,
        after: crate::queue::QueueId,
        limit: usize,
    ) -> Result<Vec<crate::queue::QueuedMessage>> {
        self.q_list(after, limit)
    }
    fn queue_update(
        &self,
        id: crate::queue::QueueId,
        u: crate::queue::QueueUpdate,
    ) -> Result<bool> {
        self.q_update(id, u)
    }
    fn queue_remove(&self, id: crate::queue::QueueId) -> Result<()> {
        self.q_remove(id)
    }
    fn queue_set_held(&self, id: crate::queue::QueueId, held: bool, now: i64) -> Result<()> {
        self.q_set_held(id, held, now)
    }
    fn queue_retry(&self, id: Option<crate::queue::QueueId>, now: i64) -> Result<u64> {
        self.q_retry(id, now)
    }
    fn outbound_use(&self, account: AccountId, now: i64) -> Result<crate::queue::OutboundUse> {
        self.q_outbound_use(account, now)
    }
    fn set_outbound_hold(&self, account: AccountId, hold: bool) -> Result<()> {
        self.q_set_outbound_hold(account, hold)
    }
    fn outbound_held(&self, account: AccountId) -> Result<bool> {
        self.q_outbound_held(account)
    }

    fn import_begin(&self, account: AccountId, source: &str, merge: bool) -> Result<ImportStart> {
        import::begin(self, account, source.to_string(), merge)
    }

    fn import_finish(&self, account: AccountId, source: &str) -> Result<()> {
        import::finish(self, account, source.to_string())
    }

    fn import_mailbox(
        &self,
        account: AccountId,
        name: &str,
        uidvalidity: u32,
    ) -> Result<ImportMailbox> {
        import::mailbox(self, account, name.to_string(), uidvalidity)
    }

    fn import_message(&self, mailbox: MailboxId, msg: ImportMessage) -> Result<Imported> {
        import::message(self, mailbox, msg)
    }

    fn import_finish_mailbox(&self, mailbox: MailboxId, uidnext: u32) -> Result<()> {
        import::finish_mailbox(self, mailbox, uidnext)
    }

    fn import_modseq_floor(&self, mailbox: MailboxId, floor: u64) -> Result<()> {
        import::modseq_floor(self, mailbox, floor)
    }

    fn pop3_uidls(&self, mailbox: MailboxId) -> Result<Vec<(u32, String)>> {
        import::pop3_uidls(self, mailbox)
    }

    fn backup(&self, dest: &Path) -> Result<BackupReport> {
        backup::backup(self, dest)
    }

    fn set_expire(&self, scope: &str, folder: SpecialUse, days: Option<u32>) -> Result<()> {
        expire::set(self, scope, folder, days)
    }

    fn expire_policies(&self) -> Result<Vec<crate::ExpirePolicy>> {
        expire::policies(self)
    }

    fn expire(&self, now: i64) -> Result<Vec<crate::Expired>> {
        expire::run(self, now)
    }

    fn replace_message(
        &self,
        mailbox: MailboxId,
        uid: u32,
        expected_size: u64,
        body: Vec<u8>,
    ) -> Result<Replaced> {
        replace::replace(self, mailbox, uid, expected_size, body, String::new())
    }

    fn replace_message_logged(
        &self,
        mailbox: MailboxId,
        uid: u32,
        expected_size: u64,
        body: Vec<u8>,
        detail: String,
    ) -> Result<Replaced> {
        replace::replace(self, mailbox, uid, expected_size, body, detail)
    }

    fn space_log(&self, account: AccountId, since: i64) -> Result<Vec<crate::SpaceEvent>> {
        space::entries(self, account, since)
    }

    fn space_freed_by_day(&self, account: AccountId, since_day: i64) -> Result<Vec<crate::FreedDay>> {
        space::freed_by_day(self, account, since_day)
    }

    fn space_log_purge(&self, before: i64) -> Result<u64> {
        space::purge(self, before)
    }

    fn set_strip_policy(&self, scope: &str, policy: Option<crate::StripPolicy>) -> Result<()> {
        space::set_policy(self, scope, policy)
    }

    fn strip_policies(&self) -> Result<Vec<(String, crate::StripPolicy)>> {
        space::policies(self)
    }

    fn strip_policy_for(&self, address: &str) -> Result<crate::StripPolicy> {
        space::policy_for(self, address)
    }

    fn maintenance_due(&self, task: &str, now: i64, interval: i64) -> Result<bool> {
        space::due(self, task, now, interval)
    }

    fn imported_keys(&self, account: AccountId, prefix: &str) -> Result<Vec<String>> {
        import::imported_keys(self, account, prefix.to_string())
    }

    fn password_hash(&self, address: &str) -> Result<String> {
        self.t_password_hash(address)
    }

    fn app_password_records(&self, address: &str) -> Result<Vec<crate::transfer::AppPasswordRecord>> {
        self.t_app_password_records(address)
    }

    fn restore_app_password(&self, address: &str, rec: &crate::transfer::AppPasswordRecord) -> Result<()> {
        self.t_restore_app_password(address, rec)
    }

    fn api_token_records(&self) -> Result<Vec<crate::transfer::ApiTokenRecord>> {
        self.t_api_token_records()
    }

    fn restore_api_token(&self, rec: &crate::transfer::ApiTokenRecord) -> Result<()> {
        self.t_restore_api_token(rec)
    }

    fn save_dates(&self, mailbox: MailboxId) -> Result<Vec<(u32, i64)>> {
        self.t_save_dates(mailbox)
    }

    fn set_save_dates(&self, mailbox: MailboxId, dates: &[(u32, i64)]) -> Result<()> {
        self.t_set_save_dates(mailbox, dates)
    }

    fn maintenance_last(&self, task: &str) -> Result<Option<i64>> {
        self.t_maintenance_last(task)
    }

    fn expunged_uids(&self, mailbox: MailboxId) -> Result<Vec<(u32, u64)>> {
        self.t_expunged_uids(mailbox)
    }

    fn import_expunged(&self, mailbox: MailboxId, uids: &[(u32, u64)]) -> Result<()> {
        self.t_import_expunged(mailbox, uids)
    }

    fn heads_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, ParsedMessage)>> {
        self.heads_many_impl(mailbox, uids)
    }

    fn roots_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, letterbox_message::Part)>> {
        self.roots_many_impl(mailbox, uids)
    }

    fn bodystructures_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        self.bodystructures_many_impl(mailbox, uids)
    }

    fn searchables_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        self.searchables_many_impl(mailbox, uids)
    }

    fn envelopes_rendered_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        self.read_conn(|c| {
            crate::envelopes::ENVELOPE.many(c, mailbox, uids, crate::body::stored_bodystructure)
        })
    }

    fn sortkeys_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Packed> {
        self.sortkeys_many_impl(mailbox, uids)
    }

    fn sent_dates_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Option<i64>)>> {
        self.sent_dates_many_impl(mailbox, uids)
    }
}

fn watch_loop(conn: Connection, feed: std::sync::Weak<ChangeFeed>, interval: std::time::Duration) {
    let mut last_version: Option<i64> = None;
    let mut baselined: HashSet<AccountId> = HashSet::new();
    loop {
        std::thread::sleep(interval);
        let Some(feed) = feed.upgrade() else { return };
        let watched: HashSet<AccountId> = feed.watched_accounts().into_iter().collect();
        baselined.retain(|a| watched.contains(a));
        feed.forget_unwatched(&watched);
        let version: i64 = match conn.query_row("PRAGMA data_version", [], |r| r.get(0)) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("watching other processes' changes: {e}");
                continue;
            }
        };
        let moved = last_version.is_some_and(|v| v != version);
        last_version = Some(version);
        for &account in &watched {
            let fresh = baselined.insert(account);
            if !fresh && !moved {
                continue;
            }
            let states = conn
                .prepare_cached("SELECT id, highestmodseq FROM mailboxes WHERE account_id = ?1")
                .and_then(|mut st| {
                    st.query_map([account], |r| {
                        Ok((account, r.get(0)?, r.get::<_, i64>(1)? as u64))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                });
            match states {
                Ok(states) => feed.publish_external(&states),
                Err(e) => tracing::warn!("watching other processes' changes: {e}"),
            }
        }
    }
}

impl SqliteBackend {
    /// Removes blobs whose reference count is zero (files first: a row left at zero
    /// without its file is harmless, a new reference rewrites the file).
    fn free_unreferenced(&self) -> Result<u64> {
        self.write(|ctx| {
            let mut st = ctx
                .tx
                .prepare("SELECT hash FROM blobs WHERE refcount <= 0")?;
            let ids = st
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(st);
            for h in &ids {
                if let Ok(arr) = <[u8; 32]>::try_from(h.as_slice()) {
                    ctx.drop_object(KIND_BLOB, &BlobId(arr))?;
                }
                delete_blob_parse(&ctx.tx, h)?;
                ctx.free_split(h)?;
                ctx.tx
                    .execute("DELETE FROM blob_data WHERE hash = ?1", [h])?;
                ctx.tx.execute("DELETE FROM blobs WHERE hash = ?1", [h])?;
            }
            Ok(ids.len() as u64)
        })
    }

    /// Parses a blob stored by an older version again and keeps the result in the
    /// `blob_*` tables (dropping what `blobs` held of the old parse). Returns the
    /// structure with its search text, and the header octets.
    fn upgrade(&self, blob: &[u8]) -> Result<(ParsedMessage, Vec<u8>)> {
        let id = BlobId(
            blob.try_into()
                .map_err(|_| Error::Invalid("bad blob id".into()))?,
        );
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut self.blob_reader(&id)?, &mut body)?;
        let enc = encode_parsed(&body);
        let mut p = ParsedMessage::decode(&enc.structure)
            .ok_or_else(|| Error::Invalid("structure does not decode".into()))?;
        SearchDecoder::new().fill(&mut p, &enc.search);
        let header = enc.header.clone();
        let blob = blob.to_vec();
        self.write_lazy(move |ctx| {
            // Only for a blob still stored (a collector may have removed it meanwhile).
            let n = ctx.tx.execute(
                "UPDATE blobs SET structure = x'', search = NULL WHERE hash = ?1",
                [&blob],
            )?;
            if n > 0 {
                put_blob_parse(&ctx.tx, &blob, &enc)?;
            }
            Ok(())
        })?;
        Ok((p, header))
    }

    /// Where blob files live (for disk-usage reporting and benchmarks).
    pub fn blob_dir(&self) -> &BlobDir {
        &self.blobs
    }
}

/// Offsets of the stored structure count from the blob; the message starts with the
/// prefix, which belongs to the top-level header.
fn with_prefix(mut p: ParsedMessage, prefix_len: u32) -> ParsedMessage {
    if prefix_len > 0 {
        p.root.shift(prefix_len);
        p.root.offset_header = 0;
    }
    p
}

fn alias_address(address: &str) -> Result<String> {
    let a = normalize_address(address);
    if let Some(domain) = a.strip_prefix('@') {
        return Ok(format!("@{}", validate_domain(domain)?));
    }
    let (l, d) = validate_address(&a)?;
    Ok(format!("{l}@{d}"))
}

fn alias_targets(c: &Connection, address: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached("SELECT target FROM aliases WHERE address = ?1")?;
    let v = st
        .query_map([address], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

/// Expands an address to accounts: an account itself, or an alias's targets (recursively).
fn expand(
    c: &Connection,
    address: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    out: &mut Vec<AccountRow>,
) -> Result<()> {
    if depth > MAX_ALIAS_DEPTH || !seen.insert(address.to_string()) {
        return Ok(());
    }
    if let Ok(row) = get_account(c, address) {
        if !out.iter().any(|r| r.id == row.id) {
            out.push(row);
        }
        return Ok(());
    }
    for t in alias_targets(c, address)? {
        expand(c, &t, depth + 1, seen, out)?;
    }
    Ok(())
}

/// A real Argon2id hash of a random password, verified against when the user does not
/// exist so that a failed login takes as long either way.
pub(crate) const DUMMY_HASH: &str =
    "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J8rTVdB0c1S7hCkqY7yKq0l3rC4ZcUw2GQy2k0g2m0Q";
