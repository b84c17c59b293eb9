-- IMAP's stored message cache (issue 18, crates/imap/src/session/cache.rs): per mailbox,
-- per kind (what is kept: a rendering of BODYSTRUCTURE), chunks of consecutive UIDs
-- holding each message's octets, valid while the mailbox has `uidvalidity`. Written
-- without fsync after IMAP read the messages from the store; a missing one costs a read.
CREATE TABLE message_cache (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    kind        SMALLINT NOT NULL,
    chunk       BIGINT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, kind, chunk)
);
