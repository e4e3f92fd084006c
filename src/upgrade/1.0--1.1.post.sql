
-- ===========================================================================
-- Upgrade 1.0 -> 1.1, after the 1.1 install script: the kept tables brought
-- to their 1.1 shape (append ALTERs here, one block per change)
-- ===========================================================================

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
