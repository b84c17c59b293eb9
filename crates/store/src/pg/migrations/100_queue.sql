-- Outbound queue (issue 12) on PostgreSQL (issue 17): as the embedded schema's
-- queue_messages / queue_data / queue_rcpts / outbound_sent / outbound_holds, plus a
-- lease so that with N nodes one due entry is taken by one node at a time (pg/queue.rs).
-- IDs come from a sequence, which never gives a number twice (no queue_seq needed).
CREATE TABLE queue_messages (
    id           BIGSERIAL PRIMARY KEY,
    sender       TEXT NOT NULL,            -- reverse-path, '' for the null sender
    account_id   BIGINT,                   -- the submitting account (limits, logs)
    created      BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    envid        TEXT,                     -- RFC 3461 ENVID
    ret_full     BOOLEAN NOT NULL DEFAULT false,
    smtputf8     BOOLEAN NOT NULL DEFAULT false,
    body_8bit    BOOLEAN NOT NULL DEFAULT false,
    held         BOOLEAN NOT NULL DEFAULT false,
    warned       BOOLEAN NOT NULL DEFAULT false,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL,
    last_error   TEXT NOT NULL DEFAULT '',
    -- Taken by a node's scheduler until then (unix seconds; 0: free). queue_due takes
    -- only entries whose lease has ended; queue_update (the attempt's outcome) ends it.
    leased_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX queue_due ON queue_messages (next_attempt) WHERE NOT held;
CREATE TABLE queue_data (
    id   BIGINT PRIMARY KEY REFERENCES queue_messages(id) ON DELETE CASCADE,
    data BYTEA NOT NULL
);
CREATE TABLE queue_rcpts (
    id         BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    orcpt      TEXT,                       -- RFC 3461 ORCPT, as given
    notify     BIGINT NOT NULL DEFAULT 0,  -- RFC 3461 NOTIFY bits (queue.rs)
    status     BIGINT NOT NULL DEFAULT 0,  -- 0 pending, 1 delivered, 2 failed
    last_reply TEXT NOT NULL DEFAULT ''
);
CREATE INDEX queue_rcpts_message ON queue_rcpts (message_id);

CREATE TABLE outbound_sent (
    account_id BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    rcpts      BIGINT NOT NULL
);
CREATE INDEX outbound_sent_account ON outbound_sent (account_id, at);
CREATE TABLE outbound_holds (
    account_id BIGINT PRIMARY KEY
);
