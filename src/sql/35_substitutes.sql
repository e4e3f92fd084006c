
-- ===========================================================================
-- Substitutes: what is never offered as a complement of what the shopper has
-- ===========================================================================
--
-- A product of the same variant group as a cart, page or order item (a size
-- or tier of the same product) is a substitute of it.  So is a product of
-- the same category, unless the shop's orders say that customers buy several
-- products of that category together (batteries, coffee, socks): refresh
-- compares, per category, how many of the shop's co-purchased pairs of
-- products fall within the category with how many would if products paired
-- by popularity alone (category_model.lift; measured among pairs, so that a
-- shop of mostly one-item orders is not read as "nothing goes together"); a
-- lift below 1, or fewer than 3 such pairs, makes the category's products
-- substitutes of each other.  The merchant overrides the data per category
-- pair in upsell.category_substitutes (also across categories: laptops and
-- tablets).  Complements (cross-sell, gap fillers, post-purchase) never
-- offer a substitute of a context item; upgrades, downsells and quantity
-- steps are the tactics that offer "another one of these".

CREATE TABLE IF NOT EXISTS @extschema@.category_substitutes (
	tenant_id	bigint NOT NULL DEFAULT 0,
	category	text NOT NULL,
	other_category text NOT NULL,
	substitutes	boolean NOT NULL,
	note		text,
	CONSTRAINT category_substitutes_pkey PRIMARY KEY (tenant_id, category, other_category)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.category_substitutes', '');
COMMENT ON TABLE @extschema@.category_substitutes IS
	'merchant rules: whether products of category and other_category substitute each other (the same category twice: overrides what the orders say); symmetric; applied by the next refresh';

-- The rows of source 'merchant' that a tenant's rules give category_model:
-- each rule both ways, a pair ruled in both orders a substitute when either
-- rule says so.  (plpgsql: Citus 12.1 cannot run a SQL-standard body that
-- reads a distributed table when the function is not inlined)
CREATE FUNCTION @extschema@._merchant_category_rows(tenant_id bigint)
RETURNS TABLE (category text, other_category text, substitutes boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY
	SELECT x.category, x.other_category, pg_catalog.bool_or(r.substitutes)
	FROM @extschema@.category_substitutes r,
		 LATERAL (VALUES (r.category, r.other_category), (r.other_category, r.category)) x(category, other_category)
	WHERE r.tenant_id = _merchant_category_rows.tenant_id
	GROUP BY x.category, x.other_category;
END
$$;

-- A category's products are bought together (not substitutes) when at least
-- 3 pairs of them were bought together and no fewer than popularity alone
-- gives (lift >= 1: a shop of one category is not all substitutes).
CREATE FUNCTION @extschema@._build_category_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	substitutes_before jsonb[];
	substitutes_after jsonb[];
	n bigint;
BEGIN
	IF incremental AND @extschema@._lines_unchanged(t)
	   AND @extschema@._changed_products('product_model') = '{}'
	   AND NOT EXISTS (
			WITH ruled AS (SELECT * FROM @extschema@._merchant_category_rows(t)),
			stored AS (SELECT c.category, c.other_category, c.substitutes FROM @extschema@.category_model c
					   WHERE c.tenant_id = t AND c.source = 'merchant')
			(TABLE ruled EXCEPT TABLE stored) UNION ALL (TABLE stored EXCEPT TABLE ruled)) THEN
		-- the same counts (no new line), categories and products (no
		-- catalog fact changed) and merchant rules: the same rows
		RETURN @extschema@._kept_rows('category_model', t);
	END IF;
	-- (incrementally: the products of the categories whose substitutes
	-- changed are noted for the builders after it)
	IF to_regclass('pg_temp.upsell_changed_products') IS NOT NULL THEN
		substitutes_before := ARRAY(
			SELECT pg_catalog.jsonb_build_array(c.category, c.other_category) FROM @extschema@.category_model c
			WHERE c.tenant_id = t AND c.substitutes);
	END IF;
	n := @extschema@._publish('category_model', tenant_id, $q$
		WITH prod AS (
			SELECT m.tenant_id, m.product_id, m.category, m.orders::float8 AS orders
			FROM @extschema@.product_model m WHERE m.tenant_id = $1),
		cats AS MATERIALIZED (
			SELECT p.tenant_id, p.category, count(*) AS products,
				   sum(p.orders) AS s1, sum(p.orders * p.orders) AS s2,
				   (row_number() OVER (ORDER BY p.category) - 1)::int AS key
			FROM prod p WHERE p.category IS NOT NULL
			GROUP BY p.tenant_id, p.category HAVING count(*) >= 2),
		-- the orders of the pairs of products bought together (each pair
		-- once), summed per category of two of its products (key), and over
		-- all pairs (NULL key), in one pass over each chunk of the counts; a
		-- category of one product has no pairs, so its products are not passed
		sums AS (
			SELECT x.category_key, x.together
			FROM $q$ || @extschema@._cooccurrence_parts(tenant_id) || $q$ m,
				 (SELECT coalesce(array_agg(p.product_id ORDER BY p.product_id), '{}') AS ids,
						 coalesce(array_agg(c.key ORDER BY p.product_id), '{}') AS keys
				  FROM prod p JOIN cats c ON c.category = p.category) k,
				 @extschema@._cooccurrence_category_pairs_sum(m.state, m.delta, m.lo, m.hi, k.ids, k.keys) x),
		shop AS (
			SELECT p.tenant_id, sum(p.orders) AS s1, sum(p.orders * p.orders) AS s2,
				   (SELECT coalesce(sum(x.together), 0) FROM sums x WHERE x.category_key IS NULL) AS pairs
			FROM prod p GROUP BY p.tenant_id),
		obs AS (
			SELECT c.tenant_id, c.category, sum(x.together) AS together
			FROM sums x JOIN cats c ON c.key = x.category_key
			GROUP BY c.tenant_id, c.category),
		-- of the shop's co-purchased pairs, the share that would fall within
		-- the category if products paired by popularity alone:
		-- sum over its pairs of n_a n_b, against the same over the shop
		data AS (
			SELECT c.tenant_id, c.category, c.products, coalesce(o.together, 0) AS together,
				   s.pairs * (c.s1 * c.s1 - c.s2) / nullif(s.s1 * s.s1 - s.s2, 0) AS expected
			FROM cats c
			JOIN shop s ON s.tenant_id = c.tenant_id
			LEFT JOIN obs o ON o.tenant_id = c.tenant_id AND o.category = c.category)
		SELECT d.tenant_id, d.category, d.category AS other_category, d.products, d.together, d.expected,
			   d.together / nullif(d.expected, 0) AS lift,
			   coalesce(r.substitutes, NOT (d.together >= 3 AND d.together >= d.expected)) AS substitutes,
			   CASE WHEN r.substitutes IS NULL THEN 'orders' ELSE 'merchant' END AS source
		FROM data d
		LEFT JOIN @extschema@.category_substitutes r
			ON r.tenant_id = d.tenant_id AND r.category = d.category AND r.other_category = d.category
		UNION ALL
		-- the merchant's pairs of categories, both ways (and same-category
		-- rules of categories the data has no row for)
		SELECT $1, x.category, x.other_category, NULL::bigint, NULL::float8, NULL::float8,
			   NULL::float8, x.substitutes, 'merchant'
		FROM @extschema@._merchant_category_rows($1) x
		WHERE NOT EXISTS (SELECT FROM data d WHERE d.tenant_id = $1
						  AND d.category = x.category AND x.category = x.other_category)$q$);
	IF substitutes_before IS NOT NULL THEN
		substitutes_after := ARRAY(
			SELECT pg_catalog.jsonb_build_array(c.category, c.other_category) FROM @extschema@.category_model c
			WHERE c.tenant_id = t AND c.substitutes);
		PERFORM @extschema@._note_changed('category_model', ARRAY(
			SELECT m.product_id FROM @extschema@.product_model m
			WHERE m.tenant_id = t AND m.category IN (
				SELECT d.pair ->> k
				FROM ((SELECT unnest(substitutes_before) EXCEPT SELECT unnest(substitutes_after))
					  UNION (SELECT unnest(substitutes_after) EXCEPT SELECT unnest(substitutes_before))) d(pair),
					 (VALUES (0), (1)) v(k))));
	END IF;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('category_model',
	$$tenant_id bigint NOT NULL, category text NOT NULL, other_category text NOT NULL,
	  products bigint, together float8, expected float8, lift float8,
	  substitutes boolean NOT NULL, source text NOT NULL,
	  PRIMARY KEY (tenant_id, category, other_category)$$,
	NULL, 25, '@extschema@._build_category_model(bigint, boolean)',
	'per category (and merchant pair of categories): whether their products substitute each other; for one category, the orders with two of its products against independent choices (lift), or the merchant''s rule');

-- Whether a product substitutes any of the context products: another
-- product of one's variant group, or of a category whose products substitute
-- one's (category_model); products without a variant group or category are
-- substitutes of nothing.  The rule every stage applies: per request as sets
-- (_cart_blocked, below), and in the refresh's builds of the product page and
-- the cart in C (src/funnel_build.c, catalog_substitutes).
CREATE FUNCTION @extschema@.is_substitute(tenant_id bigint, product_id bigint, context bigint[])
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT EXISTS (
		SELECT FROM @extschema@.product_model a, @extschema@.product_model b
		WHERE a.tenant_id = is_substitute.tenant_id AND a.product_id = ANY (is_substitute.context)
		  AND b.tenant_id = is_substitute.tenant_id AND b.product_id = is_substitute.product_id
		  AND a.product_id <> b.product_id
		  AND (a.variant_group = b.variant_group
			   OR EXISTS (SELECT FROM @extschema@.category_model s
						  WHERE s.tenant_id = a.tenant_id AND s.category = a.category
							AND s.other_category = b.category AND s.substitutes)));
END;
COMMENT ON FUNCTION @extschema@.is_substitute(bigint, bigint, bigint[]) IS
	'true when the product is a substitute of one of the context products (same variant group, or a category whose products substitute each other, as of the last refresh): complements never offer it';

-- What a cart (or an order) blocks, as three sets a request computes once
-- and tests each candidate against.  Its substitutes (upsell.is_substitute):
-- the variant groups of its lines and the categories that substitute its
-- lines' categories; with with_exclusions, also what upsell.is_excluded
-- forbids next to it: the excluded products (alone, or with one of its
-- lines) and categories.  A candidate not in the cart is blocked exactly when
--   candidate.product_id = ANY (ids) OR candidate.variant_group = ANY (variant_groups)
--   OR candidate.category = ANY (categories)
-- is true; never by NULL logic: a candidate without a variant group or a
-- category is blocked by neither of those sets, so the test is
-- coalesce(..., false) (NULL, of a product not in product_model too, keeps
-- it).  A cart line is in its own variant group's set, so the callers must
-- (and do) drop the cart itself: a line is no substitute of itself.
-- (plpgsql, called as a statement of its own with every table read by the
-- tenant: on Citus a router query to the tenant's shard, not a helper reading
-- a distributed table from inside a shard's statement.  Planned as its
-- caller's statements are, its plan_cache_mode not set: generic on one node,
-- custom under distribute(), where Citus routes a statement over several
-- models only when it sees the tenant's value.  On one node a few index
-- lookups per request instead of a subquery per candidate; the groups and
-- not their products: a group of hundreds is not listed.)
CREATE FUNCTION @extschema@._cart_blocked(tenant_id bigint, items bigint[], with_exclusions boolean,
	OUT ids bigint[], OUT variant_groups text[], OUT categories text[])
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	line_categories text[];
BEGIN
	-- the cart lines' variant groups and categories, read once
	SELECT coalesce(array_agg(a.variant_group) FILTER (WHERE a.variant_group IS NOT NULL), '{}'),
		   coalesce(array_agg(a.category) FILTER (WHERE a.category IS NOT NULL), '{}')
	INTO variant_groups, line_categories
	FROM @extschema@.product_model a
	WHERE a.tenant_id = _cart_blocked.tenant_id AND a.product_id = ANY (items);
	SELECT coalesce(array_agg(e.product_id) FILTER (WHERE e.product_id IS NOT NULL), '{}'),
		   coalesce(array_agg(e.category) FILTER (WHERE e.category IS NOT NULL), '{}')
		   -- the categories that substitute its lines' categories
		   || ARRAY(SELECT s.other_category FROM @extschema@.category_model s
					WHERE s.tenant_id = _cart_blocked.tenant_id AND s.substitutes
					  AND s.category = ANY (line_categories))
	INTO ids, categories
	FROM @extschema@.exclusions e
	-- the exclusions that apply: alone (a product's or a category's), or of
	-- a product with a cart line (exclusions_tenant_id_with_product_id_idx:
	-- not every pair of the shop read)
	WHERE e.tenant_id = _cart_blocked.tenant_id AND with_exclusions
	  AND (e.with_product_id IS NULL OR e.with_product_id = ANY (items));
END
$$;
COMMENT ON FUNCTION @extschema@._cart_blocked(bigint, bigint[], boolean) IS
	'internal: what a cart blocks, as the product ids, variant groups and categories a candidate must not have: its substitutes (upsell.is_substitute), and with_exclusions what upsell.is_excluded forbids next to it';

-- Whether an upgrade stays on a ladder customers climb: a size or tier of the
-- same product (same variant group), or a dearer product of the same category
-- that the product's buyers later bought (3 or more of them) more often than
-- the category's buyers buy it at all.  Otherwise it is another product, a
-- substitute, not an upgrade of this one.  As SQL says it: same_group OR
-- (paths >= 3 AND paths::float8 / greatest(buyers, 1) > popularity), NULL
-- where that is NULL.  In C (src/funnel_build.c), the one rule the product
-- page's and the cart's builders apply too.
CREATE FUNCTION @extschema@._upgrade_on_ladder(same_group boolean, paths bigint, buyers bigint,
	popularity float8)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_upgrade_on_ladder'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
