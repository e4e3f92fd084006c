
-- ===========================================================================
-- Bundles: frequent itemsets, rules with several items, bundle offers
-- ===========================================================================

-- ---- mining (C: src/bundles.c over src/core/itemsets.c) -------------------

CREATE FUNCTION @extschema@._itemsets_from_query(query text, min_support float8,
	max_size int, min_count int, per_tenant boolean)
	RETURNS TABLE (tenant_id bigint, items bigint[], size int, count bigint,
				   support float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_itemsets_from_query'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._itemsets_from_query(text, float8, int, int, boolean) IS
	'frequent itemsets (FP-growth) of a query returning (order id, product id [, tenant id when per_tenant])';

CREATE FUNCTION @extschema@._rules_from_query(query text, min_support float8,
	min_confidence float8, max_size int, min_count int, max_consequent int, per_tenant boolean)
	RETURNS TABLE (tenant_id bigint, antecedent bigint[], consequent bigint[],
				   support float8, confidence float8, lift float8, leverage float8,
				   conviction float8, count bigint)
	AS 'MODULE_PATHNAME', 'upsell_rules_from_query'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._rules_from_query(text, float8, float8, int, int, int, boolean) IS
	'association rules from the frequent itemsets of a query returning (order id, product id [, tenant id when per_tenant])';

CREATE FUNCTION @extschema@._bundles_and_sets(query text, max_size int, min_count int,
	per_product int, stored text DEFAULT NULL, changed bigint[] DEFAULT NULL)
	RETURNS TABLE (product_id bigint, items bigint[], item_ends int[], counts bigint[],
				   supports float8[], lifts float8[], sets_chunk int, sets bytea, sets_counted text)
	AS 'MODULE_PATHNAME', 'upsell_bundle_pass'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._bundles_and_sets(text, int, int, int, text, bigint[]) IS
	'per product of a query returning (order id, product id): its per_product best itemsets of 2 to max_size products in at least min_count orders with lift > 1, ranked by lift, then count, then items, as one row of arrays in rank order (items: the ids of every set one after the other, item_ends: where each ends; sets_chunk NULL); then every set of 2 to max_size (at most 3) products in at least min_count orders, in chunks (sets_chunk, sets, sets_counted: bundle_set_model''s chunk, state and counted, ''all lines'' or ''new lines''); with stored (a query of the chunks kept at the same min_count, in order) and changed (the keys of the orders that gained lines since), the sets are folded from those rather than mined, or every line is mined when they cannot be (a NOTICE says why)';

-- The registered order lines as a mining query: one tenant's (order, product)
-- or, for a NULL tenant, every tenant's (order, product, tenant).  Lines with
-- a quantity <= 0 (returns, cancellations) do not count, as in the
-- co-occurrence counts.
CREATE FUNCTION @extschema@._order_lines_query(tenant_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN tenant_id IS NULL THEN
	'SELECT l.order_key, l.product_id, l.tenant_id FROM @extschema@.order_lines l WHERE l.sold'
ELSE
	format('SELECT l.order_key, l.product_id FROM @extschema@.order_lines l WHERE l.tenant_id OPERATOR(pg_catalog.=) %s AND l.sold',
		   tenant_id)
END;

-- ---- analysis ---------------------------------------------------------------

CREATE FUNCTION @extschema@.frequent_itemsets(min_support float8 DEFAULT 0.01,
	max_size int DEFAULT 4, min_count int DEFAULT NULL, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (items bigint[], size int, count bigint, support float8, lift float8)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	RETURN QUERY
	SELECT f.items, f.size, f.count, f.support, f.lift
	FROM @extschema@._itemsets_from_query(@extschema@._order_lines_query(t),
		 min_support, max_size, min_count, false) f;
END
$$;
COMMENT ON FUNCTION @extschema@.frequent_itemsets(float8, int, int, bigint) IS
	'every set of up to max_size products bought together in at least max(min_count, min_support * orders) of the tenant''s registered orders, with its order count, support and lift (support over the product of the items'' supports); FP-growth in C, memory bounded by upsell.itemsets_memory_limit';

CREATE FUNCTION @extschema@.frequent_itemsets(query text, min_support float8 DEFAULT 0.01,
	max_size int DEFAULT 4, min_count int DEFAULT NULL)
RETURNS TABLE (items bigint[], size int, count bigint, support float8, lift float8)
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT f.items, f.size, f.count, f.support, f.lift
	FROM @extschema@._itemsets_from_query(query, min_support, max_size, min_count, false) f;
END;
COMMENT ON FUNCTION @extschema@.frequent_itemsets(text, float8, int, int) IS
	'the same over any query returning (order id, product id); order ids of any type, product ids integers; the query runs with the caller''s rights';

CREATE FUNCTION @extschema@.association_rules(min_support float8, min_confidence float8,
	max_size int DEFAULT 4, min_count int DEFAULT NULL, max_consequent int DEFAULT 1,
	tenant_id bigint DEFAULT NULL)
RETURNS TABLE (antecedent bigint[], consequent bigint[], support float8, confidence float8,
			   lift float8, leverage float8, conviction float8, count bigint)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	RETURN QUERY
	SELECT r.antecedent, r.consequent, r.support, r.confidence, r.lift, r.leverage,
		   r.conviction, r.count
	FROM @extschema@._rules_from_query(@extschema@._order_lines_query(t),
		 min_support, min_confidence, max_size, min_count, max_consequent, false) r;
END
$$;
COMMENT ON FUNCTION @extschema@.association_rules(float8, float8, int, int, int, bigint) IS
	'rules antecedent => consequent from the frequent itemsets of the tenant''s registered orders (antecedent of any size, consequent of up to max_consequent products, arules'' default 1), with support, confidence, lift, leverage, conviction and order count';

CREATE FUNCTION @extschema@.association_rules(query text, min_support float8,
	min_confidence float8, max_size int DEFAULT 4, min_count int DEFAULT NULL,
	max_consequent int DEFAULT 1)
RETURNS TABLE (antecedent bigint[], consequent bigint[], support float8, confidence float8,
			   lift float8, leverage float8, conviction float8, count bigint)
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT r.antecedent, r.consequent, r.support, r.confidence, r.lift, r.leverage,
		   r.conviction, r.count
	FROM @extschema@._rules_from_query(query, min_support, min_confidence, max_size,
		 min_count, max_consequent, false) r;
END;
COMMENT ON FUNCTION @extschema@.association_rules(text, float8, float8, int, int, int) IS
	'the same rules over any query returning (order id, product id); the query runs with the caller''s rights';

-- ---- model ------------------------------------------------------------------

-- Bundles of 2 or 3 products bought together in at least
-- upsell.bundle_min_count orders and more often than chance (lift > 1); each
-- product keeps its upsell.bundles_per_product best by lift, then count.
-- The query of a tenant's _bundle_pass rows at a min_count (NULL:
-- upsell.bundle_min_count), from its lines as of its refresh snapshot, or
-- as of the snapshot given (a side build's worker, see _define_side_build):
-- the bundles, then every frequent set in chunks for bundle_set_model.  In
-- an incremental build whose last refresh kept the sets at this count, the
-- orders of the new lines are folded into them (_bundles_and_sets), written
-- into the query: a side build's worker cannot read the new lines'
-- temporary table, and reads the sets as that refresh committed them.
-- Mining every line took 5.0-5.6 s of the worker's CPU in an incremental
-- refresh at 10M lines, FP-growth about 3 s of it.
CREATE TYPE @extschema@._bundle_pass AS (
	tenant_id bigint, product_id bigint, items bigint[], item_ends int[], counts bigint[],
	supports float8[], lifts float8[], sets_chunk int, sets bytea, sets_counted text);
COMMENT ON TYPE @extschema@._bundle_pass IS
	'internal: a row of the bundles'' pass: a bundle_list_model row (sets_chunk NULL), or a chunk of bundle_set_model (the rest NULL)';

-- Whether upsell.itemsets_memory_limit is at least the limit the kept
-- bundles were mined or folded under (source_state's settings, "bundles";
-- 0: no limit): mining at their count then fits as it did.
CREATE FUNCTION @extschema@._bundles_limit_kept(mined jsonb)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN coalesce(nullif(@extschema@._itemsets_limit_kb(), 0), 2147483647)
	   >= coalesce(nullif((mined ->> 'memory_limit_kb')::int, 0), 2147483647);

CREATE FUNCTION @extschema@._bundle_query(tenant_id bigint, snapshot pg_snapshot, min_count int DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	at_count int := coalesce(min_count, current_setting('upsell.bundle_min_count', true)::int, 5);
	mined jsonb := (SELECT s.settings -> 'bundles' FROM @extschema@.source_state s
					WHERE s.tenant_id = _bundle_query.tenant_id);
	stored text;
	changed bigint[];
BEGIN
	-- Folded only at the count the sets were kept at, and under a memory
	-- limit at least as large as theirs: under a lower one, mining may not
	-- fit at that count, and is done to find out (_build_bundle_model
	-- raises the count until it fits).  The fold charges the limit only
	-- with the sets it counts, not with an FP-tree: a shop whose mining
	-- would outgrow an unchanged limit keeps its count until the next full
	-- refresh raises it.
	IF @extschema@._incremental(tenant_id) AND to_regclass('pg_temp.upsell_new_lines') IS NOT NULL
	   AND (mined ->> 'min_count')::int = at_count AND NOT mined ? 'fitted'
	   AND @extschema@._bundles_limit_kept(mined)
	   AND EXISTS (SELECT FROM @extschema@.bundle_set_model b WHERE b.tenant_id = _bundle_query.tenant_id) THEN
		stored := format('SELECT s.state FROM @extschema@.bundle_set_model s '
						 'WHERE s.tenant_id OPERATOR(pg_catalog.=) %s ORDER BY s.chunk', tenant_id);
		-- (any new line's order: one that only gained a return is counted
		-- again for nothing, and no order that gained a sold line is missed)
		changed := ARRAY(SELECT DISTINCT n.order_key FROM pg_temp.upsell_new_lines n
						 WHERE n.order_key IS NOT NULL ORDER BY 1);
	END IF;
	RETURN format($q$
		SELECT %s::bigint AS tenant_id, b.product_id, b.items, b.item_ends, b.counts, b.supports, b.lifts,
			   b.sets_chunk, b.sets, b.sets_counted
		FROM @extschema@._bundles_and_sets(%L, 3, %s, %s, %L, %L::bigint[]) b$q$,
		tenant_id,
		'SELECT l.order_key, l.product_id FROM ' || @extschema@._tenant_lines(tenant_id, snapshot)
			|| ' l WHERE l.sold',
		at_count,
		-- the settings exist once the module is loaded; their defaults until then
		coalesce(current_setting('upsell.bundles_per_product', true)::int, 10),
		stored, changed);
END
$$;

-- When a shop is so large that mining at that count would pass
-- upsell.itemsets_memory_limit, the count is raised (x4) until it fits, so
-- one huge tenant does not fail the whole refresh.  The count the bundles
-- were mined at and the limit they fitted in are recorded in source_state's
-- settings, under "bundles": a refresh without new lines keeps the bundles
-- only while mining the same lines would give them, that is under a limit
-- at least as large when the count was the configured one, the same limit
-- when it was raised (a larger one may fit a lower count).
CREATE FUNCTION @extschema@._build_bundle_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	configured int := coalesce(current_setting('upsell.bundle_min_count', true)::int, 5);
	min_count int := configured;
	limit_kb int := @extschema@._itemsets_limit_kb();
	mined jsonb := (SELECT s.settings -> 'bundles' FROM @extschema@.source_state s
					WHERE s.tenant_id = _build_bundle_model.tenant_id);
	most_orders bigint;
	rows text;
	n bigint;
	state @extschema@.source_state;
	none_fit boolean := false;
BEGIN
	IF incremental AND @extschema@._lines_unchanged(tenant_id)
	   AND (mined IS NULL
			OR CASE WHEN (mined ->> 'min_count')::int = configured
					THEN @extschema@._bundles_limit_kept(mined)
					ELSE (mined ->> 'memory_limit_kb')::int = limit_kb END) THEN
		-- the same lines and settings (_model_settings), and the count
		-- mining would take: the same itemsets, and no product noted as
		-- changed
		RETURN @extschema@._kept_rows('bundle_list_model', tenant_id);
	END IF;
	SELECT coalesce(max(m.orders), 0) INTO most_orders
	FROM @extschema@.cooccurrence_model m WHERE m.tenant_id = _build_bundle_model.tenant_id;
	-- incremental: itemsets do not add up from partial counts; rebuild
	LOOP
		BEGIN
			-- computed by a side build (_define_side_build) at the first
			-- count, or here; the chunks of frequent sets that come with
			-- the bundles are kept aside (_chunks_keep) for
			-- bundle_set_model, built next
			PERFORM @extschema@._chunks_begin('bundle_set_model', tenant_id);
			IF none_fit THEN
				rows := 'SELECT (NULL::@extschema@._bundle_pass).* WHERE false';
			ELSIF @extschema@._side_ready('bundle_list_model') THEN
				rows := 'SELECT * FROM @extschema@._side_rows(''bundle_list_model'', NULL::@extschema@._bundle_pass)';
			ELSE
				rows := @extschema@._bundle_query(tenant_id, NULL, min_count);
			END IF;
			rows := 'SELECT r.tenant_id, r.product_id, r.items, r.item_ends, r.counts, r.supports, r.lifts '
				'FROM (' || rows || ') r '
				'WHERE @extschema@._chunks_keep(''bundle_set_model'', r.tenant_id, r.sets_chunk, r.sets, r.sets_counted)';
			-- (no model after it reads the bundles: the product page joins
			-- them when served, so nothing is noted as changed)
			n := @extschema@._publish('bundle_list_model', tenant_id, rows);
			-- the count and limit mined at, in the tenant's source_state
			-- (published at the start of this refresh), published anew
			-- through the model store with only its settings changed: as a
			-- constant row, since on Citus _publish deletes the row before
			-- it runs the query (which could not read it then)
			mined := jsonb_build_object('min_count', min_count, 'memory_limit_kb', limit_kb)
				|| CASE WHEN none_fit THEN '{"fitted": false}'::jsonb ELSE '{}' END;
			SELECT * INTO state FROM @extschema@.source_state s WHERE s.tenant_id = _build_bundle_model.tenant_id;
			IF FOUND AND state.settings -> 'bundles' IS DISTINCT FROM mined THEN
				state.settings := state.settings || jsonb_build_object('bundles', mined);
				PERFORM @extschema@._publish('source_state', tenant_id,
					format('SELECT (%L::@extschema@.source_state).*', state));
			END IF;
			RETURN n;
		EXCEPTION WHEN program_limit_exceeded THEN
			-- past the tenant's order count nothing can be frequent: the
			-- limit is below what the miner needs per order line, whatever
			-- the count; the tenant is published without bundles rather
			-- than fail every refresh
			IF min_count::bigint * 4 > most_orders THEN
				IF none_fit THEN
					RAISE;
				END IF;
				RAISE WARNING 'upsell: tenant %: no bundles: mining exceeds upsell.itemsets_memory_limit (% kB) even at min_count %',
					tenant_id, limit_kb, min_count
					USING DETAIL = 'The tenant has ' || most_orders || ' orders, so no higher count can find a bundle; the miner needs memory per order line at any count.',
						  HINT = 'Raise upsell.itemsets_memory_limit (or work_mem) for the refresh.';
				none_fit := true;
				CONTINUE;
			END IF;
			RAISE NOTICE 'upsell: tenant %: bundles at min_count % exceed upsell.itemsets_memory_limit; retrying at %',
				tenant_id, min_count, min_count * 4;
			min_count := min_count * 4;
		END;
	END LOOP;
END
$$;

-- Built last but for the orders (build order 72, not this layer's 60): its
-- side build starts only once the count is done and is the last to finish,
-- so the refresh builds everything else first (the histories, the upgrade
-- lists, the cart, the product page's lists, the thresholds) while the
-- worker mines; no model reads the bundles (the product page joins them
-- when served).  Built at 60, an incremental refresh at 10M lines waited
-- 2-3 s for the worker while the histories, which do not need the bundles,
-- waited behind it.
--
-- One row per product, its bundles as arrays, not a row per bundle: every
-- refresh replaces every row (a bundle's support and lift move with the
-- shop's order count), and at 10M lines the 179,243 rows of 52,739
-- products took 0.84-1.20 s to replace, as rows of arrays 0.20 s.
SELECT @extschema@._define_model('bundle_list_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL,
	  items bigint[] NOT NULL, item_ends int[] NOT NULL, counts bigint[] NOT NULL,
	  supports float8[] NOT NULL, lifts float8[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 72, '@extschema@._build_bundle_model(bigint, boolean)',
	'per product: its best bundles (2 or 3 products bought together in at least upsell.bundle_min_count orders, lift > 1) by lift, then order count, as arrays in rank order, an element per bundle (items: the ids of every bundle one after the other, item_ends: where each bundle''s ids end); read as one row per bundle through the view bundle_model',
	'product_id');
SELECT @extschema@._define_side_build('bundle_list_model', '@extschema@._bundle_query(bigint, pg_snapshot, int)',
	incremental => true);

-- The bundles one row each (the shape of 1.11's bundle_model table), as
-- bundle_offers and analysts read them.
CREATE VIEW @extschema@.bundle_model AS
SELECT l.tenant_id, l.product_id, o.n::int AS bundle_rank,
	   l.items[coalesce(l.item_ends[o.n OPERATOR(pg_catalog.-) 1], 0) OPERATOR(pg_catalog.+) 1 : o.item_end] AS items,
	   (o.item_end OPERATOR(pg_catalog.-) coalesce(l.item_ends[o.n OPERATOR(pg_catalog.-) 1], 0))::int AS size,
	   o.count, o.support, o.lift
FROM @extschema@.bundle_list_model l,
	 unnest(l.item_ends, l.counts, l.supports, l.lifts) WITH ORDINALITY o(item_end, count, support, lift, n);
COMMENT ON VIEW @extschema@.bundle_model IS
	'per product and bundle: its best bundles (2 or 3 products bought together in at least upsell.bundle_min_count orders, lift > 1) by lift, then order count, one row each (the rows of bundle_list_model''s arrays)';

-- Every set of 2 or 3 products in at least upsell.bundle_min_count orders,
-- with its order count, as the tenant's last refresh found it (not only the
-- best per product that bundle_list_model keeps: lifts move with every order, and
-- a set outside the best may enter them), in chunks of bytes
-- (_bundles_and_sets): the next incremental refresh folds the orders of its
-- new lines into them instead of mining every line.  Published with the
-- bundles, which carry them (_chunks_keep); kept as they are when the
-- bundles are.  About 645,000 sets, 17.6 MB, at 10M lines.
CREATE FUNCTION @extschema@._build_bundle_sets(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- (kept as they are when the bundles are: the same lines and settings)
	RETURN @extschema@._publish_kept_chunks('bundle_set_model', tenant_id);
END
$$;

SELECT @extschema@._define_chunks_model('bundle_set_model', 73, '@extschema@._build_bundle_sets(bigint, boolean)',
	'per tenant, in chunks: every set of 2 or 3 products in at least upsell.bundle_min_count orders with its order count, as its last refresh found them (bundle_list_model keeps the best per product), which an incremental refresh folds the orders of its new lines into; counted: whether every line was mined (''all lines'') or the orders of the new lines folded in (''new lines'')');

-- ---- serving ----------------------------------------------------------------

CREATE FUNCTION @extschema@.bundle_offers(product_id bigint, k int DEFAULT 3,
	discount numeric DEFAULT 0.10, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, items bigint[], size int, count bigint, support float8,
			   lift float8, list_price numeric, bundle_price numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	anchor bigint := product_id;
BEGIN
	IF anchor IS NULL THEN
		RAISE EXCEPTION 'product_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._check_k(k);
	IF discount IS NULL OR discount < 0 OR discount >= 1 THEN
		RAISE EXCEPTION 'discount must be at least 0 and below 1, not %', coalesce(discount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass 0.10 for 10% off the list price sum.';
	END IF;

	RETURN QUERY
	WITH priced AS (
		SELECT b.items, b.size, b.count, b.support, b.lift,
			   CASE WHEN count(m.price) = b.size THEN sum(m.price) END AS list_price,
			   -- every item known, in stock, not excluded next to the others,
			   -- and no two variants of one product
			   count(m.product_id) = b.size
			   AND bool_and(m.in_stock)
			   AND NOT bool_or(@extschema@.is_excluded(t, m.product_id, m.category, b.items))
			   AND count(DISTINCT m.variant_group) = count(m.variant_group) AS offerable
		FROM @extschema@.bundle_model b
		CROSS JOIN LATERAL unnest(b.items) AS i(item)
		LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = i.item
		WHERE b.tenant_id = t AND b.product_id = anchor
		GROUP BY b.items, b.size, b.count, b.support, b.lift)
	SELECT (row_number() OVER (ORDER BY p.lift DESC, p.support DESC, p.items))::int,
		   p.items, p.size, p.count, p.support, p.lift, p.list_price,
		   round(p.list_price * (1 - discount), 2)
	FROM priced p
	WHERE p.offerable
	ORDER BY p.lift DESC, p.support DESC, p.items
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.bundle_offers(bigint, int, numeric, bigint) IS
	'the k best stored bundles containing the product (by lift, then support), in-stock and not excluded items only, with the list price sum and the bundle price at the discount (rounded to cents; NULL when a price is unknown)';
