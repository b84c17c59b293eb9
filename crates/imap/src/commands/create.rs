//! CREATE (RFC 9051 6.3.4), with CREATE-SPECIAL-USE (RFC 6154 section 3):
//! `CREATE name (USE (\Sent))`. Superior names are created as needed (by the store); a
//! trailing delimiter is dropped. The answer carries `[MAILBOXID (...)]` (RFC 8474 4.1).
//!
//! A mailbox has at most one special use, and an account one mailbox of each: a second
//! attribute, one the server does not keep (`\All`, `\Flagged`: virtual mailboxes it
//! does not have) or one another mailbox already has is refused with `NO [USEATTR]` and
//! nothing is created (RFC 6154: "MUST NOT create the mailbox").
//!
//! CREATE of a special-folder alias (`Sent Items`, see [`crate::alias`]) answers `OK`
//! without creating anything when the account has the folder it stands for, so a client
//! that insists on making its own Sent folder goes on to use the real one; without such
//! a folder the name is created, with the attribute. A name below an alias
//! (`Sent Items/2024`) is created below the folder it stands for (`Sent/2024`).

use crate::alias;
use crate::parser::MailboxArg;
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::SpecialUse;

pub async fn run(s: &mut Session, arg: &MailboxArg) -> Result<Reply, Fatal> {
    run_with_use(s, arg, &[]).await
}

pub async fn run_with_use(
    s: &mut Session,
    arg: &MailboxArg,
    uses: &[String],
) -> Result<Reply, Fatal> {
    let (account, name) = match s.account_mailbox(arg) {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    if name == "INBOX" {
        return Ok(Reply::no("INBOX always exists").code("ALREADYEXISTS"));
    }
    if name.contains(['*', '%']) {
        // RFC 9051 5.1: names with list wildcards cannot be listed reliably.
        return Ok(Reply::no("Mailbox names cannot contain * or %").code("CANNOT"));
    }
    let special = match uses {
        [] => None,
        [one] => match SpecialUse::parse(one) {
            Some(su) if !matches!(su, SpecialUse::All | SpecialUse::Flagged) => Some(su),
            _ => {
                return Ok(Reply::no(format!("Special use {one} is not supported")).code("USEATTR"))
            }
        },
        _ => return Ok(Reply::no("A mailbox has one special use at most").code("USEATTR")),
    };
    // An alias, or a name below one (see [`crate::alias`]).
    let alias = alias::split(s, &name).map(|(su, first, _)| (su, first.len()));
    let r = s
        .ctx
        .store
        .run(move |st| {
            if let Some(su) = special {
                if st
                    .list_mailboxes(account)?
                    .iter()
                    .any(|mb| mb.special_use == Some(su))
                {
                    return Ok(Err(Reply::no(format!(
                        "Another mailbox already has {}",
                        su.as_str()
                    ))
                    .code("USEATTR")));
                }
            }
            let mut name = name;
            let mut special = special;
            if let Some((su, first_len)) = alias {
                let exact = first_len == name.len();
                match alias::resolve(st, account, &name[..first_len], su)? {
                    alias::Resolved::Own => {}
                    // CREATE (USE ...) of the alias itself takes the name as it is.
                    _ if exact && special.is_some() => {}
                    alias::Resolved::Special(mb) if exact => {
                        return Ok(Ok(Reply::ok(format!(
                            "CREATE completed: the {} folder",
                            su.as_str()
                        ))
                        .code(mailbox_id_code(&mb))))
                    }
                    alias::Resolved::Special(mb) => {
                        name = format!("{}{}", mb.name, &name[first_len..]);
                    }
                    alias::Resolved::Missing if exact => special = Some(su),
                    alias::Resolved::Missing => {}
                }
            }
            let mb = st.create_mailbox(account, &name, special)?;
            Ok(Ok(Reply::ok("CREATE completed").code(mailbox_id_code(&mb))))
        })
        .await;
    match r {
        Ok(Ok(reply)) | Ok(Err(reply)) => Ok(reply),
        Err(e) => Ok(store_error(&e)),
    }
}

/// RFC 8474 4.1: `MAILBOXID (...)`, the mailbox's object id.
fn mailbox_id_code(mb: &letterbox_store::Mailbox) -> String {
    format!(
        "MAILBOXID ({})",
        crate::objectid::mailbox_id(mb.id, mb.uidvalidity)
    )
}
