-- A normalised description of what extension upsell is made of in this
-- database: every member object with its full definition, the kept
-- configuration tables with their columns, constraints, indexes, triggers
-- and privileges, and the extension's pg_dump marks.  Two databases hold
-- the same upsell exactly when this prints the same lines (no oids, no
-- order that depends on creation order).
\set QUIET on
\pset format unaligned
\pset tuples_only on
WITH ext AS (
	SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'upsell'
), members AS (
	SELECT d.classid, d.objid, o.type, o.identity
	FROM pg_catalog.pg_depend d
	CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, 0) o
	WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
	  AND d.refobjid = (SELECT oid FROM ext) AND d.deptype = 'e'
), rels AS (	-- member relations, and the registration views in the schema
	SELECT c.oid, c.relkind, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
	FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'upsell' AND c.relkind IN ('r', 'v', 'm', 'p', 'S', 'c')
), lines AS (
	SELECT m.type || ' ' || m.identity AS line FROM members m
	UNION ALL
	SELECT 'function ' || p.oid::regprocedure::text || E'\n' ||
		   CASE WHEN p.prokind = 'a' THEN
				(SELECT pg_catalog.concat_ws(' ', a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
						a.aggserialfn, a.aggdeserialfn, a.aggtranstype::regtype, a.agginitval,
						a.aggfinalmodify, p.proparallel)
				 FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = p.oid)
				ELSE pg_catalog.pg_get_functiondef(p.oid) END ||
		   E'\nacl ' || coalesce(p.proacl::text, '-') ||
		   E'\ncomment ' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '-')
	FROM members m JOIN pg_catalog.pg_proc p ON m.classid = 'pg_catalog.pg_proc'::regclass AND p.oid = m.objid
	UNION ALL
	SELECT 'relation ' || r.name || ' kind ' || r.relkind::text ||
		   ' acl ' || coalesce(c.relacl::text, '-') ||
		   ' options ' || coalesce(c.reloptions::text, '-') ||
		   E'\ncomment ' || coalesce(pg_catalog.obj_description(r.oid, 'pg_class'), '-') ||
		   coalesce(E'\nview ' || CASE WHEN r.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(r.oid) END, '')
	FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.oid
	UNION ALL
	SELECT 'column ' || r.name || '.' || a.attnum || ' ' || a.attname || ' ' ||
		   pg_catalog.format_type(a.atttypid, a.atttypmod) ||
		   CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
		   CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END ||
		   coalesce(' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '') ||
		   coalesce(' comment ' || pg_catalog.col_description(r.oid, a.attnum), '')
	FROM rels r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	UNION ALL
	SELECT 'constraint ' || r.name || ' ' || con.conname || ' ' || pg_catalog.pg_get_constraintdef(con.oid)
	FROM rels r JOIN pg_catalog.pg_constraint con ON con.conrelid = r.oid
	UNION ALL
	SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
	FROM rels r JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
	UNION ALL
	SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(t.oid)
	FROM rels r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
	UNION ALL
	SELECT 'sequence ' || r.name || ' ' || pg_catalog.concat_ws(' ', s.seqtypid::regtype, s.seqstart,
		   s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)
	FROM rels r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid
	UNION ALL
	SELECT 'type ' || t.oid::regtype::text || ' ' || t.typtype::text || ' ' ||
		   pg_catalog.concat_ws(' ', t.typinput, t.typoutput, t.typreceive, t.typsend, t.typlen,
								t.typalign, t.typstorage) ||
		   coalesce(' comment ' || pg_catalog.obj_description(t.oid, 'pg_type'), '')
	FROM members m JOIN pg_catalog.pg_type t ON m.classid = 'pg_catalog.pg_type'::regclass AND t.oid = m.objid
	UNION ALL
	SELECT 'config ' || c::regclass::text || ' ' || coalesce(e.extcondition[i], '-')
	FROM pg_catalog.pg_extension e, pg_catalog.unnest(e.extconfig) WITH ORDINALITY AS u(c, i)
	WHERE e.extname = 'upsell'
	UNION ALL
	SELECT 'extension ' || e.extversion || ' ' || e.extrelocatable FROM pg_catalog.pg_extension e WHERE e.extname = 'upsell'
)
SELECT line FROM lines ORDER BY line COLLATE "C";
