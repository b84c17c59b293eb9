//! `letterbox queue ...`: the outbound queue while `serve` runs (issue 12), like Postfix's
//! postqueue/postsuper. The commands change the store; the running scheduler sees a
//! retried or released entry within `[queue] poll_interval`. An unknown ID is one line on
//! standard error and a non-zero exit.

use crate::admin::utc;
use anyhow::Result;
use clap::Subcommand;
use letterbox_store::queue::{QueuedMessage, RcptStatus};
use letterbox_store::Store;
use std::io::Write;

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Every entry: ID, queued at, size, sender, state, attempts, next attempt; then its
    /// pending recipients with their last reply.
    List,
    /// One entry in full.
    Show { id: i64 },
    /// Try an entry (or every entry not held) now.
    Retry {
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Keep an entry in the queue without trying it.
    Hold { id: i64 },
    /// Let a held entry go (tried at once).
    Release { id: i64 },
    /// Delete an entry without delivering it (no DSN).
    Remove { id: i64 },
}

fn sender(m: &QueuedMessage) -> String {
    format!("<{}>", m.sender)
}

pub fn run(cmd: QueueCmd, store: &Store, out: &mut impl Write) -> Result<()> {
    let now = letterbox_store::now();
    match cmd {
        QueueCmd::List => {
            let mut after = 0;
            loop {
                let page = store.queue_list(after, 500)?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for m in &page {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\tattempts={}\tnext={}",
                        m.id,
                        utc(m.created),
                        m.size,
                        sender(m),
                        if m.held { "held" } else { "queued" },
                        m.attempts,
                        utc(m.next_attempt)
                    )?;
                    for r in m.rcpts.iter().filter(|r| r.status == RcptStatus::Pending) {
                        writeln!(out, "  <{}>\t{}", r.address, r.last_reply)?;
                    }
                }
            }
        }
        QueueCmd::Show { id } => {
            let m = store.queue_get(id)?;
            writeln!(out, "id: {}", m.id)?;
            writeln!(out, "sender: {}", sender(&m))?;
            writeln!(out, "queued: {}", utc(m.created))?;
            writeln!(out, "size: {}", m.size)?;
            writeln!(out, "state: {}", if m.held { "held" } else { "queued" })?;
            writeln!(out, "attempts: {}", m.attempts)?;
            writeln!(out, "next attempt: {}", utc(m.next_attempt))?;
            if let Some(e) = &m.envid {
                writeln!(out, "envid: {e}")?;
            }
            writeln!(out, "ret: {}", if m.ret_full { "FULL" } else { "HDRS" })?;
            if !m.last_error.is_empty() {
                writeln!(out, "last error: {}", m.last_error)?;
            }
            for r in &m.rcpts {
                writeln!(
                    out,
                    "rcpt: <{}>\t{}\t{}",
                    r.address,
                    r.status.as_str(),
                    r.last_reply
                )?;
            }
        }
        QueueCmd::Retry { id, all } => {
            if id.is_none() && !all {
                anyhow::bail!("give an ID or --all");
            }
            let n = store.queue_retry(id, now)?;
            writeln!(
                out,
                "{n} entr{} to retry now",
                if n == 1 { "y" } else { "ies" }
            )?;
        }
        QueueCmd::Hold { id } => store.queue_set_held(id, true, now)?,
        QueueCmd::Release { id } => store.queue_set_held(id, false, now)?,
        QueueCmd::Remove { id } => store.queue_remove(id)?,
    }
    Ok(())
}
