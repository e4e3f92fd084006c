
-- ===========================================================================
-- Privileges: the roles upsell_reader and upsell_admin
-- ===========================================================================
--
-- Every function runs with the caller's rights (no SECURITY DEFINER), so
-- table privileges are the whole privilege model.  Two roles carry them;
-- grant them to the roles that log in:
--
--   GRANT upsell_reader TO shop_app;	-- app backends: serve offers
--   GRANT upsell_admin TO shop_ops;	-- merchant rules, the refresh log
--
-- upsell_reader may SELECT the models (every table the serving functions
-- read, order_model's recent orders for post-purchase offers included), the
-- model catalogue and the merchant's rules, and record exposures and events;
-- it may not read order lines (upsell.order_lines, the registered tables),
-- the catalog (upsell.catalog, the registered product table), carts or the
-- refresh log.  upsell_admin is a reader that may also read every table of
-- the extension and change the merchant's rules and experiments (below).
--
-- Roles belong to the cluster, not the database: CREATE EXTENSION creates
-- them when they do not exist yet (NOLOGIN), and a second database's
-- CREATE EXTENSION finds them and grants its own objects.  DROP EXTENSION
-- leaves them (other databases may use them).  This runs last, after every
-- layer created its relations.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'upsell_reader') THEN
		CREATE ROLE upsell_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) 'upsell_admin') THEN
		CREATE ROLE upsell_admin NOLOGIN;
	END IF;
END
$$;
COMMENT ON ROLE upsell_reader IS 'upsell: serve offers (app backends); no order lines, catalog or carts';
COMMENT ON ROLE upsell_admin IS 'upsell: merchant rules and the refresh log; a reader too';

GRANT upsell_reader TO upsell_admin;
GRANT USAGE ON SCHEMA @extschema@ TO upsell_reader, upsell_admin;

-- the reader: the merchant's rules, the registrations (names of relations
-- and columns, checked when the serving cache is read), the serving state,
-- the model catalogue and every model table (serving reads them directly:
-- the cart reads cart_model, post-purchase offers read order_model), and
-- the views over model tables: purchase_interval_model (over
-- purchase_history_model), upgrade_model (over upgrade_list_model),
-- pair_model (over pair_list_model), bundle_model (over
-- bundle_list_model; bundle_offers reads the view) and product_page_model
-- (over product_page_list_model and bundle_list_model, through
-- _product_page_list)
GRANT SELECT ON @extschema@.serving_state, @extschema@.model_state, @extschema@.model_versions,
	@extschema@.model_definitions,
	@extschema@.model_builds, @extschema@.models, @extschema@.order_source,
	@extschema@.product_source, @extschema@.cart_source,
	@extschema@.stage_settings, @extschema@.offers, @extschema@.exclusions, @extschema@.thresholds,
	@extschema@.volume_tiers, @extschema@.consumables, @extschema@.experiments,
	@extschema@.experiment_variants, @extschema@.product_page_offers, @extschema@.post_purchase_offers,
	@extschema@.purchase_interval_model, @extschema@.upgrade_model, @extschema@.pair_model,
	@extschema@.bundle_model, @extschema@.product_page_model, @extschema@.product_popularity
	TO upsell_reader;
GRANT SELECT, INSERT ON @extschema@.exposures TO upsell_reader;
GRANT INSERT ON @extschema@.offer_events TO upsell_reader;
DO $$
DECLARE
	m pg_catalog.name;
BEGIN
	FOR m IN SELECT d.model FROM @extschema@.model_definitions d LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.%I TO upsell_reader', m);
	END LOOP;
END
$$;

-- the admin reads every table and changes the merchant's rules, the
-- experiments and their records, and prunes the refresh log; the
-- registrations, the model catalogue and the models are the owner's (it
-- registers and refreshes).  What a refresh reads or runs must not be the
-- admin's to choose: a registration names the relation a superuser's
-- refresh reads (a view over a function of the admin's), model_definitions
-- the builders it calls.  (Until 1.6 the admin could change every table:
-- taken back here from a schema an earlier install left.)
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA @extschema@ FROM upsell_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA @extschema@ TO upsell_admin;
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON @extschema@.stage_settings, @extschema@.offers,
	@extschema@.exclusions, @extschema@.category_substitutes, @extschema@.thresholds,
	@extschema@.volume_tiers, @extschema@.consumables, @extschema@.experiments,
	@extschema@.experiment_variants, @extschema@.exposures, @extschema@.offer_events
	TO upsell_admin;
GRANT DELETE ON @extschema@.refresh_log TO upsell_admin;
-- The rules' triggers draw config versions (nextval: USAGE), and store one
-- (serving_state, whose own trigger draws every version stored: an UPDATE
-- cannot set an old one back).  Not UPDATE on the sequences: setval would
-- rewind or exhaust them, the refresh log's and the versions', and every
-- refresh would fail (nextval at the maximum, a duplicate refresh_id).
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM upsell_admin;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA @extschema@ TO upsell_admin;
GRANT UPDATE ON @extschema@.serving_state TO upsell_admin;

-- Nobody but the extension's owner creates objects in its schema.  A role
-- that could would plant an overload there (a _publish(text, ...) is
-- preferred over _publish(name, ...) for a string literal, qualified call
-- or not) or a function called by a registered view, and the next refresh
-- by a superuser (a pg_cron job) would run it with the superuser's rights.
-- Until 1.6 upsell_admin could (registration created its views as the
-- admin); registration and refresh are now the owner's.  A schema left by
-- an earlier install keeps its grants: taken back here, and what is in it
-- that upsell did not create stops the install or update.
-- The schema's owner may always create there, whatever is revoked: a
-- schema made before the install by another role (CREATE SCHEMA upsell by
-- a role with CREATE on the database) would let that role plant such a
-- function after it.  So the owner is the installing role or a superuser.
REVOKE CREATE ON SCHEMA @extschema@ FROM PUBLIC, upsell_reader, upsell_admin;
DO $$
DECLARE
	strangers text;
	owner name;
BEGIN
	SELECT r.rolname INTO owner
	FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
	WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
	  AND r.rolname OPERATOR(pg_catalog.<>) CURRENT_USER AND NOT r.rolsuper;
	IF owner IS NOT NULL THEN
		RAISE EXCEPTION 'schema @extschema@ is owned by role %, not by %, who installs upsell', owner, CURRENT_USER
			USING ERRCODE = 'insufficient_privilege',
				  HINT = format('Its owner could create functions there that a superuser''s refresh would run.  ALTER SCHEMA @extschema@ OWNER TO %I, then create or update the extension.', CURRENT_USER);
	END IF;
	SELECT pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::text, ', ' ORDER BY p.oid::pg_catalog.regprocedure::text)
	INTO strangers
	FROM pg_catalog.pg_proc p
	WHERE p.pronamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
	  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
					  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
						AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.deptype OPERATOR(pg_catalog.=) 'e');
	IF strangers IS NOT NULL THEN
		RAISE EXCEPTION 'schema @extschema@ holds functions that upsell did not create: %', strangers
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'A function there would run when a superuser refreshes.  Drop them (or install into a new schema), then create or update the extension.';
	END IF;
END
$$;

-- A side build's worker runs any query it is given (as its caller): the
-- refresh's, that is the owner's, not an app role's nor the admin's (it
-- would take the worker slots parallel query and the refresh need: a
-- pg_cron job could then not start).
REVOKE EXECUTE ON FUNCTION @extschema@._side_start(text, text) FROM PUBLIC, upsell_admin;
