-- IMAP's BODYSTRUCTURE of a blob, rendered at delivery (issue 18, body.rs
-- `bodystructure`): the rendering's version, then the octets. NULL for blobs stored
-- before; IMAP then renders from the MIME tree (`structure`).
ALTER TABLE blobs ADD COLUMN bodystructure BYTEA;
