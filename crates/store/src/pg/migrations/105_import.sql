-- Import with identities kept (issue 16) on PostgreSQL (issue 17): as the embedded
-- schema's pop3_uidl, imported and import_runs.
CREATE TABLE pop3_uidl (
    mailbox_id BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    uidl       TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE TABLE imported (
    account_id BIGINT NOT NULL,
    key        TEXT NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE TABLE import_runs (
    account_id BIGINT NOT NULL,
    source     TEXT NOT NULL,
    finished   BIGINT,
    PRIMARY KEY (account_id, source)
);
