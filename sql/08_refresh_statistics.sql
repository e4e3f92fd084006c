-- statistics of the models per tenant: a tenant refreshed after the
-- models' statistics were taken without it gets them in its own refresh,
-- so that its later builders (and its readers) plan with its real row
-- counts.  (Before, only a first build or a table outgrowing its statistics
-- analyzed: the second of four 2.5M-line tenants was estimated at 1 row a
-- model and its builders' joins ran as nested loops for over 40 minutes.)
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA rs;
CREATE TABLE rs.products AS
SELECT s AS shop, p AS id, 10 + p % 50 AS price, 'c' || p % 40 AS cat
FROM (VALUES (601), (602)) s(s), generate_series(1, 3000) p;
CREATE TABLE rs.lines AS
SELECT s AS shop, o AS order_id, 1 + (o * 7 + k * 13) % 3000 AS product_id
FROM (VALUES (601), (602)) s(s), generate_series(1, 6000) o, generate_series(0, 2) k;
SELECT upsell.register_orders('rs.lines', 'order_id', 'product_id', tenant_id => 'shop');
SELECT upsell.register_products('rs.products', 'id', price => 'price', category => 'cat', tenant_id => 'shop');

-- the planner's estimate of a tenant's rows of a model (one constant)
CREATE FUNCTION pg_temp.estimated(model text, t bigint) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE p json;
BEGIN
	EXECUTE format('EXPLAIN (FORMAT JSON) SELECT FROM upsell.%I WHERE tenant_id = %s', model, t) INTO p;
	RETURN (p -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
END $$;
CREATE FUNCTION pg_temp.rows(model text, t bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM upsell.%I WHERE tenant_id = %s', model, t) INTO n;
	RETURN n;
END $$;

-- tenant 601 alone, then the statistics taken (as after its refresh, or
-- by autovacuum): they know no row of tenant 602
CALL upsell.refresh(tenant_id => 601);
ANALYZE upsell.product_model, upsell.pair_list_model, upsell.cart_model, upsell.product_page_list_model;
SELECT m AS model, pg_temp.estimated(m, 602) < 100 AS tenant_602_unknown
FROM unnest(ARRAY['product_model', 'pair_list_model', 'cart_model', 'product_page_list_model']) m;
-- tenant 602's refresh: every model it wrote more than 1,000 rows of is
-- estimated within a factor 2 of its rows
CALL upsell.refresh(tenant_id => 602);
SELECT m AS model, pg_temp.rows(m, 602) > 1000 AS over_1000_rows,
	   pg_temp.estimated(m, 602) BETWEEN pg_temp.rows(m, 602) / 2.0 AND pg_temp.rows(m, 602) * 2.0 AS estimated_well
FROM unnest(ARRAY['product_model', 'pair_list_model', 'cart_model', 'product_page_list_model']) m;

RESET client_min_messages;
DO $$
DECLARE m text;
BEGIN
	FOR m IN SELECT model FROM upsell.model_definitions LOOP
		EXECUTE format('DELETE FROM upsell.%I WHERE tenant_id IN (601, 602)', m);
	END LOOP;
END $$;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA rs CASCADE;
