-- upsell.metrics: the shop's figures per period, on crafted orders with
-- answers computed by hand.
SET TimeZone = 'UTC';
SET extra_float_digits = 0;
CREATE SCHEMA exp_met;
CREATE TABLE exp_met.lines (order_id int, product_id int, customer_id int,
	ordered_at timestamptz, quantity int, unit_price numeric(10,2));
-- January: order 1 (customer 1): 20 + 2 x 5 = 30, 3 items, 2 products
--          order 2 (customer 2): 20
--          order 3 (customer 1 again): 50
-- February: order 4 (customer 2 again): 20 + 10 = 30, 2 products
--           order 5 (customer 3, new): 4 x 5 = 20
--           order 6 (no customer): 20
INSERT INTO exp_met.lines VALUES
	(1, 10, 1, '2026-01-02 10:00', 1, 20), (1, 11, 1, '2026-01-02 10:00', 2, 5),
	(2, 10, 2, '2026-01-05 10:00', 1, 20),
	(3, 12, 1, '2026-01-20 10:00', 1, 50),
	(4, 10, 2, '2026-02-03 10:00', 1, 20), (4, 13, 2, '2026-02-03 10:00', 1, 10),
	(5, 11, 3, '2026-02-10 10:00', 4, 5),
	(6, 10, NULL, '2026-02-11 10:00', 1, 20);
SELECT upsell.register_orders('exp_met.lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');
-- offers: customer 1 added product 11 from a complement offer the day before
-- order 1 (attributed: 10); customer 2 added product 13 from a bundle offer on
-- Jan 30 and from an upgrade offer on Feb 1 (last touch: upgrade, 10);
-- customer 3 added product 11 on Jan 1 (outside the 7-day window of order 5);
-- customer 1 clicked product 12 (a click is not an add).
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event, occurred_at) VALUES
	('1', 'complement', 11, 'add', '2026-01-01 10:00'),
	('2', 'bundle', 13, 'add', '2026-01-30 10:00'),
	('2', 'upgrade', 13, 'add', '2026-02-01 10:00'),
	('3', 'complement', 11, 'add', '2026-01-01 10:00'),
	('1', 'complement', 12, 'click', '2026-01-19 10:00');

-- By hand, January: 3 orders, revenue 100, AOV 33.33, items 5/3 = 1.67,
--   multi-product 1/3; customers 1 and 2, of whom 1 came back (order 3): 0.5;
--   new customers 1 and 2, who spent 80 and 50 in all: CLV 65;
--   1 order with an attributed offer (complement, 10): attach 1/3.
-- February: 3 orders, revenue 70, AOV 23.33, items 7/3 = 2.33, multi 1/3;
--   customers 2 and 3 (order 6 has none), returning: customer 2: 0.5;
--   new: customer 3 (CLV 20); upgrade attributed 10 to order 4: attach 1/3.
SELECT period_start, offer_type, orders, revenue, aov, items_per_order,
	   round(multi_item_share::numeric, 4) AS multi, customers,
	   round(repeat_customer_rate::numeric, 4) AS returning, new_customers, cohort_clv,
	   attached_orders, round(attach_rate::numeric, 4) AS attach, attributed_revenue
FROM upsell.metrics('month');
-- all time: 6 orders, 170; customers 1, 2, 3 of whom 1 and 2 came back: 2/3; CLV 150/3 = 50
SELECT period_start, offer_type, orders, revenue, aov, items_per_order,
	   round(multi_item_share::numeric, 4) AS multi, customers,
	   round(repeat_customer_rate::numeric, 4) AS returning, new_customers, cohort_clv,
	   attached_orders, round(attach_rate::numeric, 4) AS attach, attributed_revenue
FROM upsell.metrics('all');
-- the headline figures from plain SQL, month by month
WITH o AS (SELECT order_id, date_trunc('month', min(ordered_at)) AS m, sum(quantity * unit_price) AS revenue,
				  sum(quantity) AS items
		   FROM exp_met.lines GROUP BY order_id)
SELECT o.m, count(*) = x.orders AS orders_agree, sum(o.revenue) = x.revenue AS revenue_agrees,
	   round(avg(o.revenue), 2) = x.aov AS aov_agrees, round(avg(o.items), 2) = x.items_per_order AS items_agree
FROM o JOIN upsell.metrics('month') x ON x.period_start = o.m AND x.offer_type IS NULL
GROUP BY o.m, x.orders, x.revenue, x.aov, x.items_per_order ORDER BY o.m;
-- a longer attribution window reaches customer 3's add of Jan 1 (order 5 on Feb 10)
SELECT period_start, offer_type, attached_orders, attributed_revenue
FROM upsell.metrics('month', attribution_window => '60 days') ORDER BY 1, 2 NULLS FIRST;
-- the attribution window by the shop's clock (UTC here), whoever reads:
-- customer 9 adds product 11 on 2026-03-05 12:00 UTC and orders it 167.5
-- hours later, within 7 days of UTC; a session in New York (where
-- 2026-03-08 has 23 hours) did not attribute it until 1.9
INSERT INTO exp_met.lines VALUES (9, 11, 9, '2026-03-12 11:30', 1, 5);
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event, occurred_at)
VALUES ('9', 'restock', 11, 'add', '2026-03-05 12:00');
SET TimeZone = 'America/New_York';
SELECT offer_type, attached_orders, attributed_revenue FROM upsell.metrics('all') WHERE offer_type = 'restock';
SET TimeZone = 'UTC';
SELECT offer_type, attached_orders, attributed_revenue FROM upsell.metrics('all') WHERE offer_type = 'restock';
DELETE FROM exp_met.lines WHERE order_id = 9;
DELETE FROM upsell.offer_events WHERE offer_type = 'restock';
-- weeks and days work the same way
SELECT period_start, orders, revenue FROM upsell.metrics('week') WHERE offer_type IS NULL;
SELECT count(*) AS days_with_orders FROM upsell.metrics('day') WHERE offer_type IS NULL;
-- March: customer 4's two orders placed at one instant: the second (by
-- order id) is a returning one, so March's one customer returned: 1.0
INSERT INTO exp_met.lines VALUES (7, 10, 4, '2026-03-05 10:00', 1, 20), (8, 11, 4, '2026-03-05 10:00', 1, 5);
SELECT period_start, orders, customers, round(repeat_customer_rate::numeric, 4) AS returning, new_customers
FROM upsell.metrics('month') WHERE period_start = '2026-03-01' AND offer_type IS NULL;
DELETE FROM exp_met.lines WHERE order_id IN (7, 8);

-- bad input
SELECT * FROM upsell.metrics('fortnight');
SELECT * FROM upsell.metrics(NULL);
SELECT * FROM upsell.metrics('month', 5);
SELECT * FROM upsell.metrics('month', attribution_window => '-1 day');
\set VERBOSITY terse
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event) VALUES ('1', 'teleport', 11, 'add');
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event) VALUES ('1', 'complement', 11, 'purchase');
\set VERBOSITY default

-- per tenant, and without a customer column
CREATE TABLE exp_met.shops (shop int, order_id int, product_id int, at timestamptz, price numeric);
INSERT INTO exp_met.shops VALUES (1, 1, 10, '2026-03-01', 10), (1, 1, 11, '2026-03-01', 5),
	(2, 1, 10, '2026-03-02', 99);
SELECT upsell.register_orders('exp_met.shops', 'order_id', 'product_id', ordered_at => 'at',
	unit_price => 'price', tenant_id => 'shop');
SELECT period_start, orders, revenue, aov, items_per_order, multi_item_share, customers, cohort_clv
FROM upsell.metrics('month', 1);
SELECT period_start, orders, revenue, aov FROM upsell.metrics('month', 2);
SELECT * FROM upsell.metrics('month');

DELETE FROM upsell.offer_events;
DELETE FROM upsell.order_source;
DROP SCHEMA exp_met CASCADE;
