//! Letterbox configuration (`letterbox.toml`).
//!
//! The file format is the operator contract in `shared/INTERFACE.md`. Every key has a
//! default, so an empty file (or no file at all) is a valid configuration. An unknown key
//! or a malformed value is an error naming the key by its dotted path (`quota.default`).
//!
//! Every protocol limit (line length, literal size, recipients, time-outs...) lives here
//! with a name, a default and a key, so that no limit is a magic number in protocol code.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

mod filter;
pub use filter::{DmarcAction, Filter, ScannerDown};

/// A configuration error, always naming the key (or the file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub hostname: String,
    pub listen: Listen,
    pub tls: Tls,
    pub auth: Auth,
    pub quota: Quota,
    pub pop3: Pop3,
    pub smtp: Smtp,
    pub imap: Imap,
    pub limits: Limits,
    pub log: Log,
    pub server: Server,
    pub store: StoreConfig,
    pub web: Web,
    pub authd: Authd,
    pub queue: QueueConfig,
    pub outbound: Outbound,
    pub filter: Filter,
    pub import: Import,
    pub expire: Expire,
    pub attachments: Attachments,
    pub blobs: Blobs,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./letterbox-data"),
            hostname: system_hostname(),
            listen: Listen::default(),
            tls: Tls::default(),
            auth: Auth::default(),
            quota: Quota::default(),
            pop3: Pop3::default(),
            smtp: Smtp::default(),
            imap: Imap::default(),
            limits: Limits::default(),
            log: Log::default(),
            server: Server::default(),
            store: StoreConfig::default(),
            web: Web::default(),
            authd: Authd::default(),
            queue: QueueConfig::default(),
            outbound: Outbound::default(),
            filter: Filter::default(),
            import: Import::default(),
            expire: Expire::default(),
            attachments: Attachments::default(),
            blobs: Blobs::default(),
        }
    }
}

/// `[import]`: `letterbox import` (issue 16).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Import {
    /// Largest message file an import takes; larger ones are reported and skipped.
    /// Larger than `[smtp] max_message_size` by default: the old server may have taken
    /// mail a new limit would refuse, and the user's mail is not to be left behind.
    pub max_message_size: ByteSize,
    /// `import imap`: how long the source server may stay silent (connecting, or
    /// between two reads or writes) before the run stops with an error (a rerun
    /// resumes).
    pub imap_timeout: Seconds,
    /// `import maildir`: messages stored at once. Each is a durable (fsynced) write;
    /// writes that wait together share one commit, so more threads mean fewer fsyncs.
    pub threads: usize,
}

impl Default for Import {
    fn default() -> Self {
        Import {
            max_message_size: ByteSize(1024 * 1024 * 1024),
            imap_timeout: Seconds(120),
            threads: 8,
        }
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `[listen]`: each a list of `ip:port`; an empty list disables that listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub smtp: Vec<SocketAddr>,
    pub lmtp: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub submissions: Vec<SocketAddr>,
    pub imap: Vec<SocketAddr>,
    pub imaps: Vec<SocketAddr>,
    pub pop3: Vec<SocketAddr>,
    pub pop3s: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    /// The web portal over implicit TLS (the `[tls]` certificate).
    pub https: Vec<SocketAddr>,
    /// The authentication service for other MTAs (Dovecot's auth protocol, what Postfix's
    /// `smtpd_sasl_type = dovecot` speaks): UNIX socket paths or `ip:port`.
    pub auth: Vec<AuthAddr>,
    /// ManageSieve (RFC 5804; port 4190 by convention).
    pub managesieve: Vec<SocketAddr>,
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter()
        .map(|a| a.parse().expect("valid default"))
        .collect()
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            smtp: addrs(&["0.0.0.0:25"]),
            lmtp: vec![],
            submission: addrs(&["0.0.0.0:587"]),
            submissions: addrs(&["0.0.0.0:465"]),
            imap: addrs(&["0.0.0.0:143"]),
            imaps: addrs(&["0.0.0.0:993"]),
            pop3: addrs(&["0.0.0.0:110"]),
            pop3s: addrs(&["0.0.0.0:995"]),
            http: addrs(&["127.0.0.1:8080"]),
            https: vec![],
            auth: vec![],
            managesieve: vec![],
        }
    }
}

/// One `[listen] auth` entry: a UNIX socket (a path: it contains a `/`) or `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl fmt::Display for AuthAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthAddr::Unix(p) => write!(f, "{}", p.display()),
            AuthAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl FromStr for AuthAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains('/') {
            return Ok(AuthAddr::Unix(PathBuf::from(s)));
        }
        s.parse().map(AuthAddr::Tcp).map_err(|_| {
            format!("'{s}' is neither a socket path (containing '/') nor an ip:port address")
        })
    }
}

impl<'de> Deserialize<'de> for AuthAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// `[authd]`: the authentication service for other MTAs (`[listen] auth`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authd {
    /// Permissions of a UNIX socket, in octal (the MTA's user must be able to read and
    /// write it: Postfix's smtpd runs as `postfix`).
    pub socket_mode: String,
    /// Group to give a UNIX socket (e.g. `postfix`), when `serve` starts as root; empty:
    /// leave it.
    pub socket_group: String,
    /// Longest protocol line accepted (Dovecot's limit is 16384 octets).
    pub max_line_length: usize,
    /// Authentication requests one connection may have in progress at once.
    pub max_pending: usize,
}

impl Default for Authd {
    fn default() -> Self {
        Authd {
            socket_mode: "0660".into(),
            socket_group: String::new(),
            max_line_length: 16384,
            max_pending: 64,
        }
    }
}

impl Authd {
    /// `socket_mode` as a number (checked when the configuration is loaded).
    pub fn mode(&self) -> Result<u32, String> {
        u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                format!(
                    "'{}' is not an octal file mode such as \"0660\"",
                    self.socket_mode
                )
            })
    }
}

/// `[tls]`: certificate chain and key in PEM. Absent: a self-signed pair in `data_dir`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Password authentication without TLS on non-loopback connections.
    pub allow_plaintext: bool,
    /// Failed logins from one IP address (IPv6: one /64), or for one account, within
    /// `failure_window` seconds before logins from it (or to it) are blocked.
    pub max_failures: u32,
    /// Seconds over which failures are counted.
    pub failure_window: u64,
    /// Seconds a block lasts (`letterbox block list` / `lift`).
    pub block_duration: u64,
    /// Delay before answering a failed login, doubled with each further failure
    /// (milliseconds; capped at 16 times this).
    pub failure_delay_ms: u64,
    /// Seconds a successful password check is remembered, so that the same password for
    /// the same account is accepted again without the Argon2id work (a keyed hash is
    /// kept, never the password; a changed password makes it stale at once; failures are
    /// never remembered). `0` turns the cache off.
    pub cache_ttl: u64,
    /// Successful logins remembered per account (time, client address, protocol,
    /// application password), shown in the web portal; `0` records none.
    pub login_history: u32,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            allow_plaintext: false,
            max_failures: 10,
            failure_window: 900,
            block_duration: 900,
            failure_delay_ms: 500,
            cache_ttl: 300,
            login_history: 50,
        }
    }
}

/// `[quota]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Every new account's limit unless given `--quota`.
    pub default: ByteSize,
    /// Percentages; one warning message per threshold crossed upward.
    #[serde(deserialize_with = "de_percentages")]
    pub warn_at: Vec<u8>,
    /// Seconds between serve's checks for quota warnings not yet delivered (crossings by
    /// IMAP APPEND or COPY; SMTP/LMTP deliver theirs at once).
    pub warning_interval: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            default: ByteSize(200 * 1024 * 1024),
            warn_at: vec![80, 95],
            warning_interval: 10,
        }
    }
}

fn de_percentages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let mut v: Vec<i64> = Vec::deserialize(d)?;
    v.sort_unstable();
    v.dedup();
    v.into_iter()
        .map(|p| {
            if (1..=100).contains(&p) {
                Ok(p as u8)
            } else {
                Err(de::Error::custom(format!(
                    "percentage {p} is out of range (1 to 100)"
                )))
            }
        })
        .collect()
}

/// `[store]`: how the embedded store keeps mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Message bodies up to this size are kept (zstd-compressed) in the database itself,
    /// larger ones as blob files: a delivery of a small message then costs one fsync (the
    /// commit's) instead of three (file, directory, commit). `0`: every body in a file.
    pub inline_max: ByteSize,
    /// Space kept in reserve (a file `data_dir/disk-reserve`) so that deleting mail and
    /// changing flags always commit on a full disk; released when the disk fills, put
    /// back when space returns. While it is released, deliveries are refused (`452
    /// 4.3.1`). `0`: no reserve.
    pub disk_reserve: ByteSize,
    /// Non-text MIME parts (attachments) with at least this many octets of body are
    /// stored once per store, however many messages carry them; messages are rebuilt
    /// byte for byte. `0`: off (every body stored whole).
    pub part_dedup_min: ByteSize,
    /// After this long without writes the database's write-ahead log is checkpointed
    /// and cut to zero octets (it otherwise keeps its largest size). `0`: never.
    pub wal_checkpoint_idle: Seconds,
    /// What the write-ahead log is cut back to when a long burst of writes starts it
    /// over (SQLite's `journal_size_limit`).
    pub wal_size_limit: ByteSize,
    /// How long `serve` waits after its start before the first run of its periodic
    /// maintenance (blob garbage collection, the POP3 retention sweep, Trash and Junk
    /// expiry, attachment policies), so that the first clients after a start do not
    /// queue behind it. `0`: at once.
    pub maintenance_delay: Seconds,
    /// `embedded` (SQLite under `data_dir`, the default) or `postgres` (issue 17:
    /// metadata and small bodies in the PostgreSQL database of `url`, larger bodies in
    /// `data_dir/blobs` or `[blobs] url`, shared by every node).
    pub backend: StoreBackend,
    /// With `backend = "postgres"`: `postgres://user[:password]@host[:port]/database`.
    pub url: Option<String>,
    /// With `backend = "postgres"`: connections each node keeps to the database.
    pub pool_size: u32,
    /// With `backend = "postgres"`: how many times a transaction that lost a race with
    /// another node's (serialization failure, deadlock) is run again before the client
    /// gets a temporary error.
    pub conflict_retries: u32,
    /// Embedded store: the page cache of each pooled reader connection (SQLite's
    /// `cache_size`). The pool keeps at most 16 readers, so the worst case is 16 times
    /// this (32M by default); a cache fills only as pages are read.
    pub reader_cache_bytes: ByteSize,
}

/// The default of `[store] reader_cache_bytes`: 2M, about SQLite's own (the store's
/// `DEFAULT_READER_CACHE_BYTES`, where the figures are).
pub const READER_CACHE_BYTES_DEFAULT: u64 = 2 << 20;
/// `[store] reader_cache_bytes` bounds: below 64K SQLite keeps too few pages to walk an
/// index; above 1G, 16 readers could hold 16G.
pub const READER_CACHE_BYTES_MIN: u64 = 64 << 10;
pub const READER_CACHE_BYTES_MAX: u64 = 1 << 30;

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Embedded,
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            inline_max: ByteSize(64 * 1024),
            disk_reserve: ByteSize(8 << 20),
            part_dedup_min: ByteSize(64 * 1024),
            wal_checkpoint_idle: Seconds(1),
            wal_size_limit: ByteSize(16 << 20),
            maintenance_delay: Seconds(60),
            backend: StoreBackend::Embedded,
            url: None,
            pool_size: 16,
            conflict_retries: 5,
            reader_cache_bytes: ByteSize(READER_CACHE_BYTES_DEFAULT),
        }
    }
}

/// `[blobs]`: where message octets too large for the database live (issue 17). Without
/// `url`, files under `data_dir` as always; with `url = "s3://bucket[/prefix]?endpoint=
/// http://host:port&region=..."`, an S3-compatible object store. Bodies up to
/// `[store] inline_max` stay in the database either way.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Blobs {
    pub url: Option<String>,
    /// Credentials; when absent, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the
    /// environment. Never logged.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Seconds one object request (upload, download, delete) may take in all, retries
    /// included, before the operation fails with a temporary error.
    pub timeout: u64,
    /// Seconds to wait for a connection to the object store.
    pub connect_timeout: u64,
    /// Retries of a failed request (with backoff) within `timeout`.
    pub retries: u32,
    /// Seconds after which an upload's hold (taken before a delivery's transaction, so
    /// that collection leaves the object alone) is considered abandoned by a killed
    /// process; collection then deletes the object unless a message references it.
    pub hold_max: u64,
}

impl Default for Blobs {
    fn default() -> Self {
        Blobs {
            url: None,
            access_key_id: None,
            secret_access_key: None,
            timeout: 30,
            connect_timeout: 5,
            retries: 2,
            hold_max: 3600,
        }
    }
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("url", &self.url)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "<set>"))
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("hold_max", &self.hold_max)
            .finish()
    }
}

/// `[pop3]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3 {
    /// What happens to mail a POP3 client retrieved: `keep`, `delete` or `<N>d`.
    pub retention: Retention,
}

impl Default for Pop3 {
    fn default() -> Self {
        Pop3 {
            retention: Retention::Keep,
        }
    }
}

/// `[smtp]`: inbound delivery (SMTP and LMTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    /// Largest message accepted (advertised with SIZE, RFC 1870).
    pub max_message_size: ByteSize,
    /// Recipients per transaction (RFC 5321 4.5.3.1.8 asks for at least 100).
    pub max_recipients: u32,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            max_message_size: ByteSize(50 * 1024 * 1024),
            max_recipients: 100,
        }
    }
}

/// The names Outlook, Apple Mail, Thunderbird and webmails look for, by default.
pub const DEFAULT_SPECIAL_USE_ALIASES: &[(&str, &str)] = &[
    ("Sent Items", "\\Sent"),
    ("Sent Messages", "\\Sent"),
    ("Sent Mail", "\\Sent"),
    ("Deleted Items", "\\Trash"),
    ("Deleted Messages", "\\Trash"),
    ("Junk E-mail", "\\Junk"),
    ("Junk Email", "\\Junk"),
    ("Spam", "\\Junk"),
    ("Bulk Mail", "\\Junk"),
    ("Archives", "\\Archive"),
];

/// `[imap]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Imap {
    /// Largest literal (and so APPEND) accepted.
    pub max_literal_size: ByteSize,
    /// Folder names clients use for the special folders, each with the special-use
    /// attribute it stands for (`["Sent Items", "\\Sent"]`). A client that names one
    /// (SELECT, APPEND, COPY, MOVE, STATUS, CREATE, SUBSCRIBE...) reaches the account's
    /// folder that has that attribute, unless the account has a folder of exactly that
    /// name. Names match without regard to ASCII case. Setting the key replaces the
    /// default list ([`DEFAULT_SPECIAL_USE_ALIASES`]); `[]` turns aliases off.
    pub special_use_aliases: Vec<(String, String)>,
    /// Seconds between `* OK Still here` lines to a client in IDLE, so that NAT boxes and
    /// firewalls do not drop a quiet connection (Dovecot sends one every 2 minutes);
    /// 0 turns them off.
    pub idle_keepalive: u64,
    /// Messages kept in the per-mailbox indexes that IMAP sessions share (UID, flags,
    /// keywords, size, INTERNALDATE and MODSEQ of each, about 32 octets a message), all
    /// mailboxes together;
    /// past it the least recently opened mailboxes are dropped and read again from the
    /// store when next opened. 0 keeps none.
    pub index_cache_messages: u64,
    /// Messages of the stored mailbox indexes loaded into those shared indexes right after
    /// a start (the largest mailboxes first, in the background once the listeners are
    /// up), so that the first SELECT of a big mailbox after a restart finds it ready, as
    /// Dovecot finds its `dovecot.index`; never more than `index_cache_messages`. 0 loads
    /// none.
    pub preload_index_messages: u64,
    /// Heap (estimated) kept for the decoded heads and MIME trees of messages that SEARCH
    /// of header keys, SORT, THREAD and FETCH BODYSTRUCTURE read, all mailboxes together
    /// (issue 18); past it the least recently used mailboxes are dropped and read from
    /// the store again when next needed. FETCH BODYSTRUCTURE's rendered answers are kept
    /// too, and in the store for the next start. 0 keeps none (nor in the store).
    pub index_cache_bytes: ByteSize,
}

impl Default for Imap {
    fn default() -> Self {
        Imap {
            max_literal_size: ByteSize(50 * 1024 * 1024),
            special_use_aliases: DEFAULT_SPECIAL_USE_ALIASES
                .iter()
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
            idle_keepalive: 120,
            index_cache_messages: 2_000_000,
            preload_index_messages: 500_000,
            index_cache_bytes: ByteSize(256 * 1024 * 1024),
        }
    }
}

/// `[limits]`: limits shared by every protocol.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest command line, in octets (RFC 5321 asks for at least 512; IMAP wants more).
    pub max_line_length: usize,
    /// Consecutive bad commands before the session is closed.
    pub max_bad_commands: u32,
    /// Seconds a client may stay silent before authenticating.
    pub timeout_unauthenticated: u64,
    /// Seconds a client may stay silent after authenticating (IMAP IDLE aside).
    pub timeout_authenticated: u64,
    /// Seconds an IMAP IDLE may last before the server ends it (RFC 2177 asks clients to
    /// re-issue IDLE at least every 29 minutes).
    pub timeout_idle: u64,
    /// Connections open at once, all listeners together.
    pub max_connections: u32,
    /// Connections of one service (IMAP, POP3, SMTP, LMTP, submission: each counted
    /// apart) open at once from one IP address (an IPv6 client counts by its /64), unless
    /// `[limits.SERVICE] max_connections_per_ip` says otherwise. Trusted networks are
    /// never refused for it. (Before per-service limits, one count covered every
    /// service.)
    pub max_connections_per_ip: u32,
    /// Failed authentications per session before it is closed.
    pub max_auth_failures: u32,
    /// Octets of message content that all sessions together may hold in memory while
    /// receiving it (SMTP/LMTP DATA and BDAT); past it a message gets a temporary refusal.
    pub max_buffered_content: ByteSize,
    /// IMAP and POP3 sessions logged in at once as one user from one address (Dovecot's
    /// `mail_max_userip_connections`); 0: no limit. Applies to trusted networks too.
    pub max_userip_connections: u32,
    /// Networks (CIDR, `10.0.0.0/8`, `2001:db8::/32`, or one address) that the per-address
    /// connection limits never refuse; delivery (SMTP/LMTP) from them is never refused for
    /// connection counts. Default: loopback.
    pub trusted_networks: Vec<Cidr>,
    /// Per-service limits (`[limits.imap]`, `[limits.pop3]`, `[limits.smtp]`,
    /// `[limits.lmtp]`, `[limits.submission]`); implicit-TLS listeners count with their
    /// protocol.
    pub imap: ServiceLimits,
    pub pop3: ServiceLimits,
    pub smtp: ServiceLimits,
    pub lmtp: ServiceLimits,
    pub submission: ServiceLimits,
}

/// `[limits.SERVICE]`: one service's connection limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceLimits {
    /// Connections of this service open at once from one address (not from trusted
    /// networks). Absent: `[limits] max_connections_per_ip`.
    pub max_connections_per_ip: Option<u32>,
    /// Connections of this service open at once, all addresses together. Absent: only
    /// `[limits] max_connections` (all services together) applies.
    pub max_connections: Option<u32>,
}

impl Limits {
    /// A service's limits by listener base name (`imap`, `pop3`, `smtp`, `lmtp`,
    /// `submission`); other names get the defaults.
    pub fn service(&self, name: &str) -> ServiceLimits {
        match name {
            "imap" => self.imap.clone(),
            "pop3" => self.pop3.clone(),
            "smtp" => self.smtp.clone(),
            "lmtp" => self.lmtp.clone(),
            "submission" => self.submission.clone(),
            _ => ServiceLimits::default(),
        }
    }

    /// Whether `ip` is in `trusted_networks`.
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_networks.iter().any(|n| n.contains(ip))
    }
}

/// A network in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`); a bare address is a
/// network of one. An IPv4-mapped IPv6 client address matches the IPv4 networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "malformed network '{s}' (expected e.g. 10.0.0.0/8, 2001:db8::/32 or an address)"
            )
        };
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_length: 65536,
            max_bad_commands: 10,
            timeout_unauthenticated: 60,
            timeout_authenticated: 1800,
            timeout_idle: 1800,
            max_connections: 10000,
            max_connections_per_ip: 50,
            max_auth_failures: 3,
            max_buffered_content: ByteSize(512 * 1024 * 1024),
            max_userip_connections: 10,
            trusted_networks: vec![
                Cidr {
                    addr: std::net::Ipv4Addr::new(127, 0, 0, 0).into(),
                    prefix: 8,
                },
                Cidr {
                    addr: std::net::Ipv6Addr::LOCALHOST.into(),
                    prefix: 128,
                },
            ],
            imap: ServiceLimits::default(),
            pop3: ServiceLimits::default(),
            smtp: ServiceLimits::default(),
            lmtp: ServiceLimits::default(),
            submission: ServiceLimits::default(),
        }
    }
}

/// `[server]`: the process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Started as root, `serve` binds its ports and then runs as this user (and the
    /// data directory is given to it).
    pub user: String,
    /// Let `serve` keep running as root (not recommended).
    pub allow_root: bool,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            user: "letterbox".into(),
            allow_root: false,
        }
    }
}

/// `[web]`: the web portal on `[listen] http` / `https`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Web {
    /// The portal's public URL (`https://mail.example.com`), used in the links that quota
    /// warnings and the IMAP `[ALERT]` give to the usage page. Empty: built from
    /// `hostname` and the first `https` (else `http`) listener's port.
    pub url: String,
    /// Seconds a portal login lasts.
    pub session_lifetime: u64,
    /// Largest request body the portal reads (forms and JSON).
    pub max_request_body: ByteSize,
    /// Largest size a user may ask for in a quota request.
    pub max_quota_request: ByteSize,
    /// Messages the usage page lists as the largest.
    pub largest_messages: u32,
    /// Networks allowed to read `/metrics` (`"127.0.0.1/32"`, `"10.0.0.0/8"`, `"::1"`);
    /// others get 403. Default: loopback only.
    pub metrics_allow: Vec<Cidr>,
    /// The host name mail programs are told to connect to (autoconfiguration, the
    /// settings page). Empty: `hostname`.
    pub mail_host: String,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            url: String::new(),
            session_lifetime: 8 * 3600,
            max_request_body: ByteSize(64 * 1024),
            max_quota_request: ByteSize(1 << 40),
            largest_messages: 10,
            metrics_allow: vec![
                Cidr {
                    addr: std::net::Ipv4Addr::new(127, 0, 0, 0).into(),
                    prefix: 8,
                },
                Cidr {
                    addr: std::net::Ipv6Addr::LOCALHOST.into(),
                    prefix: 128,
                },
            ],
            mail_host: String::new(),
        }
    }
}

impl Config {
    /// The portal's public URL without a trailing slash (see [`Web::url`]).
    pub fn web_url(&self) -> String {
        if !self.web.url.is_empty() {
            return self.web.url.trim_end_matches('/').to_string();
        }
        if let Some(a) = self.listen.https.first() {
            return format!("https://{}:{}", self.hostname, a.port());
        }
        if let Some(a) = self.listen.http.first() {
            return format!("http://{}:{}", self.hostname, a.port());
        }
        format!("https://{}", self.hostname)
    }

    /// The portal's usage page, when the portal is on (`[web] url` set or an `http`/`https`
    /// listener configured): quota warnings and the IMAP `[ALERT]` link to it.
    pub fn web_usage_url(&self) -> Option<String> {
        let on = !self.web.url.is_empty() || !self.listen.http.is_empty() || !self.listen.https.is_empty();
        on.then(|| format!("{}/usage", self.web_url()))
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A `tracing` filter: `info`, `debug`, `letterbox_smtp=debug,info`...
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
        }
    }
}

/// A size in octets. Parses `512K`, `200M`, `2G`, `1T` (binary multiples, as Dovecot),
/// optionally followed by `B` or `iB`, or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("T", 1 << 40),
            ("G", 1 << 30),
            ("M", 1 << 20),
            ("K", 1 << 10),
        ];
        for (name, unit) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{}", self.0 / unit, name);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("malformed size '{s}' (expected e.g. 512K, 200M, 2G, 1T or a byte count)");
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = t[..digits].parse().map_err(|_| bad())?;
        let unit = t[digits..].trim_start();
        let upper = unit.to_ascii_uppercase();
        let (mult, rest) = match upper.chars().next() {
            None => (1u64, ""),
            Some('K') => (1 << 10, &upper[1..]),
            Some('M') => (1 << 20, &upper[1..]),
            Some('G') => (1 << 30, &upper[1..]),
            Some('T') => (1 << 40, &upper[1..]),
            Some('B') => (1, &upper[..]),
            Some(_) => return Err(bad()),
        };
        if !matches!(rest, "" | "B" | "IB") || (mult == 1 && rest == "IB") {
            return Err(bad());
        }
        let bytes = n.checked_mul(mult).ok_or_else(bad)?;
        // The store keeps sizes as signed 64-bit integers: a larger one would be clamped
        // silently (`--quota 18446744073709551615` became 9223372036854775807).
        if bytes > i64::MAX as u64 {
            return Err(format!(
                "size '{s}' is too large (at most {} bytes)",
                i64::MAX
            ));
        }
        Ok(ByteSize(bytes))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"200M\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[expire]`: Trash and Junk autoexpunge (issue 15), the defaults for every account;
/// `letterbox expire set` overrides them per domain or per account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expire {
    /// Messages in the `\Trash` folder are expunged this long after they were saved
    /// into it (`0`: never).
    pub trash: ExpireDays,
    /// The same for the `\Junk` folder.
    pub junk: ExpireDays,
}

/// The default age at which Trash and Junk are emptied: 30 days, as Gmail and
/// Outlook.com do, and what Dovecot's documentation uses as its autoexpunge example.
pub const DEFAULT_EXPIRE_DAYS: u32 = 30;

impl Default for Expire {
    fn default() -> Self {
        Expire {
            trash: ExpireDays(DEFAULT_EXPIRE_DAYS),
            junk: ExpireDays(DEFAULT_EXPIRE_DAYS),
        }
    }
}

/// `[attachments]`: automatic attachment removal (issue 15), the policy of every account
/// unless `letterbox attachments policy set` gives a domain or an account its own. Off by
/// default: removing a user's attachments is the operator's decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Attachments {
    /// Attachments of messages whose internal date is older than this many days are
    /// replaced by placeholders (`365d`; `0`: no automatic removal).
    pub policy_older_than: ExpireDays,
    /// Only attachments whose encoded body is at least this big.
    pub policy_larger_than: ByteSize,
    /// In these folders: names (`Sent`) or special-use attributes (`\Sent`).
    pub policy_folders: Vec<String>,
    /// How often `serve` applies the policies (once a day by default; the last run is
    /// kept in the store, so restarts neither repeat nor skip one).
    pub policy_interval: Seconds,
}

/// The default `[attachments] policy_larger_than`: 5 MiB, the issue's example.
pub const DEFAULT_POLICY_LARGER_THAN: u64 = 5 << 20;

impl Default for Attachments {
    fn default() -> Self {
        Attachments {
            policy_older_than: ExpireDays(0),
            policy_larger_than: ByteSize(DEFAULT_POLICY_LARGER_THAN),
            policy_folders: vec!["\\Sent".into(), "\\Archive".into()],
            policy_interval: Seconds(86_400),
        }
    }
}

/// An expiry age in days, written `30d`; `0` (or `0d`, `off`) turns expiry off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpireDays(pub u32);

impl fmt::Display for ExpireDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("0"),
            n => write!(f, "{n}d"),
        }
    }
}

impl FromStr for ExpireDays {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "0" || s == "off" {
            return Ok(ExpireDays(0));
        }
        s.strip_suffix('d')
            .filter(|n| !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .map(ExpireDays)
            .ok_or_else(|| format!("malformed expiry '{s}' (expected a number of days such as 30d, or 0 for never)"))
    }
}

impl<'de> Deserialize<'de> for ExpireDays {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ExpireDays;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of days such as \"30d\", or 0")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExpireDays, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExpireDays, E> {
                match v {
                    0 => Ok(ExpireDays(0)),
                    _ => Err(E::custom("write a number of days with its unit, such as \"30d\", or 0")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// POP3 retention: what happens to mail a POP3 client has retrieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// RFC 1939: only DELE deletes.
    Keep,
    /// Every message retrieved in a session that ends with QUIT is deleted.
    Delete,
    /// Messages are expunged this many days after their first retrieval.
    Days(u32),
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Keep => f.write_str("keep"),
            Retention::Delete => f.write_str("delete"),
            Retention::Days(n) => write!(f, "{n}d"),
        }
    }
}

impl FromStr for Retention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(Retention::Keep),
            "delete" => Ok(Retention::Delete),
            _ => s
                .strip_suffix('d')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .map(Retention::Days)
                .ok_or_else(|| {
                    format!("malformed retention '{s}' (expected keep, delete or a number of days such as 30d)")
                }),
        }
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A duration in seconds. Parses `30s`, `10m`, `4h`, `5d`, or a plain number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u64);

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("malformed duration '{s}' (expected e.g. 30s, 10m, 4h, 5d or seconds)");
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = t[..digits].parse().map_err(|_| bad())?;
        let mult = match t[digits..].trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(Seconds).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"4h\" or a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(Seconds)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[queue]`: the outbound queue (issue 12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// A message still undelivered this long after it was queued is bounced (RFC 5321
    /// 4.5.4.1 suggests 4-5 days).
    pub max_age: Seconds,
    /// A delay notice (RFC 3464 `delayed`) goes to the sender once, after this long.
    pub delay_warning: Seconds,
    /// First retry delay after a temporary failure; doubled at each attempt...
    pub min_backoff: Seconds,
    /// ...up to this.
    pub max_backoff: Seconds,
    /// How often the scheduler looks for due entries when nothing woke it (entries made
    /// due by another process: `letterbox queue retry|release`).
    pub poll_interval: Seconds,
    /// Deliveries (SMTP connections) at once, in all.
    pub max_concurrency: u32,
    /// Deliveries at once to one destination domain.
    pub max_per_destination: u32,
    /// With several nodes on PostgreSQL: how long a node holds a due entry it took before
    /// another node may try it (longer than one attempt can last; a node that dies
    /// mid-attempt leaves its entries to the others after this).
    pub lease: Seconds,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_age: Seconds(5 * 86_400),
            delay_warning: Seconds(4 * 3600),
            min_backoff: Seconds(300),
            max_backoff: Seconds(4 * 3600),
            poll_interval: Seconds(1),
            max_concurrency: 20,
            max_per_destination: 4,
            lease: Seconds(30 * 60),
        }
    }
}

/// `[outbound]`: delivery to remote hosts and the abuse limits of submission.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// The DNS resolver (`ip:port`); absent: the system's (`/etc/resolv.conf`).
    pub dns: Option<SocketAddr>,
    /// A smarthost: `smtp://host:port` (STARTTLS when offered) or `smtps://host:port`
    /// (implicit TLS); absent: direct delivery by MX.
    pub relay: Option<String>,
    pub relay_user: Option<String>,
    pub relay_password: Option<String>,
    /// A file whose first line is the relay password (instead of `relay_password`).
    pub relay_password_file: Option<PathBuf>,
    /// Extra trust roots (PEM) for validated TLS (MTA-STS, the relay), besides the
    /// system's.
    pub tls_ca_file: Option<PathBuf>,
    /// The port remote MX hosts are reached on (25; other values for tests).
    pub port: u16,
    /// The port of the MTA-STS policy host (443; other values for tests).
    pub mta_sts_port: u16,
    /// Whether MTA-STS (RFC 8461) policies are looked up and honoured.
    pub mta_sts: bool,
    /// Connecting to a remote host gives up after this long.
    pub connect_timeout: Seconds,
    /// Waiting for any one reply gives up after this long (RFC 5321 4.5.3.2: minutes).
    pub timeout: Seconds,
    /// Per account: messages with remote recipients per hour (0: no limit).
    pub max_messages_per_hour: u32,
    /// Per account: recipients of one submitted message (0: `[smtp] max_recipients`).
    pub max_recipients_per_message: u32,
    /// Per account: remote recipients per day (0: no limit).
    pub max_recipients_per_day: u32,
    /// Whether DANE (RFC 7672) TLSA records are honoured; only effective with a
    /// validating resolver on loopback, whose AD bit is trusted.
    pub dane: bool,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            dns: None,
            relay: None,
            relay_user: None,
            relay_password: None,
            relay_password_file: None,
            tls_ca_file: None,
            port: 25,
            mta_sts_port: 443,
            mta_sts: true,
            connect_timeout: Seconds(30),
            timeout: Seconds(300),
            max_messages_per_hour: 100,
            max_recipients_per_message: 50,
            max_recipients_per_day: 1000,
            dane: true,
        }
    }
}

/// A folder name fit for `[filter] junk_folder`: not empty, no control characters.
fn normalize_folder(s: &str) -> Option<&str> {
    (!s.trim().is_empty() && !s.chars().any(|c| c.is_control())).then_some(s)
}

impl Config {
    /// Parses configuration text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            if key.is_empty() || key == "." {
                ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: inner.to_string().trim().replace('\n', " "),
                }
            } else {
                ConfigError::Key {
                    path: path.to_path_buf(),
                    key,
                    message,
                }
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, message: &str| ConfigError::Key {
            path: path.to_path_buf(),
            key: key.to_string(),
            message: message.to_string(),
        };
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            return Err(err("hostname", "must be a host name without spaces"));
        }
        if self.server.user.is_empty() {
            return Err(err("server.user", "must name a user"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "must not be empty"));
        }
        if self.limits.max_line_length < 1024 {
            return Err(err("limits.max_line_length", "must be at least 1024"));
        }
        if self.store.backend == StoreBackend::Postgres {
            let ok = self.store.url.as_deref().is_some_and(|u| {
                u.starts_with("postgres://") || u.starts_with("postgresql://")
            });
            if !ok {
                return Err(err(
                    "store.url",
                    "backend = \"postgres\" needs url = \"postgres://user@host:port/database\"",
                ));
            }
        }
        if self.store.pool_size == 0 {
            return Err(err("store.pool_size", "must be at least 1"));
        }
        if !(READER_CACHE_BYTES_MIN..=READER_CACHE_BYTES_MAX)
            .contains(&self.store.reader_cache_bytes.0)
        {
            return Err(err(
                "store.reader_cache_bytes",
                &format!(
                    "must be between {} and {}",
                    ByteSize(READER_CACHE_BYTES_MIN),
                    ByteSize(READER_CACHE_BYTES_MAX)
                ),
            ));
        }
        if let Some(relay) = &self.outbound.relay {
            let ok = relay
                .strip_prefix("smtp://")
                .or_else(|| relay.strip_prefix("smtps://"))
                .is_some_and(|hp| {
                    hp.rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                });
            if !ok {
                return Err(err(
                    "outbound.relay",
                    "expected smtp://host:port or smtps://host:port",
                ));
            }
        }
        if self.queue.max_concurrency == 0 || self.queue.max_per_destination == 0 {
            return Err(err(
                "queue.max_concurrency",
                "concurrency limits must be at least 1",
            ));
        }
        if self.queue.lease.0 == 0 {
            return Err(err("queue.lease", "must be at least 1s"));
        }
        if self.smtp.max_recipients == 0 {
            return Err(err("smtp.max_recipients", "must be at least 1"));
        }
        if self.web.session_lifetime == 0 {
            return Err(err("web.session_lifetime", "must be at least 1 second"));
        }
        if !self.web.url.is_empty()
            && !(self.web.url.starts_with("https://") || self.web.url.starts_with("http://"))
        {
            return Err(err("web.url", "must start with https:// or http://"));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(err("tls", "cert and key go together: give both or neither"));
        }
        if !self.filter.rspamd.is_empty() && !self.filter.rspamd.starts_with("http://") {
            return Err(err("filter.rspamd", "must be an http:// URL such as http://127.0.0.1:11333"));
        }
        if !self.filter.rspamd_controller.is_empty()
            && !self.filter.rspamd_controller.starts_with("http://")
        {
            return Err(err("filter.rspamd_controller", "must be an http:// URL such as http://127.0.0.1:11334"));
        }
        if !self.filter.dns.is_empty() && self.filter.dns.parse::<SocketAddr>().is_err() {
            return Err(err("filter.dns", "must be ip:port, such as 127.0.0.1:53"));
        }
        if crate::normalize_folder(&self.filter.junk_folder).is_none() {
            return Err(err("filter.junk_folder", "must be a folder name"));
        }
        for (name, attr) in &self.imap.special_use_aliases {
            if !matches!(
                attr.as_str(),
                "\\Sent" | "\\Drafts" | "\\Trash" | "\\Junk" | "\\Archive"
            ) || name.is_empty()
                || name.eq_ignore_ascii_case("INBOX")
            {
                return Err(err(
                    "imap.special_use_aliases",
                    "each entry is [\"Folder Name\", \"\\\\Sent\"|\"\\\\Drafts\"|\"\\\\Trash\"|\"\\\\Junk\"|\"\\\\Archive\"]",
                ));
            }
        }
        if let Err(m) = self.authd.mode() {
            return Err(err("authd.socket_mode", &m));
        }
        if self.authd.max_line_length < 1024 {
            return Err(err("authd.max_line_length", "must be at least 1024"));
        }
        if self.authd.max_pending == 0 {
            return Err(err("authd.max_pending", "must be at least 1"));
        }
        Ok(())
    }

    /// Loads the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// The contract's lookup: an explicit `--config`, then `$LETTERBOX_CONFIG`, then
    /// `./letterbox.toml`; with none of them present, the built-in defaults. A file named
    /// explicitly (flag or variable) must exist.
    pub fn discover(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        if let Some(p) = explicit {
            return Ok((Config::load(p)?, Some(p.to_path_buf())));
        }
        if let Some(p) = std::env::var_os("LETTERBOX_CONFIG").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            return Ok((Config::load(&p)?, Some(p)));
        }
        let local = PathBuf::from("letterbox.toml");
        if local.exists() {
            return Ok((Config::load(&local)?, Some(local)));
        }
        Ok((Config::default(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("t.toml"))
    }

    #[test]
    fn connection_limits() {
        let c = parse("").unwrap();
        assert_eq!(c.limits.max_userip_connections, 10);
        assert!(c.limits.is_trusted("127.0.0.9".parse().unwrap()));
        assert!(c.limits.is_trusted("::1".parse().unwrap()));
        assert!(c.limits.is_trusted("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.limits.is_trusted("192.0.2.1".parse().unwrap()));
        assert_eq!(c.limits.service("imap").max_connections_per_ip, None);
        let c = parse(
            "[limits]\nmax_connections_per_ip = 7\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"]\n\
             [limits.imap]\nmax_connections_per_ip = 200\nmax_connections = 900\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_connections_per_ip, 7);
        assert_eq!(c.limits.service("imap").max_connections_per_ip, Some(200));
        assert_eq!(c.limits.service("imap").max_connections, Some(900));
        assert!(c.limits.is_trusted("10.1.2.3".parse().unwrap()));
        assert!(c.limits.is_trusted("2001:db8:5::1".parse().unwrap()));
        assert!(c.limits.is_trusted("192.0.2.7".parse().unwrap()));
        assert!(!c.limits.is_trusted("192.0.2.8".parse().unwrap()));
        assert!(!c.limits.is_trusted("127.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "nonsense", "::/129"] {
            let e = parse(&format!("[limits]\ntrusted_networks = [\"{bad}\"]\n")).unwrap_err();
            assert!(e.to_string().contains("limits.trusted_networks"), "{e}");
        }
        let e = parse("[limits.imap]\nmax_per_ip = 3\n").unwrap_err();
        assert!(e.to_string().contains("limits.imap"), "{e}");
    }

    #[test]
    fn sizes() {
        for (s, n) in [
            ("0", 0),
            ("512K", 512 << 10),
            ("200M", 200 << 20),
            ("200MB", 200 << 20),
            ("200MiB", 200 << 20),
            ("200m", 200 << 20),
            ("2G", 2 << 30),
            ("1T", 1 << 40),
            ("1024", 1024),
            ("1024B", 1024),
            ("9223372036854775807", i64::MAX as u64),
        ] {
            assert_eq!(s.parse::<ByteSize>(), Ok(ByteSize(n)), "{s}");
        }
        for s in [
            "",
            "12X",
            "M",
            "-1",
            "1.5G",
            "1Gx",
            "1iB",
            "99999999999999999999T",
            "1 G B",
            // Over i64::MAX, the store's limit: refused, never clamped.
            "9223372036854775808",
            "18446744073709551615",
            "8388608T",
        ] {
            assert!(s.parse::<ByteSize>().is_err(), "{s} should fail");
        }
        assert_eq!(ByteSize(200 << 20).to_string(), "200M");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn expire_days() {
        assert_eq!("30d".parse(), Ok(ExpireDays(30)));
        assert_eq!("0".parse(), Ok(ExpireDays(0)));
        assert_eq!("off".parse(), Ok(ExpireDays(0)));
        for s in ["", "d", "30", "-1d", "1y", "9999999d"] {
            assert!(s.parse::<ExpireDays>().is_err(), "{s}");
        }
        let c = parse("[expire]\ntrash = \"7d\"\njunk = 0\n").unwrap();
        assert_eq!((c.expire.trash, c.expire.junk), (ExpireDays(7), ExpireDays(0)));
        let c = parse("").unwrap();
        assert_eq!(c.expire.trash, ExpireDays(DEFAULT_EXPIRE_DAYS));
        assert!(parse("[expire]\ntrash = 5\n").is_err());
    }

    #[test]
    fn attachment_policy() {
        let c = parse("").unwrap();
        assert_eq!(c.attachments.policy_older_than, ExpireDays(0));
        assert_eq!(c.attachments.policy_larger_than, ByteSize(5 << 20));
        assert_eq!(c.attachments.policy_folders, vec!["\\Sent", "\\Archive"]);
        assert_eq!(c.attachments.policy_interval, Seconds(86_400));
        // The README's example.
        let c = parse(
            "[attachments]\npolicy_older_than = \"365d\"\npolicy_larger_than = \"5M\"\n\
             policy_folders = [\"\\\\Sent\", \"Archive\"]\npolicy_interval = \"1d\"\n",
        )
        .unwrap();
        assert_eq!(c.attachments.policy_older_than, ExpireDays(365));
        assert_eq!(c.attachments.policy_folders, vec!["\\Sent", "Archive"]);
        let e = parse("[attachments]\npolicy_older_than = \"1y\"\n").unwrap_err();
        assert!(e.to_string().contains("attachments"), "{e}");
    }

    #[test]
    fn retention() {
        assert_eq!("keep".parse(), Ok(Retention::Keep));
        assert_eq!("delete".parse(), Ok(Retention::Delete));
        assert_eq!("30d".parse(), Ok(Retention::Days(30)));
        for s in ["0d", "d", "30", "30days", "-1d", "Keep"] {
            assert!(s.parse::<Retention>().is_err(), "{s}");
        }
    }

    #[test]
    fn empty_file_is_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.quota.default, ByteSize(200 << 20));
        assert_eq!(c.quota.warn_at, vec![80, 95]);
        assert_eq!(c.pop3.retention, Retention::Keep);
        assert!(c.listen.lmtp.is_empty());
        assert_eq!(c.listen.imap, addrs(&["0.0.0.0:143"]));
    }

    #[test]
    fn full_contract_example_parses() {
        let c = parse(
            r#"
data_dir = "/var/lib/letterbox"
hostname = "mail.example.com"
[listen]
smtp = ["0.0.0.0:25"]
lmtp = []
imap = ["127.0.0.1:1143", "[::1]:1143"]
[tls]
cert = "/etc/letterbox/fullchain.pem"
key  = "/etc/letterbox/privkey.pem"
[auth]
allow_plaintext = false
[quota]
default = "1G"
warn_at = [95, 80]
[pop3]
retention = "14d"
"#,
        )
        .unwrap();
        assert_eq!(c.quota.default, ByteSize(1 << 30));
        assert_eq!(c.quota.warn_at, vec![80, 95]);
        assert_eq!(c.pop3.retention, Retention::Days(14));
        assert_eq!(c.listen.imap.len(), 2);
    }

    #[test]
    fn auth_listeners() {
        let c = parse("[listen]\nauth = [\"/run/letterbox/auth\", \"127.0.0.1:12345\"]\n[authd]\nsocket_mode = \"0666\"\n").unwrap();
        assert_eq!(
            c.listen.auth,
            vec![
                AuthAddr::Unix("/run/letterbox/auth".into()),
                AuthAddr::Tcp("127.0.0.1:12345".parse().unwrap())
            ]
        );
        assert_eq!(c.authd.mode(), Ok(0o666));
        assert!(parse("").unwrap().listen.auth.is_empty());
        let e = parse("[listen]\nauth = [\"auth-socket\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen.auth"), "{e}");
        let e = parse("[authd]\nsocket_mode = \"rw\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("authd.socket_mode"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[quota]\ndefault = \"12X\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`quota.default`") && e.contains("12X"), "{e}");
        let e = parse("[quota]\nnonsense = 1\n").unwrap_err().to_string();
        assert!(
            e.contains("quota.nonsense") || e.contains("nonsense"),
            "{e}"
        );
        let e = parse("bogus = 1\n").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("[listen]\nimap = [\"localhost\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen.imap"), "{e}");
        let e = parse("[pop3]\nretention = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pop3.retention"), "{e}");
        let e = parse("[quota]\nwarn_at = [80, 120]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("quota.warn_at"), "{e}");
        let e = parse("hostname = \"\"\n").unwrap_err().to_string();
        assert!(e.contains("hostname"), "{e}");
        let e = parse("data_dir = [").unwrap_err().to_string();
        assert!(e.contains("t.toml"), "{e}");
        let e = parse("[imap]\nspecial_use_aliases = [[\"INBOX\", \"\\\\Sent\"]]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("imap.special_use_aliases"), "{e}");
    }

    #[test]
    fn web_metrics_allow_networks() {
        let c = parse("").unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let allowed = |c: &Config, s: &str| c.web.metrics_allow.iter().any(|n| n.contains(ip(s)));
        assert!(allowed(&c, "127.0.0.2") && allowed(&c, "::1") && allowed(&c, "::ffff:127.0.0.1"));
        assert!(!allowed(&c, "192.0.2.1"));
        let c = parse("[web]\nmetrics_allow = [\"127.0.0.1/32\", \"10.0.0.0/8\", \"2001:db8::/32\"]\n").unwrap();
        assert!(allowed(&c, "127.0.0.1") && !allowed(&c, "127.0.0.2"));
        assert!(allowed(&c, "10.200.0.1") && allowed(&c, "2001:db8:1::1") && !allowed(&c, "2001:db9::1"));
        let e = parse("[web]\nmetrics_allow = [\"10.0.0.0/33\"]\n").unwrap_err().to_string();
        assert!(e.contains("web.metrics_allow"), "{e}");
        let c = parse("[web]\nmetrics_allow = [\"0.0.0.0/0\"]\n").unwrap();
        assert!(allowed(&c, "192.0.2.1"));
    }

    #[test]
    fn store_inline_max_and_auth_cache_ttl() {
        let c = parse("").unwrap();
        assert_eq!(c.store.inline_max, ByteSize(64 << 10));
        assert_eq!(c.auth.cache_ttl, 300);
        let c = parse("[store]\ninline_max = \"0\"\n[auth]\ncache_ttl = 0\n").unwrap();
        assert_eq!((c.store.inline_max, c.auth.cache_ttl), (ByteSize(0), 0));
        let c = parse("[store]\ninline_max = \"256K\"\n").unwrap();
        assert_eq!(c.store.inline_max, ByteSize(256 << 10));
        assert_eq!(c.store.part_dedup_min, ByteSize(64 << 10));
        let c = parse("[store]\npart_dedup_min = \"1M\"\n").unwrap();
        assert_eq!(c.store.part_dedup_min, ByteSize(1 << 20));
        let c = parse("[store]\npart_dedup_min = 0\n").unwrap();
        assert_eq!(c.store.part_dedup_min, ByteSize(0));
        assert_eq!(parse("").unwrap().store.wal_checkpoint_idle, Seconds(1));
        let c = parse("[store]\nwal_checkpoint_idle = \"10s\"\nwal_size_limit = \"4M\"\n").unwrap();
        assert_eq!(c.store.wal_checkpoint_idle, Seconds(10));
        assert_eq!(c.store.wal_size_limit, ByteSize(4 << 20));
        assert_eq!(parse("").unwrap().store.maintenance_delay, Seconds(60));
        let c = parse("[store]\nmaintenance_delay = 0\n").unwrap();
        assert_eq!(c.store.maintenance_delay, Seconds(0));
        assert_eq!(parse("").unwrap().queue.lease, Seconds(1800));
        assert_eq!(parse("[queue]\nlease = \"5m\"\n").unwrap().queue.lease, Seconds(300));
        let e = parse("[queue]\nlease = 0\n").unwrap_err().to_string();
        assert!(e.contains("queue.lease"), "{e}");
        let e = parse("[store]\ninline_max = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.inline_max"), "{e}");
        let e = parse("[auth]\ncache_ttl = -1\n").unwrap_err().to_string();
        assert!(e.contains("auth.cache_ttl"), "{e}");
    }

    #[test]
    fn store_backend_postgres() {
        let c = parse("").unwrap();
        assert_eq!((c.store.backend, c.store.pool_size), (StoreBackend::Embedded, 16));
        assert_eq!(c.store.conflict_retries, 5);
        let c = parse("[store]\nbackend = \"postgres\"\nurl = \"postgres://u@h:5432/d\"\npool_size = 4\nconflict_retries = 0\n")
            .unwrap();
        assert_eq!(c.store.backend, StoreBackend::Postgres);
        assert_eq!(c.store.url.as_deref(), Some("postgres://u@h:5432/d"));
        assert_eq!((c.store.pool_size, c.store.conflict_retries), (4, 0));
        let e = parse("[store]\nbackend = \"postgres\"\n").unwrap_err().to_string();
        assert!(e.contains("store.url"), "{e}");
        let e = parse("[store]\nbackend = \"mysql\"\n").unwrap_err().to_string();
        assert!(e.contains("store.backend"), "{e}");
    }

    #[test]
    fn special_use_aliases_default_and_replaced() {
        let c = parse("").unwrap();
        assert!(c
            .imap
            .special_use_aliases
            .contains(&("Sent Items".to_string(), "\\Sent".to_string())));
        assert_eq!(
            c.imap.special_use_aliases.len(),
            DEFAULT_SPECIAL_USE_ALIASES.len()
        );
        let c = parse("[imap]\nspecial_use_aliases = [[\"Gesendet\", \"\\\\Sent\"]]\n").unwrap();
        assert_eq!(
            c.imap.special_use_aliases,
            vec![("Gesendet".to_string(), "\\Sent".to_string())]
        );
        let c = parse("[imap]\nspecial_use_aliases = []\n").unwrap();
        assert!(c.imap.special_use_aliases.is_empty());
    }
}
