-- Order times of a date column are days of the shop: their gaps are whole
-- days, whatever daylight saving time makes of the instants.  A Berlin shop
-- (registered from Berlin); customer 1 buys coffee on March 1 and April 1
-- 2024 (31 days; summer time from March 31): due on May 2, not on May 1 at
-- 23:00 (until 1.8 the gap was 30.958 days).  Customer 2's gap (January 10
-- to February 10) crosses no change.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE SCHEMA dst;
CREATE TABLE dst.products (id int PRIMARY KEY, category text, price numeric);
INSERT INTO dst.products VALUES (1, 'coffee', 10), (2, 'tea', 5);
CREATE TABLE dst.orders (order_id int, customer_id int, product_id int, day date);
INSERT INTO dst.orders VALUES (1, 1, 1, '2024-03-01'), (2, 1, 1, '2024-04-01'),
	(3, 2, 1, '2024-01-10'), (4, 2, 1, '2024-02-10'), (5, 3, 2, '2024-01-10');
INSERT INTO upsell.consumables (category, consumable) VALUES ('coffee', true);
SET TimeZone = 'Europe/Berlin';
SELECT upsell.register_orders('dst.orders', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'day');
SELECT upsell.register_products('dst.products', 'id', price => 'price', category => 'category');
CALL upsell.refresh();
RESET client_min_messages;

SELECT customer_id, product_id, purchases, median_gap_days, next_due
FROM upsell.purchase_interval_model ORDER BY 1, 2;
SELECT population_interval_days FROM upsell.product_interval_model WHERE product_id = 1;
SELECT customer_id, next_due FROM upsell.replenishment_due('2024-05-02', '1 day');
SELECT count(*) AS due_a_day_early FROM upsell.replenishment_due('2024-05-01', '1 day') WHERE customer_id = 1;
-- the same instant and the same day for a reader in New York (until 1.8
-- its zone counted the days, an hour off across a change of summer time)
SET TimeZone = 'America/New_York';
SELECT customer_id, next_due AT TIME ZONE 'Europe/Berlin' AS next_due_in_berlin
FROM upsell.replenishment_due('2024-05-02', '1 day');

RESET TimeZone;
DELETE FROM upsell.consumables;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
SET client_min_messages = warning;
DROP SCHEMA dst CASCADE;
