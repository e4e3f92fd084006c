
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
	-- a Shopify registration's order_id names a document field, not a column:
	-- only its tenant column can keep every delivery of an order in one shard
	RETURN col IS NOT NULL AND ((s.kind = 'columns' AND col = s.order_id) OR col = s.tenant_id);
END
$$;

-- The pair counts of the registered order lines per tenant (the lines
-- matching new_lines, a condition on "l"), counted where they live: by
-- upsell.cooccurrence_agg on one node (parallel workers may help), by
-- upsell.cooccurrence_sharded_agg on Citus shards of whole orders (each
-- shard sends its pair counts to the coordinator, not its lines).
-- _pair_counts_sql is the query's text, which a builder nests in its own
-- statement: the counts then go straight to what reads them, while
-- _pair_counts, a plpgsql function, copies its result into a tuplestore.
CREATE FUNCTION @extschema@._pair_counts_sql(new_lines text DEFAULT 'true')
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN format(
		'SELECT l.tenant_id, %s(l.order_key, l.product_id, l.quantity) AS state,
				max(l.ordered_at) AS max_ordered_at, max(l.order_key) AS max_order_key
		 FROM @extschema@.order_lines l
		 WHERE %s
		 GROUP BY l.tenant_id',
		CASE WHEN @extschema@._orders_sharded() THEN '@extschema@.cooccurrence_sharded_agg'
			 ELSE '@extschema@.cooccurrence_agg' END,
		new_lines);
END
$$;

CREATE FUNCTION @extschema@._pair_counts(new_lines text DEFAULT 'true')
RETURNS TABLE (tenant_id bigint, state @extschema@.cooccurrence,
			   max_ordered_at timestamptz, max_order_key bigint)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY EXECUTE @extschema@._pair_counts_sql(new_lines);
END
$$;

-- ---- many shops on Citus: upsell.distribute() ------------------------------
--
-- The app-backend layout: the order lines (and the catalog) distributed by
-- the tenant column.  distribute() makes every model table a distributed
-- table colocated with the order lines (tenant_id is every model's first
-- column), the registrations and the merchant's rules that the builders and
-- the serving functions read reference tables (a copy on every node), and
-- upsell._build_tenant() and the serving functions with a tenant argument
-- distributed functions colocated with the order lines: refresh then builds
-- each tenant on the worker holding its shards (every statement of the
-- build reads and writes that worker's shards), and a call with a tenant
-- runs on that tenant's worker.

-- True when the models are Citus tables distributed by tenant (distribute()).
CREATE FUNCTION @extschema@._models_distributed()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	distributed boolean;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN false;
	END IF;
	-- Citus's catalog, read only when Citus is installed
	EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
			 WHERE p.logicalrelid OPERATOR(pg_catalog.=) ''@extschema@.source_state''::pg_catalog.regclass)'
		INTO distributed;
	RETURN distributed;
END
$$;

-- The relation itself when it is not a Citus distributed table; else the
-- shard holding tenant_id when it is on this node, or NULL (on another node).
CREATE FUNCTION @extschema@._local_shard(rel regclass, tenant_id bigint)
RETURNS regclass
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	shard text;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN rel;
	END IF;
	-- Citus's catalog and functions, used only when Citus is installed
	EXECUTE 'SELECT pg_catalog.shard_name(p.logicalrelid, pg_catalog.get_shard_id_for_distribution_column(p.logicalrelid, $2))
			 FROM pg_catalog.pg_dist_partition p
			 WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.partmethod OPERATOR(pg_catalog.=) ''h'''
		INTO shard USING rel, tenant_id;
	IF shard IS NULL THEN
		RETURN rel;
	END IF;
	RETURN to_regclass(shard);
END
$$;

-- Builds one tenant's models (upsell._build_tenant) on the node holding
-- the tenant's shard of the order lines, in that node's own transaction,
-- and returns what it built.  Citus delegates a distributed function only
-- outside a transaction block, or with force_delegation, which requires
-- every query inside to carry the tenant as a constant Citus can see (the
-- builders' joins of several models do not): so refresh, which commits per
-- tenant inside a procedure, sends the call over a connection of its own
-- (master_run_on_worker).  On the worker every statement of the build
-- reads and writes that node's shards; what comes back is the row count
-- and build time per model.
CREATE FUNCTION @extschema@._build_tenant_on_worker(tenant_id bigint, incremental boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	host text;
	port int;
	ok boolean;
	result text;
BEGIN
	-- Citus's catalog and functions, used only on Citus
	EXECUTE 'SELECT n.nodename, n.nodeport
			 FROM pg_catalog.pg_dist_placement p JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid
			 WHERE p.shardid OPERATOR(pg_catalog.=) pg_catalog.get_shard_id_for_distribution_column(''@extschema@.source_state'', $1)
			   AND p.groupid OPERATOR(pg_catalog.<>) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)
			 ORDER BY p.placementid LIMIT 1'
		INTO host, port USING tenant_id;
	IF host IS NULL THEN
		-- the tenant's shard is on this node
		RETURN @extschema@._build_tenant(tenant_id, incremental);
	END IF;
	EXECUTE 'SELECT r.success, r.result FROM pg_catalog.master_run_on_worker(ARRAY[$1], ARRAY[$2], ARRAY[$3], false) r'
		INTO ok, result
		USING host, port, format('SELECT @extschema@._build_tenant(%s, %L)', tenant_id, incremental);
	IF NOT ok THEN
		RAISE EXCEPTION 'upsell: tenant %: the build on worker %:% failed: %', tenant_id, host, port, result
			USING ERRCODE = 'external_routine_exception';
	END IF;
	RETURN result::jsonb;
END
$$;

-- The tables distribute() makes reference tables: the registrations (read
-- by the builders), the merchant's rules (read by the serving functions),
-- and the experiments with their variants and exposures (read by the
-- assignment in the serving functions; exposures have no tenant column, and
-- experiment_results joins them with a tenant's order lines and events),
-- in the order of their foreign keys.
CREATE FUNCTION @extschema@._reference_tables()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['order_source', 'product_source', 'cart_source', 'exclusions', 'volume_tiers',
			 'thresholds', 'consumables', 'stage_settings', 'offers', 'category_substitutes',
			 'experiments', 'experiment_variants', 'exposures'];

-- The experiment tables, whose foreign keys distribute() takes off while
-- it converts them and puts back after (see there).
CREATE FUNCTION @extschema@._experiment_tables()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['experiments', 'experiment_variants', 'exposures', 'offer_events'];

-- The serving functions distribute() delegates by their tenant_id argument.
CREATE FUNCTION @extschema@._tenant_functions()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY['recommend_for_cart(bigint[], int, bigint)',
			 'upgrade_candidates(bigint, int, numeric, bigint)',
			 'downsell_candidates(bigint, int, numeric, bigint)',
			 'quantity_offer(bigint, int, bigint)',
			 'bundle_offers(bigint, int, numeric, bigint)',
			 'product_page_offers(bigint, bigint, text, text)',
			 'cart_offers(bigint[], int[], bigint, text, text, text)',
			 'post_purchase_offers(bigint[], bigint, bigint, text, text, timestamptz)',
			 'recommend_for_customer(bigint, int, bigint, timestamptz, interval, interval)',
			 'email_sequence(bigint, int, bigint, timestamptz)'];

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
	relname text;
	fks text[];
	drops text[];
	stmt text;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'feature_not_supported', HINT = 'CREATE EXTENSION citus first.';
	END IF;
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND OR s.tenant_id IS NULL OR s.kind <> 'columns' THEN
		RAISE EXCEPTION 'the order lines must be registered by columns with a tenant column before distributing by tenant'
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
		col := NULL;
		EXECUTE 'SELECT pg_catalog.column_to_column_name(d.logicalrelid, d.partkey)
				 FROM pg_catalog.pg_dist_partition d
				 WHERE d.logicalrelid OPERATOR(pg_catalog.=) $1 AND d.colocationid OPERATOR(pg_catalog.=)
					(SELECT o.colocationid FROM pg_catalog.pg_dist_partition o WHERE o.logicalrelid OPERATOR(pg_catalog.=) $2)'
			INTO col USING p.relation, s.relation;
		IF p.tenant_id IS NULL OR col IS DISTINCT FROM p.tenant_id THEN
			RAISE EXCEPTION 'the catalog % is not distributed by its tenant column, colocated with the order lines', p.relation
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  HINT = format('SELECT create_distributed_table(%L, %L, colocate_with => %L);',
									p.relation::text, coalesce(p.tenant_id::text, 'tenant_id'), s.relation::text);
		END IF;
	END IF;

	-- one connection per node for the whole transaction: the distributed
	-- functions' ALTER below needs it after the tables' shards were made
	PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);

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

	-- The experiment tables' foreign keys between them: taken off while
	-- they are converted, put back after.  Citus would otherwise first turn
	-- the tables a converted one is tied to into "Citus local tables",
	-- creating them on the workers, where the extension already created
	-- them ("relation experiments already exists").  The workers' copies
	-- (the shells of the converted tables) lose theirs too: the keys put
	-- back reach every node.  offer_events, distributed by tenant, needs
	-- the tenant in its primary key (Citus enforces uniqueness per shard).
	IF EXISTS (SELECT FROM unnest(@extschema@._experiment_tables()) t
			   WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
								 WHERE d.logicalrelid = to_regclass('@extschema@.' || t))) THEN
		fks := ARRAY(
			SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
						  pg_get_constraintdef(c.oid))
			FROM pg_constraint c
			WHERE c.contype = 'f'
			  AND c.conrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t)
			  AND c.confrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t)
			ORDER BY c.conrelid::regclass::text, c.conname);
		drops := ARRAY(
			SELECT format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.conrelid::regclass, c.conname)
			FROM pg_constraint c
			WHERE c.contype = 'f'
			  AND c.conrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t)
			  AND c.confrelid IN (SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._experiment_tables()) t));
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
					   WHERE d.logicalrelid = '@extschema@.offer_events'::regclass) THEN
			drops := drops || ARRAY['ALTER TABLE @extschema@.offer_events DROP CONSTRAINT offer_events_pkey, '
									'ADD CONSTRAINT offer_events_pkey PRIMARY KEY (tenant_id, event_id)'];
		END IF;
		FOREACH stmt IN ARRAY drops LOOP
			EXECUTE stmt;
		END LOOP;
		-- (Citus's own function, run only on Citus)
		FOR m IN EXECUTE 'SELECT w.nodename, w.nodeport, w.success, w.result
						  FROM pg_catalog.run_command_on_workers($1) w'
			USING 'SET citus.enable_ddl_propagation TO off; ' || array_to_string(drops, '; ') LOOP
			IF NOT m.success THEN
				RAISE EXCEPTION 'upsell: could not prepare the experiment tables on worker %:%: %',
					m.nodename, m.nodeport, m.result
					USING ERRCODE = 'external_routine_exception';
			END IF;
		END LOOP;
	END IF;

	-- registrations, rules and experiments: reference tables (a copy on
	-- every node).  The rules' statement trigger, which bumps the serving
	-- caches' version, then fires on every node's copy and bumps that
	-- node's serving_state; the experiments' row triggers (assignment of an
	-- exposure, the guard of running experiments' weights) fire on each.
	PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
	FOREACH rel IN ARRAY ARRAY(
		SELECT to_regclass('@extschema@.' || t) FROM unnest(@extschema@._reference_tables()) t
		WHERE to_regclass('@extschema@.' || t) IS NOT NULL) LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = rel) THEN
			PERFORM create_reference_table(rel);
			PERFORM truncate_local_data_after_distributing_table(rel);
			-- Citus copies a regclass as its OID, which names another
			-- relation, or none, on the workers: written again by name
			IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = 'relation'
						 AND a.atttypid = 'regclass'::regtype) THEN
				EXECUTE format('SELECT r.relation::text FROM %s r', rel) INTO relname;
				IF relname IS NOT NULL THEN
					EXECUTE format('UPDATE %s SET relation = %L::regclass', rel, relname);
				END IF;
			END IF;
		END IF;
		object := rel::text;
		distributed_as := 'reference table';
		RETURN NEXT;
	END LOOP;

	-- offer events: distributed by tenant, colocated with the order lines
	-- (experiment_results joins a tenant's events with its lines)
	rel := '@extschema@.offer_events'::regclass;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = rel) THEN
		PERFORM create_distributed_table(rel, 'tenant_id', colocate_with => s.relation::text);
		PERFORM truncate_local_data_after_distributing_table(rel);
	END IF;
	object := rel::text;
	distributed_as := 'distributed by tenant_id, colocated with ' || s.relation::text;
	RETURN NEXT;
	-- the experiment tables' foreign keys, back on every node
	FOREACH stmt IN ARRAY coalesce(fks, '{}') LOOP
		EXECUTE stmt;
	END LOOP;

	-- a tenant's build (_build_tenant_on_worker calls it there) and the
	-- serving functions with a tenant: on the tenant's worker
	FOREACH fname IN ARRAY ARRAY['_build_tenant(bigint, boolean)'] || @extschema@._tenant_functions() LOOP
		f := to_regprocedure('@extschema@.' || fname);
		CONTINUE WHEN f IS NULL;
		PERFORM create_distributed_function(f, 'tenant_id', colocate_with => s.relation::text);
		IF fname <> '_build_tenant(bigint, boolean)' THEN
			-- a serving function's queries call helpers that read the
			-- tenant's models (colocated shards of the same node) from
			-- inside a statement Citus runs on a shard
			EXECUTE format('ALTER FUNCTION %s SET citus.allow_nested_distributed_execution = on', f);
			-- and are planned with the tenant's value: Citus routes a
			-- statement over several models to the tenant's shards only
			-- when it sees the tenant as a constant, not as a parameter
			-- of a generic plan (what one node's serving uses)
			EXECUTE format('ALTER FUNCTION %s SET plan_cache_mode = force_custom_plan', f);
		END IF;
		object := f::text;
		distributed_as := 'distributed function, run on the worker of its tenant_id';
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.distribute() IS
	'on Citus, with the order lines (and catalog) distributed by tenant: makes every model and the offer events distributed tables colocated with the order lines, the registrations, rules and experiments reference tables, and a tenant''s build and the serving functions distributed by their tenant_id';
