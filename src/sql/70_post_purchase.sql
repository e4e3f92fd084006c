
-- ===========================================================================
-- Post-purchase: replenishment intervals, personal recommendations, the
-- email sequence, subscriptions and abandoned carts
-- ===========================================================================
--
-- refresh() stores two models, from one pass over the order lines:
--	purchase_history_model (35)		per customer, per product bought:
--		purchases, median gap, CV of gaps, quantity, spend
--	product_interval_model (36)		per product: customers, repeat buyers,
--		population interval, and whether the data says "consumable"
-- and the view purchase_interval_model gives the history per (customer,
-- product) with the predicted next purchase and its confidence.  Serving
-- functions read them by key.

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

CREATE TABLE IF NOT EXISTS @extschema@.consumables (
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
-- the identity's position too, or the next insert after a restore collides
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.consumables', 'consumable_rule_id')::regclass, '');
COMMENT ON TABLE @extschema@.consumables IS
	'merchant override of the consumable rule: a product (product_id) or a whole category (category) is consumable (true: offered again when due) or durable (false: never offered again to who owns it); a product rule beats a category rule, which beats the data';

-- Effective flag: product rule, else category rule, else the data's verdict.
-- A one-row table function, so that a query joining it LATERAL gets it
-- inlined: two index lookups per product, planned with the query (and
-- cached with a PL/pgSQL statement's plan).  PostgreSQL inlines no scalar
-- SQL function whose body has a subquery: the scalar _consumable it
-- replaces was planned anew by every statement that called it (0.2 ms a
-- request, most of the thank-you page's cost of a customer until 1.9), so
-- every query applying the rule, to one product or many, joins this.
CREATE FUNCTION @extschema@._consumable_rule(tenant_id bigint, product_id bigint, category text,
	from_data boolean)
RETURNS TABLE (consumable boolean)
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1
BEGIN ATOMIC
	SELECT coalesce(
		(SELECT c.consumable FROM @extschema@.consumables c
		 WHERE c.tenant_id = _consumable_rule.tenant_id AND c.product_id = _consumable_rule.product_id),
		(SELECT c.consumable FROM @extschema@.consumables c
		 WHERE c.tenant_id = _consumable_rule.tenant_id AND c.category = _consumable_rule.category),
		_consumable_rule.from_data, false);
END;
COMMENT ON FUNCTION @extschema@._consumable_rule(bigint, bigint, text, boolean) IS
	'internal: whether a product is consumable (one row): the merchant''s rule for the product, else for its category (upsell.consumables), else from_data (the data''s verdict), else false; join it LATERAL to have it inlined';

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
--
-- Both models come from one pass over the order lines, customer by
-- customer (src/purchase_history.c): the lines sorted by customer (in
-- parallel workers where PostgreSQL can) feed a C function that keeps one
-- customer's lines at a time, emits the customer's row (one array element
-- per product bought) and folds the customer's statistics into per-product
-- counters, emitted after the tenant's last customer.  Per (customer,
-- product) the model is one array element, not a row: a shop's history
-- holds about as many (customer, product) pairs as order lines, and a row
-- each made the model a second copy of the order table.
--
-- The rows of the pass: per customer (product_id NULL) the statistics of
-- every product bought, arrays sorted by product id, with between_at the
-- distinct instants between the first and the last purchase of each
-- product bought 3 times or more, one product after the other (what an
-- incremental refresh folds new lines into, _purchase_history_fold); then
-- per product (customer_id NULL) the repeat statistics; and from a fold,
-- taken_out, per product what the customers' stored histories contributed
-- to its statistics (customers, repeat and regular customers, the repeat
-- customers' median gaps), which an incremental refresh takes out.
CREATE TYPE @extschema@._history_pass AS (tenant_id bigint, customer_id bigint, product_ids bigint[],
	purchases int[], first_at timestamptz[], last_at timestamptz[], median_gap_days float8[], cv float8[],
	quantity numeric[], spend numeric[], product_id bigint, customers bigint,
	repeat_customers bigint, regular_customers bigint, population_interval_days float8,
	repeats_consumable boolean, repeat_gaps float8[], between_at timestamptz[], taken_out boolean);

CREATE FUNCTION @extschema@._purchase_history(query text, whole_days boolean)
RETURNS SETOF @extschema@._history_pass
AS 'MODULE_PATHNAME', 'upsell_purchase_history'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._purchase_history(text, boolean) IS
	'internal: per customer the statistics of every product bought (gaps in whole days when whole_days: the order times are dates) (arrays sorted by product id, product_id NULL), then per product the repeat statistics with the repeat customers'' median gaps, sorted (customer_id NULL), from a query returning (tenant_id, customer_id, product_id, ordered_at, quantity, spend) ordered by tenant_id, customer_id';

CREATE FUNCTION @extschema@._purchase_history_fold(histories text, new_lines text, whole_days boolean)
RETURNS SETOF @extschema@._history_pass
AS 'MODULE_PATHNAME', 'upsell_purchase_history_fold'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@._purchase_history_fold(text, text, boolean) IS
	'internal: _purchase_history''s rows for customers with new lines, from their stored histories (a query returning purchase_history_model''s tenant_id, customer_id, product_ids, purchases, first_at, last_at, between_at, median_gap_days, cv, quantity, spend) and their new lines (a query as _purchase_history''s), both ordered by tenant_id, customer_id: the stored distinct instants and sums fed to the pass as lines with the new ones; then per product what the stored histories contributed (taken_out)';

CREATE FUNCTION @extschema@._gaps_update(base float8[], remove float8[], add float8[])
RETURNS float8[]
AS 'MODULE_PATHNAME', 'upsell_gaps_update'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._gaps_update(float8[], float8[], float8[]) IS
	'internal: a sorted multiset of repeat gaps, one element equal to each of remove taken out, add put in, sorted';

CREATE FUNCTION @extschema@._gaps_median(float8[])
RETURNS float8
AS 'MODULE_PATHNAME', 'upsell_gaps_median'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._gaps_median(float8[]) IS
	'internal: the median of repeat gaps as the full build takes it (the population interval); NULL when empty';

CREATE FUNCTION @extschema@._consumable_by_data(customers bigint, repeaters bigint,
	shop_pairs bigint, shop_repeat_pairs bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_consumable_by_data'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._consumable_by_data(bigint, bigint, bigint, bigint) IS
	'internal: the consumable rule of the data (2+ repeat customers, repeat share at least max(2%, half the shop''s)), as the full build applies it';

-- The order lines of the purchase histories, as _purchase_history reads them:
-- the tenant's lines as of its refresh snapshot (_tenant_lines).  A line
-- sells as every model reads it (order_lines.sold): a quantity above 0, or
-- none, which is a sale of one.
CREATE FUNCTION @extschema@._history_lines_query(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN 'SELECT l.tenant_id, l.customer_id, l.product_id, l.ordered_at, COALESCE(l.quantity, 1), '
	|| 'COALESCE(l.quantity, 1) OPERATOR(pg_catalog.*) l.unit_price FROM ' || @extschema@._tenant_lines(tenant_id, snapshot) || ' l '
	|| 'WHERE l.customer_id IS NOT NULL AND l.product_id IS NOT NULL AND l.ordered_at IS NOT NULL AND l.sold '
	|| 'ORDER BY l.tenant_id, l.customer_id';

-- The query of given (distinct) customers' purchase histories, columns of
-- h, a purchase_history_model row: each taken by key, a join with their
-- ids (= ANY of the 28,000 ids of an hour's customers at 10M lines took
-- three times as long, 0.27 against 0.09 s, and 4.0 s right after the
-- refresh that wrote them).  The incremental builds of the histories and
-- of the upgrade counts read the histories of the customers with new lines.
CREATE FUNCTION @extschema@._histories_of(tenant_id bigint, customers bigint[], columns text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.format('SELECT %s FROM pg_catalog.unnest(%L::bigint[]) c(id) '
	'JOIN @extschema@.purchase_history_model h ON h.tenant_id OPERATOR(pg_catalog.=) %s '
	'AND h.customer_id OPERATOR(pg_catalog.=) c.id', columns, customers, tenant_id);

-- The customers whose purchase histories an incremental build of the
-- tenant recomputes: those with new lines that count (the new lines are
-- the tenant's refresh's pg_temp.upsell_new_lines, _build_source_state).
CREATE FUNCTION @extschema@._history_customers()
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN ARRAY(SELECT DISTINCT n.customer_id FROM pg_temp.upsell_new_lines n
				 WHERE n.customer_id IS NOT NULL AND n.product_id IS NOT NULL
				   AND n.ordered_at IS NOT NULL AND n.sold
				 ORDER BY 1);
END
$$;

-- The pass of purchase_history_model over a tenant's lines, as of its
-- refresh snapshot or the snapshot given (a side build, _define_side_build):
-- a row per customer, then a row per product.  All the tenant's customers,
-- or in an incremental build those with new lines (customers, or else
-- _history_customers), folded from their stored histories with their new
-- lines (_purchase_history_fold): the stored histories as the previous
-- refresh committed them (the refresh replaces them only once this pass is
-- read), the new lines written into the text, since a side build's worker
-- cannot read the new lines' temporary table.  Reading those customers'
-- lines instead took a scan of every line: at 10M lines, the 1.8M lines of
-- the 27,958 customers of 1% new orders took the histories' worker 4.2-5.3
-- s of CPU by the scan, 5.3-6.1 s through an index on the customer.
CREATE FUNCTION @extschema@._history_query(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL,
	customers bigint[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	whole_days boolean;
	new_lines text;
BEGIN
	IF customers IS NULL AND @extschema@._incremental(tenant_id) THEN
		customers := @extschema@._history_customers();
	END IF;
	-- order times of a date column are days of the shop: their gaps are
	-- whole days, whatever daylight saving time makes of the instants
	-- (until 1.8, March 1 to April 1 in Berlin was 30.958 days, and the
	-- customer was due a day early)
	SELECT coalesce(o.kind = 'columns' AND o.ordered_at IS NOT NULL
					AND @extschema@._column_type(o.relation, o.ordered_at, 'ordered_at') = 'date'::regtype, false)
	INTO whole_days
	FROM @extschema@.order_source o;
	IF customers IS NULL THEN
		RETURN 'SELECT * FROM @extschema@._purchase_history('
			|| quote_literal(@extschema@._history_lines_query(tenant_id, snapshot)) || ', '
			|| coalesce(whole_days, false)::text || ')';
	END IF;
	-- the new lines of those customers, as _history_lines_query reads lines
	new_lines := @extschema@._new_lines_query('{tenant_id, customer_id, product_id, ordered_at, quantity, spend}',
		'{bigint, bigint, bigint, timestamptz, numeric, numeric}',
		'{n.tenant_id, n.customer_id, n.product_id, n.ordered_at, "COALESCE(n.quantity, 1)", '
		'"COALESCE(n.quantity, 1) OPERATOR(pg_catalog.*) n.unit_price"}',
		'n.customer_id OPERATOR(pg_catalog.=) ANY (k.keys) AND n.product_id IS NOT NULL '
		'AND n.ordered_at IS NOT NULL AND n.sold', 'n.customer_id', customers);
	RETURN 'SELECT * FROM @extschema@._purchase_history_fold('
		|| quote_literal(@extschema@._histories_of(tenant_id, customers,
			'h.tenant_id, h.customer_id, h.product_ids, h.purchases, h.first_at, h.last_at, h.between_at, '
			'h.median_gap_days, h.cv, h.quantity, h.spend') || ' ORDER BY h.customer_id') || ', '
		|| quote_literal(new_lines) || ', ' || coalesce(whole_days, false)::text || ')';
END
$$;

-- Fills purchase_history_model for one tenant: every customer, or in an
-- incremental refresh only the customers with new lines (their rows are
-- replaced; the others stay).  The same pass gives the product statistics
-- of those customers, and incrementally what their previous histories
-- contributed to them, kept in a temporary table for
-- product_interval_model, built next.
CREATE FUNCTION @extschema@._build_purchase_history(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	inc boolean := incremental AND @extschema@._incremental(tenant_id);
	customers bigint[];
	n bigint;
BEGIN
	-- the carts view, if a DROP ... CASCADE took it
	IF to_regclass('@extschema@.carts') IS NULL AND EXISTS (SELECT FROM @extschema@.cart_source) THEN
		PERFORM @extschema@._sync_view('carts');
	END IF;
	IF to_regclass('pg_temp.upsell_history_pass') IS NOT NULL THEN
		DROP TABLE pg_temp.upsell_history_pass;
	END IF;
	CREATE TEMP TABLE upsell_history_pass ON COMMIT DROP AS
		SELECT * FROM @extschema@._purchase_history('', false) WITH NO DATA;
	-- read once, by this transaction: its arrays (a popular product's
	-- repeat gaps are thousands of elements) are not worth compressing,
	-- and rows up to a page stay in it, as in purchase_history_model (the
	-- two compressions took 1.3 s of an incremental refresh at 10M lines)
	ALTER TABLE pg_temp.upsell_history_pass SET (toast_tuple_target = 8160),
		ALTER COLUMN product_ids SET STORAGE EXTERNAL, ALTER COLUMN purchases SET STORAGE EXTERNAL,
		ALTER COLUMN first_at SET STORAGE EXTERNAL, ALTER COLUMN last_at SET STORAGE EXTERNAL,
		ALTER COLUMN median_gap_days SET STORAGE EXTERNAL, ALTER COLUMN cv SET STORAGE EXTERNAL,
		ALTER COLUMN quantity SET STORAGE EXTERNAL, ALTER COLUMN spend SET STORAGE EXTERNAL,
		ALTER COLUMN repeat_gaps SET STORAGE EXTERNAL, ALTER COLUMN between_at SET STORAGE EXTERNAL;
	IF inc THEN
		customers := @extschema@._history_customers();
	END IF;
	-- the pass (incrementally, those customers' histories folded, with what
	-- their stored histories contributed to the products' statistics,
	-- taken_out, which product_interval_model takes out): computed by a
	-- side build (_define_side_build), or here (reading the stored
	-- histories before they are replaced, as the worker does)
	-- (EXECUTE: the temporary table and its row type are new at every build)
	IF @extschema@._side_ready('purchase_history_model') THEN
		EXECUTE 'INSERT INTO pg_temp.upsell_history_pass SELECT * FROM '
			'@extschema@._side_rows(''purchase_history_model'', NULL::pg_temp.upsell_history_pass)';
	ELSE
		-- (incrementally, the customers found above)
		EXECUTE 'INSERT INTO pg_temp.upsell_history_pass ' || @extschema@._history_query(t, NULL, customers);
	END IF;
	IF inc THEN
		RETURN @extschema@._publish('purchase_history_model', t,
			'SELECT tenant_id, customer_id, product_ids, purchases, first_at, last_at, median_gap_days, cv, '
			'quantity, spend, between_at FROM pg_temp.upsell_history_pass WHERE product_id IS NULL', customers);
	END IF;
	RETURN @extschema@._publish('purchase_history_model', t,
		'SELECT tenant_id, customer_id, product_ids, purchases, first_at, last_at, median_gap_days, cv, '
		'quantity, spend, between_at FROM pg_temp.upsell_history_pass WHERE product_id IS NULL');
END
$$;

-- Per product, from the pass of purchase_history_model: in full, its
-- product rows; incrementally, the tenant's previous rows with the changed
-- customers' old statistics taken out and their new ones put in (counts,
-- and the multiset of repeat gaps whose median is the population interval),
-- then the consumable rule again for every product (it compares with the
-- shop's repeat share, which every new purchase moves).  Incrementally only
-- the rows that differ are written: the products whose statistics the
-- changed customers moved, and those whose verdict the shop's new repeat
-- share turns (at 10M lines with 1% new orders, 29,320 of the 100,000 rows;
-- writing them all took 0.6 s of the refresh).
CREATE FUNCTION @extschema@._build_product_intervals(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
BEGIN
	IF to_regclass('pg_temp.upsell_history_pass') IS NULL THEN
		RAISE EXCEPTION 'product_interval_model is built from the pass of purchase_history_model'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF incremental AND @extschema@._lines_unchanged(tenant_id) THEN
		-- no history changed: every product's statistics are the same
		RETURN @extschema@._kept_rows('product_interval_model', tenant_id);
	END IF;
	IF NOT (incremental AND @extschema@._incremental(tenant_id)) THEN
		RETURN @extschema@._publish('product_interval_model', tenant_id, $q$
			SELECT p.tenant_id, p.product_id, p.customers, p.repeat_customers,
				   p.repeat_customers::float8 OPERATOR(pg_catalog./) p.customers AS repeat_share, p.regular_customers,
				   p.population_interval_days, p.repeats_consumable, p.repeat_gaps
			FROM pg_temp.upsell_history_pass p WHERE p.customer_id IS NULL AND NOT p.taken_out$q$);
	END IF;
	IF to_regclass('pg_temp.upsell_interval_rows') IS NOT NULL THEN
		DROP TABLE pg_temp.upsell_interval_rows;
	END IF;
	CREATE TEMP TABLE upsell_interval_rows ON COMMIT DROP AS
		WITH new AS (
			SELECT p.product_id, p.customers, p.repeat_customers AS repeaters,
				   p.regular_customers AS regulars, p.repeat_gaps AS gaps
			FROM pg_temp.upsell_history_pass p WHERE p.customer_id IS NULL AND NOT p.taken_out),
		taken AS (
			SELECT p.product_id, p.customers, p.repeat_customers AS repeaters,
				   p.regular_customers AS regulars, p.repeat_gaps AS gaps
			FROM pg_temp.upsell_history_pass p WHERE p.taken_out),
		merged AS (
			SELECT coalesce(p.product_id, n.product_id) AS product_id,
				   coalesce(p.customers, 0) - coalesce(o.customers, 0) + coalesce(n.customers, 0) AS customers,
				   coalesce(p.repeat_customers, 0) - coalesce(o.repeaters, 0) + coalesce(n.repeaters, 0) AS repeaters,
				   coalesce(p.regular_customers, 0) - coalesce(o.regulars, 0) + coalesce(n.regulars, 0) AS regulars,
				   CASE WHEN u.unchanged THEN p.repeat_gaps
						ELSE @extschema@._gaps_update(p.repeat_gaps, o.gaps, n.gaps) END AS gaps,
				   u.unchanged, p.population_interval_days, p.repeats_consumable AS was_consumable
			FROM (SELECT * FROM @extschema@.product_interval_model m WHERE m.tenant_id = t) p
			FULL JOIN new n ON n.product_id = p.product_id
			LEFT JOIN taken o ON o.product_id = coalesce(p.product_id, n.product_id)
			-- unchanged: no changed customer bought it, or they contribute
			-- what they did (every product of a changed customer's history
			-- is taken out and put in: 95,780 products at 10M lines, where
			-- 29,320 rows differ)
			CROSS JOIN LATERAL (SELECT (n.product_id IS NULL AND o.product_id IS NULL)
									   OR coalesce(p.product_id IS NOT NULL AND n.customers = o.customers
												   AND n.repeaters = o.repeaters AND n.regulars = o.regulars
												   AND n.gaps = o.gaps, false) AS unchanged) u),
		judged AS (
			-- (a product without customers left has 0 of each: the sums
			-- are those of the products kept)
			SELECT m.*, @extschema@._consumable_by_data(m.customers, m.repeaters,
						(sum(m.customers) OVER ())::bigint, (sum(m.repeaters) OVER ())::bigint) AS consumable
			FROM merged m)
		SELECT j.product_id, j.customers, j.repeaters, j.regulars, j.gaps, j.consumable,
			   CASE WHEN j.unchanged THEN j.population_interval_days
					ELSE @extschema@._gaps_median(j.gaps) END AS population_interval_days
		FROM judged j
		WHERE NOT j.unchanged OR j.consumable IS DISTINCT FROM j.was_consumable;
	-- (the products left without customers are in scope, and so deleted)
	RETURN @extschema@._publish('product_interval_model', t, $q$
		SELECT $1 AS tenant_id, r.product_id, r.customers, r.repeaters AS repeat_customers,
			   r.repeaters::float8 OPERATOR(pg_catalog./) r.customers AS repeat_share, r.regulars AS regular_customers,
			   r.population_interval_days, r.consumable AS repeats_consumable, r.gaps AS repeat_gaps
		FROM pg_temp.upsell_interval_rows r WHERE r.customers OPERATOR(pg_catalog.>) 0$q$,
		ARRAY(SELECT r.product_id FROM pg_temp.upsell_interval_rows r ORDER BY 1));
END
$$;

-- Built at 35 and 36, before the upgrade lists (40), not at this layer's 70:
-- the histories' worker computes beside the upgrade lists' from the start
-- of a refresh and finishes first (at 10M lines 5.6 s of CPU against 7 s),
-- so the refresh builds the histories while the upgrade lists' worker is
-- still at work, where it used to wait for that worker first (1.3 s of an
-- incremental refresh at 10M lines).  Nothing built before them reads them.
SELECT @extschema@._define_model('purchase_history_model',
	$$tenant_id bigint NOT NULL, customer_id bigint NOT NULL, product_ids bigint[] NOT NULL,
	  purchases int[] NOT NULL, first_at timestamptz[] NOT NULL, last_at timestamptz[] NOT NULL,
	  median_gap_days float8[] NOT NULL, cv float8[] NOT NULL, quantity numeric[] NOT NULL,
	  spend numeric[] NOT NULL, between_at timestamptz[] NOT NULL,
	  PRIMARY KEY (tenant_id, customer_id)$$,
	NULL, 35, '@extschema@._build_purchase_history(bigint, boolean)',
	'per customer, one array element per product bought (sorted by product id): distinct purchases, first and last, median gap and CV of gaps in days (NULL below 2 and 3 purchases), quantity and spend; between_at: the distinct purchase instants between the first and the last of each product bought 3 times or more, one product after the other (what an incremental refresh folds new lines into); read through the view purchase_interval_model',
	'customer_id');
SELECT @extschema@._define_side_build('purchase_history_model', '@extschema@._history_query(bigint, pg_snapshot, bigint[])', during_count => true,
	incremental => true);
-- As pair_list_model: a customer's row over 2 kB (3% of them at 10M lines)
-- is stored as it is, not compressed at every refresh, and one over a page
-- (a customer of a few hundred products) goes out of line uncompressed:
-- the customers an incremental refresh rewrites are those who buy most,
-- and compressing their rows took a second of it at 10M lines; a reader
-- reads one customer's row.  Readers look customers up by key, never by
-- an element, so ANALYZE takes no element statistics of the arrays (1.6 ->
-- 0.7 s at 10M lines).
ALTER TABLE @extschema@.purchase_history_model SET (toast_tuple_target = 8160),
	ALTER COLUMN product_ids SET STATISTICS 0, ALTER COLUMN purchases SET STATISTICS 0,
	ALTER COLUMN first_at SET STATISTICS 0, ALTER COLUMN last_at SET STATISTICS 0,
	ALTER COLUMN median_gap_days SET STATISTICS 0, ALTER COLUMN cv SET STATISTICS 0,
	ALTER COLUMN quantity SET STATISTICS 0, ALTER COLUMN spend SET STATISTICS 0,
	ALTER COLUMN between_at SET STATISTICS 0,
	ALTER COLUMN product_ids SET STORAGE EXTERNAL, ALTER COLUMN purchases SET STORAGE EXTERNAL,
	ALTER COLUMN first_at SET STORAGE EXTERNAL, ALTER COLUMN last_at SET STORAGE EXTERNAL,
	ALTER COLUMN median_gap_days SET STORAGE EXTERNAL, ALTER COLUMN cv SET STORAGE EXTERNAL,
	ALTER COLUMN quantity SET STORAGE EXTERNAL, ALTER COLUMN spend SET STORAGE EXTERNAL,
	ALTER COLUMN between_at SET STORAGE EXTERNAL;

SELECT @extschema@._define_model('product_interval_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, customers bigint NOT NULL,
	  repeat_customers bigint NOT NULL, repeat_share float8 NOT NULL, regular_customers bigint NOT NULL,
	  population_interval_days float8, repeats_consumable boolean NOT NULL,
	  repeat_gaps float8[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 36, '@extschema@._build_product_intervals(bigint, boolean)',
	'per product: customers, repeat customers (2+ purchases) and their share, regular customers (3+ purchases, CV < 0.5), population interval (median of the repeat customers'' median gaps), whether the data says consumable (2+ repeat customers and a repeat share of at least half the shop''s and 2%), and the repeat customers'' median gaps, sorted (what an incremental refresh updates the population interval from)',
	'product_id');

-- The shop's time zone: the registration's (order_source.time_zone), in
-- which a date the caller gives (replenishment_due's as_of), the dates of
-- the reasons and the days until a next purchase are days, whoever asks
-- (until 1.8 the reader's: a customer due at 23:30 in New York was due that
-- day for a session in New York, not for one in UTC or Tokyo).  PL/pgSQL,
-- read when called: an update creates it before the ALTER that adds
-- time_zone to an older order_source.  The serving functions in C run its
-- query themselves (src/serving_common.c).
CREATE FUNCTION @extschema@._shop_zone()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN coalesce((SELECT s.time_zone FROM @extschema@.order_source s LIMIT 1), current_setting('TimeZone'));
END
$$;

-- Per (customer, product), as the serving and analyst functions read it:
-- the history's array elements, with the interval that predicts the next
-- purchase (the customer's own median gap from 2 purchases, else the
-- product's population interval), the predicted date and its confidence.
-- A lookup by customer reads one row of purchase_history_model by key.
CREATE VIEW @extschema@.purchase_interval_model AS
WITH shop_zone AS MATERIALIZED (SELECT @extschema@._shop_zone() AS zone)
SELECT h.tenant_id, h.customer_id, u.product_id, u.purchases::bigint AS purchases, u.first_at,
	   u.last_at, u.median_gap_days, u.cv, u.quantity, u.spend,
	   pm.population_interval_days, i.interval_days,
	   -- (days of the shop's zone: the same instant whoever reads it, a
	   -- day later as the shop's clock counts days across a change of
	   -- daylight saving time; until 1.8 the reader's zone counted them)
	   @extschema@._local_time((u.last_at AT TIME ZONE z.zone) + i.interval_days * interval '1 day', z.zone)
		   AS next_due,
	   CASE WHEN u.purchases >= 2
			THEN (u.purchases - 1)::float8 / u.purchases
				 * CASE WHEN u.cv IS NULL THEN 0.5 ELSE 1 / (1 + u.cv) END
			WHEN pm.population_interval_days IS NOT NULL THEN 0.5 * pm.repeat_share
	   END AS confidence
FROM @extschema@.purchase_history_model h
CROSS JOIN LATERAL unnest(h.product_ids, h.purchases, h.first_at, h.last_at, h.median_gap_days,
						  h.cv, h.quantity, h.spend)
	AS u(product_id, purchases, first_at, last_at, median_gap_days, cv, quantity, spend)
LEFT JOIN @extschema@.product_interval_model pm
	ON pm.tenant_id = h.tenant_id AND pm.product_id = u.product_id
CROSS JOIN LATERAL (SELECT CASE WHEN u.purchases >= 2 THEN u.median_gap_days
								ELSE pm.population_interval_days END AS interval_days) i
-- (materialized: the zone looked up once a query, not twice a row)
CROSS JOIN shop_zone z;
COMMENT ON VIEW @extschema@.purchase_interval_model IS
	'per customer and product: distinct purchases, first and last, median gap and CV of gaps in days, quantity and spend, the interval used (own median from 2 purchases, else the product''s population interval), the predicted next purchase and its confidence';

-- Upgrades and cheaper alternatives look products up by variant group and
-- price: an index on product_model (defined in 30_cross_sell).
CREATE INDEX ON @extschema@.product_model (tenant_id, variant_group, price);

-- ---- replenishment and subscriptions --------------------------------------------

CREATE FUNCTION @extschema@.is_consumable(product_id bigint, tenant_id bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	result boolean;
BEGIN
	IF product_id IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT r.consumable INTO result
	FROM (SELECT) dummy
	LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = is_consumable.product_id
	LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = is_consumable.product_id
	CROSS JOIN LATERAL @extschema@._consumable_rule(t, is_consumable.product_id, m.category, pm.repeats_consumable) r;
	RETURN result;
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
	zone text := @extschema@._shop_zone();
	from_at timestamptz;
	to_at timestamptz;
BEGIN
	IF as_of IS NULL OR within IS NULL THEN
		RAISE EXCEPTION 'as_of and within must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF within < interval '0' THEN
		RAISE EXCEPTION 'within must not be negative, not %', within USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- the days of the shop's zone, their length on its clock
	from_at := @extschema@._local_time(as_of::timestamp, zone);
	to_at := @extschema@._local_time(as_of::timestamp + within, zone);
	RETURN QUERY
	SELECT r.customer_id, r.product_id, r.last_at, r.purchases, r.interval_days,
		   CASE WHEN r.purchases >= 2 THEN 'own' ELSE 'population' END,
		   r.next_due, r.confidence
	FROM @extschema@.purchase_interval_model r
	JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = r.product_id
	LEFT JOIN @extschema@.product_interval_model pm ON pm.tenant_id = t AND pm.product_id = r.product_id
	CROSS JOIN LATERAL @extschema@._consumable_rule(t, r.product_id, m.category, pm.repeats_consumable) c
	WHERE r.tenant_id = t
	  AND r.next_due >= from_at AND r.next_due < to_at
	  AND m.in_stock
	  AND c.consumable
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
		   pm.population_interval_days, c.consumable
	FROM @extschema@.product_interval_model pm
	LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = pm.product_id
	CROSS JOIN LATERAL @extschema@._consumable_rule(t, pm.product_id, m.category, pm.repeats_consumable) c
	WHERE pm.tenant_id = t AND pm.customers >= min_customers
	ORDER BY pm.repeat_share DESC, pm.customers DESC, pm.product_id;
END
$$;
COMMENT ON FUNCTION @extschema@.subscription_products(int, bigint) IS
	'per product with at least min_customers buyers: the share of repeat buyers and of regular ones (3+ purchases, CV < 0.5), best subscribe-and-save prospects first';

-- ---- personal recommendations ---------------------------------------------------

-- One product a customer owns, as the serving functions read it.
CREATE TYPE @extschema@._owned_product AS (
	product_id bigint, purchases bigint, last_at timestamptz, median_gap_days float8, cv float8,
	interval_days float8, next_due timestamptz, confidence float8, category text,
	consumable boolean, blocked boolean);
COMMENT ON TYPE @extschema@._owned_product IS
	'internal: a product a customer bought (purchase_interval_model), its category, whether it is consumable, and whether it is blocked: never to be offered to the customer (a durable, or a consumable not due)';

-- What a customer owns, by product id, and the rule every serving function
-- applies to it (recommend_for_customer, post_purchase_offers and
-- abandoned_cart_offers, and the post-purchase view and offers_json
-- through post_purchase_offers): a durable is never offered again, a
-- consumable only when due by due_by (blocked false; restocks are among
-- those).  One read of the customer's history, kept in a variable by the
-- caller for all its uses (until 1.9 the thank-you page read them three
-- times and planned _consumable at every request).  Called in a statement
-- of its own, as _cart_blocked is (see post_purchase_offers on Citus);
-- a NULL customer owns nothing.
--
-- In C since 1.12 (src/serving_owned.c): the history row by key, the
-- products' facts from a per-backend cache kept until the next refresh,
-- each element computed as purchase_interval_model computes it.  As a query
-- of that view joined per product it took about 15 us a product: 4.5 ms of
-- the thank-you page's 5 ms at 10M order lines, where recent orders' customers
-- owned 166 products on average.
CREATE FUNCTION @extschema@._customer_owned(t bigint, customer bigint, due_by timestamptz)
RETURNS @extschema@._owned_product[]
AS 'MODULE_PATHNAME', 'upsell_customer_owned'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._customer_owned(bigint, bigint, timestamptz) IS
	'internal: the products a customer bought, by product id, each blocked when it may not be offered to the customer: a durable, or a consumable not due by due_by';

-- Whether an id is one of a customer's owned products as a serving function
-- holds them, tested per candidate: a search by halves of the ascending ids
-- (_customer_owned's order), where "<> ALL (owned)" compared every candidate
-- with every element (1.5 ms of a thank-you page for a customer of 3,500
-- products); ids not ascending are scanned.  The ids of the last call are
-- kept, and each call compares its ids with them whole (src/serving_owned.c).
CREATE FUNCTION @extschema@._in_sorted(ids bigint[], id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'upsell_in_sorted'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@._in_sorted(bigint[], bigint) IS
	'internal: whether id is one of ids (no NULLs): the ids of the last call kept (compared whole at each call) and searched by halves when ascending';

-- A customer's k best products, for the thank-you page and the emails.  In
-- C since 1.12 (src/serving_customer.c, which says what it ranks and why):
-- as a query it looked up every candidate in product_model before cutting
-- to k, 3.8 ms a call at the median at 10M order lines, 45 ms for a
-- customer of 70 products.
CREATE FUNCTION @extschema@.recommend_for_customer(customer_id bigint, k int DEFAULT 5,
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT now(),
	half_life interval DEFAULT '90 days', due_within interval DEFAULT '7 days')
RETURNS TABLE ("rank" int, product_id bigint, score float8, reason text, because bigint[])
AS 'MODULE_PATHNAME', 'upsell_recommend_for_customer'
LANGUAGE C STABLE PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION @extschema@.recommend_for_customer(bigint, int, bigint, timestamptz, interval, interval) IS
	'the k best products for a customer: complements of the 100 most recent purchases (pair model, each purchase weighted 0.5^(age / half_life), combined by noisy-OR) and owned consumables due within due_within (not overdue by more than their interval); durables already bought and consumables not yet due are never offered; then popular products of the customer''s categories, then bestsellers';

-- ---- the email sequence ----------------------------------------------------------

-- How a product is named in a reason: its title, else its id (as the email
-- sequence names them in C, src/serving_email.c).
CREATE FUNCTION @extschema@._product_label(tenant_id bigint, product_id bigint)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT coalesce((SELECT m.title FROM @extschema@.product_model m
					 WHERE m.tenant_id = _product_label.tenant_id AND m.product_id = _product_label.product_id),
					'product ' || _product_label.product_id);
END;

-- C since 1.12 (src/serving_email.c, which says what it offers and why):
-- as PL/pgSQL it read the history through the view purchase_interval_model
-- joined per product, 0.8 ms at the median at 10M order lines and 350 ms
-- for a customer of 15,238 products.
CREATE FUNCTION @extschema@.email_sequence(customer_id bigint, steps int DEFAULT 5,
	tenant_id bigint DEFAULT NULL, at timestamptz DEFAULT now())
RETURNS TABLE (step int, kind text, product_id bigint, category text, score float8,
			   refers_to bigint, reason text)
AS 'MODULE_PATHNAME', 'upsell_email_sequence'
LANGUAGE C STABLE PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION @extschema@.email_sequence(bigint, int, bigint, timestamptz) IS
	'a post-purchase email sequence: one offer per step (complement, restock, subscription, upgrade; popular as fallback), never two of the same category in a row while another exists, each with a reason naming the purchase it refers to';

-- ---- carts: registration and abandoned-cart offers ------------------------------------

CREATE TABLE IF NOT EXISTS @extschema@.cart_source (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	relation	regclass NOT NULL,
	cart_id		name NOT NULL,
	customer_id	name,
	product_id	name NOT NULL,
	quantity	name,
	added_at	name NOT NULL,
	checked_out_at name,
	tenant_id	name,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- 1.6: the TimeZone of the session that registered the carts: an
	-- added_at or checked_out_at of type date or timestamp is a time of
	-- that zone, for every reader of upsell.carts (_local_time)
	time_zone	text NOT NULL DEFAULT pg_catalog.current_setting('TimeZone')
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cart_source', '');
COMMENT ON TABLE @extschema@.cart_source IS
	'the registered cart lines: relation and the columns that mean cart, customer, product, quantity, added at, checked out at, tenant; time_zone: the TimeZone of the session that registered them (a date or timestamp added at or checked out at is a time of that zone, whoever reads it)';

-- The view upsell.carts is created by register_carts, not by this script
-- (like upsell.order_lines, see 10_registration.sql: as an extension member a
-- DROP ... CASCADE of the shop's table would drop the extension):
--   upsell.carts (tenant_id bigint, cart_id bigint, customer_id bigint,
--                 product_id bigint, quantity numeric, added_at timestamptz,
--                 checked_out_at timestamptz)
-- tenant_id 0 without a tenant column; cart_id upsell.order_key() of a
-- non-integer id; checked_out_at NULL while the cart is open.

CREATE FUNCTION @extschema@.register_carts(relation regclass, cart_id name, customer_id name,
	product_id name, quantity name, added_at name, checked_out_at name, tenant_id name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._register('carts', relation, jsonb_build_object(
		'cart_id', cart_id, 'customer_id', customer_id, 'product_id', product_id, 'quantity', quantity,
		'added_at', added_at, 'checked_out_at', checked_out_at, 'tenant_id', tenant_id),
		ARRAY['cart_id', cart_id, 'product_id', product_id, 'added_at', added_at]);
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
	blocked_groups text[];		-- the cart's substitutes (_cart_blocked)
	blocked_categories text[];
	customer bigint;
	owned bigint[];				-- what the customer may not be offered again
BEGIN
	IF cart_id IS NULL OR idle_after IS NULL OR at IS NULL OR min_price_ratio IS NULL THEN
		RAISE EXCEPTION 'cart_id, idle_after, at and min_price_ratio must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM @extschema@._check_k(k);
	IF idle_after < interval '0' THEN
		-- (a cart still being filled is no abandoned cart)
		RAISE EXCEPTION 'idle_after must not be negative, not %', idle_after
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
		   max(c.added_at), bool_or(c.checked_out_at IS NOT NULL), max(c.customer_id)
	INTO items, last_added, checked_out, customer
	FROM @extschema@.carts c
	WHERE c.tenant_id = t AND c.cart_id = abandoned_cart_offers.cart_id;
	-- unknown, checked out, or still active: nothing to win back
	IF cardinality(items) = 0 OR checked_out OR last_added > at - idle_after THEN
		RETURN;
	END IF;
	-- a complement is never a substitute of a cart line (upsell.is_substitute),
	-- as in the cart; the cheaper alternatives are the downsell's own tactic
	SELECT b.variant_groups, b.categories INTO blocked_groups, blocked_categories
	FROM @extschema@._cart_blocked(t, items, false) b;
	-- nor a durable the customer owns, or a consumable not due (until 1.8
	-- the win-back mail offered them)
	owned := ARRAY(SELECT o.product_id FROM unnest(@extschema@._customer_owned(t, customer, at + interval '7 days')) o
				   WHERE o.blocked);

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
											   m.orders DESC, m.product_id) AS n
			FROM @extschema@.product_model m
			WHERE m.tenant_id = t AND m.in_stock AND m.product_id <> ALL (items)
			  AND NOT @extschema@._in_sorted(owned, m.product_id)
			  AND m.price < c.price AND m.price >= c.price * min_price_ratio
			  AND ((c.variant_group IS NOT NULL AND m.variant_group = c.variant_group)
				   OR (c.category IS NOT NULL AND m.category = c.category))
			  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))
			ORDER BY 3
			LIMIT 2) d
		WHERE c.price > 0),
	complement AS (
		SELECT p.other_id AS product_id,
			   1 - exp(sum(ln(1 - least(p.score, 0.999999))::numeric)::float8) AS score,
			   (array_agg(p.product_id ORDER BY p.score DESC, p.product_id))[1] AS replaces
		FROM @extschema@.pair_model p
		WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
		  AND NOT @extschema@._in_sorted(owned, p.other_id)
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
			  WHERE m.in_stock AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))
				AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)
			  UNION ALL
			  -- the fallback, below all evidence: the mail fills its k slots
			  -- when the alternatives and complements run out (the customer
			  -- owns them, the catalog is small, the cart's products are new
			  -- to the models).  The k bestsellers
			  -- kept by every rule of the complements, priced (a mail shows
			  -- the price; no free sample), most popular first.  k of them
			  -- are enough: the ones already offered above count once, the
			  -- others fill the slots those left.  Score 1 / rank (the
			  -- bestseller 1), ordered by rank: ties by id, as the view's
			  SELECT 4, 'popular', f.product_id, NULL, f.price, 1 / f.popularity_rank::float8,
					 -f.popularity_rank::numeric,
					 'popular in the shop (a fallback: the cart''s alternatives and complements ran out)'
			  -- (the view numbers the ranks along the index (tenant_id, orders
			  -- DESC, product_id), in whose order they are read: no sort, the
			  -- scan stops at the k-th kept)
			  FROM (SELECT m.product_id, m.price, m.popularity_rank
					FROM @extschema@.product_popularity m
					WHERE m.tenant_id = t AND m.in_stock AND m.price > 0
					  AND m.product_id <> ALL (items) AND NOT @extschema@._in_sorted(owned, m.product_id)
					  AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)
					  AND (NOT has_rules OR NOT @extschema@.is_excluded(t, m.product_id, m.category, items))
					ORDER BY m.orders DESC, m.product_id
					LIMIT k) f) o
		ORDER BY o.product_id, o.tier, o.ord DESC)
	SELECT (row_number() OVER (ORDER BY o.tier, o.ord DESC, o.score DESC, o.product_id))::int,
		   o.kind, o.product_id, o.replaces, o.price, o.score, o.reason
	FROM offers o
	ORDER BY o.tier, o.ord DESC, o.score DESC, o.product_id
	LIMIT k;
END
$$;
COMMENT ON FUNCTION @extschema@.abandoned_cart_offers(bigint, int, interval, timestamptz, numeric, bigint) IS
	'win-back offers for a cart idle for idle_after and not checked out: first the best cheaper alternative (same variant group, else category; price in [min_price_ratio x price, price)) of each cart item, dearest item first, then complements of the cart, then second-best alternatives, then as a fallback the bestsellers (in stock, priced): never a cart item, a substitute of one, or what the customer owns (durables, consumables not due within 7 days), nor what the merchant excludes';
