//! `[limits] max_userip_connections`: IMAP and POP3 sessions logged in at once as one
//! user from one address (Dovecot's `mail_max_userip_connections`, default 10 there and
//! here). It keeps one misbehaving client (or one compromised password used from one
//! place) from holding every connection an address may open, while the per-address limit
//! of `[limits]` stays generous for offices behind NAT and webmails on localhost.
//!
//! The count is taken when a login succeeds and given back when the session ends or
//! leaves the authenticated state. IMAP and POP3 count together. It applies to trusted
//! networks too: it protects the account, not the server.

use letterbox_store::AccountId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct UserIpLimits {
    counts: Mutex<HashMap<(AccountId, IpAddr), u32>>,
}

/// A logged-in session's place in the count; dropping it gives the place back.
#[derive(Debug)]
pub struct UserIpSlot {
    limits: Arc<UserIpLimits>,
    key: (AccountId, IpAddr),
}

impl UserIpLimits {
    /// Takes a place for `account` from `ip` (counted by [`crate::client_net`]), or
    /// `None` when `max` sessions hold all of them. `max == 0`: no limit.
    pub fn acquire(
        self: &Arc<Self>,
        account: AccountId,
        ip: IpAddr,
        max: u32,
    ) -> Option<UserIpSlot> {
        let key = (account, crate::client_net(ip));
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_insert(0);
        if max > 0 && *n >= max {
            if *n == 0 {
                m.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(UserIpSlot {
            limits: self.clone(),
            key,
        })
    }
}

impl Drop for UserIpSlot {
    fn drop(&mut self) {
        let mut m = self.limits.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_user_and_address() {
        let l = Arc::new(UserIpLimits::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let a = l.acquire(1, ip, 2).unwrap();
        let _b = l.acquire(1, ip, 2).unwrap();
        assert!(l.acquire(1, ip, 2).is_none());
        assert!(l.acquire(2, ip, 2).is_some());
        assert!(l.acquire(1, other, 2).is_some());
        drop(a);
        assert!(l.acquire(1, ip, 2).is_some());
        assert!(l.acquire(1, ip, 0).is_some());
    }
}
