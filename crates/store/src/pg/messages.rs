//! Reading messages on PostgreSQL: structures, header octets and bodies (inline in the
//! `blobs` row, split into a skeleton and shared parts (`pg/parts.rs`), or the blob
//! directory's file).

use super::PgBackend;
use crate::body::SearchDecoder;
use crate::*;
use letterbox_message::ParsedMessage;
use r2d2_postgres::postgres::GenericClient;

/// UIDs as a PostgreSQL array (`uid = ANY($n)`).
pub(crate) fn uid_array(uids: &[u32]) -> Vec<i64> {
    uids.iter().map(|&u| i64::from(u)).collect()
}

pub(crate) fn all_uids(c: &mut impl GenericClient, mailbox: MailboxId) -> Result<Vec<u32>> {
    Ok(c.query(
        "SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid",
        &[&mailbox],
    )?
    .iter()
    .map(|r| r.get::<_, i64>(0) as u32)
    .collect())
}

/// Offsets of the stored structure count from the blob; the message starts with the
/// prefix, which belongs to the top-level header.
fn with_prefix(mut p: ParsedMessage, prefix_len: u32) -> ParsedMessage {
    if prefix_len > 0 {
        p.root.shift(prefix_len);
        p.root.offset_header = 0;
    }
    p
}

pub(crate) fn parsed_many(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
    with_search: bool,
) -> Result<Vec<(u32, ParsedMessage)>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_array(uids);
    let rows = b.with_conn(|c| {
        Ok(c.query(
            if with_search {
                "SELECT m.uid, length(m.prefix), b.structure, b.search, m.blob
                 FROM messages m JOIN blobs b ON b.hash = m.blob
                 WHERE m.mailbox_id = $1 AND m.uid = ANY($2) ORDER BY m.uid"
            } else {
                "SELECT m.uid, length(m.prefix), b.structure, NULL::BYTEA, m.blob
                 FROM messages m JOIN blobs b ON b.hash = m.blob
                 WHERE m.mailbox_id = $1 AND m.uid = ANY($2) ORDER BY m.uid"
            },
            &[&mailbox, &list],
        )?)
    })?;
    let mut out = Vec::with_capacity(rows.len());
    let mut dec = SearchDecoder::new();
    for r in rows {
        let uid = r.get::<_, i64>(0) as u32;
        let prefix_len = r.get::<_, i32>(1).max(0) as u32;
        let structure: &[u8] = r.get(2);
        let search: Option<&[u8]> = r.get(3);
        let parsed = match ParsedMessage::decode(structure) {
            Some(mut p) => {
                if let Some(s) = search {
                    dec.fill(&mut p, s);
                }
                p
            }
            // Another structure version: parse the octets again.
            None => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(
                    &mut b.blob_reader(&blob_id(r.get(4))?)?,
                    &mut body,
                )?;
                let mut p = letterbox_message::parse(&body);
                if !with_search {
                    p.search_headers = String::new();
                    p.search_body = String::new();
                }
                p
            }
        };
        out.push((uid, with_prefix(parsed, prefix_len)));
    }
    Ok(out)
}

pub(crate) fn headers_many(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_array(uids);
    b.with_conn(|c| {
        Ok(c.query(
            "SELECT m.uid, m.prefix || b.header FROM messages m JOIN blobs b ON b.hash = m.blob
             WHERE m.mailbox_id = $1 AND m.uid = ANY($2) ORDER BY m.uid",
            &[&mailbox, &list],
        )?
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get(1)))
        .collect())
    })
}

pub(crate) fn blob_id(bytes: &[u8]) -> Result<BlobId> {
    Ok(BlobId(
        bytes
            .try_into()
            .map_err(|_| Error::Invalid("bad blob id".into()))?,
    ))
}

pub(crate) fn open(b: &PgBackend, mailbox: MailboxId, uid: u32) -> Result<MessageReader> {
    let r = b
        .with_conn(|c| {
            Ok(c.query_opt(
                "SELECT m.prefix, m.blob, m.size, b.data, s.skeleton, s.parts FROM messages m
                 JOIN blobs b ON b.hash = m.blob LEFT JOIN blob_split s ON s.hash = m.blob
                 WHERE m.mailbox_id = $1 AND m.uid = $2",
                &[&mailbox, &i64::from(uid)],
            )?)
        })?
        .ok_or_else(|| Error::NotFound(format!("message UID {uid}")))?;
    let prefix: Vec<u8> = r.get(0);
    let id = blob_id(r.get(1))?;
    let size: i64 = r.get(2);
    let data: Option<&[u8]> = r.get(3);
    let split: Option<(&[u8], &[u8])> = r.get::<_, Option<&[u8]>>(4).zip(r.get(5));
    let reader = b.reader_of(&id, data, split)?;
    Ok(MessageReader::new(prefix, reader, size.max(0) as u64))
}
