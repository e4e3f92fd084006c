
-- ===========================================================================
-- Upgrade 1.0 -> 1.1, after the 1.1 install script: the kept tables brought
-- to their 1.1 shape, and what 1.0--1.1.pre.sql took off them put back
-- ===========================================================================

-- The checks that call extension functions (dropped with 1.0's functions).
ALTER TABLE @extschema@.experiment_variants ADD CONSTRAINT experiment_variants_offer_types_check
	CHECK (offer_types <@ @extschema@._offer_types() AND pg_catalog.array_position(offer_types, NULL) IS NULL);
ALTER TABLE @extschema@.offer_events ADD CONSTRAINT offer_events_offer_type_check
	CHECK (offer_type = ANY (@extschema@._offer_types()));

-- Changes of 1.1 to the kept tables, one block each (append new ones before
-- the last block, which makes the registration views).

-- h2 (#13): money, weights and sizes of the merchant's tables bounded; NaN
-- and Infinity (above every number) rejected.  A 1.0 row that breaks one
-- stops the upgrade with the constraint's name: fix the row, upgrade again.
ALTER TABLE @extschema@.thresholds
	ADD CONSTRAINT thresholds_amount_finite CHECK (amount < 1e15);
ALTER TABLE @extschema@.volume_tiers
	ADD CONSTRAINT volume_tiers_unit_price_finite CHECK (unit_price < 1e15);
ALTER TABLE @extschema@.offers
	ADD CONSTRAINT offers_min_cart_value_finite CHECK (min_cart_value < 1e15);
ALTER TABLE @extschema@.stage_settings
	ADD CONSTRAINT stage_settings_max_offers_bounded CHECK (max_offers <= 1000),
	ADD CONSTRAINT stage_settings_type_weights_numbers CHECK (NOT pg_catalog.jsonb_path_exists(type_weights,
		'$.* ? (@.type() != "number" || @ < 0 || @ > 1000)'));
ALTER TABLE @extschema@.experiment_variants
	ADD CONSTRAINT experiment_variants_weight_bounded CHECK (weight <= 1e12);

-- #16: registrations of kind 'shopify' (JSON documents in a payload column)
ALTER TABLE @extschema@.order_source
	ADD COLUMN kind text NOT NULL DEFAULT 'columns',
	ADD COLUMN payload name,
	ADD CONSTRAINT order_source_kind CHECK (kind IN ('columns', 'shopify') AND (kind = 'shopify') = (payload IS NOT NULL));
ALTER TABLE @extschema@.product_source
	ADD COLUMN kind text NOT NULL DEFAULT 'columns',
	ADD COLUMN payload name,
	ADD COLUMN collection name,
	ADD CONSTRAINT product_source_kind CHECK (kind IN ('columns', 'shopify') AND (kind = 'shopify') = (payload IS NOT NULL)
											 AND (kind = 'shopify' OR collection IS NULL));

-- Last: the registration views over the shop's tables, made by 1.1's
-- registration from the kept rows.  Made in this script they would become
-- members of the extension, which pg_dump leaves out; they are the shop's,
-- as when registration made them.
DO $upgrade$
DECLARE
	v record;
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
	FOR v IN
		SELECT c.oid::regclass AS view
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
			AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
		WHERE c.relnamespace OPERATOR(pg_catalog.=) '@extschema@'::regnamespace
		  AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['order_lines', 'bad_order_lines', 'catalog',
														 'bad_catalog_rows', 'carts'])
	LOOP
		EXECUTE pg_catalog.format('ALTER EXTENSION upsell DROP VIEW %s', v.view);
	END LOOP;
END
$upgrade$;
