-- Internationalised domain names stored as lower-case A-labels (RFC 5890/5891,
-- UTS #46): the rewrite of U-label domains already stored is Rust code
-- (crate::idn::migrate_pg), run right after this file in the same transaction; it
-- refuses, changing nothing, when two stored names would become one.
SELECT 1;
