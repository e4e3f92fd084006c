-- Upgrades and downsells on real data: the Tableau Superstore catalog
-- (1,862 products, 17 sub-categories, 804 customers).  Every upgrade is
-- pricier, within the ratio, of the same group or category, in stock; every
-- downsell cheaper; upgrade paths agree with a plain-SQL count.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\i scripts/load_superstore.sql
RESET client_min_messages;
-- every tenth product out of stock
UPDATE superstore.products SET in_stock = false WHERE product_id % 10 = 0;

SELECT upsell.register_orders('superstore.order_lines', 'order_id', 'product_id',
	customer_id => 'customer_id', ordered_at => 'ordered_at', quantity => 'quantity',
	unit_price => 'unit_price');
SELECT upsell.register_products('superstore.products', 'product_id', price => 'price',
	category => 'category', variant_group => 'variant_group', in_stock => 'in_stock',
	title => 'title', unit_size => 'unit_size', unit_name => 'unit_name');
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- The lines are grouped by customer in memory, within
-- upsell.itemsets_memory_limit; beyond it the customers are split into
-- parts, each read by its own pass (here into four): the same lists, and
-- the same counts they were ranked from (the rows after the lists').
SELECT upsell._upgrade_lists_query(0, NULL, NULL) AS upgrade_query \gset
CREATE TEMP TABLE lists_whole AS :upgrade_query;
CREATE TEMP TABLE lists_parts (LIKE lists_whole);
SET upsell.itemsets_memory_limit = '150kB';
-- (run once quietly first: the session's catalog caches then have what the
-- passes look up, and PostgreSQL's own DEBUG1 lines of their growth stay
-- out of the output)
INSERT INTO lists_parts :upgrade_query;
TRUNCATE lists_parts;
SET client_min_messages = debug1;
INSERT INTO lists_parts :upgrade_query;
RESET client_min_messages;
RESET upsell.itemsets_memory_limit;
SELECT (SELECT count(*) FROM lists_whole WHERE counts_state IS NULL) AS lists,
	   (SELECT count(*) FROM lists_whole WHERE counts_state IS NOT NULL) AS count_chunks,
	   (SELECT count(*) FROM upsell.upgrade_list_model) AS stored,
	   (SELECT count(*) FROM (TABLE lists_whole EXCEPT ALL TABLE lists_parts) d)
	   + (SELECT count(*) FROM (TABLE lists_parts EXCEPT ALL TABLE lists_whole) d) AS differences,
	   (SELECT count(*) FROM (SELECT tenant_id, product_id, kind, buyers, candidate_ids, same_group, paths,
									 candidate_buyers, popularity, closeness, score
							  FROM lists_whole WHERE counts_state IS NULL
							  EXCEPT ALL TABLE upsell.upgrade_list_model) d) AS not_stored,
	   (SELECT count(*) FROM (SELECT counts_chunk, counts_state FROM lists_whole WHERE counts_state IS NOT NULL
							  EXCEPT ALL SELECT chunk, state FROM upsell.upgrade_count_model) d) AS counts_not_stored;

-- Compared with the lists stored so far (an incremental refresh), only what
-- changed: against the whole lists nothing; against lists with one row
-- gone, one row's score and one row's buyers changed and one row of a key
-- that has no list, those four, the last as its key alone.
CREATE TEMP TABLE stored AS
SELECT product_id, kind = 'upgrade' AS upgrade, buyers, candidate_ids, same_group, paths, candidate_buyers,
	   popularity, closeness, score
FROM lists_whole WHERE counts_state IS NULL;
SELECT upsell._upgrade_lists_query(0, NULL, 'SELECT * FROM stored ORDER BY product_id') AS changes_query \gset
CREATE TEMP TABLE changes AS :changes_query;
SELECT count(*) AS changes_of_the_same FROM changes WHERE counts_state IS NULL;
SELECT min(product_id) AS gone_id FROM stored WHERE upgrade \gset
SELECT max(product_id) AS rescored_id FROM stored WHERE NOT upgrade \gset
DELETE FROM stored WHERE product_id = :gone_id AND upgrade;
UPDATE stored SET score[1] = score[1] + 1e-12 WHERE product_id = :rescored_id AND NOT upgrade;
SELECT product_id AS rebought_id, upgrade AS rebought_upgrade FROM stored ORDER BY product_id, upgrade OFFSET 500 LIMIT 1 \gset
UPDATE stored SET buyers = buyers + 1 WHERE product_id = :rebought_id AND upgrade = :'rebought_upgrade';
INSERT INTO stored SELECT -7, true, buyers, candidate_ids, same_group, paths, candidate_buyers, popularity,
	closeness, score FROM stored LIMIT 1;
TRUNCATE changes;
INSERT INTO changes :changes_query;
SELECT c.product_id IN (:gone_id, :rescored_id, :rebought_id, -7) AS named, c.kind, c.buyers IS NULL AS gone,
	   c IS NOT DISTINCT FROM w AS as_computed
FROM changes c LEFT JOIN lists_whole w ON (w.product_id, w.kind) = (c.product_id, c.kind)
WHERE c.counts_state IS NULL
ORDER BY c.product_id = -7, c.product_id, c.kind;
-- stored rows out of product order, or of one key twice, are an error
DO $$ BEGIN
	EXECUTE upsell._upgrade_lists_query(0, NULL, 'SELECT * FROM stored ORDER BY product_id DESC');
EXCEPTION WHEN invalid_parameter_value THEN RAISE NOTICE 'out of order: %', SQLERRM;
END $$;
DO $$ BEGIN
	EXECUTE upsell._upgrade_lists_query(0, NULL, 'SELECT * FROM stored UNION ALL SELECT * FROM stored ORDER BY 1');
EXCEPTION WHEN unique_violation THEN RAISE NOTICE 'twice: %', SQLERRM;
END $$;

-- the rules, checked on what the serving functions return for every product
WITH up AS (
	SELECT p.product_id, u.*
	FROM superstore.products p, upsell.upgrade_candidates(p.product_id, 10) u)
SELECT count(*) AS upgrades, count(DISTINCT up.product_id) AS products_with_upgrades,
	   count(*) FILTER (WHERE c.price <= p.price) AS not_pricier,
	   count(*) FILTER (WHERE c.price > p.price * 1.5) AS beyond_ratio,
	   count(*) FILTER (WHERE c.category <> p.category) AS other_category,
	   count(*) FILTER (WHERE NOT c.in_stock) AS out_of_stock,
	   count(*) FILTER (WHERE up.price <> c.price OR up.extra_cost <> c.price - p.price) AS wrong_money,
	   count(*) FILTER (WHERE c.variant_group = p.variant_group) AS same_group
FROM up
JOIN superstore.products p ON p.product_id = up.product_id
JOIN superstore.products c ON c.product_id = up.candidate_id;

WITH down AS (
	SELECT p.product_id, d.*
	FROM superstore.products p, upsell.downsell_candidates(p.product_id, 10) d)
SELECT count(*) AS downsells, count(DISTINCT down.product_id) AS products_with_downsells,
	   count(*) FILTER (WHERE c.price >= p.price) AS not_cheaper,
	   count(*) FILTER (WHERE c.price < p.price * 0.5) AS beyond_ratio,
	   count(*) FILTER (WHERE c.category <> p.category) AS other_category,
	   count(*) FILTER (WHERE NOT c.in_stock) AS out_of_stock,
	   count(*) FILTER (WHERE down.saving <> p.price - c.price) AS wrong_money
FROM down
JOIN superstore.products p ON p.product_id = down.product_id
JOIN superstore.products c ON c.product_id = down.candidate_id;

-- same variant group first: no category-only candidate ranks above a group one
WITH up AS (
	SELECT p.product_id, u.rank, c.variant_group = p.variant_group AS same_group
	FROM superstore.products p, upsell.upgrade_candidates(p.product_id, 10, 2) u
	JOIN superstore.products c ON c.product_id = u.candidate_id)
SELECT count(*) AS group_after_category
FROM up a JOIN up b ON a.product_id = b.product_id AND a.rank < b.rank
WHERE NOT a.same_group AND b.same_group;

-- a tighter ratio only removes candidates
SELECT bool_and(u.price <= p.price * 1.1) AS within_1_1,
	   count(*) <= (SELECT count(*) FROM superstore.products p2, upsell.upgrade_candidates(p2.product_id, 10)) AS fewer
FROM superstore.products p, upsell.upgrade_candidates(p.product_id, 10, 1.1) u;

-- upgrade paths of every stored pair = customers who bought the product and,
-- on a later day, the candidate (plain SQL)
WITH l AS (SELECT DISTINCT customer_id, product_id, ordered_at FROM superstore.order_lines),
ref AS (
	SELECT a.product_id AS a, b.product_id AS b, count(DISTINCT a.customer_id) AS paths
	FROM l a JOIN l b ON a.customer_id = b.customer_id AND a.ordered_at < b.ordered_at
	GROUP BY 1, 2)
SELECT count(*) AS stored_pairs, count(*) FILTER (WHERE u.paths > 0) AS with_paths,
	   count(*) FILTER (WHERE u.paths = coalesce(r.paths, 0)) AS paths_agree
FROM upsell.upgrade_model u LEFT JOIN ref r ON r.a = u.product_id AND r.b = u.candidate_id;

-- the product whose buyers most often moved up, and where they went
SELECT u.product_id, p.title, p.price
FROM upsell.upgrade_model u JOIN superstore.products p USING (product_id)
WHERE u.kind = 'upgrade'
GROUP BY u.product_id, p.title, p.price
ORDER BY sum(u.paths) DESC, u.product_id LIMIT 1 \gset top_
SELECT :'top_title' AS product, :top_price AS price;
SELECT u.rank, p.title, u.price, u.extra_cost, u.score, u.reason
FROM upsell.upgrade_candidates(:top_product_id, 3) u
JOIN superstore.products p ON p.product_id = u.candidate_id
ORDER BY u.rank;
SELECT d.rank, p.title, d.price, d.saving, d.reason
FROM upsell.downsell_candidates(:top_product_id, 3) d
JOIN superstore.products p ON p.product_id = d.candidate_id
ORDER BY d.rank;

SET client_min_messages = warning;
DROP SCHEMA superstore CASCADE;
