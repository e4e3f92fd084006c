-- The cart's gap fillers: the next size of a cart line.  Of the line's
-- variant group, the product in stock at the next price step above the
-- line's is offered instead of one unit when that closes the gap to the
-- threshold ("a kilo more coffee for $3"); never a smaller size, one out of
-- stock, one that leaves the gap open, one the merchant excluded, nor
-- another product's size.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS ns CASCADE;
CREATE SCHEMA ns;
CREATE TABLE ns.products (id int PRIMARY KEY, title text, price numeric(10, 2), in_stock boolean,
						  grp text);
INSERT INTO ns.products VALUES
	(1, 'coffee 250 g', 5.00, true, 'coffee'),
	(2, 'coffee 500 g', 8.00, true, 'coffee'),
	(3, 'coffee 1 kg', 11.00, true, 'coffee'),		-- the next size of 2
	(4, 'coffee 2 kg', 20.00, true, 'coffee'),
	(5, 'tea 50 bags', 4.00, true, 'tea'),
	(6, 'tea 100 bags', 6.50, false, 'tea'),		-- out of stock
	(7, 'tea 200 bags', 9.00, true, 'tea'),
	(8, 'mug', 6.00, true, NULL);
CREATE TABLE ns.lines (order_id int, product_id int);
INSERT INTO ns.lines
SELECT o, p FROM generate_series(1, 4) o, (VALUES (2), (8)) v(p)
UNION ALL SELECT o, p FROM generate_series(5, 6) o, (VALUES (5), (8)) v(p)
UNION ALL SELECT o, p FROM generate_series(7, 9) o, (VALUES (1), (3), (4), (7)) v(p);
SELECT upsell.register_orders('ns.lines', 'order_id', 'product_id');
SELECT upsell.register_products('ns.products', 'id', price => 'price', in_stock => 'in_stock',
	variant_group => 'grp', title => 'title');
CALL upsell.refresh();
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 10, 'free shipping');
RESET client_min_messages;

-- 500 g of coffee, 2.00 short: the 1 kg adds 3.00 (never the 250 g nor the
-- 2 kg: the search itself skips the sizes of a cart line)
SELECT "rank", offer_type, product_ids, reason FROM upsell.cart_offers('{2}')
WHERE offer_type = 'gap_filler' ORDER BY "rank";
-- 50 tea bags, 6.00 short: 100 bags are out of stock, 200 bags add 5.00,
-- not enough: no next size
SELECT count(*) AS next_sizes FROM upsell.cart_offers('{5}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';
-- 250 g of coffee, 5.00 short: the next size (500 g) adds 3.00, too
-- little; a dearer size is no next size: none
SELECT count(*) AS next_sizes FROM upsell.cart_offers('{1}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';
-- with both lines, 12.00 reached: no gap, no filler
SELECT count(*) AS gap_fillers FROM upsell.cart_offers('{2, 5}') WHERE offer_type = 'gap_filler';
DELETE FROM upsell.thresholds;
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 8.50, 'free shipping');
-- 4.50 short: past the 100 bags out of stock, 200 bags add 5.00
SELECT offer_type, product_ids, reason FROM upsell.cart_offers('{5}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';
DELETE FROM upsell.thresholds;
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 25, 'free shipping');
-- 500 g and 1 kg, 6.00 short: the 500 g's next size is in the cart
-- already; the 1 kg's, 2 kg, adds 9.00
SELECT offer_type, product_ids, reason FROM upsell.cart_offers('{2, 3}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';
DELETE FROM upsell.thresholds;
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 10, 'free shipping');
-- the merchant excludes the 1 kg: no next size for the 500 g
INSERT INTO upsell.exclusions (product_id) VALUES (3);
SELECT count(*) AS next_sizes FROM upsell.cart_offers('{2}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';

DELETE FROM upsell.exclusions;

-- the next size of a line with volume tiers: the swap adds what the cart
-- will pay less what it pays now.  3 x 500 g at the tier's 7.50 (22.50),
-- 3.00 from 25.50: 2 units left pay 8.00 each, so the 1 kg instead of one
-- adds 4.50 (the list prices' difference read "adds 3.00 ... (0.00 over)")
INSERT INTO upsell.volume_tiers (product_id, min_quantity, unit_price) VALUES (2, 3, 7.50);
DELETE FROM upsell.thresholds;
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 25.50, 'free shipping');
SELECT product_ids, reason FROM upsell.cart_offers('{2}', '{3}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';
SELECT reached, gap FROM upsell.threshold_gap('{2,3}'::bigint[], '{2,1}'::int[]);
-- the 1 kg on sale at 9.00 from 1 unit: the swap adds 2.50, short of 3.00: none
INSERT INTO upsell.volume_tiers (product_id, min_quantity, unit_price) VALUES (3, 1, 9.00);
SELECT count(*) AS next_sizes FROM upsell.cart_offers('{2}', '{3}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';
SELECT reached, gap FROM upsell.threshold_gap('{2,3}'::bigint[], '{2,1}'::int[]);
-- tiers that rise with quantity (7.00 from 3, 7.50 from 5): 5 x 500 g
-- (37.50) are 3.00 from 40.50, and 4 left at 7.00 with the 1 kg make 39.00:
-- none (it read "adds 3.00 to reach 40.50 (0.00 over)")
DELETE FROM upsell.volume_tiers;
INSERT INTO upsell.volume_tiers (product_id, min_quantity, unit_price) VALUES (2, 3, 7.00), (2, 5, 7.50);
UPDATE upsell.thresholds SET amount = 40.50;
SELECT count(*) AS next_sizes FROM upsell.cart_offers('{2}', '{5}') o
WHERE o.offer_type = 'gap_filler' AND o.reason LIKE 'the next size%';
SELECT reached, gap FROM upsell.threshold_gap('{2,3}'::bigint[], '{4,1}'::int[]);
DELETE FROM upsell.volume_tiers;

SET client_min_messages = warning;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA ns CASCADE;
RESET client_min_messages;
