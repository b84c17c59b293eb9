//! One module per command (as Dovecot's `cmd-*.c`). [`dispatch`] checks the state a
//! command needs (RFC 9051 section 6) and calls it; each returns its tagged [`Reply`]
//! after pushing its untagged responses to `session.conn.out`.

mod append;
mod append_binary;
mod authenticate;
mod capability;
mod close;
mod compress;
mod copy;
mod create;
mod delete;
mod enable;
mod expunge;
pub mod fetch;
mod id;
mod idle;
mod list;
mod login;
mod logout;
mod namespace;
mod noop;
pub mod quota;
mod rename;
pub mod search;
mod select;
mod sort;
mod starttls;
mod status;
mod store;
mod subscribe;
mod thread;
mod unauthenticate;

use crate::parser::CommandBody as B;
use crate::session::{Fatal, Reply, Session, State};

/// Which states a command may run in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Any,
    NotAuthenticated,
    Authenticated,
    Selected,
}

fn needs(body: &B) -> Needs {
    match body {
        B::Capability | B::Noop | B::Logout | B::Id(_) => Needs::Any,
        B::StartTls | B::Authenticate { .. } | B::Login { .. } => Needs::NotAuthenticated,
        B::Enable(_)
        | B::Namespace
        | B::Select { .. }
        | B::Create(_)
        | B::Delete(_)
        | B::Rename { .. }
        | B::Subscribe(_)
        | B::Unsubscribe(_)
        | B::List { .. }
        | B::Lsub { .. }
        | B::Status { .. }
        | B::Append { .. }
        | B::Idle => Needs::Authenticated,
        B::Check
        | B::Close
        | B::Unselect
        | B::Expunge { .. }
        | B::Search { .. }
        | B::Fetch { .. }
        | B::Store { .. }
        | B::Copy { .. }
        | B::Move { .. }
        | B::Sort { .. }
        | B::Thread { .. } => Needs::Selected,
        B::MultiAppend { .. }
        | B::GetQuota(_)
        | B::GetQuotaRoot(_)
        | B::SetQuota { .. }
        | B::Unauthenticate
        | B::CreateSpecialUse { .. } => Needs::Authenticated,
        B::Compress(_) => Needs::Authenticated,
    }
}

pub async fn dispatch(s: &mut Session, tag: &str, body: B) -> Result<Reply, Fatal> {
    let ok = matches!(
        (needs(&body), &s.state),
        (Needs::Any, _)
            | (Needs::NotAuthenticated, State::NotAuthenticated)
            | (
                Needs::Authenticated,
                State::Authenticated(_) | State::Selected(..)
            )
            | (Needs::Selected, State::Selected(..))
    );
    if !ok {
        let what = match (needs(&body), &s.state) {
            (_, State::NotAuthenticated) => "Log in first",
            (Needs::NotAuthenticated, _) => "Already logged in",
            _ => "Select a mailbox first",
        };
        return Ok(Reply::bad(format!(
            "{} not allowed now: {what}",
            body.name()
        )));
    }
    let (name, started) = (body.name(), std::time::Instant::now());
    let reply = run(s, tag, body).await;
    // IDLE lasts as long as the client wants: not a latency.
    if name != "IDLE" {
        letterbox_proto::metrics::metrics().command("imap", name, started.elapsed());
    }
    reply
}

async fn run(s: &mut Session, tag: &str, body: B) -> Result<Reply, Fatal> {
    match body {
        B::Capability => capability::run(s),
        B::Noop => noop::run(s, false).await,
        B::Check => noop::run(s, true).await,
        B::Logout => logout::run(s),
        B::StartTls => starttls::run(s, tag).await,
        B::Authenticate { mechanism, initial } => authenticate::run(s, &mechanism, initial).await,
        B::Login { user, password } => login::run(s, user, password).await,
        B::Enable(caps) => enable::run(s, &caps),
        B::Id(_) => id::run(s),
        B::Namespace => namespace::run(s),
        B::Select {
            mailbox,
            read_only,
            params,
        } => select::run(s, &mailbox, read_only, &params).await,
        B::Create(m) => create::run(s, &m).await,
        B::Delete(m) => delete::run(s, &m).await,
        B::Rename { from, to } => rename::run(s, &from, &to).await,
        B::Subscribe(m) => subscribe::run(s, &m, true).await,
        B::Unsubscribe(m) => subscribe::run(s, &m, false).await,
        B::List {
            reference,
            patterns,
            options,
        } => list::list(s, &reference, &patterns, &options).await,
        B::Lsub { reference, pattern } => list::lsub(s, &reference, &pattern).await,
        B::Status { mailbox, items } => status::run(s, &mailbox, &items).await,
        B::Append {
            mailbox,
            flags,
            date,
            message,
            binary,
        } => append::run(s, &mailbox, &flags, date, message, binary).await,
        B::Idle => idle::run(s, tag).await,
        B::Close => close::run(s, true).await,
        B::Unselect => close::run(s, false).await,
        B::Expunge { uids } => expunge::run(s, uids.as_ref()).await,
        B::Search {
            uid,
            charset,
            returns,
            key,
        } => search::run(s, tag, uid, charset.as_deref(), returns, key).await,
        B::Fetch {
            uid,
            set,
            items,
            modifiers,
        } => fetch::run(s, uid, &set, items, modifiers).await,
        B::Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        } => store::run(s, uid, &set, op, silent, &flags, unchanged_since).await,
        B::Copy { uid, set, mailbox } => copy::run(s, uid, &set, &mailbox, false).await,
        B::Move { uid, set, mailbox } => copy::run(s, uid, &set, &mailbox, true).await,
        B::Sort {
            uid,
            returns,
            criteria,
            charset,
            key,
        } => sort::run(s, tag, uid, returns, criteria, &charset, key).await,
        B::Thread {
            uid,
            algorithm,
            charset,
            key,
        } => thread::run(s, uid, algorithm, &charset, key).await,
        B::MultiAppend { mailbox, messages } => append::run_many(s, &mailbox, messages).await,
        B::GetQuota(root) => quota::getquota(s, &root).await,
        B::GetQuotaRoot(m) => quota::getquotaroot(s, &m).await,
        B::SetQuota { .. } => quota::setquota(s),
        B::Unauthenticate => unauthenticate::run(s),
        B::CreateSpecialUse { mailbox, uses } => create::run_with_use(s, &mailbox, &uses).await,
        B::Compress(algorithm) => compress::run(s, tag, &algorithm).await,
    }
}
