//! The PostgreSQL backend (issue 17): everything but large message octets in PostgreSQL,
//! so that any number of `letterbox serve` nodes share one store.
//!
//! # Shape
//! - The synchronous `postgres` client with an `r2d2` pool (`[store] pool_size`
//!   connections): every [`Backend`] call runs on the caller's thread (tokio's blocking
//!   pool, see [`crate::Store::run`]) as one transaction ([`PgBackend::with_tx`]), or one
//!   statement on a pooled connection ([`PgBackend::with_conn`]). PostgreSQL's own group
//!   commit batches the fsyncs of concurrent deliveries.
//! - The store's rules (`rules.rs`) run over this backend's [`crate::rules::StoreTx`]
//!   (`pg/tx.rs`): the account row is locked `FOR UPDATE` before usage changes, and the
//!   UID and MODSEQ come from `UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq =
//!   highestmodseq + 1 ... RETURNING` in the transaction that inserts the message row and
//!   moves the usage. Nothing is stored without a UID, and since the mailbox row stays
//!   locked until commit, commit order is MODSEQ order: a reader of changes by MODSEQ
//!   (RFC 7162 3.1, CONDSTORE; 3.2 QRESYNC) never sees MODSEQ n+1 committed before n.
//! - Failures to reach the database (refused or dropped connection, server shutting
//!   down, pool exhausted) are [`Error::Unavailable`]: every protocol answers with a
//!   temporary error, and the pool reconnects on the next call, with no restart.
//! - TLS (`pg/tls.rs`): with `sslmode=require` (or `verify-ca`/`verify-full`) in the URL,
//!   rustls, always verifying the server's certificate; plaintext otherwise.
//! - Lock order: accounts (in id order), then the blob rows a rule counts references
//!   on (in hash order, [`tx::PgTx::lock_blobs`]), then mailbox rows. A transaction
//!   that still loses a race (a deadlock, a serialization failure) is run again up to
//!   `[store] conflict_retries` times ([`PgBackend::with_tx`]); a delivery's recipient
//!   that lost one is delivered again.
//! - Large bodies in an object store are held before upload and collected from a
//!   queue, never by listing the bucket (`pg/objects.rs`).
//! - Large non-text MIME parts are stored once per store (`[store] part_dedup_min`,
//!   issue 15): the rules are `parts.rs`'s, shared with the embedded store; the
//!   skeletons, maps and reference counts are in `blob_split` and `parts`, the part
//!   octets in `data_dir/parts` or under `parts/` in the object store, with the same
//!   holds and deletion queue as whole bodies (`pg/parts.rs`).
//! - `letterbox backup` reads the whole store at one exported snapshot through a
//!   read-only view of this backend (`pg/backup.rs`) and writes the embedded store's
//!   backup format; `letterbox restore` into PostgreSQL is a transfer from it.
//! - The schema is versioned: `pg/migrations/NNN_*.sql`, applied in order by
//!   [`migrate`] in one transaction under an advisory lock (two nodes starting together
//!   do not race), each recorded in `schema_version`. 001-099: the core (accounts,
//!   mailboxes, messages, blobs, Sieve); 100 and up: the auxiliary tables.

use crate::blob::BlobDir;
use crate::*;
use r2d2_postgres::postgres;
use r2d2_postgres::{r2d2, PostgresConnectionManager};
use std::path::Path;
use std::sync::Arc;

mod aliases;
mod backup;
mod mailboxes;
mod maintenance;
mod listen;
mod messages;
mod bodystructures;
mod searchables;
mod sortkeys;
mod objects;
mod parts;
mod replace;
mod rows;
mod sieve;
mod tls;
pub(crate) mod tx;
#[cfg(test)]
pub(crate) mod testing;
// The auxiliary methods' queries (issue 17, h/pgaux).
mod auth;
mod dkim;
mod import;
pub(crate) mod queue;
mod space;
mod transfer;
mod web;
#[cfg(test)]
mod tests_aux;
#[cfg(test)]
mod tests_faults;

use crate::rules::StoreTx;
pub use backup::restore_into;
use tx::{PgPrepared, PgTx};

/// A pooled connection.
pub(crate) type Conn = r2d2::PooledConnection<PostgresConnectionManager<tls::Tls>>;

/// The default of `[store] pool_size`: connections each node keeps to PostgreSQL. Every
/// call holds one for its transaction only; a 2-core node rarely has more in flight.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// How long a call waits for a pooled connection (or a new one) before it gives up with
/// a temporary error.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The advisory lock key under which migrations run (any fixed number: "LBOX").
const MIGRATION_LOCK: i64 = 0x4c42_4f58;

/// The schema, in order. Core: 001-099 (this file's owner); auxiliary tables: 100 up.
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "001_core", include_str!("migrations/001_core.sql")),
    (2, "002_objects", include_str!("migrations/002_objects.sql")),
    // Auxiliary tables (pg/{queue,web,auth,dkim,space,import}.rs).
    (100, "100_queue", include_str!("migrations/100_queue.sql")),
    (101, "101_web", include_str!("migrations/101_web.sql")),
    (102, "102_auth", include_str!("migrations/102_auth.sql")),
    (103, "103_dkim", include_str!("migrations/103_dkim.sql")),
    (104, "104_space", include_str!("migrations/104_space.sql")),
    (105, "105_import", include_str!("migrations/105_import.sql")),
    (106, "106_auth_failures", include_str!("migrations/106_auth_failures.sql")),
    (110, "110_mailbox_index", include_str!("migrations/110_mailbox_index.sql")),
    (111, "111_parts", include_str!("migrations/111_parts.sql")),
    (118, "118_message_cache", include_str!("migrations/118_message_cache.sql")),
    (125, "125_blob_bodystructure", include_str!("migrations/125_blob_bodystructure.sql")),
    (126, "126_message_bodystructure", include_str!("migrations/126_message_bodystructure.sql")),
    (IDN_MIGRATION, "135_idn_a_labels", include_str!("migrations/135_idn_a_labels.sql")),
    (140, "140_blob_searchable", include_str!("migrations/140_blob_searchable.sql")),
    (150, "150_sortkeys", include_str!("migrations/150_sortkeys.sql")),
    (160, "160_message_searchable", include_str!("migrations/160_message_searchable.sql")),
    (170, "170_envelope", include_str!("migrations/170_envelope.sql")),
    (190, "190_drop_searchable_chunks", include_str!("migrations/190_drop_searchable_chunks.sql")),
    (200, "200_message_bodystructure", include_str!("migrations/200_message_bodystructure.sql")),
];

/// The migration that rewrites U-label domains as A-labels (`crate::idn`), in Rust.
const IDN_MIGRATION: i32 = 135;

/// The schema version this build applies (the highest migration).
pub fn schema_version() -> i32 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
}

/// The default of `[store] conflict_retries`: runs again of a transaction that lost a
/// race with another node's (serialization failure 40001, deadlock 40P01), after a
/// short random pause, before the caller gets a temporary error. Deadlocks between two
/// deliveries need one run again; five leave room for a burst on one mailbox.
pub const DEFAULT_CONFLICT_RETRIES: u32 = 5;

/// How an error of a transaction that lost a race begins ([`pg_err`], [`is_conflict`]).
const CONFLICT: &str = "database conflict";

/// Whether `e` is a lost race (serialization failure, deadlock): the transaction can
/// simply be run again.
pub(crate) fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Unavailable(m) if m.starts_with(CONFLICT))
}

/// A short random pause before run `attempt` (1, 2, ...) of a transaction that lost a
/// race, so that the two do not meet again: up to 10, 20, 40... ms.
fn conflict_pause(attempt: u32) {
    use rand::Rng;
    let max = 10u64 << attempt.clamp(1, 6).saturating_sub(1);
    std::thread::sleep(std::time::Duration::from_millis(
        rand::thread_rng().gen_range(1..=max),
    ));
}

/// A PostgreSQL error as a store error: a connection that failed or went away, a server
/// that is shutting down or starting, too many connections, a lost race (serialization
/// failure, deadlock; see [`is_conflict`]): [`Error::Unavailable`] (temporary). A unique
/// violation is [`Error::Exists`]: every insert a delivery makes is an upsert (`ON
/// CONFLICT`), so two nodes racing never meet one; what remains are names a user picks
/// twice. Anything else is a plain failure.
pub(crate) fn pg_err(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code == "40001" || code == "40P01" {
            // Serialization failure, deadlock detected: lost a race with another
            // transaction; run again by `with_tx`.
            return Error::Unavailable(format!("{CONFLICT}: {}", db.message()));
        }
        let temporary = code.starts_with("08") // connection exception
            || code.starts_with("57P") // admin/crash shutdown, cannot connect now
            || code == "53300"; // too many connections
        if temporary {
            return Error::Unavailable(format!("database: {}", db.message()));
        }
        if code == "23505" {
            return Error::Exists(db.detail().unwrap_or(db.message()).to_string());
        }
        return Error::Io(std::io::Error::other(format!("database error: {}", db.message())));
    }
    // No server error: the connection itself (closed, refused, I/O, a TLS handshake),
    // with its causes (rust-postgres' message alone says "error performing TLS
    // handshake", not which certificate check failed).
    let mut msg = format!("database: {e}");
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    Error::Unavailable(msg)
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        pg_err(e)
    }
}

/// Applies the migrations this database lacks, in order, in one transaction under an
/// advisory lock; returns the schema version.
pub fn migrate(client: &mut postgres::Client) -> Result<i32> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // "already exists, skipping" notices are no news at every start.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )?;
    let applied: std::collections::HashSet<i32> = tx
        .query("SELECT version FROM schema_version", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut list: Vec<_> = MIGRATIONS.to_vec();
    list.sort_by_key(|m| m.0);
    for (version, name, sql) in list {
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(sql).map_err(|e| {
            Error::Io(std::io::Error::other(format!("migration {name}: {}", pg_err(e))))
        })?;
        if version == IDN_MIGRATION {
            crate::idn::migrate_pg(&mut tx)?;
        }
        tx.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&version, &name, &now()],
        )?;
    }
    let v: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    tx.commit()?;
    Ok(v.unwrap_or(0))
}

/// Runs `f`, which blocks on the `postgres` client (it drives tokio-postgres with a
/// runtime of its own), where that is allowed: directly on a plain thread or tokio's
/// blocking pool (where [`Store::run`] puts store calls); through `block_in_place` on a
/// multi-threaded runtime's worker; on a scoped thread from a current-thread runtime
/// (tests, or a caller that forgot [`Store::run`]). Never a panic.
pub(crate) fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }),
    }
}

/// Connects once, outside any pool (`letterbox migrate`).
pub fn connect(url: &str) -> Result<postgres::Client> {
    let (mut config, tls) = tls::parse(url)?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.connect(tls).map_err(pg_err)
}

/// Applies the schema to the database at `url`; returns its version.
pub fn migrate_url(url: &str) -> Result<i32> {
    blocking(|| migrate(&mut connect(url)?))
}

pub struct PgBackend {
    /// For the change feed's own LISTEN connection (`listen.rs`).
    url: String,
    /// `None` only while dropping (see the `Drop` impl).
    pool: Option<r2d2::Pool<PostgresConnectionManager<tls::Tls>>>,
    pub(crate) opts: StoreOptions,
    pub(crate) feed: Arc<ChangeFeed>,
    pub(crate) blobs: BlobDir,
    /// Shared MIME parts (`pg/parts.rs`): `data_dir/parts`, or `parts/` in the object
    /// store.
    pub(crate) parts: BlobDir,
    pub(crate) auth_cache: password::VerifiedCache,
    /// `Some(id)`: a read-only view of the database as one exported snapshot shows it
    /// (`pg/backup.rs`); every call runs in a `REPEATABLE READ READ ONLY` transaction
    /// that imports it. `None`: the live store.
    snapshot: Option<String>,
}

impl PgBackend {
    /// Opens the store at `url` (schema applied first), with large bodies in
    /// `data_dir/blobs` (a directory every node shares) or in `[blobs]`'s object store.
    pub fn open(
        url: &str,
        data_dir: &Path,
        pool_size: u32,
        opts: StoreOptions,
    ) -> Result<PgBackend> {
        let (mut config, tls) = tls::parse(url)?;
        config.connect_timeout(CONNECT_TIMEOUT);
        blocking(|| migrate(&mut config.connect(tls.clone()).map_err(pg_err)?))?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            // A connection is checked (an empty query) before it is handed out, so that
            // after a database restart each call gets a live one rather than failing
            // once per dead pooled connection: one loopback round trip per call.
            .test_on_check_out(true)
            .build_unchecked(PostgresConnectionManager::new(config, tls));
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
        Ok(PgBackend {
            url: url.to_string(),
            pool: Some(pool),
            auth_cache: password::VerifiedCache::new(opts.auth_cache_ttl),
            opts,
            feed: Arc::new(ChangeFeed::default()),
            blobs,
            parts,
            snapshot: None,
        })
    }

    pub(crate) fn pool(&self) -> Result<&r2d2::Pool<PostgresConnectionManager<tls::Tls>>> {
        self.pool
            .as_ref()
            .ok_or_else(|| Error::Unavailable("store is closing".into()))
    }

    fn conn(&self) -> Result<Conn> {
        self.pool()?
            .get()
            .map_err(|e| Error::Unavailable(format!("database: {e}")))
    }

    /// Runs `f` on a pooled connection (reads, single statements).
    pub(crate) fn with_conn<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T> + Send,
    ) -> Result<T> {
        blocking(|| {
            let mut c = self.conn()?;
            match &self.snapshot {
                None => f(&mut c),
                Some(id) => backup::in_snapshot(&mut c, id, f),
            }
        })
    }

    /// Runs `f` in one transaction, committed when it returns `Ok` (rolled back
    /// otherwise). A transaction that lost a race with another (deadlock, serialization
    /// failure: [`is_conflict`]) is run again from the start, up to `[store]
    /// conflict_retries` times, before its error is returned (a temporary one).
    pub(crate) fn with_tx<T: Send>(
        &self,
        mut f: impl FnMut(&mut postgres::Transaction) -> Result<T> + Send,
    ) -> Result<T> {
        blocking(|| {
            let mut attempt = 0;
            loop {
                let r = (|| {
                    let mut c = self.conn()?;
                    let mut tx = match &self.snapshot {
                        None => c.transaction()?,
                        Some(id) => backup::snapshot_tx(&mut c, id)?,
                    };
                    let v = f(&mut tx)?;
                    tx.commit()?;
                    Ok(v)
                })();
                match r {
                    Err(e) if is_conflict(&e) && attempt < self.opts.conflict_retries => {
                        attempt += 1;
                        tracing::debug!("transaction lost a race ({e}); run {attempt} again");
                        conflict_pause(attempt);
                    }
                    r => return r,
                }
            }
        })
    }
}


impl Backend for PgBackend {
    fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    fn web(&self) -> &dyn crate::web::WebStore {
        self
    }

    /// On PostgreSQL, other processes are other nodes: LISTEN/NOTIFY (`listen.rs`),
    /// with `interval` as the longest wait between two looks at new watchers.
    fn watch_other_processes(&self, interval: std::time::Duration) -> Result<()> {
        listen::start(self, self.url.clone(), interval)
    }

    // --- core (pg/*.rs of the core: accounts, mailboxes, messages, blobs, Sieve) ---
    fn remove_domain(&self, name: &str) -> Result<()> {
        let d = validate_domain(name)?;
        self.with_tx(|tx| {
            let id: i64 = tx
                .query_opt("SELECT id FROM domains WHERE name = $1 FOR UPDATE", &[&d])?
                .ok_or_else(|| Error::NotFound(format!("domain {d}")))?
                .get(0);
            let users: i64 = tx
                .query_one("SELECT count(*) FROM accounts WHERE domain_id = $1", &[&id])?
                .get(0);
            let aliases: i64 = tx
                .query_one(
                    "SELECT count(*) FROM aliases WHERE address LIKE '%@' || $1",
                    &[&d],
                )?
                .get(0);
            if users > 0 || aliases > 0 {
                return Err(Error::Refused(format!(
                    "domain {d} still has {users} user(s) and {aliases} alias(es); remove them first"
                )));
            }
            tx.execute("DELETE FROM domains WHERE id = $1", &[&id])?;
            tx.execute("DELETE FROM expire_policy WHERE scope = $1", &[&d])?;
            tx.execute("DELETE FROM strip_policy WHERE scope = $1", &[&d])?;
            Ok(())
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
        let (id, changes) = self.with_tx(|tx| {
            let domain_id: i64 = tx
                .query_opt("SELECT id FROM domains WHERE name = $1", &[&domain])?
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "domain {domain} is not local (add it first: letterbox domain add {domain})"
                    ))
                })?
                .get(0);
            let id: i64 = tx
                .query_opt(
                    "INSERT INTO accounts (address, domain_id, password_hash, quota_limit, created)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (address) DO NOTHING RETURNING id",
                    &[&address, &domain_id, &password_hash, &rows::quota_to_sql(quota), &now()],
                )?
                .ok_or_else(|| Error::Exists(format!("user {address}")))?
                .get(0);
            let mut changes = Vec::new();
            for (name, special) in DEFAULT_MAILBOXES {
                changes.push(rows::insert_mailbox(&mut *tx, id, name, *special)?.1);
                tx.execute(
                    "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&id, name],
                )?;
            }
            Ok((id, changes))
        })?;
        self.feed.publish(changes);
        self.account_by_id(id)
    }

    fn remove_account(&self, address: &str, force: bool) -> Result<()> {
        let a = normalize_address(address);
        self.with_tx(|tx| {
            let acct = rows::account_by_address(&mut *tx, &a, &self.opts)?;
            tx.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &[&acct.id])?;
            let count: i64 = tx
                .query_one(
                    "SELECT count(*) FROM messages WHERE mailbox_id IN
                     (SELECT id FROM mailboxes WHERE account_id = $1)",
                    &[&acct.id],
                )?
                .get(0);
            if count > 0 && !force {
                return Err(Error::Refused(format!(
                    "user {a} has {count} message(s); use --force to remove the account and its mail"
                )));
            }
            tx.execute(
                "UPDATE blobs SET refcount = blobs.refcount - g.n
                 FROM (SELECT m.blob, count(*) AS n FROM messages m
                       JOIN mailboxes b ON m.mailbox_id = b.id
                       WHERE b.account_id = $1 GROUP BY m.blob) g
                 WHERE blobs.hash = g.blob",
                &[&acct.id],
            )?;
            for table in ["messages", "expunged"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE mailbox_id IN
                         (SELECT id FROM mailboxes WHERE account_id = $1)"
                    ),
                    &[&acct.id],
                )?;
            }
            tx.execute("DELETE FROM mailboxes WHERE account_id = $1", &[&acct.id])?;
            tx.execute("DELETE FROM subscriptions WHERE account_id = $1", &[&acct.id])?;
            tx.execute("DELETE FROM aliases WHERE target = $1", &[&a])?;
            // As on SQLite: the portal's rows of the account (a new account of the same
            // address must not inherit operator rights), and its own expiry and attachment
            // policies (a new account of the address starts from its domain's).
            tx.execute("DELETE FROM web_sessions WHERE account_id = $1", &[&acct.id])?;
            tx.execute("DELETE FROM web_admins WHERE address = $1", &[&a])?;
            tx.execute("DELETE FROM account_disabled WHERE account_id = $1", &[&acct.id])?;
            tx.execute("DELETE FROM expire_policy WHERE scope = $1", &[&a])?;
            tx.execute("DELETE FROM strip_policy WHERE scope = $1", &[&a])?;
            tx.execute("DELETE FROM accounts WHERE id = $1", &[&acct.id])?;
            Ok(())
        })?;
        self.auth_cache.forget(&a);
        // As on SQLite: the account's bodies go at once, not at the next collection.
        maintenance::free_unreferenced(self)?;
        Ok(())
    }

    fn list_accounts(&self) -> Result<Vec<Account>> {
        self.with_conn(|c| {
            Ok(c.query(
                &format!("SELECT {} FROM accounts ORDER BY address", rows::ACCOUNT_COLS),
                &[],
            )?
            .iter()
            .map(|r| rows::account_from_row(r, &self.opts))
            .collect())
        })
    }

    fn account(&self, address: &str) -> Result<Account> {
        self.with_conn(|c| rows::account_by_address(c, address, &self.opts))
    }

    fn account_by_id(&self, id: AccountId) -> Result<Account> {
        self.with_conn(|c| rows::account_by_id(c, id, &self.opts))
    }

    fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<()> {
        let a = normalize_address(address);
        let n = self.with_conn(|c| {
            Ok(c.execute(
                "UPDATE accounts SET password_hash = $2 WHERE address = $1",
                &[&a, &password_hash],
            )?)
        })?;
        if n == 0 {
            return Err(Error::NotFound(format!("user {a}")));
        }
        Ok(())
    }

    fn set_retention(&self, address: &str, retention: Option<Retention>) -> Result<()> {
        let a = normalize_address(address);
        let n = self.with_conn(|c| {
            Ok(c.execute(
                "UPDATE accounts SET pop3_retention = $2 WHERE address = $1",
                &[&a, &retention.map(|r| r.to_string())],
            )?)
        })?;
        if n == 0 {
            return Err(Error::NotFound(format!("user {a}")));
        }
        Ok(())
    }

    fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let a = normalize_address(address);
        let Some((stored, acct)) = self.account_with_hash(&a)? else {
            // Spend the same time as a real check, so timing does not reveal users.
            let _ = password::verify(password, crate::sqlite::DUMMY_HASH);
            return Ok(None);
        };
        if self.auth_cache.hit(&a, password, &stored) {
            return Ok(Some(acct));
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
        self.account_by_id(acct.id).map(Some)
    }

    fn authenticate_cached(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let a = normalize_address(address);
        Ok(self
            .account_with_hash(&a)?
            .filter(|(stored, _)| self.auth_cache.hit(&a, password, stored))
            .map(|(_, acct)| acct))
    }

    fn add_alias(&self, address: &str, targets: &[String]) -> Result<()> {
        let alias = aliases::alias_address(address)?;
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
        self.with_tx(|tx| {
            let domain = alias
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            if tx
                .query_opt("SELECT id FROM domains WHERE name = $1", &[&domain])?
                .is_none()
            {
                return Err(Error::Invalid(format!("domain {domain} is not local")));
            }
            crate::alias_exists(&alias, &aliases::targets(tx, &alias)?, &ts)?;
            for t in &ts {
                tx.execute(
                    "INSERT INTO aliases (address, target) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&alias, t],
                )?;
            }
            Ok(())
        })
    }

    fn remove_alias(&self, address: &str, targets: &[String]) -> Result<()> {
        let alias = aliases::alias_address(address)?;
        let ts: Vec<String> = targets.iter().map(|t| normalize_address(t)).collect();
        self.with_tx(|tx| {
            let n = if ts.is_empty() {
                tx.execute("DELETE FROM aliases WHERE address = $1", &[&alias])?
            } else {
                let mut n = 0;
                for t in &ts {
                    let k = tx.execute(
                        "DELETE FROM aliases WHERE address = $1 AND target = $2",
                        &[&alias, t],
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
        let filter = address.map(aliases::alias_address).transpose()?;
        self.with_conn(|c| aliases::list(c, filter.as_deref()))
    }

    fn resolve(&self, address: &str) -> Result<Resolved> {
        self.with_conn(|c| aliases::resolve(c, address, &self.opts))
    }

    fn quota_warn_state(&self, account: AccountId) -> Result<(u8, u8)> {
        self.with_conn(|c| {
            let r = c
                .query_opt(
                    "SELECT warn_level, warn_pending FROM accounts WHERE id = $1",
                    &[&account],
                )?
                .ok_or_else(|| Error::NotFound(format!("account #{account}")))?;
            Ok((
                r.get::<_, i32>(0).clamp(0, 100) as u8,
                r.get::<_, i32>(1).clamp(0, 100) as u8,
            ))
        })
    }

    fn set_quota_warn_state(&self, account: AccountId, state: (u8, u8)) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "UPDATE accounts SET warn_level = $2, warn_pending = $3 WHERE id = $1",
                &[&account, &i32::from(state.0), &i32::from(state.1)],
            )?;
            Ok(())
        })
    }

    fn take_pending_warning(&self, account: AccountId) -> Result<Option<u8>> {
        self.with_conn(|c| {
            // One statement: whoever takes it clears it, so each crossing warns once.
            let r = c.query_opt(
                "UPDATE accounts a SET warn_pending = 0 FROM
                     (SELECT id, warn_pending FROM accounts WHERE id = $1 FOR UPDATE) old
                 WHERE a.id = old.id RETURNING old.warn_pending",
                &[&account],
            )?;
            let r = r.ok_or_else(|| Error::NotFound(format!("account #{account}")))?;
            let t: i32 = r.get(0);
            Ok((t > 0).then_some(t.clamp(0, 100) as u8))
        })
    }

    fn pending_warnings(&self) -> Result<Vec<AccountId>> {
        self.with_conn(|c| {
            Ok(c.query("SELECT id FROM accounts WHERE warn_pending > 0 ORDER BY id", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn set_quota(&self, address: &str, limit: QuotaLimit) -> Result<Account> {
        let a = normalize_address(address);
        let id = self.rules(|t| {
            let acct = rows::account_by_address(&mut *t.tx, &a, t.opts)?;
            crate::rules::set_quota_limit(t, acct.id, limit)?;
            Ok(acct.id)
        })?;
        self.account_by_id(id)
    }

    fn recalc_quota(&self, address: Option<&str>) -> Result<Vec<Recalc>> {
        let a = address.map(normalize_address);
        self.rules(|t| crate::rules::recalc_quota(t, a.as_deref()))
    }

    fn list_mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.with_conn(|c| {
            Ok(c.query(
                &format!(
                    "SELECT {} FROM mailboxes WHERE account_id = $1 ORDER BY name COLLATE \"C\"",
                    rows::MAILBOX_COLS
                ),
                &[&account],
            )?
            .iter()
            .map(rows::mailbox_from_row)
            .collect())
        })
    }

    fn mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox> {
        self.with_conn(|c| rows::mailbox_named(c, account, name))
    }

    fn mailbox_by_id(&self, id: MailboxId) -> Result<Mailbox> {
        self.with_conn(|c| rows::mailbox_by_id(c, id))
    }

    fn mailbox_to_open(&self, account: AccountId, name: &str) -> Result<(Mailbox, u32, Account)> {
        let name = normalize_mailbox_name(name)?;
        self.with_conn(|c| {
            let r = c
                .query_opt(
                    "SELECT m.id, m.account_id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq,
                            m.special_use, m.first_recent,
                            a.id, a.address, a.quota_limit, a.quota_used, a.pop3_retention
                     FROM mailboxes m JOIN accounts a ON a.id = m.account_id
                     WHERE m.account_id = $1 AND m.name = $2",
                    &[&account, &name],
                )?
                .ok_or_else(|| Error::NotFound(format!("mailbox {name}")))?;
            let first: i64 = r.get(7);
            Ok((
                rows::mailbox_from_row(&r),
                first.clamp(0, u32::MAX as i64) as u32,
                rows::account_from_row_at(&r, &self.opts, 8),
            ))
        })
    }

    fn mailbox_counts(&self, mailbox: MailboxId) -> Result<MailboxCounts> {
        self.with_conn(|c| {
            let r = c.query_one(
                "SELECT count(*),
                        count(*) FILTER (WHERE flags & 1 = 0),
                        count(*) FILTER (WHERE flags & 8 <> 0),
                        coalesce(sum(size), 0)::BIGINT,
                        count(*) FILTER (WHERE uid >= (SELECT first_recent FROM mailboxes WHERE id = $1)),
                        coalesce(sum(size) FILTER (WHERE flags & 8 <> 0), 0)::BIGINT
                 FROM messages WHERE mailbox_id = $1",
                &[&mailbox],
            )?;
            Ok(MailboxCounts {
                messages: r.get::<_, i64>(0) as u32,
                unseen: r.get::<_, i64>(1) as u32,
                deleted: r.get::<_, i64>(2) as u32,
                size: r.get::<_, i64>(3) as u64,
                recent: r.get::<_, i64>(4) as u32,
                deleted_size: r.get::<_, i64>(5) as u64,
            })
        })
    }

    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        self.rules(|t| {
            let (mb, change) = rows::create_mailbox(&mut *t.tx, account, name, special_use)?;
            t.changes.push(change);
            Ok(mb)
        })
    }

    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize_mailbox_name(name)?;
        if name == "INBOX" {
            return Err(Error::Refused("INBOX cannot be deleted".into()));
        }
        self.rules(|t| {
            t.lock_account(account)?;
            let mb = rows::mailbox_named(&mut *t.tx, account, &name)?;
            let uids = messages::all_uids(&mut *t.tx, mb.id)?;
            crate::rules::expunge(t, &mb, &uids)?;
            t.tx.execute("DELETE FROM expunged WHERE mailbox_id = $1", &[&mb.id])?;
            t.tx.execute("DELETE FROM mailboxes WHERE id = $1", &[&mb.id])?;
            t.changes.retain(|c| c.mailbox != mb.id);
            t.changes.push(Change {
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
        self.rules(|t| mailboxes::rename(t, account, &from, &to))
    }

    fn subscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize_mailbox_name(name)?;
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&account, &name],
            )?;
            Ok(())
        })
    }

    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize_mailbox_name(name)?;
        let n = self.with_conn(|c| {
            Ok(c.execute(
                "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2",
                &[&account, &name],
            )?)
        })?;
        if n == 0 {
            return Err(Error::NotFound(format!("subscription {name}")));
        }
        Ok(())
    }

    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name COLLATE \"C\"",
                &[&account],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
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
        let prep = self.prepare_parsed(&body, parsed)?;
        // Each recipient has its own savepoint (`rules::deliver_to`), so a recipient
        // that lost a race (a deadlock) fails alone while the others commit: such
        // recipients are delivered again, in a new transaction, as `with_tx` runs a
        // whole transaction again.
        let mut out: Vec<Option<Result<Appended>>> = items.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let batch: Vec<Delivery> = pending.iter().map(|&i| items[i].clone()).collect();
            let accounts: Vec<AccountId> = batch.iter().map(|i| i.account).collect();
            let results = self.rules(|t| {
                t.lock_accounts(&accounts)?;
                crate::rules::deliver_to(t, &body, internal_date, &batch, enforce_quota, &prep)
            })?;
            let mut again = Vec::new();
            for (i, r) in pending.iter().copied().zip(results) {
                match r {
                    Err(e) if is_conflict(&e) && attempt < self.opts.conflict_retries => {
                        again.push(i)
                    }
                    r => out[i] = Some(r),
                }
            }
            if !again.is_empty() {
                attempt += 1;
                tracing::debug!("{} recipient(s) lost a race; delivering again", again.len());
                blocking(|| conflict_pause(attempt));
            }
            pending = again;
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Unavailable("not delivered".into()))))
            .collect())
    }

    fn list_messages(&self, mailbox: MailboxId, claim_recent: bool) -> Result<Vec<MessageMeta>> {
        let (from, to) = if claim_recent {
            self.claim_recent(mailbox, true)?
        } else {
            (0, 0)
        };
        let mut v = self.with_conn(|c| {
            Ok(c.query(
                &format!(
                    "SELECT {} FROM messages WHERE mailbox_id = $1 ORDER BY uid",
                    rows::MESSAGE_COLS
                ),
                &[&mailbox],
            )?
            .iter()
            .map(rows::meta_from_row)
            .collect::<Vec<_>>())
        })?;
        for m in &mut v {
            m.recent = m.uid >= from && m.uid < to;
        }
        Ok(v)
    }

    fn message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageMeta> {
        self.messages(mailbox, &[uid])?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("message UID {uid}")))
    }

    fn messages(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageMeta>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let list = messages::uid_array(uids);
        self.with_conn(|c| {
            Ok(c.query(
                &format!(
                    "SELECT {} FROM messages WHERE mailbox_id = $1 AND uid = ANY($2) ORDER BY uid",
                    rows::MESSAGE_COLS
                ),
                &[&mailbox, &list],
            )?
            .iter()
            .map(rows::meta_from_row)
            .collect())
        })
    }

    fn parsed(&self, mailbox: MailboxId, uid: u32) -> Result<ParsedMessage> {
        self.parsed_many(mailbox, &[uid], true)?
            .pop()
            .map(|(_, p)| p)
            .ok_or_else(|| Error::NotFound(format!("message UID {uid}")))
    }

    fn bodystructures_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        bodystructures::bodystructures_many(self, mailbox, uids)
    }

    fn searchables_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        searchables::searchables_many(self, mailbox, uids)
    }

    fn envelopes_rendered_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        // FETCH ENVELOPE's renderings kept at delivery (crates/store/src/envelopes.rs):
        // blobs.envelope and message_envelope, migration 170.
        searchables::copies_many(
            self,
            "message_envelope",
            "envelope",
            mailbox,
            uids,
            crate::body::stored_bodystructure,
        )
    }

    fn sortkeys_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Packed> {
        sortkeys::sortkeys_many(self, mailbox, uids)
    }

    fn sent_dates_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Option<i64>)>> {
        sortkeys::sent_dates_many(self, mailbox, uids)
    }

    fn parsed_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        with_search: bool,
    ) -> Result<Vec<(u32, ParsedMessage)>> {
        messages::parsed_many(self, mailbox, uids, with_search)
    }

    fn envelopes_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, letterbox_message::Envelope)>> {
        Ok(messages::parsed_many(self, mailbox, uids, false)?
            .into_iter()
            .map(|(u, p)| (u, p.envelope))
            .collect())
    }

    fn headers_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        messages::headers_many(self, mailbox, uids)
    }

    fn text_candidates(
        &self,
        mailbox: MailboxId,
        needles_lower: &[&str],
    ) -> Result<Option<Vec<u32>>> {
        let Some(probes) = crate::grams::probes(needles_lower) else {
            return Ok(None);
        };
        self.with_conn(|c| {
            Ok(Some(
                c.query(
                    "SELECT m.uid, b.grams FROM messages m JOIN blobs b ON b.hash = m.blob
                     WHERE m.mailbox_id = $1 ORDER BY m.uid",
                    &[&mailbox],
                )?
                .iter()
                .filter(|r| crate::grams::may_contain(r.get(1), &probes))
                .map(|r| r.get::<_, i64>(0) as u32)
                .collect(),
            ))
        })
    }

    fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader> {
        messages::open(self, mailbox, uid)
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
        crate::rules::check_keywords(keywords)?;
        let keywords: std::collections::BTreeSet<String> = keywords.iter().cloned().collect();
        self.rules(|t| {
            crate::rules::store_flags(t, mailbox, uids, op, flags, &keywords, unchanged_since)
        })
    }

    fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<u32>> {
        self.rules(|t| {
            let mb = rows::mailbox_by_id(&mut *t.tx, mailbox)?;
            t.lock_account(mb.account_id)?;
            t.lock_blobs_of(mailbox, uids)?;
            crate::rules::expunge(t, &mb, uids)
        })
    }

    fn copy(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>> {
        self.rules(|t| {
            let src = rows::mailbox_by_id(&mut *t.tx, from)?;
            let dst = rows::mailbox_by_id(&mut *t.tx, to)?;
            t.lock_accounts(&[src.account_id, dst.account_id])?;
            t.lock_account(dst.account_id)?;
            t.lock_blobs_of(from, uids)?;
            crate::rules::copy(t, &src, uids, &dst, true)
        })
    }

    fn move_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
    ) -> Result<Vec<(u32, u32)>> {
        self.rules(|t| {
            let src = rows::mailbox_by_id(&mut *t.tx, from)?;
            let dst = rows::mailbox_by_id(&mut *t.tx, to)?;
            t.lock_accounts(&[src.account_id, dst.account_id])?;
            t.lock_account(src.account_id)?;
            t.lock_account(dst.account_id)?;
            t.lock_blobs_of(from, uids)?;
            crate::rules::move_messages(t, from, uids, to)
        })
    }

    fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<ChangesSince> {
        let m = modseq.min(i64::MAX as u64) as i64;
        self.with_tx(|tx| {
            let changed = tx
                .query(
                    &format!(
                        "SELECT {} FROM messages WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
                        rows::MESSAGE_COLS
                    ),
                    &[&mailbox, &m],
                )?
                .iter()
                .map(rows::meta_from_row)
                .collect();
            let vanished = tx
                .query(
                    "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
                    &[&mailbox, &m],
                )?
                .iter()
                .map(|r| r.get::<_, i64>(0) as u32)
                .collect();
            Ok(ChangesSince { changed, vanished })
        })
    }

    fn mark_pop3_retrieved(&self, mailbox: MailboxId, uids: &[u32], now: i64) -> Result<()> {
        let list = messages::uid_array(uids);
        self.with_conn(|c| {
            c.execute(
                "UPDATE messages SET pop3_seen_at = $3
                 WHERE mailbox_id = $1 AND uid = ANY($2) AND pop3_seen_at IS NULL",
                &[&mailbox, &list, &now],
            )?;
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
            total += self.rules(|t| {
                let mb = rows::mailbox_named(&mut *t.tx, acct.id, "INBOX")?;
                let uids: Vec<u32> = t
                    .tx
                    .query(
                        "SELECT uid FROM messages WHERE mailbox_id = $1
                         AND pop3_seen_at IS NOT NULL AND pop3_seen_at <= $2 ORDER BY uid",
                        &[&mb.id, &cutoff],
                    )?
                    .iter()
                    .map(|r| r.get::<_, i64>(0) as u32)
                    .collect();
                Ok(crate::rules::expunge(t, &mb, &uids)?.len() as u64)
            })?;
        }
        Ok(total)
    }

    fn gc(&self) -> Result<GcReport> {
        maintenance::gc(self)
    }

    fn check(&self, deep: bool) -> Result<Vec<String>> {
        maintenance::check(self, deep)
    }

    fn pop3_sizes(&self, mailbox: MailboxId) -> Result<Vec<crate::line_ends::Pop3Size>> {
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT m.uid, m.size, b.bare_lf, b.ends_lf FROM messages m
                 JOIN blobs b ON b.hash = m.blob WHERE m.mailbox_id = $1 ORDER BY m.uid",
                &[&mailbox],
            )?
            .iter()
            .map(|r| {
                let ends = crate::line_ends::LineEnds {
                    bare_lf: r.get::<_, i64>(2).max(0) as u64,
                    ends_with_lf: r.get(3),
                };
                crate::line_ends::Pop3Size {
                    uid: r.get::<_, i64>(0) as u32,
                    size: ends.crlf_size(r.get::<_, i64>(1).max(0) as u64),
                    bare_lf: ends.bare_lf > 0,
                }
            })
            .collect())
        })
    }

    fn load_mailbox_index(&self, mailbox: MailboxId) -> Result<Option<(u32, u64, Vec<u8>)>> {
        self.with_conn(|c| {
            Ok(c.query_opt(
                "SELECT uidvalidity, modseq, data FROM mailbox_index WHERE mailbox_id = $1",
                &[&mailbox],
            )?
            .map(|r| {
                (
                    r.get::<_, i64>(0) as u32,
                    r.get::<_, i64>(1) as u64,
                    r.get::<_, Vec<u8>>(2),
                )
            }))
        })
    }

    fn list_mailbox_indexes(&self, limit: usize) -> Result<Vec<(MailboxId, u64)>> {
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT mailbox_id, octet_length(data)::BIGINT FROM mailbox_index
                 ORDER BY octet_length(data) DESC, mailbox_id LIMIT $1",
                &[&(limit.min(i64::MAX as usize) as i64)],
            )?
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1) as u64))
            .collect())
        })
    }

    fn save_mailbox_index(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        modseq: u64,
        data: Vec<u8>,
    ) -> Result<()> {
        self.with_conn(|c| {
            // Not for a mailbox deleted meanwhile (the foreign key would refuse it).
            c.execute(
                "INSERT INTO mailbox_index (mailbox_id, uidvalidity, modseq, data)
                 SELECT id, $2, $3, $4 FROM mailboxes WHERE id = $1 AND uidvalidity = $2
                 ON CONFLICT (mailbox_id) DO UPDATE
                     SET uidvalidity = EXCLUDED.uidvalidity, modseq = EXCLUDED.modseq,
                         data = EXCLUDED.data",
                &[&mailbox, &i64::from(uidvalidity), &(modseq as i64), &data],
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
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT chunk, uidvalidity, data FROM message_cache
                 WHERE mailbox_id = $1 AND kind = $2 AND chunk BETWEEN $3 AND $4 ORDER BY chunk",
                &[&mailbox, &i16::from(kind), &i64::from(first), &i64::from(last)],
            )?
            .into_iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0) as u32,
                    r.get::<_, i64>(1) as u32,
                    r.get::<_, Vec<u8>>(2),
                )
            })
            .collect())
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
        self.with_conn(|c| {
            // Not for a mailbox deleted or recreated meanwhile.
            c.execute(
                "INSERT INTO message_cache (mailbox_id, kind, chunk, uidvalidity, data)
                 SELECT id, $2, $3, $4, $5 FROM mailboxes WHERE id = $1 AND uidvalidity = $4
                 ON CONFLICT (mailbox_id, kind, chunk) DO UPDATE
                     SET uidvalidity = EXCLUDED.uidvalidity, data = EXCLUDED.data",
                &[&mailbox, &i16::from(kind), &i64::from(chunk), &i64::from(uidvalidity), &data],
            )?;
            Ok(())
        })
    }

    fn claim_recent(&self, mailbox: MailboxId, take: bool) -> Result<(u32, u32)> {
        let clamp = |v: i64| v.clamp(0, u32::MAX as i64) as u32;
        self.with_conn(|c| {
            if !take {
                let first: i64 = c
                    .query_opt("SELECT first_recent FROM mailboxes WHERE id = $1", &[&mailbox])?
                    .ok_or_else(|| Error::NotFound(format!("mailbox #{mailbox}")))?
                    .get(0);
                return Ok((clamp(first), u32::MAX));
            }
            // One statement: the row lock makes two sessions' claims disjoint.
            let r = c
                .query_opt(
                    "UPDATE mailboxes m SET first_recent = old.uidnext FROM
                         (SELECT id, first_recent, uidnext FROM mailboxes WHERE id = $1 FOR UPDATE) old
                     WHERE m.id = old.id RETURNING old.first_recent, old.uidnext",
                    &[&mailbox],
                )?
                .ok_or_else(|| Error::NotFound(format!("mailbox #{mailbox}")))?;
            let (from, to): (i64, i64) = (r.get(0), r.get(1));
            Ok(if from >= to { (0, 0) } else { (clamp(from), clamp(to)) })
        })
    }

    fn sieve_list(&self, account: AccountId) -> Result<Vec<SieveScript>> {
        self.with_conn(|c| sieve::list(c, account))
    }

    fn sieve_get(&self, account: AccountId, name: &str) -> Result<Vec<u8>> {
        self.with_conn(|c| sieve::get(c, account, name))
    }

    fn sieve_put(
        &self,
        account: AccountId,
        name: &str,
        script: Vec<u8>,
        max_scripts: Option<u32>,
    ) -> Result<()> {
        self.with_tx(|tx| sieve::put(tx, account, name, &script, max_scripts))
    }

    fn sieve_activate(&self, account: AccountId, name: Option<&str>) -> Result<()> {
        self.with_tx(|tx| sieve::activate(tx, account, name))
    }

    fn sieve_delete(&self, account: AccountId, name: &str) -> Result<()> {
        self.with_tx(|tx| sieve::delete(tx, account, name))
    }

    fn sieve_rename(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        self.with_tx(|tx| sieve::rename(tx, account, from, to))
    }

    fn sieve_active(&self, account: AccountId) -> Result<Option<(String, Vec<u8>)>> {
        self.with_conn(|c| sieve::active(c, account))
    }

    fn sieve_seen(&self, account: AccountId, id: &str, expires: i64, now: i64) -> Result<bool> {
        self.with_conn(|c| sieve::seen(c, account, id, expires, now))
    }
    fn add_domain(&self, name: &str) -> Result<()> {
        let d = validate_domain(name)?;
        self.with_conn(|c| {
            let n = c.execute(
                "INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&d],
            )?;
            if n == 0 {
                return Err(Error::Exists(format!("domain {d}")));
            }
            Ok(())
        })
    }
    fn list_domains(&self) -> Result<Vec<String>> {
        self.with_conn(|c| {
            Ok(c.query("SELECT name FROM domains ORDER BY name", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }
    fn stats(&self) -> Result<StoreStats> {
        self.with_conn(|c| {
            let r = c.query_one(
                "SELECT (SELECT count(*) FROM accounts),
                        (SELECT coalesce(sum(quota_used), 0)::BIGINT FROM accounts),
                        (SELECT count(*) FROM messages),
                        (SELECT count(*) FROM blobs WHERE refcount > 0),
                        (SELECT coalesce(sum(size), 0)::BIGINT FROM blobs WHERE refcount > 0),
                        pg_database_size(current_database())",
                &[],
            )?;
            let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
            Ok(StoreStats {
                accounts: n(0),
                usage_bytes: n(1),
                messages: n(2),
                blobs: n(3),
                blob_bytes: n(4),
                database_bytes: n(5),
            })
        })
    }
    fn backup(&self, dest: &std::path::Path) -> Result<BackupReport> {
        backup::backup(self, dest)
    }
    fn replace_message(
        &self,
        mailbox: MailboxId,
        uid: u32,
        expected_size: u64,
        body: Vec<u8>,
    ) -> Result<Replaced> {
        self.replace_message_logged(mailbox, uid, expected_size, body, String::new())
    }
    fn replace_message_logged(
        &self,
        mailbox: MailboxId,
        uid: u32,
        expected_size: u64,
        body: Vec<u8>,
        detail: String,
    ) -> Result<Replaced> {
        // Every replacement is in the space log, as the embedded store's.
        replace::replace(self, mailbox, uid, expected_size, body, |t, mb, old, new, freed| {
            space::log(&mut *t.tx, mb.account_id, "strip", &mb.name, Some(old), Some(new), 1, freed, &detail)
        })
    }

    // --- auxiliary (queue, app passwords, API tokens, DKIM, logins and blocks,
    // expiry and attachment policies, space log, maintenance, import): pg/{queue,web,
    // auth,dkim,space,import}.rs ---
    fn block(&self, key: &str, until: i64, reason: &str) -> Result<()> {
        self.with_conn(|c| auth::block(c, key, until, reason))
    }
    fn blocks(&self, now: i64) -> Result<Vec<(String, i64, String)>> {
        self.with_conn(|c| auth::blocks(c, now))
    }
    fn unblock(&self, key: &str) -> Result<bool> {
        self.with_conn(|c| auth::unblock(c, key))
    }
    fn count_login_failure(&self, keys: &[String], window: u64, now: i64) -> Result<Option<Vec<u32>>> {
        self.with_conn(|c| keys.iter().map(|k| auth::count_failure(c, k, window, now)).collect())
            .map(Some)
    }
    fn clear_login_failures(&self, keys: &[String]) -> Result<()> {
        self.with_conn(|c| auth::clear_failures(c, keys))
    }
    fn add_app_password(&self, address: &str, name: &str, protocols: Protocols) -> Result<String> {
        self.with_conn(|c| auth::app_password_add(c, address, name, protocols))
    }
    fn list_app_passwords(&self, address: &str) -> Result<Vec<AppPassword>> {
        self.with_conn(|c| auth::app_password_list(c, address))
    }
    fn remove_app_password(&self, address: &str, name: &str) -> Result<()> {
        let id = self.with_conn(|c| auth::app_password_remove(c, address, name))?;
        self.auth_cache
            .forget(&apppass::cache_key(&normalize_address(address), id));
        Ok(())
    }
    fn authenticate_app_password(
        &self,
        address: &str,
        password: &str,
        protocol: Protocol,
        cached_only: bool,
    ) -> Result<Option<(Account, String)>> {
        let Some(canon) = apppass::canonical(password) else {
            return Ok(None);
        };
        let a = normalize_address(address);
        let Some((id, candidates)) =
            self.with_conn(|c| auth::app_password_candidates(c, &a, &canon))?
        else {
            return Ok(None);
        };
        match apppass::check_candidates(&self.auth_cache, &a, &canon, protocol, cached_only, candidates) {
            Some(name) => Ok(Some((self.account_by_id(id)?, name))),
            None => Ok(None),
        }
    }
    fn record_login(&self, account: AccountId, login: LoginRecord, keep: u32) -> Result<()> {
        self.with_conn(|c| auth::record_login(c, account, &login, keep))
    }
    fn recent_logins(&self, address: &str) -> Result<Vec<LoginRecord>> {
        self.with_conn(|c| auth::recent_logins(c, address))
    }
    fn add_api_token(&self, name: &str) -> Result<String> {
        self.with_conn(|c| auth::api_token_add(c, name))
    }
    fn list_api_tokens(&self) -> Result<Vec<ApiToken>> {
        self.with_conn(auth::api_token_list)
    }
    fn remove_api_token(&self, name: &str) -> Result<()> {
        self.with_conn(|c| auth::api_token_remove(c, name))
    }
    fn check_api_token(&self, token: &str) -> Result<Option<String>> {
        self.with_conn(|c| auth::api_token_check(c, token))
    }
    fn add_dkim_keys(&self, keys: Vec<DkimKey>) -> Result<()> {
        self.with_conn(|c| dkim::add_keys(c, &keys))
    }
    fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>> {
        self.with_conn(|c| dkim::keys(c, domain))
    }
    fn active_dkim_keys(&self) -> Result<Vec<DkimKey>> {
        self.with_conn(dkim::active_keys)
    }
    fn activate_dkim_keys(&self, domain: &str, selectors: &[String]) -> Result<Vec<String>> {
        self.with_conn(|c| dkim::activate(c, domain, selectors, now()))
    }
    fn dkim_version(&self) -> Result<i64> {
        self.with_conn(dkim::version)
    }
    fn queue_insert(&self, msg: crate::queue::NewQueued) -> Result<crate::queue::QueueId> {
        self.with_conn(|c| queue::insert(c, msg))
    }
    fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<crate::queue::QueueId>> {
        let lease = self.opts.queue_lease.clamp(1, i64::MAX as u64) as i64;
        self.with_conn(|c| queue::due(c, now, limit, lease))
    }
    fn queue_release(&self, id: crate::queue::QueueId) -> Result<()> {
        self.with_conn(|c| queue::release(c, id))
    }
    fn queue_next_due(&self) -> Result<Option<i64>> {
        self.with_conn(queue::next_due)
    }
    fn queue_get(&self, id: crate::queue::QueueId) -> Result<crate::queue::QueuedMessage> {
        self.with_conn(|c| queue::get(c, id))
    }
    fn queue_body(&self, id: crate::queue::QueueId) -> Result<Vec<u8>> {
        self.with_conn(|c| queue::body(c, id))
    }
    fn queue_list(
        &self,
        after: crate::queue::QueueId,
        limit: usize,
    ) -> Result<Vec<crate::queue::QueuedMessage>> {
        self.with_conn(|c| queue::list(c, after, limit))
    }
    fn queue_update(&self, id: crate::queue::QueueId, u: crate::queue::QueueUpdate) -> Result<bool> {
        self.with_conn(|c| queue::update(c, id, u))
    }
    fn queue_remove(&self, id: crate::queue::QueueId) -> Result<()> {
        self.with_conn(|c| queue::remove(c, id))
    }
    fn queue_set_held(&self, id: crate::queue::QueueId, held: bool, now: i64) -> Result<()> {
        self.with_conn(|c| queue::set_held(c, id, held, now))
    }
    fn queue_retry(&self, id: Option<crate::queue::QueueId>, now: i64) -> Result<u64> {
        self.with_conn(|c| queue::retry(c, id, now))
    }
    fn outbound_use(&self, account: AccountId, now: i64) -> Result<crate::queue::OutboundUse> {
        self.with_conn(|c| queue::outbound_use(c, account, now))
    }
    fn set_outbound_hold(&self, account: AccountId, hold: bool) -> Result<()> {
        self.with_conn(|c| queue::set_outbound_hold(c, account, hold))
    }
    fn outbound_held(&self, account: AccountId) -> Result<bool> {
        self.with_conn(|c| queue::outbound_held(c, account))
    }
    fn import_begin(&self, account: AccountId, source: &str, merge: bool) -> Result<ImportStart> {
        self.with_conn(|c| import::begin(c, account, source, merge))
    }
    fn import_finish(&self, account: AccountId, source: &str) -> Result<()> {
        self.with_conn(|c| import::finish(c, account, source))
    }
    fn import_mailbox(&self, account: AccountId, name: &str, uidvalidity: u32) -> Result<ImportMailbox> {
        import::mailbox(self, account, name, uidvalidity)
    }
    fn import_message(&self, mailbox: MailboxId, msg: ImportMessage) -> Result<Imported> {
        import::message(self, mailbox, msg)
    }
    fn import_finish_mailbox(&self, mailbox: MailboxId, uidnext: u32) -> Result<()> {
        self.with_conn(|c| import::finish_mailbox(c, mailbox, uidnext))
    }
    fn import_modseq_floor(&self, mailbox: MailboxId, floor: u64) -> Result<()> {
        self.with_conn(|c| import::modseq_floor(c, mailbox, floor))
    }
    fn pop3_uidls(&self, mailbox: MailboxId) -> Result<Vec<(u32, String)>> {
        self.with_conn(|c| import::pop3_uidls(c, mailbox))
    }
    fn set_expire(&self, scope: &str, folder: SpecialUse, days: Option<u32>) -> Result<()> {
        self.with_conn(|c| space::set_expire(c, scope, folder, days))
    }
    fn expire_policies(&self) -> Result<Vec<ExpirePolicy>> {
        self.with_conn(space::expire_policies)
    }
    fn expire(&self, now: i64) -> Result<Vec<Expired>> {
        space::expire(self, now)
    }
    fn space_log(&self, account: AccountId, since: i64) -> Result<Vec<SpaceEvent>> {
        self.with_conn(|c| space::space_log(c, account, since))
    }
    fn space_freed_by_day(&self, account: AccountId, since_day: i64) -> Result<Vec<FreedDay>> {
        self.with_conn(|c| space::space_freed_by_day(c, account, since_day))
    }
    fn space_log_purge(&self, before: i64) -> Result<u64> {
        self.with_conn(|c| space::space_log_purge(c, before))
    }
    fn set_strip_policy(&self, scope: &str, policy: Option<StripPolicy>) -> Result<()> {
        self.with_conn(|c| space::set_strip_policy(c, scope, policy.as_ref()))
    }
    fn strip_policies(&self) -> Result<Vec<(String, StripPolicy)>> {
        self.with_conn(space::strip_policies)
    }
    fn strip_policy_for(&self, address: &str) -> Result<StripPolicy> {
        self.with_conn(|c| space::strip_policy_for(c, address, &self.opts.strip_policy))
    }
    fn maintenance_due(&self, task: &str, now: i64, interval: i64) -> Result<bool> {
        self.with_conn(|c| space::maintenance_due(c, task, now, interval))
    }
    fn imported_keys(&self, account: AccountId, prefix: &str) -> Result<Vec<String>> {
        self.with_conn(|c| import::imported_keys(c, account, prefix))
    }
    fn password_hash(&self, address: &str) -> Result<String> {
        self.with_conn(|c| transfer::password_hash(c, address))
    }
    fn app_password_records(&self, address: &str) -> Result<Vec<crate::transfer::AppPasswordRecord>> {
        self.with_conn(|c| transfer::app_password_records(c, address))
    }
    fn restore_app_password(&self, address: &str, rec: &crate::transfer::AppPasswordRecord) -> Result<()> {
        self.with_conn(|c| transfer::restore_app_password(c, address, rec))
    }
    fn api_token_records(&self) -> Result<Vec<crate::transfer::ApiTokenRecord>> {
        self.with_conn(transfer::api_token_records)
    }
    fn restore_api_token(&self, rec: &crate::transfer::ApiTokenRecord) -> Result<()> {
        self.with_conn(|c| transfer::restore_api_token(c, rec))
    }
    fn save_dates(&self, mailbox: MailboxId) -> Result<Vec<(u32, i64)>> {
        self.with_conn(|c| transfer::save_dates(c, mailbox))
    }
    fn set_save_dates(&self, mailbox: MailboxId, dates: &[(u32, i64)]) -> Result<()> {
        self.with_conn(|c| transfer::set_save_dates(c, mailbox, dates))
    }
    fn maintenance_last(&self, task: &str) -> Result<Option<i64>> {
        self.with_conn(|c| transfer::maintenance_last(c, task))
    }
    fn expunged_uids(&self, mailbox: MailboxId) -> Result<Vec<(u32, u64)>> {
        self.with_conn(|c| transfer::expunged_uids(c, mailbox))
    }
    fn import_expunged(&self, mailbox: MailboxId, uids: &[(u32, u64)]) -> Result<()> {
        self.with_conn(|c| transfer::import_expunged(c, mailbox, uids))
    }
}

/// The web portal's store on PostgreSQL (pg/web.rs).
impl crate::web::WebStore for PgBackend {
    fn session_create(&self, token_hash: [u8; 32], account: AccountId, csrf: &str, expires: i64) -> Result<()> {
        self.with_conn(|c| web::session_create(c, token_hash, account, csrf, expires))
    }
    fn session_get(&self, token_hash: [u8; 32], now: i64) -> Result<Option<crate::web::WebSession>> {
        self.with_conn(|c| web::session_get(c, token_hash, now))
    }
    fn session_delete(&self, token_hash: [u8; 32]) -> Result<()> {
        self.with_conn(|c| web::session_delete(c, token_hash))
    }
    fn sessions_end_account(&self, account: AccountId) -> Result<u64> {
        self.with_conn(|c| web::sessions_end_account(c, account))
    }
    fn sessions_purge(&self, now: i64) -> Result<u64> {
        self.with_conn(|c| web::sessions_purge(c, now))
    }
    fn admin_add(&self, address: &str, domain: Option<&str>) -> Result<()> {
        self.with_conn(|c| web::admin_add(c, address, domain))
    }
    fn admin_remove(&self, address: &str, domain: Option<&str>) -> Result<u64> {
        self.with_conn(|c| web::admin_remove(c, address, domain))
    }
    fn admin_list(&self) -> Result<Vec<crate::web::AdminGrant>> {
        self.with_conn(web::admin_list)
    }
    fn quota_request_open(&self, account: AccountId, size: u64, reason: &str) -> Result<crate::web::QuotaRequest> {
        self.with_conn(|c| web::quota_request_open(c, account, size, reason))
    }
    fn quota_request(&self, id: i64) -> Result<crate::web::QuotaRequest> {
        self.with_conn(|c| web::quota_request(c, id))
    }
    fn quota_requests(&self, all: bool) -> Result<Vec<crate::web::QuotaRequest>> {
        self.with_conn(|c| web::quota_requests(c, all))
    }
    fn quota_requests_of(&self, account: AccountId) -> Result<Vec<crate::web::QuotaRequest>> {
        self.with_conn(|c| web::quota_requests_of(c, account))
    }
    fn quota_request_decide(&self, id: i64, by: &str, decision: crate::web::Decision) -> Result<crate::web::QuotaRequest> {
        self.rules(|t| {
            let (account, grant) = web::quota_request_record(&mut *t.tx, id, by, &decision)?;
            if let Some(size) = grant {
                crate::rules::set_quota_limit(t, account, QuotaLimit::Bytes(size))?;
            }
            web::quota_request(&mut *t.tx, id)
        })
    }
    fn usage_sample_all(&self, day: i64) -> Result<u64> {
        self.with_conn(|c| web::usage_sample_all(c, day, self.opts.default_quota))
    }
    fn usage_samples(&self, account: AccountId, since_day: i64) -> Result<Vec<crate::web::UsageSample>> {
        self.with_conn(|c| web::usage_samples(c, account, since_day))
    }
    fn domain_usage_samples(&self, domain: &str, since_day: i64) -> Result<Vec<crate::web::UsageSample>> {
        self.with_conn(|c| web::domain_usage_samples(c, domain, since_day))
    }
    fn largest_messages(&self, account: AccountId, limit: u32) -> Result<Vec<crate::web::LargeMessage>> {
        self.with_conn(|c| web::largest_messages(c, account, limit))
    }
    fn count_delivery(&self, domain: &str, day: i64, outcome: crate::web::DeliveryOutcome) -> Result<()> {
        self.with_conn(|c| web::count_delivery(c, domain, day, outcome))
    }
    fn domain_counts(&self, domain: &str, since_day: i64) -> Result<Vec<crate::web::DomainDay>> {
        self.with_conn(|c| web::domain_counts(c, domain, since_day))
    }
    fn set_disabled(&self, address: &str, disabled: bool, by: &str) -> Result<()> {
        self.with_conn(|c| web::set_disabled(c, address, disabled, by))
    }
    fn is_disabled(&self, account: AccountId) -> Result<bool> {
        self.with_conn(|c| web::is_disabled(c, account))
    }
    fn disabled_accounts(&self) -> Result<Vec<AccountId>> {
        self.with_conn(web::disabled_accounts)
    }
}

/// Closing pooled connections blocks on the client's own runtime: done where that is
/// allowed (the last [`Store`] may well be dropped inside async code).
impl Drop for PgBackend {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            blocking(move || drop(pool));
        }
    }
}

impl PgBackend {
    /// Runs one of the store's rules (`rules.rs`) in a transaction: commits, then
    /// publishes its changes to this node's feed. Other nodes hear of them through
    /// `NOTIFY letterbox, '<account id>'`, which PostgreSQL delivers at commit.
    pub(crate) fn rules<T: Send>(
        &self,
        mut f: impl FnMut(&mut PgTx) -> Result<T> + Send,
    ) -> Result<T> {
        let (v, changes) = self.with_tx(|tx| {
            let mut t = PgTx::new(tx, &self.opts, &self.blobs, &self.parts);
            let v = f(&mut t)?;
            let changes = std::mem::take(&mut t.changes);
            let accounts: std::collections::BTreeSet<AccountId> =
                changes.iter().map(|c| c.account).collect();
            for a in accounts {
                tx.execute("SELECT pg_notify($1, $2)", &[&listen::CHANNEL, &a.to_string()])?;
            }
            Ok((v, changes))
        })?;
        self.feed.publish(changes);
        Ok(v)
    }

    /// Outside any transaction: hash and parse the body, compress a small one for its
    /// row, write a large one's file (fsynced) or hold and upload its object, so that
    /// the transaction only inserts.
    pub(crate) fn prepare_body(&self, body: &[u8]) -> Result<PgPrepared> {
        self.prepare_parsed(body, None)
    }

    /// [`PgBackend::prepare_body`] with the body's parse, when the caller has it
    /// (`Backend::deliver_to`).
    fn prepare_parsed(&self, body: &[u8], parsed: Option<ParsedMessage>) -> Result<PgPrepared> {
        let id = BlobId::of(body);
        let known = self.with_conn(|c| {
            Ok(c.query_opt(
                "SELECT 1 FROM blobs WHERE hash = $1 AND refcount > 0",
                &[&&id.0[..]],
            )?
            .is_some())
        })?;
        if known {
            return Ok(PgPrepared {
                id,
                encoded: None,
                inline: None,
                uploaded: false,
                split: None,
            });
        }
        let encoded = crate::body::encode_given(body, parsed);
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
            if split.is_none() {
                // An object is held before it is uploaded (`pg/objects.rs`).
                objects::hold(self, objects::KIND_BLOB, &[id])?;
                self.blobs.put(&id, body)?;
            }
            None
        };
        Ok(PgPrepared {
            id,
            encoded: Some(encoded),
            uploaded: inline.is_none() && split.is_none(),
            inline,
            split,
        })
    }

    /// APPEND (RFC 3502 MULTIAPPEND: all or none); without `arm_warning` (a notice the
    /// server writes), the usage grows but no quota warning is armed.
    fn append_many_with(
        &self,
        mailbox: MailboxId,
        msgs: Vec<NewMessage>,
        enforce_quota: bool,
        arm_warning: bool,
    ) -> Result<Vec<Appended>> {
        let mut prepared = Vec::with_capacity(msgs.len());
        for msg in msgs {
            crate::rules::check_keywords(&msg.keywords)?;
            let prep = self.prepare_body(&msg.body)?;
            let kw: std::collections::BTreeSet<String> = msg.keywords.iter().cloned().collect();
            prepared.push(crate::rules::PreparedMessage {
                msg,
                prep,
                keywords: crate::rules::join_keywords(&kw),
            });
        }
        let hashes: Vec<&[u8]> = prepared.iter().map(|p| &p.prep.id.0[..]).collect();
        self.rules(|t| {
            let mb = rows::mailbox_by_id(&mut *t.tx, mailbox)?;
            t.lock_account(mb.account_id)?;
            t.lock_blobs(&hashes)?;
            crate::rules::append_many(t, mailbox, &prepared, enforce_quota, arm_warning)
        })
    }

    /// An account and its stored password hash, by normalised address.
    fn account_with_hash(&self, address: &str) -> Result<Option<(String, Account)>> {
        self.with_conn(|c| {
            Ok(c.query_opt(
                &format!(
                    "SELECT {}, password_hash FROM accounts WHERE address = $1",
                    rows::ACCOUNT_COLS
                ),
                &[&address],
            )?
            .map(|r| (r.get(5), rows::account_from_row(&r, &self.opts))))
        })
    }

    /// A reader of a blob's octets, inline, split (`pg/parts.rs`) or from its file.
    pub(crate) fn blob_reader(&self, id: &BlobId) -> Result<crate::blob::BlobReader> {
        type Row = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
        let (data, skeleton, map): Row = self.with_conn(|c| {
            Ok(c.query_opt(
                "SELECT b.data, s.skeleton, s.parts FROM blobs b
                 LEFT JOIN blob_split s ON s.hash = b.hash WHERE b.hash = $1",
                &[&&id.0[..]],
            )?
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .unwrap_or_default())
        })?;
        self.reader_of(id, data.as_deref(), skeleton.as_deref().zip(map.as_deref()))
    }

    /// A reader of a body from what its rows hold: inline octets, a split body's
    /// skeleton and map, or neither (its file or object).
    pub(crate) fn reader_of(
        &self,
        id: &BlobId,
        data: Option<&[u8]>,
        split: Option<(&[u8], &[u8])>,
    ) -> Result<crate::blob::BlobReader> {
        match (data, split) {
            (Some(d), _) => Ok(crate::blob::BlobReader::inline(d)?),
            (None, Some((skeleton, map))) => self.joined_reader(skeleton, map),
            (None, None) => Ok(self.blobs.open_reader(id)?),
        }
    }
}
