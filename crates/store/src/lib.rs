//! The Letterbox mail store: domains, accounts, aliases, mailboxes, messages, flags,
//! quota, blobs and the change feed.
//!
//! Protocol crates see only [`Store`] and the types here: no SQL, no files, no locks.
//! [`Backend`] is the seam for other backends (PostgreSQL is planned): the embedded one,
//! [`sqlite::SqliteBackend`], keeps metadata in SQLite (WAL, `synchronous=FULL`) in
//! `data_dir/store.db` and message bodies zstd-compressed and content-addressed: up to
//! `[store] inline_max` octets in the database itself (table `blob_data`), larger ones as
//! files in `data_dir/blobs` ([`blob`]).
//!
//! # Invariants
//! - A call that stores or moves mail (append, deliver, copy, move, mailbox and account
//!   changes) returns `Ok` only once it is durable: blob file and directory fsynced (a
//!   large body), then the transaction fsynced (which holds a small body itself). Flag
//!   changes, `\Recent` marks, POP3 retrieval times and expunges are committed without
//!   fsync (they survive kill -9, and at worst an expunged message returns after a power
//!   failure), as Dovecot treats them. Concurrent writes are batched into one transaction
//!   (group commit), each in its own savepoint.
//! - `accounts.quota_used` equals the sum of `messages.size` over the account's mailboxes,
//!   maintained in the same transaction as every insert and delete.
//! - UIDs in a mailbox are strictly increasing and never reused while its UIDVALIDITY
//!   holds; every change takes a new MODSEQ from the mailbox's HIGHESTMODSEQ (RFC 7162),
//!   and each expunged UID is kept with its MODSEQ (QRESYNC's VANISHED).
//! - A blob's reference count equals the messages pointing at it; a referenced blob has
//!   its octets in `blob_data`, in its file, or split into a skeleton and shared parts
//!   (`blob_split`, [`parts`]); blobs at zero are removed by [`Backend::gc`].
//! - A part's reference count equals the records naming it in the `blob_split` maps,
//!   changed in the transaction that adds or removes the map; a part with references
//!   has its file; parts at zero are removed by [`Backend::gc`].
//!
//! Blocking: every [`Backend`] method blocks. Async code calls them through
//! [`Store::run`], which moves the call onto tokio's blocking pool.

pub mod apitokens;
pub mod apppass;
pub mod blob;
mod body;
pub mod disk;
pub mod dkim;
mod feed;
pub mod idn;
mod grams;
mod heads;
mod bodystructures;
mod searchables;
mod envelopes;
mod sortkeys;
pub mod line_ends;
pub mod logins;
pub mod mailpack;
pub mod password;
pub mod queue;
pub mod sieve;
pub mod pg;
pub mod sqlite;
pub mod strip;
pub mod web;
pub mod parts;
pub mod s3;
mod rules;
pub mod transfer;
mod open;
pub use open::{open_mailbox, warm_up};

pub use apitokens::ApiToken;
pub use apppass::{AppPassword, Protocol, Protocols};
pub use blob::BlobId;
pub use dkim::{DkimAlgorithm, DkimKey, DkimState};
pub use feed::{Change, ChangeFeed, ChangeKind};
pub use letterbox_message::ParsedMessage;
pub use logins::LoginRecord;
pub use sqlite::backup::{restore, BackupReport};
pub use sqlite::import::{ImportMailbox, ImportMessage, ImportStart, Imported};

use std::io::Read;
use std::sync::Arc;

pub type AccountId = i64;
pub type MailboxId = i64;

/// Store errors. `Display` gives a line fit for an operator or a protocol reply.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("mailbox is full: quota exceeded")]
    OverQuota,
    #[error("{0}")]
    Refused(String),
    #[error("storage I/O error: {0}")]
    Io(std::io::Error),
    /// A storage service (the object store of `[blobs] url`) is down or too slow: a
    /// temporary error (4xx, `NO [UNAVAILABLE]`, `-ERR [SYS/TEMP]`); the operation works
    /// again once it is back, without a restart.
    #[error("storage temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// The disk is full (or the disk reserve is released): a temporary refusal of new
    /// mail (`disk.rs`).
    #[error("not enough disk space")]
    DiskFull,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Octets per message packed in one buffer (issue 18: a `Vec` per record of a
/// 10,000-message mailbox cost 5 M instructions of allocation and copying): by ascending
/// UID, each message's octets at its range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed {
    octets: Vec<u8>,
    rows: Vec<(u32, u32, u32)>,
}

impl Packed {
    /// Room for `n` messages of about `each` octets.
    pub fn with_capacity(n: usize, each: usize) -> Packed {
        Packed {
            octets: Vec::with_capacity(n * each),
            rows: Vec::with_capacity(n),
        }
    }

    /// Adds the octets of `uid` (after those added before).
    pub fn push(&mut self, uid: u32, octets: &[u8]) {
        let start = self.octets.len() as u32;
        self.octets.extend_from_slice(octets);
        self.rows.push((uid, start, self.octets.len() as u32));
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each message's UID and octets, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        self.rows
            .iter()
            .map(|&(u, a, b)| (u, &self.octets[a as usize..b as usize]))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        match e.get_ref().and_then(|i| i.downcast_ref::<s3::Unavailable>()) {
            Some(u) => Error::Unavailable(u.0.clone()),
            None => Error::Io(e),
        }
    }
}

/// An account's quota limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaLimit {
    /// Follows the configured `[quota] default`.
    Default,
    Bytes(u64),
    Unlimited,
}

/// POP3 retention, per account (`None` in [`Account`] follows `[pop3] retention`).
pub use letterbox_config::Retention;

/// Settings the store takes from the configuration.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `[quota] default`, in octets.
    pub default_quota: u64,
    /// `[quota] warn_at`, ascending percentages.
    pub warn_at: Vec<u8>,
    /// `[pop3] retention`.
    pub default_retention: Retention,
    /// `[store] inline_max`: message bodies up to this many octets are kept, compressed,
    /// in the database itself rather than as blob files, so that the commit's one fsync
    /// covers them (a file costs its own fsync and its directory's).
    pub inline_max: u64,
    /// `[auth] cache_ttl`: seconds a successful password check is remembered
    /// ([`password::VerifiedCache`]); 0: never.
    pub auth_cache_ttl: u64,
    /// `[store] disk_reserve`: octets kept free on the data directory's filesystem for
    /// deletions and flag changes when the disk fills (`disk.rs`); 0: no reserve.
    pub disk_reserve: u64,
    /// `[expire] trash` and `junk`: days after which messages saved into the `\Trash`
    /// and `\Junk` folders are expunged, unless a domain or account says otherwise
    /// (`0`: never).
    pub expire_trash_days: u32,
    pub expire_junk_days: u32,
    /// `[attachments] policy_*`: the automatic attachment removal of every account
    /// without a domain or account policy of its own (`older_than_days` 0: none).
    pub strip_policy: StripPolicy,
    /// `[store] part_dedup_min`: non-text MIME parts with at least this many octets of
    /// body are stored once per store however many messages carry them (`parts.rs`);
    /// 0: off.
    pub part_dedup_min: u64,
    /// `[blobs]`: blobs in an S3-compatible object store (`s3.rs`); `None`: files.
    pub objects: Option<s3::ObjectsOptions>,
    /// `[store] wal_checkpoint_idle`: after this long without writes the embedded
    /// store's WAL is checkpointed and cut to zero octets (`wal.rs`); zero: never (SQLite's
    /// own checkpoints only).
    pub wal_checkpoint_idle: std::time::Duration,
    /// `[store] wal_size_limit`: SQLite's `journal_size_limit`, in octets.
    pub wal_size_limit: u64,
    /// `[store] reader_cache_bytes`: the page cache of each pooled reader connection of
    /// the embedded store (SQLite's `cache_size`), in octets.
    pub reader_cache_bytes: u64,
    /// `[queue] lease`, in seconds: how long a node that took a due queue entry holds it
    /// before another node may try it (shared queue on PostgreSQL: `pg/queue.rs`).
    pub queue_lease: u64,
    /// `[store] conflict_retries`: runs again of a PostgreSQL transaction that lost a
    /// race with another node's (40001, 40P01; `pg/mod.rs`).
    pub conflict_retries: u32,
}

/// The default of `[store] inline_max`: 64 KiB. SQLite's own measurements (sqlite.org,
/// "Internal Versus External BLOBs") find blobs below about 100 KB faster to read from the
/// database than from files with 4 KiB pages, and most mail is smaller than this; the
/// rest (attachments) stays in files, which keeps the database and its WAL small.
pub const DEFAULT_INLINE_MAX: u64 = 64 * 1024;

/// The default of `[auth] cache_ttl`: five minutes, enough for clients that reconnect
/// every minute or so, short enough that a verified password's tag does not linger.
pub const DEFAULT_AUTH_CACHE_TTL: u64 = 300;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            default_quota: 200 << 20,
            warn_at: vec![80, 95],
            default_retention: Retention::Keep,
            inline_max: DEFAULT_INLINE_MAX,
            auth_cache_ttl: DEFAULT_AUTH_CACHE_TTL,
            disk_reserve: 0,
            expire_trash_days: 30,
            expire_junk_days: 30,
            strip_policy: StripPolicy::default(),
            part_dedup_min: parts::DEFAULT_PART_DEDUP_MIN,
            objects: None,
            wal_checkpoint_idle: sqlite::wal::DEFAULT_WAL_CHECKPOINT_IDLE,
            wal_size_limit: sqlite::wal::DEFAULT_WAL_SIZE_LIMIT,
            reader_cache_bytes: sqlite::DEFAULT_READER_CACHE_BYTES,
            queue_lease: pg::queue::QUEUE_LEASE as u64,
            conflict_retries: pg::DEFAULT_CONFLICT_RETRIES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub address: String,
    pub quota_limit: QuotaLimit,
    /// The limit in force, with the default resolved; `None` for unlimited.
    pub effective_limit: Option<u64>,
    pub quota_used: u64,
    /// `None`: the configured default.
    pub pop3_retention: Option<Retention>,
    /// The retention in force.
    pub effective_retention: Retention,
}

impl Account {
    /// Usage as a percentage of the limit (0 when unlimited).
    pub fn percent_used(&self) -> u64 {
        match self.effective_limit {
            Some(0) => 100,
            Some(l) => ((self.quota_used as u128 * 100) / l as u128) as u64,
            None => 0,
        }
    }
}

/// RFC 6154 special-use attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    pub fn as_str(&self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }
    pub fn parse(s: &str) -> Option<SpecialUse> {
        Some(match s.to_ascii_lowercase().as_str() {
            "\\all" => SpecialUse::All,
            "\\archive" => SpecialUse::Archive,
            "\\drafts" => SpecialUse::Drafts,
            "\\flagged" => SpecialUse::Flagged,
            "\\junk" => SpecialUse::Junk,
            "\\sent" => SpecialUse::Sent,
            "\\trash" => SpecialUse::Trash,
            _ => return None,
        })
    }
}

/// The folders every new account gets.
pub const DEFAULT_MAILBOXES: &[(&str, Option<SpecialUse>)] = &[
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// The mailbox hierarchy delimiter.
pub const DELIMITER: char = '/';

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account_id: AccountId,
    /// UTF-8 name, `/`-separated; `INBOX` always spelled so.
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub special_use: Option<SpecialUse>,
}

/// What SELECT and EXAMINE read of a mailbox ([`open_mailbox`]).
#[derive(Debug, Clone)]
pub struct Opened {
    /// The mailbox row (read after the claim, when there was one).
    pub mailbox: Mailbox,
    /// The `\Recent` UIDs `[from, to)`, as [`Backend::claim_recent`] gives them.
    pub recent: (u32, u32),
    /// The mailbox's account as it is now (the quota ALERT).
    pub account: Account,
}

/// Counts for STATUS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxCounts {
    pub messages: u32,
    pub unseen: u32,
    pub recent: u32,
    pub deleted: u32,
    pub size: u64,
    /// Octets of the messages flagged `\Deleted` (what an EXPUNGE would free).
    pub deleted_size: u64,
}

/// System flags as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    pub const SEEN: Flags = Flags(1);
    pub const ANSWERED: Flags = Flags(2);
    pub const FLAGGED: Flags = Flags(4);
    pub const DELETED: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);
    pub const ALL: [(Flags, &'static str); 5] = [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ];
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub fn minus(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
    /// A system flag by name (case-insensitive), e.g. `\Seen`.
    pub fn parse(name: &str) -> Option<Flags> {
        Flags::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::ALL
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// One message's metadata, as SELECT, FETCH FLAGS and POP3 LIST need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub modseq: u64,
    pub flags: Flags,
    /// Keywords (user flags), sorted, without duplicates.
    pub keywords: Vec<String>,
    /// Seconds since the epoch.
    pub internal_date: i64,
    /// RFC822.SIZE.
    pub size: u64,
    pub blob: BlobId,
    /// Length of the per-recipient prefix before the blob's octets.
    pub prefix_len: u32,
    /// `\Recent` (UID at or above the mailbox's recent mark when it was listed).
    pub recent: bool,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Octets stored before the body blob, per recipient (trace headers). May be empty.
    pub prefix: Vec<u8>,
    /// The shared message octets (deduplicated across recipients and mailboxes).
    pub body: Arc<Vec<u8>>,
    pub flags: Flags,
    pub keywords: Vec<String>,
    /// Seconds since the epoch.
    pub internal_date: i64,
}

/// One copy of a delivered message: whose, with which per-recipient prefix, into which
/// mailbox and with which flags (what a Sieve script decided; [`Delivery::inbox`] when
/// there is none).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub account: AccountId,
    pub prefix: Vec<u8>,
    /// The mailbox's name. When it does not exist it is created if `create` is set, and
    /// the message goes to INBOX otherwise (also for a name that is not valid).
    pub mailbox: String,
    pub create: bool,
    pub flags: Flags,
    /// Keywords; any that is not a valid IMAP atom is dropped.
    pub keywords: Vec<String>,
}

impl Delivery {
    /// A plain delivery into INBOX, no flags.
    pub fn inbox(account: AccountId, prefix: Vec<u8>) -> Delivery {
        Delivery {
            account,
            prefix,
            mailbox: "INBOX".into(),
            create: false,
            flags: Flags::default(),
            keywords: Vec::new(),
        }
    }
}

/// One of an account's Sieve scripts (RFC 5804 LISTSCRIPTS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveScript {
    pub name: String,
    pub active: bool,
    pub size: u64,
}

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub mailbox: MailboxId,
    pub uidvalidity: u32,
    pub uid: u32,
    pub modseq: u64,
    /// A quota warning threshold (percent) this append crossed upward, if any. The
    /// warning is then pending: see [`Backend::take_pending_warning`].
    pub crossed_warning: Option<u8>,
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// A message's flags after a STORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    pub uid: u32,
    pub modseq: u64,
    pub flags: Flags,
    pub keywords: Vec<String>,
}

/// Result of a STORE with UNCHANGEDSINCE (RFC 7162 3.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreResult {
    pub updated: Vec<FlagUpdate>,
    /// UIDs not changed because their MODSEQ was above UNCHANGEDSINCE.
    pub modified: Vec<u32>,
}

/// What changed in a mailbox since a MODSEQ (CONDSTORE/QRESYNC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangesSince {
    pub changed: Vec<MessageMeta>,
    pub vanished: Vec<u32>,
}

/// Where a recipient address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Local accounts (several for an alias), deduplicated.
    Accounts(Vec<Account>),
    /// The domain is local but nobody has this address.
    NoSuchUser,
    /// The domain is not ours.
    NotLocal,
}

/// Outcome of a garbage collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: u64,
    pub orphan_files_removed: u64,
    /// Objects deleted from the object store (`[blobs] url`; `objects.rs`).
    pub objects_deleted: u64,
}

/// One quota recalculation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recalc {
    pub address: String,
    pub before: u64,
    pub after: u64,
}

/// A stored message, ready to read: prefix, then blob.
pub struct MessageReader {
    prefix: std::io::Cursor<Vec<u8>>,
    blob: blob::BlobReader,
    pub size: u64,
}

impl MessageReader {
    pub fn new(prefix: Vec<u8>, blob: blob::BlobReader, size: u64) -> Self {
        MessageReader {
            prefix: std::io::Cursor::new(prefix),
            blob,
            size,
        }
    }
    /// Reads the whole message into memory.
    pub fn read_all(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.size as usize);
        self.read_to_end(&mut out)?;
        Ok(out)
    }
    /// Reads `len` octets from `offset` (fewer at the end), decompressing only up to there.
    pub fn read_range(mut self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        std::io::copy(&mut (&mut self).take(offset), &mut std::io::sink())?;
        let mut out = Vec::with_capacity(len.min(self.size) as usize);
        (&mut self).take(len).read_to_end(&mut out)?;
        Ok(out)
    }
}

impl Read for MessageReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.prefix.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        self.blob.read(buf)
    }
}

/// The store's operations. Every method blocks; see [`Store::run`].
pub trait Backend: Send + Sync + 'static {
    // --- domains, accounts, aliases ---
    fn add_domain(&self, name: &str) -> Result<()>;
    /// Refuses while accounts or aliases use the domain.
    fn remove_domain(&self, name: &str) -> Result<()>;
    fn list_domains(&self) -> Result<Vec<String>>;
    /// Creates the account and its default mailboxes. `password_hash` in `{SCHEME}` form.
    fn add_account(&self, address: &str, password_hash: &str, quota: QuotaLimit)
        -> Result<Account>;
    /// Without `force`, refuses when the account holds messages.
    fn remove_account(&self, address: &str, force: bool) -> Result<()>;
    fn list_accounts(&self) -> Result<Vec<Account>>;
    fn account(&self, address: &str) -> Result<Account>;
    fn account_by_id(&self, id: AccountId) -> Result<Account>;
    fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<()>;
    fn set_retention(&self, address: &str, retention: Option<Retention>) -> Result<()>;
    /// Checks a password; rehashes a legacy hash as Argon2id on success. `None`: wrong
    /// user or password (the caller cannot tell which, by design).
    fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>>;
    /// The cheap half of [`Backend::authenticate`]: `Some` only when this very password
    /// was verified for the account against its current stored hash within
    /// `[auth] cache_ttl` ([`password::VerifiedCache`]); `None` means "do the full check",
    /// never "wrong password". Never runs the password hash.
    fn authenticate_cached(&self, address: &str, password: &str) -> Result<Option<Account>>;
    /// Adds targets to an alias (`@domain` is the domain's catch-all).
    fn add_alias(&self, address: &str, targets: &[String]) -> Result<()>;
    /// Removes the given targets, or the whole alias when `targets` is empty.
    fn remove_alias(&self, address: &str, targets: &[String]) -> Result<()>;
    /// Aliases and their targets, optionally of one address.
    fn list_aliases(&self, address: Option<&str>) -> Result<Vec<(String, Vec<String>)>>;
    /// Resolves a recipient: accounts, `user+tag`, aliases (recursively), catch-alls.
    fn resolve(&self, address: &str) -> Result<Resolved>;

    // --- quota ---
    /// Takes (and clears) the quota warning an upward crossing left pending: the
    /// threshold to warn about, or `None` when there is nothing to send (or someone else
    /// took it). Whoever takes it delivers the warning, so each crossing warns once.
    fn take_pending_warning(&self, account: AccountId) -> Result<Option<u8>>;
    /// The quota warning state: the highest threshold crossed (and warned about, or
    /// pending) and the pending one (0: none). A transfer carries it (`transfer.rs`), so
    /// that a moved or restored account is not warned again about what it was told.
    fn quota_warn_state(&self, account: AccountId) -> Result<(u8, u8)>;
    /// Sets the quota warning state (`(level, pending)`, as [`Self::quota_warn_state`]).
    fn set_quota_warn_state(&self, account: AccountId, state: (u8, u8)) -> Result<()>;
    /// Accounts with a quota warning pending.
    fn pending_warnings(&self) -> Result<Vec<AccountId>>;
    fn set_quota(&self, address: &str, limit: QuotaLimit) -> Result<Account>;
    /// Recomputes usage from the stored sizes; all accounts when `address` is `None`.
    fn recalc_quota(&self, address: Option<&str>) -> Result<Vec<Recalc>>;

    // --- mailboxes ---
    fn list_mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    fn mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox>;
    fn mailbox_by_id(&self, id: MailboxId) -> Result<Mailbox>;
    /// The mailbox named `name`, its `\Recent` mark (`first_recent`: the first UID no
    /// session has claimed) and its account, in one read ([`open_mailbox`]).
    fn mailbox_to_open(&self, account: AccountId, name: &str) -> Result<(Mailbox, u32, Account)>;
    fn mailbox_counts(&self, mailbox: MailboxId) -> Result<MailboxCounts>;
    /// Creates one mailbox. Its superior names are not created (RFC 9051 6.3.4 allows
    /// either; Dovecot does not): `a` of `a/b` stays a name with children, no mailbox.
    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox>;
    /// Deletes a mailbox and its messages (not its children). INBOX cannot be deleted.
    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()>;
    /// Renames a mailbox and its children; a name that is no mailbox but has mailboxes
    /// below it renames those. Superior names of the target are not created (see
    /// `create_mailbox`). Renaming INBOX moves its messages to a new mailbox and leaves
    /// INBOX empty (RFC 9051 6.3.6).
    fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    fn subscribe(&self, account: AccountId, name: &str) -> Result<()>;
    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()>;
    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;

    // --- messages ---
    /// Stores one message in one mailbox. With `enforce_quota`, refuses with
    /// [`Error::OverQuota`] when the account would go over its limit.
    fn append(&self, mailbox: MailboxId, msg: NewMessage, enforce_quota: bool) -> Result<Appended>;
    /// Stores several messages in one mailbox, all or none (IMAP MULTIAPPEND, RFC 3502):
    /// with `enforce_quota`, refused with [`Error::OverQuota`] when they do not fit
    /// together. Results in the order given, with consecutive UIDs.
    fn append_many(
        &self,
        mailbox: MailboxId,
        msgs: Vec<NewMessage>,
        enforce_quota: bool,
    ) -> Result<Vec<Appended>>;
    /// Delivers one body to several accounts' INBOXes in one transaction; each entry is
    /// (account, per-recipient prefix). Quota is enforced per recipient: the result for a
    /// full mailbox is `Err(OverQuota)` and the others still get the message.
    fn deliver(
        &self,
        body: Arc<Vec<u8>>,
        internal_date: i64,
        rcpts: Vec<(AccountId, Vec<u8>)>,
        enforce_quota: bool,
    ) -> Result<Vec<Result<Appended>>> {
        let items = rcpts
            .into_iter()
            .map(|(account, prefix)| Delivery::inbox(account, prefix))
            .collect();
        self.deliver_to(body, None, internal_date, items, enforce_quota)
    }
    /// Like [`Backend::deliver`], with a target mailbox, `:create` and flags per copy
    /// ([`Delivery`]); several copies may go to one account (Sieve `fileinto :copy`).
    /// Quota is enforced per copy; results in the order given. `parsed`: the body's parse
    /// when the caller made it already (`letterbox_message::parse_shared` of `body`, for
    /// its filters), so that the message is parsed once; `None`: the store parses it.
    fn deliver_to(
        &self,
        body: Arc<Vec<u8>>,
        parsed: Option<ParsedMessage>,
        internal_date: i64,
        items: Vec<Delivery>,
        enforce_quota: bool,
    ) -> Result<Vec<Result<Appended>>>;
    /// Every message of a mailbox, by ascending UID. With `claim_recent`, the messages
    /// that are new since the last claim come back `recent` and the mark moves past them
    /// (RFC 3501 \Recent: one session sees each message as recent).
    fn list_messages(&self, mailbox: MailboxId, claim_recent: bool) -> Result<Vec<MessageMeta>>;
    fn message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageMeta>;
    /// Metadata of many messages in one pass, by ascending UID; absent UIDs left out.
    fn messages(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageMeta>>;
    /// The message's structure, with offsets counting from the start of the message
    /// (prefix included), and its search text.
    fn parsed(&self, mailbox: MailboxId, uid: u32) -> Result<ParsedMessage>;
    /// Structures of many messages in one pass (FETCH of a range, SEARCH over a
    /// mailbox), by ascending UID; UIDs that do not exist are left out. Without
    /// `with_search`, `search_headers`/`search_body` are empty, and the decoded text is
    /// not read at all: what FETCH ENVELOPE/BODYSTRUCTURE want.
    fn parsed_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        with_search: bool,
    ) -> Result<Vec<(u32, ParsedMessage)>>;
    /// Envelopes of many messages (FETCH ENVELOPE), by ascending UID, decoding nothing
    /// else of their structures; UIDs that do not exist are left out.
    fn envelopes_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, letterbox_message::Envelope)>>;
    /// The top-level header octets (per-recipient prefix included, up to and with the
    /// blank line) of many messages, by ascending UID, without opening their blobs
    /// (FETCH of header fields); UIDs that do not exist are left out.
    fn headers_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>>;
    /// Which messages of a mailbox may contain every one of `needles_lower` (each already
    /// in lower case, `str::to_lowercase`) in their search text, headers or body, as SEARCH
    /// TEXT/BODY compare it: ascending UIDs, a superset of those that do (the caller
    /// still compares). `None` when no needle is long enough to narrow anything down.
    fn text_candidates(
        &self,
        mailbox: MailboxId,
        needles_lower: &[&str],
    ) -> Result<Option<Vec<u32>>>;
    fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader>;
    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<StoreResult>;
    /// Removes the given messages (those still present) at once. Returns the UIDs removed.
    fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<u32>>;
    /// Copies messages; returns (source UID, new UID) pairs. Refuses over quota.
    fn copy(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>>;
    /// Moves messages (never refused for quota); returns (source UID, new UID) pairs.
    fn move_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
    ) -> Result<Vec<(u32, u32)>>;
    fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<ChangesSince>;

    // --- POP3 retention ---
    /// Records the first POP3 retrieval time of these messages.
    fn mark_pop3_retrieved(&self, mailbox: MailboxId, uids: &[u32], now: i64) -> Result<()>;
    /// Expunges mail retrieved by POP3 longer ago than each account's `<N>d` retention.
    fn sweep_retention(&self, now: i64) -> Result<u64>;

    // --- login blocks (abuse resistance) ---
    /// Blocks logins for `key` (`ip:ADDR` or `user:ADDRESS`) until `until`.
    fn block(&self, key: &str, until: i64, reason: &str) -> Result<()>;
    /// Blocks in force at `now`: (key, until, reason).
    fn blocks(&self, now: i64) -> Result<Vec<(String, i64, String)>>;
    /// Lifts a block; false when there was none.
    fn unblock(&self, key: &str) -> Result<bool>;
    /// Counts a failed login for each of `keys` and returns, in order, their failures
    /// within `window` seconds (this one included), where several nodes must count
    /// together (PostgreSQL). `None`: the caller counts in memory (the embedded store has
    /// one serving process).
    fn count_login_failure(&self, keys: &[String], window: u64, now: i64) -> Result<Option<Vec<u32>>> {
        let _ = (keys, window, now);
        Ok(None)
    }
    /// Forgets the failures [`Backend::count_login_failure`] counted for `keys`.
    fn clear_login_failures(&self, keys: &[String]) -> Result<()> {
        let _ = keys;
        Ok(())
    }

    // --- maintenance ---
    /// Removes unreferenced blobs and orphan blob files.
    fn gc(&self) -> Result<GcReport>;
    /// Verifies the store's invariants (usage equals the sum of sizes, reference counts
    /// equal references, every referenced blob present; with `deep`, every blob
    /// decompresses to octets of its name). Returns the problems found.
    fn check(&self, deep: bool) -> Result<Vec<String>>;
    /// The change feed this backend publishes to.
    fn feed(&self) -> &ChangeFeed;
    /// The web portal's sessions, operators, quota requests, usage history and counts.
    fn web(&self) -> &dyn web::WebStore;
    /// Starts noticing what other processes commit to the same data (the admin CLI's
    /// `deliver` while `serve` runs) and waking the watched accounts' sessions through
    /// the feed, looking every `interval`. The server calls it once; one-shot commands
    /// don't. A backend whose feed already spans processes needs nothing here.
    fn watch_other_processes(&self, interval: std::time::Duration) -> Result<()> {
        let _ = interval;
        Ok(())
    }
    /// At clean shutdown: empties the write-ahead log into the database, if the backend
    /// has one and nothing else is writing (`sqlite/wal.rs`). `true` if it was emptied.
    fn close_log(&self) -> Result<bool> {
        Ok(false)
    }
    /// At the server's start ([`warm_up`]): starts the write-ahead log, if the backend
    /// has one and it is empty, with a write no one reads, so that the first client's
    /// write does not pay for the log's new header and its fsync (`sqlite/wal.rs`).
    /// PostgreSQL's log is the database server's: nothing to do.
    fn start_log(&self) -> Result<()> {
        Ok(())
    }
    /// Stores a message the server writes itself (the quota warning) without quota
    /// enforcement and without arming a warning: its octets count in the usage, but a
    /// notice never crosses a `[quota] warn_at` threshold, so that one delivery gives at
    /// most one warning. The next delivery that finds usage above a threshold not yet
    /// warned about does.
    fn append_notice(&self, mailbox: MailboxId, msg: NewMessage) -> Result<Appended> {
        self.append(mailbox, msg, false)
    }
    /// Every message of a mailbox by ascending UID with the exact octets POP3 RETR sends
    /// (CRLF lines: see `line_ends.rs`), without reading message bodies.
    fn pop3_sizes(&self, mailbox: MailboxId) -> Result<Vec<line_ends::Pop3Size>>;
    /// `\Recent` for a session (RFC 3501 2.3.2): the UIDs `[from, to)` that
    /// are recent to it. With `take`, the messages no session has had as recent become
    /// the caller's, and no other session ever gets them (`(0, 0)` when there are none);
    /// without, the unclaimed ones are reported (`to` is `u32::MAX`) and nothing changes
    /// (EXAMINE). Claiming writes without fsync; a caller may ignore its failure.
    fn claim_recent(&self, mailbox: MailboxId, take: bool) -> Result<(u32, u32)>;
    /// The compact index of a mailbox IMAP kept last ([`Backend::save_mailbox_index`]):
    /// the UIDVALIDITY and HIGHESTMODSEQ it was made at and its octets, or `None`.
    fn load_mailbox_index(&self, mailbox: MailboxId) -> Result<Option<(u32, u64, Vec<u8>)>>;
    /// As [`Backend::load_mailbox_index`], the octets lent to `f` rather than copied out
    /// (the embedded store lends the blob SQLite has just read: one copy of the whole
    /// index less on the first SELECT after a start). False when there is no copy.
    fn read_mailbox_index(
        &self,
        mailbox: MailboxId,
        f: &mut dyn FnMut(u32, u64, &[u8]),
    ) -> Result<bool> {
        Ok(match self.load_mailbox_index(mailbox)? {
            Some((uidvalidity, modseq, data)) => {
                f(uidvalidity, modseq, &data);
                true
            }
            None => false,
        })
    }
    /// The mailboxes that have a compact index kept ([`Backend::save_mailbox_index`]),
    /// at most `limit`, each with the length of its copy in octets, the largest copies
    /// first (then by mailbox id): what IMAP preloads after a start (the largest are
    /// the slowest to open; mailboxes too small to get a copy open fast anyway).
    fn list_mailbox_indexes(&self, limit: usize) -> Result<Vec<(MailboxId, u64)>>;
    /// Keeps IMAP's compact index of a mailbox at `modseq` (issue 18: the first SELECT
    /// after a start reads it and what changed since instead of every message). The
    /// octets are IMAP's (`crates/imap/src/session/index.rs`); it is a cache, written
    /// without fsync and replaced whole, and goes with its mailbox.
    fn save_mailbox_index(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        modseq: u64,
        data: Vec<u8>,
    ) -> Result<()>;
    /// IMAP's stored message cache of a mailbox ([`Backend::save_message_cache`]): the
    /// chunks of `kind` numbered `first..=last` that exist, each as `(number,
    /// UIDVALIDITY it was written at, octets)`, by ascending number.
    fn load_message_cache(
        &self,
        mailbox: MailboxId,
        kind: u8,
        first: u32,
        last: u32,
    ) -> Result<Vec<(u32, u32, Vec<u8>)>>;
    /// Keeps (replaces) chunk `chunk` of IMAP's per-message cache of a mailbox (issue 18:
    /// the rendered BODYSTRUCTUREs a cold FETCH reads instead of every message's stored
    /// MIME tree; `crates/imap/src/session/cache.rs` owns `kind` and the octets), if the
    /// mailbox still has `uidvalidity`. A cache: written without fsync, goes with its
    /// mailbox; a missing or dropped chunk only costs reading the messages again.
    fn save_message_cache(
        &self,
        mailbox: MailboxId,
        kind: u8,
        chunk: u32,
        uidvalidity: u32,
        data: Vec<u8>,
    ) -> Result<()>;

    // --- application passwords, login history, API tokens, statistics (issue 14) ---
    /// Creates a named application password for `protocols` and returns it (the only
    /// time it exists outside its hash). See [`apppass`].
    fn add_app_password(&self, address: &str, name: &str, protocols: Protocols) -> Result<String>;
    fn list_app_passwords(&self, address: &str) -> Result<Vec<AppPassword>>;
    /// Revokes an application password: it stops working at once.
    fn remove_app_password(&self, address: &str, name: &str) -> Result<()>;
    /// Checks `password` as one of the account's application passwords for `protocol`:
    /// the account and the app password's name. With `cached_only`, like
    /// [`Backend::authenticate_cached`]: no hashing, `None` means "do the full check".
    fn authenticate_app_password(
        &self,
        address: &str,
        password: &str,
        protocol: Protocol,
        cached_only: bool,
    ) -> Result<Option<(Account, String)>>;
    /// Records a successful login, keeping the account's last `keep` (0: none).
    fn record_login(&self, account: AccountId, login: LoginRecord, keep: u32) -> Result<()>;
    /// The account's recorded logins, newest first.
    fn recent_logins(&self, address: &str) -> Result<Vec<LoginRecord>>;
    /// Creates an API token (see [`apitokens`]) and returns it, once.
    fn add_api_token(&self, name: &str) -> Result<String>;
    fn list_api_tokens(&self) -> Result<Vec<ApiToken>>;
    fn remove_api_token(&self, name: &str) -> Result<()>;
    /// The name of the API token `token`, when it is one.
    fn check_api_token(&self, token: &str) -> Result<Option<String>>;
    /// Sizes for monitoring (`/metrics`).
    fn stats(&self) -> Result<StoreStats>;

    // --- DKIM signing keys (see [`dkim`]) ---
    /// Stores new keys of local domains, all or none; refuses a selector a domain has.
    fn add_dkim_keys(&self, keys: Vec<DkimKey>) -> Result<()>;
    /// A local domain's keys, oldest first; `NotFound` for a domain that is not local.
    fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>>;
    /// Every domain's active keys.
    fn active_dkim_keys(&self) -> Result<Vec<DkimKey>>;
    /// Makes these keys of the domain the active ones, retiring those active before, in
    /// one transaction. Returns the selectors retired.
    fn activate_dkim_keys(&self, domain: &str, selectors: &[String]) -> Result<Vec<String>>;
    /// Changes whenever any domain's key set changes (so a signer's cache can be checked
    /// with one cheap read).
    fn dkim_version(&self) -> Result<i64>;

    // --- outbound queue (queue.rs) ---
    /// Queues a message for remote delivery: durable (fsynced) when it returns. Records
    /// the submitting account's use for the outbound limits in the same transaction.
    fn queue_insert(&self, msg: queue::NewQueued) -> Result<queue::QueueId>;
    /// Ids of entries not held whose next attempt is due at `now`, oldest first, at most
    /// `limit` (an index scan: never the whole queue). A backend that several nodes
    /// share (PostgreSQL) also *takes* them for the caller: no other call returns them
    /// again until [`Backend::queue_update`] records the attempt, the caller gives one
    /// back with [`Backend::queue_release`], or a lease runs out (`pg/queue.rs`), so two
    /// nodes never attempt one entry at once. The embedded store, whose one `serve`
    /// process runs the only scheduler, takes nothing.
    fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<queue::QueueId>>;
    /// Gives back an entry [`Backend::queue_due`] returned that the caller will not
    /// attempt now, so that it is due again at once, on any node.
    fn queue_release(&self, id: queue::QueueId) -> Result<()> {
        let _ = id;
        Ok(())
    }
    /// The earliest next attempt of an entry not held.
    fn queue_next_due(&self) -> Result<Option<i64>>;
    /// One entry with its recipients; `NotFound` for an unknown id.
    fn queue_get(&self, id: queue::QueueId) -> Result<queue::QueuedMessage>;
    /// One entry's message octets.
    fn queue_body(&self, id: queue::QueueId) -> Result<Vec<u8>>;
    /// Entries with an id above `after`, by id, at most `limit` (paging).
    fn queue_list(&self, after: queue::QueueId, limit: usize) -> Result<Vec<queue::QueuedMessage>>;
    /// Records an attempt's outcome; an entry left without pending recipients is
    /// removed. `false` when the entry is gone (removed meanwhile).
    fn queue_update(&self, id: queue::QueueId, u: queue::QueueUpdate) -> Result<bool>;
    fn queue_remove(&self, id: queue::QueueId) -> Result<()>;
    /// Holds an entry, or releases it (due at once).
    fn queue_set_held(&self, id: queue::QueueId, held: bool, now: i64) -> Result<()>;
    /// Makes one entry (or every entry not held) due at `now`; the number changed.
    fn queue_retry(&self, id: Option<queue::QueueId>, now: i64) -> Result<u64>;
    /// An account's outbound use in the last hour and day.
    fn outbound_use(&self, account: AccountId, now: i64) -> Result<queue::OutboundUse>;
    /// The operator's outbound hold on an account (`user set ADDRESS outbound hold|allow`).
    fn set_outbound_hold(&self, account: AccountId, hold: bool) -> Result<()>;
    fn outbound_held(&self, account: AccountId) -> Result<bool>;
    // --- Sieve scripts (RFC 5228, managed as RFC 5804 describes) ---
    /// An account's scripts, by name.
    fn sieve_list(&self, account: AccountId) -> Result<Vec<SieveScript>>;
    /// One script's text; `NotFound` when there is none of that name.
    fn sieve_get(&self, account: AccountId, name: &str) -> Result<Vec<u8>>;
    /// Stores (or replaces) a script; its active state is kept. With `max_scripts`, a new
    /// name beyond that many scripts is refused (`Refused`).
    fn sieve_put(
        &self,
        account: AccountId,
        name: &str,
        script: Vec<u8>,
        max_scripts: Option<u32>,
    ) -> Result<()>;
    /// Makes `name` the one active script; `None` deactivates all.
    fn sieve_activate(&self, account: AccountId, name: Option<&str>) -> Result<()>;
    /// Removes a script; the active one is refused (`Refused`, RFC 5804 2.10).
    fn sieve_delete(&self, account: AccountId, name: &str) -> Result<()>;
    fn sieve_rename(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    /// The active script: (name, text).
    fn sieve_active(&self, account: AccountId) -> Result<Option<(String, Vec<u8>)>>;
    /// The version of the account's scripts: it changes with every put, activate, delete
    /// and rename, and a version is never given again (not even to an account made under
    /// a deleted one's id), so that a server keeps the compiled active script until it
    /// changes. `None`: this backend keeps no version (read the active script each time).
    fn sieve_version(&self, _account: AccountId) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Records `id` for the account until `expires`; true when it was already recorded
    /// and not yet expired at `now` (vacation's one reply per sender per :days, RFC 5230
    /// 4.2, and the duplicate test, RFC 7352).
    fn sieve_seen(&self, account: AccountId, id: &str, expires: i64, now: i64) -> Result<bool>;
    // --- import with identities kept (issue 16, `import.rs`) ---
    /// Starts an import run from `source` into an account: refused when the account has
    /// mail, unless `merge` or an unfinished run from the same source is resumed.
    fn import_begin(&self, account: AccountId, source: &str, merge: bool) -> Result<ImportStart>;
    /// Marks a run finished.
    fn import_finish(&self, account: AccountId, source: &str) -> Result<()>;
    /// The mailbox to import a source folder into, with the source's UIDVALIDITY when
    /// it is new or never held mail.
    fn import_mailbox(&self, account: AccountId, name: &str, uidvalidity: u32)
        -> Result<ImportMailbox>;
    /// Stores one message with its UID (when free), flags, date and POP3 UIDL, once per
    /// key. Durable, never refused for quota.
    fn import_message(&self, mailbox: MailboxId, msg: ImportMessage) -> Result<Imported>;
    /// Raises UIDNEXT to the source's, and leaves the imported messages not `\Recent`.
    fn import_finish_mailbox(&self, mailbox: MailboxId, uidnext: u32) -> Result<()>;
    /// Raises HIGHESTMODSEQ to at least `floor` before messages are imported into a
    /// mailbox that keeps a source's UIDVALIDITY: the source's clients may have cached
    /// mod-sequences up to it (RFC 7162 3.1.1), so every imported message's is above.
    fn import_modseq_floor(&self, mailbox: MailboxId, floor: u64) -> Result<()>;
    /// The POP3 UIDLs kept from an import for a mailbox's present messages, by UID.
    fn pop3_uidls(&self, mailbox: MailboxId) -> Result<Vec<(u32, String)>>;

    // --- backup (issue 16, `backup.rs`) ---
    /// An online, consistent copy of the whole store into `dest` (database snapshot plus
    /// the blob files not there yet); restore it with [`restore`].
    fn backup(&self, dest: &std::path::Path) -> Result<BackupReport>;
    /// Sets the Trash (`folder` = [`SpecialUse::Trash`]) or Junk expiry of a domain or an
    /// account (`scope` has an `@`) in days, `0` for never; `None` inherits (the domain's,
    /// then `[expire]`'s).
    fn set_expire(&self, scope: &str, folder: SpecialUse, days: Option<u32>) -> Result<()>;
    /// Every domain or account with its own expiry: (scope, trash days, junk days).
    fn expire_policies(&self) -> Result<Vec<ExpirePolicy>>;
    /// Expunges what has been in a `\Trash` or `\Junk` folder longer than its policy
    /// allows at time `now`, through the normal expunge path; one entry per folder that
    /// lost messages.
    fn expire(&self, now: i64) -> Result<Vec<Expired>>;
    /// Replaces message `uid` (still `expected_size` octets, or nothing is done) by
    /// `body` in one transaction: a new UID in the same mailbox with the same flags,
    /// keywords and internal date, the old one expunged, the quota adjusted (replace.rs).
    fn replace_message(
        &self,
        mailbox: MailboxId,
        uid: u32,
        expected_size: u64,
        body: Vec<u8>,
    ) -> Result<Replaced>;
    /// The heads of many messages (heads.rs): structures holding only the envelope, the
    /// sent date, `search_headers` and the sort fields (no MIME tree, no `search_body`,
    /// no preview), by ascending UID; UIDs that do not exist are left out. What SEARCH of
    /// header keys, SORT and THREAD read of a big mailbox.
    fn heads_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, ParsedMessage)>> {
        let mut v = self.parsed_many(mailbox, uids, true)?;
        for (_, p) in &mut v {
            p.search_body = String::new();
        }
        Ok(v)
    }
    /// FETCH BODYSTRUCTURE's answers kept at delivery (issue 18, `bodystructures.rs`):
    /// for each message of `uids` whose blob has one in this build's rendering
    /// (`letterbox_message::imap::RENDERING`), by ascending UID, IMAP's octets rendered
    /// without UTF8=ACCEPT (`letterbox_message::imap::bodystructure`). Messages without
    /// one (stored before, or in another rendering) and UIDs that do not exist are left
    /// out: the caller renders those from [`Backend::roots_many`].
    fn bodystructures_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let _ = (mailbox, uids);
        Ok(Vec::new())
    }
    /// The searchable heads made at delivery (issue 18, `searchables.rs`): for each
    /// message of `uids` whose blob has one of this build's version
    /// (`letterbox_message::searchable::VERSION`) and intact, by ascending UID, the
    /// record (`letterbox_message::searchable::encode`). Messages without one (stored
    /// before) and UIDs that do not exist are left out: the caller decodes their heads
    /// ([`Backend::heads_many`]).
    fn searchables_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let _ = (mailbox, uids);
        Ok(Vec::new())
    }
    /// FETCH ENVELOPE's answers kept at delivery (issue 18, `envelopes.rs`): for each
    /// message of `uids` whose row (or blob) has one in this build's rendering
    /// (`letterbox_message::imap::RENDERING`), by ascending UID, IMAP's octets rendered
    /// without UTF8=ACCEPT (`letterbox_message::imap::envelope`). Messages without one
    /// (stored before, or in another rendering) and UIDs that do not exist are left
    /// out: the caller renders those from [`Backend::envelopes_many`].
    fn envelopes_rendered_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let _ = (mailbox, uids);
        Ok(Vec::new())
    }
    /// The sort keys made at delivery (issue 18, `sortkeys.rs`): for each message of
    /// `uids` whose row (or blob) has a record of this build's version
    /// (`letterbox_message::sortkeys::VERSION`), by ascending UID, the record
    /// (`letterbox_message::sortkeys::SortKeys::encode`, CRC not yet checked). Messages
    /// without one (stored before) and UIDs that do not exist are left out: the caller
    /// decodes their heads ([`Backend::heads_many`]). The records come packed
    /// ([`Packed`]: one buffer, not a `Vec` per record).
    fn sortkeys_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Packed> {
        let _ = (mailbox, uids);
        Ok(Packed::default())
    }
    /// The sent dates (RFC 5256 2.2: `Date:` in UTC, `None` when it is missing or
    /// invalid) of the sort keys made at delivery, all `SORT (DATE)` reads of a message
    /// (issue 18, `sortkeys.rs`): for each message of `uids` whose record
    /// ([`sortkeys_many`](Self::sortkeys_many)) is there and intact, by ascending UID,
    /// its date read in place (`letterbox_message::sortkeys::SortKeys::sent_date_of`),
    /// without copying or decoding the rest. Messages without one and UIDs that do not
    /// exist are left out: the caller decodes their heads.
    fn sent_dates_many(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Option<i64>)>> {
        let _ = (mailbox, uids);
        Ok(Vec::new())
    }
    /// The MIME trees of many messages (FETCH BODY/BODYSTRUCTURE of a range), with
    /// offsets counting from the start of the message (prefix included), by ascending
    /// UID, decoding nothing else; UIDs that do not exist are left out.
    fn roots_many(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, letterbox_message::Part)>> {
        Ok(self
            .parsed_many(mailbox, uids, false)?
            .into_iter()
            .map(|(u, p)| (u, p.root))
            .collect())
    }

    // --- saving space (issue 15: strip.rs, space.rs) ---
    /// [`Backend::replace_message`], recording in the same transaction a `strip` entry
    /// of the account's space log with `detail` (what was removed, by which rule).
    fn replace_message_logged(
        &self,
        mailbox: MailboxId,
        uid: u32,
        expected_size: u64,
        body: Vec<u8>,
        detail: String,
    ) -> Result<Replaced>;
    /// The account's space log since `since` (seconds), newest first.
    fn space_log(&self, account: AccountId, since: i64) -> Result<Vec<SpaceEvent>>;
    /// Octets freed per UTC day since `since_day`, by attachment removal and by expiry:
    /// the usage history's "freed" series.
    fn space_freed_by_day(&self, account: AccountId, since_day: i64) -> Result<Vec<FreedDay>>;
    /// Forgets space log entries older than `before`; returns how many.
    fn space_log_purge(&self, before: i64) -> Result<u64>;
    /// Sets a domain's or an account's (`scope` has an `@`) own attachment policy;
    /// `None` removes it (the domain's, then `[attachments]`'s apply).
    fn set_strip_policy(&self, scope: &str, policy: Option<StripPolicy>) -> Result<()>;
    /// Every domain or account with a policy of its own.
    fn strip_policies(&self) -> Result<Vec<(String, StripPolicy)>>;
    /// The policy in force for an account: its own, its domain's, `[attachments]`'s.
    fn strip_policy_for(&self, address: &str) -> Result<StripPolicy>;
    /// True (and `now` recorded as the task's last run) when `task` last ran at least
    /// `interval` seconds before `now`, or never.
    fn maintenance_due(&self, task: &str, now: i64, interval: i64) -> Result<bool>;
    /// The keys of the messages an import already stored for the account whose key
    /// starts with `prefix` (so an importer resuming over the network fetches only the
    /// rest; `import.rs`).
    fn imported_keys(&self, account: AccountId, prefix: &str) -> Result<Vec<String>>;

    // --- moving a whole store to another backend (issue 17, `transfer.rs`) ---
    /// The account's stored password hash (`{SCHEME}` form, as [`Backend::add_account`]
    /// takes it).
    fn password_hash(&self, address: &str) -> Result<String>;
    /// The account's application passwords as stored (hashes only).
    fn app_password_records(&self, address: &str) -> Result<Vec<transfer::AppPasswordRecord>>;
    /// Stores an application password as it was stored elsewhere; `Exists` when the
    /// account has one of that name.
    fn restore_app_password(&self, address: &str, rec: &transfer::AppPasswordRecord) -> Result<()>;
    /// The API tokens as stored (digests only).
    fn api_token_records(&self) -> Result<Vec<transfer::ApiTokenRecord>>;
    /// Stores an API token as it was stored elsewhere; `Exists` for a name in use.
    fn restore_api_token(&self, rec: &transfer::ApiTokenRecord) -> Result<()>;
    /// When each message of a mailbox was saved into it (what expiry counts from), by
    /// UID; messages without a recorded date are left out.
    fn save_dates(&self, mailbox: MailboxId) -> Result<Vec<(u32, i64)>>;
    /// Sets the save dates of these messages of a mailbox (UIDs not present are ignored).
    fn set_save_dates(&self, mailbox: MailboxId, dates: &[(u32, i64)]) -> Result<()>;
    /// When `task` was last recorded by [`Backend::maintenance_due`]; `None`: never.
    fn maintenance_last(&self, task: &str) -> Result<Option<i64>>;
    /// The UIDs expunged from a mailbox with the MODSEQ of their expunge (what QRESYNC's
    /// VANISHED reports), by UID.
    fn expunged_uids(&self, mailbox: MailboxId) -> Result<Vec<(u32, u64)>>;
    /// Records UIDs expunged elsewhere, with their MODSEQs, in a mailbox that keeps the
    /// source's UIDVALIDITY: they are never given again, and a QRESYNC client that cached
    /// state from before an expunge hears of it (RFC 7162 3.2.5). UIDs present as
    /// messages or recorded already are left alone.
    fn import_expunged(&self, mailbox: MailboxId, uids: &[(u32, u64)]) -> Result<()>;
}

/// An automatic attachment-removal policy (issue 15, `strip.rs`): attachments of at least
/// `larger_than` octets in messages older than `older_than_days`, in `folders` (names or
/// special-use attributes such as `\Sent`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StripPolicy {
    /// 0: no automatic removal.
    pub older_than_days: u32,
    pub larger_than: u64,
    pub folders: Vec<String>,
}

/// One entry of an account's space log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceEvent {
    pub at: i64,
    /// `strip` or `expire`.
    pub kind: String,
    pub mailbox: String,
    /// Strip: the old UID and the stripped copy's UID.
    pub uid: Option<u32>,
    pub new_uid: Option<u32>,
    pub messages: u64,
    /// Octets freed.
    pub bytes: u64,
    pub detail: String,
}

/// One day of the freed-space history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreedDay {
    pub day: i64,
    pub stripped: u64,
    pub expired: u64,
}

/// What the store holds, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub accounts: u64,
    pub messages: u64,
    /// Sum of the accounts' quota usage (octets, as the clients see them).
    pub usage_bytes: u64,
    /// Distinct message bodies stored (deduplicated), and their uncompressed octets.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// The database files (`store.db` and its WAL) on disk.
    pub database_bytes: u64,
}

/// What [`Backend::replace_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub uid: u32,
    pub modseq: u64,
    pub old_size: u64,
    pub new_size: u64,
}

/// A domain's or an account's own expiry settings (`None`: inherited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirePolicy {
    pub scope: String,
    pub trash: Option<u32>,
    pub junk: Option<u32>,
}

/// What one expiry run removed from one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub address: String,
    pub mailbox: String,
    pub messages: u64,
    pub bytes: u64,
}

/// The handle protocol code holds: cheap to clone, shared by every session.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        Store { backend }
    }

    /// Opens the embedded store in `data_dir`.
    pub fn open_embedded(data_dir: &std::path::Path, options: StoreOptions) -> Result<Store> {
        Ok(Store::new(Arc::new(sqlite::SqliteBackend::open(
            data_dir, options,
        )?)))
    }

    /// Opens the PostgreSQL store at `url` (schema applied), large bodies under
    /// `data_dir/blobs` (`pg/mod.rs`).
    pub fn open_postgres(
        url: &str,
        data_dir: &std::path::Path,
        pool_size: u32,
        options: StoreOptions,
    ) -> Result<Store> {
        Ok(Store::new(Arc::new(pg::PgBackend::open(
            url, data_dir, pool_size, options,
        )?)))
    }

    /// Runs blocking store calls on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&dyn Backend) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let backend = self.backend.clone();
        match tokio::task::spawn_blocking(move || f(&*backend)).await {
            Ok(r) => r,
            Err(e) => Err(Error::Io(std::io::Error::other(format!(
                "store task failed: {e}"
            )))),
        }
    }

    /// Subscribes to one account's changes.
    pub fn watch(&self, account: AccountId) -> tokio::sync::broadcast::Receiver<Change> {
        self.backend.feed().subscribe(account)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

/// Normalises an address for lookup: trimmed, ASCII letters lower-cased (local parts
/// are matched case-insensitively, as every mainstream server does) and the domain in
/// its one stored form, the lower-case A-label ([`idn`], RFC 5890/5891, UTS #46), so
/// that `x@exämple.com` and `x@xn--exmple-cua.com` are one address. A domain that is
/// not a valid name is only lower-cased (it matches nothing the store accepted).
pub fn normalize_address(address: &str) -> String {
    let a = address.trim();
    idn::address(a).unwrap_or_else(|| a.to_ascii_lowercase())
}

/// Checks an address for an account or alias: `local@domain`, sane characters.
pub fn validate_address(address: &str) -> Result<(String, String)> {
    let a = normalize_address(address);
    let bad = || {
        Error::Invalid(format!(
            "invalid address '{address}' (expected user@domain)"
        ))
    };
    let (local, domain) = a.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || a.len() > 254 {
        return Err(bad());
    }
    if !local
        .chars()
        .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(bad());
    }
    validate_domain(domain).map_err(|_| {
        Error::Invalid(format!(
            "invalid address '{address}': its domain is not a valid domain name"
        ))
    })?;
    Ok((local.to_string(), domain.to_string()))
}

/// Checks a domain name and gives its one stored form: an internationalised name as
/// its lower-case A-label ([`idn`]: RFC 5890/5891, UTS #46), then labels of letters,
/// digits and hyphens (RFC 1123 2.1), at most 63 octets each and 253 in all.
pub fn validate_domain(domain: &str) -> Result<String> {
    let bad = || Error::Invalid(format!("invalid domain '{domain}'"));
    let d = idn::a_label(domain.trim()).ok_or_else(bad)?;
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        });
    if ok {
        Ok(d)
    } else {
        Err(bad())
    }
}

/// `alias add` of an alias that exists: the same targets again is nothing to do (`Ok`);
/// other targets are refused, since adding them would silently change where the
/// alias's mail goes (the operator removes it first, or the targets to drop).
pub(crate) fn alias_exists(alias: &str, current: &[String], wanted: &[String]) -> Result<()> {
    let (mut a, mut b) = (current.to_vec(), wanted.to_vec());
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    if a.is_empty() || a == b {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "alias {alias} already exists with target(s) {}; nothing changed (`alias remove {alias}` first to replace it)",
        a.join(" ")
    )))
}

/// Checks and normalises a mailbox name: `/`-separated, no empty levels, no control
/// characters, `INBOX` in any case spelled `INBOX`. Names are data, never paths.
pub fn normalize_mailbox_name(name: &str) -> Result<String> {
    const MAX_NAME: usize = 512;
    const MAX_DEPTH: usize = 32;
    let bad = |why: &str| Error::Invalid(format!("invalid mailbox name: {why}"));
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME {
        return Err(bad("too long"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(bad("control characters"));
    }
    let parts: Vec<&str> = name.split(DELIMITER).collect();
    if parts.len() > MAX_DEPTH {
        return Err(bad("too deep"));
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty hierarchy level"));
    }
    if parts[0].eq_ignore_ascii_case("INBOX") {
        let mut s = String::from("INBOX");
        for p in &parts[1..] {
            s.push(DELIMITER);
            s.push_str(p);
        }
        return Ok(s);
    }
    Ok(name.to_string())
}

/// Checks a name for a mailbox about to be created (or renamed to): on top of
/// [`normalize_mailbox_name`] (no empty level, so no `a//b`, `/a`), no `.` or `..`
/// hierarchy level and no leading `~`, which read as paths (`~user` a home directory in
/// UW-IMAP and mail programs) to anything that exports or migrates mail to files
/// (Maildir, mbox). Dovecot refuses them too (and any `.` with Maildir++). Existing
/// mailboxes with such names stay reachable.
pub fn validate_new_mailbox_name(name: &str) -> Result<String> {
    let name = normalize_mailbox_name(name)?;
    if name.split(DELIMITER).any(|p| p == "." || p == "..") {
        return Err(Error::Invalid(
            "invalid mailbox name: '.' and '..' are not allowed as hierarchy levels".into(),
        ));
    }
    if name.starts_with('~') {
        return Err(Error::Invalid(
            "invalid mailbox name: it cannot begin with '~'".into(),
        ));
    }
    Ok(name)
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests_sqlite;
