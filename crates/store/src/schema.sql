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

-- IMAP's compact index of a mailbox (issue 18, crates/imap/src/session/index.rs): a
-- cache of its messages' UIDs, flags, sizes, dates and MODSEQs at `modseq`, read by
-- the first SELECT after a start (with what changed since) instead of every message
-- row. Written without fsync; a missing or stale one only costs a full read.
CREATE TABLE IF NOT EXISTS mailbox_index (
    mailbox_id  INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    uidvalidity INTEGER NOT NULL,
    modseq      INTEGER NOT NULL,
    data        BLOB NOT NULL
);

-- IMAP's stored message cache (issue 18, crates/imap/src/session/cache.rs): per mailbox,
-- per kind (what is kept: a rendering of BODYSTRUCTURE), chunks of consecutive UIDs
-- holding each message's octets, valid while the mailbox has `uidvalidity`. Written
-- without fsync after IMAP read the messages from the store; a missing one costs a read.
CREATE TABLE IF NOT EXISTS message_cache (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    kind        INTEGER NOT NULL,
    chunk       INTEGER NOT NULL,
    uidvalidity INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, kind, chunk)
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
-- IMAP's BODYSTRUCTURE of a blob, rendered at delivery (issue 18, body.rs
-- `bodystructure`): keyed by the hash itself, so that a pass over a big mailbox reads it
-- with one seek per message, without `blob_info`. Blobs stored before it have none;
-- IMAP then renders from the MIME tree.
CREATE TABLE IF NOT EXISTS blob_bodystructure (
    hash BLOB PRIMARY KEY,             -- blobs.hash
    data BLOB NOT NULL                 -- the rendering's version, then the octets
) WITHOUT ROWID;
-- The searchable head of a blob (issue 18, searchables.rs): what header SEARCH compares,
-- made at delivery; keyed by the hash as blob_bodystructure. Blobs stored before it
-- have none; IMAP then decodes their heads.
CREATE TABLE IF NOT EXISTS blob_searchable (
    hash BLOB PRIMARY KEY,             -- blobs.hash
    data BLOB NOT NULL                 -- the record's version, then the record
) WITHOUT ROWID;
-- What SORT (DATE) and THREAD read of a blob (issue 18, sortkeys.rs), made at
-- delivery; keyed by the hash as blob_bodystructure, copied into messages.sortkeys.
CREATE TABLE IF NOT EXISTS blob_sortkeys (
    hash BLOB PRIMARY KEY,             -- blobs.hash
    data BLOB NOT NULL                 -- the record's version, then the record
) WITHOUT ROWID;
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
    -- The blob's sort keys (blob_sortkeys.data), copied the same way (issue 18,
    -- sortkeys.rs): SORT (DATE) and THREAD read a mailbox's in one range scan.
    sortkeys      BLOB,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);
-- The blob's searchable head (blob_searchable.data) copied per message row when it is
-- inserted (issue 18, searchables.rs): the first header SEARCH of a mailbox reads its
-- records in one range scan, not a seek by hash per message; beside the messages rows,
-- not in them, so that scans of the rows (SELECT, FETCH FLAGS) stay narrow. Goes with
-- its row (expunge, mailbox and account deletion). Rows inserted before it have none
-- (read through their blob then).
CREATE TABLE IF NOT EXISTS message_searchable (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    data       BLOB NOT NULL,          -- the record's version, then the record
    PRIMARY KEY (mailbox_id, uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
) WITHOUT ROWID;
-- IMAP's ENVELOPE of a blob, rendered at delivery (issue 18, envelopes.rs), keyed by
-- the hash as blob_bodystructure, and its copy per message row, kept as
-- message_searchable is (beside the messages rows, so that their scans stay narrow):
-- the first FETCH ENVELOPE of a mailbox reads its renderings in one range scan. Blobs
-- and rows stored before them have none (IMAP then renders the decoded envelope).
CREATE TABLE IF NOT EXISTS blob_envelope (
    hash BLOB PRIMARY KEY,             -- blobs.hash
    data BLOB NOT NULL                 -- the rendering's version, then the octets
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_envelope (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    data       BLOB NOT NULL,          -- the rendering's version, then the octets
    PRIMARY KEY (mailbox_id, uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
) WITHOUT ROWID;
-- The blob's BODYSTRUCTURE rendering (blob_bodystructure.data) copied per message row
-- when it is inserted (issue 18, bodystructures.rs), kept as message_envelope is: the
-- first FETCH BODYSTRUCTURE of a mailbox reads its renderings in one range scan. Until
-- 2026-12 a `messages.bodystructure` column; the rendering was about half a row, so
-- every other scan of the rows read it too (moved here once when a store is opened).
CREATE TABLE IF NOT EXISTS message_bodystructure (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    data       BLOB NOT NULL,          -- the rendering's version, then the octets
    PRIMARY KEY (mailbox_id, uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
) WITHOUT ROWID;
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

-- POP3 sizes (RFC 1939 LIST/STAT give the exact octets RETR sends, as CRLF lines): per
-- blob_info row, the LFs not preceded by CR and whether the octets end with LF
-- (line_ends.rs). Blobs stored before this table get a row on their first POP3 listing.
CREATE TABLE IF NOT EXISTS blob_lines (
    id      INTEGER PRIMARY KEY,       -- blob_info.id
    bare_lf INTEGER NOT NULL,
    ends_lf INTEGER NOT NULL
);

-- Web portal (web.rs): sessions, operators, quota requests, usage history, delivery counts.
-- A session is known by the BLAKE3 of its cookie token, so a copy of the database does not
-- hold usable cookies; every process and node reading this store agrees on it.
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL,
    csrf       TEXT NOT NULL,          -- the token every form and API write must carry
    created    INTEGER NOT NULL,
    expires    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS web_sessions_account ON web_sessions (account_id);

-- Operators: `letterbox admin add ADDRESS [--domain DOMAIN]`. domain '' = every domain.
CREATE TABLE IF NOT EXISTS web_admins (
    address TEXT NOT NULL,
    domain  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (address, domain)
) WITHOUT ROWID;

-- Requests for more room; one open ('pending') request per account.
CREATE TABLE IF NOT EXISTS quota_requests (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL,
    address      TEXT NOT NULL,        -- kept for the audit trail once the account is gone
    size         INTEGER NOT NULL,     -- octets asked for (the new limit)
    reason       TEXT NOT NULL,
    created      INTEGER NOT NULL,
    status       TEXT NOT NULL,        -- pending | approved | denied
    decided_by   TEXT,
    decided_at   INTEGER,
    granted_size INTEGER,
    note         TEXT                  -- the reason given for a denial
);
CREATE UNIQUE INDEX IF NOT EXISTS quota_requests_open ON quota_requests (account_id) WHERE status = 'pending';

-- One usage sample per account per day (UTC day number), kept for a year.
CREATE TABLE IF NOT EXISTS usage_samples (
    account_id INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    used       INTEGER NOT NULL,
    lim        INTEGER,                -- the limit in force then; NULL: unlimited
    PRIMARY KEY (account_id, day)
) WITHOUT ROWID;

-- Per domain and day: messages delivered, refused at RCPT/DATA (unknown user, quota,
-- disabled), and bounced (refused after acceptance: quota at end of data).
CREATE TABLE IF NOT EXISTS domain_counts (
    domain    TEXT NOT NULL,
    day       INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    refused   INTEGER NOT NULL DEFAULT 0,
    bounced   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, day)
) WITHOUT ROWID;

-- Accounts an operator disabled: no login anywhere, mail refused temporarily (450).
CREATE TABLE IF NOT EXISTS account_disabled (
    account_id INTEGER PRIMARY KEY,
    since      INTEGER NOT NULL,
    by_whom    TEXT NOT NULL
);

-- Application passwords (issue 14: web portal): named, each for one set of protocols
-- (bit 1 IMAP, 2 POP3, 4 SMTP submission). `selector` is the first characters of the
-- generated password, kept in clear so that a login verifies only the one candidate;
-- `hash` is the whole password under the account password policy (Argon2id).
CREATE TABLE IF NOT EXISTS app_passwords (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    selector   TEXT NOT NULL,
    hash       TEXT NOT NULL,
    protocols  INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    last_used  INTEGER,
    UNIQUE (account_id, name)
);
CREATE INDEX IF NOT EXISTS app_passwords_selector ON app_passwords (account_id, selector);

-- Recent successful logins (issue 14: web portal), the last `[auth] login_history`
-- per account. `app_password` names the application password used, NULL for the
-- account password.
CREATE TABLE IF NOT EXISTS login_history (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at           INTEGER NOT NULL,
    remote       TEXT NOT NULL,
    protocol     TEXT NOT NULL,
    app_password TEXT
);
CREATE INDEX IF NOT EXISTS login_history_account ON login_history (account_id, id);

-- API tokens for scripts (issue 14: web portal), with operator rights on /api/.
-- `selector` as for app passwords; `hash` is a SHA-256 of the whole token (256 random
-- bits: nothing to brute-force, so no slow hash on every request).
CREATE TABLE IF NOT EXISTS api_tokens (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    selector  TEXT NOT NULL,
    hash      BLOB NOT NULL,
    created   INTEGER NOT NULL,
    last_used INTEGER
);
CREATE INDEX IF NOT EXISTS api_tokens_selector ON api_tokens (selector);
-- DKIM signing keys (issue 12; RFC 6376, RFC 8463): each domain's keys, made in pairs
-- (Ed25519 and RSA). `state` is 'active' (signing), 'published' (made by a rotation,
-- its DNS record published but not signing yet) or 'retired' (no longer signing, its
-- record may still be published for a few days). Removing the domain removes its keys.
CREATE TABLE IF NOT EXISTS dkim_keys (
    domain_id   INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector    TEXT NOT NULL,
    algorithm   TEXT NOT NULL,      -- 'ed25519' | 'rsa'
    private_key BLOB NOT NULL,      -- ed25519: PKCS#8 DER; rsa: PKCS#1 DER
    public_key  BLOB NOT NULL,      -- what the DNS record's p= carries (base64 of it)
    created     INTEGER NOT NULL,   -- seconds since the epoch
    state       TEXT NOT NULL,
    changed     INTEGER NOT NULL,   -- when state last changed
    PRIMARY KEY (domain_id, selector)
);
-- Every change to the key set (a cascade from a removed domain included) moves this
-- counter, so a signer that cached parsed keys sees the change with one cheap read.
CREATE TRIGGER IF NOT EXISTS dkim_keys_ins AFTER INSERT ON dkim_keys BEGIN
    INSERT INTO meta (key, value) VALUES ('dkim_version', 1)
        ON CONFLICT(key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS dkim_keys_upd AFTER UPDATE ON dkim_keys BEGIN
    INSERT INTO meta (key, value) VALUES ('dkim_version', 1)
        ON CONFLICT(key) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS dkim_keys_del AFTER DELETE ON dkim_keys BEGIN
    INSERT INTO meta (key, value) VALUES ('dkim_version', 1)
        ON CONFLICT(key) DO UPDATE SET value = value + 1;
END;

-- Outbound queue (issue 12): submitted messages waiting for remote delivery. One row per
-- message; the scheduler picks due rows through queue_due (next_attempt), never loading
-- the whole queue. The octets live in queue_data, inline in the transaction, so that the
-- commit's fsync covers them before the submission hears 250.
CREATE TABLE IF NOT EXISTS queue_messages (
    id           INTEGER PRIMARY KEY,
    sender       TEXT NOT NULL,            -- reverse-path, '' for the null sender
    account_id   INTEGER,                  -- the submitting account (limits, logs)
    created      INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    envid        TEXT,                     -- RFC 3461 ENVID
    ret_full     INTEGER NOT NULL DEFAULT 0, -- RFC 3461 RET=FULL
    smtputf8     INTEGER NOT NULL DEFAULT 0,
    body_8bit    INTEGER NOT NULL DEFAULT 0, -- BODY=8BITMIME declared
    held         INTEGER NOT NULL DEFAULT 0,
    warned       INTEGER NOT NULL DEFAULT 0, -- delay notice sent
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_due ON queue_messages (next_attempt) WHERE held = 0;
CREATE TABLE IF NOT EXISTS queue_data (
    id   INTEGER PRIMARY KEY REFERENCES queue_messages(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_rcpts (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    orcpt      TEXT,                       -- RFC 3461 ORCPT, as given
    notify     INTEGER NOT NULL DEFAULT 0, -- RFC 3461 NOTIFY bits (queue.rs)
    status     INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 delivered, 2 failed
    last_reply TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_rcpts_message ON queue_rcpts (message_id);

-- Outbound abuse control (issue 12): what each account sent recently (per-hour and
-- per-day limits), and the accounts an operator put on hold.
CREATE TABLE IF NOT EXISTS outbound_sent (
    account_id INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    rcpts      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbound_sent_account ON outbound_sent (account_id, at);
CREATE TABLE IF NOT EXISTS outbound_holds (
    account_id INTEGER PRIMARY KEY
);

-- Sieve (issue 13, RFC 5228 / RFC 5804): each account's scripts, at most one active.
CREATE TABLE IF NOT EXISTS sieve_scripts (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    script     BLOB NOT NULL,
    active     INTEGER NOT NULL DEFAULT 0,
    updated    INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

-- The version of each account's Sieve scripts (issue 13), changed by every put,
-- activate, delete and rename, so that a server keeps the compiled active script until
-- it changes (`Backend::sieve_version`). Versions come from one counter that only grows
-- (`sieve_generation`, one row), so that an account made under the id of a deleted one
-- never meets an old version; no row: version 0.
CREATE TABLE IF NOT EXISTS sieve_versions (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    version    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sieve_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);

-- Sieve vacation (RFC 5230) and duplicate tracking: one row per (account, id) until it
-- expires, so that a sender gets one reply per :days.
CREATE TABLE IF NOT EXISTS sieve_seen (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;

-- Import (issue 16, import.rs): the POP3 UIDL a message had on the server it was
-- imported from, served by POP3 UIDL instead of the generated one so that
-- leave-on-server clients download nothing again.
CREATE TABLE IF NOT EXISTS pop3_uidl (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    uidl       TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
-- Import (issue 16): what each import run has brought in, by a key naming the message
-- in its source (folder + UIDVALIDITY + UID for Maildir), so that a second run after an
-- interruption imports the rest and never a message twice.
CREATE TABLE IF NOT EXISTS imported (
    account_id INTEGER NOT NULL,
    key        TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
) WITHOUT ROWID;
-- Import (issue 16): runs begun and not finished, so that a rerun of an interrupted
-- import into a now non-empty account is not refused as a merge.
CREATE TABLE IF NOT EXISTS import_runs (
    account_id INTEGER NOT NULL,
    source     TEXT NOT NULL,
    finished   INTEGER,
    PRIMARY KEY (account_id, source)
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

-- Saving space (issue 15, strip.rs): what attachment removal and Trash/Junk expiry took
-- away from each account, and when, for the user to see (portal, `letterbox space log`)
-- and for the usage history's "freed" figures. Kept as long as the usage history.
CREATE TABLE IF NOT EXISTS space_log (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,       -- seconds since the epoch
    kind       TEXT NOT NULL,          -- 'strip' | 'expire'
    mailbox    TEXT NOT NULL,
    uid        INTEGER,                -- strip: the replaced message's old UID
    new_uid    INTEGER,                -- strip: the stripped copy's UID
    messages   INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,       -- octets freed
    detail     TEXT NOT NULL           -- strip: the parts removed and the rule
);
CREATE INDEX IF NOT EXISTS space_log_account ON space_log (account_id, at);

-- Automatic attachment removal (issue 15, strip.rs): a domain's or an account's own
-- policy. older_than_days 0: off for that scope (a domain's policy then does not apply).
CREATE TABLE IF NOT EXISTS strip_policy (
    scope           TEXT PRIMARY KEY,  -- an account address, or a domain name
    older_than_days INTEGER NOT NULL,
    larger_than     INTEGER NOT NULL,  -- octets of an attachment's encoded body
    folders         TEXT NOT NULL      -- folder names or special-use names, comma-separated
) WITHOUT ROWID;

-- When `serve`'s periodic tasks last ran (issue 15: the daily attachment policies), so a
-- restart neither repeats nor skips a day.
CREATE TABLE IF NOT EXISTS maintenance_runs (
    task TEXT PRIMARY KEY,
    at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Single-instance storage of large MIME parts (issue 15, parts.rs): each large
-- non-text part's encoded octets are stored once, as a file `data_dir/parts/XX/HASH`
-- (zstd), however many bodies carry it. `refcount`: the records naming the part in
-- `blob_split` maps (0: awaiting garbage collection).
CREATE TABLE IF NOT EXISTS parts (
    hash     BLOB PRIMARY KEY,         -- BLAKE3 of the part's encoded octets
    size     INTEGER NOT NULL,         -- its octets, uncompressed
    refcount INTEGER NOT NULL
) WITHOUT ROWID;
-- A body stored split: its skeleton (the body without its large parts, zstd) and the
-- map of where each part goes (parts.rs). Such a body has no `blob_data` row and no
-- blob file; the row leaves with its `blobs` row, in the same transaction.
CREATE TABLE IF NOT EXISTS blob_split (
    id       INTEGER PRIMARY KEY,
    hash     BLOB NOT NULL UNIQUE,     -- blobs.hash
    skeleton BLOB NOT NULL,
    parts    BLOB NOT NULL
);
-- Message heads (issue 18, heads.rs): per blob_info row, the envelope, sent date, top-level
-- header search text and sort fields, so that SEARCH FROM/SUBJECT, SORT and THREAD over a
-- big mailbox read neither the MIME tree nor the compressed body text. Blobs stored before
-- this table get their row on their first such read.
CREATE TABLE IF NOT EXISTS blob_head (
    id   INTEGER PRIMARY KEY,          -- blob_info.id
    head BLOB NOT NULL                 -- letterbox_message::ParsedMessage::encode_head
);

-- Outbound queue (issue 12): the highest queue ID ever given, so that an ID is never
-- reused. A delivery that ends after its entry was removed, or `queue remove ID` typed
-- late, must never touch a newer message (SQLite reuses the largest rowid once its row
-- is deleted).
CREATE TABLE IF NOT EXISTS queue_seq (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    last INTEGER NOT NULL
);

-- Blob store holds and deletion queue (issue 17, `objects.rs`), used when blobs live in
-- an object store (`[blobs] url`). A hold is committed before an object is uploaded for
-- a delivery and dropped by the transaction that references it; collection never
-- deletes a held object. An object whose last reference went is queued, and collection
-- deletes it (the bucket is never listed).
CREATE TABLE IF NOT EXISTS object_holds (
    kind  INTEGER NOT NULL,       -- 0: a body (blobs/), 1: a shared part (parts/)
    hash  BLOB NOT NULL,
    since INTEGER NOT NULL,       -- unix seconds
    PRIMARY KEY (kind, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS object_deletions (
    kind INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (kind, hash)
) WITHOUT ROWID;
