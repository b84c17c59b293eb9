-- Object store holds and deletion queue on PostgreSQL (issue 17, pg/objects.rs), the
-- same tables as the embedded store's (schema.sql): used when blobs live in an object
-- store (`[blobs] url`). A hold is committed before an object is uploaded for a
-- delivery and dropped by the transaction that references it; collection never deletes
-- a held object. An object whose last reference went is queued, and collection deletes
-- it (the bucket is never listed).
CREATE TABLE object_holds (
    kind  INTEGER NOT NULL,       -- 0: a body (blobs/), 1: a shared part (parts/)
    hash  BYTEA NOT NULL,
    since BIGINT NOT NULL,        -- unix seconds
    PRIMARY KEY (kind, hash)
);
CREATE INDEX object_holds_since ON object_holds (since);

CREATE TABLE object_deletions (
    kind INTEGER NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (kind, hash)
);
