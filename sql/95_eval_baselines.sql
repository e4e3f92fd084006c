-- make eval's harness (test/eval/harness.sql): on a small crafted shop, the
-- rank of every hidden product by every baseline equals an independent
-- plain-SQL count and ranking, and HR@10 / MRR@10 follow from the ranks.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i test/eval/harness.sql
\set ECHO all
-- 10 orders in time order (seq): 8 train, the last 2 test (3 products each,
-- so 6 leave-one-out cases); product 9 is only in a test order (unranked).
INSERT INTO upsell_eval.lines (dataset, order_id, product_id, seq)
SELECT 'crafted', o.seq, p, o.seq
FROM (VALUES (1, '{1,2,3}'::bigint[]), (2, '{1,2}'), (3, '{1,3,4}'), (4, '{2,5}'), (5, '{1,2,5,6}'),
			 (6, '{3,4}'), (7, '{1,6}'), (8, '{1,2,4}'), (9, '{1,4,9}'), (10, '{2,3,6}')) o(seq, items),
	 unnest(o.items) p;
-- products 1 and 4 are sizes of one product (one variant group): substitutes
UPDATE upsell_eval.lines SET variant_group = 'v' WHERE product_id IN (1, 4);
SELECT upsell_eval.evaluate('crafted', 0);
SELECT dataset, train_orders, test_orders, cases, all_cases FROM upsell_eval.meta;
SELECT case_id, cart, hidden FROM upsell_eval.cases ORDER BY case_id;

-- the independent count: the training orders' pairs by self-join, every
-- product scored, ranked (score desc, id), unscored ones after them by
-- popularity (orders desc, id)
CREATE TEMP TABLE independent AS
WITH train AS (SELECT DISTINCT order_id, product_id FROM upsell_eval.lines WHERE dataset = 'crafted' AND seq <= 8),
cnt AS (SELECT product_id, count(*)::float8 AS n FROM train GROUP BY 1),
pop AS (SELECT product_id, n, row_number() OVER (ORDER BY n DESC, product_id) AS pr FROM cnt),
co AS (SELECT a.product_id AS c, b.product_id AS j, count(*)::float8 AS t
	   FROM train a JOIN train b ON a.order_id = b.order_id AND a.product_id <> b.product_id GROUP BY 1, 2),
methods AS (SELECT * FROM (VALUES ('popularity'), ('count'), ('confidence'), ('cosine'), ('jaccard')) m(method)),
scores AS (
	SELECT cs.case_id, m.method, co.j,
		   sum(CASE m.method WHEN 'count' THEN co.t WHEN 'confidence' THEN co.t / pc.n
							 WHEN 'cosine' THEN co.t / sqrt(pc.n * pj.n)
							 WHEN 'jaccard' THEN co.t / (pc.n + pj.n - co.t) END) AS score
	FROM upsell_eval.cases cs
	JOIN co ON co.c = ANY (cs.cart) AND co.j <> ALL (cs.cart)
	JOIN cnt pc ON pc.product_id = co.c JOIN cnt pj ON pj.product_id = co.j
	CROSS JOIN methods m WHERE m.method <> 'popularity'
	GROUP BY 1, 2, 3),
ranking AS (
	SELECT cs.case_id, m.method, p.product_id,
		   row_number() OVER (PARTITION BY cs.case_id, m.method
							  ORDER BY s.score IS NULL, s.score DESC,
									   CASE WHEN s.score IS NULL THEN p.pr END, p.product_id) AS "rank"
	FROM upsell_eval.cases cs CROSS JOIN methods m
	JOIN pop p ON p.product_id <> ALL (cs.cart)
	LEFT JOIN scores s ON s.case_id = cs.case_id AND s.method = m.method AND s.j = p.product_id)
SELECT cs.case_id, m.method, r."rank"
FROM upsell_eval.cases cs CROSS JOIN methods m
LEFT JOIN ranking r ON r.case_id = cs.case_id AND r.method = m.method AND r.product_id = cs.hidden;

SELECT i.case_id, i.method, i."rank" AS independent, h."rank" AS harness
FROM independent i
LEFT JOIN upsell_eval.ranks h ON h.dataset = 'crafted' AND h.case_id = i.case_id AND h.method = i.method
ORDER BY i.method, i.case_id;
SELECT count(*) AS baseline_ranks,
	   count(*) FILTER (WHERE h."rank" IS NOT DISTINCT FROM i."rank") AS equal
FROM independent i
LEFT JOIN upsell_eval.ranks h ON h.dataset = 'crafted' AND h.case_id = i.case_id AND h.method = i.method;
-- HR@10 and MRR@10 from the independent ranks equal the harness's table
SELECT r.method, r.cases, r.hr10, r.mrr10,
	   round(avg(CASE WHEN i."rank" <= 10 THEN 1 ELSE 0 END), 4) AS independent_hr10,
	   round(avg(CASE WHEN i."rank" <= 10 THEN 1.0 / i."rank" ELSE 0 END), 4) AS independent_mrr10
FROM upsell_eval.results r JOIN independent i USING (method)
WHERE r.dataset = 'crafted'
GROUP BY r.method, r.cases, r.hr10, r.mrr10, r.sort ORDER BY r.sort;
-- upsell itself ranks every case too (recommend_for_cart on the training models)
SELECT count(*) AS upsell_cases FROM upsell_eval.ranks WHERE method = 'upsell';
-- the cases hiding a substitute of the cart (the other of 1 and 4 in it) are
-- marked, never ranked by upsell, and left out of complement_results
SELECT c.case_id, c.cart, c.hidden, k.substitute, k."rank" AS upsell_rank,
	   c.hidden IN (1, 4) AND c.cart && '{1,4}' AS independent
FROM upsell_eval.cases c JOIN upsell_eval.ranks k ON k.case_id = c.case_id AND k.method = 'upsell'
ORDER BY c.case_id;
SELECT r.method, r.cases, r.hr10, r.mrr10,
	   round(avg(CASE WHEN i."rank" <= 10 THEN 1 ELSE 0 END), 4) AS independent_hr10,
	   round(avg(CASE WHEN i."rank" <= 10 THEN 1.0 / i."rank" ELSE 0 END), 4) AS independent_mrr10
FROM upsell_eval.complement_results r
JOIN independent i USING (method)
JOIN upsell_eval.cases c ON c.case_id = i.case_id
WHERE r.dataset = 'crafted' AND NOT (c.hidden IN (1, 4) AND c.cart && '{1,4}')
GROUP BY r.method, r.cases, r.hr10, r.mrr10, r.sort ORDER BY r.sort;

DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA upsell_eval CASCADE;
RESET client_min_messages;
