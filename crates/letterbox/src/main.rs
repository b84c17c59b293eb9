//! `letterbox`: the one binary. It only wires things together: configuration, the
//! command line, the store, listeners. See `docs/ARCHITECTURE.md`.

mod admin;
mod apppass_cmd;
mod portal;
mod dkim_cmd;
mod dns_cmd;
mod migrate;
mod migrate_to;
mod pg_backup;
mod attachments;
mod privileges;
mod queue_cmd;
mod serve;
mod token_cmd;
mod sieve_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "letterbox",
    version,
    about = "Letterbox mail server: SMTP/LMTP delivery, POP3, IMAP, quotas"
)]
struct Cli {
    /// Configuration file (default: $LETTERBOX_CONFIG, then ./letterbox.toml, then built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Local domains.
    #[command(subcommand)]
    Domain(admin::DomainCmd),
    /// Accounts.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Aliases (`@domain` is the domain's catch-all).
    #[command(subcommand)]
    Alias(admin::AliasCmd),
    /// Quotas.
    #[command(subcommand)]
    Quota(admin::QuotaCmd),
    /// Messages in a mailbox (for support and scripts).
    #[command(subcommand)]
    Message(admin::MessageCmd),
    /// Deliver a message from standard input to local recipients (like dovecot-lda),
    /// through each recipient's active Sieve script.
    Deliver(admin::DeliverArgs),
    /// Verify the store's invariants (quota usage, blob references, blob files).
    Check {
        /// Also decompress every blob and verify its content hash.
        #[arg(long)]
        deep: bool,
    },
    /// Remove unreferenced message blobs now.
    Gc,
    /// Login blocks after repeated failures (`ip:ADDR` or `user:ADDRESS`).
    #[command(subcommand)]
    Block(admin::BlockCmd),
    /// The POP3 retention policy.
    #[command(subcommand)]
    Retention(admin::RetentionCmd),
    /// Portal operators and domain admins.
    #[command(subcommand)]
    Admin(portal::AdminCmd),
    /// The outbound queue (like Postfix's postqueue/postsuper); works while serve runs.
    #[command(subcommand)]
    Queue(queue_cmd::QueueCmd),
    /// Users' Sieve scripts (the ones ManageSieve manages).
    #[command(subcommand)]
    Sieve(sieve_cmd::SieveCmd),
    /// Import mail with its identities kept (Dovecot Maildir).
    #[command(subcommand)]
    Import(migrate::ImportCmd),
    /// Export an account's mail (Maildir++ or mbox), folder tree kept.
    Export(migrate::ExportArgs),
    /// An online, consistent backup of the whole store into DEST (incremental for blobs);
    /// on PostgreSQL from any node, at one snapshot, in the same format.
    Backup { dest: PathBuf },
    /// Restore a backup into the configured, empty data directory, or with `[store]
    /// backend = "postgres"` into the configured, empty PostgreSQL database.
    Restore { src: PathBuf },
    /// Trash and Junk expiry (autoexpunge).
    #[command(subcommand)]
    Expire(admin::ExpireCmd),
    /// Remove attachments from stored messages (Thunderbird-style placeholders).
    #[command(subcommand)]
    Attachments(attachments::AttachmentsCmd),
    /// What attachment removal and expiry freed (the account's space log).
    #[command(subcommand)]
    Space(attachments::SpaceCmd),
    /// Apply the store's schema (with `[store] backend = "postgres"`, the versioned
    /// migrations, under an advisory lock) and print its version; with --to, move the
    /// embedded store into PostgreSQL (resumable). Exit 75 when the database cannot be
    /// reached.
    Migrate(migrate_to::MigrateArgs),
}

/// A command-line error as the contract wants it: one line on standard error (clap's
/// own is a paragraph with tips and the usage), exit status 2 as clap gives. `--help`
/// and `--version` print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    // The message proper ends where clap's tips and usage begin.
    let message = text
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("letterbox: {message} (see letterbox --help)");
    ExitCode::from(2)
}

/// Allocations this large are always fresh mappings, returned to the system when freed.
/// glibc otherwise raises its mmap threshold after the first large free, and every
/// Argon2id check (19 MiB) then lands in a per-thread heap that never shrinks: measured
/// 617 MB resident after 50 logins without this, flat with it.
const MMAP_THRESHOLD: i32 = 1 << 20;

fn main() -> ExitCode {
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let (config, path) = match letterbox_config::Config::discover(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("letterbox: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    let result = match cli.command {
        Command::Serve => serve::run(config, path),
        // Before the store is opened: opening would make the database restore needs absent.
        Command::Restore { src } => privileges::drop_for_admin(&config)
            .and_then(|()| migrate::restore(&config, &src)),
        Command::Backup { dest } if config.store.backend == letterbox_config::StoreBackend::Postgres => {
            privileges::drop_for_admin(&config).and_then(|()| pg_backup::backup(&config, &dest))
        }
        Command::Migrate(args) => {
            privileges::drop_for_admin(&config).and_then(|()| migrate_to::run(&config, args))
        }
        other => privileges::drop_for_admin(&config).and_then(|()| admin::run(other, &config)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("letterbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
