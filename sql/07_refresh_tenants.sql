-- refresh per tenant: one tenant at a time (tenant_id => N), a tenant whose
-- build fails keeps its models while the others are refreshed, bad source
-- rows (NaN, infinite, negative, absurd, NULL ids) are skipped and counted.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA rt;
CREATE TABLE rt.products (shop int, id int, price numeric, cat text);
INSERT INTO rt.products
SELECT s, p, 10 + p, CASE WHEN p <= 5 THEN 'a' ELSE 'b' END FROM generate_series(1, 2) s, generate_series(1, 10) p;
-- bad prices in tenant 1: NaN, infinite, absurd (1e100 once overflowed the cents), negative
UPDATE rt.products SET price = 'NaN' WHERE shop = 1 AND id = 7;
UPDATE rt.products SET price = 'Infinity' WHERE shop = 1 AND id = 8;
UPDATE rt.products SET price = 1e100 WHERE shop = 1 AND id = 9;
UPDATE rt.products SET price = -5 WHERE shop = 1 AND id = 10;
INSERT INTO rt.products VALUES (1, NULL, 3, 'a');
CREATE TABLE rt.lines (shop int, order_id int, product_id int, quantity float8, unit_price numeric);
INSERT INTO rt.lines
SELECT s, o, p, 1, 10 + p FROM generate_series(1, 2) s, generate_series(1, 40) o,
	   LATERAL (VALUES (1 + o % 5), (6 + o % 3), (9)) v(p);
-- bad lines: NaN and infinite quantities, a NULL product, a negative price
INSERT INTO rt.lines VALUES (1, 901, 1, 'NaN', 11), (1, 902, 1, 'Infinity', 11), (1, 903, 2, '-Infinity', 12),
	(1, 904, NULL, 1, 10), (2, 905, 3, 1, -13), (2, 906, 4, 1, 1e300);
CREATE VIEW rt.lines_v AS SELECT * FROM rt.lines;
SELECT upsell.register_orders('rt.lines_v', 'order_id', 'product_id', quantity => 'quantity',
	unit_price => 'unit_price', tenant_id => 'shop');
SELECT upsell.register_products('rt.products', 'id', price => 'price', category => 'cat', tenant_id => 'shop');

CALL upsell.refresh();
SELECT status, tenants_ok, tenants_failed, jsonb_pretty(bad_rows) FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SELECT tenant_id, source, id, problem, left(value, 40) AS value
FROM upsell.bad_source_rows() ORDER BY tenant_id, source, id;
SELECT count(*) FROM upsell.bad_source_rows('{2}');
-- a session bound to a tenant gets its rows only, and is refused another's
SET upsell.tenant_id = 1;
SELECT DISTINCT tenant_id FROM upsell.bad_source_rows();
SELECT count(*) FROM upsell.bad_source_rows('{2}');
-- and a refresh there refreshes that tenant, as every function uses the
-- bound tenant when tenant_id is NULL, and counts its bad rows (until 1.9
-- it refreshed every tenant, and counting tenant 2's bad rows was refused:
-- a WARNING, and none logged)
CALL upsell.refresh();
SELECT tenant_id, status, tenants_ok, jsonb_pretty(bad_rows) FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
CALL upsell.refresh(tenant_id => 2);
RESET upsell.tenant_id;
-- the implausible prices read as unknown: left out of thresholds and upgrades
SELECT tenant_id, products, prices FROM upsell.threshold_candidates ORDER BY tenant_id;
SELECT tenant_id, count(*) FROM upsell.upgrade_model WHERE product_id >= 7 OR candidate_id >= 7 GROUP BY 1 ORDER BY 1;
-- the skipped lines are not counted as orders (40 per tenant, and tenant 1's NULL product order)
SELECT tenant_id, orders, skipped_lines FROM upsell.cooccurrence_model ORDER BY tenant_id;

-- one tenant: only its models are rebuilt
CREATE TEMP TABLE builds AS SELECT tenant_id, model, refresh_id FROM upsell.model_builds;
INSERT INTO rt.lines SELECT 2, o, 1, 1, 11 FROM generate_series(41, 60) o;
CALL upsell.refresh(tenant_id => 2);
SELECT b.tenant_id, count(*) AS models, count(*) FILTER (WHERE b.refresh_id = o.refresh_id) AS unchanged
FROM upsell.model_builds b JOIN builds o USING (tenant_id, model) GROUP BY 1 ORDER BY 1;
SELECT tenant_id, orders FROM upsell.cooccurrence_model ORDER BY tenant_id;
SELECT tenant_id, status, tenants_ok FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;

-- tenant 2's source fails: it keeps its models, tenant 1 is refreshed
CREATE OR REPLACE VIEW rt.lines_v AS
	SELECT shop, order_id, CASE WHEN shop = 2 THEN product_id / (shop - 2) ELSE product_id END AS product_id,
		   quantity, unit_price
	FROM rt.lines;
INSERT INTO rt.lines SELECT 1, o, 2, 1, 12 FROM generate_series(41, 50) o;
CALL upsell.refresh();
SELECT tenant_id, orders FROM upsell.cooccurrence_model ORDER BY tenant_id;
SELECT status, tenants_ok, tenants_failed, failures FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SELECT count(*) > 0 AS tenant_2_still_served FROM upsell.recommend_for_cart('{1}', 3, 2);
-- that tenant alone: the refresh fails with its error
CALL upsell.refresh(tenant_id => 2);
SELECT status, tenants_ok, tenants_failed, error_sqlstate FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
-- tenant 2's quantity cannot be read: the view's filter of implausible
-- quantities reads it on every line, so the list of all tenants' lines
-- fails too; the tenants are then read from the tenant column, tenant 2
-- fails alone and tenant 1 is refreshed
CREATE OR REPLACE VIEW rt.lines_v AS
	SELECT shop, order_id, product_id, CASE WHEN shop = 2 THEN quantity / (shop - 2) ELSE quantity END AS quantity,
		   unit_price
	FROM rt.lines;
INSERT INTO rt.lines SELECT 1, o, 3, 1, 13 FROM generate_series(51, 55) o;
SET client_min_messages = error;
CALL upsell.refresh();
SET client_min_messages = warning;
SELECT tenant_id, orders FROM upsell.cooccurrence_model ORDER BY tenant_id;
SELECT status, tenants_ok, tenants_failed, failures FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
-- bad arguments
CALL upsell.refresh(incremental => NULL);
CALL upsell.refresh(tenant_id => NULL);
SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
-- a tenant without lines, never refreshed (a mistyped id): refreshed to no
-- rows, and said
CREATE OR REPLACE VIEW rt.lines_v AS SELECT * FROM rt.lines;
CALL upsell.refresh(tenant_id => 7);
SELECT status, tenants_ok FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;

-- inside a transaction block: no commits, the tenants publish at the caller's commit
CREATE OR REPLACE VIEW rt.lines_v AS SELECT * FROM rt.lines;
INSERT INTO rt.lines SELECT 2, o, 1, 1, 11 FROM generate_series(61, 70) o;
BEGIN;
CALL upsell.refresh();
SELECT status, tenants_ok FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SELECT tenant_id, orders FROM upsell.cooccurrence_model ORDER BY tenant_id;
ROLLBACK;
SELECT tenant_id, orders FROM upsell.cooccurrence_model ORDER BY tenant_id;

-- registered without tenants: tenant_id other than 0 is an error, and the
-- tenants of the earlier registration are emptied
SELECT upsell.register_orders('rt.lines', 'order_id', 'product_id');
DELETE FROM upsell.product_source;
CALL upsell.refresh(tenant_id => 5);
CALL upsell.refresh();
SELECT tenant_id, orders FROM upsell.cooccurrence_model ORDER BY tenant_id;
SELECT DISTINCT tenant_id FROM upsell.model_builds ORDER BY 1;

-- quantities of an integer type are bounded as integers (the view reads
-- them without a numeric cast), with the same rule: |quantity| < 1e9, NULL
-- read as 1; a bigint column keeps the numeric rule (abs() of its smallest
-- value would overflow)
CREATE TABLE rt.int_lines (order_id int, product_id int, q4 int, q2 smallint, q8 bigint);
INSERT INTO rt.int_lines VALUES (1, 1, 1, 1, 1), (1, 2, 2, 2, 2), (2, 1, NULL, NULL, NULL),
	(3, 1, 999999999, 32767, 999999999), (4, 1, -999999999, -32768, -999999999),
	(5, 1, 1000000000, 1, 1000000000), (6, 1, -2147483648, 1, -9223372036854775808),
	(7, 1, 2147483647, 1, 9223372036854775807), (8, 1, 0, 0, 0);
SELECT upsell.register_orders('rt.int_lines', 'order_id', 'product_id', quantity => 'q4');
SELECT pg_get_viewdef('upsell.order_lines') !~ '_plausible_quantity' AS integer_rule,
	   array_agg(order_key ORDER BY order_key, product_id) AS kept FROM upsell.order_lines;
SELECT source, id, problem FROM upsell.bad_source_rows() ORDER BY id;
SELECT upsell.register_orders('rt.int_lines', 'order_id', 'product_id', quantity => 'q2');
SELECT pg_get_viewdef('upsell.order_lines') !~ '_plausible_quantity' AS integer_rule,
	   array_agg(order_key ORDER BY order_key, product_id) AS kept FROM upsell.order_lines;
SELECT upsell.register_orders('rt.int_lines', 'order_id', 'product_id', quantity => 'q8');
SELECT pg_get_viewdef('upsell.order_lines') ~ '_plausible_quantity' AS numeric_rule,
	   array_agg(order_key ORDER BY order_key, product_id) AS kept FROM upsell.order_lines;
SELECT source, id, problem FROM upsell.bad_source_rows() ORDER BY id;
-- sold (what the upgrade lists and the bundles read): a quantity above 0,
-- or NULL (read as 1); an integer column compared as stored, any other
-- through the view's numeric
CREATE FUNCTION pg_temp.sold() RETURNS TABLE (sold_is_quantity_above_0 boolean, not_sold bigint[], sold text)
LANGUAGE sql AS $$
	SELECT bool_and(l.sold = (coalesce(l.quantity, 1) > 0)),
		   array_agg(l.order_key ORDER BY l.order_key, l.product_id) FILTER (WHERE NOT l.sold),
		   -- (PostgreSQL 18 leaves the view's one relation out: s.q8 is q8)
		   regexp_replace(substring(pg_get_viewdef('upsell.order_lines') FROM 'COALESCE\((.*), true\) AS sold'),
						  '\ms\.', '', 'g')
	FROM upsell.order_lines l $$;
SELECT * FROM pg_temp.sold();
SELECT upsell.register_orders('rt.int_lines', 'order_id', 'product_id', quantity => 'q2');
SELECT * FROM pg_temp.sold();
ALTER TABLE rt.int_lines ADD COLUMN qn numeric;
UPDATE rt.int_lines SET qn = q2::numeric / 4;
SELECT upsell.register_orders('rt.int_lines', 'order_id', 'product_id', quantity => 'qn');
SELECT * FROM pg_temp.sold();
SELECT upsell.register_orders('rt.int_lines', 'order_id', 'product_id');
SELECT * FROM pg_temp.sold();

-- many shops in one database, refreshed incrementally every hour: the shop
-- without new lines keeps the models its lines alone decide (its counts,
-- their totals, bundles, product intervals and upgrade lists are not
-- written again), the shop with new orders folds them in, and both equal
-- a full refresh's
CREATE TABLE rt.shop_products (shop int, id int, price numeric, cat text, grp text);
INSERT INTO rt.shop_products
SELECT s, p, 10 + p, CASE WHEN p <= 5 THEN 'a' ELSE 'b' END, CASE WHEN p % 2 = 0 THEN 'even' END
FROM generate_series(1, 2) s, generate_series(1, 10) p;
CREATE TABLE rt.shop_lines (shop int, order_id int, product_id int, customer_id int, ordered_at timestamptz);
INSERT INTO rt.shop_lines
SELECT s, o, p, o % 7, timestamptz '2024-01-01' + o * interval '1 day'
FROM generate_series(1, 2) s, generate_series(1, 60) o,
	 LATERAL (VALUES (1 + o % 5), (1 + (o + 1) % 5), (6 + (o / 7) % 4)) v(p);
SELECT upsell.register_orders('rt.shop_lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', tenant_id => 'shop');
SELECT upsell.register_products('rt.shop_products', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', tenant_id => 'shop');
CALL upsell.refresh();
-- the transactions that wrote each tenant's rows of the models kept
CREATE FUNCTION pg_temp.kept_writers() RETURNS TABLE (tenant_id bigint, model name, writers text[])
LANGUAGE plpgsql AS $$
DECLARE
	m name;
BEGIN
	FOREACH m IN ARRAY '{bundle_list_model, cooccurrence_chunks, cooccurrence_model, product_interval_model, upgrade_list_model}'::name[] LOOP
		RETURN QUERY EXECUTE format('SELECT t.tenant_id, %L::name, array_agg(DISTINCT t.xmin::text ORDER BY t.xmin::text) '
									'FROM upsell.%I t GROUP BY 1', m, m);
	END LOOP;
END $$;
CREATE TEMP TABLE writers_before AS SELECT * FROM pg_temp.kept_writers();
INSERT INTO rt.shop_lines
SELECT 2, o, p, o % 7, timestamptz '2024-01-01' + o * interval '1 day'
FROM generate_series(61, 75) o, LATERAL (VALUES (1 + o % 5), (1 + (o + 1) % 5), (6 + (o / 7) % 4)) v(p);
CALL upsell.refresh(incremental => true);
SELECT s.tenant_id, s.mode, s.new_lines, w.model, w.writers = b.writers AS kept
FROM upsell.source_state s JOIN pg_temp.kept_writers() w USING (tenant_id)
JOIN writers_before b USING (tenant_id, model) ORDER BY 1, 4;
-- every model's rows but source_state's (a snapshot) and build times
CREATE FUNCTION pg_temp.model_rows() RETURNS TABLE (model name, model_row jsonb) LANGUAGE plpgsql AS $$
DECLARE
	m name;
BEGIN
	FOR m IN SELECT d.model FROM upsell.model_definitions d WHERE d.model <> 'source_state' LOOP
		-- (and what the upgrade counts were counted from, shown below)
		RETURN QUERY EXECUTE format('SELECT %L::name, to_jsonb(t) - ''built_at'' - ''counted'' FROM upsell.%I t', m, m);
	END LOOP;
END $$;
-- the new lines of shop 2 folded into its upgrade counts, shop 1's kept
SELECT tenant_id, counted FROM upsell.upgrade_count_model WHERE chunk = 0 ORDER BY 1;
CREATE TEMP TABLE incremental_rows AS SELECT * FROM pg_temp.model_rows();
CALL upsell.refresh();
SELECT (SELECT count(DISTINCT model) FROM incremental_rows) AS models_with_rows,
	   (SELECT count(*) FROM (SELECT * FROM incremental_rows EXCEPT ALL SELECT * FROM pg_temp.model_rows()) d)
	   + (SELECT count(*) FROM (SELECT * FROM pg_temp.model_rows() EXCEPT ALL SELECT * FROM incremental_rows) d)
	   AS rows_differing_from_full;

-- an order at 'infinity', one dated 2204 for 2024, and rows of no shop:
-- the orders are read without a time, the rows are skipped, and all are
-- listed with the bad rows; the window of recent orders still ends at the
-- last real order (until 1.8 the order of 2204 ended it: one order left)
INSERT INTO rt.shop_lines VALUES (1, 500, 1, 3, 'infinity'), (NULL, 501, 2, 3, '2024-03-01'),
	(2, 502, 1, 3, '2204-03-16');
INSERT INTO rt.shop_products VALUES (NULL, 11, 5, 'a', NULL);
CALL upsell.refresh();
SELECT tenant_id, source, id, problem, value FROM upsell.bad_source_rows() ORDER BY tenant_id NULLS FIRST, source, id;
SELECT count(*) AS of_tenant_2 FROM upsell.bad_source_rows('{2}');
SELECT tenant_id, max_ordered_at FROM upsell.cooccurrence_model ORDER BY tenant_id;
SELECT tenant_id, count(*) AS recent_orders, count(*) FILTER (WHERE order_key = 500) AS the_infinite_one,
	   count(*) FILTER (WHERE order_key = 502) AS the_one_of_2204
FROM upsell.order_model GROUP BY 1 ORDER BY 1;
SELECT jsonb_pretty(bad_rows) FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;

-- the registered table turned into a partition: renamed, and attached under
-- a new partitioned table of its name.  The registration (by oid) reads the
-- old table alone: refresh goes on with it, so no tenant fails and the
-- pages keep their models, but says so, in a WARNING and in the log's
-- error columns (until 1.9 it logged ok and ignored the new orders)
ALTER TABLE rt.shop_lines RENAME TO shop_lines_old;
CREATE TABLE rt.shop_lines (LIKE rt.shop_lines_old) PARTITION BY RANGE (order_id);
ALTER TABLE rt.shop_lines ATTACH PARTITION rt.shop_lines_old FOR VALUES FROM (MINVALUE) TO (1000);
CREATE TABLE rt.shop_lines_new PARTITION OF rt.shop_lines FOR VALUES FROM (1000) TO (MAXVALUE);
INSERT INTO rt.shop_lines SELECT 1, o, 1 + o % 2, 3, '2024-06-01' FROM generate_series(1000, 1009) o;
CALL upsell.refresh(incremental => true, tenant_id => 1);
SELECT status, tenants_ok, error_sqlstate, error FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SELECT orders FROM upsell.cooccurrence_model WHERE tenant_id = 1;
-- (an incremental refresh rebuilds in full: the name it was read by changed)
SELECT mode, reason FROM upsell.source_state WHERE tenant_id = 1;
-- registered anew on the partitioned table: its new orders are read
SELECT upsell.register_orders('rt.shop_lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', tenant_id => 'shop');
CALL upsell.refresh();
SELECT status, error FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SELECT orders FROM upsell.cooccurrence_model WHERE tenant_id = 1;
-- a registered table renamed and another created under its name, which the
-- shop now writes to: the registration reads the renamed one, which every
-- refresh says until the orders are registered again (until 1.9 only the
-- first did: it recorded the renamed one's name as the lines', and the next
-- ones logged ok while the new orders were ignored)
ALTER TABLE rt.shop_lines RENAME TO shop_lines_2024;
CREATE TABLE rt.shop_lines (LIKE rt.shop_lines_2024);
INSERT INTO rt.shop_lines SELECT 1, o, 1 + o % 2, 3, '2025-06-01' FROM generate_series(2000, 2009) o;
CALL upsell.refresh();
CALL upsell.refresh();
CALL upsell.refresh(incremental => true);
SELECT status, incremental, tenants_ok, error_sqlstate, error FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 3;
-- (the same registration read by the same relation: the incremental one
-- folded in, the name as registered is not a registration anew)
SELECT tenant_id, mode, reason FROM upsell.source_state ORDER BY 1;
SELECT orders FROM upsell.cooccurrence_model WHERE tenant_id = 1;
-- registered again on the new table: its orders are read, and nothing is said
SELECT upsell.register_orders('rt.shop_lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', tenant_id => 'shop');
CALL upsell.refresh();
CALL upsell.refresh(incremental => true);
SELECT status, incremental, tenants_ok, error_sqlstate, error FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 2;
SELECT orders FROM upsell.cooccurrence_model WHERE tenant_id = 1;
-- the catalog alike: every refresh says it until registered again
ALTER TABLE rt.shop_products RENAME TO shop_products_2024;
CREATE TABLE rt.shop_products (LIKE rt.shop_products_2024);
CALL upsell.refresh();
CALL upsell.refresh();
SELECT status, error_sqlstate, error FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 2;
SELECT upsell.register_products('rt.shop_products', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', tenant_id => 'shop');
CALL upsell.refresh();
SELECT status, error_sqlstate, error FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;

RESET client_min_messages;
DELETE FROM upsell.order_source;
DROP SCHEMA rt CASCADE;
