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
