-- ===========================================================================
-- Release step 1.6 -> 1.7 of the kept tables: the ALTERs that bring a 1.6
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.7 shape.  Part of every upgrade script from 1.6 or older
-- (upsell--1.6--X.sql, ..., upsell--1.0--X.sql), after the install script
-- and the earlier steps, before the later steps and src/upgrade/post.sql.
-- Frozen with 1.7 (main as landed at d50a7fa): changes after 1.7 go into the
-- next step's script (src/upgrade/1.7--1.8.post.sql).
-- ===========================================================================

-- 1.6 was landed on main at several stops before it was frozen (2026-12-03 to
-- 2026-12-05), and a database may run any of them.  Those landed before
-- 2026-12-05 lack the one change 1.6 made to a kept table, which
-- upsell--1.6--1.7.sql would otherwise not make; it is repeated here
-- (idempotent: a frozen 1.6 has the columns).
ALTER TABLE @extschema@.order_source
	ADD COLUMN IF NOT EXISTS time_zone text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone');
ALTER TABLE @extschema@.cart_source
	ADD COLUMN IF NOT EXISTS time_zone text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone');

-- Changes of 1.7 to the kept tables, one block each, appended below.
