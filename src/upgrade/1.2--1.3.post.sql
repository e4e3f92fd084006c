
-- ===========================================================================
-- Release step 1.2 -> 1.3 of the kept tables: the ALTERs that bring a 1.2
-- configuration table (one pg_dump marks: see src/upgrade/pre.sql) to its
-- 1.3 shape.  Part of every upgrade script from 1.2 or older
-- (upsell--1.2--X.sql, upsell--1.1--X.sql, upsell--1.0--X.sql), after the
-- install script and the earlier steps, before the later steps and
-- src/upgrade/post.sql.  Frozen with 1.3 (main as landed at b6701d5): changes
-- after 1.3 go into the next step's script (src/upgrade/1.3--1.4.post.sql).
-- ===========================================================================

-- Changes of 1.3 to the kept tables, one block each, appended below.
-- (1.3 changed no column, constraint or default of them; its one new index
-- of a kept table, exclusions_tenant_id_with_product_id_idx, is created by
-- the install script IF NOT EXISTS, as every named index of a kept table.)
