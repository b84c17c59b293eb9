-- DKIM signing keys (issue 12) on PostgreSQL (issue 17): as the embedded schema's
-- dkim_keys. Every statement that changes the key set (a cascade from a removed domain
-- included) moves dkim_version, so a signer with cached keys sees it in one read.
CREATE TABLE dkim_keys (
    domain_id   BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector    TEXT NOT NULL,
    algorithm   TEXT NOT NULL,      -- 'ed25519' | 'rsa'
    private_key BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created     BIGINT NOT NULL,
    state       TEXT NOT NULL,      -- 'active' | 'published' | 'retired'
    changed     BIGINT NOT NULL,
    PRIMARY KEY (domain_id, selector)
);
CREATE TABLE dkim_version (
    one   BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    value BIGINT NOT NULL
);
INSERT INTO dkim_version (one, value) VALUES (true, 0);
CREATE FUNCTION dkim_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dkim_version SET value = value + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER dkim_keys_changed AFTER INSERT OR UPDATE OR DELETE ON dkim_keys
    FOR EACH STATEMENT EXECUTE FUNCTION dkim_version_bump();
