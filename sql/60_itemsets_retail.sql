-- Frequent itemsets on the FIMI "retail" benchmark (88,162 Belgian
-- supermarket baskets, one line of space-separated item ids per basket),
-- through the query overload: counts per size against plain-SQL self-joins.
\set SHOW_CONTEXT never
CREATE SCHEMA retail;
CREATE TABLE retail.raw (order_id bigint GENERATED ALWAYS AS IDENTITY, line text);
\copy retail.raw (line) FROM 'test/data/retail.dat' WITH (FORMAT text, DELIMITER E'\x01')
CREATE TABLE retail.lines AS
SELECT DISTINCT r.order_id, x::bigint AS item_id
FROM retail.raw r, unnest(string_to_array(trim(r.line), ' ')) AS x
WHERE x <> '';
ANALYZE retail.lines;

-- the published shape of the file
SELECT count(DISTINCT order_id) AS baskets, count(DISTINCT item_id) AS items, count(*) AS occurrences
FROM retail.lines;

-- Reference: every itemset of 1..3 items in at least 441 baskets (support
-- 0.005) by self-joins over the lines of products frequent on their own.
SET work_mem = '64MB';
CREATE TEMP TABLE reference AS
WITH fl AS MATERIALIZED (
	SELECT order_id, item_id FROM retail.lines
	WHERE item_id IN (SELECT item_id FROM retail.lines GROUP BY 1 HAVING count(*) >= 441))
SELECT ARRAY[item_id] AS items, count(*) AS n FROM fl GROUP BY item_id HAVING count(*) >= 441
UNION ALL
SELECT ARRAY[a.item_id, b.item_id], count(*)
FROM fl a JOIN fl b ON b.order_id = a.order_id AND b.item_id > a.item_id
GROUP BY a.item_id, b.item_id HAVING count(*) >= 441
UNION ALL
SELECT ARRAY[a.item_id, b.item_id, d.item_id], count(*)
FROM fl a JOIN fl b ON b.order_id = a.order_id AND b.item_id > a.item_id
		  JOIN fl d ON d.order_id = a.order_id AND d.item_id > b.item_id
GROUP BY a.item_id, b.item_id, d.item_id HAVING count(*) >= 441;
RESET work_mem;

-- Counts per size at three supports, side by side with the reference.
SELECT s.min_support, x.size, x.mined, x.reference, x.mined IS NOT DISTINCT FROM x.reference AS equal
FROM (VALUES (0.01::float8), (0.0075), (0.005)) s(min_support),
	 LATERAL (SELECT coalesce(m.size, r.size) AS size, m.mined, r.reference
			  FROM (SELECT f.size, count(*) AS mined
					FROM upsell.frequent_itemsets('SELECT order_id, item_id FROM retail.lines',
												  s.min_support, 3) f GROUP BY 1) m
			  FULL JOIN (SELECT cardinality(r.items) AS size, count(*) AS reference
						 FROM reference r WHERE r.n >= ceil(s.min_support * 88162) GROUP BY 1) r
			  ON r.size = m.size) x
ORDER BY 1 DESC, 2;

-- The same sets with the same counts at 0.005 (both directions empty).
CREATE TEMP TABLE mined AS
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, item_id FROM retail.lines', 0.005, 3);
SELECT (SELECT count(*) FROM (SELECT items, count FROM mined EXCEPT SELECT items, n FROM reference) d)
		AS mined_not_in_reference,
	   (SELECT count(*) FROM (SELECT items, n FROM reference EXCEPT SELECT items, count FROM mined) d)
		AS reference_not_mined;

-- A benchmark support, without a size limit (too many sets for self-joins in
-- a regression test; test/bench/60_bundles.sh times it).
SELECT size, count(*) AS itemsets
FROM upsell.frequent_itemsets('SELECT order_id, item_id FROM retail.lines', 0.001, 100)
GROUP BY 1 ORDER BY 1;

-- Multi-item rules at support 0.001, confidence 0.8: the strongest five.
SELECT antecedent, consequent, count, round(confidence::numeric, 4) AS confidence,
	   round(lift::numeric, 2) AS lift
FROM upsell.association_rules('SELECT order_id, item_id FROM retail.lines', 0.001, 0.8, 6)
ORDER BY lift DESC, antecedent, consequent LIMIT 5;

DROP SCHEMA retail CASCADE;
