-- Letterbox on PostgreSQL: the core schema (issue 17). Domains, accounts, aliases,
-- mailboxes, messages, blobs, expunged UIDs, Sieve scripts. The same invariants as the
-- embedded store (lib.rs); the auxiliary tables (queue, web portal, app passwords, API
-- tokens, DKIM, logins, policies, import) come in migrations numbered from 100.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE domains (
    id   BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE accounts (
    id             BIGSERIAL PRIMARY KEY,
    address        TEXT NOT NULL UNIQUE,
    domain_id      BIGINT NOT NULL REFERENCES domains(id),
    password_hash  TEXT NOT NULL,
    quota_limit    BIGINT,             -- NULL: the configured default; -1: unlimited
    quota_used     BIGINT NOT NULL DEFAULT 0,
    warn_level     INTEGER NOT NULL DEFAULT 0,
    warn_pending   INTEGER NOT NULL DEFAULT 0,
    pop3_retention TEXT,
    created        BIGINT NOT NULL
);

CREATE TABLE aliases (
    address TEXT NOT NULL,              -- "user@domain", or "@domain" for a catch-all
    target  TEXT NOT NULL,
    PRIMARY KEY (address, target)
);

-- uidnext and highestmodseq are taken by `UPDATE mailboxes ... RETURNING` in the
-- transaction that inserts the message (pg/tx.rs): the row stays locked until commit,
-- so commit order is MODSEQ order within a mailbox.
CREATE TABLE mailboxes (
    id            BIGSERIAL PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    uidvalidity   BIGINT NOT NULL,
    uidnext       BIGINT NOT NULL DEFAULT 1,
    highestmodseq BIGINT NOT NULL DEFAULT 1,
    first_recent  BIGINT NOT NULL DEFAULT 1,
    special_use   TEXT,
    UNIQUE (account_id, name)
);

CREATE TABLE subscriptions (
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);

-- One row per distinct body (BLAKE3 of its octets). `data`: the zstd octets of a body
-- up to `[store] inline_max`, so that the commit holds it; larger bodies are blob files
-- (or objects) of `BlobDir`. The parse is stored beside it (pg/body.rs).
CREATE TABLE blobs (
    hash      BYTEA PRIMARY KEY,
    size      BIGINT NOT NULL,
    refcount  BIGINT NOT NULL,          -- 0: awaiting garbage collection
    data      BYTEA,                    -- zstd, inline; NULL: in the blob directory
    structure BYTEA NOT NULL,           -- ParsedMessage::encode, no search text
    header    BYTEA NOT NULL,           -- top-level header octets
    search    BYTEA NOT NULL,           -- search text, postcard + zstd
    grams     BYTEA NOT NULL,           -- trigram filter of the search text (grams.rs)
    bare_lf   BIGINT NOT NULL,          -- line_ends.rs
    ends_lf   BOOLEAN NOT NULL
);
CREATE INDEX blobs_unreferenced ON blobs (hash) WHERE refcount <= 0;

CREATE TABLE messages (
    mailbox_id    BIGINT NOT NULL,
    uid           BIGINT NOT NULL,
    modseq        BIGINT NOT NULL,
    flags         INTEGER NOT NULL,
    keywords      TEXT NOT NULL DEFAULT '',
    internal_date BIGINT NOT NULL,
    size          BIGINT NOT NULL,
    prefix        BYTEA NOT NULL,
    blob          BYTEA NOT NULL REFERENCES blobs(hash),
    pop3_seen_at  BIGINT,
    saved         BIGINT NOT NULL,      -- when saved into this mailbox (expiry)
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_blob ON messages (blob);
CREATE INDEX messages_pop3 ON messages (pop3_seen_at) WHERE pop3_seen_at IS NOT NULL;

CREATE TABLE expunged (
    mailbox_id BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    modseq     BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

CREATE TABLE sieve_scripts (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    script     BYTEA NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT FALSE,
    updated    BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE sieve_seen (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    expires    BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);
