-- Login blocks, application passwords, login history and API tokens (issue 14) on
-- PostgreSQL (issue 17): as the embedded schema's tables of the same names.
CREATE TABLE auth_blocks (
    key    TEXT PRIMARY KEY,           -- "ip:ADDR" or "user:ADDRESS"
    until  BIGINT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE app_passwords (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    selector   TEXT NOT NULL,
    hash       TEXT NOT NULL,
    protocols  BIGINT NOT NULL,
    created    BIGINT NOT NULL,
    last_used  BIGINT,
    UNIQUE (account_id, name)
);
CREATE INDEX app_passwords_selector ON app_passwords (account_id, selector);

CREATE TABLE login_history (
    id           BIGSERIAL PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at           BIGINT NOT NULL,
    remote       TEXT NOT NULL,
    protocol     TEXT NOT NULL,
    app_password TEXT
);
CREATE INDEX login_history_account ON login_history (account_id, id);

CREATE TABLE api_tokens (
    id        BIGSERIAL PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    selector  TEXT NOT NULL,
    hash      BYTEA NOT NULL,
    created   BIGINT NOT NULL,
    last_used BIGINT
);
CREATE INDEX api_tokens_selector ON api_tokens (selector);
