//! The administration commands of the contract (`domain`, `user`, `alias`, `quota`) and
//! a few of our own (`message`, `deliver`, `check`, `gc`, `retention`). They open the
//! same store as a running `serve` (SQLite locking makes that safe) and take effect at
//! once. Each prints one clear line on error and exits non-zero; nothing is half-done,
//! since every change is one store transaction.

use crate::Command;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use letterbox_config::{ByteSize, Config, Retention};
use letterbox_store::{password, Error, QuotaLimit, Resolved, Store, StoreOptions};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum DomainCmd {
    Add { domain: String },
    Remove { domain: String },
    List,
    Dkim(crate::dkim_cmd::DkimArgs),
    Dns(crate::dns_cmd::DnsArgs),
}

#[derive(Args)]
pub struct PasswordArgs {
    /// Read the password (one line) from standard input.
    #[arg(long, conflicts_with = "password_hash")]
    password_stdin: bool,
    /// An existing hash in Dovecot's {SCHEME}hash form.
    #[arg(long, value_name = "HASH")]
    password_hash: Option<String>,
}

#[derive(Subcommand)]
pub enum UserCmd {
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Quota (e.g. 500M, 2G); default: [quota] default.
        // Hyphen values allowed: `--quota -5M` is a malformed size, not an unknown option.
        #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
        quota: Option<String>,
    },
    Remove {
        address: String,
        /// Remove the account even though it holds mail (the mail is deleted).
        #[arg(long)]
        force: bool,
    },
    List,
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set a per-account setting: `pop3-retention keep|delete|<N>d|default`.
    Set {
        address: String,
        setting: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Application passwords: one per mail program, for IMAP, POP3 or SMTP only.
    #[command(subcommand)]
    AppPassword(crate::apppass_cmd::AppPasswordCmd),
    /// Recent successful logins: time, client address, protocol, app password.
    Logins {
        address: String,
    },
}

#[derive(Subcommand)]
pub enum AliasCmd {
    Add {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Remove targets, or the whole alias when none are given.
    Remove {
        address: String,
        targets: Vec<String>,
    },
    List {
        address: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum QuotaCmd {
    /// Usage, limit and percentage.
    Show { address: Option<String> },
    /// SIZE (512K, 200M, 2G...), `default` or `unlimited`.
    Set {
        address: String,
        #[arg(allow_hyphen_values = true)]
        size: String,
    },
    /// Recompute usage from the stored messages.
    Recalc { address: Option<String> },
    /// Requests for more room from the portal (pending ones; --all: every one, decided too).
    Requests {
        #[arg(long)]
        all: bool,
    },
    /// Approve a request: the account's quota becomes SIZE (default: the size asked).
    Approve { id: i64, size: Option<String> },
    /// Deny a request; the user is mailed the REASON.
    Deny {
        id: i64,
        #[arg(required = true, trailing_var_arg = true)]
        reason: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum MessageCmd {
    /// UID, size, flags and internal date of each message.
    List {
        address: String,
        #[arg(default_value = "INBOX")]
        mailbox: String,
    },
    /// Write a message's octets to standard output.
    Get {
        address: String,
        mailbox: String,
        uid: u32,
    },
}

#[derive(Args)]
pub struct DeliverArgs {
    /// Envelope sender, recorded as Return-Path (like dovecot-lda -f).
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,
    /// Recipient addresses (aliases and user+tag resolve as for SMTP).
    #[arg(required = true)]
    recipients: Vec<String>,
}

#[derive(Subcommand)]
pub enum BlockCmd {
    /// Blocks in force: key, until (UTC), reason.
    List,
    /// Lift a block: an IP address, an account address, or a key as listed.
    Lift { key: String },
}

#[derive(Subcommand)]
pub enum RetentionCmd {
    /// Expunge mail retrieved by POP3 longer ago than each account's `<N>d` retention.
    Sweep {
        /// Act as if it were this time (seconds since the epoch).
        #[arg(long)]
        now: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum ExpireCmd {
    /// Expunge what has been in Trash or Junk longer than its policy allows.
    Run {
        /// Act as if it were this time (seconds since the epoch).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Set a domain's or an account's expiry: FOLDER is `trash` or `junk`, DAYS is
    /// `<N>d`, `0` (never) or `default` (inherit).
    Set {
        scope: String,
        folder: String,
        days: String,
    },
    /// The domains and accounts with their own expiry, and the configured defaults.
    Show,
}

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        default_quota: config.quota.default.0,
        warn_at: config.quota.warn_at.clone(),
        default_retention: config.pop3.retention,
        inline_max: config.store.inline_max.0,
        auth_cache_ttl: config.auth.cache_ttl,
        disk_reserve: config.store.disk_reserve.0,
        expire_trash_days: config.expire.trash.0,
        expire_junk_days: config.expire.junk.0,
        strip_policy: letterbox_store::StripPolicy {
            older_than_days: config.attachments.policy_older_than.0,
            larger_than: config.attachments.policy_larger_than.0,
            folders: config.attachments.policy_folders.clone(),
        },
        part_dedup_min: config.store.part_dedup_min.0,
        objects: config.blobs.url.as_ref().map(|url| letterbox_store::s3::ObjectsOptions {
            url: url.clone(),
            access_key_id: config.blobs.access_key_id.clone(),
            secret_access_key: config.blobs.secret_access_key.clone(),
            timeout: std::time::Duration::from_secs(config.blobs.timeout.max(1)),
            connect_timeout: std::time::Duration::from_secs(config.blobs.connect_timeout.max(1)),
            retries: config.blobs.retries,
            hold_max: config.blobs.hold_max,
        }),
        wal_checkpoint_idle: std::time::Duration::from_secs(config.store.wal_checkpoint_idle.0),
        wal_size_limit: config.store.wal_size_limit.0,
        reader_cache_bytes: config.store.reader_cache_bytes.0,
        queue_lease: config.queue.lease.0,
        conflict_retries: config.store.conflict_retries,
    }
}

pub fn open_store(config: &Config) -> Result<Store> {
    match (config.store.backend, &config.store.url) {
        (letterbox_config::StoreBackend::Postgres, Some(url)) => Store::open_postgres(
            url,
            &config.data_dir,
            config.store.pool_size,
            store_options(config),
        )
        .context("cannot open the PostgreSQL store ([store] url)"),
        _ => Store::open_embedded(&config.data_dir, store_options(config))
            .with_context(|| format!("cannot open the store in {}", config.data_dir.display())),
    }
}

/// `letterbox migrate`: applies the schema to the configured store and prints its
/// version; exit 75 (EX_TEMPFAIL) when the database cannot be reached, 78 (EX_CONFIG)
/// when `[store] url` is wrong (e.g. an sslrootcert that is not there).
pub fn migrate_schema(config: &Config) -> Result<std::process::ExitCode> {
    match (config.store.backend, &config.store.url) {
        (letterbox_config::StoreBackend::Postgres, Some(url)) => {
            match letterbox_store::pg::migrate_url(url) {
                Ok(v) => {
                    println!("schema version {v}");
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(letterbox_store::Error::Unavailable(e)) => {
                    eprintln!("letterbox: PostgreSQL unreachable: {e}");
                    Ok(std::process::ExitCode::from(75))
                }
                Err(letterbox_store::Error::Invalid(e)) => {
                    eprintln!("letterbox: {e}");
                    Ok(std::process::ExitCode::from(78)) // EX_CONFIG
                }
                Err(e) => Err(anyhow!("migration failed: {e}")),
            }
        }
        _ => {
            // The embedded store brings its schema up to date when it opens.
            open_store(config)?;
            println!("embedded store: schema up to date");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn read_password(p: &PasswordArgs) -> Result<String> {
    if let Some(h) = &p.password_hash {
        password::validate_import(h).map_err(|e| anyhow!(e))?;
        return Ok(h.clone());
    }
    if !p.password_stdin {
        bail!("give the password with --password-stdin or --password-hash");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let pw = line.trim_end_matches(['\r', '\n']);
    if pw.is_empty() {
        bail!("empty password on standard input");
    }
    Ok(password::hash(pw))
}

fn parse_quota(s: &str) -> Result<QuotaLimit> {
    Ok(match s {
        "default" => QuotaLimit::Default,
        "unlimited" => QuotaLimit::Unlimited,
        _ => QuotaLimit::Bytes(s.parse::<ByteSize>().map_err(|e| anyhow!(e))?.0),
    })
}

fn show_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1}M", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1}K", n as f64 / 1024.0)
    } else {
        format!("{n}")
    }
}

fn quota_line(a: &letterbox_store::Account) -> String {
    let limit = match a.effective_limit {
        Some(l) => ByteSize(l).to_string(),
        None => "unlimited".into(),
    };
    let pct = match a.effective_limit {
        Some(_) => format!("{}%", a.percent_used()),
        None => "-".into(),
    };
    let source = match a.quota_limit {
        QuotaLimit::Default => " (default)",
        _ => "",
    };
    format!(
        "{}\t{}\t{}{}\t{}\tpop3-retention={}",
        a.address,
        show_size(a.quota_used),
        limit,
        source,
        pct,
        a.effective_retention
    )
}

pub fn run(cmd: Command, config: &Config) -> Result<ExitCode> {
    let store = open_store(config)?;
    let out = &mut std::io::stdout().lock();
    match cmd {
        Command::Serve => unreachable!("serve is run by serve::run"),
        Command::Migrate(_) => unreachable!("migrate runs before the store is opened"),
        Command::Domain(c) => match c {
            DomainCmd::Add { domain } => store.add_domain(&domain)?,
            DomainCmd::Remove { domain } => store.remove_domain(&domain)?,
            DomainCmd::List => {
                for d in store.list_domains()? {
                    writeln!(out, "{d}")?;
                }
            }
            DomainCmd::Dkim(args) => crate::dkim_cmd::run(&store, &args, out)?,
            DomainCmd::Dns(args) => crate::dns_cmd::run(&store, config, &args.domain, out)?,
        },
        Command::User(c) => match c {
            UserCmd::Add {
                address,
                password,
                quota,
            } => {
                let q = quota
                    .as_deref()
                    .map(parse_quota)
                    .transpose()?
                    .unwrap_or(QuotaLimit::Default);
                letterbox_store::validate_address(&address)?;
                let hash = read_password(&password)?;
                store.add_account(&address, &hash, q)?;
            }
            UserCmd::Remove { address, force } => store.remove_account(&address, force)?,
            UserCmd::List => {
                for a in store.list_accounts()? {
                    writeln!(out, "{}", quota_line(&a))?;
                }
            }
            UserCmd::Passwd { address, password } => {
                store.account(&address)?;
                let hash = read_password(&password)?;
                store.set_password_hash(&address, &hash)?;
            }
            UserCmd::Set {
                address,
                setting,
                value,
            } => match setting.as_str() {
                "pop3-retention" => {
                    let r = if value == "default" {
                        None
                    } else {
                        Some(value.parse::<Retention>().map_err(|e| anyhow!(e))?)
                    };
                    store.set_retention(&address, r)?;
                }
                "outbound" => {
                    let hold = match value.as_str() {
                        "hold" => true,
                        "allow" => false,
                        other => bail!("unknown outbound value '{other}' (expected hold or allow)"),
                    };
                    let a = store.account(&address)?;
                    store.set_outbound_hold(a.id, hold)?;
                }
                other => bail!("unknown setting '{other}' (known: pop3-retention, outbound)"),
            },
            UserCmd::AppPassword(c) => crate::apppass_cmd::run(&store, c, out)?,
            UserCmd::Logins { address } => {
                for l in store.recent_logins(&address)? {
                    let app = l
                        .app_password
                        .as_deref()
                        .map(letterbox_proto::auth::loggable);
                    writeln!(
                        out,
                        "{}	{}	{}	{}",
                        utc(l.at),
                        l.remote,
                        l.protocol,
                        app.as_deref().unwrap_or("-")
                    )?;
                }
            }
        },
        Command::Alias(c) => match c {
            AliasCmd::Add { address, targets } => store.add_alias(&address, &targets)?,
            AliasCmd::Remove { address, targets } => store.remove_alias(&address, &targets)?,
            AliasCmd::List { address } => {
                for (a, targets) in store.list_aliases(address.as_deref())? {
                    writeln!(out, "{a}\t{}", targets.join(" "))?;
                }
            }
        },
        Command::Quota(c) => match c {
            QuotaCmd::Show { address } => {
                let accounts = match address {
                    Some(a) => vec![store.account(&a)?],
                    None => store.list_accounts()?,
                };
                for a in &accounts {
                    writeln!(out, "{}", quota_line(a))?;
                    if a.effective_limit.is_some()
                        && a.percent_used()
                            >= u64::from(config.quota.warn_at.first().copied().unwrap_or(80))
                        && a.effective_retention == Retention::Keep
                    {
                        writeln!(
                            out,
                            "  note: {} keeps mail that POP3 programs download; if this user reads by POP3, \
                             `letterbox user set {} pop3-retention 30d` (or `delete`) frees the space automatically",
                            a.address, a.address
                        )?;
                    }
                }
            }
            QuotaCmd::Set { address, size } => {
                let a = store.set_quota(&address, parse_quota(&size)?)?;
                writeln!(out, "{}", quota_line(&a))?;
            }
            QuotaCmd::Requests { all } => crate::portal::requests(&store, all, out)?,
            QuotaCmd::Approve { id, size } => {
                crate::portal::approve(&store, config, id, size.as_deref(), out)?
            }
            QuotaCmd::Deny { id, reason } => crate::portal::deny(&store, config, id, &reason, out)?,
            QuotaCmd::Recalc { address } => {
                for r in store.recalc_quota(address.as_deref())? {
                    let note = if r.before == r.after {
                        ""
                    } else {
                        " (corrected)"
                    };
                    writeln!(out, "{}\t{} -> {}{}", r.address, r.before, r.after, note)?;
                }
            }
        },
        Command::Message(c) => match c {
            MessageCmd::List { address, mailbox } => {
                let a = store.account(&address)?;
                let mb = store.mailbox(a.id, &mailbox)?;
                for m in store.list_messages(mb.id, false)? {
                    let mut flags: Vec<&str> = m.flags.names().collect();
                    flags.extend(m.keywords.iter().map(String::as_str));
                    writeln!(
                        out,
                        "{}\t{}\t{}\t({})",
                        m.uid,
                        m.size,
                        m.internal_date,
                        flags.join(" ")
                    )?;
                }
            }
            MessageCmd::Get {
                address,
                mailbox,
                uid,
            } => {
                let a = store.account(&address)?;
                let mb = store.mailbox(a.id, &mailbox)?;
                let mut r = store.open_message(mb.id, uid)?;
                std::io::copy(&mut r, out)?;
            }
        },
        Command::Deliver(args) => return deliver(&store, config, &args),
        Command::Check { deep } => {
            let problems = store.check(deep)?;
            for p in &problems {
                writeln!(out, "{p}")?;
            }
            if !problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            writeln!(out, "ok")?;
        }
        Command::Gc => {
            let r = store.gc()?;
            write!(
                out,
                "removed {} unreferenced blob(s), {} orphan file(s)",
                r.blobs_removed, r.orphan_files_removed
            )?;
            if config.blobs.url.is_some() {
                write!(out, ", deleted {} object(s)", r.objects_deleted)?;
            }
            writeln!(out)?;
        }
        Command::Block(BlockCmd::List) => {
            for (key, until, reason) in store.blocks(letterbox_store::now())? {
                // Keys hold client-supplied user names: no control characters on a terminal.
                let key = letterbox_proto::auth::loggable(&key);
                writeln!(out, "{key}\t{}\t{reason}", utc(until))?;
            }
        }
        Command::Block(BlockCmd::Lift { key }) => {
            let key = if key.starts_with("ip:") || key.starts_with("user:") {
                key
            } else if let Ok(ip) = key.parse::<std::net::IpAddr>() {
                // An IPv6 address lifts the block of its /64.
                letterbox_proto::auth::ip_block_key(ip)
            } else if key.contains('/') {
                format!("ip:{key}")
            } else {
                format!("user:{}", letterbox_store::normalize_address(&key))
            };
            if !store.unblock(&key)? {
                bail!("no block for {key}");
            }
        }
        Command::Admin(c) => crate::portal::admin(c, &store, out)?,
        Command::Retention(RetentionCmd::Sweep { now }) => {
            let n = store.sweep_retention(now.unwrap_or_else(letterbox_store::now))?;
            writeln!(out, "expunged {n} message(s)")?;
        }
        Command::Queue(c) => crate::queue_cmd::run(c, &store, out)?,
        Command::Sieve(c) => return crate::sieve_cmd::run(&store, config, c),
        Command::Import(c) => return crate::migrate::import(&store, config, c),
        Command::Export(a) => return crate::migrate::export(&store, a),
        Command::Backup { dest } => {
            let r = store.backup(&dest)?;
            writeln!(
                out,
                "backup in {}: database {} bytes, {} blob files ({} copied now)",
                dest.display(),
                r.db_bytes,
                r.blob_files,
                r.copied
            )?;
        }
        Command::Restore { .. } => unreachable!("restore runs before the store is opened"),
        Command::Expire(ExpireCmd::Run { now }) => {
            let expired = store.expire(now.unwrap_or_else(letterbox_store::now))?;
            let (mut n, mut bytes) = (0, 0);
            for e in &expired {
                writeln!(out, "{} {}: expunged {} message(s), {} octets", e.address, e.mailbox, e.messages, e.bytes)?;
                n += e.messages;
                bytes += e.bytes;
            }
            writeln!(out, "expunged {n} message(s), {bytes} octets")?;
        }
        Command::Expire(ExpireCmd::Set { scope, folder, days }) => {
            let folder = match folder.to_ascii_lowercase().as_str() {
                "trash" => letterbox_store::SpecialUse::Trash,
                "junk" => letterbox_store::SpecialUse::Junk,
                other => bail!("unknown folder '{other}' (expected trash or junk)"),
            };
            let days = match days.as_str() {
                "default" => None,
                d => Some(d.parse::<letterbox_config::ExpireDays>().map_err(|e| anyhow!(e))?.0),
            };
            store.set_expire(&scope, folder, days)?;
        }
        Command::Attachments(c) => crate::attachments::run(&store, config, c, out)?,
        Command::Expire(ExpireCmd::Show) => {
            let d = |v: Option<u32>| match v {
                None => "default".to_string(),
                Some(n) => letterbox_config::ExpireDays(n).to_string(),
            };
            writeln!(out, "(config) trash={} junk={}", config.expire.trash, config.expire.junk)?;
            for p in store.expire_policies()? {
                writeln!(out, "{} trash={} junk={}", p.scope, d(p.trash), d(p.junk))?;
            }
        }
        Command::Space(c) => crate::attachments::space(&store, c, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `YYYY-MM-DD HH:MM:SS UTC` from seconds since the epoch (civil-from-days, H. Hinnant).
pub fn utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// sysexits.h codes, as dovecot-lda and sendmail use them.
const EX_NOUSER: u8 = 67;
const EX_TEMPFAIL: u8 = 75;
const EX_CANTCREAT: u8 = 73;

/// `letterbox deliver`: the local delivery agent (like dovecot-lda). Each recipient's
/// active Sieve script runs as for SMTP/LMTP (issue 13; `letterbox_smtp::filter`): its
/// folders, flags, vacation replies and redirects. No spam or authenticity checks: the
/// MTA that runs us received the message and did those.
fn deliver(store: &Store, config: &Config, args: &DeliverArgs) -> Result<ExitCode> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("cannot read the message")?;
    let body = Arc::new(letterbox_message::to_crlf(&body));
    let return_path = match &args.from {
        Some(f) if f.contains(['\r', '\n', '<', '>']) => bail!("malformed --from address"),
        Some(f) => format!("Return-Path: <{f}>\r\n"),
        None => String::new(),
    };
    let mut items: Vec<letterbox_smtp::filter::Item> = Vec::new();
    for r in &args.recipients {
        match store.resolve(r)? {
            Resolved::Accounts(accts) => {
                for a in accts {
                    if !items.iter().any(|it| it.account == a.id) {
                        let prefix = format!("{return_path}Delivered-To: {}\r\n", a.address);
                        items.push(letterbox_smtp::filter::Item {
                            account: a.id,
                            rcpt: r.clone(),
                            prefix: prefix.into_bytes(),
                        });
                    }
                }
            }
            Resolved::NoSuchUser | Resolved::NotLocal => {
                eprintln!("letterbox: {r}: no such local user");
                return Ok(ExitCode::from(EX_NOUSER));
            }
        }
    }
    let accounts: Vec<_> = items.iter().map(|it| it.account).collect();
    let now = letterbox_store::now();
    let id = letterbox_smtp::trace::new_id();
    let sender = args.from.clone().unwrap_or_default();
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // Our Received field, for a copy a script redirects to another domain.
    let received = letterbox_smtp::trace::received(&letterbox_smtp::trace::Trace {
        hostname: &config.hostname,
        helo: "localhost",
        peer,
        protocol: "local",
        id: &id,
        sender: &sender,
        date: now,
    });
    let job = letterbox_smtp::filter::FilteredDelivery {
        id,
        sender,
        hostname: config.hostname.clone(),
        peer,
        body,
        date: now,
        items,
        scan: letterbox_filter::Scan {
            verdict: letterbox_filter::Verdict::Accept,
            headers: Vec::new(),
            junk: false,
            spamtest: None,
            body: None,
        },
        received,
    };
    let filter = letterbox_filter::Filter::shared(&Arc::new(config.clone()));
    let results = job.run_detailed(&**store, &filter);
    let mut code = ExitCode::SUCCESS;
    let mut warnings = Vec::new();
    for (account, r) in accounts.into_iter().zip(results) {
        match r {
            Ok(d) => {
                for uid in &d.uids {
                    println!("delivered uid {uid}");
                }
                if d.uids.is_empty() {
                    println!("no copy stored (Sieve discarded or redirected it)");
                }
                if d.crossed {
                    warnings.push(account);
                }
            }
            Err(Error::OverQuota) => {
                eprintln!("letterbox: mailbox full (quota exceeded)");
                code = ExitCode::from(EX_CANTCREAT);
            }
            // A full disk or a storage failure is temporary: the MTA that runs us (like
            // dovecot-lda) keeps the message and tries again (sysexits EX_TEMPFAIL).
            Err(e) => {
                eprintln!("letterbox: delivery failed, try again later: {e}");
                code = ExitCode::from(EX_TEMPFAIL);
            }
        }
    }
    if !warnings.is_empty() {
        // The same quota warning an SMTP delivery sends.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        for account in warnings {
            rt.block_on(letterbox_smtp::warning::deliver_pending(
                store, config, account,
            ))?;
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(1_795_514_400), "2026-11-24 10:00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
