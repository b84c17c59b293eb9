-- Web portal (issue 14) on PostgreSQL (issue 17): as the embedded schema's tables of
-- the same names (web.rs). A session is known by the BLAKE3 of its cookie token.
CREATE TABLE web_sessions (
    token_hash BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL,
    csrf       TEXT NOT NULL,
    created    BIGINT NOT NULL,
    expires    BIGINT NOT NULL
);
CREATE INDEX web_sessions_account ON web_sessions (account_id);

-- Operators; domain '' = every domain.
CREATE TABLE web_admins (
    address TEXT NOT NULL,
    domain  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (address, domain)
);

-- Requests for more room; one open ('pending') request per account.
CREATE TABLE quota_requests (
    id           BIGSERIAL PRIMARY KEY,
    account_id   BIGINT NOT NULL,
    address      TEXT NOT NULL,        -- kept for the audit trail once the account is gone
    size         BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    created      BIGINT NOT NULL,
    status       TEXT NOT NULL,        -- pending | approved | denied
    decided_by   TEXT,
    decided_at   BIGINT,
    granted_size BIGINT,
    note         TEXT
);
CREATE UNIQUE INDEX quota_requests_open ON quota_requests (account_id) WHERE status = 'pending';

CREATE TABLE usage_samples (
    account_id BIGINT NOT NULL,
    day        BIGINT NOT NULL,
    used       BIGINT NOT NULL,
    lim        BIGINT,                 -- NULL: unlimited
    PRIMARY KEY (account_id, day)
);

CREATE TABLE domain_counts (
    domain    TEXT NOT NULL,
    day       BIGINT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    refused   BIGINT NOT NULL DEFAULT 0,
    bounced   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, day)
);

CREATE TABLE account_disabled (
    account_id BIGINT PRIMARY KEY,
    since      BIGINT NOT NULL,
    by_whom    TEXT NOT NULL
);
