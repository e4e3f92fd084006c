-- upsell.gap_fillers against brute force: on a small catalog with many equal
-- prices, every combination of up to three eligible products is enumerated in
-- plain SQL, scored with the documented formula and ranked; the C search must
-- return exactly the same offers, in the same order, with the same scores.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS ge CASCADE;
CREATE SCHEMA ge;
CREATE TABLE ge.products (id int PRIMARY KEY, price numeric(10, 2), in_stock boolean, category text);
INSERT INTO ge.products
SELECT i,
	   CASE WHEN i <= 20 THEN (((i * 37) % 9) * 125 + 100) / 100.0	-- steps of 1.25: many ties
			ELSE ((i * 7919) % 3000 + 100) / 100.0 END,
	   i % 11 <> 0,
	   'c' || (i % 5)
FROM generate_series(1, 40) i;
CREATE TABLE ge.lines (order_id int, product_id int);
INSERT INTO ge.lines
SELECT o, p FROM generate_series(1, 60) o,
	   LATERAL (VALUES (1 + o % 3), (4 + (o * o) % 13), (20 + o % 7)) v(p);
SELECT upsell.register_orders('ge.lines', 'order_id', 'product_id');
SELECT upsell.register_products('ge.products', 'id', price => 'price', in_stock => 'in_stock', category => 'category');
CALL upsell.refresh();
INSERT INTO upsell.exclusions (category) VALUES ('c4');
INSERT INTO upsell.exclusions (product_id) VALUES (6);
INSERT INTO upsell.exclusions (product_id, with_product_id) VALUES (9, 2);
INSERT INTO upsell.thresholds (kind, amount) VALUES ('free_shipping', 30), ('discount', 65), ('gift', 95);
RESET client_min_messages;

-- the catalog has ties and complements
SELECT count(*) AS products, count(DISTINCT price) AS prices,
	   (SELECT count(*) FROM upsell.pair_model) AS pairs
FROM ge.products;
-- the pair model keeps pairs seen once only for products in fewer than 20
-- orders: products 1-3 (20 orders each) have such pairs, and lose them
SELECT count(*) FILTER (WHERE f.product_count < 20) AS rare_seen_once,
	   count(*) FILTER (WHERE f.product_count >= 20) AS frequent_seen_once,
	   count(p.*) FILTER (WHERE f.product_count < 20) AS rare_kept,
	   count(p.*) FILTER (WHERE f.product_count >= 20) AS frequent_kept
FROM upsell.frequently_bought_together(min_count => 1) f
LEFT JOIN upsell.pair_model p ON p.product_id = f.product_id AND p.other_id = f.other_id
WHERE f.together = 1;

-- the reference: every combination, scored as README states
CREATE FUNCTION ge.brute(cart bigint[], qty int[], k int, max_items int)
RETURNS TABLE ("rank" bigint, product_ids bigint[], added numeric, overshoot numeric, score float8)
LANGUAGE sql STABLE
AS $$
WITH total AS (
	SELECT coalesce(sum(p.price * coalesce(c.q, 1)), 0) AS v
	FROM unnest(cart, qty) c(id, q) JOIN ge.products p ON p.id = c.id),
target AS (
	SELECT min(t.amount) AS amount FROM upsell.thresholds t, total WHERE t.amount > total.v),
gap AS (
	SELECT ceil((target.amount - total.v) * 100)::bigint AS cents, target.amount - total.v AS value
	FROM target, total WHERE target.amount IS NOT NULL),
evidence AS (
	SELECT p.other_id, 1 - exp(sum(ln(1 - least(p.score, 0.999999))::numeric)::float8) AS score
	FROM upsell.pair_model p
	WHERE p.product_id = ANY (cart) AND p.other_id <> ALL (cart)
	GROUP BY p.other_id),
rel AS (
	SELECT e.other_id, e.score / nullif(max(e.score) OVER (), 0) AS r FROM evidence e),
e AS (
	SELECT p.id::bigint AS id, round(p.price * 100)::bigint AS cents, coalesce(rel.r, 0) AS r
	FROM ge.products p LEFT JOIN rel ON rel.other_id = p.id
	WHERE p.in_stock AND p.price > 0 AND p.id <> ALL (cart)
	  AND NOT upsell.is_excluded(0, p.id, p.category, cart)),
combos AS (
	SELECT ARRAY[a.id] AS ids, 1 AS n, a.cents AS added, a.r AS relsum
	FROM e a
	UNION ALL
	SELECT ARRAY[least(a.id, b.id), greatest(a.id, b.id)], 2, a.cents + b.cents, a.r + b.r
	FROM e a, e b
	WHERE max_items >= 2 AND (a.cents, a.id) < (b.cents, b.id)
	UNION ALL
	-- members summed in (price, id) order, as the search does
	SELECT ARRAY(SELECT x FROM unnest(ARRAY[a.id, b.id, c.id]) x ORDER BY x), 3,
		   a.cents + b.cents + c.cents, (a.r + b.r) + c.r
	FROM e a, e b, e c
	WHERE max_items >= 3 AND (a.cents, a.id) < (b.cents, b.id) AND (b.cents, b.id) < (c.cents, c.id)),
scored AS (
	SELECT c.ids, c.n, c.added,
		   (g.cents::float8 / c.added::float8) * (1.0::float8 + c.relsum / c.n)
			 * (CASE c.n WHEN 1 THEN 1.0 WHEN 2 THEN 0.8 ELSE 0.64 END)::float8 AS score,
		   c.added / 100.0 - g.value AS overshoot
	FROM combos c, gap g
	WHERE c.added >= g.cents)
SELECT row_number() OVER (ORDER BY s.score DESC, s.n, s.added, s.ids), s.ids, s.added / 100.0,
	   s.overshoot, s.score
FROM scored s
ORDER BY s.score DESC, s.n, s.added, s.ids
LIMIT k
$$;

CREATE TABLE ge.cases (case_no int, cart bigint[], qty int[], k int, max_items int);
INSERT INTO ge.cases
SELECT row_number() OVER (), c.cart, c.qty, k, m
FROM (VALUES ('{}'::bigint[], NULL::int[]), ('{1}', NULL), ('{2}', NULL), ('{1,2}', NULL),
			 ('{1,2}', '{2,1}'), ('{3}', '{4}'), ('{7,8}', NULL), ('{20,4}', '{1,3}'),
			 ('{5}', NULL), ('{22,23,24}', NULL)) c(cart, qty),
	 (VALUES (1), (4), (12)) kk(k), generate_series(1, 3) m;

-- per case: rows returned, rows the reference has, and whether they are identical
-- (ids, added, overshoot and the float score bit for bit), rank by rank
SELECT c.case_no, c.cart, c.qty, c.k, c.max_items, r.got, r.want, r.identical
FROM ge.cases c,
	 LATERAL (
		SELECT count(g.rank) AS got, count(b.rank) AS want,
			   coalesce(bool_and(g.product_ids = b.product_ids AND g.added = b.added
								 AND g.overshoot = b.overshoot AND g.score = b.score), true) AS identical
		FROM upsell.gap_fillers(c.cart, c.qty, c.k, c.max_items) g
		FULL JOIN ge.brute(c.cart, c.qty, c.k, c.max_items) b ON b.rank = g.rank) r
WHERE c.k = 12 OR NOT r.identical OR r.got <> r.want
ORDER BY c.case_no;

SELECT count(*) AS cases,
	   count(*) FILTER (WHERE r.identical AND r.got = r.want) AS identical
FROM ge.cases c,
	 LATERAL (
		SELECT count(g.rank) AS got, count(b.rank) AS want,
			   coalesce(bool_and(g.product_ids = b.product_ids AND g.added = b.added
								 AND g.overshoot = b.overshoot AND g.score = b.score), true) AS identical
		FROM upsell.gap_fillers(c.cart, c.qty, c.k, c.max_items) g
		FULL JOIN ge.brute(c.cart, c.qty, c.k, c.max_items) b ON b.rank = g.rank) r;

-- the least overshoot per number of items, by brute force over all combinations
-- (no ranking involved), equals the least the search offers when k is large
SELECT cart, n, search, search = brute AS same
FROM (SELECT c.cart, n,
			 (SELECT min(g.overshoot) FROM upsell.gap_fillers(c.cart, NULL, 1000, 3) g
			  WHERE cardinality(g.product_ids) = n) AS search,
			 (SELECT min(b.overshoot) FROM ge.brute(c.cart, NULL, 100000, 3) b
			  WHERE cardinality(b.product_ids) = n) AS brute
	  FROM (VALUES ('{}'::bigint[]), ('{1,2}')) c(cart), generate_series(1, 3) n) x
ORDER BY cart, n;

-- one case in full
SELECT rank, product_ids, added, overshoot, round(score::numeric, 6) AS score
FROM upsell.gap_fillers('{1,2}', NULL, 6, 3);

SET client_min_messages = warning;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.exclusions;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA ge CASCADE;
