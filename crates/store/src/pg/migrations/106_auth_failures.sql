-- Failed-login counts (issue 17): on the embedded store one serving process counts them
-- in memory (letterbox_proto::auth); N nodes count them here, so that `[auth]
-- max_failures` holds for the cluster, not per node.
CREATE TABLE auth_failures (
    key   TEXT PRIMARY KEY,            -- "ip:ADDR" or "user:ADDRESS"
    count BIGINT NOT NULL,
    last  BIGINT NOT NULL              -- unix seconds of the latest failure
);
CREATE INDEX auth_failures_last ON auth_failures (last);
