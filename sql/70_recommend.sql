-- recommend_for_customer and email_sequence on the crafted coffee shop
-- (test/data/post_purchase.sql).  Pair scores come from the pair model:
-- machine(3) -> frother(5) 0.20765..., coffee(1) -> filters(2) 0.04325...
\set VERBOSITY terse
\i test/data/post_purchase.sql

-- Customer 100 owns coffee (consumable, due 2024-04-30) and a machine (durable).
-- On Apr 20 the coffee is not due within 7 days: neither owned product is
-- offered; the complements are decayed by the age of the purchase they come from.
SELECT rank, product_id, round(score::numeric, 6) AS score, reason, because
FROM upsell.recommend_for_customer(100, 4, at => '2024-04-20');
-- by hand: frother = 0.5^(110/90) x score(3->5), filters = 0.5^(20/90) x score(1->2)
SELECT round((0.5 ^ (110 / 90.0) * p35.score)::numeric, 6) AS frother,
	   round((0.5 ^ (20 / 90.0) * p12.score)::numeric, 6) AS filters
FROM upsell.pair_model p35, upsell.pair_model p12
WHERE (p35.product_id, p35.other_id) = (3, 5) AND (p12.product_id, p12.other_id) = (1, 2);
-- a longer half-life keeps old purchases heavier: the frother's score grows
SELECT round(score::numeric, 6) AS frother_half_life_1y
FROM upsell.recommend_for_customer(100, 4, at => '2024-04-20', half_life => '365 days')
WHERE product_id = 5;
-- On Apr 25 the coffee is due (Apr 30 < May 2): offered again, with the reason
SELECT rank, product_id, round(score::numeric, 6) AS score, reason, because
FROM upsell.recommend_for_customer(100, 4, at => '2024-04-25');
-- the request reads the customer's histories once (until 1.9 twice) and
-- applies the consumable rule inlined (until 1.9 the scalar _consumable,
-- planned anew by every request); since 1.12 it is C and reads what the
-- customer owns as _customer_owned does, without calling it, and the shop's
-- zone by _shop_zone's query (until 1.12 _shop_zone twice: its own and
-- _customer_owned's)
SET track_functions = 'all';
-- (counted within one transaction: the counts of earlier ones may not be
-- flushed yet)
BEGIN;
SELECT s.seq_scan + s.idx_scan AS history_reads_before
FROM pg_stat_xact_user_tables s WHERE s.relid = 'upsell.purchase_history_model'::regclass \gset
CREATE TEMP TABLE calls_before AS
SELECT f.funcid, f.calls FROM pg_stat_xact_user_functions f WHERE f.schemaname = 'upsell';
SELECT count(*) AS offers FROM upsell.recommend_for_customer(100, 4, at => '2024-04-25');
SELECT s.seq_scan + s.idx_scan - :history_reads_before AS history_reads
FROM pg_stat_xact_user_tables s WHERE s.relid = 'upsell.purchase_history_model'::regclass;
SELECT f.funcname, f.calls - coalesce(b.calls, 0) AS calls
FROM pg_stat_xact_user_functions f LEFT JOIN calls_before b USING (funcid)
WHERE f.schemaname = 'upsell' AND f.funcname IN ('_consumable', '_consumable_rule', '_shop_zone', '_customer_owned')
  AND f.calls > coalesce(b.calls, 0)
ORDER BY 1;
ROLLBACK;
RESET track_functions;
-- the dates of the reasons are the shop's days, whoever asks (until 1.8 a
-- session in Honolulu read "last on 2024-03-30")
SET TimeZone = 'Pacific/Honolulu';
SELECT reason FROM upsell.recommend_for_customer(100, 1, at => '2024-04-25');
SELECT reason FROM upsell.email_sequence(100, 4, at => '2024-04-25') WHERE reason LIKE '%on 2024%';
SET TimeZone = 'UTC';
-- the durable machine is never offered to its owner, however long k is
SELECT count(*) AS offers, count(*) FILTER (WHERE product_id = 3) AS machine,
	   count(*) FILTER (WHERE product_id = 8) AS out_of_stock_mug
FROM upsell.recommend_for_customer(100, 100, at => '2024-04-25');
-- a merchant rule making the machine consumable does not help: nobody bought
-- it twice, so no interval says when it is due again
INSERT INTO upsell.consumables (product_id, consumable) VALUES (3, true);
SELECT count(*) FILTER (WHERE product_id = 3) AS machine
FROM upsell.recommend_for_customer(100, 100, at => '2024-04-25');
-- filters: customer 101 bought them Jan 10 and Mar 10 (due May 9), but one
-- repeat buyer does not make them consumable by the data; the merchant's rule does
SELECT product_id, reason FROM upsell.recommend_for_customer(101, 100, at => '2024-05-05') WHERE product_id = 2;
INSERT INTO upsell.consumables (product_id, consumable) VALUES (2, true);
SELECT product_id, round(score::numeric, 4) AS score, reason
FROM upsell.recommend_for_customer(101, 100, at => '2024-05-05') WHERE product_id = 2;
DELETE FROM upsell.consumables;
-- excluded products are skipped, the next complements and fallbacks fill the slots
INSERT INTO upsell.exclusions (product_id) VALUES (5);
SELECT rank, product_id, reason FROM upsell.recommend_for_customer(100, 5, at => '2024-04-20');
DELETE FROM upsell.exclusions;
-- a customer without orders gets bestsellers (product 8 is out of stock)
SELECT rank, product_id, round(score::numeric, 4) AS score, reason, because
FROM upsell.recommend_for_customer(999, 4, at => '2024-04-25');
SELECT count(*) FROM upsell.recommend_for_customer(100, 0);

-- the email sequence: subscription (coffee bought 4 times at CV 0), upgrade of
-- the machine to the next pricier one of its variant group, complements,
-- never two of a category in a row while another one is left
SELECT step, kind, product_id, category, round(score::numeric, 4) AS score, refers_to, reason
FROM upsell.email_sequence(100, 6, at => '2024-04-25');
-- customer 105 (machine, frother, descaler)
SELECT step, kind, product_id, category, round(score::numeric, 4) AS score, refers_to, reason
FROM upsell.email_sequence(105, 5, at => '2024-04-25');
-- customer 102 (coffee once, tea once): coffee restock by the population interval
SELECT step, kind, product_id, category, refers_to, reason
FROM upsell.email_sequence(102, 3, at => '2024-02-20');
-- invariants over every customer: distinct products, categories alternate
WITH s AS (
	SELECT c, e.*, lag(e.category) OVER (PARTITION BY c ORDER BY e.step) AS prev
	FROM generate_series(100, 106) c, upsell.email_sequence(c, 5, at => '2024-04-25') e)
SELECT count(*) AS offers, count(DISTINCT (c, product_id)) AS distinct_offers,
	   count(*) FILTER (WHERE category = prev) AS same_category_in_a_row
FROM s;
SELECT count(*) FROM upsell.email_sequence(100, 0);
-- every query applying the consumable rule per row has it inlined (until
-- 1.9 email_sequence, is_consumable, replenishment_due and
-- subscription_products called the scalar _consumable, planned anew by
-- every statement); no _customer_owned (until 1.12 one:
-- recommend_for_customer's, which email_sequence calls)
SET track_functions = 'all';
BEGIN;
CREATE TEMP TABLE calls_before AS
SELECT f.funcid, f.calls FROM pg_stat_xact_user_functions f WHERE f.schemaname = 'upsell';
SELECT count(*) AS steps FROM upsell.email_sequence(100, 6, at => '2024-04-25');
SELECT upsell.is_consumable(1) AS coffee, upsell.is_consumable(3) AS machine;
SELECT count(*) AS due FROM upsell.replenishment_due('2024-04-25', '30 days');
SELECT count(*) AS products, count(*) FILTER (WHERE consumable) AS consumables
FROM upsell.subscription_products(1);
SELECT f.funcname, f.calls - coalesce(b.calls, 0) AS calls
FROM pg_stat_xact_user_functions f LEFT JOIN calls_before b USING (funcid)
WHERE f.schemaname = 'upsell' AND f.funcname IN ('_consumable', '_consumable_rule', '_customer_owned')
  AND f.calls > coalesce(b.calls, 0)
ORDER BY 1;
ROLLBACK;
RESET track_functions;

-- What a customer owns is read with the facts of its products (category,
-- the data's consumable verdict) from a per-backend cache kept until the
-- next refresh (src/serving_owned.c): a product the next refresh finds in
-- another category is read in that one by the same session, and a
-- merchant's rule applies at once, without a refresh
SELECT o.product_id, o.category, o.consumable, o.blocked
FROM unnest(upsell._customer_owned(0, 101, '2024-05-05')) o;
UPDATE pp.products SET category = 'paper' WHERE id = 2;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT o.product_id, o.category, o.consumable, o.blocked
FROM unnest(upsell._customer_owned(0, 101, '2024-05-05')) o;
INSERT INTO upsell.consumables (category, consumable) VALUES ('paper', true);
SELECT o.product_id, o.category, o.consumable, o.blocked
FROM unnest(upsell._customer_owned(0, 101, '2024-05-05')) o;
DELETE FROM upsell.consumables;
UPDATE pp.products SET category = 'coffee' WHERE id = 2;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
-- a fill of the cache that fails half way (here: a reader who may not read
-- product_interval_model, after the refresh above emptied it) leaves no
-- product half filled: coffee is consumable by the data again
REVOKE SELECT ON upsell.product_interval_model FROM upsell_reader;
SET ROLE upsell_reader;
SELECT o.product_id FROM unnest(upsell._customer_owned(0, 101, '2024-05-05')) o;
RESET ROLE;
GRANT SELECT ON upsell.product_interval_model TO upsell_reader;
SELECT o.product_id, o.category, o.consumable, o.blocked
FROM unnest(upsell._customer_owned(0, 101, '2024-05-05')) o;
-- the same as the view it is computed like (purchase_interval_model), for
-- every customer and two dates
SELECT count(*) AS elements,
	   count(*) FILTER (WHERE (o.purchases, o.last_at, o.median_gap_days, o.cv, o.interval_days, o.next_due,
							   o.confidence, o.category)
							  IS NOT DISTINCT FROM (v.purchases, v.last_at, v.median_gap_days, v.cv,
													v.interval_days, v.next_due, v.confidence, m.category)) AS same
FROM upsell.purchase_interval_model v
LEFT JOIN upsell.product_model m ON m.tenant_id = v.tenant_id AND m.product_id = v.product_id
CROSS JOIN LATERAL unnest(upsell._customer_owned(v.tenant_id, v.customer_id, '2024-05-05')) o
WHERE o.product_id = v.product_id;
SELECT o.product_id, o.consumable, o.blocked
FROM unnest(upsell._customer_owned(0, 100, '2024-04-25')) o
UNION ALL
SELECT o.product_id, o.consumable, o.blocked
FROM unnest(upsell._customer_owned(0, 100, '2024-05-02')) o
ORDER BY 1, 3;
-- whether each owned product is consumable is the rule every other reader
-- applies (is_consumable: the merchant's product rule, else its category's,
-- else the data), with rules of both kinds set
INSERT INTO upsell.consumables (product_id, consumable) VALUES (3, true), (1, false);
INSERT INTO upsell.consumables (category, consumable) VALUES ('coffee', true);
SELECT count(*) AS elements,
	   count(*) FILTER (WHERE o.consumable = upsell.is_consumable(o.product_id, h.tenant_id)) AS same
FROM upsell.purchase_history_model h
CROSS JOIN LATERAL unnest(upsell._customer_owned(h.tenant_id, h.customer_id, '2024-05-05')) o;
DELETE FROM upsell.consumables;
-- a NULL customer, or one without a history, owns nothing
SELECT upsell._customer_owned(0, NULL, now()) AS nobody, upsell._customer_owned(0, 999, now()) AS unknown;

-- _in_sorted, the serving functions' test of a candidate against what the
-- customer owns: ascending ids searched by halves, others scanned; the ids
-- of the last call are kept, and ids that change from row to row, or
-- between two evaluations of one PL/pgSQL expression (reassigned, or
-- changed in place), are read again
SELECT x, upsell._in_sorted('{2,5,9,14}', x) AS ascending, upsell._in_sorted('{14,2,9,5}', x) AS unordered,
	   upsell._in_sorted('{}', x) AS empty, upsell._in_sorted(ARRAY[x], 5) AS per_row
FROM generate_series(1, 15, 2) x;
SELECT upsell._in_sorted('{1,NULL,3}', 3);
DO $$
DECLARE
	ids bigint[] := '{1,3,5}';
	expected boolean[] := '{t,f,t}';
BEGIN
	FOR i IN 1..3 LOOP
		IF upsell._in_sorted(ids, 5) IS DISTINCT FROM expected[i] THEN
			RAISE EXCEPTION 'round %: ids % gave the answer of other ids', i, ids;
		END IF;
		IF i = 1 THEN
			ids := '{1,3,7}';
		ELSE
			ids[3] := 5;
		END IF;
	END LOOP;
END
$$;

-- bad input
SELECT * FROM upsell.recommend_for_customer(NULL);
SELECT * FROM upsell.recommend_for_customer(100, -1);
SELECT * FROM upsell.recommend_for_customer(100, NULL);
SELECT * FROM upsell.recommend_for_customer(100, 3, half_life => '0 days');
SELECT * FROM upsell.recommend_for_customer(100, 3, half_life => '-1 day');
SELECT * FROM upsell.recommend_for_customer(100, 3, tenant_id => 5);
SELECT * FROM upsell.recommend_for_customer('x');
SELECT * FROM upsell.email_sequence(NULL);
SELECT * FROM upsell.email_sequence(100, -1);
SELECT * FROM upsell.email_sequence(100, 101);

\i test/data/post_purchase_teardown.sql
DROP SCHEMA pp CASCADE;
