
-- ===========================================================================
-- JSON for storefront widgets: one document of offers per stage, and the
-- widget's shown/click/add events back
-- ===========================================================================
--
-- offers_json speaks the storefront's vocabulary: ids as the shop registered
-- them (numbers, or GraphQL gid strings when the Shopify documents used
-- them), titles, prices as decimal strings, the offer type and reason, and
-- the experiment variant when one applies.  record_event takes events in the
-- same words.  The shapes are documented in the README; sql/95_json.sql
-- keeps them stable.

-- Per product of a Shopify catalog: its ids as the documents wrote them and
-- what a widget shows.  Empty without a Shopify catalog.
CREATE FUNCTION @extschema@._build_shopify_product_model(tenant_id bigint, incremental boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	level text;
BEGIN
	SELECT s.product_id INTO level FROM @extschema@.product_source s WHERE s.kind = 'shopify';
	IF NOT FOUND THEN
		-- no Shopify catalog (any more): the tenant's rows go
		RETURN @extschema@._publish('shopify_product_model', tenant_id,
			'SELECT NULL::bigint AS tenant_id, NULL::bigint AS product_id, NULL::bigint AS parent_id, '
			'NULL::jsonb AS product_ref, NULL::jsonb AS variant_ref, NULL::text AS product_title, '
			'NULL::text AS variant_title, NULL::text AS sku, NULL::numeric AS compare_at_price WHERE false');
	END IF;
	IF to_regclass('@extschema@.shopify_variants') IS NULL THEN
		PERFORM @extschema@._sync_view('catalog');
	END IF;
	RETURN @extschema@._publish('shopify_product_model', tenant_id, format($q$
		SELECT DISTINCT ON (v.tenant_id, %1$s) v.tenant_id, %1$s AS product_id, v.product_id AS parent_id,
			   v.product_ref, %2$s AS variant_ref, v.product_title, %3$s AS variant_title, %4$s AS sku,
			   v.compare_at_price
		FROM @extschema@.shopify_variants v
		WHERE v.skipped IS NULL AND v.tenant_id OPERATOR(pg_catalog.=) $1
		ORDER BY v.tenant_id, %1$s, %5$s v.variant_id$q$,
		CASE level WHEN 'product_id' THEN 'v.product_id' ELSE 'v.variant_id' END,
		CASE level WHEN 'product_id' THEN 'NULL::jsonb' ELSE 'v.variant_ref' END,
		CASE level WHEN 'product_id' THEN 'NULL::text' ELSE 'v.variant_title' END,
		CASE level WHEN 'product_id' THEN 'NULL::text' ELSE 'v.sku' END,
		-- a product's price is its cheapest variant's (upsell.catalog): the
		-- compare-at price is that variant's too, not another's, which
		-- made a false strike-through (20.00 against 35.00 of a 30.00 one)
		CASE level WHEN 'product_id'
			THEN 'CASE WHEN @extschema@._plausible_price(v.price) THEN v.price END NULLS LAST,' ELSE '' END));
END
$$;

SELECT @extschema@._define_model('shopify_product_model',
	$$tenant_id bigint NOT NULL, product_id bigint NOT NULL, parent_id bigint NOT NULL,
	  product_ref jsonb, variant_ref jsonb, product_title text, variant_title text, sku text,
	  compare_at_price numeric,
	  PRIMARY KEY (tenant_id, product_id)$$,
	ARRAY['(tenant_id, parent_id)'], 99, '@extschema@._build_shopify_product_model(bigint, boolean)',
	'per product of a registered Shopify catalog: the product and variant ids as the documents wrote them (number or gid string), titles, sku, compare-at price; read by offers_json');

-- A unit id from JSON: a Shopify id in either form as its digits (so that
-- "gid://shopify/Customer/5" and 5 are one unit), any other string as is.
CREATE FUNCTION @extschema@._json_unit(value jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN coalesce(@extschema@.shopify_id(value)::text, @extschema@._json_text(value));

-- The products storefront objects mean, one row per element of the array
-- items (n its position, from 1): {"variant_id"}, {"id"} (cart.js lines) or
-- {"product_id"}; a product id standing for its variants (a product page at
-- variant level) is its best-selling variant.  Where the Shopify documents
-- are registered at product level the products are Shopify's products: an
-- object's product_id is the product, before its variant (a cart.js line
-- carries both).  NULL where an object names no product.  One query for a
-- whole cart: called per line (as until 1.8), a 500-line cart spent some
-- 8 ms in the calls alone.  (PL/pgSQL, whose plan is kept for the session:
-- an SQL function's is made at every call.)
CREATE FUNCTION @extschema@._json_products(t bigint, items jsonb)
RETURNS TABLE (n bigint, item jsonb, product_id bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH ids AS (
		SELECT e.n, e.item,
			   coalesce(@extschema@.shopify_id(e.item -> 'variant_id'), @extschema@.shopify_id(e.item -> 'id')) AS v,
			   @extschema@.shopify_id(e.item -> 'product_id') AS p
		FROM jsonb_array_elements(items) WITH ORDINALITY AS e(item, n)),
	-- (the level matters only when an object gives both: read then only)
	level AS (
		SELECT EXISTS (SELECT FROM @extschema@.order_source s WHERE s.kind = 'shopify' AND s.product_id = 'product_id')
			   OR EXISTS (SELECT FROM @extschema@.product_source s WHERE s.kind = 'shopify' AND s.product_id = 'product_id')
			   AS of_products)
	SELECT i.n, i.item,
		   CASE WHEN i.p IS NOT NULL AND i.v IS NOT NULL AND (SELECT l.of_products FROM level l) THEN i.p
				WHEN i.v IS NOT NULL OR i.p IS NULL THEN i.v
				ELSE coalesce((SELECT s.product_id
							   FROM @extschema@.shopify_product_model s
							   LEFT JOIN @extschema@.product_model m ON m.tenant_id = s.tenant_id AND m.product_id = s.product_id
							   WHERE s.tenant_id = t AND s.parent_id = i.p AND s.product_id <> i.p
							   ORDER BY m.orders DESC NULLS LAST, s.product_id
							   LIMIT 1), i.p) END
	FROM ids i
	ORDER BY i.n;
END
$$;

-- Money as Shopify writes it: a decimal string with two places.  (No SET
-- clause: the body, parsed at creation and fully qualified, reads no
-- search_path, and without one the planner inlines the call into
-- offers_json's query instead of calling it per amount; STABLE, as to_jsonb
-- is, which inlining also needs.)
CREATE FUNCTION @extschema@._json_money(amount numeric)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.to_jsonb(pg_catalog.round(amount, 2)::text);

CREATE FUNCTION @extschema@.offers_json(stage text, request jsonb DEFAULT '{}', tenant_id bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	experiment text;
	unit text;
	product bigint;
	products bigint[];
	quantities numeric[];
	bad_quantity bigint;
	currency text;
	customer bigint;
	offers @extschema@.offer[];
	notes text[] := '{}';
	missing bigint[];
	applies boolean;
BEGIN
	IF request IS NULL OR jsonb_typeof(request) <> 'object' THEN
		RAISE EXCEPTION 'request must be a JSON object, not %', coalesce(jsonb_typeof(request), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example {"variant_id": 808950810} on the product page.';
	END IF;
	experiment := @extschema@._json_text(request -> 'experiment');
	unit := @extschema@._json_unit(request -> 'unit_id');
	IF request ? 'experiment' AND experiment IS NULL THEN
		RAISE EXCEPTION 'experiment must be a string, not %', request -> 'experiment'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF experiment IS NOT NULL AND unit IS NULL THEN
		RAISE EXCEPTION 'an experiment needs a unit_id (a customer id, number or gid, or a visitor token)'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	CASE stage
		WHEN 'product_page' THEN
			SELECT j.product_id INTO product FROM @extschema@._json_products(t, jsonb_build_array(request)) j;
			IF product IS NULL THEN
				RAISE EXCEPTION 'the product page needs a variant_id or product_id (a number or gid string)'
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'For example {"variant_id": 808950810} or {"product_id": "gid://shopify/Product/632910392"}.';
			END IF;
			offers := ARRAY(SELECT o FROM @extschema@.product_page_offers(product, t, experiment, unit) o);
			IF NOT EXISTS (SELECT FROM @extschema@.product_model m WHERE m.tenant_id = t AND m.product_id = product) THEN
				notes := notes || format('product %s is not in the models (not ordered and not in the catalog at the last refresh)', product);
			END IF;
		WHEN 'cart' THEN
			IF jsonb_typeof(request -> 'items') IS DISTINCT FROM 'array' THEN
				RAISE EXCEPTION 'the cart needs items, an array of {"variant_id", "quantity"}'
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'The items of Shopify''s /cart.js have this shape.';
			END IF;
			-- a string as it is (cart_offers checks the code, an empty one
			-- too); JSON null is none
			currency := CASE WHEN jsonb_typeof(request -> 'currency') = 'string' THEN request ->> 'currency' END;
			IF jsonb_typeof(request -> 'currency') NOT IN ('string', 'null') THEN
				RAISE EXCEPTION 'currency must be a string (an ISO 4217 code), not %', request -> 'currency'
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			-- an item without a quantity (or with JSON null) is one unit; a
			-- quantity that is no whole number, or below 1 or beyond what an
			-- int holds, is the caller's error, refused by name as
			-- cart_offers refuses it (read as 1, or rounded, until 1.6)
			SELECT array_agg(x.p ORDER BY x.n), array_agg(coalesce(x.q, 1) ORDER BY x.n),
				   coalesce(array_agg(x.n) FILTER (WHERE x.p IS NULL), '{}'),
				   (array_agg(x.n ORDER BY x.n)
						FILTER (WHERE x.q > 2147483647 OR x.q < 1 OR x.q <> trunc(x.q) OR (x.q IS NULL AND x.given)))[1]
			INTO products, quantities, missing, bad_quantity
			FROM (SELECT j.n, j.product_id AS p,
						 @extschema@._json_number(j.item -> 'quantity') AS q,
						 coalesce(jsonb_typeof(j.item -> 'quantity') <> 'null', false) AS given
				  FROM @extschema@._json_products(t, request -> 'items') j) x;
			IF bad_quantity IS NOT NULL THEN
				RAISE EXCEPTION 'cart item %: quantity % is not a number of units a cart holds', bad_quantity,
					request -> 'items' -> (bad_quantity::int - 1) -> 'quantity'
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'A quantity is a whole number of units, from 1 to 2147483647; an item without one is one unit.';
			END IF;
			notes := ARRAY(SELECT format('cart item %s has no readable variant_id or product_id (a whole number from 0, or a Shopify gid): left out', n) FROM unnest(missing) n)
				|| ARRAY(SELECT format('product %s is not in the models (not ordered and not in the catalog at the last refresh)', p)
						 FROM unnest(products) WITH ORDINALITY AS u(p, n)
						 WHERE p IS NOT NULL
						   AND NOT EXISTS (SELECT FROM @extschema@.product_model m WHERE m.tenant_id = t AND m.product_id = u.p)
						 ORDER BY n);
			offers := ARRAY(SELECT o FROM @extschema@.cart_offers(
								ARRAY(SELECT p FROM unnest(products, quantities) AS u(p, q) WHERE p IS NOT NULL),
								ARRAY(SELECT q::int FROM unnest(products, quantities) AS u(p, q) WHERE p IS NOT NULL),
								t, experiment, unit, currency) o);
		WHEN 'post_purchase' THEN
			-- (an order_id of JSON null is none: the request then needs items)
			IF jsonb_typeof(request -> 'order_id') IS DISTINCT FROM 'null' AND request ? 'order_id' THEN
				-- the order's id as registered (text ids such as 'ORD-99'
				-- too), or as Shopify writes it (a number or a gid)
				SELECT m.items, m.customer_id INTO products, customer
				FROM @extschema@.order_model m
				WHERE m.tenant_id = t
				  AND (m.order_id = request ->> 'order_id'
					   OR m.order_key = @extschema@.shopify_id(request -> 'order_id'))
				ORDER BY m.order_id = request ->> 'order_id' DESC
				LIMIT 1;
				IF NOT FOUND THEN
					notes := notes || format('order %s is not among the recent orders of the last refresh', request ->> 'order_id');
				END IF;
			ELSIF jsonb_typeof(request -> 'items') = 'array' THEN
				SELECT array_agg(x.p ORDER BY x.n) FILTER (WHERE x.p IS NOT NULL),
					   coalesce(array_agg(x.n ORDER BY x.n) FILTER (WHERE x.p IS NULL), '{}')
				INTO products, missing
				FROM (SELECT j.n, j.product_id AS p FROM @extschema@._json_products(t, request -> 'items') j) x;
				notes := notes || ARRAY(SELECT format('order item %s has no readable variant_id or product_id (a whole number from 0, or a Shopify gid): left out', n)
							   FROM unnest(missing) n);
				-- the customer's id as the registered customer ids are (a
				-- number, text, or Shopify's gid)
				IF jsonb_typeof(request -> 'customer_id') IS DISTINCT FROM 'null' AND request ? 'customer_id' THEN
					IF EXISTS (SELECT FROM @extschema@.order_source s WHERE s.customer_id IS NOT NULL) THEN
						customer := coalesce(@extschema@._unit_customer(request ->> 'customer_id', @extschema@._customer_id_kind()),
											 @extschema@.shopify_id(request -> 'customer_id'));
					END IF;
					IF customer IS NULL THEN
						notes := notes || format('customer %s is not an id of the registered customers: offered without their history',
												 request -> 'customer_id');
					END IF;
				END IF;
			ELSE
				RAISE EXCEPTION 'the post-purchase page needs an order_id, or items and a customer_id'
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			offers := ARRAY(SELECT o FROM @extschema@.post_purchase_offers(coalesce(products, '{}'), customer, t,
																			experiment, unit) o);
		ELSE
			RAISE EXCEPTION 'stage must be product_page, cart or post_purchase, not %', coalesce(quote_literal(stage), 'NULL')
				USING ERRCODE = 'invalid_parameter_value';
	END CASE;
	applies := @extschema@.variant_offer_types(experiment, unit, stage, t) IS NOT NULL;
	IF applies AND NOT @extschema@._weights_usable(experiment) THEN
		-- (assign() then gives every unit the control rather than fail the page)
		notes := notes || format('the weights of experiment "%s" are all zero: every unit gets variant "%s"',
								 experiment, @extschema@.assign(experiment, unit));
	ELSIF experiment IS NOT NULL AND NOT applies AND @extschema@.assign(experiment, unit) IS NULL THEN
		-- (no variants yet: served as without the experiment, not failed)
		notes := notes || format('experiment "%s" has no variants: served without it', experiment);
	END IF;
	RETURN jsonb_strip_nulls(jsonb_build_object(
		'stage', stage,
		'experiment', CASE WHEN applies THEN jsonb_build_object('name', experiment,
																 'variant', @extschema@.assign(experiment, unit)) END,
		-- each offer as a widget renders it, in this one query (planned once
		-- per session: a SQL function per offer was planned again at every
		-- request, most of a request's millisecond)
		'offers', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					   'rank', o."rank", 'type', o.offer_type, 'reason', o.reason,
					   'discount', o.discount, 'score', round(o.score::numeric, 6),
					   'price', @extschema@._json_money(d.price),
					   'discounted_price', @extschema@._json_money(d.discounted_price),
					   'items', d.items) ORDER BY o."rank")
			FROM unnest(offers) o,
				 LATERAL (
					-- (an offer's price is of all its items, or unknown)
					SELECT CASE WHEN count(m.price) = count(*) THEN sum(m.price) END AS price,
						   CASE WHEN count(m.price) = count(*) THEN sum(round(m.price * (1 - o.discount), 2)) END
							   AS discounted_price,
						   jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
							   'product_id', coalesce(s.product_ref, to_jsonb(u.id)),
							   'variant_id', s.variant_ref,
							   'title', m.title, 'product_title', s.product_title, 'variant_title', s.variant_title,
							   'sku', s.sku, 'category', m.category,
							   'price', @extschema@._json_money(m.price),
							   'discounted_price', @extschema@._json_money(round(m.price * (1 - o.discount), 2)),
							   'compare_at_price', @extschema@._json_money(s.compare_at_price),
							   'available', m.in_stock)) ORDER BY u.n) AS items
					FROM unnest(o.product_ids) WITH ORDINALITY AS u(id, n)
					LEFT JOIN @extschema@.product_model m ON m.tenant_id = t AND m.product_id = u.id
					LEFT JOIN @extschema@.shopify_product_model s ON s.tenant_id = t AND s.product_id = u.id) d), '[]'),
		'notes', CASE WHEN cardinality(notes) > 0 THEN to_jsonb(notes) END));
END
$$;
COMMENT ON FUNCTION @extschema@.offers_json(text, jsonb, bigint) IS
	'one JSON document of offers for a storefront widget: stage product_page ({"variant_id"} or {"product_id"}), cart ({"items": [{"variant_id", "quantity"}]}) or post_purchase ({"order_id"}); optional "experiment" and "unit_id"; ids as the shop registered them';

CREATE FUNCTION @extschema@.record_event(event jsonb, tenant_id bigint DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint := @extschema@._tenant(tenant_id);
	kind text;
	offer_type text;
	stage text;
	unit text;
	experiment text;
	at timestamptz := now();
	items jsonb;
	products bigint[];
	n int;
BEGIN
	IF event IS NULL OR jsonb_typeof(event) <> 'object' THEN
		RAISE EXCEPTION 'event must be a JSON object, not %', coalesce(jsonb_typeof(event), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	kind := @extschema@._json_text(event -> 'event');
	IF kind IS NULL OR kind NOT IN ('shown', 'click', 'add') THEN
		RAISE EXCEPTION 'event must be "shown", "click" or "add", not %', coalesce((event -> 'event')::text, 'missing')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	offer_type := @extschema@._json_text(coalesce(event -> 'type', event -> 'offer_type'));
	IF offer_type IS NULL OR NOT offer_type = ANY (@extschema@._offer_types()) THEN
		RAISE EXCEPTION 'type must be an offer type of offers_json, not %',
			coalesce(coalesce(event -> 'type', event -> 'offer_type')::text, 'missing')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('The offer types are: %s.', array_to_string(@extschema@._offer_types(), ', '));
	END IF;
	stage := @extschema@._json_text(event -> 'stage');
	IF event ? 'stage' AND (stage IS NULL OR stage NOT IN ('product_page', 'cart', 'post_purchase')) THEN
		RAISE EXCEPTION 'stage must be product_page, cart or post_purchase, not %', event -> 'stage'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	unit := @extschema@._json_unit(event -> 'unit_id');
	IF unit IS NULL THEN
		RAISE EXCEPTION 'unit_id is required: a customer id (number or gid) or a visitor token'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	experiment := @extschema@._json_text(event -> 'experiment');
	IF event ? 'experiment' AND jsonb_typeof(event -> 'experiment') <> 'null' AND experiment IS NULL THEN
		RAISE EXCEPTION 'experiment must be a string, not %', event -> 'experiment'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF experiment IS NOT NULL THEN
		-- the split lock before the experiment is looked at: one deleted or
		-- renamed meanwhile is then refused here, not by a foreign key
		PERFORM @extschema@._share_split_lock();
		PERFORM @extschema@._experiment(experiment, t);	-- the tenant's, or a clear error
	END IF;
	IF event ? 'occurred_at' THEN
		at := @extschema@._json_time(event -> 'occurred_at');
		IF at IS NULL THEN
			RAISE EXCEPTION 'occurred_at must be an ISO 8601 time with an offset, not %', event -> 'occurred_at'
				USING ERRCODE = 'invalid_datetime_format',
					  HINT = 'For example "2024-03-01T10:00:00-05:00".';
		END IF;
	END IF;
	-- the products: the offer's items (as offers_json gave them) or one
	-- product, not both (which of them was meant is not ours to guess)
	IF event ? 'items' AND (event ? 'product_id' OR event ? 'variant_id' OR event ? 'id') THEN
		RAISE EXCEPTION 'an event names its products by items or by one variant_id or product_id, not both'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Event: %s.', event);
	END IF;
	items := CASE WHEN jsonb_typeof(event -> 'items') = 'array' THEN event -> 'items'
				  ELSE jsonb_build_array(event) END;
	products := ARRAY(SELECT j.product_id FROM @extschema@._json_products(t, items) j ORDER BY j.n);
	IF cardinality(products) = 0 OR array_position(products, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'every product of the event needs a variant_id or product_id (a number or gid string)'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Event: %s.', event);
	END IF;
	INSERT INTO @extschema@.offer_events (tenant_id, unit_id, offer_type, product_id, event, stage, experiment, occurred_at)
	SELECT t, unit, offer_type, p, kind, stage, experiment, at
	FROM unnest(products) p;
	GET DIAGNOSTICS n = ROW_COUNT;
	-- an offer shown in an experiment is an exposure of the unit to its variant
	IF kind = 'shown' AND experiment IS NOT NULL THEN
		PERFORM @extschema@.record_exposure(experiment, unit, stage, offer_type, at);
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION @extschema@.record_event(jsonb, bigint) IS
	'records a storefront widget''s event in offers_json''s words: {"event": "shown"|"click"|"add", "type", "stage", "unit_id", "variant_id" or "product_id" or "items": [...], "experiment", "occurred_at"}; returns the rows added to upsell.offer_events (a shown event in an experiment is also an exposure)';
