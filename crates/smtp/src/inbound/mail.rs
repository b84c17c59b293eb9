//! MAIL (RFC 5321 4.1.1.2), with the SIZE (RFC 1870), BODY=8BITMIME (RFC 6152) and
//! SMTPUTF8 (RFC 6531) parameters; parameters of extensions not advertised get `555 5.5.4`
//! (RFC 5321 4.1.1.11).
//!
//! Submission (RFC 6409, RFC 4954): MAIL before AUTH is `530 5.7.0`. The sender
//! must be the account's address (also with a `+tag`) or an explicit alias that leads to
//! it, else `553 5.7.1`; a domain's catch-all does not make every address of the domain
//! the catch-all owner's. Local recipients only for now (see [`super::rcpt`]).

use super::{valid_path, Flow, Session, Transaction};
use crate::trace;
use letterbox_store::{normalize_address, Account, Error as StoreError, Resolved};

impl Session {
    pub(super) async fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Flow {
        if let Some(f) = self.need_greeting() {
            return f;
        }
        if self.submission() && self.auth.is_none() {
            return self.bad(530, "5.7.0", "Authentication required");
        }
        if self.tx.is_some() {
            return self.bad(503, "5.5.1", "Nested MAIL command");
        }
        // Parameters of extensions not advertised (RFC 5321 4.1.1.11: 555).
        const SUPPORTED: u64 =
            smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;
        // RFC 3461 RET and ENVID: submission only (the DSN extension is offered there).
        let dsn = if self.submission() {
            smtp_proto::MAIL_RET_FULL | smtp_proto::MAIL_RET_HDRS
        } else {
            0
        };
        let unsupported = from.flags & !(SUPPORTED | dsn) != 0
            || from.trans_id.is_some()
            || (from.env_id.is_some() && !self.submission())
            || from.solicit.is_some()
            || from.mtrk.is_some()
            // RFC 4954 5: AUTH= is allowed once AUTH is offered; we relay nothing, so
            // its value is not used.
            || (from.auth.is_some() && !self.submission())
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0;
        let has_params = from.flags != 0 || from.size != 0 || unsupported;
        if unsupported || (has_params && !self.esmtp) {
            return self.bad(
                555,
                "5.5.4",
                "MAIL parameters not recognized or not implemented",
            );
        }
        if from.size as u64 > self.max_size() {
            return self.ok(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let sender = from.address;
        if !sender.is_empty() && !valid_path(&sender) {
            return self.bad(501, "5.1.7", "Bad sender address syntax");
        }
        if !sender.is_ascii() && !smtputf8 {
            return self.bad(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
        }
        if !sender.is_empty() && !super::valid_idn(&sender) {
            return self.bad(
                553,
                "5.1.7",
                "Bad sender address syntax: invalid internationalized domain name",
            );
        }
        if let Some(account) = self.auth.clone() {
            let shown = trace::address(&sender, 256);
            let check = sender.clone();
            let owned = self
                .ctx
                .store
                .run(move |s| sender_owned(s, &account, &check))
                .await;
            match owned {
                Ok(true) => {}
                Ok(false) => {
                    let who = self
                        .auth
                        .as_ref()
                        .map(|a| a.address.clone())
                        .unwrap_or_default();
                    tracing::info!(peer = %self.peer.addr, user = %who, from = %shown, "submission: sender address refused (not the account's)");
                    return self.bad(
                        553,
                        "5.7.1",
                        &format!("<{shown}>: Sender address not owned by {who}"),
                    );
                }
                Err(e) => {
                    tracing::error!(from = %shown, "sender lookup failed: {e}");
                    return self.ok(451, "4.3.0", "Temporary lookup failure, try again later");
                }
            }
        }
        let id = trace::new_id();
        if let Some(account) = &self.auth {
            // Who submitted what: the delivery lines carry the same id.
            tracing::info!(id = %id, peer = %self.peer.addr, user = %account.address, from = %trace::sanitize(&sender, 256), "submission");
        }
        self.tx = Some(Transaction {
            id,
            sender,
            declared_size: (from.size > 0).then_some(from.size as u64),
            smtputf8,
            rcpts: Vec::new(),
            chunks: None,
            room: None,
            remote: Vec::new(),
            envid: from.env_id,
            ret_full: from.flags & smtp_proto::MAIL_RET_FULL != 0,
            body_8bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
        });
        self.ok(250, "2.1.0", "Sender OK")
    }
}

/// Whether an authenticated account may use `sender` as its envelope sender: its own
/// address, the same with a `+tag`, or an explicit alias (not a domain's catch-all) that
/// resolves to it. The null sender is not the account's.
fn sender_owned(
    s: &dyn letterbox_store::Backend,
    account: &Account,
    sender: &str,
) -> letterbox_store::Result<bool> {
    let own = normalize_address(&account.address);
    let sender = normalize_address(sender);
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return Ok(false);
    };
    let base = local.split_once('+').map(|(b, _)| format!("{b}@{domain}"));
    if sender == own || base.as_deref() == Some(own.as_str()) {
        return Ok(true);
    }
    let mut explicit = false;
    for a in std::iter::once(sender.as_str()).chain(base.as_deref()) {
        match s.list_aliases(Some(a)) {
            Ok(v) if !v.is_empty() => explicit = true,
            Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::Invalid(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if !explicit {
        return Ok(false);
    }
    Ok(match s.resolve(&sender)? {
        Resolved::Accounts(v) => v.iter().any(|a| a.id == account.id),
        _ => false,
    })
}
