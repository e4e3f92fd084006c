\echo Use "CREATE EXTENSION upsell" to load this file. \quit

-- ===========================================================================
-- Counting core: the co-occurrence aggregate and the type holding its result
-- ===========================================================================

CREATE TYPE @extschema@.cooccurrence;

CREATE FUNCTION @extschema@.cooccurrence_in(cstring) RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_in'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cooccurrence_out(@extschema@.cooccurrence) RETURNS cstring
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_out'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cooccurrence_recv(internal) RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_recv'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cooccurrence_send(@extschema@.cooccurrence) RETURNS bytea
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_send'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE @extschema@.cooccurrence (
	INPUT = @extschema@.cooccurrence_in,
	OUTPUT = @extschema@.cooccurrence_out,
	RECEIVE = @extschema@.cooccurrence_recv,
	SEND = @extschema@.cooccurrence_send,
	INTERNALLENGTH = VARIABLE,
	STORAGE = extended
);
COMMENT ON TYPE @extschema@.cooccurrence IS
	'order counts per product and per product pair, as produced by upsell.cooccurrence_agg; two values add with upsell.cooccurrence_merge';

-- Aggregate support functions (internal state: the order lines seen so far).
CREATE FUNCTION @extschema@._cooc_trans(internal, bigint, bigint) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_trans(internal, bigint, bigint, numeric) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'upsell_cooc_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_final(internal) RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE @extschema@.cooccurrence_agg(order_key bigint, product_id bigint) (
	SFUNC = @extschema@._cooc_trans,
	STYPE = internal,
	FINALFUNC = @extschema@._cooc_final,
	COMBINEFUNC = @extschema@._cooc_combine,
	SERIALFUNC = @extschema@._cooc_serialize,
	DESERIALFUNC = @extschema@._cooc_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_agg(bigint, bigint) IS
	'counts orders per product and per product pair over order lines (order, product); a product counts once per order';

CREATE AGGREGATE @extschema@.cooccurrence_agg(order_key bigint, product_id bigint, quantity numeric) (
	SFUNC = @extschema@._cooc_trans,
	STYPE = internal,
	FINALFUNC = @extschema@._cooc_final,
	COMBINEFUNC = @extschema@._cooc_combine,
	SERIALFUNC = @extschema@._cooc_serialize,
	DESERIALFUNC = @extschema@._cooc_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_agg(bigint, bigint, numeric) IS
	'counts orders per product and per product pair; lines with quantity <= 0 (returns, cancellations) are skipped';

CREATE FUNCTION @extschema@.cooccurrence_merge(@extschema@.cooccurrence, @extschema@.cooccurrence)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_merge'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cooccurrence_merge(@extschema@.cooccurrence, @extschema@.cooccurrence) IS
	'adds two co-occurrence counts: the counts of two disjoint sets of orders';

CREATE AGGREGATE @extschema@.cooccurrence_sum(@extschema@.cooccurrence) (
	SFUNC = @extschema@.cooccurrence_merge,
	STYPE = @extschema@.cooccurrence,
	COMBINEFUNC = @extschema@.cooccurrence_merge,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_sum(@extschema@.cooccurrence) IS
	'adds co-occurrence counts of disjoint sets of orders';

CREATE FUNCTION @extschema@.cooccurrence_info(state @extschema@.cooccurrence,
	OUT orders bigint, OUT products bigint, OUT pairs bigint,
	OUT skipped_lines bigint, OUT big_orders bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_info'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cooccurrence_info(@extschema@.cooccurrence) IS
	'orders, distinct products and pairs counted; lines skipped (NULL id, quantity <= 0); orders too large for pair counting (upsell.max_basket_size)';

CREATE FUNCTION @extschema@.cooccurrence_products(state @extschema@.cooccurrence)
	RETURNS TABLE (product_id bigint, orders bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_products'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@.cooccurrence_products(@extschema@.cooccurrence) IS
	'orders containing each product';

CREATE FUNCTION @extschema@.cooccurrence_pairs(state @extschema@.cooccurrence,
	min_count int DEFAULT 2, min_support float8 DEFAULT 0, min_confidence float8 DEFAULT 0)
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   product_count bigint, other_count bigint, orders bigint,
				   support float8, confidence float8, lift float8, leverage float8,
				   conviction float8, jaccard float8, score float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_pairs'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION @extschema@.cooccurrence_pairs(@extschema@.cooccurrence, int, float8, float8) IS
	'one row per ordered pair (product -> other) with support, confidence, lift, leverage, conviction, jaccard and the ranking score';

CREATE FUNCTION @extschema@.cooccurrence_top_pairs(state @extschema@.cooccurrence,
	per_product int, min_count int DEFAULT 2, rare_orders bigint DEFAULT 0)
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   score float8, confidence float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_top_pairs'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION @extschema@.cooccurrence_top_pairs(@extschema@.cooccurrence, int, int, bigint) IS
	'for each product its per_product best complements by score, ties broken by product id, among the pairs seen in min_count orders or more (any pair, for a product in fewer than rare_orders orders)';

CREATE FUNCTION @extschema@.cooccurrence_top_pairs(state @extschema@.cooccurrence,
	per_product int, min_count int, rare_orders bigint, products bigint[])
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   score float8, confidence float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_top_pairs'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@.cooccurrence_top_pairs(@extschema@.cooccurrence, int, int, bigint, bigint[]) IS
	'the same, for the products listed only (a product''s best complements depend on its own counts alone)';

CREATE FUNCTION @extschema@._cooccurrence_top_lists(state @extschema@.cooccurrence,
	per_product int, min_count int, rare_orders bigint)
	RETURNS TABLE (product_id bigint, other_ids bigint[], together bigint[],
				   score float8[], confidence float8[])
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_top_lists'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._cooccurrence_top_lists(@extschema@.cooccurrence, int, int, bigint) IS
	'internal: the pairs of cooccurrence_top_pairs one row per product, its partners as arrays in rank order (score descending, then partner id) with together, score and confidence at the same positions';

CREATE FUNCTION @extschema@._cooccurrence_top_lists(state @extschema@.cooccurrence,
	per_product int, min_count int, rare_orders bigint, products bigint[])
	RETURNS TABLE (product_id bigint, other_ids bigint[], together bigint[],
				   score float8[], confidence float8[])
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_top_lists'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._cooccurrence_top_lists(@extschema@.cooccurrence, int, int, bigint, bigint[]) IS
	'internal: the same, for the products listed only';

CREATE FUNCTION @extschema@._cooccurrence_category_pairs(state @extschema@.cooccurrence,
	product_ids bigint[], category_keys int[])
	RETURNS TABLE (category_key int, together bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_category_pairs'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION @extschema@._cooccurrence_category_pairs(@extschema@.cooccurrence, bigint[], int[]) IS
	'internal (category model): per category key of the products given (0 .. n - 1, NULL for none), the orders summed over the pairs of two products with that key; the row with a NULL key sums every pair';

CREATE FUNCTION @extschema@._cooccurrence_pair_moments(state @extschema@.cooccurrence,
	OUT together_squared float8, OUT together_counts float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_pair_moments'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._cooccurrence_pair_moments(@extschema@.cooccurrence) IS
	'internal (cooccurrence model''s pair_dispersion): over the ordered pairs of the value''s pairs, the sums of together^2 and of together * product_count * other_count';

CREATE FUNCTION @extschema@.cooccurrence_chunks(state @extschema@.cooccurrence, max_pairs bigint)
	RETURNS TABLE (chunk int, first_product bigint, state @extschema@.cooccurrence)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_chunks'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1;
COMMENT ON FUNCTION @extschema@.cooccurrence_chunks(@extschema@.cooccurrence, bigint) IS
	'the counts split into values of at most max_pairs pairs (a product with more alone), numbered from 0: each holds every product and the pairs of a range of products starting at first_product (NULL without pairs); their pairs together are the pairs of state';

CREATE FUNCTION @extschema@._cooccurrence_chunks_of(query text, max_pairs bigint)
	RETURNS TABLE (tenant_id bigint, chunk int, first_product bigint, state @extschema@.cooccurrence,
				   max_ordered_at timestamptz, max_order_key bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_chunks_of'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 1;
COMMENT ON FUNCTION @extschema@._cooccurrence_chunks_of(text, bigint) IS
	'internal (cooccurrence_chunks model): runs query, rows (tenant_id, state, max_ordered_at, max_order_key) as upsell._pair_counts_sql() writes, and returns each row''s counts as upsell.cooccurrence_chunks(state, max_pairs) does, with the row''s other columns; the whole counts are split where the query left them, never copied';

CREATE FUNCTION @extschema@._cooccurrence_merge_chunks(chunk @extschema@.cooccurrence,
	added @extschema@.cooccurrence, lo bigint, hi bigint, max_pairs bigint)
	RETURNS TABLE (chunk int, first_product bigint, state @extschema@.cooccurrence)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_merge_chunks'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1;
COMMENT ON FUNCTION @extschema@._cooccurrence_merge_chunks(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint, bigint) IS
	'internal (incremental refresh): chunk plus every product count of added and the pairs of added whose smaller product id lies in [lo, hi) (NULL: unbounded), as upsell.cooccurrence_chunks(sum, max_pairs) splits it (chunk alone when added is NULL), without building the sum as one value';

-- The readers of stored counts, in their sum form: (chunk, delta, lo, hi)
-- for the counts, a stored chunk with the delta stored beside it (NULL:
-- none) summed in, the delta's pairs of the chunk's range [lo, hi) (NULL:
-- unbounded), as they are read (no merged copy).  What every builder reads
-- (upsell._cooccurrence_parts gives a tenant's chunks so), and what an
-- analyst reads to see the counts a full refresh would store.
CREATE FUNCTION @extschema@._cooccurrence_info_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	OUT orders bigint, OUT products bigint,
	OUT skipped_lines bigint, OUT big_orders bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_info'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._cooccurrence_info_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint) IS
	'internal: cooccurrence_info of a stored chunk with its delta, without the pairs (_cooccurrence_pair_moments_sum counts them as it reads them: only the products are fetched here)';

CREATE FUNCTION @extschema@._cooccurrence_products_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint)
	RETURNS TABLE (product_id bigint, orders bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_products'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._cooccurrence_products_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint) IS
	'internal: cooccurrence_products of a stored chunk with its delta';

CREATE FUNCTION @extschema@._cooccurrence_pairs_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	min_count int DEFAULT 2, min_support float8 DEFAULT 0, min_confidence float8 DEFAULT 0)
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   product_count bigint, other_count bigint, orders bigint,
				   support float8, confidence float8, lift float8, leverage float8,
				   conviction float8, jaccard float8, score float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_pairs'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION @extschema@._cooccurrence_pairs_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint, int, float8, float8) IS
	'internal: cooccurrence_pairs of a stored chunk with its delta';

CREATE FUNCTION @extschema@._cooccurrence_top_pairs_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	per_product int, min_count int, rare_orders bigint)
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   score float8, confidence float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_top_pairs'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION @extschema@._cooccurrence_top_pairs_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint, int, int, bigint) IS
	'internal: cooccurrence_top_pairs of a stored chunk with its delta';

CREATE FUNCTION @extschema@._cooccurrence_top_pairs_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	per_product int, min_count int, rare_orders bigint, products bigint[])
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   score float8, confidence float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_top_pairs'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._cooccurrence_top_pairs_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint, int, int, bigint, bigint[]) IS
	'internal: the same, for the products listed only';

CREATE FUNCTION @extschema@._cooccurrence_top_lists_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	per_product int, min_count int, rare_orders bigint)
	RETURNS TABLE (product_id bigint, other_ids bigint[], together bigint[],
				   score float8[], confidence float8[])
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_top_lists'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._cooccurrence_top_lists_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint, int, int, bigint) IS
	'internal: _cooccurrence_top_lists of a stored chunk with its delta';

CREATE FUNCTION @extschema@._cooccurrence_top_lists_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	per_product int, min_count int, rare_orders bigint, products bigint[])
	RETURNS TABLE (product_id bigint, other_ids bigint[], together bigint[],
				   score float8[], confidence float8[])
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_top_lists'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._cooccurrence_top_lists_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint, int, int, bigint, bigint[]) IS
	'internal: the same, for the products listed only';

CREATE FUNCTION @extschema@._cooccurrence_category_pairs_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	product_ids bigint[], category_keys int[])
	RETURNS TABLE (category_key int, together bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_category_pairs'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION @extschema@._cooccurrence_category_pairs_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint, bigint[], int[]) IS
	'internal: _cooccurrence_category_pairs of a stored chunk with its delta';

CREATE FUNCTION @extschema@._cooccurrence_pair_moments_sum(chunk @extschema@.cooccurrence,
	delta @extschema@.cooccurrence, lo bigint, hi bigint,
	OUT together_squared float8, OUT together_counts float8, OUT pairs bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_sum_pair_moments'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._cooccurrence_pair_moments_sum(@extschema@.cooccurrence, @extschema@.cooccurrence, bigint, bigint) IS
	'internal: _cooccurrence_pair_moments of a stored chunk with its delta (the sums of the summed counts, which are not the sums of the two), and the number of its summed pairs';

CREATE FUNCTION @extschema@._cooccurrence_from_query(query text)
	RETURNS TABLE (tenant_id bigint, state @extschema@.cooccurrence)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_from_query'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._cooccurrence_from_query(text) IS
	'co-occurrence counts per tenant of a query returning (order id, product id [, tenant id])';

CREATE FUNCTION @extschema@.order_key(order_id text) RETURNS bigint
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN pg_catalog.hashtextextended(order_id COLLATE "C", 0);
COMMENT ON FUNCTION @extschema@.order_key(text) IS
	'64-bit key of a non-integer order or customer id, as upsell uses it internally';

-- ===========================================================================
-- Counting over shards of whole orders (Citus tables distributed by order or
-- by tenant): partial states are pair counts, not lines
-- ===========================================================================

-- The transition state is the result type itself (Citus pushes partial
-- aggregation to the workers only for real transition types, sent as text),
-- kept as an expanded object while lines stream in (src/cooccurrence_sharded.c).
CREATE FUNCTION @extschema@._cooc_sharded_trans(@extschema@.cooccurrence, bigint, bigint)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_sharded_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_sharded_trans(@extschema@.cooccurrence, bigint, bigint, numeric)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_sharded_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_sharded_final(@extschema@.cooccurrence)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_sharded_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- PARALLEL RESTRICTED: PostgreSQL's own parallel workers may split an order's
-- lines, which adding pair counts would miscount; Citus's shards do not.
CREATE AGGREGATE @extschema@.cooccurrence_sharded_agg(order_key bigint, product_id bigint) (
	SFUNC = @extschema@._cooc_sharded_trans,
	STYPE = @extschema@.cooccurrence,
	FINALFUNC = @extschema@._cooc_sharded_final,
	COMBINEFUNC = @extschema@.cooccurrence_merge,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_sharded_agg(bigint, bigint) IS
	'upsell.cooccurrence_agg for tables whose every order lies in one shard (Citus, distributed by order or tenant): each shard sends its pair counts';

CREATE AGGREGATE @extschema@.cooccurrence_sharded_agg(order_key bigint, product_id bigint, quantity numeric) (
	SFUNC = @extschema@._cooc_sharded_trans,
	STYPE = @extschema@.cooccurrence,
	FINALFUNC = @extschema@._cooc_sharded_final,
	COMBINEFUNC = @extschema@.cooccurrence_merge,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_sharded_agg(bigint, bigint, numeric) IS
	'upsell.cooccurrence_agg for tables whose every order lies in one shard (Citus, distributed by order or tenant): each shard sends its pair counts; lines with quantity <= 0 are skipped';

-- ===========================================================================
-- Registration: which of the shop's relations and columns mean what
-- ===========================================================================
--
-- register_orders / register_products record a mapping in a config table and
-- (re)create a view with canonical column names over the shop's relation:
-- upsell.order_lines and upsell.catalog.  Everything downstream reads through
-- these two views with static SQL; user-supplied names only ever reach SQL
-- through format('%I').

-- The merchant's configuration tables (those marked for pg_dump) are created
-- IF NOT EXISTS: an upgrade keeps them with their rows and runs this script
-- around them (src/upgrade/), so a new version changes them only by ALTER.
CREATE TABLE IF NOT EXISTS @extschema@.order_source (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	relation	regclass NOT NULL,
	order_id	name NOT NULL,
	product_id	name NOT NULL,
	customer_id	name,
	ordered_at	name,
	quantity	name,
	unit_price	name,
	tenant_id	name,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- 1.1: 'columns' (one row per line, register_orders) or 'shopify' (one
	-- order document per row in column payload, register_shopify_orders)
	kind		text NOT NULL DEFAULT 'columns',
	payload		name,
	-- 1.6: the TimeZone of the session that registered the lines: an
	-- ordered_at of type date or timestamp is a time of that zone, for
	-- every reader of upsell.order_lines (_local_time)
	time_zone	text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone'),
	CONSTRAINT order_source_kind CHECK (kind IN ('columns', 'shopify') AND (kind = 'shopify') = (payload IS NOT NULL))
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_source', '');
COMMENT ON TABLE @extschema@.order_source IS
	'the registered order lines: relation and the columns that mean order, product, customer, time, quantity, price, tenant; for kind shopify the payload column and the document fields each role comes from; time_zone: the TimeZone of the session that registered them (an ordered_at of type date or timestamp is a time of that zone, whoever reads it)';

CREATE TABLE IF NOT EXISTS @extschema@.product_source (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	relation	regclass NOT NULL,
	product_id	name NOT NULL,
	price		name,
	category	name,
	variant_group name,
	in_stock	name,
	title		name,
	tenant_id	name,
	unit_size	name,
	unit_name	name,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- 1.1: 'columns' (register_products) or 'shopify' (one product document
	-- per row in column payload; collection: a column naming its category)
	kind		text NOT NULL DEFAULT 'columns',
	payload		name,
	collection	name,
	CONSTRAINT product_source_kind CHECK (kind IN ('columns', 'shopify') AND (kind = 'shopify') = (payload IS NOT NULL)
										 AND (kind = 'shopify' OR collection IS NULL))
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.product_source', '');
COMMENT ON TABLE @extschema@.product_source IS
	'the registered catalog: relation and the columns that mean product, price, category, variant group, stock, title, tenant, unit size; for kind shopify the payload column, the collection column and the document fields each role comes from';

-- The views upsell.order_lines and upsell.catalog are created by the register
-- functions, not by this script: they depend on the shop's tables, and as
-- members of the extension a DROP ... CASCADE of a shop table would drop the
-- whole extension.  As ordinary views in the extension's schema pg_dump keeps
-- them, and refresh re-creates them from the config tables anyway.
--
--   upsell.order_lines (tenant_id bigint, order_key bigint, order_id text,
--                       product_id bigint, customer_id bigint,
--                       ordered_at timestamptz, quantity numeric, unit_price numeric,
--                       row_xmin xid, sold boolean)
--   upsell.catalog     (tenant_id bigint, product_id bigint, price numeric,
--                       category text, variant_group text, in_stock boolean,
--                       title text, unit_size numeric, unit_name text)
--
-- tenant_id is 0 without a tenant column; order_key is the order id, or
-- upsell.order_key() of it when it is not an integer; quantity is 1 and
-- in_stock true when those columns are not registered; row_xmin is the
-- row's xmin when the relation is a table (incremental refresh compares it
-- with the snapshot of the last refresh), NULL for a view; sold is true
-- unless the quantity is 0 or less (a return).

-- Raises unless the registered relation still exists.
CREATE FUNCTION @extschema@._check_relation(relation regclass, what text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_class WHERE oid = relation) THEN
		RAISE EXCEPTION 'the relation registered for the % no longer exists', what
			USING ERRCODE = 'undefined_table',
				  HINT = format('Register the %s again.', what);
	END IF;
END
$$;

-- Type of a column, or an error that names the relation's columns.
CREATE FUNCTION @extschema@._column_type(relation regclass, col name, role text)
RETURNS regtype
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regtype;
	base regtype;
BEGIN
	SELECT a.atttypid::regtype INTO t
	FROM pg_attribute a
	WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF FOUND THEN
		-- a domain is read as the type it constrains (its CHECK does not
		-- change what the column holds), through domains of domains
		LOOP
			SELECT ty.typbasetype INTO base FROM pg_type ty WHERE ty.oid = t AND ty.typtype = 'd';
			EXIT WHEN NOT FOUND;
			t := base;
		END LOOP;
		RETURN t;
	END IF;
	RAISE EXCEPTION 'column "%" of relation % does not exist', col, relation
		USING ERRCODE = 'undefined_column',
			  DETAIL = format('It was given as the %s column.', role),
			  HINT = format('The columns of %s are: %s.', relation,
					 (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
					  FROM pg_attribute
					  WHERE attrelid = relation AND attnum > 0 AND NOT attisdropped));
END
$$;

-- A date or timestamp column of the shop's names a day or a time without
-- saying where: the views read it as a local time of the zone the
-- registration recorded (order_source.time_zone, cart_source.time_zone), so
-- that every reader -- a refresh from pg_cron in the server's zone, an
-- analyst's psql in hers, the app -- sees the same instants (a cast to
-- timestamptz converts in the reader's zone).  timezone(zone, ts), but with
-- the zone looked up once per query, not per line (src/local_time.c).
CREATE FUNCTION @extschema@._local_time(ts timestamp, zone text)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'upsell_local_time'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._local_time(timestamp, text) IS
	'internal: the timestamptz of a local time of a zone (timezone(zone, ts)); the views over the shop''s tables read its date and timestamp columns so';

-- ts + span counted on the clock of a zone, as timestamptz + interval counts
-- in the session's TimeZone (PostgreSQL 16's date_add(ts, span, zone)):
-- months and days by the zone's calendar (a day across a change of daylight
-- saving time is 23 or 25 hours), hours and less as elapsed time.  Windows
-- of the shop's zone (_shop_zone) then end at the same instant whoever
-- reads them.
CREATE FUNCTION @extschema@._zone_add(ts timestamptz, span interval, zone text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN @extschema@._local_time(pg_catalog.timezone(zone, ts) OPERATOR(pg_catalog.+) pg_catalog.date_trunc('day', span), zone)
	OPERATOR(pg_catalog.+) (span OPERATOR(pg_catalog.-) pg_catalog.date_trunc('day', span));

-- The canonical expression for one column, by the role it plays and its
-- type; a date or timestamp is a time of time_zone (the registration's;
-- NULL: the reader's, for a check of the column alone).
CREATE FUNCTION @extschema@._column_expr(relation regclass, col name, role text, time_zone text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regtype;
	c text := 's.' || quote_ident(col);
	integers regtype[] := '{smallint,integer,bigint}';
	numbers regtype[] := '{smallint,integer,bigint,numeric,real,double precision}';
	texts regtype[] := '{text,character varying,character,name,uuid}';
	expected text;
BEGIN
	t := @extschema@._column_type(relation, col, role);
	CASE role
		WHEN 'product_id', 'tenant_id' THEN
			IF t = ANY (integers) THEN RETURN c || '::bigint'; END IF;
			expected := 'an integer type (smallint, integer, bigint)';
		WHEN 'order_id', 'customer_id', 'cart_id' THEN
			IF t = ANY (integers) THEN RETURN c || '::bigint'; END IF;
			IF t = ANY (texts) THEN RETURN format('@extschema@.order_key(%s::text)', c); END IF;
			expected := 'an integer or text type';
		WHEN 'ordered_at', 'added_at', 'checked_out_at' THEN
			-- an infinite time is a placeholder, not a moment: read as
			-- unknown, as none (one order at 'infinity' would end the
			-- window of recent orders there; bad_source_rows lists it); so
			-- is a time outside the years 1900 to 2199 (_plausible_time).
			-- But a cart checked out at such a time is checked out: its
			-- time reads as -infinity, unknown and long past, not as none,
			-- which is a cart still open (a typo of 2204 for 2024 made a
			-- bought cart a win-back mail)
			IF time_zone IS NOT NULL AND t IN ('timestamp without time zone'::regtype, 'date'::regtype) THEN
				RETURN format('CASE WHEN @extschema@._plausible_time(%1$s) THEN @extschema@._local_time(%1$s::timestamp, %2$L)%3$s END',
							  c, time_zone,
							  CASE WHEN role = 'checked_out_at'
								   THEN format(' WHEN %s IS NOT NULL THEN ''-infinity''::timestamptz', c) ELSE '' END);
			END IF;
			IF t IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) THEN
				RETURN format('CASE WHEN @extschema@._plausible_time(%1$s) THEN %1$s::timestamptz%2$s END', c,
							  CASE WHEN role = 'checked_out_at'
								   THEN format(' WHEN %s IS NOT NULL THEN ''-infinity''::timestamptz', c) ELSE '' END);
			END IF;
			expected := 'date, timestamp or timestamptz';
		WHEN 'quantity', 'price', 'unit_price', 'unit_size' THEN
			IF t = ANY (numbers) THEN RETURN c || '::numeric'; END IF;
			expected := 'a numeric or integer type';
		WHEN 'in_stock' THEN
			IF t = 'boolean'::regtype THEN RETURN format('coalesce(%s, true)', c); END IF;
			IF t = ANY (numbers) THEN RETURN format('coalesce(%s > 0, true)', c); END IF;
			expected := 'boolean, or a number of units in stock';
		ELSE
			-- category, variant_group, title, unit_name: anything with a text form
			RETURN c || '::text';
	END CASE;
	RAISE EXCEPTION 'column "%" of relation % has type %, which cannot be the % column', col, relation, t, role
		USING ERRCODE = 'datatype_mismatch',
			  HINT = format('The %s column must be %s.', role, expected);
END
$$;

-- Plausible order and cart times: from 1900 to the end of 2199, of a date,
-- timestamp or timestamptz column (compared in its own type: a timestamp
-- of the year 294276 has no timestamptz).  A line dated 2204 for 2024 ended
-- the window of recent orders there, leaving one order on the post-purchase
-- view, and one near the end of the range overflowed the next due date of
-- its customer, failing replenishment_due for the whole shop (until 1.8).
-- Read as unknown, as an infinite time is.  (Polymorphic, so parsed where
-- it is inlined, in the column's type; fully qualified.)
CREATE FUNCTION @extschema@._plausible_time(t anyelement)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT t OPERATOR(pg_catalog.>=) '1900-01-01' AND t OPERATOR(pg_catalog.<) '2200-01-01' $$;

-- Plausible amounts.  A NaN, an infinity, a negative price or an absurd
-- value (a typo, a unit mix-up, a test row) is never a real purchase: the
-- views below leave it out -- a line with such a quantity is skipped, such
-- a price is read as unknown -- and upsell.bad_source_rows() lists it with
-- its problem, so refresh counts and names them instead of failing (a 1e100
-- price would overflow the integer cents of the threshold model).  NaN
-- compares above every number, so the upper bounds catch it.
--
-- The views test every line with them, so they must be inlined: a SQL
-- function with SET search_path is called through the function manager
-- with a GUC save and restore per row, which made reading 10M lines
-- through upsell.order_lines take 18 s instead of 2 s.  Their bodies are
-- SQL-standard (parsed, and their operators bound by oid, when created), so
-- no caller's search_path reaches them, pinned or not; the operators are
-- qualified all the same.  The quantity is bounded by its absolute value,
-- not by two comparisons: the planner reads "x > a AND x < b" on an
-- expression without statistics as a narrow range (0.5% of the rows).
CREATE FUNCTION @extschema@._plausible_quantity(quantity numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN quantity IS NULL OR pg_catalog.abs(quantity) OPERATOR(pg_catalog.<) 1e9;

-- The WHERE clause of upsell.order_lines over relation s: lines with an
-- implausible quantity are left out.  The rule is _plausible_quantity's; a
-- quantity column of an integer type is bounded as an integer (its absolute
-- value taken as bigint, which no integer or smallint overflows): the
-- numeric cast and abs() of every line were 0.8 s of the 2 s it takes to
-- read 10M lines through the view, and every refresh reads them four or
-- five times.  A bigint column keeps the numeric rule (abs() of its
-- smallest value overflows bigint).
CREATE FUNCTION @extschema@._quantity_filter(rel regclass, col name, expr text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN col IS NOT NULL
			 AND @extschema@._column_type(rel, col, 'quantity') IN ('smallint'::regtype, 'integer'::regtype)
			THEN format(' WHERE s.%1$I IS NULL OR pg_catalog.abs(s.%1$I::pg_catalog.int8) OPERATOR(pg_catalog.<) 1000000000', col)
			ELSE format(' WHERE @extschema@._plausible_quantity(%s)', expr) END;

-- The expression of order_lines.sold over relation s: the line sells (a
-- quantity above 0, or none: read as 1), not a return or a zero line.  The
-- builders that read every line for what sold (the upgrade lists, the
-- bundles) test it rather than the numeric quantity: an integer column is
-- compared as it is stored, and the numeric cast and comparison of every
-- line were 0.5 s of the 1.8 s it takes to read 10M lines through the view.
CREATE FUNCTION @extschema@._line_sold(rel regclass, col name, expr text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN col IS NOT NULL
			 AND @extschema@._column_type(rel, col, 'quantity') IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
			THEN format('coalesce(s.%I OPERATOR(pg_catalog.>) 0, true)', col)
			ELSE format('coalesce((%s) OPERATOR(pg_catalog.>) 0, true)', expr) END;

CREATE FUNCTION @extschema@._plausible_price(price numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN price IS NULL
	OR (price OPERATOR(pg_catalog.>=) 0 AND price OPERATOR(pg_catalog.<) 1e12);

-- The registrations and the views they make, one row each: the view over
-- the shop's relation, the config table that registers it, what it is
-- called in messages, and the function that registers it by columns.
CREATE FUNCTION @extschema@._registration(view text,
	OUT source name, OUT what text, OUT register text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	CASE view
		WHEN 'order_lines' THEN source := 'order_source'; what := 'order lines'; register := 'register_orders';
		WHEN 'catalog' THEN source := 'product_source'; what := 'catalog'; register := 'register_products';
		WHEN 'carts' THEN source := 'cart_source'; what := 'carts'; register := 'register_carts';
		ELSE RAISE EXCEPTION 'no view "%" is made from a registration', view
			USING ERRCODE = 'invalid_parameter_value';
	END CASE;
END
$$;

-- The canonical columns of the views over the shop's relations, in order:
-- the config column that names the shop's column, the role that decides its
-- expression (_column_expr), and the expression when none is registered.
CREATE FUNCTION @extschema@._view_columns(view text)
RETURNS TABLE (ord int, name text, source text, role text, fallback text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT v.ord, v.name, v.source, v.role, v.fallback
	FROM (VALUES
		('order_lines', 1, 'tenant_id', 'tenant_id', 'tenant_id', '0::bigint'),
		('order_lines', 2, 'order_key', 'order_id', 'order_id', NULL),
		('order_lines', 3, 'order_id', 'order_id', 'order label', NULL),
		('order_lines', 4, 'product_id', 'product_id', 'product_id', NULL),
		('order_lines', 5, 'customer_id', 'customer_id', 'customer_id', 'NULL::bigint'),
		('order_lines', 6, 'ordered_at', 'ordered_at', 'ordered_at', 'NULL::timestamptz'),
		('order_lines', 7, 'quantity', 'quantity', 'quantity', '1::numeric'),
		('order_lines', 8, 'unit_price', 'unit_price', 'unit_price', 'NULL::numeric'),
		('catalog', 1, 'tenant_id', 'tenant_id', 'tenant_id', '0::bigint'),
		('catalog', 2, 'product_id', 'product_id', 'product_id', NULL),
		('catalog', 3, 'price', 'price', 'price', 'NULL::numeric'),
		('catalog', 4, 'category', 'category', 'category', 'NULL::text'),
		('catalog', 5, 'variant_group', 'variant_group', 'variant_group', 'NULL::text'),
		('catalog', 6, 'in_stock', 'in_stock', 'in_stock', 'true'),
		('catalog', 7, 'title', 'title', 'title', 'NULL::text'),
		('catalog', 8, 'unit_size', 'unit_size', 'unit_size', 'NULL::numeric'),
		('catalog', 9, 'unit_name', 'unit_name', 'unit_name', 'NULL::text'),
		('carts', 1, 'tenant_id', 'tenant_id', 'tenant_id', '0::bigint'),
		('carts', 2, 'cart_id', 'cart_id', 'cart_id', NULL),
		('carts', 3, 'customer_id', 'customer_id', 'customer_id', 'NULL::bigint'),
		('carts', 4, 'product_id', 'product_id', 'product_id', NULL),
		('carts', 5, 'quantity', 'quantity', 'quantity', '1::numeric'),
		('carts', 6, 'added_at', 'added_at', 'added_at', NULL),
		('carts', 7, 'checked_out_at', 'checked_out_at', 'checked_out_at', 'NULL::timestamptz'))
		AS v(view, ord, name, source, role, fallback)
	WHERE v.view = _view_columns.view
	ORDER BY v.ord;
END;

-- The expression of order_lines.row_xmin over the relation aliased s: the
-- commit order of its rows, for incremental refresh (21_incremental.sql).
-- A view has none, and neither has a Citus distributed table: its rows'
-- xmin are the shards' own transaction ids, which the coordinator's
-- snapshot cannot judge (lines were taken as not yet committed).
CREATE FUNCTION @extschema@._row_xmin(rel regclass)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	distributed boolean := false;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
		-- Citus's catalog, read only when Citus is installed
		EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1)'
			INTO distributed USING rel;
	END IF;
	RETURN CASE WHEN NOT distributed AND (SELECT r.relkind FROM pg_class r WHERE r.oid = rel) IN ('r', 'p', 'm')
				THEN 's.xmin' ELSE 'NULL::xid' END;
END
$$;

-- The canonical expression of each column of a registration by columns
-- (cfg: its config row as jsonb), over the relation aliased s: for the view
-- and for bad_source_rows().
CREATE FUNCTION @extschema@._view_exprs(view text, rel regclass, cfg jsonb)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT jsonb_object_agg(c.name, CASE WHEN cfg ->> c.source IS NULL THEN c.fallback
										 ELSE @extschema@._column_expr(rel, (cfg ->> c.source)::name, c.role, cfg ->> 'time_zone') END)
	FROM @extschema@._view_columns(view) c;
END;

-- (Re)creates one view over the shop's relations -- upsell.order_lines,
-- upsell.catalog or upsell.carts -- from its registration (order_source,
-- product_source, cart_source).  The one place these views are made: a
-- registration of kind 'columns' maps the shop's columns one by one
-- (_view_exprs), one of kind 'shopify' reads JSON documents through the
-- views of 15_shopify.sql (_shopify_views).  Implausible amounts (NaN,
-- infinite, negative or absurd: a typo, a test row) never reach a model:
-- such an order line is left out, such a price read as unknown, and
-- bad_source_rows() names them for refresh to count.  Registration is an
-- administrator's act: CREATE OR REPLACE VIEW waits for the readers of the
-- old definition.
CREATE FUNCTION @extschema@._sync_view(view text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record := @extschema@._registration(view);
	rel regclass;
	cfg jsonb;
	e jsonb;
	v record;
	cols text;
BEGIN
	EXECUTE format('SELECT s.relation, pg_catalog.to_jsonb(s) FROM @extschema@.%I s', r.source) INTO rel, cfg;
	IF cfg IS NULL THEN
		RETURN;
	END IF;
	PERFORM @extschema@._check_relation(rel, r.what);
	IF coalesce(cfg ->> 'kind', 'columns') = 'columns' THEN
		e := @extschema@._view_exprs(view, rel, cfg);
		SELECT string_agg(CASE WHEN c.name IN ('unit_price', 'price', 'unit_size')
							   THEN format('CASE WHEN @extschema@._plausible_price(%s) THEN %s END', e ->> c.name, e ->> c.name)
							   ELSE e ->> c.name END || ' AS ' || quote_ident(c.name), ', ' ORDER BY c.ord)
		INTO cols
		FROM @extschema@._view_columns(view) c;
		IF view = 'order_lines' THEN
			cols := cols || ', ' || @extschema@._row_xmin(rel) || ' AS row_xmin, '
				|| @extschema@._line_sold(rel, (cfg ->> 'quantity')::name, e ->> 'quantity') || ' AS sold';
		END IF;
		EXECUTE format('CREATE OR REPLACE VIEW @extschema@.%I AS SELECT %s FROM %s AS s%s', view, cols, rel,
					   CASE WHEN view = 'order_lines'
							THEN @extschema@._quantity_filter(rel, (cfg ->> 'quantity')::name, e ->> 'quantity')
							ELSE '' END);
		EXECUTE format('COMMENT ON VIEW @extschema@.%I IS %L', view,
					   format('the registered %s under canonical names, created by upsell.%s()', r.what, r.register)
					   || CASE view WHEN 'order_lines' THEN '; lines with an implausible quantity are left out, implausible unit prices read as NULL (see upsell.bad_source_rows())'
									WHEN 'catalog' THEN '; implausible prices and unit sizes read as NULL (see upsell.bad_source_rows())'
									ELSE '' END);
		-- the JSON views of a previous Shopify registration go with it
		IF to_regclass(CASE view WHEN 'order_lines' THEN '@extschema@.shopify_order_lines'
								 WHEN 'catalog' THEN '@extschema@.shopify_variants' END) IS NOT NULL THEN
			EXECUTE format('DROP VIEW @extschema@.%I',
						   CASE view WHEN 'order_lines' THEN 'shopify_order_lines' ELSE 'shopify_variants' END);
		END IF;
	ELSE
		FOR v IN SELECT * FROM @extschema@._shopify_views(view, rel, cfg) LOOP
			EXECUTE format('CREATE OR REPLACE VIEW @extschema@.%I AS %s', v.name, v.body);
			EXECUTE format('COMMENT ON VIEW @extschema@.%I IS %L', v.name, v.comment);
		END LOOP;
	END IF;
END
$$;

-- The source rows the models skip or read in part, with their problem.
CREATE FUNCTION @extschema@.bad_source_rows(tenant_ids bigint[] DEFAULT NULL)
RETURNS TABLE (tenant_id bigint, source text, id text, problem text, value text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	view text;
	r record;
	rel regclass;
	cfg jsonb;
	e jsonb;
	parts text[] := '{}';
	bound bigint := @extschema@._bound_tenant(NULL);
	t bigint;
BEGIN
	-- a session bound to a tenant reads its rows only, as every function
	IF bound IS NOT NULL THEN
		FOREACH t IN ARRAY coalesce(tenant_ids, '{}') LOOP
			PERFORM @extschema@._bound_tenant(t);
		END LOOP;
		tenant_ids := ARRAY[bound];
	END IF;
	FOREACH view IN ARRAY ARRAY['order_lines', 'catalog'] LOOP
		r := @extschema@._registration(view);
		EXECUTE format('SELECT s.relation, pg_catalog.to_jsonb(s) FROM @extschema@.%I s', r.source) INTO rel, cfg;
		CONTINUE WHEN cfg IS NULL;
		PERFORM @extschema@._check_relation(rel, r.what);
		IF cfg ->> 'kind' = 'shopify' THEN
			-- the documents, line items and variants a Shopify registration
			-- skips, with the reason (15_shopify.sql), and implausible prices
			IF to_regclass(CASE view WHEN 'order_lines' THEN '@extschema@.shopify_order_lines'
									 ELSE '@extschema@.shopify_variants' END) IS NULL THEN
				PERFORM @extschema@._sync_view(view);
			END IF;
			parts := parts || CASE view
				WHEN 'order_lines' THEN
					$q$SELECT l.tenant_id, 'order lines' AS source,
							  pg_catalog.concat(coalesce(l.order_id, 'NULL'), '/', coalesce(l.product_id::text, 'NULL')) AS id,
							  coalesce(l.skipped, CASE WHEN l.tenant_id IS NULL THEN 'NULL tenant id (line skipped)' END) AS problem,
							  pg_catalog.concat('quantity ', coalesce(l.quantity::text, 'NULL'),
												', unit price ', coalesce(l.unit_price::text, 'NULL')) AS value
					   FROM @extschema@.shopify_order_lines l$q$
				ELSE
					$q$SELECT v.tenant_id, 'catalog', coalesce(coalesce(v.variant_id, v.product_id)::text, 'NULL'),
							  coalesce(v.skipped, CASE WHEN v.tenant_id IS NULL THEN 'NULL tenant id (row skipped)'
													   WHEN NOT @extschema@._plausible_price(v.price)
													   THEN 'implausible price (read as unknown)' END),
							  pg_catalog.concat('price ', coalesce(v.price::text, 'NULL'), ', unit size NULL')
					   FROM @extschema@.shopify_variants v$q$ END;
			CONTINUE;
		END IF;
		e := @extschema@._view_exprs(view, rel, cfg);
		parts := parts || CASE view
			WHEN 'order_lines' THEN format($q$
				SELECT %1$s AS tenant_id, 'order lines' AS source,
					   pg_catalog.concat(coalesce(%2$s, 'NULL'), '/', coalesce((%3$s)::text, 'NULL')) AS id,
					   CASE WHEN %1$s IS NULL THEN 'NULL tenant id (line skipped)'
							WHEN %4$s IS NULL THEN 'NULL order id' WHEN %3$s IS NULL THEN 'NULL product id'
							WHEN NOT @extschema@._plausible_quantity(%5$s) THEN 'implausible quantity (line skipped)'
							WHEN NOT @extschema@._plausible_price(%6$s) THEN 'implausible unit price (read as unknown)'
							WHEN NOT pg_catalog.isfinite(%8$s) THEN 'infinite order time (read as unknown)'
							WHEN NOT @extschema@._plausible_time(%8$s) THEN 'implausible order time (read as unknown)'
					   END AS problem,
					   pg_catalog.concat('quantity ', coalesce((%5$s)::text, 'NULL'),
										 ', unit price ', coalesce((%6$s)::text, 'NULL'),
										 CASE WHEN NOT @extschema@._plausible_time(%8$s) THEN pg_catalog.concat(', ordered at ', %8$s) END) AS value
				FROM %7$s AS s$q$,
				e ->> 'tenant_id', e ->> 'order_id', e ->> 'product_id', e ->> 'order_key', e ->> 'quantity',
				e ->> 'unit_price', rel,
				coalesce('s.' || quote_ident(cfg ->> 'ordered_at'), 'NULL::timestamptz'))
			ELSE format($q$
				SELECT %1$s, 'catalog', coalesce((%2$s)::text, 'NULL'),
					   CASE WHEN %1$s IS NULL THEN 'NULL tenant id (row skipped)'
							WHEN %2$s IS NULL THEN 'NULL product id'
							WHEN NOT @extschema@._plausible_price(%3$s) THEN 'implausible price (read as unknown)'
							WHEN NOT @extschema@._plausible_price(%4$s) THEN 'implausible unit size (read as unknown)'
					   END,
					   pg_catalog.concat('price ', coalesce((%3$s)::text, 'NULL'), ', unit size ', coalesce((%4$s)::text, 'NULL'))
				FROM %5$s AS s$q$,
				e ->> 'tenant_id', e ->> 'product_id', e ->> 'price', e ->> 'unit_size', rel) END;
	END LOOP;
	IF cardinality(parts) = 0 THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format(
		-- (the rows of no tenant are of every call: no refresh reads them;
		-- not of a bound session's, they may be any shop's)
		'SELECT x.* FROM (%s) x WHERE x.problem IS NOT NULL '
		'AND ($1 IS NULL OR (x.tenant_id IS NULL AND NOT $2) OR x.tenant_id OPERATOR(pg_catalog.=) ANY ($1))',
		array_to_string(parts, ' UNION ALL '))
	USING tenant_ids, bound IS NOT NULL;
END
$$;
COMMENT ON FUNCTION @extschema@.bad_source_rows(bigint[]) IS
	'the registered order lines and catalog rows (of the given tenants, or all) that the models skip or read in part: NULL ids (a row without tenant, listed whatever the tenants asked for, is of none), implausible quantities (NaN, infinite, |q| >= 1e9: line skipped), implausible prices and unit sizes (NaN, infinite, negative, >= 1e12: read as unknown), infinite order times and those before 1900 or from 2200 on (read as unknown), and the Shopify documents, line items and variants skipped with their reason (upsell.shopify_skips()); a full refresh counts them into upsell.refresh_log';

-- What the builders read as the catalog: the registered one, or none.
-- (plpgsql: Citus 12.1 cannot run a SQL-standard body that reads a
-- reference table when the function is not inlined)
CREATE FUNCTION @extschema@._catalog_source()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN CASE WHEN EXISTS (SELECT FROM @extschema@.product_source) THEN '@extschema@.catalog'
		ELSE '(SELECT NULL::bigint AS tenant_id, NULL::bigint AS product_id, NULL::numeric AS price, '
			 'NULL::text AS category, NULL::text AS variant_group, NULL::boolean AS in_stock, '
			 'NULL::text AS title, NULL::numeric AS unit_size, NULL::text AS unit_name WHERE false)' END;
END
$$;

-- A tenant's catalog, one row per product, as a subquery: a product listed
-- more than once (a catalog view over a join, a product in two
-- collections) takes its first row in one fixed order -- in stock first,
-- then the highest price, then by title, category, variant group, unit --
-- so every model that reads the catalog (product_model, the upgrade
-- lists, unit_model) describes a product by the same row.
CREATE FUNCTION @extschema@._catalog_products(tenant_id bigint)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN format('(SELECT DISTINCT ON (c.product_id) c.* FROM %s AS c '
			  'WHERE c.tenant_id OPERATOR(pg_catalog.=) %s AND c.product_id IS NOT NULL '
			  'ORDER BY c.product_id, c.in_stock DESC NULLS LAST, c.price DESC NULLS LAST, c.title, '
			  'c.category, c.variant_group, c.unit_size, c.unit_name)',
			  @extschema@._catalog_source(), tenant_id);

-- The one upsert of every registration: the config row of view's
-- registration becomes relation plus roles (config column -> value, the
-- columns not named take their defaults), then the view is made anew, which
-- validates every column: an error rolls the registration back.  required
-- lists the register function's arguments that must not be NULL, as name,
-- value, name, value, ... (for the error that names them).
CREATE FUNCTION @extschema@._register(view text, relation regclass, roles jsonb, required text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record := @extschema@._registration(view);
	cols record;
	names text[];
BEGIN
	names := ARRAY['relation'] || ARRAY(SELECT required[i] FROM generate_subscripts(required, 1) i
										WHERE i % 2 = 1 ORDER BY i);
	IF relation IS NULL OR EXISTS (SELECT FROM generate_subscripts(required, 1) i
								   WHERE i % 2 = 0 AND required[i] IS NULL) THEN
		RAISE EXCEPTION '% and % must not be NULL',
			array_to_string(names[1:cardinality(names) - 1], ', '), names[cardinality(names)]
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE roles ? a.attname) AS given,
		   string_agg('r.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE roles ? a.attname) AS given_values,
		   string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname <> 'singleton') AS every,
		   string_agg('excluded.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname <> 'singleton') AS excluded
	INTO cols
	FROM pg_attribute a
	WHERE a.attrelid = format('@extschema@.%I', r.source)::regclass AND a.attnum > 0 AND NOT a.attisdropped
	  AND a.attname <> 'relation';
	-- The view first: a refresh reading it holds its lock to the end of the
	-- tenant's transaction, whose last step updates serving_state, whose row
	-- the registration's trigger (below) would hold while it waited for the
	-- view: a deadlock (40P01), the refresh's tenant lost when it was the
	-- victim.  Waiting for the view first, the registration takes its turn
	-- between two tenants.  (LOCK TABLE on a view would lock the shop's
	-- tables under it too; resetting an option the view never has locks the
	-- view alone, and the view is made anew below.)
	IF to_regclass(format('@extschema@.%I', view)) IS NOT NULL THEN
		EXECUTE format('ALTER VIEW @extschema@.%I RESET (security_barrier)', view);
	END IF;
	-- excluded holds the defaults of the columns not given (registered_at: now)
	EXECUTE format(
		'INSERT INTO @extschema@.%1$I AS s (relation, %2$s) SELECT $1, %3$s FROM pg_catalog.jsonb_populate_record(NULL::@extschema@.%1$I, $2) r '
		'ON CONFLICT (singleton) DO UPDATE SET (relation, %4$s) = ROW(excluded.relation, %5$s)',
		r.source, cols.given, cols.given_values, cols.every, cols.excluded)
	USING relation, roles;
	PERFORM @extschema@._sync_view(view);
END
$$;

CREATE FUNCTION @extschema@.register_orders(relation regclass, order_id name, product_id name,
	customer_id name DEFAULT NULL, ordered_at name DEFAULT NULL, quantity name DEFAULT NULL,
	unit_price name DEFAULT NULL, tenant_id name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._register('order_lines', relation, jsonb_build_object(
		'order_id', order_id, 'product_id', product_id, 'customer_id', customer_id, 'ordered_at', ordered_at,
		'quantity', quantity, 'unit_price', unit_price, 'tenant_id', tenant_id),
		ARRAY['order_id', order_id, 'product_id', product_id]);
END
$$;
COMMENT ON FUNCTION @extschema@.register_orders(regclass, name, name, name, name, name, name, name) IS
	'records which table or view holds the order lines (one row per line) and which columns mean what';

CREATE FUNCTION @extschema@.register_products(relation regclass, product_id name,
	price name DEFAULT NULL, category name DEFAULT NULL, variant_group name DEFAULT NULL,
	in_stock name DEFAULT NULL, title name DEFAULT NULL, tenant_id name DEFAULT NULL,
	unit_size name DEFAULT NULL, unit_name name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._register('catalog', relation, jsonb_build_object(
		'product_id', product_id, 'price', price, 'category', category, 'variant_group', variant_group,
		'in_stock', in_stock, 'title', title, 'tenant_id', tenant_id, 'unit_size', unit_size,
		'unit_name', unit_name), ARRAY['product_id', product_id]);
END
$$;
COMMENT ON FUNCTION @extschema@.register_products(regclass, name, name, name, name, name, name, name, name, name) IS
	'records which table or view is the catalog and which columns mean price, category, variant group, stock, title, tenant, unit size';

-- The tenant a request is about: the given one when orders are registered
-- per tenant, 0 when they are not.
-- Carts (and orders) passed to the serving functions are bounded: a longer
-- one is refused rather than served slowly.
CREATE FUNCTION @extschema@._check_cart_length(cart bigint[])
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	max_lines int := coalesce(nullif(current_setting('upsell.max_cart_lines', true), '')::int, 500);
BEGIN
	IF cardinality(cart) > max_lines THEN
		RAISE EXCEPTION 'the cart has % lines, more than upsell.max_cart_lines (%)', cardinality(cart), max_lines
			USING ERRCODE = 'program_limit_exceeded';
	END IF;
END
$$;

-- How many offers a serving function is asked for: refused when NULL or
-- negative (0 asks for none).
CREATE FUNCTION @extschema@._check_k(k int)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;

-- The tenant the session is bound to (SET upsell.tenant_id), NULL when none;
-- an error when the setting, kept from before the library loaded, is no
-- bigint.  The library's parse of the setting, the one the C functions use
-- (src/upsell.c): SQL parsing it again disagreed at the edges.
CREATE FUNCTION @extschema@._session_tenant()
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_session_tenant_sql'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._session_tenant() IS
	'internal: the tenant bound to the session (upsell.tenant_id), NULL when none; raises when the setting is no bigint';

-- The tenant a call names, as the session's binding (SET upsell.tenant_id)
-- allows: the bound tenant when the call names none, an error when it names
-- another; tenant_id as given in a session bound to none.
CREATE FUNCTION @extschema@._bound_tenant(tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bound bigint := @extschema@._session_tenant();
BEGIN
	IF bound IS NULL THEN
		RETURN tenant_id;
	END IF;
	IF tenant_id IS NOT NULL AND tenant_id <> bound THEN
		RAISE EXCEPTION 'tenant_id % given, but the session is bound to tenant %', tenant_id, bound
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'RESET upsell.tenant_id, or SET it to the tenant to serve.';
	END IF;
	RETURN bound;
END
$$;

CREATE FUNCTION @extschema@._tenant(tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	per_tenant boolean;
BEGIN
	-- a session bound to a tenant (SET upsell.tenant_id) serves only that one
	tenant_id := @extschema@._bound_tenant(tenant_id);
	SELECT s.tenant_id IS NOT NULL INTO per_tenant FROM @extschema@.order_source s;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;
	IF per_tenant AND tenant_id IS NULL THEN
		RAISE EXCEPTION 'tenant_id is required: order lines are registered per tenant'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass tenant_id, or bind the session: SET upsell.tenant_id = ...';
	END IF;
	IF NOT per_tenant AND tenant_id IS DISTINCT FROM NULL AND tenant_id <> 0 THEN
		RAISE EXCEPTION 'tenant_id % given, but order lines are registered without a tenant column', tenant_id
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL, or register the orders with tenant_id => ''column''.';
	END IF;
	RETURN coalesce(tenant_id, 0);
END
$$;

-- ===========================================================================
-- Distribution: where the registered order lines live (one node, or Citus
-- shards), and pair counting that runs where they live
-- ===========================================================================

-- True when the registered order lines are a Citus table distributed by the
-- order or the tenant column: every order then lies in one shard, so each
-- shard can count its own pairs (upsell.cooccurrence_sharded_agg).
CREATE FUNCTION @extschema@._orders_sharded()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
	col name;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	-- Citus's catalog, read only when Citus is installed
	EXECUTE 'SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
			 FROM pg_catalog.pg_dist_partition p
			 WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.partmethod OPERATOR(pg_catalog.=) ''h'''
		INTO col USING s.relation;
	-- a Shopify registration's order_id names a document field, not a column:
	-- only its tenant column can keep every delivery of an order in one shard
	RETURN col IS NOT NULL AND ((s.kind = 'columns' AND col = s.order_id) OR col = s.tenant_id);
END
$$;

-- The pair counts of the registered order lines per tenant (the lines
-- matching new_lines, a condition on "l"), counted where they live: by
-- upsell.cooccurrence_agg on one node (parallel workers may help), by
-- upsell.cooccurrence_sharded_agg on Citus shards of whole orders (each
-- shard sends its pair counts to the coordinator, not its lines).
-- _pair_counts_sql is the query's text, which a builder nests in its own
-- statement: the counts then go straight to what reads them, while
-- _pair_counts, a plpgsql function, copies its result into a tuplestore.
CREATE FUNCTION @extschema@._pair_counts_sql(new_lines text DEFAULT 'true')
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN format(
		'SELECT l.tenant_id, %s(l.order_key, l.product_id, l.quantity) AS state,
				max(l.ordered_at) AS max_ordered_at, max(l.order_key) AS max_order_key
		 FROM @extschema@.order_lines l
		 WHERE %s
		 GROUP BY l.tenant_id',
		CASE WHEN @extschema@._orders_sharded() THEN '@extschema@.cooccurrence_sharded_agg'
			 ELSE '@extschema@.cooccurrence_agg' END,
		new_lines);
END
$$;

CREATE FUNCTION @extschema@._pair_counts(new_lines text DEFAULT 'true')
RETURNS TABLE (tenant_id bigint, state @extschema@.cooccurrence,
			   max_ordered_at timestamptz, max_order_key bigint)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY EXECUTE @extschema@._pair_counts_sql(new_lines);
END
$$;

-- ---- many shops on Citus: upsell.distribute() ------------------------------
--
-- The app-backend layout: the order lines (and the catalog) distributed by
-- the tenant column.  distribute() makes every model table a distributed
-- table colocated with the order lines (tenant_id is every model's first
-- column), the registrations and the merchant's rules that the builders and
-- the serving functions read reference tables (a copy on every node), and
-- upsell._build_tenant() and the serving functions with a tenant argument
-- distributed functions colocated with the order lines: refresh then builds
-- each tenant on the worker holding its shards (every statement of the
-- build reads and writes that worker's shards), and a call with a tenant
-- runs on that tenant's worker.

-- True when the models are Citus tables distributed by tenant (distribute()).
CREATE FUNCTION @extschema@._models_distributed()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	distributed boolean;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	-- Citus's catalog, read only when Citus is installed
	EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
			 WHERE p.logicalrelid OPERATOR(pg_catalog.=) ''@extschema@.source_state''::pg_catalog.regclass)'
		INTO distributed;
	RETURN distributed;
END
$$;

-- The relation itself when it is not a Citus distributed table; else the
-- shard holding tenant_id when it is on this node, or NULL (on another node).
CREATE FUNCTION @extschema@._local_shard(rel regclass, tenant_id bigint)
RETURNS regclass
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	shard text;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN rel;
	END IF;
	-- Citus's catalog and functions, used only when Citus is installed
	EXECUTE 'SELECT pg_catalog.shard_name(p.logicalrelid, pg_catalog.get_shard_id_for_distribution_column(p.logicalrelid, $2))
			 FROM pg_catalog.pg_dist_partition p
			 WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.partmethod OPERATOR(pg_catalog.=) ''h'''
		INTO shard USING rel, tenant_id;
	IF shard IS NULL THEN
		RETURN rel;
	END IF;
	RETURN to_regclass(shard);
END
$$;

-- Builds one tenant's models (upsell._build_tenant) on the node holding
-- the tenant's shard of the order lines, in that node's own transaction,
-- and returns what it built.  Citus delegates a distributed function only
-- outside a transaction block, or with force_delegation, which requires
-- every query inside to carry the tenant as a constant Citus can see (the
-- builders' joins of several models do not): so refresh, which commits per
-- tenant inside a procedure, sends the call over a connection of its own
-- (master_run_on_worker).  On the worker every statement of the build
-- reads and writes that node's shards; what comes back is the row count
-- and build time per model.
CREATE FUNCTION @extschema@._build_tenant_on_worker(tenant_id bigint, incremental boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	host text;
	port int;
	ok boolean;
	result text;
BEGIN
	-- Citus's catalog and functions, used only on Citus
	EXECUTE 'SELECT n.nodename, n.nodeport
			 FROM pg_catalog.pg_dist_placement p JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid
			 WHERE p.shardid OPERATOR(pg_catalog.=) pg_catalog.get_shard_id_for_distribution_column(''@extschema@.source_state'', $1)
			   AND p.groupid OPERATOR(pg_catalog.<>) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)
			 ORDER BY p.placementid LIMIT 1'
		INTO host, port USING tenant_id;
	IF host IS NULL THEN
		-- the tenant's shard is on this node
		RETURN @extschema@._build_tenant(tenant_id, incremental);
	END IF;
	EXECUTE 'SELECT r.success, r.result FROM pg_catalog.master_run_on_worker(ARRAY[$1], ARRAY[$2], ARRAY[$3], false) r'
		INTO ok, result
		USING host, port, format('SELECT @extschema@._build_tenant(%s, %L)', tenant_id, incremental);
	IF NOT ok THEN
		RAISE EXCEPTION 'upsell: tenant %: the build on worker %:% failed: %', tenant_id, host, port, result
			USING ERRCODE = 'external_routine_exception';
	END IF;
	RETURN result::jsonb;
END
$$;

-- The tables distribute() makes reference tables: the registrations (read
-- by the builders), the merchant's rules (read by the serving functions),
-- and the experiments with their variants and exposures (read by the
-- assignment in the serving functions; exposures have no tenant column, and
-- experiment_results joins them with a tenant's order lines and events),
-- in the order of their foreign keys.
CREATE FUNCTION @extschema@._reference_tables()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['order_source', 'product_source', 'cart_source', 'exclusions', 'volume_tiers',
			 'thresholds', 'consumables', 'stage_settings', 'offers', 'category_substitutes',
			 'experiments', 'experiment_variants', 'exposures'];

-- The experiment tables, whose foreign keys distribute() takes off while
-- it converts them and puts back after (see there).
CREATE FUNCTION @extschema@._experiment_tables()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['experiments', 'experiment_variants', 'exposures', 'offer_events'];

-- The serving functions distribute() delegates by their tenant_id argument.
CREATE FUNCTION @extschema@._tenant_functions()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['recommend_for_cart(bigint[], int, bigint)',
			 'upgrade_candidates(bigint, int, numeric, bigint)',
			 'downsell_candidates(bigint, int, numeric, bigint)',
			 'quantity_offer(bigint, int, bigint)',
			 'bundle_offers(bigint, int, numeric, bigint)',
			 'product_page_offers(bigint, bigint, text, text)',
			 'cart_offers(bigint[], int[], bigint, text, text, text)',
			 'post_purchase_offers(bigint[], bigint, bigint, text, text, timestamptz)'];

CREATE FUNCTION @extschema@.distribute()
RETURNS TABLE (object text, distributed_as text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
	p @extschema@.product_source;
	col name;
	rel regclass;
	m record;
	f regprocedure;
	fname text;
	relname text;
	fks text[];
	drops text[];
	stmt text;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'feature_not_supported', HINT = 'CREATE EXTENSION citus first.';
	END IF;
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND OR s.tenant_id IS NULL OR s.kind <> 'columns' THEN
		RAISE EXCEPTION 'the order lines must be registered by columns with a tenant column before distributing by tenant'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders(..., tenant_id => ''...'').';
	END IF;
	EXECUTE 'SELECT pg_catalog.column_to_column_name(d.logicalrelid, d.partkey)
			 FROM pg_catalog.pg_dist_partition d
			 WHERE d.logicalrelid OPERATOR(pg_catalog.=) $1 AND d.partmethod OPERATOR(pg_catalog.=) ''h'''
		INTO col USING s.relation;
	IF col IS DISTINCT FROM s.tenant_id THEN
		RAISE EXCEPTION '% is not distributed by its tenant column %', s.relation, s.tenant_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = format('SELECT create_distributed_table(%L, %L);', s.relation::text, s.tenant_id::text);
	END IF;
	SELECT * INTO p FROM @extschema@.product_source;
	IF FOUND THEN
		col := NULL;
		EXECUTE 'SELECT pg_catalog.column_to_column_name(d.logicalrelid, d.partkey)
				 FROM pg_catalog.pg_dist_partition d
				 WHERE d.logicalrelid OPERATOR(pg_catalog.=) $1 AND d.colocationid OPERATOR(pg_catalog.=)
					(SELECT o.colocationid FROM pg_catalog.pg_dist_partition o WHERE o.logicalrelid OPERATOR(pg_catalog.=) $2)'
			INTO col USING p.relation, s.relation;
		IF p.tenant_id IS NULL OR col IS DISTINCT FROM p.tenant_id THEN
			RAISE EXCEPTION 'the catalog % is not distributed by its tenant column, colocated with the order lines', p.relation
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  HINT = format('SELECT create_distributed_table(%L, %L, colocate_with => %L);',
									p.relation::text, coalesce(p.tenant_id::text, 'tenant_id'), s.relation::text);
		END IF;
	END IF;

	-- one connection per node for the whole transaction: the distributed
	-- functions' ALTER below needs it after the tables' shards were made
	PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);

	-- models: distributed by tenant, colocated with the order lines
	FOR m IN SELECT d.model FROM @extschema@.model_definitions d ORDER BY d.build_order LOOP
		rel := format('@extschema@.%I', m.model)::regclass;
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = rel) THEN
			PERFORM create_distributed_table(rel, 'tenant_id', colocate_with => s.relation::text);
			-- the rows were copied into the shards; the coordinator's table is a shell
			PERFORM truncate_local_data_after_distributing_table(rel);
		END IF;
		object := rel::text;
		distributed_as := 'distributed by tenant_id, colocated with ' || s.relation::text;
		RETURN NEXT;
	END LOOP;

	-- The experiment tables' foreign keys between them: taken off while
	-- they are converted, put back after.  Citus would otherwise first turn
	-- the tables a converted one is tied to into "Citus local tables",
	-- creating them on the workers, where the extension already created
	-- them ("relation experiments already exists").  The workers' copies
	-- (the shells of the converted tables) lose theirs too: the keys put
	-- back reach every node.  offer_events, distributed by tenant, needs
	-- the tenant in its primary key (Citus enforces uniqueness per shard).
	IF EXISTS (SELECT FROM unnest(@extschema@._experiment_tables()) t
			   WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
								 WHERE d.logicalrelid = to_regclass('@extschema@.' || t))) THEN
		fks := ARRAY(
			SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
						  pg_get_constraintdef(c.oid))
			FROM pg_constraint c
			WHERE c.contype = 'f'
			  AND c.conrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t)
			  AND c.confrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t)
			ORDER BY c.conrelid::regclass::text, c.conname);
		drops := ARRAY(
			SELECT format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.conrelid::regclass, c.conname)
			FROM pg_constraint c
			WHERE c.contype = 'f'
			  AND c.conrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t)
			  AND c.confrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t));
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
					   WHERE d.logicalrelid = '@extschema@.offer_events'::regclass) THEN
			drops := drops || ARRAY['ALTER TABLE @extschema@.offer_events DROP CONSTRAINT offer_events_pkey, '
									'ADD CONSTRAINT offer_events_pkey PRIMARY KEY (tenant_id, event_id)'];
		END IF;
		FOREACH stmt IN ARRAY drops LOOP
			EXECUTE stmt;
		END LOOP;
		-- (Citus's own function, run only on Citus)
		FOR m IN EXECUTE 'SELECT w.nodename, w.nodeport, w.success, w.result
						  FROM pg_catalog.run_command_on_workers($1) w'
			USING 'SET citus.enable_ddl_propagation TO off; ' || array_to_string(drops, '; ') LOOP
			IF NOT m.success THEN
				RAISE EXCEPTION 'upsell: could not prepare the experiment tables on worker %:%: %',
					m.nodename, m.nodeport, m.result
					USING ERRCODE = 'external_routine_exception';
			END IF;
		END LOOP;
	END IF;

	-- registrations, rules and experiments: reference tables (a copy on
	-- every node).  The rules' statement trigger, which bumps the serving
	-- caches' version, then fires on every node's copy and bumps that
	-- node's serving_state; the experiments' row triggers (assignment of an
	-- exposure, the guard of running experiments' weights) fire on each.
	PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
	FOREACH rel IN ARRAY ARRAY(
		SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._reference_tables()) t
		WHERE to_regclass('@extschema@.' || t) IS NOT NULL) LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = rel) THEN
			PERFORM create_reference_table(rel);
			PERFORM truncate_local_data_after_distributing_table(rel);
			-- Citus copies a regclass as its OID, which names another
			-- relation, or none, on the workers: written again by name
			IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = 'relation'
						 AND a.atttypid = 'regclass'::regtype) THEN
				EXECUTE format('SELECT r.relation::text FROM %s r', rel) INTO relname;
				IF relname IS NOT NULL THEN
					EXECUTE format('UPDATE %s SET relation = %L::regclass', rel, relname);
				END IF;
			END IF;
		END IF;
		object := rel::text;
		distributed_as := 'reference table';
		RETURN NEXT;
	END LOOP;

	-- offer events: distributed by tenant, colocated with the order lines
	-- (experiment_results joins a tenant's events with its lines)
	rel := '@extschema@.offer_events'::regclass;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = rel) THEN
		PERFORM create_distributed_table(rel, 'tenant_id', colocate_with => s.relation::text);
		PERFORM truncate_local_data_after_distributing_table(rel);
	END IF;
	object := rel::text;
	distributed_as := 'distributed by tenant_id, colocated with ' || s.relation::text;
	RETURN NEXT;
	-- the experiment tables' foreign keys, back on every node
	FOREACH stmt IN ARRAY coalesce(fks, '{}') LOOP
		EXECUTE stmt;
	END LOOP;

	-- a tenant's build (_build_tenant_on_worker calls it there) and the
	-- serving functions with a tenant: on the tenant's worker
	FOREACH fname IN ARRAY ARRAY['_build_tenant(bigint, boolean)'] || @extschema@._tenant_functions() LOOP
		f := to_regprocedure('@extschema@.' || fname);
		CONTINUE WHEN f IS NULL;
		PERFORM create_distributed_function(f, 'tenant_id', colocate_with => s.relation::text);
		IF fname <> '_build_tenant(bigint, boolean)' THEN
			-- a serving function's queries call helpers that read the
			-- tenant's models (colocated shards of the same node) from
			-- inside a statement Citus runs on a shard
			EXECUTE format('ALTER FUNCTION %s SET citus.allow_nested_distributed_execution = on', f);
			-- and are planned with the tenant's value: Citus routes a
			-- statement over several models to the tenant's shards only
			-- when it sees the tenant as a constant, not as a parameter
			-- of a generic plan (what one node's serving uses)
			EXECUTE format('ALTER FUNCTION %s SET plan_cache_mode = force_custom_plan', f);
		END IF;
		object := f::text;
		distributed_as := 'distributed function, run on the worker of its tenant_id';
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.distribute() IS
	'on Citus, with the order lines (and catalog) distributed by tenant: makes every model and the offer events distributed tables colocated with the order lines, the registrations, rules and experiments reference tables, and a tenant''s build and the serving functions distributed by their tenant_id';

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

-- ===========================================================================
-- Models: the model store, and refresh
-- ===========================================================================
--
-- Every model is one ordinary, permanent table @extschema@.<model> whose
-- first column is tenant_id.  Refresh publishes a tenant's new rows by MVCC:
-- in one transaction per tenant, one statement per model deletes the
-- tenant's old rows and inserts its new ones (upsell._publish below).  A
-- reader's snapshot sees the tenant's models either wholly before or wholly
-- after that transaction -- exactly one complete version -- and a reader
-- never waits: refresh takes only the RowExclusiveLock of an ordinary writer
-- on the model tables (no TRUNCATE, no DDL, no view redefinition, nothing a
-- reader's AccessShareLock conflicts with), and readers lock no rows, so no
-- lock-order deadlock with readers exists.  The deleted versions stay
-- visible to older snapshots and are reclaimed by (auto)vacuum, which never
-- blocks readers.  Why rows replaced rather than a generation column: every
-- reader (SQL functions, the C serving path, analysts' queries) reads the
-- table as it is, with no state row to join and no generation in its index
-- keys, and the same statement sees the previous rows while it writes the
-- new ones (what incremental builders need).
--
-- THE BUILDER CONTRACT (what a layer writes to add a model):
--
--   1. A builder function  _build_<x>(tenant_id bigint, incremental boolean)
--      RETURNS bigint  (the rows it published).  It builds ONE tenant and
--      writes only through
--
--        @extschema@._publish(model name, tenant_id bigint, query text,
--                             scope bigint[] DEFAULT NULL) RETURNS bigint
--
--      where query yields the model's rows (columns matched by NAME, every
--      column of the model, tenant_id included) and may use $1 (the tenant
--      id, bigint) and $2 (scope, bigint[]).  _publish replaces the tenant's
--      rows -- or, with a scope, only those whose scope column (declared at
--      _define_model) is in scope -- in one statement; the query still sees
--      the rows being replaced, so an incremental builder may read the
--      model's previous rows in it.  Rows of another tenant, or outside the
--      scope, are an error.  It returns the tenant's rows of the model after
--      it: those inserted, or with a scope the rows before (as the last
--      build recorded them in model_builds) less those replaced plus those
--      inserted, so that a builder returns the same either way.  A builder
--      of an incremental refresh that has nothing to change in its model
--      (no new lines and none of its other inputs changed:
--      _lines_unchanged) writes nothing and returns
--      @extschema@._kept_rows(model, tenant_id), as _publish does itself,
--      without running the query, for an empty scope.
--   2. One call of  _define_model(model, columns, indexes, build_order,
--      builder, description [, scope_column])  in the layer's install
--      script: columns start with "tenant_id bigint NOT NULL" (or a primary
--      key on it); indexes are "(cols)" lists.
--
--   Builders run in build_order within the tenant's transaction, so a
--   builder reads the models built before it for the same tenant (their new
--   rows) and the other models as last published.  A builder raises to fail
--   its tenant: the tenant's transaction rolls back and its previous models
--   keep serving, while the other tenants are refreshed.  Builders never
--   COMMIT, TRUNCATE or run DDL; their notices should name the tenant.

CREATE TABLE @extschema@.model_definitions (
	model		name PRIMARY KEY,
	build_order	int NOT NULL UNIQUE,
	builder		text NOT NULL,		-- a regprocedure's text: pg_upgrade refuses reg* columns
	description	text NOT NULL,
	scope_column name,				-- the column a partial publish (_publish with a scope) selects by
	side_query	text,				-- a regprocedure's text: (tenant_id bigint, snapshot pg_snapshot) -> the query of a side build of the model
	side_during_count boolean NOT NULL DEFAULT false,	-- the side build may compute while the count runs
	side_incremental boolean NOT NULL DEFAULT false	-- the side build runs in an incremental build too (its query is then the one that build needs)
);
COMMENT ON TABLE @extschema@.model_definitions IS
	'the models refresh builds, in build_order: table, builder function (tenant_id bigint, incremental boolean), the column a partial refresh of a tenant replaces rows by, and the function giving the query of a side build (rows a background worker computes; _define_side_build)';

CREATE TABLE @extschema@.model_builds (
	tenant_id	bigint NOT NULL,
	model		name NOT NULL REFERENCES @extschema@.model_definitions ON DELETE CASCADE,
	row_count	bigint NOT NULL,
	built_at	timestamptz NOT NULL,
	build_ms	float8 NOT NULL,
	incremental	boolean NOT NULL,
	refresh_id	bigint,
	cpu_ms		float8,				-- the refreshing backend's CPU time in the build (its parallel workers' not included)
	side_build	boolean NOT NULL DEFAULT false,	-- rows computed by a background worker (its CPU not in cpu_ms)
	side_cpu_ms	float8,				-- that worker's CPU time to compute them (its parallel workers' not included)
	PRIMARY KEY (tenant_id, model)
);
COMMENT ON TABLE @extschema@.model_builds IS
	'per tenant and model: the rows, time and duration of its last published build (one row per tenant, so refreshes of different tenants never contend)';

CREATE VIEW @extschema@.models AS
SELECT d.model, d.build_order, d.builder, d.description,
	   b.row_count, b.built_at, b.build_ms, b.tenants, b.cpu_ms, b.side_build, b.side_cpu_ms
FROM @extschema@.model_definitions d
LEFT JOIN (SELECT b.model, pg_catalog.sum(b.row_count)::bigint AS row_count,
				  pg_catalog.max(b.built_at) AS built_at, pg_catalog.sum(b.build_ms) AS build_ms,
				  pg_catalog.count(*) AS tenants, pg_catalog.sum(b.cpu_ms) AS cpu_ms,
				  pg_catalog.bool_or(b.side_build) AS side_build, pg_catalog.sum(b.side_cpu_ms) AS side_cpu_ms
		   FROM @extschema@.model_builds b GROUP BY b.model) b
	ON b.model OPERATOR(pg_catalog.=) d.model;
COMMENT ON VIEW @extschema@.models IS
	'the models refresh builds, in build_order, with their rows summed over tenants and the time of their last build (wall and the refreshing backend''s CPU, ms; side_build: a background worker computed the rows of some tenant, and its CPU is not in cpu_ms but in side_cpu_ms)';

CREATE FUNCTION @extschema@._define_model(model name, columns text, indexes text[],
	build_order int, builder text, description text, scope_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ix text;
	rel regclass;
BEGIN
	EXECUTE format('CREATE TABLE @extschema@.%I (%s)', model, columns);
	rel := format('@extschema@.%I', model)::regclass;
	IF (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum = 1) <> 'tenant_id' THEN
		RAISE EXCEPTION 'the first column of model % must be tenant_id', model
			USING ERRCODE = 'invalid_table_definition';
	END IF;
	IF scope_column IS NOT NULL AND NOT EXISTS (
		SELECT FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = scope_column
		  AND a.atttypid = 'bigint'::regtype) THEN
		RAISE EXCEPTION 'scope column % of model % must be a bigint column', scope_column, model
			USING ERRCODE = 'invalid_table_definition';
	END IF;
	FOREACH ix IN ARRAY coalesce(indexes, '{}') LOOP
		EXECUTE format('CREATE INDEX ON %s %s', rel, ix);
	END LOOP;
	-- a model is replaced wholesale at every refresh: vacuum it early
	EXECUTE format('ALTER TABLE %s SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05)', rel);
	EXECUTE format('COMMENT ON TABLE %s IS %L', rel, description);
	INSERT INTO @extschema@.model_definitions (model, build_order, builder, description, scope_column)
	VALUES (model, build_order, builder::regprocedure::text, description, scope_column);
END
$$;

-- Raises: a builder returned a row outside the tenant (or scope) it
-- publishes (_publish on Citus, row by row).  Called with a column of the
-- row: neither PostgreSQL nor Citus evaluates it ahead of the rows.
CREATE FUNCTION @extschema@._stray_row(model name, tenant_id bigint, row_tenant_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'the builder of % returned rows outside tenant %', model,
		tenant_id || CASE WHEN row_tenant_id IS DISTINCT FROM tenant_id THEN '' ELSE ' and its scope' END
		USING ERRCODE = 'internal_error';
END
$$;

-- The model store's one write: replaces the tenant's rows of a model (or
-- those in scope) by the rows of query, in one statement.  The DELETE runs
-- first (the INSERT waits on its count), so the new rows never meet the old
-- ones in a unique index, while the query, reading the statement's snapshot,
-- still sees the old rows.  (The INSERT's alias n qualifies its RETURNING
-- list: Citus deparses the statement for a shard without it otherwise.)
CREATE FUNCTION @extschema@._publish(model name, tenant_id bigint, query text, scope bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d @extschema@.model_definitions;
	rel regclass;
	stats_rel regclass;
	cols text;
	n bigint;
	stray bigint;
	known_rows float4;
	plan json;
	estimated float8;
	deleted bigint;
	before bigint;
BEGIN
	SELECT * INTO d FROM @extschema@.model_definitions m WHERE m.model = _publish.model;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model % is not defined', model USING ERRCODE = 'undefined_table';
	END IF;
	IF tenant_id IS NULL THEN
		RAISE EXCEPTION 'a model is published per tenant: tenant_id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF scope IS NOT NULL AND d.scope_column IS NULL THEN
		RAISE EXCEPTION 'model % has no scope column: it is published for whole tenants only', model
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(scope) = 0 THEN
		-- nothing in scope: no row to replace, and the query, whose rows
		-- must all be in scope, is not run (an incremental refresh without
		-- new lines: listing the pairs of no product still read the chunk
		-- of counts, 0.55-1.14 s at 10M lines)
		RETURN @extschema@._kept_rows(model, tenant_id);
	END IF;
	rel := format('@extschema@.%I', model)::regclass;
	-- a Citus table distributed by tenant: its statistics are those of the
	-- tenant's shard, here on the worker that builds the tenant
	stats_rel := CASE WHEN to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN rel
					  ELSE @extschema@._local_shard(rel, tenant_id) END;
	SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
		   (SELECT c.reltuples FROM pg_class c WHERE c.oid = stats_rel)
	INTO cols, known_rows
	FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;
	IF stats_rel IS DISTINCT FROM rel THEN
		-- A Citus table distributed by tenant (upsell.distribute()): Citus
		-- runs the single statement below in steps, sending the rows each
		-- CTE returns to every node; here the DELETE and the INSERT are two
		-- statements of the tenant's transaction (readers see both or
		-- neither), and a stray row fails the INSERT.  The builders run in
		-- full there (a distributed table has no row xmin for incremental
		-- refresh), so none reads the rows being replaced.
		EXECUTE format('DELETE FROM %s m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1 %s', rel,
					   CASE WHEN scope IS NULL THEN ''
							ELSE format('AND m.%I OPERATOR(pg_catalog.=) ANY ($2)', d.scope_column) END)
		USING tenant_id, scope;
		GET DIAGNOSTICS deleted = ROW_COUNT;
		EXECUTE format('INSERT INTO %s AS n (%s) SELECT %s FROM (%s) q
						WHERE CASE WHEN q.tenant_id IS DISTINCT FROM $1 %s
								   THEN @extschema@._stray_row(%L, $1, q.tenant_id) ELSE true END',
					   rel, cols,
					   (SELECT string_agg('q.' || quote_ident(a.attname), ', ' ORDER BY a.attnum)
						FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped),
					   query,
					   CASE WHEN scope IS NULL THEN ''
							ELSE format('OR q.%1$I IS NULL OR q.%1$I OPERATOR(pg_catalog.<>) ALL ($2)', d.scope_column) END,
					   model)
		USING tenant_id, scope;
		GET DIAGNOSTICS n = ROW_COUNT;
		stray := 0;
	ELSE
	EXECUTE format($q$
		WITH old AS (
			DELETE FROM %1$s m
			WHERE m.tenant_id OPERATOR(pg_catalog.=) $1 %2$s
			RETURNING 1),
		new AS (
			INSERT INTO %1$s AS n (%3$s)
			SELECT %4$s FROM (%5$s) q
			WHERE (SELECT pg_catalog.count(*) FROM old) OPERATOR(pg_catalog.>=) 0
			RETURNING n.tenant_id, %6$s AS scope_key)
		SELECT pg_catalog.count(*),
			   pg_catalog.count(*) FILTER (WHERE new.tenant_id IS DISTINCT FROM $1 %7$s),
			   (SELECT pg_catalog.count(*) FROM old)
		FROM new$q$,
		rel,
		CASE WHEN scope IS NULL THEN ''
			 ELSE format('AND m.%I OPERATOR(pg_catalog.=) ANY ($2)', d.scope_column) END,
		cols,
		(SELECT string_agg('q.' || quote_ident(a.attname), ', ' ORDER BY a.attnum)
		 FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped),
		query,
		CASE WHEN scope IS NULL THEN 'NULL::bigint' ELSE 'n.' || quote_ident(d.scope_column) END,
		CASE WHEN scope IS NULL THEN ''
			 ELSE 'OR new.scope_key IS NULL OR new.scope_key OPERATOR(pg_catalog.<>) ALL ($2)' END)
	INTO n, stray, deleted USING tenant_id, scope;
	END IF;
	IF stray > 0 THEN
		RAISE EXCEPTION 'the builder of % returned % rows outside tenant %', model, stray,
			tenant_id || CASE WHEN scope IS NULL THEN '' ELSE ' and its scope' END
			USING ERRCODE = 'internal_error';
	END IF;
	-- Statistics for the builders that read it next, in this transaction: on
	-- the first build ever, when one tenant's rows outgrow what the
	-- statistics know of the whole table, and when the planner's estimate
	-- of the tenant's rows (the statistics' share of the tenant, scaled to
	-- the table's size now) is a tenth of the rows just written or less
	-- (a 1,000-row model of a second tenant estimated at 1 row made its cart
	-- model's build take 682 s instead of 0.05 s).  With stale
	-- estimates the builders' joins over the tenant's models become nested
	-- loops that run for minutes: PostgreSQL 18's cart model when one
	-- tenant's rows outgrew the table's statistics, and a tenant built
	-- after the statistics were taken without it (the second of four
	-- tenants of 2.5M lines each: its first models estimated at a row each,
	-- and its refresh ran for over 40 minutes instead of about 2).  The
	-- estimate is one plan of a constant: nothing is read.
	IF known_rows >= 0 AND n <= 2 * known_rows + 1000 AND n > 100 THEN
		EXECUTE format('EXPLAIN (FORMAT JSON) SELECT FROM %s m WHERE m.tenant_id OPERATOR(pg_catalog.=) %s',
					   stats_rel, tenant_id)
		INTO plan;
		estimated := (plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
	END IF;
	IF known_rows < 0 OR n > 2 * known_rows + 1000 OR n > 10 * estimated + 100 THEN
		EXECUTE format('ANALYZE %s', stats_rel);
	END IF;
	IF scope IS NULL THEN
		RETURN n;
	END IF;
	-- the tenant's rows now (counting them took up to a second of an
	-- incremental refresh: 845,395 purchase histories at 10M lines)
	SELECT b.row_count INTO before FROM @extschema@.model_builds b
	WHERE b.tenant_id = _publish.tenant_id AND b.model = _publish.model;
	IF before IS NULL OR before < deleted THEN
		EXECUTE format('SELECT pg_catalog.count(*) FROM %s m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1', rel)
		INTO n USING tenant_id;
		RETURN n;
	END IF;
	RETURN before - deleted + n;
END
$$;
COMMENT ON FUNCTION @extschema@._publish(name, bigint, text, bigint[]) IS
	'internal, the model store: replaces a tenant''s rows of a model (or those whose scope column is in scope) by the rows of a query ($1 tenant, $2 scope) in one MVCC statement; returns the tenant''s rows of the model after it';

-- The tenant's rows of a model whose builder keeps them as they are (an
-- incremental refresh that changes nothing in it): as its last build
-- recorded them, counted only when no build did (counting 200,000 upgrade
-- lists took 0.1-0.2 s).
CREATE FUNCTION @extschema@._kept_rows(model name, tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	SELECT b.row_count INTO n FROM @extschema@.model_builds b
	WHERE b.tenant_id = _kept_rows.tenant_id AND b.model = _kept_rows.model;
	IF n IS NULL THEN
		EXECUTE format('SELECT pg_catalog.count(*) FROM @extschema@.%I m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1', model)
		INTO n USING tenant_id;
	END IF;
	RETURN n;
END
$$;

-- What an incremental refresh passes downstream.  A builder of an
-- incremental refresh that knows which products' rows of its model changed
-- notes them (_note_changed); a builder after it in the tenant's
-- transaction reads them (_changed_products) to rewrite only the rows that
-- depend on them.  The notes live in pg_temp.upsell_changed_products, which
-- _build_source_state creates for a tenant refreshed incrementally and only
-- then: without it every builder builds the whole tenant.
CREATE FUNCTION @extschema@._note_changed(model name, products bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF to_regclass('pg_temp.upsell_changed_products') IS NOT NULL THEN
		INSERT INTO pg_temp.upsell_changed_products
		SELECT _note_changed.model, p FROM unnest(products) p;
	END IF;
END
$$;
COMMENT ON FUNCTION @extschema@._note_changed(name, bigint[]) IS
	'internal: notes, in an incremental refresh, the products whose rows of model changed, for the builders after it';

-- The products noted as changed in model; NULL outside an incremental
-- refresh (every product may have changed).
CREATE FUNCTION @extschema@._changed_products(model name)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF to_regclass('pg_temp.upsell_changed_products') IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN (SELECT coalesce(pg_catalog.array_agg(DISTINCT c.product_id), '{}')
			FROM pg_temp.upsell_changed_products c WHERE c.model OPERATOR(pg_catalog.=) _changed_products.model);
END
$$;
COMMENT ON FUNCTION @extschema@._changed_products(name) IS
	'internal: the products noted as changed in model by this incremental refresh of the tenant; NULL outside one';

CREATE TABLE @extschema@.refresh_log (
	refresh_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	started_at	timestamptz NOT NULL,
	finished_at	timestamptz,
	duration_ms	float8,
	incremental	boolean NOT NULL,
	tenant_id	bigint,				-- the tenant asked for; NULL: all
	status		text NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed', 'cancelled', 'interrupted')),
	backend_pid	int NOT NULL,
	tenants_ok	int NOT NULL DEFAULT 0,
	tenants_failed int NOT NULL DEFAULT 0,
	model_rows	jsonb,				-- rows per model, summed over the tenants refreshed
	failures	jsonb,				-- per failed tenant: sqlstate and error
	bad_rows	jsonb,				-- per tenant and problem: rows skipped, first ids
	error		text,				-- the first error
	error_sqlstate text
);
COMMENT ON TABLE @extschema@.refresh_log IS
	'one row per upsell.refresh(), committed at its start (status running) and completed at its end: ok, partial (some tenants failed and kept their previous models), failed, cancelled, or interrupted (the session ended mid-refresh, found by the next refresh); rows per model, failures per tenant, bad source rows skipped';

-- What the serving cache of each backend (src/serving_rules.c) is keyed by: every
-- refresh of a tenant (at the end of its transaction) and every change of a
-- table of merchant rules (a trigger, created by the funnel layer) draws a
-- new config_version from a sequence -- never reused, so a cache filled
-- inside a transaction that rolled back cannot match a later version.  The
-- stages read it once per request and re-read the rules when it moved.

CREATE SEQUENCE @extschema@.config_version_seq;

CREATE TABLE @extschema@.serving_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	config_version bigint NOT NULL DEFAULT 0
);
INSERT INTO @extschema@.serving_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.serving_state IS
	'the version of the models and the merchant''s rules (offers, exclusions, stage settings, thresholds, volume tiers, registrations) that the serving cache of each backend is checked against';

-- Every version stored is drawn here, whatever the UPDATE set: a backend's
-- cache holds the version it read, and one set back to it (by a role that
-- may update the row: the admin, whose rule edits draw versions) would keep
-- that backend on its old rules.
CREATE FUNCTION @extschema@._draw_config_version()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	NEW.config_version := nextval('@extschema@.config_version_seq');
	RETURN NEW;
END
$$;
CREATE TRIGGER draw_config_version BEFORE UPDATE ON @extschema@.serving_state
	FOR EACH ROW EXECUTE FUNCTION @extschema@._draw_config_version();

CREATE FUNCTION @extschema@._rules_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- (a new version: serving_state's trigger draws it)
	UPDATE @extschema@.serving_state SET config_version = DEFAULT;
	RETURN NULL;
END
$$;

CREATE FUNCTION @extschema@._in_transaction_block() RETURNS boolean
	AS 'MODULE_PATHNAME', 'upsell_in_transaction_block'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION @extschema@._backend_cpu_ms() RETURNS float8
	AS 'MODULE_PATHNAME', 'upsell_backend_cpu_ms'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@._backend_cpu_ms() IS
	'internal: the CPU time (user + system, ms) the calling backend has used (not its parallel workers'')';

CREATE FUNCTION @extschema@._itemsets_limit_kb() RETURNS int
	AS 'MODULE_PATHNAME', 'upsell_itemsets_limit_kb_sql'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._itemsets_limit_kb() IS
	'internal: upsell.itemsets_memory_limit in kB as mining applies it (-1: 32 times work_mem), 0: no limit';

CREATE FUNCTION @extschema@._hold_freed_memory(hold boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'upsell_hold_freed_memory'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._hold_freed_memory(boolean) IS
	'internal (a tenant''s build): with true, until false or the end of the transaction, the calling process keeps the memory it frees for its next allocations (glibc''s malloc) instead of returning it to the kernel and faulting it in again page by page; false returns what is free; returns whether the process held it before';

-- ---- refresh ----------------------------------------------------------------
--
-- refresh() is a procedure that commits after each tenant (when called
-- outside a transaction block), so a tenant is published as soon as it is
-- built and a failure costs only that tenant.  The helpers below do the work
-- with a pinned search_path; the procedure itself (which may not have a SET
-- clause, since it commits) only calls them.

-- Advisory lock keys: (class, key) pairs of the two-int form.
CREATE FUNCTION @extschema@._refresh_lock_class(what text)
RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE what WHEN 'tenant' THEN 1970304817		-- one refresh of a tenant at a time
				 WHEN 'run' THEN 1970304818		-- held by a refresh while it runs
				 -- the experiments' splits (key 0, one for all): shared by
				 -- exposures being recorded, exclusive while one changes
				 WHEN 'split' THEN 1970304819 END;

-- Marks the log rows of refreshes that ended without recording it (the
-- session was terminated, or cancelled between two tenants): their backend
-- no longer holds the run's advisory lock, or it is this very session.
CREATE FUNCTION @extschema@._refresh_reap()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT l.refresh_id, l.backend_pid FROM @extschema@.refresh_log l
			 WHERE l.status = 'running' FOR UPDATE SKIP LOCKED LOOP
		IF r.backend_pid = pg_backend_pid() THEN
			PERFORM pg_advisory_unlock(@extschema@._refresh_lock_class('run'), (r.refresh_id % 2147483647)::int);
		ELSIF EXISTS (SELECT FROM pg_locks k
					  WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2
						-- (each database numbers its refreshes from 1)
						AND k.database = (SELECT d.oid FROM pg_database d
										  WHERE d.datname = current_database())
						AND k.classid = @extschema@._refresh_lock_class('run')::oid
						AND k.objid = (r.refresh_id % 2147483647)::oid) THEN
			CONTINUE;		-- still running
		END IF;
		UPDATE @extschema@.refresh_log l
		SET status = 'interrupted', finished_at = clock_timestamp(),
			duration_ms = 1000 * extract(epoch FROM clock_timestamp() - l.started_at),
			error = coalesce(l.error, 'the refresh ended without recording its end: its session was terminated or it was cancelled between two tenants; the tenants it had finished are published')
		WHERE l.refresh_id = r.refresh_id;
	END LOOP;
END
$$;

-- The start of a refresh: checks, the log row (status running) and the
-- run's advisory lock.  Returns the refresh id.
CREATE FUNCTION @extschema@._refresh_begin(incremental boolean, tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	run bigint;
BEGIN
	IF incremental IS NULL THEN
		RAISE EXCEPTION 'incremental must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._refresh_reap();
	INSERT INTO @extschema@.refresh_log (started_at, incremental, tenant_id, status, backend_pid)
	VALUES (clock_timestamp(), incremental, tenant_id, 'running', pg_backend_pid())
	RETURNING refresh_id INTO run;
	PERFORM pg_advisory_lock(@extschema@._refresh_lock_class('run'), (run % 2147483647)::int);
	RAISE NOTICE 'upsell: % refresh % started', CASE WHEN incremental THEN 'incremental' ELSE 'full' END, run;
	RETURN run;
END
$$;

-- The tenants a refresh builds: the one asked for, or every tenant with
-- order lines, catalog rows or models.  Also re-creates the registration
-- views if a DROP ... CASCADE took them.
CREATE FUNCTION @extschema@._refresh_tenants(tenant_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenants bigint[];
	listing text;
	message text;
	tenant_expr text;
	rel regclass;
BEGIN
	-- a registered column renamed, dropped or retyped: named, before any build
	PERFORM @extschema@._check_registrations();

	-- the views over the shop's tables, if a DROP ... CASCADE took them
	IF to_regclass('@extschema@.order_lines') IS NULL THEN
		PERFORM @extschema@._sync_view('order_lines');
	END IF;
	IF to_regclass('@extschema@.catalog') IS NULL THEN
		PERFORM @extschema@._sync_view('catalog');
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.order_source) THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;
	IF tenant_id IS NOT NULL THEN
		tenant_id := @extschema@._tenant(tenant_id);
		-- a tenant never refreshed, without lines (a mistyped id in a job):
		-- refreshed all the same (to no rows), but said
		IF NOT EXISTS (SELECT FROM @extschema@.model_builds b WHERE b.tenant_id = _refresh_tenants.tenant_id) THEN
			BEGIN
				IF NOT EXISTS (SELECT FROM @extschema@.order_lines l WHERE l.tenant_id = _refresh_tenants.tenant_id) THEN
					RAISE WARNING 'upsell: tenant % has no order lines and was never refreshed: its models stay empty', tenant_id
						USING HINT = 'Check the tenant id: upsell.refresh_log counts it as refreshed.';
				END IF;
			EXCEPTION WHEN data_exception OR feature_not_supported OR undefined_column OR undefined_table THEN
				-- lines that cannot be read: the tenant's build says it
				NULL;
			END;
		END IF;
		RETURN ARRAY[tenant_id];
	END IF;
	-- tenants that had models but no longer have lines or catalog rows (or
	-- the orders were registered anew without tenants) are refreshed too:
	-- their models become empty.  (DISTINCT in each arm: Citus then sends
	-- each shard's tenants, not its lines' tenant ids.)
	IF (SELECT s.tenant_id IS NULL FROM @extschema@.order_source s) THEN
		RETURN ARRAY(SELECT 0::bigint UNION SELECT b.tenant_id FROM @extschema@.model_builds b ORDER BY 1);
	END IF;
	-- the tenants of the lines (%1$s: their tenant expression over the
	-- relation %2$s), of the catalog and of the models
	listing := format($q$
		SELECT coalesce(array_agg(t ORDER BY t), '{}')
		FROM (SELECT DISTINCT %%1$s FROM %%2$s WHERE %%1$s IS NOT NULL
			  UNION SELECT DISTINCT c.tenant_id FROM %s c WHERE c.tenant_id IS NOT NULL
			  UNION SELECT b.tenant_id FROM @extschema@.model_builds b) x(t)$q$,
		@extschema@._catalog_source());
	BEGIN
		EXECUTE format(listing, 'l.tenant_id', '@extschema@.order_lines l') INTO tenants;
	EXCEPTION WHEN OTHERS THEN
		-- A row the view cannot read (a cast in the shop's own view that
		-- fails on one tenant's data) fails every query over all the
		-- tenants' lines, this one too: the tenants are then read from the
		-- registered tenant column alone, so that only the tenant of that
		-- row fails, in its own build, and the others are refreshed.
		GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
		RAISE WARNING 'upsell: the tenants of the order lines could not be read through upsell.order_lines: %', message
			USING HINT = 'The tenant whose rows fail to read is refreshed with that error; the others are refreshed.';
		SELECT @extschema@._view_exprs('order_lines', s.relation, to_jsonb(s)) ->> 'tenant_id', s.relation
		INTO tenant_expr, rel
		FROM @extschema@.order_source s WHERE s.kind = 'columns';
		EXECUTE format(listing, coalesce(tenant_expr, 'NULL::bigint'), coalesce(rel::text, '(SELECT)') || ' AS s')
		INTO tenants;
	END;
	RETURN tenants;
END
$$;

-- Records in the refresh's log row an outcome that degrades the models
-- without failing a tenant (a status ok or partial alone would hide it): the
-- first one in error and error_sqlstate, where a failure, when one comes,
-- takes its place (_refresh_tenant_failed).  The caller says it in a WARNING.
CREATE FUNCTION @extschema@._refresh_note(run bigint, sqlstate text, message text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE @extschema@.refresh_log l
	SET error = coalesce(l.error, message), error_sqlstate = coalesce(l.error_sqlstate, sqlstate)
	WHERE l.refresh_id OPERATOR(pg_catalog.=) run;
END;
COMMENT ON FUNCTION @extschema@._refresh_note(bigint, text, text) IS
	'internal: records in the refresh''s log row (error, error_sqlstate, unless one is there) an outcome that degrades the models without failing a tenant';

-- A registered relation that is no longer what its registration meant, yet
-- still readable: one attached as a partition (a shop that partitions its
-- orders renames the table and attaches it under a new partitioned table of
-- its name), or one renamed while another relation took the name it was
-- registered by (as its tenants' last refresh kept it:
-- _name_as_registered).  A registration holds its relation by oid, so the
-- models are built from the old relation alone, and until 1.9 refresh
-- logged ok.  Refresh goes on with it -- the rows it has are real, and
-- failing would leave every tenant on older models -- and says so, at every
-- refresh until the relation is registered again (until 1.9 the first one
-- alone did, a nightly job's one note before silence), in a WARNING naming
-- the tenants and the registration to call again, and in the log row
-- (_refresh_note).
CREATE FUNCTION @extschema@._refresh_check_sources(run bigint, tenants bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	now_named regclass;
	problem text;
	which text := CASE WHEN cardinality(tenants) = 1 THEN 'tenant ' || tenants[1]
					   ELSE 'tenants ' || array_to_string(tenants[1:5], ', ')
							|| CASE WHEN cardinality(tenants) > 5 THEN ', ...' ELSE '' END END;
BEGIN
	FOR r IN SELECT DISTINCT rc.registration, rc.what, rc.relation::regclass AS relation, c.relispartition,
					rr.registered_at
			 FROM @extschema@._registered_columns() rc
			 JOIN @extschema@._registered_relations() rr ON rr.what = rc.what
			 JOIN pg_class c ON c.oid = rc.relation
			 ORDER BY rc.what LOOP
		now_named := CASE WHEN r.relispartition THEN pg_partition_root(r.relation) END;
		IF now_named IS NOT NULL THEN
			problem := format('the relation registered for the %s, %s, is now a partition of %s: refresh reads that partition alone',
							  r.what, r.relation, now_named);
		ELSE
			-- (a tenant refreshed since the registration: not one whose
			-- name changed by a registration of another relation)
			SELECT to_regclass(@extschema@._name_as_registered(s.registration, r.what)) INTO now_named
			FROM @extschema@.source_state s
			WHERE s.tenant_id = ANY (tenants) AND r.registered_at <= s.built_at
			  AND to_regclass(@extschema@._name_as_registered(s.registration, r.what)) <> r.relation
			LIMIT 1;
			problem := format('the relation registered for the %s as %s was renamed %s, and %s is now another relation: refresh reads the renamed one',
							  r.what, now_named, r.relation, now_named);
		END IF;
		CONTINUE WHEN now_named IS NULL;
		RAISE WARNING 'upsell: %: %', which, problem
			USING HINT = format('Call upsell.%s() again with %s to read it (the models are built from %s until then).',
								r.registration, now_named, r.relation);
		PERFORM @extschema@._refresh_note(run, '01000', which || ': ' || problem);
	END LOOP;
END
$$;

-- Counts the source rows the models skip or read in part (NULL ids,
-- implausible quantities and prices: upsell.bad_source_rows()) per tenant
-- and problem, with the first few ids,
-- into the refresh's log row and a NOTICE.  One pass over the order lines,
-- so a full refresh does it and an incremental one does not.
CREATE FUNCTION @extschema@._refresh_bad_rows(run bigint, tenants bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	bad jsonb := '{}';
	message text;
BEGIN
	-- a source that fails here fails its tenant's build, with its own error
	BEGIN
		FOR r IN
			SELECT b.tenant_id, b.source AS what, b.problem, count(*) AS n,
				   (array_agg(b.id ORDER BY b.id))[1:5] AS first_ids
			FROM @extschema@.bad_source_rows(tenants) b
			GROUP BY b.tenant_id, b.source, b.problem
			ORDER BY b.tenant_id, b.source, b.problem
		LOOP
			-- (rows without a tenant under "none")
			bad := jsonb_set(bad, ARRAY[coalesce(r.tenant_id::text, 'none')],
							 coalesce(bad -> coalesce(r.tenant_id::text, 'none'), '{}')
							 || jsonb_build_object(r.what || ': ' || r.problem,
												   jsonb_build_object('rows', r.n, 'first', to_jsonb(r.first_ids))));
			RAISE NOTICE 'upsell: tenant %: % % skipped or read in part: %; first: %', coalesce(r.tenant_id::text, 'none'),
				r.n, CASE r.what WHEN 'catalog' THEN 'catalog rows' ELSE r.what END, r.problem,
				array_to_string(r.first_ids, ', ') || CASE WHEN r.n > 5 THEN ', ...' ELSE '' END
				USING HINT = 'See upsell.bad_source_rows().';
		END LOOP;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
		RAISE WARNING 'upsell: could not count the bad source rows: %', message;
		bad := jsonb_build_object('error', message);
	END;
	UPDATE @extschema@.refresh_log l SET bad_rows = nullif(bad, '{}') WHERE l.refresh_id = run;
END
$$;

-- ---- side builds -------------------------------------------------------------
--
-- A model whose rows come from the order lines alone can be computed by a
-- background worker while the refresh builds the models before it
-- (src/side_build.c): on a 2-core machine a tenant's refresh then uses both.
-- Its builder reads the rows with _side_rows when _side_ready says the
-- worker runs, and otherwise computes them itself.

CREATE FUNCTION @extschema@._side_start(name text, query text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_side_start'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_start(text, text) IS
	'internal: starts a background worker that runs query (a SELECT, with the caller''s user, role and build settings) and keeps its rows for _side_rows(name), until the transaction ends; false when no worker could be started';

CREATE FUNCTION @extschema@._side_ready(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_side_ready'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_ready(text) IS
	'internal: whether side build name runs or ran its query (waits for its worker to start); false, and forgotten, when its worker ended before it could';

CREATE FUNCTION @extschema@._side_rows(name text, shape anyelement)
RETURNS SETOF anyelement
AS 'MODULE_PATHNAME', 'upsell_side_rows'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_rows(text, anyelement) IS
	'internal: the rows of side build name, of the row type of shape (its columns must have exactly those types), waiting for them; its error, with its SQLSTATE, when its query failed';

CREATE FUNCTION @extschema@._side_cpu_ms(name text)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_side_cpu_ms'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_cpu_ms(text) IS
	'internal: the CPU time (ms) the worker of side build name used to compute its rows, once _side_ready says it has; NULL before, after its rows were read, or unknown';

CREATE FUNCTION @extschema@._side_builds()
RETURNS TABLE (name text, computing boolean)
AS 'MODULE_PATHNAME', 'upsell_side_builds'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_builds() IS
	'internal: this transaction''s side builds whose rows were not read yet, and whether each is still computing';

-- Declares that a model's rows can be computed by a side build: query_fn
-- (tenant_id bigint, snapshot pg_snapshot) RETURNS text gives the query the
-- worker runs, reading the tenant's lines as of the snapshot, and nothing
-- the tenant's transaction wrote (the worker cannot see it): the caller
-- writes into the query what it needs of the models built before.  The
-- model's builder reads the rows (_side_ready, _side_rows) or computes them.
-- during_count: the worker holds little memory (its sorts and hashes are
-- bounded by work_mem), so it may compute while the count, the refresh's
-- largest build in memory, runs (the counting leader keeps one core busy
-- and its parallel workers only scan: the other core is mostly free).
-- incremental: the side build runs in an incremental build too, because
-- the builder rebuilds the model in full then as well (its rows do not add
-- up from the new lines), or because query_fn, which runs in the refresh,
-- writes what the build needs of the new lines into the query (a worker
-- cannot read pg_temp.upsell_new_lines).
CREATE FUNCTION @extschema@._define_side_build(model name, query_fn text, during_count boolean DEFAULT false,
	incremental boolean DEFAULT false)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE @extschema@.model_definitions d
	SET side_query = query_fn::regprocedure::text, side_during_count = during_count,
		side_incremental = _define_side_build.incremental
	WHERE d.model OPERATOR(pg_catalog.=) _define_side_build.model;
END;

-- Keeps upsell.refresh_workers side builds of a tenant computing: called
-- after each model from source_state on (it fixes the snapshot of the
-- tenant's lines), it starts those of the models still to build (after
-- build_order after) -- before the count is done only those that may
-- compute during it -- in build order, while fewer than that many are
-- computing.  So on a 2-core machine the refreshing backend and
-- the workers share the cores until the end, rather than the workers
-- finishing early and the backend building the rest alone.  On a single
-- node; in an incremental build only those declared for it
-- (_define_side_build's incremental).  Returns how many started.
CREATE FUNCTION @extschema@._side_builds_start(tenant_id bigint, after int)
RETURNS int
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	workers int := coalesce(current_setting('upsell.refresh_workers', true)::int, 0);
	free int;
	known text[];
	snap pg_snapshot;
	inc boolean;
	m record;
	query text;
	started int := 0;
BEGIN
	IF workers <= 0 OR @extschema@._models_distributed() THEN
		RETURN 0;
	END IF;
	inc := @extschema@._incremental(tenant_id);
	IF inc AND @extschema@._lines_unchanged(tenant_id) THEN
		-- nothing to compute beside: the builders keep their rows, or
		-- compute what the catalog changed themselves
		RETURN 0;
	END IF;
	SELECT workers - count(*) FILTER (WHERE b.computing), coalesce(array_agg(b.name), '{}')
	INTO free, known FROM @extschema@._side_builds() b;
	IF free <= 0 THEN
		RETURN 0;
	END IF;
	SELECT s.snapshot INTO snap FROM @extschema@.source_state s WHERE s.tenant_id = _side_builds_start.tenant_id;
	FOR m IN
		SELECT d.model, d.side_query FROM @extschema@.model_definitions d
		WHERE d.side_query IS NOT NULL AND d.build_order > after
		  AND (d.side_incremental OR NOT inc)
		  AND (d.side_during_count OR after >= (SELECT c.build_order FROM @extschema@.model_definitions c
												 WHERE c.model = 'cooccurrence_chunks'))
		  AND d.model::text <> ALL (known)
		ORDER BY d.build_order LIMIT free
	LOOP
		EXECUTE format('SELECT %s($1, $2)', m.side_query::regprocedure::regproc) INTO query USING tenant_id, snap;
		IF @extschema@._side_start(m.model, query) THEN
			started := started + 1;
		END IF;
	END LOOP;
	RETURN started;
END
$$;

-- Builds and publishes every model of one tenant, in the caller's
-- transaction, and draws a new serving_state.config_version for the serving
-- caches of this node.  Returns per model the rows published, the build's
-- milliseconds, the building backend's CPU milliseconds, whether a side
-- build's worker computed the rows and that worker's CPU milliseconds
-- ({"model": [rows, ms, cpu_ms, side, side_cpu_ms], ...}).  Where the models are Citus
-- tables distributed by tenant (upsell.distribute()), this is a distributed
-- function delegated to the worker holding the tenant's shards: the
-- builders read the tenant's order lines and write its models there.
CREATE FUNCTION @extschema@._build_tenant(tenant_id bigint, incremental boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m record;
	n bigint;
	t0 timestamptz;
	cpu0 float8;
	side boolean;
	side_cpu float8;
	built jsonb := '{}';
	-- the model that fixes the snapshot of the tenant's lines
	snapshot_order int := (SELECT d.build_order FROM @extschema@.model_definitions d
						   WHERE d.model = 'source_state');
BEGIN
	-- the builds allocate and free the same large buffers over and over
	-- (src/refresh_malloc.c)
	PERFORM @extschema@._hold_freed_memory(true);
	IF @extschema@._models_distributed() THEN
		-- on the tenant's worker: a builder's function (C, or a query text)
		-- reads the tenant's order lines while the statement that publishes
		-- writes the tenant's shard of a model, both shards of this node
		-- and colocated (they move together)
		PERFORM set_config('citus.allow_nested_distributed_execution', 'on', true);
	END IF;
	FOR m IN SELECT * FROM @extschema@.model_definitions ORDER BY build_order LOOP
		t0 := clock_timestamp();
		cpu0 := @extschema@._backend_cpu_ms();
		-- (a builder reads the rows of its side build when it runs)
		side := @extschema@._side_ready(m.model);
		IF side THEN
			-- its worker has just computed them (_side_ready waited for it):
			-- the next side build takes its place now, not once this builder
			-- has read and published the rows (1.6 s of an incremental
			-- refresh's purchase histories at 10M lines, a core left idle)
			PERFORM @extschema@._side_builds_start(tenant_id, m.build_order);
		END IF;
		side_cpu := CASE WHEN side THEN @extschema@._side_cpu_ms(m.model) END;
		EXECUTE format('SELECT %s($1, $2)', m.builder::regprocedure::regproc) INTO n USING tenant_id, incremental;
		built := built || jsonb_build_object(m.model, jsonb_build_array(coalesce(n, 0),
											 1000 * extract(epoch FROM clock_timestamp() - t0),
											 @extschema@._backend_cpu_ms() - cpu0, side, side_cpu));
		RAISE NOTICE 'upsell: tenant %: built % (% rows) in % ms%', tenant_id, m.model, coalesce(n, 0),
			round(1000 * extract(epoch FROM clock_timestamp() - t0)),
			CASE WHEN side THEN ', its rows computed by a background worker' ELSE '' END;
		IF m.build_order >= snapshot_order THEN
			-- once source_state has fixed the snapshot of the tenant's
			-- lines: side builds of the models still to build, while fewer
			-- than upsell.refresh_workers are computing
			PERFORM @extschema@._side_builds_start(tenant_id, m.build_order);
		END IF;
	END LOOP;
	-- the serving caches of every backend (of this node) re-read the rules and models
	UPDATE @extschema@.serving_state SET config_version = DEFAULT;	-- drawn by its trigger
	PERFORM @extschema@._hold_freed_memory(false);
	RETURN built;
END
$$;

-- Builds and publishes every model of one tenant (_build_tenant, on the
-- tenant's worker when distributed) in the caller's transaction (refresh
-- commits it), and records the builds.  Returns the rows per model.
CREATE FUNCTION @extschema@._refresh_tenant(run bigint, tenant_id bigint, incremental boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb;
	built jsonb := '{}';
	m record;
	distributed boolean;
	mined jsonb;
BEGIN
	-- one refresh of a tenant at a time (a second one waits, then rebuilds
	-- from what the first published); readers are not blocked by this
	PERFORM pg_advisory_xact_lock(@extschema@._refresh_lock_class('tenant'), hashint8(tenant_id));
	distributed := @extschema@._models_distributed();
	IF distributed THEN
		b := @extschema@._build_tenant_on_worker(tenant_id, incremental);
	ELSE
		b := @extschema@._build_tenant(tenant_id, incremental);
	END IF;
	FOR m IN SELECT d.model, (b -> d.model ->> 0)::bigint AS n, (b -> d.model ->> 1)::float8 AS ms,
					(b -> d.model ->> 2)::float8 AS cpu_ms, coalesce((b -> d.model ->> 3)::boolean, false) AS side,
					(b -> d.model ->> 4)::float8 AS side_cpu_ms
			 FROM @extschema@.model_definitions d WHERE b ? d.model ORDER BY d.build_order LOOP
		IF distributed THEN
			-- (the worker's notices do not come back over its connection)
			RAISE NOTICE 'upsell: tenant %: built % (% rows) in % ms on its worker', tenant_id, m.model, m.n, round(m.ms);
		END IF;
		INSERT INTO @extschema@.model_builds AS mb (tenant_id, model, row_count, built_at, build_ms, incremental,
													refresh_id, cpu_ms, side_build, side_cpu_ms)
		VALUES (tenant_id, m.model, m.n, now(), m.ms, incremental, run, m.cpu_ms, m.side, m.side_cpu_ms)
		ON CONFLICT ON CONSTRAINT model_builds_pkey DO UPDATE SET
			row_count = excluded.row_count, built_at = excluded.built_at, build_ms = excluded.build_ms,
			incremental = excluded.incremental, refresh_id = excluded.refresh_id, cpu_ms = excluded.cpu_ms,
			side_build = excluded.side_build, side_cpu_ms = excluded.side_cpu_ms;
		built := built || jsonb_build_object(m.model, m.n);
	END LOOP;
	-- published without bundles, as no count fitted the memory limit
	-- (_build_bundle_model said it in a WARNING): said in the log too
	SELECT s.settings -> 'bundles' INTO mined FROM @extschema@.source_state s
	WHERE s.tenant_id = _refresh_tenant.tenant_id;
	IF (mined ->> 'fitted')::boolean IS FALSE THEN
		PERFORM @extschema@._refresh_note(run, '54000', format(
			'tenant %s: published without bundles: mining exceeds upsell.itemsets_memory_limit (%s kB) even at min_count %s',
			tenant_id, mined ->> 'memory_limit_kb', mined ->> 'min_count'));
	END IF;
	-- a tenant without any rows left is gone: forget it
	IF NOT EXISTS (SELECT FROM jsonb_each_text(built) e WHERE e.value::bigint > 0) THEN
		DELETE FROM @extschema@.model_builds mb WHERE mb.tenant_id = _refresh_tenant.tenant_id;
	END IF;
	UPDATE @extschema@.refresh_log l
	SET tenants_ok = l.tenants_ok + 1,
		model_rows = (SELECT jsonb_object_agg(k, coalesce((l.model_rows ->> k)::bigint, 0) + (built ->> k)::bigint)
					  FROM jsonb_object_keys(built) k)
	WHERE l.refresh_id = run;
	-- built on a worker: the coordinator's serving caches are told too
	IF distributed THEN
		UPDATE @extschema@.serving_state SET config_version = DEFAULT;	-- drawn by its trigger
	END IF;
	RETURN built;
END
$$;

-- Records a tenant's failed build (its transaction was rolled back: its
-- previous models keep serving), one of tenants being refreshed.  True when
-- it was a cancel or a timeout.
CREATE FUNCTION @extschema@._refresh_tenant_failed(run bigint, tenant_id bigint, sqlstate text, message text,
	tenants int)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- a NULL tenant: the refresh failed before it built any
	UPDATE @extschema@.refresh_log l
	SET tenants_failed = l.tenants_failed + CASE WHEN _refresh_tenant_failed.tenant_id IS NULL THEN 0 ELSE 1 END,
		failures = coalesce(l.failures, '{}') || jsonb_build_object(
					coalesce(_refresh_tenant_failed.tenant_id::text, 'all'),
					jsonb_build_object('sqlstate', sqlstate, 'error', message)),
		-- (the first failure takes the place of a note: _refresh_note)
		error = CASE WHEN l.failures IS NULL THEN message ELSE coalesce(l.error, message) END,
		error_sqlstate = CASE WHEN l.failures IS NULL THEN sqlstate ELSE coalesce(l.error_sqlstate, sqlstate) END
	WHERE l.refresh_id = run;
	IF sqlstate = '57014' THEN
		RAISE WARNING 'upsell: refresh % cancelled: %', run, message
			USING DETAIL = 'The tenant being built keeps its previous models; the tenants finished before are published.';
		RETURN true;
	END IF;
	-- (a refresh of one tenant raises the error itself)
	IF tenants > 1 THEN
		RAISE WARNING 'upsell: refresh of tenant % failed: %', tenant_id, message
			USING DETAIL = 'Its previous models keep serving; the other tenants are refreshed.';
	END IF;
	RETURN false;
END
$$;

-- The end of a refresh: its status and duration in the log, the run's lock
-- released.  True when it must end in an error: cancelled, or no tenant
-- refreshed and one failed.
CREATE FUNCTION @extschema@._refresh_end(run bigint, cancelled boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st text;
BEGIN
	UPDATE @extschema@.refresh_log l
	SET finished_at = clock_timestamp(),
		duration_ms = 1000 * extract(epoch FROM clock_timestamp() - l.started_at),
		status = CASE WHEN cancelled THEN 'cancelled'
					  WHEN l.failures IS NULL THEN 'ok'
					  WHEN l.tenants_ok = 0 THEN 'failed'
					  ELSE 'partial' END
	WHERE l.refresh_id = run
	RETURNING l.status INTO st;
	PERFORM pg_advisory_unlock(@extschema@._refresh_lock_class('run'), (run % 2147483647)::int);
	-- (a refresh that fails or is cancelled says so by its error)
	IF st IN ('ok', 'partial') THEN
		RAISE NOTICE 'upsell: refresh % %: % ms', run, st,
			(SELECT round(l.duration_ms) FROM @extschema@.refresh_log l WHERE l.refresh_id = run);
	END IF;
	RETURN st IN ('cancelled', 'failed');
END
$$;

-- Re-raises the first error of a refresh that ends in one.
CREATE FUNCTION @extschema@._refresh_raise(sqlstate text, message text, detail text, hint text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF sqlstate = '57014' THEN
		RAISE EXCEPTION USING MESSAGE = message, ERRCODE = sqlstate,
			HINT = 'The tenant being built keeps its previous models; see upsell.refresh_log.';
	END IF;
	hint := concat_ws(' ', nullif(hint, ''), 'The previous models keep serving.');
	IF coalesce(detail, '') = '' THEN
		RAISE EXCEPTION USING MESSAGE = message, ERRCODE = sqlstate, HINT = hint;
	END IF;
	RAISE EXCEPTION USING MESSAGE = message, ERRCODE = sqlstate, DETAIL = detail, HINT = hint;
END
$$;

-- No SET clause: a procedure with one may not COMMIT.  So it runs with the
-- caller's search_path (often a superuser's, or pg_cron's), and its body
-- names every type and function with its schema and uses no operator: an
-- object of another schema that matches exactly would win over pg_catalog's.
CREATE PROCEDURE @extschema@.refresh(incremental boolean DEFAULT false, tenant_id bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
	atomic constant pg_catalog.bool := @extschema@._in_transaction_block();
	run pg_catalog.int8;
	tenants pg_catalog.int8[];
	t pg_catalog.int8;
	cancelled pg_catalog.bool := false;
	must_raise pg_catalog.bool;
	err_message pg_catalog.text;
	err_state pg_catalog.text;
	err_detail pg_catalog.text;
	err_hint pg_catalog.text;
	first_message pg_catalog.text;
	first_state pg_catalog.text;
	first_detail pg_catalog.text;
	first_hint pg_catalog.text;
BEGIN
	-- a session bound to a tenant refreshes that one, as every function
	-- takes the bound tenant for a NULL tenant_id (and refuses another)
	tenant_id := @extschema@._bound_tenant(tenant_id);
	run := @extschema@._refresh_begin(incremental, tenant_id);
	-- the log row and its lock are visible at once (not inside BEGIN ... COMMIT)
	IF NOT atomic THEN
		COMMIT;
	END IF;
	BEGIN
		tenants := @extschema@._refresh_tenants(tenant_id);
		PERFORM @extschema@._refresh_check_sources(run, tenants);
		IF NOT incremental THEN
			PERFORM @extschema@._refresh_bad_rows(run, tenants);
		END IF;
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		GET STACKED DIAGNOSTICS first_message = MESSAGE_TEXT, first_state = RETURNED_SQLSTATE,
								first_detail = PG_EXCEPTION_DETAIL, first_hint = PG_EXCEPTION_HINT;
		cancelled := @extschema@._refresh_tenant_failed(run, NULL, first_state, first_message, 0);
		tenants := '{}';
	END;
	FOREACH t IN ARRAY tenants LOOP
		BEGIN
			PERFORM @extschema@._refresh_tenant(run, t, incremental);
		EXCEPTION WHEN OTHERS OR query_canceled THEN
			-- the tenant's subtransaction is rolled back: its previous models keep serving
			GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
									err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
			cancelled := @extschema@._refresh_tenant_failed(run, t, err_state, err_message,
															 pg_catalog.cardinality(tenants));
			IF cancelled OR first_message IS NULL THEN
				first_message := err_message;
				first_state := err_state;
				first_detail := err_detail;
				first_hint := err_hint;
			END IF;
		END;
		-- publish this tenant (outside BEGIN ... COMMIT; inside, the caller's commit does)
		IF NOT atomic THEN
			COMMIT;
		END IF;
		EXIT WHEN cancelled;
	END LOOP;
	must_raise := @extschema@._refresh_end(run, cancelled);
	IF NOT atomic THEN
		COMMIT;
	END IF;
	IF must_raise THEN
		-- cancelled, or no tenant refreshed: the first error (logged and committed above)
		PERFORM @extschema@._refresh_raise(first_state, first_message, first_detail, first_hint);
	END IF;
END
$$;
COMMENT ON PROCEDURE @extschema@.refresh(boolean, bigint) IS
	'rebuilds the models of every tenant (or of tenant_id) from the registered sources and publishes each tenant in its own transaction (MVCC: readers never wait and see one complete version); a tenant whose build fails keeps its previous models; logged in upsell.refresh_log; incremental => true folds in the order lines committed since the tenant''s last refresh where the rest is unchanged, else rebuilds the tenant in full and says why (upsell.source_state)';

-- ===========================================================================
-- Incremental refresh: which order lines are new, and whether the rest is
-- unchanged
-- ===========================================================================
--
-- The first model a tenant's refresh builds, source_state, records the
-- snapshot (pg_current_snapshot()) that the tenant's build reads its order
-- lines at, with the count and a checksum (XOR of a hash per line) of those
-- lines.  Every builder reads the lines through _tenant_lines(), which keeps
-- only the rows whose inserting transaction that snapshot sees, so all the
-- models of a tenant count exactly the same lines whatever commits while
-- they are built.
--
-- An incremental refresh then takes as new the rows the previous snapshot
-- did not see and the current one does: commit order, not order time or id,
-- so a transaction that commits late with early times or ids is still new,
-- and one that commits during a refresh is new at the next.  It folds the
-- new lines in only when the rest is exactly what was counted:
--
--	the lines the previous snapshot saw, counted again now, have the same
--	count and checksum (else lines were deleted or edited: an UPDATE writes
--	a new row version, which is new, and removes the counted one), and
--	no new line that counts (sold: a quantity above 0, or none, read as
--	1) belongs to an order counted before (a line added to an old order
--	changes that order's pairs).
--
-- Otherwise the tenant is rebuilt in full, and refresh says why (NOTICE and
-- source_state.reason).  Returns (quantity <= 0) count for no model, so a
-- return of an old order folds in.  A source that is a view has no row
-- xmin: its tenants are always rebuilt in full.

CREATE FUNCTION @extschema@._xmin_visible_support(internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'upsell_xmin_visible_support'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._xmin_visible_support(internal) IS
	'internal: the planner''s selectivity of _xmin_visible (nearly every row is visible to a refresh''s snapshot)';

CREATE FUNCTION @extschema@._xmin_visible(xmin xid, snapshot pg_snapshot)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_xmin_visible'
LANGUAGE C STABLE PARALLEL SAFE
SUPPORT @extschema@._xmin_visible_support;
COMMENT ON FUNCTION @extschema@._xmin_visible(xid, pg_snapshot) IS
	'internal: whether the transaction that wrote a row (its xmin) had committed as of the snapshot; true for a NULL xmin (a source without one)';

-- The hash of a line in the checksum (XOR over the lines: order-free, and
-- parallel aggregation combines it).
CREATE FUNCTION @extschema@._line_hash(order_key bigint, product_id bigint, quantity numeric)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.hashint8extended(order_key,
	pg_catalog.hashint8extended(product_id, pg_catalog.hash_numeric_extended(quantity, 0)));

-- The settings that shape models an incremental refresh only partly
-- rewrites: when one changed since the tenant's last refresh, the rows not
-- rewritten would keep the old shape, so the tenant is rebuilt in full.
-- (upsell.pairs_per_product: pair_list_model rewrites the lists of the
-- products of new orders only; upsell.max_basket_size: only the new orders
-- are counted, and the old ones' pairs were counted under the old size;
-- upsell.bundle_min_count and upsell.bundles_per_product: bundle_model is
-- kept as it is when the tenant has no new lines, _lines_unchanged.)
-- source_state's settings also say, under "bundles", the count the bundles
-- were last mined at (upsell.itemsets_memory_limit may have made the
-- refresh raise it) and that limit; that is not a setting to compare, and an
-- incremental refresh carries it over to the bundles it keeps.
CREATE FUNCTION @extschema@._model_settings()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.jsonb_build_object('upsell.pairs_per_product',
	coalesce(pg_catalog.current_setting('upsell.pairs_per_product', true)::int, 50),
	'upsell.max_basket_size', coalesce(pg_catalog.current_setting('upsell.max_basket_size', true)::int, 100),
	'upsell.bundle_min_count', coalesce(pg_catalog.current_setting('upsell.bundle_min_count', true)::int, 5),
	'upsell.bundles_per_product', coalesce(pg_catalog.current_setting('upsell.bundles_per_product', true)::int, 10));

-- The name a registered relation (what: as _registered_relations names it)
-- had when it was registered, as a tenant's source_state.registration keeps
-- it (registered_as: the name at the first refresh after the registration,
-- carried over by every refresh until the relation is registered again).  A
-- state of 1.8 or older has none: the order lines' name at its last refresh
-- is the nearest it knows.
CREATE FUNCTION @extschema@._name_as_registered(registration jsonb, what text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN coalesce(registration OPERATOR(pg_catalog.->) 'registered_as' OPERATOR(pg_catalog.->>) what,
				CASE WHEN what OPERATOR(pg_catalog.=) 'order lines'
					 THEN registration OPERATOR(pg_catalog.->>) 'relation' END);
COMMENT ON FUNCTION @extschema@._name_as_registered(jsonb, text) IS
	'internal: the name a registered relation had when registered, as a source_state.registration keeps it (NULL when unknown)';

CREATE FUNCTION @extschema@._build_source_state(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	snap pg_snapshot := pg_current_snapshot();
	prev @extschema@.source_state;
	why text;
	n_lines bigint;
	n_sum bigint;
	old_lines bigint;
	old_sum bigint;
	touched bigint;
	touched_query text;
	touched_plan json;
	touched_counted boolean;	-- touched known (through the index, or no new order)
	range_query text;
	range_plan json;
	by_range boolean := false;
	last_key bigint;
	first_new_key bigint;
	no_key constant bigint := -9223372036854775807 - 1;
	all_lines bigint;
	all_sum bigint;
	new_keys bigint[];
	new_n bigint;
	new_sum bigint;
	new_orders bigint;
	has_xmin boolean;
	is_view boolean;
	is_foreign boolean;
	settings jsonb := @extschema@._model_settings();
	-- how the order lines are read: the relation and the columns registered
	-- for them (register_orders, or the Shopify documents' registration),
	-- and the registration's zone where the view reads ordered_at in it (a
	-- date or timestamp column: _column_expr); a timestamptz is the same
	-- instant whoever registered it
	registration jsonb := (SELECT pg_catalog.to_jsonb(o) OPERATOR(pg_catalog.-) '{singleton, registered_at}'::text[]
								  OPERATOR(pg_catalog.-) CASE
									  WHEN o.kind = 'columns' AND o.ordered_at IS NOT NULL
										   AND @extschema@._column_type(o.relation, o.ordered_at, 'ordered_at')
											   IN ('timestamp without time zone'::regtype, 'date'::regtype)
									  THEN '{}'::text[] ELSE '{time_zone}'::text[] END
						   FROM @extschema@.order_source o)
		-- and which columns those names are (attnums): a registered column
		-- renamed away and another added under its name is another column
		-- of the same name, which a view made anew reads (refresh makes
		-- the view again when a DROP ... CASCADE took it): the models of
		-- the old column must not take the new one's lines
		OPERATOR(pg_catalog.||) coalesce((SELECT pg_catalog.jsonb_build_object('attnums', pg_catalog.jsonb_object_agg(rc.role, a.attnum))
										  FROM @extschema@._registered_columns() rc
										  JOIN pg_attribute a ON a.attrelid = rc.relation AND a.attname = rc.col
										  WHERE rc.what = 'order lines'), '{}')
		-- and the name each registered relation had when it was registered:
		-- the last refresh's unless registered since.  A relation renamed
		-- while another took its name is read by its oid, and every refresh
		-- says so until it is registered again (_refresh_check_sources);
		-- keeping the name of the last refresh instead, only the first did.
		-- (Not compared below: the same relation read alike.)
		OPERATOR(pg_catalog.||) coalesce((SELECT pg_catalog.jsonb_build_object('registered_as', pg_catalog.jsonb_object_agg(r.what,
											 coalesce(CASE WHEN r.registered_at OPERATOR(pg_catalog.<=) s.built_at
														   THEN @extschema@._name_as_registered(s.registration, r.what) END,
													  r.relation::regclass::text)))
										  FROM @extschema@._registered_relations() r
										  LEFT JOIN @extschema@.source_state s ON s.tenant_id OPERATOR(pg_catalog.=) t), '{}');
	changed text;
BEGIN
	IF to_regclass('pg_temp.upsell_new_lines') IS NOT NULL THEN
		DROP TABLE pg_temp.upsell_new_lines;
	END IF;
	IF to_regclass('pg_temp.upsell_changed_products') IS NOT NULL THEN
		DROP TABLE pg_temp.upsell_changed_products;
	END IF;
	-- (the registration view's row_xmin: a table's xmin, NULL for a view, a
	-- foreign table or a Citus distributed table)
	SELECT @extschema@._row_xmin(o.relation) <> 'NULL::xid', c.relkind = 'v', c.relkind = 'f'
	INTO has_xmin, is_view, is_foreign
	FROM @extschema@.order_source o JOIN pg_class c ON c.oid = o.relation;
	IF incremental THEN
		SELECT * INTO prev FROM @extschema@.source_state s WHERE s.tenant_id = t;
		IF NOT FOUND THEN
			why := 'the tenant has not been refreshed before';
		ELSIF NOT coalesce(has_xmin, false) THEN
			why := CASE WHEN is_view THEN 'the registered order lines are a view, whose rows carry no commit order'
						WHEN is_foreign THEN 'the registered order lines are a foreign table, whose rows carry no commit order of this server'
						ELSE 'the registered order lines are a Citus distributed table, whose rows carry the shards'' transaction ids' END;
		ELSIF pg_snapshot_xmax(snap)::text::numeric - pg_snapshot_xmax(prev.snapshot)::text::numeric > 1073741824 THEN
			why := 'over 2^30 transactions since its last refresh';
		ELSIF prev.registration - 'registered_as' IS DISTINCT FROM
			  -- (a state of 1.7 or older has no attnums: the names compared)
			  (CASE WHEN prev.registration ? 'attnums' THEN registration ELSE registration - 'attnums' END) - 'registered_as' THEN
			-- the same rows, read otherwise (another customer or time
			-- column, or none): the models of the lines as they were read
			-- would be kept, and the new lines folded into them
			changed := (SELECT string_agg(format('%s: %s, now %s', k, coalesce(prev.registration ->> k, 'none'),
												 coalesce(registration ->> k, 'none')), '; ' ORDER BY k)
						FROM (SELECT jsonb_object_keys(prev.registration)
							  UNION SELECT jsonb_object_keys(registration)) r(k)
						WHERE prev.registration -> k IS DISTINCT FROM registration -> k AND k NOT IN ('attnums', 'registered_as'));
			why := CASE WHEN changed IS NULL
						THEN 'a registered column of the order lines is another column of the same name since its last refresh (one renamed away and another added under its name)'
						-- the same registration, its relation renamed (refresh
						-- says in a WARNING when it became a partition, or
						-- another relation took its name)
						WHEN changed = format('relation: %s, now %s', prev.registration ->> 'relation', registration ->> 'relation')
							 AND (SELECT o.registered_at FROM @extschema@.order_source o) <= prev.built_at
						THEN format('the registered relation of the order lines was renamed since its last refresh (%s, now %s)',
									prev.registration ->> 'relation', registration ->> 'relation')
						ELSE 'the order lines were registered anew since its last refresh (' || changed || ')' END;
		ELSIF prev.settings OPERATOR(pg_catalog.-) 'bundles'::text IS DISTINCT FROM settings THEN
			why := format('settings changed since its last refresh (%s, now %s)',
						  prev.settings OPERATOR(pg_catalog.-) 'bundles'::text, settings);
		END IF;
	END IF;
	IF incremental AND why IS NULL THEN
		-- The new lines are those committed after the last refresh's
		-- snapshot.  Where the source's index on its order id serves the
		-- orders after the last refresh's (ids that grow with time, the
		-- usual case), one scan of every line as of this snapshot counts
		-- them all (count and checksum) and finds the smallest order key of
		-- a new line; the new lines are read through the index from that
		-- key on, and the lines counted last time are all the lines but the
		-- new ones.  Otherwise two scans: the new lines, then the lines the
		-- last refresh counted, counted again.  (10M lines, 1% new orders:
		-- 1.4 s against 1.8 s; without new lines the one scan, 1.2 s.)
		-- A late transaction's lower ids only move the key the index is
		-- read from: every new line is found either way.
		range_query := $q$
			SELECT l.* FROM @extschema@.order_lines l
			WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND l.order_key OPERATOR(pg_catalog.>=) $4
			  AND @extschema@._xmin_visible(l.row_xmin, $2) AND NOT @extschema@._xmin_visible(l.row_xmin, $3)$q$;
		last_key := (SELECT m.max_order_key FROM @extschema@.cooccurrence_model m WHERE m.tenant_id = t);
		IF last_key IS NOT NULL THEN
			EXECUTE 'EXPLAIN (FORMAT JSON) ' || range_query INTO range_plan USING t, snap, prev.snapshot, last_key;
			by_range := range_plan::text ~ '"Index Cond": "([^"\\]|\\.)*>='
						AND range_plan::text !~ '"Node Type": "Seq Scan"';
		END IF;
		IF by_range THEN
			-- (a new line without order key gives the smallest key: no
			-- range then, the new lines are found by a scan)
			EXECUTE $q$
				SELECT pg_catalog.count(*),
					   coalesce(pg_catalog.bit_xor(@extschema@._line_hash(l.order_key, l.product_id, l.quantity)), 0),
					   pg_catalog.min(CASE WHEN NOT @extschema@._xmin_visible(l.row_xmin, $3)
										   THEN coalesce(l.order_key, $4) END)
				FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND @extschema@._xmin_visible(l.row_xmin, $2)$q$
			INTO all_lines, all_sum, first_new_key
			USING t, snap, prev.snapshot, no_key;
		END IF;
		IF by_range AND first_new_key IS NULL THEN
			-- no new line
			EXECUTE 'CREATE TEMP TABLE upsell_new_lines ON COMMIT DROP AS ' || range_query || ' AND false'
			USING t, snap, prev.snapshot, no_key;
		ELSIF by_range AND first_new_key <> no_key THEN
			EXECUTE 'CREATE TEMP TABLE upsell_new_lines ON COMMIT DROP AS ' || range_query
			USING t, snap, prev.snapshot, first_new_key;
		ELSE
			EXECUTE format($q$
				CREATE TEMP TABLE upsell_new_lines ON COMMIT DROP AS
				SELECT l.* FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND @extschema@._xmin_visible(l.row_xmin, $2)
				  AND NOT @extschema@._xmin_visible(l.row_xmin, $3)$q$)
			USING t, snap, prev.snapshot;
		END IF;
		SELECT count(*), coalesce(bit_xor(@extschema@._line_hash(n.order_key, n.product_id, n.quantity)), 0),
			   count(DISTINCT n.order_key)
		INTO new_n, new_sum, new_orders
		FROM pg_temp.upsell_new_lines n;
		-- the lines counted last time in the new lines' orders (a line
		-- added to an old order): through the source's index on its order
		-- id where the planner takes one (31,487 orders at 10M lines:
		-- 0.18-0.27 s, 55-61 ms of it the EXPLAIN), else as a filter of the
		-- count below, the new orders a constant array, a hashed lookup
		-- (0.75 s of CPU per 10M lines), so that the lines are read once and
		-- may be read in parallel
		new_keys := ARRAY(SELECT DISTINCT n.order_key FROM pg_temp.upsell_new_lines n
						  WHERE n.sold AND n.product_id IS NOT NULL AND n.order_key IS NOT NULL);
		touched_query := $q$
			SELECT pg_catalog.count(*) FROM @extschema@.order_lines l
			WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND l.order_key OPERATOR(pg_catalog.=) ANY ($3)
			  AND @extschema@._xmin_visible(l.row_xmin, $2)$q$;
		IF new_keys = '{}' THEN
			touched := 0;
			touched_counted := true;
		ELSE
			EXECUTE 'EXPLAIN (FORMAT JSON) ' || touched_query INTO touched_plan USING t, prev.snapshot, new_keys;
			-- (an index condition on the new orders, the query's only ANY: not
			-- an index on the tenant, which would read the tenant's every line;
			-- and no scan, as of a partition without the index)
			touched_counted := touched_plan::text ~ '"Index Cond": "([^"\\]|\\.)*= ANY'
						AND touched_plan::text !~ '"Node Type": "Seq Scan"';
			IF touched_counted THEN
				EXECUTE touched_query INTO touched USING t, prev.snapshot, new_keys;
			END IF;
		END IF;
		IF by_range AND touched_counted THEN
			-- (every line as of this snapshot is a line counted last time or
			-- a new one)
			old_lines := all_lines - new_n;
			old_sum := all_sum # new_sum;
		ELSE
			-- the lines counted last time, counted again ($3: the count
			-- through the index, passed through)
			EXECUTE format($q$
				SELECT pg_catalog.count(*),
					   coalesce(pg_catalog.bit_xor(@extschema@._line_hash(l.order_key, l.product_id, l.quantity)), 0),
					   %s
				FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND @extschema@._xmin_visible(l.row_xmin, $2)$q$,
				CASE WHEN touched_counted THEN '$3'
					 ELSE format('pg_catalog.count(*) FILTER (WHERE l.order_key OPERATOR(pg_catalog.=) ANY (%L::bigint[]))', new_keys) END)
			INTO old_lines, old_sum, touched
			USING t, prev.snapshot, touched;
		END IF;
		IF old_lines <> prev.lines OR old_sum <> prev.checksum THEN
			why := CASE WHEN old_lines < prev.lines
						THEN format('%s of the %s order lines counted at the last refresh were deleted or edited since',
									prev.lines - old_lines, prev.lines)
						WHEN old_lines > prev.lines
						THEN format('%s more order lines than counted at the last refresh carry its commits (a subtransaction that committed late, a partition attached)',
									old_lines - prev.lines)
						ELSE 'order lines counted at the last refresh were replaced since (same count, other lines)' END;
		ELSIF touched > 0 THEN
			why := format('new lines were added to orders counted at the last refresh (%s %s of those orders %s counted)', touched,
						  CASE WHEN touched = 1 THEN 'line' ELSE 'lines' END, CASE WHEN touched = 1 THEN 'was' ELSE 'were' END);
		END IF;
	END IF;
	IF incremental AND why IS NOT NULL THEN
		RAISE NOTICE 'upsell: tenant %: rebuilt in full, not incrementally: %', t, why;
	END IF;

	IF incremental AND why IS NULL THEN
		n_lines := prev.lines + new_n;
		n_sum := prev.checksum # new_sum;
		-- the count and limit the kept bundles were mined at
		-- (_build_bundle_model): theirs until they are mined again
		IF prev.settings ? 'bundles' THEN
			settings := settings OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('bundles', prev.settings -> 'bundles');
		END IF;
		-- what the builders note as changed for those after them (_note_changed)
		CREATE TEMP TABLE upsell_changed_products (model name NOT NULL, product_id bigint NOT NULL) ON COMMIT DROP;
	ELSE
		IF to_regclass('pg_temp.upsell_new_lines') IS NOT NULL THEN
			DROP TABLE pg_temp.upsell_new_lines;
		END IF;
		EXECUTE format($q$
			SELECT pg_catalog.count(*),
				   coalesce(pg_catalog.bit_xor(@extschema@._line_hash(l.order_key, l.product_id, l.quantity)), 0)
			FROM @extschema@.order_lines l
			WHERE l.tenant_id OPERATOR(pg_catalog.=) $1
			  AND @extschema@._xmin_visible(l.row_xmin, $2) IS NOT FALSE$q$)
		INTO n_lines, n_sum
		USING t, snap;
	END IF;
	-- a tenant without lines has no state (refresh then forgets a tenant
	-- whose every model is empty; its next incremental refresh is a full one)
	RETURN @extschema@._publish('source_state', t,
		format('SELECT %s::bigint AS tenant_id, %L::pg_snapshot AS snapshot, %s::bigint AS lines, %s::bigint AS checksum, '
			   '%L::text AS mode, %L::text AS reason, %s::bigint AS new_lines, %s::bigint AS new_orders, '
			   'pg_catalog.now() AS built_at, %L::jsonb AS settings, %L::jsonb AS registration '
			   'WHERE %3$s::bigint OPERATOR(pg_catalog.>) 0',
			   t, snap, n_lines, n_sum, CASE WHEN incremental AND why IS NULL THEN 'incremental' ELSE 'full' END,
			   why, coalesce(new_n::text, 'NULL'), coalesce(new_orders::text, 'NULL'), settings, registration));
END
$$;

SELECT @extschema@._define_model('source_state',
	$$tenant_id bigint PRIMARY KEY, snapshot pg_snapshot NOT NULL, lines bigint NOT NULL,
	  checksum bigint NOT NULL, mode text NOT NULL CHECK (mode IN ('full', 'incremental')),
	  reason text, new_lines bigint, new_orders bigint, built_at timestamptz NOT NULL,
	  settings jsonb NOT NULL, registration jsonb$$,
	NULL, 1, '@extschema@._build_source_state(bigint, boolean)',
	'per tenant: the snapshot its models were built at (its order lines are those whose transaction it sees), their count and checksum, whether the last refresh folded new lines in (incremental) or rebuilt (full, with the reason when incremental was asked for), the settings that shaped its models, and the registration its order lines were read by (a change of either rebuilds in full; not the names the registered relations had when registered, registered_as, kept to say when such a name is another relation''s now)');

-- The tenant's order lines as of its refresh snapshot, as a FROM item (alias
-- l) for the builders' queries.  Before source_state is built (or for a
-- source without row xmin) every current line.  With a snapshot, the lines
-- as of that one, written into the text: a side build's worker
-- (src/side_build.c) cannot see the source_state row its refresh has not
-- committed yet.
CREATE FUNCTION @extschema@._tenant_lines(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN format('(SELECT l.* FROM @extschema@.order_lines l '
			  'WHERE l.tenant_id OPERATOR(pg_catalog.=) %s AND @extschema@._xmin_visible(l.row_xmin, %s) '
			  'IS NOT FALSE)', tenant_id,
			  coalesce(quote_literal(snapshot) || '::pg_snapshot',
					   format('(SELECT s.snapshot FROM @extschema@.source_state s WHERE s.tenant_id OPERATOR(pg_catalog.=) %s)',
							  tenant_id)));

-- Whether the tenant's refresh folds new lines in (source_state decided).
-- (plpgsql: Citus 12.1 cannot run a SQL-standard body that reads a
-- distributed table when the function is not inlined)
CREATE FUNCTION @extschema@._incremental(tenant_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN coalesce((SELECT s.mode = 'incremental' FROM @extschema@.source_state s
					 WHERE s.tenant_id = _incremental.tenant_id), false);
END
$$;

-- Whether the tenant's refresh folds new lines in and found none: its lines
-- are the ones its models were built from (every line's checksum matched,
-- _build_source_state), and so are the models computed from the lines and
-- settings alone (the counts, the bundles, the product intervals, the
-- recent orders; the upgrade lists while no catalog fact changed; the
-- categories while no catalog fact nor merchant rule changed).  Those
-- builders keep their rows, and no side build computes them again: an
-- hourly refresh of a quiet shop, or of the many tenants of a database
-- that had no orders in the hour, costs the check of its lines, not a
-- rebuild (20 s at 10M lines).
CREATE FUNCTION @extschema@._lines_unchanged(tenant_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN coalesce((SELECT s.mode = 'incremental' AND s.new_lines = 0 FROM @extschema@.source_state s
					 WHERE s.tenant_id = _lines_unchanged.tenant_id), false);
END
$$;

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
-- substitute, not an upgrade of this one.
CREATE FUNCTION @extschema@._upgrade_on_ladder(same_group boolean, paths bigint, buyers bigint,
	popularity float8)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN same_group OR (paths >= 3 AND paths::float8 / greatest(buyers, 1) > popularity);

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
	scan_window int, max_customer_products int, stored text DEFAULT NULL)
RETURNS TABLE (product_id bigint, upgrade boolean, buyers bigint, candidate_ids bigint[],
			   same_group boolean[], paths bigint[], candidate_buyers bigint[], popularity float8[],
			   closeness float8[], score float8[])
AS 'MODULE_PATHNAME', 'upsell_upgrade_build_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._upgrade_build(bigint[], int[], int[], float8[], text, float8, int, int, int, text) IS
	'internal: the upgrade and downsell candidates of a whole catalog (arrays per product) from a query of its order lines (customer, order_key, ordered_at, product_id: a line without customer is its order''s, a guest''s, apart from every customer''s) in any order, grouped by customer in memory (within upsell.itemsets_memory_limit; beyond it the customers are split into parts, each read by its own pass): one row per product and direction, the candidates as arrays in rank order; with stored, a query of the lists stored so far (these columns, in product_id order), only the rows that differ from theirs or are new, and the key of each stored row that went, the rest NULL';

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
CREATE FUNCTION @extschema@._upgrade_lists_query(tenant_id bigint, snapshot pg_snapshot, stored text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	lim record := @extschema@._upgrade_limits();
BEGIN
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
		SELECT %s::bigint AS tenant_id, b.product_id, CASE WHEN b.upgrade THEN 'upgrade' ELSE 'downsell' END AS kind,
			   b.buyers, b.candidate_ids, b.same_group, b.paths, b.candidate_buyers,
			   b.popularity, b.closeness, b.score
		FROM products p
		CROSS JOIN LATERAL @extschema@._upgrade_build(p.ids, p.gs, p.cs, p.ps, %L, %s, %s, %s, %s, %L) b$q$,
		@extschema@._catalog_products(tenant_id), (stored IS NOT NULL)::text, tenant_id,
		'SELECT l.customer_id, l.order_key, l.ordered_at, l.product_id FROM '
			|| @extschema@._tenant_lines(tenant_id, snapshot) || ' l WHERE l.product_id IS NOT NULL AND l.sold',
		lim.max_ratio, lim.per_product, lim.scan_window, lim.max_customer_products, stored);
END
$$;

-- The query of a side build or a refresh: in an incremental refresh, only
-- the rows that differ from the stored ones (the previous refresh's, which
-- the side build's worker reads as committed and the refresh has not
-- replaced yet): a new or changed row as it is now, a row that went with
-- its key and NULL buyers.  The lists are computed whole (popularity within
-- a pool moves with any purchase) but few of them change: 752 of 199,720
-- rows after 1% new orders at 10M lines, compared where they are computed,
-- in the worker, by _upgrade_build as it emits them.
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
		'WHERE m.tenant_id OPERATOR(pg_catalog.=) %s ORDER BY m.product_id', tenant_id));
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
	-- computed by a side build (_define_side_build), or here
	rows := CASE WHEN @extschema@._side_ready('upgrade_list_model')
				 THEN 'SELECT * FROM @extschema@._side_rows(''upgrade_list_model'', NULL::@extschema@.upgrade_list_model)'
				 ELSE @extschema@._upgrade_query(tenant_id) END;
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

-- The volume tiers of a cart's lines, in one query (a line per element of
-- product_ids, n its position; quantities from 1, checked by the callers):
-- the list price, whether tiers apply (tiered: the product's own, else its
-- category's), the unit price the line pays at its quantity, and the next
-- tier that lowers it, if one does and the product may be offered more of
-- (in stock, not excluded).  No row for a product unknown or without a
-- price, nor, with tiered_only, for one without tiers.  quantity_offer is
-- this for one line; cart_offers and the cart value of threshold_gap and
-- gap_fillers read a whole cart with it (a quantity_offer call per line
-- made tiers most of a cart's time: a 5-line cart 1.2 ms instead of 0.2).
CREATE FUNCTION @extschema@._tier_offers(t bigint, product_ids bigint[], quantities int[],
	tiered_only boolean DEFAULT false)
RETURNS TABLE (n bigint, price numeric, tiered boolean, unit_price numeric, next_quantity int,
			   units_to_add int, new_unit_price numeric, total_saving numeric, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY
	WITH line AS (
		SELECT u.n, u.product_id, u.quantity, m.price, m.category, m.in_stock,
			   -- (IN of a list read once, hashed: an EXISTS per line
			   -- scanned the tiers per line)
			   u.product_id IN (SELECT v.product_id FROM @extschema@.volume_tiers v
								WHERE v.tenant_id = t AND v.product_id IS NOT NULL) AS own_tiers
		FROM unnest(product_ids, quantities) WITH ORDINALITY AS u(product_id, quantity, n)
		JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = u.product_id AND m.price > 0),
	-- the tiers that apply: the product's own, else its category's; each
	-- with its unit price, never above the list price (a tier's fixed price
	-- the list price has since fallen below made the unit dearer at that
	-- quantity); per line as arrays in tier order (a cart's lines have a
	-- few tiers each: a scan of the cart's tiers per line cost more)
	tier AS (
		SELECT x.n, array_agg(x.min_quantity ORDER BY x.min_quantity, x.unit_price) AS mins,
			   array_agg(x.unit_price ORDER BY x.min_quantity, x.unit_price) AS prices
		FROM (SELECT l.n, v.min_quantity,
					 least(coalesce(v.unit_price, round(l.price * (1 - v.percent_off / 100), 2)), l.price) AS unit_price
			  FROM line l
			  JOIN @extschema@.volume_tiers v ON v.tenant_id = t AND v.product_id = l.product_id
			  WHERE l.own_tiers
			  UNION ALL
			  SELECT l.n, v.min_quantity,
					 least(coalesce(v.unit_price, round(l.price * (1 - v.percent_off / 100), 2)), l.price)
			  FROM line l
			  JOIN @extschema@.volume_tiers v
				ON v.tenant_id = t AND v.product_id IS NULL AND v.category = l.category
			  WHERE NOT l.own_tiers) x
		GROUP BY x.n),
	cur AS (
		SELECT l.*, x.mins IS NOT NULL AS tiered, x.mins, x.prices,
			   -- more of a product one cannot ship, or may not offer, is no offer
			   CASE WHEN NOT l.in_stock THEN 'out of stock'
					WHEN @extschema@.is_excluded(t, l.product_id, l.category, '{}') THEN 'excluded by the merchant'
			   END AS blocked,
			   coalesce((SELECT u.p FROM unnest(x.mins, x.prices) AS u(q, p) WHERE u.q <= l.quantity
						 ORDER BY u.q DESC, u.p LIMIT 1), l.price) AS cur_price
		FROM line l
		LEFT JOIN tier x ON x.n = l.n
		-- (a cart's lines without tiers need no more: the list price)
		WHERE NOT tiered_only OR x.mins IS NOT NULL)
	SELECT c.n, c.price, c.tiered, c.cur_price, nx.q, nx.q - c.quantity, nx.p,
		   nx.q * (c.cur_price - nx.p),
		   CASE WHEN nx.q IS NOT NULL
				THEN format('add %s more to pay %s instead of %s each: %s saved on %s units',
							nx.q - c.quantity, round(nx.p, 2), round(c.cur_price, 2),
							round(nx.q * (c.cur_price - nx.p), 2), nx.q)
				ELSE coalesce(c.blocked, 'no further volume tier') END
	FROM cur c
	LEFT JOIN LATERAL (
		SELECT u.q, u.p
		FROM unnest(c.mins, c.prices) AS u(q, p)
		WHERE u.q > c.quantity AND u.p < c.cur_price AND c.blocked IS NULL
		ORDER BY u.q, u.p
		LIMIT 1) nx ON true
	ORDER BY c.n;
END
$$;

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

-- ===========================================================================
-- Thresholds: the gap to free shipping or the next reward, and the items
-- that close it
-- ===========================================================================

CREATE TABLE IF NOT EXISTS @extschema@.thresholds (
	threshold_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id		bigint NOT NULL DEFAULT 0,
	kind			text NOT NULL CHECK (kind IN ('free_shipping', 'discount', 'gift', 'other')),
	amount			numeric NOT NULL CHECK (amount > 0),
	currency		text CHECK (currency ~ '^[A-Z]{3}$'),
	reward			text,
	active_from		timestamptz,
	active_to		timestamptz,
	CHECK (active_to > active_from),
	-- NaN and Infinity are above every number; money is bounded
	CONSTRAINT thresholds_amount_finite CHECK (amount < 1e15)
);
CREATE INDEX IF NOT EXISTS thresholds_tenant_id_amount_idx ON @extschema@.thresholds (tenant_id, amount);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.thresholds', '');
-- the identity's position too, or the next insert after a restore collides
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.thresholds', 'threshold_id')::regclass, '');
COMMENT ON TABLE @extschema@.thresholds IS
	'spend thresholds merchants set ("free shipping over 50"): kind free_shipping/discount/gift/other, amount, ISO currency (NULL: the shop''s one), reward text, active from/to (NULL: open); tenant_id 0 without tenants';

-- ---- the gap ----------------------------------------------------------------

-- The thresholds of a tenant active at a time, in the cart's currency.
-- Thresholds without a currency apply to every cart.
CREATE FUNCTION @extschema@._active_thresholds(tenant_id bigint, at timestamptz, currency text)
RETURNS SETOF @extschema@.thresholds
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	currencies text[];
BEGIN
	IF at IS NULL THEN
		RAISE EXCEPTION 'at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF currency IS NOT NULL AND currency !~ '^[A-Z]{3}$' THEN
		RAISE EXCEPTION 'currency must be an ISO 4217 code of three capital letters, not "%"', currency
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT array_agg(DISTINCT t.currency ORDER BY t.currency) FILTER (WHERE t.currency IS NOT NULL)
	INTO currencies
	FROM @extschema@.thresholds t
	WHERE t.tenant_id = _active_thresholds.tenant_id
	  AND (t.active_from IS NULL OR t.active_from <= at)
	  AND (t.active_to IS NULL OR at < t.active_to);
	IF currency IS NULL AND cardinality(currencies) > 1 THEN
		RAISE EXCEPTION 'the active thresholds are in several currencies (%): which one is the cart in?',
			array_to_string(currencies, ', ')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass currency => ''...''.';
	END IF;
	-- a cart in a currency no threshold is set in has no threshold, as a
	-- shop without any: no rows (a market the merchant has not configured
	-- yet must not fail the cart page's widgets)
	RETURN QUERY
	SELECT t.* FROM @extschema@.thresholds t
	WHERE t.tenant_id = _active_thresholds.tenant_id
	  AND (t.active_from IS NULL OR t.active_from <= at)
	  AND (t.active_to IS NULL OR at < t.active_to)
	  AND (t.currency IS NULL OR _active_thresholds.currency IS NULL
		   OR t.currency = _active_thresholds.currency);
END
$$;

-- The value of a cart at the prices of the last refresh (product_model),
-- each line at its volume tier's unit price where the merchant set tiers
-- (_tier_offers; as cart_offers counts it: until 1.8 the list price, so a
-- cart paying 8.50 a unit was valued at 9.00 and told it reached a
-- threshold it did not).  NULL cart: empty.  quantities NULL: one of each.
-- NULL when a product is unknown as of the last refresh or has no price.
CREATE FUNCTION @extschema@._cart_total(tenant_id bigint, product_ids bigint[], quantities int[])
RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	total numeric;
	null_id boolean;
	bad_lines bigint;
	bad_id bigint;
	bad_quantity int;
	unknown_id bigint;
	unpriced_id bigint;
	tier_ids bigint[];			-- the products with tiers, their units in the
	tier_units int[];			-- cart, and the unit price their tiers give
	tier_prices numeric[];		-- all of them
BEGIN
	IF coalesce(array_ndims(product_ids), 1) > 1 OR coalesce(array_ndims(quantities), 1) > 1 THEN
		RAISE EXCEPTION 'the cart must be one-dimensional arrays of product ids and quantities'
			USING ERRCODE = 'array_subscript_error';
	END IF;
	PERFORM @extschema@._check_cart_length(product_ids);
	IF quantities IS NOT NULL
	   AND coalesce(cardinality(product_ids), 0) <> cardinality(quantities) THEN
		RAISE EXCEPTION 'the cart has % product ids but % quantities',
			coalesce(cardinality(product_ids), 0), cardinality(quantities)
			USING ERRCODE = 'array_subscript_error';
	END IF;
	-- (statements of their own, as every table read here: _tier_offers
	-- reads the tiers; lines it would refuse are refused below by name)
	IF EXISTS (SELECT FROM @extschema@.volume_tiers v WHERE v.tenant_id = _cart_total.tenant_id) THEN
		-- a product's tier is of all its units, on however many lines (as
		-- cart_offers merges them: Shopify's line properties)
		SELECT coalesce(array_agg(u.product_id ORDER BY u.product_id), '{}'),
			   coalesce(array_agg(u.units ORDER BY u.product_id), '{}')
		INTO tier_ids, tier_units
		FROM (SELECT c.product_id, least(sum(coalesce(c.quantity, 1)), 2147483647)::int AS units
			  FROM unnest(product_ids, quantities) AS c(product_id, quantity)
			  WHERE c.product_id IS NOT NULL AND (quantities IS NULL OR c.quantity >= 1)
			  GROUP BY c.product_id) u;
		tier_prices := ARRAY(SELECT o.unit_price
							 FROM unnest(tier_ids) WITH ORDINALITY AS x(id, n)
							 LEFT JOIN @extschema@._tier_offers(_cart_total.tenant_id, tier_ids, tier_units, true) o
								ON o.n = x.n
							 ORDER BY x.n);
	END IF;
	-- one pass: the total, and the first bad line if any
	SELECT coalesce(sum(coalesce(tier_prices[array_position(tier_ids, c.product_id)], m.price)
						* coalesce(c.quantity, 1)), 0),
		   bool_or(c.product_id IS NULL),
		   count(*) FILTER (WHERE quantities IS NOT NULL AND (c.quantity IS NULL OR c.quantity <= 0)),
		   (array_agg(c.product_id ORDER BY c.n) FILTER (
				WHERE quantities IS NOT NULL AND (c.quantity IS NULL OR c.quantity <= 0)))[1],
		   (array_agg(c.quantity ORDER BY c.n) FILTER (
				WHERE quantities IS NOT NULL AND (c.quantity IS NULL OR c.quantity <= 0)))[1],
		   (array_agg(c.product_id ORDER BY c.n) FILTER (WHERE c.product_id IS NOT NULL AND m.product_id IS NULL))[1],
		   (array_agg(c.product_id ORDER BY c.n) FILTER (WHERE m.product_id IS NOT NULL AND m.price IS NULL))[1]
	INTO total, null_id, bad_lines, bad_id, bad_quantity, unknown_id, unpriced_id
	FROM unnest(product_ids, quantities) WITH ORDINALITY AS c(product_id, quantity, n)
	LEFT JOIN @extschema@.product_model m
		ON m.tenant_id = _cart_total.tenant_id AND m.product_id = c.product_id;
	IF null_id THEN
		RAISE EXCEPTION 'the cart contains a NULL product id' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF bad_lines > 0 THEN
		RAISE EXCEPTION 'quantity of product % must be a positive integer, not %',
			bad_id, coalesce(bad_quantity::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- a product unknown as of the last refresh, or without a price: the
	-- value is unknown, and what needs it is left out (not an error: the
	-- cart is valid, the data incomplete)
	IF unknown_id IS NOT NULL OR unpriced_id IS NOT NULL THEN
		RETURN NULL;
	END IF;
	RETURN total;
END
$$;

-- The gap from a cart's value (a finite number from 0, any size: numeric
-- arithmetic) to every threshold of a tenant active at a time; both forms
-- of threshold_gap answer with it.  (A cart priced from the catalog may be
-- worth 1e15 or more, 2000 units at a plausible 5e11, beyond what the
-- cart_total argument accepts: it reaches every threshold, as any cart
-- worth more than a threshold does.)
CREATE FUNCTION @extschema@._threshold_gap(total numeric, t bigint, at timestamptz, currency text)
RETURNS TABLE (threshold_id bigint, kind text, amount numeric, reward text,
			   reached boolean, gap numeric, "next" boolean)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.threshold_id, a.kind, a.amount, a.reward,
		   a.amount <= total,
		   greatest(a.amount - total, 0),
		   a.amount > total
			 AND row_number() OVER (ORDER BY a.amount <= total, a.amount, a.threshold_id) = 1
	FROM @extschema@._active_thresholds(t, at, currency) a
	ORDER BY a.amount <= total, a.amount, a.threshold_id
$$;
COMMENT ON FUNCTION @extschema@._threshold_gap(numeric, bigint, timestamptz, text) IS
	'internal: threshold_gap''s answer for a known cart value of any size';

CREATE FUNCTION @extschema@.threshold_gap(cart_total numeric, tenant_id bigint DEFAULT NULL,
	at timestamptz DEFAULT pg_catalog.now(), currency text DEFAULT NULL)
RETURNS TABLE (threshold_id bigint, kind text, amount numeric, reward text,
			   reached boolean, gap numeric, "next" boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	IF cart_total IS NULL THEN
		RAISE EXCEPTION 'cart_total must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- NaN and Infinity are above every number
	IF NOT (cart_total >= 0 AND cart_total < 1e15) THEN
		RAISE EXCEPTION 'cart_total must be a number from 0 to 1e15, not %', cart_total
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT * FROM @extschema@._threshold_gap(cart_total, t, at, threshold_gap.currency);
END
$$;
COMMENT ON FUNCTION @extschema@.threshold_gap(numeric, bigint, timestamptz, text) IS
	'every threshold active at a time, with whether the cart total reaches it and the gap left; unreached ones first, the next one (flag next) at the top';

CREATE FUNCTION @extschema@.threshold_gap(product_ids bigint[], quantities int[],
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT pg_catalog.now(), currency text DEFAULT NULL)
RETURNS TABLE (threshold_id bigint, kind text, amount numeric, reward text,
			   reached boolean, gap numeric, "next" boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	total numeric;
BEGIN
	total := @extschema@._cart_total(t, product_ids, quantities);
	IF total IS NULL THEN
		-- the cart's value is unknown: the thresholds, whether reached unknown
		RETURN QUERY
		SELECT a.threshold_id, a.kind, a.amount, a.reward, NULL::boolean, NULL::numeric, false
		FROM @extschema@._active_thresholds(t, at, threshold_gap.currency) a
		ORDER BY a.amount, a.threshold_id;
		RETURN;
	END IF;
	RETURN QUERY
	SELECT * FROM @extschema@._threshold_gap(total, t, at, threshold_gap.currency);
END
$$;
COMMENT ON FUNCTION @extschema@.threshold_gap(bigint[], int[], bigint, timestamptz, text) IS
	'the same for a cart of products and quantities (quantities NULL: one each), priced from the catalog as of the last refresh; reached and gap NULL when a product is unknown or has no price';

-- ---- model: in-stock candidates sorted by price -----------------------------

-- The pairs of categories whose products substitute each other (pairs: the
-- names, flattened, {a1, b1, a2, b2, ...}), numbered by their position in
-- categories (from 1), flattened and sorted; a pair of a category not there
-- is left out.  Gap fillers never combine two such products.  (It reads no
-- table: on Citus a function that reads a distributed model inside the
-- publishing query cannot be planned on the tenant's worker.)
CREATE FUNCTION @extschema@._category_pair_numbers(categories text[], pairs text[])
RETURNS int[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(array_agg(v.n ORDER BY p.a, p.b, v.o), '{}')
	FROM (SELECT array_position(categories, pairs[2 * i - 1]) AS a, array_position(categories, pairs[2 * i]) AS b
		  FROM generate_series(1, coalesce(cardinality(pairs), 0) / 2) i) p,
		 LATERAL (VALUES (1, p.a), (2, p.b)) v(o, n)
	WHERE p.a IS NOT NULL AND p.b IS NOT NULL
$$;

-- One row per tenant: the in-stock products with a price, as parallel
-- arrays sorted by (price in cents, product id), a price below the cent
-- rounded down (the search takes an offer that adds at least the gap, in
-- cents rounded up, to close it; a 9.995 rounded to 10.00 was said to
-- close a gap of 10.00 it leaves open), with their category and
-- variant group numbers and the categories that substitute each other.
-- gap_fillers reads the row once per backend and refresh (keyed by
-- built_at), so a request never scans the catalog.
-- Incrementally kept as it is when no product's catalog facts changed
-- (product_model notes them, _changed_products) and the categories that
-- substitute each other are those it holds: the row holds nothing else,
-- and rebuilding it read all of product_model (0.4-0.7 s of CPU at 100,000
-- products).  When only the substitutes moved (new orders moved the
-- categories' pair counts: an hour of the 10M-line bench shop's orders
-- does), the row is published again with them, its products' arrays as
-- they were, not aggregated again from product_model.
CREATE FUNCTION @extschema@._build_threshold_candidates(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- the pairs of categories whose products substitute each other, by name
	substitute_pairs text[] := ARRAY(
		SELECT x.name FROM @extschema@.category_model s,
			   LATERAL (VALUES (1, s.category), (2, s.other_category)) x(o, name)
		WHERE s.tenant_id = _build_threshold_candidates.tenant_id AND s.substitutes
		ORDER BY s.category, s.other_category, x.o);
BEGIN
	IF incremental AND @extschema@._changed_products('product_model') = '{}' THEN
		IF NOT EXISTS (SELECT FROM @extschema@.threshold_candidates c
					   WHERE c.tenant_id = _build_threshold_candidates.tenant_id
						 AND c.substitutes IS DISTINCT FROM @extschema@._category_pair_numbers(c.categories, substitute_pairs)) THEN
			RETURN @extschema@._kept_rows('threshold_candidates', tenant_id);
		END IF;
		-- (incremental: not on Citus, where _publish could not read the row
		-- it replaces; a new built_at, which gap_fillers' caches are keyed by)
		RETURN @extschema@._publish('threshold_candidates', tenant_id, format($q$
			SELECT c.tenant_id, pg_catalog.clock_timestamp() AS built_at, c.products, c.categories,
				   c.category_of, c.prices, c.product_ids, c.group_of,
				   @extschema@._category_pair_numbers(c.categories, %L::text[]) AS substitutes
			FROM @extschema@.threshold_candidates c WHERE c.tenant_id OPERATOR(pg_catalog.=) $1$q$, substitute_pairs));
	END IF;
	RETURN @extschema@._publish('threshold_candidates', tenant_id, format($q$
		SELECT x.*, @extschema@._category_pair_numbers(x.categories, %L::text[]) AS substitutes
		FROM (SELECT $1 AS tenant_id, pg_catalog.clock_timestamp() AS built_at, count(*) AS products,
					 coalesce(array_agg(DISTINCT c.category COLLATE "C" ORDER BY c.category COLLATE "C")
							  FILTER (WHERE c.category IS NOT NULL), '{}') AS categories,
					 array_agg(c.category_no ORDER BY c.cents, c.product_id) AS category_of,
					 array_agg(c.cents ORDER BY c.cents, c.product_id) AS prices,
					 array_agg(c.product_id ORDER BY c.cents, c.product_id) AS product_ids,
					 array_agg(c.group_no ORDER BY c.cents, c.product_id) AS group_of
			  FROM (SELECT m.product_id, floor(m.price * 100)::bigint AS cents, m.category,
						   CASE WHEN m.category IS NULL THEN 0
								ELSE dense_rank() OVER (PARTITION BY m.category IS NULL
														ORDER BY m.category COLLATE "C")::int END AS category_no,
						   CASE WHEN m.variant_group IS NULL THEN 0
								ELSE dense_rank() OVER (PARTITION BY m.variant_group IS NULL
														ORDER BY m.variant_group COLLATE "C")::int END AS group_no
					FROM @extschema@.product_model m
					WHERE m.tenant_id = $1 AND m.in_stock AND floor(m.price * 100) > 0) c
			  HAVING count(*) > 0) x$q$, substitute_pairs));
END
$$;

SELECT @extschema@._define_model('threshold_candidates',
	$$tenant_id bigint PRIMARY KEY, built_at timestamptz NOT NULL, products int NOT NULL,
	  categories text[] NOT NULL, category_of int[] NOT NULL,
	  prices bigint[] NOT NULL, product_ids bigint[] NOT NULL,
	  group_of int[] NOT NULL, substitutes int[] NOT NULL$$,
	NULL, 50, '@extschema@._build_threshold_candidates(bigint, boolean)',
	'per tenant: in-stock products with a price as arrays sorted by (price in cents, product id), with their category and variant group numbers (0: none), and the pairs of categories whose products substitute each other (numbered as in categories, from 1; flattened); read by gap_fillers');

-- ---- items that close the gap ------------------------------------------------

CREATE FUNCTION @extschema@._gap_fill(tenant_id bigint, built_at timestamptz, gap numeric,
	cart bigint[], excluded_ids bigint[], excluded_categories text[],
	relevant_ids bigint[], relevance float8[], k int, max_items int, never_a bigint[], never_b bigint[])
RETURNS TABLE (product_ids bigint[], added numeric, relevance float8, score float8)
AS 'MODULE_PATHNAME', 'upsell_gap_fill'
LANGUAGE C STABLE PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION @extschema@._gap_fill(bigint, timestamptz, numeric, bigint[], bigint[], text[], bigint[], float8[], int, int, bigint[], bigint[]) IS
	'internal: the bounded search behind upsell.gap_fillers over the threshold_candidates model; never_a[i] and never_b[i] are never in one offer';

CREATE FUNCTION @extschema@.gap_fillers(cart bigint[], quantities int[] DEFAULT NULL,
	k int DEFAULT 5, max_items int DEFAULT 2, tenant_id bigint DEFAULT NULL,
	currency text DEFAULT NULL, at timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE ("rank" int, product_ids bigint[], added numeric, new_total numeric,
			   overshoot numeric, threshold numeric, relevance float8, score float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	total numeric;
	target numeric;
	version timestamptz;
	items bigint[];
	blocked_ids bigint[];		-- what the cart blocks (_cart_blocked)
	blocked_groups text[];
	blocked_categories text[];
	never_a bigint[];			-- the merchant's "never a next to b": not in one offer
	never_b bigint[];
	has_tiers boolean;			-- the tenant has volume tiers
BEGIN
	IF k IS NULL OR k < 0 OR k > 1000 THEN
		RAISE EXCEPTION 'k must be between 0 and 1000, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_items IS NULL OR max_items < 1 OR max_items > 3 THEN
		RAISE EXCEPTION 'max_items must be between 1 and 3, not %', coalesce(max_items::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	total := @extschema@._cart_total(t, cart, quantities);
	IF total IS NULL THEN
		RETURN;					-- the cart's value is unknown (see _cart_total)
	END IF;
	SELECT a.amount INTO target
	FROM @extschema@._active_thresholds(t, at, gap_fillers.currency) a
	WHERE a.amount > total
	ORDER BY a.amount, a.threshold_id
	LIMIT 1;
	IF NOT FOUND OR k = 0 THEN
		RETURN;					-- every threshold reached, or none set
	END IF;
	SELECT c.built_at INTO version
	FROM @extschema@.threshold_candidates c WHERE c.tenant_id = t;
	IF NOT FOUND THEN
		RETURN;					-- nothing in stock with a price
	END IF;
	items := coalesce(cart, '{}');
	-- what upsell.is_excluded(t, product, category, items) forbids and the
	-- cart's substitutes (upsell.is_substitute), as sets; _gap_fill takes
	-- the variant groups as their products (below)
	SELECT b.ids, b.variant_groups, b.categories INTO blocked_ids, blocked_groups, blocked_categories
	FROM @extschema@._cart_blocked(t, items, true) b;
	SELECT coalesce(array_agg(e.product_id), '{}'), coalesce(array_agg(e.with_product_id), '{}')
	INTO never_a, never_b
	FROM @extschema@.exclusions e
	WHERE e.tenant_id = t AND e.with_product_id IS NOT NULL;
	has_tiers := EXISTS (SELECT FROM @extschema@.volume_tiers v WHERE v.tenant_id = t);

	RETURN QUERY
	WITH evidence AS (
		-- noisy-OR of the pair scores of every cart item (relevance only)
		SELECT p.other_id,
			   1 - exp(sum(ln(1 - least(p.score, 0.999999))::numeric)::float8) AS score
		FROM @extschema@.pair_model p
		WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
		GROUP BY p.other_id),
	complements AS (
		-- relative to the cart's best complement that may be offered (in
		-- stock, not excluded nor a substitute of the cart), which gets
		-- relevance 1: an excluded best complement made the rest look weak
		SELECT e.other_id, e.score / nullif(max(e.score) OVER (), 0) AS score
		FROM evidence e
		JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = e.other_id
		WHERE m.in_stock AND e.other_id <> ALL (blocked_ids)
		  AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)),
	fill AS MATERIALIZED (
		SELECT f.*
		FROM (SELECT coalesce(array_agg(c.other_id ORDER BY c.other_id), '{}') AS ids,
					 coalesce(array_agg(c.score ORDER BY c.other_id), '{}') AS scores
			  FROM complements c) r,
			 LATERAL @extschema@._gap_fill(t, version, target - total, items,
				 blocked_ids || ARRAY(SELECT g.product_id FROM @extschema@.product_model g
									  WHERE g.tenant_id = t AND g.variant_group = ANY (blocked_groups)),
				 blocked_categories, r.ids, r.scores, k, max_items, never_a, never_b)
				 WITH ORDINALITY AS f(product_ids, added, relevance, score, ord)),
	-- the search adds list prices (in cents rounded down: its candidates
	-- are built at the refresh, tiers change at any time); a product with
	-- volume tiers costs its tier's price from 1 unit (a category's sale
	-- of 25% from 1): what that changes, per product of the offers, read
	-- (one _tier_offers) only when the tenant has tiers
	offered AS (
		SELECT coalesce(array_agg(DISTINCT u.id), '{}') AS ids
		FROM fill f, unnest(f.product_ids) AS u(id)
		WHERE has_tiers),
	tier_delta AS (
		SELECT o.ids[t1.n] AS product_id,
			   t1.unit_price - floor(t1.price * 100) * 0.01 AS delta
		FROM offered o,
			 LATERAL @extschema@._tier_offers(t, o.ids, array_fill(1, ARRAY[cardinality(o.ids)]), true) t1),
	priced AS (
		SELECT f.*, f.added + coalesce((SELECT sum(d.delta) FROM tier_delta d
										WHERE d.product_id = ANY (f.product_ids)), 0) AS paid
		FROM fill f)
	-- an offer the tiers' lower prices leave short of the threshold is none
	SELECT (row_number() OVER (ORDER BY p.ord))::int, p.product_ids, p.paid, total + p.paid,
		   total + p.paid - target, target, p.relevance, p.score
	FROM priced p
	WHERE total + p.paid >= target
	ORDER BY p.ord;
END
$$;
COMMENT ON FUNCTION @extschema@.gap_fillers(bigint[], int[], int, int, bigint, text, timestamptz) IS
	'the k best offers of 1 to max_items (<= 3) in-stock products, not in the cart nor excluded, that close the gap to the next threshold; score = gap / added * (1 + mean relevance to the cart) * 0.8^(items - 1)';

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

CREATE FUNCTION @extschema@._bundles_from_query(query text, max_size int, min_count int,
	per_product int)
	RETURNS TABLE (product_id bigint, bundle_rank int, items bigint[], size int, count bigint,
				   support float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_bundles_from_query'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._bundles_from_query(text, int, int, int) IS
	'per product of a query returning (order id, product id): its per_product best itemsets of 2 to max_size products in at least min_count orders with lift > 1, ranked by lift, then count, then items';

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
-- The query of a tenant's rows at a min_count (NULL: upsell.bundle_min_count),
-- from its lines as of its refresh snapshot, or as of the snapshot given (a
-- side build's worker, see _define_side_build).
CREATE FUNCTION @extschema@._bundle_query(tenant_id bigint, snapshot pg_snapshot, min_count int DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN format($q$
	SELECT %s::bigint AS tenant_id, b.product_id, b.bundle_rank, b.items, b.size, b.count, b.support, b.lift
	FROM @extschema@._bundles_from_query(%L, 3, %s, %s) b$q$,
	tenant_id,
	'SELECT l.order_key, l.product_id FROM ' || @extschema@._tenant_lines(tenant_id, snapshot)
		|| ' l WHERE l.sold',
	coalesce(min_count, current_setting('upsell.bundle_min_count', true)::int, 5),
	-- the settings exist once the module is loaded; their defaults until then
	coalesce(current_setting('upsell.bundles_per_product', true)::int, 10));

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
	with_bundles bigint[];
	state @extschema@.source_state;
	none_fit boolean := false;
BEGIN
	IF incremental AND @extschema@._lines_unchanged(tenant_id)
	   AND (mined IS NULL
			OR CASE WHEN (mined ->> 'min_count')::int = configured
					-- (0: no limit)
					THEN coalesce(nullif(limit_kb, 0), 2147483647)
						 >= coalesce(nullif((mined ->> 'memory_limit_kb')::int, 0), 2147483647)
					ELSE (mined ->> 'memory_limit_kb')::int = limit_kb END) THEN
		-- the same lines and settings (_model_settings), and the count
		-- mining would take: the same itemsets, and no product noted as
		-- changed
		RETURN @extschema@._kept_rows('bundle_model', tenant_id);
	END IF;
	SELECT coalesce(max(m.orders), 0) INTO most_orders
	FROM @extschema@.cooccurrence_model m WHERE m.tenant_id = _build_bundle_model.tenant_id;
	-- incremental: itemsets do not add up from partial counts; rebuild
	LOOP
		BEGIN
			-- computed by a side build (_define_side_build) at the first
			-- count, or here
			IF none_fit THEN
				rows := 'SELECT * FROM @extschema@.bundle_model WHERE false';
			ELSIF @extschema@._side_ready('bundle_model') THEN
				rows := 'SELECT * FROM @extschema@._side_rows(''bundle_model'', NULL::@extschema@.bundle_model)';
			ELSE
				rows := @extschema@._bundle_query(tenant_id, NULL, min_count);
			END IF;
			-- (incrementally, every product with bundles before or after is
			-- noted as changed: a bundle's support and lift move with the
			-- shop's order count)
			IF to_regclass('pg_temp.upsell_changed_products') IS NOT NULL THEN
				with_bundles := ARRAY(SELECT DISTINCT b.product_id FROM @extschema@.bundle_model b
									  WHERE b.tenant_id = _build_bundle_model.tenant_id);
			END IF;
			n := @extschema@._publish('bundle_model', tenant_id, rows);
			IF with_bundles IS NOT NULL THEN
				PERFORM @extschema@._note_changed('bundle_model', with_bundles || ARRAY(
					SELECT DISTINCT b.product_id FROM @extschema@.bundle_model b
					WHERE b.tenant_id = _build_bundle_model.tenant_id));
			END IF;
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

-- Built last before the product page, the first model that reads it (build
-- order 72, not this layer's 60): its side build starts only once the count
-- is done and is the last to finish, so the refresh builds everything that
-- does not need the bundles first (the histories, the upgrade lists, the
-- cart, the thresholds) while the worker mines.  Built at 60, an incremental
-- refresh at 10M lines waited 2-3 s for the worker while the histories,
-- which do not need the bundles, waited behind it.
SELECT @extschema@._define_model('bundle_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, bundle_rank int NOT NULL,
	  items bigint[] NOT NULL, size int NOT NULL, count bigint NOT NULL,
	  support float8 NOT NULL, lift float8 NOT NULL,
	  PRIMARY KEY (tenant_id, product_id, bundle_rank)$$,
	NULL, 72, '@extschema@._build_bundle_model(bigint, boolean)',
	'per product: its best bundles (2 or 3 products bought together in at least upsell.bundle_min_count orders, lift > 1) by lift, then order count',
	'product_id');
SELECT @extschema@._define_side_build('bundle_model', '@extschema@._bundle_query(bigint, pg_snapshot, int)',
	incremental => true);

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

-- ===========================================================================
-- Post-purchase: replenishment intervals, personal recommendations, the
-- email sequence, subscriptions and abandoned carts
-- ===========================================================================
--
-- refresh() stores two models, from one pass over the order lines:
--	purchase_history_model (35)		per customer, per product bought:
--		purchases, median gap, CV of gaps, quantity, spend
--	product_interval_model (36)		per product: customers, repeat buyers,
--		population interval, and whether the data says "consumable"
-- and the view purchase_interval_model gives the history per (customer,
-- product) with the predicted next purchase and its confidence.  Serving
-- functions read them by key.

-- ---- the interval aggregate ------------------------------------------------

CREATE TYPE @extschema@.purchase_intervals AS (
	purchases		bigint,
	first_at		timestamptz,
	last_at			timestamptz,
	median_gap_days	float8,
	mean_gap_days	float8,
	sd_gap_days		float8,
	cv				float8
);
COMMENT ON TYPE @extschema@.purchase_intervals IS
	'repeat-purchase statistics of one customer and product: distinct purchases, first and last, median, mean and sample standard deviation of the gaps in days, and their coefficient of variation (NULL below two gaps)';

CREATE FUNCTION @extschema@._iv_trans(internal, timestamptz) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_iv_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_iv_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'upsell_iv_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_iv_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_final(internal) RETURNS @extschema@.purchase_intervals
	AS 'MODULE_PATHNAME', 'upsell_iv_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE @extschema@.purchase_interval_agg(ordered_at timestamptz) (
	SFUNC = @extschema@._iv_trans,
	STYPE = internal,
	FINALFUNC = @extschema@._iv_final,
	COMBINEFUNC = @extschema@._iv_combine,
	SERIALFUNC = @extschema@._iv_serialize,
	DESERIALFUNC = @extschema@._iv_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.purchase_interval_agg(timestamptz) IS
	'repeat-purchase statistics over the purchase times of one customer and product (group by both); lines at the same instant are one purchase; NULL and infinite times are skipped';

CREATE FUNCTION @extschema@._decay(age_days float8, half_life_days float8) RETURNS float8
	AS 'MODULE_PATHNAME', 'upsell_decay' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._decay(float8, float8) IS
	'time-decay weight 0.5 ^ (age / half-life), 1 for a purchase not older than now';

-- ---- merchant override: consumable or durable --------------------------------

CREATE TABLE IF NOT EXISTS @extschema@.consumables (
	consumable_rule_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	product_id	bigint,
	category	text,
	consumable	boolean NOT NULL,
	note		text,
	CHECK ((product_id IS NULL) <> (category IS NULL)),
	UNIQUE (tenant_id, product_id),
	UNIQUE (tenant_id, category)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.consumables', '');
-- the identity's position too, or the next insert after a restore collides
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.consumables', 'consumable_rule_id')::regclass, '');
COMMENT ON TABLE @extschema@.consumables IS
	'merchant override of the consumable rule: a product (product_id) or a whole category (category) is consumable (true: offered again when due) or durable (false: never offered again to who owns it); a product rule beats a category rule, which beats the data';

-- Effective flag: product rule, else category rule, else the data's verdict.
-- A one-row table function, so that a query joining it LATERAL gets it
-- inlined: two index lookups per product, planned with the query (and
-- cached with a PL/pgSQL statement's plan).  PostgreSQL inlines no scalar
-- SQL function whose body has a subquery: the scalar _consumable it
-- replaces was planned anew by every statement that called it (0.2 ms a
-- request, most of the thank-you page's cost of a customer until 1.9), so
-- every query applying the rule, to one product or many, joins this.
CREATE FUNCTION @extschema@._consumable_rule(tenant_id bigint, product_id bigint, category text,
	from_data boolean)
RETURNS TABLE (consumable boolean)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
BEGIN ATOMIC
	SELECT coalesce(
		(SELECT c.consumable FROM @extschema@.consumables c
		 WHERE c.tenant_id = _consumable_rule.tenant_id AND c.product_id = _consumable_rule.product_id),
		(SELECT c.consumable FROM @extschema@.consumables c
		 WHERE c.tenant_id = _consumable_rule.tenant_id AND c.category = _consumable_rule.category),
		_consumable_rule.from_data, false);
END;
COMMENT ON FUNCTION @extschema@._consumable_rule(bigint, bigint, text, boolean) IS
	'internal: whether a product is consumable (one row): the merchant''s rule for the product, else for its category (upsell.consumables), else from_data (the data''s verdict), else false; join it LATERAL to have it inlined';

-- ---- models -------------------------------------------------------------------

-- Rule (product_interval_model.repeats_consumable): a product is
-- consumable by the data when at least 2 customers bought it in 2 or more
-- separate purchases, and its repeat share (repeat buyers / buyers) is at
-- least half the shop's overall repeat share (customer-product pairs bought
-- twice or more / all customer-product pairs), and at least 2%.  One repeat
-- buyer is anecdote (a gift, a replacement).  The yardstick is relative
-- because how often customers come back at all differs by shop and by the
-- span of the history: in a grocery history where the average item is
-- rebought by 8% of its buyers, 5% is a consumable; in a phone shop where
-- 2% is the norm, a phone rebought by 0.5% of its buyers is a durable.
--
-- Both models come from one pass over the order lines, customer by
-- customer (src/purchase_history.c): the lines sorted by customer (in
-- parallel workers where PostgreSQL can) feed a C function that keeps one
-- customer's lines at a time, emits the customer's row (one array element
-- per product bought) and folds the customer's statistics into per-product
-- counters, emitted after the tenant's last customer.  Per (customer,
-- product) the model is one array element, not a row: a shop's history
-- holds about as many (customer, product) pairs as order lines, and a row
-- each made the model a second copy of the order table.
CREATE FUNCTION @extschema@._purchase_history(query text, whole_days boolean)
RETURNS TABLE (tenant_id bigint, customer_id bigint, product_ids bigint[], purchases int[],
			   first_at timestamptz[], last_at timestamptz[], median_gap_days float8[], cv float8[],
			   quantity numeric[], spend numeric[], product_id bigint, customers bigint,
			   repeat_customers bigint, regular_customers bigint, population_interval_days float8,
			   repeats_consumable boolean, repeat_gaps float8[])
AS 'MODULE_PATHNAME', 'upsell_purchase_history'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._purchase_history(text, boolean) IS
	'internal: per customer the statistics of every product bought (gaps in whole days when whole_days: the order times are dates) (arrays sorted by product id, product_id NULL), then per product the repeat statistics with the repeat customers'' median gaps, sorted (customer_id NULL), from a query returning (tenant_id, customer_id, product_id, ordered_at, quantity, spend) ordered by tenant_id, customer_id';

CREATE FUNCTION @extschema@._history_sums(query text)
RETURNS TABLE (product_id bigint, customers bigint, repeaters bigint, regulars bigint, gaps float8[])
AS 'MODULE_PATHNAME', 'upsell_history_sums'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._history_sums(text) IS
	'internal: per product, what the rows of purchase_history_model that query returns (product_ids, purchases, median_gap_days, cv) contribute to its statistics, folded as the full build folds them: customers, repeaters (2+ purchases), regulars (3+ at a CV of the gaps under 0.5), and the repeaters'' median gaps, sorted';

CREATE FUNCTION @extschema@._gaps_update(base float8[], remove float8[], add float8[])
RETURNS float8[]
AS 'MODULE_PATHNAME', 'upsell_gaps_update'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._gaps_update(float8[], float8[], float8[]) IS
	'internal: a sorted multiset of repeat gaps, one element equal to each of remove taken out, add put in, sorted';

CREATE FUNCTION @extschema@._gaps_median(float8[])
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_gaps_median'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._gaps_median(float8[]) IS
	'internal: the median of repeat gaps as the full build takes it (the population interval); NULL when empty';

CREATE FUNCTION @extschema@._consumable_by_data(customers bigint, repeaters bigint,
	shop_pairs bigint, shop_repeat_pairs bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_consumable_by_data'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._consumable_by_data(bigint, bigint, bigint, bigint) IS
	'internal: the consumable rule of the data (2+ repeat customers, repeat share at least max(2%, half the shop''s)), as the full build applies it';

-- The order lines of the purchase histories, as _purchase_history reads them:
-- the tenant's lines as of its refresh snapshot (_tenant_lines), of some
-- customers only when filter says so.  A line sells as every model reads it
-- (order_lines.sold): a quantity above 0, or none, which is a sale of one.
--
-- Whether it sold is tested only on the lines filter keeps (a CASE, which
-- the planner leaves as written; without a filter it is the comparison
-- alone).  PostgreSQL orders a scan's conditions by their estimated cost,
-- and puts the test of thousands of customers last, so the cast of every
-- line's quantity to numeric and its comparison ran on all of them first:
-- at 10M lines and the 27,958 customers of 1% new orders, 82% of the lines
-- are not theirs, and the scan took 1.27-1.50 s of CPU instead of
-- 1.54-1.95 s (seven runs each, alternating, without parallel workers).
CREATE FUNCTION @extschema@._history_lines_query(tenant_id bigint, filter text DEFAULT 'true',
	snapshot pg_snapshot DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN 'SELECT l.tenant_id, l.customer_id, l.product_id, l.ordered_at, COALESCE(l.quantity, 1), '
	|| 'COALESCE(l.quantity, 1) OPERATOR(pg_catalog.*) l.unit_price FROM ' || @extschema@._tenant_lines(tenant_id, snapshot) || ' l '
	|| 'WHERE l.customer_id IS NOT NULL AND l.product_id IS NOT NULL AND l.ordered_at IS NOT NULL '
	|| 'AND CASE WHEN (' || filter || ') THEN l.sold ELSE false END '
	|| 'ORDER BY l.tenant_id, l.customer_id';

-- The customers whose purchase histories an incremental build of the
-- tenant recomputes: those with new lines that count (the new lines are
-- the tenant's refresh's pg_temp.upsell_new_lines, _build_source_state).
CREATE FUNCTION @extschema@._history_customers()
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN ARRAY(SELECT DISTINCT n.customer_id FROM pg_temp.upsell_new_lines n
				 WHERE n.customer_id IS NOT NULL AND n.product_id IS NOT NULL
				   AND n.ordered_at IS NOT NULL AND n.sold
				 ORDER BY 1);
END
$$;

-- The pass of purchase_history_model over a tenant's lines, as of its
-- refresh snapshot or the snapshot given (a side build, _define_side_build):
-- a row per customer, then a row per product.  All the tenant's customers,
-- or in an incremental build those with new lines (customers, or else
-- _history_customers), written into the text: a side build's worker cannot
-- read the new lines' temporary table.
--
-- When those customers are many (1 in 40 of the tenant's customers with a
-- history, or more), their lines are read by a scan of the tenant's lines,
-- never through an index the source may have on its customer column (the
-- comparison is written on customer_id + 0, which no index matches): the
-- planner prices the bitmap scan of such an index below the scan, but it
-- visits nearly every page of the table, a tuple at a time, after one index
-- descent per customer.  At 10M lines, the 27,958 customers of 1% new
-- orders (3.3% of 845,395; 1.9M of the lines) took the histories' worker
-- 5.3-6.1 s of CPU through the index and 4.2-5.3 s by the scan (six
-- refreshes each, alternating); at 14,000 customers the index was still
-- the faster (1.3 s against 2.0 s, the pass alone), and for a few
-- customers it is by far.
CREATE FUNCTION @extschema@._history_query(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL,
	customers bigint[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	histories bigint;
	customer text := 'l.customer_id';
	whole_days boolean;
BEGIN
	IF customers IS NULL AND @extschema@._incremental(tenant_id) THEN
		customers := @extschema@._history_customers();
	END IF;
	IF customers IS NOT NULL THEN
		SELECT b.row_count INTO histories FROM @extschema@.model_builds b
		WHERE b.tenant_id = _history_query.tenant_id AND b.model = 'purchase_history_model';
		IF cardinality(customers)::bigint * 40 >= histories THEN
			customer := '(l.customer_id OPERATOR(pg_catalog.+) 0::bigint)';
		END IF;
	END IF;
	-- order times of a date column are days of the shop: their gaps are
	-- whole days, whatever daylight saving time makes of the instants
	-- (until 1.8, March 1 to April 1 in Berlin was 30.958 days, and the
	-- customer was due a day early)
	SELECT coalesce(o.kind = 'columns' AND o.ordered_at IS NOT NULL
					AND @extschema@._column_type(o.relation, o.ordered_at, 'ordered_at') = 'date'::regtype, false)
	INTO whole_days
	FROM @extschema@.order_source o;
	RETURN 'SELECT * FROM @extschema@._purchase_history('
		|| quote_literal(@extschema@._history_lines_query(tenant_id,
			CASE WHEN customers IS NOT NULL
				 THEN format('%s OPERATOR(pg_catalog.=) ANY (%L::bigint[])', customer, customers)
				 ELSE 'true' END,
			snapshot)) || ', ' || coalesce(whole_days, false)::text || ')';
END
$$;

-- Fills purchase_history_model for one tenant: every customer, or in an
-- incremental refresh only the customers with new lines (their rows are
-- replaced; the others stay).  The same pass gives the product statistics
-- of those customers, kept with their previous statistics in temporary
-- tables for product_interval_model, built next.
CREATE FUNCTION @extschema@._build_purchase_history(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	inc boolean := incremental AND @extschema@._incremental(tenant_id);
	customers bigint[];
	n bigint;
BEGIN
	-- the carts view, if a DROP ... CASCADE took it
	IF to_regclass('@extschema@.carts') IS NULL AND EXISTS (SELECT FROM @extschema@.cart_source) THEN
		PERFORM @extschema@._sync_view('carts');
	END IF;
	IF to_regclass('pg_temp.upsell_history_pass') IS NOT NULL THEN
		DROP TABLE pg_temp.upsell_history_pass, pg_temp.upsell_history_old;
	END IF;
	CREATE TEMP TABLE upsell_history_pass ON COMMIT DROP AS
		SELECT * FROM @extschema@._purchase_history('', false) WITH NO DATA;
	-- read once, by this transaction: its arrays (a popular product's
	-- repeat gaps are thousands of elements) are not worth compressing,
	-- and rows up to a page stay in it, as in purchase_history_model (the
	-- two compressions took 1.3 s of an incremental refresh at 10M lines)
	ALTER TABLE pg_temp.upsell_history_pass SET (toast_tuple_target = 8160),
		ALTER COLUMN product_ids SET STORAGE EXTERNAL, ALTER COLUMN purchases SET STORAGE EXTERNAL,
		ALTER COLUMN first_at SET STORAGE EXTERNAL, ALTER COLUMN last_at SET STORAGE EXTERNAL,
		ALTER COLUMN median_gap_days SET STORAGE EXTERNAL, ALTER COLUMN cv SET STORAGE EXTERNAL,
		ALTER COLUMN quantity SET STORAGE EXTERNAL, ALTER COLUMN spend SET STORAGE EXTERNAL,
		ALTER COLUMN repeat_gaps SET STORAGE EXTERNAL;
	CREATE TEMP TABLE upsell_history_old (product_id bigint, customers bigint, repeaters bigint, regulars bigint,
		gaps float8[]) ON COMMIT DROP;
	IF inc THEN
		customers := @extschema@._history_customers();
		-- what those customers contributed to the product statistics so far,
		-- summed per product as their rows are read (_history_sums): their
		-- 1.3M (customer, product) elements at 10M lines, written to the
		-- temporary table and summed there, took 2.4 s, unnested and summed
		-- by a SQL aggregate 1.5 s
		INSERT INTO pg_temp.upsell_history_old
		SELECT * FROM @extschema@._history_sums(format(
			'SELECT h.product_ids, h.purchases, h.median_gap_days, h.cv '
			'FROM @extschema@.purchase_history_model h '
			'WHERE h.tenant_id OPERATOR(pg_catalog.=) %s AND h.customer_id OPERATOR(pg_catalog.=) ANY (%L::bigint[])',
			t, customers));
	END IF;
	-- the pass (of those customers only, incrementally): computed by a side
	-- build (_define_side_build), or here
	-- (EXECUTE: the temporary table and its row type are new at every build)
	IF @extschema@._side_ready('purchase_history_model') THEN
		EXECUTE 'INSERT INTO pg_temp.upsell_history_pass SELECT * FROM '
			'@extschema@._side_rows(''purchase_history_model'', NULL::pg_temp.upsell_history_pass)';
	ELSE
		-- (incrementally, the customers found above)
		EXECUTE 'INSERT INTO pg_temp.upsell_history_pass ' || @extschema@._history_query(t, NULL, customers);
	END IF;
	IF inc THEN
		RETURN @extschema@._publish('purchase_history_model', t,
			'SELECT tenant_id, customer_id, product_ids, purchases, first_at, last_at, median_gap_days, cv, '
			'quantity, spend FROM pg_temp.upsell_history_pass WHERE product_id IS NULL', customers);
	END IF;
	RETURN @extschema@._publish('purchase_history_model', t,
		'SELECT tenant_id, customer_id, product_ids, purchases, first_at, last_at, median_gap_days, cv, '
		'quantity, spend FROM pg_temp.upsell_history_pass WHERE product_id IS NULL');
END
$$;

-- Per product, from the pass of purchase_history_model: in full, its
-- product rows; incrementally, the tenant's previous rows with the changed
-- customers' old statistics taken out and their new ones put in (counts,
-- and the multiset of repeat gaps whose median is the population interval),
-- then the consumable rule again for every product (it compares with the
-- shop's repeat share, which every new purchase moves).
CREATE FUNCTION @extschema@._build_product_intervals(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF to_regclass('pg_temp.upsell_history_pass') IS NULL THEN
		RAISE EXCEPTION 'product_interval_model is built from the pass of purchase_history_model'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF incremental AND @extschema@._lines_unchanged(tenant_id) THEN
		-- no history changed: every product's statistics are the same
		RETURN @extschema@._kept_rows('product_interval_model', tenant_id);
	END IF;
	IF NOT (incremental AND @extschema@._incremental(tenant_id)) THEN
		RETURN @extschema@._publish('product_interval_model', tenant_id, $q$
			SELECT p.tenant_id, p.product_id, p.customers, p.repeat_customers,
				   p.repeat_customers::float8 OPERATOR(pg_catalog./) p.customers AS repeat_share, p.regular_customers,
				   p.population_interval_days, p.repeats_consumable, p.repeat_gaps
			FROM pg_temp.upsell_history_pass p WHERE p.customer_id IS NULL$q$);
	END IF;
	RETURN @extschema@._publish('product_interval_model', tenant_id, $q$
		WITH new AS (
			SELECT p.product_id, p.customers, p.repeat_customers AS repeaters,
				   p.regular_customers AS regulars, p.repeat_gaps AS gaps
			FROM pg_temp.upsell_history_pass p WHERE p.customer_id IS NULL),
		merged AS (
			SELECT coalesce(p.product_id, n.product_id) AS product_id,
				   coalesce(p.customers, 0) OPERATOR(pg_catalog.-) coalesce(o.customers, 0) OPERATOR(pg_catalog.+) coalesce(n.customers, 0) AS customers,
				   coalesce(p.repeat_customers, 0) OPERATOR(pg_catalog.-) coalesce(o.repeaters, 0) OPERATOR(pg_catalog.+) coalesce(n.repeaters, 0) AS repeaters,
				   coalesce(p.regular_customers, 0) OPERATOR(pg_catalog.-) coalesce(o.regulars, 0) OPERATOR(pg_catalog.+) coalesce(n.regulars, 0) AS regulars,
				   CASE WHEN n.product_id IS NULL AND o.product_id IS NULL THEN p.repeat_gaps
						ELSE @extschema@._gaps_update(p.repeat_gaps, o.gaps, n.gaps) END AS gaps,
				   n.product_id IS NULL AND o.product_id IS NULL AS unchanged,
				   p.population_interval_days
			FROM (SELECT * FROM @extschema@.product_interval_model m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1) p
			FULL JOIN new n ON n.product_id OPERATOR(pg_catalog.=) p.product_id
			LEFT JOIN pg_temp.upsell_history_old o ON o.product_id OPERATOR(pg_catalog.=) coalesce(p.product_id, n.product_id))
		SELECT $1 AS tenant_id, m.product_id, m.customers, m.repeaters AS repeat_customers,
			   m.repeaters::float8 OPERATOR(pg_catalog./) m.customers AS repeat_share, m.regulars AS regular_customers,
			   CASE WHEN m.unchanged THEN m.population_interval_days
					ELSE @extschema@._gaps_median(m.gaps) END AS population_interval_days,
			   @extschema@._consumable_by_data(m.customers, m.repeaters,
					(pg_catalog.sum(m.customers) OVER ())::bigint, (pg_catalog.sum(m.repeaters) OVER ())::bigint) AS repeats_consumable,
			   m.gaps AS repeat_gaps
		FROM merged m WHERE m.customers OPERATOR(pg_catalog.>) 0$q$);
END
$$;

-- Built at 35 and 36, before the upgrade lists (40), not at this layer's 70:
-- the histories' worker computes beside the upgrade lists' from the start
-- of a refresh and finishes first (at 10M lines 5.6 s of CPU against 7 s),
-- so the refresh builds the histories while the upgrade lists' worker is
-- still at work, where it used to wait for that worker first (1.3 s of an
-- incremental refresh at 10M lines).  Nothing built before them reads them.
SELECT @extschema@._define_model('purchase_history_model',
	$$tenant_id bigint NOT NULL, customer_id bigint NOT NULL, product_ids bigint[] NOT NULL,
	  purchases int[] NOT NULL, first_at timestamptz[] NOT NULL, last_at timestamptz[] NOT NULL,
	  median_gap_days float8[] NOT NULL, cv float8[] NOT NULL, quantity numeric[] NOT NULL,
	  spend numeric[] NOT NULL,
	  PRIMARY KEY (tenant_id, customer_id)$$,
	NULL, 35, '@extschema@._build_purchase_history(bigint, boolean)',
	'per customer, one array element per product bought (sorted by product id): distinct purchases, first and last, median gap and CV of gaps in days (NULL below 2 and 3 purchases), quantity and spend; read through the view purchase_interval_model',
	'customer_id');
SELECT @extschema@._define_side_build('purchase_history_model', '@extschema@._history_query(bigint, pg_snapshot, bigint[])', during_count => true,
	incremental => true);
-- As pair_list_model: a customer's row over 2 kB (3% of them at 10M lines)
-- is stored as it is, not compressed at every refresh, and one over a page
-- (a customer of a few hundred products) goes out of line uncompressed:
-- the customers an incremental refresh rewrites are those who buy most,
-- and compressing their rows took a second of it at 10M lines; a reader
-- reads one customer's row.  Readers look customers up by key, never by
-- an element, so ANALYZE takes no element statistics of the arrays (1.6 ->
-- 0.7 s at 10M lines).
ALTER TABLE @extschema@.purchase_history_model SET (toast_tuple_target = 8160),
	ALTER COLUMN product_ids SET STATISTICS 0, ALTER COLUMN purchases SET STATISTICS 0,
	ALTER COLUMN first_at SET STATISTICS 0, ALTER COLUMN last_at SET STATISTICS 0,
	ALTER COLUMN median_gap_days SET STATISTICS 0, ALTER COLUMN cv SET STATISTICS 0,
	ALTER COLUMN quantity SET STATISTICS 0, ALTER COLUMN spend SET STATISTICS 0,
	ALTER COLUMN product_ids SET STORAGE EXTERNAL, ALTER COLUMN purchases SET STORAGE EXTERNAL,
	ALTER COLUMN first_at SET STORAGE EXTERNAL, ALTER COLUMN last_at SET STORAGE EXTERNAL,
	ALTER COLUMN median_gap_days SET STORAGE EXTERNAL, ALTER COLUMN cv SET STORAGE EXTERNAL,
	ALTER COLUMN quantity SET STORAGE EXTERNAL, ALTER COLUMN spend SET STORAGE EXTERNAL;

SELECT @extschema@._define_model('product_interval_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, customers bigint NOT NULL,
	  repeat_customers bigint NOT NULL, repeat_share float8 NOT NULL, regular_customers bigint NOT NULL,
	  population_interval_days float8, repeats_consumable boolean NOT NULL,
	  repeat_gaps float8[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 36, '@extschema@._build_product_intervals(bigint, boolean)',
	'per product: customers, repeat customers (2+ purchases) and their share, regular customers (3+ purchases, CV < 0.5), population interval (median of the repeat customers'' median gaps), whether the data says consumable (2+ repeat customers and a repeat share of at least half the shop''s and 2%), and the repeat customers'' median gaps, sorted (what an incremental refresh updates the population interval from)');

-- The shop's time zone: the registration's (order_source.time_zone), in
-- which a date the caller gives (replenishment_due's as_of), the dates of
-- the reasons and the days until a next purchase are days, whoever asks
-- (until 1.8 the reader's: a customer due at 23:30 in New York was due that
-- day for a session in New York, not for one in UTC or Tokyo).  PL/pgSQL,
-- read when called: an update creates it before the ALTER that adds
-- time_zone to an older order_source.
CREATE FUNCTION @extschema@._shop_zone()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN coalesce((SELECT s.time_zone FROM @extschema@.order_source s LIMIT 1), current_setting('TimeZone'));
END
$$;

-- Per (customer, product), as the serving and analyst functions read it:
-- the history's array elements, with the interval that predicts the next
-- purchase (the customer's own median gap from 2 purchases, else the
-- product's population interval), the predicted date and its confidence.
-- A lookup by customer reads one row of purchase_history_model by key.
CREATE VIEW @extschema@.purchase_interval_model AS
WITH shop_zone AS MATERIALIZED (SELECT @extschema@._shop_zone() AS zone)
SELECT h.tenant_id, h.customer_id, u.product_id, u.purchases::bigint AS purchases, u.first_at,
	   u.last_at, u.median_gap_days, u.cv, u.quantity, u.spend,
	   pm.population_interval_days, i.interval_days,
	   -- (days of the shop's zone: the same instant whoever reads it, a
	   -- day later as the shop's clock counts days across a change of
	   -- daylight saving time; until 1.8 the reader's zone counted them)
	   @extschema@._local_time((u.last_at AT TIME ZONE z.zone) + i.interval_days * interval '1 day', z.zone)
		   AS next_due,
	   CASE WHEN u.purchases >= 2
			THEN (u.purchases - 1)::float8 / u.purchases
				 * CASE WHEN u.cv IS NULL THEN 0.5 ELSE 1 / (1 + u.cv) END
			WHEN pm.population_interval_days IS NOT NULL THEN 0.5 * pm.repeat_share
	   END AS confidence
FROM @extschema@.purchase_history_model h
CROSS JOIN LATERAL unnest(h.product_ids, h.purchases, h.first_at, h.last_at, h.median_gap_days,
						  h.cv, h.quantity, h.spend)
	AS u(product_id, purchases, first_at, last_at, median_gap_days, cv, quantity, spend)
LEFT JOIN @extschema@.product_interval_model pm
	ON pm.tenant_id = h.tenant_id AND pm.product_id = u.product_id
CROSS JOIN LATERAL (SELECT CASE WHEN u.purchases >= 2 THEN u.median_gap_days
								ELSE pm.population_interval_days END AS interval_days) i
-- (materialized: the zone looked up once a query, not twice a row)
CROSS JOIN shop_zone z;
COMMENT ON VIEW @extschema@.purchase_interval_model IS
	'per customer and product: distinct purchases, first and last, median gap and CV of gaps in days, quantity and spend, the interval used (own median from 2 purchases, else the product''s population interval), the predicted next purchase and its confidence';

-- Upgrades and cheaper alternatives look products up by variant group and
-- price: an index on product_model (defined in 30_cross_sell).
CREATE INDEX ON @extschema@.product_model (tenant_id, variant_group, price);

-- ---- replenishment and subscriptions --------------------------------------------

CREATE FUNCTION @extschema@.is_consumable(product_id bigint, tenant_id bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	result boolean;
BEGIN
	IF product_id IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT r.consumable INTO result
	FROM (SELECT) dummy
	LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = is_consumable.product_id
	LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = is_consumable.product_id
	CROSS JOIN LATERAL @extschema@._consumable_rule(t, is_consumable.product_id, m.category, pm.repeats_consumable) r;
	RETURN result;
END
$$;
COMMENT ON FUNCTION @extschema@.is_consumable(bigint, bigint) IS
	'whether a product is bought again (consumable) or owned (durable): the merchant''s rule in upsell.consumables for the product, else for its category, else the data (2+ repeat customers, repeat share at least half the shop''s and 2%)';

CREATE FUNCTION @extschema@.replenishment_due(as_of date DEFAULT current_date,
	within interval DEFAULT '7 days', tenant_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, product_id bigint, last_purchase timestamptz, purchases bigint,
			   interval_days float8, interval_source text, next_due timestamptz, confidence float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
	zone text := @extschema@._shop_zone();
	from_at timestamptz;
	to_at timestamptz;
BEGIN
	IF as_of IS NULL OR within IS NULL THEN
		RAISE EXCEPTION 'as_of and within must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF within < interval '0' THEN
		RAISE EXCEPTION 'within must not be negative, not %', within USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- the days of the shop's zone, their length on its clock
	from_at := @extschema@._local_time(as_of::timestamp, zone);
	to_at := @extschema@._local_time(as_of::timestamp + within, zone);
	RETURN QUERY
	SELECT r.customer_id, r.product_id, r.last_at, r.purchases, r.interval_days,
		   CASE WHEN r.purchases >= 2 THEN 'own' ELSE 'population' END,
		   r.next_due, r.confidence
	FROM @extschema@.purchase_interval_model r
	JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = r.product_id
	LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = r.product_id
	CROSS JOIN LATERAL @extschema@._consumable_rule(t, r.product_id, m.category, pm.repeats_consumable) c
	WHERE r.tenant_id = t
	  AND r.next_due >= from_at AND r.next_due < to_at
	  AND m.in_stock
	  AND c.consumable
	  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, r.product_id, m.category, ARRAY[r.product_id]))
	ORDER BY r.next_due, r.customer_id, r.product_id;
END
$$;
COMMENT ON FUNCTION @extschema@.replenishment_due(date, interval, bigint) IS
	'customers and consumable products whose predicted next purchase (last purchase + own median gap, or the product''s population interval after one purchase) falls in [as_of, as_of + within), with confidence; as of the last refresh';

CREATE FUNCTION @extschema@.subscription_candidates(min_orders int DEFAULT 3,
	max_dispersion float8 DEFAULT 0.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, product_id bigint, purchases bigint, interval_days float8,
			   cv float8, orders_per_year float8, expected_yearly_revenue numeric, last_purchase timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
BEGIN
	IF min_orders IS NULL OR max_dispersion IS NULL THEN
		RAISE EXCEPTION 'min_orders and max_dispersion must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF min_orders < 3 THEN
		RAISE EXCEPTION 'min_orders must be at least 3, not %', min_orders
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Regularity (the CV of the gaps) needs at least two gaps.';
	END IF;
	IF max_dispersion < 0 OR max_dispersion = 'NaN' THEN
		RAISE EXCEPTION 'max_dispersion must be a non-negative number, not %', max_dispersion
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT r.customer_id, r.product_id, r.purchases, r.median_gap_days, r.cv,
		   365.25 / r.median_gap_days,
		   round((365.25 / r.median_gap_days)::numeric
				 * coalesce(r.spend, r.quantity * m.price) / r.purchases, 2),
		   r.last_at
	FROM @extschema@.purchase_interval_model r
	JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = r.product_id
	WHERE r.tenant_id = t AND r.purchases >= min_orders AND r.cv < max_dispersion
	  AND m.in_stock
	  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, r.product_id, m.category, ARRAY[r.product_id]))
	ORDER BY r.cv, r.customer_id, r.product_id;
END
$$;
COMMENT ON FUNCTION @extschema@.subscription_candidates(int, float8, bigint) IS
	'customers who bought a product at least min_orders times at regular intervals (CV of gaps < max_dispersion): median interval, orders per year (365.25 / interval) and expected yearly revenue (orders per year x average spend per purchase)';

CREATE FUNCTION @extschema@.subscription_products(min_customers int DEFAULT 10, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (product_id bigint, customers bigint, repeat_customers bigint, repeat_share float8,
			   regular_customers bigint, population_interval_days float8, consumable boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	IF min_customers IS NULL OR min_customers < 1 THEN
		RAISE EXCEPTION 'min_customers must be a positive integer, not %', coalesce(min_customers::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT pm.product_id, pm.customers, pm.repeat_customers, pm.repeat_share, pm.regular_customers,
		   pm.population_interval_days, c.consumable
	FROM @extschema@.product_interval_model pm
	LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = pm.product_id
	CROSS JOIN LATERAL @extschema@._consumable_rule(t, pm.product_id, m.category, pm.repeats_consumable) c
	WHERE pm.tenant_id = t AND pm.customers >= min_customers
	ORDER BY pm.repeat_share DESC, pm.customers DESC, pm.product_id;
END
$$;
COMMENT ON FUNCTION @extschema@.subscription_products(int, bigint) IS
	'per product with at least min_customers buyers: the share of repeat buyers and of regular ones (3+ purchases, CV < 0.5), best subscribe-and-save prospects first';

-- ---- personal recommendations ---------------------------------------------------

-- One product a customer owns, as the serving functions read it.
CREATE TYPE @extschema@._owned_product AS (
	product_id bigint, purchases bigint, last_at timestamptz, median_gap_days float8, cv float8,
	interval_days float8, next_due timestamptz, confidence float8, category text,
	consumable boolean, blocked boolean);
COMMENT ON TYPE @extschema@._owned_product IS
	'internal: a product a customer bought (purchase_interval_model), its category, whether it is consumable, and whether it is blocked: never to be offered to the customer (a durable, or a consumable not due)';

-- What a customer owns, by product id, and the rule every serving function
-- applies to it (recommend_for_customer, post_purchase_offers and
-- abandoned_cart_offers, and the post-purchase view and offers_json
-- through post_purchase_offers): a durable is never offered again, a
-- consumable only when due by due_by (blocked false; restocks are among
-- those).  One read of the customer's histories, kept in a variable by the
-- caller for all its uses (until 1.9 the thank-you page read them three
-- times and planned _consumable at every request).  Called in a statement
-- of its own, as _cart_blocked is (see post_purchase_offers on Citus);
-- a NULL customer owns nothing.
CREATE FUNCTION @extschema@._customer_owned(t bigint, customer bigint, due_by timestamptz)
RETURNS @extschema@._owned_product[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF customer IS NULL THEN
		RETURN '{}';
	END IF;
	RETURN ARRAY(
		SELECT ROW(o.product_id, o.purchases, o.last_at, o.median_gap_days, o.cv, o.interval_days,
				   o.next_due, o.confidence, o.category, o.consumable,
				   NOT (o.consumable AND o.next_due IS NOT NULL AND o.next_due <= due_by))::@extschema@._owned_product
		FROM (SELECT o.*, m.category, r.consumable
			  FROM @extschema@.purchase_interval_model o
			  LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = o.product_id
			  LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = o.product_id
			  CROSS JOIN LATERAL @extschema@._consumable_rule(t, o.product_id, m.category, pm.repeats_consumable) r
			  WHERE o.tenant_id = t AND o.customer_id = customer
			  -- (not flattened: the rule and the due date computed once a
			  -- product, not once for each use above)
			  OFFSET 0) o
		ORDER BY o.product_id);
END
$$;
COMMENT ON FUNCTION @extschema@._customer_owned(bigint, bigint, timestamptz) IS
	'internal: the products a customer bought, by product id, each blocked when it may not be offered to the customer: a durable, or a consumable not due by due_by';

CREATE FUNCTION @extschema@.recommend_for_customer(customer_id bigint, k int DEFAULT 5,
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT now(),
	half_life interval DEFAULT '90 days', due_within interval DEFAULT '7 days')
RETURNS TABLE ("rank" int, product_id bigint, score float8, reason text, because bigint[])
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
	c bigint := customer_id;
	half_days float8;
	owned_products @extschema@._owned_product[];
	owned_ids bigint[];
	zone text := @extschema@._shop_zone();	-- of the dates in the reasons
BEGIN
	IF customer_id IS NULL OR at IS NULL OR half_life IS NULL OR due_within IS NULL THEN
		RAISE EXCEPTION 'customer_id, at, half_life and due_within must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._check_k(k);
	-- (from 17 on, infinite times take part in interval arithmetic instead of failing)
	IF NOT isfinite(at) THEN
		RAISE EXCEPTION 'at must be a finite time, not %', at USING ERRCODE = 'datetime_field_overflow';
	END IF;
	half_days := extract(epoch FROM half_life) / 86400;
	IF half_days <= 0 THEN
		RAISE EXCEPTION 'half_life must be positive, not %', half_life USING ERRCODE = 'invalid_parameter_value';
	END IF;
	owned_products := @extschema@._customer_owned(t, c, at + due_within);
	owned_ids := ARRAY(SELECT o.product_id FROM unnest(owned_products) o);

	RETURN QUERY
	WITH owned AS MATERIALIZED (
		SELECT o.*, @extschema@._decay(extract(epoch FROM at - o.last_at) / 86400, half_days) AS w
		FROM unnest(owned_products) o),
	-- owned products that may not be offered: durables, and consumables not due
	blocked AS (
		SELECT o.product_id FROM owned o WHERE o.blocked),
	-- restocks: due, but not lapsed (overdue by more than one interval: the
	-- customer buys it elsewhere or stopped; it may still come as a complement)
	due AS (
		SELECT o.* FROM owned o
		WHERE NOT o.blocked AND o.next_due >= at - o.interval_days * interval '1 day'),
	-- the evidence: the 100 most recent purchases (older ones weigh little
	-- after decay, and a wholesale buyer's thousands would cost a lot)
	recent AS (
		SELECT o.* FROM owned o ORDER BY o.last_at DESC, o.product_id LIMIT 100),
	evidence AS (
		-- noisy-OR of the complement scores, each weighted by the age of the purchase
		-- (each purchase's list of pair_list_model by primary key, its pairs
		-- by partner; the sum in numeric, exact in any order: _complements_of)
		SELECT p.other_id,
			   1 - exp(sum(ln(1 - least(o.w * p.score, 0.999999))::numeric)::float8) AS score,
			   array_agg(o.product_id ORDER BY o.w * p.score DESC, o.product_id) AS because
		FROM recent o
		JOIN @extschema@.pair_list_model l ON l.tenant_id = t AND l.product_id = o.product_id
		CROSS JOIN LATERAL (SELECT u.other_id, u.score FROM unnest(l.other_ids, l.score) u(other_id, score)
							ORDER BY u.other_id) p
		GROUP BY p.other_id),
	owned_categories AS (
		SELECT DISTINCT o.category FROM recent o WHERE o.category IS NOT NULL),
	totals AS (
		SELECT greatest(max(cm.orders), 1)::float8 AS orders
		FROM @extschema@.cooccurrence_model cm WHERE cm.tenant_id = t),
	candidates AS (
		SELECT 1 AS tier, e.other_id AS product_id, e.score, e.because,
			   'complements your purchases' AS reason
		FROM evidence e
		UNION ALL
		SELECT 1, d.product_id, d.confidence, ARRAY[d.product_id],
			   format('due for a restock: bought every %s days, last on %s',
					  round(d.interval_days::numeric, 1), to_char(d.last_at AT TIME ZONE zone, 'YYYY-MM-DD'))
		FROM due d
		UNION ALL
		SELECT 2, m.product_id, m.orders / totals.orders, NULL, 'popular in a category you buy from'
		FROM owned_categories oc, totals,
			 LATERAL (SELECT m.product_id, m.orders
					  FROM @extschema@.product_model m
					  WHERE m.tenant_id = t AND m.category = oc.category AND m.in_stock
						-- (excluded ones skipped before the cut: a shop excluding
						-- its bestsellers got fewer than k, none at all, until 1.8)
						AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, owned_ids))
					  ORDER BY m.orders DESC, m.product_id
					  LIMIT k::bigint * 3 + least(cardinality(owned_ids), 100)) m
		UNION ALL
		SELECT 3, m.product_id, m.orders / totals.orders, NULL, 'popular'
		FROM totals,
			 LATERAL (SELECT m.product_id, m.orders
					  FROM @extschema@.product_model m
					  WHERE m.tenant_id = t AND m.in_stock
						AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, owned_ids))
					  ORDER BY m.orders DESC, m.product_id
					  LIMIT k::bigint * 3 + cardinality(owned_ids)) m),
	best AS (
		SELECT DISTINCT ON (cd.product_id) cd.*
		FROM candidates cd
		-- LIMIT 1: one index lookup per candidate, never a hash of the catalog
		CROSS JOIN LATERAL (SELECT m.* FROM @extschema@.product_model m
							WHERE m.tenant_id = t AND m.product_id = cd.product_id LIMIT 1) m
		WHERE m.in_stock
		  AND cd.product_id NOT IN (SELECT b.product_id FROM blocked b)
		  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, owned_ids))
		ORDER BY cd.product_id, cd.tier, cd.score DESC)
	SELECT (row_number() OVER (ORDER BY b.tier, b.score DESC, b.product_id))::int,
		   b.product_id, b.score, b.reason, b.because
	FROM best b
	ORDER BY b.tier, b.score DESC, b.product_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.recommend_for_customer(bigint, int, bigint, timestamptz, interval, interval) IS
	'the k best products for a customer: complements of the 100 most recent purchases (pair model, each purchase weighted 0.5^(age / half_life), combined by noisy-OR) and owned consumables due within due_within (not overdue by more than their interval); durables already bought and consumables not yet due are never offered; then popular products of the customer''s categories, then bestsellers';

-- ---- the email sequence ----------------------------------------------------------

CREATE TYPE @extschema@._offer_candidate AS (
	kind text, product_id bigint, category text, tier int, score float8, refers_to bigint, reason text);
COMMENT ON TYPE @extschema@._offer_candidate IS 'internal: one candidate offer of the email sequence';

-- How a product is named in a reason: its title, else its id.
CREATE FUNCTION @extschema@._product_label(tenant_id bigint, product_id bigint)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT coalesce((SELECT m.title FROM @extschema@.product_model m
					 WHERE m.tenant_id = _product_label.tenant_id AND m.product_id = _product_label.product_id),
					'product ' || _product_label.product_id);
END;

CREATE FUNCTION @extschema@.email_sequence(customer_id bigint, steps int DEFAULT 5,
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT now())
RETURNS TABLE (step int, kind text, product_id bigint, category text, score float8,
			   refers_to bigint, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
	c bigint := customer_id;
	zone text := @extschema@._shop_zone();	-- of the dates in the reasons
	cands @extschema@._offer_candidate[];
	used boolean[];
	best int;
	prev_cat text;
	prev_kind text;
	i int;
	s int;
	ci @extschema@._offer_candidate;
	cb @extschema@._offer_candidate;
BEGIN
	IF customer_id IS NULL OR at IS NULL THEN
		RAISE EXCEPTION 'customer_id and at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF steps IS NULL OR steps < 0 OR steps > 100 THEN
		RAISE EXCEPTION 'steps must be between 0 and 100, not %', coalesce(steps::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- The history is read here, not taken from _customer_owned: the same
	-- answers, but this query over the unnest of its array was planned anew
	-- at every call (PL/pgSQL's custom plans, which see the array's length,
	-- look cheaper than a generic one): 1.7-2.3 ms a call on the demo shop
	-- against 1.0-1.2 ms.
	cands := ARRAY(
		WITH owned AS MATERIALIZED (
			SELECT o.*, m.category, m.variant_group, m.price, r.consumable
			FROM @extschema@.purchase_interval_model o
			LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = o.product_id
			LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = o.product_id
			CROSS JOIN LATERAL @extschema@._consumable_rule(t, o.product_id, m.category, pm.repeats_consumable) r
			WHERE o.tenant_id = t AND o.customer_id = c),
		owned_ids AS (SELECT coalesce(array_agg(o.product_id), '{}') AS ids FROM owned o),
		raw AS (
			-- complements and fallbacks: what recommend_for_customer would show
			SELECT CASE WHEN r.because IS NULL THEN 'popular' ELSE 'complement' END AS kind,
				   r.product_id, CASE WHEN r.because IS NULL THEN 2 ELSE 1 END AS tier,
				   r.score, r.because[1] AS refers_to,
				   CASE WHEN r.because IS NULL THEN r.reason END AS fallback_reason
			FROM @extschema@.recommend_for_customer(c, 4 * steps, t, at, due_within => interval '0') r
			WHERE r.reason NOT LIKE 'due for a restock%'
			UNION ALL
			-- restock: owned consumables due within the month the sequence runs,
			-- not lapsed (overdue by more than one interval)
			SELECT 'restock', o.product_id, 1, o.confidence, o.product_id, NULL
			FROM owned o
			WHERE o.consumable AND o.next_due <= at + interval '30 days'
			  AND o.next_due >= at - o.interval_days * interval '1 day'
			UNION ALL
			-- subscription: bought 3+ times at regular intervals
			SELECT 'subscription', o.product_id, 1, 1 - o.cv, o.product_id, NULL
			FROM owned o
			WHERE o.purchases >= 3 AND o.cv < 0.5
			UNION ALL
			-- upgrade: the next pricier product of the variant group of one of
			-- the 20 most recently bought durables
			SELECT 'upgrade', u.product_id, 1, 0.5, o.product_id, NULL
			FROM (SELECT o.* FROM owned o
				  WHERE NOT o.consumable AND o.variant_group IS NOT NULL AND o.price IS NOT NULL
				  ORDER BY o.last_at DESC, o.product_id LIMIT 20) o
			CROSS JOIN LATERAL (
				SELECT m.product_id FROM @extschema@.product_model m
				WHERE m.tenant_id = t AND m.variant_group = o.variant_group AND m.price > o.price
				  AND m.in_stock AND NOT EXISTS (SELECT FROM owned x WHERE x.product_id = m.product_id)
				ORDER BY m.price, m.orders DESC, m.product_id
				LIMIT 1) u)
		SELECT ROW(r.kind, r.product_id, m.category, r.tier, r.score, r.refers_to,
				   CASE r.kind
					WHEN 'complement' THEN format('goes with %s you bought on %s',
						@extschema@._product_label(t, r.refers_to), to_char(o.last_at AT TIME ZONE zone, 'YYYY-MM-DD'))
					WHEN 'restock' THEN format('%s you bought on %s is due around %s (every %s days)',
						@extschema@._product_label(t, r.refers_to), to_char(o.last_at AT TIME ZONE zone, 'YYYY-MM-DD'),
						to_char(o.next_due AT TIME ZONE zone, 'YYYY-MM-DD'), round(o.interval_days::numeric, 1))
					WHEN 'subscription' THEN format('you bought %s %s times, every %s days: subscribe and save',
						@extschema@._product_label(t, r.refers_to), o.purchases, round(o.median_gap_days::numeric, 1))
					WHEN 'upgrade' THEN format('the step up from %s you bought on %s',
						@extschema@._product_label(t, r.refers_to), to_char(o.last_at AT TIME ZONE zone, 'YYYY-MM-DD'))
					ELSE r.fallback_reason
				   END)::@extschema@._offer_candidate
		FROM raw r
		CROSS JOIN LATERAL (SELECT m.* FROM @extschema@.product_model m
							WHERE m.tenant_id = t AND m.product_id = r.product_id LIMIT 1) m
		LEFT JOIN owned o ON o.product_id = r.refers_to
		CROSS JOIN owned_ids oi
		WHERE m.in_stock AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, oi.ids))
		ORDER BY r.tier, r.score DESC, r.product_id, r.kind);
	used := array_fill(false, ARRAY[coalesce(cardinality(cands), 0) + 1]);

	-- greedy, one offer per product: prefer another category than the
	-- previous step's, then personal offers over popular fallbacks, then
	-- another kind than the previous step's, then the score
	FOR s IN 1 .. steps LOOP
		best := NULL;
		FOR i IN 1 .. coalesce(cardinality(cands), 0) LOOP
			CONTINUE WHEN used[i];
			ci := cands[i];
			IF best IS NULL THEN
				best := i;
				CONTINUE;
			END IF;
			cb := cands[best];
			IF (ci.category IS DISTINCT FROM prev_cat, -ci.tier, ci.kind IS DISTINCT FROM prev_kind, ci.score)
			   > (cb.category IS DISTINCT FROM prev_cat, -cb.tier, cb.kind IS DISTINCT FROM prev_kind, cb.score) THEN
				best := i;
			END IF;
		END LOOP;
		EXIT WHEN best IS NULL;
		cb := cands[best];
		FOR i IN 1 .. cardinality(cands) LOOP
			IF cands[i].product_id = cb.product_id THEN
				used[i] := true;
			END IF;
		END LOOP;
		step := s;
		kind := cb.kind;
		product_id := cb.product_id;
		category := cb.category;
		score := cb.score;
		refers_to := cb.refers_to;
		reason := cb.reason;
		RETURN NEXT;
		prev_cat := cb.category;
		prev_kind := cb.kind;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.email_sequence(bigint, int, bigint, timestamptz) IS
	'a post-purchase email sequence: one offer per step (complement, restock, subscription, upgrade; popular as fallback), never two of the same category in a row while another exists, each with a reason naming the purchase it refers to';

-- ---- carts: registration and abandoned-cart offers ------------------------------------

CREATE TABLE IF NOT EXISTS @extschema@.cart_source (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	relation	regclass NOT NULL,
	cart_id		name NOT NULL,
	customer_id	name,
	product_id	name NOT NULL,
	quantity	name,
	added_at	name NOT NULL,
	checked_out_at name,
	tenant_id	name,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- 1.6: the TimeZone of the session that registered the carts: an
	-- added_at or checked_out_at of type date or timestamp is a time of
	-- that zone, for every reader of upsell.carts (_local_time)
	time_zone	text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone')
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cart_source', '');
COMMENT ON TABLE @extschema@.cart_source IS
	'the registered cart lines: relation and the columns that mean cart, customer, product, quantity, added at, checked out at, tenant; time_zone: the TimeZone of the session that registered them (a date or timestamp added at or checked out at is a time of that zone, whoever reads it)';

-- The view upsell.carts is created by register_carts, not by this script
-- (like upsell.order_lines, see 10_registration.sql: as an extension member a
-- DROP ... CASCADE of the shop's table would drop the extension):
--   upsell.carts (tenant_id bigint, cart_id bigint, customer_id bigint,
--                 product_id bigint, quantity numeric, added_at timestamptz,
--                 checked_out_at timestamptz)
-- tenant_id 0 without a tenant column; cart_id upsell.order_key() of a
-- non-integer id; checked_out_at NULL while the cart is open.

CREATE FUNCTION @extschema@.register_carts(relation regclass, cart_id name, customer_id name,
	product_id name, quantity name, added_at name, checked_out_at name, tenant_id name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._register('carts', relation, jsonb_build_object(
		'cart_id', cart_id, 'customer_id', customer_id, 'product_id', product_id, 'quantity', quantity,
		'added_at', added_at, 'checked_out_at', checked_out_at, 'tenant_id', tenant_id),
		ARRAY['cart_id', cart_id, 'product_id', product_id, 'added_at', added_at]);
END
$$;
COMMENT ON FUNCTION @extschema@.register_carts(regclass, name, name, name, name, name, name, name) IS
	'records which table or view holds the cart lines (one row per cart and product) and which columns mean cart, customer, product, quantity, added at, checked out at (NULL while open), tenant';

CREATE FUNCTION @extschema@.abandoned_cart_offers(cart_id bigint, k int DEFAULT 3,
	idle_after interval DEFAULT '1 hour', at timestamptz DEFAULT now(),
	min_price_ratio numeric DEFAULT 0.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, kind text, product_id bigint, replaces bigint, price numeric,
			   score float8, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
	items bigint[];
	last_added timestamptz;
	checked_out boolean;
	blocked_groups text[];		-- the cart's substitutes (_cart_blocked)
	blocked_categories text[];
	customer bigint;
	owned bigint[];				-- what the customer may not be offered again
BEGIN
	IF cart_id IS NULL OR idle_after IS NULL OR at IS NULL OR min_price_ratio IS NULL THEN
		RAISE EXCEPTION 'cart_id, idle_after, at and min_price_ratio must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._check_k(k);
	IF idle_after < interval '0' THEN
		-- (a cart still being filled is no abandoned cart)
		RAISE EXCEPTION 'idle_after must not be negative, not %', idle_after
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF min_price_ratio < 0 OR min_price_ratio >= 1 OR min_price_ratio = 'NaN' THEN
		RAISE EXCEPTION 'min_price_ratio must be in [0, 1), not %', min_price_ratio
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.cart_source) THEN
		RAISE EXCEPTION 'no carts are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_carts() first.';
	END IF;
	IF to_regclass('@extschema@.carts') IS NULL THEN
		RAISE EXCEPTION 'the view upsell.carts is missing'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Register the carts again with upsell.register_carts(), or CALL upsell.refresh().';
	END IF;
	SELECT coalesce(array_agg(DISTINCT c.product_id) FILTER (WHERE c.product_id IS NOT NULL), '{}'),
		   max(c.added_at), bool_or(c.checked_out_at IS NOT NULL), max(c.customer_id)
	INTO items, last_added, checked_out, customer
	FROM @extschema@.carts c
	WHERE c.tenant_id = t AND c.cart_id = abandoned_cart_offers.cart_id;
	-- unknown, checked out, or still active: nothing to win back
	IF cardinality(items) = 0 OR checked_out OR last_added > at - idle_after THEN
		RETURN;
	END IF;
	-- a complement is never a substitute of a cart line (upsell.is_substitute),
	-- as in the cart; the cheaper alternatives are the downsell's own tactic
	SELECT b.variant_groups, b.categories INTO blocked_groups, blocked_categories
	FROM @extschema@._cart_blocked(t, items, false) b;
	-- nor a durable the customer owns, or a consumable not due (until 1.8
	-- the win-back mail offered them)
	owned := ARRAY(SELECT o.product_id FROM unnest(@extschema@._customer_owned(t, customer, at + interval '7 days')) o
				   WHERE o.blocked);

	RETURN QUERY
	WITH cart AS (
		SELECT m.product_id, m.price, m.category, m.variant_group
		FROM @extschema@.product_model m
		WHERE m.tenant_id = t AND m.product_id = ANY (items)),
	downsell AS (
		-- per cart item: cheaper, in stock, same variant group first, then same category
		SELECT d.product_id, c.product_id AS replaces, d.price,
			   (1 - d.price / c.price)::float8 AS score, d.n AS pick, c.price AS item_price,
			   format('cheaper alternative to %s (%s instead of %s)',
					  @extschema@._product_label(t, c.product_id), d.price, c.price) AS reason
		FROM cart c
		CROSS JOIN LATERAL (
			SELECT m.product_id, m.price,
				   row_number() OVER (ORDER BY (m.variant_group IS NOT DISTINCT FROM c.variant_group AND c.variant_group IS NOT NULL) DESC,
											   m.orders DESC, m.product_id) AS n
			FROM @extschema@.product_model m
			WHERE m.tenant_id = t AND m.in_stock AND m.product_id <> ALL (items)
			  AND m.product_id <> ALL (owned)
			  AND m.price < c.price AND m.price >= c.price * min_price_ratio
			  AND ((c.variant_group IS NOT NULL AND m.variant_group = c.variant_group)
				   OR (c.category IS NOT NULL AND m.category = c.category))
			  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))
			ORDER BY 3
			LIMIT 2) d
		WHERE c.price > 0),
	complement AS (
		SELECT p.other_id AS product_id,
			   1 - exp(sum(ln(1 - least(p.score, 0.999999))::numeric)::float8) AS score,
			   (array_agg(p.product_id ORDER BY p.score DESC, p.product_id))[1] AS replaces
		FROM @extschema@.pair_model p
		WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
		  AND p.other_id <> ALL (owned)
		GROUP BY p.other_id),
	offers AS (
		SELECT DISTINCT ON (o.product_id) o.*
		FROM (SELECT CASE WHEN d.pick = 1 THEN 1 ELSE 3 END AS tier, 'downsell' AS kind,
					 d.product_id, d.replaces, d.price, d.score, d.item_price AS ord, d.reason
			  FROM downsell d
			  UNION ALL
			  SELECT 2, 'complement', cp.product_id, cp.replaces, m.price, cp.score, cp.score::numeric,
					 format('goes with %s in the cart', @extschema@._product_label(t, cp.replaces))
			  FROM complement cp
			  JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = cp.product_id
			  WHERE m.in_stock AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))
				AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)
			  UNION ALL
			  -- the fallback, below all evidence: the mail fills its k slots
			  -- when the alternatives and complements run out (the customer
			  -- owns them, the catalog is small, the cart's products are new
			  -- to the models).  The k bestsellers
			  -- kept by every rule of the complements, priced (a mail shows
			  -- the price; no free sample), most popular first.  k of them
			  -- are enough: the ones already offered above count once, the
			  -- others fill the slots those left.  Score 1 / rank (the
			  -- bestseller 1), ordered by rank: ties by id, as the view's
			  SELECT 4, 'popular', f.product_id, NULL, f.price, 1 / f.popularity_rank::float8,
					 -f.popularity_rank::numeric,
					 'popular in the shop (a fallback: the cart''s alternatives and complements ran out)'
			  -- (the view numbers the ranks along the index (tenant_id, orders
			  -- DESC, product_id), in whose order they are read: no sort, the
			  -- scan stops at the k-th kept)
			  FROM (SELECT m.product_id, m.price, m.popularity_rank
					FROM @extschema@.product_popularity m
					WHERE m.tenant_id = t AND m.in_stock AND m.price > 0
					  AND m.product_id <> ALL (items) AND m.product_id <> ALL (owned)
					  AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)
					  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))
					ORDER BY m.orders DESC, m.product_id
					LIMIT k) f) o
		ORDER BY o.product_id, o.tier, o.ord DESC)
	SELECT (row_number() OVER (ORDER BY o.tier, o.ord DESC, o.score DESC, o.product_id))::int,
		   o.kind, o.product_id, o.replaces, o.price, o.score, o.reason
	FROM offers o
	ORDER BY o.tier, o.ord DESC, o.score DESC, o.product_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.abandoned_cart_offers(bigint, int, interval, timestamptz, numeric, bigint) IS
	'win-back offers for a cart idle for idle_after and not checked out: first the best cheaper alternative (same variant group, else category; price in [min_price_ratio x price, price)) of each cart item, dearest item first, then complements of the cart, then second-best alternatives, then as a fallback the bestsellers (in stock, priced): never a cart item, a substitute of one, or what the customer owns (durables, consumables not due within 7 days), nor what the merchant excludes';

-- ===========================================================================
-- Experiments: assignment, tracking, results with statistics; merchant metrics
-- ===========================================================================
--
-- An experiment splits units (customers) between variants in proportion to
-- their weights by a hash of experiment name and unit id (src/core/stats.c):
-- no state per unit, the same answer on every server and after restarts.
-- Each variant enables a set of offer types (the control enables none); the
-- funnel stages ask upsell.variant_offer_types() which ones to show.  The
-- shop records what it showed in upsell.exposures and what customers did
-- with offers in upsell.offer_events; conversions come from the registered
-- orders.  upsell.experiment_results() compares every variant with the
-- control; upsell.metrics() gives the shop's figures per period.

-- The offer types the tactics produce (the vocabulary of the funnel stages).
CREATE FUNCTION @extschema@._offer_types()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY['complement', 'upgrade', 'bundle', 'gap_filler', 'quantity_tier',
			 'subscription', 'restock', 'downsell', 'pinned']::text[];

CREATE TABLE IF NOT EXISTS @extschema@.experiments (
	experiment	text PRIMARY KEY CHECK (experiment <> ''),
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	control		text NOT NULL DEFAULT 'control',
	conversion_window interval NOT NULL DEFAULT '7 days' CHECK (conversion_window > '0'::interval),
	started_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	ended_at	timestamptz CHECK (ended_at > started_at),
	description	text
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.experiments', '');
COMMENT ON TABLE @extschema@.experiments IS
	'A/B tests: name, tenant, funnel stage (NULL = every stage), control variant, conversion window, start, end; variants in upsell.experiment_variants';

-- A weight as the share assign() and the results compute with: a weight
-- below float8's smallest normal number (1e-400, which the table's CHECK
-- lets in) is none
-- (until 1.8 it failed every request naming the experiment: "out of range
-- for type double precision").  Inlined: SQL-standard body.
CREATE FUNCTION @extschema@._weight_share(weight numeric)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN weight OPERATOR(pg_catalog.<) 2.2250738585072014e-308 THEN 0::pg_catalog.float8
			ELSE weight::pg_catalog.float8 END;

CREATE TABLE IF NOT EXISTS @extschema@.experiment_variants (
	experiment	text NOT NULL REFERENCES @extschema@.experiments ON UPDATE CASCADE ON DELETE CASCADE,
	variant		text NOT NULL CHECK (variant <> ''),
	weight		numeric NOT NULL CHECK (weight >= 0 AND weight < 'Infinity'),
	offer_types	text[] NOT NULL DEFAULT '{}'
		CHECK (offer_types <@ @extschema@._offer_types() AND pg_catalog.array_position(offer_types, NULL) IS NULL),
	description	text,
	PRIMARY KEY (experiment, variant),
	-- weights become float8 shares: bounded far below its range
	CONSTRAINT experiment_variants_weight_bounded CHECK (weight <= 1e12)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.experiment_variants', '');
COMMENT ON TABLE @extschema@.experiment_variants IS
	'variants of an experiment: weight (share of units = weight / sum of weights) and the offer types the variant shows (empty = no offers, the usual control)';

-- Whether the weights of an experiment split units: one of its variants has
-- a positive share (upsell.assign() gives every unit the control otherwise).
-- True for an experiment without variants: there is no split to break.
-- (A body in a string, not RETURN: it runs in the variants' trigger, on
-- Citus on the workers, where a SQL-standard body that reads a table
-- failed: syntax error at or near "RETURN".)
CREATE FUNCTION @extschema@._weights_usable(experiment text)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT NOT EXISTS (SELECT FROM @extschema@.experiment_variants v WHERE v.experiment = $1)
		OR EXISTS (SELECT FROM @extschema@.experiment_variants v
				   WHERE v.experiment = $1 AND @extschema@._weight_share(v.weight) > 0)
$$;

-- Variants whose weights are all 0 (or below float8's range) are reported
-- when they are defined, whichever way (INSERT, UPDATE, DELETE of the last
-- positive one; set_weights refuses them at once).  Checked at commit, on
-- the variants as they then are, so that a split may be built or rebalanced
-- one row at a time in a transaction.  A WARNING, not an error: a restore
-- (pg_restore, which COPYs the rows with triggers on) or ALTER EXTENSION
-- UPDATE must keep such rows (from before 1.9, or loaded with triggers
-- off), and an error at commit lost the variants of every experiment and
-- then their exposures; serving copes with them (every unit gets the
-- control).
CREATE FUNCTION @extschema@._check_weights()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	name text;
	-- the experiments this transaction was warned of: once each, not once
	-- per row changed (the check runs per row, on the rows as they are at
	-- commit, so a second check of one experiment would say the same)
	warned jsonb := coalesce(nullif(current_setting('upsell_weights.warned', true), ''), '[]')::jsonb;
BEGIN
	FOREACH name IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.experiment]
							WHEN 'DELETE' THEN ARRAY[OLD.experiment]
							ELSE ARRAY[OLD.experiment, NEW.experiment] END LOOP
		CONTINUE WHEN warned ? name;
		IF NOT @extschema@._weights_usable(name) THEN
			warned := warned || to_jsonb(name);
			PERFORM set_config('upsell_weights.warned', warned::text, true);
			RAISE WARNING 'the weights of experiment "%" are all zero: every unit gets the control until a variant gets a positive weight', name
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'A variant''s share of units is its weight over the sum of the weights; with no positive weight (or none above 2.2e-308) no unit can be split.',
					  HINT = 'Give at least one variant a positive weight, e.g. with upsell.set_weights().';
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER check_weights AFTER INSERT OR UPDATE OR DELETE ON @extschema@.experiment_variants
	DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW EXECUTE FUNCTION @extschema@._check_weights();

CREATE TABLE IF NOT EXISTS @extschema@.exposures (
	exposure_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	experiment	text NOT NULL,
	unit_id		text NOT NULL,
	variant		text NOT NULL,
	stage		text CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	offer		text,
	shown_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	FOREIGN KEY (experiment, variant) REFERENCES @extschema@.experiment_variants
		ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS exposures_experiment_unit_id_shown_at_idx ON @extschema@.exposures (experiment, unit_id, shown_at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.exposures', '');
-- the identity's position too, or rows added after a restore would collide
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.exposures', 'exposure_id')::regclass, '');
COMMENT ON TABLE @extschema@.exposures IS
	'one row each time a unit (customer) of an experiment was shown its variant at a stage; variant is filled in by upsell.assign() when omitted';

CREATE TABLE IF NOT EXISTS @extschema@.offer_events (
	event_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	unit_id		text NOT NULL,
	offer_type	text NOT NULL CHECK (offer_type = ANY (@extschema@._offer_types())),
	product_id	bigint NOT NULL,
	event		text NOT NULL CHECK (event IN ('shown', 'click', 'add')),
	stage		text CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	experiment	text REFERENCES @extschema@.experiments ON UPDATE CASCADE ON DELETE SET NULL,
	occurred_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX IF NOT EXISTS offer_events_tenant_id_unit_id_occurred_at_idx ON @extschema@.offer_events (tenant_id, unit_id, occurred_at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.offer_events', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.offer_events', 'event_id')::regclass, '');
COMMENT ON TABLE @extschema@.offer_events IS
	'what a unit (customer) did with one offered product: shown, click, add (to cart); adds followed by an order of the product are attributed to the offer type';

-- ---------------------------------------------------------------------------
-- Assignment
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.unit_hash(experiment text, unit_id text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_unit_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.unit_hash(text, text) IS
	'the 64-bit hash assignment uses: FNV-1a over the bytes of experiment, a zero byte and unit_id, then the MurmurHash3 finalizer; the same on every platform';

-- Whether an experiment is on: started and not ended.
CREATE FUNCTION @extschema@._experiment_on(e @extschema@.experiments)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN e.started_at <= pg_catalog.now() AND (e.ended_at IS NULL OR e.ended_at > pg_catalog.now());

-- The experiment of that name; with tenant_id, only one of that tenant's
-- (a request of one shop never runs, nor feeds, another shop's test: the
-- other's is as unknown to it as a name never created).
CREATE FUNCTION @extschema@._experiment(experiment text, tenant_id bigint DEFAULT NULL)
RETURNS @extschema@.experiments
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e @extschema@.experiments;
BEGIN
	IF experiment IS NULL THEN
		RAISE EXCEPTION 'experiment must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- a session bound to a tenant reaches that tenant's experiments only
	tenant_id := @extschema@._bound_tenant(tenant_id);
	SELECT * INTO e FROM @extschema@.experiments x WHERE x.experiment = _experiment.experiment;
	IF NOT FOUND OR e.tenant_id <> _experiment.tenant_id THEN
		RAISE EXCEPTION 'experiment "%" does not exist%', experiment,
			CASE WHEN _experiment.tenant_id IS NOT NULL THEN format(' for tenant %s', _experiment.tenant_id) ELSE '' END
			USING ERRCODE = 'undefined_object',
				  HINT = 'Experiments are rows of upsell.experiments, each of one tenant.';
	END IF;
	RETURN e;
END
$$;

CREATE FUNCTION @extschema@.assign(experiment text, unit_id text)
RETURNS text
AS 'MODULE_PATHNAME', 'upsell_assign'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.assign(text, text) IS
	'the variant of a unit (customer) in an experiment: a stable hash of experiment and unit, split in proportion to the variant weights; no randomness, no state; the control (else the first variant by name) when no weight is positive; NULL (no variant) when the experiment has no variants';

-- The offer types the unit's variant shows; NULL means "no experiment: all".
CREATE FUNCTION @extschema@.variant_offer_types(experiment text, unit_id text, stage text DEFAULT NULL,
	tenant_id bigint DEFAULT NULL)
RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e @extschema@.experiments;
	result text[];
BEGIN
	IF experiment IS NULL THEN
		RETURN NULL;
	END IF;
	e := @extschema@._experiment(experiment, tenant_id);
	IF unit_id IS NULL OR NOT @extschema@._experiment_on(e)
	   OR (e.stage IS NOT NULL AND variant_offer_types.stage IS NOT NULL AND e.stage <> variant_offer_types.stage) THEN
		RETURN NULL;
	END IF;
	SELECT v.offer_types INTO result
	FROM @extschema@.experiment_variants v
	WHERE v.experiment = e.experiment
	  AND v.variant = @extschema@.assign(e.experiment, unit_id);
	RETURN result;
END
$$;
COMMENT ON FUNCTION @extschema@.variant_offer_types(text, text, text, bigint) IS
	'offer types the unit''s variant shows ({} = none, the control); NULL (= show everything) when experiment or unit is NULL, the experiment is not running, has no variants, or is for another stage; with tenant_id (as the funnel stages ask) an experiment of another tenant is an error, as an unknown one';

-- Variants and weights of a running experiment with exposures are frozen:
-- moving units between variants mid-test biases every comparison.  A change
-- holds the split lock (_lock_splits), so it has waited for the exposures
-- being recorded, which hold it shared (_exposure_variant), and counts them
-- committed (until 1.9 a change made while the first exposure was not yet
-- committed went through, and that exposure kept the split it had been
-- assigned by).
CREATE FUNCTION @extschema@._guard_variants()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	name text;
	e @extschema@.experiments;
	n bigint;
BEGIN
	IF TG_OP = 'UPDATE' AND NEW.experiment = OLD.experiment AND NEW.variant = OLD.variant
	   AND NEW.weight = OLD.weight THEN
		RETURN NEW;				-- offer types and description may change
	END IF;
	IF coalesce(current_setting('upsell.force_weight_change', true), 'off')::boolean THEN
		RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	FOREACH name IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.experiment]
							WHEN 'DELETE' THEN ARRAY[OLD.experiment]
							ELSE ARRAY[OLD.experiment, NEW.experiment] END LOOP
		SELECT * INTO e FROM @extschema@.experiments x WHERE x.experiment = name;
		CONTINUE WHEN NOT FOUND OR NOT @extschema@._experiment_on(e);
		SELECT count(*) INTO n FROM @extschema@.exposures x WHERE x.experiment = name;
		IF n > 0 THEN
			RAISE EXCEPTION 'cannot change the variants or weights of running experiment "%"', name
				USING ERRCODE = 'object_in_use',
					  DETAIL = format('It started at %s and has %s exposures; changing the split now moves units between variants and biases the results.', e.started_at, n),
					  HINT = 'End it (set ended_at) and start a new experiment, or force it with upsell.set_weights(..., force => true) or SET LOCAL upsell.force_weight_change = on.';
		END IF;
	END LOOP;
	RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER guard_variants BEFORE INSERT OR UPDATE OR DELETE ON @extschema@.experiment_variants
	FOR EACH ROW EXECUTE FUNCTION @extschema@._guard_variants();

-- The split lock, taken exclusively by every statement that may change a
-- split, before the statement locks any row: a DELETE or UPDATE locks its
-- row before the row trigger runs, so a lock taken there
-- deadlocked with a page that had recorded an exposure (holding the lock
-- shared) and recorded another of that row's variant (its foreign key
-- waits for the row lock).  A statement does not know its experiments
-- beforehand, so one key for all of them: a change waits for every
-- exposure being recorded, and exposures wait for a change until it
-- commits; changes of variants are rare admin actions.  A forced change
-- does not take it (it accepts to move units anyway).
CREATE FUNCTION @extschema@._lock_splits()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT coalesce(current_setting('upsell.force_weight_change', true), 'off')::boolean THEN
		PERFORM pg_advisory_xact_lock(@extschema@._refresh_lock_class('split'), 0);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER lock_splits BEFORE INSERT OR UPDATE OF experiment, variant, weight OR DELETE
	ON @extschema@.experiment_variants
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._lock_splits();
-- renaming or deleting an experiment locks its row, then cascades to its
-- variants: a page that recorded an exposure and then an offer event of
-- the experiment (whose foreign key waits for that row) would deadlock too
CREATE TRIGGER lock_splits BEFORE UPDATE OF experiment OR DELETE ON @extschema@.experiments
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._lock_splits();

-- The name is half of every unit's hash (upsell.assign): renaming a running
-- experiment with exposures moves about half its units to another variant,
-- as a change of weights would.  It waits until the experiment has ended,
-- or the same force.  (Deleting one stays a deliberate act: it takes its
-- variants and exposures along.)
CREATE FUNCTION @extschema@._guard_experiment_name()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF NEW.experiment = OLD.experiment
	   OR coalesce(current_setting('upsell.force_weight_change', true), 'off')::boolean
	   OR NOT @extschema@._experiment_on(OLD) THEN
		RETURN NEW;
	END IF;
	SELECT count(*) INTO n FROM @extschema@.exposures x WHERE x.experiment = OLD.experiment;
	IF n > 0 THEN
		RAISE EXCEPTION 'cannot rename running experiment "%"', OLD.experiment
			USING ERRCODE = 'object_in_use',
				  DETAIL = format('It started at %s and has %s exposures; its name is part of every unit''s assignment, so renaming it moves units between variants and biases the results.',
								  OLD.started_at, n),
				  HINT = 'End it (set ended_at) and start a new experiment, or force it with SET LOCAL upsell.force_weight_change = on.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER guard_experiment_name BEFORE UPDATE OF experiment ON @extschema@.experiments
	FOR EACH ROW EXECUTE FUNCTION @extschema@._guard_experiment_name();

CREATE FUNCTION @extschema@.set_weights(experiment text, weights jsonb, force boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	kv record;
	w numeric;
	was text := coalesce(current_setting('upsell.force_weight_change', true), 'off');
BEGIN
	IF weights IS NULL OR force IS NULL THEN
		RAISE EXCEPTION 'weights and force must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._experiment(experiment);
	IF jsonb_typeof(weights) <> 'object' THEN
		RAISE EXCEPTION 'weights must be a JSON object of variant names and weights, not %', weights
			USING ERRCODE = 'invalid_parameter_value', HINT = 'For example ''{"control": 50, "fbt": 50}''.';
	END IF;
	IF force THEN
		PERFORM set_config('upsell.force_weight_change', 'on', true);
	END IF;
	FOR kv IN SELECT * FROM jsonb_each(weights) LOOP
		IF jsonb_typeof(kv.value) <> 'number' THEN
			RAISE EXCEPTION 'weight of variant "%" must be a number, not %', kv.key, kv.value
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		w := kv.value::numeric;
		IF w < 0 THEN
			RAISE EXCEPTION 'weight of variant "%" must not be negative, not %', kv.key, w
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		UPDATE @extschema@.experiment_variants v SET weight = w
		WHERE v.experiment = set_weights.experiment AND v.variant = kv.key;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'experiment "%" has no variant "%"', experiment, kv.key
				USING ERRCODE = 'undefined_object';
		END IF;
	END LOOP;
	-- (refused here; the check_weights trigger only warns at commit)
	IF NOT @extschema@._weights_usable(experiment) THEN
		RAISE EXCEPTION 'the weights of experiment "%" would all be zero', experiment
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM set_config('upsell.force_weight_change', was, true);
END
$$;
COMMENT ON FUNCTION @extschema@.set_weights(text, jsonb, boolean) IS
	'sets variant weights from a JSON object {"variant": weight}; refused for a running experiment with exposures unless force is true';

-- Exposures get the unit's variant when the shop does not say.  A variant
-- given explicitly is kept as recorded (the foreign key makes sure it is one
-- of the experiment's): a shop may assign with its own tool, and a restore
-- from pg_dump must reload rows recorded before a forced weight change.
-- The split lock (_lock_splits) taken shared, until the transaction ends,
-- by whatever a page records of an experiment.  The split is frozen from
-- the first exposure (_guard_variants): held until the exposure commits,
-- the lock makes a change of a split wait and then see it, and a change
-- under way makes the exposure wait and then assign by the new split.
-- Shared: pages do not wait for one another.  An advisory lock, not the
-- experiment's row FOR SHARE, which would need UPDATE on
-- upsell.experiments (upsell_reader records exposures).  A page takes it
-- before it locks any row of experiments or variants (the foreign keys of
-- offer_events and exposures do): a change takes the lock and then those
-- rows, so a page holding a row and then asking for the lock behind a
-- waiting change deadlocked with it (40P01, until 1.9).  Fully qualified
-- and without SET, so that it is inlined: a SET made each offer event
-- inserted cost 35 us instead of 8.  (A body in a string, as
-- _weights_usable's: it runs in the exposures' trigger, on Citus on the
-- workers.)
CREATE FUNCTION @extschema@._share_split_lock()
RETURNS void
LANGUAGE sql VOLATILE
AS $$
	SELECT pg_catalog.pg_advisory_xact_lock_shared(@extschema@._refresh_lock_class('split'), 0)
$$;

CREATE FUNCTION @extschema@._exposure_variant()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._share_split_lock();
	IF NEW.variant IS NULL THEN
		NEW.variant := @extschema@.assign(NEW.experiment, NEW.unit_id);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER exposure_variant BEFORE INSERT ON @extschema@.exposures
	FOR EACH ROW EXECUTE FUNCTION @extschema@._exposure_variant();

-- An offer event of an experiment: its foreign key locks the experiment's
-- row (FOR KEY SHARE, after the row triggers), so the split lock first
-- (_share_split_lock), for events inserted directly as for record_event's.
CREATE FUNCTION @extschema@._offer_event_split_lock()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._share_split_lock();
	RETURN NEW;
END
$$;
CREATE TRIGGER offer_event_split_lock BEFORE INSERT ON @extschema@.offer_events
	FOR EACH ROW WHEN (NEW.experiment IS NOT NULL) EXECUTE FUNCTION @extschema@._offer_event_split_lock();

CREATE FUNCTION @extschema@.record_exposure(experiment text, unit_id text, stage text DEFAULT NULL,
	offer text DEFAULT NULL, shown_at timestamptz DEFAULT pg_catalog.now())
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v text;
BEGIN
	IF experiment IS NULL OR unit_id IS NULL OR shown_at IS NULL THEN
		RAISE EXCEPTION 'experiment, unit_id and shown_at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- as record_event checks them (the table's CHECK would name only itself)
	IF stage NOT IN ('product_page', 'cart', 'post_purchase') THEN
		RAISE EXCEPTION 'stage must be product_page, cart or post_purchase, not %', quote_literal(stage)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT isfinite(shown_at) THEN
		-- (an exposure at infinity would count as a unit of every period)
		RAISE EXCEPTION 'shown_at must be a finite time, not %', shown_at
			USING ERRCODE = 'datetime_field_overflow';
	END IF;
	-- Before looking at the experiment and its variants, so that a change
	-- of them being committed is seen once it is (until 1.9 variants
	-- deleted meanwhile failed the insert: 23502, no variant assigned).
	PERFORM @extschema@._share_split_lock();
	-- (an experiment of the session's tenant when it is bound to one)
	PERFORM @extschema@._experiment(experiment);
	-- An experiment being set up, without variants, showed the unit no
	-- variant (assign() gives none): nothing to record, and no page fails.
	-- An exposure would name no variant (the foreign key), count in no
	-- variant's results, and freeze the split before it is defined
	-- (_guard_variants).  Until 1.9 the call failed ("has no variants").
	IF NOT EXISTS (SELECT FROM @extschema@.experiment_variants v WHERE v.experiment = record_exposure.experiment) THEN
		RETURN NULL;
	END IF;
	INSERT INTO @extschema@.exposures (experiment, unit_id, stage, offer, shown_at)
	VALUES (experiment, unit_id, stage, offer, shown_at)
	RETURNING variant INTO v;
	RETURN v;
END
$$;
COMMENT ON FUNCTION @extschema@.record_exposure(text, text, text, text, timestamptz) IS
	'records that the unit saw its variant of the experiment (at a stage, with an offer) and returns the variant; records nothing and returns NULL for an experiment without variants';

-- ---------------------------------------------------------------------------
-- Units are customers
-- ---------------------------------------------------------------------------

-- 'integer', 'text' or 'shopify': how the registered customers map unit ids.
CREATE FUNCTION @extschema@._customer_id_kind()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
BEGIN
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;
	IF s.customer_id IS NULL THEN
		RAISE EXCEPTION 'order lines are registered without a customer column'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Experiments and customer metrics need it: upsell.register_orders(..., customer_id => ''column'').';
	END IF;
	-- Shopify customer ids: numbers, or gid://shopify/Customer/N strings
	IF s.kind = 'shopify' THEN
		RETURN 'shopify';
	END IF;
	RETURN CASE WHEN @extschema@._column_type(s.relation, s.customer_id, 'customer_id')
					 IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
				THEN 'integer' ELSE 'text' END;
END
$$;

CREATE FUNCTION @extschema@._unit_customer(unit_id text, kind text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_unit_customer_key'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION @extschema@.unit_customer(unit_id text)
RETURNS bigint
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c bigint := @extschema@._unit_customer(unit_id, @extschema@._customer_id_kind());
BEGIN
	IF c IS NULL THEN
		RAISE EXCEPTION 'unit_id "%" is not an integer, but the registered customer ids are', unit_id
			USING ERRCODE = 'invalid_text_representation';
	END IF;
	RETURN c;
END
$$;
COMMENT ON FUNCTION @extschema@.unit_customer(text) IS
	'the customer_id of upsell.order_lines a unit id stands for: the integer itself when customer ids are integers, upsell.order_key(unit_id) when they are text';

-- ---------------------------------------------------------------------------
-- Statistics (src/core/stats.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.normal_cdf(x float8)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_normal_cdf'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.normal_cdf(float8) IS
	'P(Z <= x) for a standard normal Z';

CREATE FUNCTION @extschema@.student_t_cdf(t float8, df float8)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_student_t_cdf'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.student_t_cdf(float8, float8) IS
	'P(T <= t) for Student''s t with df degrees of freedom (df need not be an integer)';

CREATE FUNCTION @extschema@.chi_square_sf(x float8, df float8)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_chi_square_sf'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.chi_square_sf(float8, float8) IS
	'P(X > x) for chi-square with df degrees of freedom';

CREATE FUNCTION @extschema@.two_proportion_test(control_successes bigint, control_trials bigint,
	variant_successes bigint, variant_trials bigint, confidence float8 DEFAULT 0.95,
	OUT diff float8, OUT z float8, OUT p_value float8, OUT ci_low float8, OUT ci_high float8)
AS 'MODULE_PATHNAME', 'upsell_two_proportion_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.two_proportion_test(bigint, bigint, bigint, bigint, float8) IS
	'two-sided two-proportion z-test of variant minus control (pooled standard error for z, unpooled for the confidence interval)';

CREATE FUNCTION @extschema@.welch_t_test(control_n float8, control_mean float8, control_variance float8,
	variant_n float8, variant_mean float8, variant_variance float8, confidence float8 DEFAULT 0.95,
	OUT diff float8, OUT t float8, OUT df float8, OUT p_value float8, OUT ci_low float8, OUT ci_high float8)
AS 'MODULE_PATHNAME', 'upsell_welch_t_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.welch_t_test(float8, float8, float8, float8, float8, float8, float8) IS
	'two-sided Welch t-test of variant minus control from sizes, means and sample variances; Welch-Satterthwaite degrees of freedom';

CREATE FUNCTION @extschema@.srm_test(observed bigint[], weights float8[],
	OUT chi2 float8, OUT df float8, OUT p_value float8)
AS 'MODULE_PATHNAME', 'upsell_srm_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.srm_test(bigint[], float8[]) IS
	'sample-ratio-mismatch check: chi-square goodness of fit of the units per variant to the configured weights';

-- The tests as experiment_results uses them: NULL where a group is too small.
CREATE TYPE @extschema@._test_result AS (diff float8, stat float8, df float8, p_value float8,
	ci_low float8, ci_high float8);

CREATE FUNCTION @extschema@._ztest(x1 bigint, n1 bigint, x2 bigint, n2 bigint, confidence float8)
RETURNS @extschema@._test_result
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n1 > 0 AND n2 > 0 THEN
	(SELECT ROW(z.diff, z.z, NULL, z.p_value, z.ci_low, z.ci_high)::@extschema@._test_result
	 FROM @extschema@.two_proportion_test(x1, n1, x2, n2, confidence) z) END;

CREATE FUNCTION @extschema@._welch(n1 bigint, m1 float8, v1 float8, n2 bigint, m2 float8, v2 float8,
	confidence float8)
RETURNS @extschema@._test_result
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n1 >= 2 AND n2 >= 2 THEN
	(SELECT ROW(w.diff, w.t, w.df, w.p_value, w.ci_low, w.ci_high)::@extschema@._test_result
	 FROM @extschema@.welch_t_test(n1, m1, v1, n2, m2, v2, confidence) w) END;

-- ---------------------------------------------------------------------------
-- Results
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.experiment_results(experiment text, confidence float8 DEFAULT 0.95)
RETURNS TABLE (variant text, is_control boolean, weight numeric, units bigint, expected_units float8,
	converted_units bigint, orders bigint, conversion_rate float8, revenue numeric, aov numeric,
	revenue_per_visitor numeric, items_per_order numeric, attach_rate float8,
	conversion_diff float8, conversion_rel_diff float8, conversion_ci_low float8,
	conversion_ci_high float8, conversion_p_value float8,
	aov_diff float8, aov_rel_diff float8, aov_ci_low float8, aov_ci_high float8, aov_p_value float8,
	rpv_diff float8, rpv_rel_diff float8, rpv_ci_low float8, rpv_ci_high float8, rpv_p_value float8,
	srm_p_value float8, srm_warning boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e @extschema@.experiments := @extschema@._experiment(experiment);
	-- the shop's zone, read here: on Citus the query below runs on the
	-- shards, where _shop_zone() may not read upsell.order_source
	zone text := @extschema@._shop_zone();
	kind text;
	names text[];
	ws float8[];
	counts bigint[];
	srm record;
	srm_p float8;
BEGIN
	IF confidence IS NULL OR NOT (confidence > 0 AND confidence < 1) THEN
		RAISE EXCEPTION 'confidence must be between 0 and 1 exclusive, not %', coalesce(confidence::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.experiment_variants v
				   WHERE v.experiment = e.experiment AND v.variant = e.control) THEN
		RAISE EXCEPTION 'control "%" of experiment "%" is not one of its variants', e.control, e.experiment
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Set upsell.experiments.control to the name of the control variant.';
	END IF;
	kind := @extschema@._customer_id_kind();

	-- sample-ratio mismatch: units per variant (by first exposure) against weights
	SELECT array_agg(v.variant ORDER BY v.variant COLLATE "C"),
		   array_agg(@extschema@._weight_share(v.weight) ORDER BY v.variant COLLATE "C"),
		   array_agg(coalesce(c.n, 0) ORDER BY v.variant COLLATE "C")
	INTO names, ws, counts
	FROM @extschema@.experiment_variants v
	LEFT JOIN (SELECT f.variant, count(*) AS n
			   FROM (SELECT DISTINCT ON (x.unit_id) x.variant
					 FROM @extschema@.exposures x
					 WHERE x.experiment = e.experiment AND x.shown_at >= e.started_at
					   AND (e.ended_at IS NULL OR x.shown_at < e.ended_at)
					 ORDER BY x.unit_id, x.shown_at, x.exposure_id) f
			   GROUP BY f.variant) c ON c.variant = v.variant
	WHERE v.experiment = e.experiment;
	IF cardinality(names) >= 2 AND (SELECT sum(w) FROM unnest(ws) w) > 0
	   AND (SELECT sum(n) FROM unnest(counts) n) > 0 THEN
		srm := @extschema@.srm_test(counts, ws);
		srm_p := srm.p_value;
		IF srm_p < 0.001 THEN
			RAISE WARNING 'sample ratio mismatch in experiment "%": % (chi-square %, p = %)',
				e.experiment,
				(SELECT string_agg(format('%s %s units (expected %s)', x.name, x.n,
										  round((x.w / (SELECT sum(w2) FROM unnest(ws) w2)
												 * (SELECT sum(n2) FROM unnest(counts) n2))::numeric, 1)), ', ' ORDER BY x.i)
				 FROM unnest(names, counts, ws) WITH ORDINALITY AS x(name, n, w, i)),
				round(srm.chi2::numeric, 2),
				-- (four significant digits, whatever the session's extra_float_digits)
				btrim(to_char(srm_p, '9.999EEEE'))
				USING DETAIL = 'With p < 0.001 the split itself is broken (bots, redirects, lost exposures, changed weights); the comparisons below cannot be trusted.',
					  HINT = 'Find why some units were not recorded before reading the results.';
		END IF;
	END IF;

	RETURN QUERY
	WITH u AS (
		-- a unit's window ends by the shop's clock, whoever reads (until
		-- 1.9 the reader's: across a change of daylight saving time a
		-- session in New York counted an order 167.5 hours after the
		-- exposure out of a 7-day window that a session in UTC counted in)
		SELECT DISTINCT ON (x.unit_id) x.unit_id, x.variant, x.shown_at AS first_shown,
			   @extschema@._zone_add(x.shown_at, e.conversion_window, zone) AS window_end,
			   @extschema@._unit_customer(x.unit_id, kind) AS customer_id
		FROM @extschema@.exposures x
		WHERE x.experiment = e.experiment AND x.shown_at >= e.started_at
		  AND (e.ended_at IS NULL OR x.shown_at < e.ended_at)
		ORDER BY x.unit_id, x.shown_at, x.exposure_id
	), ul AS (
		-- the lines that convert: of the unit's orders, placed after its
		-- first exposure and within the window
		SELECT u.unit_id, u.first_shown, ol.order_key, ol.product_id, ol.ordered_at,
			   ol.quantity, ol.unit_price
		FROM u JOIN @extschema@.order_lines ol
			ON ol.customer_id = u.customer_id AND ol.tenant_id = e.tenant_id
			AND ol.ordered_at >= u.first_shown AND ol.ordered_at < u.window_end
	), o AS (
		SELECT ul.unit_id, ul.order_key, sum(ul.quantity * ul.unit_price) AS revenue,
			   sum(ul.quantity) AS items
		FROM ul GROUP BY ul.unit_id, ul.order_key
	), att AS (
		-- orders holding a product the unit added from an offer after its
		-- first exposure and no later than the order line
		SELECT DISTINCT ul.unit_id, ul.order_key
		FROM ul JOIN @extschema@.offer_events ev
			ON ev.unit_id = ul.unit_id AND ev.product_id = ul.product_id
			AND ev.occurred_at >= ul.first_shown AND ev.occurred_at <= ul.ordered_at
		WHERE ev.tenant_id = e.tenant_id AND ev.event = 'add'
	), uo AS (
		SELECT u.unit_id, u.variant, o.order_key, coalesce(o.revenue, 0) AS revenue, o.items,
			   att.order_key IS NOT NULL AS attached
		FROM u JOIN o ON o.unit_id = u.unit_id
		LEFT JOIN att ON att.unit_id = u.unit_id AND att.order_key = o.order_key
	), pu AS (
		SELECT u.unit_id, u.variant, count(uo.order_key) AS n_orders,
			   coalesce(sum(uo.revenue), 0) AS revenue
		FROM u LEFT JOIN uo ON uo.unit_id = u.unit_id
		GROUP BY u.unit_id, u.variant
	), pv AS (
		SELECT v.variant, v.weight,
			   count(pu.unit_id) AS units,
			   count(pu.unit_id) FILTER (WHERE pu.n_orders > 0) AS converted,
			   avg(pu.revenue)::float8 AS rpv_mean, var_samp(pu.revenue)::float8 AS rpv_var
		FROM @extschema@.experiment_variants v
		LEFT JOIN pu ON pu.variant = v.variant
		WHERE v.experiment = e.experiment
		GROUP BY v.variant, v.weight
	), ov AS (
		SELECT uo.variant, count(*) AS orders, sum(uo.revenue) AS revenue, sum(uo.items) AS items,
			   count(*) FILTER (WHERE uo.attached) AS attached,
			   avg(uo.revenue)::float8 AS aov_mean, var_samp(uo.revenue)::float8 AS aov_var
		FROM uo GROUP BY uo.variant
	), t AS (
		SELECT pv.*, coalesce(ov.orders, 0) AS orders, coalesce(ov.revenue, 0) AS revenue,
			   ov.items, coalesce(ov.attached, 0) AS attached, ov.aov_mean, ov.aov_var
		FROM pv LEFT JOIN ov ON ov.variant = pv.variant
	), s AS (
		SELECT t.*, c.units AS c_units, c.converted AS c_converted,
			   c.converted::float8 / nullif(c.units, 0) AS c_rate, c.aov_mean AS c_aov, c.rpv_mean AS c_rpv,
			   CASE WHEN t.variant <> e.control THEN
					@extschema@._ztest(c.converted, c.units, t.converted, t.units, confidence) END AS zc,
			   CASE WHEN t.variant <> e.control THEN
					@extschema@._welch(c.orders, c.aov_mean, c.aov_var, t.orders, t.aov_mean, t.aov_var, confidence) END AS ta,
			   CASE WHEN t.variant <> e.control THEN
					@extschema@._welch(c.units, c.rpv_mean, c.rpv_var, t.units, t.rpv_mean, t.rpv_var, confidence) END AS tr
		FROM t CROSS JOIN (SELECT * FROM t WHERE t.variant = e.control) c
	)
	SELECT s.variant, s.variant = e.control, s.weight, s.units,
		   (SELECT sum(s2.units) FROM s s2)::float8 * @extschema@._weight_share(s.weight)
			/ nullif((SELECT sum(@extschema@._weight_share(s2.weight)) FROM s s2), 0),
		   s.converted, s.orders,
		   s.converted::float8 / nullif(s.units, 0),
		   s.revenue,
		   round(s.revenue / nullif(s.orders, 0), 2),
		   round(s.revenue / nullif(s.units, 0), 2),
		   round(s.items / nullif(s.orders, 0), 2),
		   s.attached::float8 / nullif(s.orders, 0),
		   (s.zc).diff, (s.zc).diff / nullif(s.c_rate, 0), (s.zc).ci_low, (s.zc).ci_high, (s.zc).p_value,
		   (s.ta).diff, (s.ta).diff / nullif(s.c_aov, 0), (s.ta).ci_low, (s.ta).ci_high, (s.ta).p_value,
		   (s.tr).diff, (s.tr).diff / nullif(s.c_rpv, 0), (s.tr).ci_low, (s.tr).ci_high, (s.tr).p_value,
		   srm_p, coalesce(srm_p < 0.001, false)
	FROM s
	ORDER BY s.variant <> e.control, s.variant COLLATE "C";
END
$$;
COMMENT ON FUNCTION @extschema@.experiment_results(text, float8) IS
	'per variant: units, conversions, orders, AOV, revenue per visitor, items per order, attach rate; against the control: difference, relative difference, confidence interval and p-value (z-test for conversion, Welch for AOV and revenue per visitor); sample-ratio-mismatch p-value (warns below 0.001)';

-- ---------------------------------------------------------------------------
-- Merchant metrics
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.metrics(period text DEFAULT 'month', tenant_id bigint DEFAULT NULL,
	attribution_window interval DEFAULT '7 days')
RETURNS TABLE (period_start timestamptz, offer_type text, orders bigint, revenue numeric, aov numeric,
	items_per_order numeric, multi_item_share float8, customers bigint, repeat_customer_rate float8,
	new_customers bigint, cohort_clv numeric, attached_orders bigint, attach_rate float8,
	attributed_revenue numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	has_customers boolean;
	kind text;
	zone text := @extschema@._shop_zone();	-- (read here, as experiment_results does)
BEGIN
	IF period IS NULL OR period NOT IN ('day', 'week', 'month', 'quarter', 'year', 'all') THEN
		RAISE EXCEPTION 'period must be day, week, month, quarter, year or all, not %', coalesce(quote_literal(period), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF attribution_window IS NULL OR attribution_window <= '0'::interval THEN
		RAISE EXCEPTION 'attribution_window must be positive, not %', coalesce(attribution_window::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT s.customer_id IS NOT NULL INTO has_customers FROM @extschema@.order_source s;
	kind := CASE WHEN has_customers THEN @extschema@._customer_id_kind() END;

	RETURN QUERY
	WITH o AS (
		SELECT ol.order_key, min(ol.customer_id) AS customer_id, min(ol.ordered_at) AS ordered_at,
			   sum(ol.quantity * ol.unit_price) AS revenue, sum(ol.quantity) AS items,
			   count(DISTINCT ol.product_id) AS products
		FROM @extschema@.order_lines ol
		WHERE ol.tenant_id = t
		GROUP BY ol.order_key
	), op AS (
		-- each customer's first order: the earliest, ties (orders at one
		-- instant) broken by the order key, so that the second of two
		-- orders placed at once is a returning one
		SELECT o.*, CASE WHEN period = 'all' THEN NULL ELSE date_trunc(period, o.ordered_at) END AS p,
			   first_value(o.order_key) OVER (PARTITION BY o.customer_id
											  ORDER BY o.ordered_at NULLS LAST, o.order_key) AS first_order
		FROM o
	), cohort AS (
		-- customers by the period of their first order, and all they spent since
		SELECT CASE WHEN period = 'all' THEN NULL ELSE date_trunc(period, c.first_at) END AS p,
			   count(*) AS customers, sum(c.revenue) AS revenue
		FROM (SELECT o.customer_id, min(o.ordered_at) AS first_at, sum(o.revenue) AS revenue
			  FROM o WHERE o.customer_id IS NOT NULL GROUP BY o.customer_id) c
		GROUP BY 1
	), ev AS (
		SELECT @extschema@._unit_customer(x.unit_id, kind) AS customer_id, x.product_id,
			   x.offer_type, x.occurred_at, x.event_id
		FROM @extschema@.offer_events x
		WHERE x.tenant_id = t AND x.event = 'add' AND kind IS NOT NULL
	), lp AS (
		-- order lines of offered products, one row per order and product
		-- (the window by the shop's clock, as experiment_results' conversion
		-- window; until 1.9 the reader's)
		SELECT l.*, @extschema@._zone_add(l.ordered_at, - attribution_window, zone) AS window_start
		FROM (SELECT ol.order_key, ol.product_id, min(ol.customer_id) AS customer_id,
					 min(ol.ordered_at) AS ordered_at, sum(ol.quantity * ol.unit_price) AS revenue
			  FROM @extschema@.order_lines ol
			  WHERE ol.tenant_id = t
				AND (ol.customer_id, ol.product_id) IN (SELECT ev.customer_id, ev.product_id FROM ev)
			  GROUP BY ol.order_key, ol.product_id) l
	), att AS (
		-- last touch: the latest add of the product by the customer within the window
		SELECT DISTINCT ON (lp.order_key, lp.product_id) lp.order_key, lp.revenue, ev.offer_type
		FROM lp JOIN ev ON ev.customer_id = lp.customer_id AND ev.product_id = lp.product_id
			AND ev.occurred_at <= lp.ordered_at AND ev.occurred_at > lp.window_start
		ORDER BY lp.order_key, lp.product_id, ev.occurred_at DESC, ev.event_id DESC
	), ap AS (
		SELECT op.p, att.offer_type, count(DISTINCT att.order_key) AS attached,
			   sum(att.revenue) AS revenue
		FROM att JOIN op ON op.order_key = att.order_key
		GROUP BY GROUPING SETS ((op.p, att.offer_type), (op.p))
	), per AS (
		SELECT op.p, count(*) AS orders, sum(op.revenue) AS revenue, sum(op.items) AS items,
			   count(*) FILTER (WHERE op.products >= 2) AS multi,
			   count(DISTINCT op.customer_id) AS customers,
			   count(DISTINCT op.customer_id) FILTER (WHERE op.order_key <> op.first_order) AS returning_customers
		FROM op
		GROUP BY op.p
	)
	SELECT per.p, NULL::text, per.orders, per.revenue,
		   round(per.revenue / per.orders, 2), round(per.items / per.orders, 2),
		   per.multi::float8 / per.orders,
		   CASE WHEN has_customers THEN per.customers END,
		   CASE WHEN has_customers THEN per.returning_customers::float8 / nullif(per.customers, 0) END,
		   CASE WHEN has_customers THEN coalesce(co.customers, 0) END,
		   CASE WHEN has_customers THEN round(co.revenue / co.customers, 2) END,
		   coalesce(ap.attached, 0), coalesce(ap.attached, 0)::float8 / per.orders, coalesce(ap.revenue, 0)
	FROM per LEFT JOIN ap ON ap.p IS NOT DISTINCT FROM per.p AND ap.offer_type IS NULL
	LEFT JOIN cohort co ON co.p IS NOT DISTINCT FROM per.p
	UNION ALL
	SELECT ap.p, ap.offer_type, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		   ap.attached, ap.attached::float8 / per.orders, ap.revenue
	FROM ap JOIN per ON per.p IS NOT DISTINCT FROM ap.p
	WHERE ap.offer_type IS NOT NULL
	ORDER BY 1, 2 NULLS FIRST;
END
$$;
COMMENT ON FUNCTION @extschema@.metrics(text, bigint, interval) IS
	'per period (day, week, month, quarter, year, all) over the registered orders: orders, revenue, AOV, items per order, share of multi-product orders, customers, returning-customer rate, new customers and their historical CLV; and per offer type (rows with offer_type set) the orders with an attributed offer, attach rate and attributed revenue';

-- ===========================================================================
-- Funnel stages: one ranked list of offers per page, every tactic merged
-- ===========================================================================
--
-- Each stage gathers candidate offers from the tactics (models read with
-- index lookups), then the merge (src/core/offers.c) applies the merchant's
-- rules: pinned offers first, exclusions and stock, one offer per product,
-- offer types interleaved by weighted score, at most max_offers, and the
-- experiment variant's offer types when one is named.  The product page and
-- the cart are served in C (src/serving_*.c) from one model read each; the
-- merchant's rules are cached per backend until serving_state says they
-- changed.

CREATE TYPE @extschema@.offer AS (
	stage		text,
	offer_type	text,
	product_ids	bigint[],
	"rank"		int,
	score		float8,
	discount	numeric,
	reason		text
);
COMMENT ON TYPE @extschema@.offer IS
	'one offer of a funnel stage: its type, the product(s) offered, rank, score, discount (a fraction of the price) and reason';

CREATE TABLE IF NOT EXISTS @extschema@.offers (
	offer_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text NOT NULL CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	trigger_product_id bigint,
	trigger_category text,
	min_cart_value numeric CHECK (min_cart_value >= 0),
	product_ids	bigint[] NOT NULL CHECK (cardinality(product_ids) > 0 AND array_position(product_ids, NULL) IS NULL),
	discount	numeric NOT NULL DEFAULT 0 CHECK (discount >= 0 AND discount < 1),
	priority	int NOT NULL DEFAULT 0,
	active_from	timestamptz,
	active_to	timestamptz,
	reason		text,
	CHECK (num_nonnulls(trigger_product_id, trigger_category, min_cart_value) <= 1),
	CHECK (active_to IS NULL OR active_from IS NULL OR active_to > active_from),
	-- NaN and Infinity are above every number; money is bounded
	CONSTRAINT offers_min_cart_value_finite CHECK (min_cart_value < 1e15)
);
CREATE INDEX IF NOT EXISTS offers_tenant_id_stage_idx ON @extschema@.offers (tenant_id, stage);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.offers', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.offers', 'offer_id')::regclass, '');
COMMENT ON TABLE @extschema@.offers IS
	'hand-made offers: shown first (by priority) on their stage while active, when their trigger matches: a product on the page/in the cart/order, a category, a cart value, or always (no trigger)';

CREATE TABLE IF NOT EXISTS @extschema@.stage_settings (
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text NOT NULL CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	max_offers	int NOT NULL CHECK (max_offers >= 0),
	type_weights jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(type_weights) = 'object'),
	CONSTRAINT stage_settings_max_offers_bounded CHECK (max_offers <= 1000),
	-- every weight a number from 0 to 1000 (a float8 on the serving path)
	CONSTRAINT stage_settings_type_weights_numbers CHECK (NOT pg_catalog.jsonb_path_exists(type_weights,
		'$.* ? (@.type() != "number" || @ < 0 || @ > 1000)')),
	PRIMARY KEY (tenant_id, stage)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stage_settings', '');
COMMENT ON TABLE @extschema@.stage_settings IS
	'per tenant and stage: the maximum number of offers (default 6) and weights per offer type that interleave the tactics (defaults: complement 1, bundle/gap_filler/restock 0.9, upgrade/subscription 0.8, quantity_tier 0.7, downsell 0.6)';

-- every table of the merchant's rules draws a new serving_state.config_version
DO $$
DECLARE
	rules text;
BEGIN
	FOREACH rules IN ARRAY ARRAY['offers', 'exclusions', 'stage_settings', 'thresholds',
								 'volume_tiers', 'order_source', 'product_source'] LOOP
		EXECUTE format('CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
					   'ON @extschema@.%I FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._rules_changed()',
					   rules);
	END LOOP;
END
$$;

-- The merge for stages that gather their candidates in SQL (post-purchase):
-- the same rules as the C stages, with the stock of the candidates looked up.
CREATE FUNCTION @extschema@._merge_offers(stage text, t bigint, context bigint[],
	cart_value numeric, candidates @extschema@.offer[], experiment text, unit_id text,
	at timestamptz DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_merge_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._merge_offers(text, bigint, bigint[], numeric, @extschema@.offer[], text, text, timestamptz) IS
	'internal: ranks a stage''s candidate offers under the merchant''s rules (pinned first, active at "at" (NULL: now), stock, exclusions, weights, one offer per product, max_offers)';

-- ---- pre-purchase: the product page ----------------------------------------
--
-- Precomputed at refresh for every product (complements, upgrades, bundles
-- of products in stock, best first), so that the page reads a few rows by
-- index; pinned offers, exclusions, weights and limits apply at request time.

-- The ranking runs in C (src/funnel_build.c, src/core/page_rank.c): one read
-- each of product_model, category_model's substitutes, upgrade_model,
-- bundle_model and pair_list_model (a row of pairs per product), each
-- product's offers ranked in product order.  The rule, as the SQL it replaced said it
-- (the same rows): the complements of pair_model in stock that are not
-- substitutes of the product (upsell.is_substitute), its upgrades of
-- upgrade_model in stock, pricier up to 1.5x its price and on a ladder
-- (_upgrade_on_ladder), its bundles of bundle_model with every item in
-- stock; each scored by sort = score / the best score of its kind for the
-- product; one offer per set of products (the highest sort, then the kind
-- in text order); the 12 best by sort descending, products offered, kind.
-- The 3M pairs of a 10M-line shop took 16 s through two hash joins, a
-- window and three sorts of every candidate.
CREATE FUNCTION @extschema@._product_page_lists(tenant_id bigint, products bigint[] DEFAULT NULL)
RETURNS TABLE (product_id bigint, offer_types text[], product_ids bigint[], offer_ends int[],
			   sorts float8[], scores float8[], discounts numeric[], reasons text[])
AS 'MODULE_PATHNAME', 'upsell_product_page_lists'
LANGUAGE C STABLE ROWS 100000;
COMMENT ON FUNCTION @extschema@._product_page_lists(bigint, bigint[]) IS
	'internal: per product of the tenant with any (of the products listed, when they are), its 12 best product-page offers (complements, upgrades, bundles of products in stock) in rank order as one row of arrays (the ids of every offer one after the other, offer_ends where each ends), with their discounts (bundles 10%) and reasons';

-- One row per product, its offers as arrays, not a row per offer: the ten
-- times as many rows (1.05M for a catalog of 100,000 products), their heap
-- and index, and the reasons written in SQL row by row, were 3 of the
-- model's 5 s of build at 10M lines, in the full and the incremental
-- refresh alike (it is rebuilt for every product).
-- The products whose offers on the page or in the cart an incremental
-- refresh must compute again, or NULL (all of them: not an incremental
-- refresh).  An offer list follows from the product's catalog facts, the
-- categories its category substitutes, its pair list, its upgrade list,
-- its bundles (with bundles) and the catalog facts of the products those
-- lists name: so the products the builders of those models noted as
-- changed (_note_changed), and the products whose lists name a product
-- whose catalog facts changed.
CREATE FUNCTION @extschema@._offers_to_rebuild(tenant_id bigint, with_bundles boolean)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	models name[] := CASE WHEN with_bundles
						  THEN '{product_model, category_model, pair_list_model, upgrade_list_model, bundle_model}'::name[]
						  ELSE '{product_model, category_model, pair_list_model, upgrade_list_model}'::name[] END;
	changed_catalog bigint[] := @extschema@._changed_products('product_model');
BEGIN
	IF changed_catalog IS NULL THEN
		RETURN NULL;
	END IF;
	-- (the lists are read only when a catalog fact changed: the test of
	-- the variable is made once, before their scans, which found nothing
	-- in 0.3-0.4 s for each of the two builders at 100,000 products)
	RETURN ARRAY(
		SELECT c.product_id FROM pg_temp.upsell_changed_products c WHERE c.model = ANY (models)
		UNION
		SELECT l.product_id FROM @extschema@.pair_list_model l
		WHERE cardinality(changed_catalog) > 0 AND l.tenant_id = t AND l.other_ids && changed_catalog
		UNION
		SELECT u.product_id FROM @extschema@.upgrade_list_model u
		WHERE cardinality(changed_catalog) > 0 AND u.tenant_id = t AND u.candidate_ids && changed_catalog
		UNION
		SELECT b.product_id FROM @extschema@.bundle_model b
		WHERE with_bundles AND cardinality(changed_catalog) > 0 AND b.tenant_id = t AND b.items && changed_catalog
		ORDER BY 1);
END
$$;

-- Incrementally only the products whose offers can differ
-- (_offers_to_rebuild): every product with bundles among them, since a
-- bundle's lift moves with the shop's order count.
CREATE FUNCTION @extschema@._build_product_page_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	scope bigint[];
BEGIN
	IF incremental THEN
		scope := @extschema@._offers_to_rebuild(tenant_id, true);
	END IF;
	RETURN @extschema@._publish('product_page_list_model', tenant_id, $q$
		SELECT $1 AS tenant_id, r.product_id, r.offer_types, r.product_ids, r.offer_ends, r.sorts, r.scores,
			   r.discounts, r.reasons
		FROM @extschema@._product_page_lists($1, $2) r$q$, scope);
END
$$;

SELECT @extschema@._define_model('product_page_list_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, offer_types text[] NOT NULL,
	  product_ids bigint[] NOT NULL, offer_ends int[] NOT NULL, sorts float8[] NOT NULL,
	  scores float8[] NOT NULL, discounts numeric[] NOT NULL, reasons text[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 95, '@extschema@._build_product_page_model(bigint, boolean)',
	'per product: its 12 best product-page offers of products in stock (complements that are not substitutes of it, upgrades within its variant group or up a ladder its buyers climb, bundles) in rank order as arrays, an element per offer (product_ids: the ids of every offer one after the other, offer_ends: where each offer''s ids end); sorts are the scores relative to the best of their type; read as one row per offer through the view product_page_model',
	'product_id');

-- The offers one row each (the shape of 1.3's product_page_model table), as
-- analysts read them.  (unnest of several arrays is syntax, ROWS FROM, not
-- a function of pg_catalog to qualify.)
CREATE VIEW @extschema@.product_page_model AS
SELECT l.tenant_id, l.product_id, o.offer_type,
	   l.product_ids[coalesce(l.offer_ends[o.n OPERATOR(pg_catalog.-) 1], 0) OPERATOR(pg_catalog.+) 1 : o.offer_end] AS product_ids,
	   o.sort, o.score, o.discount, o.reason
FROM @extschema@.product_page_list_model l,
	 unnest(l.offer_types, l.offer_ends, l.sorts, l.scores, l.discounts, l.reasons)
		 WITH ORDINALITY o(offer_type, offer_end, sort, score, discount, reason, n);
COMMENT ON VIEW @extschema@.product_page_model IS
	'per product and offer: its 12 best product-page offers of products in stock, one row each (the rows of product_page_list_model''s arrays); sort is the score relative to the best of its type';

CREATE FUNCTION @extschema@._product_page_offers(tenant_id bigint, product_id bigint, category text,
	experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_product_page_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._product_page_offers(bigint, bigint, text, text, text) IS
	'internal: the product page''s offers for a product of product_model (its tenant and category)';

CREATE VIEW @extschema@.product_page_offers AS
SELECT m.tenant_id, m.product_id, o.stage, o.offer_type, o.product_ids, o."rank", o.score,
	   o.discount, o.reason
FROM @extschema@.product_model m
CROSS JOIN LATERAL @extschema@._product_page_offers(m.tenant_id, m.product_id, m.category) o
WHERE m.tenant_id = @extschema@._tenant(NULL);
COMMENT ON VIEW @extschema@.product_page_offers IS
	'pre-purchase offers per product of product_model (pinned merchant offers, complements, upgrades, bundles), ranked, of the tenant bound to the session (SET upsell.tenant_id; required when orders are registered per tenant); query it filtered by product_id; a product added since the last refresh has no row here: upsell.product_page_offers(product_id) serves it';

CREATE FUNCTION @extschema@._product_page_offers_of(tenant_id bigint, product_id bigint,
	experiment text, unit_id text)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_product_page_offers_of'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._product_page_offers_of(bigint, bigint, text, text) IS
	'internal: the product page''s offers for a product, its category read from product_model (none for a product not there)';

-- The product is read in C (_product_page_offers_of), not joined here: a
-- SQL function that reads a table with its arguments is not planned by
-- Citus, where distribute() runs this one on the tenant's worker.
CREATE FUNCTION @extschema@.product_page_offers(product_id bigint, tenant_id bigint DEFAULT NULL,
	experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT o.*
	FROM @extschema@._product_page_offers_of(@extschema@._tenant(product_page_offers.tenant_id),
											 product_page_offers.product_id,
											 product_page_offers.experiment, product_page_offers.unit_id) o
	ORDER BY o."rank";
END;
COMMENT ON FUNCTION @extschema@.product_page_offers(bigint, bigint, text, text) IS
	'the product page''s offers for one product, tenant-checked; with an experiment and unit, only the offer types of the unit''s variant';

-- ---- during purchase: the cart -------------------------------------------------

CREATE FUNCTION @extschema@._cart_lines(tenant_id bigint, products bigint[] DEFAULT NULL)
RETURNS TABLE (product_id bigint, ids bigint[], log_miss float8[], categories text[],
			   upgrade_id bigint, upgrade_score float8, upgrade_reason text)
AS 'MODULE_PATHNAME', 'upsell_cart_lines'
LANGUAGE C STABLE ROWS 100000;
COMMENT ON FUNCTION @extschema@._cart_lines(bigint, bigint[]) IS
	'internal: per product of the tenant with any (of the products listed, when they are), its complements of pair_model in stock that do not substitute it (upsell.is_substitute), by id, with ln(1 - least(score, 0.999999)) and their categories, and its best upgrade (in stock, pricier up to 1.5x, on a ladder; within its variant group first, then by score and id) with its reason';

-- What a cart request reads about each line, in one index lookup: price,
-- category and stock, the line's complements (in stock, not substitutes of
-- it, with ln(1 - pair score) for the noisy-OR, so that a request adds
-- instead of taking logs, and their categories), what substitutes it (the
-- other products of its variant group, the categories whose products
-- substitute it: a request drops complements that substitute another line)
-- and its best upgrade (within 1.5x the price, same variant group first, up
-- a ladder its buyers climb: the product page's rule, src/funnel_build.c).
CREATE FUNCTION @extschema@._build_cart_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	changed_catalog bigint[] := @extschema@._changed_products('product_model');
	scope bigint[];
BEGIN
	-- Incrementally only the rows that can differ: those of
	-- _offers_to_rebuild (a cart row names no bundle), and the members of
	-- the variant groups that a product whose catalog facts changed was and
	-- is in (its substitutes; the current cart rows name the old ones).
	IF incremental THEN
		scope := @extschema@._offers_to_rebuild(t, false);
	END IF;
	IF scope IS NOT NULL AND cardinality(changed_catalog) > 0 THEN
		scope := ARRAY(
			SELECT unnest(scope)
			UNION
			SELECT c.product_id FROM @extschema@.cart_model c
			WHERE c.tenant_id = t AND c.substitute_ids && changed_catalog
			UNION
			SELECT m.product_id FROM @extschema@.product_model m
			WHERE m.tenant_id = t AND m.variant_group IN (
				SELECT g.variant_group FROM @extschema@.product_model g
				WHERE g.tenant_id = t AND g.product_id = ANY (changed_catalog))
			ORDER BY 1);
	END IF;
	RETURN @extschema@._publish('cart_model', tenant_id, $q$
		-- (materialized: read once, before the joins)
		WITH c AS MATERIALIZED (SELECT * FROM @extschema@._cart_lines($1, $2))
		SELECT m.tenant_id, m.product_id, m.price, m.category, m.in_stock,
			   coalesce(c.ids, '{}') AS complement_ids, coalesce(c.log_miss, '{}') AS complement_log_miss,
			   c.upgrade_id, c.upgrade_score, c.upgrade_reason,
			   coalesce(c.categories, '{}') AS complement_categories,
			   coalesce(array_remove(g.ids, m.product_id), '{}') AS substitute_ids,
			   coalesce(s.categories, '{}') AS substitute_categories
		FROM @extschema@.product_model m
		-- what substitutes a product, per variant group and per category
		-- (joined, not a subquery per product: one pass each)
		LEFT JOIN (SELECT g.variant_group, array_agg(g.product_id ORDER BY g.product_id) AS ids
				   FROM @extschema@.product_model g
				   WHERE g.tenant_id = $1 AND g.variant_group IS NOT NULL
				   GROUP BY g.variant_group) g
			ON g.variant_group = m.variant_group
		LEFT JOIN (SELECT s.category, array_agg(s.other_category ORDER BY s.other_category) AS categories
				   FROM @extschema@.category_model s
				   WHERE s.tenant_id = $1 AND s.substitutes
				   GROUP BY s.category) s
			ON s.category = m.category
		-- the complements and the upgrade (src/funnel_build.c: pair_list_model
		-- and upgrade_model read once, the catalog's facts from a hash table)
		LEFT JOIN c ON c.product_id = m.product_id
		WHERE m.tenant_id = $1 AND ($2 IS NULL OR m.product_id = ANY ($2))$q$, scope);
END
$$;

-- Built at 45, right after the upgrade lists, the last model it reads, not
-- with the other stages (95, 96): the refresh builds it while the bundles'
-- worker, which starts last, is still mining, instead of waiting for that
-- worker first (bundle_model, 72).  Nothing reads cart_model but serving.
SELECT @extschema@._define_model('cart_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, price numeric, category text,
	  in_stock boolean NOT NULL, complement_ids bigint[] NOT NULL, complement_log_miss float8[] NOT NULL,
	  upgrade_id bigint, upgrade_score float8, upgrade_reason text,
	  complement_categories text[] NOT NULL, substitute_ids bigint[] NOT NULL,
	  substitute_categories text[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 45, '@extschema@._build_cart_model(bigint, boolean)',
	'per product, what the cart stage reads about a cart line: price, category, stock, complements in stock that do not substitute it with ln(1 - pair score) and their categories, what substitutes it (its variant group''s other products, categories), and the best upgrade within 1.5x the price',
	'product_id');

CREATE FUNCTION @extschema@.cart_offers(cart bigint[], quantities int[] DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL,
	currency text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_cart_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@.cart_offers(bigint[], int[], bigint, text, text, text) IS
	'during-purchase offers for a cart: pinned merchant offers, complements of the cart, gap fillers to the next threshold (of the cart''s currency, or without one; with thresholds in several currencies and none given, only those without one, and the reasons say so), upgrades of cart lines and quantity tiers, interleaved by weighted score';

-- ---- post-purchase: the thank-you page and the emails after it --------------

CREATE FUNCTION @extschema@.post_purchase_offers(order_items bigint[], customer_id bigint DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL,
	at timestamptz DEFAULT now())
RETURNS SETOF @extschema@.offer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	items bigint[];
	blocked_groups text[];		-- the order's substitutes (_cart_blocked)
	blocked_categories text[];
	candidates @extschema@.offer[];
	unknown bigint;
	owned @extschema@._owned_product[];	-- the customer's products
	owned_blocked bigint[];		-- the customer's durables, and consumables not due
	excluded_products bigint[];	-- the merchant's exclusions next to this order
	excluded_categories text[];
BEGIN
	IF array_ndims(order_items) > 1 THEN
		RAISE EXCEPTION 'order_items must be a one-dimensional array of product ids'
			USING ERRCODE = 'array_subscript_error';
	END IF;
	PERFORM @extschema@._check_cart_length(order_items);
	IF array_position(order_items, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'the order contains a NULL product id'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	items := ARRAY(SELECT DISTINCT x FROM unnest(order_items) x);
	-- an order's product the models do not know (added since the last
	-- refresh) has no complements: the offers say so, as the cart's do
	unknown := cardinality(items) - (SELECT count(*) FROM @extschema@.product_model m
									 WHERE m.tenant_id = t AND m.product_id = ANY (items));
	-- Every table is read with the tenant t and no SQL helper reads a table
	-- inside a statement: upsell._complements_of is written out.  On Citus
	-- (distribute()) each statement is then one shard's, which Citus sends
	-- to it whole; a helper would read the distributed tables again from
	-- inside the shard's statement, which Citus cannot plan.  The order's
	-- substitutes (upsell.is_substitute) are computed once before, by a
	-- statement of their own (_cart_blocked; the merchant's exclusions are
	-- _merge_offers'), and each candidate tested against their two sets.
	SELECT b.variant_groups, b.categories INTO blocked_groups, blocked_categories
	FROM @extschema@._cart_blocked(t, items, false) b;
	-- What the customer owns, by the rule every stage applies
	-- (_customer_owned): a durable is never offered again, a consumable only
	-- when due (until 1.8 this stage offered an owned durable as a
	-- complement, a bestseller, and as a restock: every product bought once
	-- has a due date); read once, for the restocks and the subscription too
	owned := @extschema@._customer_owned(t, post_purchase_offers.customer_id, at + interval '14 days');
	owned_blocked := ARRAY(SELECT o.product_id FROM unnest(owned) o WHERE o.blocked);
	-- The merchant's exclusions, applied before the candidates are cut to
	-- 12 (_merge_offers applies them again, to every offer): after the cut,
	-- a shop excluding its bestsellers got no offers at all
	SELECT coalesce(array_agg(e.product_id) FILTER (WHERE e.product_id IS NOT NULL), '{}'),
		   coalesce(array_agg(e.category) FILTER (WHERE e.category IS NOT NULL), '{}')
	INTO excluded_products, excluded_categories
	FROM @extschema@.exclusions e
	WHERE e.tenant_id = t AND (e.with_product_id IS NULL OR e.with_product_id = ANY (items));
	candidates := ARRAY(
		-- complements of what was just bought (evidence only: no bestsellers
		-- here), never a substitute of it
		SELECT ROW('post_purchase', 'complement', ARRAY[e.product_id], NULL, e.score, 0,
				   'goes with your order')::@extschema@.offer
		FROM (SELECT p.other_id AS product_id,
					 1 - exp(sum(ln(1 - least(p.score, 0.999999::float8))::numeric)::float8) AS score
			  FROM @extschema@.pair_model p
			  WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
				AND p.other_id <> ALL (owned_blocked)
			  GROUP BY p.other_id
			  ORDER BY 2 DESC, 1
			  LIMIT 24) e
		-- (the candidate looked up by its key, a probe per candidate: a
		-- join is planned as a hash of the tenant's whole catalog)
		WHERE NOT coalesce((SELECT b.variant_group = ANY (blocked_groups) OR b.category = ANY (blocked_categories)
								   OR b.category = ANY (excluded_categories)
							FROM @extschema@.product_model b
							WHERE b.tenant_id = t AND b.product_id = e.product_id), false)
		  AND e.product_id <> ALL (excluded_products)
		LIMIT 12)
	|| ARRAY(
		-- bestsellers far below them, so that the page's slots fill:
		-- however many of the first the order's substitutes block
		SELECT ROW('post_purchase', 'complement', ARRAY[m.product_id], NULL,
				   1e-6 / m.popularity_rank, 0, 'popular')::@extschema@.offer
		-- (the view numbers the ranks along an index: the scan stops at
		-- the 12th kept)
		FROM @extschema@.product_popularity m
		WHERE m.tenant_id = t AND m.in_stock AND m.product_id <> ALL (items)
		  AND m.product_id <> ALL (owned_blocked) AND m.product_id <> ALL (excluded_products)
		  AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories)
						   OR m.category = ANY (excluded_categories), false)
		LIMIT 12)
	|| ARRAY(
		-- consumables of this customer coming due within two weeks (and not
		-- overdue by more than a week: lapsed)
		SELECT ROW('post_purchase', 'restock', ARRAY[i.product_id], NULL, i.confidence, 0,
				   CASE WHEN i.next_due <= at THEN format('due again now (every %s days)', round(i.interval_days::numeric))
						ELSE format('due again in %s days (every %s days)',
									round(extract(epoch FROM i.next_due - at)::numeric / 86400),
									round(i.interval_days::numeric)) END)::@extschema@.offer
		FROM unnest(owned) i
		WHERE NOT i.blocked
		  AND i.next_due BETWEEN at - interval '7 days' AND at + interval '14 days'
		  AND i.confidence > 0
		ORDER BY i.confidence DESC, i.product_id
		LIMIT 5)
	|| ARRAY(
		-- bought at least 3 times at regular intervals (a CV below 0.5, as
		-- subscription_candidates and email_sequence: up to 0.5 until 1.8):
		-- subscribe and save
		SELECT ROW('post_purchase', 'subscription', ARRAY[i.product_id], NULL, 1 / (1 + i.cv), 0,
				   format('bought %s times, every %s days: subscribe', i.purchases, round(i.median_gap_days::numeric)))::@extschema@.offer
		FROM unnest(owned) i
		WHERE i.purchases >= 3 AND i.cv < 0.5
		ORDER BY i.cv, i.product_id
		LIMIT 3);
	IF unknown > 0 THEN
		candidates := ARRAY(SELECT ROW(o.stage, o.offer_type, o.product_ids, o."rank", o.score, o.discount,
									   format('%s; %s of the order''s products unknown as of the last refresh',
											  o.reason, unknown))::@extschema@.offer
							FROM unnest(candidates) o);
	END IF;
	-- restocks and subscriptions are of products the customer owns: only the
	-- order's own products are context
	RETURN QUERY SELECT * FROM @extschema@._merge_offers('post_purchase', t, items, NULL,
														 candidates, experiment, unit_id, at);
END
$$;
COMMENT ON FUNCTION @extschema@.post_purchase_offers(bigint[], bigint, bigint, text, text, timestamptz) IS
	'post-purchase offers for an order just placed (its products) and its customer: complements of the order, restocks coming due, a subscription pitch, interleaved by weighted score';

-- The recent orders the post-purchase view serves.  The query of a
-- tenant's order_model rows (of the orders given, or all),
-- from its lines as of its refresh snapshot or of the snapshot given (a
-- side build, _define_side_build): the orders of the 90 days before its
-- last line, as the count found it (written into the query: a side build's
-- worker cannot read the counts its refresh has not committed), or all
-- orders when the lines carry no time.
CREATE FUNCTION @extschema@._order_query(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL,
	orders bigint[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	recent text := 'true';
BEGIN
	IF (SELECT s.ordered_at IS NOT NULL FROM @extschema@.order_source s) THEN
		-- (OPERATOR() binds like any operator, left to right: parenthesized)
		recent := format('l.ordered_at OPERATOR(pg_catalog.>=) (%L::timestamptz OPERATOR(pg_catalog.-) interval ''90 days'')',
						 (SELECT max(c.max_ordered_at) FROM @extschema@.cooccurrence_chunks c
						  WHERE c.tenant_id = _order_query.tenant_id));
	END IF;
	RETURN format($q$
		SELECT %s::bigint AS tenant_id, l.order_key, pg_catalog.min(l.order_id) AS order_id,
			   pg_catalog.min(l.customer_id) AS customer_id, pg_catalog.max(l.ordered_at) AS ordered_at,
			   pg_catalog.array_agg(DISTINCT l.product_id) AS items, pg_catalog.min(l.ordered_at) AS first_at
		FROM %s l
		WHERE l.sold AND l.product_id IS NOT NULL AND l.order_key IS NOT NULL AND %s AND %s
		GROUP BY l.order_key$q$,
		tenant_id, @extschema@._tenant_lines(tenant_id, snapshot), recent,
		CASE WHEN orders IS NULL THEN 'true'
			 ELSE format('l.order_key OPERATOR(pg_catalog.=) ANY (%L::bigint[])', orders) END);
END
$$;

CREATE FUNCTION @extschema@._build_order_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	orders bigint[];
BEGIN
	IF NOT (incremental AND @extschema@._incremental(t)) THEN
		-- computed by a side build (_define_side_build), or here
		RETURN @extschema@._publish('order_model', t,
			CASE WHEN @extschema@._side_ready('order_model')
				 THEN 'SELECT * FROM @extschema@._side_rows(''order_model'', NULL::@extschema@.order_model)'
				 ELSE @extschema@._order_query(t) END);
	END IF;
	IF @extschema@._lines_unchanged(t) THEN
		-- no new line: no new order, and the window, which ends at the last
		-- line, has not moved (looking for orders that left it read every
		-- row: 0.2-0.3 s of a refresh without new lines at 10M lines)
		RETURN @extschema@._kept_rows('order_model', t);
	END IF;
	-- incremental: the new orders, and the orders with lines older than
	-- the window now starts (they drop out, wholly or in part)
	orders := ARRAY(SELECT DISTINCT x.order_key FROM pg_temp.upsell_new_lines x
					WHERE x.sold AND x.product_id IS NOT NULL AND x.order_key IS NOT NULL);
	IF (SELECT s.ordered_at IS NOT NULL FROM @extschema@.order_source s) THEN
		orders := orders || ARRAY(
			SELECT o.order_key FROM @extschema@.order_model o
			WHERE o.tenant_id = t
			  AND o.first_at < (SELECT m.max_ordered_at FROM @extschema@.cooccurrence_model m
								WHERE m.tenant_id = t) - interval '90 days');
	END IF;
	-- (none: _publish keeps the rows)
	RETURN @extschema@._publish('order_model', t, @extschema@._order_query(t, NULL, orders), orders);
END
$$;

SELECT @extschema@._define_model('order_model',
	$$tenant_id bigint NOT NULL, order_key bigint NOT NULL, order_id text NOT NULL,
	  customer_id bigint, ordered_at timestamptz, items bigint[] NOT NULL, first_at timestamptz,
	  PRIMARY KEY (tenant_id, order_key)$$,
	ARRAY['(order_id)', '(tenant_id, customer_id, ordered_at)'], 96,
	'@extschema@._build_order_model(bigint, boolean)',
	'the orders of the last 90 days (all orders without an order time): products and customer, for the post-purchase view; ordered_at and first_at: the time of its last and first line in the window',
	'order_key');
-- (not during the count: its window is read from the count)
SELECT @extschema@._define_side_build('order_model', '@extschema@._order_query(bigint, pg_snapshot, bigint[])');

CREATE VIEW @extschema@.post_purchase_offers AS
SELECT o.tenant_id, o.order_id, o.customer_id, o.ordered_at, f.*
FROM @extschema@.order_model o
CROSS JOIN LATERAL @extschema@.post_purchase_offers(o.items, o.customer_id, o.tenant_id) f
WHERE o.tenant_id = @extschema@._tenant(NULL);
COMMENT ON VIEW @extschema@.post_purchase_offers IS
	'post-purchase offers per recent order (complements of the order, restocks, subscription pitch) of the tenant bound to the session (SET upsell.tenant_id; required when orders are registered per tenant); query it filtered by order_id or customer_id';

-- ===========================================================================
-- JSON for storefront widgets: one document of offers per stage, and the
-- widget's shown/click/add events back
-- ===========================================================================
--
-- offers_json speaks the storefront's vocabulary: ids as the shop registered
-- them (numbers, or GraphQL gid strings when the Shopify documents used
-- them), titles, prices as decimal strings, the offer type and reason, and
-- the experiment variant when one applies.  record_event takes events in the
-- same words.  The shapes are documented in the README; sql/95_json.sql
-- keeps them stable.

-- Per product of a Shopify catalog: its ids as the documents wrote them and
-- what a widget shows.  Empty without a Shopify catalog.
CREATE FUNCTION @extschema@._build_shopify_product_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	level text;
BEGIN
	SELECT s.product_id INTO level FROM @extschema@.product_source s WHERE s.kind = 'shopify';
	IF NOT FOUND THEN
		-- no Shopify catalog (any more): the tenant's rows go
		RETURN @extschema@._publish('shopify_product_model', tenant_id,
			'SELECT NULL::bigint AS tenant_id, NULL::bigint AS product_id, NULL::bigint AS parent_id, '
			'NULL::jsonb AS product_ref, NULL::jsonb AS variant_ref, NULL::text AS product_title, '
			'NULL::text AS variant_title, NULL::text AS sku, NULL::numeric AS compare_at_price WHERE false');
	END IF;
	IF to_regclass('@extschema@.shopify_variants') IS NULL THEN
		PERFORM @extschema@._sync_view('catalog');
	END IF;
	RETURN @extschema@._publish('shopify_product_model', tenant_id, format($q$
		SELECT DISTINCT ON (v.tenant_id, %1$s) v.tenant_id, %1$s AS product_id, v.product_id AS parent_id,
			   v.product_ref, %2$s AS variant_ref, v.product_title, %3$s AS variant_title, %4$s AS sku,
			   v.compare_at_price
		FROM @extschema@.shopify_variants v
		WHERE v.skipped IS NULL AND v.tenant_id OPERATOR(pg_catalog.=) $1
		ORDER BY v.tenant_id, %1$s, %5$s v.variant_id$q$,
		CASE level WHEN 'product_id' THEN 'v.product_id' ELSE 'v.variant_id' END,
		CASE level WHEN 'product_id' THEN 'NULL::jsonb' ELSE 'v.variant_ref' END,
		CASE level WHEN 'product_id' THEN 'NULL::text' ELSE 'v.variant_title' END,
		CASE level WHEN 'product_id' THEN 'NULL::text' ELSE 'v.sku' END,
		-- a product's price is its cheapest variant's (upsell.catalog): the
		-- compare-at price is that variant's too, not another's, which
		-- made a false strike-through (20.00 against 35.00 of a 30.00 one)
		CASE level WHEN 'product_id'
			THEN 'CASE WHEN @extschema@._plausible_price(v.price) THEN v.price END NULLS LAST,' ELSE '' END));
END
$$;

SELECT @extschema@._define_model('shopify_product_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, parent_id bigint NOT NULL,
	  product_ref jsonb, variant_ref jsonb, product_title text, variant_title text, sku text,
	  compare_at_price numeric,
	  PRIMARY KEY (tenant_id, product_id)$$,
	ARRAY['(tenant_id, parent_id)'], 99, '@extschema@._build_shopify_product_model(bigint, boolean)',
	'per product of a registered Shopify catalog: the product and variant ids as the documents wrote them (number or gid string), titles, sku, compare-at price; read by offers_json');

-- A unit id from JSON: a Shopify id in either form as its digits (so that
-- "gid://shopify/Customer/5" and 5 are one unit), any other string as is.
CREATE FUNCTION @extschema@._json_unit(value jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN coalesce(@extschema@.shopify_id(value)::text, @extschema@._json_text(value));

-- The products storefront objects mean, one row per element of the array
-- items (n its position, from 1): {"variant_id"}, {"id"} (cart.js lines) or
-- {"product_id"}; a product id standing for its variants (a product page at
-- variant level) is its best-selling variant.  Where the Shopify documents
-- are registered at product level the products are Shopify's products: an
-- object's product_id is the product, before its variant (a cart.js line
-- carries both).  NULL where an object names no product.  One query for a
-- whole cart: called per line (as until 1.8), a 500-line cart spent some
-- 8 ms in the calls alone.  (PL/pgSQL, whose plan is kept for the session:
-- an SQL function's is made at every call.)
CREATE FUNCTION @extschema@._json_products(t bigint, items jsonb)
RETURNS TABLE (n bigint, item jsonb, product_id bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH ids AS (
		SELECT e.n, e.item,
			   coalesce(@extschema@.shopify_id(e.item -> 'variant_id'), @extschema@.shopify_id(e.item -> 'id')) AS v,
			   @extschema@.shopify_id(e.item -> 'product_id') AS p
		FROM jsonb_array_elements(items) WITH ORDINALITY AS e(item, n)),
	-- (the level matters only when an object gives both: read then only)
	level AS (
		SELECT EXISTS (SELECT FROM @extschema@.order_source s WHERE s.kind = 'shopify' AND s.product_id = 'product_id')
			   OR EXISTS (SELECT FROM @extschema@.product_source s WHERE s.kind = 'shopify' AND s.product_id = 'product_id')
			   AS of_products)
	SELECT i.n, i.item,
		   CASE WHEN i.p IS NOT NULL AND i.v IS NOT NULL AND (SELECT l.of_products FROM level l) THEN i.p
				WHEN i.v IS NOT NULL OR i.p IS NULL THEN i.v
				ELSE coalesce((SELECT s.product_id
							   FROM @extschema@.shopify_product_model s
							   LEFT JOIN @extschema@.product_model m ON m.tenant_id = s.tenant_id AND m.product_id = s.product_id
							   WHERE s.tenant_id = t AND s.parent_id = i.p AND s.product_id <> i.p
							   ORDER BY m.orders DESC NULLS LAST, s.product_id
							   LIMIT 1), i.p) END
	FROM ids i
	ORDER BY i.n;
END
$$;

-- Money as Shopify writes it: a decimal string with two places.  (No SET
-- clause: the body, parsed at creation and fully qualified, reads no
-- search_path, and without one the planner inlines the call into
-- offers_json's query instead of calling it per amount; STABLE, as to_jsonb
-- is, which inlining also needs.)
CREATE FUNCTION @extschema@._json_money(amount numeric)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.to_jsonb(pg_catalog.round(amount, 2)::text);

CREATE FUNCTION @extschema@.offers_json(stage text, request jsonb DEFAULT '{}', tenant_id bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	experiment text;
	unit text;
	product bigint;
	products bigint[];
	quantities numeric[];
	bad_quantity bigint;
	currency text;
	customer bigint;
	offers @extschema@.offer[];
	notes text[] := '{}';
	missing bigint[];
	applies boolean;
BEGIN
	IF request IS NULL OR jsonb_typeof(request) <> 'object' THEN
		RAISE EXCEPTION 'request must be a JSON object, not %', coalesce(jsonb_typeof(request), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example {"variant_id": 808950810} on the product page.';
	END IF;
	experiment := @extschema@._json_text(request -> 'experiment');
	unit := @extschema@._json_unit(request -> 'unit_id');
	IF request ? 'experiment' AND experiment IS NULL THEN
		RAISE EXCEPTION 'experiment must be a string, not %', request -> 'experiment'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF experiment IS NOT NULL AND unit IS NULL THEN
		RAISE EXCEPTION 'an experiment needs a unit_id (a customer id, number or gid, or a visitor token)'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	CASE stage
		WHEN 'product_page' THEN
			SELECT j.product_id INTO product FROM @extschema@._json_products(t, jsonb_build_array(request)) j;
			IF product IS NULL THEN
				RAISE EXCEPTION 'the product page needs a variant_id or product_id (a number or gid string)'
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'For example {"variant_id": 808950810} or {"product_id": "gid://shopify/Product/632910392"}.';
			END IF;
			offers := ARRAY(SELECT o FROM @extschema@.product_page_offers(product, t, experiment, unit) o);
			IF NOT EXISTS (SELECT FROM @extschema@.product_model m WHERE m.tenant_id = t AND m.product_id = product) THEN
				notes := notes || format('product %s is not in the models (not ordered and not in the catalog at the last refresh)', product);
			END IF;
		WHEN 'cart' THEN
			IF jsonb_typeof(request -> 'items') IS DISTINCT FROM 'array' THEN
				RAISE EXCEPTION 'the cart needs items, an array of {"variant_id", "quantity"}'
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'The items of Shopify''s /cart.js have this shape.';
			END IF;
			-- a string as it is (cart_offers checks the code, an empty one
			-- too); JSON null is none
			currency := CASE WHEN jsonb_typeof(request -> 'currency') = 'string' THEN request ->> 'currency' END;
			IF jsonb_typeof(request -> 'currency') NOT IN ('string', 'null') THEN
				RAISE EXCEPTION 'currency must be a string (an ISO 4217 code), not %', request -> 'currency'
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			-- an item without a quantity (or with JSON null) is one unit; a
			-- quantity that is no whole number, or below 1 or beyond what an
			-- int holds, is the caller's error, refused by name as
			-- cart_offers refuses it (read as 1, or rounded, until 1.6)
			SELECT array_agg(x.p ORDER BY x.n), array_agg(coalesce(x.q, 1) ORDER BY x.n),
				   coalesce(array_agg(x.n) FILTER (WHERE x.p IS NULL), '{}'),
				   (array_agg(x.n ORDER BY x.n)
						FILTER (WHERE x.q > 2147483647 OR x.q < 1 OR x.q <> trunc(x.q) OR (x.q IS NULL AND x.given)))[1]
			INTO products, quantities, missing, bad_quantity
			FROM (SELECT j.n, j.product_id AS p,
						 @extschema@._json_number(j.item -> 'quantity') AS q,
						 coalesce(jsonb_typeof(j.item -> 'quantity') <> 'null', false) AS given
				  FROM @extschema@._json_products(t, request -> 'items') j) x;
			IF bad_quantity IS NOT NULL THEN
				RAISE EXCEPTION 'cart item %: quantity % is not a number of units a cart holds', bad_quantity,
					request -> 'items' -> (bad_quantity::int - 1) -> 'quantity'
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'A quantity is a whole number of units, from 1 to 2147483647; an item without one is one unit.';
			END IF;
			notes := ARRAY(SELECT format('cart item %s has no readable variant_id or product_id (a whole number from 0, or a Shopify gid): left out', n) FROM unnest(missing) n)
				|| ARRAY(SELECT format('product %s is not in the models (not ordered and not in the catalog at the last refresh)', p)
						 FROM unnest(products) WITH ORDINALITY AS u(p, n)
						 WHERE p IS NOT NULL
						   AND NOT EXISTS (SELECT FROM @extschema@.product_model m WHERE m.tenant_id = t AND m.product_id = u.p)
						 ORDER BY n);
			offers := ARRAY(SELECT o FROM @extschema@.cart_offers(
								ARRAY(SELECT p FROM unnest(products, quantities) AS u(p, q) WHERE p IS NOT NULL),
								ARRAY(SELECT q::int FROM unnest(products, quantities) AS u(p, q) WHERE p IS NOT NULL),
								t, experiment, unit, currency) o);
		WHEN 'post_purchase' THEN
			-- (an order_id of JSON null is none: the request then needs items)
			IF jsonb_typeof(request -> 'order_id') IS DISTINCT FROM 'null' AND request ? 'order_id' THEN
				-- the order's id as registered (text ids such as 'ORD-99'
				-- too), or as Shopify writes it (a number or a gid)
				SELECT m.items, m.customer_id INTO products, customer
				FROM @extschema@.order_model m
				WHERE m.tenant_id = t
				  AND (m.order_id = request ->> 'order_id'
					   OR m.order_key = @extschema@.shopify_id(request -> 'order_id'))
				ORDER BY m.order_id = request ->> 'order_id' DESC
				LIMIT 1;
				IF NOT FOUND THEN
					notes := notes || format('order %s is not among the recent orders of the last refresh', request ->> 'order_id');
				END IF;
			ELSIF jsonb_typeof(request -> 'items') = 'array' THEN
				SELECT array_agg(x.p ORDER BY x.n) FILTER (WHERE x.p IS NOT NULL),
					   coalesce(array_agg(x.n ORDER BY x.n) FILTER (WHERE x.p IS NULL), '{}')
				INTO products, missing
				FROM (SELECT j.n, j.product_id AS p FROM @extschema@._json_products(t, request -> 'items') j) x;
				notes := notes || ARRAY(SELECT format('order item %s has no readable variant_id or product_id (a whole number from 0, or a Shopify gid): left out', n)
							   FROM unnest(missing) n);
				-- the customer's id as the registered customer ids are (a
				-- number, text, or Shopify's gid)
				IF jsonb_typeof(request -> 'customer_id') IS DISTINCT FROM 'null' AND request ? 'customer_id' THEN
					IF EXISTS (SELECT FROM @extschema@.order_source s WHERE s.customer_id IS NOT NULL) THEN
						customer := coalesce(@extschema@._unit_customer(request ->> 'customer_id', @extschema@._customer_id_kind()),
											 @extschema@.shopify_id(request -> 'customer_id'));
					END IF;
					IF customer IS NULL THEN
						notes := notes || format('customer %s is not an id of the registered customers: offered without their history',
												 request -> 'customer_id');
					END IF;
				END IF;
			ELSE
				RAISE EXCEPTION 'the post-purchase page needs an order_id, or items and a customer_id'
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			offers := ARRAY(SELECT o FROM @extschema@.post_purchase_offers(coalesce(products, '{}'), customer, t,
																			experiment, unit) o);
		ELSE
			RAISE EXCEPTION 'stage must be product_page, cart or post_purchase, not %', coalesce(quote_literal(stage), 'NULL')
				USING ERRCODE = 'invalid_parameter_value';
	END CASE;
	applies := @extschema@.variant_offer_types(experiment, unit, stage, t) IS NOT NULL;
	IF applies AND NOT @extschema@._weights_usable(experiment) THEN
		-- (assign() then gives every unit the control rather than fail the page)
		notes := notes || format('the weights of experiment "%s" are all zero: every unit gets variant "%s"',
								 experiment, @extschema@.assign(experiment, unit));
	ELSIF experiment IS NOT NULL AND NOT applies AND @extschema@.assign(experiment, unit) IS NULL THEN
		-- (no variants yet: served as without the experiment, not failed)
		notes := notes || format('experiment "%s" has no variants: served without it', experiment);
	END IF;
	RETURN jsonb_strip_nulls(jsonb_build_object(
		'stage', stage,
		'experiment', CASE WHEN applies THEN jsonb_build_object('name', experiment,
																 'variant', @extschema@.assign(experiment, unit)) END,
		-- each offer as a widget renders it, in this one query (planned once
		-- per session: a SQL function per offer was planned again at every
		-- request, most of a request's millisecond)
		'offers', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					   'rank', o."rank", 'type', o.offer_type, 'reason', o.reason,
					   'discount', o.discount, 'score', round(o.score::numeric, 6),
					   'price', @extschema@._json_money(d.price),
					   'discounted_price', @extschema@._json_money(d.discounted_price),
					   'items', d.items) ORDER BY o."rank")
			FROM unnest(offers) o,
				 LATERAL (
					-- (an offer's price is of all its items, or unknown)
					SELECT CASE WHEN count(m.price) = count(*) THEN sum(m.price) END AS price,
						   CASE WHEN count(m.price) = count(*) THEN sum(round(m.price * (1 - o.discount), 2)) END
							   AS discounted_price,
						   jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
							   'product_id', coalesce(s.product_ref, to_jsonb(u.id)),
							   'variant_id', s.variant_ref,
							   'title', m.title, 'product_title', s.product_title, 'variant_title', s.variant_title,
							   'sku', s.sku, 'category', m.category,
							   'price', @extschema@._json_money(m.price),
							   'discounted_price', @extschema@._json_money(round(m.price * (1 - o.discount), 2)),
							   'compare_at_price', @extschema@._json_money(s.compare_at_price),
							   'available', m.in_stock)) ORDER BY u.n) AS items
					FROM unnest(o.product_ids) WITH ORDINALITY AS u(id, n)
					LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = u.id
					LEFT JOIN @extschema@.shopify_product_model s ON s.tenant_id = t AND s.product_id = u.id) d), '[]'),
		'notes', CASE WHEN cardinality(notes) > 0 THEN to_jsonb(notes) END));
END
$$;
COMMENT ON FUNCTION @extschema@.offers_json(text, jsonb, bigint) IS
	'one JSON document of offers for a storefront widget: stage product_page ({"variant_id"} or {"product_id"}), cart ({"items": [{"variant_id", "quantity"}]}) or post_purchase ({"order_id"}); optional "experiment" and "unit_id"; ids as the shop registered them';

CREATE FUNCTION @extschema@.record_event(event jsonb, tenant_id bigint DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	kind text;
	offer_type text;
	stage text;
	unit text;
	experiment text;
	at timestamptz := now();
	items jsonb;
	products bigint[];
	n int;
BEGIN
	IF event IS NULL OR jsonb_typeof(event) <> 'object' THEN
		RAISE EXCEPTION 'event must be a JSON object, not %', coalesce(jsonb_typeof(event), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	kind := @extschema@._json_text(event -> 'event');
	IF kind IS NULL OR kind NOT IN ('shown', 'click', 'add') THEN
		RAISE EXCEPTION 'event must be "shown", "click" or "add", not %', coalesce((event -> 'event')::text, 'missing')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	offer_type := @extschema@._json_text(coalesce(event -> 'type', event -> 'offer_type'));
	IF offer_type IS NULL OR NOT offer_type = ANY (@extschema@._offer_types()) THEN
		RAISE EXCEPTION 'type must be an offer type of offers_json, not %',
			coalesce(coalesce(event -> 'type', event -> 'offer_type')::text, 'missing')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('The offer types are: %s.', array_to_string(@extschema@._offer_types(), ', '));
	END IF;
	stage := @extschema@._json_text(event -> 'stage');
	IF event ? 'stage' AND (stage IS NULL OR stage NOT IN ('product_page', 'cart', 'post_purchase')) THEN
		RAISE EXCEPTION 'stage must be product_page, cart or post_purchase, not %', event -> 'stage'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	unit := @extschema@._json_unit(event -> 'unit_id');
	IF unit IS NULL THEN
		RAISE EXCEPTION 'unit_id is required: a customer id (number or gid) or a visitor token'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	experiment := @extschema@._json_text(event -> 'experiment');
	IF event ? 'experiment' AND jsonb_typeof(event -> 'experiment') <> 'null' AND experiment IS NULL THEN
		RAISE EXCEPTION 'experiment must be a string, not %', event -> 'experiment'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF experiment IS NOT NULL THEN
		-- the split lock before the experiment is looked at: one deleted or
		-- renamed meanwhile is then refused here, not by a foreign key
		PERFORM @extschema@._share_split_lock();
		PERFORM @extschema@._experiment(experiment, t);	-- the tenant's, or a clear error
	END IF;
	IF event ? 'occurred_at' THEN
		at := @extschema@._json_time(event -> 'occurred_at');
		IF at IS NULL THEN
			RAISE EXCEPTION 'occurred_at must be an ISO 8601 time with an offset, not %', event -> 'occurred_at'
				USING ERRCODE = 'invalid_datetime_format',
					  HINT = 'For example "2024-03-01T10:00:00-05:00".';
		END IF;
	END IF;
	-- the products: the offer's items (as offers_json gave them) or one
	-- product, not both (which of them was meant is not ours to guess)
	IF event ? 'items' AND (event ? 'product_id' OR event ? 'variant_id' OR event ? 'id') THEN
		RAISE EXCEPTION 'an event names its products by items or by one variant_id or product_id, not both'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Event: %s.', event);
	END IF;
	items := CASE WHEN jsonb_typeof(event -> 'items') = 'array' THEN event -> 'items'
				  ELSE jsonb_build_array(event) END;
	products := ARRAY(SELECT j.product_id FROM @extschema@._json_products(t, items) j ORDER BY j.n);
	IF cardinality(products) = 0 OR array_position(products, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'every product of the event needs a variant_id or product_id (a number or gid string)'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Event: %s.', event);
	END IF;
	INSERT INTO @extschema@.offer_events (tenant_id, unit_id, offer_type, product_id, event, stage, experiment, occurred_at)
	SELECT t, unit, offer_type, p, kind, stage, experiment, at
	FROM unnest(products) p;
	GET DIAGNOSTICS n = ROW_COUNT;
	-- an offer shown in an experiment is an exposure of the unit to its variant
	IF kind = 'shown' AND experiment IS NOT NULL THEN
		PERFORM @extschema@.record_exposure(experiment, unit, stage, offer_type, at);
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION @extschema@.record_event(jsonb, bigint) IS
	'records a storefront widget''s event in offers_json''s words: {"event": "shown"|"click"|"add", "type", "stage", "unit_id", "variant_id" or "product_id" or "items": [...], "experiment", "occurred_at"}; returns the rows added to upsell.offer_events (a shown event in an experiment is also an exposure)';

-- ===========================================================================
-- Registration drift: a registered column renamed, dropped or retyped
-- ===========================================================================
--
-- The registrations name the shop's columns.  A column renamed, dropped or
-- retyped afterwards leaves a registration that no longer matches its
-- table: refresh checks every registration first, and fails with an error
-- that names the registration and the column, before any build, so the
-- models of the last refresh keep serving (the stages read the models, not
-- the shop's tables, and do not check: until 1.6 they did, with an event
-- trigger on ALTER TABLE telling their caches to, and one migration of the
-- shop's table failed every page).

-- The columns the registrations map, one row each: which registration
-- (its function's name), what it registers, the relation, the column's role
-- and name, and how it is checked (check_as: 'column', a column that must
-- exist with a type of its role, as _column_expr requires).  Only the
-- columns a registration actually maps are listed: a kind of registration
-- that reads some fields from elsewhere (a document column, say) lists just
-- the columns it reads, with its own check_as.
CREATE FUNCTION @extschema@._registered_columns()
RETURNS TABLE (registration text, what text, relation oid, role text, col text, check_as text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	-- a Shopify registration's roles name document fields, not columns: it
	-- maps its payload column (json or jsonb), its tenant column and the
	-- products' collection column
	SELECT CASE s.kind WHEN 'shopify' THEN 'register_shopify_orders' ELSE 'register_orders' END,
		   'order lines', s.relation, c.role, c.col, CASE c.role WHEN 'payload' THEN 'payload' ELSE 'column' END
	FROM @extschema@.order_source s,
		 LATERAL (VALUES ('order_id', s.order_id), ('product_id', s.product_id),
						 ('customer_id', s.customer_id), ('ordered_at', s.ordered_at),
						 ('quantity', s.quantity), ('unit_price', s.unit_price),
						 ('tenant_id', s.tenant_id), ('payload', s.payload)) c(role, col)
	WHERE c.col IS NOT NULL AND (s.kind = 'columns' OR c.role IN ('tenant_id', 'payload'))
	UNION ALL
	SELECT CASE s.kind WHEN 'shopify' THEN 'register_shopify_products' ELSE 'register_products' END,
		   'catalog', s.relation, c.role, c.col, CASE c.role WHEN 'payload' THEN 'payload' ELSE 'column' END
	FROM @extschema@.product_source s,
		 LATERAL (VALUES ('product_id', s.product_id), ('price', s.price), ('category', s.category),
						 ('variant_group', s.variant_group), ('in_stock', s.in_stock), ('title', s.title),
						 ('tenant_id', s.tenant_id), ('unit_size', s.unit_size),
						 ('unit_name', s.unit_name), ('payload', s.payload),
						 ('collection', s.collection)) c(role, col)
	WHERE c.col IS NOT NULL AND (s.kind = 'columns' OR c.role IN ('tenant_id', 'payload', 'collection'))
	UNION ALL
	SELECT 'register_carts', 'carts', s.relation, c.role, c.col, 'column'
	FROM @extschema@.cart_source s,
		 LATERAL (VALUES ('cart_id', s.cart_id), ('customer_id', s.customer_id),
						 ('product_id', s.product_id), ('quantity', s.quantity), ('added_at', s.added_at),
						 ('checked_out_at', s.checked_out_at), ('tenant_id', s.tenant_id)) c(role, col)
	WHERE c.col IS NOT NULL
$$;
COMMENT ON FUNCTION @extschema@._registered_columns() IS
	'internal: the columns the registrations map (registration, relation, role, column, how it is checked)';

-- The registered relations, one row each: what they register (as
-- _registered_columns names it), the relation and when it was registered.
-- The name a relation had when it was registered is kept from refresh to
-- refresh in source_state.registration (registered_as, _build_source_state)
-- until it is registered again, so that every refresh can say when that
-- name is another relation's now (_refresh_check_sources).
CREATE FUNCTION @extschema@._registered_relations()
RETURNS TABLE (what text, relation oid, registered_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'order lines', s.relation, s.registered_at FROM @extschema@.order_source s
	UNION ALL
	SELECT 'catalog', s.relation, s.registered_at FROM @extschema@.product_source s
	UNION ALL
	SELECT 'carts', s.relation, s.registered_at FROM @extschema@.cart_source s
$$;
COMMENT ON FUNCTION @extschema@._registered_relations() IS
	'internal: the registered relations (what they register, relation, when registered)';

-- (PARALLEL UNSAFE: it catches errors in subtransactions, which a parallel
-- query refuses)
CREATE FUNCTION @extschema@._check_registrations()
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	msg text;
	state text;
	registration text;
BEGIN
	FOR r IN SELECT * FROM @extschema@._registered_columns() LOOP
		BEGIN
			PERFORM @extschema@._check_relation(r.relation, r.what);
			IF r.check_as = 'column' THEN
				PERFORM @extschema@._column_expr(r.relation, r.col, r.role);
			ELSIF r.check_as = 'payload' THEN
				PERFORM @extschema@._shopify_payload(r.relation, r.col);
			ELSE
				RAISE EXCEPTION 'unknown check % of registration upsell.%()', r.check_as, r.registration
					USING ERRCODE = 'internal_error';
			END IF;
		EXCEPTION WHEN undefined_table OR undefined_column OR datatype_mismatch THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
			RAISE EXCEPTION 'registration upsell.%() no longer matches its table: the % column "%": %',
				r.registration, r.role, r.col, msg
				USING ERRCODE = state,
					  HINT = format('Call upsell.%s() again with the table''s current columns.', r.registration);
		END;
	END LOOP;
	-- A view reads a column by its position, not its name: a registered
	-- column renamed away and another added under its name left the view on
	-- the old one, which the names above do not show (until 1.8 refresh then
	-- built every model from the old column, and logged ok).  Every column
	-- a view of the extension reads of a registered table must be one the
	-- registrations name.
	SELECT format('the view %s reads column "%s" of %s, which no registration names',
				  w.ev_class::regclass, a.attname, d.refobjid::regclass),
		   (SELECT rc.registration FROM @extschema@._registered_columns() rc
			WHERE rc.relation = d.refobjid LIMIT 1)
	INTO msg, registration
	FROM pg_depend d
	JOIN pg_rewrite w ON w.oid = d.objid
	JOIN pg_class v ON v.oid = w.ev_class
	JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
	WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
	  AND d.refobjsubid > 0
	  AND v.relnamespace = '@extschema@'::regnamespace
	  AND d.refobjid IN (SELECT rc.relation FROM @extschema@._registered_columns() rc)
	  AND a.attname NOT IN (SELECT rc.col FROM @extschema@._registered_columns() rc WHERE rc.relation = d.refobjid)
	ORDER BY w.ev_class::regclass::text, a.attnum
	LIMIT 1;
	IF msg IS NOT NULL THEN
		RAISE EXCEPTION 'registration upsell.%() no longer matches its table: %', registration, msg
			USING ERRCODE = 'undefined_column',
				  DETAIL = 'A registered column renamed and another added under its name leaves the view on the renamed one.',
				  HINT = format('Call upsell.%s() again with the table''s current columns.', registration);
	END IF;
END
$$;
COMMENT ON FUNCTION @extschema@._check_registrations() IS
	'internal: raises, naming the registration and the column, when a registered column was renamed, dropped or retyped, or a view of the registrations reads a column no registration names';


-- ===========================================================================
-- Privileges: the roles upsell_reader and upsell_admin
-- ===========================================================================
--
-- Every function runs with the caller's rights (no SECURITY DEFINER), so
-- table privileges are the whole privilege model.  Two roles carry them;
-- grant them to the roles that log in:
--
--   GRANT upsell_reader TO shop_app;	-- app backends: serve offers
--   GRANT upsell_admin TO shop_ops;	-- merchant rules, the refresh log
--
-- upsell_reader may SELECT the models (every table the serving functions
-- read, order_model's recent orders for post-purchase offers included), the
-- model catalogue and the merchant's rules, and record exposures and events;
-- it may not read order lines (upsell.order_lines, the registered tables),
-- the catalog (upsell.catalog, the registered product table), carts or the
-- refresh log.  upsell_admin is a reader that may also read every table of
-- the extension and change the merchant's rules and experiments (below).
--
-- Roles belong to the cluster, not the database: CREATE EXTENSION creates
-- them when they do not exist yet (NOLOGIN), and a second database's
-- CREATE EXTENSION finds them and grants its own objects.  DROP EXTENSION
-- leaves them (other databases may use them).  This runs last, after every
-- layer created its relations.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'upsell_reader') THEN
		CREATE ROLE upsell_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'upsell_admin') THEN
		CREATE ROLE upsell_admin NOLOGIN;
	END IF;
END
$$;
COMMENT ON ROLE upsell_reader IS 'upsell: serve offers (app backends); no order lines, catalog or carts';
COMMENT ON ROLE upsell_admin IS 'upsell: merchant rules and the refresh log; a reader too';

GRANT upsell_reader TO upsell_admin;
GRANT USAGE ON SCHEMA @extschema@ TO upsell_reader, upsell_admin;

-- the reader: the merchant's rules, the registrations (names of relations
-- and columns, checked when the serving cache is read), the serving state,
-- the model catalogue and every model table (serving reads them directly:
-- the cart reads cart_model, post-purchase offers read order_model), and
-- the views over model tables: purchase_interval_model (over
-- purchase_history_model), upgrade_model (over upgrade_list_model) and
-- pair_model (over pair_list_model)
GRANT SELECT ON @extschema@.serving_state, @extschema@.model_definitions, @extschema@.model_builds,
	@extschema@.models, @extschema@.order_source,
	@extschema@.product_source, @extschema@.cart_source,
	@extschema@.stage_settings, @extschema@.offers, @extschema@.exclusions, @extschema@.thresholds,
	@extschema@.volume_tiers, @extschema@.consumables, @extschema@.experiments,
	@extschema@.experiment_variants, @extschema@.product_page_offers, @extschema@.post_purchase_offers,
	@extschema@.purchase_interval_model, @extschema@.upgrade_model, @extschema@.pair_model,
	@extschema@.product_popularity
	TO upsell_reader;
GRANT SELECT, INSERT ON @extschema@.exposures TO upsell_reader;
GRANT INSERT ON @extschema@.offer_events TO upsell_reader;
DO $$
DECLARE
	m pg_catalog.name;
BEGIN
	FOR m IN SELECT d.model FROM @extschema@.model_definitions d LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.%I TO upsell_reader', m);
	END LOOP;
END
$$;

-- the admin reads every table and changes the merchant's rules, the
-- experiments and their records, and prunes the refresh log; the
-- registrations, the model catalogue and the models are the owner's (it
-- registers and refreshes).  What a refresh reads or runs must not be the
-- admin's to choose: a registration names the relation a superuser's
-- refresh reads (a view over a function of the admin's), model_definitions
-- the builders it calls.  (Until 1.6 the admin could change every table:
-- taken back here from a schema an earlier install left.)
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA @extschema@ FROM upsell_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA @extschema@ TO upsell_admin;
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON @extschema@.stage_settings, @extschema@.offers,
	@extschema@.exclusions, @extschema@.category_substitutes, @extschema@.thresholds,
	@extschema@.volume_tiers, @extschema@.consumables, @extschema@.experiments,
	@extschema@.experiment_variants, @extschema@.exposures, @extschema@.offer_events
	TO upsell_admin;
GRANT DELETE ON @extschema@.refresh_log TO upsell_admin;
-- The rules' triggers draw config versions (nextval: USAGE), and store one
-- (serving_state, whose own trigger draws every version stored: an UPDATE
-- cannot set an old one back).  Not UPDATE on the sequences: setval would
-- rewind or exhaust them, the refresh log's and the versions', and every
-- refresh would fail (nextval at the maximum, a duplicate refresh_id).
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM upsell_admin;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA @extschema@ TO upsell_admin;
GRANT UPDATE ON @extschema@.serving_state TO upsell_admin;

-- Nobody but the extension's owner creates objects in its schema.  A role
-- that could would plant an overload there (a _publish(text, ...) is
-- preferred over _publish(name, ...) for a string literal, qualified call
-- or not) or a function called by a registered view, and the next refresh
-- by a superuser (a pg_cron job) would run it with the superuser's rights.
-- Until 1.6 upsell_admin could (registration created its views as the
-- admin); registration and refresh are now the owner's.  A schema left by
-- an earlier install keeps its grants: taken back here, and what is in it
-- that upsell did not create stops the install or update.
-- The schema's owner may always create there, whatever is revoked: a
-- schema made before the install by another role (CREATE SCHEMA upsell by
-- a role with CREATE on the database) would let that role plant such a
-- function after it.  So the owner is the installing role or a superuser.
REVOKE CREATE ON SCHEMA @extschema@ FROM PUBLIC, upsell_reader, upsell_admin;
DO $$
DECLARE
	strangers text;
	owner name;
BEGIN
	SELECT r.rolname INTO owner
	FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
	WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
	  AND r.rolname OPERATOR(pg_catalog.<>) CURRENT_USER AND NOT r.rolsuper;
	IF owner IS NOT NULL THEN
		RAISE EXCEPTION 'schema @extschema@ is owned by role %, not by %, who installs upsell', owner, CURRENT_USER
			USING ERRCODE = 'insufficient_privilege',
				  HINT = format('Its owner could create functions there that a superuser''s refresh would run.  ALTER SCHEMA @extschema@ OWNER TO %I, then create or update the extension.', CURRENT_USER);
	END IF;
	SELECT pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::text, ', ' ORDER BY p.oid::pg_catalog.regprocedure::text)
	INTO strangers
	FROM pg_catalog.pg_proc p
	WHERE p.pronamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
	  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
					  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
						AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.deptype OPERATOR(pg_catalog.=) 'e');
	IF strangers IS NOT NULL THEN
		RAISE EXCEPTION 'schema @extschema@ holds functions that upsell did not create: %', strangers
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'A function there would run when a superuser refreshes.  Drop them (or install into a new schema), then create or update the extension.';
	END IF;
END
$$;

-- A side build's worker runs any query it is given (as its caller): the
-- refresh's, that is the owner's, not an app role's nor the admin's (it
-- would take the worker slots parallel query and the refresh need: a
-- pg_cron job could then not start).
REVOKE EXECUTE ON FUNCTION @extschema@._side_start(text, text) FROM PUBLIC, upsell_admin;
