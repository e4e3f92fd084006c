-- Hostile input: each case is a statement and the SQLSTATE it must end with
-- ('00000': it must succeed).  Every case runs in a subtransaction that is
-- rolled back, so cases do not disturb one another.  The summary counts
-- the cases and lists any whose SQLSTATE differs; an internal error (XX000)
-- or a crash would show there.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA hi;
CREATE TABLE hi.lines (order_id int, product_id int, customer int, at timestamptz, qty int, price numeric, shop int);
INSERT INTO hi.lines
SELECT o, 1 + (o * 7 + k) % 9, o % 6, now() - o * interval '1 day', 1 + k % 2, 2 + (o * 7 + k) % 9, 1
FROM generate_series(1, 80) o, generate_series(1, 3) k;
CREATE TABLE hi.products (id int, price numeric, cat text, stock boolean);
INSERT INTO hi.products SELECT i, 2 + i, 'c' || i % 3, i <> 9 FROM generate_series(1, 9) i;
CREATE TABLE hi.carts (cart int, shopper int, item int, qty int, added timestamptz, done timestamptz);
INSERT INTO hi.carts VALUES (1, 1, 1, 1, now() - interval '3 hours', NULL);
SELECT upsell.register_orders('hi.lines', 'order_id', 'product_id', customer_id => 'customer',
	ordered_at => 'at', quantity => 'qty', unit_price => 'price');
SELECT upsell.register_products('hi.products', 'id', price => 'price', category => 'cat', in_stock => 'stock');
SELECT upsell.register_carts('hi.carts', 'cart', 'shopper', 'item', 'qty', 'added', 'done');
INSERT INTO upsell.thresholds (kind, amount) VALUES ('free_shipping', 40);
INSERT INTO upsell.experiments (experiment) VALUES ('hi_exp');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('hi_exp', 'control', 1), ('hi_exp', 'b', 1);
CALL upsell.refresh();
RESET client_min_messages;

-- a valid value, its bytes, and a valid header-only value counting 2^31
-- orders and 2^62 skipped lines (little-endian: magic, 0 products, orders,
-- skipped lines, big orders, pairs): twice that is beyond the format's
-- 2^32 - 1 orders and 2^63 - 1 lines, and merging must say so, not wrap
CREATE TABLE hi.v AS SELECT upsell.cooccurrence_agg(order_id, product_id) AS v FROM hi.lines;
CREATE TABLE hi.b AS SELECT upsell.cooccurrence_send(v) AS b FROM hi.v;
CREATE TABLE hi.big AS
SELECT (substring(b from 1 for 4) || '\x00000000'::bytea || '\x0000008000000000'::bytea
		|| '\x0000000000000040'::bytea || '\x0000000000000000'::bytea || '\x0000000000000000'::bytea) AS b
FROM hi.b;

-- binary receive: the bytes written as a binary COPY of a bytea, read back
-- into an upsell.cooccurrence column (its receive function)
CREATE TABLE hi.recv_target (v upsell.cooccurrence);
CREATE FUNCTION hi.recv(bytes bytea) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	file text := current_setting('data_directory') || '/upsell_hostile_recv.bin';
BEGIN
	EXECUTE format('COPY (SELECT %L::bytea) TO %L (FORMAT binary)', bytes, file);
	EXECUTE format('COPY hi.recv_target FROM %L (FORMAT binary)', file);
	SELECT (upsell.cooccurrence_info(v)).orders INTO n FROM hi.recv_target;
	RETURN n;
END
$$;

CREATE TABLE hi.cases (n serial, sql text NOT NULL, expected text NOT NULL);
INSERT INTO hi.cases (sql, expected) VALUES
-- type input
($$SELECT ''::upsell.cooccurrence$$, '22P02'),
($$SELECT 'x'::upsell.cooccurrence$$, '22P02'),
($$SELECT '\x'::upsell.cooccurrence$$, '22P03'),
($$SELECT '\x0'::upsell.cooccurrence$$, '22023'),
($$SELECT '\xzz'::upsell.cooccurrence$$, '22023'),
($$SELECT '\x00000000'::upsell.cooccurrence$$, '22P03'),
($$SELECT 'DROP TABLE hi.lines'::upsell.cooccurrence$$, '22P02'),
($$SELECT repeat('\x', 3)::upsell.cooccurrence$$, '22023'),
($$SELECT ('\x' || repeat('ff', 100))::upsell.cooccurrence$$, '22P03'),
($$SELECT ('\x' || repeat('00', 40))::upsell.cooccurrence$$, '22P03'),
($$SELECT ('\x' || encode(b, 'hex'))::upsell.cooccurrence FROM hi.b$$, '00000'),
($$SELECT ('\x' || encode(b, 'hex') || '00')::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(substring(b from 1 for length(b) - 1), 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(overlay(b placing '\xffffffff' from 5), 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(overlay(b placing '\xffffffffffffffff' from 9), 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(overlay(b placing '\xffffffffffffff7f' from 33), 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(overlay(b placing '\x00000000' from 1), 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(overlay(b placing '\xffffffffffffff7f' from 41), 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(overlay(b placing '\xffffffffffffffff' from length(b) - 7), 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT ('\x' || encode(b || b, 'hex'))::upsell.cooccurrence FROM hi.b$$, '22P03'),
($$SELECT upsell.cooccurrence_info(('\x' || encode(b, 'hex'))::upsell.cooccurrence) FROM hi.big$$, '00000'),
-- binary receive
($$SELECT hi.recv(b) FROM hi.b$$, '00000'),
($$SELECT hi.recv(b) FROM hi.big$$, '00000'),
($$SELECT hi.recv('\x'::bytea)$$, '22P03'),
($$SELECT hi.recv('\x00'::bytea)$$, '22P03'),
($$SELECT hi.recv(substring(b from 1 for 39)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(substring(b from 1 for length(b) - 1)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(b || '\x00'::bytea) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\x00000000' from 1)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\xffffffff' from 5)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\xffffffffffffffff' from 9)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\xffffffffffffffff' from 17)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\xffffffffffffff7f' from 25)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\xffffffffffffff0f' from 33)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\x0900000000000000' from 41)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(overlay(b placing '\xffffffff' from length(b) - 15)) FROM hi.b$$, '22P03'),
($$SELECT hi.recv(decode(repeat('ab', 1000), 'hex'))$$, '22P03'),
-- values in use
($$SELECT upsell.cooccurrence_merge(v, v) FROM hi.v$$, '00000'),
($$SELECT upsell.cooccurrence_merge(x, x) FROM (SELECT ('\x' || encode(b, 'hex'))::upsell.cooccurrence x FROM hi.big) s$$, '54000'),
($$SELECT upsell.cooccurrence_merge(v, x) FROM hi.v, (SELECT ('\x' || encode(b, 'hex'))::upsell.cooccurrence x FROM hi.big) s$$, '00000'),
($$SELECT upsell.cooccurrence_sum(x) FROM (SELECT ('\x' || encode(b, 'hex'))::upsell.cooccurrence x FROM hi.big, generate_series(1, 2)) s$$, '54000'),
($$SELECT count(*) FROM upsell.cooccurrence_pairs((SELECT v FROM hi.v), -1)$$, '22023'),
($$SELECT count(*) FROM upsell.cooccurrence_pairs((SELECT v FROM hi.v), 2, 'NaN')$$, '22023'),
($$SELECT count(*) FROM upsell.cooccurrence_pairs((SELECT v FROM hi.v), 2, 0, 'Infinity')$$, '22023'),
($$SELECT count(*) FROM upsell.cooccurrence_pairs((SELECT v FROM hi.v), 2, 1.5)$$, '22023'),
($$SELECT count(*) FROM upsell.cooccurrence_top_pairs((SELECT v FROM hi.v), -1)$$, '22023'),
($$SELECT count(*) FROM upsell.cooccurrence_top_pairs((SELECT v FROM hi.v), 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.cooccurrence_products(NULL)$$, '00000'),
-- injection-style names: data, never SQL
($$SELECT upsell.register_orders('hi.lines; DROP TABLE hi.lines', 'order_id', 'product_id')$$, '42602'),
($$SELECT upsell.register_orders('hi.nope', 'order_id', 'product_id')$$, '42P01'),
($$SELECT upsell.register_orders('hi.lines', 'order_id; DROP TABLE hi.lines', 'product_id')$$, '42703'),
($$SELECT upsell.register_orders('hi.lines', 'order_id', 'product_id"; DROP TABLE hi.lines; --')$$, '42703'),
($$SELECT upsell.register_orders('hi.lines', 'order_id', 'product_id', tenant_id => 'shop) OR (true')$$, '42703'),
($$SELECT upsell.register_orders('hi.lines', 'order_id', 'order_id')$$, '00000'),
($$SELECT upsell.register_orders('hi.lines', NULL, 'product_id')$$, '22004'),
($$SELECT upsell.register_orders(NULL, 'order_id', 'product_id')$$, '22004'),
($$SELECT upsell.register_orders('hi.lines', 'order_id', 'product_id', quantity => 'at')$$, '42804'),
($$SELECT upsell.register_products('hi.products', 'id''; DROP TABLE hi.products; --')$$, '42703'),
($$SELECT upsell.register_products('pg_catalog.pg_authid', 'oid')$$, '42804'),
($$SELECT upsell.register_products('hi.products', 'id', price => 'cat')$$, '42804'),
($$SELECT upsell.register_carts('hi.carts', 'cart', 'shopper', 'item', 'qty', 'added; DROP TABLE hi.carts', 'done')$$, '42703'),
($$SELECT upsell.assign('x''); DROP TABLE hi.lines; --', 'u')$$, '42704'),
($$SELECT upsell.assign('hi_exp', E'u\n''; DROP TABLE hi.lines; --')$$, '00000'),
($$SELECT upsell.record_exposure('hi_exp', 'u'' OR ''1''=''1')$$, '00000'),
($$SELECT upsell.set_weights('hi_exp', '{"control": 1, "b''); DROP TABLE hi.lines; --": 1}', true)$$, '42704'),
($$SELECT count(*) FROM upsell.frequently_bought_together('SELECT order_id, product_id FROM hi.lines; DROP TABLE hi.lines')$$, '22023'),
($$SELECT count(*) FROM upsell.frequently_bought_together('DELETE FROM hi.lines RETURNING order_id, product_id')$$, '0A000'),
($$SELECT count(*) FROM upsell.frequently_bought_together('SELECT 1')$$, '42804'),
($$SELECT count(*) FROM upsell.frequent_itemsets('SELECT order_id, product_id FROM hi.lines; DROP TABLE hi.lines')$$, '22023'),
($$SELECT set_config('upsell.tenant_id', '1; DROP TABLE hi.lines', true)$$, '22023'),
($$SELECT set_config('upsell.tenant_id', '99999999999999999999', true)$$, '22023'),
($$SELECT set_config('upsell.tenant_id', '-1', true)$$, '00000'),
($$SELECT set_config('upsell.max_cart_lines', '0', true)$$, '22023'),
-- cart_offers
($$SELECT count(*) FROM upsell.cart_offers('{1,3}')$$, '00000'),
($$SELECT count(*) FROM upsell.cart_offers(NULL)$$, '00000'),
($$SELECT count(*) FROM upsell.cart_offers('{}')$$, '00000'),
($$SELECT count(*) FROM upsell.cart_offers('{1,NULL}')$$, '22004'),
($$SELECT count(*) FROM upsell.cart_offers('{{1,2},{3,4}}')$$, '2202E'),
($$SELECT count(*) FROM upsell.cart_offers('{1,2}', '{{1,1}}')$$, '2202E'),
($$SELECT count(*) FROM upsell.cart_offers('{1,2}', '{1}')$$, '2202E'),
($$SELECT count(*) FROM upsell.cart_offers('{1,2}', '{1,0}')$$, '22023'),
($$SELECT count(*) FROM upsell.cart_offers('{1,2}', '{1,-2147483648}')$$, '22023'),
($$SELECT count(*) FROM upsell.cart_offers('{1,2}', '{1,NULL}')$$, '22023'),
($$SELECT count(*) FROM upsell.cart_offers('{1,2}', '{2147483647,2147483647}')$$, '00000'),
($$SELECT count(*) FROM upsell.cart_offers('{-9223372036854775808,9223372036854775807}')$$, '00000'),
($$SELECT count(*) FROM upsell.cart_offers(array_fill(1::bigint, ARRAY[501]))$$, '54000'),
($$SELECT count(*) FROM upsell.cart_offers(array_fill(1::bigint, ARRAY[500]))$$, '00000'),
($$SELECT count(*) FROM upsell.cart_offers(array_fill(1::bigint, ARRAY[1000000]))$$, '54000'),
($$SELECT count(*) FROM upsell.cart_offers('{1}', NULL, 5)$$, '22023'),
($$SELECT count(*) FROM upsell.cart_offers('{1}', NULL, NULL, 'no such experiment', 'u')$$, '42704'),
($$SELECT count(*) FROM upsell.cart_offers('{1}', NULL, NULL, 'hi_exp', NULL)$$, '00000'),
($$SELECT count(*) FROM upsell.cart_offers('[5:6]={1,3}')$$, '00000'),
-- product page, post-purchase, merge
($$SELECT count(*) FROM upsell.product_page_offers(1)$$, '00000'),
($$SELECT count(*) FROM upsell.product_page_offers(NULL)$$, '00000'),
($$SELECT count(*) FROM upsell.product_page_offers(-1)$$, '00000'),
($$SELECT count(*) FROM upsell.product_page_offers(1, 3)$$, '22023'),
($$SELECT count(*) FROM upsell._product_page_offers(NULL, 1, NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.post_purchase_offers('{1,2}')$$, '00000'),
($$SELECT count(*) FROM upsell.post_purchase_offers(NULL)$$, '00000'),
($$SELECT count(*) FROM upsell.post_purchase_offers('{{1,2}}')$$, '2202E'),
($$SELECT count(*) FROM upsell.post_purchase_offers(array_fill(1::bigint, ARRAY[501]))$$, '54000'),
($$SELECT count(*) FROM upsell.post_purchase_offers('{1}', at => NULL)$$, '00000'),
($$SELECT count(*) FROM upsell._merge_offers('checkout', 0, '{}', NULL, '{}', NULL, NULL)$$, '22023'),
($$SELECT count(*) FROM upsell._merge_offers(NULL, 0, '{}', NULL, '{}', NULL, NULL)$$, '22004'),
($$SELECT count(*) FROM upsell._merge_offers('cart', 0, '{}', 'NaN', '{}', NULL, NULL)$$, '00000'),
($$SELECT count(*) FROM upsell._merge_offers('cart', 0, '{}', NULL, ARRAY[ROW('cart', 'teleport', '{1}', 1, 0.5, 0, 'x')::upsell.offer], NULL, NULL)$$, '22023'),
-- recommendations
($$SELECT count(*) FROM upsell.recommend_for_cart('{1}', 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.recommend_for_cart('{1}', -1)$$, '22023'),
($$SELECT count(*) FROM upsell.recommend_for_cart('{1}', NULL)$$, '22023'),
($$SELECT count(*) FROM upsell.recommend_for_cart(array_fill(1::bigint, ARRAY[501]))$$, '54000'),
($$SELECT count(*) FROM upsell.recommend_for_cart('{1}', 5, 3)$$, '22023'),
($$SELECT count(*) FROM upsell.recommend_for_customer(1, 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.recommend_for_customer(1, -5)$$, '22023'),
($$SELECT count(*) FROM upsell.recommend_for_customer(NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.recommend_for_customer(1, 5, NULL, 'infinity')$$, '22008'),
($$SELECT count(*) FROM upsell.email_sequence(1, 101)$$, '22023'),
($$SELECT count(*) FROM upsell.email_sequence(1, -1)$$, '22023'),
($$SELECT count(*) FROM upsell.email_sequence(NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.upgrade_candidates(1, 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.upgrade_candidates(1, 3, 'NaN')$$, '22023'),
($$SELECT count(*) FROM upsell.upgrade_candidates(1, 3, 'Infinity')$$, '22023'),
($$SELECT count(*) FROM upsell.upgrade_candidates(1, 3, 0.5)$$, '22023'),
($$SELECT count(*) FROM upsell.upgrade_candidates(1, -1)$$, '22023'),
($$SELECT count(*) FROM upsell.upgrade_candidates(NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.downsell_candidates(9, 3, 'NaN')$$, '22023'),
($$SELECT count(*) FROM upsell.downsell_candidates(9, 3, -1)$$, '22023'),
($$SELECT count(*) FROM upsell.downsell_candidates(9, 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.downsell_candidates(NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.quantity_offer(1, 0)$$, '22023'),
($$SELECT count(*) FROM upsell.quantity_offer(1, 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.quantity_offer(NULL, 1)$$, '22004'),
($$SELECT count(*) FROM upsell.bundle_offers(1, 3, 'NaN')$$, '22023'),
($$SELECT count(*) FROM upsell.bundle_offers(1, 3, 1)$$, '22023'),
($$SELECT count(*) FROM upsell.bundle_offers(1, 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.bundle_offers(1, -1)$$, '22023'),
($$SELECT upsell.is_consumable(NULL)$$, '00000'),
($$SELECT upsell.is_excluded(0, 1, NULL, NULL)$$, '00000'),
-- thresholds and gap fillers
($$SELECT count(*) FROM upsell.threshold_gap('NaN'::numeric)$$, '22023'),
($$SELECT count(*) FROM upsell.threshold_gap('Infinity'::numeric)$$, '22023'),
($$SELECT count(*) FROM upsell.threshold_gap('-Infinity'::numeric)$$, '22023'),
($$SELECT count(*) FROM upsell.threshold_gap(1e400::numeric)$$, '22023'),
($$SELECT count(*) FROM upsell.threshold_gap(-0.01)$$, '22023'),
($$SELECT count(*) FROM upsell.threshold_gap(NULL::numeric)$$, '22004'),
($$SELECT count(*) FROM upsell.threshold_gap(10, at => NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.threshold_gap('{1,999}'::bigint[], NULL)$$, '00000'),
($$SELECT count(*) FROM upsell.threshold_gap('{1}'::bigint[], '{0}')$$, '22023'),
-- a cart worth 1e15 (2000 units at a price of 5e11, which is plausible)
($c$DO $d$ BEGIN UPDATE upsell.product_model SET price = 5e11 WHERE product_id = 1;
	IF (SELECT bool_and(reached) FROM upsell.threshold_gap('{1}'::bigint[], '{2000}')) IS NOT TRUE THEN
		RAISE EXCEPTION 'not reached' USING ERRCODE = 'P0001'; END IF; END $d$$c$, '00000'),
-- and a threshold just below 1e15 with it
($c$DO $d$ BEGIN UPDATE upsell.product_model SET price = 5e11 WHERE product_id = 1;
	INSERT INTO upsell.thresholds (kind, amount) VALUES ('gift', 999999999999999.999);
	IF (SELECT bool_and(reached) FROM upsell.threshold_gap('{1}'::bigint[], '{2000}')) IS NOT TRUE THEN
		RAISE EXCEPTION 'not reached' USING ERRCODE = 'P0001'; END IF; END $d$$c$, '00000'),
($$SELECT count(*) FROM upsell.gap_fillers('{1}', k => 1001)$$, '22023'),
($$SELECT count(*) FROM upsell.gap_fillers('{1}', max_items => 4)$$, '22023'),
($$SELECT count(*) FROM upsell.gap_fillers('{1}', max_items => NULL)$$, '22023'),
($$SELECT count(*) FROM upsell.gap_fillers('{1,999}')$$, '00000'),
($$SELECT count(*) FROM upsell.gap_fillers('{{1}}')$$, '2202E'),
-- mining
($$SELECT count(*) FROM upsell.frequent_itemsets(0.01, 2147483647)$$, '22023'),
($$SELECT count(*) FROM upsell.frequent_itemsets(0.01, 0)$$, '22023'),
($$SELECT count(*) FROM upsell.frequent_itemsets('NaN'::float8)$$, '22023'),
($$SELECT count(*) FROM upsell.frequent_itemsets(-0.5)$$, '22023'),
($$SELECT count(*) FROM upsell.frequent_itemsets(NULL::float8)$$, '22004'),
($$SELECT count(*) FROM upsell.frequent_itemsets(NULL::float8, 2, 5)$$, '00000'),
($$SELECT count(*) FROM upsell.frequent_itemsets(0.01, 3, -1)$$, '22023'),
($$SELECT count(*) FROM upsell.association_rules(0.01, NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.association_rules(0.01, 'NaN')$$, '22023'),
($$SELECT count(*) FROM upsell.association_rules(0.01, 0.1, 1)$$, '22023'),
($$SELECT count(*) FROM upsell.association_rules(0.01, 0.1, 3, NULL, 0)$$, '22023'),
($$SELECT count(*) FROM upsell.association_rules(0.01, 0.1, 3, NULL, 2147483647)$$, '00000'),
($$SELECT count(*) FROM upsell.frequently_bought_together(NULL::int)$$, '22004'),
($$SELECT count(*) FROM upsell.frequently_bought_together(2, NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.frequently_bought_together(2, 0, 'NaN')$$, '22023'),
($$SELECT count(*) FROM upsell.frequently_bought_together(-1)$$, '22023'),
-- post-purchase and carts
($$SELECT count(*) FROM upsell.replenishment_due(NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.replenishment_due(within => '-1 day')$$, '22023'),
($$SELECT count(*) FROM upsell.subscription_candidates(min_orders => 0)$$, '22023'),
($$SELECT count(*) FROM upsell.subscription_candidates(max_dispersion => 'NaN')$$, '22023'),
($$SELECT count(*) FROM upsell.subscription_candidates(max_dispersion => 'Infinity')$$, '00000'),
($$SELECT count(*) FROM upsell.subscription_products(-1)$$, '22023'),
($$SELECT count(*) FROM upsell.abandoned_cart_offers(1)$$, '00000'),
($$SELECT count(*) FROM upsell.abandoned_cart_offers(NULL)$$, '22004'),
($$SELECT count(*) FROM upsell.abandoned_cart_offers(1, -1)$$, '22023'),
($$SELECT count(*) FROM upsell.abandoned_cart_offers(1, idle_after => '-1 hour')$$, '22023'),
-- experiments and statistics
($$SELECT upsell.assign(NULL, 'u')$$, '00000'),
($$SELECT upsell.assign('hi_exp', NULL)$$, '00000'),
($$SELECT upsell.unit_hash(NULL, NULL)$$, '00000'),
($$SELECT upsell.variant_offer_types('hi_exp', 'u', 'checkout')$$, '00000'),
($$SELECT upsell.record_exposure(NULL, 'u')$$, '22004'),
($$SELECT upsell.record_exposure('no such experiment', 'u')$$, '42704'),
($$SELECT upsell.record_exposure('hi_exp', 'u', 'checkout')$$, '22023'),
($$SELECT upsell.set_weights('hi_exp', '{"control": "NaN", "b": 1}', true)$$, '22023'),
($$SELECT upsell.set_weights('hi_exp', '{"control": 1e400, "b": 1}', true)$$, '23514'),
($$SELECT upsell.set_weights('hi_exp', '[1, 2]', true)$$, '22023'),
($$SELECT upsell.set_weights('hi_exp', NULL, true)$$, '22004'),
($$SELECT upsell.unit_customer(NULL)$$, '00000'),
($$SELECT upsell.normal_cdf('NaN')$$, '00000'),
($$SELECT upsell.student_t_cdf(1, 0)$$, '22023'),
($$SELECT upsell.student_t_cdf(1, 'NaN')$$, '22023'),
($$SELECT upsell.chi_square_sf(1e308, 1e308)$$, '00000'),
($$SELECT upsell.chi_square_sf(1, -1)$$, '22023'),
($$SELECT * FROM upsell.two_proportion_test(10, 9223372036854775807, 20, 9223372036854775807)$$, '22003'),
($$SELECT * FROM upsell.two_proportion_test(11, 10, 0, 20)$$, '22023'),
($$SELECT * FROM upsell.two_proportion_test(1, 10, 2, 20, 1)$$, '22023'),
($$SELECT * FROM upsell.welch_t_test(1, 0, 1, 10, 0, 1)$$, '22023'),
($$SELECT * FROM upsell.welch_t_test('Infinity', 0, 1, 10, 0, 1)$$, '00000'),
($$SELECT * FROM upsell.srm_test('{10}', '{1}')$$, '22023'),
($$SELECT * FROM upsell.srm_test('{10,12}', '{1}')$$, '2202E'),
($$SELECT * FROM upsell.srm_test('{10,12}', '{1e308,1e308}')$$, '00000'),
($$SELECT * FROM upsell.srm_test('{10,-1}', '{1,1}')$$, '22023'),
($$SELECT * FROM upsell.experiment_results('no such experiment')$$, '42704'),
($$SELECT * FROM upsell.experiment_results('hi_exp', 2)$$, '22023'),
($$SELECT * FROM upsell.metrics('fortnight')$$, '22023'),
($$SELECT * FROM upsell.metrics(attribution_window => '-1 day')$$, '22023'),
-- the merchant's tables
($$INSERT INTO upsell.thresholds (kind, amount) VALUES ('gift', 'NaN')$$, '23514'),
($$INSERT INTO upsell.thresholds (kind, amount) VALUES ('gift', 'Infinity')$$, '23514'),
($$INSERT INTO upsell.thresholds (kind, amount) VALUES ('gift', 1e400)$$, '23514'),
($$INSERT INTO upsell.thresholds (kind, amount) VALUES ('gift', 0)$$, '23514'),
($$INSERT INTO upsell.thresholds (kind, amount, currency) VALUES ('gift', 5, 'eur''; --')$$, '23514'),
($$INSERT INTO upsell.volume_tiers (product_id, min_quantity, unit_price) VALUES (1, 2, 'NaN')$$, '23514'),
($$INSERT INTO upsell.volume_tiers (product_id, min_quantity, unit_price) VALUES (1, 2, 'Infinity')$$, '23514'),
($$INSERT INTO upsell.volume_tiers (product_id, min_quantity, percent_off) VALUES (1, 2, 'NaN')$$, '23514'),
($$INSERT INTO upsell.volume_tiers (product_id, min_quantity, percent_off) VALUES (1, 0, 10)$$, '23514'),
($$INSERT INTO upsell.offers (stage, product_ids, min_cart_value) VALUES ('cart', '{1}', 'NaN')$$, '23514'),
($$INSERT INTO upsell.offers (stage, product_ids, min_cart_value) VALUES ('cart', '{1}', 'Infinity')$$, '23514'),
($$INSERT INTO upsell.offers (stage, product_ids, discount) VALUES ('cart', '{1}', 'NaN')$$, '23514'),
($$INSERT INTO upsell.offers (stage, product_ids) VALUES ('cart', '{}')$$, '23514'),
($$INSERT INTO upsell.offers (stage, product_ids) VALUES ('cart', '{1,NULL}')$$, '23514'),
($$INSERT INTO upsell.offers (stage, product_ids) VALUES ('checkout', '{1}')$$, '23514'),
($$INSERT INTO upsell.stage_settings (stage, max_offers, type_weights) VALUES ('cart', 5, '{"upgrade": 1e400}')$$, '23514'),
($$INSERT INTO upsell.stage_settings (stage, max_offers, type_weights) VALUES ('cart', 5, '{"upgrade": "2"}')$$, '23514'),
($$INSERT INTO upsell.stage_settings (stage, max_offers, type_weights) VALUES ('cart', 5, '{"upgrade": -1}')$$, '23514'),
($$INSERT INTO upsell.stage_settings (stage, max_offers) VALUES ('cart', 2147483647)$$, '23514'),
($$INSERT INTO upsell.stage_settings (stage, max_offers, type_weights) VALUES ('cart', 5, '[]')$$, '23514'),
($$INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('hi_exp', 'c', 'NaN')$$, '23514'),
($$INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('hi_exp', 'c', 1e400)$$, '23514'),
($$INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('hi_exp', '', 1)$$, '23514'),
($$INSERT INTO upsell.exclusions (product_id, category) VALUES (1, 'x')$$, '23514'),
($$INSERT INTO upsell.consumables (consumable) VALUES (NULL)$$, '23502'),
-- refresh
($$CALL upsell.refresh(NULL)$$, '22004'),
($$CALL upsell.refresh(true)$$, '00000');

-- each case in a subtransaction, rolled back whatever it did
CREATE FUNCTION hi.run_case(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
BEGIN
	BEGIN
		EXECUTE q;
		RAISE EXCEPTION USING ERRCODE = 'UPSOK';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
		RETURN CASE state WHEN 'UPSOK' THEN '00000' ELSE state END;
	END;
END
$$;
SET client_min_messages = error;
CREATE TABLE hi.results AS SELECT c.n, c.sql, c.expected, hi.run_case(c.sql) AS got FROM hi.cases c ORDER BY c.n;
RESET client_min_messages;
SELECT count(*) AS cases, count(*) FILTER (WHERE got = expected) AS as_expected,
	   count(*) FILTER (WHERE expected <> '00000') AS refused,
	   count(*) FILTER (WHERE got LIKE 'XX%') AS internal_errors
FROM hi.results;
SELECT n, sql, expected, got FROM hi.results WHERE got <> expected ORDER BY n;
-- nothing was dropped by the names above
SELECT count(*) AS lines_left FROM hi.lines;

SET client_min_messages = warning;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.experiments;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DELETE FROM upsell.cart_source;
DROP SCHEMA hi CASCADE;
