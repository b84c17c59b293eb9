//! RCPT (RFC 5321 4.1.1.3): recipients resolved against the local domains
//! (`Store::resolve`: accounts, `user+tag`, aliases, catch-all); quota checked at RCPT
//! (RFC 1870 SIZE); `<Postmaster>` without a domain accepted (RFC 5321 4.5.1); a domain
//! that is not local refused (never a relay). A domain is compared in its A-label form
//! (RFC 5890/5891, UTS #46: `letterbox_store::idn`), so a U-label (with SMTPUTF8, RFC
//! 6531) and its A-label reach the same recipient; a name IDNA refuses is `553 5.1.3`.

use super::counts::count;
use super::{valid_idn, valid_path, Flow, Recipient, Session};
use crate::trace;
use letterbox_proto::metrics::metrics;
use letterbox_store::web::DeliveryOutcome;
use letterbox_store::{Account, Resolved};

impl Session {
    pub(super) async fn rcpt(
        &mut self,
        to: smtp_proto::RcptTo<String>,
        bare_postmaster: bool,
    ) -> Flow {
        if let Some(f) = self.need_greeting() {
            return f;
        }
        let max = self.ctx.config.smtp.max_recipients as usize;
        let Some(tx) = self.tx.as_ref() else {
            return self.bad(503, "5.5.1", "Need MAIL before RCPT");
        };
        if tx.chunks.is_some() {
            return self.bad(503, "5.5.1", "RCPT not allowed during BDAT");
        }
        // RFC 3461 NOTIFY and ORCPT: submission only (the DSN extension is offered there).
        let dsn_ok = self.submission() && to.flags & !0xF == 0;
        if (to.flags != 0 || to.orcpt.is_some()) && !dsn_ok || to.rrvs != 0 {
            return self.bad(
                555,
                "5.5.4",
                "RCPT parameters not recognized or not implemented",
            );
        }
        if tx.rcpts.len() + tx.remote.len() >= max {
            return self.ok(452, "4.5.3", "Too many recipients");
        }
        let (declared, smtputf8) = (tx.declared_size, tx.smtputf8);
        let address = to.address;
        let (orcpt, notify) = (to.orcpt, (to.flags & 0xF) as u8);
        if !valid_path(&address) {
            return self.bad(501, "5.1.3", "Bad recipient address syntax");
        }
        if !address.is_ascii() && !smtputf8 {
            return self.bad(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
        }
        if !valid_idn(&address) {
            return self.bad(
                553,
                "5.1.3",
                "Bad recipient address syntax: invalid internationalized domain name",
            );
        }
        let lookup = address.clone();
        let resolved = self
            .ctx
            .store
            .run(move |s| {
                let r = s.resolve(&lookup)?;
                if bare_postmaster && !matches!(r, Resolved::Accounts(_)) {
                    // RFC 5321 4.5.1: `<Postmaster>` without a domain must be accepted:
                    // the postmaster of the first local domain that has one.
                    for d in s.list_domains()? {
                        let pm = format!("postmaster@{d}");
                        if let Resolved::Accounts(a) = s.resolve(&pm)? {
                            return Ok((Resolved::Accounts(a), Some(pm)));
                        }
                    }
                    return Ok((Resolved::NoSuchUser, None));
                }
                Ok((r, None))
            })
            .await;
        let (resolved, address) = match resolved {
            Ok((r, Some(pm))) => (Ok(r), pm),
            Ok((r, None)) => (Ok(r), address),
            Err(e) => (Err(e), address),
        };
        // As given (quoted when it was), so the reply never names another address.
        let shown = trace::address(&address, 256);
        match resolved {
            Err(e) => {
                tracing::error!(rcpt = %shown, "recipient lookup failed: {e}");
                self.ok(451, "4.3.0", "Temporary lookup failure, try again later")
            }
            Ok(Resolved::NotLocal) if self.submission() => {
                self.remote_rcpt(address, orcpt, notify).await
            }
            Ok(Resolved::NotLocal) => {
                metrics().bounced(self.mode_name(), "relay_denied");
                tracing::info!(peer = %self.peer.addr, rcpt = %shown, "relay denied");
                self.ok(554, "5.7.1", &format!("<{shown}>: Relay access denied"))
            }
            Ok(Resolved::NoSuchUser) => {
                metrics().bounced(self.mode_name(), "no_such_user");
                count(&self.ctx, &address, DeliveryOutcome::Refused).await;
                self.ok(
                    550,
                    "5.1.1",
                    &format!("<{shown}>: Recipient address rejected: no such user here"),
                )
            }
            Ok(Resolved::Accounts(accounts)) => {
                if accounts.is_empty() {
                    metrics().bounced(self.mode_name(), "no_such_user");
                    count(&self.ctx, &address, DeliveryOutcome::Refused).await;
                    return self.ok(
                        550,
                        "5.1.1",
                        &format!("<{shown}>: Recipient address rejected: no such user here"),
                    );
                }
                // Accounts an operator disabled (the portal) take no mail for now: a
                // temporary refusal, so senders retry while the operator decides.
                let disabled = self
                    .ctx
                    .store
                    .run(|s| s.web().disabled_accounts())
                    .await
                    .unwrap_or_default();
                // An alias's disabled members are kept aside: once the others take the
                // message, the sender is told of them by a DSN (deliver.rs).
                let (off, accounts): (Vec<_>, Vec<_>) =
                    accounts.into_iter().partition(|a| disabled.contains(&a.id));
                if accounts.is_empty() {
                    tracing::info!(rcpt = %shown, "refused at RCPT: account disabled");
                    count(&self.ctx, &address, DeliveryOutcome::Refused).await;
                    return self.ok(
                        450,
                        "4.2.1",
                        &format!("<{shown}>: Mailbox disabled, try again later"),
                    );
                }
                if accounts.iter().all(|a| is_full(a, declared)) {
                    metrics().quota_refused(self.mode_name());
                    metrics().bounced(self.mode_name(), "quota");
                    tracing::info!(rcpt = %shown, "refused at RCPT: mailbox full");
                    count(&self.ctx, &address, DeliveryOutcome::Refused).await;
                    return self.ok(552, "5.2.2", &format!("<{shown}>: Mailbox full"));
                }
                let ids = accounts.iter().map(|a| a.id).collect();
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(Recipient {
                        address,
                        accounts: ids,
                        disabled: off.iter().map(|a| a.id).collect(),
                    });
                }
                self.ok(250, "2.1.5", "Recipient OK")
            }
        }
    }
}

/// Usage at or over the limit, or the declared size would take it over.
fn is_full(a: &Account, declared: Option<u64>) -> bool {
    match a.effective_limit {
        None => false,
        Some(limit) => {
            a.quota_used >= limit
                || declared.is_some_and(|n| a.quota_used.saturating_add(n) > limit)
        }
    }
}

/// RFC 5321 4.5.1: `RCPT TO:<Postmaster>` has no domain. Rewrites it to
/// `postmaster@hostname` (resolved against the local domains later) and says so.
pub(super) fn rewrite_bare_postmaster(line: &mut Vec<u8>, hostname: &str) -> bool {
    let upper = line.to_ascii_uppercase();
    let Some(rest) = upper.strip_prefix(b"RCPT TO:") else {
        return false;
    };
    let lead = rest.iter().take_while(|b| **b == b' ').count();
    let rest = &rest[lead..];
    if !rest.starts_with(b"<POSTMASTER>") {
        return false;
    }
    let at = 8 + lead + "<POSTMASTER".len();
    let mut out = line[..at].to_vec();
    out.push(b'@');
    out.extend_from_slice(hostname.as_bytes());
    out.extend_from_slice(&line[at..]);
    *line = out;
    true
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn postmaster_rewrite() {
        let mut l = b"RCPT TO:<Postmaster> X".to_vec();
        assert!(rewrite_bare_postmaster(&mut l, "mx.example.com"));
        assert_eq!(l, b"RCPT TO:<Postmaster@mx.example.com> X");
        let mut l = b"rcpt to: <postmaster>".to_vec();
        assert!(rewrite_bare_postmaster(&mut l, "h"));
        assert_eq!(l, b"rcpt to: <postmaster@h>");
        let mut l = b"RCPT TO:<postmaster@example.com>".to_vec();
        assert!(!rewrite_bare_postmaster(&mut l, "h"));
    }
}
