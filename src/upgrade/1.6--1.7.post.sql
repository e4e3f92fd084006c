-- ===========================================================================
-- Release step 1.6 -> 1.7 of the kept tables: the ALTERs that bring a 1.6
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.7 shape.  Part of every upgrade script to 1.7 from 1.6 or older, after
-- the install script and the earlier steps, before src/upgrade/post.sql.
--
-- Every change of 1.7 to a kept table made in src/sql/ (a column, a named
-- constraint, a default, an index, a new configuration table's later
-- change) is appended here as well, one block each with its issue number:
-- new columns at the end of the table, constraints named.  A check or
-- default that calls an upsell function goes into src/upgrade/post.sql
-- instead.  test/e2e/upgrade_1_0.sh ... upgrade_1_6.sh compare the upgraded
-- extension with a fresh install.
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
