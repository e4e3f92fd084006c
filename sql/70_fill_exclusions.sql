-- The customer-level answers fill their slots when the merchant excludes
-- the bestsellers: the excluded are skipped before the candidates are cut,
-- not after (until 1.8 recommend_for_customer gave 0 of 5 rows and the
-- post-purchase stage 0 of 6 offers, with 19 eligible products).
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE SCHEMA fx;
CREATE TABLE fx.products (id int PRIMARY KEY, category text, price numeric);
-- 40 products: 1..20 'promo' (the bestsellers), 21..39 'other', 40 'solo'
INSERT INTO fx.products
SELECT i, CASE WHEN i <= 20 THEN 'promo' WHEN i = 40 THEN 'solo' ELSE 'other' END, 10
FROM generate_series(1, 40) i;
CREATE TABLE fx.orders (order_id int, customer_id int, product_id int, ordered_at timestamptz);
-- product i sold in 50 - i single-item orders of distinct customers
INSERT INTO fx.orders
SELECT row_number() OVER (), 1000 + row_number() OVER (), i, timestamptz '2024-01-01' + g * interval '1 hour'
FROM generate_series(1, 40) i, generate_series(1, 50 - i) g;
-- customer 1 bought product 40 once
INSERT INTO fx.orders VALUES (999999, 1, 40, '2024-02-01');
SELECT upsell.register_orders('fx.orders', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at');
SELECT upsell.register_products('fx.products', 'id', price => 'price', category => 'category');
CALL upsell.refresh();
INSERT INTO upsell.exclusions (category, note) VALUES ('promo', 'never offer promo items');
RESET client_min_messages;

SELECT count(*) AS eligible FROM fx.products WHERE category <> 'promo' AND id <> 40;
SELECT "rank", product_id, reason FROM upsell.recommend_for_customer(1, 5, at => '2024-03-01');
SELECT count(*) AS for_unknown_customer, count(*) FILTER (WHERE product_id <= 20) AS promo
FROM upsell.recommend_for_customer(424242, 5, at => '2024-03-01');
SELECT "rank", offer_type, product_ids, reason FROM upsell.post_purchase_offers('{40}', 1, at => '2024-03-01');
SELECT count(*) AS email_steps, count(*) FILTER (WHERE product_id <= 20) AS promo
FROM upsell.email_sequence(1, 5, at => '2024-03-01');

DELETE FROM upsell.exclusions;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA fx CASCADE;
