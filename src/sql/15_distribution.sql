
-- ===========================================================================
-- Distribution: where the registered order lines live (one node, or Citus
-- shards), and pair counting that runs where they live
-- ===========================================================================

-- True when the registered order lines are a Citus table distributed by the
-- order or the tenant column: every order then lies in one shard, so each
-- shard can count its own pairs (upsell.cooccurrence_sharded_agg).
CREATE FUNCTION @extschema@._orders_sharded()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
	col name;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	-- Citus's catalog, read only when Citus is installed
	EXECUTE 'SELECT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
			 FROM pg_catalog.pg_dist_partition p
			 WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.partmethod OPERATOR(pg_catalog.=) ''h'''
		INTO col USING s.relation;
	RETURN col IS NOT NULL AND (col = s.order_id OR col = s.tenant_id);
END
$$;

-- The aggregate that counts pairs where the order lines live.
CREATE FUNCTION @extschema@._pair_counting_agg()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN @extschema@._orders_sharded() THEN '@extschema@.cooccurrence_sharded_agg'
			ELSE '@extschema@.cooccurrence_agg' END;

-- The pair counts of the registered order lines per tenant (the lines
-- matching new_lines, a condition on "l"), counted where they live: by
-- upsell.cooccurrence_agg on one node (parallel workers may help), by
-- upsell.cooccurrence_sharded_agg on Citus shards of whole orders (each
-- shard sends its pair counts to the coordinator, not its lines).
CREATE FUNCTION @extschema@._pair_counts(new_lines text DEFAULT 'true')
RETURNS TABLE (tenant_id bigint, state @extschema@.cooccurrence,
			   max_ordered_at timestamptz, max_order_key bigint)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY EXECUTE format(
		'SELECT l.tenant_id, %s(l.order_key, l.product_id, l.quantity),
				max(l.ordered_at), max(l.order_key)
		 FROM @extschema@.order_lines l
		 WHERE %s
		 GROUP BY l.tenant_id',
		@extschema@._pair_counting_agg(), new_lines);
END
$$;

-- ---- many shops on Citus: upsell.distribute() ------------------------------
--
-- The app-backend layout: the order lines (and the catalog) distributed by the
-- tenant column.  distribute() makes every model table a distributed table
-- colocated with the order lines (tenant_id is every model's first column),
-- the configuration tables the serving functions read reference tables (on
-- every node), and the read-only serving functions distributed functions
-- delegated by their tenant_id argument: a refresh then builds each tenant on
-- the worker holding its lines (upsell._publish's statements route to one
-- shard), and a call with a tenant runs on that tenant's worker.
CREATE FUNCTION @extschema@.distribute()
RETURNS TABLE (object text, distributed_as text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
	p @extschema@.product_source;
	col name;
	rel regclass;
	m record;
	f regprocedure;
	fname text;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'feature_not_supported', HINT = 'CREATE EXTENSION citus first.';
	END IF;
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND OR s.tenant_id IS NULL THEN
		RAISE EXCEPTION 'the order lines must be registered with a tenant column before distributing by tenant'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders(..., tenant_id => ''...'').';
	END IF;
	EXECUTE 'SELECT pg_catalog.column_to_column_name(d.logicalrelid, d.partkey)
			 FROM pg_catalog.pg_dist_partition d
			 WHERE d.logicalrelid OPERATOR(pg_catalog.=) $1 AND d.partmethod OPERATOR(pg_catalog.=) ''h'''
		INTO col USING s.relation;
	IF col IS DISTINCT FROM s.tenant_id THEN
		RAISE EXCEPTION '% is not distributed by its tenant column %', s.relation, s.tenant_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = format('SELECT create_distributed_table(%L, %L);', s.relation::text, s.tenant_id::text);
	END IF;
	SELECT * INTO p FROM @extschema@.product_source;
	IF FOUND THEN
		EXECUTE 'SELECT pg_catalog.column_to_column_name(d.logicalrelid, d.partkey)
				 FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid OPERATOR(pg_catalog.=) $1'
			INTO col USING p.relation;
		IF col IS DISTINCT FROM p.tenant_id THEN
			RAISE EXCEPTION 'the catalog % is not distributed by its tenant column, colocated with the order lines', p.relation
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  HINT = format('SELECT create_distributed_table(%L, %L, colocate_with => %L);',
									p.relation::text, p.tenant_id::text, s.relation::text);
		END IF;
	END IF;

	-- models: distributed by tenant, colocated with the order lines
	FOR m IN SELECT d.model FROM @extschema@.model_definitions d ORDER BY d.build_order LOOP
		rel := format('@extschema@.%I', m.model)::regclass;
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = rel) THEN
			PERFORM create_distributed_table(rel, 'tenant_id', colocate_with => s.relation::text);
			-- the rows were copied into the shards; the coordinator's table is a shell
			PERFORM truncate_local_data_after_distributing_table(rel);
		END IF;
		object := rel::text;
		distributed_as := 'distributed by tenant_id, colocated with ' || s.relation::text;
		RETURN NEXT;
	END LOOP;

	-- the merchant's rules and the registrations, read by the serving
	-- functions on the workers: reference tables (a copy on every node).  Their
	-- trigger, which bumps the serving caches' version, then fires on every
	-- node's copy and bumps that node's own upsell.serving_state.
	PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
	FOREACH rel IN ARRAY ARRAY(
		SELECT to_regclass('@extschema@.' || t)
		FROM unnest(ARRAY['order_source', 'exclusions', 'volume_tiers', 'thresholds',
						  'consumables', 'stage_settings', 'offers']) t
		WHERE to_regclass('@extschema@.' || t) IS NOT NULL) LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = rel) THEN
			PERFORM create_reference_table(rel);
			PERFORM truncate_local_data_after_distributing_table(rel);
		END IF;
		object := rel::text;
		distributed_as := 'reference table';
		RETURN NEXT;
	END LOOP;

	-- serving functions with a tenant: run on the tenant's worker
	FOREACH fname IN ARRAY ARRAY[
		'recommend_for_cart(bigint[], int, bigint)',
		'upgrade_candidates(bigint, int, numeric, bigint)',
		'downsell_candidates(bigint, int, numeric, bigint)',
		'quantity_offer(bigint, int, bigint)',
		'bundle_offers(bigint, int, numeric, bigint)'] LOOP
		f := to_regprocedure('@extschema@.' || fname);
		CONTINUE WHEN f IS NULL;
		PERFORM create_distributed_function(f, 'tenant_id', colocate_with => s.relation::text);
		object := f::text;
		distributed_as := 'distributed function, run on the worker of its tenant_id';
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.distribute() IS
	'on Citus, with the order lines and catalog distributed by tenant: makes every model a distributed table colocated with the order lines, the rules and registrations reference tables, and the serving functions distributed by their tenant_id';
