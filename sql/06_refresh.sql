-- refresh: the log, failures, and an incremental refresh over registered
-- views (the electronics shop split in two, before and after July 2019):
-- a view's rows carry no commit order, so incremental rebuilds in full and
-- gives the same models (07_incremental folds lines into a table's models).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_electronics.sql
\set ECHO all
-- small chunks of the counts, so that every reader of them meets several
SET upsell.cooccurrence_chunk_pairs = 40;
CREATE TABLE shop.cutoff (at timestamp);
INSERT INTO shop.cutoff VALUES ('2019-07-01');
CREATE VIEW shop.visible_lines AS
	SELECT * FROM shop.order_lines WHERE ordered_at < (SELECT at FROM shop.cutoff);
SELECT upsell.register_orders('shop.visible_lines', 'order_id', 'product_id',
	ordered_at => 'ordered_at', quantity => 'quantity');
SELECT upsell.register_products('shop.products', 'product_id', category => 'category');
TRUNCATE upsell.refresh_log RESTART IDENTITY;

-- the first half, counted in full
CALL upsell.refresh();
-- the second half arrives and is folded in
UPDATE shop.cutoff SET at = 'infinity';
CALL upsell.refresh(incremental => true);
-- the counts as text, pair by pair from every chunk (the chunks' bounds
-- depend on how the counts grew)
CREATE FUNCTION pg_temp.counts_text() RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(x::text, ';' ORDER BY c.tenant_id, x.product_id, x.other_id)
	FROM upsell.cooccurrence_chunks c, upsell.cooccurrence_pairs(c.state, 1) x $$;
CREATE TEMP TABLE incremental_state AS SELECT tenant_id, pg_temp.counts_text() AS state, orders, max_ordered_at FROM upsell.cooccurrence_model;
CREATE TEMP TABLE incremental_pairs AS SELECT * FROM upsell.pair_model;
CREATE TEMP TABLE incremental_products AS SELECT * FROM upsell.product_model;
-- a full refresh of everything gives exactly the same models
CALL upsell.refresh();
SELECT i.orders, i.max_ordered_at, i.state = pg_temp.counts_text() AS same_counts
FROM incremental_state i JOIN upsell.cooccurrence_model f USING (tenant_id);
SELECT (SELECT count(*) FROM upsell.pair_model) AS pairs,
	   (SELECT count(*) FROM ((SELECT * FROM incremental_pairs EXCEPT SELECT * FROM upsell.pair_model)
							  UNION ALL
							  (SELECT * FROM upsell.pair_model EXCEPT SELECT * FROM incremental_pairs)) d) AS differences,
	   (SELECT count(*) FROM (SELECT * FROM incremental_products EXCEPT SELECT * FROM upsell.product_model) d) AS product_differences;
-- the pair lists of counts in several chunks (each product's best of every
-- chunk ranked together) are those of the counts in one chunk, in the same
-- order (score descending, then partner)
CREATE TEMP TABLE chunked_lists AS SELECT * FROM upsell.pair_list_model;
SELECT count(*) AS chunks FROM upsell.cooccurrence_chunks;
SET upsell.cooccurrence_chunk_pairs = 100000000;
CALL upsell.refresh();
SELECT (SELECT count(*) FROM upsell.cooccurrence_chunks) AS chunks,
	   (SELECT count(*) FROM upsell.pair_list_model) AS lists,
	   (SELECT sum(cardinality(other_ids)) FROM upsell.pair_list_model) AS pairs,
	   (SELECT count(*) FROM ((TABLE chunked_lists EXCEPT TABLE upsell.pair_list_model)
							  UNION ALL
							  (TABLE upsell.pair_list_model EXCEPT TABLE chunked_lists)) d) AS differences;
-- every list in rank order: score descending, then partner
SELECT count(*) AS lists_out_of_order
FROM upsell.pair_list_model l
WHERE EXISTS (SELECT FROM unnest(l.score, l.other_ids) WITH ORDINALITY a(score, id, i),
						  unnest(l.score, l.other_ids) WITH ORDINALITY b(score, id, i)
			  WHERE b.i = a.i + 1 AND (b.score > a.score OR (b.score = a.score AND b.id <= a.id)))
   OR cardinality(l.together) <> cardinality(l.other_ids) OR cardinality(l.score) <> cardinality(l.other_ids)
   OR cardinality(l.confidence) <> cardinality(l.other_ids);
SET upsell.cooccurrence_chunk_pairs = 40;

-- without an order time: the same
CREATE TABLE shop.max_id (id bigint);
INSERT INTO shop.max_id VALUES (250000);
CREATE VIEW shop.lines_by_id AS
	SELECT * FROM shop.order_lines WHERE order_id <= (SELECT id FROM shop.max_id);
SELECT upsell.register_orders('shop.lines_by_id', 'order_id', 'product_id', quantity => 'quantity');
CALL upsell.refresh();
SELECT orders, max_order_key FROM upsell.cooccurrence_model;
UPDATE shop.max_id SET id = 1000000;
CALL upsell.refresh(incremental => true);
SELECT orders, max_order_key, pg_temp.counts_text() = (SELECT state FROM incremental_state) AS same_counts
FROM upsell.cooccurrence_model;

-- text order ids and no order time: the same
CREATE VIEW shop.text_lines AS SELECT 'o' || order_id AS order_id, product_id FROM shop.order_lines;
SELECT upsell.register_orders('shop.text_lines', 'order_id', 'product_id');
CALL upsell.refresh(incremental => true);
SELECT orders, pg_temp.counts_text() = (SELECT state FROM incremental_state) AS same_counts
FROM upsell.cooccurrence_model;

-- a failed refresh is logged with its error, and the old models keep serving
CREATE VIEW shop.bad_lines AS SELECT order_id, product_id / 0 AS product_id FROM shop.order_lines;
SELECT upsell.register_orders('shop.bad_lines', 'order_id', 'product_id');
CALL upsell.refresh();
SELECT orders FROM upsell.cooccurrence_model;
SELECT refresh_id, incremental, status, model_rows -> 'pair_list_model' AS pair_list_model_rows,
	   (SELECT count(*) FROM jsonb_object_keys(model_rows)) = (SELECT count(*) FROM upsell.models) AS every_model,
	   error, error_sqlstate,
	   finished_at >= started_at AS timed, duration_ms >= 0 AS has_duration
FROM upsell.refresh_log ORDER BY refresh_id;
CALL upsell.refresh(incremental => NULL);

RESET client_min_messages;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA shop CASCADE;
