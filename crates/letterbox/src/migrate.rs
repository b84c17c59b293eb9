//! `letterbox import` (and later `export`, `backup`, `restore`): moving mail in and out
//! (issue 16). The formats live in `crates/migrate`; this file only wires the command
//! line to them and prints progress (standard error) and the summary (standard output).

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use letterbox_config::Config;
use letterbox_migrate::maildir;
use letterbox_store::Store;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum LayoutArg {
    /// `.A.B` folder directories (Dovecot's default).
    Maildirplusplus,
    /// `A/B` folder directories (Dovecot's `LAYOUT=fs`).
    Fs,
}

#[derive(Subcommand)]
pub enum ImportCmd {
    /// A Dovecot Maildir home, keeping UIDVALIDITY, UIDs, flags, keywords, dates,
    /// subscriptions and POP3 UIDLs.
    Maildir {
        address: String,
        dir: PathBuf,
        /// Import into an account that already has mail.
        #[arg(long)]
        merge: bool,
        /// How the folders are laid out.
        #[arg(long, value_enum, default_value = "maildirplusplus")]
        layout: LayoutArg,
        /// The source server's `pop3_uidl_format` (`%u` UID, `%v` UIDVALIDITY, `%g` GUID).
        #[arg(long, default_value = maildir::DEFAULT_POP3_UIDL_FORMAT, value_name = "FORMAT")]
        pop3_uidl_format: String,
    },
    /// An mbox file (mboxrd, mboxo, mboxcl, mboxcl2) into one folder, flags from Status:/X-Status:/X-Keywords:, dates
    /// from the From_ lines (new UIDs: mbox has none).
    Mbox {
        address: String,
        file: PathBuf,
        /// The folder to import into (made if missing).
        #[arg(long, default_value = "INBOX")]
        folder: String,
        /// Import into an account that already has mail.
        #[arg(long)]
        merge: bool,
        /// How messages are delimited and `From ` lines quoted.
        #[arg(long, value_enum, default_value = "mboxrd")]
        variant: VariantArg,
    },
    /// Any IMAP server's account, over IMAP: folders, flags, keywords, internal dates,
    /// subscriptions, and the UIDVALIDITY and UIDs the server shows.
    Imap {
        address: String,
        /// The source: imap://HOST[:PORT] (STARTTLS when offered) or imaps://HOST[:PORT].
        #[arg(long, value_name = "URL")]
        from: String,
        /// The log-in name on the source (default: ADDRESS).
        #[arg(long)]
        user: Option<String>,
        /// Read the source password from the first line of standard input.
        #[arg(long, conflicts_with = "password_file")]
        password_stdin: bool,
        /// Read the source password from the first line of this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Import into an account that already has mail.
        #[arg(long)]
        merge: bool,
        /// Rebuild POP3 UIDLs for the INBOX from UID and UIDVALIDITY with the source's
        /// format (Dovecot's default is %08Xu%08Xv); without it POP3 clients that keep
        /// mail on the server download the INBOX again.
        #[arg(long, value_name = "FORMAT")]
        pop3_uidl_format: Option<String>,
        /// Also trust the certificates in this PEM file (a self-signed source).
        #[arg(long, value_name = "FILE")]
        tls_ca_file: Option<PathBuf>,
        /// Allow LOGIN without TLS to a host that is not loopback.
        #[arg(long)]
        allow_plaintext: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum VariantArg {
    /// `>*From ` lines lose one `>`.
    Mboxrd,
    /// Only `>From ` loses its `>`.
    Mboxo,
    /// `Content-Length:` delimits the body; `>From ` quoted as mboxo.
    Mboxcl,
    /// `Content-Length:` delimits the body; nothing quoted.
    Mboxcl2,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Maildir,
    Mbox,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    address: String,
    #[arg(long, value_enum)]
    format: FormatArg,
    /// A directory (made if missing).
    dest: PathBuf,
}

pub fn export(store: &Store, args: ExportArgs) -> Result<ExitCode> {
    let account = store.account(&args.address)?;
    let format = match args.format {
        FormatArg::Maildir => letterbox_migrate::export::Format::Maildir,
        FormatArg::Mbox => letterbox_migrate::export::Format::Mbox,
    };
    let mut progress = |line: &str| eprintln!("{line}");
    let s =
        letterbox_migrate::export::export(&**store, &account, format, &args.dest, &mut progress)?;
    println!(
        "{} folders, {} messages ({} bytes) exported to {}",
        s.folders,
        s.messages,
        s.bytes,
        args.dest.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn import(store: &Store, config: &Config, cmd: ImportCmd) -> Result<ExitCode> {
    let out = &mut std::io::stdout().lock();
    let mut progress = |line: &str| {
        eprintln!("{line}");
    };
    let mut imap_notes: Option<bool> = None;
    let (address, summary) = match cmd {
        ImportCmd::Maildir {
            address,
            dir,
            merge,
            layout,
            pop3_uidl_format,
        } => {
            let account = store.account(&address)?;
            let opts = maildir::Options {
                merge,
                layout: match layout {
                    LayoutArg::Maildirplusplus => maildir::Layout::MaildirPlusPlus,
                    LayoutArg::Fs => maildir::Layout::Fs,
                },
                pop3_uidl_format,
                max_message_size: config.import.max_message_size.0,
                threads: config.import.threads,
            };
            let s = maildir::import(&**store, &account, &dir, &opts, &mut progress)?;
            (account.address, s)
        }
        ImportCmd::Mbox {
            address,
            file,
            folder,
            merge,
            variant,
        } => {
            use letterbox_migrate::mbox::Variant;
            let account = store.account(&address)?;
            let opts = letterbox_migrate::mbox::Options {
                folder,
                merge,
                max_message_size: config.import.max_message_size.0,
                variant: match variant {
                    VariantArg::Mboxrd => Variant::Mboxrd,
                    VariantArg::Mboxo => Variant::Mboxo,
                    VariantArg::Mboxcl => Variant::Mboxcl,
                    VariantArg::Mboxcl2 => Variant::Mboxcl2,
                },
            };
            let s =
                letterbox_migrate::mbox::import(&**store, &account, &file, &opts, &mut progress)?;
            (account.address, s)
        }
        ImportCmd::Imap {
            address,
            from,
            user,
            password_stdin,
            password_file,
            merge,
            pop3_uidl_format,
            tls_ca_file,
            allow_plaintext,
        } => {
            let account = store.account(&address)?;
            let password = read_password(password_stdin, password_file.as_deref())?;
            let opts = letterbox_migrate::imap::Options {
                url: from,
                user: user.unwrap_or_else(|| account.address.clone()),
                password,
                merge,
                pop3_uidl_format,
                tls_ca_file,
                allow_plaintext,
                max_message_size: config.import.max_message_size.0,
                timeout: std::time::Duration::from_secs(config.import.imap_timeout.0.max(1)),
            };
            let report =
                match letterbox_migrate::imap::import(&**store, &account, &opts, &mut progress) {
                    Ok(r) => r,
                    Err(e) => return imap_failure(e),
                };
            imap_notes = Some(report.pop3_uidls);
            (account.address, report.summary)
        }
    };
    // Usage is kept in step by every insert; recomputing proves it and repairs a store
    // an older version left wrong.
    let recalc = store.recalc_quota(Some(&address))?;
    writeln!(out, "{summary}")?;
    let account = store.account(&address)?;
    if let Some(r) = recalc.first() {
        writeln!(out, "quota: {} bytes used", r.after)?;
    }
    if account
        .effective_limit
        .is_some_and(|l| account.quota_used > l)
    {
        writeln!(
            out,
            "warning: {address} is over its quota ({} of {} bytes): raise it with `letterbox quota set`",
            account.quota_used,
            account.effective_limit.unwrap_or(0)
        )?;
    }
    if let Some(pop3_uidls) = imap_notes {
        // What clients will do (issue 16 asks the importer to tell the operator).
        if summary.new_uids == 0 {
            writeln!(
                out,
                "IMAP: UIDVALIDITY and UIDs kept from the source: IMAP clients keep their caches and download nothing again"
            )?;
        } else {
            writeln!(
                out,
                "IMAP: {} messages got new UIDs (merged into folders with mail of their own): IMAP clients download those again",
                summary.new_uids
            )?;
        }
        if pop3_uidls {
            writeln!(
                out,
                "POP3: UIDLs rebuilt with --pop3-uidl-format for the INBOX"
            )?;
        } else {
            writeln!(
                out,
                "POP3: UIDLs cannot be read over IMAP: POP3 clients that leave mail on the server will download the INBOX again (give --pop3-uidl-format if the source made UIDLs from UID and UIDVALIDITY, as Dovecot's default %08Xu%08Xv does)"
            )?;
        }
    }
    // What was skipped is listed in the summary; it does not fail the run (the rest is
    // imported, and a rerun after fixing the files imports just those).
    Ok(ExitCode::SUCCESS)
}

/// `letterbox restore SRC`: the backup into the configured data directory (which must
/// hold no store), then verified as `check --deep` does; on PostgreSQL into the
/// configured database (`pg_backup.rs`).
pub fn restore(config: &Config, src: &std::path::Path) -> Result<ExitCode> {
    if config.store.backend == letterbox_config::StoreBackend::Postgres {
        return crate::pg_backup::restore(config, src);
    }
    let n = letterbox_store::restore(src, &config.data_dir)?;
    let store = crate::admin::open_store(config)?;
    let problems = store.check(true)?;
    for p in &problems {
        eprintln!("{p}");
    }
    if !problems.is_empty() {
        anyhow::bail!("the restored store has {} problem(s)", problems.len());
    }
    println!(
        "restored {} into {} ({n} blob files); check --deep: ok",
        src.display(),
        config.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The source password: one line of standard input or of a file, line end removed.
fn read_password(stdin: bool, file: Option<&std::path::Path>) -> Result<String> {
    let mut line = String::new();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("--password-file {}: {e}", f.display()))?;
        line = text.lines().next().unwrap_or("").to_string();
    } else if stdin {
        std::io::stdin().read_line(&mut line)?;
    } else {
        anyhow::bail!("give the source password with --password-stdin or --password-file");
    }
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        anyhow::bail!("the source password is empty");
    }
    Ok(p)
}

/// `import imap` stopped: one line, and an exit code a script can act on (sysexits.h):
/// 77 the source refused the login, 69 it could not be reached, 75 it broke off (a
/// rerun resumes).
fn imap_failure(e: letterbox_migrate::Error) -> Result<ExitCode> {
    use letterbox_migrate::Error as E;
    let code = match &e {
        E::Auth(_) => 77,
        E::Connect(_) => 69,
        E::Remote(_) | E::Rejected { .. } => 75,
        _ => return Err(e.into()),
    };
    eprintln!("letterbox: import imap: {e}");
    Ok(ExitCode::from(code))
}
