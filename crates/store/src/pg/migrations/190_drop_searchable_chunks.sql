-- IMAP's stored chunks of searchable heads (message_cache kind 3, issue 18,
-- crates/imap/src/session/cache.rs) duplicated, for every message searched, the copy
-- kept per message row (message_searchable, 160), and were read before it. IMAP now
-- reads the copies first and keeps chunks only for messages stored before them (no
-- copy): the chunks written before are dropped once; those messages' records are made
-- again from their heads at their next search, and kept in new chunks.
DELETE FROM message_cache WHERE kind = 3;
