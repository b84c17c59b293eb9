//! Recent successful logins per account (issue 14: the portal's "recent logins"): time,
//! client address, protocol and the application password used, if any. Only the last
//! `keep` (`[auth] login_history`) of an account are kept: each insert trims the
//! account's older rows in the same transaction, so the table stays bounded. Failed
//! logins are not recorded here: the login throttle counts them (`proto::auth`).
//! Written without fsync (like flag changes): losing the last entries in a power cut
//! harms no mail.

use crate::sqlite::{get_account, SqliteBackend};
use crate::*;
use rusqlite::params;

/// One successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// Seconds since the epoch.
    pub at: i64,
    /// The client's IP address.
    pub remote: String,
    /// `imap`, `pop3`, `smtp` or `web` ([`crate::apppass::Protocol::as_str`]).
    pub protocol: String,
    /// The application password's name, `None` for the account password.
    pub app_password: Option<String>,
}

impl SqliteBackend {
    pub(crate) fn login_record(
        &self,
        account: AccountId,
        login: LoginRecord,
        keep: u32,
    ) -> Result<()> {
        if keep == 0 {
            return Ok(());
        }
        self.write_lazy(move |ctx| {
            ctx.tx
                .prepare_cached(
                    "INSERT INTO login_history (account_id, at, remote, protocol, app_password)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    account,
                    login.at,
                    login.remote,
                    login.protocol,
                    login.app_password
                ])?;
            ctx.tx
                .prepare_cached(
                    "DELETE FROM login_history WHERE account_id = ?1 AND id <= (
                         SELECT id FROM login_history WHERE account_id = ?1
                         ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                )?
                .execute(params![account, keep])?;
            if let Some(name) = &login.app_password {
                ctx.tx
                    .prepare_cached(
                        "UPDATE app_passwords SET last_used = ?3 WHERE account_id = ?1 AND name = ?2",
                    )?
                    .execute(params![account, name, login.at])?;
            }
            Ok(())
        })
    }

    pub(crate) fn login_list(&self, address: &str) -> Result<Vec<LoginRecord>> {
        let a = normalize_address(address);
        self.read(|c| {
            let acct = get_account(c, &a)?;
            let mut st = c.prepare_cached(
                "SELECT at, remote, protocol, app_password FROM login_history
                 WHERE account_id = ?1 ORDER BY id DESC",
            )?;
            let v = st
                .query_map([acct.id], |r| {
                    Ok(LoginRecord {
                        at: r.get(0)?,
                        remote: r.get(1)?,
                        protocol: r.get(2)?,
                        app_password: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }
}
