
-- ===========================================================================
-- Merchant rules every tactic respects: exclusions
-- ===========================================================================

CREATE TABLE IF NOT EXISTS @extschema@.exclusions (
	exclusion_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id		bigint NOT NULL DEFAULT 0,
	product_id		bigint,
	category		text,
	with_product_id	bigint,
	note			text,
	CHECK ((product_id IS NULL) <> (category IS NULL)),
	CHECK (with_product_id IS NULL OR product_id IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS exclusions_tenant_id_product_id_idx ON @extschema@.exclusions (tenant_id, product_id);
CREATE INDEX IF NOT EXISTS exclusions_tenant_id_category_idx ON @extschema@.exclusions (tenant_id, category);
-- (the exclusions that apply to a cart: upsell._cart_blocked)
CREATE INDEX IF NOT EXISTS exclusions_tenant_id_with_product_id_idx ON @extschema@.exclusions (tenant_id, with_product_id);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.exclusions', '');
-- the identity's sequence too, or the next insert after a restore collides
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.exclusions', 'exclusion_id')::regclass, '');
COMMENT ON TABLE @extschema@.exclusions IS
	'never offer a product (product_id), a category (category), or a product together with another (product_id with with_product_id in the cart, page or order); tenant_id 0 without tenants';

-- Whether a candidate may not be offered next to the context products (the
-- cart, the product on the page, the order just placed).
CREATE FUNCTION @extschema@.is_excluded(tenant_id bigint, product_id bigint, category text,
	context bigint[] DEFAULT '{}')
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT EXISTS (
		SELECT FROM @extschema@.exclusions e
		WHERE e.tenant_id = is_excluded.tenant_id
		  AND ((e.product_id = is_excluded.product_id
				AND (e.with_product_id IS NULL OR e.with_product_id = ANY (is_excluded.context)))
			   OR e.category = is_excluded.category));
END;
COMMENT ON FUNCTION @extschema@.is_excluded(bigint, bigint, text, bigint[]) IS
	'true when upsell.exclusions forbids offering the product (of that category) next to the context products';
