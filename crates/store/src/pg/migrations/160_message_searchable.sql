-- The blob's searchable head (blobs.searchable) copied per message row when it is
-- inserted (issue 18, searchables.rs): the first header SEARCH of a mailbox reads its
-- records in one index range scan, without a lookup of the blob per message; in a table
-- of its own so that the messages rows stay narrow. Goes with its row. Rows inserted
-- before it have none (read through their blob then).
CREATE TABLE message_searchable (
    mailbox_id BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
);
