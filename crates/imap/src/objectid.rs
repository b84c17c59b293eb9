//! OBJECTID (RFC 8474): the identifiers of mailboxes, messages and threads, all derived
//! from what the store already keeps, so nothing new is stored.
//!
//! - `MAILBOXID` is `F` + the mailbox's UIDVALIDITY + `-` + its row id. Both survive
//!   RENAME; UIDVALIDITY comes from a store-wide counter and is never given twice, so a
//!   deleted and re-created mailbox gets a new MAILBOXID.
//! - `EMAILID` is `M` + the first 96 bits of the message's blob name (BLAKE3 of its
//!   octets) + its INTERNALDATE in hex. COPY and MOVE keep both, so the copy has the same
//!   EMAILID (RFC 8474 5.1); identical octets delivered in the same second share one,
//!   which the RFC allows for identical messages.
//! - `THREADID` is `T` + 96 bits of BLAKE3 of the thread's root message ID as the message
//!   itself names it: the first ID of `References:`, else of `In-Reply-To:`, else its own
//!   `Message-ID:` (a message without any of them is a thread of its own, named after its
//!   EMAILID). It depends only on the message, so it never changes (RFC 8474 5.2), and
//!   replies from mailers that keep the first `References:` entry (RFC 5322 3.6.4) share
//!   their thread's THREADID. A reply that names only its parent in `In-Reply-To:` gets
//!   its parent's Message-ID as root: threads whose members lack `References:` can split.
//!   THREAD=REFERENCES (which sees the whole mailbox) is the better grouping for display.

use letterbox_message::{message_ids, ParsedMessage};
use letterbox_store::{BlobId, MessageMeta};

pub fn mailbox_id(id: i64, uidvalidity: u32) -> String {
    format!("F{uidvalidity}-{id}")
}

pub fn email_id(m: &MessageMeta) -> String {
    format!("M{}{:x}", &m.blob.hex()[..24], m.internal_date.max(0))
}

pub fn thread_id(p: &ParsedMessage, m: &MessageMeta) -> String {
    let env = &p.envelope;
    let root = p
        .sort
        .references
        .first()
        .cloned()
        .or_else(|| {
            env.in_reply_to
                .as_deref()
                .and_then(|v| message_ids(v).into_iter().next())
        })
        .or_else(|| {
            env.message_id
                .as_deref()
                .and_then(|v| message_ids(v).into_iter().next())
        })
        .unwrap_or_else(|| email_id(m));
    format!("T{}", &BlobId::of(root.as_bytes()).hex()[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(blob: &[u8], date: i64) -> MessageMeta {
        MessageMeta {
            uid: 1,
            modseq: 1,
            flags: Default::default(),
            keywords: vec![],
            internal_date: date,
            size: 1,
            blob: BlobId::of(blob),
            prefix_len: 0,
            recent: false,
        }
    }

    fn is_objectid(s: &str) -> bool {
        (1..=255).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn ids_follow_the_grammar_and_the_thread_root() {
        assert_eq!(mailbox_id(7, 1700000000), "F1700000000-7");
        let a = meta(b"x", 1_700_000_000);
        assert!(is_objectid(&email_id(&a)) && email_id(&a).starts_with('M'));
        assert_eq!(email_id(&a), email_id(&meta(b"x", 1_700_000_000)));
        assert_ne!(email_id(&a), email_id(&meta(b"y", 1_700_000_000)));
        assert_ne!(email_id(&a), email_id(&meta(b"x", 1_700_000_001)));
        let root = letterbox_message::parse(b"Message-ID: <root@x>\r\n\r\nhi\r\n");
        let reply = letterbox_message::parse(
            b"Message-ID: <r2@x>\r\nReferences: <root@x> <r1@x>\r\nIn-Reply-To: <r1@x>\r\n\r\nhi\r\n",
        );
        let first =
            letterbox_message::parse(b"Message-ID: <r1@x>\r\nIn-Reply-To: <root@x>\r\n\r\n");
        let alone = letterbox_message::parse(b"Subject: x\r\n\r\nhi\r\n");
        let t = thread_id(&root, &a);
        assert!(is_objectid(&t) && t.starts_with('T'));
        assert_eq!(thread_id(&reply, &a), t);
        assert_eq!(thread_id(&first, &a), t);
        assert_ne!(thread_id(&alone, &a), t);
        assert_ne!(thread_id(&alone, &a), thread_id(&alone, &meta(b"y", 1)));
    }
}
