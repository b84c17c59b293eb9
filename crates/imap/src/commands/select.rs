//! SELECT and EXAMINE (RFC 9051 6.3.2, 6.3.3).
//!
//! Reads the mailbox (for its HIGHESTMODSEQ) before listing its messages, so anything
//! committed in between is caught by the next sync. SELECT claims `\Recent`; EXAMINE
//! does not and is read-only. A session that had a mailbox selected leaves it first
//! (`* OK [CLOSED]` for IMAP4rev2, RFC 9051 7.1), and stays unselected if this fails.
//! The untagged answers include `* OK [MAILBOXID (...)]` (RFC 8474 4.2).

use crate::parser::MailboxArg;
use crate::session::view::{KeywordSets, Selected};
use crate::session::{store_error, Fatal, Reply, Session, State};

pub async fn run(s: &mut Session, arg: &MailboxArg, read_only: bool) -> Result<Reply, Fatal> {
    if s.deselect().is_some() && !s.rev1() {
        s.conn.push(b"* OK [CLOSED] Previous mailbox closed\r\n");
    }
    let (account, name) = match s.account_mailbox(arg) {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let lookup = name.clone();
    let r = s
        .ctx
        .store
        .run(move |st| {
            let mb = st.mailbox(account, &lookup)?;
            let msgs = st.list_messages(mb.id, !read_only)?;
            Ok((mb, msgs))
        })
        .await;
    let (mb, metas) = match r {
        Ok(v) => v,
        Err(e) => return Ok(store_error(&e)),
    };
    let mut sel = Selected {
        id: mb.id,
        name: mb.name.clone(),
        uidvalidity: mb.uidvalidity,
        read_only,
        msgs: Vec::with_capacity(metas.len()),
        known_modseq: mb.highestmodseq,
        saved: Vec::new(),
        keywords: Vec::new(),
        kwsets: KeywordSets::default(),
    };
    for m in &metas {
        let msg = sel.msg_from_meta(m);
        sel.msgs.push(msg);
    }
    drop(metas);
    sel.keywords = sel.keywords_in_use();
    let rev1 = s.rev1();
    let mut out = Vec::new();
    out.extend_from_slice(format!("* {} EXISTS\r\n", sel.exists()).as_bytes());
    if rev1 {
        let recent = sel.msgs.iter().filter(|m| m.recent).count();
        out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
    }
    out.extend_from_slice(sel.flags_responses().as_bytes());
    if rev1 {
        if let Some(i) = sel
            .msgs
            .iter()
            .position(|m| !m.flags.contains(letterbox_store::Flags::SEEN))
        {
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
