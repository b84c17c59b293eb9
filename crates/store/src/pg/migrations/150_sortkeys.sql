-- What SORT (DATE) and THREAD read of a blob, made at delivery (issue 18, body.rs
-- `sortkeys`): the record's version, then the record; copied into each message row
-- when it is inserted, so a mailbox's records are read in one pass over its rows.
-- NULL for blobs stored before and rows inserted before (read through the blob then);
-- IMAP then decodes their heads.
ALTER TABLE blobs ADD COLUMN sortkeys BYTEA;
ALTER TABLE messages ADD COLUMN sortkeys BYTEA;
