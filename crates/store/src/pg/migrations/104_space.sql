-- Trash/Junk expiry policies, attachment-removal policies, the space log and the
-- periodic tasks' last runs (issue 15) on PostgreSQL (issue 17): as the embedded
-- schema's tables of the same names.
CREATE TABLE expire_policy (
    scope TEXT PRIMARY KEY,            -- an account address, or a domain name
    trash BIGINT,                      -- days; 0: never; NULL: inherited
    junk  BIGINT
);

CREATE TABLE space_log (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,          -- 'strip' | 'expire'
    mailbox    TEXT NOT NULL,
    uid        BIGINT,
    new_uid    BIGINT,
    messages   BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX space_log_account ON space_log (account_id, at);

CREATE TABLE strip_policy (
    scope           TEXT PRIMARY KEY,
    older_than_days BIGINT NOT NULL,
    larger_than     BIGINT NOT NULL,
    folders         TEXT NOT NULL      -- names or special-use names, one per line
);

-- When a periodic task last ran; maintenance_due's upsert lets one node of N win each
-- interval (pg/space.rs).
CREATE TABLE maintenance_runs (
    task TEXT PRIMARY KEY,
    at   BIGINT NOT NULL
);
