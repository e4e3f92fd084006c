
-- ===========================================================================
-- Experiments: assignment, tracking, results with statistics; merchant metrics
-- ===========================================================================
--
-- An experiment splits units (customers) between variants in proportion to
-- their weights by a hash of experiment name and unit id (src/core/stats.c):
-- no state per unit, the same answer on every server and after restarts.
-- Each variant enables a set of offer types (the control enables none); the
-- funnel stages ask upsell.variant_offer_types() which ones to show.  The
-- shop records what it showed in upsell.exposures and what customers did
-- with offers in upsell.offer_events; conversions come from the registered
-- orders.  upsell.experiment_results() compares every variant with the
-- control; upsell.metrics() gives the shop's figures per period.

-- The offer types the tactics produce (the vocabulary of the funnel stages).
CREATE FUNCTION @extschema@._offer_types()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY['complement', 'upgrade', 'bundle', 'gap_filler', 'quantity_tier',
			 'subscription', 'restock', 'downsell', 'pinned']::text[];

CREATE TABLE IF NOT EXISTS @extschema@.experiments (
	experiment	text PRIMARY KEY CHECK (experiment <> ''),
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	control		text NOT NULL DEFAULT 'control',
	conversion_window interval NOT NULL DEFAULT '7 days' CHECK (conversion_window > '0'::interval),
	started_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	ended_at	timestamptz CHECK (ended_at > started_at),
	description	text
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.experiments', '');
COMMENT ON TABLE @extschema@.experiments IS
	'A/B tests: name, tenant, funnel stage (NULL = every stage), control variant, conversion window, start, end; variants in upsell.experiment_variants';

-- A weight as the share assign() and the results compute with: a weight
-- below float8's smallest normal number (1e-400, which the table's CHECK
-- lets in) is none
-- (until 1.8 it failed every request naming the experiment: "out of range
-- for type double precision").  Inlined: SQL-standard body.
CREATE FUNCTION @extschema@._weight_share(weight numeric)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN weight OPERATOR(pg_catalog.<) 2.2250738585072014e-308 THEN 0::pg_catalog.float8
			ELSE weight::pg_catalog.float8 END;

CREATE TABLE IF NOT EXISTS @extschema@.experiment_variants (
	experiment	text NOT NULL REFERENCES @extschema@.experiments ON UPDATE CASCADE ON DELETE CASCADE,
	variant		text NOT NULL CHECK (variant <> ''),
	weight		numeric NOT NULL CHECK (weight >= 0 AND weight < 'Infinity'),
	offer_types	text[] NOT NULL DEFAULT '{}'
		CHECK (offer_types <@ @extschema@._offer_types() AND pg_catalog.array_position(offer_types, NULL) IS NULL),
	description	text,
	PRIMARY KEY (experiment, variant),
	-- weights become float8 shares: bounded far below its range
	CONSTRAINT experiment_variants_weight_bounded CHECK (weight <= 1e12)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.experiment_variants', '');
COMMENT ON TABLE @extschema@.experiment_variants IS
	'variants of an experiment: weight (share of units = weight / sum of weights) and the offer types the variant shows (empty = no offers, the usual control)';

-- Whether the weights of an experiment split units: one of its variants has
-- a positive share (upsell.assign() gives every unit the control otherwise).
-- True for an experiment without variants: there is no split to break.
-- (A body in a string, not RETURN: it runs in the variants' trigger, on
-- Citus on the workers, where a SQL-standard body that reads a table
-- failed: syntax error at or near "RETURN".)
CREATE FUNCTION @extschema@._weights_usable(experiment text)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT NOT EXISTS (SELECT FROM @extschema@.experiment_variants v WHERE v.experiment = $1)
		OR EXISTS (SELECT FROM @extschema@.experiment_variants v
				   WHERE v.experiment = $1 AND @extschema@._weight_share(v.weight) > 0)
$$;

-- Variants whose weights are all 0 (or below float8's range) are reported
-- when they are defined, whichever way (INSERT, UPDATE, DELETE of the last
-- positive one; set_weights refuses them at once).  Checked at commit, on
-- the variants as they then are, so that a split may be built or rebalanced
-- one row at a time in a transaction.  A WARNING, not an error: a restore
-- (pg_restore, which COPYs the rows with triggers on) or ALTER EXTENSION
-- UPDATE must keep such rows (from before 1.9, or loaded with triggers
-- off), and an error at commit lost the variants of every experiment and
-- then their exposures; serving copes with them (every unit gets the
-- control).
CREATE FUNCTION @extschema@._check_weights()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	name text;
	-- the experiments this transaction was warned of: once each, not once
	-- per row changed (the check runs per row, on the rows as they are at
	-- commit, so a second check of one experiment would say the same)
	warned jsonb := coalesce(nullif(current_setting('upsell_weights.warned', true), ''), '[]')::jsonb;
BEGIN
	FOREACH name IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.experiment]
							WHEN 'DELETE' THEN ARRAY[OLD.experiment]
							ELSE ARRAY[OLD.experiment, NEW.experiment] END LOOP
		CONTINUE WHEN warned ? name;
		IF NOT @extschema@._weights_usable(name) THEN
			warned := warned || to_jsonb(name);
			PERFORM set_config('upsell_weights.warned', warned::text, true);
			RAISE WARNING 'the weights of experiment "%" are all zero: every unit gets the control until a variant gets a positive weight', name
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'A variant''s share of units is its weight over the sum of the weights; with no positive weight (or none above 2.2e-308) no unit can be split.',
					  HINT = 'Give at least one variant a positive weight, e.g. with upsell.set_weights().';
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER check_weights AFTER INSERT OR UPDATE OR DELETE ON @extschema@.experiment_variants
	DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW EXECUTE FUNCTION @extschema@._check_weights();

CREATE TABLE IF NOT EXISTS @extschema@.exposures (
	exposure_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	experiment	text NOT NULL,
	unit_id		text NOT NULL,
	variant		text NOT NULL,
	stage		text CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	offer		text,
	shown_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	FOREIGN KEY (experiment, variant) REFERENCES @extschema@.experiment_variants
		ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS exposures_experiment_unit_id_shown_at_idx ON @extschema@.exposures (experiment, unit_id, shown_at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.exposures', '');
-- the identity's position too, or rows added after a restore would collide
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.exposures', 'exposure_id')::regclass, '');
COMMENT ON TABLE @extschema@.exposures IS
	'one row each time a unit (customer) of an experiment was shown its variant at a stage; variant is filled in by upsell.assign() when omitted';

CREATE TABLE IF NOT EXISTS @extschema@.offer_events (
	event_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	unit_id		text NOT NULL,
	offer_type	text NOT NULL CHECK (offer_type = ANY (@extschema@._offer_types())),
	product_id	bigint NOT NULL,
	event		text NOT NULL CHECK (event IN ('shown', 'click', 'add')),
	stage		text CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	experiment	text REFERENCES @extschema@.experiments ON UPDATE CASCADE ON DELETE SET NULL,
	occurred_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX IF NOT EXISTS offer_events_tenant_id_unit_id_occurred_at_idx ON @extschema@.offer_events (tenant_id, unit_id, occurred_at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.offer_events', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.offer_events', 'event_id')::regclass, '');
COMMENT ON TABLE @extschema@.offer_events IS
	'what a unit (customer) did with one offered product: shown, click, add (to cart); adds followed by an order of the product are attributed to the offer type';

-- ---------------------------------------------------------------------------
-- Assignment
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.unit_hash(experiment text, unit_id text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_unit_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.unit_hash(text, text) IS
	'the 64-bit hash assignment uses: FNV-1a over the bytes of experiment, a zero byte and unit_id, then the MurmurHash3 finalizer; the same on every platform';

-- Whether an experiment is on: started and not ended.
CREATE FUNCTION @extschema@._experiment_on(e @extschema@.experiments)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN e.started_at <= pg_catalog.now() AND (e.ended_at IS NULL OR e.ended_at > pg_catalog.now());

-- The experiment of that name; with tenant_id, only one of that tenant's
-- (a request of one shop never runs, nor feeds, another shop's test: the
-- other's is as unknown to it as a name never created).
CREATE FUNCTION @extschema@._experiment(experiment text, tenant_id bigint DEFAULT NULL)
RETURNS @extschema@.experiments
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e @extschema@.experiments;
BEGIN
	IF experiment IS NULL THEN
		RAISE EXCEPTION 'experiment must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- a session bound to a tenant reaches that tenant's experiments only
	tenant_id := @extschema@._bound_tenant(tenant_id);
	SELECT * INTO e FROM @extschema@.experiments x WHERE x.experiment = _experiment.experiment;
	IF NOT FOUND OR e.tenant_id <> _experiment.tenant_id THEN
		RAISE EXCEPTION 'experiment "%" does not exist%', experiment,
			CASE WHEN _experiment.tenant_id IS NOT NULL THEN format(' for tenant %s', _experiment.tenant_id) ELSE '' END
			USING ERRCODE = 'undefined_object',
				  HINT = 'Experiments are rows of upsell.experiments, each of one tenant.';
	END IF;
	RETURN e;
END
$$;

CREATE FUNCTION @extschema@.assign(experiment text, unit_id text)
RETURNS text
AS 'MODULE_PATHNAME', 'upsell_assign'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.assign(text, text) IS
	'the variant of a unit (customer) in an experiment: a stable hash of experiment and unit, split in proportion to the variant weights; no randomness, no state; the control (else the first variant by name) when no weight is positive; NULL (no variant) when the experiment has no variants';

-- The offer types the unit's variant shows; NULL means "no experiment: all".
CREATE FUNCTION @extschema@.variant_offer_types(experiment text, unit_id text, stage text DEFAULT NULL,
	tenant_id bigint DEFAULT NULL)
RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e @extschema@.experiments;
	result text[];
BEGIN
	IF experiment IS NULL THEN
		RETURN NULL;
	END IF;
	e := @extschema@._experiment(experiment, tenant_id);
	IF unit_id IS NULL OR NOT @extschema@._experiment_on(e)
	   OR (e.stage IS NOT NULL AND variant_offer_types.stage IS NOT NULL AND e.stage <> variant_offer_types.stage) THEN
		RETURN NULL;
	END IF;
	SELECT v.offer_types INTO result
	FROM @extschema@.experiment_variants v
	WHERE v.experiment = e.experiment
	  AND v.variant = @extschema@.assign(e.experiment, unit_id);
	RETURN result;
END
$$;
COMMENT ON FUNCTION @extschema@.variant_offer_types(text, text, text, bigint) IS
	'offer types the unit''s variant shows ({} = none, the control); NULL (= show everything) when experiment or unit is NULL, the experiment is not running, has no variants, or is for another stage; with tenant_id (as the funnel stages ask) an experiment of another tenant is an error, as an unknown one';

-- Variants and weights of a running experiment with exposures are frozen:
-- moving units between variants mid-test biases every comparison.  A change
-- holds the split lock (_lock_splits), so it has waited for the exposures
-- being recorded, which hold it shared (_exposure_variant), and counts them
-- committed (until 1.9 a change made while the first exposure was not yet
-- committed went through, and that exposure kept the split it had been
-- assigned by).
CREATE FUNCTION @extschema@._guard_variants()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	name text;
	e @extschema@.experiments;
	n bigint;
BEGIN
	IF TG_OP = 'UPDATE' AND NEW.experiment = OLD.experiment AND NEW.variant = OLD.variant
	   AND NEW.weight = OLD.weight THEN
		RETURN NEW;				-- offer types and description may change
	END IF;
	IF coalesce(current_setting('upsell.force_weight_change', true), 'off')::boolean THEN
		RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	FOREACH name IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.experiment]
							WHEN 'DELETE' THEN ARRAY[OLD.experiment]
							ELSE ARRAY[OLD.experiment, NEW.experiment] END LOOP
		SELECT * INTO e FROM @extschema@.experiments x WHERE x.experiment = name;
		CONTINUE WHEN NOT FOUND OR NOT @extschema@._experiment_on(e);
		SELECT count(*) INTO n FROM @extschema@.exposures x WHERE x.experiment = name;
		IF n > 0 THEN
			RAISE EXCEPTION 'cannot change the variants or weights of running experiment "%"', name
				USING ERRCODE = 'object_in_use',
					  DETAIL = format('It started at %s and has %s exposures; changing the split now moves units between variants and biases the results.', e.started_at, n),
					  HINT = 'End it (set ended_at) and start a new experiment, or force it with upsell.set_weights(..., force => true) or SET LOCAL upsell.force_weight_change = on.';
		END IF;
	END LOOP;
	RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER guard_variants BEFORE INSERT OR UPDATE OR DELETE ON @extschema@.experiment_variants
	FOR EACH ROW EXECUTE FUNCTION @extschema@._guard_variants();

-- The split lock, taken exclusively by every statement that may change a
-- split, before the statement locks any row: a DELETE or UPDATE locks its
-- row before the row trigger runs, so a lock taken there
-- deadlocked with a page that had recorded an exposure (holding the lock
-- shared) and recorded another of that row's variant (its foreign key
-- waits for the row lock).  A statement does not know its experiments
-- beforehand, so one key for all of them: a change waits for every
-- exposure being recorded, and exposures wait for a change until it
-- commits; changes of variants are rare admin actions.  A forced change
-- does not take it (it accepts to move units anyway).
CREATE FUNCTION @extschema@._lock_splits()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT coalesce(current_setting('upsell.force_weight_change', true), 'off')::boolean THEN
		PERFORM pg_advisory_xact_lock(@extschema@._refresh_lock_class('split'), 0);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER lock_splits BEFORE INSERT OR UPDATE OF experiment, variant, weight OR DELETE
	ON @extschema@.experiment_variants
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._lock_splits();
-- renaming or deleting an experiment locks its row, then cascades to its
-- variants: a page that recorded an exposure and then an offer event of
-- the experiment (whose foreign key waits for that row) would deadlock too
CREATE TRIGGER lock_splits BEFORE UPDATE OF experiment OR DELETE ON @extschema@.experiments
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._lock_splits();

-- The name is half of every unit's hash (upsell.assign): renaming a running
-- experiment with exposures moves about half its units to another variant,
-- as a change of weights would.  It waits until the experiment has ended,
-- or the same force.  (Deleting one stays a deliberate act: it takes its
-- variants and exposures along.)
CREATE FUNCTION @extschema@._guard_experiment_name()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF NEW.experiment = OLD.experiment
	   OR coalesce(current_setting('upsell.force_weight_change', true), 'off')::boolean
	   OR NOT @extschema@._experiment_on(OLD) THEN
		RETURN NEW;
	END IF;
	SELECT count(*) INTO n FROM @extschema@.exposures x WHERE x.experiment = OLD.experiment;
	IF n > 0 THEN
		RAISE EXCEPTION 'cannot rename running experiment "%"', OLD.experiment
			USING ERRCODE = 'object_in_use',
				  DETAIL = format('It started at %s and has %s exposures; its name is part of every unit''s assignment, so renaming it moves units between variants and biases the results.',
								  OLD.started_at, n),
				  HINT = 'End it (set ended_at) and start a new experiment, or force it with SET LOCAL upsell.force_weight_change = on.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER guard_experiment_name BEFORE UPDATE OF experiment ON @extschema@.experiments
	FOR EACH ROW EXECUTE FUNCTION @extschema@._guard_experiment_name();

CREATE FUNCTION @extschema@.set_weights(experiment text, weights jsonb, force boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	kv record;
	w numeric;
	was text := coalesce(current_setting('upsell.force_weight_change', true), 'off');
BEGIN
	IF weights IS NULL OR force IS NULL THEN
		RAISE EXCEPTION 'weights and force must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._experiment(experiment);
	IF jsonb_typeof(weights) <> 'object' THEN
		RAISE EXCEPTION 'weights must be a JSON object of variant names and weights, not %', weights
			USING ERRCODE = 'invalid_parameter_value', HINT = 'For example ''{"control": 50, "fbt": 50}''.';
	END IF;
	IF force THEN
		PERFORM set_config('upsell.force_weight_change', 'on', true);
	END IF;
	FOR kv IN SELECT * FROM jsonb_each(weights) LOOP
		IF jsonb_typeof(kv.value) <> 'number' THEN
			RAISE EXCEPTION 'weight of variant "%" must be a number, not %', kv.key, kv.value
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		w := kv.value::numeric;
		IF w < 0 THEN
			RAISE EXCEPTION 'weight of variant "%" must not be negative, not %', kv.key, w
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		UPDATE @extschema@.experiment_variants v SET weight = w
		WHERE v.experiment = set_weights.experiment AND v.variant = kv.key;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'experiment "%" has no variant "%"', experiment, kv.key
				USING ERRCODE = 'undefined_object';
		END IF;
	END LOOP;
	-- (refused here; the check_weights trigger only warns at commit)
	IF NOT @extschema@._weights_usable(experiment) THEN
		RAISE EXCEPTION 'the weights of experiment "%" would all be zero', experiment
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM set_config('upsell.force_weight_change', was, true);
END
$$;
COMMENT ON FUNCTION @extschema@.set_weights(text, jsonb, boolean) IS
	'sets variant weights from a JSON object {"variant": weight}; refused for a running experiment with exposures unless force is true';

-- Exposures get the unit's variant when the shop does not say.  A variant
-- given explicitly is kept as recorded (the foreign key makes sure it is one
-- of the experiment's): a shop may assign with its own tool, and a restore
-- from pg_dump must reload rows recorded before a forced weight change.
-- The split lock (_lock_splits) taken shared, until the transaction ends,
-- by whatever a page records of an experiment.  The split is frozen from
-- the first exposure (_guard_variants): held until the exposure commits,
-- the lock makes a change of a split wait and then see it, and a change
-- under way makes the exposure wait and then assign by the new split.
-- Shared: pages do not wait for one another.  An advisory lock, not the
-- experiment's row FOR SHARE, which would need UPDATE on
-- upsell.experiments (upsell_reader records exposures).  A page takes it
-- before it locks any row of experiments or variants (the foreign keys of
-- offer_events and exposures do): a change takes the lock and then those
-- rows, so a page holding a row and then asking for the lock behind a
-- waiting change deadlocked with it (40P01, until 1.9).  Fully qualified
-- and without SET, so that it is inlined: a SET made each offer event
-- inserted cost 35 us instead of 8.  (A body in a string, as
-- _weights_usable's: it runs in the exposures' trigger, on Citus on the
-- workers.)
CREATE FUNCTION @extschema@._share_split_lock()
RETURNS void
LANGUAGE sql VOLATILE
AS $$
	SELECT pg_catalog.pg_advisory_xact_lock_shared(@extschema@._refresh_lock_class('split'), 0)
$$;

CREATE FUNCTION @extschema@._exposure_variant()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._share_split_lock();
	IF NEW.variant IS NULL THEN
		NEW.variant := @extschema@.assign(NEW.experiment, NEW.unit_id);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER exposure_variant BEFORE INSERT ON @extschema@.exposures
	FOR EACH ROW EXECUTE FUNCTION @extschema@._exposure_variant();

-- An offer event of an experiment: its foreign key locks the experiment's
-- row (FOR KEY SHARE, after the row triggers), so the split lock first
-- (_share_split_lock), for events inserted directly as for record_event's.
CREATE FUNCTION @extschema@._offer_event_split_lock()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._share_split_lock();
	RETURN NEW;
END
$$;
CREATE TRIGGER offer_event_split_lock BEFORE INSERT ON @extschema@.offer_events
	FOR EACH ROW WHEN (NEW.experiment IS NOT NULL) EXECUTE FUNCTION @extschema@._offer_event_split_lock();

CREATE FUNCTION @extschema@.record_exposure(experiment text, unit_id text, stage text DEFAULT NULL,
	offer text DEFAULT NULL, shown_at timestamptz DEFAULT pg_catalog.now())
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v text;
BEGIN
	IF experiment IS NULL OR unit_id IS NULL OR shown_at IS NULL THEN
		RAISE EXCEPTION 'experiment, unit_id and shown_at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- as record_event checks them (the table's CHECK would name only itself)
	IF stage NOT IN ('product_page', 'cart', 'post_purchase') THEN
		RAISE EXCEPTION 'stage must be product_page, cart or post_purchase, not %', quote_literal(stage)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT isfinite(shown_at) THEN
		-- (an exposure at infinity would count as a unit of every period)
		RAISE EXCEPTION 'shown_at must be a finite time, not %', shown_at
			USING ERRCODE = 'datetime_field_overflow';
	END IF;
	-- Before looking at the experiment and its variants, so that a change
	-- of them being committed is seen once it is (until 1.9 variants
	-- deleted meanwhile failed the insert: 23502, no variant assigned).
	PERFORM @extschema@._share_split_lock();
	-- (an experiment of the session's tenant when it is bound to one)
	PERFORM @extschema@._experiment(experiment);
	-- An experiment being set up, without variants, showed the unit no
	-- variant (assign() gives none): nothing to record, and no page fails.
	-- An exposure would name no variant (the foreign key), count in no
	-- variant's results, and freeze the split before it is defined
	-- (_guard_variants).  Until 1.9 the call failed ("has no variants").
	IF NOT EXISTS (SELECT FROM @extschema@.experiment_variants v WHERE v.experiment = record_exposure.experiment) THEN
		RETURN NULL;
	END IF;
	INSERT INTO @extschema@.exposures (experiment, unit_id, stage, offer, shown_at)
	VALUES (experiment, unit_id, stage, offer, shown_at)
	RETURNING variant INTO v;
	RETURN v;
END
$$;
COMMENT ON FUNCTION @extschema@.record_exposure(text, text, text, text, timestamptz) IS
	'records that the unit saw its variant of the experiment (at a stage, with an offer) and returns the variant; records nothing and returns NULL for an experiment without variants';

-- ---------------------------------------------------------------------------
-- Units are customers
-- ---------------------------------------------------------------------------

-- 'integer', 'text' or 'shopify': how the registered customers map unit ids.
CREATE FUNCTION @extschema@._customer_id_kind()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
BEGIN
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;
	IF s.customer_id IS NULL THEN
		RAISE EXCEPTION 'order lines are registered without a customer column'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Experiments and customer metrics need it: upsell.register_orders(..., customer_id => ''column'').';
	END IF;
	-- Shopify customer ids: numbers, or gid://shopify/Customer/N strings
	IF s.kind = 'shopify' THEN
		RETURN 'shopify';
	END IF;
	RETURN CASE WHEN @extschema@._column_type(s.relation, s.customer_id, 'customer_id')
					 IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
				THEN 'integer' ELSE 'text' END;
END
$$;

CREATE FUNCTION @extschema@._unit_customer(unit_id text, kind text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_unit_customer_key'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION @extschema@.unit_customer(unit_id text)
RETURNS bigint
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c bigint := @extschema@._unit_customer(unit_id, @extschema@._customer_id_kind());
BEGIN
	IF c IS NULL THEN
		RAISE EXCEPTION 'unit_id "%" is not an integer, but the registered customer ids are', unit_id
			USING ERRCODE = 'invalid_text_representation';
	END IF;
	RETURN c;
END
$$;
COMMENT ON FUNCTION @extschema@.unit_customer(text) IS
	'the customer_id of upsell.order_lines a unit id stands for: the integer itself when customer ids are integers, upsell.order_key(unit_id) when they are text';

-- ---------------------------------------------------------------------------
-- Statistics (src/core/stats.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.normal_cdf(x float8)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_normal_cdf'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.normal_cdf(float8) IS
	'P(Z <= x) for a standard normal Z';

CREATE FUNCTION @extschema@.student_t_cdf(t float8, df float8)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_student_t_cdf'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.student_t_cdf(float8, float8) IS
	'P(T <= t) for Student''s t with df degrees of freedom (df need not be an integer)';

CREATE FUNCTION @extschema@.chi_square_sf(x float8, df float8)
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_chi_square_sf'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.chi_square_sf(float8, float8) IS
	'P(X > x) for chi-square with df degrees of freedom';

CREATE FUNCTION @extschema@.two_proportion_test(control_successes bigint, control_trials bigint,
	variant_successes bigint, variant_trials bigint, confidence float8 DEFAULT 0.95,
	OUT diff float8, OUT z float8, OUT p_value float8, OUT ci_low float8, OUT ci_high float8)
AS 'MODULE_PATHNAME', 'upsell_two_proportion_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.two_proportion_test(bigint, bigint, bigint, bigint, float8) IS
	'two-sided two-proportion z-test of variant minus control (pooled standard error for z, unpooled for the confidence interval)';

CREATE FUNCTION @extschema@.welch_t_test(control_n float8, control_mean float8, control_variance float8,
	variant_n float8, variant_mean float8, variant_variance float8, confidence float8 DEFAULT 0.95,
	OUT diff float8, OUT t float8, OUT df float8, OUT p_value float8, OUT ci_low float8, OUT ci_high float8)
AS 'MODULE_PATHNAME', 'upsell_welch_t_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.welch_t_test(float8, float8, float8, float8, float8, float8, float8) IS
	'two-sided Welch t-test of variant minus control from sizes, means and sample variances; Welch-Satterthwaite degrees of freedom';

CREATE FUNCTION @extschema@.srm_test(observed bigint[], weights float8[],
	OUT chi2 float8, OUT df float8, OUT p_value float8)
AS 'MODULE_PATHNAME', 'upsell_srm_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.srm_test(bigint[], float8[]) IS
	'sample-ratio-mismatch check: chi-square goodness of fit of the units per variant to the configured weights';

-- The tests as experiment_results uses them: NULL where a group is too small.
CREATE TYPE @extschema@._test_result AS (diff float8, stat float8, df float8, p_value float8,
	ci_low float8, ci_high float8);

CREATE FUNCTION @extschema@._ztest(x1 bigint, n1 bigint, x2 bigint, n2 bigint, confidence float8)
RETURNS @extschema@._test_result
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n1 > 0 AND n2 > 0 THEN
	(SELECT ROW(z.diff, z.z, NULL, z.p_value, z.ci_low, z.ci_high)::@extschema@._test_result
	 FROM @extschema@.two_proportion_test(x1, n1, x2, n2, confidence) z) END;

CREATE FUNCTION @extschema@._welch(n1 bigint, m1 float8, v1 float8, n2 bigint, m2 float8, v2 float8,
	confidence float8)
RETURNS @extschema@._test_result
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN n1 >= 2 AND n2 >= 2 THEN
	(SELECT ROW(w.diff, w.t, w.df, w.p_value, w.ci_low, w.ci_high)::@extschema@._test_result
	 FROM @extschema@.welch_t_test(n1, m1, v1, n2, m2, v2, confidence) w) END;

-- ---------------------------------------------------------------------------
-- Results
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.experiment_results(experiment text, confidence float8 DEFAULT 0.95)
RETURNS TABLE (variant text, is_control boolean, weight numeric, units bigint, expected_units float8,
	converted_units bigint, orders bigint, conversion_rate float8, revenue numeric, aov numeric,
	revenue_per_visitor numeric, items_per_order numeric, attach_rate float8,
	conversion_diff float8, conversion_rel_diff float8, conversion_ci_low float8,
	conversion_ci_high float8, conversion_p_value float8,
	aov_diff float8, aov_rel_diff float8, aov_ci_low float8, aov_ci_high float8, aov_p_value float8,
	rpv_diff float8, rpv_rel_diff float8, rpv_ci_low float8, rpv_ci_high float8, rpv_p_value float8,
	srm_p_value float8, srm_warning boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e @extschema@.experiments := @extschema@._experiment(experiment);
	-- the shop's zone, read here: on Citus the query below runs on the
	-- shards, where _shop_zone() may not read upsell.order_source
	zone text := @extschema@._shop_zone();
	kind text;
	names text[];
	ws float8[];
	counts bigint[];
	srm record;
	srm_p float8;
BEGIN
	IF confidence IS NULL OR NOT (confidence > 0 AND confidence < 1) THEN
		RAISE EXCEPTION 'confidence must be between 0 and 1 exclusive, not %', coalesce(confidence::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.experiment_variants v
				   WHERE v.experiment = e.experiment AND v.variant = e.control) THEN
		RAISE EXCEPTION 'control "%" of experiment "%" is not one of its variants', e.control, e.experiment
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Set upsell.experiments.control to the name of the control variant.';
	END IF;
	kind := @extschema@._customer_id_kind();

	-- sample-ratio mismatch: units per variant (by first exposure) against weights
	SELECT array_agg(v.variant ORDER BY v.variant COLLATE "C"),
		   array_agg(@extschema@._weight_share(v.weight) ORDER BY v.variant COLLATE "C"),
		   array_agg(coalesce(c.n, 0) ORDER BY v.variant COLLATE "C")
	INTO names, ws, counts
	FROM @extschema@.experiment_variants v
	LEFT JOIN (SELECT f.variant, count(*) AS n
			   FROM (SELECT DISTINCT ON (x.unit_id) x.variant
					 FROM @extschema@.exposures x
					 WHERE x.experiment = e.experiment AND x.shown_at >= e.started_at
					   AND (e.ended_at IS NULL OR x.shown_at < e.ended_at)
					 ORDER BY x.unit_id, x.shown_at, x.exposure_id) f
			   GROUP BY f.variant) c ON c.variant = v.variant
	WHERE v.experiment = e.experiment;
	IF cardinality(names) >= 2 AND (SELECT sum(w) FROM unnest(ws) w) > 0
	   AND (SELECT sum(n) FROM unnest(counts) n) > 0 THEN
		srm := @extschema@.srm_test(counts, ws);
		srm_p := srm.p_value;
		IF srm_p < 0.001 THEN
			RAISE WARNING 'sample ratio mismatch in experiment "%": % (chi-square %, p = %)',
				e.experiment,
				(SELECT string_agg(format('%s %s units (expected %s)', x.name, x.n,
										  round((x.w / (SELECT sum(w2) FROM unnest(ws) w2)
												 * (SELECT sum(n2) FROM unnest(counts) n2))::numeric, 1)), ', ' ORDER BY x.i)
				 FROM unnest(names, counts, ws) WITH ORDINALITY AS x(name, n, w, i)),
				round(srm.chi2::numeric, 2),
				-- (four significant digits, whatever the session's extra_float_digits)
				btrim(to_char(srm_p, '9.999EEEE'))
				USING DETAIL = 'With p < 0.001 the split itself is broken (bots, redirects, lost exposures, changed weights); the comparisons below cannot be trusted.',
					  HINT = 'Find why some units were not recorded before reading the results.';
		END IF;
	END IF;

	RETURN QUERY
	WITH u AS (
		-- a unit's window ends by the shop's clock, whoever reads (until
		-- 1.9 the reader's: across a change of daylight saving time a
		-- session in New York counted an order 167.5 hours after the
		-- exposure out of a 7-day window that a session in UTC counted in)
		SELECT DISTINCT ON (x.unit_id) x.unit_id, x.variant, x.shown_at AS first_shown,
			   @extschema@._zone_add(x.shown_at, e.conversion_window, zone) AS window_end,
			   @extschema@._unit_customer(x.unit_id, kind) AS customer_id
		FROM @extschema@.exposures x
		WHERE x.experiment = e.experiment AND x.shown_at >= e.started_at
		  AND (e.ended_at IS NULL OR x.shown_at < e.ended_at)
		ORDER BY x.unit_id, x.shown_at, x.exposure_id
	), ul AS (
		-- the lines that convert: of the unit's orders, placed after its
		-- first exposure and within the window
		SELECT u.unit_id, u.first_shown, ol.order_key, ol.product_id, ol.ordered_at,
			   ol.quantity, ol.unit_price
		FROM u JOIN @extschema@.order_lines ol
			ON ol.customer_id = u.customer_id AND ol.tenant_id = e.tenant_id
			AND ol.ordered_at >= u.first_shown AND ol.ordered_at < u.window_end
	), o AS (
		SELECT ul.unit_id, ul.order_key, sum(ul.quantity * ul.unit_price) AS revenue,
			   sum(ul.quantity) AS items
		FROM ul GROUP BY ul.unit_id, ul.order_key
	), att AS (
		-- orders holding a product the unit added from an offer after its
		-- first exposure and no later than the order line
		SELECT DISTINCT ul.unit_id, ul.order_key
		FROM ul JOIN @extschema@.offer_events ev
			ON ev.unit_id = ul.unit_id AND ev.product_id = ul.product_id
			AND ev.occurred_at >= ul.first_shown AND ev.occurred_at <= ul.ordered_at
		WHERE ev.tenant_id = e.tenant_id AND ev.event = 'add'
	), uo AS (
		SELECT u.unit_id, u.variant, o.order_key, coalesce(o.revenue, 0) AS revenue, o.items,
			   att.order_key IS NOT NULL AS attached
		FROM u JOIN o ON o.unit_id = u.unit_id
		LEFT JOIN att ON att.unit_id = u.unit_id AND att.order_key = o.order_key
	), pu AS (
		SELECT u.unit_id, u.variant, count(uo.order_key) AS n_orders,
			   coalesce(sum(uo.revenue), 0) AS revenue
		FROM u LEFT JOIN uo ON uo.unit_id = u.unit_id
		GROUP BY u.unit_id, u.variant
	), pv AS (
		SELECT v.variant, v.weight,
			   count(pu.unit_id) AS units,
			   count(pu.unit_id) FILTER (WHERE pu.n_orders > 0) AS converted,
			   avg(pu.revenue)::float8 AS rpv_mean, var_samp(pu.revenue)::float8 AS rpv_var
		FROM @extschema@.experiment_variants v
		LEFT JOIN pu ON pu.variant = v.variant
		WHERE v.experiment = e.experiment
		GROUP BY v.variant, v.weight
	), ov AS (
		SELECT uo.variant, count(*) AS orders, sum(uo.revenue) AS revenue, sum(uo.items) AS items,
			   count(*) FILTER (WHERE uo.attached) AS attached,
			   avg(uo.revenue)::float8 AS aov_mean, var_samp(uo.revenue)::float8 AS aov_var
		FROM uo GROUP BY uo.variant
	), t AS (
		SELECT pv.*, coalesce(ov.orders, 0) AS orders, coalesce(ov.revenue, 0) AS revenue,
			   ov.items, coalesce(ov.attached, 0) AS attached, ov.aov_mean, ov.aov_var
		FROM pv LEFT JOIN ov ON ov.variant = pv.variant
	), s AS (
		SELECT t.*, c.units AS c_units, c.converted AS c_converted,
			   c.converted::float8 / nullif(c.units, 0) AS c_rate, c.aov_mean AS c_aov, c.rpv_mean AS c_rpv,
			   CASE WHEN t.variant <> e.control THEN
					@extschema@._ztest(c.converted, c.units, t.converted, t.units, confidence) END AS zc,
			   CASE WHEN t.variant <> e.control THEN
					@extschema@._welch(c.orders, c.aov_mean, c.aov_var, t.orders, t.aov_mean, t.aov_var, confidence) END AS ta,
			   CASE WHEN t.variant <> e.control THEN
					@extschema@._welch(c.units, c.rpv_mean, c.rpv_var, t.units, t.rpv_mean, t.rpv_var, confidence) END AS tr
		FROM t CROSS JOIN (SELECT * FROM t WHERE t.variant = e.control) c
	)
	SELECT s.variant, s.variant = e.control, s.weight, s.units,
		   (SELECT sum(s2.units) FROM s s2)::float8 * @extschema@._weight_share(s.weight)
			/ nullif((SELECT sum(@extschema@._weight_share(s2.weight)) FROM s s2), 0),
		   s.converted, s.orders,
		   s.converted::float8 / nullif(s.units, 0),
		   s.revenue,
		   round(s.revenue / nullif(s.orders, 0), 2),
		   round(s.revenue / nullif(s.units, 0), 2),
		   round(s.items / nullif(s.orders, 0), 2),
		   s.attached::float8 / nullif(s.orders, 0),
		   (s.zc).diff, (s.zc).diff / nullif(s.c_rate, 0), (s.zc).ci_low, (s.zc).ci_high, (s.zc).p_value,
		   (s.ta).diff, (s.ta).diff / nullif(s.c_aov, 0), (s.ta).ci_low, (s.ta).ci_high, (s.ta).p_value,
		   (s.tr).diff, (s.tr).diff / nullif(s.c_rpv, 0), (s.tr).ci_low, (s.tr).ci_high, (s.tr).p_value,
		   srm_p, coalesce(srm_p < 0.001, false)
	FROM s
	ORDER BY s.variant <> e.control, s.variant COLLATE "C";
END
$$;
COMMENT ON FUNCTION @extschema@.experiment_results(text, float8) IS
	'per variant: units, conversions, orders, AOV, revenue per visitor, items per order, attach rate; against the control: difference, relative difference, confidence interval and p-value (z-test for conversion, Welch for AOV and revenue per visitor); sample-ratio-mismatch p-value (warns below 0.001)';

-- ---------------------------------------------------------------------------
-- Merchant metrics
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.metrics(period text DEFAULT 'month', tenant_id bigint DEFAULT NULL,
	attribution_window interval DEFAULT '7 days')
RETURNS TABLE (period_start timestamptz, offer_type text, orders bigint, revenue numeric, aov numeric,
	items_per_order numeric, multi_item_share float8, customers bigint, repeat_customer_rate float8,
	new_customers bigint, cohort_clv numeric, attached_orders bigint, attach_rate float8,
	attributed_revenue numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	has_customers boolean;
	kind text;
	zone text := @extschema@._shop_zone();	-- (read here, as experiment_results does)
BEGIN
	IF period IS NULL OR period NOT IN ('day', 'week', 'month', 'quarter', 'year', 'all') THEN
		RAISE EXCEPTION 'period must be day, week, month, quarter, year or all, not %', coalesce(quote_literal(period), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF attribution_window IS NULL OR attribution_window <= '0'::interval THEN
		RAISE EXCEPTION 'attribution_window must be positive, not %', coalesce(attribution_window::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT s.customer_id IS NOT NULL INTO has_customers FROM @extschema@.order_source s;
	kind := CASE WHEN has_customers THEN @extschema@._customer_id_kind() END;

	RETURN QUERY
	WITH o AS (
		SELECT ol.order_key, min(ol.customer_id) AS customer_id, min(ol.ordered_at) AS ordered_at,
			   sum(ol.quantity * ol.unit_price) AS revenue, sum(ol.quantity) AS items,
			   count(DISTINCT ol.product_id) AS products
		FROM @extschema@.order_lines ol
		WHERE ol.tenant_id = t
		GROUP BY ol.order_key
	), op AS (
		-- each customer's first order: the earliest, ties (orders at one
		-- instant) broken by the order key, so that the second of two
		-- orders placed at once is a returning one
		SELECT o.*, CASE WHEN period = 'all' THEN NULL ELSE date_trunc(period, o.ordered_at) END AS p,
			   first_value(o.order_key) OVER (PARTITION BY o.customer_id
											  ORDER BY o.ordered_at NULLS LAST, o.order_key) AS first_order
		FROM o
	), cohort AS (
		-- customers by the period of their first order, and all they spent since
		SELECT CASE WHEN period = 'all' THEN NULL ELSE date_trunc(period, c.first_at) END AS p,
			   count(*) AS customers, sum(c.revenue) AS revenue
		FROM (SELECT o.customer_id, min(o.ordered_at) AS first_at, sum(o.revenue) AS revenue
			  FROM o WHERE o.customer_id IS NOT NULL GROUP BY o.customer_id) c
		GROUP BY 1
	), ev AS (
		SELECT @extschema@._unit_customer(x.unit_id, kind) AS customer_id, x.product_id,
			   x.offer_type, x.occurred_at, x.event_id
		FROM @extschema@.offer_events x
		WHERE x.tenant_id = t AND x.event = 'add' AND kind IS NOT NULL
	), lp AS (
		-- order lines of offered products, one row per order and product
		-- (the window by the shop's clock, as experiment_results' conversion
		-- window; until 1.9 the reader's)
		SELECT l.*, @extschema@._zone_add(l.ordered_at, - attribution_window, zone) AS window_start
		FROM (SELECT ol.order_key, ol.product_id, min(ol.customer_id) AS customer_id,
					 min(ol.ordered_at) AS ordered_at, sum(ol.quantity * ol.unit_price) AS revenue
			  FROM @extschema@.order_lines ol
			  WHERE ol.tenant_id = t
				AND (ol.customer_id, ol.product_id) IN (SELECT ev.customer_id, ev.product_id FROM ev)
			  GROUP BY ol.order_key, ol.product_id) l
	), att AS (
		-- last touch: the latest add of the product by the customer within the window
		SELECT DISTINCT ON (lp.order_key, lp.product_id) lp.order_key, lp.revenue, ev.offer_type
		FROM lp JOIN ev ON ev.customer_id = lp.customer_id AND ev.product_id = lp.product_id
			AND ev.occurred_at <= lp.ordered_at AND ev.occurred_at > lp.window_start
		ORDER BY lp.order_key, lp.product_id, ev.occurred_at DESC, ev.event_id DESC
	), ap AS (
		SELECT op.p, att.offer_type, count(DISTINCT att.order_key) AS attached,
			   sum(att.revenue) AS revenue
		FROM att JOIN op ON op.order_key = att.order_key
		GROUP BY GROUPING SETS ((op.p, att.offer_type), (op.p))
	), per AS (
		SELECT op.p, count(*) AS orders, sum(op.revenue) AS revenue, sum(op.items) AS items,
			   count(*) FILTER (WHERE op.products >= 2) AS multi,
			   count(DISTINCT op.customer_id) AS customers,
			   count(DISTINCT op.customer_id) FILTER (WHERE op.order_key <> op.first_order) AS returning_customers
		FROM op
		GROUP BY op.p
	)
	SELECT per.p, NULL::text, per.orders, per.revenue,
		   round(per.revenue / per.orders, 2), round(per.items / per.orders, 2),
		   per.multi::float8 / per.orders,
		   CASE WHEN has_customers THEN per.customers END,
		   CASE WHEN has_customers THEN per.returning_customers::float8 / nullif(per.customers, 0) END,
		   CASE WHEN has_customers THEN coalesce(co.customers, 0) END,
		   CASE WHEN has_customers THEN round(co.revenue / co.customers, 2) END,
		   coalesce(ap.attached, 0), coalesce(ap.attached, 0)::float8 / per.orders, coalesce(ap.revenue, 0)
	FROM per LEFT JOIN ap ON ap.p IS NOT DISTINCT FROM per.p AND ap.offer_type IS NULL
	LEFT JOIN cohort co ON co.p IS NOT DISTINCT FROM per.p
	UNION ALL
	SELECT ap.p, ap.offer_type, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		   ap.attached, ap.attached::float8 / per.orders, ap.revenue
	FROM ap JOIN per ON per.p IS NOT DISTINCT FROM ap.p
	WHERE ap.offer_type IS NOT NULL
	ORDER BY 1, 2 NULLS FIRST;
END
$$;
COMMENT ON FUNCTION @extschema@.metrics(text, bigint, interval) IS
	'per period (day, week, month, quarter, year, all) over the registered orders: orders, revenue, AOV, items per order, share of multi-product orders, customers, returning-customer rate, new customers and their historical CLV; and per offer type (rows with offer_type set) the orders with an attributed offer, attach rate and attributed revenue';
