
-- ===========================================================================
-- Release step 1.0 -> 1.1 of the kept tables: the ALTERs that bring a 1.0
-- configuration table to its 1.1 shape.  Part of every upgrade script from
-- 1.0 (upsell--1.0--X.sql), after the install script and before the later
-- steps and src/upgrade/post.sql.  Frozen with 1.1: changes after 1.1 go
-- into the next step's script.
-- ===========================================================================

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
