\echo Use "CREATE EXTENSION upsell" to load this file. \quit

-- ===========================================================================
-- Counting core: the co-occurrence aggregate and the type holding its result
-- ===========================================================================

CREATE TYPE @extschema@.cooccurrence;

CREATE FUNCTION @extschema@.cooccurrence_in(cstring) RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_in'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cooccurrence_out(@extschema@.cooccurrence) RETURNS cstring
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_out'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cooccurrence_recv(internal) RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_recv'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.cooccurrence_send(@extschema@.cooccurrence) RETURNS bytea
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_send'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE @extschema@.cooccurrence (
	INPUT = @extschema@.cooccurrence_in,
	OUTPUT = @extschema@.cooccurrence_out,
	RECEIVE = @extschema@.cooccurrence_recv,
	SEND = @extschema@.cooccurrence_send,
	INTERNALLENGTH = VARIABLE,
	STORAGE = extended
);
COMMENT ON TYPE @extschema@.cooccurrence IS
	'order counts per product and per product pair, as produced by upsell.cooccurrence_agg; two values add with upsell.cooccurrence_merge';

-- Aggregate support functions (internal state: the order lines seen so far).
CREATE FUNCTION @extschema@._cooc_trans(internal, bigint, bigint) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_trans(internal, bigint, bigint, numeric) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'upsell_cooc_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_cooc_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._cooc_final(internal) RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooc_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE @extschema@.cooccurrence_agg(order_key bigint, product_id bigint) (
	SFUNC = @extschema@._cooc_trans,
	STYPE = internal,
	FINALFUNC = @extschema@._cooc_final,
	COMBINEFUNC = @extschema@._cooc_combine,
	SERIALFUNC = @extschema@._cooc_serialize,
	DESERIALFUNC = @extschema@._cooc_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_agg(bigint, bigint) IS
	'counts orders per product and per product pair over order lines (order, product); a product counts once per order';

CREATE AGGREGATE @extschema@.cooccurrence_agg(order_key bigint, product_id bigint, quantity numeric) (
	SFUNC = @extschema@._cooc_trans,
	STYPE = internal,
	FINALFUNC = @extschema@._cooc_final,
	COMBINEFUNC = @extschema@._cooc_combine,
	SERIALFUNC = @extschema@._cooc_serialize,
	DESERIALFUNC = @extschema@._cooc_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_agg(bigint, bigint, numeric) IS
	'counts orders per product and per product pair; lines with quantity <= 0 (returns, cancellations) are skipped';

CREATE FUNCTION @extschema@.cooccurrence_merge(@extschema@.cooccurrence, @extschema@.cooccurrence)
	RETURNS @extschema@.cooccurrence
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_merge'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cooccurrence_merge(@extschema@.cooccurrence, @extschema@.cooccurrence) IS
	'adds two co-occurrence counts: the counts of two disjoint sets of orders';

CREATE AGGREGATE @extschema@.cooccurrence_sum(@extschema@.cooccurrence) (
	SFUNC = @extschema@.cooccurrence_merge,
	STYPE = @extschema@.cooccurrence,
	COMBINEFUNC = @extschema@.cooccurrence_merge,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.cooccurrence_sum(@extschema@.cooccurrence) IS
	'adds co-occurrence counts of disjoint sets of orders';

CREATE FUNCTION @extschema@.cooccurrence_info(state @extschema@.cooccurrence,
	OUT orders bigint, OUT products bigint, OUT pairs bigint,
	OUT skipped_lines bigint, OUT big_orders bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_info'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cooccurrence_info(@extschema@.cooccurrence) IS
	'orders, distinct products and pairs counted; lines skipped (NULL id, quantity <= 0); orders too large for pair counting (upsell.max_basket_size)';

CREATE FUNCTION @extschema@.cooccurrence_products(state @extschema@.cooccurrence)
	RETURNS TABLE (product_id bigint, orders bigint)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_products'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@.cooccurrence_products(@extschema@.cooccurrence) IS
	'orders containing each product';

CREATE FUNCTION @extschema@.cooccurrence_pairs(state @extschema@.cooccurrence,
	min_count int DEFAULT 2, min_support float8 DEFAULT 0, min_confidence float8 DEFAULT 0)
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   product_count bigint, other_count bigint, orders bigint,
				   support float8, confidence float8, lift float8, leverage float8,
				   conviction float8, jaccard float8, score float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_pairs'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION @extschema@.cooccurrence_pairs(@extschema@.cooccurrence, int, float8, float8) IS
	'one row per ordered pair (product -> other) with support, confidence, lift, leverage, conviction, jaccard and the ranking score';

CREATE FUNCTION @extschema@.cooccurrence_top_pairs(state @extschema@.cooccurrence,
	per_product int, min_count int DEFAULT 2)
	RETURNS TABLE (product_id bigint, other_id bigint, together bigint,
				   score float8, confidence float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_top_pairs'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION @extschema@.cooccurrence_top_pairs(@extschema@.cooccurrence, int, int) IS
	'for each product its per_product best complements by score, ties broken by product id';

CREATE FUNCTION @extschema@._cooccurrence_from_query(query text)
	RETURNS TABLE (tenant_id bigint, state @extschema@.cooccurrence)
	AS 'MODULE_PATHNAME', 'upsell_cooccurrence_from_query'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._cooccurrence_from_query(text) IS
	'co-occurrence counts per tenant of a query returning (order id, product id [, tenant id])';

CREATE FUNCTION @extschema@.order_key(order_id text) RETURNS bigint
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN pg_catalog.hashtextextended(order_id COLLATE "C", 0);
COMMENT ON FUNCTION @extschema@.order_key(text) IS
	'64-bit key of a non-integer order or customer id, as upsell uses it internally';

-- ===========================================================================
-- Registration: which of the shop's relations and columns mean what
-- ===========================================================================
--
-- register_orders / register_products record a mapping in a config table and
-- (re)create a view with canonical column names over the shop's relation:
-- upsell.order_lines and upsell.catalog.  Everything downstream reads through
-- these two views with static SQL; user-supplied names only ever reach SQL
-- through format('%I').

CREATE TABLE @extschema@.order_source (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	relation	regclass NOT NULL,
	order_id	name NOT NULL,
	product_id	name NOT NULL,
	customer_id	name,
	ordered_at	name,
	quantity	name,
	unit_price	name,
	tenant_id	name,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_source', '');
COMMENT ON TABLE @extschema@.order_source IS
	'the registered order lines: relation and the columns that mean order, product, customer, time, quantity, price, tenant';

CREATE TABLE @extschema@.product_source (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	relation	regclass NOT NULL,
	product_id	name NOT NULL,
	price		name,
	category	name,
	variant_group name,
	in_stock	name,
	title		name,
	tenant_id	name,
	unit_size	name,
	unit_name	name,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.product_source', '');
COMMENT ON TABLE @extschema@.product_source IS
	'the registered catalog: relation and the columns that mean product, price, category, variant group, stock, title, tenant, unit size';

-- The views upsell.order_lines and upsell.catalog are created by the register
-- functions, not by this script: they depend on the shop's tables, and as
-- members of the extension a DROP ... CASCADE of a shop table would drop the
-- whole extension.  As ordinary views in the extension's schema pg_dump keeps
-- them, and refresh re-creates them from the config tables anyway.
--
--   upsell.order_lines (tenant_id bigint, order_key bigint, order_id text,
--                       product_id bigint, customer_id bigint,
--                       ordered_at timestamptz, quantity numeric, unit_price numeric)
--   upsell.catalog     (tenant_id bigint, product_id bigint, price numeric,
--                       category text, variant_group text, in_stock boolean,
--                       title text, unit_size numeric, unit_name text)
--
-- tenant_id is 0 without a tenant column; order_key is the order id, or
-- upsell.order_key() of it when it is not an integer; quantity is 1 and
-- in_stock true when those columns are not registered.

-- Raises unless the registered relation still exists.
CREATE FUNCTION @extschema@._check_relation(relation regclass, what text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_class WHERE oid = relation) THEN
		RAISE EXCEPTION 'the relation registered for the % no longer exists', what
			USING ERRCODE = 'undefined_table',
				  HINT = format('Register the %s again.', what);
	END IF;
END
$$;

-- Type of a column, or an error that names the relation's columns.
CREATE FUNCTION @extschema@._column_type(relation regclass, col name, role text)
RETURNS regtype
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regtype;
BEGIN
	SELECT a.atttypid::regtype INTO t
	FROM pg_attribute a
	WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation % does not exist', col, relation
			USING ERRCODE = 'undefined_column',
				  DETAIL = format('It was given as the %s column.', role),
				  HINT = format('The columns of %s are: %s.', relation,
						 (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
						  FROM pg_attribute
						  WHERE attrelid = relation AND attnum > 0 AND NOT attisdropped));
	END IF;
	RETURN t;
END
$$;

-- The canonical expression for one column, by the role it plays and its type.
CREATE FUNCTION @extschema@._column_expr(relation regclass, col name, role text)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t regtype;
	c text := 's.' || quote_ident(col);
	integers regtype[] := '{smallint,integer,bigint}';
	numbers regtype[] := '{smallint,integer,bigint,numeric,real,double precision}';
	texts regtype[] := '{text,character varying,character,name,uuid}';
	expected text;
BEGIN
	t := @extschema@._column_type(relation, col, role);
	CASE role
		WHEN 'product_id', 'tenant_id' THEN
			IF t = ANY (integers) THEN RETURN c || '::bigint'; END IF;
			expected := 'an integer type (smallint, integer, bigint)';
		WHEN 'order_id', 'customer_id', 'cart_id' THEN
			IF t = ANY (integers) THEN RETURN c || '::bigint'; END IF;
			IF t = ANY (texts) THEN RETURN format('@extschema@.order_key(%s::text)', c); END IF;
			expected := 'an integer or text type';
		WHEN 'ordered_at', 'added_at', 'checked_out_at' THEN
			IF t IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) THEN
				RETURN c || '::timestamptz';
			END IF;
			expected := 'date, timestamp or timestamptz';
		WHEN 'quantity', 'price', 'unit_price', 'unit_size' THEN
			IF t = ANY (numbers) THEN RETURN c || '::numeric'; END IF;
			expected := 'a numeric or integer type';
		WHEN 'in_stock' THEN
			IF t = 'boolean'::regtype THEN RETURN format('coalesce(%s, true)', c); END IF;
			IF t = ANY (numbers) THEN RETURN format('coalesce(%s > 0, true)', c); END IF;
			expected := 'boolean, or a number of units in stock';
		ELSE
			-- category, variant_group, title, unit_name: anything with a text form
			RETURN c || '::text';
	END CASE;
	RAISE EXCEPTION 'column "%" of relation % has type %, which cannot be the % column', col, relation, t, role
		USING ERRCODE = 'datatype_mismatch',
			  HINT = format('The %s column must be %s.', role, expected);
END
$$;

-- (Re)creates upsell.order_lines from upsell.order_source.
CREATE FUNCTION @extschema@._sync_order_lines()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
	opt CONSTANT text := 'NULL::%s';
BEGIN
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM @extschema@._check_relation(s.relation, 'order lines');
	EXECUTE format(
		'CREATE OR REPLACE VIEW @extschema@.order_lines AS SELECT %s AS tenant_id, %s AS order_key, %s AS order_id, '
		'%s AS product_id, %s AS customer_id, %s AS ordered_at, %s AS quantity, %s AS unit_price FROM %s AS s',
		CASE WHEN s.tenant_id IS NULL THEN '0::bigint' ELSE @extschema@._column_expr(s.relation, s.tenant_id, 'tenant_id') END,
		@extschema@._column_expr(s.relation, s.order_id, 'order_id'),
		's.' || quote_ident(s.order_id) || '::text',
		@extschema@._column_expr(s.relation, s.product_id, 'product_id'),
		CASE WHEN s.customer_id IS NULL THEN format(opt, 'bigint') ELSE @extschema@._column_expr(s.relation, s.customer_id, 'customer_id') END,
		CASE WHEN s.ordered_at IS NULL THEN format(opt, 'timestamptz') ELSE @extschema@._column_expr(s.relation, s.ordered_at, 'ordered_at') END,
		CASE WHEN s.quantity IS NULL THEN '1::numeric' ELSE @extschema@._column_expr(s.relation, s.quantity, 'quantity') END,
		CASE WHEN s.unit_price IS NULL THEN format(opt, 'numeric') ELSE @extschema@._column_expr(s.relation, s.unit_price, 'unit_price') END,
		s.relation);
	COMMENT ON VIEW @extschema@.order_lines IS
		'the registered order lines under canonical names, created by upsell.register_orders()';
END
$$;

-- (Re)creates upsell.catalog from upsell.product_source.
CREATE FUNCTION @extschema@._sync_catalog()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.product_source;
BEGIN
	SELECT * INTO s FROM @extschema@.product_source;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM @extschema@._check_relation(s.relation, 'catalog');
	EXECUTE format(
		'CREATE OR REPLACE VIEW @extschema@.catalog AS SELECT %s AS tenant_id, %s AS product_id, %s AS price, '
		'%s AS category, %s AS variant_group, %s AS in_stock, %s AS title, %s AS unit_size, %s AS unit_name FROM %s AS s',
		CASE WHEN s.tenant_id IS NULL THEN '0::bigint' ELSE @extschema@._column_expr(s.relation, s.tenant_id, 'tenant_id') END,
		@extschema@._column_expr(s.relation, s.product_id, 'product_id'),
		CASE WHEN s.price IS NULL THEN 'NULL::numeric' ELSE @extschema@._column_expr(s.relation, s.price, 'price') END,
		CASE WHEN s.category IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.category, 'category') END,
		CASE WHEN s.variant_group IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.variant_group, 'variant_group') END,
		CASE WHEN s.in_stock IS NULL THEN 'true' ELSE @extschema@._column_expr(s.relation, s.in_stock, 'in_stock') END,
		CASE WHEN s.title IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.title, 'title') END,
		CASE WHEN s.unit_size IS NULL THEN 'NULL::numeric' ELSE @extschema@._column_expr(s.relation, s.unit_size, 'unit_size') END,
		CASE WHEN s.unit_name IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.unit_name, 'unit_name') END,
		s.relation);
	COMMENT ON VIEW @extschema@.catalog IS
		'the registered catalog under canonical names, created by upsell.register_products()';
END
$$;

-- What the builders read as the catalog: the registered one, or none.
CREATE FUNCTION @extschema@._catalog_source()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN EXISTS (SELECT FROM @extschema@.product_source) THEN '@extschema@.catalog'
	ELSE '(SELECT NULL::bigint AS tenant_id, NULL::bigint AS product_id, NULL::numeric AS price, '
		 'NULL::text AS category, NULL::text AS variant_group, NULL::boolean AS in_stock, '
		 'NULL::text AS title, NULL::numeric AS unit_size, NULL::text AS unit_name WHERE false)' END;

CREATE FUNCTION @extschema@.register_orders(relation regclass, order_id name, product_id name,
	customer_id name DEFAULT NULL, ordered_at name DEFAULT NULL, quantity name DEFAULT NULL,
	unit_price name DEFAULT NULL, tenant_id name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF relation IS NULL OR order_id IS NULL OR product_id IS NULL THEN
		RAISE EXCEPTION 'relation, order_id and product_id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	INSERT INTO @extschema@.order_source AS o
		(relation, order_id, product_id, customer_id, ordered_at, quantity, unit_price, tenant_id)
	VALUES (relation, order_id, product_id, customer_id, ordered_at, quantity, unit_price, tenant_id)
	ON CONFLICT (singleton) DO UPDATE SET
		relation = excluded.relation, order_id = excluded.order_id,
		product_id = excluded.product_id, customer_id = excluded.customer_id,
		ordered_at = excluded.ordered_at, quantity = excluded.quantity,
		unit_price = excluded.unit_price, tenant_id = excluded.tenant_id,
		registered_at = now();
	-- validates every column; an error rolls the registration back
	PERFORM @extschema@._sync_order_lines();
END
$$;
COMMENT ON FUNCTION @extschema@.register_orders(regclass, name, name, name, name, name, name, name) IS
	'records which table or view holds the order lines (one row per line) and which columns mean what';

CREATE FUNCTION @extschema@.register_products(relation regclass, product_id name,
	price name DEFAULT NULL, category name DEFAULT NULL, variant_group name DEFAULT NULL,
	in_stock name DEFAULT NULL, title name DEFAULT NULL, tenant_id name DEFAULT NULL,
	unit_size name DEFAULT NULL, unit_name name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF relation IS NULL OR product_id IS NULL THEN
		RAISE EXCEPTION 'relation and product_id must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	INSERT INTO @extschema@.product_source AS p
		(relation, product_id, price, category, variant_group, in_stock, title, tenant_id, unit_size, unit_name)
	VALUES (relation, product_id, price, category, variant_group, in_stock, title, tenant_id, unit_size, unit_name)
	ON CONFLICT (singleton) DO UPDATE SET
		relation = excluded.relation, product_id = excluded.product_id,
		price = excluded.price, category = excluded.category,
		variant_group = excluded.variant_group, in_stock = excluded.in_stock,
		title = excluded.title, tenant_id = excluded.tenant_id,
		unit_size = excluded.unit_size, unit_name = excluded.unit_name,
		registered_at = now();
	PERFORM @extschema@._sync_catalog();
END
$$;
COMMENT ON FUNCTION @extschema@.register_products(regclass, name, name, name, name, name, name, name, name, name) IS
	'records which table or view is the catalog and which columns mean price, category, variant group, stock, title, tenant, unit size';

-- The tenant a request is about: the given one when orders are registered
-- per tenant, 0 when they are not.
CREATE FUNCTION @extschema@._tenant(tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	per_tenant boolean;
BEGIN
	SELECT s.tenant_id IS NOT NULL INTO per_tenant FROM @extschema@.order_source s;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;
	IF per_tenant AND tenant_id IS NULL THEN
		RAISE EXCEPTION 'tenant_id is required: order lines are registered per tenant'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT per_tenant AND tenant_id IS DISTINCT FROM NULL AND tenant_id <> 0 THEN
		RAISE EXCEPTION 'tenant_id % given, but order lines are registered without a tenant column', tenant_id
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL, or register the orders with tenant_id => ''column''.';
	END IF;
	RETURN coalesce(tenant_id, 0);
END
$$;

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
		PERFORM @extschema@._sync_order_lines();
	END IF;
	IF to_regclass('@extschema@.catalog') IS NULL THEN
		PERFORM @extschema@._sync_catalog();
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

-- ===========================================================================
-- Merchant rules every tactic respects: exclusions
-- ===========================================================================

CREATE TABLE @extschema@.exclusions (
	exclusion_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id		bigint NOT NULL DEFAULT 0,
	product_id		bigint,
	category		text,
	with_product_id	bigint,
	note			text,
	CHECK ((product_id IS NULL) <> (category IS NULL)),
	CHECK (with_product_id IS NULL OR product_id IS NOT NULL)
);
CREATE INDEX ON @extschema@.exclusions (tenant_id, product_id);
CREATE INDEX ON @extschema@.exclusions (tenant_id, category);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.exclusions', '');
-- the identity's sequence too, or the next insert after a restore collides
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.exclusions', 'exclusion_id')::regclass, '');
COMMENT ON TABLE @extschema@.exclusions IS
	'never offer a product (product_id), a category (category), or a product together with another (product_id with with_product_id in the cart, page or order); tenant_id 0 without tenants';

-- Whether a candidate may not be offered next to the context products (the
-- cart, the product on the page, the order just placed).
CREATE FUNCTION @extschema@.is_excluded(tenant_id bigint, product_id bigint, category text,
	context bigint[] DEFAULT '{}')
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT EXISTS (
		SELECT FROM @extschema@.exclusions e
		WHERE e.tenant_id = is_excluded.tenant_id
		  AND ((e.product_id = is_excluded.product_id
				AND (e.with_product_id IS NULL OR e.with_product_id = ANY (is_excluded.context)))
			   OR e.category = is_excluded.category));
END;
COMMENT ON FUNCTION @extschema@.is_excluded(bigint, bigint, text, bigint[]) IS
	'true when upsell.exclusions forbids offering the product (of that category) next to the context products';

-- ===========================================================================
-- Cross-sell: frequently bought together, and complements of a cart
-- ===========================================================================

-- ---- models ---------------------------------------------------------------

-- The lines a refresh counts: all of them, or for an incremental refresh only
-- those newer than what the serving slot counted (by order time when one is
-- registered, else by integer order id).  NULL when incremental is impossible.
CREATE FUNCTION @extschema@._new_lines_filter(previous text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.order_source;
BEGIN
	SELECT * INTO s FROM @extschema@.order_source;
	IF s.ordered_at IS NOT NULL THEN
		RETURN format('l.ordered_at > (SELECT p.max_ordered_at FROM %s p WHERE p.tenant_id = l.tenant_id) '
					  'OR NOT EXISTS (SELECT FROM %s p WHERE p.tenant_id = l.tenant_id)', previous, previous);
	ELSIF @extschema@._column_type(s.relation, s.order_id, 'order_id')
		  IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN
		RETURN format('l.order_key > (SELECT p.max_order_key FROM %s p WHERE p.tenant_id = l.tenant_id) '
					  'OR NOT EXISTS (SELECT FROM %s p WHERE p.tenant_id = l.tenant_id)', previous, previous);
	END IF;
	RETURN NULL;
END
$$;

CREATE FUNCTION @extschema@._build_cooccurrence(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	target text := @extschema@._slot_table('cooccurrence_model', slot);
	previous text := @extschema@._slot_table('cooccurrence_model', CASE slot WHEN 'a' THEN 'b' ELSE 'a' END);
	new_lines text := 'true';
	n bigint;
	skipped bigint;
	big bigint;
BEGIN
	IF incremental THEN
		new_lines := @extschema@._new_lines_filter(previous);
		IF new_lines IS NULL THEN
			RAISE NOTICE 'upsell: order lines have neither an order time nor an integer order id: counting them all';
			new_lines := 'true';
			incremental := false;
		END IF;
	END IF;
	-- counts of the new lines, added to the previous counts of the same tenant
	EXECUTE format($q$
		INSERT INTO %1$s (tenant_id, state, max_ordered_at, max_order_key)
		SELECT coalesce(n.tenant_id, p.tenant_id),
			   CASE WHEN p.state IS NULL THEN n.state
					WHEN n.state IS NULL THEN p.state
					ELSE @extschema@.cooccurrence_merge(p.state, n.state) END,
			   greatest(p.max_ordered_at, n.max_ordered_at),
			   greatest(p.max_order_key, n.max_order_key)
		FROM (SELECT l.tenant_id,
					 @extschema@.cooccurrence_agg(l.order_key, l.product_id, l.quantity) AS state,
					 max(l.ordered_at) AS max_ordered_at, max(l.order_key) AS max_order_key
			  FROM @extschema@.order_lines l
			  WHERE %3$s
			  GROUP BY l.tenant_id) n
		FULL JOIN (SELECT * FROM %2$s WHERE %4$L) p ON p.tenant_id = n.tenant_id$q$,
		target, previous, new_lines, incremental);
	GET DIAGNOSTICS n = ROW_COUNT;
	EXECUTE format($q$
		UPDATE %s m SET (orders, products, pairs, skipped_lines, big_orders) =
			(SELECT i.orders, i.products, i.pairs, i.skipped_lines, i.big_orders
			 FROM @extschema@.cooccurrence_info(m.state) i)$q$, target);
	EXECUTE format('SELECT coalesce(sum(skipped_lines), 0), coalesce(sum(big_orders), 0) FROM %s', target)
		INTO skipped, big;
	IF skipped > 0 THEN
		RAISE NOTICE 'upsell: skipped % order lines with a NULL order or product id or a quantity <= 0', skipped;
	END IF;
	IF big > 0 THEN
		RAISE NOTICE 'upsell: % orders with more than % products counted for their products but not for pairs',
			big, current_setting('upsell.max_basket_size');
	END IF;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('cooccurrence_model',
	$$tenant_id bigint PRIMARY KEY, state @extschema@.cooccurrence NOT NULL,
	  orders bigint, products bigint, pairs bigint, skipped_lines bigint, big_orders bigint,
	  max_ordered_at timestamptz, max_order_key bigint$$,
	NULL, 10, '@extschema@._build_cooccurrence(text, boolean)',
	'per tenant: the co-occurrence counts of all registered order lines (input of the pair and product models, and of incremental refresh)');

CREATE FUNCTION @extschema@._build_product_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF EXISTS (SELECT FROM @extschema@.order_source o, @extschema@.product_source p
			   WHERE (o.tenant_id IS NULL) <> (p.tenant_id IS NULL)) THEN
		RAISE EXCEPTION 'order lines and catalog must both be registered with a tenant column, or both without'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, product_id, orders, popularity_rank, category, variant_group, price, in_stock, title)
		SELECT coalesce(c.tenant_id, o.tenant_id), coalesce(c.product_id, o.product_id),
			   coalesce(o.orders, 0),
			   row_number() OVER (PARTITION BY coalesce(c.tenant_id, o.tenant_id)
								  ORDER BY coalesce(o.orders, 0) DESC, coalesce(c.product_id, o.product_id)),
			   c.category, c.variant_group, c.price, coalesce(c.in_stock, true), c.title
		FROM (SELECT m.tenant_id, x.product_id, x.orders
			  FROM %s m, @extschema@.cooccurrence_products(m.state) x) o
		FULL JOIN (SELECT DISTINCT ON (tenant_id, product_id) *
				   FROM %s AS catalog
				   WHERE product_id IS NOT NULL
				   ORDER BY tenant_id, product_id) c
			ON c.tenant_id = o.tenant_id AND c.product_id = o.product_id$q$,
		@extschema@._slot_table('product_model', slot),
		@extschema@._slot_table('cooccurrence_model', slot),
		@extschema@._catalog_source());
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('product_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, orders bigint NOT NULL,
	  popularity_rank bigint NOT NULL, category text, variant_group text, price numeric,
	  in_stock boolean NOT NULL, title text,
	  PRIMARY KEY (tenant_id, product_id)$$,
	ARRAY['(tenant_id, popularity_rank)', '(tenant_id, category, popularity_rank)', '(product_id)'],
	20, '@extschema@._build_product_model(text, boolean)',
	'per product: orders containing it, popularity rank, and the catalog attributes as of the last refresh');

CREATE FUNCTION @extschema@._build_pair_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, product_id, other_id, together, score, confidence, lift)
		SELECT m.tenant_id, t.product_id, t.other_id, t.together, t.score, t.confidence, t.lift
		FROM %s m,
			 @extschema@.cooccurrence_top_pairs(m.state,
				coalesce(current_setting('upsell.pairs_per_product', true)::int, 50), 2) t$q$,
		@extschema@._slot_table('pair_model', slot),
		@extschema@._slot_table('cooccurrence_model', slot));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('pair_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, other_id bigint NOT NULL,
	  together bigint NOT NULL, score float8 NOT NULL, confidence float8 NOT NULL, lift float8 NOT NULL,
	  PRIMARY KEY (tenant_id, product_id, other_id)$$,
	NULL, 30, '@extschema@._build_pair_model(text, boolean)',
	'per product: its best complements (upsell.pairs_per_product, seen together in at least 2 orders) with score, confidence and lift');

-- ---- analysis -------------------------------------------------------------

-- Raises unless the thresholds are given; true otherwise (a one-time filter).
CREATE FUNCTION @extschema@._pair_thresholds_given(min_count int, min_support float8, min_confidence float8)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF min_count IS NULL OR min_support IS NULL OR min_confidence IS NULL THEN
		RAISE EXCEPTION 'min_count, min_support and min_confidence must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	RETURN true;
END
$$;

-- A plain SQL function, so that the planner inlines it: no second copy of
-- every pair row, and the counting may run in parallel workers.  (Calling it
-- before any registration fails on the missing upsell.order_lines view.)
CREATE FUNCTION @extschema@.frequently_bought_together(min_count int DEFAULT 2,
	min_support float8 DEFAULT 0, min_confidence float8 DEFAULT 0)
RETURNS TABLE (tenant_id bigint, product_id bigint, other_id bigint, together bigint,
			   product_count bigint, other_count bigint, orders bigint,
			   support float8, confidence float8, lift float8, leverage float8,
			   conviction float8, jaccard float8, score float8)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT c.tenant_id, p.*
	FROM (SELECT l.tenant_id,
				 @extschema@.cooccurrence_agg(l.order_key, l.product_id, l.quantity) AS state
		  FROM @extschema@.order_lines l
		  WHERE @extschema@._pair_thresholds_given(min_count, min_support, min_confidence)
		  GROUP BY l.tenant_id) c,
		 @extschema@.cooccurrence_pairs(c.state, min_count, min_support, min_confidence) p
$$;
COMMENT ON FUNCTION @extschema@.frequently_bought_together(int, float8, float8) IS
	'every ordered pair of products bought in the same order, per tenant, with support, confidence, lift, leverage, conviction, jaccard and score';

CREATE FUNCTION @extschema@.frequently_bought_together(query text, min_count int DEFAULT 2,
	min_support float8 DEFAULT 0, min_confidence float8 DEFAULT 0)
RETURNS TABLE (tenant_id bigint, product_id bigint, other_id bigint, together bigint,
			   product_count bigint, other_count bigint, orders bigint,
			   support float8, confidence float8, lift float8, leverage float8,
			   conviction float8, jaccard float8, score float8)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF query IS NULL OR min_count IS NULL OR min_support IS NULL OR min_confidence IS NULL THEN
		RAISE EXCEPTION 'query, min_count, min_support and min_confidence must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	RETURN QUERY
	SELECT c.tenant_id, p.*
	FROM @extschema@._cooccurrence_from_query(query) c,
		 @extschema@.cooccurrence_pairs(c.state, min_count, min_support, min_confidence) p;
END
$$;
COMMENT ON FUNCTION @extschema@.frequently_bought_together(text, int, float8, float8) IS
	'the same measures over any query returning (order id, product id [, tenant id]); the query runs with the caller''s rights';

-- ---- serving ----------------------------------------------------------------

-- The n best complements of a set of products: the evidence of each item
-- combined as a noisy-OR (the chance that at least one of them leads to the
-- product).  Plain SQL, so that it is inlined into its callers' plans.
CREATE FUNCTION @extschema@._complements_of(t bigint, items bigint[], n int)
RETURNS TABLE (product_id bigint, score float8)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT p.other_id, 1 - exp(sum(ln(1 - least(p.score, 0.999999))))
	FROM @extschema@.pair_model p
	WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
	GROUP BY p.other_id
	ORDER BY 2 DESC, 1
	LIMIT n
$$;

CREATE FUNCTION @extschema@.recommend_for_cart(cart bigint[], k int DEFAULT 5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, product_id bigint, score float8, because bigint[], reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	items bigint[];
BEGIN
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- NULL cart = empty cart; NULL elements and repeats are dropped
	items := ARRAY(SELECT DISTINCT x FROM unnest(cart) x WHERE x IS NOT NULL);

	RETURN QUERY
	WITH evidence AS MATERIALIZED (
		-- noisy-OR: the chance that at least one cart item leads to the product
		SELECT e.other_id AS product_id, e.score, e.because, m.orders, 1 AS tier
		FROM (SELECT p.other_id,
					 1 - exp(sum(ln(1 - least(p.score, 0.999999)))) AS score,
					 -- input sorted below: an ORDER BY inside array_agg would
					 -- start a sort per product, the bulk of the request's time
					 array_agg(p.product_id) AS because
			  FROM (SELECT p.other_id, p.product_id, p.score
					FROM @extschema@.pair_model p
					WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
					ORDER BY p.other_id, p.score DESC, p.product_id) p
			  GROUP BY p.other_id
			  -- stock and exclusions are checked for the best few only: probing
			  -- every candidate of a big cart costs more than the rest together
			  ORDER BY 2 DESC, 1
			  LIMIT 4 * k + 20) e
		JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = e.other_id
		WHERE m.in_stock
		  AND NOT EXISTS (SELECT FROM @extschema@.exclusions x
						  WHERE x.tenant_id = t
							AND ((x.product_id = e.other_id AND (x.with_product_id IS NULL OR x.with_product_id = ANY (items)))
								 OR x.category = m.category))
		ORDER BY e.score DESC, e.other_id
		LIMIT k),
	-- fallbacks only when the evidence does not fill the k slots
	shortfall AS (SELECT k - count(*) AS n FROM evidence),
	fallback AS (
		SELECT f.product_id, f.orders, min(f.tier) AS tier
		FROM shortfall,
			 LATERAL (SELECT m.product_id, m.orders, 2 AS tier
					  FROM (SELECT DISTINCT c.category FROM @extschema@.product_model c
							WHERE c.tenant_id = t AND c.product_id = ANY (items) AND c.category IS NOT NULL) cc,
						   LATERAL (SELECT m.product_id, m.orders, m.category
									FROM @extschema@.product_model m
									WHERE m.tenant_id = t AND m.category = cc.category AND m.in_stock
									ORDER BY m.popularity_rank
									LIMIT k * 2 + cardinality(items)) m
					  UNION ALL
					  SELECT m.product_id, m.orders, 3
					  FROM (SELECT m.product_id, m.orders, m.category
							FROM @extschema@.product_model m
							WHERE m.tenant_id = t AND m.in_stock
							ORDER BY m.popularity_rank
							LIMIT k * 2 + cardinality(items)) m) f
		JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = f.product_id
		WHERE shortfall.n > 0
		  AND f.product_id <> ALL (items)
		  AND f.product_id NOT IN (SELECT e.product_id FROM evidence e)
		  AND NOT EXISTS (SELECT FROM @extschema@.exclusions x
						  WHERE x.tenant_id = t
							AND ((x.product_id = f.product_id AND (x.with_product_id IS NULL OR x.with_product_id = ANY (items)))
								 OR x.category = m.category))
		GROUP BY f.product_id, f.orders),
	total AS (SELECT greatest(max(c.orders), 1)::float8 AS orders
			  FROM @extschema@.cooccurrence_model c WHERE c.tenant_id = t),
	ranked AS (
		SELECT e.tier, e.product_id, e.score, e.because FROM evidence e
		UNION ALL
		SELECT f.tier, f.product_id, f.orders / total.orders, NULL FROM fallback f, total)
	SELECT (row_number() OVER (ORDER BY r.tier, r.score DESC, r.product_id))::int,
		   r.product_id, r.score, r.because,
		   CASE r.tier WHEN 1 THEN 'bought together with the cart'
					   WHEN 2 THEN 'popular in the same category'
					   ELSE 'popular' END
	FROM ranked r
	ORDER BY r.tier, r.score DESC, r.product_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.recommend_for_cart(bigint[], int, bigint) IS
	'the k best complements of a cart from the stored pair model (evidence of every cart item combined), then popular products of the cart''s categories, then bestsellers; cart items and out-of-stock products excluded';

-- ===========================================================================
-- Upsell, downsell and volume tiers: the better version, the cheaper one, and
-- more of it
-- ===========================================================================
--
-- refresh ranks the pricier and the cheaper alternatives of every product at
-- once, in C (src/core/upgrade.c), and stores the best of each in
-- upsell.upgrade_model; upgrade_candidates and downsell_candidates read it by
-- primary key.  quantity_offer reads upsell.volume_tiers, which merchants
-- fill.

-- ---- the batch ranking ------------------------------------------------------

CREATE FUNCTION @extschema@._upgrade_build(product_id bigint[], group_key int[],
	category_key int[], price float8[], customer bigint[], ordered_at timestamptz[],
	line_product bigint[], max_ratio float8, per_product int, scan_window int,
	max_customer_products int)
RETURNS TABLE (product_id bigint, candidate_id bigint, upgrade boolean, same_group boolean,
			   paths bigint, buyers bigint, candidate_buyers bigint, popularity float8,
			   closeness float8, score float8)
AS 'MODULE_PATHNAME', 'upsell_upgrade_build'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._upgrade_build(bigint[], int[], int[], float8[], bigint[], timestamptz[], bigint[], float8, int, int, int) IS
	'internal: the upgrade and downsell candidates of a whole catalog (arrays per product) from its order lines (arrays per line)';

-- How far the stored lists reach: serving filters them with the caller's
-- ratio, so the model keeps everything a caller may reasonably ask for.
CREATE FUNCTION @extschema@._upgrade_limits(OUT max_ratio float8, OUT per_product int,
	OUT scan_window int, OUT max_customer_products int)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 2.0::float8, 10, 200, 500 $$;
COMMENT ON FUNCTION @extschema@._upgrade_limits() IS
	'internal: how far the stored candidate lists reach (price ratio 2 up, 1/2 down), how many are kept per product and direction, how many price neighbours are scanned, and the customer size beyond which a history gives no upgrade paths';

CREATE FUNCTION @extschema@._build_upgrade_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
	unpriced bigint;
	priced bigint;
	lim record;
BEGIN
	-- incremental or not, the ranking is rebuilt from the product model and
	-- the order lines (one pass each)
	lim := @extschema@._upgrade_limits();
	EXECUTE format('SELECT count(*) FILTER (WHERE price IS NULL OR NOT price > 0), count(*) FILTER (WHERE price > 0) FROM %s',
				   @extschema@._slot_table('product_model', slot)) INTO unpriced, priced;
	IF unpriced > 0 THEN
		RAISE NOTICE 'upsell: % products with a NULL or non-positive price left out of upgrade and downsell candidates', unpriced;
	END IF;
	IF priced = 0 THEN
		RETURN 0;		-- no prices registered: nothing to rank, no need to read the lines
	END IF;
	EXECUTE format($q$
		INSERT INTO %1$s (tenant_id, product_id, kind, candidate_id, same_group, paths, buyers,
						  candidate_buyers, popularity, closeness, score)
		WITH priced AS (
			SELECT m.tenant_id, m.product_id, m.price,
				   CASE WHEN m.variant_group IS NOT NULL
						THEN dense_rank() OVER (PARTITION BY m.tenant_id ORDER BY m.variant_group) - 1 END AS g,
				   CASE WHEN m.category IS NOT NULL
						THEN dense_rank() OVER (PARTITION BY m.tenant_id ORDER BY m.category) - 1 END AS c
			FROM %2$s m
			WHERE m.price > 0),
		products AS (
			SELECT p.tenant_id, array_agg(p.product_id) AS ids, array_agg(p.g::int) AS gs,
				   array_agg(p.c::int) AS cs, array_agg(p.price::float8) AS ps
			FROM priced p GROUP BY p.tenant_id),
		lines AS (
			SELECT l.tenant_id, array_agg(coalesce(l.customer_id, l.order_key)) AS cu,
				   array_agg(l.ordered_at) AS ts, array_agg(l.product_id) AS lp
			FROM @extschema@.order_lines l
			WHERE l.product_id IS NOT NULL AND coalesce(l.quantity, 1) > 0
			GROUP BY l.tenant_id)
		SELECT p.tenant_id, b.product_id, CASE WHEN b.upgrade THEN 'upgrade' ELSE 'downsell' END,
			   b.candidate_id, b.same_group, b.paths, b.buyers, b.candidate_buyers,
			   b.popularity, b.closeness, b.score
		FROM products p
		LEFT JOIN lines l ON l.tenant_id = p.tenant_id
		CROSS JOIN LATERAL @extschema@._upgrade_build(p.ids, p.gs, p.cs, p.ps, l.cu, l.ts, l.lp,
			$1, $2, $3, $4) b$q$,
		@extschema@._slot_table('upgrade_model', slot),
		@extschema@._slot_table('product_model', slot))
	USING lim.max_ratio, lim.per_product, lim.scan_window, lim.max_customer_products;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('upgrade_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL,
	  kind text NOT NULL CHECK (kind IN ('upgrade', 'downsell')), candidate_id bigint NOT NULL,
	  same_group boolean NOT NULL, paths bigint NOT NULL, buyers bigint NOT NULL,
	  candidate_buyers bigint NOT NULL, popularity float8 NOT NULL, closeness float8 NOT NULL,
	  score float8 NOT NULL,
	  PRIMARY KEY (tenant_id, product_id, kind, candidate_id)$$,
	NULL, 40, '@extschema@._build_upgrade_model(text, boolean)',
	'per product: its best pricier (upgrade) and cheaper (downsell) alternatives of the same variant group or category, up to twice or half its price, with the evidence behind their score (prices, stock and category are read from product_model)');

CREATE FUNCTION @extschema@._build_unit_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, product_id, unit_size, unit_name)
		SELECT DISTINCT ON (c.tenant_id, c.product_id) c.tenant_id, c.product_id, c.unit_size, c.unit_name
		FROM %s c
		WHERE c.product_id IS NOT NULL AND c.unit_size > 0
		ORDER BY c.tenant_id, c.product_id$q$,
		@extschema@._slot_table('unit_model', slot), @extschema@._catalog_source());
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('unit_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, unit_size numeric NOT NULL,
	  unit_name text, PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 41, '@extschema@._build_unit_model(text, boolean)',
	'per product with a registered unit size: the size and its unit name (for unit-price comparisons of upgrades)');

-- ---- serving ----------------------------------------------------------------

-- "500 g at 9.00 → 1000 g at 12.00: +3.00, 33% less per g", or NULL when the
-- two sizes are not comparable (no size, or different unit names).
CREATE FUNCTION @extschema@._unit_offer(price numeric, unit_size numeric, unit_name text,
	candidate_price numeric, candidate_unit_size numeric, candidate_unit_name text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE
	WHEN unit_size > 0 AND candidate_unit_size > 0 AND price > 0 AND candidate_price > 0
		 AND unit_name IS NOT DISTINCT FROM candidate_unit_name
	THEN format('%s %s at %s → %s %s at %s: %s%s, %s%% %s per %s',
				trim_scale(unit_size), coalesce(unit_name, 'unit'), price,
				trim_scale(candidate_unit_size), coalesce(unit_name, 'unit'), candidate_price,
				CASE WHEN candidate_price >= price THEN '+' ELSE '-' END,
				abs(candidate_price - price),
				abs(round(100 * (1 - (candidate_price / candidate_unit_size) / (price / unit_size)))),
				CASE WHEN candidate_price / candidate_unit_size <= price / unit_size THEN 'less' ELSE 'more' END,
				coalesce(unit_name, 'unit'))
END;
COMMENT ON FUNCTION @extschema@._unit_offer(numeric, numeric, text, numeric, numeric, text) IS
	'internal: the unit-price comparison of two pack sizes as a sentence, NULL when not comparable';

-- Why an upgrade is offered, in words: the customers who took that path,
-- else the variant group or the category it steps up in.
CREATE FUNCTION @extschema@._upgrade_evidence(paths bigint, buyers bigint, same_group boolean)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN paths > 0
			THEN pg_catalog.format('%s of %s customers who bought it later bought this', paths, buyers)
			WHEN same_group THEN 'the next step up in the same variant group'
			ELSE 'a step up in the same category' END;

CREATE FUNCTION @extschema@.upgrade_candidates(product_id bigint, k int DEFAULT 3,
	max_price_ratio numeric DEFAULT 1.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, candidate_id bigint, price numeric, extra_cost numeric,
			   price_ratio numeric, score float8, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	pid bigint := product_id;
	ratio numeric := max_price_ratio;
BEGIN
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF ratio IS NULL OR NOT ratio >= 1 THEN
		RAISE EXCEPTION 'max_price_ratio must be at least 1, not %', coalesce(ratio::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'An upgrade costs more: 1.5 allows up to 50% more than the product.';
	END IF;
	RETURN QUERY
	SELECT (row_number() OVER (ORDER BY u.same_group DESC, u.score DESC, u.candidate_id))::int,
		   u.candidate_id, m.price, m.price - a.price,
		   round(m.price / a.price, 4), round(u.score::numeric, 6)::float8,
		   concat_ws('; ',
			   @extschema@._upgrade_evidence(u.paths, u.buyers, u.same_group),
			   format('+%s (%s%% more)', m.price - a.price, round(100 * (m.price / a.price - 1))),
			   @extschema@._unit_offer(a.price, ua.unit_size, ua.unit_name, m.price,
									  uc.unit_size, uc.unit_name))
	FROM @extschema@.product_model a
	JOIN @extschema@.upgrade_model u ON u.tenant_id = a.tenant_id AND u.product_id = a.product_id
	JOIN @extschema@.product_model m ON m.tenant_id = u.tenant_id AND m.product_id = u.candidate_id
	LEFT JOIN @extschema@.unit_model ua ON ua.tenant_id = a.tenant_id AND ua.product_id = a.product_id
	LEFT JOIN @extschema@.unit_model uc ON uc.tenant_id = m.tenant_id AND uc.product_id = m.product_id
	WHERE a.tenant_id = t AND a.product_id = pid AND u.kind = 'upgrade'
	  AND m.price > a.price AND m.price <= a.price * ratio
	  AND m.in_stock
	  AND NOT @extschema@.is_excluded(t, u.candidate_id, m.category, ARRAY[pid])
	ORDER BY u.same_group DESC, u.score DESC, u.candidate_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.upgrade_candidates(bigint, int, numeric, bigint) IS
	'the k best pricier alternatives of a product (same variant group first, then same category; at most max_price_ratio times its price; in stock, not excluded), ranked by observed upgrade paths, popularity and step size; an unknown product gives no rows';

CREATE FUNCTION @extschema@.downsell_candidates(product_id bigint, k int DEFAULT 3,
	min_price_ratio numeric DEFAULT 0.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, candidate_id bigint, price numeric, saving numeric,
			   price_ratio numeric, score float8, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	pid bigint := product_id;
	ratio numeric := min_price_ratio;
BEGIN
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF ratio IS NULL OR NOT (ratio >= 0 AND ratio <= 1) THEN
		RAISE EXCEPTION 'min_price_ratio must be between 0 and 1, not %', coalesce(ratio::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A downsell costs less: 0.5 allows down to half the price of the product.';
	END IF;
	RETURN QUERY
	SELECT (row_number() OVER (ORDER BY u.same_group DESC, u.score DESC, u.candidate_id))::int,
		   u.candidate_id, m.price, a.price - m.price,
		   round(m.price / a.price, 4), round(u.score::numeric, 6)::float8,
		   concat_ws('; ',
			   CASE WHEN u.same_group THEN 'the same variant group for less'
					ELSE 'the same category for less' END,
			   format('-%s (%s%% less)', a.price - m.price, round(100 * (1 - m.price / a.price))),
			   CASE WHEN u.candidate_buyers > 0
					THEN format('bought by %s customer%s', u.candidate_buyers, CASE WHEN u.candidate_buyers > 1 THEN 's' ELSE '' END) END)
	FROM @extschema@.product_model a
	JOIN @extschema@.upgrade_model u ON u.tenant_id = a.tenant_id AND u.product_id = a.product_id
	JOIN @extschema@.product_model m ON m.tenant_id = u.tenant_id AND m.product_id = u.candidate_id
	WHERE a.tenant_id = t AND a.product_id = pid AND u.kind = 'downsell'
	  AND m.price < a.price AND m.price >= a.price * ratio
	  AND m.in_stock
	  AND NOT @extschema@.is_excluded(t, u.candidate_id, m.category, ARRAY[pid])
	ORDER BY u.same_group DESC, u.score DESC, u.candidate_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.downsell_candidates(bigint, int, numeric, bigint) IS
	'the k best cheaper alternatives of a product (same variant group first, then same category; at least min_price_ratio times its price; in stock, not excluded), ranked by closeness in price and popularity; for abandoned carts; an unknown product gives no rows';

-- ---- volume tiers -------------------------------------------------------------

CREATE TABLE @extschema@.volume_tiers (
	tier_id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	product_id	bigint,
	category	text,
	min_quantity int NOT NULL CHECK (min_quantity >= 1),
	unit_price	numeric CHECK (unit_price >= 0),
	percent_off	numeric CHECK (percent_off > 0 AND percent_off < 100),
	note		text,
	CONSTRAINT volume_tiers_product_or_category CHECK ((product_id IS NULL) <> (category IS NULL)),
	CONSTRAINT volume_tiers_unit_price_or_percent_off CHECK ((unit_price IS NULL) <> (percent_off IS NULL)),
	UNIQUE NULLS NOT DISTINCT (tenant_id, product_id, category, min_quantity)
);
CREATE INDEX ON @extschema@.volume_tiers (tenant_id, category, min_quantity);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.volume_tiers', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.volume_tiers', 'tier_id')::regclass, '');
COMMENT ON TABLE @extschema@.volume_tiers IS
	'volume pricing merchants set: from min_quantity units of a product (product_id) or of any product of a category (category), each unit costs unit_price, or percent_off less than the list price; product tiers replace category tiers; tenant_id 0 without tenants';

CREATE FUNCTION @extschema@.quantity_offer(product_id bigint, quantity int, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (unit_price numeric, next_quantity int, units_to_add int, new_unit_price numeric,
			   total_saving numeric, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	pid bigint := product_id;
	qty int := quantity;
	p record;
	has_product_tiers boolean;
	blocked text;
BEGIN
	IF qty IS NULL OR qty < 1 THEN
		RAISE EXCEPTION 'quantity must be at least 1, not %', coalesce(qty::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT m.price, m.category, m.in_stock INTO p
	FROM @extschema@.product_model m
	WHERE m.tenant_id = t AND m.product_id = pid AND m.price > 0;
	IF NOT FOUND THEN
		RETURN;		-- unknown product, or one without a price
	END IF;
	-- more of a product one cannot ship, or may not offer, is no offer
	blocked := CASE WHEN NOT p.in_stock THEN 'out of stock'
					WHEN @extschema@.is_excluded(t, pid, p.category, '{}') THEN 'excluded by the merchant' END;
	has_product_tiers := EXISTS (SELECT FROM @extschema@.volume_tiers v
								 WHERE v.tenant_id = t AND v.product_id = pid);

	-- the tiers that apply, each with its unit price
	RETURN QUERY
	WITH tiers AS (
		SELECT v.min_quantity,
			   coalesce(v.unit_price, round(p.price * (1 - v.percent_off / 100), 2)) AS unit_price
		FROM @extschema@.volume_tiers v
		WHERE v.tenant_id = t
		  AND CASE WHEN has_product_tiers THEN v.product_id = pid
				   ELSE v.product_id IS NULL AND v.category = p.category END),
	cur AS (
		SELECT coalesce((SELECT x.unit_price FROM tiers x WHERE x.min_quantity <= qty
						 ORDER BY x.min_quantity DESC LIMIT 1), p.price) AS unit_price),
	nxt AS (
		SELECT x.min_quantity, x.unit_price
		FROM tiers x, cur
		WHERE x.min_quantity > qty AND x.unit_price < cur.unit_price AND blocked IS NULL
		ORDER BY x.min_quantity, x.unit_price
		LIMIT 1)
	SELECT cur.unit_price, nxt.min_quantity, nxt.min_quantity - qty, nxt.unit_price,
		   nxt.min_quantity * (cur.unit_price - nxt.unit_price),
		   CASE WHEN nxt.min_quantity IS NOT NULL
				THEN format('add %s more to pay %s instead of %s each: %s saved on %s units',
							nxt.min_quantity - qty, nxt.unit_price, cur.unit_price,
							nxt.min_quantity * (cur.unit_price - nxt.unit_price), nxt.min_quantity)
				ELSE coalesce(blocked, 'no further volume tier') END
	FROM cur LEFT JOIN nxt ON true;
END
$$;
COMMENT ON FUNCTION @extschema@.quantity_offer(bigint, int, bigint) IS
	'the next volume tier for a quantity in the cart: units to add, the new unit price and the total saving (next quantity × (current unit price − new unit price)); NULLs when no further tier lowers the price; an unknown or unpriced product gives no rows';

-- ===========================================================================
-- Thresholds: the gap to free shipping or the next reward, and the items
-- that close it
-- ===========================================================================

CREATE TABLE @extschema@.thresholds (
	threshold_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id		bigint NOT NULL DEFAULT 0,
	kind			text NOT NULL CHECK (kind IN ('free_shipping', 'discount', 'gift', 'other')),
	amount			numeric NOT NULL CHECK (amount > 0),
	currency		text CHECK (currency ~ '^[A-Z]{3}$'),
	reward			text,
	active_from		timestamptz,
	active_to		timestamptz,
	CHECK (active_to > active_from)
);
CREATE INDEX ON @extschema@.thresholds (tenant_id, amount);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.thresholds', '');
COMMENT ON TABLE @extschema@.thresholds IS
	'spend thresholds merchants set ("free shipping over 50"): kind free_shipping/discount/gift/other, amount, ISO currency (NULL: the shop''s one), reward text, active from/to (NULL: open); tenant_id 0 without tenants';

-- ---- the gap ----------------------------------------------------------------

-- The thresholds of a tenant active at a time, in the cart's currency.
-- Thresholds without a currency apply to every cart.
CREATE FUNCTION @extschema@._active_thresholds(tenant_id bigint, at timestamptz, currency text)
RETURNS SETOF @extschema@.thresholds
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	currencies text[];
	any_currency boolean;		-- some threshold applies to every currency
BEGIN
	IF at IS NULL THEN
		RAISE EXCEPTION 'at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF currency IS NOT NULL AND currency !~ '^[A-Z]{3}$' THEN
		RAISE EXCEPTION 'currency must be an ISO 4217 code of three capital letters, not "%"', currency
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT array_agg(DISTINCT t.currency ORDER BY t.currency) FILTER (WHERE t.currency IS NOT NULL),
		   coalesce(bool_or(t.currency IS NULL), false)
	INTO currencies, any_currency
	FROM @extschema@.thresholds t
	WHERE t.tenant_id = _active_thresholds.tenant_id
	  AND (t.active_from IS NULL OR t.active_from <= at)
	  AND (t.active_to IS NULL OR at < t.active_to);
	IF currency IS NULL AND cardinality(currencies) > 1 THEN
		RAISE EXCEPTION 'the active thresholds are in several currencies (%): which one is the cart in?',
			array_to_string(currencies, ', ')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass currency => ''...''.';
	END IF;
	IF currency IS NOT NULL AND cardinality(currencies) > 0 AND currency <> ALL (currencies)
	   AND NOT any_currency THEN
		RAISE EXCEPTION 'no active threshold is in currency %', currency
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The active thresholds are in %s.', array_to_string(currencies, ', '));
	END IF;
	RETURN QUERY
	SELECT t.* FROM @extschema@.thresholds t
	WHERE t.tenant_id = _active_thresholds.tenant_id
	  AND (t.active_from IS NULL OR t.active_from <= at)
	  AND (t.active_to IS NULL OR at < t.active_to)
	  AND (t.currency IS NULL OR _active_thresholds.currency IS NULL
		   OR t.currency = _active_thresholds.currency);
END
$$;

-- The value of a cart at the prices of the last refresh (product_model).
-- NULL cart: empty.  quantities NULL: one of each.
CREATE FUNCTION @extschema@._cart_total(tenant_id bigint, product_ids bigint[], quantities int[])
RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	total numeric;
	null_id boolean;
	bad_lines bigint;
	bad_id bigint;
	bad_quantity int;
	unknown_id bigint;
	unpriced_id bigint;
BEGIN
	IF coalesce(array_ndims(product_ids), 1) > 1 OR coalesce(array_ndims(quantities), 1) > 1 THEN
		RAISE EXCEPTION 'the cart must be one-dimensional arrays of product ids and quantities'
			USING ERRCODE = 'array_subscript_error';
	END IF;
	IF quantities IS NOT NULL
	   AND coalesce(cardinality(product_ids), 0) <> cardinality(quantities) THEN
		RAISE EXCEPTION 'the cart has % product ids but % quantities',
			coalesce(cardinality(product_ids), 0), cardinality(quantities)
			USING ERRCODE = 'array_subscript_error';
	END IF;
	-- one pass: the total, and the first bad line if any
	SELECT coalesce(sum(m.price * coalesce(c.quantity, 1)), 0),
		   bool_or(c.product_id IS NULL),
		   count(*) FILTER (WHERE quantities IS NOT NULL AND (c.quantity IS NULL OR c.quantity <= 0)),
		   (array_agg(c.product_id ORDER BY c.n) FILTER (
				WHERE quantities IS NOT NULL AND (c.quantity IS NULL OR c.quantity <= 0)))[1],
		   (array_agg(c.quantity ORDER BY c.n) FILTER (
				WHERE quantities IS NOT NULL AND (c.quantity IS NULL OR c.quantity <= 0)))[1],
		   (array_agg(c.product_id ORDER BY c.n) FILTER (WHERE c.product_id IS NOT NULL AND m.product_id IS NULL))[1],
		   (array_agg(c.product_id ORDER BY c.n) FILTER (WHERE m.product_id IS NOT NULL AND m.price IS NULL))[1]
	INTO total, null_id, bad_lines, bad_id, bad_quantity, unknown_id, unpriced_id
	FROM unnest(product_ids, quantities) WITH ORDINALITY AS c(product_id, quantity, n)
	LEFT JOIN @extschema@.product_model m
		ON m.tenant_id = _cart_total.tenant_id AND m.product_id = c.product_id;
	IF null_id THEN
		RAISE EXCEPTION 'the cart contains a NULL product id' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF bad_lines > 0 THEN
		RAISE EXCEPTION 'quantity of product % must be a positive integer, not %',
			bad_id, coalesce(bad_quantity::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF unknown_id IS NOT NULL THEN
		RAISE EXCEPTION 'product % of the cart is not in the catalog', unknown_id
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Carts are priced from the catalog as of the last CALL upsell.refresh().';
	END IF;
	IF unpriced_id IS NOT NULL THEN
		RAISE EXCEPTION 'product % of the cart has no price in the catalog', unpriced_id
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN total;
END
$$;

CREATE FUNCTION @extschema@.threshold_gap(cart_total numeric, tenant_id bigint DEFAULT NULL,
	at timestamptz DEFAULT pg_catalog.now(), currency text DEFAULT NULL)
RETURNS TABLE (threshold_id bigint, kind text, amount numeric, reward text,
			   reached boolean, gap numeric, "next" boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	IF cart_total IS NULL THEN
		RAISE EXCEPTION 'cart_total must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF cart_total < 0 THEN
		RAISE EXCEPTION 'cart_total must not be negative, not %', cart_total
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT a.threshold_id, a.kind, a.amount, a.reward,
		   a.amount <= cart_total,
		   greatest(a.amount - cart_total, 0),
		   a.amount > cart_total
			 AND row_number() OVER (ORDER BY a.amount <= cart_total, a.amount, a.threshold_id) = 1
	FROM @extschema@._active_thresholds(t, at, threshold_gap.currency) a
	ORDER BY a.amount <= cart_total, a.amount, a.threshold_id;
END
$$;
COMMENT ON FUNCTION @extschema@.threshold_gap(numeric, bigint, timestamptz, text) IS
	'every threshold active at a time, with whether the cart total reaches it and the gap left; unreached ones first, the next one (flag next) at the top';

CREATE FUNCTION @extschema@.threshold_gap(product_ids bigint[], quantities int[],
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT pg_catalog.now(), currency text DEFAULT NULL)
RETURNS TABLE (threshold_id bigint, kind text, amount numeric, reward text,
			   reached boolean, gap numeric, "next" boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	RETURN QUERY
	SELECT * FROM @extschema@.threshold_gap(@extschema@._cart_total(t, product_ids, quantities),
											 t, at, threshold_gap.currency);
END
$$;
COMMENT ON FUNCTION @extschema@.threshold_gap(bigint[], int[], bigint, timestamptz, text) IS
	'the same for a cart of products and quantities (quantities NULL: one each), priced from the catalog as of the last refresh';

-- ---- model: in-stock candidates sorted by price -----------------------------

-- One row per tenant: the in-stock products with a price, as parallel
-- arrays sorted by (price in cents, product id).  gap_fillers reads the row
-- once per backend and refresh (keyed by built_at), so a request never
-- scans the catalog.
CREATE FUNCTION @extschema@._build_threshold_candidates(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, built_at, products, categories, category_of, prices, product_ids)
		SELECT c.tenant_id, pg_catalog.clock_timestamp(), count(*),
			   coalesce(array_agg(DISTINCT c.category COLLATE "C" ORDER BY c.category COLLATE "C")
						FILTER (WHERE c.category IS NOT NULL), '{}'),
			   array_agg(c.category_no ORDER BY c.cents, c.product_id),
			   array_agg(c.cents ORDER BY c.cents, c.product_id),
			   array_agg(c.product_id ORDER BY c.cents, c.product_id)
		FROM (SELECT m.tenant_id, m.product_id, round(m.price * 100)::bigint AS cents, m.category,
					 CASE WHEN m.category IS NULL THEN 0
						  ELSE dense_rank() OVER (PARTITION BY m.tenant_id, m.category IS NULL
												  ORDER BY m.category COLLATE "C")::int END AS category_no
			  FROM %s m
			  WHERE m.in_stock AND round(m.price * 100) > 0) c
		GROUP BY c.tenant_id$q$,
		@extschema@._slot_table('threshold_candidates', slot),
		@extschema@._slot_table('product_model', slot));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('threshold_candidates',
	$$tenant_id bigint PRIMARY KEY, built_at timestamptz NOT NULL, products int NOT NULL,
	  categories text[] NOT NULL, category_of int[] NOT NULL,
	  prices bigint[] NOT NULL, product_ids bigint[] NOT NULL$$,
	NULL, 50, '@extschema@._build_threshold_candidates(text, boolean)',
	'per tenant: in-stock products with a price as arrays sorted by (price in cents, product id), with their category numbers; read by gap_fillers');

-- ---- items that close the gap ------------------------------------------------

CREATE FUNCTION @extschema@._gap_fill(tenant_id bigint, built_at timestamptz, gap numeric,
	cart bigint[], excluded_ids bigint[], excluded_categories text[],
	relevant_ids bigint[], relevance float8[], k int, max_items int)
RETURNS TABLE (product_ids bigint[], added numeric, relevance float8, score float8)
AS 'MODULE_PATHNAME', 'upsell_gap_fill'
LANGUAGE C STABLE PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION @extschema@._gap_fill(bigint, timestamptz, numeric, bigint[], bigint[], text[], bigint[], float8[], int, int) IS
	'internal: the bounded search behind upsell.gap_fillers over the threshold_candidates model';

CREATE FUNCTION @extschema@.gap_fillers(cart bigint[], quantities int[] DEFAULT NULL,
	k int DEFAULT 5, max_items int DEFAULT 2, tenant_id bigint DEFAULT NULL,
	currency text DEFAULT NULL, at timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE ("rank" int, product_ids bigint[], added numeric, new_total numeric,
			   overshoot numeric, threshold numeric, relevance float8, score float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	total numeric;
	target numeric;
	version timestamptz;
	items bigint[];
BEGIN
	IF k IS NULL OR k < 0 OR k > 1000 THEN
		RAISE EXCEPTION 'k must be between 0 and 1000, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_items IS NULL OR max_items < 1 OR max_items > 3 THEN
		RAISE EXCEPTION 'max_items must be between 1 and 3, not %', coalesce(max_items::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	total := @extschema@._cart_total(t, cart, quantities);
	SELECT a.amount INTO target
	FROM @extschema@._active_thresholds(t, at, gap_fillers.currency) a
	WHERE a.amount > total
	ORDER BY a.amount, a.threshold_id
	LIMIT 1;
	IF NOT FOUND OR k = 0 THEN
		RETURN;					-- every threshold reached, or none set
	END IF;
	SELECT c.built_at INTO version
	FROM @extschema@.threshold_candidates c WHERE c.tenant_id = t;
	IF NOT FOUND THEN
		RETURN;					-- nothing in stock with a price
	END IF;
	items := coalesce(cart, '{}');

	RETURN QUERY
	WITH evidence AS (
		-- as recommend_for_cart: noisy-OR of the pair scores of every cart item
		SELECT p.other_id,
			   1 - exp(sum(ln(1 - least(p.score, 0.999999)))) AS score
		FROM @extschema@.pair_model p
		WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
		GROUP BY p.other_id),
	complements AS (
		-- relative to the cart's best complement, which gets relevance 1
		SELECT e.other_id, e.score / nullif(max(e.score) OVER (), 0) AS score
		FROM evidence e),
	excluded AS (
		-- what upsell.is_excluded(t, product, category, items) forbids, as sets
		SELECT coalesce(array_agg(e.product_id) FILTER (
					WHERE e.product_id IS NOT NULL
					  AND (e.with_product_id IS NULL OR e.with_product_id = ANY (items))), '{}') AS ids,
			   coalesce(array_agg(e.category) FILTER (WHERE e.category IS NOT NULL), '{}') AS categories
		FROM @extschema@.exclusions e
		WHERE e.tenant_id = t)
	SELECT f.ord::int, f.product_ids, f.added, total + f.added, total + f.added - target,
		   target, f.relevance, f.score
	FROM excluded x,
		 LATERAL (SELECT coalesce(array_agg(c.other_id ORDER BY c.other_id), '{}') AS ids,
						 coalesce(array_agg(c.score ORDER BY c.other_id), '{}') AS scores
				  FROM complements c) r,
		 LATERAL @extschema@._gap_fill(t, version, target - total, items, x.ids, x.categories,
									   r.ids, r.scores, k, max_items)
			 WITH ORDINALITY AS f(product_ids, added, relevance, score, ord)
	ORDER BY f.ord;
END
$$;
COMMENT ON FUNCTION @extschema@.gap_fillers(bigint[], int[], int, int, bigint, text, timestamptz) IS
	'the k best offers of 1 to max_items (<= 3) in-stock products, not in the cart nor excluded, that close the gap to the next threshold; score = gap / added * (1 + mean relevance to the cart) * 0.8^(items - 1)';

-- ===========================================================================
-- Bundles: frequent itemsets, rules with several items, bundle offers
-- ===========================================================================

-- ---- mining (C: src/bundles.c over src/core/itemsets.c) -------------------

CREATE FUNCTION @extschema@._itemsets_from_query(query text, min_support float8,
	max_size int, min_count int, per_tenant boolean)
	RETURNS TABLE (tenant_id bigint, items bigint[], size int, count bigint,
				   support float8, lift float8)
	AS 'MODULE_PATHNAME', 'upsell_itemsets_from_query'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._itemsets_from_query(text, float8, int, int, boolean) IS
	'frequent itemsets (FP-growth) of a query returning (order id, product id [, tenant id when per_tenant])';

CREATE FUNCTION @extschema@._rules_from_query(query text, min_support float8,
	min_confidence float8, max_size int, min_count int, max_consequent int, per_tenant boolean)
	RETURNS TABLE (tenant_id bigint, antecedent bigint[], consequent bigint[],
				   support float8, confidence float8, lift float8, leverage float8,
				   conviction float8, count bigint)
	AS 'MODULE_PATHNAME', 'upsell_rules_from_query'
	LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@._rules_from_query(text, float8, float8, int, int, int, boolean) IS
	'association rules from the frequent itemsets of a query returning (order id, product id [, tenant id when per_tenant])';

-- The registered order lines as a mining query: one tenant's (order, product)
-- or, for a NULL tenant, every tenant's (order, product, tenant).  Lines with
-- a quantity <= 0 (returns, cancellations) do not count, as in the
-- co-occurrence counts.
CREATE FUNCTION @extschema@._order_lines_query(tenant_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN tenant_id IS NULL THEN
	'SELECT l.order_key, l.product_id, l.tenant_id FROM @extschema@.order_lines l WHERE coalesce(l.quantity, 1) > 0'
ELSE
	format('SELECT l.order_key, l.product_id FROM @extschema@.order_lines l WHERE l.tenant_id = %s AND coalesce(l.quantity, 1) > 0',
		   tenant_id)
END;

-- ---- analysis ---------------------------------------------------------------

CREATE FUNCTION @extschema@.frequent_itemsets(min_support float8 DEFAULT 0.01,
	max_size int DEFAULT 4, min_count int DEFAULT NULL, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (items bigint[], size int, count bigint, support float8, lift float8)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	RETURN QUERY
	SELECT f.items, f.size, f.count, f.support, f.lift
	FROM @extschema@._itemsets_from_query(@extschema@._order_lines_query(t),
		 min_support, max_size, min_count, false) f;
END
$$;
COMMENT ON FUNCTION @extschema@.frequent_itemsets(float8, int, int, bigint) IS
	'every set of up to max_size products bought together in at least max(min_count, min_support * orders) of the tenant''s registered orders, with its order count, support and lift (support over the product of the items'' supports); FP-growth in C, memory bounded by upsell.itemsets_memory_limit';

CREATE FUNCTION @extschema@.frequent_itemsets(query text, min_support float8 DEFAULT 0.01,
	max_size int DEFAULT 4, min_count int DEFAULT NULL)
RETURNS TABLE (items bigint[], size int, count bigint, support float8, lift float8)
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT f.items, f.size, f.count, f.support, f.lift
	FROM @extschema@._itemsets_from_query(query, min_support, max_size, min_count, false) f;
END;
COMMENT ON FUNCTION @extschema@.frequent_itemsets(text, float8, int, int) IS
	'the same over any query returning (order id, product id); order ids of any type, product ids integers; the query runs with the caller''s rights';

CREATE FUNCTION @extschema@.association_rules(min_support float8, min_confidence float8,
	max_size int DEFAULT 4, min_count int DEFAULT NULL, max_consequent int DEFAULT 1,
	tenant_id bigint DEFAULT NULL)
RETURNS TABLE (antecedent bigint[], consequent bigint[], support float8, confidence float8,
			   lift float8, leverage float8, conviction float8, count bigint)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	RETURN QUERY
	SELECT r.antecedent, r.consequent, r.support, r.confidence, r.lift, r.leverage,
		   r.conviction, r.count
	FROM @extschema@._rules_from_query(@extschema@._order_lines_query(t),
		 min_support, min_confidence, max_size, min_count, max_consequent, false) r;
END
$$;
COMMENT ON FUNCTION @extschema@.association_rules(float8, float8, int, int, int, bigint) IS
	'rules antecedent => consequent from the frequent itemsets of the tenant''s registered orders (antecedent of any size, consequent of up to max_consequent products, arules'' default 1), with support, confidence, lift, leverage, conviction and order count';

CREATE FUNCTION @extschema@.association_rules(query text, min_support float8,
	min_confidence float8, max_size int DEFAULT 4, min_count int DEFAULT NULL,
	max_consequent int DEFAULT 1)
RETURNS TABLE (antecedent bigint[], consequent bigint[], support float8, confidence float8,
			   lift float8, leverage float8, conviction float8, count bigint)
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT r.antecedent, r.consequent, r.support, r.confidence, r.lift, r.leverage,
		   r.conviction, r.count
	FROM @extschema@._rules_from_query(query, min_support, min_confidence, max_size,
		 min_count, max_consequent, false) r;
END;
COMMENT ON FUNCTION @extschema@.association_rules(text, float8, float8, int, int, int) IS
	'the same rules over any query returning (order id, product id); the query runs with the caller''s rights';

-- ---- model ------------------------------------------------------------------

-- Bundles of 2 or 3 products bought together in at least
-- upsell.bundle_min_count orders and more often than chance (lift > 1); each
-- product keeps its upsell.bundles_per_product best by lift, then count.
-- When a shop is so large that mining at that count would pass
-- upsell.itemsets_memory_limit, the count is raised (x4) until it fits, so
-- one huge tenant does not fail the whole refresh.
CREATE FUNCTION @extschema@._build_bundle_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
	-- the settings exist once the module is loaded; their defaults until then
	min_count int := coalesce(current_setting('upsell.bundle_min_count', true)::int, 5);
	per_product int := coalesce(current_setting('upsell.bundles_per_product', true)::int, 10);
	most_orders bigint;
BEGIN
	EXECUTE format('SELECT coalesce(max(orders), 0) FROM %s',
				   @extschema@._slot_table('cooccurrence_model', slot)) INTO most_orders;
	-- incremental: itemsets do not add up from partial counts; rebuild
	LOOP
		BEGIN
			EXECUTE format($q$
				INSERT INTO %s (tenant_id, product_id, bundle_rank, items, size, count, support, lift)
				SELECT x.tenant_id, x.product_id, x.r, x.items, x.size, x.count, x.support, x.lift
				FROM (SELECT f.tenant_id, p.product_id, f.items, f.size, f.count, f.support, f.lift,
							 row_number() OVER (PARTITION BY f.tenant_id, p.product_id
												ORDER BY f.lift DESC, f.count DESC, f.items) AS r
					  FROM @extschema@._itemsets_from_query(@extschema@._order_lines_query(NULL),
							0, 3, $1, true) f,
						   unnest(f.items) AS p(product_id)
					  WHERE f.size >= 2 AND f.lift > 1) x
				WHERE x.r <= $2$q$, @extschema@._slot_table('bundle_model', slot))
			USING min_count, per_product;
			GET DIAGNOSTICS n = ROW_COUNT;
			RETURN n;
		EXCEPTION WHEN program_limit_exceeded THEN
			-- past the largest tenant's order count nothing can be frequent
			IF min_count::bigint * 4 > most_orders THEN
				RAISE;
			END IF;
			RAISE NOTICE 'upsell: bundles at min_count % exceed upsell.itemsets_memory_limit; retrying at %',
				min_count, min_count * 4;
			min_count := min_count * 4;
		END;
	END LOOP;
END
$$;

SELECT @extschema@._define_model('bundle_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, bundle_rank int NOT NULL,
	  items bigint[] NOT NULL, size int NOT NULL, count bigint NOT NULL,
	  support float8 NOT NULL, lift float8 NOT NULL,
	  PRIMARY KEY (tenant_id, product_id, bundle_rank)$$,
	NULL, 60, '@extschema@._build_bundle_model(text, boolean)',
	'per product: its best bundles (2 or 3 products bought together in at least upsell.bundle_min_count orders, lift > 1) by lift, then order count');

-- ---- serving ----------------------------------------------------------------

CREATE FUNCTION @extschema@.bundle_offers(product_id bigint, k int DEFAULT 3,
	discount numeric DEFAULT 0.10, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, items bigint[], size int, count bigint, support float8,
			   lift float8, list_price numeric, bundle_price numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	anchor bigint := product_id;
BEGIN
	IF anchor IS NULL THEN
		RAISE EXCEPTION 'product_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF discount IS NULL OR discount < 0 OR discount >= 1 THEN
		RAISE EXCEPTION 'discount must be at least 0 and below 1, not %', coalesce(discount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass 0.10 for 10% off the list price sum.';
	END IF;

	RETURN QUERY
	WITH priced AS (
		SELECT b.items, b.size, b.count, b.support, b.lift,
			   CASE WHEN count(m.price) = b.size THEN sum(m.price) END AS list_price,
			   -- every item known, in stock, not excluded next to the others,
			   -- and no two variants of one product
			   count(m.product_id) = b.size
			   AND bool_and(m.in_stock)
			   AND NOT bool_or(@extschema@.is_excluded(t, m.product_id, m.category, b.items))
			   AND count(DISTINCT m.variant_group) = count(m.variant_group) AS offerable
		FROM @extschema@.bundle_model b
		CROSS JOIN LATERAL unnest(b.items) AS i(item)
		LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = i.item
		WHERE b.tenant_id = t AND b.product_id = anchor
		GROUP BY b.items, b.size, b.count, b.support, b.lift)
	SELECT (row_number() OVER (ORDER BY p.lift DESC, p.support DESC, p.items))::int,
		   p.items, p.size, p.count, p.support, p.lift, p.list_price,
		   round(p.list_price * (1 - discount), 2)
	FROM priced p
	WHERE p.offerable
	ORDER BY p.lift DESC, p.support DESC, p.items
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.bundle_offers(bigint, int, numeric, bigint) IS
	'the k best stored bundles containing the product (by lift, then support), in-stock and not excluded items only, with the list price sum and the bundle price at the discount (rounded to cents; NULL when a price is unknown)';

-- ===========================================================================
-- Post-purchase: replenishment intervals, personal recommendations, the
-- email sequence, subscriptions and abandoned carts
-- ===========================================================================
--
-- refresh() stores two models:
--	purchase_interval_model (70)	per (customer, product): purchases, median
--		gap, CV of gaps, predicted next purchase and its confidence
--	product_interval_model (71)		per product: customers, repeat buyers,
--		population interval, and whether the data says "consumable"
-- The per-(customer, product) statistics come from one GROUP BY pass over
-- the order lines with the C aggregate purchase_interval_agg; serving
-- functions read the models by index.

-- ---- the interval aggregate ------------------------------------------------

CREATE TYPE @extschema@.purchase_intervals AS (
	purchases		bigint,
	first_at		timestamptz,
	last_at			timestamptz,
	median_gap_days	float8,
	mean_gap_days	float8,
	sd_gap_days		float8,
	cv				float8
);
COMMENT ON TYPE @extschema@.purchase_intervals IS
	'repeat-purchase statistics of one customer and product: distinct purchases, first and last, median, mean and sample standard deviation of the gaps in days, and their coefficient of variation (NULL below two gaps)';

CREATE FUNCTION @extschema@._iv_trans(internal, timestamptz) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_iv_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_iv_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'upsell_iv_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'upsell_iv_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@._iv_final(internal) RETURNS @extschema@.purchase_intervals
	AS 'MODULE_PATHNAME', 'upsell_iv_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE @extschema@.purchase_interval_agg(ordered_at timestamptz) (
	SFUNC = @extschema@._iv_trans,
	STYPE = internal,
	FINALFUNC = @extschema@._iv_final,
	COMBINEFUNC = @extschema@._iv_combine,
	SERIALFUNC = @extschema@._iv_serialize,
	DESERIALFUNC = @extschema@._iv_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.purchase_interval_agg(timestamptz) IS
	'repeat-purchase statistics over the purchase times of one customer and product (group by both); lines at the same instant are one purchase; NULL and infinite times are skipped';

CREATE FUNCTION @extschema@._decay(age_days float8, half_life_days float8) RETURNS float8
	AS 'MODULE_PATHNAME', 'upsell_decay' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._decay(float8, float8) IS
	'time-decay weight 0.5 ^ (age / half-life), 1 for a purchase not older than now';

-- ---- merchant override: consumable or durable --------------------------------

CREATE TABLE @extschema@.consumables (
	consumable_rule_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	product_id	bigint,
	category	text,
	consumable	boolean NOT NULL,
	note		text,
	CHECK ((product_id IS NULL) <> (category IS NULL)),
	UNIQUE (tenant_id, product_id),
	UNIQUE (tenant_id, category)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.consumables', '');
COMMENT ON TABLE @extschema@.consumables IS
	'merchant override of the consumable rule: a product (product_id) or a whole category (category) is consumable (true: offered again when due) or durable (false: never offered again to who owns it); a product rule beats a category rule, which beats the data';

-- Effective flag: product rule, else category rule, else the data's verdict.
CREATE FUNCTION @extschema@._consumable(tenant_id bigint, product_id bigint, category text, from_data boolean)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT coalesce(
		(SELECT c.consumable FROM @extschema@.consumables c
		 WHERE c.tenant_id = _consumable.tenant_id AND c.product_id = _consumable.product_id),
		(SELECT c.consumable FROM @extschema@.consumables c
		 WHERE c.tenant_id = _consumable.tenant_id AND c.category = _consumable.category),
		_consumable.from_data, false);
END;

-- ---- models -------------------------------------------------------------------

-- Rule (product_interval_model.repeats_consumable): a product is
-- consumable by the data when at least 2 customers bought it in 2 or more
-- separate purchases, and its repeat share (repeat buyers / buyers) is at
-- least half the shop's overall repeat share (customer-product pairs bought
-- twice or more / all customer-product pairs), and at least 2%.  One repeat
-- buyer is anecdote (a gift, a replacement).  The yardstick is relative
-- because how often customers come back at all differs by shop and by the
-- span of the history: in a grocery history where the average item is
-- rebought by 8% of its buyers, 5% is a consumable; in a phone shop where
-- 2% is the norm, a phone rebought by 0.5% of its buyers is a durable.
-- Serial on purpose: almost every (customer, product) group holds one or
-- two lines, so partial aggregation in workers reduces nothing and only adds
-- the transfer of every state (measured 1.7x slower with 2 workers).
CREATE FUNCTION @extschema@._build_purchase_intervals(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
	n bigint;
BEGIN
	-- the carts view, if a DROP ... CASCADE took it
	IF to_regclass('@extschema@.carts') IS NULL AND EXISTS (SELECT FROM @extschema@.cart_source) THEN
		PERFORM @extschema@._sync_carts();
	END IF;
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, customer_id, product_id, purchases, first_at, last_at,
						median_gap_days, cv, quantity, spend, population_interval_days,
						interval_days, next_due, confidence)
		WITH per AS (
			SELECT q.tenant_id, q.customer_id, q.product_id, (q.s).purchases, (q.s).first_at,
				   (q.s).last_at, (q.s).median_gap_days, (q.s).cv, q.quantity, q.spend
			FROM (SELECT l.tenant_id, l.customer_id, l.product_id,
						 @extschema@.purchase_interval_agg(l.ordered_at) AS s,
						 sum(l.quantity) AS quantity, sum(l.quantity * l.unit_price) AS spend
				  FROM @extschema@.order_lines l
				  WHERE l.customer_id IS NOT NULL AND l.product_id IS NOT NULL
					AND l.ordered_at IS NOT NULL AND l.quantity > 0
				  GROUP BY l.tenant_id, l.customer_id, l.product_id) q
			WHERE (q.s).purchases IS NOT NULL),
		pop AS (
			-- every repeat buyer counts once, whatever how often he buys
			SELECT tenant_id, product_id,
				   percentile_cont(0.5) WITHIN GROUP (ORDER BY median_gap_days) AS days,
				   count(*)::float8 AS repeaters
			FROM per WHERE purchases >= 2
			GROUP BY tenant_id, product_id),
		buyers AS (
			SELECT tenant_id, product_id, count(*)::float8 AS customers
			FROM per GROUP BY tenant_id, product_id),
		x AS (
			SELECT per.*, pop.days AS population_days,
				   coalesce(pop.repeaters, 0) / b.customers AS repeat_share,
				   CASE WHEN per.purchases >= 2 THEN per.median_gap_days ELSE pop.days END AS interval_days
			FROM per
			JOIN buyers b USING (tenant_id, product_id)
			LEFT JOIN pop USING (tenant_id, product_id))
		SELECT tenant_id, customer_id, product_id, purchases, first_at, last_at,
			   median_gap_days, cv, quantity, spend, population_days, interval_days,
			   last_at + interval_days * interval '1 day',
			   CASE WHEN purchases >= 2
					THEN (purchases - 1)::float8 / purchases
						 * CASE WHEN cv IS NULL THEN 0.5 ELSE 1 / (1 + cv) END
					WHEN population_days IS NOT NULL THEN 0.5 * repeat_share
			   END
		FROM x$q$, @extschema@._slot_table('purchase_interval_model', slot));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('purchase_interval_model',
	$$tenant_id bigint NOT NULL, customer_id bigint NOT NULL, product_id bigint NOT NULL,
	  purchases bigint NOT NULL, first_at timestamptz NOT NULL, last_at timestamptz NOT NULL,
	  median_gap_days float8, cv float8, quantity numeric, spend numeric,
	  population_interval_days float8, interval_days float8, next_due timestamptz, confidence float8,
	  PRIMARY KEY (tenant_id, customer_id, product_id)$$,
	ARRAY['(tenant_id, next_due)'],
	70, '@extschema@._build_purchase_intervals(text, boolean)',
	'per customer and product: distinct purchases, first and last, median gap and CV of gaps in days, quantity and spend, the interval used (own median from 2 purchases, else the product''s population interval), the predicted next purchase and its confidence');

CREATE FUNCTION @extschema@._build_product_intervals(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, product_id, customers, repeat_customers, repeat_share,
						regular_customers, population_interval_days, repeats_consumable)
		SELECT tenant_id, product_id, customers, repeaters, repeaters::float8 / customers,
			   regulars, population_days,
			   repeaters >= 2
				 AND repeaters::float8 / customers >= greatest(0.02,
					0.5 * sum(repeaters) OVER (PARTITION BY tenant_id)
						/ sum(customers) OVER (PARTITION BY tenant_id))
		FROM (SELECT tenant_id, product_id, count(*) AS customers,
					 count(*) FILTER (WHERE purchases >= 2) AS repeaters,
					 count(*) FILTER (WHERE purchases >= 3 AND cv < 0.5) AS regulars,
					 max(population_interval_days) AS population_days
			  FROM %s
			  GROUP BY tenant_id, product_id) p$q$,
		@extschema@._slot_table('product_interval_model', slot),
		@extschema@._slot_table('purchase_interval_model', slot));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('product_interval_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, customers bigint NOT NULL,
	  repeat_customers bigint NOT NULL, repeat_share float8 NOT NULL, regular_customers bigint NOT NULL,
	  population_interval_days float8, repeats_consumable boolean NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 71, '@extschema@._build_product_intervals(text, boolean)',
	'per product: customers, repeat customers (2+ purchases) and their share, regular customers (3+ purchases, CV < 0.5), population interval (median of the repeat customers'' median gaps), and whether the data says consumable (2+ repeat customers and a repeat share of at least half the shop''s and 2%)');

-- Upgrades and cheaper alternatives look products up by variant group and
-- price: an index on both slots of product_model (defined in 30_cross_sell).
CREATE INDEX ON @extschema@.product_model_a (tenant_id, variant_group, price);
CREATE INDEX ON @extschema@.product_model_b (tenant_id, variant_group, price);

-- ---- replenishment and subscriptions --------------------------------------------

CREATE FUNCTION @extschema@.is_consumable(product_id bigint, tenant_id bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	r boolean;
BEGIN
	IF product_id IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT @extschema@._consumable(t, is_consumable.product_id, m.category, pm.repeats_consumable) INTO r
	FROM (SELECT) dummy
	LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = is_consumable.product_id
	LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = is_consumable.product_id;
	RETURN r;
END
$$;
COMMENT ON FUNCTION @extschema@.is_consumable(bigint, bigint) IS
	'whether a product is bought again (consumable) or owned (durable): the merchant''s rule in upsell.consumables for the product, else for its category, else the data (2+ repeat customers, repeat share at least half the shop''s and 2%)';

CREATE FUNCTION @extschema@.replenishment_due(as_of date DEFAULT current_date,
	within interval DEFAULT '7 days', tenant_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, product_id bigint, last_purchase timestamptz, purchases bigint,
			   interval_days float8, interval_source text, next_due timestamptz, confidence float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
BEGIN
	IF as_of IS NULL OR within IS NULL THEN
		RAISE EXCEPTION 'as_of and within must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF within < interval '0' THEN
		RAISE EXCEPTION 'within must not be negative, not %', within USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT r.customer_id, r.product_id, r.last_at, r.purchases, r.interval_days,
		   CASE WHEN r.purchases >= 2 THEN 'own' ELSE 'population' END,
		   r.next_due, r.confidence
	FROM @extschema@.purchase_interval_model r
	JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = r.product_id
	LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = r.product_id
	WHERE r.tenant_id = t
	  AND r.next_due >= as_of::timestamptz AND r.next_due < as_of::timestamptz + within
	  AND m.in_stock
	  AND @extschema@._consumable(t, r.product_id, m.category, pm.repeats_consumable)
	  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, r.product_id, m.category, ARRAY[r.product_id]))
	ORDER BY r.next_due, r.customer_id, r.product_id;
END
$$;
COMMENT ON FUNCTION @extschema@.replenishment_due(date, interval, bigint) IS
	'customers and consumable products whose predicted next purchase (last purchase + own median gap, or the product''s population interval after one purchase) falls in [as_of, as_of + within), with confidence; as of the last refresh';

CREATE FUNCTION @extschema@.subscription_candidates(min_orders int DEFAULT 3,
	max_dispersion float8 DEFAULT 0.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, product_id bigint, purchases bigint, interval_days float8,
			   cv float8, orders_per_year float8, expected_yearly_revenue numeric, last_purchase timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
BEGIN
	IF min_orders IS NULL OR max_dispersion IS NULL THEN
		RAISE EXCEPTION 'min_orders and max_dispersion must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF min_orders < 3 THEN
		RAISE EXCEPTION 'min_orders must be at least 3, not %', min_orders
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Regularity (the CV of the gaps) needs at least two gaps.';
	END IF;
	IF max_dispersion < 0 OR max_dispersion = 'NaN' THEN
		RAISE EXCEPTION 'max_dispersion must be a non-negative number, not %', max_dispersion
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT r.customer_id, r.product_id, r.purchases, r.median_gap_days, r.cv,
		   365.25 / r.median_gap_days,
		   round((365.25 / r.median_gap_days)::numeric
				 * coalesce(r.spend, r.quantity * m.price) / r.purchases, 2),
		   r.last_at
	FROM @extschema@.purchase_interval_model r
	JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = r.product_id
	WHERE r.tenant_id = t AND r.purchases >= min_orders AND r.cv < max_dispersion
	  AND m.in_stock
	  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, r.product_id, m.category, ARRAY[r.product_id]))
	ORDER BY r.cv, r.customer_id, r.product_id;
END
$$;
COMMENT ON FUNCTION @extschema@.subscription_candidates(int, float8, bigint) IS
	'customers who bought a product at least min_orders times at regular intervals (CV of gaps < max_dispersion): median interval, orders per year (365.25 / interval) and expected yearly revenue (orders per year x average spend per purchase)';

CREATE FUNCTION @extschema@.subscription_products(min_customers int DEFAULT 10, tenant_id bigint DEFAULT NULL)
RETURNS TABLE (product_id bigint, customers bigint, repeat_customers bigint, repeat_share float8,
			   regular_customers bigint, population_interval_days float8, consumable boolean)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
BEGIN
	IF min_customers IS NULL OR min_customers < 1 THEN
		RAISE EXCEPTION 'min_customers must be a positive integer, not %', coalesce(min_customers::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT pm.product_id, pm.customers, pm.repeat_customers, pm.repeat_share, pm.regular_customers,
		   pm.population_interval_days,
		   @extschema@._consumable(t, pm.product_id, m.category, pm.repeats_consumable)
	FROM @extschema@.product_interval_model pm
	LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = pm.product_id
	WHERE pm.tenant_id = t AND pm.customers >= min_customers
	ORDER BY pm.repeat_share DESC, pm.customers DESC, pm.product_id;
END
$$;
COMMENT ON FUNCTION @extschema@.subscription_products(int, bigint) IS
	'per product with at least min_customers buyers: the share of repeat buyers and of regular ones (3+ purchases, CV < 0.5), best subscribe-and-save prospects first';

-- ---- personal recommendations ---------------------------------------------------

CREATE FUNCTION @extschema@.recommend_for_customer(customer_id bigint, k int DEFAULT 5,
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT now(),
	half_life interval DEFAULT '90 days', due_within interval DEFAULT '7 days')
RETURNS TABLE ("rank" int, product_id bigint, score float8, reason text, because bigint[])
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
	c bigint := customer_id;
	half_days float8;
	owned_ids bigint[];
BEGIN
	IF customer_id IS NULL OR at IS NULL OR half_life IS NULL OR due_within IS NULL THEN
		RAISE EXCEPTION 'customer_id, at, half_life and due_within must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	half_days := extract(epoch FROM half_life) / 86400;
	IF half_days <= 0 THEN
		RAISE EXCEPTION 'half_life must be positive, not %', half_life USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT coalesce(array_agg(o.product_id), '{}') INTO owned_ids
	FROM @extschema@.purchase_interval_model o WHERE o.tenant_id = t AND o.customer_id = c;

	RETURN QUERY
	WITH owned AS MATERIALIZED (
		SELECT o.product_id, o.last_at, o.next_due, o.confidence, o.interval_days, m.category,
			   @extschema@._consumable(t, o.product_id, m.category, pm.repeats_consumable) AS consumable,
			   @extschema@._decay(extract(epoch FROM at - o.last_at) / 86400, half_days) AS w
		FROM @extschema@.purchase_interval_model o
		LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = o.product_id
		LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = o.product_id
		WHERE o.tenant_id = t AND o.customer_id = c),
	-- owned products that may not be offered: durables, and consumables not due
	blocked AS (
		SELECT o.product_id FROM owned o
		WHERE NOT (o.consumable AND o.next_due IS NOT NULL AND o.next_due <= at + due_within)),
	-- restocks: due, but not lapsed (overdue by more than one interval: the
	-- customer buys it elsewhere or stopped; it may still come as a complement)
	due AS (
		SELECT o.* FROM owned o
		WHERE o.consumable AND o.next_due <= at + due_within
		  AND o.next_due >= at - o.interval_days * interval '1 day'),
	-- the evidence: the 100 most recent purchases (older ones weigh little
	-- after decay, and a wholesale buyer's thousands would cost a lot)
	recent AS (
		SELECT o.* FROM owned o ORDER BY o.last_at DESC, o.product_id LIMIT 100),
	evidence AS (
		-- noisy-OR of the complement scores, each weighted by the age of the purchase
		SELECT p.other_id,
			   1 - exp(sum(ln(1 - least(o.w * p.score, 0.999999)))) AS score,
			   array_agg(p.product_id ORDER BY o.w * p.score DESC, p.product_id) AS because
		FROM recent o
		JOIN @extschema@.pair_model p ON p.tenant_id = t AND p.product_id = o.product_id
		GROUP BY p.other_id),
	owned_categories AS (
		SELECT DISTINCT o.category FROM recent o WHERE o.category IS NOT NULL),
	totals AS (
		SELECT greatest(max(cm.orders), 1)::float8 AS orders
		FROM @extschema@.cooccurrence_model cm WHERE cm.tenant_id = t),
	candidates AS (
		SELECT 1 AS tier, e.other_id AS product_id, e.score, e.because,
			   'complements your purchases' AS reason
		FROM evidence e
		UNION ALL
		SELECT 1, d.product_id, d.confidence, ARRAY[d.product_id],
			   format('due for a restock: bought every %s days, last on %s',
					  round(d.interval_days::numeric, 1), to_char(d.last_at, 'YYYY-MM-DD'))
		FROM due d
		UNION ALL
		SELECT 2, m.product_id, m.orders / totals.orders, NULL, 'popular in a category you buy from'
		FROM owned_categories oc, totals,
			 LATERAL (SELECT m.product_id, m.orders
					  FROM @extschema@.product_model m
					  WHERE m.tenant_id = t AND m.category = oc.category AND m.in_stock
					  ORDER BY m.popularity_rank
					  LIMIT k * 3 + least(cardinality(owned_ids), 100)) m
		UNION ALL
		SELECT 3, m.product_id, m.orders / totals.orders, NULL, 'popular'
		FROM totals,
			 LATERAL (SELECT m.product_id, m.orders
					  FROM @extschema@.product_model m
					  WHERE m.tenant_id = t AND m.in_stock
					  ORDER BY m.popularity_rank
					  LIMIT k * 3 + cardinality(owned_ids)) m),
	best AS (
		SELECT DISTINCT ON (cd.product_id) cd.*
		FROM candidates cd
		-- LIMIT 1: one index lookup per candidate, never a hash of the catalog
		CROSS JOIN LATERAL (SELECT m.* FROM @extschema@.product_model m
							WHERE m.tenant_id = t AND m.product_id = cd.product_id LIMIT 1) m
		WHERE m.in_stock
		  AND cd.product_id NOT IN (SELECT b.product_id FROM blocked b)
		  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, owned_ids))
		ORDER BY cd.product_id, cd.tier, cd.score DESC)
	SELECT (row_number() OVER (ORDER BY b.tier, b.score DESC, b.product_id))::int,
		   b.product_id, b.score, b.reason, b.because
	FROM best b
	ORDER BY b.tier, b.score DESC, b.product_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.recommend_for_customer(bigint, int, bigint, timestamptz, interval, interval) IS
	'the k best products for a customer: complements of the 100 most recent purchases (pair model, each purchase weighted 0.5^(age / half_life), combined by noisy-OR) and owned consumables due within due_within (not overdue by more than their interval); durables already bought and consumables not yet due are never offered; then popular products of the customer''s categories, then bestsellers';

-- ---- the email sequence ----------------------------------------------------------

CREATE TYPE @extschema@._offer_candidate AS (
	kind text, product_id bigint, category text, tier int, score float8, refers_to bigint, reason text);
COMMENT ON TYPE @extschema@._offer_candidate IS 'internal: one candidate offer of the email sequence';

-- How a product is named in a reason: its title, else its id.
CREATE FUNCTION @extschema@._product_label(tenant_id bigint, product_id bigint)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT coalesce((SELECT m.title FROM @extschema@.product_model m
					 WHERE m.tenant_id = _product_label.tenant_id AND m.product_id = _product_label.product_id),
					'product ' || _product_label.product_id);
END;

CREATE FUNCTION @extschema@.email_sequence(customer_id bigint, steps int DEFAULT 5,
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT now())
RETURNS TABLE (step int, kind text, product_id bigint, category text, score float8,
			   refers_to bigint, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
	c bigint := customer_id;
	cands @extschema@._offer_candidate[];
	used boolean[];
	best int;
	prev_cat text;
	prev_kind text;
	i int;
	s int;
	ci @extschema@._offer_candidate;
	cb @extschema@._offer_candidate;
BEGIN
	IF customer_id IS NULL OR at IS NULL THEN
		RAISE EXCEPTION 'customer_id and at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF steps IS NULL OR steps < 0 OR steps > 100 THEN
		RAISE EXCEPTION 'steps must be between 0 and 100, not %', coalesce(steps::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	cands := ARRAY(
		WITH owned AS MATERIALIZED (
			SELECT o.*, m.category, m.variant_group, m.price,
				   @extschema@._consumable(t, o.product_id, m.category, pm.repeats_consumable) AS consumable
			FROM @extschema@.purchase_interval_model o
			LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = o.product_id
			LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = o.product_id
			WHERE o.tenant_id = t AND o.customer_id = c),
		owned_ids AS (SELECT coalesce(array_agg(o.product_id), '{}') AS ids FROM owned o),
		raw AS (
			-- complements and fallbacks: what recommend_for_customer would show
			SELECT CASE WHEN r.because IS NULL THEN 'popular' ELSE 'complement' END AS kind,
				   r.product_id, CASE WHEN r.because IS NULL THEN 2 ELSE 1 END AS tier,
				   r.score, r.because[1] AS refers_to,
				   CASE WHEN r.because IS NULL THEN r.reason END AS fallback_reason
			FROM @extschema@.recommend_for_customer(c, 4 * steps, t, at, due_within => interval '0') r
			WHERE r.reason NOT LIKE 'due for a restock%'
			UNION ALL
			-- restock: owned consumables due within the month the sequence runs,
			-- not lapsed (overdue by more than one interval)
			SELECT 'restock', o.product_id, 1, o.confidence, o.product_id, NULL
			FROM owned o
			WHERE o.consumable AND o.next_due <= at + interval '30 days'
			  AND o.next_due >= at - o.interval_days * interval '1 day'
			UNION ALL
			-- subscription: bought 3+ times at regular intervals
			SELECT 'subscription', o.product_id, 1, 1 - o.cv, o.product_id, NULL
			FROM owned o
			WHERE o.purchases >= 3 AND o.cv < 0.5
			UNION ALL
			-- upgrade: the next pricier product of the variant group of one of
			-- the 20 most recently bought durables
			SELECT 'upgrade', u.product_id, 1, 0.5, o.product_id, NULL
			FROM (SELECT o.* FROM owned o
				  WHERE NOT o.consumable AND o.variant_group IS NOT NULL AND o.price IS NOT NULL
				  ORDER BY o.last_at DESC, o.product_id LIMIT 20) o
			CROSS JOIN LATERAL (
				SELECT m.product_id FROM @extschema@.product_model m
				WHERE m.tenant_id = t AND m.variant_group = o.variant_group AND m.price > o.price
				  AND m.in_stock AND NOT EXISTS (SELECT FROM owned x WHERE x.product_id = m.product_id)
				ORDER BY m.price, m.popularity_rank, m.product_id
				LIMIT 1) u)
		SELECT ROW(r.kind, r.product_id, m.category, r.tier, r.score, r.refers_to,
				   CASE r.kind
					WHEN 'complement' THEN format('goes with %s you bought on %s',
						@extschema@._product_label(t, r.refers_to), to_char(o.last_at, 'YYYY-MM-DD'))
					WHEN 'restock' THEN format('%s you bought on %s is due around %s (every %s days)',
						@extschema@._product_label(t, r.refers_to), to_char(o.last_at, 'YYYY-MM-DD'),
						to_char(o.next_due, 'YYYY-MM-DD'), round(o.interval_days::numeric, 1))
					WHEN 'subscription' THEN format('you bought %s %s times, every %s days: subscribe and save',
						@extschema@._product_label(t, r.refers_to), o.purchases, round(o.median_gap_days::numeric, 1))
					WHEN 'upgrade' THEN format('the step up from %s you bought on %s',
						@extschema@._product_label(t, r.refers_to), to_char(o.last_at, 'YYYY-MM-DD'))
					ELSE r.fallback_reason
				   END)::@extschema@._offer_candidate
		FROM raw r
		CROSS JOIN LATERAL (SELECT m.* FROM @extschema@.product_model m
							WHERE m.tenant_id = t AND m.product_id = r.product_id LIMIT 1) m
		LEFT JOIN owned o ON o.product_id = r.refers_to
		CROSS JOIN owned_ids oi
		WHERE m.in_stock AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, oi.ids))
		ORDER BY r.tier, r.score DESC, r.product_id, r.kind);
	used := array_fill(false, ARRAY[coalesce(cardinality(cands), 0) + 1]);

	-- greedy, one offer per product: prefer another category than the
	-- previous step's, then personal offers over popular fallbacks, then
	-- another kind than the previous step's, then the score
	FOR s IN 1 .. steps LOOP
		best := NULL;
		FOR i IN 1 .. coalesce(cardinality(cands), 0) LOOP
			CONTINUE WHEN used[i];
			ci := cands[i];
			IF best IS NULL THEN
				best := i;
				CONTINUE;
			END IF;
			cb := cands[best];
			IF (ci.category IS DISTINCT FROM prev_cat, -ci.tier, ci.kind IS DISTINCT FROM prev_kind, ci.score)
			   > (cb.category IS DISTINCT FROM prev_cat, -cb.tier, cb.kind IS DISTINCT FROM prev_kind, cb.score) THEN
				best := i;
			END IF;
		END LOOP;
		EXIT WHEN best IS NULL;
		cb := cands[best];
		FOR i IN 1 .. cardinality(cands) LOOP
			IF cands[i].product_id = cb.product_id THEN
				used[i] := true;
			END IF;
		END LOOP;
		step := s;
		kind := cb.kind;
		product_id := cb.product_id;
		category := cb.category;
		score := cb.score;
		refers_to := cb.refers_to;
		reason := cb.reason;
		RETURN NEXT;
		prev_cat := cb.category;
		prev_kind := cb.kind;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.email_sequence(bigint, int, bigint, timestamptz) IS
	'a post-purchase email sequence: one offer per step (complement, restock, subscription, upgrade; popular as fallback), never two of the same category in a row while another exists, each with a reason naming the purchase it refers to';

-- ---- carts: registration and abandoned-cart offers ------------------------------------

CREATE TABLE @extschema@.cart_source (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	relation	regclass NOT NULL,
	cart_id		name NOT NULL,
	customer_id	name,
	product_id	name NOT NULL,
	quantity	name,
	added_at	name NOT NULL,
	checked_out_at name,
	tenant_id	name,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cart_source', '');
COMMENT ON TABLE @extschema@.cart_source IS
	'the registered cart lines: relation and the columns that mean cart, customer, product, quantity, added at, checked out at, tenant';

-- The view upsell.carts is created by register_carts, not by this script
-- (like upsell.order_lines, see 10_registration.sql: as an extension member a
-- DROP ... CASCADE of the shop's table would drop the extension):
--   upsell.carts (tenant_id bigint, cart_id bigint, customer_id bigint,
--                 product_id bigint, quantity numeric, added_at timestamptz,
--                 checked_out_at timestamptz)
-- tenant_id 0 without a tenant column; cart_id upsell.order_key() of a
-- non-integer id; checked_out_at NULL while the cart is open.

CREATE FUNCTION @extschema@._sync_carts()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s @extschema@.cart_source;
BEGIN
	SELECT * INTO s FROM @extschema@.cart_source;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM @extschema@._check_relation(s.relation, 'carts');
	EXECUTE format(
		'CREATE OR REPLACE VIEW @extschema@.carts AS SELECT %s AS tenant_id, %s AS cart_id, %s AS customer_id, '
		'%s AS product_id, %s AS quantity, %s AS added_at, %s AS checked_out_at FROM %s AS s',
		CASE WHEN s.tenant_id IS NULL THEN '0::bigint' ELSE @extschema@._column_expr(s.relation, s.tenant_id, 'tenant_id') END,
		@extschema@._column_expr(s.relation, s.cart_id, 'cart_id'),
		CASE WHEN s.customer_id IS NULL THEN 'NULL::bigint' ELSE @extschema@._column_expr(s.relation, s.customer_id, 'customer_id') END,
		@extschema@._column_expr(s.relation, s.product_id, 'product_id'),
		CASE WHEN s.quantity IS NULL THEN '1::numeric' ELSE @extschema@._column_expr(s.relation, s.quantity, 'quantity') END,
		@extschema@._column_expr(s.relation, s.added_at, 'added_at'),
		CASE WHEN s.checked_out_at IS NULL THEN 'NULL::timestamptz' ELSE @extschema@._column_expr(s.relation, s.checked_out_at, 'checked_out_at') END,
		s.relation);
	COMMENT ON VIEW @extschema@.carts IS
		'the registered cart lines under canonical names, created by upsell.register_carts()';
END
$$;

CREATE FUNCTION @extschema@.register_carts(relation regclass, cart_id name, customer_id name,
	product_id name, quantity name, added_at name, checked_out_at name, tenant_id name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF relation IS NULL OR cart_id IS NULL OR product_id IS NULL OR added_at IS NULL THEN
		RAISE EXCEPTION 'relation, cart_id, product_id and added_at must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	INSERT INTO @extschema@.cart_source AS c
		(relation, cart_id, customer_id, product_id, quantity, added_at, checked_out_at, tenant_id)
	VALUES (relation, cart_id, customer_id, product_id, quantity, added_at, checked_out_at, tenant_id)
	ON CONFLICT (singleton) DO UPDATE SET
		relation = excluded.relation, cart_id = excluded.cart_id,
		customer_id = excluded.customer_id, product_id = excluded.product_id,
		quantity = excluded.quantity, added_at = excluded.added_at,
		checked_out_at = excluded.checked_out_at, tenant_id = excluded.tenant_id,
		registered_at = now();
	PERFORM @extschema@._sync_carts();
END
$$;
COMMENT ON FUNCTION @extschema@.register_carts(regclass, name, name, name, name, name, name, name) IS
	'records which table or view holds the cart lines (one row per cart and product) and which columns mean cart, customer, product, quantity, added at, checked out at (NULL while open), tenant';

CREATE FUNCTION @extschema@.abandoned_cart_offers(cart_id bigint, k int DEFAULT 3,
	idle_after interval DEFAULT '1 hour', at timestamptz DEFAULT now(),
	min_price_ratio numeric DEFAULT 0.5, tenant_id bigint DEFAULT NULL)
RETURNS TABLE ("rank" int, kind text, product_id bigint, replaces bigint, price numeric,
			   score float8, reason text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	-- is_excluded costs a lookup per candidate: skipped when the tenant has no rules
	has_rules boolean := EXISTS (SELECT FROM @extschema@.exclusions e WHERE e.tenant_id = t);
	items bigint[];
	last_added timestamptz;
	checked_out boolean;
BEGIN
	IF cart_id IS NULL OR idle_after IS NULL OR at IS NULL OR min_price_ratio IS NULL THEN
		RAISE EXCEPTION 'cart_id, idle_after, at and min_price_ratio must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF min_price_ratio < 0 OR min_price_ratio >= 1 OR min_price_ratio = 'NaN' THEN
		RAISE EXCEPTION 'min_price_ratio must be in [0, 1), not %', min_price_ratio
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT FROM @extschema@.cart_source) THEN
		RAISE EXCEPTION 'no carts are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_carts() first.';
	END IF;
	IF to_regclass('@extschema@.carts') IS NULL THEN
		RAISE EXCEPTION 'the view upsell.carts is missing'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Register the carts again with upsell.register_carts(), or CALL upsell.refresh().';
	END IF;
	SELECT coalesce(array_agg(DISTINCT c.product_id) FILTER (WHERE c.product_id IS NOT NULL), '{}'),
		   max(c.added_at), bool_or(c.checked_out_at IS NOT NULL)
	INTO items, last_added, checked_out
	FROM @extschema@.carts c
	WHERE c.tenant_id = t AND c.cart_id = abandoned_cart_offers.cart_id;
	-- unknown, checked out, or still active: nothing to win back
	IF cardinality(items) = 0 OR checked_out OR last_added > at - idle_after THEN
		RETURN;
	END IF;

	RETURN QUERY
	WITH cart AS (
		SELECT m.product_id, m.price, m.category, m.variant_group
		FROM @extschema@.product_model m
		WHERE m.tenant_id = t AND m.product_id = ANY (items)),
	downsell AS (
		-- per cart item: cheaper, in stock, same variant group first, then same category
		SELECT d.product_id, c.product_id AS replaces, d.price,
			   (1 - d.price / c.price)::float8 AS score, d.n AS pick, c.price AS item_price,
			   format('cheaper alternative to %s (%s instead of %s)',
					  @extschema@._product_label(t, c.product_id), d.price, c.price) AS reason
		FROM cart c
		CROSS JOIN LATERAL (
			SELECT m.product_id, m.price,
				   row_number() OVER (ORDER BY (m.variant_group IS NOT DISTINCT FROM c.variant_group AND c.variant_group IS NOT NULL) DESC,
											   m.popularity_rank, m.product_id) AS n
			FROM @extschema@.product_model m
			WHERE m.tenant_id = t AND m.in_stock AND m.product_id <> ALL (items)
			  AND m.price < c.price AND m.price >= c.price * min_price_ratio
			  AND ((c.variant_group IS NOT NULL AND m.variant_group = c.variant_group)
				   OR (c.category IS NOT NULL AND m.category = c.category))
			  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))
			ORDER BY 3
			LIMIT 2) d
		WHERE c.price > 0),
	complement AS (
		SELECT p.other_id AS product_id,
			   1 - exp(sum(ln(1 - least(p.score, 0.999999)))) AS score,
			   (array_agg(p.product_id ORDER BY p.score DESC, p.product_id))[1] AS replaces
		FROM @extschema@.pair_model p
		WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
		GROUP BY p.other_id),
	offers AS (
		SELECT DISTINCT ON (o.product_id) o.*
		FROM (SELECT CASE WHEN d.pick = 1 THEN 1 ELSE 3 END AS tier, 'downsell' AS kind,
					 d.product_id, d.replaces, d.price, d.score, d.item_price AS ord, d.reason
			  FROM downsell d
			  UNION ALL
			  SELECT 2, 'complement', cp.product_id, cp.replaces, m.price, cp.score, cp.score::numeric,
					 format('goes with %s in the cart', @extschema@._product_label(t, cp.replaces))
			  FROM complement cp
			  JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = cp.product_id
			  WHERE m.in_stock AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))) o
		ORDER BY o.product_id, o.tier, o.ord DESC)
	SELECT (row_number() OVER (ORDER BY o.tier, o.ord DESC, o.score DESC, o.product_id))::int,
		   o.kind, o.product_id, o.replaces, o.price, o.score, o.reason
	FROM offers o
	ORDER BY o.tier, o.ord DESC, o.score DESC, o.product_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.abandoned_cart_offers(bigint, int, interval, timestamptz, numeric, bigint) IS
	'win-back offers for a cart idle for idle_after and not checked out: first the best cheaper alternative (same variant group, else category; price in [min_price_ratio x price, price)) of each cart item, dearest item first, then complements of the cart, then second-best alternatives';

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

CREATE TABLE @extschema@.experiments (
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

CREATE TABLE @extschema@.experiment_variants (
	experiment	text NOT NULL REFERENCES @extschema@.experiments ON UPDATE CASCADE ON DELETE CASCADE,
	variant		text NOT NULL CHECK (variant <> ''),
	weight		numeric NOT NULL CHECK (weight >= 0 AND weight < 'Infinity'),
	offer_types	text[] NOT NULL DEFAULT '{}'
		CHECK (offer_types <@ @extschema@._offer_types() AND pg_catalog.array_position(offer_types, NULL) IS NULL),
	description	text,
	PRIMARY KEY (experiment, variant)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.experiment_variants', '');
COMMENT ON TABLE @extschema@.experiment_variants IS
	'variants of an experiment: weight (share of units = weight / sum of weights) and the offer types the variant shows (empty = no offers, the usual control)';

CREATE TABLE @extschema@.exposures (
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
CREATE INDEX ON @extschema@.exposures (experiment, unit_id, shown_at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.exposures', '');
-- the identity's position too, or rows added after a restore would collide
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.exposures', 'exposure_id')::regclass, '');
COMMENT ON TABLE @extschema@.exposures IS
	'one row each time a unit (customer) of an experiment was shown its variant at a stage; variant is filled in by upsell.assign() when omitted';

CREATE TABLE @extschema@.offer_events (
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
CREATE INDEX ON @extschema@.offer_events (tenant_id, unit_id, occurred_at);
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

CREATE FUNCTION @extschema@._experiment(experiment text)
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
	SELECT * INTO e FROM @extschema@.experiments x WHERE x.experiment = _experiment.experiment;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'experiment "%" does not exist', experiment
			USING ERRCODE = 'undefined_object',
				  HINT = 'Experiments are rows of upsell.experiments.';
	END IF;
	RETURN e;
END
$$;

CREATE FUNCTION @extschema@.assign(experiment text, unit_id text)
RETURNS text
AS 'MODULE_PATHNAME', 'upsell_assign'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.assign(text, text) IS
	'the variant of a unit (customer) in an experiment: a stable hash of experiment and unit, split in proportion to the variant weights; no randomness, no state';

-- The offer types the unit's variant shows; NULL means "no experiment: all".
CREATE FUNCTION @extschema@.variant_offer_types(experiment text, unit_id text, stage text DEFAULT NULL)
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
	e := @extschema@._experiment(experiment);
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
COMMENT ON FUNCTION @extschema@.variant_offer_types(text, text, text) IS
	'offer types the unit''s variant shows ({} = none, the control); NULL (= show everything) when experiment or unit is NULL, the experiment is not running, or it is for another stage';

-- Variants and weights of a running experiment with exposures are frozen:
-- moving units between variants mid-test biases every comparison.
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
	IF NOT EXISTS (SELECT FROM @extschema@.experiment_variants v
				   WHERE v.experiment = set_weights.experiment AND v.weight > 0) THEN
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
CREATE FUNCTION @extschema@._exposure_variant()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NEW.variant IS NULL THEN
		NEW.variant := @extschema@.assign(NEW.experiment, NEW.unit_id);
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER exposure_variant BEFORE INSERT ON @extschema@.exposures
	FOR EACH ROW EXECUTE FUNCTION @extschema@._exposure_variant();

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
	INSERT INTO @extschema@.exposures (experiment, unit_id, stage, offer, shown_at)
	VALUES (experiment, unit_id, stage, offer, shown_at)
	RETURNING variant INTO v;
	RETURN v;
END
$$;
COMMENT ON FUNCTION @extschema@.record_exposure(text, text, text, text, timestamptz) IS
	'records that the unit saw its variant of the experiment (at a stage, with an offer) and returns the variant';

-- ---------------------------------------------------------------------------
-- Units are customers
-- ---------------------------------------------------------------------------

-- 'integer' or 'text': how the registered customer column maps unit ids.
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
		   array_agg(v.weight::float8 ORDER BY v.variant COLLATE "C"),
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
				round(srm.chi2::numeric, 2), srm_p
				USING DETAIL = 'With p < 0.001 the split itself is broken (bots, redirects, lost exposures, changed weights); the comparisons below cannot be trusted.',
					  HINT = 'Find why some units were not recorded before reading the results.';
		END IF;
	END IF;

	RETURN QUERY
	WITH u AS (
		SELECT DISTINCT ON (x.unit_id) x.unit_id, x.variant, x.shown_at AS first_shown,
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
			AND ol.ordered_at >= u.first_shown AND ol.ordered_at < u.first_shown + e.conversion_window
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
		   (SELECT sum(s2.units) FROM s s2)::float8 * s.weight::float8
			/ nullif((SELECT sum(s2.weight) FROM s s2), 0)::float8,
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
		SELECT o.*, CASE WHEN period = 'all' THEN NULL ELSE date_trunc(period, o.ordered_at) END AS p,
			   min(o.ordered_at) OVER (PARTITION BY o.customer_id) AS first_at
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
		SELECT ol.order_key, ol.product_id, min(ol.customer_id) AS customer_id,
			   min(ol.ordered_at) AS ordered_at, sum(ol.quantity * ol.unit_price) AS revenue
		FROM @extschema@.order_lines ol
		WHERE ol.tenant_id = t
		  AND (ol.customer_id, ol.product_id) IN (SELECT ev.customer_id, ev.product_id FROM ev)
		GROUP BY ol.order_key, ol.product_id
	), att AS (
		-- last touch: the latest add of the product by the customer within the window
		SELECT DISTINCT ON (lp.order_key, lp.product_id) lp.order_key, lp.revenue, ev.offer_type
		FROM lp JOIN ev ON ev.customer_id = lp.customer_id AND ev.product_id = lp.product_id
			AND ev.occurred_at <= lp.ordered_at AND ev.occurred_at > lp.ordered_at - attribution_window
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
			   count(DISTINCT op.customer_id) FILTER (WHERE op.ordered_at > op.first_at) AS returning_customers
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

-- ===========================================================================
-- Funnel stages: one ranked list of offers per page, every tactic merged
-- ===========================================================================
--
-- Each stage gathers candidate offers from the tactics (models read with
-- index lookups), then the merge (src/core/offers.c) applies the merchant's
-- rules: pinned offers first, exclusions and stock, one offer per product,
-- offer types interleaved by weighted score, at most max_offers, and the
-- experiment variant's offer types when one is named.  The product page and
-- the cart are served in C (src/serving.c) from one model read each; the
-- merchant's rules are cached per backend until serving_state says they
-- changed.

CREATE TYPE @extschema@.offer AS (
	stage		text,
	offer_type	text,
	product_ids	bigint[],
	"rank"		int,
	score		float8,
	discount	numeric,
	reason		text
);
COMMENT ON TYPE @extschema@.offer IS
	'one offer of a funnel stage: its type, the product(s) offered, rank, score, discount (a fraction of the price) and reason';

CREATE TABLE @extschema@.offers (
	offer_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text NOT NULL CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	trigger_product_id bigint,
	trigger_category text,
	min_cart_value numeric CHECK (min_cart_value >= 0),
	product_ids	bigint[] NOT NULL CHECK (cardinality(product_ids) > 0 AND array_position(product_ids, NULL) IS NULL),
	discount	numeric NOT NULL DEFAULT 0 CHECK (discount >= 0 AND discount < 1),
	priority	int NOT NULL DEFAULT 0,
	active_from	timestamptz,
	active_to	timestamptz,
	reason		text,
	CHECK (num_nonnulls(trigger_product_id, trigger_category, min_cart_value) <= 1),
	CHECK (active_to IS NULL OR active_from IS NULL OR active_to > active_from)
);
CREATE INDEX ON @extschema@.offers (tenant_id, stage);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.offers', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.offers', 'offer_id')::regclass, '');
COMMENT ON TABLE @extschema@.offers IS
	'hand-made offers: shown first (by priority) on their stage while active, when their trigger matches: a product on the page/in the cart/order, a category, a cart value, or always (no trigger)';

CREATE TABLE @extschema@.stage_settings (
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text NOT NULL CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	max_offers	int NOT NULL CHECK (max_offers >= 0),
	type_weights jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(type_weights) = 'object'),
	PRIMARY KEY (tenant_id, stage)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stage_settings', '');
COMMENT ON TABLE @extschema@.stage_settings IS
	'per tenant and stage: the maximum number of offers (default 6) and weights per offer type that interleave the tactics (defaults: complement 1, bundle/gap_filler/restock 0.9, upgrade/subscription 0.8, quantity_tier 0.7, downsell 0.6)';

-- every table of the merchant's rules draws a new serving_state.config_version
DO $$
DECLARE
	rules text;
BEGIN
	FOREACH rules IN ARRAY ARRAY['offers', 'exclusions', 'stage_settings', 'thresholds',
								 'volume_tiers', 'order_source', 'product_source'] LOOP
		EXECUTE format('CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
					   'ON @extschema@.%I FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._rules_changed()',
					   rules);
	END LOOP;
END
$$;

-- The merge for stages that gather their candidates in SQL (post-purchase):
-- the same rules as the C stages, with the stock of the candidates looked up.
CREATE FUNCTION @extschema@._merge_offers(stage text, t bigint, context bigint[],
	cart_value numeric, candidates @extschema@.offer[], experiment text, unit_id text)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_merge_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._merge_offers(text, bigint, bigint[], numeric, @extschema@.offer[], text, text) IS
	'internal: ranks a stage''s candidate offers under the merchant''s rules (pinned first, stock, exclusions, weights, one offer per product, max_offers)';

-- ---- pre-purchase: the product page ----------------------------------------
--
-- Precomputed at refresh for every product (complements, upgrades, bundles
-- of products in stock, best first), so that the page reads a few rows by
-- index; pinned offers, exclusions, weights and limits apply at request time.

CREATE FUNCTION @extschema@._build_product_page_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %1$s (tenant_id, product_id, offer_type, product_ids, sort, score, discount, reason)
		SELECT tenant_id, product_id, offer_type, product_ids, sort, score, discount, reason
		FROM (SELECT c.*, row_number() OVER (PARTITION BY c.tenant_id, c.product_id
											 ORDER BY c.sort DESC, c.product_ids, c.offer_type) AS pos
			  FROM (SELECT DISTINCT ON (c.tenant_id, c.product_id, c.product_ids) c.*
					FROM (SELECT c.*,
								 c.score / nullif(max(c.score) OVER (PARTITION BY c.tenant_id, c.product_id, c.offer_type), 0)
								 AS sort
						  FROM (SELECT p.tenant_id, p.product_id, 'complement' AS offer_type,
									   ARRAY[p.other_id] AS product_ids, p.score, 0::numeric AS discount,
									   'frequently bought together' AS reason
								FROM %2$s p
								JOIN %5$s o ON o.tenant_id = p.tenant_id AND o.product_id = p.other_id
								WHERE o.in_stock
								UNION ALL
								SELECT u.tenant_id, u.product_id, 'upgrade', ARRAY[u.candidate_id], u.score, 0,
									   @extschema@._upgrade_evidence(u.paths, u.buyers, u.same_group)
								FROM %3$s u
								JOIN %5$s a ON a.tenant_id = u.tenant_id AND a.product_id = u.product_id
								JOIN %5$s m ON m.tenant_id = u.tenant_id AND m.product_id = u.candidate_id
								WHERE u.kind = 'upgrade' AND m.price <= a.price * 1.5 AND m.in_stock
								UNION ALL
								SELECT b.tenant_id, b.product_id, 'bundle', b.items, b.lift, 0.10,
									   format('bought together in %%s orders, %%s times more often than by chance',
											  b.count, round(b.lift::numeric, 1))
								FROM %4$s b
								WHERE NOT EXISTS (
									SELECT FROM unnest(b.items) o(id)
									LEFT JOIN %5$s m ON m.tenant_id = b.tenant_id AND m.product_id = o.id
									WHERE NOT coalesce(m.in_stock, false))) c) c
					ORDER BY c.tenant_id, c.product_id, c.product_ids, c.sort DESC, c.offer_type) c) c
		WHERE c.pos <= 12$q$,
		@extschema@._slot_table('product_page_model', slot),
		@extschema@._slot_table('pair_model', slot),
		@extschema@._slot_table('upgrade_model', slot),
		@extschema@._slot_table('bundle_model', slot),
		@extschema@._slot_table('product_model', slot));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('product_page_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, offer_type text NOT NULL,
	  product_ids bigint[] NOT NULL, sort float8 NOT NULL, score float8 NOT NULL,
	  discount numeric NOT NULL, reason text NOT NULL$$,
	ARRAY['(product_id, tenant_id)'], 95, '@extschema@._build_product_page_model(text, boolean)',
	'per product: its 12 best product-page offers of products in stock (complements, upgrades, bundles); sort is the score relative to the best of its type');

CREATE FUNCTION @extschema@._product_page_offers(tenant_id bigint, product_id bigint, category text,
	experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_product_page_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._product_page_offers(bigint, bigint, text, text, text) IS
	'internal: the product page''s offers for a product of product_model (its tenant and category)';

CREATE VIEW @extschema@.product_page_offers AS
SELECT m.tenant_id, m.product_id, o.stage, o.offer_type, o.product_ids, o."rank", o.score,
	   o.discount, o.reason
FROM @extschema@.product_model m
CROSS JOIN LATERAL @extschema@._product_page_offers(m.tenant_id, m.product_id, m.category) o;
COMMENT ON VIEW @extschema@.product_page_offers IS
	'pre-purchase offers per product (pinned merchant offers, complements, upgrades, bundles), ranked; query it filtered by product_id (and tenant_id)';

CREATE FUNCTION @extschema@.product_page_offers(product_id bigint, tenant_id bigint DEFAULT NULL,
	experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT o.*
	FROM @extschema@.product_model m,
		 @extschema@._product_page_offers(m.tenant_id, m.product_id, m.category,
										  product_page_offers.experiment, product_page_offers.unit_id) o
	WHERE m.tenant_id = @extschema@._tenant(product_page_offers.tenant_id)
	  AND m.product_id = product_page_offers.product_id
	ORDER BY o."rank";
END;
COMMENT ON FUNCTION @extschema@.product_page_offers(bigint, bigint, text, text) IS
	'the product page''s offers for one product, tenant-checked; with an experiment and unit, only the offer types of the unit''s variant';

-- ---- during purchase: the cart -------------------------------------------------

-- What a cart request reads about each line, in one index lookup: price,
-- category and stock, the line's complements (in stock, with ln(1 - pair
-- score) for the noisy-OR, so that a request adds instead of taking logs)
-- and its best upgrade (within 1.5x the price, same variant group first).
CREATE FUNCTION @extschema@._build_cart_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %1$s (tenant_id, product_id, price, category, in_stock, complement_ids,
						  complement_log_miss, upgrade_id, upgrade_score, upgrade_reason)
		SELECT m.tenant_id, m.product_id, m.price, m.category, m.in_stock,
			   coalesce(c.ids, '{}'), coalesce(c.scores, '{}'),
			   u.candidate_id, u.score, u.reason
		FROM %2$s m
		LEFT JOIN (SELECT p.tenant_id, p.product_id,
						  array_agg(p.other_id ORDER BY p.other_id) AS ids,
						  array_agg(ln(1 - least(p.score, 0.999999)) ORDER BY p.other_id) AS scores
				   FROM %3$s p
				   JOIN %2$s o ON o.tenant_id = p.tenant_id AND o.product_id = p.other_id
				   WHERE o.in_stock
				   GROUP BY p.tenant_id, p.product_id) c
			ON c.tenant_id = m.tenant_id AND c.product_id = m.product_id
		LEFT JOIN (SELECT DISTINCT ON (u.tenant_id, u.product_id)
						  u.tenant_id, u.product_id, u.candidate_id, u.score,
						  format('instead of %%s: %%s; +%%s (%%s%%%% more)', coalesce(a.title, u.product_id::text),
								 @extschema@._upgrade_evidence(u.paths, u.buyers, u.same_group),
								 b.price - a.price, round(100 * (b.price - a.price) / a.price)) AS reason
				   FROM %4$s u
				   JOIN %2$s a ON a.tenant_id = u.tenant_id AND a.product_id = u.product_id
				   JOIN %2$s b ON b.tenant_id = u.tenant_id AND b.product_id = u.candidate_id
				   WHERE u.kind = 'upgrade' AND b.price > a.price AND b.price <= a.price * 1.5 AND b.in_stock
				   ORDER BY u.tenant_id, u.product_id, u.same_group DESC, u.score DESC, u.candidate_id) u
			ON u.tenant_id = m.tenant_id AND u.product_id = m.product_id$q$,
		@extschema@._slot_table('cart_model', slot),
		@extschema@._slot_table('product_model', slot),
		@extschema@._slot_table('pair_model', slot),
		@extschema@._slot_table('upgrade_model', slot));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('cart_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, price numeric, category text,
	  in_stock boolean NOT NULL, complement_ids bigint[] NOT NULL, complement_log_miss float8[] NOT NULL,
	  upgrade_id bigint, upgrade_score float8, upgrade_reason text,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 97, '@extschema@._build_cart_model(text, boolean)',
	'per product, what the cart stage reads about a cart line: price, category, stock, complements in stock with ln(1 - pair score), and the best upgrade within 1.5x the price');

CREATE FUNCTION @extschema@.cart_offers(cart bigint[], quantities int[] DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_cart_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@.cart_offers(bigint[], int[], bigint, text, text) IS
	'during-purchase offers for a cart: pinned merchant offers, complements of the cart, gap fillers to the next threshold, upgrades of cart lines and quantity tiers, interleaved by weighted score';

-- ---- post-purchase: the thank-you page and the emails after it --------------

CREATE FUNCTION @extschema@.post_purchase_offers(order_items bigint[], customer_id bigint DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL,
	at timestamptz DEFAULT now())
RETURNS SETOF @extschema@.offer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	items bigint[] := ARRAY(SELECT DISTINCT x FROM unnest(order_items) x WHERE x IS NOT NULL);
	candidates @extschema@.offer[];
BEGIN
	candidates := ARRAY(
		-- complements of what was just bought (evidence only: no bestsellers here)
		SELECT ROW('post_purchase', 'complement', ARRAY[e.product_id], NULL, e.score, 0,
				   'goes with your order')::@extschema@.offer
		FROM @extschema@._complements_of(t, items, 12) e)
	|| ARRAY(
		-- consumables of this customer coming due within two weeks
		SELECT ROW('post_purchase', 'restock', ARRAY[i.product_id], NULL, i.confidence, 0,
				   CASE WHEN i.next_due <= at THEN format('due again now (every %s days)', round(i.interval_days::numeric))
						ELSE format('due again in %s days (every %s days)',
									round(extract(epoch FROM i.next_due - at)::numeric / 86400),
									round(i.interval_days::numeric)) END)::@extschema@.offer
		FROM @extschema@.purchase_interval_model i
		WHERE i.tenant_id = t AND i.customer_id = post_purchase_offers.customer_id
		  AND i.next_due BETWEEN at - interval '7 days' AND at + interval '14 days'
		  AND i.confidence > 0
		ORDER BY i.confidence DESC, i.product_id
		LIMIT 5)
	|| ARRAY(
		-- bought at least 3 times at regular intervals: subscribe and save
		SELECT ROW('post_purchase', 'subscription', ARRAY[i.product_id], NULL, 1 / (1 + i.cv), 0,
				   format('bought %s times, every %s days: subscribe', i.purchases, round(i.median_gap_days::numeric)))::@extschema@.offer
		FROM @extschema@.purchase_interval_model i
		WHERE i.tenant_id = t AND i.customer_id = post_purchase_offers.customer_id
		  AND i.purchases >= 3 AND i.cv <= 0.5
		ORDER BY i.cv, i.product_id
		LIMIT 3);
	-- restocks and subscriptions are of products the customer owns: only the
	-- order's own products are context
	RETURN QUERY SELECT * FROM @extschema@._merge_offers('post_purchase', t, items, NULL,
														 candidates, experiment, unit_id);
END
$$;
COMMENT ON FUNCTION @extschema@.post_purchase_offers(bigint[], bigint, bigint, text, text, timestamptz) IS
	'post-purchase offers for an order just placed (its products) and its customer: complements of the order, restocks coming due, a subscription pitch, interleaved by weighted score';

-- The recent orders the post-purchase view serves (the last 90 days, or all
-- orders when no order time is registered).
CREATE FUNCTION @extschema@._build_order_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
	recent text := 'true';
BEGIN
	IF (SELECT s.ordered_at IS NOT NULL FROM @extschema@.order_source s) THEN
		recent := format('l.ordered_at >= (SELECT max(m.max_ordered_at) FROM %s m) - interval ''90 days''',
						 @extschema@._slot_table('cooccurrence_model', slot));
	END IF;
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, order_key, order_id, customer_id, ordered_at, items)
		SELECT l.tenant_id, l.order_key, min(l.order_id), min(l.customer_id), max(l.ordered_at),
			   array_agg(DISTINCT l.product_id)
		FROM @extschema@.order_lines l
		WHERE l.quantity > 0 AND l.product_id IS NOT NULL AND l.order_key IS NOT NULL AND %s
		GROUP BY l.tenant_id, l.order_key$q$,
		@extschema@._slot_table('order_model', slot), recent);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('order_model',
	$$tenant_id bigint NOT NULL, order_key bigint NOT NULL, order_id text NOT NULL,
	  customer_id bigint, ordered_at timestamptz, items bigint[] NOT NULL,
	  PRIMARY KEY (tenant_id, order_key)$$,
	ARRAY['(order_id)', '(tenant_id, customer_id, ordered_at)'], 96,
	'@extschema@._build_order_model(text, boolean)',
	'the orders of the last 90 days (all orders without an order time): products and customer, for the post-purchase view');

CREATE VIEW @extschema@.post_purchase_offers AS
SELECT o.tenant_id, o.order_id, o.customer_id, o.ordered_at, f.*
FROM @extschema@.order_model o
CROSS JOIN LATERAL @extschema@.post_purchase_offers(o.items, o.customer_id, o.tenant_id) f;
COMMENT ON VIEW @extschema@.post_purchase_offers IS
	'post-purchase offers per recent order (complements of the order, restocks, subscription pitch); query it filtered by order_id or customer_id';
