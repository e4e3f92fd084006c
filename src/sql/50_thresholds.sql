
-- ===========================================================================
-- Thresholds: the gap to free shipping or the next reward, and the items
-- that close it
-- ===========================================================================

CREATE TABLE IF NOT EXISTS @extschema@.thresholds (
	threshold_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id		bigint NOT NULL DEFAULT 0,
	kind			text NOT NULL CHECK (kind IN ('free_shipping', 'discount', 'gift', 'other')),
	amount			numeric NOT NULL CHECK (amount > 0),
	currency		text CHECK (currency ~ '^[A-Z]{3}$'),
	reward			text,
	active_from		timestamptz,
	active_to		timestamptz,
	CHECK (active_to > active_from),
	-- NaN and Infinity are above every number; money is bounded
	CONSTRAINT thresholds_amount_finite CHECK (amount < 1e15)
);
CREATE INDEX IF NOT EXISTS thresholds_tenant_id_amount_idx ON @extschema@.thresholds (tenant_id, amount);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.thresholds', '');
-- the identity's position too, or the next insert after a restore collides
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.thresholds', 'threshold_id')::regclass, '');
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
BEGIN
	IF at IS NULL THEN
		RAISE EXCEPTION 'at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF currency IS NOT NULL AND currency !~ '^[A-Z]{3}$' THEN
		RAISE EXCEPTION 'currency must be an ISO 4217 code of three capital letters, not "%"', currency
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT array_agg(DISTINCT t.currency ORDER BY t.currency) FILTER (WHERE t.currency IS NOT NULL)
	INTO currencies
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
	-- a cart in a currency no threshold is set in has no threshold, as a
	-- shop without any: no rows (a market the merchant has not configured
	-- yet must not fail the cart page's widgets)
	RETURN QUERY
	SELECT t.* FROM @extschema@.thresholds t
	WHERE t.tenant_id = _active_thresholds.tenant_id
	  AND (t.active_from IS NULL OR t.active_from <= at)
	  AND (t.active_to IS NULL OR at < t.active_to)
	  AND (t.currency IS NULL OR _active_thresholds.currency IS NULL
		   OR t.currency = _active_thresholds.currency);
END
$$;

-- The value of a cart at the prices of the last refresh (product_model),
-- each line at its volume tier's unit price where the merchant set tiers
-- (_tier_offers; as cart_offers counts it: until 1.8 the list price, so a
-- cart paying 8.50 a unit was valued at 9.00 and told it reached a
-- threshold it did not).  NULL cart: empty.  quantities NULL: one of each.
-- NULL when a product is unknown as of the last refresh or has no price.
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
	tier_ids bigint[];			-- the products with tiers, their units in the
	tier_units int[];			-- cart, and the unit price their tiers give
	tier_prices numeric[];		-- all of them
BEGIN
	IF coalesce(array_ndims(product_ids), 1) > 1 OR coalesce(array_ndims(quantities), 1) > 1 THEN
		RAISE EXCEPTION 'the cart must be one-dimensional arrays of product ids and quantities'
			USING ERRCODE = 'array_subscript_error';
	END IF;
	PERFORM @extschema@._check_cart_length(product_ids);
	IF quantities IS NOT NULL
	   AND coalesce(cardinality(product_ids), 0) <> cardinality(quantities) THEN
		RAISE EXCEPTION 'the cart has % product ids but % quantities',
			coalesce(cardinality(product_ids), 0), cardinality(quantities)
			USING ERRCODE = 'array_subscript_error';
	END IF;
	-- (statements of their own, as every table read here: _tier_offers
	-- reads the tiers; lines it would refuse are refused below by name)
	IF EXISTS (SELECT FROM @extschema@.volume_tiers v WHERE v.tenant_id = _cart_total.tenant_id) THEN
		-- a product's tier is of all its units, on however many lines (as
		-- cart_offers merges them: Shopify's line properties)
		SELECT coalesce(array_agg(u.product_id ORDER BY u.product_id), '{}'),
			   coalesce(array_agg(u.units ORDER BY u.product_id), '{}')
		INTO tier_ids, tier_units
		FROM (SELECT c.product_id, least(sum(coalesce(c.quantity, 1)), 2147483647)::int AS units
			  FROM unnest(product_ids, quantities) AS c(product_id, quantity)
			  WHERE c.product_id IS NOT NULL AND (quantities IS NULL OR c.quantity >= 1)
			  GROUP BY c.product_id) u;
		tier_prices := ARRAY(SELECT o.unit_price
							 FROM unnest(tier_ids) WITH ORDINALITY AS x(id, n)
							 LEFT JOIN @extschema@._tier_offers(_cart_total.tenant_id, tier_ids, tier_units, true) o
								ON o.n = x.n
							 ORDER BY x.n);
	END IF;
	-- one pass: the total, and the first bad line if any
	SELECT coalesce(sum(coalesce(tier_prices[array_position(tier_ids, c.product_id)], m.price)
						* coalesce(c.quantity, 1)), 0),
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
	-- a product unknown as of the last refresh, or without a price: the
	-- value is unknown, and what needs it is left out (not an error: the
	-- cart is valid, the data incomplete)
	IF unknown_id IS NOT NULL OR unpriced_id IS NOT NULL THEN
		RETURN NULL;
	END IF;
	RETURN total;
END
$$;

-- The gap from a cart's value (a finite number from 0, any size: numeric
-- arithmetic) to every threshold of a tenant active at a time; both forms
-- of threshold_gap answer with it.  (A cart priced from the catalog may be
-- worth 1e15 or more, 2000 units at a plausible 5e11, beyond what the
-- cart_total argument accepts: it reaches every threshold, as any cart
-- worth more than a threshold does.)
CREATE FUNCTION @extschema@._threshold_gap(total numeric, t bigint, at timestamptz, currency text)
RETURNS TABLE (threshold_id bigint, kind text, amount numeric, reward text,
			   reached boolean, gap numeric, "next" boolean)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.threshold_id, a.kind, a.amount, a.reward,
		   a.amount <= total,
		   greatest(a.amount - total, 0),
		   a.amount > total
			 AND row_number() OVER (ORDER BY a.amount <= total, a.amount, a.threshold_id) = 1
	FROM @extschema@._active_thresholds(t, at, currency) a
	ORDER BY a.amount <= total, a.amount, a.threshold_id
$$;
COMMENT ON FUNCTION @extschema@._threshold_gap(numeric, bigint, timestamptz, text) IS
	'internal: threshold_gap''s answer for a known cart value of any size';

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
	-- NaN and Infinity are above every number
	IF NOT (cart_total >= 0 AND cart_total < 1e15) THEN
		RAISE EXCEPTION 'cart_total must be a number from 0 to 1e15, not %', cart_total
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT * FROM @extschema@._threshold_gap(cart_total, t, at, threshold_gap.currency);
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
	total numeric;
BEGIN
	total := @extschema@._cart_total(t, product_ids, quantities);
	IF total IS NULL THEN
		-- the cart's value is unknown: the thresholds, whether reached unknown
		RETURN QUERY
		SELECT a.threshold_id, a.kind, a.amount, a.reward, NULL::boolean, NULL::numeric, false
		FROM @extschema@._active_thresholds(t, at, threshold_gap.currency) a
		ORDER BY a.amount, a.threshold_id;
		RETURN;
	END IF;
	RETURN QUERY
	SELECT * FROM @extschema@._threshold_gap(total, t, at, threshold_gap.currency);
END
$$;
COMMENT ON FUNCTION @extschema@.threshold_gap(bigint[], int[], bigint, timestamptz, text) IS
	'the same for a cart of products and quantities (quantities NULL: one each), priced from the catalog as of the last refresh; reached and gap NULL when a product is unknown or has no price';

-- ---- model: in-stock candidates sorted by price -----------------------------

-- The pairs of categories whose products substitute each other (pairs: the
-- names, flattened, {a1, b1, a2, b2, ...}), numbered by their position in
-- categories (from 1), flattened and sorted; a pair of a category not there
-- is left out.  Gap fillers never combine two such products.  (It reads no
-- table: on Citus a function that reads a distributed model inside the
-- publishing query cannot be planned on the tenant's worker.)
CREATE FUNCTION @extschema@._category_pair_numbers(categories text[], pairs text[])
RETURNS int[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(array_agg(v.n ORDER BY p.a, p.b, v.o), '{}')
	FROM (SELECT array_position(categories, pairs[2 * i - 1]) AS a, array_position(categories, pairs[2 * i]) AS b
		  FROM generate_series(1, coalesce(cardinality(pairs), 0) / 2) i) p,
		 LATERAL (VALUES (1, p.a), (2, p.b)) v(o, n)
	WHERE p.a IS NOT NULL AND p.b IS NOT NULL
$$;

-- One row per tenant: the in-stock products with a price, as parallel
-- arrays sorted by (price in cents, product id), a price below the cent
-- rounded down (the search takes an offer that adds at least the gap, in
-- cents rounded up, to close it; a 9.995 rounded to 10.00 was said to
-- close a gap of 10.00 it leaves open), with their category and
-- variant group numbers and the categories that substitute each other.
-- gap_fillers reads the row once per backend and refresh (keyed by
-- built_at), so a request never scans the catalog.
-- Incrementally kept as it is when no product's catalog facts changed
-- (product_model notes them, _changed_products) and the categories that
-- substitute each other are those it holds: the row holds nothing else,
-- and rebuilding it read all of product_model (0.4-0.7 s of CPU at 100,000
-- products).  When only the substitutes moved (new orders moved the
-- categories' pair counts: an hour of the 10M-line bench shop's orders
-- does), the row is published again with them, its products' arrays as
-- they were, not aggregated again from product_model.
CREATE FUNCTION @extschema@._build_threshold_candidates(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- the pairs of categories whose products substitute each other, by name
	substitute_pairs text[] := ARRAY(
		SELECT x.name FROM @extschema@.category_model s,
			   LATERAL (VALUES (1, s.category), (2, s.other_category)) x(o, name)
		WHERE s.tenant_id = _build_threshold_candidates.tenant_id AND s.substitutes
		ORDER BY s.category, s.other_category, x.o);
BEGIN
	IF incremental AND @extschema@._changed_products('product_model') = '{}' THEN
		IF NOT EXISTS (SELECT FROM @extschema@.threshold_candidates c
					   WHERE c.tenant_id = _build_threshold_candidates.tenant_id
						 AND c.substitutes IS DISTINCT FROM @extschema@._category_pair_numbers(c.categories, substitute_pairs)) THEN
			RETURN @extschema@._kept_rows('threshold_candidates', tenant_id);
		END IF;
		-- (incremental: not on Citus, where _publish could not read the row
		-- it replaces; a new built_at, which gap_fillers' caches are keyed by)
		RETURN @extschema@._publish('threshold_candidates', tenant_id, format($q$
			SELECT c.tenant_id, pg_catalog.clock_timestamp() AS built_at, c.products, c.categories,
				   c.category_of, c.prices, c.product_ids, c.group_of,
				   @extschema@._category_pair_numbers(c.categories, %L::text[]) AS substitutes
			FROM @extschema@.threshold_candidates c WHERE c.tenant_id OPERATOR(pg_catalog.=) $1$q$, substitute_pairs));
	END IF;
	RETURN @extschema@._publish('threshold_candidates', tenant_id, format($q$
		SELECT x.*, @extschema@._category_pair_numbers(x.categories, %L::text[]) AS substitutes
		FROM (SELECT $1 AS tenant_id, pg_catalog.clock_timestamp() AS built_at, count(*) AS products,
					 coalesce(array_agg(DISTINCT c.category COLLATE "C" ORDER BY c.category COLLATE "C")
							  FILTER (WHERE c.category IS NOT NULL), '{}') AS categories,
					 array_agg(c.category_no ORDER BY c.cents, c.product_id) AS category_of,
					 array_agg(c.cents ORDER BY c.cents, c.product_id) AS prices,
					 array_agg(c.product_id ORDER BY c.cents, c.product_id) AS product_ids,
					 array_agg(c.group_no ORDER BY c.cents, c.product_id) AS group_of
			  FROM (SELECT m.product_id, floor(m.price * 100)::bigint AS cents, m.category,
						   CASE WHEN m.category IS NULL THEN 0
								ELSE dense_rank() OVER (PARTITION BY m.category IS NULL
														ORDER BY m.category COLLATE "C")::int END AS category_no,
						   CASE WHEN m.variant_group IS NULL THEN 0
								ELSE dense_rank() OVER (PARTITION BY m.variant_group IS NULL
														ORDER BY m.variant_group COLLATE "C")::int END AS group_no
					FROM @extschema@.product_model m
					WHERE m.tenant_id = $1 AND m.in_stock AND floor(m.price * 100) > 0) c
			  HAVING count(*) > 0) x$q$, substitute_pairs));
END
$$;

SELECT @extschema@._define_model('threshold_candidates',
	$$tenant_id bigint PRIMARY KEY, built_at timestamptz NOT NULL, products int NOT NULL,
	  categories text[] NOT NULL, category_of int[] NOT NULL,
	  prices bigint[] NOT NULL, product_ids bigint[] NOT NULL,
	  group_of int[] NOT NULL, substitutes int[] NOT NULL$$,
	NULL, 50, '@extschema@._build_threshold_candidates(bigint, boolean)',
	'per tenant: in-stock products with a price as arrays sorted by (price in cents, product id), with their category and variant group numbers (0: none), and the pairs of categories whose products substitute each other (numbered as in categories, from 1; flattened); read by gap_fillers');

-- ---- items that close the gap ------------------------------------------------

CREATE FUNCTION @extschema@._gap_fill(tenant_id bigint, built_at timestamptz, gap numeric,
	cart bigint[], excluded_ids bigint[], excluded_categories text[],
	relevant_ids bigint[], relevance float8[], k int, max_items int, never_a bigint[], never_b bigint[])
RETURNS TABLE (product_ids bigint[], added numeric, relevance float8, score float8)
AS 'MODULE_PATHNAME', 'upsell_gap_fill'
LANGUAGE C STABLE PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION @extschema@._gap_fill(bigint, timestamptz, numeric, bigint[], bigint[], text[], bigint[], float8[], int, int, bigint[], bigint[]) IS
	'internal: the bounded search behind upsell.gap_fillers over the threshold_candidates model; never_a[i] and never_b[i] are never in one offer';

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
	blocked_ids bigint[];		-- what the cart blocks (_cart_blocked)
	blocked_groups text[];
	blocked_categories text[];
	never_a bigint[];			-- the merchant's "never a next to b": not in one offer
	never_b bigint[];
	has_tiers boolean;			-- the tenant has volume tiers
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
	IF total IS NULL THEN
		RETURN;					-- the cart's value is unknown (see _cart_total)
	END IF;
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
	-- what upsell.is_excluded(t, product, category, items) forbids and the
	-- cart's substitutes (upsell.is_substitute), as sets; _gap_fill takes
	-- the variant groups as their products (below)
	SELECT b.ids, b.variant_groups, b.categories INTO blocked_ids, blocked_groups, blocked_categories
	FROM @extschema@._cart_blocked(t, items, true) b;
	SELECT coalesce(array_agg(e.product_id), '{}'), coalesce(array_agg(e.with_product_id), '{}')
	INTO never_a, never_b
	FROM @extschema@.exclusions e
	WHERE e.tenant_id = t AND e.with_product_id IS NOT NULL;
	has_tiers := EXISTS (SELECT FROM @extschema@.volume_tiers v WHERE v.tenant_id = t);

	RETURN QUERY
	WITH evidence AS (
		-- noisy-OR of the pair scores of every cart item (relevance only)
		SELECT p.other_id,
			   1 - exp(sum(ln(1 - least(p.score, 0.999999))::numeric)::float8) AS score
		FROM @extschema@.pair_model p
		WHERE p.tenant_id = t AND p.product_id = ANY (items) AND p.other_id <> ALL (items)
		GROUP BY p.other_id),
	complements AS (
		-- relative to the cart's best complement that may be offered (in
		-- stock, not excluded nor a substitute of the cart), which gets
		-- relevance 1: an excluded best complement made the rest look weak
		SELECT e.other_id, e.score / nullif(max(e.score) OVER (), 0) AS score
		FROM evidence e
		JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = e.other_id
		WHERE m.in_stock AND e.other_id <> ALL (blocked_ids)
		  AND NOT coalesce(m.variant_group = ANY (blocked_groups) OR m.category = ANY (blocked_categories), false)),
	fill AS MATERIALIZED (
		SELECT f.*
		FROM (SELECT coalesce(array_agg(c.other_id ORDER BY c.other_id), '{}') AS ids,
					 coalesce(array_agg(c.score ORDER BY c.other_id), '{}') AS scores
			  FROM complements c) r,
			 LATERAL @extschema@._gap_fill(t, version, target - total, items,
				 blocked_ids || ARRAY(SELECT g.product_id FROM @extschema@.product_model g
									  WHERE g.tenant_id = t AND g.variant_group = ANY (blocked_groups)),
				 blocked_categories, r.ids, r.scores, k, max_items, never_a, never_b)
				 WITH ORDINALITY AS f(product_ids, added, relevance, score, ord)),
	-- the search adds list prices (in cents rounded down: its candidates
	-- are built at the refresh, tiers change at any time); a product with
	-- volume tiers costs its tier's price from 1 unit (a category's sale
	-- of 25% from 1): what that changes, per product of the offers, read
	-- (one _tier_offers) only when the tenant has tiers
	offered AS (
		SELECT coalesce(array_agg(DISTINCT u.id), '{}') AS ids
		FROM fill f, unnest(f.product_ids) AS u(id)
		WHERE has_tiers),
	tier_delta AS (
		SELECT o.ids[t1.n] AS product_id,
			   t1.unit_price - floor(t1.price * 100) * 0.01 AS delta
		FROM offered o,
			 LATERAL @extschema@._tier_offers(t, o.ids, array_fill(1, ARRAY[cardinality(o.ids)]), true) t1),
	priced AS (
		SELECT f.*, f.added + coalesce((SELECT sum(d.delta) FROM tier_delta d
										WHERE d.product_id = ANY (f.product_ids)), 0) AS paid
		FROM fill f)
	-- an offer the tiers' lower prices leave short of the threshold is none
	SELECT (row_number() OVER (ORDER BY p.ord))::int, p.product_ids, p.paid, total + p.paid,
		   total + p.paid - target, target, p.relevance, p.score
	FROM priced p
	WHERE total + p.paid >= target
	ORDER BY p.ord;
END
$$;
COMMENT ON FUNCTION @extschema@.gap_fillers(bigint[], int[], int, int, bigint, text, timestamptz) IS
	'the k best offers of 1 to max_items (<= 3) in-stock products, not in the cart nor excluded, that close the gap to the next threshold; score = gap / added * (1 + mean relevance to the cart) * 0.8^(items - 1)';
