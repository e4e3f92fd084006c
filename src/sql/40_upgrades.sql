
-- ===========================================================================
-- Upsell, downsell and volume tiers: the better version, the cheaper one, and
-- more of it
-- ===========================================================================
--
-- refresh ranks the pricier and the cheaper alternatives of every product at
-- once, in C (src/core/upgrade.c), and stores the best of each in
-- upsell.upgrade_list_model: one row per product and direction, the
-- candidates as arrays in rank order, read as one row per candidate through
-- the view upsell.upgrade_model; upgrade_candidates and downsell_candidates
-- read it by primary key.  quantity_offer reads upsell.volume_tiers, which
-- merchants fill.

-- ---- the batch ranking ------------------------------------------------------

CREATE FUNCTION @extschema@._upgrade_build(product_id bigint[], group_key int[],
	category_key int[], price float8[], customer bigint[], ordered_at timestamptz[],
	line_product bigint[], max_ratio float8, per_product int, scan_window int,
	max_customer_products int)
RETURNS TABLE (product_id bigint, upgrade boolean, buyers bigint, candidate_ids bigint[],
			   same_group boolean[], paths bigint[], candidate_buyers bigint[], popularity float8[],
			   closeness float8[], score float8[])
AS 'MODULE_PATHNAME', 'upsell_upgrade_build'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._upgrade_build(bigint[], int[], int[], float8[], bigint[], timestamptz[], bigint[], float8, int, int, int) IS
	'internal: the upgrade and downsell candidates of a whole catalog (arrays per product) from its order lines (arrays per line): one row per product and direction, the candidates as arrays in rank order';

CREATE FUNCTION @extschema@._upgrade_build(product_id bigint[], group_key int[],
	category_key int[], price float8[], lines text, max_ratio float8, per_product int,
	scan_window int, max_customer_products int, stored text DEFAULT NULL, counts text DEFAULT NULL,
	histories text DEFAULT NULL, new_lines text DEFAULT NULL)
RETURNS TABLE (product_id bigint, upgrade boolean, buyers bigint, candidate_ids bigint[],
			   same_group boolean[], paths bigint[], candidate_buyers bigint[], popularity float8[],
			   closeness float8[], score float8[], counts_chunk int, counts_state bytea, counts_from text)
AS 'MODULE_PATHNAME', 'upsell_upgrade_build_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._upgrade_build(bigint[], int[], int[], float8[], text, float8, int, int, int, text, text, text, text) IS
	'internal: the upgrade and downsell candidates of a whole catalog (arrays per product) from a query of its order lines (customer, order_key, ordered_at, product_id: a line without customer is its order''s, a guest''s, apart from every customer''s) in any order, grouped by customer in memory (within upsell.itemsets_memory_limit; beyond it the customers are split into parts, each read by its own pass): one row per product and direction, the candidates as arrays in rank order; with stored, a query of the lists stored so far (these columns, in product_id order), only the rows that differ from theirs or are new, and the key of each stored row that went, the rest NULL.  Then the counts ranked from, in chunks (counts_chunk, counts_state; counts_from: ''all lines'' or ''new lines''), the rest NULL: with counts (a query of such chunks, in order), histories (of the changed customers'' purchase histories as they were counted: customer_id, product_ids, first_at, last_at) and new_lines (of the lines since, the columns of lines), those counts with the changes folded in, when they are of the same catalog and every customer''s line has a time; else every line is read';


-- How far the stored lists reach: serving filters them with the caller's
-- ratio, so the model keeps everything a caller may reasonably ask for.
CREATE FUNCTION @extschema@._upgrade_limits(OUT max_ratio float8, OUT per_product int,
	OUT scan_window int, OUT max_customer_products int)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 2.0::float8, 10, 200, 500 $$;
COMMENT ON FUNCTION @extschema@._upgrade_limits() IS
	'internal: how far the stored candidate lists reach (price ratio 2 up, 1/2 down), how many are kept per product and direction, how many price neighbours are scanned, and the customer size beyond which a history gives no upgrade paths';

-- The query of a tenant's upgrade and downsell lists: its priced products
-- as product_model has them (the catalog's attributes; a product without a
-- catalog price is not ranked), and its lines in any order (grouped by
-- customer by _upgrade_build, 16 bytes a line, within
-- upsell.itemsets_memory_limit: PostgreSQL's sort of them by customer was a
-- third of the build), as of its refresh snapshot or of the snapshot given
-- (a side build's worker, which cannot read the product_model its refresh
-- has not committed).  With stored (_upgrade_build's), only what changed.
-- The rows are _upgrade_pass's: the lists', then the counts' they were
-- ranked from.  With fold, the counts the tenant's upgrade_count_model
-- keeps with the changes of the refresh's new lines
-- (pg_temp.upsell_new_lines) folded in: the histories of their customers
-- as purchase_history_model has them, which must be as they were counted
-- (a side build's worker reads them as its refresh's previous one
-- committed them), and the new lines, written into the query.
CREATE FUNCTION @extschema@._upgrade_lists_query(tenant_id bigint, snapshot pg_snapshot, stored text,
	fold boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	lim record := @extschema@._upgrade_limits();
	counts text;
	customers bigint[];
	histories text;
	new_lines text;
BEGIN
	IF fold THEN
		counts := format('SELECT c.chunk, c.state FROM @extschema@.upgrade_count_model c '
						 'WHERE c.tenant_id OPERATOR(pg_catalog.=) %s ORDER BY c.chunk', tenant_id);
		customers := ARRAY(SELECT DISTINCT n.customer_id FROM pg_temp.upsell_new_lines n
						   WHERE n.customer_id IS NOT NULL AND n.product_id IS NOT NULL AND n.sold ORDER BY 1);
		new_lines := @extschema@._new_lines_query('{customer_id, order_key, ordered_at, product_id}',
			'{bigint, bigint, timestamptz, bigint}', '{n.customer_id, n.order_key, n.ordered_at, n.product_id}',
			'n.product_id IS NOT NULL AND n.sold');
		histories := @extschema@._histories_of(tenant_id, customers,
			'h.customer_id, h.product_ids, h.first_at, h.last_at');
	END IF;
	RETURN format($q$
		WITH priced AS (
			SELECT c.product_id, c.price,
				   CASE WHEN c.variant_group IS NOT NULL
						THEN pg_catalog.dense_rank() OVER (ORDER BY c.variant_group) OPERATOR(pg_catalog.-) 1 END AS g,
				   CASE WHEN c.category IS NOT NULL
						THEN pg_catalog.dense_rank() OVER (ORDER BY c.category) OPERATOR(pg_catalog.-) 1 END AS c
			FROM %s c
			WHERE c.price OPERATOR(pg_catalog.>) 0),
		-- (with stored lists also without a priced product: every stored
		-- list is then named as gone)
		products AS (
			SELECT coalesce(pg_catalog.array_agg(p.product_id), '{}') AS ids,
				   coalesce(pg_catalog.array_agg(p.g::int), '{}') AS gs,
				   coalesce(pg_catalog.array_agg(p.c::int), '{}') AS cs,
				   coalesce(pg_catalog.array_agg(p.price::float8), '{}') AS ps
			FROM priced p HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 OR %s)
		SELECT %s::bigint AS tenant_id, b.product_id,
			   CASE WHEN b.upgrade THEN 'upgrade' WHEN NOT b.upgrade THEN 'downsell' END AS kind,
			   b.buyers, b.candidate_ids, b.same_group, b.paths, b.candidate_buyers,
			   b.popularity, b.closeness, b.score, b.counts_chunk, b.counts_state, b.counts_from
		FROM products p
		CROSS JOIN LATERAL @extschema@._upgrade_build(p.ids, p.gs, p.cs, p.ps, %L, %s, %s, %s, %s, %L, %L, %L, %L) b$q$,
		@extschema@._catalog_products(tenant_id), (stored IS NOT NULL)::text, tenant_id,
		'SELECT l.customer_id, l.order_key, l.ordered_at, l.product_id FROM '
			|| @extschema@._tenant_lines(tenant_id, snapshot) || ' l WHERE l.product_id IS NOT NULL AND l.sold',
		lim.max_ratio, lim.per_product, lim.scan_window, lim.max_customer_products, stored,
		counts, histories, new_lines);
END
$$;

-- The rows of _upgrade_lists_query: a tenant's upgrade lists (the columns
-- of upgrade_list_model), then the counts they were ranked from.
CREATE TYPE @extschema@._upgrade_pass AS (tenant_id bigint, product_id bigint, kind text, buyers bigint,
	candidate_ids bigint[], same_group boolean[], paths bigint[], candidate_buyers bigint[],
	popularity float8[], closeness float8[], score float8[], counts_chunk int, counts_state bytea,
	counts_from text);

-- The query of a side build or a refresh: in an incremental refresh, only
-- the rows that differ from the stored ones (the previous refresh's, which
-- the side build's worker reads as committed and the refresh has not
-- replaced yet): a new or changed row as it is now, a row that went with
-- its key and NULL buyers.  The lists are ranked whole (popularity within
-- a pool moves with any purchase) but few of them change: 752 of 199,720
-- rows after 1% new orders at 10M lines, compared where they are computed,
-- in the worker, by _upgrade_build as it emits them.  What they are ranked
-- from is counted whole by a full refresh; an incremental one's worker
-- folds the new lines into the counts kept (upgrade_count_model): at 10M
-- lines counting every line was the largest step of the worker's 5.8 s of
-- CPU, the fold takes it to 4.3-4.8 s.  Only the worker
-- folds (a snapshot given): it reads the changed customers' histories as
-- the previous refresh committed them, which the refresh itself has
-- replaced by the time it builds the lists (purchase_history_model, 35),
-- so without a worker every line is counted.
CREATE FUNCTION @extschema@._upgrade_query(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT @extschema@._incremental(tenant_id) OR to_regclass('pg_temp.upsell_changed_products') IS NULL THEN
		RETURN @extschema@._upgrade_lists_query(tenant_id, snapshot, NULL);
	END IF;
	RETURN @extschema@._upgrade_lists_query(tenant_id, snapshot, format(
		'SELECT m.product_id, m.kind OPERATOR(pg_catalog.=) ''upgrade'', m.buyers, m.candidate_ids, m.same_group, '
		'm.paths, m.candidate_buyers, m.popularity, m.closeness, m.score FROM @extschema@.upgrade_list_model m '
		'WHERE m.tenant_id OPERATOR(pg_catalog.=) %s ORDER BY m.product_id', tenant_id),
		snapshot IS NOT NULL AND to_regclass('pg_temp.upsell_new_lines') IS NOT NULL
		AND EXISTS (SELECT FROM @extschema@.upgrade_count_model c WHERE c.tenant_id = _upgrade_query.tenant_id));
END
$$;

CREATE FUNCTION @extschema@._build_upgrade_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	unpriced bigint;
	rows text;
	changed bigint[];
	n bigint;
BEGIN
	-- incremental or not, the ranking is rebuilt from the catalog and the
	-- order lines (one pass each)
	SELECT count(*) FILTER (WHERE m.price IS NULL OR NOT m.price > 0) INTO unpriced
	FROM @extschema@.product_model m WHERE m.tenant_id = _build_upgrade_model.tenant_id;
	IF unpriced > 0 THEN
		RAISE NOTICE 'upsell: tenant %: % products with a NULL or non-positive price left out of upgrade and downsell candidates',
			tenant_id, unpriced;
	END IF;
	IF incremental AND @extschema@._lines_unchanged(tenant_id)
	   AND @extschema@._changed_products('product_model') = '{}' THEN
		-- the same lines and catalog: the same lists
		RETURN @extschema@._kept_rows('upgrade_list_model', tenant_id);
	END IF;
	-- computed by a side build (_define_side_build), or here; the rows of
	-- the counts they come with are kept aside (_chunks_keep) for
	-- upgrade_count_model, built next
	PERFORM @extschema@._chunks_begin('upgrade_count_model', tenant_id);
	rows := 'SELECT r.tenant_id, r.product_id, r.kind, r.buyers, r.candidate_ids, r.same_group, r.paths, '
		'r.candidate_buyers, r.popularity, r.closeness, r.score FROM ('
		|| CASE WHEN @extschema@._side_ready('upgrade_list_model')
				THEN 'SELECT * FROM @extschema@._side_rows(''upgrade_list_model'', NULL::@extschema@._upgrade_pass)'
				ELSE @extschema@._upgrade_query(tenant_id) END
		|| ') r WHERE @extschema@._chunks_keep(''upgrade_count_model'', r.tenant_id, r.counts_chunk, r.counts_state, r.counts_from)';
	IF NOT (incremental AND @extschema@._incremental(tenant_id))
	   OR to_regclass('pg_temp.upsell_changed_products') IS NULL THEN
		RETURN @extschema@._publish('upgrade_list_model', tenant_id, rows);
	END IF;
	-- incrementally the rows that differ (_upgrade_query): the products
	-- they are of get their rows anew, the changed and the unchanged ones,
	-- and are noted for the cart
	IF to_regclass('pg_temp.upsell_upgrade_changes') IS NOT NULL THEN
		DROP TABLE pg_temp.upsell_upgrade_changes;
	END IF;
	EXECUTE 'CREATE TEMP TABLE upsell_upgrade_changes ON COMMIT DROP AS ' || rows;
	changed := ARRAY(SELECT DISTINCT c.product_id FROM pg_temp.upsell_upgrade_changes c ORDER BY 1);
	PERFORM @extschema@._note_changed('upgrade_list_model', changed);
	n := @extschema@._publish('upgrade_list_model', tenant_id, $q$
		SELECT c.* FROM pg_temp.upsell_upgrade_changes c WHERE c.buyers IS NOT NULL
		UNION ALL
		SELECT o.* FROM @extschema@.upgrade_list_model o
		WHERE o.tenant_id OPERATOR(pg_catalog.=) $1 AND o.product_id OPERATOR(pg_catalog.=) ANY ($2)
		  AND NOT EXISTS (SELECT FROM pg_temp.upsell_upgrade_changes c
						  WHERE c.product_id OPERATOR(pg_catalog.=) o.product_id
							AND c.kind OPERATOR(pg_catalog.=) o.kind)$q$, changed);
	DROP TABLE pg_temp.upsell_upgrade_changes;
	RETURN n;
END
$$;

-- One row per product and direction, not per candidate: the ten times as
-- many rows (2M for a catalog of 100,000 products), their heap and their
-- primary key, were most of the model's build time.
SELECT @extschema@._define_model('upgrade_list_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL,
	  kind text NOT NULL CHECK (kind IN ('upgrade', 'downsell')), buyers bigint NOT NULL,
	  candidate_ids bigint[] NOT NULL, same_group boolean[] NOT NULL, paths bigint[] NOT NULL,
	  candidate_buyers bigint[] NOT NULL, popularity float8[] NOT NULL, closeness float8[] NOT NULL,
	  score float8[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id, kind)$$,
	NULL, 40, '@extschema@._build_upgrade_model(bigint, boolean)',
	'per product and kind (upgrade: pricier, downsell: cheaper): its best alternatives of the same variant group or category, up to twice or half its price, in rank order as arrays (candidate_ids, with the evidence behind their score in the arrays of the same positions); read as one row per candidate through the view upgrade_model (prices, stock and category are read from product_model)',
	'product_id');
SELECT @extschema@._define_side_build('upgrade_list_model', '@extschema@._upgrade_query(bigint, pg_snapshot)', during_count => true,
	incremental => true);

-- The counts the upgrade lists were ranked from (src/core/upgrade.h,
-- UpgCounts): buyers per product, variant group and category, and the
-- upgrade paths per pair, in chunks of bytes (128 MB of paths at most a
-- chunk), which an incremental refresh folds its new lines into instead of
-- counting every line again; counted says which it did ('all lines' or
-- 'new lines').  Published with the lists, which carry them
-- (_chunks_keep); kept as they are when the lists are.
CREATE FUNCTION @extschema@._build_upgrade_counts(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- (kept as they are when the lists are: the same lines and catalog)
	RETURN @extschema@._publish_kept_chunks('upgrade_count_model', tenant_id);
END
$$;

SELECT @extschema@._define_chunks_model('upgrade_count_model', 42, '@extschema@._build_upgrade_counts(bigint, boolean)',
	'per tenant, in chunks: the counts its upgrade lists were ranked from (buyers per product, variant group and category, upgrade paths per pair), which an incremental refresh folds its new lines into; counted: whether every line was read (''all lines'') or only the new ones (''new lines'')');

-- The candidates one row each, as the serving functions, the funnel's
-- builders and analysts read them (the shape of 1.0's upgrade_model table).
-- The arrays are unnested in the select list, in step (one call per
-- element; a FROM-clause unnest materializes each array per row first, and
-- the builders unnest every product's list); conditions on tenant_id,
-- product_id and kind still reach the primary key.
CREATE VIEW @extschema@.upgrade_model AS
SELECT l.tenant_id, l.product_id, l.kind, pg_catalog.unnest(l.candidate_ids) AS candidate_id,
	   pg_catalog.unnest(l.same_group) AS same_group, pg_catalog.unnest(l.paths) AS paths, l.buyers,
	   pg_catalog.unnest(l.candidate_buyers) AS candidate_buyers,
	   pg_catalog.unnest(l.popularity) AS popularity, pg_catalog.unnest(l.closeness) AS closeness,
	   pg_catalog.unnest(l.score) AS score
FROM @extschema@.upgrade_list_model l;
COMMENT ON VIEW @extschema@.upgrade_model IS
	'per product, kind (upgrade: pricier, downsell: cheaper) and candidate: its best alternatives of the same variant group or category, up to twice or half its price, with the evidence behind their score (at most 10 per product and kind; the rows of upgrade_list_model''s arrays)';

CREATE FUNCTION @extschema@._build_unit_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN @extschema@._publish('unit_model', tenant_id, format($q$
		SELECT $1 AS tenant_id, c.product_id, c.unit_size, c.unit_name
		FROM %s c
		WHERE c.unit_size OPERATOR(pg_catalog.>) 0$q$,
		@extschema@._catalog_products(tenant_id)));
END
$$;

SELECT @extschema@._define_model('unit_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, unit_size numeric NOT NULL,
	  unit_name text, PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 41, '@extschema@._build_unit_model(bigint, boolean)',
	'per product with a registered unit size: the size and its unit name (for unit-price comparisons of upgrades)',
	'product_id');

-- ---- serving ----------------------------------------------------------------

-- "500 g at 9.00 → 1000 g at 12.00: +3.00, 33% less per g", or NULL when the
-- two sizes are not comparable (no size, or different unit names).
CREATE FUNCTION @extschema@._unit_offer(price numeric, unit_size numeric, unit_name text,
	candidate_price numeric, candidate_unit_size numeric, candidate_unit_name text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE
	WHEN unit_size > 0 AND candidate_unit_size > 0 AND price > 0 AND candidate_price > 0
		 AND unit_name IS NOT DISTINCT FROM candidate_unit_name
	THEN format('%s %s at %s → %s %s at %s: %s%s, %s%% %s per %s',
				trim_scale(unit_size), coalesce(unit_name, 'unit'), price,
				trim_scale(candidate_unit_size), coalesce(unit_name, 'unit'), candidate_price,
				CASE WHEN candidate_price >= price THEN '+' ELSE '-' END,
				abs(candidate_price - price),
				abs(round(100 * (1 - (candidate_price / candidate_unit_size) / (price / unit_size)))),
				CASE WHEN candidate_price / candidate_unit_size <= price / unit_size THEN 'less' ELSE 'more' END,
				coalesce(unit_name, 'unit'))
END;
COMMENT ON FUNCTION @extschema@._unit_offer(numeric, numeric, text, numeric, numeric, text) IS
	'internal: the unit-price comparison of two pack sizes as a sentence, NULL when not comparable';

-- Why an upgrade is offered, in words: the customers who took that path,
-- else the variant group or the category it steps up in.
-- (in C, src/upgrade.c: the product page's and the cart's builds write the
-- same words)
CREATE FUNCTION @extschema@._upgrade_evidence(paths bigint, buyers bigint, same_group boolean)
RETURNS text
AS 'MODULE_PATHNAME', 'upsell_upgrade_evidence_sql'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION @extschema@.upgrade_candidates(product_id bigint, k int DEFAULT 3,
	max_price_ratio numeric DEFAULT 1.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, candidate_id bigint, price numeric, extra_cost numeric,
			   price_ratio numeric, score float8, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	pid bigint := product_id;
	ratio numeric := max_price_ratio;
BEGIN
	IF pid IS NULL THEN
		RAISE EXCEPTION 'product_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._check_k(k);
	-- NaN and Infinity are above every number
	IF ratio IS NULL OR NOT (ratio >= 1 AND ratio <= 1e6) THEN
		RAISE EXCEPTION 'max_price_ratio must be a number from 1 to 1000000, not %', coalesce(ratio::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'An upgrade costs more: 1.5 allows up to 50% more than the product.';
	END IF;
	RETURN QUERY
	SELECT (row_number() OVER (ORDER BY u.same_group DESC, u.score DESC, u.candidate_id))::int,
		   u.candidate_id, m.price, m.price - a.price,
		   round(m.price / a.price, 4), round(u.score::numeric, 6)::float8,
		   concat_ws('; ',
			   @extschema@._upgrade_evidence(u.paths, u.buyers, u.same_group),
			   format('+%s (%s%% more)', m.price - a.price, round(100 * (m.price / a.price - 1))),
			   @extschema@._unit_offer(a.price, ua.unit_size, ua.unit_name, m.price,
									  uc.unit_size, uc.unit_name))
	FROM @extschema@.product_model a
	JOIN @extschema@.upgrade_model u ON u.tenant_id = a.tenant_id AND u.product_id = a.product_id
	JOIN @extschema@.product_model m ON m.tenant_id = u.tenant_id AND m.product_id = u.candidate_id
	LEFT JOIN @extschema@.unit_model ua ON ua.tenant_id = a.tenant_id AND ua.product_id = a.product_id
	LEFT JOIN @extschema@.unit_model uc ON uc.tenant_id = m.tenant_id AND uc.product_id = m.product_id
	WHERE a.tenant_id = t AND a.product_id = pid AND u.kind = 'upgrade'
	  AND m.price > a.price AND m.price <= a.price * ratio
	  AND m.in_stock
	  AND NOT @extschema@.is_excluded(t, u.candidate_id, m.category, ARRAY[pid])
	ORDER BY u.same_group DESC, u.score DESC, u.candidate_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.upgrade_candidates(bigint, int, numeric, bigint) IS
	'the k best pricier alternatives of a product (same variant group first, then same category; at most max_price_ratio times its price; in stock, not excluded), ranked by observed upgrade paths, popularity and step size; an unknown product gives no rows';

CREATE FUNCTION @extschema@.downsell_candidates(product_id bigint, k int DEFAULT 3,
	min_price_ratio numeric DEFAULT 0.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, candidate_id bigint, price numeric, saving numeric,
			   price_ratio numeric, score float8, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	pid bigint := product_id;
	ratio numeric := min_price_ratio;
BEGIN
	IF pid IS NULL THEN
		RAISE EXCEPTION 'product_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._check_k(k);
	IF ratio IS NULL OR NOT (ratio >= 0 AND ratio <= 1) THEN
		RAISE EXCEPTION 'min_price_ratio must be between 0 and 1, not %', coalesce(ratio::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A downsell costs less: 0.5 allows down to half the price of the product.';
	END IF;
	RETURN QUERY
	SELECT (row_number() OVER (ORDER BY u.same_group DESC, u.score DESC, u.candidate_id))::int,
		   u.candidate_id, m.price, a.price - m.price,
		   round(m.price / a.price, 4), round(u.score::numeric, 6)::float8,
		   concat_ws('; ',
			   CASE WHEN u.same_group THEN 'the same variant group for less'
					ELSE 'the same category for less' END,
			   format('-%s (%s%% less)', a.price - m.price, round(100 * (1 - m.price / a.price))),
			   CASE WHEN u.candidate_buyers > 0
					THEN format('bought by %s customer%s', u.candidate_buyers, CASE WHEN u.candidate_buyers > 1 THEN 's' ELSE '' END) END)
	FROM @extschema@.product_model a
	JOIN @extschema@.upgrade_model u ON u.tenant_id = a.tenant_id AND u.product_id = a.product_id
	JOIN @extschema@.product_model m ON m.tenant_id = u.tenant_id AND m.product_id = u.candidate_id
	WHERE a.tenant_id = t AND a.product_id = pid AND u.kind = 'downsell'
	  AND m.price < a.price AND m.price >= a.price * ratio
	  AND m.in_stock
	  AND NOT @extschema@.is_excluded(t, u.candidate_id, m.category, ARRAY[pid])
	ORDER BY u.same_group DESC, u.score DESC, u.candidate_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.downsell_candidates(bigint, int, numeric, bigint) IS
	'the k best cheaper alternatives of a product (same variant group first, then same category; at least min_price_ratio times its price; in stock, not excluded), ranked by closeness in price and popularity; for abandoned carts; an unknown product gives no rows';

-- ---- volume tiers -------------------------------------------------------------

CREATE TABLE IF NOT EXISTS @extschema@.volume_tiers (
	tier_id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	product_id	bigint,
	category	text,
	min_quantity int NOT NULL CHECK (min_quantity >= 1),
	unit_price	numeric CHECK (unit_price >= 0),
	percent_off	numeric CHECK (percent_off > 0 AND percent_off < 100),
	note		text,
	CONSTRAINT volume_tiers_product_or_category CHECK ((product_id IS NULL) <> (category IS NULL)),
	CONSTRAINT volume_tiers_unit_price_or_percent_off CHECK ((unit_price IS NULL) <> (percent_off IS NULL)),
	-- NaN and Infinity are above every number; money is bounded
	CONSTRAINT volume_tiers_unit_price_finite CHECK (unit_price < 1e15),
	UNIQUE NULLS NOT DISTINCT (tenant_id, product_id, category, min_quantity)
);
CREATE INDEX IF NOT EXISTS volume_tiers_tenant_id_category_min_quantity_idx ON @extschema@.volume_tiers (tenant_id, category, min_quantity);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.volume_tiers', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.volume_tiers', 'tier_id')::regclass, '');
COMMENT ON TABLE @extschema@.volume_tiers IS
	'volume pricing merchants set: from min_quantity units of a product (product_id) or of any product of a category (category), each unit costs unit_price, or percent_off less than the list price; product tiers replace category tiers; tenant_id 0 without tenants';

-- The volume tiers of a cart's lines (a line per element of product_ids, n
-- its position; quantities from 1, checked by the callers): the list price,
-- whether tiers apply (tiered: the product's own, else its category's), the
-- unit price the line pays at its quantity, and the next tier that lowers
-- it, if one does and the product may be offered more of (in stock, not
-- excluded).  No row for a product unknown or without a price, nor, with
-- tiered_only, for one without tiers.  quantity_offer is this for one line;
-- cart_offers (in C, directly) and the cart value of threshold_gap and
-- gap_fillers read a whole cart with it.  In C (src/serving_tiers.c), the
-- tiers read from the serving rules' cache: until 1.12 a query that hashed
-- every tier of the tenant and was planned per call, 1 ms of a tiered cart.
CREATE FUNCTION @extschema@._tier_offers(t bigint, product_ids bigint[], quantities int[],
	tiered_only boolean DEFAULT false)
RETURNS TABLE (n bigint, price numeric, tiered boolean, unit_price numeric, next_quantity int,
			   units_to_add int, new_unit_price numeric, total_saving numeric, reason text)
AS 'MODULE_PATHNAME', 'upsell_tier_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION @extschema@._tier_offers(bigint, bigint[], int[], boolean) IS
	'internal: per cart line (n) the list price, the unit price its volume tiers give at its quantity and the next tier that lowers it';

CREATE FUNCTION @extschema@.quantity_offer(product_id bigint, quantity int, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (unit_price numeric, next_quantity int, units_to_add int, new_unit_price numeric,
			   total_saving numeric, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	IF quantity_offer.product_id IS NULL THEN
		RAISE EXCEPTION 'product_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF quantity_offer.quantity IS NULL OR quantity_offer.quantity < 1 THEN
		RAISE EXCEPTION 'quantity must be at least 1, not %', coalesce(quantity_offer.quantity::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT o.unit_price, o.next_quantity, o.units_to_add, o.new_unit_price, o.total_saving, o.reason
	FROM @extschema@._tier_offers(t, ARRAY[quantity_offer.product_id], ARRAY[quantity_offer.quantity]) o;
END
$$;
COMMENT ON FUNCTION @extschema@.quantity_offer(bigint, int, bigint) IS
	'the next volume tier for a quantity in the cart: units to add, the new unit price and the total saving (next quantity × (current unit price − new unit price)); NULLs when no further tier lowers the price; an unknown or unpriced product gives no rows';
