
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

CREATE PROCEDURE @extschema@.refresh(incremental boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
	current_slot text;
	target text;
	m record;
	n bigint;
	t0 timestamptz;
	started timestamptz := pg_catalog.clock_timestamp();
BEGIN
	IF incremental IS NULL THEN
		RAISE EXCEPTION 'incremental must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- one refresh at a time; readers are not blocked by this
	SELECT s.active INTO current_slot FROM @extschema@.model_state s FOR UPDATE;
	target := CASE current_slot WHEN 'a' THEN 'b' ELSE 'a' END;

	-- the views over the shop's tables, if a DROP ... CASCADE took them
	IF pg_catalog.to_regclass('@extschema@.order_lines') IS NULL THEN
		PERFORM @extschema@._sync_order_lines();
	END IF;
	IF pg_catalog.to_regclass('@extschema@.catalog') IS NULL THEN
		PERFORM @extschema@._sync_catalog();
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.order_source) THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;

	FOR m IN SELECT * FROM @extschema@.models ORDER BY build_order LOOP
		t0 := pg_catalog.clock_timestamp();
		EXECUTE pg_catalog.format('TRUNCATE %s', @extschema@._slot_table(m.model, target));
		EXECUTE pg_catalog.format('SELECT %s($1, $2)', m.builder::regproc) INTO n USING target, incremental;
		EXECUTE pg_catalog.format('ANALYZE %s', @extschema@._slot_table(m.model, target));
		UPDATE @extschema@.models SET row_count = n, built_at = pg_catalog.now(),
			build_ms = 1000 * extract(epoch FROM pg_catalog.clock_timestamp() - t0)
		WHERE model = m.model;
		RAISE NOTICE 'upsell: built % (% rows) in % ms', m.model, n,
			round(1000 * extract(epoch FROM pg_catalog.clock_timestamp() - t0));
	END LOOP;

	-- the swap: every model view at once, at the very end
	FOR m IN SELECT * FROM @extschema@.models ORDER BY build_order LOOP
		EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW @extschema@.%I AS SELECT * FROM %s',
								  m.model, @extschema@._slot_table(m.model, target));
	END LOOP;
	UPDATE @extschema@.model_state SET active = target, refreshed_at = pg_catalog.now();
	RAISE NOTICE 'upsell: refresh done in % ms',
		round(1000 * extract(epoch FROM pg_catalog.clock_timestamp() - started));
END
$$;
COMMENT ON PROCEDURE @extschema@.refresh(boolean) IS
	'rebuilds every model from the registered sources into the idle slot and swaps it in atomically; readers are never blocked by the build';
