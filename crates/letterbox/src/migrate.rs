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
