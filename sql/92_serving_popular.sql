-- Bestsellers fill the slots the evidence leaves, however many of the first
-- ones the context blocks: here the 100 bestsellers are one category whose
-- products substitute each other (bought alone, never together), so a cart
-- or page of one of them blocks them all, and the slots go to the next
-- category's, read past the cached ones (src/serving_offers.c,
-- serving_propose_popular).
SET client_min_messages = warning;
CREATE SCHEMA sp;
CREATE TABLE sp.products (id int, price numeric, cat text);
INSERT INTO sp.products
SELECT p, 10 + p, CASE WHEN p <= 100 THEN 'a' ELSE 'b' END FROM generate_series(1, 108) p;
CREATE TABLE sp.lines (order_id bigint, product_id int);
-- 'a': 50 orders each; 'b': 5 to 12, fewer the higher the id
INSERT INTO sp.lines
SELECT p * 1000 + i, p FROM generate_series(1, 108) p, generate_series(1, 50) i
WHERE p <= 100 OR i <= 113 - p;
SELECT upsell.register_orders('sp.lines', 'order_id', 'product_id');
SELECT upsell.register_products('sp.products', 'id', price => 'price', category => 'cat');
CALL upsell.refresh();

-- the category is judged a category of substitutes
SELECT category, other_category, substitutes FROM upsell.category_model ORDER BY 1, 2;

-- six slots, filled by the best of 'b' (101, 102, ...), nothing of 'a'
SELECT rank, offer_type, product_ids, reason FROM upsell.cart_offers('{1}');
SELECT rank, offer_type, product_ids, reason FROM upsell.product_page_offers(1);
SELECT rank, product_ids FROM upsell.product_page_offers WHERE product_id = 50;
SELECT jsonb_array_length(upsell.offers_json('cart', '{"items": [{"product_id": 1}]}') -> 'offers') AS cart_json_offers;
-- after the purchase too (post_purchase_offers, in SQL)
SELECT rank, offer_type, product_ids, reason FROM upsell.post_purchase_offers('{1}');
-- an order's product unknown as of the last refresh: said in every reason
SELECT rank, product_ids, reason FROM upsell.post_purchase_offers('{1,999999}') WHERE rank <= 2;
-- a NULL product id is the caller's error, as in the cart
SELECT * FROM upsell.post_purchase_offers('{1,NULL}');
SELECT * FROM upsell.cart_offers('{1,NULL}');

-- more slots than 'b' has products: all eight, then the catalog is exhausted
BEGIN;
INSERT INTO upsell.stage_settings (stage, max_offers) VALUES ('cart', 30), ('product_page', 30)
ON CONFLICT (tenant_id, stage) DO UPDATE SET max_offers = excluded.max_offers;
SELECT count(*) AS offers, count(*) FILTER (WHERE product_ids[1] > 100) AS of_b
FROM upsell.cart_offers('{1}');
SELECT count(*) AS offers, count(*) FILTER (WHERE product_ids[1] > 100) AS of_b
FROM upsell.product_page_offers(1);
ROLLBACK;

-- a product of 'b' on the page: the bestsellers of 'a' fill its slots, the
-- cached ones first (no other 'b' product: a page's own category, without
-- pairs, is taken for substitutes)
SELECT count(*) AS offers, min(product_ids[1]) AS best, max(product_ids[1]) AS last
FROM upsell.product_page_offers(101);
-- an excluded bestseller of 'b' gives its slot to the next one
BEGIN;
INSERT INTO upsell.exclusions (product_id) VALUES (101);
SELECT array_agg(product_ids[1] ORDER BY rank) FROM upsell.cart_offers('{1}');
ROLLBACK;

-- a product the catalog no longer lists (deleted from the shop) is not
-- offered, though its orders still count: its price, title and stock are
-- unknown, and it cannot be bought
DELETE FROM sp.products WHERE id = 101;
CALL upsell.refresh();
SELECT product_id, orders, price, in_stock FROM upsell.product_model WHERE product_id = 101;
SELECT array_agg(product_ids[1] ORDER BY rank) FROM upsell.cart_offers('{1}');
SELECT array_agg(product_ids[1] ORDER BY rank) FROM upsell.post_purchase_offers('{1}');
-- listed again: offered again, incrementally
INSERT INTO sp.products VALUES (101, 111, 'b');
CALL upsell.refresh(incremental => true);
SELECT product_id, orders, price, in_stock FROM upsell.product_model WHERE product_id = 101;

-- per tenant: a shop none of whose products the catalog lists yet (its
-- catalog not synced) has them all in stock, as without a catalog; the
-- shop whose catalog lists some has the others out of stock
CREATE TABLE sp.shop_lines (shop int, order_id bigint, product_id int);
INSERT INTO sp.shop_lines SELECT s, o, p FROM generate_series(1, 2) s, generate_series(1, 20) o, generate_series(1, 3) p;
CREATE TABLE sp.shop_products (shop int, id int, price numeric);
INSERT INTO sp.shop_products VALUES (1, 1, 5), (1, 2, 6);
SELECT upsell.register_orders('sp.shop_lines', 'order_id', 'product_id', tenant_id => 'shop');
SELECT upsell.register_products('sp.shop_products', 'id', price => 'price', tenant_id => 'shop');
CALL upsell.refresh();
SELECT tenant_id, product_id, price, in_stock FROM upsell.product_model ORDER BY 1, 2;

DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA sp CASCADE;
RESET client_min_messages;
