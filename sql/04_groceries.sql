-- Exactness on the full arules "Groceries" data set (9,835 baskets): item
-- counts and every pair's support, confidence and lift equal the published
-- arules figures and an independent count in plain SQL.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_groceries.sql
\set ECHO all
RESET client_min_messages;
SELECT upsell.register_orders('groceries.lines', 'order_id', 'item_id');

CREATE TEMP TABLE fbt AS SELECT * FROM upsell.frequently_bought_together(min_count => 1);

-- published item frequencies (support of whole milk 0.2555)
SELECT i.name, f.product_count, round(f.product_count / f.orders::numeric, 4) AS support
FROM (SELECT DISTINCT product_id, product_count, orders FROM fbt) f
JOIN groceries.items i ON i.item_id = f.product_id
ORDER BY f.product_count DESC LIMIT 5;

-- the published rule {herbs} => {root vegetables}
SELECT round(support::numeric, 9) AS support, round(confidence::numeric, 7) AS confidence,
	   round(lift::numeric, 6) AS lift
FROM fbt f
JOIN groceries.items a ON a.item_id = f.product_id AND a.name = 'herbs'
JOIN groceries.items b ON b.item_id = f.other_id AND b.name = 'root vegetables';

-- every pair against an independent count
WITH baskets AS (SELECT DISTINCT order_id, item_id FROM groceries.lines),
	 n AS (SELECT count(DISTINCT order_id)::float8 AS orders FROM baskets),
	 item AS (SELECT item_id, count(*) AS c FROM baskets GROUP BY item_id),
	 pair AS (SELECT a.item_id AS x, b.item_id AS y, count(*) AS c
			  FROM baskets a JOIN baskets b ON a.order_id = b.order_id AND a.item_id <> b.item_id
			  GROUP BY 1, 2),
	 plain AS (SELECT p.x, p.y, p.c, p.c / n.orders AS support, p.c::float8 / ix.c AS confidence,
					  (p.c / n.orders) / ((ix.c / n.orders) * (iy.c / n.orders)) AS lift
			   FROM pair p, n, item ix, item iy WHERE ix.item_id = p.x AND iy.item_id = p.y)
SELECT count(*) AS pairs,
	   count(*) FILTER (WHERE f.together IS DISTINCT FROM p.c) AS count_mismatches,
	   count(*) FILTER (WHERE abs(f.support - p.support) > 1e-12
						   OR abs(f.confidence - p.confidence) > 1e-12
						   OR abs(f.lift - p.lift) > 1e-9) AS measure_mismatches
FROM plain p FULL JOIN fbt f ON f.product_id = p.x AND f.other_id = p.y;

-- rules as arules lists them at support 0.006 / confidence 0.25 (pairs only)
SELECT a.name AS lhs, b.name AS rhs, round(f.support::numeric, 6) AS support,
	   round(f.confidence::numeric, 6) AS confidence, round(f.lift::numeric, 6) AS lift
FROM upsell.frequently_bought_together(min_support => 0.006, min_confidence => 0.25) f
JOIN groceries.items a ON a.item_id = f.product_id
JOIN groceries.items b ON b.item_id = f.other_id
ORDER BY f.lift DESC, 1, 2 LIMIT 5;

-- with parallel workers, the same value bit for bit.  A worker's share
-- (169 products, a few thousand orders) is too sparse for its pair counts
-- to pay (cooc_partial_count): it hands over its orders, and the leader
-- counts the pairs of all orders at once.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT upsell.cooccurrence_agg(order_id, item_id) FROM groceries.lines;
CREATE TEMP TABLE with_workers AS
SELECT upsell.cooccurrence_agg(order_id, item_id) AS s FROM groceries.lines;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE without_workers AS
SELECT upsell.cooccurrence_agg(order_id, item_id) AS s FROM groceries.lines;
SELECT w.s::text = wo.s::text AS same_result, (upsell.cooccurrence_info(w.s)).*
FROM with_workers w, without_workers wo;
RESET ALL;

DELETE FROM upsell.order_source;
DROP SCHEMA groceries CASCADE;
