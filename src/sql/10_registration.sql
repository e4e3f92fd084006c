
-- ===========================================================================
-- Registration: which of the shop's relations and columns mean what
-- ===========================================================================
--
-- register_orders / register_products record a mapping in a config table and
-- (re)create a view with canonical column names over the shop's relation:
-- upsell.order_lines and upsell.catalog.  Everything downstream reads through
-- these two views with static SQL; user-supplied names only ever reach SQL
-- through format('%I').

-- The merchant's configuration tables (those marked for pg_dump) are created
-- IF NOT EXISTS: an upgrade keeps them with their rows and runs this script
-- around them (src/upgrade/), so a new version changes them only by ALTER.
CREATE TABLE IF NOT EXISTS @extschema@.order_source (
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

CREATE TABLE IF NOT EXISTS @extschema@.product_source (
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
--                       ordered_at timestamptz, quantity numeric, unit_price numeric,
--                       row_xmin xid)
--   upsell.catalog     (tenant_id bigint, product_id bigint, price numeric,
--                       category text, variant_group text, in_stock boolean,
--                       title text, unit_size numeric, unit_name text)
--
-- tenant_id is 0 without a tenant column; order_key is the order id, or
-- upsell.order_key() of it when it is not an integer; quantity is 1 and
-- in_stock true when those columns are not registered; row_xmin is the
-- row's xmin when the relation is a table (incremental refresh compares it
-- with the snapshot of the last refresh), NULL for a view.

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

-- Plausible amounts.  A NaN, an infinity, a negative price or an absurd
-- value (a typo, a unit mix-up, a test row) is never a real purchase: the
-- views below leave it out -- a line with such a quantity is skipped, such
-- a price is read as unknown -- and upsell.bad_source_rows() lists it with
-- its problem, so refresh counts and names them instead of failing (a 1e100
-- price would overflow the integer cents of the threshold model).  NaN
-- compares above every number, so the upper bounds catch it.
CREATE FUNCTION @extschema@._plausible_quantity(quantity numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN quantity IS NULL OR (quantity > -1e9 AND quantity < 1e9);

CREATE FUNCTION @extschema@._plausible_price(price numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN price IS NULL OR (price >= 0 AND price < 1e12);

-- The canonical expressions of the registered order lines' columns (over
-- the relation aliased s), for the view and for bad_source_rows().
CREATE FUNCTION @extschema@._order_line_columns(s @extschema@.order_source,
	OUT tenant_id text, OUT order_key text, OUT order_id text, OUT product_id text,
	OUT customer_id text, OUT ordered_at text, OUT quantity text, OUT unit_price text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	tenant_id := CASE WHEN s.tenant_id IS NULL THEN '0::bigint' ELSE @extschema@._column_expr(s.relation, s.tenant_id, 'tenant_id') END;
	order_key := @extschema@._column_expr(s.relation, s.order_id, 'order_id');
	order_id := 's.' || quote_ident(s.order_id) || '::text';
	product_id := @extschema@._column_expr(s.relation, s.product_id, 'product_id');
	customer_id := CASE WHEN s.customer_id IS NULL THEN 'NULL::bigint' ELSE @extschema@._column_expr(s.relation, s.customer_id, 'customer_id') END;
	ordered_at := CASE WHEN s.ordered_at IS NULL THEN 'NULL::timestamptz' ELSE @extschema@._column_expr(s.relation, s.ordered_at, 'ordered_at') END;
	quantity := CASE WHEN s.quantity IS NULL THEN '1::numeric' ELSE @extschema@._column_expr(s.relation, s.quantity, 'quantity') END;
	unit_price := CASE WHEN s.unit_price IS NULL THEN 'NULL::numeric' ELSE @extschema@._column_expr(s.relation, s.unit_price, 'unit_price') END;
END
$$;

-- The same for the registered catalog.
CREATE FUNCTION @extschema@._catalog_columns(s @extschema@.product_source,
	OUT tenant_id text, OUT product_id text, OUT price text, OUT category text,
	OUT variant_group text, OUT in_stock text, OUT title text, OUT unit_size text, OUT unit_name text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	tenant_id := CASE WHEN s.tenant_id IS NULL THEN '0::bigint' ELSE @extschema@._column_expr(s.relation, s.tenant_id, 'tenant_id') END;
	product_id := @extschema@._column_expr(s.relation, s.product_id, 'product_id');
	price := CASE WHEN s.price IS NULL THEN 'NULL::numeric' ELSE @extschema@._column_expr(s.relation, s.price, 'price') END;
	category := CASE WHEN s.category IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.category, 'category') END;
	variant_group := CASE WHEN s.variant_group IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.variant_group, 'variant_group') END;
	in_stock := CASE WHEN s.in_stock IS NULL THEN 'true' ELSE @extschema@._column_expr(s.relation, s.in_stock, 'in_stock') END;
	title := CASE WHEN s.title IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.title, 'title') END;
	unit_size := CASE WHEN s.unit_size IS NULL THEN 'NULL::numeric' ELSE @extschema@._column_expr(s.relation, s.unit_size, 'unit_size') END;
	unit_name := CASE WHEN s.unit_name IS NULL THEN 'NULL::text' ELSE @extschema@._column_expr(s.relation, s.unit_name, 'unit_name') END;
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
	c record;
BEGIN
	SELECT * INTO s FROM @extschema@.order_source;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM @extschema@._check_relation(s.relation, 'order lines');
	c := @extschema@._order_line_columns(s);
	EXECUTE format(
		'CREATE OR REPLACE VIEW @extschema@.order_lines AS SELECT %s AS tenant_id, %s AS order_key, %s AS order_id, '
		'%s AS product_id, %s AS customer_id, %s AS ordered_at, %s AS quantity, '
		'CASE WHEN @extschema@._plausible_price(%s) THEN %s END AS unit_price, %s AS row_xmin FROM %s AS s '
		'WHERE @extschema@._plausible_quantity(%s)',
		c.tenant_id, c.order_key, c.order_id, c.product_id, c.customer_id, c.ordered_at,
		c.quantity, c.unit_price, c.unit_price,
		-- the commit order of the rows, for incremental refresh (a view has none)
		CASE WHEN (SELECT r.relkind FROM pg_class r WHERE r.oid = s.relation) IN ('r', 'p', 'm')
			 THEN 's.xmin' ELSE 'NULL::xid' END,
		s.relation, c.quantity);
	COMMENT ON VIEW @extschema@.order_lines IS
		'the registered order lines under canonical names, created by upsell.register_orders(); lines with an implausible quantity are left out, implausible unit prices read as NULL (see upsell.bad_source_rows())';
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
	c record;
BEGIN
	SELECT * INTO s FROM @extschema@.product_source;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM @extschema@._check_relation(s.relation, 'catalog');
	c := @extschema@._catalog_columns(s);
	EXECUTE format(
		'CREATE OR REPLACE VIEW @extschema@.catalog AS SELECT %s AS tenant_id, %s AS product_id, '
		'CASE WHEN @extschema@._plausible_price(%s) THEN %s END AS price, '
		'%s AS category, %s AS variant_group, %s AS in_stock, %s AS title, '
		'CASE WHEN @extschema@._plausible_price(%s) THEN %s END AS unit_size, %s AS unit_name FROM %s AS s',
		c.tenant_id, c.product_id, c.price, c.price, c.category, c.variant_group, c.in_stock, c.title,
		c.unit_size, c.unit_size, c.unit_name, s.relation);
	COMMENT ON VIEW @extschema@.catalog IS
		'the registered catalog under canonical names, created by upsell.register_products(); implausible prices and unit sizes read as NULL (see upsell.bad_source_rows())';
END
$$;

-- The source rows the models skip or read in part, with their problem.
CREATE FUNCTION @extschema@.bad_source_rows(tenant_ids bigint[] DEFAULT NULL)
RETURNS TABLE (tenant_id bigint, source text, id text, problem text, value text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o @extschema@.order_source;
	p @extschema@.product_source;
	c record;
	parts text[] := '{}';
BEGIN
	SELECT * INTO o FROM @extschema@.order_source;
	IF FOUND THEN
		PERFORM @extschema@._check_relation(o.relation, 'order lines');
		c := @extschema@._order_line_columns(o);
		parts := parts || format($q$
			SELECT %1$s AS tenant_id, 'order lines' AS source,
				   coalesce(%2$s, 'NULL') || '/' || coalesce((%3$s)::text, 'NULL') AS id,
				   CASE WHEN %4$s IS NULL THEN 'NULL order id' WHEN %3$s IS NULL THEN 'NULL product id'
						WHEN NOT @extschema@._plausible_quantity(%5$s) THEN 'implausible quantity (line skipped)'
						WHEN NOT @extschema@._plausible_price(%6$s) THEN 'implausible unit price (read as unknown)'
				   END AS problem,
				   'quantity ' || coalesce((%5$s)::text, 'NULL') || ', unit price ' || coalesce((%6$s)::text, 'NULL') AS value
			FROM %7$s AS s$q$,
			c.tenant_id, c.order_id, c.product_id, c.order_key, c.quantity, c.unit_price, o.relation);
	END IF;
	SELECT * INTO p FROM @extschema@.product_source;
	IF FOUND THEN
		PERFORM @extschema@._check_relation(p.relation, 'catalog');
		c := @extschema@._catalog_columns(p);
		parts := parts || format($q$
			SELECT %1$s, 'catalog', coalesce((%2$s)::text, 'NULL'),
				   CASE WHEN %2$s IS NULL THEN 'NULL product id'
						WHEN NOT @extschema@._plausible_price(%3$s) THEN 'implausible price (read as unknown)'
						WHEN NOT @extschema@._plausible_price(%4$s) THEN 'implausible unit size (read as unknown)'
				   END,
				   'price ' || coalesce((%3$s)::text, 'NULL') || ', unit size ' || coalesce((%4$s)::text, 'NULL')
			FROM %5$s AS s$q$,
			c.tenant_id, c.product_id, c.price, c.unit_size, p.relation);
	END IF;
	IF cardinality(parts) = 0 THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format(
		'SELECT x.* FROM (%s) x WHERE x.problem IS NOT NULL AND ($1 IS NULL OR x.tenant_id = ANY ($1))',
		array_to_string(parts, ' UNION ALL '))
	USING tenant_ids;
END
$$;
COMMENT ON FUNCTION @extschema@.bad_source_rows(bigint[]) IS
	'the registered order lines and catalog rows (of the given tenants, or all) that the models skip or read in part: NULL ids, implausible quantities (NaN, infinite, |q| >= 1e9: line skipped), implausible prices and unit sizes (NaN, infinite, negative, >= 1e12: read as unknown); a full refresh counts them into upsell.refresh_log';

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
-- Carts (and orders) passed to the serving functions are bounded: a longer
-- one is refused rather than served slowly.
CREATE FUNCTION @extschema@._check_cart_length(cart bigint[])
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	max_lines int := coalesce(nullif(current_setting('upsell.max_cart_lines', true), '')::int, 500);
BEGIN
	IF cardinality(cart) > max_lines THEN
		RAISE EXCEPTION 'the cart has % lines, more than upsell.max_cart_lines (%)', cardinality(cart), max_lines
			USING ERRCODE = 'program_limit_exceeded';
	END IF;
END
$$;

CREATE FUNCTION @extschema@._tenant(tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	per_tenant boolean;
	bound text := current_setting('upsell.tenant_id', true);
BEGIN
	-- a session bound to a tenant (SET upsell.tenant_id) serves only that one
	IF bound IS NOT NULL AND bound <> '' THEN
		IF tenant_id IS NOT NULL AND tenant_id <> bound::bigint THEN
			RAISE EXCEPTION 'tenant_id % given, but the session is bound to tenant %', tenant_id, bound
				USING ERRCODE = 'insufficient_privilege',
					  HINT = 'RESET upsell.tenant_id, or SET it to the tenant to serve.';
		END IF;
		tenant_id := bound::bigint;
	END IF;
	SELECT s.tenant_id IS NOT NULL INTO per_tenant FROM @extschema@.order_source s;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no order lines are registered'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Call upsell.register_orders() first.';
	END IF;
	IF per_tenant AND tenant_id IS NULL THEN
		RAISE EXCEPTION 'tenant_id is required: order lines are registered per tenant'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass tenant_id, or bind the session: SET upsell.tenant_id = ...';
	END IF;
	IF NOT per_tenant AND tenant_id IS DISTINCT FROM NULL AND tenant_id <> 0 THEN
		RAISE EXCEPTION 'tenant_id % given, but order lines are registered without a tenant column', tenant_id
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL, or register the orders with tenant_id => ''column''.';
	END IF;
	RETURN coalesce(tenant_id, 0);
END
$$;
