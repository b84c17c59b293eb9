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
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "001_core",
    include_str!("migrations/001_core.sql"),
)];

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
    web: web_store::PgWeb,
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
            web: web_store::PgWeb,
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

    fn web(&self) -> &dyn web::WebStore {
        &self.web
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
        Err(not_yet("stats"))
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
    // expiry and attachment policies, space log, maintenance, import) ---
    fn block(&self, _key: &str, _until: i64, _reason: &str) -> Result<()> {
        Err(not_yet("block"))
    }
    fn blocks(&self, _now: i64) -> Result<Vec<(String, i64, String)>> {
        Err(not_yet("blocks"))
    }
    fn unblock(&self, _key: &str) -> Result<bool> {
        Err(not_yet("unblock"))
    }
    fn add_app_password(&self, _address: &str, _name: &str, _protocols: Protocols) -> Result<String> {
        Err(not_yet("add_app_password"))
    }
    fn list_app_passwords(&self, _address: &str) -> Result<Vec<AppPassword>> {
        Err(not_yet("list_app_passwords"))
    }
    fn remove_app_password(&self, _address: &str, _name: &str) -> Result<()> {
        Err(not_yet("remove_app_password"))
    }
    fn authenticate_app_password(&self, _address: &str, _password: &str, _protocol: Protocol, _cached_only: bool) -> Result<Option<(Account, String)>> {
        Err(not_yet("authenticate_app_password"))
    }
    fn record_login(&self, _account: AccountId, _login: LoginRecord, _keep: u32) -> Result<()> {
        Err(not_yet("record_login"))
    }
    fn recent_logins(&self, _address: &str) -> Result<Vec<LoginRecord>> {
        Err(not_yet("recent_logins"))
    }
    fn add_api_token(&self, _name: &str) -> Result<String> {
        Err(not_yet("add_api_token"))
    }
    fn list_api_tokens(&self) -> Result<Vec<ApiToken>> {
        Err(not_yet("list_api_tokens"))
    }
    fn remove_api_token(&self, _name: &str) -> Result<()> {
        Err(not_yet("remove_api_token"))
    }
    fn check_api_token(&self, _token: &str) -> Result<Option<String>> {
        Err(not_yet("check_api_token"))
    }
    fn add_dkim_keys(&self, _keys: Vec<DkimKey>) -> Result<()> {
        Err(not_yet("add_dkim_keys"))
    }
    fn dkim_keys(&self, _domain: &str) -> Result<Vec<DkimKey>> {
        Err(not_yet("dkim_keys"))
    }
    fn active_dkim_keys(&self) -> Result<Vec<DkimKey>> {
        Err(not_yet("active_dkim_keys"))
    }
    fn activate_dkim_keys(&self, _domain: &str, _selectors: &[String]) -> Result<Vec<String>> {
        Err(not_yet("activate_dkim_keys"))
    }
    fn dkim_version(&self) -> Result<i64> {
        Err(not_yet("dkim_version"))
    }
    fn queue_insert(&self, _msg: queue::NewQueued) -> Result<queue::QueueId> {
        Err(not_yet("queue_insert"))
    }
    fn queue_due(&self, _now: i64, _limit: usize) -> Result<Vec<queue::QueueId>> {
        Err(not_yet("queue_due"))
    }
    fn queue_next_due(&self) -> Result<Option<i64>> {
        Err(not_yet("queue_next_due"))
    }
    fn queue_get(&self, _id: queue::QueueId) -> Result<queue::QueuedMessage> {
        Err(not_yet("queue_get"))
    }
    fn queue_body(&self, _id: queue::QueueId) -> Result<Vec<u8>> {
        Err(not_yet("queue_body"))
    }
    fn queue_list(&self, _after: queue::QueueId, _limit: usize) -> Result<Vec<queue::QueuedMessage>> {
        Err(not_yet("queue_list"))
    }
    fn queue_update(&self, _id: queue::QueueId, _u: queue::QueueUpdate) -> Result<bool> {
        Err(not_yet("queue_update"))
    }
    fn queue_remove(&self, _id: queue::QueueId) -> Result<()> {
        Err(not_yet("queue_remove"))
    }
    fn queue_set_held(&self, _id: queue::QueueId, _held: bool, _now: i64) -> Result<()> {
        Err(not_yet("queue_set_held"))
    }
    fn queue_retry(&self, _id: Option<queue::QueueId>, _now: i64) -> Result<u64> {
        Err(not_yet("queue_retry"))
    }
    fn outbound_use(&self, _account: AccountId, _now: i64) -> Result<queue::OutboundUse> {
        Err(not_yet("outbound_use"))
    }
    fn set_outbound_hold(&self, _account: AccountId, _hold: bool) -> Result<()> {
        Err(not_yet("set_outbound_hold"))
    }
    fn outbound_held(&self, _account: AccountId) -> Result<bool> {
        Err(not_yet("outbound_held"))
    }
    fn import_begin(&self, _account: AccountId, _source: &str, _merge: bool) -> Result<ImportStart> {
        Err(not_yet("import_begin"))
    }
    fn import_finish(&self, _account: AccountId, _source: &str) -> Result<()> {
        Err(not_yet("import_finish"))
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
    fn pop3_uidls(&self, _mailbox: MailboxId) -> Result<Vec<(u32, String)>> {
        Err(not_yet("pop3_uidls"))
    }
    fn set_expire(&self, _scope: &str, _folder: SpecialUse, _days: Option<u32>) -> Result<()> {
        Err(not_yet("set_expire"))
    }
    fn expire_policies(&self) -> Result<Vec<ExpirePolicy>> {
        Err(not_yet("expire_policies"))
    }
    fn expire(&self, _now: i64) -> Result<Vec<Expired>> {
        Err(not_yet("expire"))
    }
    fn space_log(&self, _account: AccountId, _since: i64) -> Result<Vec<SpaceEvent>> {
        Err(not_yet("space_log"))
    }
    fn space_freed_by_day(&self, _account: AccountId, _since_day: i64) -> Result<Vec<FreedDay>> {
        Err(not_yet("space_freed_by_day"))
    }
    fn space_log_purge(&self, _before: i64) -> Result<u64> {
        Err(not_yet("space_log_purge"))
    }
    fn set_strip_policy(&self, _scope: &str, _policy: Option<StripPolicy>) -> Result<()> {
        Err(not_yet("set_strip_policy"))
    }
    fn strip_policies(&self) -> Result<Vec<(String, StripPolicy)>> {
        Err(not_yet("strip_policies"))
    }
    fn strip_policy_for(&self, _address: &str) -> Result<StripPolicy> {
        Err(not_yet("strip_policy_for"))
    }
    fn maintenance_due(&self, _task: &str, _now: i64, _interval: i64) -> Result<bool> {
        Err(not_yet("maintenance_due"))
    }
    fn imported_keys(&self, _account: AccountId, _prefix: &str) -> Result<Vec<String>> {
        Err(not_yet("imported_keys"))
    }
}

/// The web portal's store on PostgreSQL (its tables come with the auxiliary migrations).
mod web_store {
    use super::not_yet;
    use crate::web::*;
    use crate::*;

    pub(super) struct PgWeb;

    impl WebStore for PgWeb {
        fn session_create(&self, _token_hash: [u8; 32], _account: AccountId, _csrf: &str, _expires: i64) -> Result<()> {
            Err(not_yet("web::session_create"))
        }
        fn session_get(&self, _token_hash: [u8; 32], _now: i64) -> Result<Option<WebSession>> {
            Err(not_yet("web::session_get"))
        }
        fn session_delete(&self, _token_hash: [u8; 32]) -> Result<()> {
            Err(not_yet("web::session_delete"))
        }
        fn sessions_end_account(&self, _account: AccountId) -> Result<u64> {
            Err(not_yet("web::sessions_end_account"))
        }
        fn sessions_purge(&self, _now: i64) -> Result<u64> {
            Err(not_yet("web::sessions_purge"))
        }
        fn admin_add(&self, _address: &str, _domain: Option<&str>) -> Result<()> {
            Err(not_yet("web::admin_add"))
        }
        fn admin_remove(&self, _address: &str, _domain: Option<&str>) -> Result<u64> {
            Err(not_yet("web::admin_remove"))
        }
        fn admin_list(&self) -> Result<Vec<AdminGrant>> {
            Err(not_yet("web::admin_list"))
        }
        fn quota_request_open(&self, _account: AccountId, _size: u64, _reason: &str) -> Result<QuotaRequest> {
            Err(not_yet("web::quota_request_open"))
        }
        fn quota_request(&self, _id: i64) -> Result<QuotaRequest> {
            Err(not_yet("web::quota_request"))
        }
        fn quota_requests(&self, _all: bool) -> Result<Vec<QuotaRequest>> {
            Err(not_yet("web::quota_requests"))
        }
        fn quota_requests_of(&self, _account: AccountId) -> Result<Vec<QuotaRequest>> {
            Err(not_yet("web::quota_requests_of"))
        }
        fn quota_request_decide(&self, _id: i64, _by: &str, _decision: Decision) -> Result<QuotaRequest> {
            Err(not_yet("web::quota_request_decide"))
        }
        fn usage_sample_all(&self, _day: i64) -> Result<u64> {
            Err(not_yet("web::usage_sample_all"))
        }
        fn usage_samples(&self, _account: AccountId, _since_day: i64) -> Result<Vec<UsageSample>> {
            Err(not_yet("web::usage_samples"))
        }
        fn domain_usage_samples(&self, _domain: &str, _since_day: i64) -> Result<Vec<UsageSample>> {
            Err(not_yet("web::domain_usage_samples"))
        }
        fn largest_messages(&self, _account: AccountId, _limit: u32) -> Result<Vec<LargeMessage>> {
            Err(not_yet("web::largest_messages"))
        }
        fn count_delivery(&self, _domain: &str, _day: i64, _outcome: DeliveryOutcome) -> Result<()> {
            Err(not_yet("web::count_delivery"))
        }
        fn domain_counts(&self, _domain: &str, _since_day: i64) -> Result<Vec<DomainDay>> {
            Err(not_yet("web::domain_counts"))
        }
        fn set_disabled(&self, _address: &str, _disabled: bool, _by: &str) -> Result<()> {
            Err(not_yet("web::set_disabled"))
        }
        fn is_disabled(&self, _account: AccountId) -> Result<bool> {
            Err(not_yet("web::is_disabled"))
        }
        fn disabled_accounts(&self) -> Result<Vec<AccountId>> {
            Err(not_yet("web::disabled_accounts"))
        }
    }
}
