
-- ===========================================================================
-- Cross-sell: frequently bought together, and complements of a cart
-- ===========================================================================

-- ---- models ---------------------------------------------------------------

-- A tenant's counts are stored in chunks, not as one value (PostgreSQL
-- caps a value at 1 GB, about 60M distinct pairs): each chunk is a
-- cooccurrence value holding every product's order count and the pairs of a
-- range of products (those from first_product up to the next chunk's; chunk
-- 0 from the lowest), at most upsell.cooccurrence_chunk_pairs pairs (a
-- product with more is a chunk of its own).  These are the base, which a
-- full refresh writes.  An incremental refresh leaves them as they are and
-- writes the delta, chunk -1: the counts of every order folded in since the
-- last full refresh (the stored delta plus the new lines' counts), a value
-- of the same form with all its pairs.  Rewriting the base instead took 3-4
-- s at 10M lines (one 100 MB chunk read, merged, written, the old deleted),
-- since new orders reach every chunk.  The readers read each base chunk with
-- the delta summed in (_cooccurrence_parts, the *_sum readers).
--
-- The delta is bounded: when it would hold more pairs than a quarter of the
-- base's (or than a chunk may hold), the incremental refresh writes the base
-- again, base and delta merged, and no delta.  Rewriting the delta costs
-- what it holds, and every reader merges it in: at a quarter, the delta's
-- rewrite costs at most a quarter of the base's and a reader merges at most
-- a quarter more pairs.  (1% new orders of the 1M-line bench shop made a
-- delta of 1.3% of the base's pairs: many incremental refreshes fit
-- between two full ones.)
CREATE FUNCTION @extschema@._build_cooccurrence_chunks(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- source_state decided: new lines only (all of new orders), or all
	inc boolean := incremental AND @extschema@._incremental(tenant_id);
	max_pairs bigint := coalesce(current_setting('upsell.cooccurrence_chunk_pairs', true)::bigint, 16777216);
	old_chunks bigint;
	base_pairs bigint;
	over_bound boolean;
	delta_pairs bigint;
	-- the delta an incremental build stores: the stored one (if any) plus
	-- the new lines' counts, one row (pg_temp.upsell_delta)
	delta text := '(SELECT d.state, d.max_ordered_at, d.max_order_key FROM pg_temp.upsell_delta d)';
	n bigint;
	held boolean;
BEGIN
	SELECT count(*), sum((@extschema@.cooccurrence_info(c.state)).pairs),
		   coalesce(bool_or((@extschema@.cooccurrence_info(c.state)).pairs > max_pairs), false)
	INTO old_chunks, base_pairs, over_bound
	FROM @extschema@.cooccurrence_chunks c
	WHERE c.tenant_id = _build_cooccurrence_chunks.tenant_id AND c.chunk >= 0;
	IF inc AND old_chunks > 0 AND @extschema@._lines_unchanged(tenant_id) AND NOT over_bound THEN
		-- no new lines: the chunks and the delta hold the counts of the same
		-- lines, each chunk within the bound, as the merge below would leave
		-- them (rewriting one chunk unchanged took 3-4 s at 10M lines)
		RETURN @extschema@._kept_rows('cooccurrence_chunks', tenant_id);
	END IF;
	IF inc AND old_chunks > 0 THEN
		IF to_regclass('pg_temp.upsell_delta') IS NOT NULL THEN
			DROP TABLE pg_temp.upsell_delta;
		END IF;
		CREATE TEMP TABLE upsell_delta ON COMMIT DROP AS
		SELECT CASE WHEN o.state IS NULL THEN a.state
					ELSE @extschema@.cooccurrence_merge(o.state, a.state) END AS state,
			   greatest(o.max_ordered_at, a.max_ordered_at) AS max_ordered_at,
			   greatest(o.max_order_key, a.max_order_key) AS max_order_key
		FROM (SELECT @extschema@.cooccurrence_agg(l.order_key, l.product_id, l.quantity) AS state,
					 max(l.ordered_at) AS max_ordered_at, max(l.order_key) AS max_order_key
			  FROM pg_temp.upsell_new_lines l) a
		LEFT JOIN @extschema@.cooccurrence_chunks o
			ON o.tenant_id = _build_cooccurrence_chunks.tenant_id AND o.chunk = -1;
		SELECT (@extschema@.cooccurrence_info(d.state)).pairs INTO delta_pairs FROM pg_temp.upsell_delta d;
		IF NOT over_bound AND delta_pairs <= least(base_pairs / 4, max_pairs) THEN
			-- the delta alone replaced (scope: chunk -1); the base is kept
			RETURN @extschema@._publish('cooccurrence_chunks', tenant_id, format($q$
				SELECT $1 AS tenant_id, -1::bigint AS chunk, NULL::bigint AS first_product,
					   d.state, d.max_ordered_at, d.max_order_key
				FROM %s d, @extschema@.cooccurrence_info(d.state) i
				WHERE i.orders OPERATOR(pg_catalog.>) 0 OR i.skipped_lines OPERATOR(pg_catalog.>) 0$q$,
				delta), ARRAY[-1]::bigint[]);
		END IF;
	END IF;
	IF inc AND old_chunks = 1 THEN
		-- the delta grew past its bound: added to the one chunk of the base
		-- (up to upsell.cooccurrence_chunk_pairs pairs: 12.7M at 10M lines),
		-- which is split if it outgrew the bound, and no delta stored.  The
		-- same as below, without its windows: they pass the 100 MB of counts
		-- through a sort and a tuplestore (1 s of the 2 s at 10M lines).
		RETURN @extschema@._publish('cooccurrence_chunks', tenant_id, format($q$
			SELECT $1 AS tenant_id, c.chunk,
				   CASE WHEN c.chunk OPERATOR(pg_catalog.>) 0 THEN c.first_product END AS first_product,
				   c.state, greatest(o.max_ordered_at, a.max_ordered_at) AS max_ordered_at,
				   greatest(o.max_order_key, a.max_order_key) AS max_order_key
			FROM @extschema@.cooccurrence_chunks o,
				 %s a,
				 @extschema@._cooccurrence_merge_chunks(o.state, a.state, NULL, NULL, %s) c,
				 @extschema@.cooccurrence_info(c.state) i
			WHERE o.tenant_id OPERATOR(pg_catalog.=) $1 AND o.chunk OPERATOR(pg_catalog.>=) 0
			  AND (i.orders OPERATOR(pg_catalog.>) 0 OR i.skipped_lines OPERATOR(pg_catalog.>) 0)$q$,
			delta, max_pairs));
	ELSIF inc AND old_chunks > 1 THEN
		-- the same with the base in several chunks: the delta added chunk
		-- by chunk (the publishing statement still sees the stored chunks):
		-- every product's count to each chunk, each pair to the chunk of
		-- its range; a chunk that outgrew the bound is split, and the
		-- chunks are numbered anew
		RETURN @extschema@._publish('cooccurrence_chunks', tenant_id, format($q$
			SELECT $1 AS tenant_id, (x.n OPERATOR(pg_catalog.-) 1)::int AS chunk,
				   CASE WHEN x.n OPERATOR(pg_catalog.>) 1 THEN x.first_product END AS first_product,
				   x.state, x.max_ordered_at, x.max_order_key
			FROM (SELECT pg_catalog.row_number() OVER (ORDER BY o.chunk, c.chunk) AS n,
						 c.first_product, c.state,
						 greatest(o.max_ordered_at, a.max_ordered_at) AS max_ordered_at,
						 greatest(o.max_order_key, a.max_order_key) AS max_order_key
				  FROM (SELECT p.chunk, p.first_product, p.state, p.max_ordered_at, p.max_order_key,
							   pg_catalog.lead(p.first_product) OVER (ORDER BY p.chunk) AS next_first
						FROM @extschema@.cooccurrence_chunks p
						WHERE p.tenant_id OPERATOR(pg_catalog.=) $1 AND p.chunk OPERATOR(pg_catalog.>=) 0) o,
					   %s a,
					   @extschema@._cooccurrence_merge_chunks(o.state, a.state,
						   CASE WHEN o.chunk OPERATOR(pg_catalog.>) 0 THEN o.first_product END,
						   o.next_first, %s) c,
					   @extschema@.cooccurrence_info(c.state) i
				  WHERE i.orders OPERATOR(pg_catalog.>) 0 OR i.skipped_lines OPERATOR(pg_catalog.>) 0) x$q$,
			delta, max_pairs));
	END IF;
	-- all the tenant's lines as of its snapshot, counted where they live
	-- (_pair_counts_sql) and split into chunks where the count left them
	-- (_cooccurrence_chunks_of: the whole counts are never copied, and
	-- parallel workers may count); no row for a tenant without lines, and
	-- no delta.  The memory it frees is handed back as glibc does, not held
	-- for the builds after it (_hold_freed_memory): its blocks are the
	-- refresh's largest, each freed block too small for the next, and held
	-- they took a 30M-line shop's refresh from 915 MiB to 1.3 GiB.
	held := @extschema@._hold_freed_memory(false);
	n := @extschema@._publish('cooccurrence_chunks', tenant_id, format($q$
		SELECT $1 AS tenant_id, c.chunk,
			   CASE WHEN c.chunk OPERATOR(pg_catalog.>) 0 THEN c.first_product END AS first_product,
			   c.state, c.max_ordered_at, c.max_order_key
		FROM @extschema@._cooccurrence_chunks_of(%L, %s) c,
			 @extschema@.cooccurrence_info(c.state) i
		WHERE i.orders OPERATOR(pg_catalog.>) 0 OR i.skipped_lines OPERATOR(pg_catalog.>) 0$q$,
		@extschema@._pair_counts_sql(format('l.tenant_id OPERATOR(pg_catalog.=) %s AND @extschema@._xmin_visible(l.row_xmin, '
			   '(SELECT s.snapshot FROM @extschema@.source_state s WHERE s.tenant_id OPERATOR(pg_catalog.=) %s)) '
			   'IS NOT FALSE', tenant_id, tenant_id)),
		max_pairs));
	IF held THEN
		PERFORM @extschema@._hold_freed_memory(true);
	END IF;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('cooccurrence_chunks',
	$$tenant_id bigint NOT NULL, chunk bigint NOT NULL, first_product bigint,
	  state @extschema@.cooccurrence NOT NULL, max_ordered_at timestamptz, max_order_key bigint,
	  PRIMARY KEY (tenant_id, chunk)$$,
	NULL, 5, '@extschema@._build_cooccurrence_chunks(bigint, boolean)',
	'per tenant: the co-occurrence counts of all registered order lines in chunks (every product''s count, and the pairs of the products from first_product on, at most upsell.cooccurrence_chunk_pairs), written by a full refresh, and chunk -1, the delta: the counts of the orders an incremental refresh folded in since, which readers add to every chunk (upsell._cooccurrence_parts); the input of the cooccurrence, product, category and pair models and of incremental refresh',
	'chunk');

-- A tenant's stored counts as the readers read them: each chunk of the base
-- (chunk >= 0) with the delta (chunk -1, NULL without one) and the range of
-- the chunk's products, [lo, hi) (NULL: unbounded), the arguments of the
-- *_sum readers; the latest order of either.  A FROM item (alias it) that
-- the readers write into their queries, as _tenant_lines: not a function
-- reading the table, which Citus cannot plan in a query with parameters
-- ("parameterized queries for SQL functions referencing distributed tables
-- are not supported").
CREATE FUNCTION @extschema@._cooccurrence_parts(tenant_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN format('(SELECT c.chunk, c.state, d.state AS delta, '
			  'CASE WHEN c.chunk OPERATOR(pg_catalog.>) 0 THEN c.first_product END AS lo, '
			  '(SELECT n.first_product FROM @extschema@.cooccurrence_chunks n '
			  'WHERE n.tenant_id OPERATOR(pg_catalog.=) %1$s::bigint AND n.chunk OPERATOR(pg_catalog.>) c.chunk '
			  'ORDER BY n.chunk LIMIT 1) AS hi, '
			  'GREATEST(c.max_ordered_at, d.max_ordered_at) AS max_ordered_at, '
			  'GREATEST(c.max_order_key, d.max_order_key) AS max_order_key '
			  'FROM @extschema@.cooccurrence_chunks c '
			  'LEFT JOIN @extschema@.cooccurrence_chunks d '
			  'ON d.tenant_id OPERATOR(pg_catalog.=) %1$s::bigint AND d.chunk OPERATOR(pg_catalog.=) (-1)::bigint '
			  'WHERE c.tenant_id OPERATOR(pg_catalog.=) %1$s::bigint AND c.chunk OPERATOR(pg_catalog.>=) 0)',
			  tenant_id);
COMMENT ON FUNCTION @extschema@._cooccurrence_parts(bigint) IS
	'internal: a FROM item of a tenant''s stored counts as read: each chunk of the base with the delta and the chunk''s range of products (chunk, state, delta, lo, hi, max_ordered_at, max_order_key), the arguments of the *_sum readers';

-- Stored uncompressed: pglz compressed a 10M-line shop's single chunk (100 MB
-- of counts to 42 MB) in about 5 s of the count's 14 s of CPU, and every
-- model that reads the counts (five reads per refresh) decompressed it again.
ALTER TABLE @extschema@.cooccurrence_chunks ALTER COLUMN state SET STORAGE EXTERNAL;

-- The totals of a tenant's counts, one row per tenant.
CREATE FUNCTION @extschema@._build_cooccurrence(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
	skipped bigint;
	big bigint;
BEGIN
	-- every chunk carries the same totals of orders, products and lines;
	-- the pairs are theirs (the chunks' bounds are not: an incremental
	-- refresh splits the chunks it grew, a full one splits the whole)
	--
	-- pair_dispersion: how far the shop's pair counts stray from what the
	-- products' popularity alone gives, D = S / V, where S is the sum over
	-- every ordered pair of products (c, j), bought together or not, of
	-- (t_cj - n_c P_j)^2 (t_cj: orders with both, n_c: orders with c, P_j:
	-- j's share of the orders) and V the same sum's expectation were every
	-- order's products drawn by popularity alone (binomial: the sum of
	-- n_c P_j (1 - P_j)).  D near 1: the pairs are chance around popularity
	-- (the groceries members' (member, day) baskets: 2.4); far above 1: they
	-- carry their own signal (a supermarket's baskets: 15; an electronics
	-- shop's: about 1,000).  recommend_for_cart weighs the pairs' evidence by
	-- 1 - 1/D (README, "Offline evaluation").  The pairs seen together are
	-- summed from the counts; those never seen together (t = 0) in closed
	-- form from the products' shares.  NULL without pairs.
	-- (the same lines: the same totals, which the chunks' bounds do not move;
	-- summing them again took 0.7-0.9 s at 10M lines)
	n := CASE WHEN incremental AND @extschema@._lines_unchanged(tenant_id)
			 THEN @extschema@._kept_rows('cooccurrence_model', tenant_id)
			 ELSE @extschema@._publish('cooccurrence_model', tenant_id, $q$
		WITH prod AS (
			SELECT x.orders::pg_catalog.float8 AS n, i.orders::pg_catalog.float8 AS total
			FROM $q$ || @extschema@._cooccurrence_parts(tenant_id) || $q$ m,
				 @extschema@._cooccurrence_products_sum(m.state, m.delta, m.lo, m.hi) x,
				 @extschema@._cooccurrence_info_sum(m.state, m.delta, m.lo, m.hi) i
			WHERE m.chunk OPERATOR(pg_catalog.=) 0 AND x.orders OPERATOR(pg_catalog.>) 0),
		-- In whole numbers (float8 holds them exactly up to 2^53, so on all
		-- but huge shops the sums do not depend on how the pairs fall into
		-- chunks: an incremental refresh gives what a full one does), with N
		-- the orders, T1 and T2 the sums of n_j and n_j^2 (the pairs' sums
		-- in one pass over each chunk, _cooccurrence_pair_moments: listing
		-- FIMI retail's 6M pairs as rows took 8 s):
		--   N^2 S = N^2 sum t^2 - 2 N sum t n_c n_j + sum_c n_c^2 (T2 - n_c^2)
		--   N^2 V = N sum_c n_c (T1 - n_c) - sum_c n_c (T2 - n_c^2)
		-- (the pairs seen together in the first two sums, every pair in the
		-- third).  OPERATOR() binds every operator alike, left to right:
		-- parenthesised.
		shares AS (
			SELECT pg_catalog.sum(p.n) AS t1, pg_catalog.sum(p.n OPERATOR(pg_catalog.*) p.n) AS t2,
				   pg_catalog.min(p.total) AS total
			FROM prod p),
		chance AS (
			SELECT pg_catalog.sum((p.n OPERATOR(pg_catalog.*) p.n)
								  OPERATOR(pg_catalog.*) (s.t2 OPERATOR(pg_catalog.-) (p.n OPERATOR(pg_catalog.*) p.n))) AS sq,
				   pg_catalog.sum(p.n OPERATOR(pg_catalog.*) (s.t1 OPERATOR(pg_catalog.-) p.n)) AS a1,
				   pg_catalog.sum(p.n OPERATOR(pg_catalog.*) (s.t2 OPERATOR(pg_catalog.-) (p.n OPERATOR(pg_catalog.*) p.n))) AS a2
			FROM prod p, shares s),
		var AS (
			SELECT s.total, c.sq, (s.total OPERATOR(pg_catalog.*) c.a1) OPERATOR(pg_catalog.-) c.a2 AS var
			FROM shares s, chance c),
		-- (base and delta summed pair by pair as they are read: a square
		-- of a sum is not the sum of the squares)
		seen AS (
			SELECT pg_catalog.sum(x.together_squared) AS t2, pg_catalog.sum(x.together_counts) AS tnn,
				   pg_catalog.sum(x.pairs)::bigint AS pairs
			FROM $q$ || @extschema@._cooccurrence_parts(tenant_id) || $q$ m,
				 @extschema@._cooccurrence_pair_moments_sum(m.state, m.delta, m.lo, m.hi) x),
		totals AS (
			SELECT pg_catalog.min(i.orders) AS orders, pg_catalog.min(i.products) AS products,
				   (SELECT x.pairs FROM seen x) AS pairs, pg_catalog.min(i.skipped_lines) AS skipped_lines,
				   pg_catalog.min(i.big_orders) AS big_orders, pg_catalog.max(m.max_ordered_at) AS max_ordered_at,
				   pg_catalog.max(m.max_order_key) AS max_order_key
			FROM $q$ || @extschema@._cooccurrence_parts(tenant_id) || $q$ m,
				 @extschema@._cooccurrence_info_sum(m.state, m.delta, m.lo, m.hi) i
			HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0)
		SELECT $1 AS tenant_id, t.orders, t.products, t.pairs, t.skipped_lines, t.big_orders,
			   t.max_ordered_at, t.max_order_key,
			   CASE WHEN t.pairs OPERATOR(pg_catalog.>) 0 AND c.var OPERATOR(pg_catalog.>) 0
					THEN ((((c.total OPERATOR(pg_catalog.*) c.total) OPERATOR(pg_catalog.*) coalesce(x.t2, 0))
						   OPERATOR(pg_catalog.-) ((2 OPERATOR(pg_catalog.*) c.total) OPERATOR(pg_catalog.*) coalesce(x.tnn, 0)))
						  OPERATOR(pg_catalog.+) c.sq)
						 OPERATOR(pg_catalog./) c.var END
				 AS pair_dispersion
		FROM totals t, var c, seen x$q$) END;
	SELECT m.skipped_lines, m.big_orders INTO skipped, big
	FROM @extschema@.cooccurrence_model m WHERE m.tenant_id = _build_cooccurrence.tenant_id;
	IF skipped > 0 THEN
		RAISE NOTICE 'upsell: tenant %: skipped % order lines with a NULL order or product id or a quantity <= 0', tenant_id, skipped;
	END IF;
	IF big > 0 THEN
		RAISE NOTICE 'upsell: tenant %: % orders with more than % products counted for their products but not for pairs',
			tenant_id, big, current_setting('upsell.max_basket_size');
	END IF;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('cooccurrence_model',
	$$tenant_id bigint PRIMARY KEY,
	  orders bigint, products bigint, pairs bigint, skipped_lines bigint, big_orders bigint,
	  max_ordered_at timestamptz, max_order_key bigint, pair_dispersion float8$$,
	NULL, 10, '@extschema@._build_cooccurrence(bigint, boolean)',
	'per tenant: the totals of the co-occurrence counts of all registered order lines (upsell.cooccurrence_chunks holds the counts), and how far the pair counts stray from popularity alone (pair_dispersion, 1 = chance)');

CREATE FUNCTION @extschema@._build_product_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	catalog_changed bigint[];
	scope bigint[];			-- incremental: the products whose rows are replaced
	-- A product the tenant's catalog does not list (deleted from the shop,
	-- a variant a product update removed) is not offered: it cannot be
	-- bought, and its price, title and stock are unknown.  A tenant without
	-- a catalog (none registered, or none of its rows there yet: a new
	-- shop whose catalog has not synced) has every product in stock, as
	-- nothing says otherwise.
	unlisted_in_stock boolean;
BEGIN
	IF EXISTS (SELECT FROM @extschema@.order_source o, @extschema@.product_source p
			   WHERE (o.tenant_id IS NULL) <> (p.tenant_id IS NULL)) THEN
		RAISE EXCEPTION 'order lines and catalog must both be registered with a tenant column, or both without'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('SELECT NOT EXISTS (SELECT FROM %s AS c WHERE c.tenant_id OPERATOR(pg_catalog.=) $1 '
				   'AND c.product_id IS NOT NULL)', @extschema@._catalog_source())
	INTO unlisted_in_stock USING tenant_id;
	-- Incrementally, the products whose catalog facts changed (or that came
	-- or went) are noted for the builders after it: the catalog against the
	-- rows it replaces, on the facts alone.  Only those products' rows and
	-- those of the products of the new lines (whose order counts moved) are
	-- written again.  A row holds no rank: a rank moves with every new
	-- order, and kept in the rows it made every refresh rewrite them all
	-- (100,000 rows and their five indexes, 1.5 s of an incremental refresh
	-- of the 10M-line bench shop whose new orders touched 29,410 products).
	-- Readers order by (orders DESC, product_id), an index's order; the
	-- view product_popularity numbers it.
	IF incremental AND to_regclass('pg_temp.upsell_changed_products') IS NOT NULL THEN
		EXECUTE format($q$
			SELECT pg_catalog.array_agg(coalesce(o.product_id, n.product_id))
			FROM (SELECT m.product_id, m.orders, m.category, m.variant_group, m.price, m.in_stock, m.title
				  FROM @extschema@.product_model m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1) o
			FULL JOIN %s n ON n.product_id OPERATOR(pg_catalog.=) o.product_id
			WHERE o.product_id IS NULL OR (n.product_id IS NULL AND o.orders OPERATOR(pg_catalog.=) 0)
			   OR (o.category, o.variant_group, o.price, o.in_stock, o.title)
				  IS DISTINCT FROM (n.category, n.variant_group, n.price,
									CASE WHEN n.product_id IS NULL THEN %2$L ELSE coalesce(n.in_stock, true) END, n.title)$q$,
			@extschema@._catalog_products(tenant_id), unlisted_in_stock)
		INTO catalog_changed USING tenant_id;
		PERFORM @extschema@._note_changed('product_model', coalesce(catalog_changed, '{}'));
		IF @extschema@._incremental(tenant_id) THEN
			scope := ARRAY(SELECT DISTINCT p.product_id
						   FROM (SELECT n.product_id FROM pg_temp.upsell_new_lines n
								 UNION ALL
								 SELECT pg_catalog.unnest(catalog_changed)) p
						   WHERE p.product_id IS NOT NULL ORDER BY 1);
		END IF;
	END IF;
	RETURN @extschema@._publish('product_model', tenant_id, format($q$
		SELECT $1 AS tenant_id, coalesce(c.product_id, o.product_id) AS product_id,
			   coalesce(o.orders, 0) AS orders,
			   c.category, c.variant_group, c.price,
			   CASE WHEN c.product_id IS NULL THEN %4$L ELSE coalesce(c.in_stock, true) END AS in_stock, c.title
		FROM (SELECT x.product_id, x.orders
			  FROM %5$s m,
				   @extschema@._cooccurrence_products_sum(m.state, m.delta, m.lo, m.hi) x
			  WHERE m.chunk = 0 %2$s) o
		FULL JOIN (SELECT c.* FROM %1$s c WHERE true %3$s) c
			ON c.product_id = o.product_id$q$,
		@extschema@._catalog_products(tenant_id),
		CASE WHEN scope IS NOT NULL THEN 'AND x.product_id OPERATOR(pg_catalog.=) ANY ($2)' ELSE '' END,
		CASE WHEN scope IS NOT NULL THEN 'AND c.product_id OPERATOR(pg_catalog.=) ANY ($2)' ELSE '' END,
		unlisted_in_stock, @extschema@._cooccurrence_parts(tenant_id)),
		scope);
END
$$;

SELECT @extschema@._define_model('product_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, orders bigint NOT NULL,
	  category text, variant_group text, price numeric,
	  in_stock boolean NOT NULL, title text,
	  PRIMARY KEY (tenant_id, product_id)$$,
	ARRAY['(tenant_id, orders DESC, product_id)', '(tenant_id, category, orders DESC, product_id)', '(product_id)'],
	20, '@extschema@._build_product_model(bigint, boolean)',
	'per product: orders containing it and the catalog attributes as of the last refresh (popularity: ORDER BY orders DESC, product_id, numbered by the view product_popularity)',
	'product_id');

CREATE FUNCTION @extschema@._build_pair_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	per_product int := coalesce(current_setting('upsell.pairs_per_product', true)::int, 50);
	changed bigint[];			-- incremental: the products whose lists are replaced
	products_arg text := '';	-- the scope as the core functions' fifth argument
	published bigint;
BEGIN
	-- Pairs seen in 2 orders or more; for a rare product (in fewer than 20
	-- orders) also those seen once: that is all the evidence it will ever
	-- have, and its score (the Wilson bound) stays low, below every pair the
	-- product was seen in twice.  make eval: on the sparse Superstore orders
	-- leaving them out lost 45% of the hits (README, "Offer quality").  The
	-- top pairs are taken among those seen once too, and then filtered: a
	-- pair seen once never outranks one of the same product seen twice, so
	-- a product in 20 orders or more keeps exactly its pairs seen twice.
	-- The counting core applies both rules as it ranks (rare_orders 20: its
	-- order counts are product_model.orders), and lists each product's
	-- best in rank order (_cooccurrence_top_lists).
	--
	-- A product's list depends on its own counts alone (the score on the
	-- orders of both and of the product, no lift stored), so an incremental
	-- build lists again only the products of the new lines: their rows are
	-- replaced (_publish with the products as scope, $2), the others' rows
	-- are the same as a full build's.  (A change of pairs_per_product makes
	-- the refresh a full one: _model_settings.)
	IF incremental AND @extschema@._incremental(tenant_id) THEN
		changed := ARRAY(SELECT DISTINCT n.product_id FROM pg_temp.upsell_new_lines n
						 WHERE n.product_id IS NOT NULL ORDER BY 1);
		products_arg := ', $2';
	END IF;
	IF (SELECT count(*) FROM @extschema@.cooccurrence_chunks c
		WHERE c.tenant_id = _build_pair_model.tenant_id AND c.chunk >= 0) <= 1 THEN
		published := @extschema@._publish('pair_list_model', tenant_id, format($q$
			SELECT $1 AS tenant_id, t.product_id, t.other_ids, t.together, t.score, t.confidence
			FROM %s m,
				 @extschema@._cooccurrence_top_lists_sum(m.state, m.delta, m.lo, m.hi, %s, 2, 20%s) t$q$,
			@extschema@._cooccurrence_parts(tenant_id), per_product, products_arg), changed);
	ELSE
		-- Counts in several chunks: a product's pairs lie in the chunks of their
		-- smaller products, so its best of each chunk are ranked together (the
		-- same order as the core's: score, then the partner's id) and the best
		-- per_product listed in that order.
		published := @extschema@._publish('pair_list_model', tenant_id, format($q$
			SELECT t.tenant_id, t.product_id,
				   pg_catalog.array_agg(t.other_id ORDER BY t.score DESC, t.other_id) AS other_ids,
				   pg_catalog.array_agg(t.together ORDER BY t.score DESC, t.other_id) AS together,
				   pg_catalog.array_agg(t.score ORDER BY t.score DESC, t.other_id) AS score,
				   pg_catalog.array_agg(t.confidence ORDER BY t.score DESC, t.other_id) AS confidence
			FROM (SELECT $1 AS tenant_id, t.*,
						 pg_catalog.row_number() OVER (PARTITION BY t.product_id
													   ORDER BY t.score DESC, t.other_id) AS r
				  FROM %s m,
					   @extschema@._cooccurrence_top_pairs_sum(m.state, m.delta, m.lo, m.hi, %s, 2, 20%s) t) t
			WHERE t.r OPERATOR(pg_catalog.<=) %s
			GROUP BY t.tenant_id, t.product_id$q$, @extschema@._cooccurrence_parts(tenant_id), per_product,
			products_arg, per_product), changed);
	END IF;
	IF changed IS NOT NULL THEN
		PERFORM @extschema@._note_changed('pair_list_model', changed);
	END IF;
	RETURN published;
END
$$;

-- One row per product, not per pair: the 3M rows of a 10M-line shop (50
-- pairs a product at most), their heap and their 3-column primary key
-- (checked against the replaced rows), were most of the model's build.  A
-- row of 50 pairs is over 2 kB: stored as it is (toast_tuple_target), not
-- compressed nor moved out of line, which would cost every write and read.
-- No reader filters on the arrays' elements: ANALYZE (_publish, autovacuum)
-- samples the rows for their count and keys only (the arrays' element
-- statistics took 0.4 s of a 1 s ANALYZE at 10M lines).
SELECT @extschema@._define_model('pair_list_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL,
	  other_ids bigint[] NOT NULL, together bigint[] NOT NULL, score float8[] NOT NULL,
	  confidence float8[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 30, '@extschema@._build_pair_model(bigint, boolean)',
	'per product: its best complements (upsell.pairs_per_product, seen together in at least 2 orders, or once for a product in fewer than 20 orders) in rank order (score descending, then id) as arrays: other_ids, with together, score and confidence at the same positions; read as one row per pair, with lift, through the view pair_model',
	'product_id');
ALTER TABLE @extschema@.pair_list_model SET (toast_tuple_target = 8160),
	ALTER COLUMN other_ids SET STATISTICS 0, ALTER COLUMN together SET STATISTICS 0,
	ALTER COLUMN score SET STATISTICS 0, ALTER COLUMN confidence SET STATISTICS 0;

-- The pairs one row each, as analysts (and the readers of a product's
-- pairs by product_id = ANY (...)) read them: 1.0's pair_model table.  The
-- arrays are unnested in the select list, in step; conditions on tenant_id
-- and product_id still reach the primary key.  A reader that joins it by
-- product joins pair_list_model instead (a join condition does not reach
-- into a view with set-returning functions: it would unnest every product).
-- Lift is computed here, as the counting core computes it (the same
-- float8 operations, so the same values): stored, it changed every row at
-- every refresh, with the shop's order count.  A reader that does not ask
-- for it does not join: the joins are to primary keys, and PostgreSQL
-- removes a left join whose columns are not used.
CREATE VIEW @extschema@.pair_model AS
SELECT p.tenant_id, p.product_id, p.other_id, p.together, p.score, p.confidence,
	   (p.together::float8 OPERATOR(pg_catalog./) s.orders::float8)
		   OPERATOR(pg_catalog./) ((a.orders::float8 OPERATOR(pg_catalog./) s.orders::float8)
								   OPERATOR(pg_catalog.*) (b.orders::float8 OPERATOR(pg_catalog./) s.orders::float8)) AS lift
FROM (SELECT l.tenant_id, l.product_id, pg_catalog.unnest(l.other_ids) AS other_id,
			 pg_catalog.unnest(l.together) AS together, pg_catalog.unnest(l.score) AS score,
			 pg_catalog.unnest(l.confidence) AS confidence
	  FROM @extschema@.pair_list_model l) p
LEFT JOIN @extschema@.cooccurrence_model s ON s.tenant_id OPERATOR(pg_catalog.=) p.tenant_id
LEFT JOIN @extschema@.product_model a
	ON a.tenant_id OPERATOR(pg_catalog.=) p.tenant_id AND a.product_id OPERATOR(pg_catalog.=) p.product_id
LEFT JOIN @extschema@.product_model b
	ON b.tenant_id OPERATOR(pg_catalog.=) p.tenant_id AND b.product_id OPERATOR(pg_catalog.=) p.other_id;
COMMENT ON VIEW @extschema@.pair_model IS
	'per product and complement: its best complements (upsell.pairs_per_product, seen together in at least 2 orders, or once for a product in fewer than 20 orders) with score, confidence and lift (the rows of pair_list_model''s arrays)';

-- Popularity as a number, for the readers that show or score it and for
-- analysts: a product's rank among its tenant's products by orders, ties by
-- id (1 = the bestseller).  It is numbered when read, along the index
-- (tenant_id, orders DESC, product_id): stored, every new order moved it and
-- the refresh rewrote every row.  A filter on tenant_id reaches the index
-- (the window is per tenant), a LIMIT or a filter popularity_rank <= n stops
-- the scan; a filter on another column (in_stock) applies to the numbered
-- rows, so the rank counts every product.
CREATE VIEW @extschema@.product_popularity AS
SELECT m.tenant_id, m.product_id,
	   pg_catalog.row_number() OVER (PARTITION BY m.tenant_id ORDER BY m.orders DESC, m.product_id) AS popularity_rank,
	   m.orders, m.category, m.variant_group, m.price, m.in_stock, m.title
FROM @extschema@.product_model m;
COMMENT ON VIEW @extschema@.product_popularity IS
	'per product: product_model''s row with its popularity rank in its tenant (1 = the most orders, ties by product id), numbered when read';

-- ---- analysis -------------------------------------------------------------

-- Raises unless the thresholds are given; true otherwise (a one-time filter).
CREATE FUNCTION @extschema@._pair_thresholds_given(min_count int, min_support float8, min_confidence float8)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF min_count IS NULL OR min_support IS NULL OR min_confidence IS NULL THEN
		RAISE EXCEPTION 'min_count, min_support and min_confidence must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	RETURN true;
END
$$;

-- A plain SQL function, so that the planner inlines it: no second copy of
-- every pair row.  The counting is upsell._pair_counts(), where the counting
-- may run in parallel workers, or on Citus shards (a SQL function whose body
-- reads a distributed table is not planned by Citus).  The pairs are listed
-- from the select list, where the rows stream (in FROM, PostgreSQL would
-- first collect them all).  (Calling it before any
-- registration fails on the missing upsell.order_lines view.)
CREATE FUNCTION @extschema@.frequently_bought_together(min_count int DEFAULT 2,
	min_support float8 DEFAULT 0, min_confidence float8 DEFAULT 0)
RETURNS TABLE (tenant_id bigint, product_id bigint, other_id bigint, together bigint,
			   product_count bigint, other_count bigint, orders bigint,
			   support float8, confidence float8, lift float8, leverage float8,
			   conviction float8, jaccard float8, score float8)
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
	SELECT p.tenant_id, (p.pair).*
	FROM (SELECT c.tenant_id,
				 @extschema@.cooccurrence_pairs(c.state, min_count, min_support, min_confidence) AS pair
		  -- (a session bound to a tenant counts and sees that tenant's lines only)
		  FROM @extschema@._pair_counts(CASE WHEN @extschema@._bound_tenant(NULL) IS NULL THEN 'true'
											 ELSE pg_catalog.format('l.tenant_id OPERATOR(pg_catalog.=) %s',
																	@extschema@._bound_tenant(NULL)) END) c
		  WHERE @extschema@._pair_thresholds_given(min_count, min_support, min_confidence)) p
$$;
COMMENT ON FUNCTION @extschema@.frequently_bought_together(int, float8, float8) IS
	'every ordered pair of products bought in the same order, per tenant (the bound tenant''s only in a session bound to one), with support, confidence, lift, leverage, conviction, jaccard and score';

CREATE FUNCTION @extschema@.frequently_bought_together(query text, min_count int DEFAULT 2,
	min_support float8 DEFAULT 0, min_confidence float8 DEFAULT 0)
RETURNS TABLE (tenant_id bigint, product_id bigint, other_id bigint, together bigint,
			   product_count bigint, other_count bigint, orders bigint,
			   support float8, confidence float8, lift float8, leverage float8,
			   conviction float8, jaccard float8, score float8)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF query IS NULL OR min_count IS NULL OR min_support IS NULL OR min_confidence IS NULL THEN
		RAISE EXCEPTION 'query, min_count, min_support and min_confidence must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	RETURN QUERY
	SELECT p.tenant_id, (p.pair).*
	FROM (SELECT c.tenant_id,
				 @extschema@.cooccurrence_pairs(c.state, min_count, min_support, min_confidence) AS pair
		  FROM @extschema@._cooccurrence_from_query(query) c) p;
END
$$;
COMMENT ON FUNCTION @extschema@.frequently_bought_together(text, int, float8, float8) IS
	'the same measures over any query returning (order id, product id [, tenant id]); the query runs with the caller''s rights';

-- ---- serving ----------------------------------------------------------------

-- The n best complements of a set of products: the evidence of each item
-- combined as a noisy-OR (the chance that at least one of them leads to the
-- product).  Plain SQL, so that it is inlined into its callers' plans.
--
-- The logarithms are summed as numeric, whose sum is exact: a float8 sum
-- depends on the order its rows come in, which the plan decides (another
-- tenant's rows moved a shop's scores in their last digits through the
-- statistics).  Every noisy-OR of the extension sums so.
CREATE FUNCTION @extschema@._complements_of(t bigint, items bigint[], n int)
RETURNS TABLE (product_id bigint, score float8)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	-- inlined into its callers, so without SET search_path: every operator,
	-- function and type named with its schema
	SELECT p.other_id,
		   1::pg_catalog.float8 OPERATOR(pg_catalog.-) pg_catalog.exp(pg_catalog.sum(pg_catalog.ln(
			   1::pg_catalog.float8 OPERATOR(pg_catalog.-) least(p.score, 0.999999::pg_catalog.float8))::pg_catalog.numeric)::pg_catalog.float8)
	FROM @extschema@.pair_model p
	WHERE p.tenant_id OPERATOR(pg_catalog.=) t AND p.product_id OPERATOR(pg_catalog.=) ANY (items)
	  AND p.other_id OPERATOR(pg_catalog.<>) ALL (items)
	GROUP BY p.other_id
	ORDER BY 2 DESC, 1
	LIMIT n
$$;

CREATE FUNCTION @extschema@.recommend_for_cart(cart bigint[], k int DEFAULT 5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, product_id bigint, score float8, because bigint[], reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	items bigint[];
	blocked_ids bigint[];		-- what the cart blocks (_cart_blocked)
	blocked_groups text[];
	blocked_categories text[];
BEGIN
	PERFORM @extschema@._check_k(k);
	-- (as cart_offers and post_purchase_offers: a 2-D array is no cart)
	IF array_ndims(cart) > 1 THEN
		RAISE EXCEPTION 'cart must be a one-dimensional array of product ids'
			USING ERRCODE = 'array_subscript_error';
	END IF;
	PERFORM @extschema@._check_cart_length(cart);
	-- NULL cart = empty cart; NULL elements and repeats are dropped
	items := ARRAY(SELECT DISTINCT x FROM unnest(cart) x WHERE x IS NOT NULL);

	-- Each cart item c (in n_c orders) says how likely a product j is to
	-- join it: its pairs' count t_cj, shrunk towards j's popularity P(j)
	-- (its share of the orders) by a prior worth w_c orders,
	-- (t_cj + w_c P(j)) / (n_c + w_c).  The cart's items add up what each
	-- says beyond chance: P(j) once, plus per item the excess
	-- (t_cj - n_c P(j)) / (n_c + w_c), weighed by the shop's evidence that
	-- its pairs are more than chance, r = 1 - 1/D (D:
	-- cooccurrence_model.pair_dispersion, 1 when the pairs are what
	-- popularity alone gives).  So
	--   score(j) = sum_c t_cj / (n_c + w_c) + a P(j),
	--   a = mean_c w_c / (n_c + w_c) - r (sum_c n_c / (n_c + w_c) - mean_c n_c / (n_c + w_c)):
	-- for one cart item the shrunk estimate itself; summed over a long cart
	-- the pairs of popular products no longer count their popularity once
	-- per cart item (a cosine-like penalty growing with the cart, as strong
	-- as the shop's pairs are informative: the long FIMI retail carts reach
	-- cosine), while on orders whose pairs are close to chance popularity
	-- keeps its weight (the members' baskets, where popularity is the best
	-- baseline).  w_c = min(n_c, 500): the prior never outweighs the cart
	-- item's own orders (a case bought with the phone in 20 of its 75 orders
	-- stays above a bestseller never bought with it), and stops growing at 500 orders,
	-- where the pairs of a popular item speak for themselves.  A product
	-- without a pair with the cart still gets a P(j): bestsellers compete
	-- with weak evidence instead of only filling the slots it leaves.  make
	-- eval chose it (README, "Offline evaluation"): one default for every
	-- shop, its statistic computed from the shop's own orders.
	--
	-- Every table is read with the tenant t and no SQL helper reads a
	-- table inside the statement: on Citus (distribute()) the statement is
	-- then one shard's, which Citus sends to it whole; a helper would read
	-- the distributed tables again from inside the shard's statement, which
	-- Citus cannot plan.  What the cart blocks (its substitutes,
	-- upsell.is_substitute, and the merchant's exclusions,
	-- upsell.is_excluded) is computed once before, by a statement of its own
	-- (_cart_blocked), and each candidate tested against its sets.
	SELECT b.ids, b.variant_groups, b.categories INTO blocked_ids, blocked_groups, blocked_categories
	FROM @extschema@._cart_blocked(t, items, true) b;

	RETURN QUERY
	WITH shop AS (
		SELECT greatest(max(c.orders), 1)::float8 AS orders,
			   coalesce(least(greatest(1 - 1 / nullif(max(c.pair_dispersion), 0), 0), 1), 0) AS r
		FROM @extschema@.cooccurrence_model c WHERE c.tenant_id = t),
	cart_items AS MATERIALIZED (
		SELECT c.product_id, c.orders::float8 AS orders,
			   least(c.orders, 500)::float8 AS w
		FROM @extschema@.product_model c, shop
		WHERE c.tenant_id = t AND c.product_id = ANY (items) AND c.orders > 0),
	total AS (SELECT shop.orders FROM shop),
	-- the weight a of P(j) in the score (above); plain popularity for a cart
	-- none of whose items was ever ordered
	prior AS (SELECT coalesce(avg(ci.w / (ci.orders + ci.w))
							  - shop.r * (sum(ci.orders / (ci.orders + ci.w)) - avg(ci.orders / (ci.orders + ci.w))),
							  1) AS w
			  FROM shop LEFT JOIN cart_items ci ON true
			  GROUP BY shop.r),
	-- (each cart item's list of pair_list_model by primary key, unnested)
	votes AS (
		SELECT p.other_id AS product_id, p.product_id AS driver, p.together / (p.orders + p.w) AS s
		FROM (SELECT l.product_id, ci.orders, ci.w,
					 unnest(l.other_ids) AS other_id, unnest(l.together) AS together
			  FROM @extschema@.pair_list_model l
			  JOIN cart_items ci ON ci.product_id = l.product_id
			  WHERE l.tenant_id = t) p
		WHERE p.other_id <> ALL (items)
		UNION ALL
		SELECT b.product_id, NULL, 0
		FROM (SELECT m.product_id FROM @extschema@.product_model m
			  WHERE m.tenant_id = t AND m.in_stock AND m.orders > 0
			  ORDER BY m.orders DESC, m.product_id
			  LIMIT 4::bigint * k + 20 + cardinality(items)) b
		WHERE b.product_id <> ALL (items)),
	evidence AS MATERIALIZED (
		SELECT e.product_id, e.score, e.because, 1 AS tier
		FROM (SELECT g.product_id, g.s + prior.w * c.orders / total.orders AS score, g.because
			  FROM (SELECT v.product_id, sum(v.s) AS s,
						   -- input sorted below (drivers by their vote): an ORDER BY
						   -- inside array_agg would start a sort per product, the
						   -- bulk of the request's time
						   array_agg(v.driver) FILTER (WHERE v.driver IS NOT NULL) AS because
					FROM (SELECT * FROM votes v ORDER BY v.product_id, v.s DESC, v.driver) v
					GROUP BY v.product_id) g
			  JOIN @extschema@.product_model c ON c.tenant_id = t AND c.product_id = g.product_id,
				   prior, total
			  -- A product no cart item was bought with competes by its prior
			  -- only while a >= 0.  With a < 0 (a shop whose pairs are far from
			  -- chance) the prior would rank such products by how rare they
			  -- are (the dryer, never bought with the cart, above a cable bought
			  -- with it 232 times); they are no evidence, so they are left to
			  -- the fallbacks below, bestsellers first (make eval: electronics
			  -- MRR@10 0.5345 -> 0.5404, HR@10 and the other datasets the same).
			  WHERE g.because IS NOT NULL OR prior.w >= 0
			  -- stock and exclusions are checked for the best few only: probing
			  -- every candidate of a big cart costs more than the rest together
			  ORDER BY 2 DESC, 1
			  LIMIT 4::bigint * k + 20) e
		JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = e.product_id
		WHERE m.in_stock
		  AND e.product_id <> ALL (blocked_ids)
		  AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)
		ORDER BY e.score DESC, e.product_id
		LIMIT k),
	-- fallbacks only when the evidence does not fill the k slots
	shortfall AS (SELECT k - count(*) AS n FROM evidence),
	fallback AS (
		SELECT f.product_id, f.orders, min(f.tier) AS tier
		FROM shortfall,
			 LATERAL (SELECT m.product_id, m.orders, 2 AS tier
					  FROM (SELECT DISTINCT c.category FROM @extschema@.product_model c
							WHERE c.tenant_id = t AND c.product_id = ANY (items) AND c.category IS NOT NULL) cc,
						   LATERAL (SELECT m.product_id, m.orders, m.category
									FROM @extschema@.product_model m
									WHERE m.tenant_id = t AND m.category = cc.category AND m.in_stock
									ORDER BY m.orders DESC, m.product_id
									LIMIT k::bigint * 3 + cardinality(items)) m
					  UNION ALL
					  SELECT m.product_id, m.orders, 3
					  FROM (SELECT m.product_id, m.orders, m.category
							FROM @extschema@.product_model m
							WHERE m.tenant_id = t AND m.in_stock
							ORDER BY m.orders DESC, m.product_id
							LIMIT k::bigint * 3 + cardinality(items)) m) f
		JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = f.product_id
		WHERE shortfall.n > 0
		  AND f.product_id <> ALL (items)
		  AND f.product_id <> ALL (blocked_ids)
		  AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)
		  AND f.product_id NOT IN (SELECT e.product_id FROM evidence e)
		GROUP BY f.product_id, f.orders),
	ranked AS (
		SELECT e.tier, e.product_id, e.score, e.because FROM evidence e
		UNION ALL
		SELECT f.tier, f.product_id, f.orders / total.orders, NULL FROM fallback f, total)
	SELECT (row_number() OVER (ORDER BY r.tier, r.score DESC, r.product_id))::int,
		   r.product_id, r.score, r.because,
		   CASE WHEN r.because IS NOT NULL THEN 'bought together with the cart'
				WHEN r.tier = 2 THEN 'popular in the same category'
				ELSE 'popular' END
	FROM ranked r
	ORDER BY r.tier, r.score DESC, r.product_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.recommend_for_cart(bigint[], int, bigint) IS
	'the k most likely additions to a cart: every cart item''s pair counts shrunk towards popularity, what each item says beyond chance added up (popularity counted once however long the cart, as far as the shop''s pairs are more than chance: cooccurrence_model.pair_dispersion; bestsellers compete with weak pairs), then popular products of the cart''s categories; cart items, their substitutes (upsell.is_substitute) and out-of-stock products excluded';
