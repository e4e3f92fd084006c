
-- ===========================================================================
-- Release step 1.5 -> 1.6 of the kept tables: the ALTERs that bring a 1.5
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.6 shape.  Part of every upgrade script to 1.6 from 1.5 or older, after
-- the install script and the earlier steps, before src/upgrade/post.sql.
--
-- Every change of 1.6 to a kept table made in src/sql/ (a column, a named
-- constraint, a default, an index, a new configuration table's later
-- change) is appended here as well, one block each with its issue number:
-- new columns at the end of the table, constraints named.  A check or
-- default that calls an upsell function goes into src/upgrade/post.sql
-- instead.  test/e2e/upgrade_1_0.sh, upgrade_1_1.sh, upgrade_1_2.sh,
-- upgrade_1_3.sh, upgrade_1_4.sh and upgrade_1_5.sh compare the upgraded
-- extension with a fresh install.
-- ===========================================================================

-- Changes of 1.6 to the kept tables, one block each, appended below.

-- The TimeZone of the registration: a date or timestamp column of the order
-- lines or of the carts is a time of that zone, whoever reads the view.  A
-- registration made before 1.6 takes the zone of the session that updates
-- the extension (src/upgrade/post.sql then makes the views anew).
ALTER TABLE @extschema@.order_source
	ADD COLUMN IF NOT EXISTS time_zone text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone');
ALTER TABLE @extschema@.cart_source
	ADD COLUMN IF NOT EXISTS time_zone text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone');
