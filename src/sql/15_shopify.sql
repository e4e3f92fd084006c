
-- ===========================================================================
-- Shopify payloads: orders and products registered as the JSON documents
-- the platform sends (webhooks, REST or GraphQL ids)
-- ===========================================================================
--
-- register_shopify_orders / register_shopify_products are registrations of
-- kind 'shopify' in order_source / product_source: _sync_view (see
-- 10_registration.sql) makes upsell.order_lines and upsell.catalog from
-- them as from any registration, so refresh, every tactic and stage and
-- experiments read them unchanged.  In between sit two views that keep
-- every row, with the reason it is not counted (column skipped):
--
--   upsell.shopify_order_lines: one row per line item of the latest delivery
--     of each order, one row per order skipped as a whole
--   upsell.shopify_variants: one row per variant of the latest delivery of
--     each product, one row per product skipped as a whole
--
-- Every field is read by functions that give NULL for what they do not
-- accept (src/core/shopify.c), so a malformed document is a counted skip,
-- never an error in the middle of a refresh.

CREATE FUNCTION @extschema@.shopify_id(id text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_shopify_id_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.shopify_id(text) IS
	'the bigint a Shopify id stands for: digits, or gid://shopify/Type/N (GraphQL); NULL for anything else';

CREATE FUNCTION @extschema@.shopify_id(id jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_shopify_id_jsonb'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.shopify_id(jsonb) IS
	'the bigint a Shopify id in a JSON document stands for: an integer number (REST), a string of digits or gid://shopify/Type/N (GraphQL); NULL for anything else';

-- An ISO 8601 string with an offset ("2019-04-19T08:46:00-04:00"); NULL else.
CREATE FUNCTION @extschema@._json_time(value jsonb)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'upsell_json_time'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A JSON number or a decimal string ("199.00"); NULL else.
CREATE FUNCTION @extschema@._json_number(value jsonb)
RETURNS numeric
AS 'MODULE_PATHNAME', 'upsell_json_number'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The three SQL functions below run once per document, line item and
-- field of every registered document, and are written to be inlined into
-- the views: they carry no SET search_path (which forbids inlining and
-- costs a GUC save and restore per call: counting the 25,018 lines of the
-- electronics test took 41 s instead of 1.9 s in the session that had just
-- registered them).  They need none: an SQL-standard body (BEGIN ATOMIC or
-- RETURN) is parsed when it is created, so every function and operator in
-- it is bound by oid then, whatever the caller's search_path.

-- A non-empty JSON string; NULL else.
CREATE FUNCTION @extschema@._json_text(value jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN pg_catalog.jsonb_typeof(value) OPERATOR(pg_catalog.=) 'string'
			THEN NULLIF(value OPERATOR(pg_catalog.#>>) '{}', '') END;

-- The lines of one delivery of one order document.  delivery is its rank
-- among the deliveries of the same order id, newest first (by updated_at);
-- product_field 'variant_id' makes the product the variant (the product
-- when a line has no variant), 'product_id' the product.  Orders skipped as
-- a whole give one row without product and line_number.  Inlined into the
-- view.
CREATE FUNCTION @extschema@._shopify_order_lines(tenant bigint, doc jsonb, delivery bigint,
	product_field text)
RETURNS TABLE (tenant_id bigint, order_key bigint, order_id text, line_number bigint,
			   product_id bigint, customer_id bigint, ordered_at timestamptz,
			   quantity numeric, unit_price numeric, currency text, skipped text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT o.tenant_id, o.order_key, o.order_key::text, CASE WHEN o.skipped IS NULL THEN l.n END, l.product_id, o.customer_id, o.ordered_at,
		   l.quantity - l.refunded, l.unit_price, o.currency,
		   CASE WHEN o.skipped IS NOT NULL THEN o.skipped
				WHEN l.product_id IS NULL THEN 'line item without a variant_id or product_id'
				WHEN l.quantity IS NULL OR l.quantity <= 0 THEN 'line item without a positive quantity'
				WHEN l.unit_price IS NULL THEN 'line item without a price'
				-- NaN, infinite or absurd amounts, as for a registration by columns
				WHEN NOT @extschema@._plausible_quantity(l.quantity) THEN 'line item with an implausible quantity'
				WHEN NOT @extschema@._plausible_price(l.unit_price) THEN 'line item with an implausible price'
				WHEN l.bad_refunds > 0 THEN 'refund line item without a quantity'
				WHEN l.quantity - l.refunded <= 0 THEN 'line item refunded'
		   END
	FROM (SELECT _shopify_order_lines.tenant AS tenant_id, d.order_key, d.ordered_at, d.customer_id,
				 @extschema@._json_text(d.doc -> 'currency') AS currency, d.doc, d.refund_lines,
				 CASE WHEN d.order_key IS NULL THEN 'order without an id'
					  WHEN _shopify_order_lines.delivery > 1 THEN 'earlier delivery of an order'
					  WHEN d.doc ->> 'test' = 'true' THEN 'test order'
					  WHEN coalesce(jsonb_typeof(d.doc -> 'cancelled_at'), 'null') <> 'null' THEN 'cancelled order'
					  WHEN d.ordered_at IS NULL THEN 'order without a valid created_at'
					  WHEN jsonb_typeof(d.doc -> 'line_items') IS DISTINCT FROM 'array'
						   OR jsonb_array_length(d.doc -> 'line_items') = 0 THEN 'order without line_items'
				 END AS skipped
		  FROM (SELECT _shopify_order_lines.doc AS doc,
					   @extschema@.shopify_id(_shopify_order_lines.doc -> 'id') AS order_key,
					   -- (a time outside 1900-2199 is no valid one: _plausible_time)
					   CASE WHEN @extschema@._plausible_time(@extschema@._json_time(_shopify_order_lines.doc -> 'created_at'))
							THEN @extschema@._json_time(_shopify_order_lines.doc -> 'created_at') END AS ordered_at,
					   @extschema@.shopify_id(_shopify_order_lines.doc -> 'customer' -> 'id') AS customer_id,
					   jsonb_path_query_array(_shopify_order_lines.doc,
											  'lax $.refunds[*].refund_line_items[*]', '{}', true) AS refund_lines
			   ) d
		  OFFSET 0
		 ) o
	CROSS JOIN LATERAL (
		-- OFFSET 0: each field parsed once, not once per reference
		SELECT i.n, i.product_id, i.quantity, i.unit_price,
			   CASE WHEN o.refund_lines = '[]' THEN 0
					ELSE (SELECT coalesce(sum(@extschema@._json_number(x.rl -> 'quantity')), 0)
						  FROM jsonb_array_elements(o.refund_lines) AS x(rl)
						  WHERE @extschema@.shopify_id(x.rl -> 'line_item_id') = i.line_item_id) END AS refunded,
			   CASE WHEN o.refund_lines = '[]' THEN 0
					ELSE (SELECT count(*)
						  FROM jsonb_array_elements(o.refund_lines) AS x(rl)
						  WHERE @extschema@.shopify_id(x.rl -> 'line_item_id') = i.line_item_id
							AND @extschema@._json_number(x.rl -> 'quantity') IS NULL) END AS bad_refunds
		FROM (SELECT e.n,
					 CASE WHEN _shopify_order_lines.product_field = 'product_id'
						  THEN @extschema@.shopify_id(e.item -> 'product_id')
						  ELSE coalesce(@extschema@.shopify_id(e.item -> 'variant_id'),
										@extschema@.shopify_id(e.item -> 'product_id')) END AS product_id,
					 @extschema@._json_number(e.item -> 'quantity') AS quantity,
					 @extschema@._json_number(e.item -> 'price') AS unit_price,
					 @extschema@.shopify_id(e.item -> 'id') AS line_item_id
			  FROM jsonb_array_elements(CASE WHEN o.skipped IS NULL THEN o.doc -> 'line_items'
											 ELSE '[null]'::jsonb END) WITH ORDINALITY AS e(item, n)
			  OFFSET 0) i
		OFFSET 0
	) l;
END;

-- The variants of one delivery of one product document (see above);
-- collection, when registered and not empty, is the category instead of
-- product_type.
CREATE FUNCTION @extschema@._shopify_variants(tenant bigint, doc jsonb, delivery bigint,
	collection text)
RETURNS TABLE (tenant_id bigint, product_id bigint, variant_id bigint, product_ref jsonb,
			   variant_ref jsonb, price numeric, compare_at_price numeric, category text,
			   in_stock boolean, title text, product_title text, variant_title text, sku text,
			   status text, skipped text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT p.tenant_id, p.product_id, v.variant_id, p.doc -> 'id', v.item -> 'id',
		   v.price, v.compare_at_price,
		   coalesce(nullif(_shopify_variants.collection, ''), @extschema@._json_text(p.doc -> 'product_type')),
		   -- not offered: a product not active, or a variant out of stock
		   -- whose stock Shopify tracks and which may not be oversold
		   coalesce(lower(@extschema@._json_text(p.doc -> 'status')), 'active') = 'active'
		   AND (@extschema@._json_text(v.item -> 'inventory_management') IS DISTINCT FROM 'shopify'
				OR @extschema@._json_text(v.item -> 'inventory_policy') = 'continue'
				OR coalesce(@extschema@._json_number(v.item -> 'inventory_quantity') > 0, true)),
		   CASE WHEN coalesce(v.title, 'Default Title') = 'Default Title' THEN p.title
				ELSE concat_ws(' - ', p.title, v.title) END,
		   p.title, v.title, @extschema@._json_text(v.item -> 'sku'),
		   lower(@extschema@._json_text(p.doc -> 'status')),
		   CASE WHEN p.skipped IS NOT NULL THEN p.skipped
				WHEN v.variant_id IS NULL THEN 'variant without an id'
		   END
	FROM (SELECT _shopify_variants.tenant AS tenant_id, d.doc, d.product_id, d.title,
				 CASE WHEN d.product_id IS NULL THEN 'product without an id'
					  WHEN _shopify_variants.delivery > 1 THEN 'earlier delivery of a product'
					  WHEN jsonb_typeof(d.doc -> 'variants') IS DISTINCT FROM 'array'
						   OR jsonb_array_length(d.doc -> 'variants') = 0 THEN 'product without variants'
				 END AS skipped
		  FROM (SELECT _shopify_variants.doc AS doc,
					   @extschema@.shopify_id(_shopify_variants.doc -> 'id') AS product_id,
					   @extschema@._json_text(_shopify_variants.doc -> 'title') AS title) d
		 ) p
	CROSS JOIN LATERAL (
		SELECT e.item, @extschema@.shopify_id(e.item -> 'id') AS variant_id,
			   @extschema@._json_number(e.item -> 'price') AS price,
			   @extschema@._json_number(e.item -> 'compare_at_price') AS compare_at_price,
			   @extschema@._json_text(e.item -> 'title') AS title
		FROM jsonb_array_elements(CASE WHEN p.skipped IS NULL THEN p.doc -> 'variants'
									   ELSE '[null]'::jsonb END) AS e(item)
	) v;
END;

-- The payload column as jsonb, or an error when it is neither json nor jsonb.
CREATE FUNCTION @extschema@._shopify_payload(relation regclass, col name)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regtype := @extschema@._column_type(relation, col, 'payload');
BEGIN
	IF t NOT IN ('jsonb'::regtype, 'json'::regtype) THEN
		RAISE EXCEPTION 'column "%" of relation % has type %, which cannot be the payload column', col, relation, t
			USING ERRCODE = 'datatype_mismatch',
				  HINT = 'The payload column must be json or jsonb: one document per row.';
	END IF;
	RETURN 's.' || quote_ident(col) || '::jsonb';
END
$$;

-- The views a Shopify registration makes, for _sync_view: the view of every
-- row with its skip reason, then the canonical view over the rows counted.
-- Deliveries of one id are ranked newest first by updated_at (ties by the
-- document, so that the pick does not depend on the scan).
CREATE FUNCTION @extschema@._shopify_views(view text, relation regclass, cfg jsonb)
RETURNS TABLE (name text, body text, comment text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	doc text := @extschema@._shopify_payload(relation, (cfg->>'payload')::name);
	tenant text := CASE WHEN cfg->>'tenant_id' IS NULL THEN '0::bigint'
						ELSE @extschema@._column_expr(relation, (cfg->>'tenant_id')::name, 'tenant_id') END;
	deliveries text;
BEGIN
	deliveries := format(
		'SELECT %1$s AS tenant_id, %2$s AS doc, %3$s AS extra, %5$s AS row_xmin, '
		'pg_catalog.row_number() OVER (PARTITION BY %1$s, @extschema@.shopify_id(%2$s OPERATOR(pg_catalog.->) ''id'') '
		'ORDER BY @extschema@._json_time(%2$s OPERATOR(pg_catalog.->) ''updated_at'') DESC NULLS LAST, %2$s DESC) AS delivery '
		'FROM %4$s AS s',
		tenant, doc,
		CASE WHEN cfg->>'collection' IS NULL THEN 'NULL::text'
			 ELSE @extschema@._column_expr(relation, (cfg->>'collection')::name, 'collection') END,
		relation, @extschema@._row_xmin(relation));
	IF view = 'order_lines' THEN
		RETURN QUERY VALUES
			('shopify_order_lines',
			 format('SELECT l.*, x.row_xmin FROM (%s) x CROSS JOIN LATERAL @extschema@._shopify_order_lines(x.tenant_id, x.doc, x.delivery, %L) l',
					deliveries, cfg->>'product_id'),
			 'every line item of the latest delivery of each registered Shopify order (and one row per order skipped as a whole), with the reason it is not counted in skipped'),
			('order_lines',
			 'SELECT l.tenant_id, l.order_key, l.order_id, l.product_id, l.customer_id, l.ordered_at, l.quantity, l.unit_price, l.row_xmin, '
			 'coalesce(l.quantity OPERATOR(pg_catalog.>) 0, true) AS sold '
			 'FROM @extschema@.shopify_order_lines l WHERE l.skipped IS NULL',
			 'the registered order lines under canonical names, created by upsell.register_shopify_orders() over upsell.shopify_order_lines');
	ELSIF view = 'catalog' THEN
		RETURN QUERY VALUES
			('shopify_variants',
			 format('SELECT v.* FROM (%s) x CROSS JOIN LATERAL @extschema@._shopify_variants(x.tenant_id, x.doc, x.delivery, x.extra) v',
					deliveries),
			 'every variant of the latest delivery of each registered Shopify product (and one row per product skipped as a whole), with the reason it is not counted in skipped'),
			('catalog',
			 CASE cfg->>'product_id'
				 WHEN 'product_id' THEN
					 -- products, not variants: the cheapest variant's price, in
					 -- stock when any variant is
					 'SELECT v.tenant_id, v.product_id, pg_catalog.min(CASE WHEN @extschema@._plausible_price(v.price) THEN v.price END) AS price, pg_catalog.min(v.category) AS category, '
					 'NULL::text AS variant_group, pg_catalog.bool_or(v.in_stock) AS in_stock, pg_catalog.min(v.product_title) AS title, '
					 'NULL::numeric AS unit_size, NULL::text AS unit_name '
					 'FROM @extschema@.shopify_variants v WHERE v.skipped IS NULL GROUP BY v.tenant_id, v.product_id'
				 ELSE
					 -- the variant group is the parent product, as the shop wrote its id
					 'SELECT v.tenant_id, v.variant_id AS product_id, CASE WHEN @extschema@._plausible_price(v.price) THEN v.price END AS price, v.category, '
					 'v.product_ref OPERATOR(pg_catalog.#>>) ''{}'' AS variant_group, v.in_stock, v.title, '
					 'NULL::numeric AS unit_size, NULL::text AS unit_name '
					 'FROM @extschema@.shopify_variants v WHERE v.skipped IS NULL'
			 END,
			 'the registered catalog under canonical names, created by upsell.register_shopify_products() over upsell.shopify_variants');
	ELSE
		RAISE EXCEPTION 'Shopify documents cannot be registered as %', view
			USING ERRCODE = 'feature_not_supported';
	END IF;
END
$$;

-- 'variant_id' or 'product_id': the field that is the product, from the
-- product_level argument of the two registrations (NULL: the level of the
-- other Shopify registration, else 'variant').  Orders and catalog should
-- name the same things products; a mismatch is allowed with a warning, so
-- that switching levels takes two calls.
CREATE FUNCTION @extschema@._shopify_product_field(product_level text, other text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	other_field text;
	field text;
BEGIN
	IF other = 'orders' THEN
		SELECT s.product_id INTO other_field FROM @extschema@.order_source s WHERE s.kind = 'shopify';
	ELSE
		SELECT s.product_id INTO other_field FROM @extschema@.product_source s WHERE s.kind = 'shopify';
	END IF;
	field := CASE coalesce(product_level, CASE other_field WHEN 'product_id' THEN 'product' ELSE 'variant' END)
				 WHEN 'variant' THEN 'variant_id' WHEN 'product' THEN 'product_id' END;
	IF field IS NULL THEN
		RAISE EXCEPTION 'product_level must be ''variant'' or ''product'', not %', quote_literal(product_level)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF other_field IS NOT NULL AND other_field <> field THEN
		RAISE WARNING 'upsell: the other Shopify registration counts %s as products, this one %s',
			replace(other_field, '_id', ''), replace(field, '_id', '')
			USING HINT = format('Register it again with product_level => %L.', replace(field, '_id', ''));
	END IF;
	RETURN field;
END
$$;

CREATE FUNCTION @extschema@.register_shopify_orders(relation regclass, payload_column name,
	tenant_column name DEFAULT NULL, product_level text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	field text;
BEGIN
	field := @extschema@._shopify_product_field(product_level, 'products');
	-- the role columns name the document fields each role comes from
	PERFORM @extschema@._register('order_lines', relation, jsonb_build_object(
		'order_id', 'id', 'product_id', field, 'customer_id', 'customer.id', 'ordered_at', 'created_at',
		'quantity', 'quantity', 'unit_price', 'price', 'tenant_id', tenant_column,
		'kind', 'shopify', 'payload', payload_column),
		ARRAY['payload_column', payload_column]);
END
$$;
COMMENT ON FUNCTION @extschema@.register_shopify_orders(regclass, name, name, text) IS
	'registers a table of Shopify order documents (one JSON order per row, webhooks or REST/GraphQL exports): test and cancelled orders skipped, refunds subtracted, the latest delivery of each order counted; product_level ''variant'' or ''product'' (default: that of the product registration, else variant)';

CREATE FUNCTION @extschema@.register_shopify_products(relation regclass, payload_column name,
	tenant_column name DEFAULT NULL, collection_column name DEFAULT NULL,
	product_level text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	field text;
BEGIN
	field := @extschema@._shopify_product_field(product_level, 'orders');
	PERFORM @extschema@._register('catalog', relation, jsonb_build_object(
		'product_id', field, 'price', 'variants.price', 'category', coalesce(collection_column, 'product_type'),
		'variant_group', CASE field WHEN 'variant_id' THEN 'id' END, 'in_stock', 'variants.inventory_quantity',
		'title', 'title', 'tenant_id', tenant_column, 'kind', 'shopify', 'payload', payload_column,
		'collection', collection_column), ARRAY['payload_column', payload_column]);
END
$$;
COMMENT ON FUNCTION @extschema@.register_shopify_products(regclass, name, name, name, text) IS
	'registers a table of Shopify product documents (one JSON product per row): each variant a product (price, stock from inventory_quantity, sku, title), its product the variant group, product_type (or the collection column) the category, status other than active not offered; product_level ''variant'' or ''product'' (default: that of the order registration, else variant)';

-- What the Shopify registrations do not count, and why.
CREATE FUNCTION @extschema@.shopify_skips(tenant_id bigint DEFAULT NULL)
RETURNS TABLE (source text, reason text, documents bigint, line_items bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint;
BEGIN
	IF NOT EXISTS (SELECT FROM @extschema@.order_source s WHERE s.kind = 'shopify')
	   AND NOT EXISTS (SELECT FROM @extschema@.product_source s WHERE s.kind = 'shopify') THEN
		RAISE EXCEPTION 'no Shopify documents are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_shopify_orders() or upsell.register_shopify_products() first.';
	END IF;
	t := CASE WHEN EXISTS (SELECT FROM @extschema@.order_source) THEN @extschema@._tenant(tenant_id)
			  ELSE coalesce(tenant_id, 0) END;
	IF EXISTS (SELECT FROM @extschema@.order_source s WHERE s.kind = 'shopify') THEN
		-- a row without line_number stands for an order skipped as a whole
		RETURN QUERY EXECUTE
			'SELECT ''orders''::text, l.skipped, pg_catalog.count(*) FILTER (WHERE l.line_number IS NULL), '
			'pg_catalog.count(*) FILTER (WHERE l.line_number IS NOT NULL) '
			'FROM @extschema@.shopify_order_lines l '
			'WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND l.skipped IS NOT NULL GROUP BY l.skipped'
			USING t;
	END IF;
	IF EXISTS (SELECT FROM @extschema@.product_source s WHERE s.kind = 'shopify') THEN
		RETURN QUERY EXECUTE
			'SELECT ''products''::text, v.skipped, pg_catalog.count(*) FILTER (WHERE v.variant_id IS NULL AND v.skipped OPERATOR(pg_catalog.<>) ''variant without an id''), '
			'pg_catalog.count(*) FILTER (WHERE v.skipped OPERATOR(pg_catalog.=) ''variant without an id'') '
			'FROM @extschema@.shopify_variants v '
			'WHERE v.tenant_id OPERATOR(pg_catalog.=) $1 AND v.skipped IS NOT NULL GROUP BY v.skipped'
			USING t;
	END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.shopify_skips(bigint) IS
	'what the Shopify registrations leave out, by reason: documents (orders or products skipped as a whole: no id, an earlier delivery, a test or cancelled order, no created_at, no line items or variants) and line items or variants (no product, quantity or price, refunded)';
