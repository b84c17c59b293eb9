-- Letterbox embedded store, schema version 1. See lib.rs for the invariants.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS domains (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS accounts (
    id             INTEGER PRIMARY KEY,
    address        TEXT NOT NULL UNIQUE,
    domain_id      INTEGER NOT NULL REFERENCES domains(id),
    password_hash  TEXT NOT NULL,
    quota_limit    INTEGER,            -- NULL: the configured default; -1: unlimited
    quota_used     INTEGER NOT NULL DEFAULT 0,
    warn_level     INTEGER NOT NULL DEFAULT 0,   -- highest warning threshold reached
    warn_pending   INTEGER NOT NULL DEFAULT 0,   -- threshold reached whose warning is unsent
    pop3_retention TEXT,               -- NULL: the configured default
    created        INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS aliases (
    address TEXT NOT NULL,              -- "user@domain", or "@domain" for a catch-all
    target  TEXT NOT NULL,
    PRIMARY KEY (address, target)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS mailboxes (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    first_recent  INTEGER NOT NULL DEFAULT 1,  -- UIDs from here on are \Recent
    special_use   TEXT,
    UNIQUE (account_id, name)
);

CREATE TABLE IF NOT EXISTS subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS blobs (
    hash      BLOB PRIMARY KEY,        -- BLAKE3 of the uncompressed octets
    size      INTEGER NOT NULL,
    refcount  INTEGER NOT NULL,        -- 0: awaiting garbage collection
    structure BLOB NOT NULL,           -- letterbox_message::ParsedMessage, encoded, no search text
    search    BLOB                     -- its search text (headers, body), postcard + zstd
) WITHOUT ROWID;

-- What FETCH and SEARCH read of a blob, one table per use so that a pass over a big
-- mailbox reads only what it needs (and apart from `blobs`: a WITHOUT ROWID table wants
-- small rows, its seeks compare whole rows). Blobs stored before these tables have a
-- `structure`/`search` in `blobs` and no rows here; the first read parses them again.
CREATE TABLE IF NOT EXISTS blob_info (
    id        INTEGER PRIMARY KEY,
    hash      BLOB NOT NULL UNIQUE,    -- blobs.hash
    structure BLOB NOT NULL            -- letterbox_message::ParsedMessage, encoded, no search text
);
CREATE TABLE IF NOT EXISTS blob_header (
    id     INTEGER PRIMARY KEY,        -- blob_info.id
    header BLOB NOT NULL               -- the top-level header's octets (FETCH header fields)
);
CREATE TABLE IF NOT EXISTS blob_grams (
    id    INTEGER PRIMARY KEY,         -- blob_info.id
    grams BLOB NOT NULL                -- trigram filter of the search text (grams.rs)
);
CREATE TABLE IF NOT EXISTS blob_search (
    id     INTEGER PRIMARY KEY,        -- blob_info.id
    search BLOB NOT NULL               -- search text (headers, body), postcard + zstd
);

-- The compressed octets of small blobs (up to `[store] inline_max`), kept here so that
-- the commit that references them makes them durable with its one fsync; larger blobs
-- are files (blob.rs). A rowid table, so that rows of a few KiB share pages.
CREATE TABLE IF NOT EXISTS blob_data (
    id   INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,         -- blobs.hash
    data BLOB NOT NULL                 -- zstd, as a blob file would hold it
);

CREATE TABLE IF NOT EXISTS messages (
    mailbox_id    INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    flags         INTEGER NOT NULL,
    keywords      TEXT NOT NULL DEFAULT '',
    internal_date INTEGER NOT NULL,
    size          INTEGER NOT NULL,    -- RFC822.SIZE: length(prefix) + blob size
    prefix        BLOB NOT NULL,       -- per-recipient header lines prepended at delivery
    blob          BLOB NOT NULL REFERENCES blobs(hash),
    pop3_seen_at  INTEGER,             -- first POP3 retrieval (retention policy)
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS messages_pop3 ON messages (pop3_seen_at) WHERE pop3_seen_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged (mailbox_id, modseq);

-- Temporary blocks after repeated failed logins: key is "ip:ADDR" or "user:ADDRESS".
CREATE TABLE IF NOT EXISTS auth_blocks (
    key    TEXT PRIMARY KEY,
    until  INTEGER NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;

-- Trash/Junk expiry (issue 15): when each message was saved into its mailbox (delivery,
-- APPEND, COPY, MOVE), which autoexpunge counts from, as Dovecot's save date does; the
-- internal date is no use, since COPY and MOVE keep it. Messages stored before this
-- table have no row: the first expiry run gives them one (expire.rs).
CREATE TABLE IF NOT EXISTS message_saved (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    saved      INTEGER NOT NULL,       -- seconds since the epoch
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

-- Trash/Junk expiry (issue 15): a domain's or an account's own ages in days
-- (0: never; NULL: inherited from the domain, then from `[expire]`).
CREATE TABLE IF NOT EXISTS expire_policy (
    scope TEXT PRIMARY KEY,            -- an account address, or a domain name
    trash INTEGER,
    junk  INTEGER
) WITHOUT ROWID;
