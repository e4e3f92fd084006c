-- ===========================================================================
-- Release step 1.5 -> 1.6 of the kept tables: the ALTERs that bring a 1.5
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.6 shape.  Part of every upgrade script from 1.5 or older
-- (upsell--1.5--X.sql, ..., upsell--1.0--X.sql), after the install script
-- and the earlier steps, before the later steps and src/upgrade/post.sql.
-- Frozen with 1.6 (main as landed at e6e9526): changes after 1.6 go into the
-- next step's script (src/upgrade/1.6--1.7.post.sql).
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
