//! What POP3 needs to send a message as CRLF lines and to announce its exact size
//! (RFC 1939 section 5: LIST and STAT give "the exact size" of the message, and RETR
//! sends it as CRLF-terminated lines; fetchmail and others compare the two).
//!
//! Mail that arrived by SMTP/LMTP ends with CRLF and has no bare LF, but IMAP APPEND and
//! `letterbox deliver` may store a message without a final CRLF or with LF-only line ends,
//! byte for byte as given (IMAP FETCH returns it so). POP3 sends such a message with every
//! bare LF made CRLF and a final CRLF added, so its POP3 size is the stored size plus one
//! octet per bare LF plus two when the last octet is not an LF. The counts are taken once,
//! when a blob is first stored (table `blob_lines`), so that LIST and STAT never read
//! message bodies; blobs stored before that table are counted on their first POP3 listing
//! and the counts kept (best effort).

use crate::sqlite::SqliteBackend;
use crate::*;
use rusqlite::{params, Connection, OptionalExtension};

/// The line-end shape of a blob's octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineEnds {
    /// LFs not preceded by a CR.
    pub bare_lf: u64,
    /// The last octet is an LF (always true of an empty blob: nothing to add).
    pub ends_with_lf: bool,
}

impl LineEnds {
    pub fn of(body: &[u8]) -> LineEnds {
        let mut bare_lf = 0;
        for i in memchr::memchr_iter(b'\n', body) {
            if i == 0 || body[i - 1] != b'\r' {
                bare_lf += 1;
            }
        }
        LineEnds {
            bare_lf,
            ends_with_lf: body.last().is_none_or(|&b| b == b'\n'),
        }
    }

    /// The octets POP3 sends for a message of `size` octets (prefix included) whose blob
    /// has this shape (the prefix is CRLF lines of our own).
    pub fn crlf_size(&self, size: u64) -> u64 {
        size + self.bare_lf + if self.ends_with_lf { 0 } else { 2 }
    }
}

/// One message as POP3 sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pop3Size {
    pub uid: u32,
    /// The exact octets RETR sends (CRLF lines, before dot-stuffing).
    pub size: u64,
    /// The stored octets have bare LFs, which RETR sends as CRLF.
    pub bare_lf: bool,
}

/// Keeps a blob's counts (called wherever its parse is stored: `put_blob_parse`).
pub(crate) fn put(c: &Connection, info_id: i64, ends: LineEnds) -> Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO blob_lines (id, bare_lf, ends_lf) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![info_id, ends.bare_lf as i64, ends.ends_with_lf])?;
    Ok(())
}

impl SqliteBackend {
    pub(crate) fn pop3_sizes_impl(&self, mailbox: MailboxId) -> Result<Vec<Pop3Size>> {
        type Row = (u32, u64, Vec<u8>, Option<i64>, Option<(i64, bool)>);
        let rows: Vec<Row> = self.read_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT m.uid, m.size, m.blob, i.id, l.bare_lf, l.ends_lf
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 LEFT JOIN blob_lines l ON l.id = i.id
                 WHERE m.mailbox_id = ?1 ORDER BY m.uid",
            )?;
            let v = st
                .query_map([mailbox], |r| {
                    let lines = match (r.get::<_, Option<i64>>(4)?, r.get::<_, Option<bool>>(5)?) {
                        (Some(n), Some(e)) => Some((n, e)),
                        _ => None,
                    };
                    Ok((
                        r.get::<_, i64>(0)? as u32,
                        r.get::<_, i64>(1)? as u64,
                        r.get(2)?,
                        r.get(3)?,
                        lines,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        let mut learned = Vec::new();
        for (uid, size, blob, info_id, lines) in rows {
            let ends = match lines {
                Some((n, e)) => LineEnds {
                    bare_lf: n as u64,
                    ends_with_lf: e,
                },
                None => {
                    // Stored before `blob_lines`: count once, keep the counts.
                    let id = crate::blob::BlobId(
                        blob.as_slice()
                            .try_into()
                            .map_err(|_| Error::Invalid("bad blob id".into()))?,
                    );
                    let mut body = Vec::new();
                    std::io::Read::read_to_end(&mut self.blob_reader_pub(&id)?, &mut body)?;
                    let ends = LineEnds::of(&body);
                    if let Some(info) = info_id {
                        learned.push((info, ends));
                    }
                    ends
                }
            };
            out.push(Pop3Size {
                uid,
                size: ends.crlf_size(size),
                bare_lf: ends.bare_lf > 0,
            });
        }
        if !learned.is_empty() {
            let n = learned.len();
            if let Err(e) = self.write_lazy_pub(move |ctx| {
                for (info, ends) in &learned {
                    let exists = ctx
                        .tx()
                        .prepare_cached("SELECT 1 FROM blob_info WHERE id = ?1")?
                        .query_row([info], |_| Ok(()))
                        .optional()?
                        .is_some();
                    if exists {
                        put(ctx.tx(), *info, *ends)?;
                    }
                }
                Ok(())
            }) {
                tracing::debug!("pop3 sizes of {n} older blob(s) not kept: {e}");
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            LineEnds::of(b""),
            LineEnds {
                bare_lf: 0,
                ends_with_lf: true
            }
        );
        assert_eq!(
            LineEnds::of(b"a\r\nb\r\n"),
            LineEnds {
                bare_lf: 0,
                ends_with_lf: true
            }
        );
        assert_eq!(
            LineEnds::of(b"a\r\nb"),
            LineEnds {
                bare_lf: 0,
                ends_with_lf: false
            }
        );
        assert_eq!(
            LineEnds::of(b"\na\nb\r\n\n"),
            LineEnds {
                bare_lf: 3,
                ends_with_lf: true
            }
        );
        assert_eq!(
            LineEnds::of(b"a\nb\r"),
            LineEnds {
                bare_lf: 1,
                ends_with_lf: false
            }
        );
        assert_eq!(LineEnds::of(b"a\r\nb").crlf_size(10), 12);
        assert_eq!(LineEnds::of(b"a\nb\n").crlf_size(4), 6);
    }

    #[test]
    fn sizes_kept_at_delivery_and_learned_for_older_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
        let a = s
            .add_account("a@example.com", &hash, QuotaLimit::Default)
            .unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap();
        for body in [
            &b"S: 1\r\n\r\nok\r\n"[..],
            b"S: 2\n\nbare\nend",
            b"S: 3\r\n\r\nno end",
        ] {
            let m = NewMessage {
                prefix: b"X-P: 1\r\n".to_vec(),
                body: std::sync::Arc::new(body.to_vec()),
                flags: Flags::default(),
                keywords: vec![],
                internal_date: 0,
            };
            s.append(inbox.id, m, false).unwrap();
        }
        let want = vec![
            Pop3Size {
                uid: 1,
                size: 8 + 12,
                bare_lf: false,
            },
            Pop3Size {
                uid: 2,
                size: 8 + 14 + 3 + 2,
                bare_lf: true,
            },
            Pop3Size {
                uid: 3,
                size: 8 + 14 + 2,
                bare_lf: false,
            },
        ];
        assert_eq!(s.pop3_sizes(inbox.id).unwrap(), want);
        // A store made before `blob_lines`: counted from the octets, and kept.
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        c.execute_batch("DELETE FROM blob_lines").unwrap();
        assert_eq!(s.pop3_sizes(inbox.id).unwrap(), want);
        let n: i64 = c
            .query_row("SELECT count(*) FROM blob_lines", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(s.pop3_sizes(inbox.id).unwrap(), want);
    }
}
