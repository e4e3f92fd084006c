-- upsell.thresholds and upsell.threshold_gap: the gap to each active
-- threshold, from a cart total or from a cart priced from the catalog.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS th CASCADE;
CREATE SCHEMA th;
CREATE TABLE th.products (id int PRIMARY KEY, price numeric(10, 2), stock int);
INSERT INTO th.products VALUES
	(1, 12.50, 5), (2, 20.00, 0), (3, 7.25, 3), (4, NULL, 1), (5, 49.99, 2);
CREATE TABLE th.lines (order_id int, product_id int);
INSERT INTO th.lines VALUES (1, 1), (1, 3), (2, 1), (2, 3), (3, 5);
SELECT upsell.register_orders('th.lines', 'order_id', 'product_id');
SELECT upsell.register_products('th.products', 'id', price => 'price', in_stock => 'stock');
CALL upsell.refresh();
RESET client_min_messages;
\set SHOW_CONTEXT never

-- the config table is kept by pg_dump
SELECT 'upsell.thresholds'::regclass = ANY (extconfig) AS dumped
FROM pg_extension WHERE extname = 'upsell';

INSERT INTO upsell.thresholds (kind, amount, currency, reward, active_from, active_to) VALUES
	('free_shipping', 50, NULL, 'free shipping', NULL, NULL),
	('discount', 125, NULL, '15% off', NULL, NULL),
	('gift', 80, NULL, 'free tote bag', '2026-01-01', '2026-02-01'),
	('other', 30, NULL, 'expired promo', '2020-01-01', '2020-12-31');
-- another tenant's threshold never shows
INSERT INTO upsell.thresholds (tenant_id, kind, amount) VALUES (7, 'gift', 10);

-- the next unreached threshold first; the gift is not active now
SELECT kind, amount, reward, reached, gap, next FROM upsell.threshold_gap(42.50, at => '2026-03-01');
-- in January the gift is active and next after free shipping is reached
SELECT kind, amount, reached, gap, next
FROM upsell.threshold_gap(60, at => '2026-01-15 12:00');
-- active_to is exclusive, active_from inclusive
SELECT count(*) FROM upsell.threshold_gap(0, at => '2026-02-01');
SELECT count(*) FROM upsell.threshold_gap(0, at => '2026-01-01');
-- exactly on the amount counts as reached; past every threshold: all reached, no next
SELECT amount, reached, gap, next FROM upsell.threshold_gap(50, at => '2026-03-01');
SELECT bool_and(reached) AS all_reached, bool_or(next) AS any_next
FROM upsell.threshold_gap(1000, at => '2026-03-01');

-- a cart worth 1e15 or more (2000 units at 5e11, at 5e16) reaches every
-- threshold, which are below 1e15, by the arithmetic of every cart; the
-- same product at its price, 2 x 49.99, does not
UPDATE upsell.product_model SET price = 5e11 WHERE tenant_id = 0 AND product_id = 5;
SELECT amount, reached, gap, next FROM upsell.threshold_gap(ARRAY[5], ARRAY[2000], at => '2026-03-01');
UPDATE upsell.product_model SET price = 5e16 WHERE tenant_id = 0 AND product_id = 5;
SELECT amount, reached, gap, next FROM upsell.threshold_gap(ARRAY[5], ARRAY[2000], at => '2026-03-01');
SELECT count(*) AS gap_fillers FROM upsell.gap_fillers(ARRAY[5], ARRAY[2000]);
UPDATE upsell.product_model SET price = 49.99 WHERE tenant_id = 0 AND product_id = 5;
SELECT amount, reached, gap, next FROM upsell.threshold_gap(ARRAY[5], ARRAY[2], at => '2026-03-01');

-- a cart priced from the catalog: 2 x 12.50 + 7.25 = 32.25 (out-of-stock 2 still has a price)
SELECT amount, gap, gap = 50 - (2 * 12.50 + 7.25) AS checks
FROM upsell.threshold_gap(ARRAY[1, 3], ARRAY[2, 1], at => '2026-03-01') WHERE next;
-- quantities NULL: one of each; repeated products add up; empty and NULL carts are 0
SELECT gap FROM upsell.threshold_gap(ARRAY[1, 2, 1], NULL, at => '2026-03-01') WHERE next;
SELECT gap FROM upsell.threshold_gap('{}'::bigint[], '{}'::int[], at => '2026-03-01') WHERE next;
SELECT gap FROM upsell.threshold_gap(NULL::bigint[], NULL::int[], at => '2026-03-01') WHERE next;

-- currencies: thresholds without one apply to every cart
INSERT INTO upsell.thresholds (kind, amount, currency, reward) VALUES
	('free_shipping', 45, 'EUR', 'livraison gratuite'), ('free_shipping', 40, 'GBP', 'free delivery');
SELECT amount, reward, next FROM upsell.threshold_gap(42.50, currency => 'EUR', at => '2026-03-01');
SELECT amount, reward, next FROM upsell.threshold_gap(42.50, currency => 'GBP', at => '2026-03-01');

-- bad input
SELECT * FROM upsell.threshold_gap(42.50, at => '2026-03-01');	-- several currencies
SELECT * FROM upsell.threshold_gap(NULL::numeric);
SELECT * FROM upsell.threshold_gap(-1);
SELECT * FROM upsell.threshold_gap(10, at => NULL);
SELECT * FROM upsell.threshold_gap(10, currency => 'eur');
SELECT * FROM upsell.threshold_gap(10, tenant_id => 7);
DELETE FROM upsell.thresholds WHERE currency = 'GBP';
SELECT kind, amount, reward, reached, gap, next
FROM upsell.threshold_gap(10, currency => 'USD', at => '2026-03-01');	-- thresholds without currency apply
DELETE FROM upsell.thresholds WHERE currency IS NULL AND tenant_id = 0;
SELECT * FROM upsell.threshold_gap(10, currency => 'USD');	-- only EUR thresholds: none for this cart
SELECT count(*) AS gap_fillers_in_usd FROM upsell.gap_fillers(ARRAY[1], currency => 'USD');
SELECT * FROM upsell.threshold_gap(ARRAY[1, 3], ARRAY[1]);
SELECT * FROM upsell.threshold_gap(ARRAY[1, 3], ARRAY[1, 0]);
SELECT * FROM upsell.threshold_gap(ARRAY[1, 3], ARRAY[1, -2]);
SELECT * FROM upsell.threshold_gap(ARRAY[1, 3], ARRAY[1, NULL]);
SELECT * FROM upsell.threshold_gap(ARRAY[1, NULL], NULL);
-- incomplete data is not bad input: a product unknown as of the last
-- refresh, or without a price, leaves the cart's value (reached, gap) unknown
SELECT kind, amount, reward, reached, gap, next FROM upsell.threshold_gap(ARRAY[1, 999], NULL);
SELECT kind, amount, reward, reached, gap, next FROM upsell.threshold_gap(ARRAY[4], NULL);
SELECT * FROM upsell.threshold_gap(ARRAY[[1, 3]], NULL);
\set VERBOSITY terse
INSERT INTO upsell.thresholds (kind, amount) VALUES ('shipping', 10);
INSERT INTO upsell.thresholds (kind, amount) VALUES ('gift', -10);
INSERT INTO upsell.thresholds (kind, amount, currency) VALUES ('gift', 10, 'euro');
INSERT INTO upsell.thresholds (kind, amount, active_from, active_to) VALUES ('gift', 10, '2026-02-01', '2026-01-01');
\set VERBOSITY default
-- no thresholds at all: no rows
DELETE FROM upsell.thresholds;
SELECT count(*) FROM upsell.threshold_gap(10);

SET client_min_messages = warning;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.exclusions;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA th CASCADE;
