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
    /// An mboxrd file into one folder, flags from Status:/X-Status:/X-Keywords:, dates
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
    },
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
            };
            let s = maildir::import(&**store, &account, &dir, &opts, &mut progress)?;
            (account.address, s)
        }
        ImportCmd::Mbox {
            address,
            file,
            folder,
            merge,
        } => {
            let account = store.account(&address)?;
            let opts = letterbox_migrate::mbox::Options {
                folder,
                merge,
                max_message_size: config.import.max_message_size.0,
            };
            let s =
                letterbox_migrate::mbox::import(&**store, &account, &file, &opts, &mut progress)?;
            (account.address, s)
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
    // What was skipped is listed in the summary; it does not fail the run (the rest is
    // imported, and a rerun after fixing the files imports just those).
    Ok(ExitCode::SUCCESS)
}

/// `letterbox restore SRC`: the backup into the configured data directory (which must
/// hold no store), then verified as `check --deep` does.
pub fn restore(config: &Config, src: &std::path::Path) -> Result<ExitCode> {
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
