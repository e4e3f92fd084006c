-- The aggregate runs in parallel workers, and the result with 2 workers
-- equals the result with none.  Data: the bundled electronics shop.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_electronics.sql
\set ECHO all
RESET client_min_messages;

SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT upsell.cooccurrence_agg(order_id, product_id, quantity) FROM shop.order_lines;
CREATE TEMP TABLE with_workers AS
SELECT upsell.cooccurrence_agg(order_id, product_id, quantity) AS s FROM shop.order_lines;

SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF)
SELECT upsell.cooccurrence_agg(order_id, product_id, quantity) FROM shop.order_lines;
CREATE TEMP TABLE without_workers AS
SELECT upsell.cooccurrence_agg(order_id, product_id, quantity) AS s FROM shop.order_lines;
SELECT w.s::text = wo.s::text AS same_result, (upsell.cooccurrence_info(w.s)).*
FROM with_workers w, without_workers wo;
RESET ALL;

-- the shop's published pair counts (each order counted once)
SELECT upsell.register_orders('shop.order_lines', 'order_id', 'product_id', quantity => 'quantity');
SELECT a.title, b.title, f.together
FROM upsell.frequently_bought_together(min_count => 350) f
JOIN shop.products a ON a.product_id = f.product_id
JOIN shop.products b ON b.product_id = f.other_id
WHERE a.title IN ('iPhone', 'Google Phone')
ORDER BY f.together DESC, 1, 2;
-- and an independent count in plain SQL agrees on every pair
WITH baskets AS (SELECT DISTINCT order_id, product_id FROM shop.order_lines WHERE quantity > 0),
	 plain AS (SELECT a.product_id, b.product_id AS other_id, count(*) AS together
			   FROM baskets a JOIN baskets b ON a.order_id = b.order_id AND a.product_id <> b.product_id
			   GROUP BY 1, 2)
SELECT count(*) AS pairs,
	   count(*) FILTER (WHERE p.together IS DISTINCT FROM f.together) AS mismatches
FROM plain p FULL JOIN upsell.frequently_bought_together(min_count => 1) f
	ON f.product_id = p.product_id AND f.other_id = p.other_id;

DELETE FROM upsell.order_source;
DROP SCHEMA shop CASCADE;
