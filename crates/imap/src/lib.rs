//! Letterbox's IMAP server: IMAP4rev2 (RFC 9051) with IMAP4rev1 (RFC 3501) compatibility.
//!
//! Layout (after Dovecot's `src/imap/cmd-*.c` and Stalwart's `crates/imap/src/op/`):
//! - [`conn`]: reads whole commands with their literals, enforcing the line and literal
//!   limits before a literal is accepted;
//! - [`parser`]: a hand-written parser of the command grammar (RFC 9051 section 9);
//! - [`session`]: the state machine and the thin command loop, with [`session::view`] the
//!   per-session view of the selected mailbox kept in step with the store's change feed;
//! - [`commands`]: one module per command;
//! - [`response`]: strings, literals, lists; [`utf7`]: modified UTF-7 mailbox names;
//!   [`datetime`]: IMAP dates.
//!
//! Extensions: STARTTLS, LITERAL+ (RFC 7888), SASL-IR (RFC 4959), ENABLE (RFC 5161), IDLE
//! (RFC 2177), NAMESPACE (RFC 2342), UIDPLUS (RFC 4315), MOVE (RFC 6851), UNSELECT
//! (RFC 3691), CHILDREN (RFC 3348), SPECIAL-USE (RFC 6154), ID (RFC 2971), CONDSTORE and
//! QRESYNC (RFC 7162); and the parts of
//! IMAP4rev2 that were extensions for rev1: ESEARCH and SEARCHRES (RFC 4731, RFC 5182),
//! BINARY (RFC 3516), LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819).
//!
//! # Choices where the RFCs leave room (compared with Dovecot 2.3)
//! - INTERNALDATE is written in UTC (`+0000`); SEARCH BEFORE/ON/SINCE compare UTC days.
//!   SENTBEFORE/SENTON/SENTSINCE use the day written in the `Date:` header, ignoring its
//!   time and zone (RFC 9051 6.4.4), falling back to the internal date without one.
//! - Unsolicited flag updates are `* n FETCH (UID u FLAGS (...))` (UID included).
//! - A message that arrives while a mailbox is selected read-write is `\Recent` to every
//!   such session that notices it (RFC 3501 asks for exactly one session).
//! - FETCH of a message another session expunged (not yet announced) leaves it out and
//!   completes with `OK [EXPUNGEISSUED]`.
//! - `BODY[section]` of a part that does not exist is the empty string (as Dovecot).
//! - `BODYSTRUCTURE` writes a part's language as a list, `("en")`.
//! - Differences from Dovecot kept on purpose: a body's line count includes a last line
//!   without a line end (Dovecot counts line ends only, so a one-line MIME part is `0`
//!   there, `1` here); `BODY[n]` of a nested multipart ends before the CRLF that precedes
//!   the enclosing boundary (RFC 2046 5.1.1 gives that CRLF to the boundary; Dovecot
//!   includes it); strings with a `"` are quoted with escapes (Dovecot sends a literal);
//!   BINARY content without NUL is sent as a plain literal (Dovecot uses literal8);
//!   `* OK [CLOSED]` goes to IMAP4rev2 and QRESYNC sessions only (Dovecot: all); STORE in
//!   an EXAMINEd mailbox is `NO [READ-ONLY]` (Dovecot: `OK` and ignored); CREATE makes
//!   the missing parents (Dovecot's Maildir++ does not); a session whose selected
//!   mailbox another session deletes gets `* BYE` (as Dovecot).
//! - CONDSTORE/QRESYNC (RFC 7162), checked beside Dovecot 2.3 in
//!   `tests/imap/test_imap_condstore.py`. As Dovecot: `* OK [HIGHESTMODSEQ n]` on
//!   SELECT/EXAMINE only once CONDSTORE is on (RFC 7162 3.1.2.1 reads as every SELECT;
//!   clients that never asked do not want it), and the first CONDSTORE-enabling command
//!   with a mailbox selected sends it untagged; STORE answers are `* n FETCH ([UID u]
//!   MODSEQ (m) FLAGS (..))`, `.SILENT` ones `* n FETCH ([UID u] MODSEQ (m))` for the
//!   messages changed; QRESYNC sessions get the UID in every STORE answer; a command that
//!   announced `VANISHED` ends `OK [HIGHESTMODSEQ n]`; known-uids restrict both the
//!   VANISHED (EARLIER) and the FETCH responses of SELECT (QRESYNC ...). Differences:
//!   `CHANGEDSINCE 0` and a QRESYNC modseq of 0 are BAD, as the ABNF's
//!   `mod-sequence-value` (1 or more) says (Dovecot accepts 0, meaning every message;
//!   no client we know sends it), as are values above 2^63-1 (Dovecot wraps them) and a
//!   modifier given twice or an empty modifier list (Dovecot accepts both); a STORE that
//!   changes nothing still answers FETCH with the current flags and MODSEQ (Dovecot
//!   says nothing); flag changes are told after expunges within one answer (Dovecot:
//!   before). The seq-match data of QRESYNC is parsed and checked, not used: every
//!   expunge is kept with its MODSEQ, so VANISHED (EARLIER) is exact. `SEARCH MODSEQ`
//!   with a `"/flags/..."` entry compares the message's MODSEQ (one per message, allowed
//!   by RFC 7162 3.1.5).
//!
//! # Status (what a later session continues with)
//! Done: every base command of RFC 9051/3501 listed above, end to end with tests in
//! `tests/imap/` (imaplib and a raw client with exact answers; mbsync, offlineimap and
//! s-nail; a comparison with a private Dovecot), the change-feed sync with the EXPUNGE
//! rules, IDLE, bad-input limits, a property test and a libFuzzer target
//! (`fuzz/run.sh`, stable toolchain) for the parser. Not yet:
//! - QUOTA, NOTIFY, SORT/THREAD, LIST-MYRIGHTS, COMPRESS, MULTIAPPEND/CATENATE,
//!   APPENDLIMIT (issue 6). CONDSTORE/QRESYNC are done (issue 6), with the `resync`
//!   workload of the benchmark harness (`bench/run`, docs/BENCHMARKS.md);
//! - `UTF8=ACCEPT` is honoured by ENABLE but not advertised (needs RFC 6855 review);
//! - `\Recent` is per session for arrivals seen while selected (see above), and LIST's
//!   RECURSIVEMATCH returns no CHILDINFO;
//! - the benchmark of issue 5: `tests/imap/bench_imap.py` runs it beside a private
//!   Dovecot. Figures with batched reads (100,000 messages, 200 IDLE sessions, a shared
//!   2-core machine; Dovecot in brackets): APPEND 923/s (573), SELECT 0.04 s (0.18),
//!   FETCH 1:* FLAGS 0.17 s (0.14), FETCH 1:* ENVELOPE 2.2 s (1.7), UID SEARCH TEXT
//!   5.2 s (3.0), 200 IDLE sessions +0.23 GiB (+1.3 GiB). SEARCH TEXT is the one to work
//!   on (it decodes every stored text; an index or a text-only read would do). The view
//!   costs 12 octets per message per session. Password hashing (Argon2, 19 MiB per check
//!   on the blocking pool) sets the server's RSS high-water mark after many logins.

pub mod commands;
pub mod conn;
pub mod datetime;
pub mod parser;
pub mod response;
pub mod session;
pub mod utf7;

use letterbox_proto::{BoxStream, Context, Peer, Service};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The `imap` listener's service.
pub struct ImapService {
    pub ctx: Context,
}

impl ImapService {
    pub fn new(ctx: Context) -> ImapService {
        ImapService { ctx }
    }
}

impl Service for ImapService {
    fn name(&self) -> &'static str {
        "imap"
    }

    /// RFC 9051 7.1.5: a BYE greeting refuses the connection.
    fn busy(&self) -> &'static [u8] {
        b"* BYE Too many connections, try again later\r\n"
    }

    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            session::Session::new(ctx, peer, stream).run().await;
        })
    }
}

/// The CAPABILITY list. Before login it names STARTTLS (when TLS can start), and the
/// SASL mechanisms, or LOGINDISABLED when passwords may not be sent on this connection.
pub fn capabilities(before_login: bool, plaintext_ok: bool, starttls: bool) -> String {
    let mut caps = String::from("IMAP4rev2 IMAP4rev1 LITERAL+");
    if before_login {
        if starttls {
            caps.push_str(" STARTTLS");
        }
        caps.push_str(" SASL-IR");
        if plaintext_ok {
            caps.push_str(" AUTH=PLAIN AUTH=LOGIN");
        } else {
            caps.push_str(" LOGINDISABLED");
        }
    }
    caps.push_str(" ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE ID");
    caps.push_str(" CONDSTORE QRESYNC");
    caps
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities_follow_state_and_transport() {
        let before = super::capabilities(true, true, false);
        assert!(before.contains(" LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN "));
        let no_plain = super::capabilities(true, false, true);
        assert!(no_plain.contains("LOGINDISABLED") && !no_plain.contains("AUTH="));
        assert!(no_plain.contains(" STARTTLS SASL-IR"));
        let after = super::capabilities(false, true, true);
        assert!(!after.contains("STARTTLS"));
        assert!(!after.contains("AUTH=") && !after.contains("SASL-IR"));
        assert!(after.starts_with("IMAP4rev2 IMAP4rev1 "));
    }
}
