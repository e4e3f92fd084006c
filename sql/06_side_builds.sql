-- Side builds (src/side_build.c): a refresh computes the rows of the models
-- that read only the order lines and the catalog (bundles, upgrade lists,
-- purchase histories, recent orders) in background workers while it builds
-- the others, keeping upsell.refresh_workers of them computing.  The models are exactly those of a
-- refresh without workers; a worker runs as the refresh's role, with its
-- settings and a pinned search_path; its errors reach the refresh with their
-- SQLSTATE; it ends with the refresh's transaction.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_superstore.sql
\set ON_ERROR_STOP 0
\set ECHO all
SELECT upsell.register_orders('superstore.order_lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');
SELECT upsell.register_products('superstore.products', 'product_id', price => 'price',
	category => 'category', variant_group => 'variant_group', in_stock => 'in_stock',
	title => 'title', unit_size => 'unit_size', unit_name => 'unit_name');
-- bundles of the superstore's 10,194 lines need a lower count than the default
SET upsell.bundle_min_count = 2;

-- every model's rows as text (the counts' type has no equality operator),
-- without the build times of source_state and threshold_candidates
CREATE FUNCTION pg_temp.model_rows() RETURNS TABLE (model name, row_text text)
LANGUAGE plpgsql AS $$
DECLARE
	m record;
BEGIN
	FOR m IN SELECT d.model FROM upsell.models d WHERE d.model <> 'source_state' ORDER BY d.build_order LOOP
		RETURN QUERY EXECUTE format('SELECT %L::name, (SELECT string_agg(quote_nullable(t.v), '','') '
									'FROM jsonb_each_text(to_jsonb(r) - ''built_at'') t(k, v)) FROM upsell.%I r',
									m.model, m.model);
	END LOOP;
END $$;

-- 1. the same models with and without workers, and the workers were used
SET upsell.refresh_workers = 0;
CALL upsell.refresh();
CREATE TEMP TABLE alone AS SELECT * FROM pg_temp.model_rows();
-- the models whose rows differ from those built without workers (alone,
-- below), with how many rows each, or none
CREATE FUNCTION pg_temp.differing() RETURNS text
LANGUAGE sql AS $$
	SELECT coalesce(string_agg(d.model || ': ' || d.n, ', '), 'none')
	FROM (SELECT x.model, count(*) AS n
		  FROM ((TABLE alone EXCEPT ALL SELECT * FROM pg_temp.model_rows())
				UNION ALL (SELECT * FROM pg_temp.model_rows() EXCEPT ALL TABLE alone)) x
		  GROUP BY x.model) d
$$;

SELECT model FROM upsell.models WHERE side_build OR side_cpu_ms IS NOT NULL;
SET upsell.refresh_workers = 2;
CALL upsell.refresh();
-- (the workers' CPU time is recorded beside the refreshing backend's)
SELECT model, cpu_ms IS NOT NULL AS has_cpu_ms, side_cpu_ms > 0 AS has_side_cpu_ms
FROM upsell.models WHERE side_build ORDER BY build_order;
SELECT count(*) AS without_worker_cpu FROM upsell.model_builds WHERE side_build AND side_cpu_ms IS NULL;
SELECT model, count(*) AS rows FROM alone
WHERE model IN ('bundle_list_model', 'purchase_history_model', 'product_interval_model') GROUP BY model ORDER BY model;
SELECT pg_temp.differing() AS differing;

-- one worker at a time: each side build starts when the one before has
-- computed its rows, so every model that has one is still side-built
SET upsell.refresh_workers = 1;
CALL upsell.refresh();
SELECT model FROM upsell.models WHERE side_build ORDER BY build_order;
SELECT pg_temp.differing() AS differing;
SELECT model, side_during_count, side_incremental FROM upsell.model_definitions WHERE side_query IS NOT NULL ORDER BY build_order;
RESET upsell.refresh_workers;

-- which side builds start first (_side_builds_start), as the count's
-- builder finds them: in build order, of those that may compute during the
-- count, in a full build and in an incremental one (new lines) alike
CREATE TEMP TABLE started (incremental boolean, side_builds text);
CREATE FUNCTION pg_temp.count_probe(tenant_id bigint, incremental boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pg_temp.started
	SELECT upsell._incremental(tenant_id), string_agg(b.name, ', ' ORDER BY b.name) FROM upsell._side_builds() b;
	RETURN upsell._build_cooccurrence_chunks(tenant_id, incremental);
END $$;
UPDATE upsell.model_definitions SET builder = 'pg_temp.count_probe(bigint, boolean)'
WHERE model = 'cooccurrence_chunks';
SET upsell.refresh_workers = 2;
CALL upsell.refresh();
INSERT INTO superstore.order_lines
SELECT 900000 + line_id, 'NEW-1', customer_id, ordered_at + 1, product_id, quantity, unit_price, discount
FROM superstore.order_lines WHERE order_id = (SELECT max(order_id) FROM superstore.order_lines);
CALL upsell.refresh(incremental => true);
SELECT * FROM started;
UPDATE upsell.model_definitions SET builder = 'upsell._build_cooccurrence_chunks(bigint, boolean)'
WHERE model = 'cooccurrence_chunks';
DELETE FROM superstore.order_lines WHERE order_id = 'NEW-1';
CALL upsell.refresh();
SELECT pg_temp.differing() AS differing;
RESET upsell.refresh_workers;

-- 2. the worker: rows streamed through the queue (more than it holds),
-- the caller's role, settings and a pinned search_path
CREATE TYPE pg_temp.two AS (a bigint, b int);
CREATE TYPE pg_temp.who AS (current_user_name text, session_user_name text, time_zone text,
							search_path text, work_mem text);
CREATE ROLE regress_upsell_side NOLOGIN;
GRANT upsell_admin TO regress_upsell_side;
-- (the refresh's, its owner's: not upsell_admin's)
GRANT EXECUTE ON FUNCTION upsell._side_start(text, text) TO regress_upsell_side;
BEGIN;
SELECT upsell._side_start('numbers', 'SELECT g::bigint AS a, (g % 1000)::int AS b FROM generate_series(1, 1000000) g');
SELECT upsell._side_ready('numbers');
SELECT count(*), sum(a), sum(b) FROM upsell._side_rows('numbers', NULL::pg_temp.two);
-- read once: then it is gone
SELECT upsell._side_ready('numbers');
SET LOCAL ROLE regress_upsell_side;
SET LOCAL TimeZone = 'Asia/Tokyo';
SET LOCAL work_mem = '7MB';
SET LOCAL search_path = public, pg_catalog;
SELECT upsell._side_start('who', $q$SELECT current_user::text, session_user::text,
	current_setting('TimeZone'), current_setting('search_path'), current_setting('work_mem')$q$);
SELECT upsell._side_ready('who');
SELECT current_user_name, session_user_name = session_user AS session_user_kept, time_zone, search_path, work_mem
FROM upsell._side_rows('who', NULL::pg_temp.who);
COMMIT;
-- its parallel workers: upsell.side_build_parallel_workers (0 by default:
-- beside the refresh they only pass rows between processes), or the
-- refresh's own max_parallel_workers_per_gather with -1
CREATE TYPE pg_temp.one AS (v text);
BEGIN;
SET LOCAL max_parallel_workers_per_gather = 3;
SELECT upsell._side_start('parallel', $q$SELECT current_setting('max_parallel_workers_per_gather')$q$);
SELECT v AS side_build_parallel_workers FROM upsell._side_rows('parallel', NULL::pg_temp.one);
SET LOCAL upsell.side_build_parallel_workers = -1;
SELECT upsell._side_start('parallel', $q$SELECT current_setting('max_parallel_workers_per_gather')$q$);
SELECT v AS refresh_parallel_workers FROM upsell._side_rows('parallel', NULL::pg_temp.one);
SET LOCAL upsell.side_build_parallel_workers = 1;
SELECT upsell._side_start('parallel', $q$SELECT current_setting('max_parallel_workers_per_gather')$q$);
SELECT v AS one_parallel_worker FROM upsell._side_rows('parallel', NULL::pg_temp.one);
COMMIT;

-- 3. errors: of the query (the side build is given up, with its error in a
-- NOTICE, and the caller builds the rows itself, which sees what the worker
-- could not, or fails with its own error); of the row type; no such build
CREATE FUNCTION pg_temp.side_error(query text, shape text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	IF NOT upsell._side_start('failing', query) THEN
		RETURN 'no worker';
	END IF;
	IF NOT upsell._side_ready('failing') THEN
		RETURN 'the caller builds the rows';
	END IF;
	EXECUTE format('SELECT count(*) FROM upsell._side_rows(''failing'', NULL::%s)', shape) INTO n;
	RETURN 'no error: ' || n || ' rows';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SET client_min_messages = notice;
SELECT pg_temp.side_error('SELECT g::bigint, (1 / (g - 3))::int FROM generate_series(1, 5) g', 'pg_temp.two');
SELECT pg_temp.side_error('SELECT FROM nowhere', 'pg_temp.two');
SET client_min_messages = warning;
SELECT pg_temp.side_error('SELECT 1::int, 2::int', 'pg_temp.two');
SELECT pg_temp.side_error('SELECT 1::bigint', 'pg_temp.two');
SELECT upsell._side_ready('never started');
SELECT upsell._side_rows('never started', NULL::pg_temp.two);

-- 4. a worker ends with the transaction that started it, read or not
-- (_side_ready would wait for it to finish: the test waits for it to run)
CREATE FUNCTION pg_temp.side_worker_started() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	FOR i IN 1..100 LOOP
		SELECT count(*) INTO n FROM pg_stat_activity
		WHERE backend_type = 'upsell side build' AND query LIKE '%pg_sleep(600)%';
		EXIT WHEN n > 0;
		PERFORM pg_sleep(0.1);
		PERFORM pg_stat_clear_snapshot();
	END LOOP;
	RETURN n;
END $$;
BEGIN;
SELECT upsell._side_start('sleeper', 'SELECT pg_sleep(600)::text');
SELECT pg_temp.side_worker_started() AS side_workers;
ROLLBACK;
CREATE FUNCTION pg_temp.side_workers_after_wait() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	FOR i IN 1..100 LOOP
		SELECT count(*) INTO n FROM pg_stat_activity WHERE backend_type = 'upsell side build';
		EXIT WHEN n = 0;
		PERFORM pg_sleep(0.1);
		PERFORM pg_stat_clear_snapshot();
	END LOOP;
	RETURN n;
END $$;
SELECT pg_temp.side_workers_after_wait() AS side_workers;
-- a transaction cancelled while its side build runs
BEGIN;
SELECT upsell._side_start('sleeper', 'SELECT pg_sleep(600)::text');
SELECT pg_temp.side_worker_started() AS side_workers;
SET LOCAL statement_timeout = '100ms';
SELECT pg_sleep(5);
ROLLBACK;
SELECT pg_temp.side_workers_after_wait() AS side_workers;
-- a worker terminated while it sends its rows (its queue is full until they
-- are read): the end of its queue is not the end of the rows, and reading
-- them fails rather than return the first ones only (the refresh's tenant
-- then keeps its models)
BEGIN;
SELECT upsell._side_start('numbers', 'SELECT g::bigint AS a, (g % 1000)::int AS b FROM generate_series(1, 1000000) g');
SELECT upsell._side_ready('numbers');
SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE backend_type = 'upsell side build';
SELECT pg_temp.side_workers_after_wait() AS side_workers;
SELECT count(*) FROM upsell._side_rows('numbers', NULL::pg_temp.two);
ROLLBACK;
-- a subtransaction rolled back: its side builds end (a refresh inside a
-- transaction block builds each tenant in one, and the next tenant must not
-- read the rows of one that failed); those of its parent stay
BEGIN;
SELECT upsell._side_start('outer', 'SELECT 1::bigint, 1::int');
SAVEPOINT tenant;
SELECT upsell._side_start('inner', 'SELECT 2::bigint, 2::int');
ROLLBACK TO SAVEPOINT tenant;
SELECT upsell._side_ready('inner') AS inner_ready, upsell._side_ready('outer') AS outer_ready;
SELECT * FROM upsell._side_rows('outer', NULL::pg_temp.two);
COMMIT;
-- a lock the refresh's own transaction holds: the worker gives up after 1 s
-- (its refresh waits for it outside the lock manager, where no deadlock is
-- seen) and the caller builds the rows itself
BEGIN;
LOCK TABLE superstore.products IN ACCESS EXCLUSIVE MODE;
SELECT upsell._side_start('locked', 'SELECT count(*), 1::int FROM superstore.products');
SELECT upsell._side_ready('locked');
COMMIT;
-- so a refresh after a registration (DDL on the views) in one transaction
-- completes, with the same models
BEGIN;
SELECT upsell.register_orders('superstore.order_lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');
CALL upsell.refresh();
COMMIT;
SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SELECT count(*) AS side_built FROM upsell.models WHERE side_build;
SELECT pg_temp.differing() AS differing;
-- a refresh cancelled while its side builds run (its tenant keeps its
-- models): category_model, built after the count has started them and
-- before any is read, is built by a builder that says whether side builds
-- run (on a sequence: the refresh's transaction rolls back), then sleeps
-- until the statement times out.  The upgrade lists' side build sleeps 30 s
-- before its query: on these 10,194 lines the workers would otherwise be
-- done before category_model looks.
CREATE FUNCTION pg_temp.slow_upgrade_query(tenant_id bigint, snapshot pg_snapshot) RETURNS text
LANGUAGE sql AS $$
	SELECT 'SELECT q.* FROM (' || upsell._upgrade_query(tenant_id, snapshot) || ') q '
		   'WHERE (SELECT true FROM pg_sleep(30))'
$$;
CREATE TEMP TABLE upgrade_side AS
SELECT side_query FROM upsell.model_definitions WHERE model = 'upgrade_list_model';
UPDATE upsell.model_definitions SET side_query = 'pg_temp.slow_upgrade_query(bigint, pg_snapshot)'::regprocedure::text
WHERE model = 'upgrade_list_model';
CREATE TEMP SEQUENCE side_running_seen;
CREATE FUNCTION pg_temp.slow_category(tenant_id bigint, incremental boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	running boolean;
BEGIN
	-- (a worker shows in pg_stat_activity once it has connected)
	FOR i IN 1..40 LOOP
		PERFORM pg_stat_clear_snapshot();
		running := EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'upsell side build');
		EXIT WHEN running;
		PERFORM pg_sleep(0.1);
	END LOOP;
	IF running THEN
		PERFORM nextval('pg_temp.side_running_seen');
	END IF;
	PERFORM pg_sleep(30);
	RETURN 0;
END $$;
UPDATE upsell.model_definitions SET builder = 'pg_temp.slow_category(bigint, boolean)'
WHERE model = 'category_model';
SET statement_timeout = '6s';
SET client_min_messages = error;
CALL upsell.refresh();
RESET statement_timeout;
SET client_min_messages = warning;
SELECT last_value AS side_builds_were_running, is_called FROM pg_temp.side_running_seen;
UPDATE upsell.model_definitions SET builder = 'upsell._build_category_model(bigint, boolean)'
WHERE model = 'category_model';
UPDATE upsell.model_definitions SET side_query = (TABLE upgrade_side) WHERE model = 'upgrade_list_model';
SELECT pg_temp.side_workers_after_wait() AS side_workers;
SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SELECT pg_temp.differing() AS differing;

RESET upsell.refresh_workers;
RESET upsell.bundle_min_count;
REVOKE EXECUTE ON FUNCTION upsell._side_start(text, text) FROM regress_upsell_side;
DROP ROLE regress_upsell_side;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA superstore CASCADE;
