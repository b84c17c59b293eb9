//! `letterbox attachments strip` (issue 15): removes attachments from stored messages,
//! leaving Thunderbird's deleted-attachment placeholders (the rewriting is
//! [`letterbox_message::strip`]; the replacement, one store transaction, is
//! `Backend::replace_message`, crates/store/src/replace.rs).
//!
//! POP3: a replaced message has a new UID, hence a new UIDL (RFC 1939 7), so a
//! leave-on-server POP3 client downloads the stripped copy once more as new mail. For
//! accounts whose POP3 retention is `delete` or `<N>d` (mail fetched by POP3 and meant to
//! leave the server) the INBOX is skipped rather than make those clients fetch it again;
//! other folders are not visible to POP3.

use anyhow::{anyhow, bail, Result};
use letterbox_config::{ByteSize, Retention};
use letterbox_message::strip::{strip, Outcome};
use letterbox_store::Store;
use std::io::Write;

#[derive(clap::Args)]
pub struct StripArgs {
    address: String,
    /// Only this folder (default: every folder).
    #[arg(long, value_name = "FOLDER")]
    folder: Option<String>,
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
pub enum AttachmentsCmd {
    /// Replace attachments by placeholders, freeing their space.
    Strip(StripArgs),
}

fn age(s: &str) -> Result<i64> {
    let bad = || anyhow!("malformed age '{s}' (expected e.g. 90d, 8w, 6m or 1y)");
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

pub fn run(store: &Store, cmd: AttachmentsCmd, out: &mut dyn Write) -> Result<()> {
    let AttachmentsCmd::Strip(a) = cmd;
    let acct = store.account(&a.address)?;
    let min = match &a.larger_than {
        Some(s) => s.parse::<ByteSize>().map_err(|e| anyhow!(e))?.0,
        None => 0,
    };
    let now = letterbox_store::now();
    let cutoff = match &a.older_than {
        Some(s) => Some(now - age(s)?),
        None => None,
    };
    let from = a.from.as_deref().map(str::to_ascii_lowercase);
    let mut rule = String::from("letterbox attachments strip");
    for (k, v) in [
        ("--folder", &a.folder),
        ("--older-than", &a.older_than),
        ("--larger-than", &a.larger_than),
        ("--from", &a.from),
    ] {
        if let Some(v) = v {
            rule.push_str(&format!(" {k} {v}"));
        }
    }
    let mailboxes = match &a.folder {
        Some(f) => vec![store.mailbox(acct.id, f)?],
        None => store.list_mailboxes(acct.id)?,
    };
    let (mut parts, mut freed, mut msgs, mut refused) = (0u64, 0u64, 0u64, 0u64);
    for mb in mailboxes {
        if mb.name == "INBOX" && acct.effective_retention != Retention::Keep {
            writeln!(
                out,
                "{}: skipped (POP3 retention {})",
                mb.name, acct.effective_retention
            )?;
            continue;
        }
        for m in store.list_messages(mb.id, false)? {
            if cutoff.is_some_and(|c| m.internal_date >= c) {
                continue;
            }
            let raw = store.open_message(mb.id, m.uid)?.read_all()?;
            let parsed = letterbox_message::parse(&raw);
            if let Some(f) = &from {
                let hit = parsed.envelope.from.iter().any(|ad| {
                    let addr = format!(
                        "{}@{}",
                        ad.mailbox.as_deref().unwrap_or(""),
                        ad.host.as_deref().unwrap_or("")
                    );
                    addr.eq_ignore_ascii_case(f)
                });
                if !hit {
                    continue;
                }
            }
            let (octets, removed) = match strip(&raw, &parsed, min, a.force, now, &rule) {
                Outcome::Nothing => continue,
                Outcome::Signed => {
                    writeln!(
                        out,
                        "{} {}: refused: signed or encrypted (use --force)",
                        mb.name, m.uid
                    )?;
                    refused += 1;
                    continue;
                }
                Outcome::Stripped { octets, removed } => (octets, removed),
            };
            let gain = (raw.len() as u64).saturating_sub(octets.len() as u64);
            for r in &removed {
                writeln!(
                    out,
                    "{} {} part {}: {} {:?} {} octets",
                    mb.name, m.uid, r.section, r.mime_type, r.filename, r.size
                )?;
            }
            if a.dry_run {
                writeln!(out, "{} {}: would free {gain} octets", mb.name, m.uid)?;
            } else {
                let r = store.replace_message(mb.id, m.uid, raw.len() as u64, octets)?;
                writeln!(
                    out,
                    "{} {}: replaced by UID {}, freed {gain} octets",
                    mb.name, m.uid, r.uid
                )?;
                tracing::info!(
                    "attachments: {} {} uid {} -> {}: removed {} part(s), freed {gain} octets",
                    acct.address,
                    mb.name,
                    m.uid,
                    r.uid,
                    removed.len()
                );
            }
            parts += removed.len() as u64;
            freed += gain;
            msgs += 1;
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
