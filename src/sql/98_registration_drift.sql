
-- ===========================================================================
-- Registration drift: a registered column renamed, dropped or retyped
-- ===========================================================================
--
-- The registrations name the shop's columns.  A column renamed, dropped or
-- retyped afterwards leaves a registration that no longer matches its
-- table: refresh checks every registration first, and fails with an error
-- that names the registration and the column, before any build, so the
-- models of the last refresh keep serving (the stages read the models, not
-- the shop's tables, and do not check: until 1.6 they did, with an event
-- trigger on ALTER TABLE telling their caches to, and one migration of the
-- shop's table failed every page).

-- The columns the registrations map, one row each: which registration
-- (its function's name), what it registers, the relation, the column's role
-- and name, and how it is checked (check_as: 'column', a column that must
-- exist with a type of its role, as _column_expr requires).  Only the
-- columns a registration actually maps are listed: a kind of registration
-- that reads some fields from elsewhere (a document column, say) lists just
-- the columns it reads, with its own check_as.
CREATE FUNCTION @extschema@._registered_columns()
RETURNS TABLE (registration text, what text, relation oid, role text, col text, check_as text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	-- a Shopify registration's roles name document fields, not columns: it
	-- maps its payload column (json or jsonb), its tenant column and the
	-- products' collection column
	SELECT CASE s.kind WHEN 'shopify' THEN 'register_shopify_orders' ELSE 'register_orders' END,
		   'order lines', s.relation, c.role, c.col, CASE c.role WHEN 'payload' THEN 'payload' ELSE 'column' END
	FROM @extschema@.order_source s,
		 LATERAL (VALUES ('order_id', s.order_id), ('product_id', s.product_id),
						 ('customer_id', s.customer_id), ('ordered_at', s.ordered_at),
						 ('quantity', s.quantity), ('unit_price', s.unit_price),
						 ('tenant_id', s.tenant_id), ('payload', s.payload)) c(role, col)
	WHERE c.col IS NOT NULL AND (s.kind = 'columns' OR c.role IN ('tenant_id', 'payload'))
	UNION ALL
	SELECT CASE s.kind WHEN 'shopify' THEN 'register_shopify_products' ELSE 'register_products' END,
		   'catalog', s.relation, c.role, c.col, CASE c.role WHEN 'payload' THEN 'payload' ELSE 'column' END
	FROM @extschema@.product_source s,
		 LATERAL (VALUES ('product_id', s.product_id), ('price', s.price), ('category', s.category),
						 ('variant_group', s.variant_group), ('in_stock', s.in_stock), ('title', s.title),
						 ('tenant_id', s.tenant_id), ('unit_size', s.unit_size),
						 ('unit_name', s.unit_name), ('payload', s.payload),
						 ('collection', s.collection)) c(role, col)
	WHERE c.col IS NOT NULL AND (s.kind = 'columns' OR c.role IN ('tenant_id', 'payload', 'collection'))
	UNION ALL
	SELECT 'register_carts', 'carts', s.relation, c.role, c.col, 'column'
	FROM @extschema@.cart_source s,
		 LATERAL (VALUES ('cart_id', s.cart_id), ('customer_id', s.customer_id),
						 ('product_id', s.product_id), ('quantity', s.quantity), ('added_at', s.added_at),
						 ('checked_out_at', s.checked_out_at), ('tenant_id', s.tenant_id)) c(role, col)
	WHERE c.col IS NOT NULL
$$;
COMMENT ON FUNCTION @extschema@._registered_columns() IS
	'internal: the columns the registrations map (registration, relation, role, column, how it is checked)';

-- The registered relations, one row each: what they register (as
-- _registered_columns names it), the relation and when it was registered.
-- The name a relation had when it was registered is kept from refresh to
-- refresh in source_state.registration (registered_as, _build_source_state)
-- until it is registered again, so that every refresh can say when that
-- name is another relation's now (_refresh_check_sources).
CREATE FUNCTION @extschema@._registered_relations()
RETURNS TABLE (what text, relation oid, registered_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'order lines', s.relation, s.registered_at FROM @extschema@.order_source s
	UNION ALL
	SELECT 'catalog', s.relation, s.registered_at FROM @extschema@.product_source s
	UNION ALL
	SELECT 'carts', s.relation, s.registered_at FROM @extschema@.cart_source s
$$;
COMMENT ON FUNCTION @extschema@._registered_relations() IS
	'internal: the registered relations (what they register, relation, when registered)';

-- (PARALLEL UNSAFE: it catches errors in subtransactions, which a parallel
-- query refuses)
CREATE FUNCTION @extschema@._check_registrations()
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	msg text;
	state text;
	registration text;
BEGIN
	FOR r IN SELECT * FROM @extschema@._registered_columns() LOOP
		BEGIN
			PERFORM @extschema@._check_relation(r.relation, r.what);
			IF r.check_as = 'column' THEN
				PERFORM @extschema@._column_expr(r.relation, r.col, r.role);
			ELSIF r.check_as = 'payload' THEN
				PERFORM @extschema@._shopify_payload(r.relation, r.col);
			ELSE
				RAISE EXCEPTION 'unknown check % of registration upsell.%()', r.check_as, r.registration
					USING ERRCODE = 'internal_error';
			END IF;
		EXCEPTION WHEN undefined_table OR undefined_column OR datatype_mismatch THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
			RAISE EXCEPTION 'registration upsell.%() no longer matches its table: the % column "%": %',
				r.registration, r.role, r.col, msg
				USING ERRCODE = state,
					  HINT = format('Call upsell.%s() again with the table''s current columns.', r.registration);
		END;
	END LOOP;
	-- A view reads a column by its position, not its name: a registered
	-- column renamed away and another added under its name left the view on
	-- the old one, which the names above do not show (until 1.8 refresh then
	-- built every model from the old column, and logged ok).  Every column
	-- a view of the extension reads of a registered table must be one the
	-- registrations name.
	SELECT format('the view %s reads column "%s" of %s, which no registration names',
				  w.ev_class::regclass, a.attname, d.refobjid::regclass),
		   (SELECT rc.registration FROM @extschema@._registered_columns() rc
			WHERE rc.relation = d.refobjid LIMIT 1)
	INTO msg, registration
	FROM pg_depend d
	JOIN pg_rewrite w ON w.oid = d.objid
	JOIN pg_class v ON v.oid = w.ev_class
	JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
	WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
	  AND d.refobjsubid > 0
	  AND v.relnamespace = '@extschema@'::regnamespace
	  AND d.refobjid IN (SELECT rc.relation FROM @extschema@._registered_columns() rc)
	  AND a.attname NOT IN (SELECT rc.col FROM @extschema@._registered_columns() rc WHERE rc.relation = d.refobjid)
	ORDER BY w.ev_class::regclass::text, a.attnum
	LIMIT 1;
	IF msg IS NOT NULL THEN
		RAISE EXCEPTION 'registration upsell.%() no longer matches its table: %', registration, msg
			USING ERRCODE = 'undefined_column',
				  DETAIL = 'A registered column renamed and another added under its name leaves the view on the renamed one.',
				  HINT = format('Call upsell.%s() again with the table''s current columns.', registration);
	END IF;
END
$$;
COMMENT ON FUNCTION @extschema@._check_registrations() IS
	'internal: raises, naming the registration and the column, when a registered column was renamed, dropped or retyped, or a view of the registrations reads a column no registration names';

