-- frequent_itemsets and association_rules: bad input, the memory limit, odd
-- queries, NULL ids.  Clear errors with SQLSTATEs, never a crash.
\set SHOW_CONTEXT never
\set VERBOSITY default
CREATE SCHEMA ie;
-- 30 orders of the same 12 products: every one of the 4,095 subsets is frequent
CREATE TABLE ie.lines AS
SELECT o AS order_id, p AS product_id FROM generate_series(1, 30) o, generate_series(1, 12) p;

-- nothing registered yet
SELECT * FROM upsell.frequent_itemsets(0.1);
SELECT * FROM upsell.association_rules(0.1, 0.5);

-- the query overload over a dense table
SELECT size, count(*), min(count), max(count) FROM upsell.frequent_itemsets(
	'SELECT order_id, product_id FROM ie.lines', 0.5, 12) GROUP BY 1 ORDER BY 1;
-- rules: each of the 4,095 - 12 sets of 2+ gives one rule per member (all confidence 1)
SELECT count(*), min(confidence), max(conviction) FROM upsell.association_rules(
	'SELECT order_id, product_id FROM ie.lines', 0.5, 1.0, 12);
SELECT count(*) AS two_item_consequents FROM upsell.association_rules(
	'SELECT order_id, product_id FROM ie.lines', 0.5, 1.0, 3, NULL, 2) WHERE cardinality(consequent) = 2;

-- the memory limit names the setting; a larger limit lets the same call through
SET upsell.itemsets_memory_limit = '64kB';
SELECT count(*) FROM upsell.frequent_itemsets(query => 'SELECT order_id, product_id FROM ie.lines',
	min_support => 0, max_size => 12);
SHOW upsell.itemsets_memory_limit;
SET upsell.itemsets_memory_limit = '1MB';
SELECT count(*) FROM upsell.frequent_itemsets(query => 'SELECT order_id, product_id FROM ie.lines',
	min_support => 0, max_size => 12);
-- 0: no limit
SET upsell.itemsets_memory_limit = 0;
SELECT count(*) FROM upsell.frequent_itemsets(query => 'SELECT order_id, product_id FROM ie.lines',
	min_support => 0, max_size => 12);
RESET upsell.itemsets_memory_limit;
-- (the range in PostgreSQL's message carries units from 18 on: only the SQLSTATE)
\set VERBOSITY sqlstate
SET upsell.itemsets_memory_limit = -2;
\set VERBOSITY default

-- thresholds
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', -0.1);
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', 1.5);
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', 'NaN');
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', 0.1, 0);
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', 0.1, NULL);
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', 0.1, 4, 0);
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', 0.1, 4, -5);
SELECT * FROM upsell.frequent_itemsets(NULL::text);
-- NULL min_support means no support threshold (min_count decides)
SELECT count(*) FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines', NULL, 2, 30);
SELECT * FROM upsell.association_rules('SELECT order_id, product_id FROM ie.lines', 0.1, 1.5);
SELECT * FROM upsell.association_rules('SELECT order_id, product_id FROM ie.lines', 0.1, -1.0);
SELECT * FROM upsell.association_rules('SELECT order_id, product_id FROM ie.lines', 0.1, 0.5, 1);
SELECT * FROM upsell.association_rules('SELECT order_id, product_id FROM ie.lines', 0.1, 0.5, 4, NULL, 0);

-- queries of the wrong shape
SELECT * FROM upsell.frequent_itemsets('SELECT 1');
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id, 1 FROM ie.lines');
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id::text FROM ie.lines');
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id::numeric FROM ie.lines');
SELECT * FROM upsell.frequent_itemsets('CREATE TABLE ie.x (a int)');
SELECT * FROM upsell.frequent_itemsets('SELECT FROM nowhere');
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines; SELECT 1');
-- no rows, NULL ids (skipped), uuid and smallint ids
SELECT count(*) FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM ie.lines WHERE false');
SELECT items, count FROM upsell.frequent_itemsets(
	$$SELECT o, p FROM (VALUES (1, 10), (1, 20), (2, 10), (2, NULL), (NULL, 20), (3, 10), (3, 20)) v(o, p)$$,
	0.0, 4) ORDER BY items;
-- with integer literals, name the query argument: frequent_itemsets(text, 0, 4)
-- would match the registered-orders form (float8, int, int) more exactly
SELECT count(*) FROM upsell.frequent_itemsets(query => 'SELECT order_id, product_id FROM ie.lines',
	min_support => 1, max_size => 1);
SELECT items, count FROM upsell.frequent_itemsets(
	$$SELECT md5(o::text)::uuid, p::smallint FROM (VALUES (1, 10), (1, 20), (2, 10), (2, 20), (3, 30)) v(o, p)$$,
	0.5, 4) ORDER BY items;

-- registered orders with a tenant column: tenant_id is required
SELECT upsell.register_orders('ie.lines', 'order_id', 'product_id', tenant_id => 'order_id');
SELECT * FROM upsell.frequent_itemsets(0.1);
SELECT count(*) FROM upsell.frequent_itemsets(0.1, 4, tenant_id => 7);
SELECT count(*) FROM upsell.frequent_itemsets(0.1, 4, tenant_id => 999);
SELECT upsell.register_orders('ie.lines', 'order_id', 'product_id');
SELECT * FROM upsell.frequent_itemsets(0.1, tenant_id => 7);
SELECT count(*) FROM upsell.frequent_itemsets(0.5, 2);

DELETE FROM upsell.order_source;
DROP SCHEMA ie CASCADE;
