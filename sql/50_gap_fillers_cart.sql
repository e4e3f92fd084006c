-- The cart's gap fillers when the best ones all hold the cart's best
-- complement: a product is offered once, as the complement, and the merge
-- needs the gap fillers after them.  Cart {1} = 18.00, 2.00 from free
-- shipping at 20: product 2 (1.00, bought with 1 in 5 of its 7 orders) is
-- the best complement; {2, x} for the ten 1.00 products x are the best gap
-- fillers, then pairs of two x.
SET client_min_messages = warning;
CREATE SCHEMA gc;
CREATE TABLE gc.lines (order_id int, product_id int, customer_id int, ordered_at timestamptz, quantity int, unit_price numeric);
CREATE TABLE gc.products (product_id int PRIMARY KEY, price numeric, category text, in_stock bool DEFAULT true);
INSERT INTO gc.products VALUES (1, 18, 'a'), (2, 1, 'b'), (3, 4, 'c');
INSERT INTO gc.products SELECT g, 1, 'x' || g FROM generate_series(10, 19) g;
INSERT INTO gc.lines SELECT g, 1, g, '2026-11-01', 1, 18 FROM generate_series(1, 7) g;
INSERT INTO gc.lines SELECT g, 2, g, '2026-11-01', 1, 1 FROM generate_series(1, 5) g;
INSERT INTO gc.lines SELECT g, 3, g, '2026-11-01', 1, 4 FROM generate_series(6, 7) g;
INSERT INTO gc.lines SELECT 100 + g * 10 + k, g, 100 + g, '2026-11-01', 1, 1 FROM generate_series(10, 19) g, generate_series(1, 3) k;
SELECT upsell.register_orders('gc.lines', 'order_id', 'product_id', 'customer_id', 'ordered_at', 'quantity', 'unit_price');
SELECT upsell.register_products('gc.products', 'product_id', 'price', 'category', in_stock => 'in_stock');
CALL upsell.refresh();
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 20, 'free shipping');
RESET client_min_messages;

-- gap_fillers: the ten pairs with product 2 first
SELECT count(*) FILTER (WHERE product_ids @> '{2}') AS with_2, min(rank) FILTER (WHERE NOT product_ids @> '{2}') AS first_without_2
FROM upsell.gap_fillers('{1}', k => 12);
-- the cart offers product 2 as a complement, and a gap filler of two of the
-- 1.00 products that closes the gap exactly
SELECT offer_type, product_ids, reason FROM upsell.cart_offers('{1}') WHERE offer_type = 'gap_filler';
SELECT count(*) FILTER (WHERE offer_type = 'complement' AND product_ids = '{2}') AS complement_2
FROM upsell.cart_offers('{1}');
-- the merchant's "never 11 next to 10": not in one offer either (the pair
-- would put them in one cart), in the search and in the cart; nor in a
-- pinned offer of both
INSERT INTO upsell.exclusions (product_id, with_product_id) VALUES (11, 10);
SELECT count(*) AS with_10_and_11 FROM upsell.gap_fillers('{1}', k => 100) WHERE product_ids @> '{10,11}';
SELECT offer_type, product_ids, reason FROM upsell.cart_offers('{1}') WHERE offer_type = 'gap_filler';
INSERT INTO upsell.offers (stage, product_ids, reason) VALUES ('cart', '{12,13}', 'pair'), ('cart', '{10,11}', 'never');
SELECT product_ids, reason FROM upsell.cart_offers('{2}') WHERE offer_type = 'pinned';
DELETE FROM upsell.offers;
DELETE FROM upsell.exclusions;

-- a price below the cent never reads as closing a gap it does not: product
-- 3 at 1.995 is short of the 2.00 gap (rounded to 2.00 it was offered alone,
-- "adds 2.00 to reach 20 (0.00 over)"); at 2.005 it closes it
SET client_min_messages = warning;
UPDATE gc.products SET price = 1.995 WHERE product_id = 3;
CALL upsell.refresh();
RESET client_min_messages;
SELECT product_ids, added FROM upsell.gap_fillers('{1}', k => 12) WHERE product_ids @> '{3}';
SELECT product_ids, reason FROM upsell.cart_offers('{1}') WHERE offer_type = 'gap_filler' AND product_ids @> '{3}';
SET client_min_messages = warning;
UPDATE gc.products SET price = 2.005 WHERE product_id = 3;
CALL upsell.refresh();
RESET client_min_messages;
SELECT product_ids, added, new_total >= threshold AS reaches FROM upsell.gap_fillers('{1}', k => 12) WHERE product_ids @> '{3}';
-- nor does a quantity step: 2 units at 3.333 (6.666) are 10.000 from
-- 16.666, which 3 more (9.999) leave open (at 3.34 a unit, rounded up, it
-- read "add 3 more to reach 16.666 (0.02 over)"); 9.999 from 16.665 they close
SET client_min_messages = warning;
UPDATE gc.products SET price = 3.333 WHERE product_id = 3;
CALL upsell.refresh();
RESET client_min_messages;
UPDATE upsell.thresholds SET amount = 16.666;
SELECT product_ids, reason FROM upsell.cart_offers('{3}', '{2}') WHERE offer_type = 'gap_filler' AND product_ids = '{3}';
UPDATE upsell.thresholds SET amount = 16.665;
SELECT product_ids, reason FROM upsell.cart_offers('{3}', '{2}') WHERE offer_type = 'gap_filler' AND product_ids = '{3}';

-- a gap filler's "over" is measured from the exact gap: 2 units at 3.333
-- (6.666) are 0.834 from 7.50, and a 1.00 product makes 7.666, 0.166 over,
-- 0.17 to the cent (from the gap rounded up to 0.84 it read "0.16 over")
UPDATE upsell.thresholds SET amount = 7.50;
SELECT DISTINCT reason FROM upsell.cart_offers('{3}', '{2}') WHERE offer_type = 'gap_filler' AND reason LIKE 'adds 1.00 %';
SELECT DISTINCT added, overshoot FROM upsell.gap_fillers('{3}', '{2}', k => 3, max_items => 1);

-- a product on sale (a volume tier from 1 unit: 25% off its category) is
-- a gap filler at its sale price, 0.75 for product 10: cart {1} = 18.00 is
-- 2.00 from 20, which product 10 and another 1.00 product leave open (at
-- the list prices, "adds 2.00 to reach 20 (0.00 over)"), 1.75 from 19.75,
-- which they close exactly; every claim is checked with threshold_gap
INSERT INTO upsell.volume_tiers (category, min_quantity, percent_off) VALUES ('x10', 1, 25);
UPDATE upsell.thresholds SET amount = 20;
SELECT f.product_ids, f.added, f.new_total, g.reached
FROM upsell.gap_fillers('{1}', k => 100) f, upsell.threshold_gap('{1}' || f.product_ids, NULL) g
WHERE f.product_ids @> '{10}' ORDER BY f.rank;
SELECT o.product_ids, o.reason, g.reached
FROM upsell.cart_offers('{1}') o, upsell.threshold_gap('{1}' || o.product_ids, NULL) g
WHERE o.offer_type = 'gap_filler' AND o.product_ids @> '{10}';
UPDATE upsell.thresholds SET amount = 19.75;
SELECT f.product_ids, f.added, f.new_total, f.overshoot, g.reached
FROM upsell.gap_fillers('{1}', k => 100) f, upsell.threshold_gap('{1}' || f.product_ids, NULL) g
WHERE f.product_ids @> '{10}' ORDER BY f.rank LIMIT 3;
SELECT o.product_ids, o.reason, g.reached
FROM upsell.cart_offers('{1}') o, upsell.threshold_gap('{1}' || o.product_ids, NULL) g
WHERE o.offer_type = 'gap_filler' AND o.product_ids @> '{10}';
DELETE FROM upsell.volume_tiers;

DELETE FROM upsell.thresholds;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
SET client_min_messages = warning;
DROP SCHEMA gc CASCADE;
RESET client_min_messages;
