//! QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA, with `QUOTA=RES-STORAGE`; and
//! the `* OK [ALERT]` a nearly full account gets at login and SELECT.
//!
//! When the account is at or above the highest `[quota] warn_at` threshold:
//! - LOGIN/AUTHENTICATE sends the ALERT (once per login);
//! - the session's first SELECT/EXAMINE that finds it so sends it too, whether or not
//!   the login did: many programs ignore what a login answers and show only what
//!   opening a folder says (issue 11: "SELECT at 97% sends none");
//! - a later SELECT/EXAMINE sends it again only when the percentage has grown since the
//!   session's last ALERT: Thunderbird and Outlook show each ALERT as a dialog, which
//!   at every folder click would drive users away rather than inform them;
//! - once usage is seen below the threshold, the session starts over.
//!
//! Every account has one quota root, `""`, covering all its mailboxes; its one resource
//! is STORAGE, the sum of RFC822.SIZE in units of 1024 octets (RFC 9208 5.1). Usage is
//! rounded up (a box holding 1 octet is not empty) and the limit down (never more room
//! than there is); Dovecot 2.3 rounds usage up too (1025 octets are 2). An unlimited
//! account has no quota root:
//! `* QUOTAROOT INBOX` names none and `GETQUOTA ""` is `NO [NONEXISTENT]` (a
//! `quota-list` cannot be empty, RFC 9208 section 9). Limits are set by the operator
//! (`letterbox quota set`), so SETQUOTA is refused with `NO [NOPERM]` and QUOTASET is
//! not advertised. Over-quota refusals (`NO [OVERQUOTA]`) are in APPEND and COPY.

use crate::alias;
use crate::parser::MailboxArg;
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::Account;

/// `* QUOTA "" (STORAGE used limit)`, or `None` for an unlimited account.
pub fn quota_response(account: &Account) -> Option<String> {
    let limit = account.effective_limit?;
    Some(format!(
        "* QUOTA \"\" (STORAGE {} {})\r\n",
        account.quota_used.div_ceil(1024),
        limit / 1024
    ))
}

/// Where an ALERT would be sent (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AlertAt {
    Login,
    Select,
}

/// The `* OK [ALERT]` line for an account at or above the highest `[quota] warn_at`
/// threshold, by the rules of the module docs.
pub fn alert(s: &mut Session, account: &Account, at: AlertAt) -> Option<String> {
    let top = *s.ctx.config.quota.warn_at.iter().max()?;
    let limit = account.effective_limit?;
    let percent = account.percent_used();
    if percent < u64::from(top) {
        s.quota_alerted = None;
        s.quota_alerted_select = false;
        return None;
    }
    if at == AlertAt::Select {
        let grown = s.quota_alerted.is_some_and(|p| percent > p);
        if std::mem::replace(&mut s.quota_alerted_select, true) && !grown {
            return None;
        }
    }
    s.quota_alerted = Some(percent);
    // With the portal on, the ALERT names the page that shows what fills the box.
    let link = s
        .ctx
        .config
        .web_usage_url()
        .map(|u| format!(" (see {u})"))
        .unwrap_or_default();
    Some(format!(
        "* OK [ALERT] Your mailbox is {percent}% full ({} of {}); delete or move mail to avoid bounces{link}\r\n",
        letterbox_proto::human_size(account.quota_used),
        letterbox_proto::human_size(limit),
    ))
}

async fn account(s: &mut Session) -> Result<Account, Reply> {
    let id = s.account_id().ok_or_else(|| Reply::bad("Log in first"))?;
    s.ctx
        .store
        .run(move |st| st.account_by_id(id))
        .await
        .map_err(|e| store_error(&e))
}

pub async fn getquota(s: &mut Session, root: &[u8]) -> Result<Reply, Fatal> {
    let acct = match account(s).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    match quota_response(&acct) {
        Some(line) if root.is_empty() => {
            s.conn.push(line.as_bytes());
            Ok(Reply::ok("GETQUOTA completed"))
        }
        _ => Ok(Reply::no("No such quota root").code("NONEXISTENT")),
    }
}

pub async fn getquotaroot(s: &mut Session, arg: &MailboxArg) -> Result<Reply, Fatal> {
    let (account_id, name) = match alias::target(s, arg).await {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let asked = match s.mailbox_name(arg) {
        Ok(n) => n,
        Err(r) => return Ok(r),
    };
    let r = s
        .ctx
        .store
        .run(move |st| {
            st.mailbox(account_id, &name)?;
            st.account_by_id(account_id)
        })
        .await;
    let acct = match r {
        Ok(a) => a,
        Err(e) => return Ok(store_error(&e)),
    };
    let mut out = b"* QUOTAROOT ".to_vec();
    s.write_mailbox(&mut out, &asked);
    let quota = quota_response(&acct);
    if quota.is_some() {
        out.extend_from_slice(b" \"\"");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(q) = quota {
        out.extend_from_slice(q.as_bytes());
    }
    s.conn.push(&out);
    Ok(Reply::ok("GETQUOTAROOT completed"))
}

pub fn setquota(_s: &mut Session) -> Result<Reply, Fatal> {
    Ok(Reply::no("Quotas are set by the administrator").code("NOPERM"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use letterbox_store::QuotaLimit;

    fn acct(used: u64, limit: Option<u64>) -> Account {
        Account {
            id: 1,
            address: "a@example.com".into(),
            quota_limit: QuotaLimit::Default,
            effective_limit: limit,
            quota_used: used,
            pop3_retention: None,
            effective_retention: letterbox_store::Retention::Keep,
        }
    }

    #[test]
    fn storage_in_kib_usage_up_limit_down() {
        assert_eq!(
            quota_response(&acct(0, Some(200 << 20))).unwrap(),
            "* QUOTA \"\" (STORAGE 0 204800)\r\n"
        );
        assert_eq!(
            quota_response(&acct(1, Some(1500))).unwrap(),
            "* QUOTA \"\" (STORAGE 1 1)\r\n"
        );
        assert_eq!(
            quota_response(&acct(2049, Some(4096))).unwrap(),
            "* QUOTA \"\" (STORAGE 3 4)\r\n"
        );
        assert_eq!(quota_response(&acct(5, None)), None);
    }
}
