
-- ===========================================================================
-- Models: what refresh stores, and how it swaps them in
-- ===========================================================================
--
-- Every model is two identical tables, <model>_a and <model>_b, and a view
-- <model> that points at one of them.  upsell.refresh() fills the slot the
-- views do not point at while readers go on reading the other, then points
-- every view at the new slot in one short step at the end of its
-- transaction.  A failed refresh rolls back and leaves the old slot serving.
--
-- A layer adds a model with upsell._define_model() in its install script:
-- its builder function (slot "a" or "b", incremental) fills the slot's
-- table and returns the number of rows.  Builders run in build_order, so a
-- builder may read the tables that earlier builders filled in the same slot.

CREATE TABLE @extschema@.model_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	active		"char" NOT NULL DEFAULT 'a' CHECK (active IN ('a', 'b')),
	refreshed_at timestamptz
);
INSERT INTO @extschema@.model_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.model_state IS
	'which slot (a or b) of every model the model views point at, and when refresh last swapped them';

CREATE TABLE @extschema@.models (
	model		name PRIMARY KEY,
	build_order	int NOT NULL UNIQUE,
	builder		regprocedure NOT NULL,
	description	text NOT NULL,
	row_count	bigint,
	built_at	timestamptz,
	build_ms	float8
);
COMMENT ON TABLE @extschema@.models IS
	'the models refresh builds, in build_order, with the rows and time of their last build';

CREATE FUNCTION @extschema@._define_model(model name, columns text, indexes text[],
	build_order int, builder regprocedure, description text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	slot text;
	ix text;
BEGIN
	FOREACH slot IN ARRAY ARRAY['a', 'b'] LOOP
		EXECUTE format('CREATE TABLE @extschema@.%I (%s)', model || '_' || slot, columns);
		FOREACH ix IN ARRAY coalesce(indexes, '{}') LOOP
			EXECUTE format('CREATE INDEX ON @extschema@.%I %s', model || '_' || slot, ix);
		END LOOP;
	END LOOP;
	EXECUTE format('CREATE VIEW @extschema@.%I AS SELECT * FROM @extschema@.%I', model, model || '_a');
	EXECUTE format('COMMENT ON VIEW @extschema@.%I IS %L', model, description);
	INSERT INTO @extschema@.models (model, build_order, builder, description)
	VALUES (model, build_order, builder, description);
END
$$;

-- The model table a refresh writes into.
CREATE FUNCTION @extschema@._slot_table(model name, slot text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.format('@extschema@.%I', model || '_' || slot);

CREATE TABLE @extschema@.refresh_log (
	refresh_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	started_at	timestamptz NOT NULL,
	finished_at	timestamptz NOT NULL,
	duration_ms	float8 NOT NULL,
	incremental	boolean NOT NULL,
	status		text NOT NULL CHECK (status IN ('ok', 'failed')),
	model_rows	jsonb,
	error		text,
	error_sqlstate text
);
COMMENT ON TABLE @extschema@.refresh_log IS
	'one row per upsell.refresh(): start, end, duration, rows per model, and the error of a failed refresh (whose previous models kept serving)';

-- What the serving cache of each backend (src/serving.c) is keyed by: every
-- refresh (the swap below) and every change of a table of merchant rules (a
-- trigger, created by the funnel layer) draws a new config_version from a
-- sequence -- never reused, so a cache filled inside a transaction that
-- rolled back cannot match a later version.  The stages read it once per
-- request and re-read the rules when it moved.

CREATE SEQUENCE @extschema@.config_version_seq;

CREATE TABLE @extschema@.serving_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	config_version bigint NOT NULL DEFAULT 0
);
INSERT INTO @extschema@.serving_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.serving_state IS
	'the version of the models and the merchant''s rules (offers, exclusions, stage settings, thresholds, volume tiers, registrations) that the serving cache of each backend is checked against';

CREATE FUNCTION @extschema@._rules_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE @extschema@.serving_state
	SET config_version = nextval('@extschema@.config_version_seq');
	RETURN NULL;
END
$$;

CREATE FUNCTION @extschema@._in_transaction_block() RETURNS boolean
	AS 'MODULE_PATHNAME', 'upsell_in_transaction_block'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Builds every model into the idle slot and swaps the views; returns the
-- rows per model.  Runs inside refresh()'s subtransaction.
CREATE FUNCTION @extschema@._build_models(incremental boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	current_slot text;
	target text;
	m record;
	n bigint;
	t0 timestamptz;
	built jsonb := '{}';
BEGIN
	-- one refresh at a time; readers are not blocked by this
	SELECT s.active INTO current_slot FROM @extschema@.model_state s FOR UPDATE;
	target := CASE current_slot WHEN 'a' THEN 'b' ELSE 'a' END;

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

	FOR m IN SELECT * FROM @extschema@.models ORDER BY build_order LOOP
		t0 := clock_timestamp();
		EXECUTE format('TRUNCATE %s', @extschema@._slot_table(m.model, target));
		EXECUTE format('SELECT %s($1, $2)', m.builder::regproc) INTO n USING target, incremental;
		EXECUTE format('ANALYZE %s', @extschema@._slot_table(m.model, target));
		UPDATE @extschema@.models SET row_count = n, built_at = now(),
			build_ms = 1000 * extract(epoch FROM clock_timestamp() - t0)
		WHERE model = m.model;
		built := built || jsonb_build_object(m.model, n);
		RAISE NOTICE 'upsell: built % (% rows) in % ms', m.model, n,
			round(1000 * extract(epoch FROM clock_timestamp() - t0));
	END LOOP;

	-- the swap: every model view at once, at the very end
	FOR m IN SELECT * FROM @extschema@.models ORDER BY build_order LOOP
		EXECUTE format('CREATE OR REPLACE VIEW @extschema@.%I AS SELECT * FROM %s',
					   m.model, @extschema@._slot_table(m.model, target));
	END LOOP;
	UPDATE @extschema@.model_state SET active = target, refreshed_at = now();
	UPDATE @extschema@.serving_state SET config_version = nextval('@extschema@.config_version_seq');
	RETURN built;
END
$$;

-- No SET clause: a procedure with one may not COMMIT.
CREATE PROCEDURE @extschema@.refresh(incremental boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
	started timestamptz := pg_catalog.clock_timestamp();
	built jsonb;
	err_message text;
	err_state text;
	err_detail text;
	err_hint text;
BEGIN
	IF incremental IS NULL THEN
		RAISE EXCEPTION 'incremental must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	RAISE NOTICE 'upsell: % refresh started', CASE WHEN incremental THEN 'incremental' ELSE 'full' END;
	BEGIN
		built := @extschema@._build_models(incremental);
	EXCEPTION WHEN OTHERS THEN
		-- the subtransaction is rolled back: the previous models keep serving
		GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
								err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
	END;
	INSERT INTO @extschema@.refresh_log (started_at, finished_at, duration_ms, incremental,
										 status, model_rows, error, error_sqlstate)
	VALUES (started, pg_catalog.clock_timestamp(),
			1000 * extract(epoch FROM pg_catalog.clock_timestamp() - started), incremental,
			CASE WHEN err_message IS NULL THEN 'ok' ELSE 'failed' END, built, err_message, err_state);
	IF err_message IS NOT NULL THEN
		-- keep the log entry of the failure, unless the caller's transaction forbids it
		IF NOT @extschema@._in_transaction_block() THEN
			COMMIT;
		END IF;
		err_hint := concat_ws(' ', nullif(err_hint, ''), 'The previous models keep serving.');
		IF coalesce(err_detail, '') = '' THEN
			RAISE EXCEPTION USING MESSAGE = err_message, ERRCODE = err_state, HINT = err_hint;
		END IF;
		RAISE EXCEPTION USING MESSAGE = err_message, ERRCODE = err_state, DETAIL = err_detail, HINT = err_hint;
	END IF;
	RAISE NOTICE 'upsell: refresh done in % ms',
		round(1000 * extract(epoch FROM pg_catalog.clock_timestamp() - started));
END
$$;
COMMENT ON PROCEDURE @extschema@.refresh(boolean) IS
	'rebuilds every model from the registered sources into the idle slot and swaps it in atomically, logging to upsell.refresh_log; incremental => true folds in only order lines newer than the last refresh';
