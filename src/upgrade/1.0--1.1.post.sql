
-- ===========================================================================
-- Upgrade 1.0 -> 1.1, after the 1.1 install script: the kept tables brought
-- to their 1.1 shape, and what 1.0--1.1.pre.sql took off them put back
-- ===========================================================================

-- The checks that call extension functions (dropped with 1.0's functions).
ALTER TABLE @extschema@.experiment_variants ADD CONSTRAINT experiment_variants_offer_types_check
	CHECK (offer_types <@ @extschema@._offer_types() AND pg_catalog.array_position(offer_types, NULL) IS NULL);
ALTER TABLE @extschema@.offer_events ADD CONSTRAINT offer_events_offer_type_check
	CHECK (offer_type = ANY (@extschema@._offer_types()));

-- #13: money, weights and sizes of the merchant's tables bounded; NaN and
-- Infinity (above every number) rejected, as the 1.1 tables' named CHECK
-- constraints do.  A 1.0 row that breaks one stops the upgrade with the
-- constraint's name: fix the row, upgrade again.
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

-- The registration views over the shop's tables, made by 1.1's registration.
-- Made in this script they would become members of the extension, which
-- pg_dump leaves out; they are the shop's, as when registration made them.
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

-- Changes of 1.1 to the kept tables, one block each, appended below.

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
