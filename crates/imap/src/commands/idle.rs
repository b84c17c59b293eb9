//! IDLE (RFC 2177, RFC 9051 6.3.13): `+ idling`, then changes to the selected mailbox
//! are pushed as they are committed (the store's change feed wakes the session; it then
//! asks the store what changed) until the client sends `DONE`. A quiet IDLE gets
//! `* OK Still here` every `imap.idle_keepalive` seconds; the session ends after
//! `limits.timeout_idle` seconds.

use crate::conn::ReadError;
use crate::session::{Fatal, Reply, Session, State, SyncMode};
use letterbox_store::{Change, ChangeKind};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

enum Event {
    Input(std::io::Result<bool>),
    Change(Result<Change, RecvError>),
    Keepalive,
    Timeout,
}

pub async fn run(s: &mut Session, _tag: &str) -> Result<Reply, Fatal> {
    s.sync(SyncMode::Full).await?;
    s.conn.push(b"+ idling\r\n");
    s.conn.flush().await?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(s.ctx.config.limits.timeout_idle);
    let mut feed_alive = true;
    let keepalive = s.ctx.config.imap.idle_keepalive;
    let mut ticker = tokio::time::interval(Duration::from_secs(keepalive.max(1)));
    ticker.tick().await; // the first tick is immediate
    loop {
        let ev = {
            let rx = match &mut s.state {
                State::Authenticated(a) | State::Selected(a, _) => &mut a.changes,
                _ => return Ok(Reply::bad("Not logged in")),
            };
            tokio::select! {
                r = s.conn.readable() => Event::Input(r),
                c = rx.recv(), if feed_alive => Event::Change(c),
                _ = ticker.tick(), if keepalive > 0 => Event::Keepalive,
                _ = tokio::time::sleep_until(deadline) => Event::Timeout,
            }
        };
        match ev {
            Event::Input(Ok(false)) | Event::Input(Err(_)) => return Err(Fatal::Closed),
            Event::Input(Ok(true)) => {
                let line = match s.conn.read_line().await {
                    Ok(l) => l,
                    Err(ReadError::LineTooLong) => {
                        return Err(Fatal::Bye("[TOOBIG] Line too long".into()))
                    }
                    Err(_) => return Err(Fatal::Closed),
                };
                return Ok(if line.eq_ignore_ascii_case(b"DONE") {
                    Reply::ok("IDLE terminated")
                } else {
                    Reply::bad("Expected DONE")
                });
            }
            Event::Change(Err(RecvError::Closed)) => feed_alive = false,
            Event::Change(c) => {
                let selected = s.selected().map(|sel| sel.id);
                let mut relevant = match &c {
                    Ok(c) if Some(c.mailbox) == selected => {
                        if let ChangeKind::MailboxDeleted { .. } = c.kind {
                            return Err(Fatal::Bye("Selected mailbox was deleted".into()));
                        }
                        true
                    }
                    Ok(_) => false,
                    Err(_) => selected.is_some(),
                };
                relevant |= s.feed_pending()?;
                if relevant {
                    s.sync(SyncMode::Full).await?;
                    s.conn.flush().await?;
                }
            }
            Event::Keepalive => {
                s.conn.push(b"* OK Still here\r\n");
                s.conn.flush().await?;
            }
            Event::Timeout => return Err(Fatal::Bye("IDLE timed out".into())),
        }
    }
}
