-- No code path of the extension runs what a caller's search_path can
-- substitute.  A hostile role defines, in a schema it owns, operators,
-- functions, aggregates and types (domains) named like pg_catalog's, each
-- recording in a side table when it runs.  A superuser then puts that schema
-- FIRST on its path (before pg_catalog, where even exact matches of
-- pg_catalog lose) and calls refresh (full and incremental) and every
-- public function and view.  The side table must stay empty.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA hs;
CREATE TABLE hs.products (shop int, id int, price numeric, cat text, grp text, stock boolean, title text);
INSERT INTO hs.products VALUES
	(1, 1, 500, 'phone', 'phone', true, 'phone'), (1, 2, 600, 'phone', 'phone', true, 'phone pro'),
	(1, 3, 10, 'acc', 'cable', true, 'cable'), (1, 4, 30, 'acc', 'case', true, 'case'),
	(1, 5, 25, 'coffee', 'coffee', true, 'beans'), (1, 6, 50, 'audio', 'phones', true, 'headphones'),
	(2, 1, 90, 'x', 'a', true, 'one'), (2, 3, 9, 'x', 'b', true, 'three');
CREATE TABLE hs.lines (shop int, order_id int, product_id int, customer int, at timestamptz, qty int, price numeric);
INSERT INTO hs.lines
SELECT 1, o, p, 100 + o % 7, date_trunc('day', now()) - (90 - o) * interval '1 day', 1 + o % 2, 0
FROM generate_series(1, 60) o, (VALUES (1), (3), (5)) v(p) WHERE (o + p) % 4 <> 0
UNION ALL SELECT 1, 100 + c, 2, c, date_trunc('day', now()) - interval '5 days', 1, 0 FROM generate_series(1, 5) c
UNION ALL SELECT 1, 200 + o, 4, 100 + o % 7, date_trunc('day', now()) - o * interval '1 day', 1, 0
FROM generate_series(1, 20) o
UNION ALL SELECT 2, 1000 + o, p, 500, date_trunc('day', now()) - interval '10 days', 1, 0
FROM generate_series(1, 10) o, (VALUES (1), (3)) v(p);
UPDATE hs.lines SET price = p.price FROM hs.products p WHERE p.shop = lines.shop AND p.id = lines.product_id;
CREATE TABLE hs.carts (cart int, shopper int, item int, qty int, added timestamptz, done timestamptz);
INSERT INTO hs.carts VALUES (1, 101, 1, 1, now() - interval '3 hours', NULL), (1, 101, 3, 2, now() - interval '3 hours', NULL);
SELECT upsell.register_orders('hs.lines', 'order_id', 'product_id', customer_id => 'customer',
	ordered_at => 'at', quantity => 'qty', unit_price => 'price', tenant_id => 'shop');
SELECT upsell.register_products('hs.products', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', in_stock => 'stock', title => 'title', tenant_id => 'shop');
SELECT upsell.register_carts('hs.carts', 'cart', 'shopper', 'item', 'qty', 'added', 'done');
INSERT INTO upsell.thresholds (tenant_id, kind, amount) VALUES (1, 'free_shipping', 600);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, percent_off) VALUES (1, 3, 3, 10);
INSERT INTO upsell.volume_tiers (tenant_id, category, min_quantity, unit_price) VALUES (1, 'coffee', 4, 20);
INSERT INTO upsell.offers (tenant_id, stage, product_ids, priority, reason) VALUES
	(1, 'cart', '{6}', 1, 'pinned'), (1, 'product_page', '{6}', 1, 'pinned'),
	(1, 'post_purchase', '{6}', 1, 'pinned');
INSERT INTO upsell.offers (tenant_id, stage, trigger_category, product_ids) VALUES (1, 'cart', 'phone', '{4}');
INSERT INTO upsell.offers (tenant_id, stage, min_cart_value, product_ids) VALUES (1, 'cart', 100, '{4}');
INSERT INTO upsell.exclusions (tenant_id, product_id, with_product_id) VALUES (1, 4, 2);
INSERT INTO upsell.exclusions (tenant_id, category) VALUES (1, 'nothing');
INSERT INTO upsell.consumables (tenant_id, category, consumable) VALUES (1, 'coffee', true);
INSERT INTO upsell.stage_settings (tenant_id, stage, max_offers, type_weights) VALUES (1, 'cart', 8, '{"upgrade": 1.5}');
INSERT INTO upsell.category_substitutes (tenant_id, category, other_category, substitutes) VALUES
	(1, 'acc', 'acc', false), (1, 'phone', 'audio', true);
INSERT INTO upsell.experiments (experiment, tenant_id, stage) VALUES ('hs_test', 1, 'cart');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
	('hs_test', 'control', 1, '{}'), ('hs_test', 'b', 1, '{complement,upgrade,gap_filler,quantity_tier,pinned}');
CALL upsell.refresh();

-- the hostile role and its traps
CREATE ROLE regress_upsell_hostile;
CREATE SCHEMA trap AUTHORIZATION regress_upsell_hostile;
CREATE TABLE public.tripped (what text, by_user name DEFAULT current_user);
GRANT INSERT ON public.tripped TO regress_upsell_hostile;
SET ROLE regress_upsell_hostile;
CREATE FUNCTION trap.trip(what text) RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
	INSERT INTO public.tripped (what) VALUES (what);
	RETURN true;
END
$$;
DO $$
DECLARE
	op text;
	l text;
	r text;
	res text;
	n int := 0;
	f text;
BEGIN
	-- binary operators over the types the extension computes with
	FOR op, l, r IN
		SELECT o, a, b FROM unnest(ARRAY['=', '<>', '<', '>', '<=', '>=', '+', '-', '*', '/', '%']) o,
			unnest(ARRAY['int2', 'int4', 'int8', 'numeric', 'float8', 'float4']) a,
			unnest(ARRAY['int2', 'int4', 'int8', 'numeric', 'float8', 'float4']) b
		UNION ALL SELECT o, 'text', 'text' FROM unnest(ARRAY['=', '<>', '<', '>', '||', '~~', '~']) o
		UNION ALL SELECT o, 'timestamptz', 'timestamptz' FROM unnest(ARRAY['=', '<>', '<', '>', '<=', '>=', '-']) o
		UNION ALL SELECT o, 'timestamptz', 'interval' FROM unnest(ARRAY['+', '-']) o
		UNION ALL SELECT o, 'date', 'date' FROM unnest(ARRAY['=', '<', '>', '<=', '>=', '-']) o
		UNION ALL SELECT o, 'interval', 'interval' FROM unnest(ARRAY['=', '<', '>', '+', '-']) o
		UNION ALL SELECT o, 'bool', 'bool' FROM unnest(ARRAY['=', '<>']) o
		UNION ALL SELECT o, 'int8[]', 'int8[]' FROM unnest(ARRAY['=', '<>', '@>', '<@', '&&', '||']) o
		UNION ALL SELECT o, 'text[]', 'text[]' FROM unnest(ARRAY['=', '@>', '<@', '&&']) o
		UNION ALL SELECT o, 'jsonb', 'text' FROM unnest(ARRAY['->', '->>', '?']) o
		UNION ALL SELECT '||', 'jsonb', 'jsonb'
	LOOP
		BEGIN
			EXECUTE format('SELECT pg_catalog.pg_typeof(NULL::pg_catalog.%s OPERATOR(pg_catalog.%s) NULL::pg_catalog.%s)',
						   l, op, r) INTO res;
		EXCEPTION WHEN OTHERS THEN
			CONTINUE;
		END;
		n := n + 1;
		f := 'trap.op' || n;
		EXECUTE format('CREATE FUNCTION %s(pg_catalog.%s, pg_catalog.%s) RETURNS %s LANGUAGE plpgsql '
					   'SET search_path = pg_catalog AS $f$BEGIN PERFORM trap.trip(%L); '
					   'RETURN $1 OPERATOR(pg_catalog.%s) $2; END$f$',
					   f, l, r, res, format('%s %s %s', l, op, r), op);
		EXECUTE format('CREATE OPERATOR trap.%s (LEFTARG = pg_catalog.%s, RIGHTARG = pg_catalog.%s, FUNCTION = %s)',
					   op, l, r, f);
	END LOOP;
	-- unary minus and NOT-like prefixes
	FOREACH l IN ARRAY ARRAY['int4', 'int8', 'numeric', 'float8'] LOOP
		n := n + 1;
		f := 'trap.op' || n;
		EXECUTE format('CREATE FUNCTION %s(pg_catalog.%s) RETURNS pg_catalog.%s LANGUAGE plpgsql '
					   'SET search_path = pg_catalog AS $f$BEGIN PERFORM trap.trip(%L); '
					   'RETURN OPERATOR(pg_catalog.-) $1; END$f$', f, l, l, '- ' || l);
		EXECUTE format('CREATE OPERATOR trap.- (RIGHTARG = pg_catalog.%s, FUNCTION = %s)', l, f);
	END LOOP;
	-- functions: name, argument types, result type, the call of pg_catalog's
	FOR f, l, res, r IN VALUES
		('round', 'numeric, int4', 'numeric', 'pg_catalog.round($1, $2)'),
		('round', 'numeric', 'numeric', 'pg_catalog.round($1)'),
		('round', 'float8', 'float8', 'pg_catalog.round($1)'),
		('now', '', 'timestamptz', 'pg_catalog.now()'),
		('clock_timestamp', '', 'timestamptz', 'pg_catalog.clock_timestamp()'),
		('lower', 'text', 'text', 'pg_catalog.lower($1)'),
		('upper', 'text', 'text', 'pg_catalog.upper($1)'),
		('abs', 'numeric', 'numeric', 'pg_catalog.abs($1)'),
		('abs', 'float8', 'float8', 'pg_catalog.abs($1)'),
		('abs', 'int8', 'int8', 'pg_catalog.abs($1)'),
		('exp', 'float8', 'float8', 'pg_catalog.exp($1)'),
		('ln', 'float8', 'float8', 'pg_catalog.ln($1)'),
		('ln', 'numeric', 'numeric', 'pg_catalog.ln($1)'),
		('sqrt', 'float8', 'float8', 'pg_catalog.sqrt($1)'),
		('power', 'float8, float8', 'float8', 'pg_catalog.power($1, $2)'),
		('ceil', 'numeric', 'numeric', 'pg_catalog.ceil($1)'),
		('floor', 'numeric', 'numeric', 'pg_catalog.floor($1)'),
		('ceil', 'float8', 'float8', 'pg_catalog.ceil($1)'),
		('floor', 'float8', 'float8', 'pg_catalog.floor($1)'),
		('length', 'text', 'int4', 'pg_catalog.length($1)'),
		('cardinality', 'int8[]', 'int4', 'pg_catalog.cardinality($1)'),
		('array_length', 'int8[], int4', 'int4', 'pg_catalog.array_length($1, $2)'),
		('array_position', 'int8[], int8', 'int4', 'pg_catalog.array_position($1, $2)'),
		('date_trunc', 'text, timestamptz', 'timestamptz', 'pg_catalog.date_trunc($1, $2)'),
		('jsonb_build_object', 'text, int8', 'jsonb', 'pg_catalog.jsonb_build_object($1, $2)'),
		('hashtextextended', 'text, int8', 'int8', 'pg_catalog.hashtextextended($1, $2)'),
		('concat_ws', 'text, text, text', 'text', 'pg_catalog.concat_ws($1, $2, $3)'),
		('nextval', 'regclass', 'int8', 'pg_catalog.nextval($1)'),
		('to_regclass', 'text', 'regclass', 'pg_catalog.to_regclass($1)'),
		('format', 'text, text', 'text', 'pg_catalog.format($1, $2)'),
		('quote_ident', 'text', 'text', 'pg_catalog.quote_ident($1)'),
		('jsonb_typeof', 'jsonb', 'text', 'pg_catalog.jsonb_typeof($1)'),
		('pg_has_role', 'name, text', 'bool', 'pg_catalog.pg_has_role($1, $2)'),
		('has_table_privilege', 'text, text', 'bool', 'pg_catalog.has_table_privilege($1, $2)'),
		('current_setting', 'text, bool', 'text', 'pg_catalog.current_setting($1, $2)'),
		('num_nonnulls', 'int8, text, numeric', 'int4', 'pg_catalog.num_nonnulls($1, $2, $3)'),
		('generate_series', 'int4, int4', 'SETOF int4', 'QUERY SELECT pg_catalog.generate_series($1, $2)'),
		('unnest', 'int8[]', 'SETOF int8', 'QUERY SELECT pg_catalog.unnest($1)')
	LOOP
		EXECUTE format('CREATE FUNCTION trap.%I(%s) RETURNS %s LANGUAGE plpgsql SET search_path = pg_catalog '
					   'AS $f$BEGIN PERFORM trap.trip(%L); RETURN %s; END$f$',
					   f, l, res, f || '(' || l || ')', r);
	END LOOP;
	-- aggregates
	FOR f, l, res, r IN VALUES
		('count', '*', 'int8', 'pg_catalog.int8inc($1)'),
		('count', 'int8', 'int8', 'pg_catalog.int8inc($1)'),
		('sum', 'int8', 'int8', '$1 OPERATOR(pg_catalog.+) $2'),
		('sum', 'int4', 'int4', '$1 OPERATOR(pg_catalog.+) $2'),
		('sum', 'numeric', 'numeric', '$1 OPERATOR(pg_catalog.+) $2'),
		('sum', 'float8', 'float8', '$1 OPERATOR(pg_catalog.+) $2'),
		('max', 'int8', 'int8', 'pg_catalog.int8larger($1, $2)'),
		('min', 'int8', 'int8', 'pg_catalog.int8smaller($1, $2)'),
		('max', 'timestamptz', 'timestamptz', 'pg_catalog.timestamptz_larger($1, $2)'),
		('avg', 'float8', 'float8', '$2'),
		('bool_and', 'bool', 'bool', '$1 AND $2'),
		('array_agg', 'int8', 'int8[]', '$1 OPERATOR(pg_catalog.||) $2')
	LOOP
		n := n + 1;
		EXECUTE format('CREATE FUNCTION trap.agg%s(%s) RETURNS %s LANGUAGE plpgsql SET search_path = pg_catalog '
					   'AS $f$BEGIN PERFORM trap.trip(%L); RETURN %s; END$f$',
					   n, CASE WHEN l = '*' THEN res ELSE res || ', ' || l END, res,
					   f || '(' || l || ')', r);
		EXECUTE format('CREATE AGGREGATE trap.%I(%s) (SFUNC = trap.agg%s, STYPE = %s%s)',
					   f, l, n, res, CASE WHEN f = 'count' THEN ', INITCOND = 0' ELSE '' END);
	END LOOP;
	-- types: a domain named like a type of pg_catalog catches every cast to it
	FOREACH l IN ARRAY ARRAY['text', 'int8', 'int4', 'int2', 'float8', 'float4', 'numeric', 'jsonb',
							 'timestamptz', 'date', 'interval', 'bool', 'name', 'regclass', 'oid'] LOOP
		EXECUTE format('CREATE DOMAIN trap.%I AS pg_catalog.%I CHECK (trap.trip(%L))', l, l, '::' || l);
	END LOOP;
END
$$;
RESET ROLE;
SELECT count(*) > 200 AS traps_set FROM pg_operator WHERE oprnamespace = 'trap'::regnamespace;

-- a superuser with the hostile schema first on its path
SELECT coalesce(max(refresh_id), 0) AS refreshes_before FROM upsell.refresh_log \gset
SET search_path = trap, pg_catalog, public;
CALL upsell.refresh();
CALL upsell.refresh(incremental => true);
CALL upsell.refresh(tenant_id => 2);
CALL upsell.refresh(incremental => true, tenant_id => 1);
BEGIN;
CALL upsell.refresh(tenant_id => 1);
COMMIT;
\o /dev/null
SELECT * FROM upsell.cart_offers('{1,3}', '{1,2}', 1);
SELECT * FROM upsell.cart_offers('{1,3,5}', '{1,4,5}', 1, 'hs_test', 'unit-1');
SELECT * FROM upsell.cart_offers('{1,3,5}', '{1,4,5}', 1, 'hs_test', 'unit-2');
SELECT * FROM upsell.product_page_offers(1, 1);
SELECT * FROM upsell.product_page_offers(3, 1, 'hs_test', 'unit-1');
SET upsell.tenant_id = 1;
SELECT * FROM upsell.product_page_offers;
SELECT * FROM upsell.post_purchase_offers;
SELECT * FROM upsell.abandoned_cart_offers(1);
RESET upsell.tenant_id;
SELECT * FROM upsell.post_purchase_offers('{1}', 101, 1);
SELECT * FROM upsell._merge_offers('cart', 1, '{1}', 10, NULL, NULL, NULL);
SELECT * FROM upsell.recommend_for_cart('{1}', 5, 1);
SELECT * FROM upsell.recommend_for_customer(101, 5, 1);
SELECT * FROM upsell.email_sequence(101, 5, 1);
SELECT * FROM upsell.upgrade_candidates(1, 3, 1.5, 1);
SELECT * FROM upsell.downsell_candidates(2, 3, 0.5, 1);
SELECT * FROM upsell.quantity_offer(3, 2, 1);
SELECT * FROM upsell.quantity_offer(5, 1, 1);
SELECT * FROM upsell.threshold_gap(100, 1);
SELECT * FROM upsell.threshold_gap('{1,3}', '{1,1}', 1);
SELECT * FROM upsell.gap_fillers('{1}', '{1}', 5, 2, 1);
SELECT * FROM upsell.frequent_itemsets(0.01, 3, NULL, 1);
SELECT * FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM hs.lines', 0.01, 3);
SELECT * FROM upsell.association_rules(0.01, 0.1, 3, NULL, 1, 1);
SELECT * FROM upsell.association_rules('SELECT order_id, product_id FROM hs.lines', 0.01, 0.1);
SELECT * FROM upsell.bundle_offers(1, 3, 0.1, 1);
SELECT upsell.is_consumable(5, 1);
SELECT upsell.is_substitute(1, 2, '{1}'), upsell.is_substitute(1, 6, '{1,3}');
SELECT * FROM upsell.bad_source_rows();
SELECT * FROM upsell.bad_source_rows('{1}');
SELECT * FROM upsell.models;
SELECT upsell.is_excluded(1, 4, 'acc', '{2}');
SELECT * FROM upsell.replenishment_due(tenant_id => 1);
SELECT * FROM upsell.subscription_candidates(tenant_id => 1);
SELECT * FROM upsell.subscription_products(1, 1);
SELECT upsell.assign('hs_test', 'unit-1'), upsell.unit_hash('hs_test', 'unit-1'),
	   upsell.variant_offer_types('hs_test', 'unit-1', 'cart'), upsell.unit_customer('42');
SELECT upsell.record_exposure('hs_test', 'unit-1', 'cart');
SELECT upsell.set_weights('hs_test', '{"control": 1, "b": 2}', force => true);
SELECT upsell.normal_cdf(1), upsell.student_t_cdf(1, 5), upsell.chi_square_sf(3, 2);
SELECT * FROM upsell.two_proportion_test(10, 100, 20, 100);
SELECT * FROM upsell.welch_t_test(100, 5, 1, 100, 5.5, 1.2);
SELECT * FROM upsell.srm_test('{10,12}', '{1,1}');
SELECT * FROM upsell.experiment_results('hs_test');
SELECT * FROM upsell.metrics('month', 1);
SELECT * FROM upsell.frequently_bought_together(2, 0, 0);
SELECT * FROM upsell.frequently_bought_together('SELECT order_id, product_id FROM hs.lines');
SELECT upsell.order_key('x');
-- (the queries below name pg_catalog's operators and types themselves:
-- they are the caller's, which the traps would catch)
SELECT upsell.cooccurrence_merge(a, b) FROM (
	SELECT upsell.cooccurrence_agg(order_id, product_id) FILTER (WHERE shop OPERATOR(pg_catalog.=) 1) a,
		   upsell.cooccurrence_agg(order_id, product_id) FILTER (WHERE shop OPERATOR(pg_catalog.=) 2) b
	FROM hs.lines) x;
SELECT upsell.cooccurrence_info(upsell.cooccurrence_sharded_agg(order_id, product_id, qty)) FROM hs.lines;
SELECT CAST(CAST(upsell.cooccurrence_agg(order_id, product_id) AS pg_catalog.text) AS upsell.cooccurrence)
FROM hs.lines;
SELECT (upsell.purchase_interval_agg(at)).* FROM hs.lines WHERE product_id OPERATOR(pg_catalog.=) 1;
SELECT upsell.cooccurrence_info(upsell.cooccurrence_agg(order_id, product_id)) FROM hs.lines;
SELECT * FROM upsell.cooccurrence_pairs((SELECT upsell.cooccurrence_agg(order_id, product_id) FROM hs.lines));
SELECT * FROM upsell.cooccurrence_top_pairs((SELECT upsell.cooccurrence_agg(order_id, product_id, qty) FROM hs.lines), 2);
SELECT * FROM upsell.cooccurrence_products((SELECT upsell.cooccurrence_sum(s) FROM (
	SELECT upsell.cooccurrence_agg(order_id, product_id) s FROM hs.lines GROUP BY shop) x));
SELECT * FROM upsell.order_lines;
SELECT * FROM upsell.catalog;
SELECT * FROM upsell.carts;
SELECT upsell.register_orders('hs.lines', 'order_id', 'product_id', customer_id => 'customer',
	ordered_at => 'at', quantity => 'qty', unit_price => 'price', tenant_id => 'shop');
SELECT upsell.register_products('hs.products', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', in_stock => 'stock', title => 'title', tenant_id => 'shop');
SELECT upsell.register_carts('hs.carts', 'cart', 'shopper', 'item', 'qty', 'added', 'done');
-- the merchant's rules change (triggers) and the cache is read anew
INSERT INTO upsell.thresholds (tenant_id, kind, amount) VALUES (1, 'gift', 900);
SELECT * FROM upsell.cart_offers('{1,3}', '{1,2}', 1);
CALL upsell.refresh(incremental => true);
\o
RESET search_path;
-- every model was built under that path: for both tenants, each model's
-- last build is the last refresh's
SELECT count(*) > 0 AS models, bool_and(b.refresh_id = (SELECT max(l.refresh_id) FROM upsell.refresh_log l))
	   AS all_built_by_the_last_refresh
FROM upsell.model_definitions d JOIN upsell.model_builds b ON b.model = d.model AND b.tenant_id IN (1, 2);
SELECT count(*) AS unbuilt FROM upsell.model_definitions d
WHERE NOT EXISTS (SELECT FROM upsell.model_builds b WHERE b.model = d.model AND b.tenant_id = 1);
SELECT status, count(*) FROM upsell.refresh_log WHERE refresh_id > :refreshes_before GROUP BY 1 ORDER BY 1;
SELECT what, by_user FROM public.tripped ORDER BY what;
-- and the traps do work: a query of the caller that uses them is caught
SET search_path = trap, pg_catalog, public;
SELECT 1 + 1 AS two;
RESET search_path;
SELECT what FROM public.tripped ORDER BY what;

DROP SCHEMA trap CASCADE;
DROP TABLE public.tripped;
DROP ROLE regress_upsell_hostile;
DELETE FROM upsell.experiments;
DELETE FROM upsell.offers;
DELETE FROM upsell.exclusions;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.volume_tiers;
DELETE FROM upsell.consumables;
DELETE FROM upsell.stage_settings;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DELETE FROM upsell.cart_source;
DROP SCHEMA hs CASCADE;
