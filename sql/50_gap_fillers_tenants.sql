-- Tenants never mix: each shop's thresholds, prices and stock only.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS gt CASCADE;
CREATE SCHEMA gt;
CREATE TABLE gt.products (shop int, id int, price numeric(10, 2), in_stock boolean, PRIMARY KEY (shop, id));
INSERT INTO gt.products VALUES
	(1, 1, 10.00, true), (1, 2, 15.00, true), (1, 3, 40.00, true),
	(2, 1, 30.00, true), (2, 2, 15.00, false), (2, 3, 5.00, true), (2, 4, 6.00, true);
CREATE TABLE gt.lines (shop int, order_id int, product_id int);
INSERT INTO gt.lines VALUES (1, 1, 1), (1, 1, 2), (2, 1, 1), (2, 1, 3);
SELECT upsell.register_orders('gt.lines', 'order_id', 'product_id', tenant_id => 'shop');
SELECT upsell.register_products('gt.products', 'id', price => 'price', in_stock => 'in_stock', tenant_id => 'shop');
CALL upsell.refresh();
INSERT INTO upsell.thresholds (tenant_id, kind, amount, reward) VALUES
	(1, 'free_shipping', 25, 'shop 1 shipping'), (2, 'free_shipping', 40, 'shop 2 shipping');
RESET client_min_messages;
\set SHOW_CONTEXT never

SELECT tenant_id, prices, product_ids FROM upsell.threshold_candidates ORDER BY tenant_id;
-- shop 1: cart 1 (10.00), gap 15.00 to 25: product 2 exactly
SELECT reward, gap FROM upsell.threshold_gap(ARRAY[1], NULL, tenant_id => 1);
SELECT rank, product_ids, added, overshoot FROM upsell.gap_fillers(ARRAY[1], tenant_id => 1, k => 2);
-- shop 2: cart 1 (30.00), gap 10.00 to 40: 2 is out of stock there; 5 + 6 = 11.00
SELECT reward, gap FROM upsell.threshold_gap(ARRAY[1], NULL, tenant_id => 2);
SELECT rank, product_ids, added, overshoot FROM upsell.gap_fillers(ARRAY[1], tenant_id => 2, k => 2);
-- the tenant is required, and an unknown tenant has no thresholds
SELECT * FROM upsell.gap_fillers(ARRAY[1]);
SELECT count(*) FROM upsell.gap_fillers('{}', tenant_id => 3);

-- stage settings are the shop's own: tenant 0 is a shop like the others,
-- not a default for them (until 1.7 its row applied to every shop without one)
SELECT count(*) AS shop_2_cart_offers FROM upsell.cart_offers(ARRAY[1], tenant_id => 2);
INSERT INTO upsell.stage_settings (tenant_id, stage, max_offers) VALUES (0, 'cart', 1);
SELECT count(*) AS shop_2_with_shop_0_settings FROM upsell.cart_offers(ARRAY[1], tenant_id => 2);
INSERT INTO upsell.stage_settings (tenant_id, stage, max_offers) VALUES (2, 'cart', 1);
SELECT count(*) AS shop_2_with_its_own FROM upsell.cart_offers(ARRAY[1], tenant_id => 2);


-- a refresh of one shop keeps what every backend caches of the others (the
-- merchant's rules, the products' facts) and drops that shop's: the pages
-- of shop 2 read no rule after shop 1 is refreshed, shop 1's read theirs
-- again (until 1.12 any tenant's refresh emptied every tenant's caches).
-- The reads of one call: the transaction's counts after it less those
-- before it (PostgreSQL 15 shows the counts of earlier transactions too
-- until it reports them).
CREATE TEMP VIEW cache_reads AS
SELECT coalesce(sum(s.seq_scan + coalesce(s.idx_scan, 0)) FILTER (
			WHERE s.relname IN ('stage_settings', 'offers', 'exclusions', 'thresholds',
								'threshold_candidates', 'volume_tiers')), 0) AS rules_reads,
	   coalesce(sum(s.seq_scan + coalesce(s.idx_scan, 0)) FILTER (
			WHERE s.relname = 'product_interval_model'), 0) AS facts_reads
FROM pg_stat_xact_user_tables s WHERE s.schemaname = 'upsell';
CREATE FUNCTION pg_temp.page_reads(shop int, OUT offers bigint, OUT rules_reads bigint, OUT facts_reads bigint)
LANGUAGE plpgsql AS $$
DECLARE
	before record;
BEGIN
	SELECT * INTO before FROM cache_reads;
	SELECT count(*) INTO offers FROM upsell.post_purchase_offers(ARRAY[3], 7, shop);
	SELECT r.rules_reads - before.rules_reads, r.facts_reads - before.facts_reads
	INTO rules_reads, facts_reads FROM cache_reads r;
END
$$;
SELECT shop, (pg_temp.page_reads(shop)).offers FROM (VALUES (1), (2)) s(shop) ORDER BY shop;
-- warm: a second call reads neither
SELECT shop, (pg_temp.page_reads(shop)).* FROM (VALUES (1), (2)) s(shop) ORDER BY shop;
SET client_min_messages = warning;
CALL upsell.refresh(tenant_id => 1);
RESET client_min_messages;
SELECT (pg_temp.page_reads(2)).*;
SELECT offers, rules_reads > 0 AS rules_read_again, facts_reads > 0 AS facts_read_again
FROM pg_temp.page_reads(1);
-- every tenant refreshed: both read again
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT offers, rules_reads > 0 AS rules_read_again, facts_reads > 0 AS facts_read_again
FROM pg_temp.page_reads(2);
-- a rule edited (of any shop) empties the rules of every shop, not the
-- products' facts
SELECT (pg_temp.page_reads(2)).rules_reads AS warm_rules_reads;
INSERT INTO upsell.exclusions (tenant_id, product_id) VALUES (1, 3);
SELECT offers, rules_reads > 0 AS rules_read_again, facts_reads > 0 AS facts_read_again
FROM pg_temp.page_reads(2);
-- the version of each tenant's models, drawn by its refresh, and the
-- models' latest after it
SELECT count(*) AS tenants, count(DISTINCT config_version) AS versions,
	   max(config_version) < (SELECT config_version FROM upsell.model_state) AS latest_drawn_after
FROM upsell.model_versions WHERE tenant_id IN (1, 2);

SET client_min_messages = warning;
DELETE FROM upsell.stage_settings;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.exclusions;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA gt CASCADE;
