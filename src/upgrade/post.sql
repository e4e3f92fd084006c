
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
-- registration made them.  The user's grants on them (collected by
-- src/upgrade/pre.sql) are made again while they are members: leaving the
-- extension then takes them out of its initial privileges, so that pg_dump
-- keeps them as the user's.
DO $upgrade$
DECLARE
	g text;
	v text;
BEGIN
	IF EXISTS (SELECT FROM @extschema@.order_source) THEN
		PERFORM @extschema@._sync_view('order_lines');
	END IF;
	IF EXISTS (SELECT FROM @extschema@.product_source) THEN
		PERFORM @extschema@._sync_view('catalog');
	END IF;
	IF EXISTS (SELECT FROM @extschema@.cart_source) THEN
		PERFORM @extschema@._sync_view('carts');
	END IF;
	FOREACH g IN ARRAY pg_catalog.string_to_array(
		coalesce(pg_catalog.current_setting('upsell_upgrade.view_grants', true), ''), E'\n') LOOP
		BEGIN
			EXECUTE g;
		EXCEPTION WHEN undefined_table OR undefined_object THEN
			RAISE NOTICE 'upsell: not kept by the update, its view is no longer registered: %', g;
		END;
	END LOOP;
	FOREACH v IN ARRAY ARRAY['order_lines', 'catalog', 'carts'] LOOP
		IF pg_catalog.to_regclass('@extschema@.' || v) IS NOT NULL THEN
			EXECUTE pg_catalog.format('ALTER EXTENSION upsell DROP VIEW @extschema@.%I', v);
		END IF;
	END LOOP;
	IF pg_catalog.current_setting('upsell_upgrade.member_grants', true) OPERATOR(pg_catalog.<>) '' THEN
		RAISE WARNING 'upsell: the update made anew objects you had granted privileges on; grant them again: %',
			pg_catalog.replace(pg_catalog.current_setting('upsell_upgrade.member_grants', true), E'\n', '; ')
			USING HINT = 'Granted in the update''s script they would count as the extension''s own, which pg_dump leaves out.';
	END IF;
END
$upgrade$;
