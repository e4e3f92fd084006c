-- incremental refresh on real data (the superstore: text order and customer
-- ids, dates, prices, categories, variant groups): new orders, late orders,
-- returns of old orders fold in and give exactly the models of a full
-- refresh; lines added to old orders, deleted and edited lines are detected
-- and the tenant is rebuilt in full, saying why.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_superstore.sql
\set ECHO all
-- small chunks of the counts, so that every reader of them meets several
SET upsell.cooccurrence_chunk_pairs = 300;
-- bundles of the superstore's lines need a lower count than the default
-- (at 2 the bundles and the sets kept have rows to compare)
SET upsell.bundle_min_count = 2;
CREATE SCHEMA inc;
-- the shop's table (a table: its rows carry the commit order)
CREATE TABLE inc.lines (LIKE superstore.order_lines);
INSERT INTO inc.lines SELECT * FROM superstore.order_lines WHERE ordered_at < '2022-07-01';
-- Registers a relation of these lines (inc.lines, or the same lines as a
-- timestamptz table or a view) with every column, from the session's zone.
CREATE FUNCTION pg_temp.register_lines(relation text) RETURNS void LANGUAGE sql AS $$
	SELECT upsell.register_orders(relation, 'order_id', 'product_id', customer_id => 'customer_id',
		ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price') $$;
SELECT pg_temp.register_lines('inc.lines');
SELECT upsell.register_products('superstore.products', 'product_id', price => 'price',
	category => 'category', variant_group => 'variant_group', in_stock => 'in_stock',
	title => 'title', unit_size => 'unit_size', unit_name => 'unit_name');

-- New orders for the cases below: copies of the Superstore's orders of
-- [since, before), their line ids moved by id_offset, their order ids
-- suffixed, their dates shifted; returns the lines added.
CREATE FUNCTION pg_temp.copy_orders(id_offset int, suffix text, shift interval, since date, before date)
RETURNS bigint LANGUAGE sql AS $$
	WITH added AS (
		INSERT INTO inc.lines
		SELECT o.line_id + id_offset, o.order_id || suffix, o.customer_id, o.ordered_at + shift,
			   o.product_id, o.quantity, o.unit_price, o.discount
		FROM superstore.order_lines o WHERE o.ordered_at >= since AND o.ordered_at < before
		RETURNING 1)
	SELECT count(*) FROM added $$;

-- Every model's rows (except the build time of threshold_candidates and
-- source_state, which differ by nature) as they are now, kept in inc_saved.
CREATE FUNCTION pg_temp.save_models() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	m record;
BEGIN
	DROP SCHEMA IF EXISTS inc_saved CASCADE;
	CREATE SCHEMA inc_saved;
	FOR m IN SELECT model FROM upsell.models LOOP
		EXECUTE format('CREATE TABLE inc_saved.%I AS SELECT * FROM upsell.%I', m.model, m.model);
	END LOOP;
	-- the product page's offers as served, the bundles joined
	CREATE TABLE inc_saved.product_page_offers AS SELECT * FROM upsell.product_page_model;
END $$;
-- The counts stored in a copy of cooccurrence_chunks pair by pair, as the
-- readers read them: each chunk of the base with the delta (chunk -1)
-- summed in (upsell._cooccurrence_parts, of any copy of the table).
CREATE FUNCTION pg_temp.summed_pairs(chunks text)
RETURNS TABLE (tenant_id bigint, max_ordered_at timestamptz, max_order_key bigint, pair text)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format($q$
		SELECT c.tenant_id, GREATEST(c.max_ordered_at, d.max_ordered_at), GREATEST(c.max_order_key, d.max_order_key), x::text
		FROM %1$s c
		LEFT JOIN %1$s d ON d.tenant_id = c.tenant_id AND d.chunk = -1,
		upsell._cooccurrence_pairs_sum(c.state, d.state, CASE WHEN c.chunk > 0 THEN c.first_product END,
			(SELECT n.first_product FROM %1$s n WHERE n.tenant_id = c.tenant_id AND n.chunk > c.chunk
			 ORDER BY n.chunk LIMIT 1), 1) x
		WHERE c.chunk >= 0$q$, chunks);
END $$;
-- Rows that differ between the saved models and the current ones, per model
-- (and the product page's offers, its view).
CREATE FUNCTION pg_temp.model_differences() RETURNS TABLE (model name, differences bigint)
LANGUAGE plpgsql AS $$
DECLARE
	m record;
	cols text;
BEGIN
	FOR m IN SELECT d.model FROM upsell.models d WHERE d.model <> 'source_state' ORDER BY d.build_order LOOP
		-- as text: the counts' type has no equality operator
		SELECT string_agg(quote_ident(a.attname) || '::text', ', ' ORDER BY a.attnum) INTO cols
		FROM pg_attribute a
		WHERE a.attrelid = format('upsell.%I', m.model)::regclass AND a.attnum > 0
		  AND NOT a.attisdropped AND a.attname <> 'built_at'
		  -- (what the upgrade counts and the bundles' sets were counted
		  -- from: compare() shows it)
		  AND NOT (m.model IN ('upgrade_count_model', 'bundle_set_model') AND a.attname = 'counted');
		model := m.model;
		EXECUTE format('SELECT count(*) FROM ((SELECT %1$s FROM %2$s EXCEPT ALL SELECT %1$s FROM %3$s) '
					   'UNION ALL (SELECT %1$s FROM %3$s EXCEPT ALL SELECT %1$s FROM %2$s)) d',
					   -- the counts pair by pair, base and delta summed: the
					   -- chunks' bounds depend on how the counts grew, and an
					   -- incremental refresh stores a delta beside them
					   CASE WHEN m.model = 'cooccurrence_chunks' THEN '*' ELSE cols END,
					   CASE WHEN m.model = 'cooccurrence_chunks'
							THEN 'pg_temp.summed_pairs(''inc_saved.cooccurrence_chunks'')'
							ELSE 'inc_saved.' || quote_ident(m.model) END,
					   CASE WHEN m.model = 'cooccurrence_chunks'
							THEN 'pg_temp.summed_pairs(''upsell.cooccurrence_chunks'')'
							ELSE 'upsell.' || quote_ident(m.model) END) INTO differences;
		RETURN NEXT;
	END LOOP;
	model := 'product_page_model';
	SELECT count(*) INTO differences
	FROM ((TABLE inc_saved.product_page_offers EXCEPT ALL TABLE upsell.product_page_model)
		  UNION ALL (TABLE upsell.product_page_model EXCEPT ALL TABLE inc_saved.product_page_offers)) d;
	RETURN NEXT;
END $$;
-- After an incremental refresh (saved) and a full one of the same lines:
-- how the tenant was refreshed incrementally, what its upgrade lists'
-- counts and its bundles' frequent sets were counted from ('new lines':
-- folded into those kept, by the side build's worker), and the models that
-- differ (none, when incremental is right).
CREATE FUNCTION pg_temp.compare() RETURNS TABLE (mode text, reason text, new_lines bigint,
	upgrade_counts text, bundle_sets text, differing text)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE $q$
		SELECT s.mode, s.reason, s.new_lines,
			   (SELECT string_agg(DISTINCT u.counted, ', ') FROM inc_saved.upgrade_count_model u),
			   (SELECT string_agg(DISTINCT b.counted, ', ') FROM inc_saved.bundle_set_model b),
			   (SELECT coalesce(string_agg(d.model || ': ' || d.differences, ', '), 'none')
				FROM pg_temp.model_differences() d WHERE d.differences > 0)
		FROM inc_saved.source_state s WHERE s.tenant_id = 0$q$;
END $$;

-- An incremental refresh of what came since the last refresh, its models
-- saved, then a full refresh of the same lines, for compare().
CREATE PROCEDURE pg_temp.incremental_then_full() LANGUAGE plpgsql AS $$
BEGIN
	CALL upsell.refresh(incremental => true);
	PERFORM pg_temp.save_models();
	CALL upsell.refresh();
END $$;

CALL upsell.refresh();
SELECT mode, lines, new_lines FROM upsell.source_state WHERE tenant_id = 0;
SELECT model, row_count > 0 AS has_rows FROM upsell.models ORDER BY build_order;

-- 1. new orders (July to September 2022), folded in
INSERT INTO inc.lines SELECT * FROM superstore.order_lines
WHERE ordered_at >= '2022-07-01' AND ordered_at < '2022-10-01';
CREATE TEMP TABLE lists_before AS SELECT product_id, xmin::text AS written FROM upsell.pair_list_model;
CREATE TEMP TABLE carts_before AS SELECT product_id, xmin::text AS written FROM upsell.cart_model;
CREATE TEMP TABLE pages_before AS SELECT product_id, xmin::text AS written FROM upsell.product_page_list_model;
CREATE TEMP TABLE products_before AS SELECT product_id, xmin::text AS written FROM upsell.product_model;
CALL upsell.refresh(incremental => true);
-- The rows of a model written again since their xmins were saved in
-- before: how many, how many of products outside new_products, of how many.
CREATE FUNCTION pg_temp.rows_written(model name, before regclass, new_products bigint[])
RETURNS TABLE (written bigint, written_of_other_products bigint, total bigint)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format(
		'SELECT count(*) FILTER (WHERE b.written IS DISTINCT FROM m.xmin::text),
				count(*) FILTER (WHERE b.written IS DISTINCT FROM m.xmin::text AND m.product_id <> ALL ($1)),
				count(*)
		 FROM upsell.%I m LEFT JOIN %s b USING (product_id)', model, before)
	USING new_products;
END $$;
CREATE TEMP TABLE new_products AS
SELECT DISTINCT n.product_id FROM superstore.order_lines n
WHERE n.ordered_at >= '2022-07-01' AND n.ordered_at < '2022-10-01';
-- only the pair lists of the products of new orders were written again
SELECT * FROM pg_temp.rows_written('pair_list_model', 'lists_before', ARRAY(TABLE new_products));
-- and the product rows of those products alone (a row holds no rank that
-- every new order would move)
SELECT * FROM pg_temp.rows_written('product_model', 'products_before', ARRAY(TABLE new_products));
-- and the cart and product page rows of the products whose lists changed:
-- fewer than all
SELECT count(*) FILTER (WHERE b.written IS DISTINCT FROM c.xmin::text) < count(*) AS cart_rows_partly_written,
	   count(*) FILTER (WHERE b.written IS DISTINCT FROM c.xmin::text) > 0 AS cart_rows_written
FROM upsell.cart_model c LEFT JOIN carts_before b USING (product_id);
SELECT count(*) FILTER (WHERE b.written IS DISTINCT FROM p.xmin::text) < count(*) AS page_rows_partly_written,
	   count(*) FILTER (WHERE b.written IS DISTINCT FROM p.xmin::text) > 0 AS page_rows_written
FROM upsell.product_page_list_model p LEFT JOIN pages_before b USING (product_id);
-- the rows each build reports are its model's rows, a partial publish's too
-- (its rows before, less those replaced, plus those written)
CREATE FUNCTION pg_temp.rows_of(model name) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM upsell.%I', model) INTO n;
	RETURN n;
END $$;
SELECT m.model, m.row_count, c.counted
FROM upsell.models m, LATERAL (SELECT pg_temp.rows_of(m.model) AS counted) c
WHERE m.row_count IS DISTINCT FROM c.counted;
-- background workers (side builds) computed the upgrade lists and bundles
-- (rebuilt in full even now) and the purchase histories of the customers
-- with new lines; the refresh itself folded the new orders into order_model
SELECT mode FROM upsell.source_state WHERE tenant_id = 0;
SELECT model FROM upsell.models WHERE side_build ORDER BY build_order;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();

-- one new order of one customer: folded in, the same models
INSERT INTO inc.lines
SELECT line_id + 50000, order_id || '-one', customer_id, ordered_at + interval '5 years',
	   product_id, quantity, unit_price, discount
FROM superstore.order_lines WHERE order_id = (SELECT max(order_id) FROM superstore.order_lines WHERE ordered_at < '2022-07-01');
CALL upsell.refresh(incremental => true);
SELECT new_orders FROM upsell.source_state WHERE tenant_id = 0;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();

-- 2. late orders: new orders dated three years back (earlier than most lines counted)
SELECT pg_temp.copy_orders(100000, '-late', '-3 years', '2022-10-01', '2022-11-01');
-- (built by the refresh alone, without side builds: the same models)
SET upsell.refresh_workers = 0;
CALL upsell.refresh(incremental => true);
RESET upsell.refresh_workers;
SELECT count(*) AS side_built FROM upsell.models WHERE side_build;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();

-- 3. returns of old orders (negative quantities), with new orders
INSERT INTO inc.lines
SELECT line_id + 200000, order_id, customer_id, ordered_at + interval '10 days',
	   product_id, -quantity, unit_price, discount
FROM inc.lines WHERE line_id % 50 = 0 AND line_id < 100000;
INSERT INTO inc.lines SELECT * FROM superstore.order_lines
WHERE ordered_at >= '2022-11-01' AND ordered_at < '2022-12-01';
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- 4. a line added to an old order: detected, the tenant rebuilt in full
INSERT INTO inc.lines
SELECT 300000, order_id, customer_id, ordered_at, 1, 1, 9.99, 0
FROM inc.lines WHERE line_id = (SELECT min(line_id) FROM inc.lines);
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- 4b. the same with an index on the order key: the lines of the new
-- lines' orders are then counted through it (the index is scanned), not by
-- a filter of the count's scan
CREATE INDEX lines_order_key ON inc.lines (upsell.order_key(order_id));
ANALYZE inc.lines;
SELECT pg_stat_force_next_flush();
SELECT idx_scan AS scans_before FROM pg_stat_user_indexes WHERE indexrelname = 'lines_order_key' \gset
INSERT INTO inc.lines
SELECT 300001, order_id, customer_id, ordered_at, 2, 1, 9.99, 0
FROM inc.lines WHERE line_id = (SELECT min(line_id) FROM inc.lines);
CALL upsell.refresh(incremental => true);
SELECT pg_stat_force_next_flush();
SELECT idx_scan > :scans_before AS index_scanned FROM pg_stat_user_indexes WHERE indexrelname = 'lines_order_key';
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
-- and new orders alone still fold in
SELECT pg_temp.copy_orders(1000000, '-copy', '1 year', '2022-04-01', '2022-05-01');
-- (no catalog fact changed: the gap fillers' candidates are kept as built,
-- unless the categories whose products substitute each other changed, as
-- here: with these orders the bookcases are bought one at a time)
SELECT built_at AS threshold_built, substitutes AS substitutes_before FROM upsell.threshold_candidates WHERE tenant_id = 0 \gset
CALL upsell.refresh(incremental => true);
SELECT built_at = :'threshold_built' AS threshold_row_kept, substitutes = :'substitutes_before' AS same_substitutes,
	   ARRAY(SELECT categories[c] FROM unnest(substitutes) c EXCEPT SELECT categories[c] FROM unnest(:'substitutes_before'::int[]) c) AS now_substitutes
FROM upsell.threshold_candidates WHERE tenant_id = 0;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
-- and with no new order they are
SELECT built_at AS threshold_built FROM upsell.threshold_candidates WHERE tenant_id = 0 \gset
CALL upsell.refresh(incremental => true);
SELECT built_at = :'threshold_built' AS threshold_row_kept FROM upsell.threshold_candidates WHERE tenant_id = 0;
DROP INDEX inc.lines_order_key;

-- 5. deleted lines: detected
DELETE FROM inc.lines WHERE line_id % 97 = 0;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- 6. an edited line: detected
UPDATE inc.lines SET quantity = quantity + 1 WHERE line_id = (SELECT max(line_id) FROM inc.lines WHERE line_id < 100000);
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- 7. nothing new: nothing to fold in, the same models
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- 8. the rest of the history after all that, folded in
INSERT INTO inc.lines SELECT * FROM superstore.order_lines WHERE ordered_at >= '2022-12-01';
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- 9. the counts in one chunk (a tenant's up to upsell.cooccurrence_chunk_pairs
-- pairs, 16.7M by default): new orders merged into it, and into one that
-- then outgrows a smaller bound and is split
SET upsell.cooccurrence_chunk_pairs = 100000000;
CALL upsell.refresh();
SELECT pg_temp.copy_orders(400000, '-again', '1 year', '2022-06-01', '2022-07-01');
CALL upsell.refresh(incremental => true);
-- (the base's one chunk kept, the new orders' counts stored beside it as
-- the delta, chunk -1)
SELECT count(*) FILTER (WHERE chunk >= 0) AS chunks, count(*) FILTER (WHERE chunk = -1) AS deltas
FROM upsell.cooccurrence_chunks WHERE tenant_id = 0;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
SELECT pg_temp.copy_orders(500000, '-again', '1 year', '2022-05-01', '2022-06-01');
SET upsell.cooccurrence_chunk_pairs = 300;
CALL upsell.refresh(incremental => true);
SELECT count(*) > 1 AS split FROM upsell.cooccurrence_chunks WHERE tenant_id = 0;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();

-- 11. the catalog changed with new orders: prices, stock, a category and
-- variant groups; the rows that name the changed products are rewritten
-- and every model equals a full refresh's
UPDATE superstore.products SET price = price * 1.3 WHERE product_id % 37 = 0;
UPDATE superstore.products SET in_stock = false WHERE product_id % 41 = 0;
UPDATE superstore.products SET category = 'Paper' WHERE product_id = 44;
UPDATE superstore.products SET variant_group = 'Binders / moved' WHERE product_id IN (45, 46, 47);
SELECT pg_temp.copy_orders(700000, '-cat', '3 years', '2022-03-01', '2022-03-15');
DROP TABLE carts_before, products_before;
CREATE TEMP TABLE carts_before AS SELECT product_id, xmin::text AS written FROM upsell.cart_model;
CREATE TEMP TABLE products_before AS SELECT product_id, xmin::text AS written FROM upsell.product_model;
SELECT built_at AS threshold_built FROM upsell.threshold_candidates WHERE tenant_id = 0 \gset
CALL upsell.refresh(incremental => true);
-- (prices and stock changed: the gap fillers' candidates are built again)
SELECT built_at > :'threshold_built' AS threshold_row_rebuilt FROM upsell.threshold_candidates WHERE tenant_id = 0;
-- every product whose catalog facts changed has its row written again,
-- though not every product
SELECT count(*) FILTER (WHERE b.written IS DISTINCT FROM m.xmin::text) < count(*) AS product_rows_partly_written,
	   bool_and(b.written IS DISTINCT FROM m.xmin::text)
		   FILTER (WHERE m.product_id % 37 = 0 OR m.product_id % 41 = 0 OR m.product_id IN (44, 45, 46, 47))
		   AS changed_products_rewritten
FROM upsell.product_model m LEFT JOIN products_before b USING (product_id);
SELECT count(*) FILTER (WHERE b.written IS DISTINCT FROM c.xmin::text) < count(*) AS cart_rows_partly_written,
	   count(*) FILTER (WHERE b.written IS DISTINCT FROM c.xmin::text AND c.product_id IN (44, 45, 46, 47))
		   AS changed_products_rewritten
FROM upsell.cart_model c LEFT JOIN carts_before b USING (product_id);
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
-- and a merchant's rule that changes which categories substitute each other
-- (every cart row may change: rewritten in full)
INSERT INTO upsell.category_substitutes (category, other_category, substitutes) VALUES ('Paper', 'Binders', true);
SELECT pg_temp.copy_orders(800000, '-rule', '3 years', '2022-03-15', '2022-04-01');
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
DELETE FROM upsell.category_substitutes;

-- 12. no new lines (the hourly refresh of a quiet shop): the models computed
-- from the lines alone (the counts in chunks within the bound, their
-- totals, the bundles, the product intervals, the recent orders, and the
-- upgrade lists and the categories while the catalog and the merchant's
-- rules are the same) are
-- kept, not written again, and equal a full refresh's; with prices
-- changed, and still no new line, the upgrade lists follow the catalog;
-- with a rule changed, the categories follow it
INSERT INTO upsell.category_substitutes (category, other_category, substitutes) VALUES ('Paper', 'Binders', true);
CALL upsell.refresh();
SELECT count(*) > 1 AS chunks_split FROM upsell.cooccurrence_chunks WHERE tenant_id = 0;
-- the transactions that wrote each kept model's rows
CREATE FUNCTION pg_temp.writers() RETURNS TABLE (model name, writers text[]) LANGUAGE plpgsql AS $$
DECLARE
	m name;
BEGIN
	FOREACH m IN ARRAY '{bundle_list_model, category_model, cooccurrence_chunks, cooccurrence_model, order_model, product_interval_model, upgrade_list_model}'::name[] LOOP
		RETURN QUERY EXECUTE format('SELECT %L::name, array_agg(DISTINCT t.xmin::text ORDER BY t.xmin::text) FROM upsell.%I t',
									m, m);
	END LOOP;
END $$;
-- saved before a refresh, and compared after it: whether each was kept
CREATE FUNCTION pg_temp.save_writers() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF to_regclass('pg_temp.writers_before') IS NOT NULL THEN
		DROP TABLE pg_temp.writers_before;
	END IF;
	CREATE TEMP TABLE writers_before AS SELECT * FROM pg_temp.writers();
END $$;
CREATE FUNCTION pg_temp.kept() RETURNS TABLE (model name, kept boolean, has_rows boolean) LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY SELECT w.model, w.writers = b.writers, cardinality(w.writers) > 0
	FROM pg_temp.writers() w JOIN pg_temp.writers_before b USING (model) ORDER BY 1;
END $$;
SELECT pg_temp.save_writers();
CALL upsell.refresh(incremental => true);
SELECT * FROM pg_temp.kept();
-- and no background worker computed a model (each would read every line)
SELECT count(*) FILTER (WHERE side_build) AS side_builds FROM upsell.model_builds WHERE tenant_id = 0;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
UPDATE superstore.products SET price = price * 1.5 WHERE product_id % 29 = 0;
SELECT pg_temp.save_writers();
CALL upsell.refresh(incremental => true);
SELECT * FROM pg_temp.kept();
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
DELETE FROM upsell.category_substitutes;
SELECT pg_temp.save_writers();
CALL upsell.refresh(incremental => true);
SELECT * FROM pg_temp.kept();
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();

-- 10. a setting that shapes the models changed (upsell.pairs_per_product:
-- the lists of products without new orders would keep the old length):
-- rebuilt in full, saying which
RESET upsell.cooccurrence_chunk_pairs;
SET upsell.pairs_per_product = 5;
SELECT pg_temp.copy_orders(600000, '-more', '2 years', '2022-04-01', '2022-05-01');
CALL upsell.refresh(incremental => true);
SELECT max(cardinality(other_ids)) AS longest_list FROM upsell.pair_list_model WHERE tenant_id = 0;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
RESET upsell.pairs_per_product;
-- (upsell.max_basket_size: an order of more products counts for its
-- products, not for pairs; the old orders' pairs were counted under the old
-- one, so folding the new orders in would mix the two)
SELECT count(*) AS orders_over_3 FROM (
	SELECT order_id FROM inc.lines GROUP BY order_id HAVING count(DISTINCT product_id) > 3) o;
CALL upsell.refresh();
SET upsell.max_basket_size = 3;
SELECT pg_temp.copy_orders(1100000, '-basket', '2 years', '2022-05-01', '2022-06-01');
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
RESET upsell.max_basket_size;
-- (the registration: the same table registered anew without its customer
-- column, with no new line, then with it again and new orders: the models
-- of the lines as the old registration read them are not kept, nor are the
-- new lines folded into them)
CALL upsell.refresh();
SELECT upsell.register_orders('inc.lines', 'order_id', 'product_id',
	ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
SELECT count(*) AS histories FROM upsell.purchase_history_model WHERE tenant_id = 0;
SELECT pg_temp.register_lines('inc.lines');
SELECT pg_temp.copy_orders(1300000, '-registered', '2 years', '2022-06-01', '2022-07-01');
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
-- and registered again as it is: still folded in
SELECT pg_temp.register_lines('inc.lines');
CALL upsell.refresh(incremental => true);
SELECT mode, reason FROM upsell.source_state WHERE tenant_id = 0;

-- (the zone: ordered_at is a date, a day of the zone the lines were
-- registered in, pg_regress's America/Los_Angeles, whoever reads it: the
-- first line is the same instant from Tokyo, a full refresh from a session
-- there gives the same models, and one there folds new orders into them
-- as a full refresh would)
SELECT time_zone FROM upsell.order_source;
SELECT extract(epoch FROM min(ordered_at)) AS first_line_epoch FROM upsell.order_lines;
SET TimeZone = 'Asia/Tokyo';
SELECT extract(epoch FROM min(ordered_at)) AS first_line_epoch FROM upsell.order_lines;
RESET TimeZone;
CALL upsell.refresh();
SELECT pg_temp.save_models();
SET TimeZone = 'Asia/Tokyo';
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
SELECT current_setting('TimeZone') AS session_zone_after_refresh;
SELECT pg_temp.copy_orders(1400000, '-tokyo', '2 years', '2022-03-01', '2022-04-01');
CALL upsell.refresh(incremental => true);
SELECT pg_temp.save_models();
RESET TimeZone;
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();
-- registered anew from Tokyo: its days are Tokyo's, rebuilt in full
SET TimeZone = 'Asia/Tokyo';
SELECT pg_temp.register_lines('inc.lines');
RESET TimeZone;
CALL upsell.refresh(incremental => true);
SELECT mode, reason FROM upsell.source_state WHERE tenant_id = 0;
SELECT min(first_at[1]) AS earliest_first_purchase FROM upsell.purchase_history_model WHERE tenant_id = 0;

-- a timestamptz ordered_at is the same instant whoever registered it: the
-- same lines registered anew from Tokyo still fold in
CREATE TABLE inc.lines_tz AS
SELECT line_id, order_id, customer_id, ordered_at::timestamptz AS ordered_at, product_id, quantity,
	   unit_price, discount
FROM inc.lines;
SELECT pg_temp.register_lines('inc.lines_tz');
CALL upsell.refresh();
SET TimeZone = 'Asia/Tokyo';
SELECT pg_temp.register_lines('inc.lines_tz');
RESET TimeZone;
CALL upsell.refresh(incremental => true);
SELECT mode, reason FROM upsell.source_state WHERE tenant_id = 0;

-- a view has no commit order: always rebuilt in full
CREATE VIEW inc.lines_view AS SELECT * FROM inc.lines;
SELECT pg_temp.register_lines('inc.lines_view');
CALL upsell.refresh();
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
-- every refresh publishes the upgrade lists that differ from the stored
-- ones (a full one too): after all of the above they are the lists
-- computed whole from the lines
SELECT upsell._upgrade_lists_query(0, NULL, NULL) AS upgrade_query \gset
CREATE TEMP TABLE lists_whole AS
SELECT tenant_id, product_id, kind, buyers, candidate_ids, same_group, paths, candidate_buyers, popularity,
	   closeness, score
FROM (:upgrade_query) q WHERE counts_state IS NULL;
SELECT (SELECT count(*) FROM lists_whole) > 0 AS has_lists,
	   (SELECT count(*) FROM (TABLE lists_whole EXCEPT ALL TABLE upsell.upgrade_list_model) d)
	   + (SELECT count(*) FROM (TABLE upsell.upgrade_list_model EXCEPT ALL TABLE lists_whole) d) AS differences;

-- integer order ids with an index on them, as most shops' order tables
-- have: one scan of every line counts them and finds the first new order's
-- id, and the new lines are read through the index from it on.  New orders
-- after every counted id, a late order before all of them, a new line
-- without order id (found by a scan), a line added to an old order
-- (detected) and an hour without orders each give a full refresh's models.
CREATE TABLE inc.lines_int AS
SELECT line_id, dense_rank() OVER (ORDER BY order_id)::bigint AS order_id, customer_id, ordered_at,
	   product_id, quantity, unit_price, discount
FROM inc.lines WHERE ordered_at < '2022-06-01';
CREATE INDEX lines_int_order ON inc.lines_int (order_id);
ANALYZE inc.lines_int;
SELECT pg_temp.register_lines('inc.lines_int');
CALL upsell.refresh();
-- (the planner reads the orders after the last counted one through the index)
CREATE FUNCTION pg_temp.plan_lines(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN ' || query LOOP
		RETURN NEXT line;
	END LOOP;
END $$;
SELECT max_order_key AS last_key FROM upsell.cooccurrence_model WHERE tenant_id = 0 \gset
SELECT count(*) > 0 AS by_index
FROM pg_temp.plan_lines('SELECT * FROM upsell.order_lines l WHERE l.order_key >= ' || :last_key) p(line)
WHERE p.line ~ 'Index Cond: .*>=';
INSERT INTO inc.lines_int
SELECT line_id + 2000000, order_id + 100000, customer_id, ordered_at + interval '1 year', product_id,
	   quantity, unit_price, discount
FROM inc.lines_int WHERE order_id % 10 = 0;
-- (source_state's build alone, rolled back, without parallel workers: one
-- scan of the table, and the index read)
SELECT pg_stat_force_next_flush();
BEGIN;
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT upsell._build_source_state(0, true);
SELECT seq_scan, idx_scan > 0 AS index_read, (SELECT new_lines FROM upsell.source_state) AS new_lines
FROM pg_stat_xact_user_tables WHERE relid = 'inc.lines_int'::regclass;
-- a side build's worker, which cannot read the new lines' temporary table,
-- is given a query that reads them through the index as well (not the
-- lines written into it), and it reads the same lines
SELECT upsell._new_lines_query('{order_key, product_id, customer_id}', '{bigint, bigint, bigint}',
	'{n.order_key, n.product_id, n.customer_id}', 'n.sold AND n.customer_id = ANY (k.keys)', 'n.customer_id',
	upsell._history_customers()) AS new_lines_query \gset
SELECT :'new_lines_query' ~ 'FROM upsell\.order_lines l' AS through_the_source,
	   (SELECT count(*) FROM (:new_lines_query) q) AS lines,
	   (SELECT count(*) FROM ((:new_lines_query) EXCEPT ALL
							  SELECT n.order_key, n.product_id, n.customer_id FROM pg_temp.upsell_new_lines n
							  WHERE n.sold AND n.customer_id = ANY (upsell._history_customers())) d) AS differences;
ROLLBACK;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
-- a late order (an id lower than every id counted) and new orders
INSERT INTO inc.lines_int
SELECT line_id + 3000000, CASE WHEN order_id = 20 THEN -20 ELSE order_id + 200000 END, customer_id,
	   ordered_at + interval '1 year', product_id, quantity, unit_price, discount
FROM inc.lines_int WHERE order_id % 10 = 0 AND order_id > 0 AND order_id < 100000;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
-- a new line without order id (counted for no model), and new orders
INSERT INTO inc.lines_int
SELECT line_id + 4000000, CASE WHEN order_id = 30 THEN NULL ELSE order_id + 300000 END, customer_id,
	   ordered_at + interval '1 year', product_id, quantity, unit_price, discount
FROM inc.lines_int WHERE order_id % 10 = 0 AND order_id > 0 AND order_id < 100000;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
-- an hour without orders
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
-- a line added to an old order: detected
INSERT INTO inc.lines_int
SELECT 5000000, order_id, customer_id, ordered_at, 1, 1, 9.99, 0
FROM inc.lines_int WHERE order_id = 40 LIMIT 1;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
-- and one without a quantity (a sale of one, as every model reads it)
INSERT INTO inc.lines_int
SELECT 5000001, order_id, customer_id, ordered_at, 2, NULL, 9.99, 0
FROM inc.lines_int WHERE order_id = 50 LIMIT 1;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- upgrade counts kept that are not whole (their paths cut short): every
-- line is counted instead, the same models
SELECT pg_temp.register_lines('inc.lines');
CALL upsell.refresh();
SELECT pg_temp.copy_orders(1800000, '-cut', '3 years', '2022-03-01', '2022-03-15');
UPDATE upsell.upgrade_count_model SET state = substring(state FROM 1 FOR 40) WHERE chunk = 1;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();

-- every price of the catalog drops to 0, with new orders: incrementally too, no
-- upgrade list is left (none can be ranked), as in a full refresh
UPDATE superstore.products SET price = 0;
SELECT pg_temp.copy_orders(900000, '-unpriced', '4 years', '2022-02-01', '2022-03-01');
CALL upsell.refresh(incremental => true);
SELECT mode, (SELECT count(*) FROM upsell.upgrade_list_model) AS upgrade_lists
FROM upsell.source_state WHERE tenant_id = 0;
SELECT pg_temp.save_models();
CALL upsell.refresh();
SELECT * FROM pg_temp.compare();

-- 13. the pair counts as a base and a delta: an incremental refresh writes
-- the new orders' counts beside the base (chunk -1), the delta grows over
-- two incremental refreshes, and a full refresh writes the base again
-- without it.  Each state is compared, model by model, with a full refresh
-- of the same lines made first (kept in full_1 and full_2); with the base
-- in one chunk, then in several.
CREATE FUNCTION pg_temp.base_and_delta() RETURNS TABLE (base_chunks bigint, deltas bigint, base_written text, delta_written text)
LANGUAGE sql AS $$
	SELECT count(*) FILTER (WHERE chunk >= 0), count(*) FILTER (WHERE chunk = -1),
		   min(xmin::text) FILTER (WHERE chunk >= 0), min(xmin::text) FILTER (WHERE chunk = -1)
	FROM upsell.cooccurrence_chunks WHERE tenant_id = 0 $$;
-- the models now against those saved in schema saved (renamed inc_saved)
CREATE FUNCTION pg_temp.differing_from(saved name) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE format('ALTER SCHEMA %I RENAME TO inc_saved', saved);
	SELECT coalesce(string_agg(d.model || ': ' || d.differences, ', '), 'none') INTO result
	FROM pg_temp.model_differences() d WHERE d.differences > 0;
	ALTER SCHEMA inc_saved RENAME TO saved_before;
	EXECUTE format('ALTER SCHEMA saved_before RENAME TO %I', saved);
	RETURN result;
END $$;
CREATE PROCEDURE pg_temp.delta_across_refreshes() LANGUAGE plpgsql AS $$
BEGIN
	-- the full refreshes of the lines with one batch of new orders, then two
	DROP SCHEMA IF EXISTS full_1 CASCADE;
	DROP SCHEMA IF EXISTS full_2 CASCADE;
	DELETE FROM inc.lines WHERE line_id >= 1500000 AND line_id < 1700000;
	PERFORM pg_temp.copy_orders(1500000, '-d1', '2 years', '2022-02-01', '2022-02-08');
	CALL upsell.refresh();
	PERFORM pg_temp.save_models();
	ALTER SCHEMA inc_saved RENAME TO full_1;
	PERFORM pg_temp.copy_orders(1600000, '-d2', '2 years', '2022-02-08', '2022-02-15');
	CALL upsell.refresh();
	PERFORM pg_temp.save_models();
	ALTER SCHEMA inc_saved RENAME TO full_2;
	-- the lines without the batches, counted in full: the base
	DELETE FROM inc.lines WHERE line_id >= 1500000 AND line_id < 1700000;
	CALL upsell.refresh();
END $$;
CALL pg_temp.delta_across_refreshes();
SELECT base_chunks, deltas FROM pg_temp.base_and_delta();
SELECT base_written AS base_before FROM pg_temp.base_and_delta() \gset
-- the first batch again: folded in as the delta, the base kept
SELECT pg_temp.copy_orders(1500000, '-d1', '2 years', '2022-02-01', '2022-02-08');
CALL upsell.refresh(incremental => true);
SELECT s.mode, b.base_chunks, b.deltas, b.base_written = :'base_before' AS base_kept
FROM upsell.source_state s, pg_temp.base_and_delta() b WHERE s.tenant_id = 0;
SELECT pg_temp.differing_from('full_1') AS differing;
SELECT delta_written AS delta_before FROM pg_temp.base_and_delta() \gset
-- the second: added to the delta, which is written again; the base kept
SELECT pg_temp.copy_orders(1600000, '-d2', '2 years', '2022-02-08', '2022-02-15');
CALL upsell.refresh(incremental => true);
SELECT s.mode, b.base_chunks, b.deltas, b.base_written = :'base_before' AS base_kept,
	   b.delta_written = :'delta_before' AS delta_kept
FROM upsell.source_state s, pg_temp.base_and_delta() b WHERE s.tenant_id = 0;
SELECT pg_temp.differing_from('full_2') AS differing;
-- a full refresh: the base written again, no delta, the same models
CALL upsell.refresh();
SELECT s.mode, b.base_chunks, b.deltas, b.base_written = :'base_before' AS base_kept
FROM upsell.source_state s, pg_temp.base_and_delta() b WHERE s.tenant_id = 0;
SELECT pg_temp.differing_from('full_2') AS differing;
-- the same with the base in several chunks (each read with the delta's
-- pairs of its range)
SET upsell.cooccurrence_chunk_pairs = 3000;
CALL pg_temp.delta_across_refreshes();
SELECT base_chunks > 1 AS several_chunks, deltas FROM pg_temp.base_and_delta();
SELECT base_written AS base_before FROM pg_temp.base_and_delta() \gset
SELECT pg_temp.copy_orders(1500000, '-d1', '2 years', '2022-02-01', '2022-02-08');
CALL upsell.refresh(incremental => true);
SELECT s.mode, b.deltas, b.base_written = :'base_before' AS base_kept
FROM upsell.source_state s, pg_temp.base_and_delta() b WHERE s.tenant_id = 0;
SELECT pg_temp.differing_from('full_1') AS differing;
SELECT pg_temp.copy_orders(1600000, '-d2', '2 years', '2022-02-08', '2022-02-15');
CALL upsell.refresh(incremental => true);
SELECT s.mode, b.deltas, b.base_written = :'base_before' AS base_kept
FROM upsell.source_state s, pg_temp.base_and_delta() b WHERE s.tenant_id = 0;
SELECT pg_temp.differing_from('full_2') AS differing;
CALL upsell.refresh();
SELECT b.deltas, b.base_written = :'base_before' AS base_kept FROM pg_temp.base_and_delta() b;
SELECT pg_temp.differing_from('full_2') AS differing;
-- a delta past its bound (a quarter of the base's pairs): the base is
-- written again with it, and no delta stored
DELETE FROM inc.lines WHERE ordered_at >= '2021-01-01' AND line_id < 1500000;
CALL upsell.refresh();
SELECT base_written AS base_before FROM pg_temp.base_and_delta() \gset
INSERT INTO inc.lines SELECT * FROM superstore.order_lines WHERE ordered_at >= '2021-01-01' AND ordered_at < '2022-01-01';
CALL upsell.refresh(incremental => true);
SELECT s.mode, b.deltas, b.base_written = :'base_before' AS base_kept
FROM upsell.source_state s, pg_temp.base_and_delta() b WHERE s.tenant_id = 0;
CALL pg_temp.incremental_then_full();
SELECT * FROM pg_temp.compare();
RESET upsell.cooccurrence_chunk_pairs;
RESET upsell.bundle_min_count;

DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA inc, inc_saved, full_1, full_2, superstore CASCADE;
