-- The blob's BODYSTRUCTURE rendering (blobs.bodystructure) copied per message row into a
-- table of its own, as message_envelope (migration 170), instead of the
-- messages.bodystructure column of migration 126 (issue 18, crates/store/src/
-- bodystructures.rs says why): the rendering was about half of each row, and every other scan
-- of the rows read it too. The copies made so far move; the column goes.
CREATE TABLE message_bodystructure (
    mailbox_id BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
);
INSERT INTO message_bodystructure (mailbox_id, uid, data)
    SELECT mailbox_id, uid, bodystructure FROM messages WHERE bodystructure IS NOT NULL;
ALTER TABLE messages DROP COLUMN bodystructure;
