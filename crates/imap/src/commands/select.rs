//! SELECT and EXAMINE (RFC 9051 6.3.2, 6.3.3).
//!
//! Reads the mailbox (for its HIGHESTMODSEQ) before listing its messages, so anything
//! committed in between is caught by the next sync. SELECT claims `\Recent` (RFC 3501
//! 2.3.2: the messages no session has had as recent become this one's alone,
//! `letterbox_store::open_mailbox`; every session claims, IMAP4rev1 ones show
//! it); EXAMINE claims nothing, reports the unclaimed ones (`* n RECENT`, as Dovecot)
//! and is read-only. A claim that cannot be written (a full disk) is logged and the
//! SELECT goes on without it. A session that had a mailbox selected leaves it first
//! (`* OK [CLOSED]` for IMAP4rev2 and QRESYNC, RFC 9051 7.1, RFC 7162 3.2.11), and stays
//! unselected if this fails.
//!
//! CONDSTORE (RFC 7162 3.1.2.1, 3.1.8): `(CONDSTORE)` turns it on; once on, SELECT says
//! `* OK [HIGHESTMODSEQ n]` (never `NOMODSEQ`: every mailbox keeps MODSEQs). As Dovecot,
//! HIGHESTMODSEQ is left out for clients that have not turned CONDSTORE on.
//!
//! QRESYNC (RFC 7162 3.2.5): `(QRESYNC (uidvalidity modseq [known-uids] [seq-match]))`
//! is BAD unless `ENABLE QRESYNC` came first. With the mailbox's UIDVALIDITY, after the
//! usual responses come `* VANISHED (EARLIER) uids` (expunged above `modseq`, within
//! known-uids) and `* n FETCH (UID u FLAGS (..) MODSEQ (m))` for every message (within
//! known-uids) changed above `modseq`. With another UIDVALIDITY the parameter is ignored
//! and the SELECT is a plain one. The seq-match data is not needed: every expunge is
//! kept with its MODSEQ, so the VANISHED set is exact.
//!
//! The untagged answers include `* OK [MAILBOXID (...)]` (RFC 8474 4.2).
//!
//! The change feed is drained before the mailbox is read: events queued before the
//! SELECT are older than what it reads, and one about a mailbox deleted earlier must not
//! be taken for the new selection (a recreated mailbox may get the same row id). Only a
//! deletion that comes after the SELECT ends the session with `* BYE`, as Dovecot
//! ("Selected mailbox was deleted").

use crate::parser::{MailboxArg, SelectParams};
use crate::response;
use crate::session::index;
use crate::session::view::{Selected, UidSet};
use crate::session::{store_error, Fatal, Reply, Session, State};

pub async fn run(
    s: &mut Session,
    arg: &MailboxArg,
    read_only: bool,
    params: &SelectParams,
) -> Result<Reply, Fatal> {
    if params.qresync.is_some() && !s.enabled.qresync {
        return Ok(Reply::bad("QRESYNC not enabled"));
    }
    if params.condstore {
        s.enable_condstore(false);
    }
    if s.deselect().is_some() && (!s.rev1() || s.enabled.qresync) {
        s.conn.push(b"* OK [CLOSED] Previous mailbox closed\r\n");
    }
    // What the feed holds now happened before the mailbox is read below, so the view
    // built from that read already includes it. Left queued, a mailbox deleted before
    // this SELECT would be taken for the selected one when a new mailbox got its row id
    // (imaptest deletes and recreates its mailbox before every test).
    s.feed_pending()?;
    let (account, name) = match crate::alias::target(s, arg).await {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let lookup = name.clone();
    let qresync = params.qresync.clone();
    // Every read-write session claims (one session per message, whatever its version);
    // only IMAP4rev1 sessions show it.
    let claim = s.rev1() || !read_only;
    let indexes = s.indexes.clone();
    let r = s
        .ctx
        .store
        .run(move |st| {
            // One read (mailbox row, `\Recent` mark, account) unless there is something
            // to claim. Claimed before the messages are read: a message that comes in
            // between is claimed by this session's next sync (or another's); the row is
            // read again after a claim, so that what was claimed is in the snapshot.
            let open = letterbox_store::open_mailbox(
                st,
                account,
                &lookup,
                claim.then_some(!read_only),
            )?;
            let (mb, recent, acct) = (open.mailbox, open.recent, open.account);
            let snap = index::current(st, &mb, indexes.get(mb.id))?;
            // Expunged (and, for the FETCH lines below, changed) above the client's
            // MODSEQ.
            let changes = match &qresync {
                Some(q) if q.uidvalidity == mb.uidvalidity => {
                    Some(st.changes_since(mb.id, q.modseq)?)
                }
                _ => None,
            };
            Ok((mb, snap, recent, changes, acct))
        })
        .await;
    let (mb, snap, recent, changes, acct) = match r {
        Ok(v) => v,
        Err(e) => return Ok(store_error(&e)),
    };
    s.indexes.put(&snap);
    let mut sel = Selected {
        id: mb.id,
        name: mb.name.clone(),
        uidvalidity: mb.uidvalidity,
        read_only,
        msgs: snap.msgs.clone(),
        known_modseq: snap.modseq,
        recent: Vec::new(),
        saved: Vec::new(),
        keywords: snap.keywords.clone(),
        kwsets: snap.kwsets.clone(),
        modseqs: s.enabled.condstore,
        vanished: s.enabled.qresync,
        unannounced: false,
    };
    // \Recent: the claimed UIDs [from, to) in the view, kept as a range beside the
    // shared message list (no copy of it).
    sel.add_recent(recent, 0);
    // No `*` in known-uids (the parser refuses it); None: every UID.
    let known: Option<UidSet> = params
        .qresync
        .as_ref()
        .and_then(|q| q.known_uids.as_ref())
        .map(|set| UidSet::new(set, u32::MAX));
    let in_known = |uid: u32| known.as_ref().is_none_or(|k| k.contains(uid));
    // QRESYNC: the messages in the view (within known-uids) changed above the client's
    // MODSEQ, and the UIDs expunged above it. A change read here but made after the
    // snapshot is not in the view yet: its line carries the view's MODSEQ, and the next
    // sync tells the change itself.
    let (resync, vanished) = match changes {
        Some(ch) => {
            let resync: Vec<(usize, u64)> = ch
                .changed
                .iter()
                .filter(|m| in_known(m.uid))
                .filter_map(|m| sel.index_of_uid(m.uid).map(|i| (i, m.modseq.min(snap.modseq))))
                .collect();
            (resync, Some(ch.vanished))
        }
        None => (Vec::new(), None),
    };
    let rev1 = s.rev1();
    let mut out = Vec::new();
    out.extend_from_slice(format!("* {} EXISTS\r\n", sel.exists()).as_bytes());
    if rev1 {
        out.extend_from_slice(format!("* {} RECENT\r\n", sel.recent_count()).as_bytes());
    }
    out.extend_from_slice(sel.flags_responses().as_bytes());
    if rev1 {
        if let Some(i) = snap.first_unseen {
            out.extend_from_slice(format!("* OK [UNSEEN {}] First unseen\r\n", i + 1).as_bytes());
        }
    }
    out.extend_from_slice(
        format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", mb.uidvalidity).as_bytes(),
    );
    // The mailbox was read before its messages: one may have arrived in between.
    let uidnext = mb.uidnext.max(sel.max_uid().saturating_add(1));
    out.extend_from_slice(format!("* OK [UIDNEXT {uidnext}] Predicted next UID\r\n").as_bytes());
    out.extend_from_slice(
        format!(
            "* OK [MAILBOXID ({})] Ok\r\n",
            crate::objectid::mailbox_id(mb.id, mb.uidvalidity)
        )
        .as_bytes(),
    );
    if !rev1 {
        // RFC 9051 6.3.2: the mailbox's name as the server spells it.
        out.extend_from_slice(b"* LIST () \"/\" ");
        s.write_mailbox(&mut out, &mb.name);
        out.extend_from_slice(b"\r\n");
    }
    if s.enabled.condstore {
        out.extend_from_slice(
            format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", mb.highestmodseq).as_bytes(),
        );
    }
    if let Some(vanished) = vanished {
        // Not those still in the view: removed after the list was read, the view
        // announces them (plain VANISHED) at the next sync.
        let gone: Vec<u32> = vanished
            .into_iter()
            .filter(|&u| in_known(u) && sel.index_of_uid(u).is_none())
            .collect();
        if !gone.is_empty() {
            out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", response::sequence_set(&gone)).as_bytes(),
            );
        }
        for (i, modseq) in resync {
            let m = &sel.msgs[i];
            out.extend_from_slice(format!("* {} FETCH (UID {} FLAGS ", i + 1, m.uid).as_bytes());
            response::flags(&mut out, m.flags, sel.kwsets.get(m.kw), rev1 && sel.is_recent(m.uid));
            out.extend_from_slice(format!(" MODSEQ ({modseq}))\r\n").as_bytes());
        }
    }
    if let Some(alert) = super::quota::alert(s, &acct, super::quota::AlertAt::Select) {
        out.extend_from_slice(alert.as_bytes());
    }
    s.conn.push(&out);
    let authed = match std::mem::replace(&mut s.state, State::Logout) {
        State::Authenticated(a) => a,
        State::Selected(a, _) => a,
        other => {
            s.state = other;
            return Ok(Reply::bad("Log in first"));
        }
    };
    s.state = State::Selected(authed, sel);
    Ok(if read_only {
        Reply::ok("EXAMINE completed").code("READ-ONLY")
    } else {
        Reply::ok("SELECT completed").code("READ-WRITE")
    })
}
