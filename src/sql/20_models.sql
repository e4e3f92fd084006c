
-- ===========================================================================
-- Models: the model store, and refresh
-- ===========================================================================
--
-- Every model is one ordinary, permanent table @extschema@.<model> whose
-- first column is tenant_id.  Refresh publishes a tenant's new rows by MVCC:
-- in one transaction per tenant, one statement per model deletes the
-- tenant's old rows and inserts its new ones (upsell._publish below).  A
-- reader's snapshot sees the tenant's models either wholly before or wholly
-- after that transaction -- exactly one complete version -- and a reader
-- never waits: refresh takes only the RowExclusiveLock of an ordinary writer
-- on the model tables (no TRUNCATE, no DDL, no view redefinition, nothing a
-- reader's AccessShareLock conflicts with), and readers lock no rows, so no
-- lock-order deadlock with readers exists.  The deleted versions stay
-- visible to older snapshots and are reclaimed by (auto)vacuum, which never
-- blocks readers.  Why rows replaced rather than a generation column: every
-- reader (SQL functions, the C serving path, analysts' queries) reads the
-- table as it is, with no state row to join and no generation in its index
-- keys, and the same statement sees the previous rows while it writes the
-- new ones (what incremental builders need).
--
-- THE BUILDER CONTRACT (what a layer writes to add a model):
--
--   1. A builder function  _build_<x>(tenant_id bigint, incremental boolean)
--      RETURNS bigint  (the rows it published).  It builds ONE tenant and
--      writes only through
--
--        @extschema@._publish(model name, tenant_id bigint, query text,
--                             scope bigint[] DEFAULT NULL) RETURNS bigint
--
--      where query yields the model's rows (columns matched by NAME, every
--      column of the model, tenant_id included) and may use $1 (the tenant
--      id, bigint) and $2 (scope, bigint[]).  _publish replaces the tenant's
--      rows -- or, with a scope, only those whose scope column (declared at
--      _define_model) is in scope -- in one statement; the query still sees
--      the rows being replaced, so an incremental builder may read the
--      model's previous rows in it.  Rows of another tenant, or outside the
--      scope, are an error.  It returns the tenant's rows of the model after
--      it: those inserted, or with a scope the rows before (as the last
--      build recorded them in model_builds) less those replaced plus those
--      inserted, so that a builder returns the same either way.  A builder
--      of an incremental refresh that has nothing to change in its model
--      (no new lines and none of its other inputs changed:
--      _lines_unchanged) writes nothing and returns
--      @extschema@._kept_rows(model, tenant_id), as _publish does itself,
--      without running the query, for an empty scope.
--   2. One call of  _define_model(model, columns, indexes, build_order,
--      builder, description [, scope_column])  in the layer's install
--      script: columns start with "tenant_id bigint NOT NULL" (or a primary
--      key on it); indexes are "(cols)" lists.
--
--   Builders run in build_order within the tenant's transaction, so a
--   builder reads the models built before it for the same tenant (their new
--   rows) and the other models as last published.  A builder raises to fail
--   its tenant: the tenant's transaction rolls back and its previous models
--   keep serving, while the other tenants are refreshed.  Builders never
--   COMMIT, TRUNCATE or run DDL; their notices should name the tenant.

CREATE TABLE @extschema@.model_definitions (
	model		name PRIMARY KEY,
	build_order	int NOT NULL UNIQUE,
	builder		text NOT NULL,		-- a regprocedure's text: pg_upgrade refuses reg* columns
	description	text NOT NULL,
	scope_column name,				-- the column a partial publish (_publish with a scope) selects by
	side_query	text,				-- a regprocedure's text: (tenant_id bigint, snapshot pg_snapshot) -> the query of a side build of the model
	side_during_count boolean NOT NULL DEFAULT false,	-- the side build may compute while the count runs
	side_incremental boolean NOT NULL DEFAULT false	-- the side build runs in an incremental build too (its query is then the one that build needs)
);
COMMENT ON TABLE @extschema@.model_definitions IS
	'the models refresh builds, in build_order: table, builder function (tenant_id bigint, incremental boolean), the column a partial refresh of a tenant replaces rows by, and the function giving the query of a side build (rows a background worker computes; _define_side_build)';

CREATE TABLE @extschema@.model_builds (
	tenant_id	bigint NOT NULL,
	model		name NOT NULL REFERENCES @extschema@.model_definitions ON DELETE CASCADE,
	row_count	bigint NOT NULL,
	built_at	timestamptz NOT NULL,
	build_ms	float8 NOT NULL,
	incremental	boolean NOT NULL,
	refresh_id	bigint,
	cpu_ms		float8,				-- the refreshing backend's CPU time in the build (its parallel workers' not included)
	side_build	boolean NOT NULL DEFAULT false,	-- rows computed by a background worker (its CPU not in cpu_ms)
	side_cpu_ms	float8,				-- that worker's CPU time to compute them (its parallel workers' not included)
	PRIMARY KEY (tenant_id, model)
);
COMMENT ON TABLE @extschema@.model_builds IS
	'per tenant and model: the rows, time and duration of its last published build (one row per tenant, so refreshes of different tenants never contend)';

CREATE VIEW @extschema@.models AS
SELECT d.model, d.build_order, d.builder, d.description,
	   b.row_count, b.built_at, b.build_ms, b.tenants, b.cpu_ms, b.side_build, b.side_cpu_ms
FROM @extschema@.model_definitions d
LEFT JOIN (SELECT b.model, pg_catalog.sum(b.row_count)::bigint AS row_count,
				  pg_catalog.max(b.built_at) AS built_at, pg_catalog.sum(b.build_ms) AS build_ms,
				  pg_catalog.count(*) AS tenants, pg_catalog.sum(b.cpu_ms) AS cpu_ms,
				  pg_catalog.bool_or(b.side_build) AS side_build, pg_catalog.sum(b.side_cpu_ms) AS side_cpu_ms
		   FROM @extschema@.model_builds b GROUP BY b.model) b
	ON b.model OPERATOR(pg_catalog.=) d.model;
COMMENT ON VIEW @extschema@.models IS
	'the models refresh builds, in build_order, with their rows summed over tenants and the time of their last build (wall and the refreshing backend''s CPU, ms; side_build: a background worker computed the rows of some tenant, and its CPU is not in cpu_ms but in side_cpu_ms)';

CREATE FUNCTION @extschema@._define_model(model name, columns text, indexes text[],
	build_order int, builder text, description text, scope_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ix text;
	rel regclass;
BEGIN
	EXECUTE format('CREATE TABLE @extschema@.%I (%s)', model, columns);
	rel := format('@extschema@.%I', model)::regclass;
	IF (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum = 1) <> 'tenant_id' THEN
		RAISE EXCEPTION 'the first column of model % must be tenant_id', model
			USING ERRCODE = 'invalid_table_definition';
	END IF;
	IF scope_column IS NOT NULL AND NOT EXISTS (
		SELECT FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = scope_column
		  AND a.atttypid = 'bigint'::regtype) THEN
		RAISE EXCEPTION 'scope column % of model % must be a bigint column', scope_column, model
			USING ERRCODE = 'invalid_table_definition';
	END IF;
	FOREACH ix IN ARRAY coalesce(indexes, '{}') LOOP
		EXECUTE format('CREATE INDEX ON %s %s', rel, ix);
	END LOOP;
	-- a model is replaced wholesale at every refresh: vacuum it early
	EXECUTE format('ALTER TABLE %s SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05)', rel);
	EXECUTE format('COMMENT ON TABLE %s IS %L', rel, description);
	INSERT INTO @extschema@.model_definitions (model, build_order, builder, description, scope_column)
	VALUES (model, build_order, builder::regprocedure::text, description, scope_column);
END
$$;

-- Raises: a builder returned a row outside the tenant (or scope) it
-- publishes (_publish on Citus, row by row).  Called with a column of the
-- row: neither PostgreSQL nor Citus evaluates it ahead of the rows.
CREATE FUNCTION @extschema@._stray_row(model name, tenant_id bigint, row_tenant_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'the builder of % returned rows outside tenant %', model,
		tenant_id || CASE WHEN row_tenant_id IS DISTINCT FROM tenant_id THEN '' ELSE ' and its scope' END
		USING ERRCODE = 'internal_error';
END
$$;

-- The model store's one write: replaces the tenant's rows of a model (or
-- those in scope) by the rows of query, in one statement.  The DELETE runs
-- first (the INSERT waits on its count), so the new rows never meet the old
-- ones in a unique index, while the query, reading the statement's snapshot,
-- still sees the old rows.  (The INSERT's alias n qualifies its RETURNING
-- list: Citus deparses the statement for a shard without it otherwise.)
CREATE FUNCTION @extschema@._publish(model name, tenant_id bigint, query text, scope bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d @extschema@.model_definitions;
	rel regclass;
	stats_rel regclass;
	cols text;
	n bigint;
	stray bigint;
	known_rows float4;
	plan json;
	estimated float8;
	deleted bigint;
	before bigint;
BEGIN
	SELECT * INTO d FROM @extschema@.model_definitions m WHERE m.model = _publish.model;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model % is not defined', model USING ERRCODE = 'undefined_table';
	END IF;
	IF tenant_id IS NULL THEN
		RAISE EXCEPTION 'a model is published per tenant: tenant_id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF scope IS NOT NULL AND d.scope_column IS NULL THEN
		RAISE EXCEPTION 'model % has no scope column: it is published for whole tenants only', model
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(scope) = 0 THEN
		-- nothing in scope: no row to replace, and the query, whose rows
		-- must all be in scope, is not run (an incremental refresh without
		-- new lines: listing the pairs of no product still read the chunk
		-- of counts, 0.55-1.14 s at 10M lines)
		RETURN @extschema@._kept_rows(model, tenant_id);
	END IF;
	rel := format('@extschema@.%I', model)::regclass;
	-- a Citus table distributed by tenant: its statistics are those of the
	-- tenant's shard, here on the worker that builds the tenant
	stats_rel := CASE WHEN to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN rel
					  ELSE @extschema@._local_shard(rel, tenant_id) END;
	SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
		   (SELECT c.reltuples FROM pg_class c WHERE c.oid = stats_rel)
	INTO cols, known_rows
	FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;
	IF stats_rel IS DISTINCT FROM rel THEN
		-- A Citus table distributed by tenant (upsell.distribute()): Citus
		-- runs the single statement below in steps, sending the rows each
		-- CTE returns to every node; here the DELETE and the INSERT are two
		-- statements of the tenant's transaction (readers see both or
		-- neither), and a stray row fails the INSERT.  The builders run in
		-- full there (a distributed table has no row xmin for incremental
		-- refresh), so none reads the rows being replaced.
		EXECUTE format('DELETE FROM %s m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1 %s', rel,
					   CASE WHEN scope IS NULL THEN ''
							ELSE format('AND m.%I OPERATOR(pg_catalog.=) ANY ($2)', d.scope_column) END)
		USING tenant_id, scope;
		GET DIAGNOSTICS deleted = ROW_COUNT;
		EXECUTE format('INSERT INTO %s AS n (%s) SELECT %s FROM (%s) q
						WHERE CASE WHEN q.tenant_id IS DISTINCT FROM $1 %s
								   THEN @extschema@._stray_row(%L, $1, q.tenant_id) ELSE true END',
					   rel, cols,
					   (SELECT string_agg('q.' || quote_ident(a.attname), ', ' ORDER BY a.attnum)
						FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped),
					   query,
					   CASE WHEN scope IS NULL THEN ''
							ELSE format('OR q.%1$I IS NULL OR q.%1$I OPERATOR(pg_catalog.<>) ALL ($2)', d.scope_column) END,
					   model)
		USING tenant_id, scope;
		GET DIAGNOSTICS n = ROW_COUNT;
		stray := 0;
	ELSE
	EXECUTE format($q$
		WITH old AS (
			DELETE FROM %1$s m
			WHERE m.tenant_id OPERATOR(pg_catalog.=) $1 %2$s
			RETURNING 1),
		new AS (
			INSERT INTO %1$s AS n (%3$s)
			SELECT %4$s FROM (%5$s) q
			WHERE (SELECT pg_catalog.count(*) FROM old) OPERATOR(pg_catalog.>=) 0
			RETURNING n.tenant_id, %6$s AS scope_key)
		SELECT pg_catalog.count(*),
			   pg_catalog.count(*) FILTER (WHERE new.tenant_id IS DISTINCT FROM $1 %7$s),
			   (SELECT pg_catalog.count(*) FROM old)
		FROM new$q$,
		rel,
		CASE WHEN scope IS NULL THEN ''
			 ELSE format('AND m.%I OPERATOR(pg_catalog.=) ANY ($2)', d.scope_column) END,
		cols,
		(SELECT string_agg('q.' || quote_ident(a.attname), ', ' ORDER BY a.attnum)
		 FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped),
		query,
		CASE WHEN scope IS NULL THEN 'NULL::bigint' ELSE 'n.' || quote_ident(d.scope_column) END,
		CASE WHEN scope IS NULL THEN ''
			 ELSE 'OR new.scope_key IS NULL OR new.scope_key OPERATOR(pg_catalog.<>) ALL ($2)' END)
	INTO n, stray, deleted USING tenant_id, scope;
	END IF;
	IF stray > 0 THEN
		RAISE EXCEPTION 'the builder of % returned % rows outside tenant %', model, stray,
			tenant_id || CASE WHEN scope IS NULL THEN '' ELSE ' and its scope' END
			USING ERRCODE = 'internal_error';
	END IF;
	-- Statistics for the builders that read it next, in this transaction: on
	-- the first build ever, when one tenant's rows outgrow what the
	-- statistics know of the whole table, and when the planner's estimate
	-- of the tenant's rows (the statistics' share of the tenant, scaled to
	-- the table's size now) is a tenth of the rows just written or less
	-- (a 1,000-row model of a second tenant estimated at 1 row made its cart
	-- model's build take 682 s instead of 0.05 s).  With stale
	-- estimates the builders' joins over the tenant's models become nested
	-- loops that run for minutes: PostgreSQL 18's cart model when one
	-- tenant's rows outgrew the table's statistics, and a tenant built
	-- after the statistics were taken without it (the second of four
	-- tenants of 2.5M lines each: its first models estimated at a row each,
	-- and its refresh ran for over 40 minutes instead of about 2).  The
	-- estimate is one plan of a constant: nothing is read.
	IF known_rows >= 0 AND n <= 2 * known_rows + 1000 AND n > 100 THEN
		EXECUTE format('EXPLAIN (FORMAT JSON) SELECT FROM %s m WHERE m.tenant_id OPERATOR(pg_catalog.=) %s',
					   stats_rel, tenant_id)
		INTO plan;
		estimated := (plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
	END IF;
	IF known_rows < 0 OR n > 2 * known_rows + 1000 OR n > 10 * estimated + 100 THEN
		EXECUTE format('ANALYZE %s', stats_rel);
	END IF;
	IF scope IS NULL THEN
		RETURN n;
	END IF;
	-- the tenant's rows now (counting them took up to a second of an
	-- incremental refresh: 845,395 purchase histories at 10M lines)
	SELECT b.row_count INTO before FROM @extschema@.model_builds b
	WHERE b.tenant_id = _publish.tenant_id AND b.model = _publish.model;
	IF before IS NULL OR before < deleted THEN
		EXECUTE format('SELECT pg_catalog.count(*) FROM %s m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1', rel)
		INTO n USING tenant_id;
		RETURN n;
	END IF;
	RETURN before - deleted + n;
END
$$;
COMMENT ON FUNCTION @extschema@._publish(name, bigint, text, bigint[]) IS
	'internal, the model store: replaces a tenant''s rows of a model (or those whose scope column is in scope) by the rows of a query ($1 tenant, $2 scope) in one MVCC statement; returns the tenant''s rows of the model after it';

-- The tenant's rows of a model whose builder keeps them as they are (an
-- incremental refresh that changes nothing in it): as its last build
-- recorded them, counted only when no build did (counting 200,000 upgrade
-- lists took 0.1-0.2 s).
CREATE FUNCTION @extschema@._kept_rows(model name, tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	SELECT b.row_count INTO n FROM @extschema@.model_builds b
	WHERE b.tenant_id = _kept_rows.tenant_id AND b.model = _kept_rows.model;
	IF n IS NULL THEN
		EXECUTE format('SELECT pg_catalog.count(*) FROM @extschema@.%I m WHERE m.tenant_id OPERATOR(pg_catalog.=) $1', model)
		INTO n USING tenant_id;
	END IF;
	RETURN n;
END
$$;

-- Chunks of a model's state that arrive with another model's rows, from
-- the one read of a side build's rows (src/kept_chunks.c): the builder of
-- the carrying model begins them (_chunks_begin), publishes its rows from a
-- query filtered by _chunks_keep, which sets the chunks apart in the
-- transaction's memory, and the builder of the model they are, next, reads
-- them (_chunks_begun, _chunks_kept).  The upgrade lists carry their counts
-- (upgrade_count_model), the bundles every frequent set (bundle_set_model).
CREATE FUNCTION @extschema@._chunks_begin(model name, tenant_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'upsell_chunks_begin'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._chunks_begin(name, bigint) IS
	'internal: the tenant''s chunks of the model are about to arrive with another model''s rows: those kept of the model in this transaction so far are forgotten';
CREATE FUNCTION @extschema@._chunks_keep(model name, tenant_id bigint, chunk int, state bytea, tag text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_chunks_keep'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._chunks_keep(name, bigint, int, bytea, text) IS
	'internal: true for a row of the carrying model (state NULL); a chunk of the model is kept in this transaction for its builder, and false';
CREATE FUNCTION @extschema@._chunks_begun(model name, tenant_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_chunks_begun'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._chunks_begun(name, bigint) IS
	'internal: whether the tenant''s chunks of the model were begun last in this transaction (_chunks_begin)';
CREATE FUNCTION @extschema@._chunks_kept(model name, tenant_id bigint)
RETURNS TABLE (chunk int, state bytea, tag text)
AS 'MODULE_PATHNAME', 'upsell_chunks_kept'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._chunks_kept(name, bigint) IS
	'internal: the chunks of the model kept of the tenant in this transaction (_chunks_keep), in the order kept';

-- The builder of a model of chunks (chunk, state, counted) that arrive with
-- another model's rows: publishes those kept (_chunks_kept), or keeps its
-- rows when the carrying model's builder kept its own (none began).
CREATE FUNCTION @extschema@._publish_kept_chunks(model name, tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT @extschema@._chunks_begun(model, tenant_id) THEN
		RETURN @extschema@._kept_rows(model, tenant_id);
	END IF;
	RETURN @extschema@._publish(model, tenant_id, format(
		'SELECT %s::bigint AS tenant_id, k.chunk, k.state, k.tag AS counted FROM @extschema@._chunks_kept(%L, %s) k',
		tenant_id, model, tenant_id));
END
$$;

-- A model of such chunks: per tenant, its state in chunks of bytes, and
-- what it was counted from (counted: 'all lines', or 'new lines' folded
-- into the chunks before).  Written whole at every refresh that counts it
-- and read whole by the next: stored as it is, neither compressed (17 MB
-- at 10M lines each, for the upgrade counts and the bundles' sets, which
-- both writing and reading would pay for) nor sampled for statistics.
CREATE FUNCTION @extschema@._define_chunks_model(model name, build_order int, builder text, description text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._define_model(model,
		$c$tenant_id bigint NOT NULL, chunk int NOT NULL CHECK (chunk >= 0), state bytea NOT NULL,
		   counted text NOT NULL CHECK (counted IN ('all lines', 'new lines')),
		   PRIMARY KEY (tenant_id, chunk)$c$,
		NULL, build_order, builder, description);
	EXECUTE format('ALTER TABLE @extschema@.%I ALTER COLUMN state SET STORAGE EXTERNAL, '
				   'ALTER COLUMN state SET STATISTICS 0', model);
END
$$;

-- What an incremental refresh passes downstream.  A builder of an
-- incremental refresh that knows which products' rows of its model changed
-- notes them (_note_changed); a builder after it in the tenant's
-- transaction reads them (_changed_products) to rewrite only the rows that
-- depend on them.  The notes live in pg_temp.upsell_changed_products, which
-- _build_source_state creates for a tenant refreshed incrementally and only
-- then: without it every builder builds the whole tenant.
CREATE FUNCTION @extschema@._note_changed(model name, products bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF to_regclass('pg_temp.upsell_changed_products') IS NOT NULL THEN
		INSERT INTO pg_temp.upsell_changed_products
		SELECT _note_changed.model, p FROM unnest(products) p;
	END IF;
END
$$;
COMMENT ON FUNCTION @extschema@._note_changed(name, bigint[]) IS
	'internal: notes, in an incremental refresh, the products whose rows of model changed, for the builders after it';

-- The products noted as changed in model; NULL outside an incremental
-- refresh (every product may have changed).
CREATE FUNCTION @extschema@._changed_products(model name)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF to_regclass('pg_temp.upsell_changed_products') IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN (SELECT coalesce(pg_catalog.array_agg(DISTINCT c.product_id), '{}')
			FROM pg_temp.upsell_changed_products c WHERE c.model OPERATOR(pg_catalog.=) _changed_products.model);
END
$$;
COMMENT ON FUNCTION @extschema@._changed_products(name) IS
	'internal: the products noted as changed in model by this incremental refresh of the tenant; NULL outside one';

CREATE TABLE @extschema@.refresh_log (
	refresh_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	started_at	timestamptz NOT NULL,
	finished_at	timestamptz,
	duration_ms	float8,
	incremental	boolean NOT NULL,
	tenant_id	bigint,				-- the tenant asked for; NULL: all
	status		text NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed', 'cancelled', 'interrupted')),
	backend_pid	int NOT NULL,
	tenants_ok	int NOT NULL DEFAULT 0,
	tenants_failed int NOT NULL DEFAULT 0,
	model_rows	jsonb,				-- rows per model, summed over the tenants refreshed
	failures	jsonb,				-- per failed tenant: sqlstate and error
	bad_rows	jsonb,				-- per tenant and problem: rows skipped, first ids
	error		text,				-- the first error
	error_sqlstate text
);
COMMENT ON TABLE @extschema@.refresh_log IS
	'one row per upsell.refresh(), committed at its start (status running) and completed at its end: ok, partial (some tenants failed and kept their previous models), failed, cancelled, or interrupted (the session ended mid-refresh, found by the next refresh); rows per model, failures per tenant, bad source rows skipped';

-- What the serving caches of each backend (src/serving_rules.c,
-- src/serving_owned.c) are keyed by: every change of a table of merchant
-- rules or registrations (a trigger, created by the funnel layer) draws a
-- new serving_state.config_version from a sequence, and every refresh of a
-- tenant (at the end of its transaction) a new model_state.config_version
-- -- never reused, so a cache filled inside a transaction that rolled back
-- cannot match a later version.  The stages read both once per request and
-- re-read what they cache when one moved.  Two rows, as a version is drawn
-- under its row's lock, held to the end of the transaction: with one row
-- (until 1.12) a rule edited in a transaction left open stalled every
-- refresh at its end, and a refresh every merchant's edit.

CREATE SEQUENCE @extschema@.config_version_seq;

CREATE TABLE @extschema@.serving_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	config_version bigint NOT NULL DEFAULT 0
);
INSERT INTO @extschema@.serving_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.serving_state IS
	'the version of the merchant''s rules (offers, exclusions, stage settings, thresholds, volume tiers, registrations) that the serving cache of each backend is checked against (with model_state''s, of the models)';

-- Every version stored is drawn here, whatever the UPDATE set: a backend's
-- cache holds the version it read, and one set back to it (by a role that
-- may update the row: the admin, whose rule edits draw versions) would keep
-- that backend on its old rules.
CREATE FUNCTION @extschema@._draw_config_version()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	NEW.config_version := nextval('@extschema@.config_version_seq');
	RETURN NEW;
END
$$;
CREATE TRIGGER draw_config_version BEFORE UPDATE ON @extschema@.serving_state
	FOR EACH ROW EXECUTE FUNCTION @extschema@._draw_config_version();

CREATE TABLE @extschema@.model_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	config_version bigint NOT NULL DEFAULT 0
);
INSERT INTO @extschema@.model_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.model_state IS
	'the version of the models, drawn anew by every refresh of a tenant, that the serving cache of each backend is checked against (with serving_state''s, of the merchant''s rules)';
CREATE TRIGGER draw_config_version BEFORE UPDATE ON @extschema@.model_state
	FOR EACH ROW EXECUTE FUNCTION @extschema@._draw_config_version();

-- Which tenants' models a new model_state.config_version is of: a backend
-- whose cache holds an older one reads this table once and empties what it
-- holds of those tenants only (until 1.12 every refresh of a tenant emptied
-- every tenant's caches in every backend: in a database of many shops,
-- their refreshes kept all the others' pages re-reading their rules and
-- products).
CREATE TABLE @extschema@.model_versions (
	tenant_id	bigint PRIMARY KEY,
	config_version bigint NOT NULL
);
COMMENT ON TABLE @extschema@.model_versions IS
	'per tenant, the version of its models drawn by its last refresh (model_state holds the latest of every tenant''s): what a backend''s serving caches of that tenant are checked against';

-- A tenant's models changed (at the end of its build, in its transaction):
-- a new version of its own and of every tenant's, from the one sequence.
CREATE FUNCTION @extschema@._models_changed(tenant_id bigint)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	INSERT INTO @extschema@.model_versions (tenant_id, config_version)
	VALUES (_models_changed.tenant_id, pg_catalog.nextval('@extschema@.config_version_seq'::regclass))
	ON CONFLICT (tenant_id) DO UPDATE SET config_version = excluded.config_version;
	UPDATE @extschema@.model_state SET config_version = DEFAULT;	-- drawn by its trigger
END;
COMMENT ON FUNCTION @extschema@._models_changed(bigint) IS
	'internal: at the end of a tenant''s build, draws a new version of its models (model_versions) and of the models (model_state), for the serving caches of every backend';

CREATE FUNCTION @extschema@._rules_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- (a new version: serving_state's trigger draws it)
	UPDATE @extschema@.serving_state SET config_version = DEFAULT;
	RETURN NULL;
END
$$;

CREATE FUNCTION @extschema@._in_transaction_block() RETURNS boolean
	AS 'MODULE_PATHNAME', 'upsell_in_transaction_block'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION @extschema@._backend_cpu_ms() RETURNS float8
	AS 'MODULE_PATHNAME', 'upsell_backend_cpu_ms'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@._backend_cpu_ms() IS
	'internal: the CPU time (user + system, ms) the calling backend has used (not its parallel workers'')';

CREATE FUNCTION @extschema@._itemsets_limit_kb() RETURNS int
	AS 'MODULE_PATHNAME', 'upsell_itemsets_limit_kb_sql'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._itemsets_limit_kb() IS
	'internal: upsell.itemsets_memory_limit in kB as mining applies it (-1: 32 times work_mem), 0: no limit';

CREATE FUNCTION @extschema@._hold_freed_memory(hold boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'upsell_hold_freed_memory'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._hold_freed_memory(boolean) IS
	'internal (a tenant''s build): with true, until false or the end of the transaction, the calling process keeps the memory it frees for its next allocations (glibc''s malloc) instead of returning it to the kernel and faulting it in again page by page; false returns what is free; returns whether the process held it before';

-- ---- refresh ----------------------------------------------------------------
--
-- refresh() is a procedure that commits after each tenant (when called
-- outside a transaction block), so a tenant is published as soon as it is
-- built and a failure costs only that tenant.  The helpers below do the work
-- with a pinned search_path; the procedure itself (which may not have a SET
-- clause, since it commits) only calls them.

-- Advisory lock keys: (class, key) pairs of the two-int form.
CREATE FUNCTION @extschema@._refresh_lock_class(what text)
RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE what WHEN 'tenant' THEN 1970304817		-- one refresh of a tenant at a time
				 WHEN 'run' THEN 1970304818		-- held by a refresh while it runs
				 -- the experiments' splits (key 0, one for all): shared by
				 -- exposures being recorded, exclusive while one changes
				 WHEN 'split' THEN 1970304819 END;

-- Marks the log rows of refreshes that ended without recording it (the
-- session was terminated, or cancelled between two tenants): their backend
-- no longer holds the run's advisory lock, or it is this very session.
CREATE FUNCTION @extschema@._refresh_reap()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT l.refresh_id, l.backend_pid FROM @extschema@.refresh_log l
			 WHERE l.status = 'running' FOR UPDATE SKIP LOCKED LOOP
		IF r.backend_pid = pg_backend_pid() THEN
			PERFORM pg_advisory_unlock(@extschema@._refresh_lock_class('run'), (r.refresh_id % 2147483647)::int);
		ELSIF EXISTS (SELECT FROM pg_locks k
					  WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2
						-- (each database numbers its refreshes from 1)
						AND k.database = (SELECT d.oid FROM pg_database d
										  WHERE d.datname = current_database())
						AND k.classid = @extschema@._refresh_lock_class('run')::oid
						AND k.objid = (r.refresh_id % 2147483647)::oid) THEN
			CONTINUE;		-- still running
		END IF;
		UPDATE @extschema@.refresh_log l
		SET status = 'interrupted', finished_at = clock_timestamp(),
			duration_ms = 1000 * extract(epoch FROM clock_timestamp() - l.started_at),
			error = coalesce(l.error, 'the refresh ended without recording its end: its session was terminated or it was cancelled between two tenants; the tenants it had finished are published')
		WHERE l.refresh_id = r.refresh_id;
	END LOOP;
END
$$;

-- The start of a refresh: checks, the log row (status running) and the
-- run's advisory lock.  Returns the refresh id.
CREATE FUNCTION @extschema@._refresh_begin(incremental boolean, tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	run bigint;
BEGIN
	IF incremental IS NULL THEN
		RAISE EXCEPTION 'incremental must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._refresh_reap();
	INSERT INTO @extschema@.refresh_log (started_at, incremental, tenant_id, status, backend_pid)
	VALUES (clock_timestamp(), incremental, tenant_id, 'running', pg_backend_pid())
	RETURNING refresh_id INTO run;
	PERFORM pg_advisory_lock(@extschema@._refresh_lock_class('run'), (run % 2147483647)::int);
	RAISE NOTICE 'upsell: % refresh % started', CASE WHEN incremental THEN 'incremental' ELSE 'full' END, run;
	RETURN run;
END
$$;

-- The tenants a refresh builds: the one asked for, or every tenant with
-- order lines, catalog rows or models.  Also re-creates the registration
-- views if a DROP ... CASCADE took them.
CREATE FUNCTION @extschema@._refresh_tenants(tenant_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenants bigint[];
	listing text;
	message text;
	tenant_expr text;
	rel regclass;
BEGIN
	-- a registered column renamed, dropped or retyped: named, before any build
	PERFORM @extschema@._check_registrations();

	-- the views over the shop's tables, if a DROP ... CASCADE took them
	IF to_regclass('@extschema@.order_lines') IS NULL THEN
		PERFORM @extschema@._sync_view('order_lines');
	END IF;
	IF to_regclass('@extschema@.catalog') IS NULL THEN
		PERFORM @extschema@._sync_view('catalog');
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.order_source) THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;
	IF tenant_id IS NOT NULL THEN
		tenant_id := @extschema@._tenant(tenant_id);
		-- a tenant never refreshed, without lines (a mistyped id in a job):
		-- refreshed all the same (to no rows), but said
		IF NOT EXISTS (SELECT FROM @extschema@.model_builds b WHERE b.tenant_id = _refresh_tenants.tenant_id) THEN
			BEGIN
				IF NOT EXISTS (SELECT FROM @extschema@.order_lines l WHERE l.tenant_id = _refresh_tenants.tenant_id) THEN
					RAISE WARNING 'upsell: tenant % has no order lines and was never refreshed: its models stay empty', tenant_id
						USING HINT = 'Check the tenant id: upsell.refresh_log counts it as refreshed.';
				END IF;
			EXCEPTION WHEN data_exception OR feature_not_supported OR undefined_column OR undefined_table THEN
				-- lines that cannot be read: the tenant's build says it
				NULL;
			END;
		END IF;
		RETURN ARRAY[tenant_id];
	END IF;
	-- tenants that had models but no longer have lines or catalog rows (or
	-- the orders were registered anew without tenants) are refreshed too:
	-- their models become empty.  (DISTINCT in each arm: Citus then sends
	-- each shard's tenants, not its lines' tenant ids.)
	IF (SELECT s.tenant_id IS NULL FROM @extschema@.order_source s) THEN
		RETURN ARRAY(SELECT 0::bigint UNION SELECT b.tenant_id FROM @extschema@.model_builds b ORDER BY 1);
	END IF;
	-- the tenants of the lines (%1$s: their tenant expression over the
	-- relation %2$s), of the catalog and of the models
	listing := format($q$
		SELECT coalesce(array_agg(t ORDER BY t), '{}')
		FROM (SELECT DISTINCT %%1$s FROM %%2$s WHERE %%1$s IS NOT NULL
			  UNION SELECT DISTINCT c.tenant_id FROM %s c WHERE c.tenant_id IS NOT NULL
			  UNION SELECT b.tenant_id FROM @extschema@.model_builds b) x(t)$q$,
		@extschema@._catalog_source());
	BEGIN
		EXECUTE format(listing, 'l.tenant_id', '@extschema@.order_lines l') INTO tenants;
	EXCEPTION WHEN OTHERS THEN
		-- A row the view cannot read (a cast in the shop's own view that
		-- fails on one tenant's data) fails every query over all the
		-- tenants' lines, this one too: the tenants are then read from the
		-- registered tenant column alone, so that only the tenant of that
		-- row fails, in its own build, and the others are refreshed.
		GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
		RAISE WARNING 'upsell: the tenants of the order lines could not be read through upsell.order_lines: %', message
			USING HINT = 'The tenant whose rows fail to read is refreshed with that error; the others are refreshed.';
		SELECT @extschema@._view_exprs('order_lines', s.relation, to_jsonb(s)) ->> 'tenant_id', s.relation
		INTO tenant_expr, rel
		FROM @extschema@.order_source s WHERE s.kind = 'columns';
		EXECUTE format(listing, coalesce(tenant_expr, 'NULL::bigint'), coalesce(rel::text, '(SELECT)') || ' AS s')
		INTO tenants;
	END;
	RETURN tenants;
END
$$;

-- Records in the refresh's log row an outcome that degrades the models
-- without failing a tenant (a status ok or partial alone would hide it): the
-- first one in error and error_sqlstate, where a failure, when one comes,
-- takes its place (_refresh_tenant_failed).  The caller says it in a WARNING.
CREATE FUNCTION @extschema@._refresh_note(run bigint, sqlstate text, message text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE @extschema@.refresh_log l
	SET error = coalesce(l.error, message), error_sqlstate = coalesce(l.error_sqlstate, sqlstate)
	WHERE l.refresh_id OPERATOR(pg_catalog.=) run;
END;
COMMENT ON FUNCTION @extschema@._refresh_note(bigint, text, text) IS
	'internal: records in the refresh''s log row (error, error_sqlstate, unless one is there) an outcome that degrades the models without failing a tenant';

-- A registered relation that is no longer what its registration meant, yet
-- still readable: one attached as a partition (a shop that partitions its
-- orders renames the table and attaches it under a new partitioned table of
-- its name), or one renamed while another relation took the name it was
-- registered by (as its tenants' last refresh kept it:
-- _name_as_registered).  A registration holds its relation by oid, so the
-- models are built from the old relation alone, and until 1.9 refresh
-- logged ok.  Refresh goes on with it -- the rows it has are real, and
-- failing would leave every tenant on older models -- and says so, at every
-- refresh until the relation is registered again (until 1.9 the first one
-- alone did, a nightly job's one note before silence), in a WARNING naming
-- the tenants and the registration to call again, and in the log row
-- (_refresh_note).
CREATE FUNCTION @extschema@._refresh_check_sources(run bigint, tenants bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	now_named regclass;
	problem text;
	which text := CASE WHEN cardinality(tenants) = 1 THEN 'tenant ' || tenants[1]
					   ELSE 'tenants ' || array_to_string(tenants[1:5], ', ')
							|| CASE WHEN cardinality(tenants) > 5 THEN ', ...' ELSE '' END END;
BEGIN
	FOR r IN SELECT DISTINCT rc.registration, rc.what, rc.relation::regclass AS relation, c.relispartition,
					rr.registered_at
			 FROM @extschema@._registered_columns() rc
			 JOIN @extschema@._registered_relations() rr ON rr.what = rc.what
			 JOIN pg_class c ON c.oid = rc.relation
			 ORDER BY rc.what LOOP
		now_named := CASE WHEN r.relispartition THEN pg_partition_root(r.relation) END;
		IF now_named IS NOT NULL THEN
			problem := format('the relation registered for the %s, %s, is now a partition of %s: refresh reads that partition alone',
							  r.what, r.relation, now_named);
		ELSE
			-- (a tenant refreshed since the registration: not one whose
			-- name changed by a registration of another relation)
			SELECT to_regclass(@extschema@._name_as_registered(s.registration, r.what)) INTO now_named
			FROM @extschema@.source_state s
			WHERE s.tenant_id = ANY (tenants) AND r.registered_at <= s.built_at
			  AND to_regclass(@extschema@._name_as_registered(s.registration, r.what)) <> r.relation
			LIMIT 1;
			problem := format('the relation registered for the %s as %s was renamed %s, and %s is now another relation: refresh reads the renamed one',
							  r.what, now_named, r.relation, now_named);
		END IF;
		CONTINUE WHEN now_named IS NULL;
		RAISE WARNING 'upsell: %: %', which, problem
			USING HINT = format('Call upsell.%s() again with %s to read it (the models are built from %s until then).',
								r.registration, now_named, r.relation);
		PERFORM @extschema@._refresh_note(run, '01000', which || ': ' || problem);
	END LOOP;
END
$$;

-- Counts the source rows the models skip or read in part (NULL ids,
-- implausible quantities and prices: upsell.bad_source_rows()) per tenant
-- and problem, with the first few ids,
-- into the refresh's log row and a NOTICE.  One pass over the order lines,
-- so a full refresh does it and an incremental one does not.
CREATE FUNCTION @extschema@._refresh_bad_rows(run bigint, tenants bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	bad jsonb := '{}';
	message text;
BEGIN
	-- a source that fails here fails its tenant's build, with its own error
	BEGIN
		FOR r IN
			SELECT b.tenant_id, b.source AS what, b.problem, count(*) AS n,
				   (array_agg(b.id ORDER BY b.id))[1:5] AS first_ids
			FROM @extschema@.bad_source_rows(tenants) b
			GROUP BY b.tenant_id, b.source, b.problem
			ORDER BY b.tenant_id, b.source, b.problem
		LOOP
			-- (rows without a tenant under "none")
			bad := jsonb_set(bad, ARRAY[coalesce(r.tenant_id::text, 'none')],
							 coalesce(bad -> coalesce(r.tenant_id::text, 'none'), '{}')
							 || jsonb_build_object(r.what || ': ' || r.problem,
												   jsonb_build_object('rows', r.n, 'first', to_jsonb(r.first_ids))));
			RAISE NOTICE 'upsell: tenant %: % % skipped or read in part: %; first: %', coalesce(r.tenant_id::text, 'none'),
				r.n, CASE r.what WHEN 'catalog' THEN 'catalog rows' ELSE r.what END, r.problem,
				array_to_string(r.first_ids, ', ') || CASE WHEN r.n > 5 THEN ', ...' ELSE '' END
				USING HINT = 'See upsell.bad_source_rows().';
		END LOOP;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
		RAISE WARNING 'upsell: could not count the bad source rows: %', message;
		bad := jsonb_build_object('error', message);
	END;
	UPDATE @extschema@.refresh_log l SET bad_rows = nullif(bad, '{}') WHERE l.refresh_id = run;
END
$$;

-- ---- side builds -------------------------------------------------------------
--
-- A model whose rows come from the order lines alone can be computed by a
-- background worker while the refresh builds the models before it
-- (src/side_build.c): on a 2-core machine a tenant's refresh then uses both.
-- Its builder reads the rows with _side_rows when _side_ready says the
-- worker runs, and otherwise computes them itself.

CREATE FUNCTION @extschema@._side_start(name text, query text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_side_start'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_start(text, text) IS
	'internal: starts a background worker that runs query (a SELECT, with the caller''s user, role and build settings) and keeps its rows for _side_rows(name), until the transaction ends; false when no worker could be started';

CREATE FUNCTION @extschema@._side_ready(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_side_ready'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_ready(text) IS
	'internal: whether side build name runs or ran its query (waits for its worker to start); false, and forgotten, when its worker ended before it could';

CREATE FUNCTION @extschema@._side_rows(name text, shape anyelement)
RETURNS SETOF anyelement
AS 'MODULE_PATHNAME', 'upsell_side_rows'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_rows(text, anyelement) IS
	'internal: the rows of side build name, of the row type of shape (its columns must have exactly those types), waiting for them; its error, with its SQLSTATE, when its query failed';

CREATE FUNCTION @extschema@._side_cpu_ms(name text)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_side_cpu_ms'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_cpu_ms(text) IS
	'internal: the CPU time (ms) the worker of side build name used to compute its rows, once _side_ready says it has; NULL before, after its rows were read, or unknown';

CREATE FUNCTION @extschema@._side_builds()
RETURNS TABLE (name text, computing boolean)
AS 'MODULE_PATHNAME', 'upsell_side_builds'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._side_builds() IS
	'internal: this transaction''s side builds whose rows were not read yet, and whether each is still computing';

-- Declares that a model's rows can be computed by a side build: query_fn
-- (tenant_id bigint, snapshot pg_snapshot) RETURNS text gives the query the
-- worker runs, reading the tenant's lines as of the snapshot, and nothing
-- the tenant's transaction wrote (the worker cannot see it): the caller
-- writes into the query what it needs of the models built before.  The
-- model's builder reads the rows (_side_ready, _side_rows) or computes them.
-- during_count: the worker holds little memory (its sorts and hashes are
-- bounded by work_mem), so it may compute while the count, the refresh's
-- largest build in memory, runs (the counting leader keeps one core busy
-- and its parallel workers only scan: the other core is mostly free).
-- incremental: the side build runs in an incremental build too, because
-- the builder rebuilds the model in full then as well (its rows do not add
-- up from the new lines), or because query_fn, which runs in the refresh,
-- writes what the build needs of the new lines into the query (a worker
-- cannot read pg_temp.upsell_new_lines).
CREATE FUNCTION @extschema@._define_side_build(model name, query_fn text, during_count boolean DEFAULT false,
	incremental boolean DEFAULT false)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE @extschema@.model_definitions d
	SET side_query = query_fn::regprocedure::text, side_during_count = during_count,
		side_incremental = _define_side_build.incremental
	WHERE d.model OPERATOR(pg_catalog.=) _define_side_build.model;
END;

-- Keeps upsell.refresh_workers side builds of a tenant computing: called
-- after each model from source_state on (it fixes the snapshot of the
-- tenant's lines), it starts those of the models still to build (after
-- build_order after) -- before the count is done only those that may
-- compute during it -- in build order, while fewer than that many are
-- computing.  So on a 2-core machine the refreshing backend and
-- the workers share the cores until the end, rather than the workers
-- finishing early and the backend building the rest alone.  On a single
-- node; in an incremental build only those declared for it
-- (_define_side_build's incremental).  Returns how many started.
CREATE FUNCTION @extschema@._side_builds_start(tenant_id bigint, after int)
RETURNS int
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	workers int := coalesce(current_setting('upsell.refresh_workers', true)::int, 0);
	free int;
	known text[];
	snap pg_snapshot;
	inc boolean;
	m record;
	query text;
	started int := 0;
BEGIN
	IF workers <= 0 OR @extschema@._models_distributed() THEN
		RETURN 0;
	END IF;
	inc := @extschema@._incremental(tenant_id);
	IF inc AND @extschema@._lines_unchanged(tenant_id) THEN
		-- nothing to compute beside: the builders keep their rows, or
		-- compute what the catalog changed themselves
		RETURN 0;
	END IF;
	SELECT workers - count(*) FILTER (WHERE b.computing), coalesce(array_agg(b.name), '{}')
	INTO free, known FROM @extschema@._side_builds() b;
	IF free <= 0 THEN
		RETURN 0;
	END IF;
	SELECT s.snapshot INTO snap FROM @extschema@.source_state s WHERE s.tenant_id = _side_builds_start.tenant_id;
	FOR m IN
		SELECT d.model, d.side_query FROM @extschema@.model_definitions d
		WHERE d.side_query IS NOT NULL AND d.build_order > after
		  AND (d.side_incremental OR NOT inc)
		  AND (d.side_during_count OR after >= (SELECT c.build_order FROM @extschema@.model_definitions c
												 WHERE c.model = 'cooccurrence_chunks'))
		  AND d.model::text <> ALL (known)
		ORDER BY d.build_order LIMIT free
	LOOP
		EXECUTE format('SELECT %s($1, $2)', m.side_query::regprocedure::regproc) INTO query USING tenant_id, snap;
		IF @extschema@._side_start(m.model, query) THEN
			started := started + 1;
		END IF;
	END LOOP;
	RETURN started;
END
$$;

-- Builds and publishes every model of one tenant, in the caller's
-- transaction, and draws a new model_state.config_version for the serving
-- caches of this node.  Returns per model the rows published, the build's
-- milliseconds, the building backend's CPU milliseconds, whether a side
-- build's worker computed the rows and that worker's CPU milliseconds
-- ({"model": [rows, ms, cpu_ms, side, side_cpu_ms], ...}).  Where the models are Citus
-- tables distributed by tenant (upsell.distribute()), this is a distributed
-- function delegated to the worker holding the tenant's shards: the
-- builders read the tenant's order lines and write its models there.
CREATE FUNCTION @extschema@._build_tenant(tenant_id bigint, incremental boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m record;
	n bigint;
	t0 timestamptz;
	cpu0 float8;
	side boolean;
	side_cpu float8;
	built jsonb := '{}';
	-- the model that fixes the snapshot of the tenant's lines
	snapshot_order int := (SELECT d.build_order FROM @extschema@.model_definitions d
						   WHERE d.model = 'source_state');
BEGIN
	-- the builds allocate and free the same large buffers over and over
	-- (src/refresh_malloc.c)
	PERFORM @extschema@._hold_freed_memory(true);
	IF @extschema@._models_distributed() THEN
		-- on the tenant's worker: a builder's function (C, or a query text)
		-- reads the tenant's order lines while the statement that publishes
		-- writes the tenant's shard of a model, both shards of this node
		-- and colocated (they move together)
		PERFORM set_config('citus.allow_nested_distributed_execution', 'on', true);
	END IF;
	FOR m IN SELECT * FROM @extschema@.model_definitions ORDER BY build_order LOOP
		t0 := clock_timestamp();
		cpu0 := @extschema@._backend_cpu_ms();
		-- (a builder reads the rows of its side build when it runs)
		side := @extschema@._side_ready(m.model);
		IF side THEN
			-- its worker has just computed them (_side_ready waited for it):
			-- the next side build takes its place now, not once this builder
			-- has read and published the rows (1.6 s of an incremental
			-- refresh's purchase histories at 10M lines, a core left idle)
			PERFORM @extschema@._side_builds_start(tenant_id, m.build_order);
		END IF;
		side_cpu := CASE WHEN side THEN @extschema@._side_cpu_ms(m.model) END;
		EXECUTE format('SELECT %s($1, $2)', m.builder::regprocedure::regproc) INTO n USING tenant_id, incremental;
		built := built || jsonb_build_object(m.model, jsonb_build_array(coalesce(n, 0),
											 1000 * extract(epoch FROM clock_timestamp() - t0),
											 @extschema@._backend_cpu_ms() - cpu0, side, side_cpu));
		RAISE NOTICE 'upsell: tenant %: built % (% rows) in % ms%', tenant_id, m.model, coalesce(n, 0),
			round(1000 * extract(epoch FROM clock_timestamp() - t0)),
			CASE WHEN side THEN ', its rows computed by a background worker' ELSE '' END;
		IF m.build_order >= snapshot_order THEN
			-- once source_state has fixed the snapshot of the tenant's
			-- lines: side builds of the models still to build, while fewer
			-- than upsell.refresh_workers are computing
			PERFORM @extschema@._side_builds_start(tenant_id, m.build_order);
		END IF;
	END LOOP;
	-- the serving caches of every backend (of this node) re-read the
	-- tenant's models and what the rules' cache derives from them
	PERFORM @extschema@._models_changed(tenant_id);
	PERFORM @extschema@._hold_freed_memory(false);
	RETURN built;
END
$$;

-- Builds and publishes every model of one tenant (_build_tenant, on the
-- tenant's worker when distributed) in the caller's transaction (refresh
-- commits it), and records the builds.  Returns the rows per model.
CREATE FUNCTION @extschema@._refresh_tenant(run bigint, tenant_id bigint, incremental boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b jsonb;
	built jsonb := '{}';
	m record;
	distributed boolean;
	mined jsonb;
BEGIN
	-- one refresh of a tenant at a time (a second one waits, then rebuilds
	-- from what the first published); readers are not blocked by this
	PERFORM pg_advisory_xact_lock(@extschema@._refresh_lock_class('tenant'), hashint8(tenant_id));
	distributed := @extschema@._models_distributed();
	IF distributed THEN
		b := @extschema@._build_tenant_on_worker(tenant_id, incremental);
	ELSE
		b := @extschema@._build_tenant(tenant_id, incremental);
	END IF;
	FOR m IN SELECT d.model, (b -> d.model ->> 0)::bigint AS n, (b -> d.model ->> 1)::float8 AS ms,
					(b -> d.model ->> 2)::float8 AS cpu_ms, coalesce((b -> d.model ->> 3)::boolean, false) AS side,
					(b -> d.model ->> 4)::float8 AS side_cpu_ms
			 FROM @extschema@.model_definitions d WHERE b ? d.model ORDER BY d.build_order LOOP
		IF distributed THEN
			-- (the worker's notices do not come back over its connection)
			RAISE NOTICE 'upsell: tenant %: built % (% rows) in % ms on its worker', tenant_id, m.model, m.n, round(m.ms);
		END IF;
		INSERT INTO @extschema@.model_builds AS mb (tenant_id, model, row_count, built_at, build_ms, incremental,
													refresh_id, cpu_ms, side_build, side_cpu_ms)
		VALUES (tenant_id, m.model, m.n, now(), m.ms, incremental, run, m.cpu_ms, m.side, m.side_cpu_ms)
		ON CONFLICT ON CONSTRAINT model_builds_pkey DO UPDATE SET
			row_count = excluded.row_count, built_at = excluded.built_at, build_ms = excluded.build_ms,
			incremental = excluded.incremental, refresh_id = excluded.refresh_id, cpu_ms = excluded.cpu_ms,
			side_build = excluded.side_build, side_cpu_ms = excluded.side_cpu_ms;
		built := built || jsonb_build_object(m.model, m.n);
	END LOOP;
	-- published without bundles, as no count fitted the memory limit
	-- (_build_bundle_model said it in a WARNING): said in the log too
	SELECT s.settings -> 'bundles' INTO mined FROM @extschema@.source_state s
	WHERE s.tenant_id = _refresh_tenant.tenant_id;
	IF (mined ->> 'fitted')::boolean IS FALSE THEN
		PERFORM @extschema@._refresh_note(run, '54000', format(
			'tenant %s: published without bundles: mining exceeds upsell.itemsets_memory_limit (%s kB) even at min_count %s',
			tenant_id, mined ->> 'memory_limit_kb', mined ->> 'min_count'));
	END IF;
	-- a tenant without any rows left is gone: forget it
	IF NOT EXISTS (SELECT FROM jsonb_each_text(built) e WHERE e.value::bigint > 0) THEN
		DELETE FROM @extschema@.model_builds mb WHERE mb.tenant_id = _refresh_tenant.tenant_id;
	END IF;
	UPDATE @extschema@.refresh_log l
	SET tenants_ok = l.tenants_ok + 1,
		model_rows = (SELECT jsonb_object_agg(k, coalesce((l.model_rows ->> k)::bigint, 0) + (built ->> k)::bigint)
					  FROM jsonb_object_keys(built) k)
	WHERE l.refresh_id = run;
	-- built on a worker: the coordinator's serving caches are told too
	IF distributed THEN
		PERFORM @extschema@._models_changed(tenant_id);
	END IF;
	RETURN built;
END
$$;

-- Records a tenant's failed build (its transaction was rolled back: its
-- previous models keep serving), one of tenants being refreshed.  True when
-- it was a cancel or a timeout.
CREATE FUNCTION @extschema@._refresh_tenant_failed(run bigint, tenant_id bigint, sqlstate text, message text,
	tenants int)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- a NULL tenant: the refresh failed before it built any
	UPDATE @extschema@.refresh_log l
	SET tenants_failed = l.tenants_failed + CASE WHEN _refresh_tenant_failed.tenant_id IS NULL THEN 0 ELSE 1 END,
		failures = coalesce(l.failures, '{}') || jsonb_build_object(
					coalesce(_refresh_tenant_failed.tenant_id::text, 'all'),
					jsonb_build_object('sqlstate', sqlstate, 'error', message)),
		-- (the first failure takes the place of a note: _refresh_note)
		error = CASE WHEN l.failures IS NULL THEN message ELSE coalesce(l.error, message) END,
		error_sqlstate = CASE WHEN l.failures IS NULL THEN sqlstate ELSE coalesce(l.error_sqlstate, sqlstate) END
	WHERE l.refresh_id = run;
	IF sqlstate = '57014' THEN
		RAISE WARNING 'upsell: refresh % cancelled: %', run, message
			USING DETAIL = 'The tenant being built keeps its previous models; the tenants finished before are published.';
		RETURN true;
	END IF;
	-- (a refresh of one tenant raises the error itself)
	IF tenants > 1 THEN
		RAISE WARNING 'upsell: refresh of tenant % failed: %', tenant_id, message
			USING DETAIL = 'Its previous models keep serving; the other tenants are refreshed.';
	END IF;
	RETURN false;
END
$$;

-- The end of a refresh: its status and duration in the log, the run's lock
-- released.  True when it must end in an error: cancelled, or no tenant
-- refreshed and one failed.
CREATE FUNCTION @extschema@._refresh_end(run bigint, cancelled boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st text;
BEGIN
	UPDATE @extschema@.refresh_log l
	SET finished_at = clock_timestamp(),
		duration_ms = 1000 * extract(epoch FROM clock_timestamp() - l.started_at),
		status = CASE WHEN cancelled THEN 'cancelled'
					  WHEN l.failures IS NULL THEN 'ok'
					  WHEN l.tenants_ok = 0 THEN 'failed'
					  ELSE 'partial' END
	WHERE l.refresh_id = run
	RETURNING l.status INTO st;
	PERFORM pg_advisory_unlock(@extschema@._refresh_lock_class('run'), (run % 2147483647)::int);
	-- (a refresh that fails or is cancelled says so by its error)
	IF st IN ('ok', 'partial') THEN
		RAISE NOTICE 'upsell: refresh % %: % ms', run, st,
			(SELECT round(l.duration_ms) FROM @extschema@.refresh_log l WHERE l.refresh_id = run);
	END IF;
	RETURN st IN ('cancelled', 'failed');
END
$$;

-- Re-raises the first error of a refresh that ends in one.
CREATE FUNCTION @extschema@._refresh_raise(sqlstate text, message text, detail text, hint text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF sqlstate = '57014' THEN
		RAISE EXCEPTION USING MESSAGE = message, ERRCODE = sqlstate,
			HINT = 'The tenant being built keeps its previous models; see upsell.refresh_log.';
	END IF;
	hint := concat_ws(' ', nullif(hint, ''), 'The previous models keep serving.');
	IF coalesce(detail, '') = '' THEN
		RAISE EXCEPTION USING MESSAGE = message, ERRCODE = sqlstate, HINT = hint;
	END IF;
	RAISE EXCEPTION USING MESSAGE = message, ERRCODE = sqlstate, DETAIL = detail, HINT = hint;
END
$$;

-- No SET clause: a procedure with one may not COMMIT.  So it runs with the
-- caller's search_path (often a superuser's, or pg_cron's), and its body
-- names every type and function with its schema and uses no operator: an
-- object of another schema that matches exactly would win over pg_catalog's.
CREATE PROCEDURE @extschema@.refresh(incremental boolean DEFAULT false, tenant_id bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
	atomic constant pg_catalog.bool := @extschema@._in_transaction_block();
	run pg_catalog.int8;
	tenants pg_catalog.int8[];
	t pg_catalog.int8;
	cancelled pg_catalog.bool := false;
	must_raise pg_catalog.bool;
	err_message pg_catalog.text;
	err_state pg_catalog.text;
	err_detail pg_catalog.text;
	err_hint pg_catalog.text;
	first_message pg_catalog.text;
	first_state pg_catalog.text;
	first_detail pg_catalog.text;
	first_hint pg_catalog.text;
BEGIN
	-- a session bound to a tenant refreshes that one, as every function
	-- takes the bound tenant for a NULL tenant_id (and refuses another)
	tenant_id := @extschema@._bound_tenant(tenant_id);
	run := @extschema@._refresh_begin(incremental, tenant_id);
	-- the log row and its lock are visible at once (not inside BEGIN ... COMMIT)
	IF NOT atomic THEN
		COMMIT;
	END IF;
	BEGIN
		tenants := @extschema@._refresh_tenants(tenant_id);
		PERFORM @extschema@._refresh_check_sources(run, tenants);
		IF NOT incremental THEN
			PERFORM @extschema@._refresh_bad_rows(run, tenants);
		END IF;
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		GET STACKED DIAGNOSTICS first_message = MESSAGE_TEXT, first_state = RETURNED_SQLSTATE,
								first_detail = PG_EXCEPTION_DETAIL, first_hint = PG_EXCEPTION_HINT;
		cancelled := @extschema@._refresh_tenant_failed(run, NULL, first_state, first_message, 0);
		tenants := '{}';
	END;
	FOREACH t IN ARRAY tenants LOOP
		BEGIN
			PERFORM @extschema@._refresh_tenant(run, t, incremental);
		EXCEPTION WHEN OTHERS OR query_canceled THEN
			-- the tenant's subtransaction is rolled back: its previous models keep serving
			GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
									err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
			cancelled := @extschema@._refresh_tenant_failed(run, t, err_state, err_message,
															 pg_catalog.cardinality(tenants));
			IF cancelled OR first_message IS NULL THEN
				first_message := err_message;
				first_state := err_state;
				first_detail := err_detail;
				first_hint := err_hint;
			END IF;
		END;
		-- publish this tenant (outside BEGIN ... COMMIT; inside, the caller's commit does)
		IF NOT atomic THEN
			COMMIT;
		END IF;
		EXIT WHEN cancelled;
	END LOOP;
	must_raise := @extschema@._refresh_end(run, cancelled);
	IF NOT atomic THEN
		COMMIT;
	END IF;
	IF must_raise THEN
		-- cancelled, or no tenant refreshed: the first error (logged and committed above)
		PERFORM @extschema@._refresh_raise(first_state, first_message, first_detail, first_hint);
	END IF;
END
$$;
COMMENT ON PROCEDURE @extschema@.refresh(boolean, bigint) IS
	'rebuilds the models of every tenant (or of tenant_id) from the registered sources and publishes each tenant in its own transaction (MVCC: readers never wait and see one complete version); a tenant whose build fails keeps its previous models; logged in upsell.refresh_log; incremental => true folds in the order lines committed since the tenant''s last refresh where the rest is unchanged, else rebuilds the tenant in full and says why (upsell.source_state)';
