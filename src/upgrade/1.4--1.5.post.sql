
-- ===========================================================================
-- Release step 1.4 -> 1.5 of the kept tables: the ALTERs that bring a 1.4
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.5 shape.  Part of every upgrade script from 1.4 or older
-- (upsell--1.4--X.sql, upsell--1.3--X.sql, upsell--1.2--X.sql,
-- upsell--1.1--X.sql, upsell--1.0--X.sql), after the install script and the
-- earlier steps, before the later steps and src/upgrade/post.sql.  Frozen
-- with 1.5 (main as landed at d708b63): changes after 1.5 go into the next
-- step's script (src/upgrade/1.5--1.6.post.sql).
-- ===========================================================================

-- Changes of 1.5 to the kept tables, one block each, appended below.
-- (1.5 changed no column, constraint, default or index of them.)
