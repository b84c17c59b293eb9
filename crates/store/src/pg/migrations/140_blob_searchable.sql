-- The searchable head of a blob, made at delivery (issue 18, body.rs `searchable`):
-- the record's version, then the record. NULL for blobs stored before; IMAP then
-- decodes their heads.
ALTER TABLE blobs ADD COLUMN searchable BYTEA;
