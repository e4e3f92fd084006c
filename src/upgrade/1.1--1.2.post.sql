
-- ===========================================================================
-- Release step 1.1 -> 1.2 of the kept tables: the ALTERs that bring a 1.1
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.2 shape.  Part of every upgrade script from 1.1 or older
-- (upsell--1.1--X.sql, upsell--1.0--X.sql), after the install script and the
-- earlier steps, before the later steps and src/upgrade/post.sql.  Frozen
-- with 1.2 (main as landed at 4c0438c): changes after 1.2 go into the next
-- step's script (src/upgrade/1.2--1.3.post.sql).
-- ===========================================================================

-- Changes of 1.2 to the kept tables, one block each, appended below.
-- (1.2 changed none of them.)
