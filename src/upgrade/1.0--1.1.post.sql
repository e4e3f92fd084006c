
-- ===========================================================================
-- Upgrade 1.0 -> 1.1, after the 1.1 install script: the kept tables brought
-- to their 1.1 shape (append ALTERs here, one block per change)
-- ===========================================================================

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
