//! The outbound queue (issue 12) and the per-account outbound records (limits, hold).
//!
//! A queued message is one `queue_messages` row, its octets one `queue_data` row and one
//! `queue_rcpts` row per recipient; [`Backend::queue_insert`] writes them in one durable
//! write job, so the commit's fsync (`synchronous=FULL`) covers the octets before the
//! submission answers `250`: a queued message survives kill -9 and a power cut, like a
//! delivered one. The scheduler asks [`Backend::queue_due`] for the ids whose
//! `next_attempt` has come (an index, `LIMIT`ed), then loads one message at a time:
//! memory does not grow with the queue.
//!
//! Everything here is behind [`Backend`], so a PostgreSQL backend holds the queue too.

use crate::sqlite::SqliteBackend;
use crate::{AccountId, Error, Result};
use rusqlite::{params, OptionalExtension};

pub type QueueId = i64;

/// RFC 3461 NOTIFY bits; `0` means the parameter was not given (failures and delays are
/// reported, as RFC 3461 4.1 leaves to the implementation).
pub const NOTIFY_SUCCESS: u8 = 1;
pub const NOTIFY_FAILURE: u8 = 2;
pub const NOTIFY_DELAY: u8 = 4;
pub const NOTIFY_NEVER: u8 = 8;

/// What to report for a recipient whose NOTIFY is `notify`.
pub fn notify_wants(notify: u8, what: u8) -> bool {
    if notify == 0 {
        return what != NOTIFY_SUCCESS;
    }
    notify & NOTIFY_NEVER == 0 && notify & what != 0
}

/// A message to queue.
#[derive(Debug, Clone, Default)]
pub struct NewQueued {
    pub sender: String,
    pub account: Option<AccountId>,
    pub message: Vec<u8>,
    pub rcpts: Vec<NewQueuedRcpt>,
    pub envid: Option<String>,
    pub ret_full: bool,
    pub smtputf8: bool,
    pub body_8bit: bool,
    pub held: bool,
    pub now: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewQueuedRcpt {
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptStatus {
    Pending,
    Delivered,
    Failed,
}

impl RcptStatus {
    fn from_i64(v: i64) -> RcptStatus {
        match v {
            1 => RcptStatus::Delivered,
            2 => RcptStatus::Failed,
            _ => RcptStatus::Pending,
        }
    }
    fn as_i64(self) -> i64 {
        match self {
            RcptStatus::Pending => 0,
            RcptStatus::Delivered => 1,
            RcptStatus::Failed => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RcptStatus::Pending => "pending",
            RcptStatus::Delivered => "delivered",
            RcptStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueuedRcpt {
    pub id: i64,
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: u8,
    pub status: RcptStatus,
    /// The last reply or error for this recipient.
    pub last_reply: String,
}

impl QueuedRcpt {
    /// The domain part, lower-cased (the destination).
    pub fn domain(&self) -> String {
        self.address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// A queued message's envelope and state (without its octets).
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: QueueId,
    pub sender: String,
    pub account: Option<AccountId>,
    pub created: i64,
    pub size: u64,
    pub envid: Option<String>,
    pub ret_full: bool,
    pub smtputf8: bool,
    pub body_8bit: bool,
    pub held: bool,
    pub warned: bool,
    pub attempts: u32,
    pub next_attempt: i64,
    pub last_error: String,
    pub rcpts: Vec<QueuedRcpt>,
}

/// The outcome of one delivery attempt, written at once.
#[derive(Debug, Clone, Default)]
pub struct QueueUpdate {
    /// (recipient row id, new status, reply text).
    pub rcpts: Vec<(i64, RcptStatus, String)>,
    /// When to try the pending recipients again.
    pub next_attempt: i64,
    pub count_attempt: bool,
    pub last_error: String,
    pub warned: bool,
}

/// An account's recent outbound use: messages in the last hour, recipients in the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundUse {
    pub messages_hour: u64,
    pub rcpts_day: u64,
}

const MSG_COLS: &str = "id, sender, account_id, created, size, envid, ret_full, smtputf8, \
     body_8bit, held, warned, attempts, next_attempt, last_error";

fn msg_from_row(r: &rusqlite::Row) -> rusqlite::Result<QueuedMessage> {
    Ok(QueuedMessage {
        id: r.get(0)?,
        sender: r.get(1)?,
        account: r.get(2)?,
        created: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        envid: r.get(5)?,
        ret_full: r.get(6)?,
        smtputf8: r.get(7)?,
        body_8bit: r.get(8)?,
        held: r.get(9)?,
        warned: r.get(10)?,
        attempts: r.get::<_, i64>(11)? as u32,
        next_attempt: r.get(12)?,
        last_error: r.get(13)?,
        rcpts: Vec::new(),
    })
}

fn rcpts_of(c: &rusqlite::Connection, id: QueueId) -> Result<Vec<QueuedRcpt>> {
    let mut st = c.prepare_cached(
        "SELECT id, address, orcpt, notify, status, last_reply FROM queue_rcpts
         WHERE message_id = ?1 ORDER BY id",
    )?;
    let rows = st.query_map([id], |r| {
        Ok(QueuedRcpt {
            id: r.get(0)?,
            address: r.get(1)?,
            orcpt: r.get(2)?,
            notify: r.get::<_, i64>(3)? as u8,
            status: RcptStatus::from_i64(r.get(4)?),
            last_reply: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn not_found(id: QueueId) -> Error {
    Error::NotFound(format!("queue entry {id}"))
}

/// The SQLite implementation of the queue methods of [`crate::Backend`].
impl SqliteBackend {
    pub(crate) fn q_insert(&self, m: NewQueued) -> Result<QueueId> {
        if m.rcpts.is_empty() {
            return Err(Error::Invalid("a queued message needs recipients".into()));
        }
        self.write(move |ctx| {
            let tx = ctx.tx();
            // Never an ID given before (see queue_seq in schema.sql).
            let id: i64 = tx.query_row(
                "SELECT max(coalesce((SELECT last FROM queue_seq WHERE one = 1), 0),
                            coalesce((SELECT max(id) FROM queue_messages), 0)) + 1",
                [],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO queue_seq (one, last) VALUES (1, ?1)
                 ON CONFLICT (one) DO UPDATE SET last = excluded.last",
                [id],
            )?;
            tx.execute(
                "INSERT INTO queue_messages (id, sender, account_id, created, size, envid, ret_full,
                    smtputf8, body_8bit, held, next_attempt)
                 VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?3)",
                params![
                    m.sender,
                    m.account,
                    m.now,
                    m.message.len() as i64,
                    m.envid,
                    m.ret_full,
                    m.smtputf8,
                    m.body_8bit,
                    m.held,
                    id
                ],
            )?;
            tx.execute(
                "INSERT INTO queue_data (id, data) VALUES (?1, ?2)",
                params![id, m.message],
            )?;
            for r in &m.rcpts {
                tx.execute(
                    "INSERT INTO queue_rcpts (message_id, address, orcpt, notify) VALUES (?1, ?2, ?3, ?4)",
                    params![id, r.address, r.orcpt, r.notify as i64],
                )?;
            }
            if let Some(a) = m.account {
                tx.execute(
                    "INSERT INTO outbound_sent (account_id, at, rcpts) VALUES (?1, ?2, ?3)",
                    params![a, m.now, m.rcpts.len() as i64],
                )?;
                tx.execute(
                    "DELETE FROM outbound_sent WHERE account_id = ?1 AND at < ?2",
                    params![a, m.now - 86_400],
                )?;
            }
            Ok(id)
        })
    }

    pub(crate) fn q_due(&self, now: i64, limit: usize) -> Result<Vec<QueueId>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id FROM queue_messages WHERE held = 0 AND next_attempt <= ?1
                 ORDER BY next_attempt LIMIT ?2",
            )?;
            let rows = st.query_map(params![now, limit as i64], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    pub(crate) fn q_next_due(&self) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT min(next_attempt) FROM queue_messages WHERE held = 0",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?)
        })
    }

    pub(crate) fn q_get(&self, id: QueueId) -> Result<QueuedMessage> {
        self.read(|c| {
            let sql = format!("SELECT {MSG_COLS} FROM queue_messages WHERE id = ?1");
            let mut m = c
                .query_row(&sql, [id], msg_from_row)
                .optional()?
                .ok_or_else(|| not_found(id))?;
            m.rcpts = rcpts_of(c, id)?;
            Ok(m)
        })
    }

    pub(crate) fn q_body(&self, id: QueueId) -> Result<Vec<u8>> {
        self.read(|c| {
            c.query_row("SELECT data FROM queue_data WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| not_found(id))
        })
    }

    pub(crate) fn q_list(&self, after: QueueId, limit: usize) -> Result<Vec<QueuedMessage>> {
        self.read(|c| {
            let sql =
                format!("SELECT {MSG_COLS} FROM queue_messages WHERE id > ?1 ORDER BY id LIMIT ?2");
            let mut st = c.prepare(&sql)?;
            let mut v = st
                .query_map(params![after, limit as i64], msg_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for m in &mut v {
                m.rcpts = rcpts_of(c, m.id)?;
            }
            Ok(v)
        })
    }

    pub(crate) fn q_update(&self, id: QueueId, u: QueueUpdate) -> Result<bool> {
        self.write(move |ctx| {
            let tx = ctx.tx();
            let n = tx.execute(
                "UPDATE queue_messages SET next_attempt = ?2, attempts = attempts + ?3,
                    last_error = ?4, warned = max(warned, ?5) WHERE id = ?1",
                params![id, u.next_attempt, u.count_attempt as i64, u.last_error, u.warned],
            )?;
            if n == 0 {
                return Ok(false);
            }
            for (rid, status, reply) in &u.rcpts {
                tx.execute(
                    "UPDATE queue_rcpts SET status = ?3, last_reply = ?4 WHERE id = ?1 AND message_id = ?2",
                    params![rid, id, status.as_i64(), reply],
                )?;
            }
            let pending: i64 = tx.query_row(
                "SELECT count(*) FROM queue_rcpts WHERE message_id = ?1 AND status = 0",
                [id],
                |r| r.get(0),
            )?;
            if pending == 0 {
                delete_entry(tx, id)?;
            }
            Ok(true)
        })
    }

    pub(crate) fn q_remove(&self, id: QueueId) -> Result<()> {
        self.write(move |ctx| {
            if delete_entry(ctx.tx(), id)? {
                Ok(())
            } else {
                Err(not_found(id))
            }
        })
    }

    pub(crate) fn q_set_held(&self, id: QueueId, held: bool, now: i64) -> Result<()> {
        self.write(move |ctx| {
            let n = ctx.tx().execute(
                "UPDATE queue_messages SET held = ?2,
                    next_attempt = CASE WHEN ?2 THEN next_attempt ELSE min(next_attempt, ?3) END
                 WHERE id = ?1",
                params![id, held, now],
            )?;
            if n == 0 {
                return Err(not_found(id));
            }
            Ok(())
        })
    }

    pub(crate) fn q_retry(&self, id: Option<QueueId>, now: i64) -> Result<u64> {
        self.write(move |ctx| {
            let n = match id {
                Some(id) => ctx.tx().execute(
                    "UPDATE queue_messages SET next_attempt = ?2 WHERE id = ?1",
                    params![id, now],
                )?,
                None => ctx.tx().execute(
                    "UPDATE queue_messages SET next_attempt = ?1 WHERE held = 0",
                    params![now],
                )?,
            };
            if n == 0 {
                if let Some(id) = id {
                    return Err(not_found(id));
                }
            }
            Ok(n as u64)
        })
    }

    pub(crate) fn q_outbound_use(&self, account: AccountId, now: i64) -> Result<OutboundUse> {
        self.read(|c| {
            let (messages_hour, rcpts_day) = c.query_row(
                "SELECT coalesce(sum(at > ?2), 0), coalesce(sum(rcpts), 0) FROM outbound_sent
                 WHERE account_id = ?1 AND at > ?3",
                params![account, now - 3600, now - 86_400],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?;
            Ok(OutboundUse {
                messages_hour: messages_hour.max(0) as u64,
                rcpts_day: rcpts_day.max(0) as u64,
            })
        })
    }

    pub(crate) fn q_set_outbound_hold(&self, account: AccountId, hold: bool) -> Result<()> {
        self.write(move |ctx| {
            if hold {
                ctx.tx().execute(
                    "INSERT OR IGNORE INTO outbound_holds (account_id) VALUES (?1)",
                    [account],
                )?;
            } else {
                ctx.tx().execute(
                    "DELETE FROM outbound_holds WHERE account_id = ?1",
                    [account],
                )?;
            }
            Ok(())
        })
    }

    pub(crate) fn q_outbound_held(&self, account: AccountId) -> Result<bool> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM outbound_holds WHERE account_id = ?1")?
                    .exists([account])?,
            )
        })
    }
}

fn delete_entry(tx: &rusqlite::Transaction, id: QueueId) -> Result<bool> {
    tx.execute("DELETE FROM queue_rcpts WHERE message_id = ?1", [id])?;
    tx.execute("DELETE FROM queue_data WHERE id = ?1", [id])?;
    Ok(tx.execute("DELETE FROM queue_messages WHERE id = ?1", [id])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};

    fn entry(now: i64, rcpts: &[&str]) -> NewQueued {
        NewQueued {
            sender: "a@example.com".into(),
            account: Some(1),
            message: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
            rcpts: rcpts
                .iter()
                .map(|r| NewQueuedRcpt {
                    address: r.to_string(),
                    ..Default::default()
                })
                .collect(),
            now,
            ..Default::default()
        }
    }

    #[test]
    fn queue_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        let a = s
            .queue_insert(entry(100, &["x@r.test", "y@r.test"]))
            .unwrap();
        let b = s.queue_insert(entry(200, &["z@r.test"])).unwrap();
        assert_eq!(s.queue_due(150, 10).unwrap(), vec![a]);
        assert_eq!(s.queue_due(300, 1).unwrap(), vec![a]); // bounded, oldest first
        assert_eq!(s.queue_next_due().unwrap(), Some(100));
        let m = s.queue_get(a).unwrap();
        assert_eq!(s.queue_body(a).unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        // One recipient delivered, the other deferred: the entry stays, due later.
        let u = QueueUpdate {
            rcpts: vec![
                (m.rcpts[0].id, RcptStatus::Delivered, "250 ok".into()),
                (m.rcpts[1].id, RcptStatus::Pending, "451 later".into()),
            ],
            next_attempt: 500,
            count_attempt: true,
            last_error: "451 later".into(),
            warned: false,
        };
        assert!(s.queue_update(a, u).unwrap());
        let m = s.queue_get(a).unwrap();
        assert_eq!((m.attempts, m.next_attempt), (1, 500));
        assert_eq!(m.rcpts[1].last_reply, "451 later");
        assert_eq!(s.queue_due(300, 10).unwrap(), vec![b]);
        // Hold, release, retry, unknown ids.
        s.queue_set_held(b, true, 300).unwrap();
        assert!(s.queue_due(300, 10).unwrap().is_empty());
        s.queue_set_held(b, false, 300).unwrap();
        assert_eq!(s.queue_due(300, 10).unwrap(), vec![b]);
        assert_eq!(s.queue_retry(None, 300).unwrap(), 2);
        assert!(matches!(s.queue_get(99), Err(Error::NotFound(_))));
        assert!(matches!(s.queue_remove(99), Err(Error::NotFound(_))));
        assert!(matches!(
            s.queue_retry(Some(99), 1),
            Err(Error::NotFound(_))
        ));
        // The last pending recipient failed: the entry is gone.
        let u = QueueUpdate {
            rcpts: vec![(m.rcpts[1].id, RcptStatus::Failed, "550 no".into())],
            next_attempt: 600,
            count_attempt: true,
            ..Default::default()
        };
        assert!(s.queue_update(a, u).unwrap());
        assert!(matches!(s.queue_get(a), Err(Error::NotFound(_))));
        assert!(matches!(s.queue_body(a), Err(Error::NotFound(_))));
        s.queue_remove(b).unwrap();
        assert!(s.queue_list(0, 10).unwrap().is_empty());
        // IDs are never reused, even once the newest entry is gone.
        let unaccounted = || NewQueued {
            account: None,
            ..entry(700, &["w@r.test"])
        };
        let c = s.queue_insert(unaccounted()).unwrap();
        assert!(c > b && c > a, "{c} after {a}, {b}");
        s.queue_remove(c).unwrap();
        let d = s.queue_insert(unaccounted()).unwrap();
        assert!(d > c);
        s.queue_remove(d).unwrap();
        // Outbound use counts what was queued per account.
        let u = s.outbound_use(1, 250).unwrap();
        assert_eq!((u.messages_hour, u.rcpts_day), (2, 3));
        s.set_outbound_hold(1, true).unwrap();
        assert!(s.outbound_held(1).unwrap());
        s.set_outbound_hold(1, false).unwrap();
        assert!(!s.outbound_held(1).unwrap());
    }
}
