-- IMAP's compact index of a mailbox (issue 18, crates/imap/src/session/index.rs): a
-- cache of its messages' UIDs, flags, sizes, dates and MODSEQs at `modseq`, read by
-- the first SELECT after a start (with what changed since) instead of every message
-- row. A missing or stale one only costs a full read.
CREATE TABLE mailbox_index (
    mailbox_id  BIGINT PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    uidvalidity BIGINT NOT NULL,
    modseq      BIGINT NOT NULL,
    data        BYTEA NOT NULL
);
