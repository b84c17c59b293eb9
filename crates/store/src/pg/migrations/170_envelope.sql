-- IMAP's ENVELOPE of a blob, rendered at delivery (issue 18, body.rs `envelope`): the
-- rendering's version, then the octets. NULL for blobs stored before; IMAP then renders
-- their decoded envelopes.
ALTER TABLE blobs ADD COLUMN envelope BYTEA;
-- The blob's rendering copied per message row when it is inserted (envelopes.rs): the
-- first FETCH ENVELOPE of a mailbox reads its renderings in one index range scan,
-- without a lookup of the blob per message; in a table of its own, as
-- message_searchable, so that the messages rows stay narrow. Goes with its row. Rows
-- inserted before it have none (read through their blob then).
CREATE TABLE message_envelope (
    mailbox_id BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
);
