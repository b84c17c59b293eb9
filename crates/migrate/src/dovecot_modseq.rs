//! An upper bound of a Dovecot folder's HIGHESTMODSEQ, read from its transaction logs,
//! so that an imported mailbox, which keeps the folder's UIDVALIDITY, never shows a
//! CONDSTORE/QRESYNC client a mod-sequence at or below one it cached from Dovecot
//! (RFC 7162 3.1.1: under one UIDVALIDITY the mod-sequence only grows; 3.2.5: a client
//! resuming with `SELECT ... (QRESYNC (uidvalidity modseq ...))` is sent every message
//! changed after `modseq`). With the imported messages' MODSEQs above the bound, such a
//! client gets every message's flags again (a full flag resync, no body download), and
//! every later change is above what it cached.
//!
//! Dovecot keeps a folder's changes in `dovecot.index.log` (and the previous file,
//! `dovecot.index.log.2`), next to the folder's `dovecot.index`. Its header (Dovecot's
//! `src/lib-index/mail-transaction-log.h`, `struct mail_transaction_log_header`, host
//! byte order, little-endian here):
//!
//! ```text
//! u8 major_version, u8 minor_version, u16 hdr_size, u32 indexid, u32 file_seq,
//! u32 prev_file_seq, u32 prev_file_offset, u32 create_stamp, u64 initial_modseq, ...
//! ```
//!
//! `initial_modseq` is the folder's mod-sequence where the file starts; after the header,
//! every record (one `struct mail_transaction_header` of 8 octets, then its data) raises
//! it by at most one. So `initial_modseq + (file size - hdr_size) / 8` bounds it from
//! above without parsing the records (a bound, not the value: MODSEQs only have to be
//! greater, and a few thousand more cost nothing). A file with no `initial_modseq` (0,
//! "unknown") starts where the older file ends, or at 1 when it is the folder's first
//! log (`file_seq` 1); otherwise, or when a log cannot be read, the floor is
//! [`UNKNOWN_FLOOR`].

use std::path::Path;

/// The floor when the logs do not tell: above any mod-sequence a Dovecot folder reaches
/// in practice (one per change), far below RFC 7162's 2^63 - 1.
pub const UNKNOWN_FLOOR: u64 = 1 << 32;

/// A mod-sequence no Dovecot client of the folder in `dir` can have cached a higher one
/// than, or None when the folder has no transaction log (Dovecot never indexed it, so no
/// client has a mod-sequence for it).
pub fn modseq_bound(dir: &Path) -> Option<u64> {
    // The bound at the end of the files read so far, older file first.
    let mut acc: Option<u64> = None;
    for name in ["dovecot.index.log.2", "dovecot.index.log"] {
        let Ok(data) = std::fs::read(dir.join(name)) else {
            continue;
        };
        let Some(h) = header(&data) else {
            return Some(UNKNOWN_FLOOR); // a log we cannot read: stay safe
        };
        let start = if h.initial_modseq > 0 {
            h.initial_modseq
        } else if h.file_seq <= 1 {
            1 // the folder's first log: mod-sequences start at 1
        } else if let Some(a) = acc {
            a // where the older file ends
        } else {
            return Some(UNKNOWN_FLOOR);
        };
        let records = (data.len() as u64).saturating_sub(u64::from(h.hdr_size)) / 8;
        acc = Some(start.saturating_add(records));
    }
    acc
}

struct Header {
    hdr_size: u16,
    file_seq: u32,
    initial_modseq: u64,
}

fn header(d: &[u8]) -> Option<Header> {
    if d.len() < 24 {
        return None;
    }
    let hdr_size = u16::from_le_bytes([d[2], d[3]]);
    if hdr_size < 24 || d.len() < usize::from(hdr_size) {
        return None;
    }
    let file_seq = u32::from_le_bytes(d[8..12].try_into().ok()?);
    let initial_modseq = if hdr_size >= 32 {
        u64::from_le_bytes(d[24..32].try_into().ok()?)
    } else {
        0
    };
    Some(Header {
        hdr_size,
        file_seq,
        initial_modseq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(file_seq: u32, initial_modseq: u64, records: usize) -> Vec<u8> {
        let mut d = vec![1u8, 3];
        d.extend_from_slice(&40u16.to_le_bytes());
        d.extend_from_slice(&7u32.to_le_bytes());
        d.extend_from_slice(&file_seq.to_le_bytes());
        d.extend_from_slice(&[0; 12]);
        d.extend_from_slice(&initial_modseq.to_le_bytes());
        d.resize(40, 0);
        d.resize(40 + records * 8, 0xab);
        d
    }

    #[test]
    fn bound_from_one_or_two_logs() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(modseq_bound(t.path()), None);
        std::fs::write(t.path().join("dovecot.index.log"), log(1, 0, 10)).unwrap();
        assert_eq!(modseq_bound(t.path()), Some(11));
        std::fs::write(t.path().join("dovecot.index.log"), log(5, 300, 10)).unwrap();
        assert_eq!(modseq_bound(t.path()), Some(310));
        // An older file: its start, with the newer file's own start the tighter one.
        std::fs::write(t.path().join("dovecot.index.log.2"), log(4, 200, 20)).unwrap();
        assert_eq!(modseq_bound(t.path()), Some(310));
        std::fs::write(t.path().join("dovecot.index.log"), log(5, 0, 10)).unwrap();
        assert_eq!(modseq_bound(t.path()), Some(230));
        // Unknown start and not the first log; a truncated header.
        std::fs::remove_file(t.path().join("dovecot.index.log.2")).unwrap();
        assert_eq!(modseq_bound(t.path()), Some(UNKNOWN_FLOOR));
        std::fs::write(t.path().join("dovecot.index.log"), [1u8, 3, 40]).unwrap();
        assert_eq!(modseq_bound(t.path()), Some(UNKNOWN_FLOOR));
    }
}
