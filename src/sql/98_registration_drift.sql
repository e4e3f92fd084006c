
-- ===========================================================================
-- Registration drift: a registered column renamed, dropped or retyped
-- ===========================================================================
--
-- The registrations name the shop's columns.  A column renamed, dropped or
-- retyped afterwards leaves a registration that no longer matches its
-- table: refresh checks every registration first, and the serving path
-- checks them whenever its cache is read anew -- which an ALTER TABLE of a
-- registered table forces (the event trigger below draws a new
-- config_version).  The error names the registration and the column.

CREATE FUNCTION @extschema@._check_registrations()
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	msg text;
	state text;
BEGIN
	FOR r IN
		-- a Shopify registration names document fields, not columns, for
		-- the roles: only its payload and tenant (and collection) columns
		SELECT CASE s.kind WHEN 'shopify' THEN 'register_shopify_orders' ELSE 'register_orders' END AS registration,
			   'order lines' AS what, s.relation, c.role, c.col
		FROM @extschema@.order_source s,
			 LATERAL (VALUES ('order_id', s.order_id), ('product_id', s.product_id),
							 ('customer_id', s.customer_id), ('ordered_at', s.ordered_at),
							 ('quantity', s.quantity), ('unit_price', s.unit_price),
							 ('tenant_id', s.tenant_id), ('payload', s.payload)) c(role, col)
		WHERE s.kind = 'columns' OR c.role IN ('tenant_id', 'payload')
		UNION ALL
		SELECT CASE s.kind WHEN 'shopify' THEN 'register_shopify_products' ELSE 'register_products' END,
			   'catalog', s.relation, c.role, c.col
		FROM @extschema@.product_source s,
			 LATERAL (VALUES ('product_id', s.product_id), ('price', s.price), ('category', s.category),
							 ('variant_group', s.variant_group), ('in_stock', s.in_stock), ('title', s.title),
							 ('tenant_id', s.tenant_id), ('unit_size', s.unit_size),
							 ('unit_name', s.unit_name), ('payload', s.payload),
							 ('collection', s.collection)) c(role, col)
		WHERE s.kind = 'columns' OR c.role IN ('tenant_id', 'payload', 'collection')
		UNION ALL
		SELECT 'register_carts', 'carts', s.relation, c.role, c.col
		FROM @extschema@.cart_source s,
			 LATERAL (VALUES ('cart_id', s.cart_id), ('customer_id', s.customer_id),
							 ('product_id', s.product_id), ('quantity', s.quantity), ('added_at', s.added_at),
							 ('checked_out_at', s.checked_out_at), ('tenant_id', s.tenant_id)) c(role, col)
	LOOP
		CONTINUE WHEN r.col IS NULL;
		BEGIN
			PERFORM @extschema@._check_relation(r.relation, r.what);
			IF r.role = 'payload' THEN
				PERFORM @extschema@._shopify_payload(r.relation, r.col);
			ELSE
				PERFORM @extschema@._column_expr(r.relation, r.col, r.role);
			END IF;
		EXCEPTION WHEN undefined_table OR undefined_column OR datatype_mismatch THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
			RAISE EXCEPTION 'registration upsell.%() no longer matches its table: the % column "%": %',
				r.registration, r.role, r.col, msg
				USING ERRCODE = state,
					  HINT = format('Call upsell.%s() again with the table''s current columns.', r.registration);
		END;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@._check_registrations() IS
	'internal: raises, naming the registration and the column, when a registered column was renamed, dropped or retyped';

-- An ALTER TABLE of a registered table: the serving caches are read anew
-- (and check the registrations).  It runs for every ALTER TABLE of the
-- database, by any role: it never fails the statement.
CREATE FUNCTION @extschema@._registered_table_altered()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() c
			   WHERE c.objid IN (SELECT s.relation FROM @extschema@.order_source s
								 UNION ALL SELECT s.relation FROM @extschema@.product_source s
								 UNION ALL SELECT s.relation FROM @extschema@.cart_source s)) THEN
		UPDATE @extschema@.serving_state SET config_version = nextval('@extschema@.config_version_seq');
	END IF;
EXCEPTION WHEN insufficient_privilege THEN
	-- a role that may not read the registrations altered a table of its own
	NULL;
END
$$;

CREATE EVENT TRIGGER upsell_registered_table_altered ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION @extschema@._registered_table_altered();
