
-- ===========================================================================
-- Counting over shards of whole orders (Citus tables distributed by order or
-- by tenant): partial states are pair counts, not lines
-- ===========================================================================

-- The transition state is the result type itself (Citus pushes partial
-- aggregation to the workers only for real transition types, sent as text),
-- kept as an expanded object while lines stream in (src/cooccurrence_sharded.c).
CREATE FUNCTION @extschema@._cooc_sharded_trans(@extschema@.cooccurrence, bigint, bigint)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_sharded_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_sharded_trans(@extschema@.cooccurrence, bigint, bigint, numeric)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_sharded_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_sharded_final(@extschema@.cooccurrence)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_sharded_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- PARALLEL RESTRICTED: PostgreSQL's own parallel workers may split an order's
-- lines, which adding pair counts would miscount; Citus's shards do not.
CREATE AGGREGATE @extschema@.cooccurrence_sharded_agg(order_key bigint, product_id bigint) (
	SFUNC = @extschema@._cooc_sharded_trans,
	STYPE = @extschema@.cooccurrence,
	FINALFUNC = @extschema@._cooc_sharded_final,
	COMBINEFUNC = @extschema@.cooccurrence_merge,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_sharded_agg(bigint, bigint) IS
	'upsell.cooccurrence_agg for tables whose every order lies in one shard (Citus, distributed by order or tenant): each shard sends its pair counts';

CREATE AGGREGATE @extschema@.cooccurrence_sharded_agg(order_key bigint, product_id bigint, quantity numeric) (
	SFUNC = @extschema@._cooc_sharded_trans,
	STYPE = @extschema@.cooccurrence,
	FINALFUNC = @extschema@._cooc_sharded_final,
	COMBINEFUNC = @extschema@.cooccurrence_merge,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_sharded_agg(bigint, bigint, numeric) IS
	'upsell.cooccurrence_agg for tables whose every order lies in one shard (Citus, distributed by order or tenant): each shard sends its pair counts; lines with quantity <= 0 are skipped';
