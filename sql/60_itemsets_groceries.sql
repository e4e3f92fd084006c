-- Frequent itemsets and rules on the arules "Groceries" baskets (9,835
-- orders): counts per size against a plain-SQL self-join reference, and the
-- figures arules publishes for support 0.006 / confidence 0.25 / minlen 2.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_groceries.sql
\set ECHO all
RESET client_min_messages;
SELECT upsell.register_orders('groceries.lines', 'order_id', 'item_id');

-- Reference: every itemset of 1..4 items in at least 30 orders (support
-- 0.003), by self-joins over the lines of products frequent on their own.
-- Higher supports are subsets of it.
SET work_mem = '64MB';
CREATE TEMP TABLE reference AS
WITH fl AS MATERIALIZED (
	SELECT order_id, item_id FROM groceries.lines
	WHERE item_id IN (SELECT item_id FROM groceries.lines GROUP BY 1 HAVING count(*) >= 30))
SELECT ARRAY[item_id] AS items, count(*) AS n FROM fl GROUP BY item_id HAVING count(*) >= 30
UNION ALL
SELECT ARRAY[a.item_id, b.item_id], count(*)
FROM fl a JOIN fl b ON b.order_id = a.order_id AND b.item_id > a.item_id
GROUP BY a.item_id, b.item_id HAVING count(*) >= 30
UNION ALL
SELECT ARRAY[a.item_id, b.item_id, d.item_id], count(*)
FROM fl a JOIN fl b ON b.order_id = a.order_id AND b.item_id > a.item_id
		  JOIN fl d ON d.order_id = a.order_id AND d.item_id > b.item_id
GROUP BY a.item_id, b.item_id, d.item_id HAVING count(*) >= 30
UNION ALL
SELECT ARRAY[a.item_id, b.item_id, d.item_id, e.item_id], count(*)
FROM fl a JOIN fl b ON b.order_id = a.order_id AND b.item_id > a.item_id
		  JOIN fl d ON d.order_id = a.order_id AND d.item_id > b.item_id
		  JOIN fl e ON e.order_id = a.order_id AND e.item_id > d.item_id
GROUP BY a.item_id, b.item_id, d.item_id, e.item_id HAVING count(*) >= 30;
RESET work_mem;

-- Counts per size at three supports, side by side with the reference.
SELECT s.min_support, x.size, x.mined, x.reference, x.mined IS NOT DISTINCT FROM x.reference AS equal
FROM (VALUES (0.02::float8), (0.006), (0.003)) s(min_support),
	 LATERAL (SELECT coalesce(m.size, r.size) AS size, m.mined, r.reference
			  FROM (SELECT f.size, count(*) AS mined
					FROM upsell.frequent_itemsets(s.min_support, 4) f GROUP BY 1) m
			  FULL JOIN (SELECT cardinality(r.items) AS size, count(*) AS reference
						 FROM reference r WHERE r.n >= ceil(s.min_support * 9835) GROUP BY 1) r
			  ON r.size = m.size) x
ORDER BY 1 DESC, 2;

-- Not only as many: the same sets with the same counts (both directions empty).
CREATE TEMP TABLE mined AS SELECT * FROM upsell.frequent_itemsets(0.003, 4);
SELECT (SELECT count(*) FROM (SELECT items, count FROM mined EXCEPT SELECT items, n FROM reference) d)
		AS mined_not_in_reference,
	   (SELECT count(*) FROM (SELECT items, n FROM reference EXCEPT SELECT items, count FROM mined) d)
		AS reference_not_mined;

-- Support and lift of one itemset, computed independently.
SELECT (SELECT array_agg(name ORDER BY name) FROM groceries.items WHERE item_id = ANY (f.items)) AS names,
	   f.size, f.count, round(f.support::numeric, 6) AS support, round(f.lift::numeric, 6) AS lift,
	   round((f.count / 9835.0) / ((2513 / 9835.0) * (1903 / 9835.0) * (1809 / 9835.0)), 6) AS expected_lift
FROM upsell.frequent_itemsets(0.01, 3) f
JOIN groceries.items w ON w.name = 'whole milk'
JOIN groceries.items o ON o.name = 'other vegetables'
JOIN groceries.items r ON r.name = 'rolls/buns'
WHERE f.items = (SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[w.item_id, o.item_id, r.item_id]) x);

-- Itemsets come sorted, sizes agree with the arrays, lift of a single item is 1.
SELECT bool_and(items = (SELECT array_agg(x ORDER BY x) FROM unnest(items) x)) AS sorted,
	   bool_and(size = cardinality(items)) AS sizes,
	   bool_and(size > 1 OR abs(lift - 1) < 1e-12) AS single_lift_1
FROM mined;

-- max_size and min_count bound the result; the stricter threshold wins.
SELECT max(size) AS max_size_2 FROM upsell.frequent_itemsets(0.003, 2);
SELECT min(count) >= 100 AS min_count_wins FROM upsell.frequent_itemsets(0.003, 4, 100);
SELECT count(*) = (SELECT count(*) FROM upsell.frequent_itemsets(0.01, 4)) AS support_wins
FROM upsell.frequent_itemsets(0.01, 4, 5);

-- arules: apriori(Groceries, parameter = list(support = 0.006, confidence = 0.25, minlen = 2))
-- finds 463 rules; the top rule by lift is {herbs} => {root vegetables}.
SELECT count(*) AS rules FROM upsell.association_rules(0.006, 0.25, 10);
SELECT (SELECT array_agg(name ORDER BY name) FROM groceries.items WHERE item_id = ANY (antecedent)) AS lhs,
	   (SELECT array_agg(name ORDER BY name) FROM groceries.items WHERE item_id = ANY (consequent)) AS rhs,
	   round(support::numeric, 9) AS support, round(confidence::numeric, 7) AS confidence,
	   round(lift::numeric, 6) AS lift, count
FROM upsell.association_rules(0.006, 0.25, 10)
ORDER BY lift DESC, antecedent, consequent
LIMIT 5;

-- Rules with several items on the left, by size of the antecedent.
SELECT cardinality(antecedent) AS lhs_size, count(*) AS rules
FROM upsell.association_rules(0.006, 0.25, 10) GROUP BY 1 ORDER BY 1;

-- Every rule checked against the itemsets: confidence = count(A u C) / count(A),
-- lift = confidence / support(C), leverage and conviction as arules defines them;
-- and the number of rules equals the number of (itemset, item) splits that pass.
WITH f AS (SELECT * FROM upsell.frequent_itemsets(0.006, 10)),
r AS (SELECT * FROM upsell.association_rules(0.006, 0.25, 10)),
checked AS (
	SELECT r.*, a.count AS a_count, c.count AS c_count, u.count AS u_count
	FROM r
	JOIN f a ON a.items = r.antecedent
	JOIN f c ON c.items = r.consequent
	JOIN f u ON u.items = (SELECT array_agg(x ORDER BY x) FROM unnest(r.antecedent || r.consequent) x))
SELECT count(*) AS rules_checked,
	   bool_and(abs(confidence - u_count::float8 / a_count) < 1e-12) AS confidence_ok,
	   bool_and(abs(support - u_count / 9835.0) < 1e-12) AS support_ok,
	   bool_and(abs(lift - (u_count::float8 / a_count) / (c_count / 9835.0)) < 1e-9) AS lift_ok,
	   bool_and(abs(leverage - (u_count / 9835.0 - (a_count / 9835.0) * (c_count / 9835.0))) < 1e-12) AS leverage_ok,
	   bool_and(abs(conviction - (1 - c_count / 9835.0) / (1 - u_count::float8 / a_count)) < 1e-9) AS conviction_ok,
	   (SELECT count(*) FROM f u, unnest(u.items) x
		JOIN f a ON true
		WHERE u.size >= 2
		  AND a.items = array_remove(u.items, x)
		  AND u.count::float8 / a.count >= 0.25) AS splits_passing
FROM checked;

-- Two-item consequents (mlxtend style): more rules, all with confidence >= 0.25.
SELECT max_consequent, count(*) AS rules, min(confidence) >= 0.25 AS confident
FROM generate_series(1, 2) max_consequent,
	 upsell.association_rules(0.006, 0.25, 10, NULL, max_consequent)
GROUP BY 1 ORDER BY 1;

-- The query overload, with text order ids: the same itemsets.
SELECT count(*) AS itemsets,
	   count(*) = (SELECT count(*) FROM upsell.frequent_itemsets(0.006, 4)) AS same_count
FROM upsell.frequent_itemsets('SELECT ''basket-'' || order_id, item_id::int FROM groceries.lines', 0.006, 4);
SELECT count(*) AS rules
FROM upsell.association_rules('SELECT order_id::text, item_id FROM groceries.lines', 0.006, 0.25, 10);

DELETE FROM upsell.order_source;
DROP SCHEMA groceries CASCADE;
