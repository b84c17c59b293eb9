//! Client-name aliases of the special folders (`[imap] special_use_aliases`).
//!
//! Outlook looks for `Sent Items` and `Deleted Items`, Apple Mail for `Sent Messages` and
//! `Deleted Messages`, others for `Junk E-mail` or `Spam`; without SPECIAL-USE support
//! (or ignoring it) they create those folders and scatter mail over two Sent folders.
//! Each alias names a special-use attribute; a command that names an alias (SELECT,
//! EXAMINE, APPEND, COPY, MOVE, STATUS, CREATE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT)
//! reaches the account's folder that has the attribute, whatever it is called now (a
//! rename keeps the alias working). Names below an alias (`Sent Items/2024`) are the
//! same names below that folder (`Sent/2024`), for every command, DELETE and RENAME
//! included, so that a client that makes a subfolder of its `Sent Items` does not turn
//! the alias into a real folder. An account with a folder of exactly the alias's name
//! keeps using that folder, and an account without a folder of that use gets the name
//! as an ordinary one (CREATE makes it, with the attribute). LIST never shows aliases.
//! Names match without regard to ASCII case. DELETE and RENAME never act on an alias
//! itself, so an alias can never delete or move the real folder. Dovecot has no such
//! feature.

use crate::parser::MailboxArg;
use crate::session::{Reply, Session};
use letterbox_store::{Backend, Mailbox, SpecialUse, DELIMITER};

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

/// A name whose first hierarchy level is an alias: the attribute, the first level and
/// the rest (empty, or starting with the delimiter).
pub fn split<'a>(s: &Session, name: &'a str) -> Option<(SpecialUse, &'a str, &'a str)> {
    let end = name.find(DELIMITER).unwrap_or(name.len());
    let (first, rest) = name.split_at(end);
    alias_use(s, first).map(|su| (su, first, rest))
}

/// What an alias stands for in one account.
#[derive(Debug)]
pub enum Resolved {
    /// The account has a folder of exactly the alias's name: it is used as such.
    Own,
    /// The account's folder with the attribute.
    Special(Mailbox),
    /// Neither.
    Missing,
}

pub fn resolve(
    st: &dyn Backend,
    account: i64,
    alias: &str,
    special: SpecialUse,
) -> letterbox_store::Result<Resolved> {
    match st.mailbox(account, alias) {
        Ok(_) => return Ok(Resolved::Own),
        Err(letterbox_store::Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    Ok(st
        .list_mailboxes(account)?
        .into_iter()
        .find(|mb| mb.special_use == Some(special))
        .map_or(Resolved::Missing, Resolved::Special))
}

/// The logged-in account and the store name a command acts on, with an alias (or a
/// name below one) resolved to the folder it stands for (see the module docs).
pub fn target(
    s: &Session,
    arg: &MailboxArg,
) -> impl std::future::Future<Output = Result<(i64, String), Reply>> + Send + 'static {
    target_scoped(s, arg, true)
}

/// As [`target`]; without `whole`, only names below an alias are resolved, never the
/// alias itself (DELETE, RENAME).
pub fn target_scoped(
    s: &Session,
    arg: &MailboxArg,
    whole: bool,
) -> impl std::future::Future<Output = Result<(i64, String), Reply>> + Send + 'static {
    let r = s.account_mailbox(arg).map(|(account, name)| {
        let alias = split(s, &name)
            .filter(|(_, _, rest)| whole || !rest.is_empty())
            .map(|(su, first, _)| (su, first.len()));
        (account, name, alias, s.ctx.store.clone())
    });
    async move {
        let (account, name, alias, store) = r?;
        let Some((special, first_len)) = alias else {
            return Ok((account, name));
        };
        let first = name[..first_len].to_string();
        match store
            .run(move |st| resolve(st, account, &first, special))
            .await
        {
            Ok(Resolved::Special(mb)) => {
                Ok((account, format!("{}{}", mb.name, &name[first_len..])))
            }
            _ => Ok((account, name)),
        }
    }
}
