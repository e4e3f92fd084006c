
-- ===========================================================================
-- Incremental refresh: which order lines are new, and whether the rest is
-- unchanged
-- ===========================================================================
--
-- The first model a tenant's refresh builds, source_state, records the
-- snapshot (pg_current_snapshot()) that the tenant's build reads its order
-- lines at, with the count and a checksum (XOR of a hash per line) of those
-- lines.  Every builder reads the lines through _tenant_lines(), which keeps
-- only the rows whose inserting transaction that snapshot sees, so all the
-- models of a tenant count exactly the same lines whatever commits while
-- they are built.
--
-- An incremental refresh then takes as new the rows the previous snapshot
-- did not see and the current one does: commit order, not order time or id,
-- so a transaction that commits late with early times or ids is still new,
-- and one that commits during a refresh is new at the next.  It folds the
-- new lines in only when the rest is exactly what was counted:
--
--	the lines the previous snapshot saw, counted again now, have the same
--	count and checksum (else lines were deleted or edited: an UPDATE writes
--	a new row version, which is new, and removes the counted one), and
--	no new line that counts (sold: a quantity above 0, or none, read as
--	1) belongs to an order counted before (a line added to an old order
--	changes that order's pairs).
--
-- Otherwise the tenant is rebuilt in full, and refresh says why (NOTICE and
-- source_state.reason).  Returns (quantity <= 0) count for no model, so a
-- return of an old order folds in.  A source that is a view has no row
-- xmin: its tenants are always rebuilt in full.

CREATE FUNCTION @extschema@._xmin_visible_support(internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'upsell_xmin_visible_support'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._xmin_visible_support(internal) IS
	'internal: the planner''s selectivity of _xmin_visible (nearly every row is visible to a refresh''s snapshot)';

CREATE FUNCTION @extschema@._xmin_visible(xmin xid, snapshot pg_snapshot)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_xmin_visible'
LANGUAGE C STABLE PARALLEL SAFE
SUPPORT @extschema@._xmin_visible_support;
COMMENT ON FUNCTION @extschema@._xmin_visible(xid, pg_snapshot) IS
	'internal: whether the transaction that wrote a row (its xmin) had committed as of the snapshot; true for a NULL xmin (a source without one)';

-- The hash of a line in the checksum (XOR over the lines: order-free, and
-- parallel aggregation combines it).
CREATE FUNCTION @extschema@._line_hash(order_key bigint, product_id bigint, quantity numeric)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.hashint8extended(order_key,
	pg_catalog.hashint8extended(product_id, pg_catalog.hash_numeric_extended(quantity, 0)));

-- The settings that shape models an incremental refresh only partly
-- rewrites: when one changed since the tenant's last refresh, the rows not
-- rewritten would keep the old shape, so the tenant is rebuilt in full.
-- (upsell.pairs_per_product: pair_list_model rewrites the lists of the
-- products of new orders only; upsell.max_basket_size: only the new orders
-- are counted, and the old ones' pairs were counted under the old size;
-- upsell.bundle_min_count and upsell.bundles_per_product: bundle_list_model is
-- kept as it is when the tenant has no new lines, _lines_unchanged.)
-- source_state's settings also say, under "bundles", the count the bundles
-- were last mined at (upsell.itemsets_memory_limit may have made the
-- refresh raise it) and that limit; that is not a setting to compare, and an
-- incremental refresh carries it over to the bundles it keeps.
CREATE FUNCTION @extschema@._model_settings()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.jsonb_build_object('upsell.pairs_per_product',
	coalesce(pg_catalog.current_setting('upsell.pairs_per_product', true)::int, 50),
	'upsell.max_basket_size', coalesce(pg_catalog.current_setting('upsell.max_basket_size', true)::int, 100),
	'upsell.bundle_min_count', coalesce(pg_catalog.current_setting('upsell.bundle_min_count', true)::int, 5),
	'upsell.bundles_per_product', coalesce(pg_catalog.current_setting('upsell.bundles_per_product', true)::int, 10));

-- The name a registered relation (what: as _registered_relations names it)
-- had when it was registered, as a tenant's source_state.registration keeps
-- it (registered_as: the name at the first refresh after the registration,
-- carried over by every refresh until the relation is registered again).  A
-- state of 1.8 or older has none: the order lines' name at its last refresh
-- is the nearest it knows.
CREATE FUNCTION @extschema@._name_as_registered(registration jsonb, what text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN coalesce(registration OPERATOR(pg_catalog.->) 'registered_as' OPERATOR(pg_catalog.->>) what,
				CASE WHEN what OPERATOR(pg_catalog.=) 'order lines'
					 THEN registration OPERATOR(pg_catalog.->>) 'relation' END);
COMMENT ON FUNCTION @extschema@._name_as_registered(jsonb, text) IS
	'internal: the name a registered relation had when registered, as a source_state.registration keeps it (NULL when unknown)';

CREATE FUNCTION @extschema@._build_source_state(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	snap pg_snapshot := pg_current_snapshot();
	prev @extschema@.source_state;
	why text;
	n_lines bigint;
	n_sum bigint;
	old_lines bigint;
	old_sum bigint;
	touched bigint;
	touched_query text;
	touched_plan json;
	touched_counted boolean;	-- touched known (through the index, or no new order)
	range_query text;
	range_plan json;
	by_range boolean := false;
	last_key bigint;
	first_new_key bigint;
	no_key constant bigint := -9223372036854775807 - 1;
	all_lines bigint;
	all_sum bigint;
	new_keys bigint[];
	new_n bigint;
	new_sum bigint;
	new_orders bigint;
	has_xmin boolean;
	is_view boolean;
	is_foreign boolean;
	settings jsonb := @extschema@._model_settings();
	-- how the order lines are read: the relation and the columns registered
	-- for them (register_orders, or the Shopify documents' registration),
	-- and the registration's zone where the view reads ordered_at in it (a
	-- date or timestamp column: _column_expr); a timestamptz is the same
	-- instant whoever registered it
	registration jsonb := (SELECT pg_catalog.to_jsonb(o) OPERATOR(pg_catalog.-) '{singleton, registered_at}'::text[]
								  OPERATOR(pg_catalog.-) CASE
									  WHEN o.kind = 'columns' AND o.ordered_at IS NOT NULL
										   AND @extschema@._column_type(o.relation, o.ordered_at, 'ordered_at')
											   IN ('timestamp without time zone'::regtype, 'date'::regtype)
									  THEN '{}'::text[] ELSE '{time_zone}'::text[] END
						   FROM @extschema@.order_source o)
		-- and which columns those names are (attnums): a registered column
		-- renamed away and another added under its name is another column
		-- of the same name, which a view made anew reads (refresh makes
		-- the view again when a DROP ... CASCADE took it): the models of
		-- the old column must not take the new one's lines
		OPERATOR(pg_catalog.||) coalesce((SELECT pg_catalog.jsonb_build_object('attnums', pg_catalog.jsonb_object_agg(rc.role, a.attnum))
										  FROM @extschema@._registered_columns() rc
										  JOIN pg_attribute a ON a.attrelid = rc.relation AND a.attname = rc.col
										  WHERE rc.what = 'order lines'), '{}')
		-- and the name each registered relation had when it was registered:
		-- the last refresh's unless registered since.  A relation renamed
		-- while another took its name is read by its oid, and every refresh
		-- says so until it is registered again (_refresh_check_sources);
		-- keeping the name of the last refresh instead, only the first did.
		-- (Not compared below: the same relation read alike.)
		OPERATOR(pg_catalog.||) coalesce((SELECT pg_catalog.jsonb_build_object('registered_as', pg_catalog.jsonb_object_agg(r.what,
											 coalesce(CASE WHEN r.registered_at OPERATOR(pg_catalog.<=) s.built_at
														   THEN @extschema@._name_as_registered(s.registration, r.what) END,
													  r.relation::regclass::text)))
										  FROM @extschema@._registered_relations() r
										  LEFT JOIN @extschema@.source_state s ON s.tenant_id OPERATOR(pg_catalog.=) t), '{}');
	changed text;
	-- the temporary tables an incremental build passes to its builders
	-- (ON COMMIT DROP)
	incremental_temps constant text[] := '{upsell_new_lines, upsell_changed_products, upsell_new_lines_read, upsell_order_changes}';
	temp_table text;
BEGIN
	-- what an incremental build of a tenant before it, in this
	-- transaction, left
	FOREACH temp_table IN ARRAY incremental_temps LOOP
		IF to_regclass('pg_temp.' || temp_table) IS NOT NULL THEN
			EXECUTE format('DROP TABLE pg_temp.%I', temp_table);
		END IF;
	END LOOP;
	-- (the registration view's row_xmin: a table's xmin, NULL for a view, a
	-- foreign table or a Citus distributed table)
	SELECT @extschema@._row_xmin(o.relation) <> 'NULL::xid', c.relkind = 'v', c.relkind = 'f'
	INTO has_xmin, is_view, is_foreign
	FROM @extschema@.order_source o JOIN pg_class c ON c.oid = o.relation;
	IF incremental THEN
		SELECT * INTO prev FROM @extschema@.source_state s WHERE s.tenant_id = t;
		IF NOT FOUND THEN
			why := 'the tenant has not been refreshed before';
		ELSIF NOT coalesce(has_xmin, false) THEN
			why := CASE WHEN is_view THEN 'the registered order lines are a view, whose rows carry no commit order'
						WHEN is_foreign THEN 'the registered order lines are a foreign table, whose rows carry no commit order of this server'
						ELSE 'the registered order lines are a Citus distributed table, whose rows carry the shards'' transaction ids' END;
		ELSIF pg_snapshot_xmax(snap)::text::numeric - pg_snapshot_xmax(prev.snapshot)::text::numeric > 1073741824 THEN
			why := 'over 2^30 transactions since its last refresh';
		ELSIF prev.registration - 'registered_as' IS DISTINCT FROM
			  -- (a state of 1.7 or older has no attnums: the names compared)
			  (CASE WHEN prev.registration ? 'attnums' THEN registration ELSE registration - 'attnums' END) - 'registered_as' THEN
			-- the same rows, read otherwise (another customer or time
			-- column, or none): the models of the lines as they were read
			-- would be kept, and the new lines folded into them
			changed := (SELECT string_agg(format('%s: %s, now %s', k, coalesce(prev.registration ->> k, 'none'),
												 coalesce(registration ->> k, 'none')), '; ' ORDER BY k)
						FROM (SELECT jsonb_object_keys(prev.registration)
							  UNION SELECT jsonb_object_keys(registration)) r(k)
						WHERE prev.registration -> k IS DISTINCT FROM registration -> k AND k NOT IN ('attnums', 'registered_as'));
			why := CASE WHEN changed IS NULL
						THEN 'a registered column of the order lines is another column of the same name since its last refresh (one renamed away and another added under its name)'
						-- the same registration, its relation renamed (refresh
						-- says in a WARNING when it became a partition, or
						-- another relation took its name)
						WHEN changed = format('relation: %s, now %s', prev.registration ->> 'relation', registration ->> 'relation')
							 AND (SELECT o.registered_at FROM @extschema@.order_source o) <= prev.built_at
						THEN format('the registered relation of the order lines was renamed since its last refresh (%s, now %s)',
									prev.registration ->> 'relation', registration ->> 'relation')
						ELSE 'the order lines were registered anew since its last refresh (' || changed || ')' END;
		ELSIF prev.settings OPERATOR(pg_catalog.-) 'bundles'::text IS DISTINCT FROM settings THEN
			why := format('settings changed since its last refresh (%s, now %s)',
						  prev.settings OPERATOR(pg_catalog.-) 'bundles'::text, settings);
		END IF;
	END IF;
	IF incremental AND why IS NULL THEN
		-- The new lines are those committed after the last refresh's
		-- snapshot.  Where the source's index on its order id serves the
		-- orders after the last refresh's (ids that grow with time, the
		-- usual case), one scan of every line as of this snapshot counts
		-- them all (count and checksum) and finds the smallest order key of
		-- a new line; the new lines are read through the index from that
		-- key on, and the lines counted last time are all the lines but the
		-- new ones.  Otherwise two scans: the new lines, then the lines the
		-- last refresh counted, counted again.  (10M lines, 1% new orders:
		-- 1.4 s against 1.8 s; without new lines the one scan, 1.2 s.)
		-- A late transaction's lower ids only move the key the index is
		-- read from: every new line is found either way.
		range_query := $q$
			SELECT l.* FROM @extschema@.order_lines l
			WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND l.order_key OPERATOR(pg_catalog.>=) $4
			  AND @extschema@._xmin_visible(l.row_xmin, $2) AND NOT @extschema@._xmin_visible(l.row_xmin, $3)$q$;
		last_key := (SELECT m.max_order_key FROM @extschema@.cooccurrence_model m WHERE m.tenant_id = t);
		IF last_key IS NOT NULL THEN
			EXECUTE 'EXPLAIN (FORMAT JSON) ' || range_query INTO range_plan USING t, snap, prev.snapshot, last_key;
			by_range := range_plan::text ~ '"Index Cond": "([^"\\]|\\.)*>='
						AND range_plan::text !~ '"Node Type": "Seq Scan"';
		END IF;
		IF by_range THEN
			-- (a new line without order key gives the smallest key: no
			-- range then, the new lines are found by a scan)
			EXECUTE $q$
				SELECT pg_catalog.count(*),
					   coalesce(pg_catalog.bit_xor(@extschema@._line_hash(l.order_key, l.product_id, l.quantity)), 0),
					   pg_catalog.min(CASE WHEN NOT @extschema@._xmin_visible(l.row_xmin, $3)
										   THEN coalesce(l.order_key, $4) END)
				FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND @extschema@._xmin_visible(l.row_xmin, $2)$q$
			INTO all_lines, all_sum, first_new_key
			USING t, snap, prev.snapshot, no_key;
		END IF;
		IF by_range AND first_new_key IS NULL THEN
			-- no new line
			EXECUTE 'CREATE TEMP TABLE upsell_new_lines ON COMMIT DROP AS ' || range_query || ' AND false'
			USING t, snap, prev.snapshot, no_key;
		ELSIF by_range AND first_new_key <> no_key THEN
			EXECUTE 'CREATE TEMP TABLE upsell_new_lines ON COMMIT DROP AS ' || range_query
			USING t, snap, prev.snapshot, first_new_key;
			-- the same read for a side build's worker (_new_lines_query)
			CREATE TEMP TABLE upsell_new_lines_read ON COMMIT DROP AS
			SELECT format($q$
				SELECT l.* FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) %s AND l.order_key OPERATOR(pg_catalog.>=) %s
				  AND @extschema@._xmin_visible(l.row_xmin, %L::pg_snapshot)
				  AND NOT @extschema@._xmin_visible(l.row_xmin, %L::pg_snapshot)$q$,
				t, first_new_key, snap, prev.snapshot) AS query;
		ELSE
			EXECUTE format($q$
				CREATE TEMP TABLE upsell_new_lines ON COMMIT DROP AS
				SELECT l.* FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND @extschema@._xmin_visible(l.row_xmin, $2)
				  AND NOT @extschema@._xmin_visible(l.row_xmin, $3)$q$)
			USING t, snap, prev.snapshot;
		END IF;
		SELECT count(*), coalesce(bit_xor(@extschema@._line_hash(n.order_key, n.product_id, n.quantity)), 0),
			   count(DISTINCT n.order_key)
		INTO new_n, new_sum, new_orders
		FROM pg_temp.upsell_new_lines n;
		-- the lines counted last time in the new lines' orders (a line
		-- added to an old order).  Where the new lines were read through
		-- the index from the first new order on, none of those is a line
		-- counted last time when no such line lies in that range: the
		-- range read again for the lines the last snapshot saw (17 ms at
		-- 10M lines with 1% new orders, all of them new orders).  Else
		-- through the index on the new orders where the planner takes one
		-- (31,487 orders: 0.11-0.27 s, 55-61 ms of it the EXPLAIN), else as
		-- a filter of the count below, the new orders a constant array, a
		-- hashed lookup (0.75 s of CPU per 10M lines), so that the lines
		-- are read once and may be read in parallel.
		-- (a count, not EXISTS, whose plan for a first row could be a scan
		-- of every line)
		IF by_range AND first_new_key <> no_key THEN
			EXECUTE $q$
				SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 0 FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND l.order_key OPERATOR(pg_catalog.>=) $3
				  AND @extschema@._xmin_visible(l.row_xmin, $2)$q$
			INTO touched_counted USING t, prev.snapshot, first_new_key;
		END IF;
		IF NOT coalesce(touched_counted, false) THEN
			new_keys := ARRAY(SELECT DISTINCT n.order_key FROM pg_temp.upsell_new_lines n
							  WHERE n.sold AND n.product_id IS NOT NULL AND n.order_key IS NOT NULL);
		END IF;
		touched_query := $q$
			SELECT pg_catalog.count(*) FROM @extschema@.order_lines l
			WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND l.order_key OPERATOR(pg_catalog.=) ANY ($3)
			  AND @extschema@._xmin_visible(l.row_xmin, $2)$q$;
		IF touched_counted THEN
			-- (no line counted last time from the first new order on)
			touched := 0;
		ELSIF new_keys = '{}' THEN
			touched := 0;
			touched_counted := true;
		ELSE
			EXECUTE 'EXPLAIN (FORMAT JSON) ' || touched_query INTO touched_plan USING t, prev.snapshot, new_keys;
			-- (an index condition on the new orders, the query's only ANY: not
			-- an index on the tenant, which would read the tenant's every line;
			-- and no scan, as of a partition without the index)
			touched_counted := touched_plan::text ~ '"Index Cond": "([^"\\]|\\.)*= ANY'
						AND touched_plan::text !~ '"Node Type": "Seq Scan"';
			IF touched_counted THEN
				EXECUTE touched_query INTO touched USING t, prev.snapshot, new_keys;
			END IF;
		END IF;
		IF by_range AND touched_counted THEN
			-- (every line as of this snapshot is a line counted last time or
			-- a new one)
			old_lines := all_lines - new_n;
			old_sum := all_sum # new_sum;
		ELSE
			-- the lines counted last time, counted again ($3: the count
			-- through the index, passed through)
			EXECUTE format($q$
				SELECT pg_catalog.count(*),
					   coalesce(pg_catalog.bit_xor(@extschema@._line_hash(l.order_key, l.product_id, l.quantity)), 0),
					   %s
				FROM @extschema@.order_lines l
				WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND @extschema@._xmin_visible(l.row_xmin, $2)$q$,
				CASE WHEN touched_counted THEN '$3'
					 ELSE format('pg_catalog.count(*) FILTER (WHERE l.order_key OPERATOR(pg_catalog.=) ANY (%L::bigint[]))', new_keys) END)
			INTO old_lines, old_sum, touched
			USING t, prev.snapshot, touched;
		END IF;
		IF old_lines <> prev.lines OR old_sum <> prev.checksum THEN
			why := CASE WHEN old_lines < prev.lines
						THEN format('%s of the %s order lines counted at the last refresh were deleted or edited since',
									prev.lines - old_lines, prev.lines)
						WHEN old_lines > prev.lines
						THEN format('%s more order lines than counted at the last refresh carry its commits (a subtransaction that committed late, a partition attached)',
									old_lines - prev.lines)
						ELSE 'order lines counted at the last refresh were replaced since (same count, other lines)' END;
		ELSIF touched > 0 THEN
			why := format('new lines were added to orders counted at the last refresh (%s %s of those orders %s counted)', touched,
						  CASE WHEN touched = 1 THEN 'line' ELSE 'lines' END, CASE WHEN touched = 1 THEN 'was' ELSE 'were' END);
		END IF;
	END IF;
	IF incremental AND why IS NOT NULL THEN
		RAISE NOTICE 'upsell: tenant %: rebuilt in full, not incrementally: %', t, why;
	END IF;

	IF incremental AND why IS NULL THEN
		n_lines := prev.lines + new_n;
		n_sum := prev.checksum # new_sum;
		-- the count and limit the kept bundles were mined at
		-- (_build_bundle_model): theirs until they are mined again
		IF prev.settings ? 'bundles' THEN
			settings := settings OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('bundles', prev.settings -> 'bundles');
		END IF;
		-- what the builders note as changed for those after them (_note_changed)
		CREATE TEMP TABLE upsell_changed_products (model name NOT NULL, product_id bigint NOT NULL) ON COMMIT DROP;
	ELSE
		-- rebuilt in full: no new lines for the builders
		FOREACH temp_table IN ARRAY incremental_temps LOOP
			IF to_regclass('pg_temp.' || temp_table) IS NOT NULL THEN
				EXECUTE format('DROP TABLE pg_temp.%I', temp_table);
			END IF;
		END LOOP;
		EXECUTE format($q$
			SELECT pg_catalog.count(*),
				   coalesce(pg_catalog.bit_xor(@extschema@._line_hash(l.order_key, l.product_id, l.quantity)), 0)
			FROM @extschema@.order_lines l
			WHERE l.tenant_id OPERATOR(pg_catalog.=) $1
			  AND @extschema@._xmin_visible(l.row_xmin, $2) IS NOT FALSE$q$)
		INTO n_lines, n_sum
		USING t, snap;
	END IF;
	-- a tenant without lines has no state (refresh then forgets a tenant
	-- whose every model is empty; its next incremental refresh is a full one)
	RETURN @extschema@._publish('source_state', t,
		format('SELECT %s::bigint AS tenant_id, %L::pg_snapshot AS snapshot, %s::bigint AS lines, %s::bigint AS checksum, '
			   '%L::text AS mode, %L::text AS reason, %s::bigint AS new_lines, %s::bigint AS new_orders, '
			   'pg_catalog.now() AS built_at, %L::jsonb AS settings, %L::jsonb AS registration '
			   'WHERE %3$s::bigint OPERATOR(pg_catalog.>) 0',
			   t, snap, n_lines, n_sum, CASE WHEN incremental AND why IS NULL THEN 'incremental' ELSE 'full' END,
			   why, coalesce(new_n::text, 'NULL'), coalesce(new_orders::text, 'NULL'), settings, registration));
END
$$;

SELECT @extschema@._define_model('source_state',
	$$tenant_id bigint PRIMARY KEY, snapshot pg_snapshot NOT NULL, lines bigint NOT NULL,
	  checksum bigint NOT NULL, mode text NOT NULL CHECK (mode IN ('full', 'incremental')),
	  reason text, new_lines bigint, new_orders bigint, built_at timestamptz NOT NULL,
	  settings jsonb NOT NULL, registration jsonb$$,
	NULL, 1, '@extschema@._build_source_state(bigint, boolean)',
	'per tenant: the snapshot its models were built at (its order lines are those whose transaction it sees), their count and checksum, whether the last refresh folded new lines in (incremental) or rebuilt (full, with the reason when incremental was asked for), the settings that shaped its models, and the registration its order lines were read by (a change of either rebuilds in full; not the names the registered relations had when registered, registered_as, kept to say when such a name is another relation''s now)');

-- The tenant's order lines as of its refresh snapshot, as a FROM item (alias
-- l) for the builders' queries.  Before source_state is built (or for a
-- source without row xmin) every current line.  With a snapshot, the lines
-- as of that one, written into the text: a side build's worker
-- (src/side_build.c) cannot see the source_state row its refresh has not
-- committed yet.
CREATE FUNCTION @extschema@._tenant_lines(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN format('(SELECT l.* FROM @extschema@.order_lines l '
			  'WHERE l.tenant_id OPERATOR(pg_catalog.=) %s AND @extschema@._xmin_visible(l.row_xmin, %s) '
			  'IS NOT FALSE)', tenant_id,
			  coalesce(quote_literal(snapshot) || '::pg_snapshot',
					   format('(SELECT s.snapshot FROM @extschema@.source_state s WHERE s.tenant_id OPERATOR(pg_catalog.=) %s)',
							  tenant_id)));

-- The refresh's new lines (pg_temp.upsell_new_lines, alias n) for a side
-- build's query, which its worker cannot read from the temporary table: a
-- query of columns names of types, each the values of its expression in
-- exprs over the lines that pass filter (which may name keys as k.keys),
-- ordered by order_by when given.  The incremental builds of the purchase
-- histories and of the upgrade counts fold their new lines so.  Where
-- _build_source_state read the new lines through the source's index on its
-- order id (pg_temp.upsell_new_lines_read), the query reads them so too;
-- otherwise they are written into it as literal arrays, which took the
-- refresh 0.29 s for the histories' 98,695 new lines at 10M lines, before
-- their worker could start, and the worker 0.22 s to read (through the
-- index: 0.12 s in the worker, the sort by customer included).
CREATE FUNCTION @extschema@._new_lines_query(names text[], types text[], exprs text[], filter text,
	order_by text DEFAULT NULL, keys bigint[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	literals text[];
	source text;
BEGIN
	IF cardinality(names) IS DISTINCT FROM cardinality(types) OR cardinality(names) IS DISTINCT FROM cardinality(exprs) THEN
		RAISE EXCEPTION 'upsell: % names, % types and % expressions of new lines', cardinality(names),
			cardinality(types), cardinality(exprs) USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF to_regclass('pg_temp.upsell_new_lines_read') IS NOT NULL THEN
		SELECT r.query INTO source FROM pg_temp.upsell_new_lines_read r;
	END IF;
	IF source IS NOT NULL THEN
		RETURN format('SELECT %s FROM (%s) n, (SELECT %L::bigint[]) k(keys) WHERE %s%s',
					  (SELECT string_agg(format('(%s)::%s AS %I', x.e, x.typ, x.name), ', ' ORDER BY x.i)
					   FROM unnest(exprs, types, names) WITH ORDINALITY x(e, typ, name, i)),
					  source, keys, filter, ' ORDER BY ' || order_by);
	END IF;
	EXECUTE format('SELECT ARRAY[%s] FROM pg_temp.upsell_new_lines n, (SELECT $1::bigint[]) k(keys) WHERE %s',
				   (SELECT string_agg(format('coalesce(pg_catalog.array_agg(%s%s)::text, ''{}'')', e,
											 ' ORDER BY ' || order_by), ', ' ORDER BY i)
					FROM unnest(exprs) WITH ORDINALITY x(e, i)), filter)
	INTO literals USING keys;
	RETURN format('SELECT * FROM ROWS FROM (%s) l(%s)',
				  (SELECT string_agg(format('pg_catalog.unnest(%L::%s[])', x.lit, x.typ), ', ' ORDER BY x.i)
				   FROM unnest(literals, types) WITH ORDINALITY x(lit, typ, i)),
				  (SELECT string_agg(quote_ident(x.name), ', ' ORDER BY x.i)
				   FROM unnest(names) WITH ORDINALITY x(name, i)));
END
$$;

-- Whether the tenant's refresh folds new lines in (source_state decided).
-- (plpgsql: Citus 12.1 cannot run a SQL-standard body that reads a
-- distributed table when the function is not inlined)
CREATE FUNCTION @extschema@._incremental(tenant_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN coalesce((SELECT s.mode = 'incremental' FROM @extschema@.source_state s
					 WHERE s.tenant_id = _incremental.tenant_id), false);
END
$$;

-- Whether the tenant's refresh folds new lines in and found none: its lines
-- are the ones its models were built from (every line's checksum matched,
-- _build_source_state), and so are the models computed from the lines and
-- settings alone (the counts, the bundles, the product intervals, the
-- recent orders; the upgrade lists while no catalog fact changed; the
-- categories while no catalog fact nor merchant rule changed).  Those
-- builders keep their rows, and no side build computes them again: an
-- hourly refresh of a quiet shop, or of the many tenants of a database
-- that had no orders in the hour, costs the check of its lines, not a
-- rebuild (20 s at 10M lines).
CREATE FUNCTION @extschema@._lines_unchanged(tenant_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN coalesce((SELECT s.mode = 'incremental' AND s.new_lines = 0 FROM @extschema@.source_state s
					 WHERE s.tenant_id = _lines_unchanged.tenant_id), false);
END
$$;
