//! The outbound queue (issue 12) on PostgreSQL (issue 17): the queue methods of
//! [`crate::Backend`] as free functions over a client, with the same meaning as the
//! embedded store's (`queue.rs`), plus what N nodes sharing one queue need.
//!
//! **One node per due entry.** [`due`] does not only list due entries, it *takes* them:
//! in one statement it picks due, unheld entries whose lease has ended with `SELECT ...
//! FOR UPDATE SKIP LOCKED` (a row another node is taking at that instant is skipped,
//! never waited for nor taken twice) and sets their `leased_until` to now +
//! `[queue] lease` ([`crate::StoreOptions::queue_lease`], default [`QUEUE_LEASE`]). Until then no other node's [`due`] returns them; the attempt's
//! recorded outcome ([`update`] counting the attempt) ends the lease, and [`release`] gives back an entry the caller
//! took but will not try now. A node that dies mid-attempt leaves its lease to run out,
//! after which another node tries the entry: at-least-once, as the scheduler documents.
//!
//! Inserts commit before the submission hears `250`: PostgreSQL's commit is durable
//! (`synchronous_commit` on, its default).

use crate::queue::*;
use crate::{AccountId, Error, Result};
use postgres::GenericClient;

/// The default of `[queue] lease`: how long a node holds a due entry it took: longer than one delivery attempt can last
/// (RFC 5321 4.5.3.2's timeouts add up to about 20 minutes for a slow peer), so that no
/// other node starts the same entry while one is still delivering it.
pub const QUEUE_LEASE: i64 = 30 * 60;

const MSG_COLS: &str = "id, sender, account_id, created, size, envid, ret_full, smtputf8, \
     body_8bit, held, warned, attempts, next_attempt, last_error";

fn msg_from_row(r: &postgres::Row) -> QueuedMessage {
    QueuedMessage {
        id: r.get(0),
        sender: r.get(1),
        account: r.get(2),
        created: r.get(3),
        size: r.get::<_, i64>(4).max(0) as u64,
        envid: r.get(5),
        ret_full: r.get(6),
        smtputf8: r.get(7),
        body_8bit: r.get(8),
        held: r.get(9),
        warned: r.get(10),
        attempts: r.get::<_, i64>(11).clamp(0, u32::MAX as i64) as u32,
        next_attempt: r.get(12),
        last_error: r.get(13),
        rcpts: Vec::new(),
    }
}

fn status_of(v: i64) -> RcptStatus {
    match v {
        1 => RcptStatus::Delivered,
        2 => RcptStatus::Failed,
        _ => RcptStatus::Pending,
    }
}

fn status_code(s: RcptStatus) -> i64 {
    match s {
        RcptStatus::Pending => 0,
        RcptStatus::Delivered => 1,
        RcptStatus::Failed => 2,
    }
}

fn rcpts_of(c: &mut impl GenericClient, id: QueueId) -> Result<Vec<QueuedRcpt>> {
    Ok(c
        .query(
            "SELECT id, address, orcpt, notify, status, last_reply FROM queue_rcpts
             WHERE message_id = $1 ORDER BY id",
            &[&id],
        )?
        .iter()
        .map(|r| QueuedRcpt {
            id: r.get(0),
            address: r.get(1),
            orcpt: r.get(2),
            notify: r.get::<_, i64>(3).clamp(0, 255) as u8,
            status: status_of(r.get(4)),
            last_reply: r.get(5),
        })
        .collect())
}

fn not_found(id: QueueId) -> Error {
    Error::NotFound(format!("queue entry {id}"))
}

/// [`crate::Backend::queue_insert`]: the entry, its octets, its recipients and the
/// account's outbound record, in one transaction.
pub(crate) fn insert(c: &mut impl GenericClient, m: NewQueued) -> Result<QueueId> {
    if m.rcpts.is_empty() {
        return Err(Error::Invalid("a queued message needs recipients".into()));
    }
    let mut tx = c.transaction()?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO queue_messages (sender, account_id, created, size, envid, ret_full,
                smtputf8, body_8bit, held, next_attempt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $3) RETURNING id",
            &[
                &m.sender,
                &m.account,
                &m.now,
                &(m.message.len() as i64),
                &m.envid,
                &m.ret_full,
                &m.smtputf8,
                &m.body_8bit,
                &m.held,
            ],
        )?
        .get(0);
    tx.execute(
        "INSERT INTO queue_data (id, data) VALUES ($1, $2)",
        &[&id, &m.message],
    )?;
    for r in &m.rcpts {
        tx.execute(
            "INSERT INTO queue_rcpts (message_id, address, orcpt, notify) VALUES ($1, $2, $3, $4)",
            &[&id, &r.address, &r.orcpt, &(r.notify as i64)],
        )?;
    }
    if let Some(a) = m.account {
        tx.execute(
            "INSERT INTO outbound_sent (account_id, at, rcpts) VALUES ($1, $2, $3)",
            &[&a, &m.now, &(m.rcpts.len() as i64)],
        )?;
        tx.execute(
            "DELETE FROM outbound_sent WHERE account_id = $1 AND at < $2",
            &[&a, &(m.now - 86_400)],
        )?;
    }
    tx.commit()?;
    Ok(id)
}

/// [`crate::Backend::queue_due`]: takes (leases) up to `limit` due entries, oldest
/// first (see the module documentation).
pub(crate) fn due(c: &mut impl GenericClient, now: i64, limit: usize, lease: i64) -> Result<Vec<QueueId>> {
    let limit = limit.min(i64::MAX as usize) as i64;
    let mut ids: Vec<(i64, i64)> = c
        .query(
            "UPDATE queue_messages q SET leased_until = $1 + $3
             FROM (SELECT id FROM queue_messages
                   WHERE NOT held AND next_attempt <= $1 AND leased_until <= $1
                   ORDER BY next_attempt, id LIMIT $2 FOR UPDATE SKIP LOCKED) d
             WHERE q.id = d.id RETURNING q.id, q.next_attempt",
            &[&now, &limit, &lease],
        )?
        .iter()
        .map(|r| (r.get(1), r.get(0)))
        .collect();
    ids.sort_unstable();
    Ok(ids.into_iter().map(|(_, id)| id).collect())
}

/// [`crate::Backend::queue_release`]: ends the lease [`due`] took on an entry the
/// caller will not try now, so that it is due again at once (here or on another node).
pub(crate) fn release(c: &mut impl GenericClient, id: QueueId) -> Result<()> {
    c.execute(
        "UPDATE queue_messages SET leased_until = 0 WHERE id = $1",
        &[&id],
    )?;
    Ok(())
}

/// [`crate::Backend::queue_next_due`]: the earliest time an entry not held can be
/// taken (its next attempt, or the end of its lease).
pub(crate) fn next_due(c: &mut impl GenericClient) -> Result<Option<i64>> {
    Ok(c
        .query_one(
            "SELECT min(greatest(next_attempt, leased_until)) FROM queue_messages WHERE NOT held",
            &[],
        )?
        .get(0))
}

pub(crate) fn get(c: &mut impl GenericClient, id: QueueId) -> Result<QueuedMessage> {
    let row = c
        .query_opt(
            &format!("SELECT {MSG_COLS} FROM queue_messages WHERE id = $1"),
            &[&id],
        )?
        .ok_or_else(|| not_found(id))?;
    let mut m = msg_from_row(&row);
    m.rcpts = rcpts_of(c, id)?;
    Ok(m)
}

pub(crate) fn body(c: &mut impl GenericClient, id: QueueId) -> Result<Vec<u8>> {
    Ok(c
        .query_opt("SELECT data FROM queue_data WHERE id = $1", &[&id])?
        .ok_or_else(|| not_found(id))?
        .get(0))
}

pub(crate) fn list(
    c: &mut impl GenericClient,
    after: QueueId,
    limit: usize,
) -> Result<Vec<QueuedMessage>> {
    let limit = limit.min(i64::MAX as usize) as i64;
    let rows = c.query(
        &format!("SELECT {MSG_COLS} FROM queue_messages WHERE id > $1 ORDER BY id LIMIT $2"),
        &[&after, &limit],
    )?;
    let mut v: Vec<QueuedMessage> = rows.iter().map(msg_from_row).collect();
    for m in &mut v {
        m.rcpts = rcpts_of(c, m.id)?;
    }
    Ok(v)
}

/// [`crate::Backend::queue_update`]: an attempt's outcome; an entry left without
/// pending recipients is removed. The update that counts the attempt (its last) ends
/// the lease; one recorded mid-attempt (the recipients one destination accepted) keeps
/// it, since the attempt goes on to the other destinations.
pub(crate) fn update(c: &mut impl GenericClient, id: QueueId, u: QueueUpdate) -> Result<bool> {
    let mut tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE queue_messages SET next_attempt = $2, attempts = attempts + $3,
            last_error = $4, warned = warned OR $5,
            leased_until = CASE WHEN $3 > 0 THEN 0 ELSE leased_until END WHERE id = $1",
        &[
            &id,
            &u.next_attempt,
            &(u.count_attempt as i64),
            &u.last_error,
            &u.warned,
        ],
    )?;
    if n == 0 {
        return Ok(false);
    }
    for (rid, status, reply) in &u.rcpts {
        tx.execute(
            "UPDATE queue_rcpts SET status = $3, last_reply = $4 WHERE id = $1 AND message_id = $2",
            &[rid, &id, &status_code(*status), reply],
        )?;
    }
    let pending: i64 = tx
        .query_one(
            "SELECT count(*) FROM queue_rcpts WHERE message_id = $1 AND status = 0",
            &[&id],
        )?
        .get(0);
    if pending == 0 {
        delete_entry(&mut tx, id)?;
    }
    tx.commit()?;
    Ok(true)
}

pub(crate) fn remove(c: &mut impl GenericClient, id: QueueId) -> Result<()> {
    if delete_entry(c, id)? {
        Ok(())
    } else {
        Err(not_found(id))
    }
}

pub(crate) fn set_held(c: &mut impl GenericClient, id: QueueId, held: bool, now: i64) -> Result<()> {
    let n = c.execute(
        "UPDATE queue_messages SET held = $2,
            next_attempt = CASE WHEN $2 THEN next_attempt ELSE least(next_attempt, $3) END
         WHERE id = $1",
        &[&id, &held, &now],
    )?;
    if n == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

pub(crate) fn retry(c: &mut impl GenericClient, id: Option<QueueId>, now: i64) -> Result<u64> {
    let n = match id {
        Some(id) => c.execute(
            "UPDATE queue_messages SET next_attempt = $2 WHERE id = $1",
            &[&id, &now],
        )?,
        None => c.execute(
            "UPDATE queue_messages SET next_attempt = $1 WHERE NOT held",
            &[&now],
        )?,
    };
    if n == 0 {
        if let Some(id) = id {
            return Err(not_found(id));
        }
    }
    Ok(n)
}

pub(crate) fn outbound_use(
    c: &mut impl GenericClient,
    account: AccountId,
    now: i64,
) -> Result<OutboundUse> {
    let r = c.query_one(
        "SELECT count(*) FILTER (WHERE at > $2), coalesce(sum(rcpts), 0)::BIGINT
         FROM outbound_sent WHERE account_id = $1 AND at > $3",
        &[&account, &(now - 3600), &(now - 86_400)],
    )?;
    Ok(OutboundUse {
        messages_hour: r.get::<_, i64>(0).max(0) as u64,
        rcpts_day: r.get::<_, i64>(1).max(0) as u64,
    })
}

pub(crate) fn set_outbound_hold(
    c: &mut impl GenericClient,
    account: AccountId,
    hold: bool,
) -> Result<()> {
    if hold {
        c.execute(
            "INSERT INTO outbound_holds (account_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&account],
        )?;
    } else {
        c.execute(
            "DELETE FROM outbound_holds WHERE account_id = $1",
            &[&account],
        )?;
    }
    Ok(())
}

pub(crate) fn outbound_held(c: &mut impl GenericClient, account: AccountId) -> Result<bool> {
    Ok(c
        .query_opt(
            "SELECT 1 FROM outbound_holds WHERE account_id = $1",
            &[&account],
        )?
        .is_some())
}

/// Removes an entry with its octets and recipients (`ON DELETE CASCADE`).
fn delete_entry(c: &mut impl GenericClient, id: QueueId) -> Result<bool> {
    Ok(c.execute("DELETE FROM queue_messages WHERE id = $1", &[&id])? > 0)
}
