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
//! - The schema is versioned: `pg/migrations/NNN_*.sql`, applied in order by
//!   [`migrate`] in one transaction under an advisory lock (two nodes starting together
//!   do not race), each recorded in `schema_version`. 001-099: the core (accounts,
//!   mailboxes, messages, blobs, Sieve); 100 and up: the auxiliary tables.

use crate::blob::BlobDir;
use crate::*;
use r2d2_postgres::postgres::{self, NoTls};
use r2d2_postgres::{r2d2, PostgresConnectionManager};
use std::path::Path;
use std::sync::Arc;

#[cfg(test)]
pub(crate) mod testing;
// The auxiliary methods' queries (issue 17, h/pgaux).
mod auth;
mod dkim;
mod import;
mod queue;
mod space;
mod web;
#[cfg(test)]
mod tests_aux;

/// A pooled connection.
pub(crate) type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

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
    // Auxiliary tables (pg/{queue,web,auth,dkim,space,import}.rs).
    (100, "100_queue", include_str!("migrations/100_queue.sql")),
    (101, "101_web", include_str!("migrations/101_web.sql")),
    (102, "102_auth", include_str!("migrations/102_auth.sql")),
    (103, "103_dkim", include_str!("migrations/103_dkim.sql")),
    (104, "104_space", include_str!("migrations/104_space.sql")),
    (105, "105_import", include_str!("migrations/105_import.sql")),
];

/// The schema version this build applies (the highest migration).
pub fn schema_version() -> i32 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
}

/// A PostgreSQL error as a store error: a connection that failed or went away, a server
/// that is shutting down or starting, too many connections: [`Error::Unavailable`]
/// (temporary). Anything else is a plain failure.
pub(crate) fn pg_err(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let temporary = code.starts_with("08") // connection exception
            || code.starts_with("57P") // admin/crash shutdown, cannot connect now
            || code == "53300" // too many connections
            || code == "40001" // serialization failure
            || code == "40P01"; // deadlock detected
        if temporary {
            return Error::Unavailable(format!("database: {}", db.message()));
        }
        if code == "23505" {
            return Error::Exists(db.detail().unwrap_or(db.message()).to_string());
        }
        return Error::Io(std::io::Error::other(format!("database error: {}", db.message())));
    }
    // No server error: the connection itself (closed, refused, I/O).
    Error::Unavailable(format!("database: {e}"))
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        pg_err(e)
    }
}

/// The error of a call not implemented on PostgreSQL yet.
fn not_yet(what: &str) -> Error {
    Error::Refused(format!("{what} is not yet available on PostgreSQL"))
}

/// Applies the migrations this database lacks, in order, in one transaction under an
/// advisory lock; returns the schema version.
pub fn migrate(client: &mut postgres::Client) -> Result<i32> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
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

/// Connects once, outside any pool (`letterbox migrate`).
pub fn connect(url: &str) -> Result<postgres::Client> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| Error::Invalid(format!("[store] url: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.connect(NoTls).map_err(pg_err)
}

/// Applies the schema to the database at `url`; returns its version.
pub fn migrate_url(url: &str) -> Result<i32> {
    migrate(&mut connect(url)?)
}

pub struct PgBackend {
    pool: r2d2::Pool<PostgresConnectionManager<NoTls>>,
    pub(crate) opts: StoreOptions,
    pub(crate) feed: Arc<ChangeFeed>,
    pub(crate) blobs: BlobDir,
    pub(crate) auth_cache: password::VerifiedCache,
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
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| Error::Invalid(format!("[store] url: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        migrate(&mut config.connect(NoTls).map_err(pg_err)?)?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            // A connection found broken is dropped on checkout rather than handed out.
            .test_on_check_out(false)
            .build_unchecked(PostgresConnectionManager::new(config, NoTls));
        let blobs = match &opts.objects {
            None => BlobDir::open(data_dir.join("blobs"))?,
            Some(o) => BlobDir::open_remote(
                data_dir.join("blobs"),
                Arc::new(crate::s3::S3Objects::open(o)?),
            ),
        };
        Ok(PgBackend {
            pool,
            auth_cache: password::VerifiedCache::new(opts.auth_cache_ttl),
            opts,
            feed: Arc::new(ChangeFeed::default()),
            blobs,
        })
    }

    fn conn(&self) -> Result<Conn> {
        self.pool
            .get()
            .map_err(|e| Error::Unavailable(format!("database: {e}")))
    }

    /// Runs `f` on a pooled connection (reads, single statements).
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T>,
    ) -> Result<T> {
        let mut c = self.conn()?;
        f(&mut c)
    }

    /// Runs `f` in one transaction, committed when it returns `Ok` (rolled back
    /// otherwise).
    pub(crate) fn with_tx<T>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction) -> Result<T>,
    ) -> Result<T> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        let v = f(&mut tx)?;
        tx.commit()?;
        Ok(v)
    }
}


impl Backend for PgBackend {
    fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    fn web(&self) -> &dyn crate::web::WebStore {
        self
    }

    // --- core (pg/*.rs of the core: accounts, mailboxes, messages, blobs, Sieve) ---
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
    fn remove_domain(&self, _name: &str) -> Result<()> {
        Err(not_yet("remove_domain"))
    }
    fn list_domains(&self) -> Result<Vec<String>> {
        self.with_conn(|c| {
            Ok(c.query("SELECT name FROM domains ORDER BY name", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }
    fn add_account(&self, _address: &str, _password_hash: &str, _quota: QuotaLimit) -> Result<Account> {
        Err(not_yet("add_account"))
    }
    fn remove_account(&self, _address: &str, _force: bool) -> Result<()> {
        Err(not_yet("remove_account"))
    }
    fn list_accounts(&self) -> Result<Vec<Account>> {
        Err(not_yet("list_accounts"))
    }
    fn account(&self, _address: &str) -> Result<Account> {
        Err(not_yet("account"))
    }
    fn account_by_id(&self, _id: AccountId) -> Result<Account> {
        Err(not_yet("account_by_id"))
    }
    fn set_password_hash(&self, _address: &str, _password_hash: &str) -> Result<()> {
        Err(not_yet("set_password_hash"))
    }
    fn set_retention(&self, _address: &str, _retention: Option<Retention>) -> Result<()> {
        Err(not_yet("set_retention"))
    }
    fn authenticate(&self, _address: &str, _password: &str) -> Result<Option<Account>> {
        Err(not_yet("authenticate"))
    }
    fn authenticate_cached(&self, _address: &str, _password: &str) -> Result<Option<Account>> {
        Err(not_yet("authenticate_cached"))
    }
    fn add_alias(&self, _address: &str, _targets: &[String]) -> Result<()> {
        Err(not_yet("add_alias"))
    }
    fn remove_alias(&self, _address: &str, _targets: &[String]) -> Result<()> {
        Err(not_yet("remove_alias"))
    }
    fn list_aliases(&self, _address: Option<&str>) -> Result<Vec<(String, Vec<String>)>> {
        Err(not_yet("list_aliases"))
    }
    fn resolve(&self, _address: &str) -> Result<Resolved> {
        Err(not_yet("resolve"))
    }
    fn take_pending_warning(&self, _account: AccountId) -> Result<Option<u8>> {
        Err(not_yet("take_pending_warning"))
    }
    fn pending_warnings(&self) -> Result<Vec<AccountId>> {
        Err(not_yet("pending_warnings"))
    }
    fn set_quota(&self, _address: &str, _limit: QuotaLimit) -> Result<Account> {
        Err(not_yet("set_quota"))
    }
    fn recalc_quota(&self, _address: Option<&str>) -> Result<Vec<Recalc>> {
        Err(not_yet("recalc_quota"))
    }
    fn list_mailboxes(&self, _account: AccountId) -> Result<Vec<Mailbox>> {
        Err(not_yet("list_mailboxes"))
    }
    fn mailbox(&self, _account: AccountId, _name: &str) -> Result<Mailbox> {
        Err(not_yet("mailbox"))
    }
    fn mailbox_by_id(&self, _id: MailboxId) -> Result<Mailbox> {
        Err(not_yet("mailbox_by_id"))
    }
    fn mailbox_counts(&self, _mailbox: MailboxId) -> Result<MailboxCounts> {
        Err(not_yet("mailbox_counts"))
    }
    fn create_mailbox(&self, _account: AccountId, _name: &str, _special_use: Option<SpecialUse>) -> Result<Mailbox> {
        Err(not_yet("create_mailbox"))
    }
    fn delete_mailbox(&self, _account: AccountId, _name: &str) -> Result<()> {
        Err(not_yet("delete_mailbox"))
    }
    fn rename_mailbox(&self, _account: AccountId, _from: &str, _to: &str) -> Result<()> {
        Err(not_yet("rename_mailbox"))
    }
    fn subscribe(&self, _account: AccountId, _name: &str) -> Result<()> {
        Err(not_yet("subscribe"))
    }
    fn unsubscribe(&self, _account: AccountId, _name: &str) -> Result<()> {
        Err(not_yet("unsubscribe"))
    }
    fn subscriptions(&self, _account: AccountId) -> Result<Vec<String>> {
        Err(not_yet("subscriptions"))
    }
    fn append(&self, _mailbox: MailboxId, _msg: NewMessage, _enforce_quota: bool) -> Result<Appended> {
        Err(not_yet("append"))
    }
    fn append_many(&self, _mailbox: MailboxId, _msgs: Vec<NewMessage>, _enforce_quota: bool) -> Result<Vec<Appended>> {
        Err(not_yet("append_many"))
    }
    fn deliver(&self, _body: Arc<Vec<u8>>, _internal_date: i64, _rcpts: Vec<(AccountId, Vec<u8>)>, _enforce_quota: bool) -> Result<Vec<Result<Appended>>> {
        Err(not_yet("deliver"))
    }
    fn deliver_to(&self, _body: Arc<Vec<u8>>, _internal_date: i64, _items: Vec<Delivery>, _enforce_quota: bool) -> Result<Vec<Result<Appended>>> {
        Err(not_yet("deliver_to"))
    }
    fn list_messages(&self, _mailbox: MailboxId, _claim_recent: bool) -> Result<Vec<MessageMeta>> {
        Err(not_yet("list_messages"))
    }
    fn message(&self, _mailbox: MailboxId, _uid: u32) -> Result<MessageMeta> {
        Err(not_yet("message"))
    }
    fn messages(&self, _mailbox: MailboxId, _uids: &[u32]) -> Result<Vec<MessageMeta>> {
        Err(not_yet("messages"))
    }
    fn parsed(&self, _mailbox: MailboxId, _uid: u32) -> Result<ParsedMessage> {
        Err(not_yet("parsed"))
    }
    fn parsed_many(&self, _mailbox: MailboxId, _uids: &[u32], _with_search: bool) -> Result<Vec<(u32, ParsedMessage)>> {
        Err(not_yet("parsed_many"))
    }
    fn envelopes_many(&self, _mailbox: MailboxId, _uids: &[u32]) -> Result<Vec<(u32, letterbox_message::Envelope)>> {
        Err(not_yet("envelopes_many"))
    }
    fn headers_many(&self, _mailbox: MailboxId, _uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        Err(not_yet("headers_many"))
    }
    fn text_candidates(&self, _mailbox: MailboxId, _needles_lower: &[&str]) -> Result<Option<Vec<u32>>> {
        Err(not_yet("text_candidates"))
    }
    fn open_message(&self, _mailbox: MailboxId, _uid: u32) -> Result<MessageReader> {
        Err(not_yet("open_message"))
    }
    fn store_flags(&self, _mailbox: MailboxId, _uids: &[u32], _op: FlagOp, _flags: Flags, _keywords: &[String], _unchanged_since: Option<u64>) -> Result<StoreResult> {
        Err(not_yet("store_flags"))
    }
    fn expunge(&self, _mailbox: MailboxId, _uids: &[u32]) -> Result<Vec<u32>> {
        Err(not_yet("expunge"))
    }
    fn copy(&self, _from: MailboxId, _uids: &[u32], _to: MailboxId) -> Result<Vec<(u32, u32)>> {
        Err(not_yet("copy"))
    }
    fn move_messages(&self, _from: MailboxId, _uids: &[u32], _to: MailboxId) -> Result<Vec<(u32, u32)>> {
        Err(not_yet("move_messages"))
    }
    fn changes_since(&self, _mailbox: MailboxId, _modseq: u64) -> Result<ChangesSince> {
        Err(not_yet("changes_since"))
    }
    fn mark_pop3_retrieved(&self, _mailbox: MailboxId, _uids: &[u32], _now: i64) -> Result<()> {
        Err(not_yet("mark_pop3_retrieved"))
    }
    fn sweep_retention(&self, _now: i64) -> Result<u64> {
        Err(not_yet("sweep_retention"))
    }
    fn gc(&self) -> Result<GcReport> {
        Err(not_yet("gc"))
    }
    fn check(&self, _deep: bool) -> Result<Vec<String>> {
        Err(not_yet("check"))
    }
    fn pop3_sizes(&self, _mailbox: MailboxId) -> Result<Vec<line_ends::Pop3Size>> {
        Err(not_yet("pop3_sizes"))
    }
    fn claim_recent(&self, _mailbox: MailboxId, _take: bool) -> Result<(u32, u32)> {
        Err(not_yet("claim_recent"))
    }
    fn stats(&self) -> Result<StoreStats> {
        self.with_conn(auth::stats)
    }
    fn sieve_list(&self, _account: AccountId) -> Result<Vec<SieveScript>> {
        Err(not_yet("sieve_list"))
    }
    fn sieve_get(&self, _account: AccountId, _name: &str) -> Result<Vec<u8>> {
        Err(not_yet("sieve_get"))
    }
    fn sieve_put(&self, _account: AccountId, _name: &str, _script: Vec<u8>, _max_scripts: Option<u32>) -> Result<()> {
        Err(not_yet("sieve_put"))
    }
    fn sieve_activate(&self, _account: AccountId, _name: Option<&str>) -> Result<()> {
        Err(not_yet("sieve_activate"))
    }
    fn sieve_delete(&self, _account: AccountId, _name: &str) -> Result<()> {
        Err(not_yet("sieve_delete"))
    }
    fn sieve_rename(&self, _account: AccountId, _from: &str, _to: &str) -> Result<()> {
        Err(not_yet("sieve_rename"))
    }
    fn sieve_active(&self, _account: AccountId) -> Result<Option<(String, Vec<u8>)>> {
        Err(not_yet("sieve_active"))
    }
    fn sieve_seen(&self, _account: AccountId, _id: &str, _expires: i64, _now: i64) -> Result<bool> {
        Err(not_yet("sieve_seen"))
    }
    fn backup(&self, _dest: &std::path::Path) -> Result<BackupReport> {
        Err(not_yet("backup"))
    }
    fn replace_message(&self, _mailbox: MailboxId, _uid: u32, _expected_size: u64, _body: Vec<u8>) -> Result<Replaced> {
        Err(not_yet("replace_message"))
    }
    fn replace_message_logged(&self, _mailbox: MailboxId, _uid: u32, _expected_size: u64, _body: Vec<u8>, _detail: String) -> Result<Replaced> {
        Err(not_yet("replace_message_logged"))
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
        self.with_conn(|c| queue::due(c, now, limit))
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
    fn import_mailbox(&self, _account: AccountId, _name: &str, _uidvalidity: u32) -> Result<ImportMailbox> {
        Err(not_yet("import_mailbox"))
    }
    fn import_message(&self, _mailbox: MailboxId, _msg: ImportMessage) -> Result<Imported> {
        Err(not_yet("import_message"))
    }
    fn import_finish_mailbox(&self, _mailbox: MailboxId, _uidnext: u32) -> Result<()> {
        Err(not_yet("import_finish_mailbox"))
    }
    fn import_modseq_floor(&self, _mailbox: MailboxId, _floor: u64) -> Result<()> {
        Err(not_yet("import_modseq_floor"))
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
    fn expire(&self, _now: i64) -> Result<Vec<Expired>> {
        Err(not_yet("expire"))
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
    fn quota_request_decide(&self, _id: i64, _by: &str, _decision: crate::web::Decision) -> Result<crate::web::QuotaRequest> {
        Err(not_yet("web::quota_request_decide"))
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
