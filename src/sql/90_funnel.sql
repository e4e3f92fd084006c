
-- ===========================================================================
-- Funnel stages: one ranked list of offers per page, every tactic merged
-- ===========================================================================
--
-- Each stage gathers candidate offers from the tactics (models read with
-- index lookups), then the merge (src/core/offers.c) applies the merchant's
-- rules: pinned offers first, exclusions and stock, one offer per product,
-- offer types interleaved by weighted score, at most max_offers, and the
-- experiment variant's offer types when one is named.  The product page and
-- the cart are served in C (src/serving_*.c) from one model read each; the
-- merchant's rules are cached per backend until serving_state or
-- model_state says they or the models changed.

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

CREATE TABLE IF NOT EXISTS @extschema@.offers (
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
	CHECK (active_to IS NULL OR active_from IS NULL OR active_to > active_from),
	-- NaN and Infinity are above every number; money is bounded
	CONSTRAINT offers_min_cart_value_finite CHECK (min_cart_value < 1e15)
);
CREATE INDEX IF NOT EXISTS offers_tenant_id_stage_idx ON @extschema@.offers (tenant_id, stage);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.offers', '');
SELECT pg_catalog.pg_extension_config_dump(
	pg_catalog.pg_get_serial_sequence('@extschema@.offers', 'offer_id')::regclass, '');
COMMENT ON TABLE @extschema@.offers IS
	'hand-made offers: shown first (by priority) on their stage while active, when their trigger matches: a product on the page/in the cart/order, a category, a cart value, or always (no trigger)';

CREATE TABLE IF NOT EXISTS @extschema@.stage_settings (
	tenant_id	bigint NOT NULL DEFAULT 0,
	stage		text NOT NULL CHECK (stage IN ('product_page', 'cart', 'post_purchase')),
	max_offers	int NOT NULL CHECK (max_offers >= 0),
	type_weights jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(type_weights) = 'object'),
	CONSTRAINT stage_settings_max_offers_bounded CHECK (max_offers <= 1000),
	-- every weight a number from 0 to 1000 (a float8 on the serving path)
	CONSTRAINT stage_settings_type_weights_numbers CHECK (NOT pg_catalog.jsonb_path_exists(type_weights,
		'$.* ? (@.type() != "number" || @ < 0 || @ > 1000)')),
	PRIMARY KEY (tenant_id, stage)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stage_settings', '');
COMMENT ON TABLE @extschema@.stage_settings IS
	'per tenant and stage: the maximum number of offers (default 6) and weights per offer type that interleave the tactics (defaults: complement 1, bundle/gap_filler/restock 0.9, upgrade/subscription 0.8, quantity_tier 0.7, downsell 0.6)';

-- every table of the merchant's rules draws a new serving_state.config_version
DO $$
DECLARE
	rules text;
BEGIN
	FOREACH rules IN ARRAY ARRAY['offers', 'exclusions', 'stage_settings', 'thresholds',
								 'volume_tiers', 'order_source', 'product_source'] LOOP
		EXECUTE format('CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
					   'ON @extschema@.%I FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._rules_changed()',
					   rules);
	END LOOP;
END
$$;

-- The merge for candidates gathered in SQL (until 1.12 the post-purchase
-- stage's; every stage is C since): the same rules as the C stages, with
-- the stock of the candidates looked up.
CREATE FUNCTION @extschema@._merge_offers(stage text, t bigint, context bigint[],
	cart_value numeric, candidates @extschema@.offer[], experiment text, unit_id text,
	at timestamptz DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_merge_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._merge_offers(text, bigint, bigint[], numeric, @extschema@.offer[], text, text, timestamptz) IS
	'internal: ranks a stage''s candidate offers under the merchant''s rules (pinned first, active at "at" (NULL: now), stock, exclusions, weights, one offer per product, max_offers)';

-- ---- pre-purchase: the product page ----------------------------------------
--
-- Precomputed at refresh for every product (complements and upgrades of
-- products in stock, best first), so that the page reads a row by index and
-- joins the product's bundles to them (src/serving_page.c); pinned offers,
-- exclusions, weights and limits apply at request time.

-- The ranking runs in C (src/funnel_build.c, src/core/page_rank.c): one read
-- each of product_model, category_model's substitutes, upgrade_list_model
-- and pair_list_model (a row each per product), each product's offers
-- ranked in product order.  The rule, as the SQL it replaced said it (the
-- same rows): the complements of pair_model in stock that are not
-- substitutes of the product (upsell.is_substitute), its upgrades of
-- upgrade_model in stock, pricier up to 1.5x its price and on a ladder
-- (_upgrade_on_ladder), and, joined when the page is served, its bundles of
-- bundle_list_model with every item in stock; each scored by sort = score /
-- the best score of its kind for the product; one offer per set of products
-- (the highest sort, then the kind in text order); the 12 best by sort
-- descending, products offered, kind.  The 3M pairs of a 10M-line shop took
-- 16 s through two hash joins, a window and three sorts of every candidate.
CREATE FUNCTION @extschema@._product_page_lists(tenant_id bigint, products bigint[] DEFAULT NULL)
RETURNS TABLE (product_id bigint, offer_types text[], product_ids bigint[], offer_ends int[],
			   sorts float8[], scores float8[], discounts numeric[], reasons text[])
AS 'MODULE_PATHNAME', 'upsell_product_page_lists'
LANGUAGE C STABLE ROWS 100000;
COMMENT ON FUNCTION @extschema@._product_page_lists(bigint, bigint[]) IS
	'internal: per product of the tenant with any (of the products listed, when they are), its 12 best product-page complements and upgrades (of products in stock) in rank order as one row of arrays (the ids of every offer one after the other, offer_ends where each ends), with their discounts and reasons';

-- One row per product, its offers as arrays, not a row per offer: the ten
-- times as many rows (1.05M for a catalog of 100,000 products), their heap
-- and index, and the reasons written in SQL row by row, were 3 of the
-- model's 5 s of build at 10M lines, in the full and the incremental
-- refresh alike (it is rebuilt for every product).
-- The products whose offers on the page or in the cart an incremental
-- refresh must compute again, or NULL (all of them: not an incremental
-- refresh).  An offer list follows from the product's catalog facts, the
-- categories its category substitutes, its pair list, its upgrade list and
-- the catalog facts of the products those lists name: so the products the
-- builders of those models noted as changed (_note_changed), and the
-- products whose lists name a product whose catalog facts changed.
CREATE FUNCTION @extschema@._offers_to_rebuild(tenant_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	models constant name[] := '{product_model, category_model, pair_list_model, upgrade_list_model}';
	changed_catalog bigint[] := @extschema@._changed_products('product_model');
BEGIN
	IF changed_catalog IS NULL THEN
		RETURN NULL;
	END IF;
	-- (the lists are read only when a catalog fact changed: the test of
	-- the variable is made once, before their scans, which found nothing
	-- in 0.3-0.4 s for each of the two builders at 100,000 products)
	RETURN ARRAY(
		SELECT c.product_id FROM pg_temp.upsell_changed_products c WHERE c.model = ANY (models)
		UNION
		SELECT l.product_id FROM @extschema@.pair_list_model l
		WHERE cardinality(changed_catalog) > 0 AND l.tenant_id = t AND l.other_ids && changed_catalog
		UNION
		SELECT u.product_id FROM @extschema@.upgrade_list_model u
		WHERE cardinality(changed_catalog) > 0 AND u.tenant_id = t AND u.candidate_ids && changed_catalog
		ORDER BY 1);
END
$$;

-- Incrementally only the products whose offers can differ
-- (_offers_to_rebuild), as for the cart.  Until 1.12 the lists held the
-- bundles too, so an incremental refresh ranked and wrote again every
-- product with bundles (a bundle's lift moves with the shop's order count),
-- after the bundles, the refresh's last side build: at 10M lines with 1% new
-- orders, 60,999 lists in 1.3-1.6 s at the end of the refresh with one core
-- idle, against 29,674 lists in 0.7 s now, beside the bundles' worker.
CREATE FUNCTION @extschema@._build_product_page_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	scope bigint[];
BEGIN
	IF incremental THEN
		scope := @extschema@._offers_to_rebuild(tenant_id);
	END IF;
	RETURN @extschema@._publish('product_page_list_model', tenant_id, $q$
		SELECT $1 AS tenant_id, r.product_id, r.offer_types, r.product_ids, r.offer_ends, r.sorts, r.scores,
			   r.discounts, r.reasons
		FROM @extschema@._product_page_lists($1, $2) r$q$, scope);
END
$$;

SELECT @extschema@._define_model('product_page_list_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, offer_types text[] NOT NULL,
	  product_ids bigint[] NOT NULL, offer_ends int[] NOT NULL, sorts float8[] NOT NULL,
	  scores float8[] NOT NULL, discounts numeric[] NOT NULL, reasons text[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 46, '@extschema@._build_product_page_model(bigint, boolean)',
	'per product: its 12 best product-page complements and upgrades of products in stock (complements that are not substitutes of it, upgrades within its variant group or up a ladder its buyers climb) in rank order as arrays, an element per offer (product_ids: the ids of every offer one after the other, offer_ends: where each offer''s ids end); sorts are the scores relative to the best of their type; the page joins the product''s bundles to them when served; read with the bundles, as one row per offer, through the view product_page_model',
	'product_id');

-- A product's page offers before the merchant's rules: its stored
-- complements and upgrades and its bundles, ranked together as the page
-- ranks them (src/serving_page.c).
CREATE FUNCTION @extschema@._product_page_list(tenant_id bigint, product_id bigint)
RETURNS TABLE (offer_type text, product_ids bigint[], sort float8, score float8, discount numeric, reason text)
AS 'MODULE_PATHNAME', 'upsell_product_page_list'
LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 12;
COMMENT ON FUNCTION @extschema@._product_page_list(bigint, bigint) IS
	'internal: a product''s 12 best product-page offers of products in stock (its row of product_page_list_model and its bundles of bundle_list_model with every item in stock) in rank order, before the merchant''s rules';

-- The offers one row each (the shape of 1.3's product_page_model table), as
-- analysts read them, in rank order within a product.
CREATE VIEW @extschema@.product_page_model AS
SELECT p.tenant_id, p.product_id, o.offer_type, o.product_ids, o.sort, o.score, o.discount, o.reason
FROM (SELECT l.tenant_id, l.product_id FROM @extschema@.product_page_list_model l
	  UNION
	  SELECT b.tenant_id, b.product_id FROM @extschema@.bundle_list_model b) p
CROSS JOIN LATERAL @extschema@._product_page_list(p.tenant_id, p.product_id) o;
COMMENT ON VIEW @extschema@.product_page_model IS
	'per product and offer: its 12 best product-page offers of products in stock (complements, upgrades, bundles), one row each in rank order; sort is the score relative to the best of its type';

CREATE FUNCTION @extschema@._product_page_offers(tenant_id bigint, product_id bigint, category text,
	experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_product_page_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._product_page_offers(bigint, bigint, text, text, text) IS
	'internal: the product page''s offers for a product of product_model (its tenant and category)';

CREATE VIEW @extschema@.product_page_offers AS
SELECT m.tenant_id, m.product_id, o.stage, o.offer_type, o.product_ids, o."rank", o.score,
	   o.discount, o.reason
FROM @extschema@.product_model m
CROSS JOIN LATERAL @extschema@._product_page_offers(m.tenant_id, m.product_id, m.category) o
WHERE m.tenant_id = @extschema@._tenant(NULL);
COMMENT ON VIEW @extschema@.product_page_offers IS
	'pre-purchase offers per product of product_model (pinned merchant offers, complements, upgrades, bundles), ranked, of the tenant bound to the session (SET upsell.tenant_id; required when orders are registered per tenant); query it filtered by product_id; a product added since the last refresh has no row here: upsell.product_page_offers(product_id) serves it';

CREATE FUNCTION @extschema@._product_page_offers_of(tenant_id bigint, product_id bigint,
	experiment text, unit_id text)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_product_page_offers_of'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@._product_page_offers_of(bigint, bigint, text, text) IS
	'internal: the product page''s offers for a product, its category read from product_model (none for a product not there)';

-- The product is read in C (_product_page_offers_of), not joined here: a
-- SQL function that reads a table with its arguments is not planned by
-- Citus, where distribute() runs this one on the tenant's worker.
CREATE FUNCTION @extschema@.product_page_offers(product_id bigint, tenant_id bigint DEFAULT NULL,
	experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT o.*
	FROM @extschema@._product_page_offers_of(@extschema@._tenant(product_page_offers.tenant_id),
											 product_page_offers.product_id,
											 product_page_offers.experiment, product_page_offers.unit_id) o
	ORDER BY o."rank";
END;
COMMENT ON FUNCTION @extschema@.product_page_offers(bigint, bigint, text, text) IS
	'the product page''s offers for one product, tenant-checked; with an experiment and unit, only the offer types of the unit''s variant';

-- ---- during purchase: the cart -------------------------------------------------

CREATE FUNCTION @extschema@._cart_lines(tenant_id bigint, products bigint[] DEFAULT NULL)
RETURNS TABLE (product_id bigint, ids bigint[], log_miss float8[], categories text[],
			   upgrade_id bigint, upgrade_score float8, upgrade_reason text)
AS 'MODULE_PATHNAME', 'upsell_cart_lines'
LANGUAGE C STABLE ROWS 100000;
COMMENT ON FUNCTION @extschema@._cart_lines(bigint, bigint[]) IS
	'internal: per product of the tenant with any (of the products listed, when they are), its complements of pair_model in stock that do not substitute it (upsell.is_substitute), by id, with ln(1 - least(score, 0.999999)) and their categories, and its best upgrade (in stock, pricier up to 1.5x, on a ladder; within its variant group first, then by score and id) with its reason';

-- What a cart request reads about each line, in one index lookup: price,
-- category and stock, the line's complements (in stock, not substitutes of
-- it, with ln(1 - pair score) for the noisy-OR, so that a request adds
-- instead of taking logs, and their categories), what substitutes it (the
-- other products of its variant group, the categories whose products
-- substitute it: a request drops complements that substitute another line)
-- and its best upgrade (within 1.5x the price, same variant group first, up
-- a ladder its buyers climb: the product page's rule, src/funnel_build.c).
CREATE FUNCTION @extschema@._build_cart_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	changed_catalog bigint[] := @extschema@._changed_products('product_model');
	scope bigint[];
BEGIN
	-- Incrementally only the rows that can differ: those of
	-- _offers_to_rebuild (a cart row names no bundle), and the members of
	-- the variant groups that a product whose catalog facts changed was and
	-- is in (its substitutes; the current cart rows name the old ones).
	IF incremental THEN
		scope := @extschema@._offers_to_rebuild(t);
	END IF;
	IF scope IS NOT NULL AND cardinality(changed_catalog) > 0 THEN
		scope := ARRAY(
			SELECT unnest(scope)
			UNION
			SELECT c.product_id FROM @extschema@.cart_model c
			WHERE c.tenant_id = t AND c.substitute_ids && changed_catalog
			UNION
			SELECT m.product_id FROM @extschema@.product_model m
			WHERE m.tenant_id = t AND m.variant_group IN (
				SELECT g.variant_group FROM @extschema@.product_model g
				WHERE g.tenant_id = t AND g.product_id = ANY (changed_catalog))
			ORDER BY 1);
	END IF;
	RETURN @extschema@._publish('cart_model', tenant_id, $q$
		-- (materialized: read once, before the joins)
		WITH c AS MATERIALIZED (SELECT * FROM @extschema@._cart_lines($1, $2))
		SELECT m.tenant_id, m.product_id, m.price, m.category, m.in_stock,
			   coalesce(c.ids, '{}') AS complement_ids, coalesce(c.log_miss, '{}') AS complement_log_miss,
			   c.upgrade_id, c.upgrade_score, c.upgrade_reason,
			   coalesce(c.categories, '{}') AS complement_categories,
			   coalesce(array_remove(g.ids, m.product_id), '{}') AS substitute_ids,
			   coalesce(s.categories, '{}') AS substitute_categories
		FROM @extschema@.product_model m
		-- what substitutes a product, per variant group and per category
		-- (joined, not a subquery per product: one pass each)
		LEFT JOIN (SELECT g.variant_group, array_agg(g.product_id ORDER BY g.product_id) AS ids
				   FROM @extschema@.product_model g
				   WHERE g.tenant_id = $1 AND g.variant_group IS NOT NULL
				   GROUP BY g.variant_group) g
			ON g.variant_group = m.variant_group
		LEFT JOIN (SELECT s.category, array_agg(s.other_category ORDER BY s.other_category) AS categories
				   FROM @extschema@.category_model s
				   WHERE s.tenant_id = $1 AND s.substitutes
				   GROUP BY s.category) s
			ON s.category = m.category
		-- the complements and the upgrade (src/funnel_build.c: pair_list_model
		-- and upgrade_list_model read once, the catalog's facts from a hash table)
		LEFT JOIN c ON c.product_id = m.product_id
		WHERE m.tenant_id = $1 AND ($2 IS NULL OR m.product_id = ANY ($2))$q$, scope);
END
$$;

-- Built at 45, right after the upgrade lists, the last model it reads, not
-- with the other stages (95, 96): the refresh builds it while the bundles'
-- worker, which starts last, is still mining, instead of waiting for that
-- worker first (bundle_list_model, 72).  Nothing reads cart_model but serving.
SELECT @extschema@._define_model('cart_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, price numeric, category text,
	  in_stock boolean NOT NULL, complement_ids bigint[] NOT NULL, complement_log_miss float8[] NOT NULL,
	  upgrade_id bigint, upgrade_score float8, upgrade_reason text,
	  complement_categories text[] NOT NULL, substitute_ids bigint[] NOT NULL,
	  substitute_categories text[] NOT NULL,
	  PRIMARY KEY (tenant_id, product_id)$$,
	NULL, 45, '@extschema@._build_cart_model(bigint, boolean)',
	'per product, what the cart stage reads about a cart line: price, category, stock, complements in stock that do not substitute it with ln(1 - pair score) and their categories, what substitutes it (its variant group''s other products, categories), and the best upgrade within 1.5x the price',
	'product_id');

CREATE FUNCTION @extschema@.cart_offers(cart bigint[], quantities int[] DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL,
	currency text DEFAULT NULL)
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_cart_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@.cart_offers(bigint[], int[], bigint, text, text, text) IS
	'during-purchase offers for a cart: pinned merchant offers, complements of the cart, gap fillers to the next threshold (of the cart''s currency, or without one; with thresholds in several currencies and none given, only those without one, and the reasons say so), upgrades of cart lines and quantity tiers, interleaved by weighted score';

-- ---- post-purchase: the thank-you page and the emails after it --------------

-- The thank-you page.  C since 1.12 (src/serving_post_purchase.c, which
-- says what it proposes and why): as PL/pgSQL it was the slowest page at
-- the median.  Its candidates: the complements of the order's products,
-- never a substitute of them (upsell.is_substitute: its variant groups,
-- the categories that substitute its categories) nor excluded next to
-- them (until 1.8 the exclusions applied after the cut to 12 left a shop
-- excluding its bestsellers without offers); bestsellers far below them,
-- so that the page's slots fill; the customer's consumables coming due
-- within two weeks (not overdue by more than a week) and a subscription
-- pitch for what they buy at regular intervals; never what the customer
-- owns and may not be offered (_customer_owned's rule: until 1.8 an owned
-- durable came as a complement, a bestseller, and as a restock).
CREATE FUNCTION @extschema@.post_purchase_offers(order_items bigint[], customer_id bigint DEFAULT NULL,
	tenant_id bigint DEFAULT NULL, experiment text DEFAULT NULL, unit_id text DEFAULT NULL,
	at timestamptz DEFAULT now())
RETURNS SETOF @extschema@.offer
AS 'MODULE_PATHNAME', 'upsell_post_purchase_offers'
LANGUAGE C STABLE PARALLEL SAFE ROWS 6;
COMMENT ON FUNCTION @extschema@.post_purchase_offers(bigint[], bigint, bigint, text, text, timestamptz) IS
	'post-purchase offers for an order just placed (its products) and its customer: complements of the order, restocks coming due, a subscription pitch, interleaved by weighted score';

-- The orders whose order_model rows an incremental refresh replaces: the
-- new orders, and the orders with lines older than the window now starts
-- (they drop out, wholly or in part).  The window ends at the last line as
-- the count found it, as _order_query reads it: the side build's query and
-- the builder's scope name the same orders.  Computed once per tenant and
-- transaction (pg_temp.upsell_order_changes, which _build_source_state
-- drops): the side build's query and the builder both ask, before the
-- builder publishes, and the second time took 87 ms at the end of an
-- incremental refresh at 10M lines (31,435 orders), with one core idle.
CREATE FUNCTION @extschema@._order_changes(tenant_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	orders bigint[];
BEGIN
	IF to_regclass('pg_temp.upsell_order_changes') IS NOT NULL THEN
		SELECT c.orders INTO orders FROM pg_temp.upsell_order_changes c WHERE c.tenant_id = t;
		IF FOUND THEN
			RETURN orders;
		END IF;
	ELSE
		CREATE TEMP TABLE upsell_order_changes (tenant_id bigint PRIMARY KEY, orders bigint[] NOT NULL)
			ON COMMIT DROP;
	END IF;
	orders := ARRAY(SELECT DISTINCT x.order_key FROM pg_temp.upsell_new_lines x
					WHERE x.sold AND x.product_id IS NOT NULL AND x.order_key IS NOT NULL);
	IF (SELECT s.ordered_at IS NOT NULL FROM @extschema@.order_source s) THEN
		orders := orders || ARRAY(
			SELECT o.order_key FROM @extschema@.order_model o
			WHERE o.tenant_id = t
			  AND o.first_at < (SELECT max(c.max_ordered_at) FROM @extschema@.cooccurrence_chunks c
								WHERE c.tenant_id = t) - interval '90 days');
	END IF;
	INSERT INTO pg_temp.upsell_order_changes VALUES (t, orders);
	RETURN orders;
END
$$;

-- The recent orders the post-purchase view serves.  The query of a
-- tenant's order_model rows (of the orders given, or all; in an
-- incremental refresh, by default, those it replaces: _order_changes),
-- from its lines as of its refresh snapshot or of the snapshot given (a
-- side build, _define_side_build): the orders of the 90 days before its
-- last line, as the count found it (written into the query: a side build's
-- worker cannot read the counts its refresh has not committed), or all
-- orders when the lines carry no time.
CREATE FUNCTION @extschema@._order_query(tenant_id bigint, snapshot pg_snapshot DEFAULT NULL,
	orders bigint[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	recent text := 'true';
BEGIN
	IF orders IS NULL AND @extschema@._incremental(tenant_id) AND to_regclass('pg_temp.upsell_new_lines') IS NOT NULL THEN
		orders := @extschema@._order_changes(tenant_id);
	END IF;
	IF (SELECT s.ordered_at IS NOT NULL FROM @extschema@.order_source s) THEN
		-- (OPERATOR() binds like any operator, left to right: parenthesized)
		recent := format('l.ordered_at OPERATOR(pg_catalog.>=) (%L::timestamptz OPERATOR(pg_catalog.-) interval ''90 days'')',
						 (SELECT max(c.max_ordered_at) FROM @extschema@.cooccurrence_chunks c
						  WHERE c.tenant_id = _order_query.tenant_id));
	END IF;
	RETURN format($q$
		SELECT %s::bigint AS tenant_id, l.order_key, pg_catalog.min(l.order_id) AS order_id,
			   pg_catalog.min(l.customer_id) AS customer_id, pg_catalog.max(l.ordered_at) AS ordered_at,
			   pg_catalog.array_agg(DISTINCT l.product_id) AS items, pg_catalog.min(l.ordered_at) AS first_at
		FROM %s l
		WHERE l.sold AND l.product_id IS NOT NULL AND l.order_key IS NOT NULL AND %s AND %s
		GROUP BY l.order_key$q$,
		tenant_id, @extschema@._tenant_lines(tenant_id, snapshot), recent,
		CASE WHEN orders IS NULL THEN 'true'
			 ELSE format('l.order_key OPERATOR(pg_catalog.=) ANY (%L::bigint[])', orders) END);
END
$$;

CREATE FUNCTION @extschema@._build_order_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := tenant_id;
	orders bigint[];	-- NULL: every order of the tenant
BEGIN
	IF incremental AND @extschema@._incremental(t) THEN
		IF @extschema@._lines_unchanged(t) THEN
			-- no new line: no new order, and the window, which ends at the
			-- last line, has not moved (looking for orders that left it read
			-- every row: 0.2-0.3 s of a refresh without new lines at 10M lines)
			RETURN @extschema@._kept_rows('order_model', t);
		END IF;
		-- the orders the side build's query was written for (none:
		-- _publish keeps the rows, and reads none)
		orders := @extschema@._order_changes(t);
	END IF;
	-- computed by a side build (_define_side_build), or here
	RETURN @extschema@._publish('order_model', t,
		CASE WHEN @extschema@._side_ready('order_model')
			 THEN 'SELECT * FROM @extschema@._side_rows(''order_model'', NULL::@extschema@.order_model)'
			 ELSE @extschema@._order_query(t, NULL, orders) END, orders);
END
$$;

SELECT @extschema@._define_model('order_model',
	$$tenant_id bigint NOT NULL, order_key bigint NOT NULL, order_id text NOT NULL,
	  customer_id bigint, ordered_at timestamptz, items bigint[] NOT NULL, first_at timestamptz,
	  PRIMARY KEY (tenant_id, order_key)$$,
	ARRAY['(order_id)', '(tenant_id, customer_id, ordered_at)'], 96,
	'@extschema@._build_order_model(bigint, boolean)',
	'the orders of the last 90 days (all orders without an order time): products and customer, for the post-purchase view; ordered_at and first_at: the time of its last and first line in the window',
	'order_key');
-- (not during the count: its window is read from the count.)  In an
-- incremental refresh too: the new orders' rows were the last 0.3 s of it
-- at 10M lines, with one core idle.
SELECT @extschema@._define_side_build('order_model', '@extschema@._order_query(bigint, pg_snapshot, bigint[])',
	incremental => true);

CREATE VIEW @extschema@.post_purchase_offers AS
SELECT o.tenant_id, o.order_id, o.customer_id, o.ordered_at, f.*
FROM @extschema@.order_model o
CROSS JOIN LATERAL @extschema@.post_purchase_offers(o.items, o.customer_id, o.tenant_id) f
WHERE o.tenant_id = @extschema@._tenant(NULL);
COMMENT ON VIEW @extschema@.post_purchase_offers IS
	'post-purchase offers per recent order (complements of the order, restocks, subscription pitch) of the tenant bound to the session (SET upsell.tenant_id; required when orders are registered per tenant); query it filtered by order_id or customer_id';
