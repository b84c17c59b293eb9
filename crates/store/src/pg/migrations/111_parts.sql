-- Single-instance storage of large MIME parts on PostgreSQL (issues 15 and 17,
-- pg/parts.rs; the rules are parts.rs's): the same two tables as the embedded store's.
-- A body stored split keeps its `blobs` row (size, parse, references; `data` NULL) and
-- a `blob_split` row: its skeleton (the body without its large parts, compressed with
-- the mail dictionary, mailpack.rs) and its map (which part goes where, parts.rs).
-- A part's octets are one file under `data_dir/parts` or one object under `parts/`.
CREATE TABLE parts (
    hash     BYTEA PRIMARY KEY,   -- BLAKE3 of the part's octets as transmitted
    size     BIGINT NOT NULL,
    refcount BIGINT NOT NULL      -- map records naming it; 0: awaiting collection
);
CREATE INDEX parts_unreferenced ON parts (hash) WHERE refcount <= 0;

CREATE TABLE blob_split (
    hash     BYTEA PRIMARY KEY,   -- the body's blobs.hash; deleted with that row
    skeleton BYTEA NOT NULL,
    parts    BYTEA NOT NULL
);
