//! Letterbox POP3: each account's INBOX over the Post Office Protocol.
//!
//! - RFC 1939: USER/PASS, STAT, LIST, RETR, DELE, NOOP, RSET, QUIT, TOP, UIDL; the
//!   AUTHORIZATION, TRANSACTION and UPDATE states. Deletions happen only in UPDATE, after
//!   QUIT; a dropped or timed-out connection deletes nothing. The greeting carries no
//!   APOP timestamp (APOP needs the clear-text password on the server).
//! - RFC 2449 CAPA with TOP, UIDL, USER, SASL, RESP-CODES, PIPELINING, EXPIRE and
//!   IMPLEMENTATION; RFC 3206 response codes (`[IN-USE]`, `[AUTH]`, `[SYS/TEMP]`).
//! - RFC 5034 AUTH with PLAIN (RFC 4616) and LOGIN, with an initial response.
//! - RFC 6856 UTF8: user names and passwords are UTF-8 anyway and messages are never
//!   downgraded, so the command only acknowledges.
//! - RFC 2595 STLS where the server has TLS (`Context::tls`); on `pop3s` the listener
//!   wraps the stream before the session starts. Without TLS (and not from loopback,
//!   unless `[auth] allow_plaintext`), USER, PASS and AUTH are refused and CAPA leaves
//!   USER and SASL out.
//!
//! Exact octets: LIST and STAT report each message's RFC822 size, which is exactly what
//! RETR sends before dot-stuffing (stored messages have CRLF line ends). RETR and TOP
//! stream the message from the store in 64 KiB chunks read on the blocking pool, so a
//! large message costs no more memory than a small one.
//!
//! UIDL values are the mailbox UIDVALIDITY and the UID in hex: unique and stable for as
//! long as the message exists, so leave-on-server clients never download twice. A
//! message imported from another server (`letterbox import maildir`) keeps the UIDL that
//! server gave it (`Backend::pop3_uidls`), so its clients see nothing new after a move.
//!
//! The maildrop lock (RFC 1939 section 8): one POP3 session per account at a time, held in
//! this process by a guard released on every exit path. IMAP may use the mailbox at the
//! same time: a POP3 session works on the snapshot taken at login; a message expunged
//! meanwhile fails RETR cleanly, and new mail shows in the next session.
//!
//! Retention (`[pop3] retention`, per account `letterbox user set ADDRESS
//! pop3-retention`), announced with CAPA EXPIRE:
//! - `keep`: only DELE deletes (`EXPIRE NEVER`);
//! - `delete`: what RETR retrieved in a session that ends with QUIT is deleted in UPDATE
//!   as if DELE'd (`EXPIRE 0`);
//! - `<N>d`: each RETR records the first retrieval time; the server's periodic
//!   `Store::sweep_retention` expunges messages retrieved N days ago (`EXPIRE N`).

use letterbox_proto::{BoxStream, Context, Peer, Service};
use letterbox_store::AccountId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

mod dot;
mod session;
#[cfg(test)]
mod tests;

pub use dot::{DotStuffer, TopLimit};

/// The POP3 service: one per server, shared by every POP3 session.
pub struct Pop3Service {
    ctx: Context,
    locks: MaildropLocks,
}

impl Pop3Service {
    pub fn new(ctx: Context) -> Arc<Pop3Service> {
        Arc::new(Pop3Service {
            ctx,
            locks: MaildropLocks::default(),
        })
    }
}

impl Service for Pop3Service {
    fn name(&self) -> &'static str {
        "pop3"
    }

    /// RFC 1939 4 allows a negative greeting; RFC 3206 `[SYS/TEMP]` says it is temporary.
    fn busy(&self) -> &'static [u8] {
        b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    }

    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(session::run(self, stream, peer))
    }
}

/// The accounts that have a POP3 session in the TRANSACTION state.
#[derive(Default, Clone)]
pub(crate) struct MaildropLocks(Arc<Mutex<HashSet<AccountId>>>);

impl MaildropLocks {
    /// Locks the account's maildrop, or `None` when another session holds it.
    pub(crate) fn try_lock(&self, account: AccountId) -> Option<MaildropGuard> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(account).then(|| MaildropGuard {
            locks: self.clone(),
            account,
        })
    }
}

/// Holds a maildrop lock; dropping it (QUIT, disconnect, time-out, panic) releases it.
pub(crate) struct MaildropGuard {
    locks: MaildropLocks,
    account: AccountId,
}

impl Drop for MaildropGuard {
    fn drop(&mut self) {
        let mut set = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.account);
    }
}
