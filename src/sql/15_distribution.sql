
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
		CASE WHEN @extschema@._orders_sharded() THEN '@extschema@.cooccurrence_sharded_agg'
			 ELSE '@extschema@.cooccurrence_agg' END,
		new_lines);
END
$$;
