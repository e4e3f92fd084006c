
-- ===========================================================================
-- Upgrade from any released version, last: what src/upgrade/pre.sql took off
-- the kept tables put back, in the new version's shape (after the release
-- steps' A--B.post.sql have brought the tables themselves up to date)
-- ===========================================================================
--
-- pre.sql drops every check and default of a kept table that calls an
-- extension function (they go with the old version's functions), whatever
-- the version: such a constraint is (re)added here, never in a step's post
-- script.  A change to one of these is a change here.

-- The checks that call extension functions.
ALTER TABLE @extschema@.experiment_variants ADD CONSTRAINT experiment_variants_offer_types_check
	CHECK (offer_types <@ @extschema@._offer_types() AND pg_catalog.array_position(offer_types, NULL) IS NULL);
ALTER TABLE @extschema@.offer_events ADD CONSTRAINT offer_events_offer_type_check
	CHECK (offer_type = ANY (@extschema@._offer_types()));

-- The registration views over the shop's tables, made by the new version's
-- registration.  Made in this script they would become members of the
-- extension, which pg_dump leaves out; they are the shop's, as when
-- registration made them.
DO $upgrade$
BEGIN
	IF EXISTS (SELECT FROM @extschema@.order_source) THEN
		PERFORM @extschema@._sync_view('order_lines');
		ALTER EXTENSION upsell DROP VIEW @extschema@.order_lines;
	END IF;
	IF EXISTS (SELECT FROM @extschema@.product_source) THEN
		PERFORM @extschema@._sync_view('catalog');
		ALTER EXTENSION upsell DROP VIEW @extschema@.catalog;
	END IF;
	IF EXISTS (SELECT FROM @extschema@.cart_source) THEN
		PERFORM @extschema@._sync_view('carts');
		ALTER EXTENSION upsell DROP VIEW @extschema@.carts;
	END IF;
END
$upgrade$;
