//! What the web portal keeps in the store: login sessions, operators (and the domains a
//! domain admin is limited to), requests for more room and their audit trail, one usage
//! sample per account per day, per-domain delivery counts, and disabled accounts.
//!
//! Everything lives in the database (tables at the end of `schema.sql`), never in a
//! process's memory, so that several `serve` processes (or nodes sharing a backend)
//! agree on who is logged in and what was decided. A session is stored by the BLAKE3
//! hash of its cookie token: the database never holds a usable cookie.

use crate::sqlite::{get_account, get_account_by_id, SqliteBackend};
use crate::*;
use rusqlite::{params, OptionalExtension};

/// Days of usage history kept (one sample a day).
pub const USAGE_HISTORY_DAYS: i64 = 366;

/// The UTC day number of a Unix time (days since 1970-01-01).
pub fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

/// A logged-in web session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub account_id: AccountId,
    /// The token forms and API writes must carry.
    pub csrf: String,
    pub expires: i64,
}

/// An operator grant: `domain` `None` for every domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminGrant {
    pub address: String,
    pub domain: Option<String>,
}

/// Where a quota request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
        }
    }
    fn parse(s: &str) -> RequestStatus {
        match s {
            "approved" => RequestStatus::Approved,
            "denied" => RequestStatus::Denied,
            _ => RequestStatus::Pending,
        }
    }
}

/// A request for more room and, once decided, who decided what and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRequest {
    pub id: i64,
    pub account_id: AccountId,
    pub address: String,
    /// The limit asked for, in octets.
    pub size: u64,
    pub reason: String,
    pub created: i64,
    pub status: RequestStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub granted_size: Option<u64>,
    /// The reason given with a denial.
    pub note: Option<String>,
}

/// An operator's decision on a quota request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approve with this limit (octets).
    Approve(u64),
    /// Deny, with the reason the user is told.
    Deny(String),
}

/// One day's usage sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageSample {
    pub day: i64,
    pub used: u64,
    /// The limit then; `None`: unlimited.
    pub limit: Option<u64>,
}

/// One day's delivery counts for a domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainDay {
    pub day: i64,
    pub delivered: u64,
    pub refused: u64,
    pub bounced: u64,
}

/// What a delivery attempt came to, as the domain counts record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Refused before acceptance (unknown user, full mailbox at RCPT, disabled account).
    Refused,
    /// Refused after the data was received (quota at end of data).
    Bounced,
}

/// A message as the usage page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeMessage {
    pub mailbox: MailboxId,
    pub mailbox_name: String,
    pub uid: u32,
    pub size: u64,
    pub internal_date: i64,
}

/// The portal's store operations (see the module documentation). Every method blocks.
pub trait WebStore: Send + Sync {
    // --- sessions ---
    fn session_create(
        &self,
        token_hash: [u8; 32],
        account: AccountId,
        csrf: &str,
        expires: i64,
    ) -> Result<()>;
    /// The session of a token hash, if it exists and has not expired at `now`.
    fn session_get(&self, token_hash: [u8; 32], now: i64) -> Result<Option<WebSession>>;
    fn session_delete(&self, token_hash: [u8; 32]) -> Result<()>;
    /// Ends every session of an account (password change, disabled, removed).
    fn sessions_end_account(&self, account: AccountId) -> Result<u64>;
    /// Removes sessions expired at `now`.
    fn sessions_purge(&self, now: i64) -> Result<u64>;

    // --- operators ---
    /// Grants operator rights to an existing account, for one domain or (None) all.
    fn admin_add(&self, address: &str, domain: Option<&str>) -> Result<()>;
    /// Removes grants: one domain's, or every grant of the address when `domain` is None.
    fn admin_remove(&self, address: &str, domain: Option<&str>) -> Result<u64>;
    fn admin_list(&self) -> Result<Vec<AdminGrant>>;

    // --- quota requests ---
    /// Opens a request; refused ([`Error::Exists`]) while another is pending.
    fn quota_request_open(
        &self,
        account: AccountId,
        size: u64,
        reason: &str,
    ) -> Result<QuotaRequest>;
    fn quota_request(&self, id: i64) -> Result<QuotaRequest>;
    /// Requests, newest first: pending ones only unless `all`.
    fn quota_requests(&self, all: bool) -> Result<Vec<QuotaRequest>>;
    /// One account's requests, newest first.
    fn quota_requests_of(&self, account: AccountId) -> Result<Vec<QuotaRequest>>;
    /// Decides a pending request; an approval sets the account's limit in the same
    /// transaction, so the new quota holds the moment the decision is recorded.
    fn quota_request_decide(&self, id: i64, by: &str, decision: Decision) -> Result<QuotaRequest>;

    // --- usage history ---
    /// Records (or refreshes) today's sample of every account, and forgets samples older
    /// than [`USAGE_HISTORY_DAYS`]. Returns the number of accounts sampled.
    fn usage_sample_all(&self, day: i64) -> Result<u64>;
    fn usage_samples(&self, account: AccountId, since_day: i64) -> Result<Vec<UsageSample>>;
    /// A domain's summed samples per day.
    fn domain_usage_samples(&self, domain: &str, since_day: i64) -> Result<Vec<UsageSample>>;
    /// The largest messages of an account, largest first.
    fn largest_messages(&self, account: AccountId, limit: u32) -> Result<Vec<LargeMessage>>;

    // --- delivery counts ---
    fn count_delivery(&self, domain: &str, day: i64, outcome: DeliveryOutcome) -> Result<()>;
    fn domain_counts(&self, domain: &str, since_day: i64) -> Result<Vec<DomainDay>>;

    // --- disabled accounts ---
    fn set_disabled(&self, address: &str, disabled: bool, by: &str) -> Result<()>;
    fn is_disabled(&self, account: AccountId) -> Result<bool>;
    fn disabled_accounts(&self) -> Result<Vec<AccountId>>;
}

const REQUEST_COLS: &str = "id, account_id, address, size, reason, created, status, decided_by, decided_at, granted_size, note";

fn request_from_row(r: &rusqlite::Row) -> rusqlite::Result<QuotaRequest> {
    let status: String = r.get(6)?;
    Ok(QuotaRequest {
        id: r.get(0)?,
        account_id: r.get(1)?,
        address: r.get(2)?,
        size: r.get::<_, i64>(3)?.max(0) as u64,
        reason: r.get(4)?,
        created: r.get(5)?,
        status: RequestStatus::parse(&status),
        decided_by: r.get(7)?,
        decided_at: r.get(8)?,
        granted_size: r.get::<_, Option<i64>>(9)?.map(|n| n.max(0) as u64),
        note: r.get(10)?,
    })
}

fn get_request(c: &rusqlite::Connection, id: i64) -> Result<QuotaRequest> {
    c.query_row(
        &format!("SELECT {REQUEST_COLS} FROM quota_requests WHERE id = ?1"),
        [id],
        request_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("quota request #{id}")))
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

impl WebStore for SqliteBackend {
    fn session_create(
        &self,
        token_hash: [u8; 32],
        account: AccountId,
        csrf: &str,
        expires: i64,
    ) -> Result<()> {
        let csrf = csrf.to_string();
        self.write(move |ctx| {
            ctx.tx.execute(
                "INSERT INTO web_sessions (token_hash, account_id, csrf, created, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![token_hash.to_vec(), account, csrf, now(), expires],
            )?;
            Ok(())
        })
    }

    fn session_get(&self, token_hash: [u8; 32], now: i64) -> Result<Option<WebSession>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT account_id, csrf, expires FROM web_sessions
                 WHERE token_hash = ?1 AND expires > ?2",
            )?
            .query_row(params![token_hash.to_vec(), now], |r| {
                Ok(WebSession {
                    account_id: r.get(0)?,
                    csrf: r.get(1)?,
                    expires: r.get(2)?,
                })
            })
            .optional()?)
        })
    }

    fn session_delete(&self, token_hash: [u8; 32]) -> Result<()> {
        self.write(move |ctx| {
            ctx.tx.execute(
                "DELETE FROM web_sessions WHERE token_hash = ?1",
                [token_hash.to_vec()],
            )?;
            Ok(())
        })
    }

    fn sessions_end_account(&self, account: AccountId) -> Result<u64> {
        self.write(move |ctx| {
            Ok(ctx
                .tx
                .execute("DELETE FROM web_sessions WHERE account_id = ?1", [account])?
                as u64)
        })
    }

    fn sessions_purge(&self, now: i64) -> Result<u64> {
        self.write_lazy(move |ctx| {
            Ok(ctx
                .tx
                .execute("DELETE FROM web_sessions WHERE expires <= ?1", [now])?
                as u64)
        })
    }

    fn admin_add(&self, address: &str, domain: Option<&str>) -> Result<()> {
        let a = normalize_address(address);
        let d = match domain {
            Some(d) => validate_domain(d)?,
            None => String::new(),
        };
        self.write(move |ctx| {
            get_account(&ctx.tx, &a)?;
            if !d.is_empty() {
                let known: Option<i64> = ctx
                    .tx
                    .query_row("SELECT id FROM domains WHERE name = ?1", [&d], |r| r.get(0))
                    .optional()?;
                if known.is_none() {
                    return Err(Error::NotFound(format!("domain {d}")));
                }
            }
            let n = ctx.tx.execute(
                "INSERT OR IGNORE INTO web_admins (address, domain) VALUES (?1, ?2)",
                params![a, d],
            )?;
            if n == 0 {
                let what = if d.is_empty() {
                    format!("operator {a}")
                } else {
                    format!("domain admin {a} for {d}")
                };
                return Err(Error::Exists(what));
            }
            Ok(())
        })
    }

    fn admin_remove(&self, address: &str, domain: Option<&str>) -> Result<u64> {
        let a = normalize_address(address);
        let d = domain.map(|d| d.trim().to_ascii_lowercase());
        self.write(move |ctx| {
            let n = match &d {
                Some(d) => ctx.tx.execute(
                    "DELETE FROM web_admins WHERE address = ?1 AND domain = ?2",
                    params![a, d],
                )?,
                None => ctx
                    .tx
                    .execute("DELETE FROM web_admins WHERE address = ?1", [&a])?,
            };
            if n == 0 {
                return Err(Error::NotFound(format!("operator {a}")));
            }
            Ok(n as u64)
        })
    }

    fn admin_list(&self) -> Result<Vec<AdminGrant>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT address, domain FROM web_admins ORDER BY address, domain")?;
            let v = st
                .query_map([], |r| {
                    let d: String = r.get(1)?;
                    Ok(AdminGrant {
                        address: r.get(0)?,
                        domain: (!d.is_empty()).then_some(d),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn quota_request_open(
        &self,
        account: AccountId,
        size: u64,
        reason: &str,
    ) -> Result<QuotaRequest> {
        let reason = reason.to_string();
        let id = self.write(move |ctx| {
            let acct = get_account_by_id(&ctx.tx, account)?;
            let pending: Option<i64> = ctx
                .tx
                .query_row(
                    "SELECT id FROM quota_requests WHERE account_id = ?1 AND status = 'pending'",
                    [account],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = pending {
                return Err(Error::Exists(format!("an open request (#{id})")));
            }
            ctx.tx.execute(
                "INSERT INTO quota_requests (account_id, address, size, reason, created, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
                params![account, acct.address, clamp(size), reason, now()],
            )?;
            Ok(ctx.tx.last_insert_rowid())
        })?;
        self.quota_request(id)
    }

    fn quota_request(&self, id: i64) -> Result<QuotaRequest> {
        self.read(|c| get_request(c, id))
    }

    fn quota_requests(&self, all: bool) -> Result<Vec<QuotaRequest>> {
        self.read(|c| {
            let filter = if all { "" } else { "WHERE status = 'pending'" };
            let mut st = c.prepare(&format!(
                "SELECT {REQUEST_COLS} FROM quota_requests {filter} ORDER BY id DESC"
            ))?;
            let v = st
                .query_map([], request_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn quota_requests_of(&self, account: AccountId) -> Result<Vec<QuotaRequest>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {REQUEST_COLS} FROM quota_requests WHERE account_id = ?1 ORDER BY id DESC"
            ))?;
            let v = st
                .query_map([account], request_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn quota_request_decide(&self, id: i64, by: &str, decision: Decision) -> Result<QuotaRequest> {
        let by = by.to_string();
        self.write(move |ctx| {
            let req = get_request(&ctx.tx, id)?;
            if req.status != RequestStatus::Pending {
                return Err(Error::Refused(format!(
                    "quota request #{id} was already {} by {}",
                    req.status.as_str(),
                    req.decided_by.as_deref().unwrap_or("?")
                )));
            }
            // The account must still exist to be granted anything.
            get_account_by_id(&ctx.tx, req.account_id)?;
            match &decision {
                Decision::Approve(size) => {
                    ctx.tx.execute(
                        "UPDATE quota_requests SET status = 'approved', decided_by = ?2,
                             decided_at = ?3, granted_size = ?4 WHERE id = ?1",
                        params![id, by, now(), clamp(*size)],
                    )?;
                    ctx.set_quota_limit(req.account_id, QuotaLimit::Bytes(*size))?;
                }
                Decision::Deny(reason) => {
                    ctx.tx.execute(
                        "UPDATE quota_requests SET status = 'denied', decided_by = ?2,
                             decided_at = ?3, note = ?4 WHERE id = ?1",
                        params![id, by, now(), reason],
                    )?;
                }
            }
            get_request(&ctx.tx, id)
        })
    }

    fn usage_sample_all(&self, day: i64) -> Result<u64> {
        let default = self.options().default_quota;
        self.write_lazy(move |ctx| {
            let n = ctx.tx.execute(
                "INSERT INTO usage_samples (account_id, day, used, lim)
                 SELECT id, ?1, quota_used,
                        CASE WHEN quota_limit IS NULL THEN ?2
                             WHEN quota_limit < 0 THEN NULL ELSE quota_limit END
                 FROM accounts WHERE true
                 ON CONFLICT (account_id, day) DO UPDATE SET used = excluded.used, lim = excluded.lim",
                params![day, clamp(default)],
            )?;
            ctx.tx.execute(
                "DELETE FROM usage_samples WHERE day < ?1 OR account_id NOT IN (SELECT id FROM accounts)",
                [day - USAGE_HISTORY_DAYS],
            )?;
            Ok(n as u64)
        })
    }

    fn usage_samples(&self, account: AccountId, since_day: i64) -> Result<Vec<UsageSample>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT day, used, lim FROM usage_samples WHERE account_id = ?1 AND day >= ?2 ORDER BY day",
            )?;
            let v = st
                .query_map(params![account, since_day], |r| {
                    Ok(UsageSample {
                        day: r.get(0)?,
                        used: r.get::<_, i64>(1)?.max(0) as u64,
                        limit: r.get::<_, Option<i64>>(2)?.map(|n| n.max(0) as u64),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn domain_usage_samples(&self, domain: &str, since_day: i64) -> Result<Vec<UsageSample>> {
        let d = domain.trim().to_ascii_lowercase();
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT s.day, sum(s.used), sum(s.lim) FROM usage_samples s
                 JOIN accounts a ON a.id = s.account_id
                 JOIN domains d ON d.id = a.domain_id
                 WHERE d.name = ?1 AND s.day >= ?2 GROUP BY s.day ORDER BY s.day",
            )?;
            let v = st
                .query_map(params![d, since_day], |r| {
                    Ok(UsageSample {
                        day: r.get(0)?,
                        used: r.get::<_, i64>(1)?.max(0) as u64,
                        limit: r.get::<_, Option<i64>>(2)?.map(|n| n.max(0) as u64),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn largest_messages(&self, account: AccountId, limit: u32) -> Result<Vec<LargeMessage>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT b.id, b.name, m.uid, m.size, m.internal_date
                 FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                 WHERE b.account_id = ?1 ORDER BY m.size DESC, m.internal_date DESC LIMIT ?2",
            )?;
            let v = st
                .query_map(params![account, limit], |r| {
                    Ok(LargeMessage {
                        mailbox: r.get(0)?,
                        mailbox_name: r.get(1)?,
                        uid: r.get(2)?,
                        size: r.get::<_, i64>(3)?.max(0) as u64,
                        internal_date: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn count_delivery(&self, domain: &str, day: i64, outcome: DeliveryOutcome) -> Result<()> {
        let d = domain.trim().to_ascii_lowercase();
        let column = match outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Refused => "refused",
            DeliveryOutcome::Bounced => "bounced",
        };
        self.write_lazy(move |ctx| {
            ctx.tx.execute(
                &format!(
                    "INSERT INTO domain_counts (domain, day, {column}) VALUES (?1, ?2, 1)
                     ON CONFLICT (domain, day) DO UPDATE SET {column} = {column} + 1"
                ),
                params![d, day],
            )?;
            Ok(())
        })
    }

    fn domain_counts(&self, domain: &str, since_day: i64) -> Result<Vec<DomainDay>> {
        let d = domain.trim().to_ascii_lowercase();
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT day, delivered, refused, bounced FROM domain_counts
                 WHERE domain = ?1 AND day >= ?2 ORDER BY day",
            )?;
            let v = st
                .query_map(params![d, since_day], |r| {
                    Ok(DomainDay {
                        day: r.get(0)?,
                        delivered: r.get::<_, i64>(1)?.max(0) as u64,
                        refused: r.get::<_, i64>(2)?.max(0) as u64,
                        bounced: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    fn set_disabled(&self, address: &str, disabled: bool, by: &str) -> Result<()> {
        let a = normalize_address(address);
        let by = by.to_string();
        self.write(move |ctx| {
            let acct = get_account(&ctx.tx, &a)?;
            if disabled {
                ctx.tx.execute(
                    "INSERT OR REPLACE INTO account_disabled (account_id, since, by_whom) VALUES (?1, ?2, ?3)",
                    params![acct.id, now(), by],
                )?;
                ctx.tx
                    .execute("DELETE FROM web_sessions WHERE account_id = ?1", [acct.id])?;
            } else {
                ctx.tx
                    .execute("DELETE FROM account_disabled WHERE account_id = ?1", [acct.id])?;
            }
            Ok(())
        })
    }

    fn is_disabled(&self, account: AccountId) -> Result<bool> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM account_disabled WHERE account_id = ?1")?
                    .query_row([account], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
    }

    fn disabled_accounts(&self) -> Result<Vec<AccountId>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT account_id FROM account_disabled")?;
            let v = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        s.add_domain("other.org").unwrap();
        (dir, s)
    }

    fn hash() -> String {
        format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap())
    }

    #[test]
    fn sessions_expire_and_end() {
        let (_d, s) = store();
        let a = s
            .add_account("a@example.com", &hash(), QuotaLimit::Default)
            .unwrap();
        s.web().session_create([1; 32], a.id, "tok", 100).unwrap();
        let got = s.web().session_get([1; 32], 99).unwrap().unwrap();
        assert_eq!((got.account_id, got.csrf.as_str()), (a.id, "tok"));
        assert!(
            s.web().session_get([1; 32], 100).unwrap().is_none(),
            "expired"
        );
        assert!(s.web().session_get([2; 32], 0).unwrap().is_none());
        assert_eq!(s.web().sessions_purge(100).unwrap(), 1);
        s.web()
            .session_create([3; 32], a.id, "t", i64::MAX)
            .unwrap();
        s.web().set_disabled("a@example.com", true, "op").unwrap();
        assert!(
            s.web().session_get([3; 32], 0).unwrap().is_none(),
            "disabling ends sessions"
        );
        assert_eq!(s.web().disabled_accounts().unwrap(), vec![a.id]);
        s.web().set_disabled("a@example.com", false, "op").unwrap();
        assert!(!s.web().is_disabled(a.id).unwrap());
    }

    #[test]
    fn one_open_request_and_an_atomic_decision() {
        let (_d, s) = store();
        let a = s
            .add_account("a@example.com", &hash(), QuotaLimit::Bytes(1000))
            .unwrap();
        let r = s
            .web()
            .quota_request_open(a.id, 5000, "three computers")
            .unwrap();
        assert!(matches!(
            s.web().quota_request_open(a.id, 6000, "again"),
            Err(Error::Exists(_))
        ));
        let d = s
            .web()
            .quota_request_decide(r.id, "op@example.com", Decision::Approve(4000))
            .unwrap();
        assert_eq!(d.status, RequestStatus::Approved);
        assert_eq!(
            (d.granted_size, d.decided_by.as_deref()),
            (Some(4000), Some("op@example.com"))
        );
        assert_eq!(s.account_by_id(a.id).unwrap().effective_limit, Some(4000));
        // Decided once only.
        assert!(matches!(
            s.web()
                .quota_request_decide(r.id, "x", Decision::Deny("no".into())),
            Err(Error::Refused(_))
        ));
        // A new request may be opened now, and denied with a reason.
        let r2 = s.web().quota_request_open(a.id, 9000, "more").unwrap();
        let d2 = s
            .web()
            .quota_request_decide(r2.id, "cli:root", Decision::Deny("no room".into()))
            .unwrap();
        assert_eq!(
            (d2.status, d2.note.as_deref()),
            (RequestStatus::Denied, Some("no room"))
        );
        assert_eq!(s.account_by_id(a.id).unwrap().effective_limit, Some(4000));
        assert_eq!(s.web().quota_requests(false).unwrap(), vec![]);
        assert_eq!(s.web().quota_requests(true).unwrap().len(), 2);
    }

    #[test]
    fn usage_samples_one_a_day_for_a_year() {
        let (_d, s) = store();
        let a = s
            .add_account("a@example.com", &hash(), QuotaLimit::Bytes(1000))
            .unwrap();
        s.add_account("b@other.org", &hash(), QuotaLimit::Unlimited)
            .unwrap();
        assert_eq!(s.web().usage_sample_all(10).unwrap(), 2);
        assert_eq!(
            s.web().usage_sample_all(10).unwrap(),
            2,
            "refreshed, not added"
        );
        s.web().usage_sample_all(11).unwrap();
        let v = s.web().usage_samples(a.id, 0).unwrap();
        assert_eq!(v.iter().map(|x| x.day).collect::<Vec<_>>(), vec![10, 11]);
        assert_eq!(v[0].limit, Some(1000));
        s.web().usage_sample_all(11 + USAGE_HISTORY_DAYS).unwrap();
        let v = s.web().usage_samples(a.id, 0).unwrap();
        assert_eq!(
            v.iter().map(|x| x.day).collect::<Vec<_>>(),
            vec![11, 11 + USAGE_HISTORY_DAYS]
        );
        let d = s.web().domain_usage_samples("other.org", 0).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].limit, None, "unlimited");
    }

    #[test]
    fn operators_and_counts() {
        let (_d, s) = store();
        s.add_account("op@example.com", &hash(), QuotaLimit::Default)
            .unwrap();
        assert!(matches!(
            s.web().admin_add("nobody@example.com", None),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.web().admin_add("op@example.com", Some("nope.org")),
            Err(Error::NotFound(_))
        ));
        s.web()
            .admin_add("op@example.com", Some("other.org"))
            .unwrap();
        assert!(matches!(
            s.web().admin_add("op@example.com", Some("other.org")),
            Err(Error::Exists(_))
        ));
        assert_eq!(
            s.web().admin_list().unwrap(),
            vec![AdminGrant {
                address: "op@example.com".into(),
                domain: Some("other.org".into())
            }]
        );
        assert_eq!(s.web().admin_remove("op@example.com", None).unwrap(), 1);
        for o in [
            DeliveryOutcome::Delivered,
            DeliveryOutcome::Delivered,
            DeliveryOutcome::Bounced,
        ] {
            s.web().count_delivery("Example.com", 5, o).unwrap();
        }
        s.web()
            .count_delivery("example.com", 6, DeliveryOutcome::Refused)
            .unwrap();
        let c = s.web().domain_counts("example.com", 0).unwrap();
        assert_eq!(
            c,
            vec![
                DomainDay {
                    day: 5,
                    delivered: 2,
                    refused: 0,
                    bounced: 1
                },
                DomainDay {
                    day: 6,
                    delivered: 0,
                    refused: 1,
                    bounced: 0
                }
            ]
        );
    }
}
