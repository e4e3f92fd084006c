
-- ===========================================================================
-- Release step 1.3 -> 1.4 of the kept tables: the ALTERs that bring a 1.3
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.4 shape.  Part of every upgrade script from 1.3 or older
-- (upsell--1.3--X.sql, upsell--1.2--X.sql, upsell--1.1--X.sql,
-- upsell--1.0--X.sql), after the install script and the earlier steps,
-- before the later steps and src/upgrade/post.sql.  Frozen with 1.4 (main as
-- landed at 894af68): changes after 1.4 go into the next step's script
-- (src/upgrade/1.4--1.5.post.sql).
-- ===========================================================================

-- Changes of 1.4 to the kept tables, one block each, appended below.
-- (1.4 changed no column, constraint, default or index of them.)
