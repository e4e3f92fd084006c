\echo Use "ALTER EXTENSION upsell UPDATE TO '@TO@'" to load this file. \quit

-- ===========================================================================
-- Upgrade from any released version to @TO@, before the @TO@ install script
-- ===========================================================================
--
-- The same for every released version (the Makefile puts it at the head of
-- each upsell--FROM--@TO@.sql).  What an upgrade keeps is the merchant's
-- configuration: the tables the installed version marked for pg_dump
-- (pg_extension.extconfig: registrations, merchant rules, experiments and
-- their events, ...), with their rows, identity positions, indexes and
-- constraints.  Everything else of the installed version is code or derived
-- data -- functions, aggregates, types, views, the model tables -- and is
-- dropped here, so that the @TO@ install script that follows creates it
-- exactly as a fresh install does (it creates every configuration table and
-- its indexes IF NOT EXISTS, which the Makefile checks, so the kept tables
-- stay as they are), and the release steps' post scripts
-- (src/upgrade/A--B.post.sql) then bring the kept tables to their @TO@ shape
-- by ALTER, and src/upgrade/post.sql puts back what is taken off them here.  The models are derived from the orders:
-- the next refresh rebuilds them.
--
-- Nothing is dropped with CASCADE where a user's object could be on the
-- other end: a view of the user's over an upsell function makes the upgrade
-- stop with an error naming it, instead of silently taking it away.

DO $upgrade$
DECLARE
	ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'upsell');
	kept_oids oid[];
	r record;
	drops text[];
	drop_is_type boolean[];
	drop_oids oid[];
	progress boolean;
	last_error text;
	strangers text;
BEGIN
	-- the installed version's configuration tables (and sequences)
	SELECT e.extconfig INTO kept_oids FROM pg_catalog.pg_extension e WHERE e.oid OPERATOR(pg_catalog.=) ext;
	IF kept_oids IS NULL THEN
		kept_oids := '{}';
	END IF;

	-- The grants the user made on what is dropped below: on the
	-- registration views (GRANT SELECT ON upsell.order_lines to an analyst,
	-- as the README advises), made again by src/upgrade/post.sql; on the
	-- extension's own objects (refresh_log to a monitor, EXECUTE on a
	-- function), which it only names in a WARNING: a grant made in an
	-- extension's script counts as the extension's own (pg_init_privs), so
	-- pg_dump would leave it out.  Not those to PUBLIC or upsell's roles,
	-- which the install script grants as the new version means them (1.5
	-- granted upsell_admin writes that 1.6 took back), nor the owner's.
	FOR r IN
		SELECT o.registration_view,
			   pg_catalog.string_agg(pg_catalog.format('GRANT %s ON %s %s TO %I%s', a.privilege_type,
					CASE WHEN o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass THEN 'ROUTINE'
						 WHEN o.relkind OPERATOR(pg_catalog.=) 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
					o.identity, g.rolname,
					CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END),
					E'\n' ORDER BY o.identity, g.rolname, a.privilege_type) AS grants
		FROM (SELECT 'pg_catalog.pg_class'::regclass AS classid, c.relkind, c.relacl AS acl, c.relowner AS owner,
					 pg_catalog.format('%I.%I', n.nspname, c.relname) AS identity,
					 c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['order_lines', 'catalog', 'carts']::name[])
						AND c.relkind OPERATOR(pg_catalog.=) 'v' AS registration_view
			  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
			  WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
				AND NOT c.oid OPERATOR(pg_catalog.=) ANY (kept_oids)
				AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v', 'm', 'S', 'p']::"char"[])
			  UNION ALL
			  SELECT 'pg_catalog.pg_proc'::regclass, NULL, p.proacl, p.proowner,
					 p.oid::pg_catalog.regprocedure::text, false
			  FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
				AND p.prokind OPERATOR(pg_catalog.=) ANY (ARRAY['f', 'p']::"char"[])) o,
			 LATERAL pg_catalog.aclexplode(o.acl) a
			 JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee
		WHERE a.grantee OPERATOR(pg_catalog.<>) o.owner
		  AND g.rolname OPERATOR(pg_catalog.<>) ALL (ARRAY['upsell_reader', 'upsell_admin']::name[])
		GROUP BY o.registration_view
	LOOP
		PERFORM pg_catalog.set_config(CASE WHEN r.registration_view THEN 'upsell_upgrade.view_grants'
										   ELSE 'upsell_upgrade.member_grants' END, r.grants, true);
	END LOOP;

	-- The kept tables' ties to the installed version's code: its triggers
	-- (those calling an extension function: the install script creates its
	-- own; a trigger of the user's, an audit say, stays), and constraints
	-- and defaults calling an extension function (src/upgrade/post.sql adds
	-- the new version's).
	FOR r IN
		SELECT t.tgname, t.tgrelid::regclass AS rel
		FROM pg_catalog.pg_trigger t
		JOIN pg_catalog.pg_depend e ON e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass
			AND e.objid OPERATOR(pg_catalog.=) t.tgfoid AND e.deptype OPERATOR(pg_catalog.=) 'e'
			AND e.refobjid OPERATOR(pg_catalog.=) ext
		WHERE t.tgrelid OPERATOR(pg_catalog.=) ANY (kept_oids) AND NOT t.tgisinternal
	LOOP
		EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
	END LOOP;
	FOR r IN
		SELECT DISTINCT con.conname, con.conrelid::regclass AS rel
		FROM pg_catalog.pg_constraint con
		JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::regclass
			AND d.objid OPERATOR(pg_catalog.=) con.oid
			AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass
		JOIN pg_catalog.pg_depend e ON e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass
			AND e.objid OPERATOR(pg_catalog.=) d.refobjid AND e.deptype OPERATOR(pg_catalog.=) 'e'
			AND e.refobjid OPERATOR(pg_catalog.=) ext
		WHERE con.conrelid OPERATOR(pg_catalog.=) ANY (kept_oids)
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', r.rel, r.conname);
	END LOOP;
	FOR r IN
		SELECT DISTINCT ad.adrelid::regclass AS rel, a.attname
		FROM pg_catalog.pg_attrdef ad
		JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) ad.adrelid
			AND a.attnum OPERATOR(pg_catalog.=) ad.adnum
		JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::regclass
			AND d.objid OPERATOR(pg_catalog.=) ad.oid
			AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass
		JOIN pg_catalog.pg_depend e ON e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass
			AND e.objid OPERATOR(pg_catalog.=) d.refobjid AND e.deptype OPERATOR(pg_catalog.=) 'e'
			AND e.refobjid OPERATOR(pg_catalog.=) ext
		WHERE ad.adrelid OPERATOR(pg_catalog.=) ANY (kept_oids)
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', r.rel, r.attname);
	END LOOP;

	-- The views registration made over the shop's tables are not members of
	-- the extension but use its functions (upsell.order_key); the new
	-- registration functions make them anew (src/upgrade/post.sql).
	DROP VIEW IF EXISTS @extschema@.order_lines, @extschema@.catalog, @extschema@.carts;

	-- Every other member of the installed version, in passes: whatever still has dependents
	-- waits for a later pass, so no CASCADE is needed for members that
	-- depend on each other.  Base types are the exception: a type and its
	-- input/output functions depend on each other, so a type goes with
	-- CASCADE once nothing outside the extension depends on it.
	LOOP
		progress := false;
		last_error := NULL;
		-- listed before any is dropped: a drop may take others with it
		SELECT pg_catalog.array_agg(pg_catalog.format('DROP %s %s%s',
					CASE WHEN o.type OPERATOR(pg_catalog.~) 'type$' THEN 'TYPE' ELSE pg_catalog.upper(o.type) END,
					o.identity,
					CASE WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::regclass
						 THEN ' CASCADE' ELSE '' END)
				ORDER BY d.objid DESC),
			   pg_catalog.array_agg(d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::regclass
				ORDER BY d.objid DESC),
			   pg_catalog.array_agg(d.objid ORDER BY d.objid DESC)
		INTO drops, drop_is_type, drop_oids
		FROM pg_catalog.pg_depend d,
			 LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, 0) o
		WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::regclass
		  AND d.refobjid OPERATOR(pg_catalog.=) ext
		  AND d.deptype OPERATOR(pg_catalog.=) 'e'
		  AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_namespace'::regclass
		  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
				   AND (d.objid OPERATOR(pg_catalog.=) ANY (kept_oids)
						OR EXISTS (SELECT FROM pg_catalog.pg_depend s
								   WHERE s.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
									 AND s.objid OPERATOR(pg_catalog.=) d.objid
									 AND s.refobjid OPERATOR(pg_catalog.=) ANY (kept_oids)
									 AND s.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[]))));
		EXIT WHEN drops IS NULL;
		FOR i IN 1 .. pg_catalog.array_length(drops, 1) LOOP
			-- What a type's CASCADE would reach, through the functions
			-- and views that use it, that is not the extension's (nor a
			-- part of its, as a view's rule or a table's row type): a
			-- user's view over an upsell view of that type.  Named, and
			-- nothing dropped.
			IF drop_is_type[i] THEN
				WITH RECURSIVE reach(classid, objid) AS (
					SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, drop_oids[i]
					UNION
					SELECT x.classid, x.objid
					FROM reach rch,
						 LATERAL (SELECT u.classid, u.objid FROM pg_catalog.pg_depend u
								  WHERE u.refclassid OPERATOR(pg_catalog.=) rch.classid
									AND u.refobjid OPERATOR(pg_catalog.=) rch.objid
									AND u.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['n', 'a', 'i']::"char"[])
								  UNION
								  -- the object a reached part belongs to (a rule's
								  -- view, a default's table)
								  SELECT o.refclassid, o.refobjid FROM pg_catalog.pg_depend o
								  WHERE o.classid OPERATOR(pg_catalog.=) rch.classid
									AND o.objid OPERATOR(pg_catalog.=) rch.objid
									AND o.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['i', 'a']::"char"[])) x)
				SELECT pg_catalog.string_agg(DISTINCT pg_catalog.pg_describe_object(rch.classid, rch.objid, 0), ', ')
				INTO strangers
				FROM reach rch
				WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
								  WHERE e.classid OPERATOR(pg_catalog.=) rch.classid
									AND e.objid OPERATOR(pg_catalog.=) rch.objid
									AND e.deptype OPERATOR(pg_catalog.=) 'e')
				  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend o
								  WHERE o.classid OPERATOR(pg_catalog.=) rch.classid
									AND o.objid OPERATOR(pg_catalog.=) rch.objid
									AND o.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['i', 'a']::"char"[]));
				IF strangers IS NOT NULL THEN
					RAISE EXCEPTION 'upsell cannot be upgraded while objects outside the extension depend on it: %', strangers
						USING ERRCODE = 'dependent_objects_still_exist',
							  HINT = 'Drop (and later recreate) the dependent objects, then run ALTER EXTENSION upsell UPDATE again.';
				END IF;
			END IF;
			BEGIN
				-- a type goes (with its I/O functions) once only those depend on it
				IF drop_is_type[i] AND EXISTS (
						SELECT FROM pg_catalog.pg_depend u
						WHERE u.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::regclass
						  AND u.refobjid OPERATOR(pg_catalog.=) drop_oids[i]
						  AND u.deptype OPERATOR(pg_catalog.=) 'n'
						  AND u.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_proc'::regclass) THEN
					RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
						MESSAGE = pg_catalog.format('%s: still in use', drops[i]);
				END IF;
				EXECUTE drops[i];
				progress := true;
			EXCEPTION WHEN dependent_objects_still_exist OR undefined_object
					   OR undefined_function OR undefined_table THEN
				-- (the error's detail names the dependent objects)
				GET STACKED DIAGNOSTICS last_error = PG_EXCEPTION_DETAIL;
				last_error := SQLERRM || CASE WHEN last_error OPERATOR(pg_catalog.<>) '' THEN ': ' || last_error ELSE '' END;
			END;
		END LOOP;
		IF NOT progress THEN
			-- what outside the extension holds the members left (a user's
			-- view over refresh_log: the error of the last drop tried names
			-- only the sequence its table needs)
			SELECT pg_catalog.string_agg(DISTINCT pg_catalog.pg_describe_object(u.classid, u.objid, 0), ', ')
			INTO strangers
			FROM pg_catalog.pg_depend m
			JOIN pg_catalog.pg_depend u ON u.refclassid OPERATOR(pg_catalog.=) m.classid
				AND u.refobjid OPERATOR(pg_catalog.=) m.objid AND u.deptype OPERATOR(pg_catalog.=) 'n'
			WHERE m.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::regclass
			  AND m.refobjid OPERATOR(pg_catalog.=) ext AND m.deptype OPERATOR(pg_catalog.=) 'e'
			  AND m.objid OPERATOR(pg_catalog.=) ANY (drop_oids)
			  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
							  WHERE e.classid OPERATOR(pg_catalog.=) u.classid
								AND e.objid OPERATOR(pg_catalog.=) u.objid
								AND e.deptype OPERATOR(pg_catalog.=) 'e')
			  -- (not a part of a member or kept table: a default, a column)
			  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend o
							  WHERE o.classid OPERATOR(pg_catalog.=) u.classid
								AND o.objid OPERATOR(pg_catalog.=) u.objid
								AND o.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['i', 'a']::"char"[])
								AND (o.refobjid OPERATOR(pg_catalog.=) ANY (kept_oids)
									 OR EXISTS (SELECT FROM pg_catalog.pg_depend e
												WHERE e.classid OPERATOR(pg_catalog.=) o.refclassid
												  AND e.objid OPERATOR(pg_catalog.=) o.refobjid
												  AND e.deptype OPERATOR(pg_catalog.=) 'e')));
			RAISE EXCEPTION 'upsell cannot be upgraded while objects outside the extension depend on it%',
					coalesce(': ' || strangers, '')
				USING ERRCODE = 'dependent_objects_still_exist', DETAIL = last_error,
					  HINT = 'Drop (and later recreate) the dependent objects, then run ALTER EXTENSION upsell UPDATE again.';
		END IF;
	END LOOP;
END
$upgrade$;
