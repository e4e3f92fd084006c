-- upsell.cooccurrence_sharded_agg: the counting whose partial states are pair
-- counts (Citus shards of whole orders).  On one node it equals
-- upsell.cooccurrence_agg whenever each group holds whole orders.
CREATE SCHEMA sharded;
CREATE TABLE sharded.lines AS
SELECT o AS order_id, (o * 7 + i * 13) % 40 AS product_id,
	   CASE WHEN (o + i) % 50 = 0 THEN 0 ELSE 1 END AS quantity
FROM generate_series(1, 3000) o, generate_series(1, 1 + o % 5) i;
INSERT INTO sharded.lines VALUES (NULL, 1, 1), (1, NULL, 1);

-- the same counts as the lines aggregate, with and without quantities
SELECT upsell.cooccurrence_sharded_agg(order_id, product_id, quantity)::text
	 = upsell.cooccurrence_agg(order_id, product_id, quantity)::text AS same_with_quantity,
	   upsell.cooccurrence_sharded_agg(order_id, product_id)::text
	 = upsell.cooccurrence_agg(order_id, product_id)::text AS same_without,
	   (upsell.cooccurrence_info(upsell.cooccurrence_sharded_agg(order_id, product_id, quantity))).*
FROM sharded.lines;

-- per group of whole orders, and the groups' counts added
SELECT order_id % 3 AS part,
	   upsell.cooccurrence_sharded_agg(order_id, product_id, quantity)::text
	 = upsell.cooccurrence_agg(order_id, product_id, quantity)::text AS same
FROM sharded.lines GROUP BY 1 ORDER BY 1;
SELECT upsell.cooccurrence_sum(s)::text
	 = (SELECT upsell.cooccurrence_agg(order_id, product_id, quantity)::text FROM sharded.lines) AS sum_of_parts
FROM (SELECT upsell.cooccurrence_sharded_agg(order_id, product_id, quantity) s
	  FROM sharded.lines GROUP BY order_id % 7) p;

-- no lines: empty counts, as the lines aggregate gives
SELECT (upsell.cooccurrence_info(upsell.cooccurrence_sharded_agg(order_id, product_id))).*
FROM sharded.lines WHERE false;

-- a window frame re-reads the state after counting it (moving on from a
-- counted state)
SELECT order_id, (upsell.cooccurrence_info(s)).orders, (upsell.cooccurrence_info(s)).pairs
FROM (SELECT order_id, upsell.cooccurrence_sharded_agg(order_id, product_id) OVER (ORDER BY order_id) s
	  FROM (SELECT DISTINCT order_id, product_id FROM sharded.lines WHERE order_id <= 4) l) w
ORDER BY 1, 2, 3;

-- never in PostgreSQL's parallel workers (they would split orders)
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
ANALYZE sharded.lines;
EXPLAIN (COSTS OFF) SELECT upsell.cooccurrence_sharded_agg(order_id, product_id) FROM sharded.lines;
EXPLAIN (COSTS OFF) SELECT upsell.cooccurrence_agg(order_id, product_id) FROM sharded.lines;
RESET ALL;
SELECT upsell._orders_sharded() AS sharded_without_citus;
DROP SCHEMA sharded CASCADE;
