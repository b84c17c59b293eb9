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
//! Issue 6 added QUOTA and `QUOTA=RES-STORAGE` (RFC 9208, with STATUS DELETED-STORAGE),
//! MULTIAPPEND (RFC 3502), APPENDLIMIT (RFC 7889), STATUS=SIZE (RFC 8438),
//! UNAUTHENTICATE (RFC 8437), CREATE-SPECIAL-USE (RFC 6154), LIST-EXTENDED's CHILDINFO
//! (advertised now, with LIST-STATUS, for IMAP4rev1 clients) and the special-folder
//! aliases of [`alias`]; SORT and THREAD=ORDEREDSUBJECT/THREAD=REFERENCES (RFC 5256,
//! `commands/sort.rs`, `commands/thread.rs`) with SORT=DISPLAY (RFC 5957) and ESORT
//! (RFC 5267), WITHIN (RFC 5032), OBJECTID (RFC 8474, [`objectid`]) and PREVIEW
//! (RFC 8970); COMPRESS=DEFLATE (RFC 4978, `commands/compress.rs` and [`deflate`]).
//!
//! # Choices where the RFCs leave room (compared with Dovecot 2.3)
//! - INTERNALDATE is written in UTC (`+0000`); SEARCH BEFORE/ON/SINCE compare UTC days.
//!   SENTBEFORE/SENTON/SENTSINCE use the day written in the `Date:` header, ignoring its
//!   time and zone (RFC 9051 6.4.4), falling back to the internal date without one.
//! - Unsolicited flag updates are `* n FETCH (UID u FLAGS (...))` (UID included).
//! - `\Recent` (IMAP4rev1 only; RFC 9051 removed it): each message is recent to exactly
//!   one session (RFC 3501 2.3.2), the first IMAP4rev1 session to SELECT its mailbox
//!   read-write, or to notice its arrival while it has the mailbox selected read-write,
//!   after it came in. EXAMINE and STATUS report the messages no session has claimed yet
//!   and claim nothing. IMAP4rev2 sessions claim as the others do (so each message
//!   stays recent to one session) but never show `\Recent`.
//! - FETCH of a message another session expunged (not yet announced) leaves it out and
//!   completes with `OK [EXPUNGEISSUED]`.
//! - `BODY[section]` of a part that does not exist is the empty string (as Dovecot).
//! - `CREATE a/b` (and `RENAME x a/b`) makes no mailbox `a` (RFC 9051 6.3.4 allows
//!   either; Dovecot makes none): LIST shows `a` as `\Noselect \HasChildren`, or
//!   `\NonExistent` with LIST-EXTENDED and IMAP4rev2; SELECT and DELETE of it are `NO
//!   [NONEXISTENT]`; RENAME of it renames its children. A sync client (mbsync) that
//!   created `a/b` therefore finds no `a` to copy back (`commands/list.rs`).
//! - APPEND of a literal8 stores its `binary` parts in base64, as Dovecot
//!   (`commands/append_binary.rs`); `BINARY[...]` gives back the octets sent.
//! - A mailbox deleted while another session has it selected ends that session with
//!   `* BYE Selected mailbox was deleted` at its next command, as Dovecot.
//! - `BODYSTRUCTURE` writes a part's language as a list, `("en")`.
//! - SORT and THREAD give Dovecot's answers on the crafted and random message sets of
//!   `tests/imap/test_imap_sort_thread.py` (every criterion, REVERSE, ties by sequence
//!   number also under REVERSE, dummies, loops, duplicate Message-IDs, subject merging).
//!   Strings compare after i;unicode-casemap ([`casemap`]: one-character upper case, then
//!   canonical decomposition for Latin, Greek and Cyrillic letters), as Dovecot; FROM,
//!   TO and CC sort on the first address's local part (RFC 5256), DISPLAYFROM/DISPLAYTO
//!   on its decoded display name or else its address (RFC 5957). A message whose
//!   `Message-ID` an earlier message already has is threaded as if it had none (RFC 5256
//!   section 4 step 1.A). Bounded work on hostile References: threading uses a
//!   message's last 128 References IDs, and a link whose loop check would look past
//!   4096 ancestors is refused as a loop would be; Dovecot has neither bound. ESORT
//!   answers as Dovecot (MIN/MAX first/last in sort order, ALL in sort order).
//!   Differences kept: a THREAD that finds nothing is `* THREAD` (RFC 5256
//!   grammar; Dovecot adds a space); charsets other than UTF-8 and US-ASCII get
//!   `NO [BADCHARSET (UTF-8 US-ASCII)]` (Dovecot converts any iconv knows). Not
//!   offered: CONTEXT=SORT (RFC 5267), THREAD=REFS.
//! - OBJECTID: no new stored state. MAILBOXID is `F<uidvalidity>-<row id>`; EMAILID is
//!   derived from the blob name and INTERNALDATE (COPY/MOVE keep it; identical octets
//!   delivered in the same second share it); THREADID is derived from the root ID the
//!   message itself names (first `References:` ID, else `In-Reply-To:`, else its own
//!   Message-ID), so it never changes but a reply without `References:` to a reply can
//!   land in another THREADID than its thread (see [`objectid`]). Dovecot offers no
//!   OBJECTID.
//! - PREVIEW is the first 200 characters of the first text body (HTML without tags, no
//!   attachments, no quoted `>` lines), white space collapsed, computed at delivery, as
//!   Dovecot answers; `PREVIEW (LAZY)` answers the same.
//!   Messages stored by an older structure version are parsed again from their octets
//!   on first read (`letterbox_message::STRUCTURE_VERSION`).
//! - WITHIN: `OLDER n` is exactly `NOT YOUNGER n` (INTERNALDATE before now minus `n`
//!   seconds), as Dovecot.
//! - Differences from Dovecot kept on purpose: a body's line count includes a last line
//!   without a line end (Dovecot counts line ends only, so a one-line MIME part is `0`
//!   there, `1` here); `BODY[n]` of a nested multipart ends before the CRLF that precedes
//!   the enclosing boundary (RFC 2046 5.1.1 gives that CRLF to the boundary; Dovecot
//!   includes it); strings with a `"` are quoted with escapes (Dovecot sends a literal);
//!   BINARY content without NUL is sent as a plain literal (Dovecot uses literal8);
//!   BINARY of a message/rfc822 part is its octets (Dovecot also decodes the parts inside
//!   it), and BINARY.SIZE is always the length of BINARY (Dovecot's of a
//!   quoted-printable part can differ from its own BINARY); SEARCH BODY includes MIME
//!   part headers (Dovecot's skips them; see `commands/search.rs`); invalid
//!   Content-Types are text/plain (see `letterbox_message`);
//!   `* OK [CLOSED]` goes to IMAP4rev2 and QRESYNC sessions only (Dovecot: all); STORE in
//!   an EXAMINEd mailbox is `NO [READ-ONLY]` (Dovecot: `OK` and ignored); CREATE makes
//!   the missing parents (Dovecot's Maildir++ does not); a session whose selected
//!   mailbox another session deletes gets `* BYE` (as Dovecot); a NUL octet in a
//!   literal that is not a literal8 (APPEND's message too) is `BAD` (RFC 9051 4.3: CHAR8
//!   excludes NUL; Dovecot 2.3 stores such a message and takes such a LOGIN).
//! - QUOTA: one root, `""`, per account; STORAGE usage rounded up to KiB (as Dovecot),
//!   the limit rounded down; an unlimited account has no quota root (`* QUOTAROOT INBOX`
//!   alone, `GETQUOTA ""` is `NO [NONEXISTENT]`) since a `quota-list` may not be empty;
//!   SETQUOTA is `NO [NOPERM]` (limits are the operator's; Dovecot: plain `NO`).
//!   DELETED-STORAGE is in KiB like STORAGE, rounded up.
//! - `* OK [ALERT] Your mailbox is N% full (used of limit); ...` is sent once per
//!   session while usage is at or above the highest `[quota] warn_at` threshold: after
//!   a successful LOGIN/AUTHENTICATE, or in the first SELECT/EXAMINE answer that finds
//!   the account that full (again after usage went below). Mail programs show each
//!   ALERT as a dialog; one at every folder click would be worse than none. Dovecot has
//!   no such alert.
//! - MULTIAPPEND stores all messages or none (quota counts them together; a zero-length
//!   message or a bad flag refuses the whole command); one command's literals together
//!   stay within `imap.max_literal_size` (the command limit of [`conn`]), so APPENDLIMIT
//!   bounds each message and the batch. After login, literals count against
//!   `[limits] max_buffered_content`; over it a command gets `NO [UNAVAILABLE]` (a
//!   non-synchronizing literal is read and dropped first), never a `BYE`.
//! - UNAUTHENTICATE leaves the mailbox without expunging and resets ENABLE; it is
//!   advertised in every state (harmless before login, where it is `BAD`).
//! - CREATE-SPECIAL-USE: one use per mailbox, one mailbox per use (`NO [USEATTR]`
//!   otherwise; `\All` and `\Flagged` need virtual mailboxes and are refused).
//! - Special-folder aliases (Dovecot has none): `Sent Items`, `Deleted Messages`,
//!   `Spam`... lead to the account's `\Sent`, `\Trash`, `\Junk` folders for SELECT,
//!   EXAMINE, APPEND, COPY, MOVE, STATUS, SUBSCRIBE and GETQUOTAROOT; CREATE of an alias
//!   answers `OK` without creating anything (a client that insists on creating its Sent
//!   Items goes on using the real folder, where `NO [ALREADYEXISTS]` could stop it), or
//!   creates the folder with the attribute when the account has none; names below an
//!   alias (`Sent Items/2024`) are below the folder (`Sent/2024`) for every command;
//!   LIST never shows aliases; DELETE and RENAME never act on an alias itself. See
//!   [`alias`].
//! - With `(SUBSCRIBED RECURSIVEMATCH)`, CHILDINFO is given to every matching parent of
//!   a subscribed name, whether the child matches the pattern or not (as Dovecot).
//! - New mailbox names (CREATE, RENAME) may not have `.` or `..` levels or begin with
//!   `~` (Dovecot refuses them too, and any `.` with Maildir++); empty levels (`a//b`,
//!   `/a`) were refused already.
//! - CONDSTORE/QRESYNC (RFC 7162), checked beside Dovecot 2.3 in
//!   `tests/imap/test_imap_condstore.py`. As Dovecot: `* OK [HIGHESTMODSEQ n]` on
//!   SELECT/EXAMINE only once CONDSTORE is on (RFC 7162 3.1.2.1 can be read as every
//!   SELECT; clients that never asked do not need it), and the first CONDSTORE-enabling
//!   command with a mailbox selected sends it untagged; STORE answers are `* n FETCH ([UID u]
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
//! - COMPRESS=DEFLATE (RFC 4978) is advertised before login too (as every other
//!   extension here; Dovecot lists it only after login), and COMPRESS before login is
//!   `BAD ... Log in first` like any authenticated-state command. An unknown algorithm
//!   is `BAD` as RFC 4978 section 3 says (Dovecot 2.3: `NO Unknown compression
//!   mechanism`), a second COMPRESS `NO [COMPRESSIONACTIVE]` (as Dovecot).
//!   Responses are deflated at level 6 ([`deflate::LEVEL`], as Dovecot's default) with a
//!   sync flush after each batch (each command's answer, each IDLE push, each literal
//!   go-ahead); input is inflated before the command reader, so the line and literal
//!   limits count inflated octets. Corrupt compressed input ends the session with
//!   `* BYE Corrupt compressed input` (sent compressed: that direction is intact;
//!   Dovecot closes without a word).
//!   STARTTLS after COMPRESS (possible only after UNAUTHENTICATE) is `BAD`. Each
//!   compressed session holds a deflater and an inflater (miniz_oxide's windows and
//!   hash tables, a few hundred KiB; not yet measured under load).
//!
//! # Status (what a later session continues with)
//! Done: every base command of RFC 9051/3501 listed above, end to end with tests in
//! `tests/imap/` (imaplib and a raw client with exact answers; mbsync, offlineimap and
//! s-nail; a comparison with a private Dovecot), the change-feed sync with the EXPUNGE
//! rules, IDLE, bad-input limits, a property test and a libFuzzer target
//! (`fuzz/run.sh`, stable toolchain) for the parser. SORT, ESORT, THREAD, WITHIN,
//! OBJECTID and PREVIEW (issue 6) are done, end to end in
//! `tests/imap/test_imap_sort_thread.py` with a comparison with Dovecot. Issue 11's
//! compliance findings (imaptest groups append, select, atoms, expunge, expunge2,
//! store, listext, sort-addresses, sort-display-to, append-binary; parents CREATE does
//! not make, with mbsync and offlineimap) are in `tests/imap/test_imap_compliance.py`.
//! Not yet:
//! - CONTEXT=SORT (RFC 5267); SORT/THREAD figures from a release build on a big
//!   mailbox (a debug build, 10,000 messages: SORT (SUBJECT) 0.6 s, Dovecot 0.03 s with
//!   its cache; THREAD REFERENCES 0.4 s, Dovecot 0.7 s);
//! - NOTIFY, LIST-MYRIGHTS, CATENATE (issue 6). COMPRESS=DEFLATE is done (tests in
//!   `tests/imap/test_imap_compress.py`: zlib as the client over TCP and TLS, IDLE, a
//!   bomb and corrupt input, offlineimap with `usecompression`; isync 1.4 has no
//!   compression, so mbsync is not checked). CONDSTORE/QRESYNC
//!   are done (issue 6), with the `resync` workload of the benchmark harness (`bench/run`,
//!   docs/BENCHMARKS.md). Done for issue 6 too (tests in `tests/imap/test_imap_quota.py`
//!   and `test_imap_ext_misc.py`): QUOTA, the login and SELECT ALERT, MULTIAPPEND,
//!   APPENDLIMIT, STATUS=SIZE/DELETED-STORAGE, UNAUTHENTICATE, CREATE-SPECIAL-USE,
//!   aliases (with mbsync syncing a `Sent Items` channel), CHILDINFO, name rules. Real
//!   programs in `tests/clients/`: mbsync (10,000 messages) and offlineimap syncs through
//!   a logging proxy, NeoMutt in tmux (CONDSTORE resync, quota refusal, UTF-8 names),
//!   Thunderbird under Xvfb (folders, IDLE, MOVE, sending, STARTTLS, the ALERT dialog
//!   and the status-bar quota meter; Thunderbird 153 does not use CONDSTORE here);
//! - `UTF8=ACCEPT` is honoured by ENABLE but not advertised (needs RFC 6855 review);
//! - the benchmark of issue 5: `tests/imap/bench_imap.py` runs it beside a private
//!   Dovecot. Figures with batched reads (100,000 messages, 200 IDLE sessions, a shared
//!   2-core machine; Dovecot in brackets): APPEND 923/s (573), SELECT 0.04 s (0.18),
//!   FETCH 1:* FLAGS 0.17 s (0.14), FETCH 1:* ENVELOPE 2.2 s (1.7), UID SEARCH TEXT
//!   5.2 s (3.0), 200 IDLE sessions +0.23 GiB (+1.3 GiB). SEARCH TEXT is the one to work
//!   on (it decodes every stored text; an index or a text-only read would do). The view
//!   costs 12 octets per message per session. Password hashing (Argon2, 19 MiB per check
//!   on the blocking pool) sets the server's RSS high-water mark after many logins.

pub mod alias;
pub use letterbox_message::casemap;
pub mod commands;
pub mod conn;
pub mod datetime;
pub mod deflate;
pub mod objectid;
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
    /// The mailbox indexes its sessions share (`session::index`).
    pub indexes: Arc<session::index::Indexes>,
}

impl ImapService {
    pub fn new(ctx: Context) -> ImapService {
        let indexes = Arc::new(session::index::Indexes::new(
            ctx.config.imap.index_cache_messages,
            ctx.config.imap.index_cache_bytes.0,
        ));
        ImapService { ctx, indexes }
    }

    /// Preloads the shared indexes from the store's copies (`[imap]
    /// preload_index_messages`, see `session::index::preload`) and logs what it loaded.
    pub async fn preload(&self) {
        let budget = self.ctx.config.imap.preload_index_messages;
        if budget == 0 {
            return;
        }
        let start = std::time::Instant::now();
        let (mailboxes, messages) =
            session::index::preload(&self.ctx.store, &self.indexes, budget).await;
        tracing::info!(
            "imap: preloaded the index of {mailboxes} mailboxes ({messages} messages) in {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
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
        let indexes = self.indexes.clone();
        Box::pin(async move {
            session::Session::new(ctx, peer, stream)
                .with_indexes(indexes)
                .run()
                .await;
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
    // Part of IMAP4rev2, and so served to every session; named for IMAP4rev1 clients,
    // which look for them (RFC 4731, RFC 5182, RFC 3516).
    caps.push_str(" ESEARCH SEARCHRES BINARY");
    caps.push_str(" QUOTA QUOTA=RES-STORAGE MULTIAPPEND STATUS=SIZE UNAUTHENTICATE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS");
    caps.push_str(
        " SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES WITHIN OBJECTID PREVIEW",
    );
    caps.push_str(" COMPRESS=DEFLATE");
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
