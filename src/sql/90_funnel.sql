
-- ===========================================================================
-- Funnel stages: one ranked list of offers per page, every tactic merged
-- ===========================================================================
--
-- Each stage gathers candidate offers from the tactics (models read with
-- index lookups), then _merge_offers applies the merchant's rules: pinned
-- offers first, exclusions and stock, one offer per product, offer types
-- interleaved by weighted score, at most max_offers, and the experiment
-- variant's strategy when one is named.

CREATE TYPE @extschema@.offer AS (
	stage		text,
	offer_type	text,
	product_ids	bigint[],
	"rank"		int,
	score		float8,
	discount	numeric,
	reason		text
);
COMMENT ON TYPE @extschema@.offer IS
	'one offer of a funnel stage: its type, the product(s) offered, rank, score, discount (a fraction of the price) and reason';

CREATE TABLE @extschema@.offers (
	offer_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text NOT NULL CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	trigger_product_id bigint,
	trigger_category text,
	min_cart_value numeric CHECK (min_cart_value >= 0),
	product_ids	bigint[] NOT NULL CHECK (cardinality(product_ids) > 0 AND array_position(product_ids, NULL) IS NULL),
	discount	numeric NOT NULL DEFAULT 0 CHECK (discount >= 0 AND discount < 1),
	priority	int NOT NULL DEFAULT 0,
	active_from	timestamptz,
	active_to	timestamptz,
	reason		text,
	CHECK (num_nonnulls(trigger_product_id, trigger_category, min_cart_value) <= 1),
	CHECK (active_to IS NULL OR active_from IS NULL OR active_to > active_from)
);
CREATE INDEX ON @extschema@.offers (tenant_id, stage);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.offers', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.offers', 'offer_id')::regclass, '');
COMMENT ON TABLE @extschema@.offers IS
	'hand-made offers: shown first (by priority) on their stage while active, when their trigger matches: a product on the page/in the cart/order, a category, a cart value, or always (no trigger)';

CREATE TABLE @extschema@.stage_settings (
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text NOT NULL CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	max_offers	int NOT NULL CHECK (max_offers >= 0),
	type_weights jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(type_weights) = 'object'),
	PRIMARY KEY (tenant_id, stage)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stage_settings', '');
COMMENT ON TABLE @extschema@.stage_settings IS
	'per tenant and stage: the maximum number of offers (default 6) and weights per offer type that interleave the tactics (defaults: complement 1, bundle/gap_filler/restock 0.9, upgrade/subscription 0.8, quantity_tier 0.7, downsell 0.6)';

-- Offer types a request may show: all (NULL) unless an experiment's variant
-- says otherwise (upsell.variant_offer_types, the experiments layer).
CREATE FUNCTION @extschema@._allowed_offer_types(experiment text, unit_id text, stage text)
RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF experiment IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN @extschema@.variant_offer_types(experiment, unit_id, stage);
END
$$;

CREATE FUNCTION @extschema@._merge_offers(stage text, t bigint, context bigint[],
	cart_value numeric, candidates @extschema@.offer[], experiment text, unit_id text)
RETURNS SETOF @extschema@.offer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	settings record;
	allowed text[] := @extschema@._allowed_offer_types(experiment, unit_id, stage);
	shown bigint[] := '{}';
	o record;
	n int := 0;
BEGIN
	-- built-in weights, overridden per type by stage_settings.type_weights:
	-- complements lead, other tactics interleave just below them
	SELECT coalesce(s.max_offers, 6) AS max_offers,
		   '{"complement": 1, "bundle": 0.9, "gap_filler": 0.9, "restock": 0.9, "upgrade": 0.8,
			 "subscription": 0.8, "quantity_tier": 0.7, "downsell": 0.6}'::jsonb
		   || coalesce(s.type_weights, '{}') AS weights
	INTO settings
	FROM (SELECT 1) one
	LEFT JOIN LATERAL (SELECT * FROM @extschema@.stage_settings x
					   WHERE x.stage = _merge_offers.stage AND x.tenant_id IN (t, 0)
					   ORDER BY x.tenant_id DESC LIMIT 1) s ON true;

	FOR o IN
		WITH pinned AS (
			SELECT 'pinned'::text AS offer_type, f.product_ids, NULL::float8 AS score, f.discount,
				   coalesce(f.reason, 'merchant offer') AS reason,
				   0 AS tier, f.priority::float8 AS weight, f.offer_id AS tiebreak
			FROM @extschema@.offers f
			WHERE f.tenant_id = t AND f.stage = _merge_offers.stage
			  AND (f.active_from IS NULL OR f.active_from <= now())
			  AND (f.active_to IS NULL OR f.active_to > now())
			  AND (num_nonnulls(f.trigger_product_id, f.trigger_category, f.min_cart_value) = 0
				   OR f.trigger_product_id = ANY (context)
				   OR f.min_cart_value <= cart_value
				   OR f.trigger_category IN (SELECT m.category FROM @extschema@.product_model m
											 WHERE m.tenant_id = t AND m.product_id = ANY (context)))),
		proposed AS (
			SELECT * FROM pinned
			UNION ALL
			SELECT c.offer_type, c.product_ids, c.score, c.discount, c.reason, 1,
				   coalesce((settings.weights ->> c.offer_type)::float8, 1), c.product_ids[1]
			FROM unnest(candidates) c
			WHERE c.score IS NOT NULL),
		-- the proposed products that may be shown: in stock and not excluded,
		-- looked up once each rather than once per offer
		showable AS (
			SELECT coalesce(array_agg(m.product_id), '{}') AS ids
			FROM @extschema@.product_model m
			WHERE m.tenant_id = t
			  AND m.product_id IN (SELECT DISTINCT unnest(x.product_ids) FROM proposed x)
			  AND m.in_stock
			  AND NOT EXISTS (SELECT FROM @extschema@.exclusions e
							  WHERE e.tenant_id = t
								AND ((e.product_id = m.product_id
									  AND (e.with_product_id IS NULL OR e.with_product_id = ANY (context)))
									 OR e.category = m.category))),
		offered AS (
			SELECT x.* FROM proposed x, showable
			WHERE (allowed IS NULL OR x.offer_type = ANY (allowed))
			  AND x.product_ids <@ showable.ids
			  -- not the page's/cart's/order's own products (but more of a cart
			  -- line is what a quantity tier offers, and a subscription is to
			  -- what was just bought)
			  AND (x.offer_type IN ('quantity_tier', 'subscription') OR NOT x.product_ids && context))
		-- scores are comparable within a type only: scale each type's best
		-- (among what may be shown) to its weight, so the types interleave
		-- instead of queueing; pinned offers go first, by priority
		SELECT f.*,
			   CASE WHEN f.tier = 0 THEN -f.weight
					ELSE -(f.weight * f.score / nullif(max(f.score) OVER (PARTITION BY f.offer_type), 0)) END AS sort
		FROM offered f
		ORDER BY f.tier, sort NULLS LAST, f.tiebreak, f.offer_type
	LOOP
		EXIT WHEN n >= settings.max_offers;
		-- one offer per product
		CONTINUE WHEN o.product_ids && shown;
		n := n + 1;
		shown := shown || o.product_ids;
		RETURN NEXT ROW(stage, o.offer_type, o.product_ids, n, o.score, o.discount, o.reason)::@extschema@.offer;
	END LOOP;
END
$$;

-- ---- pre-purchase: the product page ----------------------------------------
--
-- Precomputed at refresh for every product (complements, upgrades, bundles,
-- merged and ranked), so that the page reads a few rows by index; merchant
-- offers, exclusions and stock still apply live in the view.

CREATE FUNCTION @extschema@._type_weight(offer_type text, t bigint, stage text)
RETURNS float8
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN coalesce(
	(SELECT (s.type_weights ->> offer_type)::float8 FROM @extschema@.stage_settings s
	 WHERE s.stage = _type_weight.stage AND s.tenant_id IN (t, 0) AND s.type_weights ? offer_type
	 ORDER BY s.tenant_id DESC LIMIT 1),
	('{"complement": 1, "bundle": 0.9, "gap_filler": 0.9, "restock": 0.9, "upgrade": 0.8,
	   "subscription": 0.8, "quantity_tier": 0.7, "downsell": 0.6}'::jsonb ->> offer_type)::float8,
	1);

CREATE FUNCTION @extschema@._build_product_page_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %1$s (tenant_id, product_id, offer_type, product_ids, sort, score, discount, reason)
		SELECT tenant_id, product_id, offer_type, product_ids, sort, score, discount, reason
		FROM (SELECT c.*, row_number() OVER (PARTITION BY c.tenant_id, c.product_id
											 ORDER BY c.sort DESC, c.product_ids, c.offer_type) AS pos
			  FROM (SELECT DISTINCT ON (c.tenant_id, c.product_id, c.product_ids) c.*
					FROM (SELECT c.*,
								 c.score / nullif(max(c.score) OVER (PARTITION BY c.tenant_id, c.product_id, c.offer_type), 0)
								 AS sort
						  FROM (SELECT p.tenant_id, p.product_id, 'complement' AS offer_type,
									   ARRAY[p.other_id] AS product_ids, p.score, 0::numeric AS discount,
									   'frequently bought together' AS reason
								FROM %2$s p
								UNION ALL
								SELECT u.tenant_id, u.product_id, 'upgrade', ARRAY[u.candidate_id], u.score, 0,
									   CASE WHEN u.paths > 0
											THEN format('%%s of %%s customers who bought it later bought this', u.paths, u.buyers)
											WHEN u.same_group THEN 'the next step up in the same variant group'
											ELSE 'a step up in the same category' END
								FROM %3$s u
								JOIN %5$s a ON a.tenant_id = u.tenant_id AND a.product_id = u.product_id
								JOIN %5$s m ON m.tenant_id = u.tenant_id AND m.product_id = u.candidate_id
								WHERE u.kind = 'upgrade' AND m.price <= a.price * 1.5
								UNION ALL
								SELECT b.tenant_id, b.product_id, 'bundle', b.items, b.lift, 0.10,
									   format('bought together in %%s orders, %%s times more often than by chance',
											  b.count, round(b.lift::numeric, 1))
								FROM %4$s b) c) c
					ORDER BY c.tenant_id, c.product_id, c.product_ids, c.sort DESC, c.offer_type) c) c
		WHERE c.pos <= 12$q$,
		@extschema@._slot_table('product_page_model', slot),
		@extschema@._slot_table('pair_model', slot),
		@extschema@._slot_table('upgrade_model', slot),
		@extschema@._slot_table('bundle_model', slot),
		@extschema@._slot_table('product_model', slot));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('product_page_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, offer_type text NOT NULL,
	  product_ids bigint[] NOT NULL, sort float8 NOT NULL, score float8 NOT NULL,
	  discount numeric NOT NULL, reason text NOT NULL$$,
	ARRAY['(product_id, tenant_id)'], 95, '@extschema@._build_product_page_model(text, boolean)',
	'per product: its 12 best product-page offers (complements, upgrades, bundles); sort is the score relative to the best of its type, weighted at request time');

-- The products of the rows before, for "one offer per product".
CREATE AGGREGATE @extschema@._array_union(anycompatiblearray) (
	SFUNC = pg_catalog.array_cat,
	STYPE = anycompatiblearray,
	INITCOND = '{}'
);

CREATE VIEW @extschema@.product_page_offers AS
SELECT z.tenant_id, z.product_id, 'product_page'::text AS stage, z.offer_type, z.product_ids,
	   z."rank", z.score, z.discount, z.reason
FROM (SELECT y.*,
			 (row_number() OVER (PARTITION BY y.tenant_id, y.product_id ORDER BY y.pos))::int AS "rank"
FROM (SELECT x.*,
			 @extschema@._array_union(x.product_ids) OVER (
				PARTITION BY x.tenant_id, x.product_id ORDER BY x.pos
				ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
	  FROM (SELECT c.*, row_number() OVER (PARTITION BY c.tenant_id, c.product_id
										   ORDER BY c.tier, c.sort DESC, c.product_ids) AS pos
			FROM (SELECT p.tenant_id, p.product_id, 1 AS tier, p.offer_type, p.product_ids,
						 p.sort * @extschema@._type_weight(p.offer_type, p.tenant_id, 'product_page') AS sort,
						 p.score, p.discount, p.reason
				  FROM @extschema@.product_page_model p
				  UNION ALL
				  -- pinned merchant offers: always, or triggered by the product or its category
				  SELECT m.tenant_id, m.product_id, 0, 'pinned', f.product_ids, f.priority,
						 NULL, f.discount, coalesce(f.reason, 'merchant offer')
				  FROM @extschema@.product_model m
				  JOIN @extschema@.offers f ON f.tenant_id = m.tenant_id AND f.stage = 'product_page'
				  WHERE (f.active_from IS NULL OR f.active_from <= now())
					AND (f.active_to IS NULL OR f.active_to > now())
					AND (num_nonnulls(f.trigger_product_id, f.trigger_category, f.min_cart_value) = 0
						 OR f.trigger_product_id = m.product_id OR f.trigger_category = m.category)) c
			-- live: stock as of the last refresh, exclusions as of now
			WHERE (c.offer_type = 'bundle' OR NOT c.product_id = ANY (c.product_ids))
			  AND NOT EXISTS (
				SELECT FROM unnest(c.product_ids) o(id)
				LEFT JOIN @extschema@.product_model m ON m.tenant_id = c.tenant_id AND m.product_id = o.id
				WHERE NOT coalesce(m.in_stock, false)
				   OR EXISTS (SELECT FROM @extschema@.exclusions e
							  WHERE e.tenant_id = c.tenant_id
								AND ((e.product_id = o.id AND (e.with_product_id IS NULL OR e.with_product_id = c.product_id))
									 OR e.category = m.category)))) x) y
-- one offer per product: none of a row's products (but the page's own, in a
-- bundle) was offered by a row before it
WHERE NOT pg_catalog.array_remove(y.product_ids, y.product_id) && y.before) z
WHERE z."rank" <= coalesce((SELECT s.max_offers FROM @extschema@.stage_settings s
						   WHERE s.stage = 'product_page' AND s.tenant_id IN (z.tenant_id, 0)
						   ORDER BY s.tenant_id DESC LIMIT 1), 6);
COMMENT ON VIEW @extschema@.product_page_offers IS
	'pre-purchase offers per product (pinned merchant offers, complements, upgrades, bundles), ranked; query it filtered by product_id (and tenant_id)';

CREATE FUNCTION @extschema@.product_page_offers(product_id bigint, tenant_id bigint DEFAULT NULL,
	experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT o.stage, o.offer_type, o.product_ids,
		   (row_number() OVER (ORDER BY o."rank"))::int, o.score, o.discount, o.reason
	FROM @extschema@.product_page_offers o,
		 (SELECT @extschema@._allowed_offer_types(product_page_offers.experiment,
												  product_page_offers.unit_id, 'product_page') AS types) a
	WHERE o.tenant_id = @extschema@._tenant(product_page_offers.tenant_id)
	  AND o.product_id = product_page_offers.product_id
	  AND (a.types IS NULL OR o.offer_type = ANY (a.types))
	ORDER BY o."rank";
END;
COMMENT ON FUNCTION @extschema@.product_page_offers(bigint, bigint, text, text) IS
	'the product page''s offers for one product, tenant-checked, restricted to the experiment variant''s offer types when an experiment and unit are given';

-- ---- during purchase: the cart -------------------------------------------------

CREATE FUNCTION @extschema@.cart_offers(cart bigint[], quantities int[] DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	items bigint[] := ARRAY(SELECT DISTINCT x FROM unnest(cart) x WHERE x IS NOT NULL);
	cart_value numeric;
	candidates @extschema@.offer[];
BEGIN
	IF quantities IS NOT NULL AND cardinality(quantities) <> cardinality(cart) THEN
		RAISE EXCEPTION 'cart has % products but quantities has % entries', cardinality(cart), cardinality(quantities)
			USING ERRCODE = 'array_subscript_error';
	END IF;
	SELECT sum(m.price * coalesce(quantities[i], 1)) INTO cart_value
	FROM unnest(cart) WITH ORDINALITY c(id, i)
	JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = c.id;

	-- complements of the cart, then bestsellers far below them to fill the slots;
	-- stock and exclusions are applied by _merge_offers
	candidates := ARRAY(
		SELECT ROW('cart', 'complement', ARRAY[e.product_id], NULL, e.score, 0,
				   'bought together with the cart')::@extschema@.offer
		FROM @extschema@._complements_of(t, items, 12) e)
	|| ARRAY(
		SELECT ROW('cart', 'complement', ARRAY[m.product_id], NULL, 1e-6 / m.popularity_rank, 0,
				   'popular')::@extschema@.offer
		FROM @extschema@.product_model m
		WHERE m.tenant_id = t AND m.in_stock
		ORDER BY m.popularity_rank
		LIMIT 8)
	-- what closes the gap to the next threshold (free shipping, a reward)
	|| ARRAY(
		SELECT ROW('cart', 'gap_filler', g.product_ids, NULL, g.score, 0,
				   format('adds %s to reach %s (%s over)', g.added, g.threshold, g.overshoot))::@extschema@.offer
		FROM @extschema@.gap_fillers(cart, quantities, 6, 2, t) g)
	-- the better version of a cart line: its best stored upgrade within 1.5x
	-- the price (same variant group first), one per line, in one lookup
	|| ARRAY(
		SELECT ROW('cart', 'upgrade', ARRAY[u.candidate_id], NULL, u.score, 0,
				   format('instead of %s: %s; +%s (%s%% more)', coalesce(u.title, u.product_id::text),
						  CASE WHEN u.paths > 0
							   THEN format('%s of %s customers who bought it later bought this', u.paths, u.buyers)
							   WHEN u.same_group THEN 'the next step up in the same variant group'
							   ELSE 'a step up in the same category' END,
						  u.extra, round(100 * u.extra / u.price)))::@extschema@.offer
		FROM (SELECT DISTINCT ON (u.product_id) u.*, a.title, a.price, m.price - a.price AS extra
			  FROM @extschema@.upgrade_model u
			  JOIN @extschema@.product_model a ON a.tenant_id = u.tenant_id AND a.product_id = u.product_id
			  JOIN @extschema@.product_model m ON m.tenant_id = u.tenant_id AND m.product_id = u.candidate_id
			  WHERE u.tenant_id = t AND u.product_id = ANY (items) AND u.kind = 'upgrade'
				AND m.price > a.price AND m.price <= a.price * 1.5 AND m.in_stock
			  ORDER BY u.product_id, u.same_group DESC, u.score DESC, u.candidate_id) u)
	-- the next volume tier of a cart line (only where the merchant set tiers)
	|| ARRAY(
		SELECT ROW('cart', 'quantity_tier', ARRAY[c.id], NULL,
				   q.total_saving / nullif(q.total_saving + q.new_unit_price * q.next_quantity, 0),
				   round(1 - q.new_unit_price / q.unit_price, 4), q.reason)::@extschema@.offer
		FROM unnest(cart, coalesce(quantities, array_fill(1, ARRAY[cardinality(cart)]))) c(id, qty),
			 @extschema@.quantity_offer(c.id, greatest(c.qty, 1), t) q
		WHERE c.id IS NOT NULL AND q.next_quantity IS NOT NULL
		  AND EXISTS (SELECT FROM @extschema@.volume_tiers v WHERE v.tenant_id = t));
	RETURN QUERY SELECT * FROM @extschema@._merge_offers('cart', t, items, cart_value,
														 candidates, experiment, unit_id);
END
$$;
COMMENT ON FUNCTION @extschema@.cart_offers(bigint[], int[], bigint, text, text) IS
	'during-purchase offers for a cart: pinned merchant offers, complements of the cart, gap fillers to the next threshold, upgrades of cart lines and quantity tiers, interleaved by weighted score';

-- ---- post-purchase: the thank-you page and the emails after it --------------

CREATE FUNCTION @extschema@.post_purchase_offers(order_items bigint[], customer_id bigint DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL,
	at timestamptz DEFAULT now())
RETURNS SETOF @extschema@.offer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	items bigint[] := ARRAY(SELECT DISTINCT x FROM unnest(order_items) x WHERE x IS NOT NULL);
	candidates @extschema@.offer[];
BEGIN
	candidates := ARRAY(
		-- complements of what was just bought (evidence only: no bestsellers here)
		SELECT ROW('post_purchase', 'complement', ARRAY[e.product_id], NULL, e.score, 0,
				   'goes with your order')::@extschema@.offer
		FROM @extschema@._complements_of(t, items, 12) e)
	|| ARRAY(
		-- consumables of this customer coming due within two weeks
		SELECT ROW('post_purchase', 'restock', ARRAY[i.product_id], NULL, i.confidence, 0,
				   CASE WHEN i.next_due <= at THEN format('due again now (every %s days)', round(i.interval_days::numeric))
						ELSE format('due again in %s days (every %s days)',
									round(extract(epoch FROM i.next_due - at)::numeric / 86400),
									round(i.interval_days::numeric)) END)::@extschema@.offer
		FROM @extschema@.purchase_interval_model i
		WHERE i.tenant_id = t AND i.customer_id = post_purchase_offers.customer_id
		  AND i.next_due BETWEEN at - interval '7 days' AND at + interval '14 days'
		  AND i.confidence > 0
		ORDER BY i.confidence DESC, i.product_id
		LIMIT 5)
	|| ARRAY(
		-- bought at least 3 times at regular intervals: subscribe and save
		SELECT ROW('post_purchase', 'subscription', ARRAY[i.product_id], NULL, 1 / (1 + i.cv), 0,
				   format('bought %s times, every %s days: subscribe', i.purchases, round(i.median_gap_days::numeric)))::@extschema@.offer
		FROM @extschema@.purchase_interval_model i
		WHERE i.tenant_id = t AND i.customer_id = post_purchase_offers.customer_id
		  AND i.purchases >= 3 AND i.cv <= 0.5
		ORDER BY i.cv, i.product_id
		LIMIT 3);
	-- restocks and subscriptions are of products the customer owns: only the
	-- order's own products are context
	RETURN QUERY SELECT * FROM @extschema@._merge_offers('post_purchase', t, items, NULL,
														 candidates, experiment, unit_id);
END
$$;
COMMENT ON FUNCTION @extschema@.post_purchase_offers(bigint[], bigint, bigint, text, text, timestamptz) IS
	'post-purchase offers for an order just placed (its products) and its customer: complements of the order, restocks coming due, a subscription pitch, interleaved by weighted score';

-- The recent orders the post-purchase view serves (the last 90 days, or all
-- orders when no order time is registered).
CREATE FUNCTION @extschema@._build_order_model(slot text, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
	recent text := 'true';
BEGIN
	IF (SELECT s.ordered_at IS NOT NULL FROM @extschema@.order_source s) THEN
		recent := format('l.ordered_at >= (SELECT max(m.max_ordered_at) FROM %s m) - interval ''90 days''',
						 @extschema@._slot_table('cooccurrence_model', slot));
	END IF;
	EXECUTE format($q$
		INSERT INTO %s (tenant_id, order_key, order_id, customer_id, ordered_at, items)
		SELECT l.tenant_id, l.order_key, min(l.order_id), min(l.customer_id), max(l.ordered_at),
			   array_agg(DISTINCT l.product_id)
		FROM @extschema@.order_lines l
		WHERE l.quantity > 0 AND l.product_id IS NOT NULL AND l.order_key IS NOT NULL AND %s
		GROUP BY l.tenant_id, l.order_key$q$,
		@extschema@._slot_table('order_model', slot), recent);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

SELECT @extschema@._define_model('order_model',
	$$tenant_id bigint NOT NULL, order_key bigint NOT NULL, order_id text NOT NULL,
	  customer_id bigint, ordered_at timestamptz, items bigint[] NOT NULL,
	  PRIMARY KEY (tenant_id, order_key)$$,
	ARRAY['(order_id)', '(tenant_id, customer_id, ordered_at)'], 96,
	'@extschema@._build_order_model(text, boolean)',
	'the orders of the last 90 days (all orders without an order time): products and customer, for the post-purchase view');

CREATE VIEW @extschema@.post_purchase_offers AS
SELECT o.tenant_id, o.order_id, o.customer_id, o.ordered_at, f.*
FROM @extschema@.order_model o
CROSS JOIN LATERAL @extschema@.post_purchase_offers(o.items, o.customer_id, o.tenant_id) f;
COMMENT ON VIEW @extschema@.post_purchase_offers IS
	'post-purchase offers per recent order (complements of the order, restocks, subscription pitch); query it filtered by order_id or customer_id';
