-- The blob's BODYSTRUCTURE rendering (blobs.bodystructure) copied into each message row
-- when it is inserted (issue 18, bodystructures.rs): a mailbox's renderings are read in
-- one pass over its rows, without a lookup of the blob per message. NULL for rows
-- inserted before (read through the blob then) and for blobs without one.
ALTER TABLE messages ADD COLUMN bodystructure BYTEA;
