//! `letterbox attachments ...` and `letterbox space log` (issue 15): removes attachments
//! from stored messages, leaving Thunderbird's deleted-attachment placeholders, by hand
//! (`strip`) or by policy (`policy set|clear|show`, applied by `run` and daily by
//! `serve`), and shows what removal and expiry freed (`space log`).
//!
//! The selection loop, the rewriting and the one-transaction replacement are the store's
//! (`letterbox_store::strip`, which also documents the POP3 handling: the INBOX of
//! accounts with POP3 retention `delete` or `<N>d` is skipped).

use anyhow::{anyhow, bail, Result};
use letterbox_config::{ByteSize, Config, ExpireDays};
use letterbox_store::strip::{self, Selection, Step};
use letterbox_store::{Store, StripPolicy};
use std::io::Write;

#[derive(clap::Args)]
pub struct StripArgs {
    address: String,
    /// Only this folder (default: every folder); a name or a special-use attribute
    /// (`\Sent`). May be given more than once.
    #[arg(long, value_name = "FOLDER")]
    folder: Vec<String>,
    /// Only messages whose internal date is older than this (`90d`, `6m`, `1y`).
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    /// Only attachments at least this big (encoded body; `1M`, `500K`).
    #[arg(long, value_name = "SIZE")]
    larger_than: Option<String>,
    /// Only messages with this From address (case-insensitive).
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,
    /// List what would be removed and what it would free; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also rewrite signed or encrypted messages (their signature breaks).
    #[arg(long)]
    force: bool,
}

#[derive(clap::Subcommand)]
pub enum PolicyCmd {
    /// Give a domain or an account its own policy: attachments of at least SIZE in
    /// messages older than AGE in the folders named (`--older-than 0`: none for it).
    Set {
        scope: String,
        #[arg(long, value_name = "AGE")]
        older_than: String,
        #[arg(long, value_name = "SIZE")]
        larger_than: String,
        /// A folder name or special-use attribute (`\Sent`); give it once per folder.
        #[arg(long, value_name = "FOLDER")]
        folder: Vec<String>,
    },
    /// Remove a domain's or an account's own policy (the domain's, then
    /// `[attachments]`'s apply again).
    Clear { scope: String },
    /// The configured default and every domain or account with its own policy, or the
    /// policy in force for one account.
    Show { address: Option<String> },
}

#[derive(clap::Subcommand)]
pub enum AttachmentsCmd {
    /// Replace attachments by placeholders, freeing their space.
    Strip(StripArgs),
    /// Automatic removal policies, per domain or account.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Apply every account's policy now (what `serve` does every
    /// `[attachments] policy_interval`).
    Run {
        /// Act as if it were this time (seconds since the epoch).
        #[arg(long)]
        now: Option<i64>,
    },
}

#[derive(clap::Subcommand)]
pub enum SpaceCmd {
    /// What attachment removal and expiry took from an account and when, then the
    /// octets freed per day.
    Log {
        address: String,
        /// Only the last DAYS days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

/// `90d`, `8w`, `6m` (30 days), `1y` (365 days), or `0`: seconds.
fn age(s: &str) -> Result<i64> {
    let bad = || anyhow!("malformed age '{s}' (expected e.g. 90d, 8w, 6m or 1y)");
    if s == "0" {
        return Ok(0);
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let days = match unit {
        "d" => 1,
        "w" => 7,
        "m" => 30,
        "y" => 365,
        _ => return Err(bad()),
    };
    if !(0..=100_000).contains(&n) {
        return Err(bad());
    }
    Ok(n * days * 86_400)
}

fn size(s: &str) -> Result<u64> {
    Ok(s.parse::<ByteSize>().map_err(|e| anyhow!(e))?.0)
}

fn print_step(out: &mut dyn Write, who: Option<&str>, s: &Step) -> std::io::Result<()> {
    let who = who.map(|a| format!("{a} ")).unwrap_or_default();
    match s {
        Step::Stripped { mailbox, uid, new_uid, removed, freed } => {
            for r in removed {
                writeln!(
                    out,
                    "{who}{mailbox} {uid} part {}: {} {:?} {} octets",
                    r.section, r.mime_type, r.filename, r.size
                )?;
            }
            match new_uid {
                None => writeln!(out, "{who}{mailbox} {uid}: would free {freed} octets"),
                Some(n) => writeln!(out, "{who}{mailbox} {uid}: replaced by UID {n}, freed {freed} octets"),
            }
        }
        Step::Refused { mailbox, uid } => {
            writeln!(out, "{who}{mailbox} {uid}: refused: signed or encrypted (use --force)")
        }
        Step::Changed { mailbox, uid } => {
            writeln!(out, "{who}{mailbox} {uid}: changed meanwhile, left as it is")
        }
        Step::SkippedFolder { mailbox, reason } => writeln!(out, "{who}{mailbox}: skipped ({reason})"),
    }
}

fn log_step(address: &str, s: &Step) {
    if let Step::Stripped { mailbox, uid, new_uid: Some(n), removed, freed } = s {
        tracing::info!(
            "attachments: {address} {mailbox} uid {uid} -> {n}: removed {} part(s), freed {freed} octets",
            removed.len()
        );
    }
}

fn show_policy(p: &StripPolicy) -> String {
    if p.older_than_days == 0 {
        return "none".into();
    }
    format!(
        "older than {} larger than {} in {}",
        ExpireDays(p.older_than_days),
        ByteSize(p.larger_than),
        p.folders.join(", ")
    )
}

pub fn run(store: &Store, config: &Config, cmd: AttachmentsCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        AttachmentsCmd::Strip(a) => strip_cmd(store, a, out),
        AttachmentsCmd::Policy(PolicyCmd::Set { scope, older_than, larger_than, folder }) => {
            let days = (age(&older_than)? / 86_400) as u32;
            let folders = if days > 0 && folder.is_empty() {
                bail!("name at least one --folder (a name, or a special-use attribute such as \\Sent)");
            } else {
                folder
            };
            store.set_strip_policy(
                &scope,
                Some(StripPolicy { older_than_days: days, larger_than: size(&larger_than)?, folders }),
            )?;
            Ok(())
        }
        AttachmentsCmd::Policy(PolicyCmd::Clear { scope }) => Ok(store.set_strip_policy(&scope, None)?),
        AttachmentsCmd::Policy(PolicyCmd::Show { address: Some(a) }) => {
            let acct = store.account(&a)?;
            writeln!(out, "{} {}", acct.address, show_policy(&store.strip_policy_for(&acct.address)?))?;
            Ok(())
        }
        AttachmentsCmd::Policy(PolicyCmd::Show { address: None }) => {
            let a = &config.attachments;
            writeln!(
                out,
                "(config) {}",
                show_policy(&StripPolicy {
                    older_than_days: a.policy_older_than.0,
                    larger_than: a.policy_larger_than.0,
                    folders: a.policy_folders.clone(),
                })
            )?;
            for (scope, p) in store.strip_policies()? {
                writeln!(out, "{scope} {}", show_policy(&p))?;
            }
            Ok(())
        }
        AttachmentsCmd::Run { now } => {
            let now = now.unwrap_or_else(letterbox_store::now);
            let mut err = None;
            let (n, freed) = strip::run_policies(&**store, now, &mut |acct, s| {
                log_step(&acct.address, s);
                if let Err(e) = print_step(out, Some(&acct.address), s) {
                    err.get_or_insert(e);
                }
            })?;
            if let Some(e) = err {
                return Err(e.into());
            }
            writeln!(out, "policies: stripped {n} message(s), freed {freed} octets")?;
            Ok(())
        }
    }
}

fn strip_cmd(store: &Store, a: StripArgs, out: &mut dyn Write) -> Result<()> {
    let acct = store.account(&a.address)?;
    let now = letterbox_store::now();
    let mut rule = String::from("letterbox attachments strip");
    for f in &a.folder {
        rule.push_str(&format!(" --folder {f}"));
    }
    for (k, v) in [("--older-than", &a.older_than), ("--larger-than", &a.larger_than), ("--from", &a.from)] {
        if let Some(v) = v {
            rule.push_str(&format!(" {k} {v}"));
        }
    }
    let sel = Selection {
        folders: a.folder.clone(),
        before: match &a.older_than {
            Some(s) => Some(now - age(s)?),
            None => None,
        },
        larger_than: match &a.larger_than {
            Some(s) => size(s)?,
            None => 0,
        },
        from: a.from.clone(),
        force: a.force,
        dry_run: a.dry_run,
        only: None,
        sections: None,
        rule,
    };
    let mut err = None;
    let steps = strip::run(&**store, &acct, &sel, true, now, &mut |s| {
        if !a.dry_run {
            log_step(&acct.address, s);
        }
        if let Err(e) = print_step(out, None, s) {
            err.get_or_insert(e);
        }
    })?;
    if let Some(e) = err {
        return Err(e.into());
    }
    let (mut parts, mut freed, mut msgs, mut refused) = (0u64, 0u64, 0u64, 0u64);
    for s in &steps {
        match s {
            Step::Stripped { removed, freed: f, .. } => {
                parts += removed.len() as u64;
                freed += f;
                msgs += 1;
            }
            Step::Refused { .. } => refused += 1,
            _ => {}
        }
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    writeln!(
        out,
        "{verb} {parts} attachment(s) from {msgs} message(s), {freed} octets; {refused} refused"
    )?;
    if refused > 0 && msgs == 0 {
        bail!("nothing stripped: {refused} signed or encrypted message(s) refused");
    }
    Ok(())
}

pub fn space(store: &Store, cmd: SpaceCmd, out: &mut dyn Write) -> Result<()> {
    let SpaceCmd::Log { address, days } = cmd;
    let acct = store.account(&address)?;
    let now = letterbox_store::now();
    let since = now - i64::from(days) * 86_400;
    for e in store.space_log(acct.id, since)? {
        let uids = match (e.uid, e.new_uid) {
            (Some(u), Some(n)) => format!(" uid {u} -> {n}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{} {} {}{uids}: {} message(s), {} octets freed{}",
            crate::admin::utc(e.at),
            e.kind,
            e.mailbox,
            e.messages,
            e.bytes,
            if e.detail.is_empty() { String::new() } else { format!("; {}", e.detail) }
        )?;
    }
    for d in store.space_freed_by_day(acct.id, since.div_euclid(86_400))? {
        writeln!(
            out,
            "day {}: attachments {} octets, expiry {} octets",
            &crate::admin::utc(d.day * 86_400)[..10],
            d.stripped,
            d.expired
        )?;
    }
    Ok(())
}
