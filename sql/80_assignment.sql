-- Experiments: assignment by a stable hash, offer types per variant, the
-- weight guard, exposures.
SET TimeZone = 'UTC';
CREATE SCHEMA exp_assign;
CREATE TABLE exp_assign.lines (order_id int, product_id int, customer_id int,
	ordered_at timestamptz, quantity int, unit_price numeric(10,2));
SELECT upsell.register_orders('exp_assign.lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');

INSERT INTO upsell.experiments (experiment, stage, started_at, description)
VALUES ('checkout_test', 'cart', '2026-01-01', 'cross-sell in the cart against no offers');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
	('checkout_test', 'control', 50, '{}'),
	('checkout_test', 'fbt', 30, '{complement}'),
	('checkout_test', 'fbt_gap', 20, '{complement,gap_filler}'),
	('checkout_test', 'off', 0, '{bundle}');

-- The hash is pinned (computed independently with Python big integers):
-- FNV-1a 64 of 'checkout_test' || 0x00 || '42', then the MurmurHash3 finalizer.
SELECT upsell.unit_hash('checkout_test', '42') = x'ea7a864a89801b03'::bigint AS hash_pinned;
-- its top 53 bits / 2^53 = 0.91593..., in the last 20% of the weight: fbt_gap
SELECT upsell.assign('checkout_test', '42') AS unit_42;

-- 100 000 units: every share within 1 percentage point of its weight, the
-- weight-0 variant never, and the very same answer on a second pass.
CREATE TEMP TABLE a1 AS SELECT g AS unit, upsell.assign('checkout_test', g::text) AS variant FROM generate_series(1, 100000) g;
CREATE TEMP TABLE a2 AS SELECT g AS unit, upsell.assign('checkout_test', g::text) AS variant FROM generate_series(1, 100000) g;
SELECT v.variant, v.weight, count(a1.unit) AS units,
	   abs(count(a1.unit) / 100000.0 - v.weight / 100) < 0.01 AS within_1pct
FROM upsell.experiment_variants v LEFT JOIN a1 ON a1.variant = v.variant
WHERE v.experiment = 'checkout_test'
GROUP BY v.variant, v.weight ORDER BY v.variant;
SELECT count(*) AS disagreements FROM a1 JOIN a2 USING (unit) WHERE a1.variant <> a2.variant;
-- another experiment splits the same units independently of this one
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('other', '2026-01-01');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('other', 'a', 1), ('other', 'b', 1);
SELECT a1.variant, round(avg((upsell.assign('other', a1.unit::text) = 'a')::int), 2) AS share_a_in_other
FROM a1 GROUP BY a1.variant ORDER BY a1.variant;

-- what the funnel stages ask: the offer types of the unit's variant
SELECT u.unit_id, upsell.assign('checkout_test', u.unit_id) AS variant,
	   upsell.variant_offer_types('checkout_test', u.unit_id) AS offer_types,
	   upsell.variant_offer_types('checkout_test', u.unit_id, 'cart') AS in_cart,
	   upsell.variant_offer_types('checkout_test', u.unit_id, 'product_page') AS on_product_page
FROM (VALUES ('1'), ('2'), ('3'), ('42')) u(unit_id) ORDER BY u.unit_id;
-- no experiment or no unit: NULL, meaning every offer type
SELECT upsell.variant_offer_types(NULL, '42') IS NULL AS no_experiment,
	   upsell.variant_offer_types('checkout_test', NULL) IS NULL AS no_unit;
-- not started yet or ended: NULL as well, but assign() still answers
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('later', now() + interval '1 day');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES ('later', 'control', 1, '{}');
SELECT upsell.variant_offer_types('later', '42') IS NULL AS not_started, upsell.assign('later', '42');
UPDATE upsell.experiments SET ended_at = '2026-01-02' WHERE experiment = 'other';
SELECT upsell.variant_offer_types('other', '42') IS NULL AS ended;

-- exposures: the variant is filled in, and must agree when given
SELECT upsell.record_exposure('checkout_test', '42', 'cart', 'complement:10') AS variant;
INSERT INTO upsell.exposures (experiment, unit_id, stage) VALUES ('checkout_test', '1', 'cart');
INSERT INTO upsell.exposures (experiment, unit_id, variant) VALUES ('checkout_test', '2', upsell.assign('checkout_test', '2'));
SELECT unit_id, variant, stage, offer, variant = upsell.assign(experiment, unit_id) AS agrees
FROM upsell.exposures ORDER BY exposure_id;
-- an explicit variant is kept as recorded, but must be one of the experiment's
INSERT INTO upsell.exposures (experiment, unit_id, variant, shown_at) VALUES ('checkout_test', '43', 'fbt', '2026-01-02');
\set VERBOSITY terse
INSERT INTO upsell.exposures (experiment, unit_id, variant) VALUES ('checkout_test', '42', 'nope');
\set VERBOSITY default
SELECT upsell.record_exposure('checkout_test', NULL);
SELECT upsell.record_exposure('nope', '1');
-- checked as record_event checks them: a stage of the funnel, a finite time
SELECT upsell.record_exposure('checkout_test', '42', 'checkout');
SELECT upsell.record_exposure('checkout_test', '42', 'cart', NULL, 'infinity');
\set VERBOSITY terse
INSERT INTO upsell.exposures (experiment, unit_id, stage) VALUES ('checkout_test', '1', 'checkout');
\set VERBOSITY default

-- the weight guard: running with exposures, so the split is frozen
UPDATE upsell.experiment_variants SET weight = 60 WHERE experiment = 'checkout_test' AND variant = 'control';
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('checkout_test', 'late', 10);
DELETE FROM upsell.experiment_variants WHERE experiment = 'checkout_test' AND variant = 'off';
SELECT upsell.set_weights('checkout_test', '{"control": 60}');
-- its name too: it is half of every unit's hash (the cascade to the variants
-- and exposures would have let it through, about half the units reassigned)
UPDATE upsell.experiments SET experiment = 'checkout_test_2' WHERE experiment = 'checkout_test';
BEGIN;
SET LOCAL upsell.force_weight_change = on;
UPDATE upsell.experiments SET experiment = 'checkout_test_2' WHERE experiment = 'checkout_test';
SELECT count(*) AS exposures_renamed FROM upsell.exposures WHERE experiment = 'checkout_test_2';
ROLLBACK;
-- what a variant shows may change (it is not a reassignment)
UPDATE upsell.experiment_variants SET offer_types = '{complement,bundle}' WHERE experiment = 'checkout_test' AND variant = 'fbt';
-- forced: by the function, or by the setting for one transaction
SELECT upsell.set_weights('checkout_test', '{"control": 60, "fbt": 20}', force => true);
SHOW upsell.force_weight_change;
BEGIN;
SET LOCAL upsell.force_weight_change = on;
UPDATE upsell.experiment_variants SET weight = 25 WHERE experiment = 'checkout_test' AND variant = 'fbt_gap';
COMMIT;
SELECT variant, weight, offer_types FROM upsell.experiment_variants WHERE experiment = 'checkout_test' ORDER BY variant;
-- an experiment that has not started, or has no exposures, may be reshaped freely
SELECT upsell.set_weights('later', '{"control": 3}');
SELECT upsell.set_weights('other', '{"a": 2}');
UPDATE upsell.experiments SET experiment = 'later_2' WHERE experiment = 'later';
UPDATE upsell.experiments SET experiment = 'later' WHERE experiment = 'later_2';

-- bad input
SELECT upsell.assign('nope', '1');
SELECT upsell.assign(NULL, '1') IS NULL AS null_in_null_out;
INSERT INTO upsell.experiments (experiment) VALUES ('empty');
-- without variants (being set up) no unit has a variant: the stages show
-- everything, as without the experiment, and an exposure is not recorded
-- (it would name no variant and freeze the split before it is defined);
-- until 1.9 each of these failed: "has no variants"
SELECT upsell.assign('empty', '1') IS NULL AS no_variant,
	   upsell.variant_offer_types('empty', '1') IS NULL AS shows_everything,
	   upsell.variant_offer_types('empty', '1', 'cart') IS NULL AS cart_shows_everything;
SELECT upsell.record_exposure('empty', '1', 'cart') IS NULL AS not_recorded,
	   (SELECT count(*) FROM upsell.exposures WHERE experiment = 'empty') AS exposures;
-- and the split can still be defined afterwards
BEGIN;
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('empty', 'control', 1);
SELECT upsell.assign('empty', '1') AS variant;
ROLLBACK;
-- weights that are all zero are reported when defined, at commit (a split
-- may pass through zero within its transaction), also on the removal of
-- the last variant of positive weight: a WARNING that keeps the rows, as a
-- restore must (an error there lost the variants of every experiment
-- restored with them, then their exposures); set_weights refuses them
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('empty', 'control', 0), ('empty', 'b', 0);
SELECT variant, weight FROM upsell.experiment_variants WHERE experiment = 'empty' ORDER BY variant;
DELETE FROM upsell.experiment_variants WHERE experiment = 'empty';
BEGIN;
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('empty', 'control', 0), ('empty', 'b', 0);
UPDATE upsell.experiment_variants SET weight = 1 WHERE experiment = 'empty' AND variant = 'b';
COMMIT;
SELECT upsell.set_weights('empty', '{"control": 0}');
SELECT upsell.set_weights('empty', '{"b": 0}');
SELECT upsell.set_weights('empty', '{"b": 1e-400}');
DELETE FROM upsell.experiment_variants WHERE experiment = 'empty' AND variant = 'b';
SELECT variant, weight FROM upsell.experiment_variants WHERE experiment = 'empty' ORDER BY variant;
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('empty', 'b', 1);
-- all zero all the same (rows from before 1.9, or loaded with triggers
-- off): a request naming the experiment is served, every unit gets the
-- control, or the first variant when the control is none of them (until
-- 1.9 every one failed: "variant weights sum to zero")
SET session_replication_role = replica;
UPDATE upsell.experiment_variants SET weight = 0 WHERE experiment = 'empty';
RESET session_replication_role;
SELECT upsell.assign('empty', u::text) AS variant, count(*) AS units,
	   count(*) FILTER (WHERE upsell.variant_offer_types('empty', u::text) = '{}') AS shown_nothing
FROM generate_series(1, 100) u GROUP BY 1;
SELECT upsell.record_exposure('empty', '1') AS recorded;
UPDATE upsell.experiments SET control = 'baseline' WHERE experiment = 'empty';
SELECT upsell.assign('empty', '1') AS first_variant;
DELETE FROM upsell.exposures WHERE experiment = 'empty';
DELETE FROM upsell.experiment_variants WHERE experiment = 'empty';
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('empty', 'neg', -1);
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('empty', 'inf', 'Infinity');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES ('empty', 'x', 1, '{teleport}');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('nope', 'x', 1);
INSERT INTO upsell.experiments (experiment, started_at, ended_at) VALUES ('backwards', '2026-02-01', '2026-01-01');
\set VERBOSITY terse
INSERT INTO upsell.experiments (experiment, stage) VALUES ('bad_stage', 'checkout');
\set VERBOSITY default
SELECT upsell.set_weights('checkout_test', '[1, 2]');
SELECT upsell.set_weights('checkout_test', '{"control": "lots"}');
SELECT upsell.set_weights('checkout_test', '{"control": -5}', force => true);
SELECT upsell.set_weights('checkout_test', '{"nobody": 5}', force => true);
SELECT upsell.set_weights('nope', '{"a": 1}');
SELECT upsell.variant_offer_types('nope', '1');

-- units are customers: integer ids here
SELECT upsell.unit_customer('42') AS integer_id, upsell.unit_customer(' 7 ') AS padded;
SELECT upsell.unit_customer('alice');

-- an exposure gets the split as it is when it is recorded, in the
-- transaction that changed it too (until 1.8 the trigger's assign() kept
-- the variants it first read for the rest of the transaction: u2 and u3
-- went to control)
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('cx', now() - interval '1 day');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('cx', 'control', 1), ('cx', 'b', 0);
BEGIN;
SELECT upsell.record_exposure('cx', 'u1') AS before_the_change;
SELECT upsell.set_weights('cx', '{"control": 0, "b": 1}', force => true);
SELECT upsell.assign('cx', 'u2') AS assigned, upsell.record_exposure('cx', 'u2') AS recorded;
INSERT INTO upsell.exposures (experiment, unit_id) VALUES ('cx', 'u3');
SELECT unit_id, variant FROM upsell.exposures WHERE experiment = 'cx' ORDER BY 1;
COMMIT;
-- nor does a tenant binding changed within the transaction reach another
-- tenant's experiment through what the trigger read before (it did)
UPDATE upsell.experiments SET tenant_id = 1 WHERE experiment = 'cx';
BEGIN;
SET LOCAL upsell.tenant_id = 1;
INSERT INTO upsell.exposures (experiment, unit_id) VALUES ('cx', 'u4');
SET LOCAL upsell.tenant_id = 2;
\set VERBOSITY terse
INSERT INTO upsell.exposures (experiment, unit_id) VALUES ('cx', 'u5');
\set VERBOSITY default
ROLLBACK;
DELETE FROM upsell.experiments WHERE experiment = 'cx';
-- The split is frozen from the first exposure, also while that exposure is
-- not yet committed (until 1.9 a change in another session got through:
-- the guard counted only committed exposures).  Two sessions: this one and
-- "other"; settle() waits until the other's statement has ended or waits
-- for a lock.
CREATE EXTENSION dblink;
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s', current_database(),
	current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
SELECT pid AS other_pid FROM dblink('other', 'SELECT pg_backend_pid()') AS t(pid int) \gset
CREATE FUNCTION pg_temp.settle(pid int, conn text DEFAULT 'other') RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..1000 LOOP
		IF dblink_is_busy(conn) = 0 THEN
			RETURN 'done';
		ELSIF EXISTS (SELECT FROM pg_locks l WHERE l.pid = settle.pid AND NOT l.granted) THEN
			RETURN 'waits';
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN 'neither in 10 s';
END
$$;
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('race', '2020-01-01'), ('race2', '2020-01-01');
INSERT INTO upsell.experiment_variants (experiment, variant, weight)
VALUES ('race', 'control', 1), ('race', 'b', 0), ('race2', 'control', 1), ('race2', 'b', 0);
-- the first exposure is being recorded here, the weights change there:
-- the change waits, then is refused
BEGIN;
SELECT upsell.record_exposure('race', 'u1') AS recorded;
SELECT dblink_send_query('other', $$SELECT upsell.set_weights('race', '{"control": 0, "b": 1}')$$);
SELECT pg_temp.settle(:other_pid) AS weight_change;
COMMIT;
\set VERBOSITY terse
SELECT * FROM dblink_get_result('other') AS t(r text);
\set VERBOSITY default
SELECT * FROM dblink_get_result('other') AS t(r text);
SELECT variant, weight FROM upsell.experiment_variants WHERE experiment = 'race' ORDER BY variant;
-- the weights change here, the first exposure is recorded there: it waits,
-- then gets the new split
BEGIN;
SELECT upsell.set_weights('race2', '{"control": 0, "b": 1}');
SELECT dblink_send_query('other', $$SELECT upsell.record_exposure('race2', 'u1')$$);
SELECT pg_temp.settle(:other_pid) AS exposure;
COMMIT;
SELECT * FROM dblink_get_result('other') AS t(recorded text);
SELECT * FROM dblink_get_result('other') AS t(recorded text);
SELECT unit_id, variant, variant = upsell.assign(experiment, unit_id) AS as_assigned
FROM upsell.exposures WHERE experiment = 'race2';
-- a page records two exposures in one transaction, the second of variant
-- c, while variant c is deleted there: the deletion waits for the page,
-- then is refused, and the page is served (the deletion locked c's row
-- before its row trigger took the split lock: a deadlock, 40P01, killed
-- one of the two)
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('race3', '2020-01-01');
INSERT INTO upsell.experiment_variants (experiment, variant, weight)
VALUES ('race3', 'control', 1), ('race3', 'b', 1), ('race3', 'c', 1);
SELECT min(u) FILTER (WHERE upsell.assign('race3', u::text) = 'b') AS unit_b,
	   min(u) FILTER (WHERE upsell.assign('race3', u::text) = 'c') AS unit_c
FROM generate_series(1, 100) u \gset
BEGIN;
SELECT upsell.record_exposure('race3', :'unit_b') AS recorded;
SELECT dblink_send_query('other', $$DELETE FROM upsell.experiment_variants WHERE experiment = 'race3' AND variant = 'c'$$);
SELECT pg_temp.settle(:other_pid) AS deletion;
SELECT upsell.record_exposure('race3', :'unit_c') AS recorded;
COMMIT;
\set VERBOSITY terse
SELECT * FROM dblink_get_result('other') AS t(r text);
\set VERBOSITY default
SELECT * FROM dblink_get_result('other') AS t(r text);
SELECT variant, count(*) FROM upsell.exposures WHERE experiment = 'race3' GROUP BY 1 ORDER BY 1;
-- A page records an exposure here (split lock shared), experiment "gone"
-- is deleted there (waiting for the lock), and a third session "page"
-- records a shown event of "gone": the event waits for the lock before
-- its offer event's foreign key locks the experiment's row, then is
-- refused as any event of a deleted experiment is (until 1.9 it locked
-- the row first and then waited for the lock behind the deletion, which
-- waited for the row: a deadlock, 40P01, failed one of them)
SELECT dblink_connect('page', format('dbname=%s port=%s host=%s', current_database(),
	current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
SELECT pid AS page_pid FROM dblink('page', 'SELECT pg_backend_pid()') AS t(pid int) \gset
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('gone', '2020-01-01');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('gone', 'control', 1), ('gone', 'b', 1);
BEGIN;
SELECT upsell.record_exposure('race3', :'unit_b') AS recorded;
SELECT dblink_send_query('other', $$DELETE FROM upsell.experiments WHERE experiment = 'gone'$$);
SELECT pg_temp.settle(:other_pid) AS deletion;
SELECT dblink_send_query('page', $$SELECT upsell.record_event('{"event": "shown", "type": "complement",
	"stage": "cart", "unit_id": "7", "product_id": 2, "experiment": "gone"}')$$);
SELECT pg_temp.settle(:page_pid, 'page') AS event;
COMMIT;
\set VERBOSITY terse
SELECT * FROM dblink_get_result('other') AS t(r text);
SELECT * FROM dblink_get_result('other') AS t(r text);
SELECT * FROM dblink_get_result('page') AS t(recorded int);
\set VERBOSITY default
SELECT * FROM dblink_get_result('page') AS t(recorded int);
SELECT count(*) AS gone_events FROM upsell.offer_events WHERE experiment = 'gone';
SELECT dblink_disconnect('page');
-- the variants of an experiment being set up are deleted here while its
-- first exposure is recorded there: the exposure waits for the split lock,
-- then sees no variants, records nothing and returns NULL (until 1.9 it
-- looked for variants before waiting, and then failed: 23502, a NULL
-- variant)
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('unset', '2020-01-01');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('unset', 'control', 1), ('unset', 'b', 1);
BEGIN;
DELETE FROM upsell.experiment_variants WHERE experiment = 'unset';
SELECT dblink_send_query('other', $$SELECT upsell.record_exposure('unset', 'u1')$$);
SELECT pg_temp.settle(:other_pid) AS exposure;
COMMIT;
\set VERBOSITY terse
SELECT * FROM dblink_get_result('other') AS t(recorded text);
\set VERBOSITY default
SELECT * FROM dblink_get_result('other') AS t(recorded text);
SELECT count(*) AS unset_exposures FROM upsell.exposures WHERE experiment = 'unset';
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
DELETE FROM upsell.experiments WHERE experiment IN ('race', 'race2', 'race3', 'unset');

-- a weight too small for float8, which the CHECK lets in, is none (until
-- 1.8 every request naming the experiment failed)
INSERT INTO upsell.experiments (experiment) VALUES ('tiny');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('tiny', 'control', 1), ('tiny', 'b', 1e-400);
SELECT upsell.assign('tiny', u::text) AS variant, count(*) FROM generate_series(1, 100) u GROUP BY 1;
SELECT variant, weight > 0 AS positive, units FROM upsell.experiment_results('tiny') ORDER BY variant;
DELETE FROM upsell.experiments WHERE experiment = 'tiny';

-- the whole experiment goes away with its variants and exposures once ended
UPDATE upsell.experiments SET ended_at = now() WHERE experiment = 'checkout_test';
DELETE FROM upsell.experiments;
SELECT (SELECT count(*) FROM upsell.experiment_variants) AS variants, (SELECT count(*) FROM upsell.exposures) AS exposures;
DELETE FROM upsell.order_source;
DROP SCHEMA exp_assign CASCADE;
