
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
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- 1.1: 'columns' (one row per line, register_orders) or 'shopify' (one
	-- order document per row in column payload, register_shopify_orders)
	kind		text NOT NULL DEFAULT 'columns',
	payload		name,
	-- 1.6: the TimeZone of the session that registered the lines: an
	-- ordered_at of type date or timestamp is a time of that zone, for
	-- every reader of upsell.order_lines (_local_time)
	time_zone	text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone'),
	CONSTRAINT order_source_kind CHECK (kind IN ('columns', 'shopify') AND (kind = 'shopify') = (payload IS NOT NULL))
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_source', '');
COMMENT ON TABLE @extschema@.order_source IS
	'the registered order lines: relation and the columns that mean order, product, customer, time, quantity, price, tenant; for kind shopify the payload column and the document fields each role comes from; time_zone: the TimeZone of the session that registered them (an ordered_at of type date or timestamp is a time of that zone, whoever reads it)';

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
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- 1.1: 'columns' (register_products) or 'shopify' (one product document
	-- per row in column payload; collection: a column naming its category)
	kind		text NOT NULL DEFAULT 'columns',
	payload		name,
	collection	name,
	CONSTRAINT product_source_kind CHECK (kind IN ('columns', 'shopify') AND (kind = 'shopify') = (payload IS NOT NULL)
										 AND (kind = 'shopify' OR collection IS NULL))
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.product_source', '');
COMMENT ON TABLE @extschema@.product_source IS
	'the registered catalog: relation and the columns that mean product, price, category, variant group, stock, title, tenant, unit size; for kind shopify the payload column, the collection column and the document fields each role comes from';

-- The views upsell.order_lines and upsell.catalog are created by the register
-- functions, not by this script: they depend on the shop's tables, and as
-- members of the extension a DROP ... CASCADE of a shop table would drop the
-- whole extension.  As ordinary views in the extension's schema pg_dump keeps
-- them, and refresh re-creates them from the config tables anyway.
--
--   upsell.order_lines (tenant_id bigint, order_key bigint, order_id text,
--                       product_id bigint, customer_id bigint,
--                       ordered_at timestamptz, quantity numeric, unit_price numeric,
--                       row_xmin xid, sold boolean)
--   upsell.catalog     (tenant_id bigint, product_id bigint, price numeric,
--                       category text, variant_group text, in_stock boolean,
--                       title text, unit_size numeric, unit_name text)
--
-- tenant_id is 0 without a tenant column; order_key is the order id, or
-- upsell.order_key() of it when it is not an integer; quantity is 1 and
-- in_stock true when those columns are not registered; row_xmin is the
-- row's xmin when the relation is a table (incremental refresh compares it
-- with the snapshot of the last refresh), NULL for a view; sold is true
-- unless the quantity is 0 or less (a return).

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
	base regtype;
BEGIN
	SELECT a.atttypid::regtype INTO t
	FROM pg_attribute a
	WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF FOUND THEN
		-- a domain is read as the type it constrains (its CHECK does not
		-- change what the column holds), through domains of domains
		LOOP
			SELECT ty.typbasetype INTO base FROM pg_type ty WHERE ty.oid = t AND ty.typtype = 'd';
			EXIT WHEN NOT FOUND;
			t := base;
		END LOOP;
		RETURN t;
	END IF;
	RAISE EXCEPTION 'column "%" of relation % does not exist', col, relation
		USING ERRCODE = 'undefined_column',
			  DETAIL = format('It was given as the %s column.', role),
			  HINT = format('The columns of %s are: %s.', relation,
					 (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
					  FROM pg_attribute
					  WHERE attrelid = relation AND attnum > 0 AND NOT attisdropped));
END
$$;

-- A date or timestamp column of the shop's names a day or a time without
-- saying where: the views read it as a local time of the zone the
-- registration recorded (order_source.time_zone, cart_source.time_zone), so
-- that every reader -- a refresh from pg_cron in the server's zone, an
-- analyst's psql in hers, the app -- sees the same instants (a cast to
-- timestamptz converts in the reader's zone).  timezone(zone, ts), but with
-- the zone looked up once per query, not per line (src/local_time.c).
CREATE FUNCTION @extschema@._local_time(ts timestamp, zone text)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'upsell_local_time'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._local_time(timestamp, text) IS
	'internal: the timestamptz of a local time of a zone (timezone(zone, ts)); the views over the shop''s tables read its date and timestamp columns so';

-- ts + span counted on the clock of a zone, as timestamptz + interval counts
-- in the session's TimeZone (PostgreSQL 16's date_add(ts, span, zone)):
-- months and days by the zone's calendar (a day across a change of daylight
-- saving time is 23 or 25 hours), hours and less as elapsed time.  Windows
-- of the shop's zone (_shop_zone) then end at the same instant whoever
-- reads them.
CREATE FUNCTION @extschema@._zone_add(ts timestamptz, span interval, zone text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN @extschema@._local_time(pg_catalog.timezone(zone, ts) OPERATOR(pg_catalog.+) pg_catalog.date_trunc('day', span), zone)
	OPERATOR(pg_catalog.+) (span OPERATOR(pg_catalog.-) pg_catalog.date_trunc('day', span));

-- The canonical expression for one column, by the role it plays and its
-- type; a date or timestamp is a time of time_zone (the registration's;
-- NULL: the reader's, for a check of the column alone).
CREATE FUNCTION @extschema@._column_expr(relation regclass, col name, role text, time_zone text DEFAULT NULL)
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
			-- an infinite time is a placeholder, not a moment: read as
			-- unknown, as none (one order at 'infinity' would end the
			-- window of recent orders there; bad_source_rows lists it); so
			-- is a time outside the years 1900 to 2199 (_plausible_time).
			-- But a cart checked out at such a time is checked out: its
			-- time reads as -infinity, unknown and long past, not as none,
			-- which is a cart still open (a typo of 2204 for 2024 made a
			-- bought cart a win-back mail)
			IF time_zone IS NOT NULL AND t IN ('timestamp without time zone'::regtype, 'date'::regtype) THEN
				RETURN format('CASE WHEN @extschema@._plausible_time(%1$s) THEN @extschema@._local_time(%1$s::timestamp, %2$L)%3$s END',
							  c, time_zone,
							  CASE WHEN role = 'checked_out_at'
								   THEN format(' WHEN %s IS NOT NULL THEN ''-infinity''::timestamptz', c) ELSE '' END);
			END IF;
			IF t IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) THEN
				RETURN format('CASE WHEN @extschema@._plausible_time(%1$s) THEN %1$s::timestamptz%2$s END', c,
							  CASE WHEN role = 'checked_out_at'
								   THEN format(' WHEN %s IS NOT NULL THEN ''-infinity''::timestamptz', c) ELSE '' END);
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

-- Plausible order and cart times: from 1900 to the end of 2199, of a date,
-- timestamp or timestamptz column (compared in its own type: a timestamp
-- of the year 294276 has no timestamptz).  A line dated 2204 for 2024 ended
-- the window of recent orders there, leaving one order on the post-purchase
-- view, and one near the end of the range overflowed the next due date of
-- its customer, failing replenishment_due for the whole shop (until 1.8).
-- Read as unknown, as an infinite time is.  (Polymorphic, so parsed where
-- it is inlined, in the column's type; fully qualified.)
CREATE FUNCTION @extschema@._plausible_time(t anyelement)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT t OPERATOR(pg_catalog.>=) '1900-01-01' AND t OPERATOR(pg_catalog.<) '2200-01-01' $$;

-- Plausible amounts.  A NaN, an infinity, a negative price or an absurd
-- value (a typo, a unit mix-up, a test row) is never a real purchase: the
-- views below leave it out -- a line with such a quantity is skipped, such
-- a price is read as unknown -- and upsell.bad_source_rows() lists it with
-- its problem, so refresh counts and names them instead of failing (a 1e100
-- price would overflow the integer cents of the threshold model).  NaN
-- compares above every number, so the upper bounds catch it.
--
-- The views test every line with them, so they must be inlined: a SQL
-- function with SET search_path is called through the function manager
-- with a GUC save and restore per row, which made reading 10M lines
-- through upsell.order_lines take 18 s instead of 2 s.  Their bodies are
-- SQL-standard (parsed, and their operators bound by oid, when created), so
-- no caller's search_path reaches them, pinned or not; the operators are
-- qualified all the same.  The quantity is bounded by its absolute value,
-- not by two comparisons: the planner reads "x > a AND x < b" on an
-- expression without statistics as a narrow range (0.5% of the rows).
CREATE FUNCTION @extschema@._plausible_quantity(quantity numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN quantity IS NULL OR pg_catalog.abs(quantity) OPERATOR(pg_catalog.<) 1e9;

-- The WHERE clause of upsell.order_lines over relation s: lines with an
-- implausible quantity are left out.  The rule is _plausible_quantity's; a
-- quantity column of an integer type is bounded as an integer (its absolute
-- value taken as bigint, which no integer or smallint overflows): the
-- numeric cast and abs() of every line were 0.8 s of the 2 s it takes to
-- read 10M lines through the view, and every refresh reads them four or
-- five times.  A bigint column keeps the numeric rule (abs() of its
-- smallest value overflows bigint).
CREATE FUNCTION @extschema@._quantity_filter(rel regclass, col name, expr text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN col IS NOT NULL
			 AND @extschema@._column_type(rel, col, 'quantity') IN ('smallint'::regtype, 'integer'::regtype)
			THEN format(' WHERE s.%1$I IS NULL OR pg_catalog.abs(s.%1$I::pg_catalog.int8) OPERATOR(pg_catalog.<) 1000000000', col)
			ELSE format(' WHERE @extschema@._plausible_quantity(%s)', expr) END;

-- The expression of order_lines.sold over relation s: the line sells (a
-- quantity above 0, or none: read as 1), not a return or a zero line.  The
-- builders that read every line for what sold (the upgrade lists, the
-- bundles) test it rather than the numeric quantity: an integer column is
-- compared as it is stored, and the numeric cast and comparison of every
-- line were 0.5 s of the 1.8 s it takes to read 10M lines through the view.
CREATE FUNCTION @extschema@._line_sold(rel regclass, col name, expr text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN col IS NOT NULL
			 AND @extschema@._column_type(rel, col, 'quantity') IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
			THEN format('coalesce(s.%I OPERATOR(pg_catalog.>) 0, true)', col)
			ELSE format('coalesce((%s) OPERATOR(pg_catalog.>) 0, true)', expr) END;

CREATE FUNCTION @extschema@._plausible_price(price numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN price IS NULL
	OR (price OPERATOR(pg_catalog.>=) 0 AND price OPERATOR(pg_catalog.<) 1e12);

-- The registrations and the views they make, one row each: the view over
-- the shop's relation, the config table that registers it, what it is
-- called in messages, and the function that registers it by columns.
CREATE FUNCTION @extschema@._registration(view text,
	OUT source name, OUT what text, OUT register text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	CASE view
		WHEN 'order_lines' THEN source := 'order_source'; what := 'order lines'; register := 'register_orders';
		WHEN 'catalog' THEN source := 'product_source'; what := 'catalog'; register := 'register_products';
		WHEN 'carts' THEN source := 'cart_source'; what := 'carts'; register := 'register_carts';
		ELSE RAISE EXCEPTION 'no view "%" is made from a registration', view
			USING ERRCODE = 'invalid_parameter_value';
	END CASE;
END
$$;

-- The canonical columns of the views over the shop's relations, in order:
-- the config column that names the shop's column, the role that decides its
-- expression (_column_expr), and the expression when none is registered.
CREATE FUNCTION @extschema@._view_columns(view text)
RETURNS TABLE (ord int, name text, source text, role text, fallback text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT v.ord, v.name, v.source, v.role, v.fallback
	FROM (VALUES
		('order_lines', 1, 'tenant_id', 'tenant_id', 'tenant_id', '0::bigint'),
		('order_lines', 2, 'order_key', 'order_id', 'order_id', NULL),
		('order_lines', 3, 'order_id', 'order_id', 'order label', NULL),
		('order_lines', 4, 'product_id', 'product_id', 'product_id', NULL),
		('order_lines', 5, 'customer_id', 'customer_id', 'customer_id', 'NULL::bigint'),
		('order_lines', 6, 'ordered_at', 'ordered_at', 'ordered_at', 'NULL::timestamptz'),
		('order_lines', 7, 'quantity', 'quantity', 'quantity', '1::numeric'),
		('order_lines', 8, 'unit_price', 'unit_price', 'unit_price', 'NULL::numeric'),
		('catalog', 1, 'tenant_id', 'tenant_id', 'tenant_id', '0::bigint'),
		('catalog', 2, 'product_id', 'product_id', 'product_id', NULL),
		('catalog', 3, 'price', 'price', 'price', 'NULL::numeric'),
		('catalog', 4, 'category', 'category', 'category', 'NULL::text'),
		('catalog', 5, 'variant_group', 'variant_group', 'variant_group', 'NULL::text'),
		('catalog', 6, 'in_stock', 'in_stock', 'in_stock', 'true'),
		('catalog', 7, 'title', 'title', 'title', 'NULL::text'),
		('catalog', 8, 'unit_size', 'unit_size', 'unit_size', 'NULL::numeric'),
		('catalog', 9, 'unit_name', 'unit_name', 'unit_name', 'NULL::text'),
		('carts', 1, 'tenant_id', 'tenant_id', 'tenant_id', '0::bigint'),
		('carts', 2, 'cart_id', 'cart_id', 'cart_id', NULL),
		('carts', 3, 'customer_id', 'customer_id', 'customer_id', 'NULL::bigint'),
		('carts', 4, 'product_id', 'product_id', 'product_id', NULL),
		('carts', 5, 'quantity', 'quantity', 'quantity', '1::numeric'),
		('carts', 6, 'added_at', 'added_at', 'added_at', NULL),
		('carts', 7, 'checked_out_at', 'checked_out_at', 'checked_out_at', 'NULL::timestamptz'))
		AS v(view, ord, name, source, role, fallback)
	WHERE v.view = _view_columns.view
	ORDER BY v.ord;
END;

-- The expression of order_lines.row_xmin over the relation aliased s: the
-- commit order of its rows, for incremental refresh (21_incremental.sql).
-- A view has none, and neither has a Citus distributed table: its rows'
-- xmin are the shards' own transaction ids, which the coordinator's
-- snapshot cannot judge (lines were taken as not yet committed).
CREATE FUNCTION @extschema@._row_xmin(rel regclass)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	distributed boolean := false;
BEGIN
	IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
		-- Citus's catalog, read only when Citus is installed
		EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1)'
			INTO distributed USING rel;
	END IF;
	RETURN CASE WHEN NOT distributed AND (SELECT r.relkind FROM pg_class r WHERE r.oid = rel) IN ('r', 'p', 'm')
				THEN 's.xmin' ELSE 'NULL::xid' END;
END
$$;

-- The canonical expression of each column of a registration by columns
-- (cfg: its config row as jsonb), over the relation aliased s: for the view
-- and for bad_source_rows().
CREATE FUNCTION @extschema@._view_exprs(view text, rel regclass, cfg jsonb)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT jsonb_object_agg(c.name, CASE WHEN cfg ->> c.source IS NULL THEN c.fallback
										 ELSE @extschema@._column_expr(rel, (cfg ->> c.source)::name, c.role, cfg ->> 'time_zone') END)
	FROM @extschema@._view_columns(view) c;
END;

-- (Re)creates one view over the shop's relations -- upsell.order_lines,
-- upsell.catalog or upsell.carts -- from its registration (order_source,
-- product_source, cart_source).  The one place these views are made: a
-- registration of kind 'columns' maps the shop's columns one by one
-- (_view_exprs), one of kind 'shopify' reads JSON documents through the
-- views of 15_shopify.sql (_shopify_views).  Implausible amounts (NaN,
-- infinite, negative or absurd: a typo, a test row) never reach a model:
-- such an order line is left out, such a price read as unknown, and
-- bad_source_rows() names them for refresh to count.  Registration is an
-- administrator's act: CREATE OR REPLACE VIEW waits for the readers of the
-- old definition.
CREATE FUNCTION @extschema@._sync_view(view text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record := @extschema@._registration(view);
	rel regclass;
	cfg jsonb;
	e jsonb;
	v record;
	cols text;
BEGIN
	EXECUTE format('SELECT s.relation, pg_catalog.to_jsonb(s) FROM @extschema@.%I s', r.source) INTO rel, cfg;
	IF cfg IS NULL THEN
		RETURN;
	END IF;
	PERFORM @extschema@._check_relation(rel, r.what);
	IF coalesce(cfg ->> 'kind', 'columns') = 'columns' THEN
		e := @extschema@._view_exprs(view, rel, cfg);
		SELECT string_agg(CASE WHEN c.name IN ('unit_price', 'price', 'unit_size')
							   THEN format('CASE WHEN @extschema@._plausible_price(%s) THEN %s END', e ->> c.name, e ->> c.name)
							   ELSE e ->> c.name END || ' AS ' || quote_ident(c.name), ', ' ORDER BY c.ord)
		INTO cols
		FROM @extschema@._view_columns(view) c;
		IF view = 'order_lines' THEN
			cols := cols || ', ' || @extschema@._row_xmin(rel) || ' AS row_xmin, '
				|| @extschema@._line_sold(rel, (cfg ->> 'quantity')::name, e ->> 'quantity') || ' AS sold';
		END IF;
		EXECUTE format('CREATE OR REPLACE VIEW @extschema@.%I AS SELECT %s FROM %s AS s%s', view, cols, rel,
					   CASE WHEN view = 'order_lines'
							THEN @extschema@._quantity_filter(rel, (cfg ->> 'quantity')::name, e ->> 'quantity')
							ELSE '' END);
		EXECUTE format('COMMENT ON VIEW @extschema@.%I IS %L', view,
					   format('the registered %s under canonical names, created by upsell.%s()', r.what, r.register)
					   || CASE view WHEN 'order_lines' THEN '; lines with an implausible quantity are left out, implausible unit prices read as NULL (see upsell.bad_source_rows())'
									WHEN 'catalog' THEN '; implausible prices and unit sizes read as NULL (see upsell.bad_source_rows())'
									ELSE '' END);
		-- the JSON views of a previous Shopify registration go with it
		IF to_regclass(CASE view WHEN 'order_lines' THEN '@extschema@.shopify_order_lines'
								 WHEN 'catalog' THEN '@extschema@.shopify_variants' END) IS NOT NULL THEN
			EXECUTE format('DROP VIEW @extschema@.%I',
						   CASE view WHEN 'order_lines' THEN 'shopify_order_lines' ELSE 'shopify_variants' END);
		END IF;
	ELSE
		FOR v IN SELECT * FROM @extschema@._shopify_views(view, rel, cfg) LOOP
			EXECUTE format('CREATE OR REPLACE VIEW @extschema@.%I AS %s', v.name, v.body);
			EXECUTE format('COMMENT ON VIEW @extschema@.%I IS %L', v.name, v.comment);
		END LOOP;
	END IF;
END
$$;

-- The source rows the models skip or read in part, with their problem.
CREATE FUNCTION @extschema@.bad_source_rows(tenant_ids bigint[] DEFAULT NULL)
RETURNS TABLE (tenant_id bigint, source text, id text, problem text, value text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	view text;
	r record;
	rel regclass;
	cfg jsonb;
	e jsonb;
	parts text[] := '{}';
	bound bigint := @extschema@._bound_tenant(NULL);
	t bigint;
BEGIN
	-- a session bound to a tenant reads its rows only, as every function
	IF bound IS NOT NULL THEN
		FOREACH t IN ARRAY coalesce(tenant_ids, '{}') LOOP
			PERFORM @extschema@._bound_tenant(t);
		END LOOP;
		tenant_ids := ARRAY[bound];
	END IF;
	FOREACH view IN ARRAY ARRAY['order_lines', 'catalog'] LOOP
		r := @extschema@._registration(view);
		EXECUTE format('SELECT s.relation, pg_catalog.to_jsonb(s) FROM @extschema@.%I s', r.source) INTO rel, cfg;
		CONTINUE WHEN cfg IS NULL;
		PERFORM @extschema@._check_relation(rel, r.what);
		IF cfg ->> 'kind' = 'shopify' THEN
			-- the documents, line items and variants a Shopify registration
			-- skips, with the reason (15_shopify.sql), and implausible prices
			IF to_regclass(CASE view WHEN 'order_lines' THEN '@extschema@.shopify_order_lines'
									 ELSE '@extschema@.shopify_variants' END) IS NULL THEN
				PERFORM @extschema@._sync_view(view);
			END IF;
			parts := parts || CASE view
				WHEN 'order_lines' THEN
					$q$SELECT l.tenant_id, 'order lines' AS source,
							  pg_catalog.concat(coalesce(l.order_id, 'NULL'), '/', coalesce(l.product_id::text, 'NULL')) AS id,
							  coalesce(l.skipped, CASE WHEN l.tenant_id IS NULL THEN 'NULL tenant id (line skipped)' END) AS problem,
							  pg_catalog.concat('quantity ', coalesce(l.quantity::text, 'NULL'),
												', unit price ', coalesce(l.unit_price::text, 'NULL')) AS value
					   FROM @extschema@.shopify_order_lines l$q$
				ELSE
					$q$SELECT v.tenant_id, 'catalog', coalesce(coalesce(v.variant_id, v.product_id)::text, 'NULL'),
							  coalesce(v.skipped, CASE WHEN v.tenant_id IS NULL THEN 'NULL tenant id (row skipped)'
													   WHEN NOT @extschema@._plausible_price(v.price)
													   THEN 'implausible price (read as unknown)' END),
							  pg_catalog.concat('price ', coalesce(v.price::text, 'NULL'), ', unit size NULL')
					   FROM @extschema@.shopify_variants v$q$ END;
			CONTINUE;
		END IF;
		e := @extschema@._view_exprs(view, rel, cfg);
		parts := parts || CASE view
			WHEN 'order_lines' THEN format($q$
				SELECT %1$s AS tenant_id, 'order lines' AS source,
					   pg_catalog.concat(coalesce(%2$s, 'NULL'), '/', coalesce((%3$s)::text, 'NULL')) AS id,
					   CASE WHEN %1$s IS NULL THEN 'NULL tenant id (line skipped)'
							WHEN %4$s IS NULL THEN 'NULL order id' WHEN %3$s IS NULL THEN 'NULL product id'
							WHEN NOT @extschema@._plausible_quantity(%5$s) THEN 'implausible quantity (line skipped)'
							WHEN NOT @extschema@._plausible_price(%6$s) THEN 'implausible unit price (read as unknown)'
							WHEN NOT pg_catalog.isfinite(%8$s) THEN 'infinite order time (read as unknown)'
							WHEN NOT @extschema@._plausible_time(%8$s) THEN 'implausible order time (read as unknown)'
					   END AS problem,
					   pg_catalog.concat('quantity ', coalesce((%5$s)::text, 'NULL'),
										 ', unit price ', coalesce((%6$s)::text, 'NULL'),
										 CASE WHEN NOT @extschema@._plausible_time(%8$s) THEN pg_catalog.concat(', ordered at ', %8$s) END) AS value
				FROM %7$s AS s$q$,
				e ->> 'tenant_id', e ->> 'order_id', e ->> 'product_id', e ->> 'order_key', e ->> 'quantity',
				e ->> 'unit_price', rel,
				coalesce('s.' || quote_ident(cfg ->> 'ordered_at'), 'NULL::timestamptz'))
			ELSE format($q$
				SELECT %1$s, 'catalog', coalesce((%2$s)::text, 'NULL'),
					   CASE WHEN %1$s IS NULL THEN 'NULL tenant id (row skipped)'
							WHEN %2$s IS NULL THEN 'NULL product id'
							WHEN NOT @extschema@._plausible_price(%3$s) THEN 'implausible price (read as unknown)'
							WHEN NOT @extschema@._plausible_price(%4$s) THEN 'implausible unit size (read as unknown)'
					   END,
					   pg_catalog.concat('price ', coalesce((%3$s)::text, 'NULL'), ', unit size ', coalesce((%4$s)::text, 'NULL'))
				FROM %5$s AS s$q$,
				e ->> 'tenant_id', e ->> 'product_id', e ->> 'price', e ->> 'unit_size', rel) END;
	END LOOP;
	IF cardinality(parts) = 0 THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format(
		-- (the rows of no tenant are of every call: no refresh reads them;
		-- not of a bound session's, they may be any shop's)
		'SELECT x.* FROM (%s) x WHERE x.problem IS NOT NULL '
		'AND ($1 IS NULL OR (x.tenant_id IS NULL AND NOT $2) OR x.tenant_id OPERATOR(pg_catalog.=) ANY ($1))',
		array_to_string(parts, ' UNION ALL '))
	USING tenant_ids, bound IS NOT NULL;
END
$$;
COMMENT ON FUNCTION @extschema@.bad_source_rows(bigint[]) IS
	'the registered order lines and catalog rows (of the given tenants, or all) that the models skip or read in part: NULL ids (a row without tenant, listed whatever the tenants asked for, is of none), implausible quantities (NaN, infinite, |q| >= 1e9: line skipped), implausible prices and unit sizes (NaN, infinite, negative, >= 1e12: read as unknown), infinite order times and those before 1900 or from 2200 on (read as unknown), and the Shopify documents, line items and variants skipped with their reason (upsell.shopify_skips()); a full refresh counts them into upsell.refresh_log';

-- What the builders read as the catalog: the registered one, or none.
-- (plpgsql: Citus 12.1 cannot run a SQL-standard body that reads a
-- reference table when the function is not inlined)
CREATE FUNCTION @extschema@._catalog_source()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN CASE WHEN EXISTS (SELECT FROM @extschema@.product_source) THEN '@extschema@.catalog'
		ELSE '(SELECT NULL::bigint AS tenant_id, NULL::bigint AS product_id, NULL::numeric AS price, '
			 'NULL::text AS category, NULL::text AS variant_group, NULL::boolean AS in_stock, '
			 'NULL::text AS title, NULL::numeric AS unit_size, NULL::text AS unit_name WHERE false)' END;
END
$$;

-- A tenant's catalog, one row per product, as a subquery: a product listed
-- more than once (a catalog view over a join, a product in two
-- collections) takes its first row in one fixed order -- in stock first,
-- then the highest price, then by title, category, variant group, unit --
-- so every model that reads the catalog (product_model, the upgrade
-- lists, unit_model) describes a product by the same row.
CREATE FUNCTION @extschema@._catalog_products(tenant_id bigint)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN format('(SELECT DISTINCT ON (c.product_id) c.* FROM %s AS c '
			  'WHERE c.tenant_id OPERATOR(pg_catalog.=) %s AND c.product_id IS NOT NULL '
			  'ORDER BY c.product_id, c.in_stock DESC NULLS LAST, c.price DESC NULLS LAST, c.title, '
			  'c.category, c.variant_group, c.unit_size, c.unit_name)',
			  @extschema@._catalog_source(), tenant_id);

-- The one upsert of every registration: the config row of view's
-- registration becomes relation plus roles (config column -> value, the
-- columns not named take their defaults), then the view is made anew, which
-- validates every column: an error rolls the registration back.  required
-- lists the register function's arguments that must not be NULL, as name,
-- value, name, value, ... (for the error that names them).
CREATE FUNCTION @extschema@._register(view text, relation regclass, roles jsonb, required text[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record := @extschema@._registration(view);
	cols record;
	names text[];
BEGIN
	names := ARRAY['relation'] || ARRAY(SELECT required[i] FROM generate_subscripts(required, 1) i
										WHERE i % 2 = 1 ORDER BY i);
	IF relation IS NULL OR EXISTS (SELECT FROM generate_subscripts(required, 1) i
								   WHERE i % 2 = 0 AND required[i] IS NULL) THEN
		RAISE EXCEPTION '% and % must not be NULL',
			array_to_string(names[1:cardinality(names) - 1], ', '), names[cardinality(names)]
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE roles ? a.attname) AS given,
		   string_agg('r.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE roles ? a.attname) AS given_values,
		   string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname <> 'singleton') AS every,
		   string_agg('excluded.' || quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname <> 'singleton') AS excluded
	INTO cols
	FROM pg_attribute a
	WHERE a.attrelid = format('@extschema@.%I', r.source)::regclass AND a.attnum > 0 AND NOT a.attisdropped
	  AND a.attname <> 'relation';
	-- The view first: a refresh reading it holds its lock to the end of the
	-- tenant's transaction.  Until 1.12 that transaction's last step updated
	-- serving_state, whose row the registration's trigger (below) would hold
	-- while it waited for the view: a deadlock (40P01), the refresh's tenant
	-- lost when it was the victim (a refresh now draws model_state's
	-- version).  Waiting for the view first, the registration takes its turn
	-- between two tenants, holding serving_state's row the shortest.  (LOCK
	-- TABLE on a view would lock the shop's tables under it too; resetting an
	-- option the view never has locks the view alone, and the view is made
	-- anew below.)
	IF to_regclass(format('@extschema@.%I', view)) IS NOT NULL THEN
		EXECUTE format('ALTER VIEW @extschema@.%I RESET (security_barrier)', view);
	END IF;
	-- excluded holds the defaults of the columns not given (registered_at: now)
	EXECUTE format(
		'INSERT INTO @extschema@.%1$I AS s (relation, %2$s) SELECT $1, %3$s FROM pg_catalog.jsonb_populate_record(NULL::@extschema@.%1$I, $2) r '
		'ON CONFLICT (singleton) DO UPDATE SET (relation, %4$s) = ROW(excluded.relation, %5$s)',
		r.source, cols.given, cols.given_values, cols.every, cols.excluded)
	USING relation, roles;
	PERFORM @extschema@._sync_view(view);
END
$$;

CREATE FUNCTION @extschema@.register_orders(relation regclass, order_id name, product_id name,
	customer_id name DEFAULT NULL, ordered_at name DEFAULT NULL, quantity name DEFAULT NULL,
	unit_price name DEFAULT NULL, tenant_id name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._register('order_lines', relation, jsonb_build_object(
		'order_id', order_id, 'product_id', product_id, 'customer_id', customer_id, 'ordered_at', ordered_at,
		'quantity', quantity, 'unit_price', unit_price, 'tenant_id', tenant_id),
		ARRAY['order_id', order_id, 'product_id', product_id]);
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
	PERFORM @extschema@._register('catalog', relation, jsonb_build_object(
		'product_id', product_id, 'price', price, 'category', category, 'variant_group', variant_group,
		'in_stock', in_stock, 'title', title, 'tenant_id', tenant_id, 'unit_size', unit_size,
		'unit_name', unit_name), ARRAY['product_id', product_id]);
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

-- How many offers a serving function is asked for: refused when NULL or
-- negative (0 asks for none).
CREATE FUNCTION @extschema@._check_k(k int)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF k IS NULL OR k < 0 THEN
		RAISE EXCEPTION 'k must be a non-negative integer, not %', coalesce(k::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;

-- The tenant the session is bound to (SET upsell.tenant_id), NULL when none;
-- an error when the setting, kept from before the library loaded, is no
-- bigint.  The library's parse of the setting, the one the C functions use
-- (src/upsell.c): SQL parsing it again disagreed at the edges.
CREATE FUNCTION @extschema@._session_tenant()
RETURNS bigint
AS 'MODULE_PATHNAME', 'upsell_session_tenant_sql'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._session_tenant() IS
	'internal: the tenant bound to the session (upsell.tenant_id), NULL when none; raises when the setting is no bigint';

-- The tenant a call names, as the session's binding (SET upsell.tenant_id)
-- allows: the bound tenant when the call names none, an error when it names
-- another; tenant_id as given in a session bound to none.
CREATE FUNCTION @extschema@._bound_tenant(tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bound bigint := @extschema@._session_tenant();
BEGIN
	IF bound IS NULL THEN
		RETURN tenant_id;
	END IF;
	IF tenant_id IS NOT NULL AND tenant_id <> bound THEN
		RAISE EXCEPTION 'tenant_id % given, but the session is bound to tenant %', tenant_id, bound
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'RESET upsell.tenant_id, or SET it to the tenant to serve.';
	END IF;
	RETURN bound;
END
$$;

CREATE FUNCTION @extschema@._tenant(tenant_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	per_tenant boolean;
BEGIN
	-- a session bound to a tenant (SET upsell.tenant_id) serves only that one
	tenant_id := @extschema@._bound_tenant(tenant_id);
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
