//! Client-name aliases of the special folders (`[imap] special_use_aliases`).
//!
//! Outlook looks for `Sent Items` and `Deleted Items`, Apple Mail for `Sent Messages` and
//! `Deleted Messages`, others for `Junk E-mail` or `Spam`; without SPECIAL-USE support
//! (or ignoring it) they create those folders and scatter mail over two Sent folders.
//! Each alias names a special-use attribute; a command that names an alias (SELECT,
//! EXAMINE, APPEND, COPY, MOVE, STATUS, CREATE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT)
//! reaches the account's folder that has the attribute, whatever it is called now (a
//! rename keeps the alias working). An account with a folder of exactly the alias's
//! name keeps using that folder, and an account without a folder of that use gets the
//! name as an ordinary one (CREATE makes it, with the attribute). LIST never shows
//! aliases. Names match without regard to ASCII case. DELETE and RENAME take names
//! literally, so an alias can never delete or move the real folder. Dovecot has no such
//! feature.

use crate::parser::MailboxArg;
use crate::session::{Reply, Session};
use letterbox_store::{Backend, Mailbox, SpecialUse};

/// The special-use attribute an alias name stands for.
pub fn alias_use(s: &Session, name: &str) -> Option<SpecialUse> {
    if name == "INBOX" {
        return None;
    }
    s.ctx
        .config
        .imap
        .special_use_aliases
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, a)| SpecialUse::parse(a))
}

/// The folder an alias leads to in an account: a folder of exactly that name first,
/// else the one with the attribute; `None` when there is neither.
pub fn resolve(
    st: &dyn Backend,
    account: i64,
    name: &str,
    special: SpecialUse,
) -> letterbox_store::Result<Option<Mailbox>> {
    match st.mailbox(account, name) {
        Ok(mb) => return Ok(Some(mb)),
        Err(letterbox_store::Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    Ok(st
        .list_mailboxes(account)?
        .into_iter()
        .find(|mb| mb.special_use == Some(special)))
}

/// The logged-in account and the store name a command acts on, with an alias resolved
/// to the folder it stands for (see the module docs).
pub fn target(
    s: &Session,
    arg: &MailboxArg,
) -> impl std::future::Future<Output = Result<(i64, String), Reply>> + Send + 'static {
    let r = s.account_mailbox(arg).map(|(account, name)| {
        let special = alias_use(s, &name);
        (account, name, special, s.ctx.store.clone())
    });
    async move {
        let (account, name, special, store) = r?;
        let Some(special) = special else {
            return Ok((account, name));
        };
        let n = name.clone();
        match store.run(move |st| resolve(st, account, &n, special)).await {
            Ok(Some(mb)) => Ok((account, mb.name)),
            _ => Ok((account, name)),
        }
    }
}
