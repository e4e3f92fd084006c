-- The readers of the counts that build the category and pair models, against
-- the SQL they replace, on the arules "Groceries" baskets (169 products, some
-- in fewer than 20 orders): pairs within categories in one pass
-- (_cooccurrence_category_pairs), and the top pairs that keep a rare
-- product's pairs seen once (cooccurrence_top_pairs' rare_orders), and the
-- pair moments of the cooccurrence model's pair_dispersion.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_groceries.sql
\set ECHO all
RESET client_min_messages;
CREATE TEMP TABLE st AS
SELECT upsell.cooccurrence_agg(order_id, item_id) AS state FROM groceries.lines;
-- categories: item_id % 5, none for every 11th item
CREATE TEMP TABLE cat AS
SELECT item_id, CASE WHEN item_id % 11 <> 0 THEN (item_id % 5)::int END AS key FROM groceries.items;

-- per category and over all pairs, in one pass
CREATE TEMP TABLE fast AS
SELECT x.category_key, x.together
FROM st, (SELECT array_agg(item_id ORDER BY item_id DESC) AS ids,
				 array_agg(key ORDER BY item_id DESC) AS keys FROM cat) k,
	 upsell._cooccurrence_category_pairs(st.state, k.ids, k.keys) x;
-- every pair listed (each pair once), joined to both products' categories
CREATE TEMP TABLE slow AS
WITH p AS (SELECT x.product_id, x.other_id, x.together
		   FROM st, upsell.cooccurrence_pairs(st.state, 1, 0, 0) x WHERE x.product_id < x.other_id)
SELECT a.key AS category_key, sum(p.together)::bigint AS together
FROM p JOIN cat a ON a.item_id = p.product_id JOIN cat b ON b.item_id = p.other_id
WHERE a.key = b.key GROUP BY a.key
UNION ALL
SELECT NULL, sum(p.together)::bigint FROM p;
SELECT * FROM fast ORDER BY category_key NULLS FIRST;
SELECT (SELECT count(*) FROM (TABLE fast EXCEPT TABLE slow) d) AS only_fast,
	   (SELECT count(*) FROM (TABLE slow EXCEPT TABLE fast) d) AS only_slow;
-- no products given: the total only; counts without pairs: a total of 0
SELECT x.* FROM st, upsell._cooccurrence_category_pairs(st.state, '{}', '{}') x;
SELECT * FROM upsell._cooccurrence_category_pairs(
	(SELECT upsell.cooccurrence_agg(1, p) FROM generate_series(1, 1) p), '{1}', '{0}');
-- bad input: a clear error each
SELECT x.* FROM st, upsell._cooccurrence_category_pairs(st.state, '{1,2}', '{0}') x;
SELECT x.* FROM st, upsell._cooccurrence_category_pairs(st.state, '{1,NULL}', '{0,0}') x;
SELECT x.* FROM st, upsell._cooccurrence_category_pairs(st.state, '{1,2,1}', '{0,1,0}') x;
SELECT x.* FROM st, upsell._cooccurrence_category_pairs(st.state, '{1,2}', '{0,2}') x;
SELECT x.* FROM st, upsell._cooccurrence_category_pairs(st.state, '{1,2}', '{-1,0}') x;
SELECT x.* FROM st, upsell._cooccurrence_category_pairs(st.state, '{{1,2}}', '{{0,1}}') x;

-- the pair model's rule: pairs seen twice, or once for a product in fewer
-- than 20 orders, among each product's 50 best -- as the counting core
-- applies it, and as SQL filtered the top pairs among those seen once
CREATE TEMP TABLE top_fast AS
SELECT t.* FROM st, upsell.cooccurrence_top_pairs(st.state, 50, 2, 20) t;
CREATE TEMP TABLE top_slow AS
SELECT t.* FROM st, upsell.cooccurrence_top_pairs(st.state, 50, 1) t
WHERE t.together >= 2
   OR (SELECT count(DISTINCT l.order_id) FROM groceries.lines l WHERE l.item_id = t.product_id) < 20;
SELECT count(*) AS pairs, count(*) FILTER (WHERE together = 1) AS seen_once,
	   count(DISTINCT product_id) FILTER (WHERE together = 1) AS rare_products_with_pairs_seen_once
FROM top_fast;
SELECT (SELECT count(*) FROM (TABLE top_fast EXCEPT TABLE top_slow) d) AS only_fast,
	   (SELECT count(*) FROM (TABLE top_slow EXCEPT TABLE top_fast) d) AS only_slow;
-- rare_orders 0 (the default): every product keeps only its pairs seen twice
SELECT count(*) AS pairs FROM st, upsell.cooccurrence_top_pairs(st.state, 50, 2, 0) t WHERE t.together < 2;
SELECT count(*) FROM st, upsell.cooccurrence_top_pairs(st.state, 50, 2, -1);

-- the same pairs one row per product (pair_list_model's rows): every pair
-- of the top pairs at its rank (score descending, then partner), the
-- arrays in step; per_product bounds each list
CREATE TEMP TABLE top_lists AS
SELECT t.* FROM st, upsell._cooccurrence_top_lists(st.state, 50, 2, 20) t;
SELECT count(*) AS lists, count(DISTINCT product_id) AS products, sum(cardinality(other_ids)) AS pairs,
	   max(cardinality(other_ids)) AS longest,
	   bool_and(cardinality(together) = cardinality(other_ids) AND cardinality(score) = cardinality(other_ids)
				AND cardinality(confidence) = cardinality(other_ids)) AS in_step
FROM top_lists;
CREATE TEMP TABLE top_ranked AS
SELECT t.product_id, t.other_id, t.together, t.score, t.confidence,
	   row_number() OVER (PARTITION BY t.product_id ORDER BY t.score DESC, t.other_id) AS r FROM top_fast t;
CREATE TEMP TABLE lists_ranked AS
SELECT l.product_id, u.other_id, u.together, u.score, u.confidence, u.r
FROM top_lists l, unnest(l.other_ids, l.together, l.score, l.confidence)
	 WITH ORDINALITY u(other_id, together, score, confidence, r);
SELECT (SELECT count(*) FROM (TABLE top_ranked EXCEPT TABLE lists_ranked) d) AS only_pairs,
	   (SELECT count(*) FROM (TABLE lists_ranked EXCEPT TABLE top_ranked) d) AS only_lists;
-- for some products only (what an incremental refresh lists again): the
-- same rows as the whole lists' and top pairs' of those products; ids not
-- counted and NULL ids are ignored
CREATE TEMP TABLE chosen AS
SELECT array_agg(product_id ORDER BY product_id) || ARRAY[-1, NULL]::bigint[] AS ids
FROM (SELECT product_id FROM top_lists ORDER BY hashint8(product_id) LIMIT 40) p;
SELECT (SELECT cardinality(ids) FROM chosen) AS asked,
	   (SELECT count(*) FROM chosen, st, upsell._cooccurrence_top_lists(st.state, 50, 2, 20, chosen.ids)) AS lists,
	   (SELECT count(*) FROM ((SELECT t.* FROM chosen, st, upsell._cooccurrence_top_lists(st.state, 50, 2, 20, chosen.ids) t)
							  EXCEPT (SELECT l.* FROM top_lists l, chosen WHERE l.product_id = ANY (chosen.ids))) d) AS lists_differ,
	   (SELECT count(*) FROM ((SELECT l.* FROM top_lists l, chosen WHERE l.product_id = ANY (chosen.ids))
							  EXCEPT (SELECT t.* FROM chosen, st, upsell._cooccurrence_top_lists(st.state, 50, 2, 20, chosen.ids) t)) d) AS lists_missing,
	   (SELECT count(*) FROM ((SELECT t.* FROM chosen, st, upsell.cooccurrence_top_pairs(st.state, 50, 2, 20, chosen.ids) t)
							  EXCEPT ALL (SELECT f.* FROM top_fast f, chosen WHERE f.product_id = ANY (chosen.ids))) d)
	 + (SELECT count(*) FROM ((SELECT f.* FROM top_fast f, chosen WHERE f.product_id = ANY (chosen.ids))
							  EXCEPT ALL (SELECT t.* FROM chosen, st, upsell.cooccurrence_top_pairs(st.state, 50, 2, 20, chosen.ids) t)) d)
		AS top_pairs_differ;
SELECT count(*) FROM st, upsell._cooccurrence_top_lists(st.state, 50, 2, 20, '{}');
SELECT max(cardinality(t.other_ids)) AS longest FROM st, upsell._cooccurrence_top_lists(st.state, 3, 2, 20) t;
SELECT count(*) FROM st, upsell._cooccurrence_top_lists(st.state, 0, 2, 20);
SELECT count(*) FROM st, upsell._cooccurrence_top_lists(st.state, 5, 2, -1);

-- the counts in chunks (upsell.cooccurrence_chunks): every product in each,
-- every pair in one, at most max_pairs pairs each; the pairs listed chunk by
-- chunk are the pairs of the whole
SELECT count(*) AS chunks, sum(i.pairs) = (SELECT i.pairs FROM st, upsell.cooccurrence_info(st.state) i) AS all_pairs,
	   bool_and(i.products = (SELECT count(*) FROM groceries.items)) AS every_product,
	   max(i.pairs) <= 500 AS bounded, count(*) FILTER (WHERE c.first_product IS NULL) AS without_first
FROM st, upsell.cooccurrence_chunks(st.state, 500) c, upsell.cooccurrence_info(c.state) i;
SELECT count(*) AS pairs_not_in_the_whole FROM (
	SELECT x.* FROM st, upsell.cooccurrence_chunks(st.state, 500) c, upsell.cooccurrence_pairs(c.state, 1) x
	EXCEPT ALL SELECT x.* FROM st, upsell.cooccurrence_pairs(st.state, 1) x) d;
SELECT count(*) FROM st, upsell.cooccurrence_chunks(st.state, 0);
-- an incremental refresh's merge (_cooccurrence_merge_chunks): the counts of
-- the odd orders with those of the even ones added are the whole counts, as
-- the same chunks; with a range [lo, hi), the pairs added are only those of
-- its products (the others as the chunk had them); without counts added,
-- the chunk's own chunks
CREATE TEMP TABLE halves AS
SELECT upsell.cooccurrence_agg(l.order_id, l.item_id) FILTER (WHERE l.order_id % 2 = 1) AS odd,
	   upsell.cooccurrence_agg(l.order_id, l.item_id) FILTER (WHERE l.order_id % 2 = 0) AS even
FROM groceries.lines l;
CREATE TEMP VIEW merged_range AS
SELECT x.* FROM halves h, upsell._cooccurrence_merge_chunks(h.odd, h.even, 100, 200, 100000) c,
	 upsell.cooccurrence_pairs(c.state, 1) x;
SELECT (SELECT count(*) FROM halves h, upsell._cooccurrence_merge_chunks(h.odd, h.even, NULL, NULL, 500)) AS chunks,
	   (SELECT count(*) FROM st, upsell.cooccurrence_chunks(st.state, 500)) AS chunks_of_the_whole,
	   (SELECT count(*) FROM (
			(SELECT c.chunk, c.first_product, c.state::text FROM halves h, upsell._cooccurrence_merge_chunks(h.odd, h.even, NULL, NULL, 500) c
			 EXCEPT ALL SELECT c.chunk, c.first_product, c.state::text FROM st, upsell.cooccurrence_chunks(st.state, 500) c)
			UNION ALL
			(SELECT c.chunk, c.first_product, c.state::text FROM st, upsell.cooccurrence_chunks(st.state, 500) c
			 EXCEPT ALL SELECT c.chunk, c.first_product, c.state::text FROM halves h, upsell._cooccurrence_merge_chunks(h.odd, h.even, NULL, NULL, 500) c)) d)
		AS chunks_differ,
	   (SELECT count(*) FROM merged_range x WHERE least(x.product_id, x.other_id) BETWEEN 100 AND 199) AS range_pairs,
	   (SELECT count(*) FROM (
			(SELECT x.* FROM merged_range x WHERE least(x.product_id, x.other_id) BETWEEN 100 AND 199
			 EXCEPT ALL SELECT x.* FROM st, upsell.cooccurrence_pairs(st.state, 1) x
			 WHERE least(x.product_id, x.other_id) BETWEEN 100 AND 199)
			UNION ALL
			(SELECT x.* FROM st, upsell.cooccurrence_pairs(st.state, 1) x WHERE least(x.product_id, x.other_id) BETWEEN 100 AND 199
			 EXCEPT ALL SELECT x.* FROM merged_range x WHERE least(x.product_id, x.other_id) BETWEEN 100 AND 199)) d)
		AS range_pairs_differ,
	   (SELECT count(*) FROM (
			(SELECT x.product_id, x.other_id, x.together FROM merged_range x
			 WHERE least(x.product_id, x.other_id) NOT BETWEEN 100 AND 199
			 EXCEPT ALL SELECT x.product_id, x.other_id, x.together FROM halves h, upsell.cooccurrence_pairs(h.odd, 1) x
			 WHERE least(x.product_id, x.other_id) NOT BETWEEN 100 AND 199)
			UNION ALL
			(SELECT x.product_id, x.other_id, x.together FROM halves h, upsell.cooccurrence_pairs(h.odd, 1) x
			 WHERE least(x.product_id, x.other_id) NOT BETWEEN 100 AND 199
			 EXCEPT ALL SELECT x.product_id, x.other_id, x.together FROM merged_range x
			 WHERE least(x.product_id, x.other_id) NOT BETWEEN 100 AND 199)) d)
		AS other_pairs_differ,
	   (SELECT count(*) FROM (
			SELECT c.state::text FROM halves h, upsell._cooccurrence_merge_chunks(h.odd, NULL, NULL, NULL, 500) c
			EXCEPT ALL SELECT c.state::text FROM halves h, upsell.cooccurrence_chunks(h.odd, 500) c) d) AS alone_differ;
SELECT upsell._cooccurrence_merge_chunks(NULL, st.state, 1, 2, 500) FROM st;
SELECT upsell._cooccurrence_merge_chunks(st.state, st.state, 1, 2, NULL) FROM st;
-- the chunks builder's reader (_cooccurrence_chunks_of): the chunks of the
-- counts its query returns, with the query's other columns, equal to those
-- cooccurrence_chunks makes of the same counts; a row per tenant
CREATE TEMP TABLE chunks_of AS
SELECT * FROM upsell._cooccurrence_chunks_of(
	'SELECT l.order_id % 2 AS tenant_id, upsell.cooccurrence_agg(l.order_id, l.item_id) AS state,
			timestamptz ''2020-01-02 03:04:05+00'' AS max_ordered_at, max(l.order_id) AS max_order_key
	 FROM groceries.lines l GROUP BY 1', 500);
SELECT tenant_id, count(*) AS chunks, max(i.pairs) <= 500 AS bounded, bool_and(max_ordered_at = '2020-01-02 03:04:05+00') AS same_time,
	   max(max_order_key) = (SELECT max(order_id) FROM groceries.lines WHERE order_id % 2 = c.tenant_id) AS same_key
FROM chunks_of c, upsell.cooccurrence_info(c.state) i GROUP BY tenant_id ORDER BY tenant_id;
SELECT count(*) AS chunks_differing FROM (
	(SELECT tenant_id, chunk, first_product, upsell.cooccurrence_send(state) FROM chunks_of
	 EXCEPT ALL
	 SELECT s.tenant_id, c.chunk, c.first_product, upsell.cooccurrence_send(c.state)
	 FROM (SELECT l.order_id % 2 AS tenant_id, upsell.cooccurrence_agg(l.order_id, l.item_id) AS state
		   FROM groceries.lines l GROUP BY 1) s, upsell.cooccurrence_chunks(s.state, 500) c)
	UNION ALL
	(SELECT s.tenant_id, c.chunk, c.first_product, upsell.cooccurrence_send(c.state)
	 FROM (SELECT l.order_id % 2 AS tenant_id, upsell.cooccurrence_agg(l.order_id, l.item_id) AS state
		   FROM groceries.lines l GROUP BY 1) s, upsell.cooccurrence_chunks(s.state, 500) c
	 EXCEPT ALL
	 SELECT tenant_id, chunk, first_product, upsell.cooccurrence_send(state) FROM chunks_of)) d;
-- a query of another shape, and a bound below 1: errors
SELECT * FROM upsell._cooccurrence_chunks_of('SELECT 1::bigint, 2::bigint', 500);
SELECT * FROM upsell._cooccurrence_chunks_of('SELECT 0::bigint, NULL::upsell.cooccurrence, now(), 1::bigint', 0);

-- the pair moments (the cooccurrence model's pair_dispersion), in one pass,
-- against every pair listed (both orders); summed over chunks, the whole's
SELECT m.together_squared = s.t2 AS together_squared, m.together_counts = s.tnn AS together_counts,
	   s.t2 > 0 AS nonzero
FROM st, upsell._cooccurrence_pair_moments(st.state) m,
	 (SELECT sum(x.together::float8 * x.together) AS t2,
			 sum(x.together::float8 * x.product_count * x.other_count) AS tnn
	  FROM st, upsell.cooccurrence_pairs(st.state, 1, 0, 0) x) s;
SELECT sum(m.together_squared) = w.together_squared AS chunks_squared,
	   sum(m.together_counts) = w.together_counts AS chunks_counts, count(*) > 1 AS several_chunks
FROM st, upsell.cooccurrence_chunks(st.state, 500) c, upsell._cooccurrence_pair_moments(c.state) m,
	 upsell._cooccurrence_pair_moments(st.state) w
GROUP BY w.together_squared, w.together_counts;

-- the readers' sum forms, what the builders read: a stored chunk with the
-- delta an incremental refresh stores beside the chunks (its pairs of the
-- chunk's range [lo, hi) summed in as they are read).  The odd orders'
-- counts in chunks, with the even orders' as the delta, read as the whole
-- counts, reader by reader: pairs, products and totals, pair moments (of
-- the summed counts, with their number), pairs within categories; top
-- lists and top pairs with the base in one chunk.  Without a delta, the
-- chunk alone.
CREATE TEMP VIEW parts AS
SELECT c.chunk, c.state, h.even AS delta, CASE WHEN c.chunk > 0 THEN c.first_product END AS lo,
	   lead(c.first_product) OVER (ORDER BY c.chunk) AS hi
FROM halves h, upsell.cooccurrence_chunks(h.odd, 500) c;
CREATE TEMP VIEW summed_pairs AS
SELECT x.* FROM parts p, upsell._cooccurrence_pairs_sum(p.state, p.delta, p.lo, p.hi, 1) x;
CREATE TEMP VIEW summed_products AS
SELECT x.* FROM parts p, upsell._cooccurrence_products_sum(p.state, p.delta, p.lo, p.hi) x WHERE p.chunk = 0;
SELECT (SELECT count(*) FROM parts) > 1 AS several_chunks,
	   (SELECT count(*) FROM ((TABLE summed_pairs EXCEPT ALL SELECT x.* FROM st, upsell.cooccurrence_pairs(st.state, 1) x)
							  UNION ALL (SELECT x.* FROM st, upsell.cooccurrence_pairs(st.state, 1) x EXCEPT ALL TABLE summed_pairs)) d)
		AS pairs_differ,
	   (SELECT count(*) FROM ((TABLE summed_products EXCEPT ALL SELECT x.* FROM st, upsell.cooccurrence_products(st.state) x)
							  UNION ALL (SELECT x.* FROM st, upsell.cooccurrence_products(st.state) x EXCEPT ALL TABLE summed_products)) d)
		AS products_differ,
	   (SELECT (i.orders, i.products, i.skipped_lines, i.big_orders) = (w.orders, w.products, w.skipped_lines, w.big_orders)
		FROM parts p, upsell._cooccurrence_info_sum(p.state, p.delta, p.lo, p.hi) i, st, upsell.cooccurrence_info(st.state) w
		WHERE p.chunk = 0) AS same_totals,
	   (SELECT sum(m.together_squared) = w.together_squared AND sum(m.together_counts) = w.together_counts
			   AND sum(m.pairs) = i.pairs
		FROM parts p, upsell._cooccurrence_pair_moments_sum(p.state, p.delta, p.lo, p.hi) m,
			 st, upsell._cooccurrence_pair_moments(st.state) w, upsell.cooccurrence_info(st.state) i
		GROUP BY w.together_squared, w.together_counts, i.pairs) AS same_moments,
	   (SELECT count(*) FROM (
			(SELECT s.category_key, sum(s.together) FROM parts p,
				 (SELECT array_agg(item_id) AS ids, array_agg(key) AS keys FROM cat) k,
				 upsell._cooccurrence_category_pairs_sum(p.state, p.delta, p.lo, p.hi, k.ids, k.keys) s
			 GROUP BY s.category_key
			 EXCEPT ALL SELECT f.category_key, f.together FROM fast f)
			UNION ALL
			(SELECT f.category_key, f.together FROM fast f
			 EXCEPT ALL SELECT s.category_key, sum(s.together) FROM parts p,
				 (SELECT array_agg(item_id) AS ids, array_agg(key) AS keys FROM cat) k,
				 upsell._cooccurrence_category_pairs_sum(p.state, p.delta, p.lo, p.hi, k.ids, k.keys) s
			 GROUP BY s.category_key)) d) AS categories_differ;
SELECT (SELECT array_agg(t::text ORDER BY t.product_id)
		FROM halves h, upsell._cooccurrence_top_lists_sum(h.odd, h.even, NULL, NULL, 5, 2, 20) t)
	   = (SELECT array_agg(t::text ORDER BY t.product_id) FROM st, upsell._cooccurrence_top_lists(st.state, 5, 2, 20) t)
		AS same_lists,
	   (SELECT array_agg(t::text ORDER BY t.product_id, t.other_id)
		FROM halves h, upsell._cooccurrence_top_pairs_sum(h.odd, h.even, NULL, NULL, 5, 2, 20, '{1, 2, 3, 40}') t)
	   = (SELECT array_agg(t::text ORDER BY t.product_id, t.other_id)
		  FROM st, upsell.cooccurrence_top_pairs(st.state, 5, 2, 20, '{1, 2, 3, 40}') t) AS same_top_pairs,
	   (SELECT count(*) FROM (
			(SELECT x.* FROM halves h, upsell._cooccurrence_pairs_sum(h.odd, NULL, NULL, NULL, 1) x
			 EXCEPT ALL SELECT x.* FROM halves h, upsell.cooccurrence_pairs(h.odd, 1) x)
			UNION ALL
			(SELECT x.* FROM halves h, upsell.cooccurrence_pairs(h.odd, 1) x
			 EXCEPT ALL SELECT x.* FROM halves h, upsell._cooccurrence_pairs_sum(h.odd, NULL, NULL, NULL, 1) x)) d)
		AS without_delta_differ;
-- a NULL chunk or argument: errors (a NULL delta or bound is none)
SELECT * FROM upsell._cooccurrence_pair_moments_sum(NULL, NULL, NULL, NULL);
SELECT count(*) FROM halves h, upsell._cooccurrence_top_lists_sum(h.odd, h.even, NULL, NULL, NULL, 2, 20);

-- Stored counts read again in one transaction are read from memory (the
-- chunk the totals', the categories' and the pair lists' builders each
-- read), named by their TOAST pointer: counts written over them in the
-- transaction are a new value, read anew, and what a rolled-back
-- subtransaction read is not read again.  Each read equals the reader over
-- the same counts in memory.
CREATE TEMP TABLE kept (state upsell.cooccurrence);
ALTER TABLE kept ALTER COLUMN state SET STORAGE EXTERNAL;
INSERT INTO kept SELECT h.odd FROM halves h;
CREATE TEMP VIEW kept_moments AS
SELECT m.pairs, m.together_squared, m.together_counts
FROM kept k, upsell._cooccurrence_pair_moments_sum(k.state, NULL, NULL, NULL) m;
BEGIN;
SELECT 'odd orders' AS step, k.pairs,
	   k.together_squared = m.together_squared AND k.together_counts = m.together_counts AS as_in_memory
FROM kept_moments k, halves h, upsell._cooccurrence_pair_moments(h.odd) m;
SELECT 'odd orders again' AS step, k.pairs,
	   k.together_squared = m.together_squared AND k.together_counts = m.together_counts AS as_in_memory
FROM kept_moments k, halves h, upsell._cooccurrence_pair_moments(h.odd) m;
UPDATE kept SET state = (SELECT h.even FROM halves h);
SELECT 'even orders' AS step, k.pairs,
	   k.together_squared = m.together_squared AND k.together_counts = m.together_counts AS as_in_memory
FROM kept_moments k, halves h, upsell._cooccurrence_pair_moments(h.even) m;
SAVEPOINT s;
UPDATE kept SET state = (SELECT st.state FROM st);
SELECT 'every order' AS step, k.pairs,
	   k.together_squared = m.together_squared AND k.together_counts = m.together_counts AS as_in_memory
FROM kept_moments k, st, upsell._cooccurrence_pair_moments(st.state) m;
ROLLBACK TO s;
SELECT 'even orders, the subtransaction rolled back' AS step, k.pairs,
	   k.together_squared = m.together_squared AND k.together_counts = m.together_counts AS as_in_memory
FROM kept_moments k, halves h, upsell._cooccurrence_pair_moments(h.even) m;
COMMIT;
