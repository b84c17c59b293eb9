//! The session: a thin loop that reads a command ([`crate::conn`]), parses it
//! ([`crate::parser`]), hands it to its command module ([`crate::commands`]) and writes
//! the tagged reply, after telling the client what changed meanwhile.
//!
//! States (RFC 9051 section 3) are an enum whose variants hold what the state needs, so
//! a command that needs a selected mailbox cannot run without one:
//! [`State::NotAuthenticated`], [`State::Authenticated`] (an account and its change
//! feed), [`State::Selected`] (the same plus the mailbox view) and [`State::Logout`].

pub mod cache;
pub mod searchable;
pub mod index;
pub mod view;

use crate::commands;
use crate::conn::{Conn, Input, ReadError};
use crate::parser::{self, Command, CommandBody, MailboxArg};
use crate::{response, utf7};
use letterbox_proto::{Context, Peer};
use letterbox_store::{Account, Change, ChangeKind};
use std::time::Duration;
use tokio::sync::broadcast;
pub use view::{Selected, SyncMode};

/// An authenticated user: the account and the feed of its changes.
pub struct Authed {
    pub account: Account,
    pub changes: broadcast::Receiver<Change>,
    /// This session's place in `[limits] max_userip_connections`, given back with it.
    pub userip: Option<letterbox_proto::userip::UserIpSlot>,
}

pub enum State {
    NotAuthenticated,
    Authenticated(Authed),
    Selected(Authed, Selected),
    Logout,
}

/// Why a session ends early.
#[derive(Debug)]
pub enum Fatal {
    /// The connection is gone (or failed); nothing more can be sent.
    Closed,
    /// Send `* BYE <text>` and close.
    Bye(String),
}

impl From<std::io::Error> for Fatal {
    fn from(_: std::io::Error) -> Self {
        Fatal::Closed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    /// The command wrote its tagged completion itself (STARTTLS must, before the
    /// handshake).
    Sent,
}

/// A command's tagged completion.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: Status,
    pub code: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply {
            status: Status::Ok,
            code: None,
            text: text.into(),
        }
    }
    pub fn no(text: impl Into<String>) -> Reply {
        Reply {
            status: Status::No,
            code: None,
            text: text.into(),
        }
    }
    pub fn bad(text: impl Into<String>) -> Reply {
        Reply {
            status: Status::Bad,
            code: None,
            text: text.into(),
        }
    }
    pub fn code(mut self, code: impl Into<String>) -> Reply {
        self.code = Some(code.into());
        self
    }
}

/// Maps a store error to the reply a client can act on (RFC 5530 response codes).
pub fn store_error(e: &letterbox_store::Error) -> Reply {
    use letterbox_store::Error as E;
    match e {
        E::NotFound(_) => Reply::no("No such mailbox or message").code("NONEXISTENT"),
        E::Exists(_) => Reply::no("Mailbox already exists").code("ALREADYEXISTS"),
        E::OverQuota => {
            letterbox_proto::metrics::metrics().quota_refused("imap");
            Reply::no("Quota exceeded").code("OVERQUOTA")
        }
        E::Invalid(m) => Reply::no(m.clone()).code("CANNOT"),
        E::Refused(m) => Reply::no(m.clone()).code("CANNOT"),
        // RFC 5530 3: UNAVAILABLE, a temporary failure of a subsystem (the object store).
        E::Unavailable(_) => {
            tracing::warn!("imap: store unavailable: {e}");
            Reply::no("The message store is temporarily unavailable, try again later")
                .code("UNAVAILABLE")
        }
        E::Io(_) | E::Db(_) => {
            tracing::error!("imap: store error: {e}");
            Reply::no("Internal error, try again later").code("SERVERBUG")
        }
        // Dovecot's words for ENOSPC: clients show them, and deleting mail helps.
        E::DiskFull => Reply::no("Not enough disk space, try again later").code("OVERQUOTA"),
    }
}

/// Options the client turned on with ENABLE.
#[derive(Debug, Default, Clone, Copy)]
pub struct Enabled {
    pub rev2: bool,
    pub utf8: bool,
    /// RFC 7162 3.1: by ENABLE or by any CONDSTORE-using command.
    pub condstore: bool,
    /// RFC 7162 3.2.3: by ENABLE QRESYNC only (implies CONDSTORE).
    pub qresync: bool,
}

pub struct Session {
    pub ctx: Context,
    pub peer: Peer,
    pub conn: Conn,
    pub state: State,
    pub enabled: Enabled,
    bad_in_row: u32,
    pub auth_failures: u32,
    /// This command announced removals (the tagged OK then names the HIGHESTMODSEQ for
    /// QRESYNC clients, RFC 7162 3.2.10).
    announced_removals: bool,
    /// The percentage the last quota ALERT of this session told, if one was sent and
    /// usage has not been seen below the threshold since (`commands::quota::alert`).
    pub quota_alerted: Option<u64>,
    /// A SELECT/EXAMINE of this session sent the quota ALERT (same reset).
    pub quota_alerted_select: bool,
    /// COMPRESS=DEFLATE is active (RFC 4978): it stays on for the connection's life.
    pub compressed: bool,
    /// The process's per-mailbox indexes ([`index`]).
    pub indexes: std::sync::Arc<index::Indexes>,
}

impl Session {
    pub fn new(ctx: Context, peer: Peer, stream: letterbox_proto::BoxStream) -> Session {
        let conn = Conn::for_config(stream, &ctx.config);
        Session {
            ctx,
            peer,
            conn,
            state: State::NotAuthenticated,
            enabled: Enabled::default(),
            bad_in_row: 0,
            auth_failures: 0,
            announced_removals: false,
            quota_alerted: None,
            quota_alerted_select: false,
            compressed: false,
            indexes: std::sync::Arc::default(),
        }
    }

    /// Shares the per-mailbox indexes of the listener (see [`index`]).
    pub fn with_indexes(mut self, indexes: std::sync::Arc<index::Indexes>) -> Session {
        self.indexes = indexes;
        self
    }

    /// UTF-8 is allowed in mailbox names and quoted strings (IMAP4rev2 or UTF8=ACCEPT).
    pub fn utf8(&self) -> bool {
        self.enabled.rev2 || self.enabled.utf8
    }

    /// IMAP4rev1 behaviour (`\Recent`, `RECENT`, SEARCH without ESEARCH...).
    pub fn rev1(&self) -> bool {
        !self.enabled.rev2
    }

    /// Turns CONDSTORE on (RFC 7162 3.1). The first CONDSTORE-using command issued with a
    /// mailbox selected tells the client its HIGHESTMODSEQ (not SELECT/EXAMINE, which
    /// say it themselves: `announce` false).
    pub fn enable_condstore(&mut self, announce: bool) {
        if self.enabled.condstore {
            return;
        }
        self.enabled.condstore = true;
        let line = self.selected_mut().map(|sel| {
            sel.modseqs = true;
            format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", sel.known_modseq)
        });
        if let Some(line) = line.filter(|_| announce) {
            self.conn.push(line.as_bytes());
        }
    }

    /// Turns QRESYNC (and CONDSTORE) on.
    pub fn enable_qresync(&mut self) {
        self.enable_condstore(true);
        self.enabled.qresync = true;
        if let Some(sel) = self.selected_mut() {
            sel.vanished = true;
        }
    }

    pub fn authed(&self) -> Option<&Authed> {
        match &self.state {
            State::Authenticated(a) | State::Selected(a, _) => Some(a),
            _ => None,
        }
    }

    pub fn account_id(&self) -> Option<i64> {
        self.authed().map(|a| a.account.id)
    }

    pub fn selected(&self) -> Option<&Selected> {
        match &self.state {
            State::Selected(_, s) => Some(s),
            _ => None,
        }
    }

    pub fn selected_mut(&mut self) -> Option<&mut Selected> {
        match &mut self.state {
            State::Selected(_, s) => Some(s),
            _ => None,
        }
    }

    /// Leaves the selected state (if in it), keeping the login.
    pub fn deselect(&mut self) -> Option<Selected> {
        match std::mem::replace(&mut self.state, State::Logout) {
            State::Selected(a, s) => {
                self.state = State::Authenticated(a);
                Some(s)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Decodes a mailbox argument to the store's UTF-8, `/`-separated form.
    /// The logged-in account and the mailbox argument as a store name: what every
    /// command naming a mailbox starts with.
    pub fn account_mailbox(&self, arg: &MailboxArg) -> Result<(i64, String), Reply> {
        let name = self.mailbox_name(arg)?;
        let account = self
            .account_id()
            .ok_or_else(|| Reply::bad("Log in first"))?;
        Ok((account, name))
    }

    pub fn mailbox_name(&self, arg: &MailboxArg) -> Result<String, Reply> {
        let raw = &arg.0;
        let name = if self.utf8() {
            String::from_utf8(raw.clone()).map_err(|_| Reply::bad("Mailbox name is not UTF-8"))?
        } else {
            utf7::decode(raw).ok_or_else(|| {
                Reply::no("Mailbox name is not valid modified UTF-7").code("CANNOT")
            })?
        };
        let trimmed = name
            .strip_suffix(letterbox_store::DELIMITER)
            .unwrap_or(&name);
        letterbox_store::normalize_mailbox_name(trimmed).map_err(|e| store_error(&e))
    }

    /// A mailbox pattern (LIST, LSUB) decoded like a name, wildcards kept.
    pub fn pattern(&self, arg: &MailboxArg) -> Option<String> {
        if self.utf8() {
            String::from_utf8(arg.0.clone()).ok()
        } else {
            utf7::decode(&arg.0)
        }
    }

    /// Writes a mailbox name as the client reads it.
    pub fn write_mailbox(&self, out: &mut Vec<u8>, name: &str) {
        if self.utf8() {
            response::astring(out, name.as_bytes(), true);
        } else {
            response::astring(out, utf7::encode(name).as_bytes(), false);
        }
    }

    pub fn capabilities(&self) -> String {
        let mut caps = crate::capabilities(
            matches!(self.state, State::NotAuthenticated),
            self.peer.plaintext_auth_allowed(&self.ctx.config),
            self.ctx.tls.is_some() && !self.peer.tls,
        );
        // RFC 7889: the largest message APPEND takes (the literal limit).
        caps.push_str(&format!(" APPENDLIMIT={}", self.append_limit()));
        caps
    }

    /// The largest message an APPEND accepts (`[imap] max_literal_size`), for
    /// APPENDLIMIT (RFC 7889).
    pub fn append_limit(&self) -> u64 {
        self.ctx
            .config
            .imap
            .max_literal_size
            .0
            .min(u64::from(u32::MAX))
    }

    /// Serves the connection to its end.
    pub async fn run(mut self) {
        let greeting = format!(
            "* OK [CAPABILITY {}] Letterbox ready\r\n",
            self.capabilities()
        );
        self.conn.push(greeting.as_bytes());
        let end = self.main_loop().await;
        if let Err(Fatal::Bye(text)) = end {
            self.conn.push(format!("* BYE {text}\r\n").as_bytes());
        }
        if self.conn.flush().await.is_ok() {
            self.conn.shutdown().await;
        }
    }

    fn read_timeout(&self) -> Duration {
        let l = &self.ctx.config.limits;
        Duration::from_secs(match self.state {
            State::NotAuthenticated => l.timeout_unauthenticated,
            _ => l.timeout_authenticated,
        })
    }

    async fn main_loop(&mut self) -> Result<(), Fatal> {
        loop {
            self.conn.flush().await?;
            if matches!(self.state, State::Logout) {
                return Ok(());
            }
            let max_literal = match self.state {
                State::NotAuthenticated => (self.ctx.config.limits.max_line_length as u64)
                    .min(self.ctx.config.imap.max_literal_size.0),
                _ => self.ctx.config.imap.max_literal_size.0,
            };
            self.conn.set_max_literal(max_literal);
            // After login, literals (APPEND's messages) count against the server-wide
            // budget for content held in memory, as SMTP DATA does.
            self.conn.set_budget(match self.state {
                State::NotAuthenticated => None,
                _ => Some(self.ctx.content_budget.clone()),
            });
            self.conn
                .set_write_timeout(self.read_timeout().max(Duration::from_secs(1)));
            let input = match tokio::time::timeout(self.read_timeout(), self.conn.read_command())
                .await
            {
                Err(_) => return Err(Fatal::Bye("Autologout: idle for too long".into())),
                Ok(Err(ReadError::Io(e))) if crate::deflate::is_corrupt_input(&e) => {
                    return Err(Fatal::Bye("Corrupt compressed input".into()))
                }
                Ok(Err(ReadError::Eof)) | Ok(Err(ReadError::Io(_))) => return Err(Fatal::Closed),
                Ok(Err(ReadError::LineTooLong)) => {
                    return Err(Fatal::Bye("[TOOBIG] Command line too long".into()))
                }
                Ok(Err(ReadError::LiteralTooBig)) => {
                    return Err(Fatal::Bye("[TOOBIG] Literal too large".into()))
                }
                Ok(Ok(i)) => i,
            };
            let buf = match input {
                Input::LiteralRefused { tag, size } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    let max = max_literal;
                    self.conn.push(
                        format!("{tag} NO [TOOBIG] Literal of {size} octets exceeds the limit of {max}\r\n")
                            .as_bytes(),
                    );
                    continue;
                }
                Input::NoRoom { tag } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    self.conn.push(
                        format!("{tag} NO [UNAVAILABLE] The server is receiving too much mail at once, try again later\r\n")
                            .as_bytes(),
                    );
                    continue;
                }
                Input::Command(buf) => buf,
            };
            match parser::parse_command(&buf) {
                Err(e) => {
                    let tag = e.tag.unwrap_or_else(|| "*".into());
                    self.conn
                        .push(format!("{tag} BAD {}\r\n", sanitize(&e.message)).as_bytes());
                    self.count_bad()?;
                }
                Ok(cmd) => {
                    self.execute(cmd).await?;
                    self.conn.release_budget();
                }
            }
        }
    }

    fn count_bad(&mut self) -> Result<(), Fatal> {
        self.bad_in_row += 1;
        if self.bad_in_row >= self.ctx.config.limits.max_bad_commands {
            return Err(Fatal::Bye("Too many invalid commands".into()));
        }
        Ok(())
    }

    async fn execute(&mut self, cmd: Command) -> Result<(), Fatal> {
        let Command { tag, body } = cmd;
        let mode = match &body {
            CommandBody::Fetch { uid: false, .. }
            | CommandBody::Store { uid: false, .. }
            | CommandBody::Search { uid: false, .. } => SyncMode::NoExpunge,
            _ => SyncMode::Full,
        };
        // Leaving a mailbox (or the session) tells nothing more about it: no EXPUNGE
        // around CLOSE (RFC 9051 6.4.1), nothing stale before a SELECT's answer.
        let leaving = matches!(
            body,
            CommandBody::Select { .. }
                | CommandBody::Close
                | CommandBody::Unselect
                | CommandBody::Logout
        );
        // Changes others made are told first, so the command works on a current view
        // (within the RFC 9051 7.5.1 rules for EXPUNGE).
        self.announced_removals = false;
        if !leaving && self.feed_pending()? {
            self.sync(mode).await?;
        }
        if !leaving && mode == SyncMode::Full {
            self.flush_unannounced();
        }
        let mut reply = commands::dispatch(self, &tag, body).await?;
        if reply.status == Status::Bad {
            self.count_bad()?;
        } else {
            self.bad_in_row = 0;
        }
        if self.feed_pending()? {
            self.sync(mode).await?;
        }
        if mode == SyncMode::Full {
            self.flush_unannounced();
        }
        if self.announced_removals
            && self.enabled.qresync
            && reply.status == Status::Ok
            && reply.code.is_none()
        {
            if let Some(sel) = self.selected() {
                reply.code = Some(format!("HIGHESTMODSEQ {}", sel.known_modseq));
            }
        }
        let mut line = Vec::with_capacity(64);
        line.extend_from_slice(tag.as_bytes());
        line.extend_from_slice(match reply.status {
            Status::Ok => b" OK ",
            Status::No => b" NO ",
            Status::Bad => b" BAD ",
            Status::Sent => return Ok(()),
        });
        if let Some(code) = &reply.code {
            line.extend_from_slice(format!("[{code}] ").as_bytes());
        }
        line.extend_from_slice(sanitize(&reply.text).as_bytes());
        line.extend_from_slice(b"\r\n");
        self.conn.push(&line);
        Ok(())
    }

    /// Announces removals noticed during a FETCH, STORE or SEARCH (which could not tell
    /// them) at the next command that may, feed or not.
    fn flush_unannounced(&mut self) {
        let State::Selected(_, sel) = &mut self.state else {
            return;
        };
        if sel.unannounced && !sel.flush_expunges(&mut self.conn.out).is_empty() {
            self.announced_removals = true;
        }
    }

    /// Drains the change feed; true if the selected mailbox may have changed.
    pub fn feed_pending(&mut self) -> Result<bool, Fatal> {
        let (authed, selected) = match &mut self.state {
            State::Authenticated(a) => (a, None),
            State::Selected(a, s) => (a, Some(s.id)),
            _ => return Ok(false),
        };
        let mut relevant = false;
        loop {
            match authed.changes.try_recv() {
                Ok(c) => {
                    if Some(c.mailbox) == selected {
                        if let ChangeKind::MailboxDeleted { .. } = c.kind {
                            return Err(Fatal::Bye("Selected mailbox was deleted".into()));
                        }
                        relevant = true;
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => relevant = true,
                Err(_) => break,
            }
        }
        Ok(relevant && selected.is_some())
    }

    /// Brings the view up to date and tells the client (see [`view`]).
    pub async fn sync(&mut self, mode: SyncMode) -> Result<(), Fatal> {
        let rev1 = self.rev1();
        let Some(sel) = self.selected_mut() else {
            return Ok(());
        };
        let (id, known, valid) = (sel.id, sel.known_modseq, sel.uidvalidity);
        let (max_uid, read_only) = (sel.max_uid(), sel.read_only);
        let base = self.indexes.get(id);
        let r = self
            .ctx
            .store
            .run(move |s| {
                let mb = s.mailbox_by_id(id)?;
                let ch = s.changes_since(id, known)?;
                // Arrivals are recent to the one session that claims them (every
                // read-write session claims; IMAP4rev1 ones show it).
                let recent = if (rev1 || !read_only) && ch.changed.iter().any(|m| m.uid > max_uid) {
                    recent_range(s, id, !read_only)
                } else {
                    (0, 0)
                };
                // The shared index of the mailbox brought to the same point (the
                // changes just read serve when it was where this view was).
                let snap = match base {
                    Some(b) if b.uidvalidity != mb.uidvalidity => None,
                    Some(b) if b.modseq == known && mb.highestmodseq > known => {
                        Some(std::sync::Arc::new(b.advance(mb.highestmodseq, &ch)))
                    }
                    Some(b) => Some(index::current(s, &mb, Some(b))?),
                    None => None,
                };
                Ok((mb.highestmodseq, mb.uidvalidity, ch, recent, snap))
            })
            .await;
        match r {
            // Another mailbox on the same row id: this one was deleted meanwhile.
            Ok((_, uidvalidity, _, _, _)) if uidvalidity != valid => {
                Err(Fatal::Bye("Selected mailbox was deleted".into()))
            }
            Ok((highest, _, changes, recent, snap)) => {
                let State::Selected(_, sel) = &mut self.state else {
                    return Ok(());
                };
                if sel.apply(changes, highest, mode, rev1, recent, &mut self.conn.out) {
                    self.announced_removals = true;
                }
                if let Some(snap) = snap {
                    self.indexes.put(&snap);
                    sel.adopt(&snap);
                }
                Ok(())
            }
            Err(letterbox_store::Error::NotFound(_)) => {
                Err(Fatal::Bye("Selected mailbox was deleted".into()))
            }
            Err(e) => {
                tracing::warn!("imap: sync failed: {e}");
                Ok(())
            }
        }
    }
}

/// The UIDs `[from, to)` that are `\Recent` to a session (see
/// `letterbox_store::Backend::claim_recent`): claimed when `take` (read-write), else
/// the unclaimed ones. A claim that fails (a full disk) only costs the flag: it is
/// logged and nothing is recent, the command goes on.
pub fn recent_range(st: &dyn letterbox_store::Backend, mailbox: i64, take: bool) -> (u32, u32) {
    match st.claim_recent(mailbox, take) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("imap: \\Recent not claimed: {e}");
            (0, 0)
        }
    }
}

/// Response text is one line of printable text.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
