-- Offline evaluation of cart completion (make eval; see README "Offer quality").
--
-- A dataset is order lines (order, product, the order's position in time,
-- and the catalog's category / variant group when the data has them) in
-- upsell_eval.lines.  upsell_eval.evaluate(dataset, max_cases):
--   1. splits the orders in time: the first 80% train, the last 20% test;
--   2. builds upsell's models from the training orders only (registered
--      through upsell_eval.train_lines / upsell_eval.products, then
--      upsell.refresh());
--   3. makes the cases: every test order with 2 or more distinct products,
--      each product hidden in turn, the rest given as the cart (at most
--      max_cases of them, a deterministic sample by hash; 0 = all);
--   4. ranks the hidden product by every method and keeps its rank (NULL
--      when it is not ranked at all), from which HR@10 (rank <= 10) and
--      MRR@10 (1/rank when rank <= 10) follow.
-- Methods: the baselines an analyst writes in one query -- popularity, and
-- over the training pair counts summed over the cart's items: co-occurrence
-- count, confidence n(c,j)/n(c), cosine n(c,j)/sqrt(n(c)n(j)), jaccard
-- n(c,j)/(n(c)+n(j)-n(c,j)) -- then upsell's variants, the same way, and
-- upsell itself: upsell.recommend_for_cart(cart, 10) on the models refresh
-- built.  Every method fills the slots its scores leave free with the most
-- popular products (ties by product id), as a widget must, so no method
-- wins by showing fewer products.
--
-- Run with psql from the repository root; the extension must be installed.

\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS upsell_eval CASCADE;
CREATE SCHEMA upsell_eval;
RESET client_min_messages;

CREATE TABLE upsell_eval.lines (
	dataset		text NOT NULL,
	order_id	bigint NOT NULL,
	product_id	bigint NOT NULL,
	seq			bigint NOT NULL,	-- the order's position in time (ties: order id)
	category	text,
	variant_group text,
	price		numeric
);

-- what the models of the current dataset are built from
CREATE TABLE upsell_eval.train_lines (order_id bigint NOT NULL, product_id bigint NOT NULL);
CREATE TABLE upsell_eval.products (product_id bigint PRIMARY KEY, category text,
								   variant_group text, price numeric);

CREATE TABLE upsell_eval.counts (product_id bigint PRIMARY KEY, n bigint NOT NULL, pop_rank int NOT NULL);
-- every pair of the training orders, with every method's term of the pair
-- (terms[i]: the i-th method of upsell_eval.methods but popularity, by sort)
-- and the other product's popularity rank, so that ranking a case sums the
-- cart items' rows of one index and joins and computes nothing per pair
-- (FIMI retail: 6M pairs, 35k of them per case of 16 items)
CREATE TABLE upsell_eval.pairs (product_id bigint NOT NULL, other_id bigint NOT NULL, pr int NOT NULL,
								terms float8[] NOT NULL);
CREATE INDEX ON upsell_eval.pairs (product_id) INCLUDE (other_id, pr, terms);
CREATE TABLE upsell_eval.cases (case_id int PRIMARY KEY, cart bigint[] NOT NULL, hidden bigint NOT NULL);
-- substitute: whether the hidden product is a substitute of the cart
-- (upsell.is_substitute on the training models), which upsell never offers
CREATE TABLE upsell_eval.ranks (dataset text NOT NULL, method text NOT NULL, case_id int NOT NULL, "rank" int,
								substitute boolean);
CREATE TABLE upsell_eval.meta (dataset text PRIMARY KEY, train_orders bigint, test_orders bigint,
							   cases bigint, all_cases bigint, seconds float8);

SELECT upsell.register_orders('upsell_eval.train_lines', 'order_id', 'product_id');
SELECT upsell.register_products('upsell_eval.products', 'product_id', price => 'price',
								category => 'category', variant_group => 'variant_group');

-- The methods scored from the pair counts: name => expression over the
-- pair's count t, the cart item's count nc, the candidate's count nj and the
-- training orders n, summed over the cart's items.  Baselines first.
CREATE TABLE upsell_eval.methods (method text PRIMARY KEY, baseline boolean NOT NULL, expr text NOT NULL, sort int NOT NULL);
INSERT INTO upsell_eval.methods VALUES
	('popularity', true, '0', 1),
	('count', true, 't', 2),
	('confidence', true, 't / nc', 3),
	('cosine', true, 't / sqrt(nc * nj)', 4),
	('jaccard', true, 't / (nc + nj - t)', 5),
	('rp3beta_0.3', false, 't / nc / power(nj, 0.3)', 10),
	('shrunk_20', false, '(t + 20 * nj / n) / (nc + 20)', 11);

-- Splits a dataset, builds upsell's models on its training orders, draws the
-- cases.  With unseen > 0, only cases of test orders none of whose cases is
-- among the first `unseen` by the sample's hash: the scoring's constants
-- were chosen on the default sample (EVAL_CASES=2000), and these orders
-- were never looked at (EVAL_UNSEEN=2000, README "How far these figures can
-- be trusted").
CREATE FUNCTION upsell_eval.prepare(ds text, max_cases int, unseen int DEFAULT 0)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	orders bigint;
	cut bigint;
BEGIN
	TRUNCATE upsell_eval.train_lines, upsell_eval.products, upsell_eval.counts,
			 upsell_eval.pairs, upsell_eval.cases;
	SELECT count(DISTINCT seq) INTO orders FROM upsell_eval.lines WHERE dataset = ds;
	cut := floor(orders * 0.8);
	-- seq numbers the orders 1..n in time order
	INSERT INTO upsell_eval.train_lines
	SELECT order_id, product_id FROM upsell_eval.lines WHERE dataset = ds AND seq <= cut;
	INSERT INTO upsell_eval.products
	SELECT DISTINCT ON (product_id) product_id, category, variant_group, price
	FROM upsell_eval.lines WHERE dataset = ds ORDER BY product_id, seq DESC;
	ANALYZE upsell_eval.train_lines, upsell_eval.products;

	INSERT INTO upsell_eval.counts
	SELECT product_id, n, row_number() OVER (ORDER BY n DESC, product_id)
	FROM (SELECT product_id, count(DISTINCT order_id) AS n FROM upsell_eval.train_lines GROUP BY product_id) c;
	-- counted once by upsell's counting (every pair, min_count 1), stored in
	-- product order: a case's rows are a few runs of the index
	EXECUTE format($q$
		INSERT INTO upsell_eval.pairs
		SELECT x.product_id, x.other_id, x.pr, ARRAY[%s]
		FROM (SELECT f.product_id, f.other_id, b.pop_rank AS pr, f.together::float8 AS t,
					 a.n::float8 AS nc, b.n::float8 AS nj, %s::float8 AS n
			  FROM upsell.frequently_bought_together('SELECT order_id, product_id FROM upsell_eval.train_lines',
													 min_count => 1) f
			  JOIN upsell_eval.counts a ON a.product_id = f.product_id
			  JOIN upsell_eval.counts b ON b.product_id = f.other_id) x
		ORDER BY x.product_id, x.other_id$q$,
		(SELECT string_agg(m.expr, ', ' ORDER BY m.sort) FROM upsell_eval.methods m WHERE m.method <> 'popularity'),
		(SELECT count(DISTINCT order_id) FROM upsell_eval.train_lines));
	ANALYZE upsell_eval.counts, upsell_eval.pairs;

	INSERT INTO upsell_eval.cases
	WITH c AS (
		SELECT o.order_id, ARRAY(SELECT x FROM unnest(o.items) x WHERE x <> h.hidden ORDER BY x) AS cart,
			   h.hidden, hashtextextended(o.order_id || ':' || h.hidden, 0) AS h
		FROM (SELECT order_id, array_agg(DISTINCT product_id) AS items
			  FROM upsell_eval.lines WHERE dataset = ds AND seq > cut
			  GROUP BY order_id HAVING count(DISTINCT product_id) >= 2) o,
			 unnest(o.items) h(hidden)),
	seen AS (SELECT c.order_id FROM c ORDER BY c.h LIMIT greatest(unseen, 0))
	SELECT row_number() OVER (ORDER BY c.h), c.cart, c.hidden
	FROM c
	WHERE c.order_id NOT IN (SELECT s.order_id FROM seen s)
	ORDER BY c.h
	LIMIT CASE WHEN max_cases > 0 THEN max_cases END;

	INSERT INTO upsell_eval.meta (dataset, train_orders, test_orders, cases, all_cases)
	SELECT ds, cut, orders - cut, (SELECT count(*) FROM upsell_eval.cases),
		   (SELECT sum(n) FROM (SELECT count(DISTINCT product_id) AS n FROM upsell_eval.lines
								WHERE dataset = ds AND seq > cut GROUP BY order_id
								HAVING count(DISTINCT product_id) >= 2) o)
	ON CONFLICT (dataset) DO UPDATE SET (train_orders, test_orders, cases, all_cases) =
		(EXCLUDED.train_orders, EXCLUDED.test_orders, EXCLUDED.cases, EXCLUDED.all_cases);
END
$$;

-- Ranks every case's hidden product by every method of upsell_eval.methods.
-- A product the scores reach ranks among them (score desc, product id);
-- else after them, in popularity order among the products neither scored
-- nor in the cart; a product never bought in training is not ranked.
-- Per case, one pass: the cart items' pairs summed per candidate, every
-- method a column (no row per method), the hidden product's sums beside
-- every row (a window), then per method, in one aggregate over the
-- candidates, how many it scores, how many of those are more popular than
-- the hidden product, and how many rank before it.
CREATE FUNCTION upsell_eval.rank_methods(ds text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	sums text;
	hidden text;
	counts text;
	ranks text;
BEGIN
	SELECT string_agg(format('sum(p.terms[%s]) AS %I', i, method), ', ' ORDER BY sort),
		   string_agg(format('max(s.%I) FILTER (WHERE s.j = c.hidden) OVER () AS %I', method, 'sh:' || method),
					  ', ' ORDER BY sort),
		   string_agg(format($f$count(*) FILTER (WHERE s.%1$I > 0) AS %2$I,
								count(*) FILTER (WHERE s.%1$I > 0 AND s.pr < hc.pop_rank) AS %3$I,
								count(*) FILTER (WHERE s.%1$I > 0 AND (s.%1$I > s.%5$I OR (s.%1$I = s.%5$I AND s.j < c.hidden))) AS %4$I,
								max(s.%5$I) FILTER (WHERE s.%5$I > 0) AS %5$I$f$,
							 method, 'scored:' || method, 'before:' || method, 'better:' || method, 'sh:' || method),
					 ', ' ORDER BY sort),
		   string_agg(format('(%L, k.%I, k.%I, k.%I, k.%I)', method, 'scored:' || method, 'before:' || method,
							 'better:' || method, 'sh:' || method), ', ' ORDER BY sort)
	INTO sums, hidden, counts, ranks
	FROM (SELECT m.*, row_number() OVER (ORDER BY m.sort) AS i
		  FROM upsell_eval.methods m WHERE m.method <> 'popularity') m;
	EXECUTE format($q$
		INSERT INTO upsell_eval.ranks (dataset, method, case_id, "rank")
		SELECT %1$L, 'popularity', c.case_id,
			   hc.pop_rank - (SELECT count(*) FROM upsell_eval.counts x
							  WHERE x.product_id = ANY (c.cart) AND x.pop_rank < hc.pop_rank)
		FROM upsell_eval.cases c
		LEFT JOIN upsell_eval.counts hc ON hc.product_id = c.hidden$q$, ds);
	EXECUTE format($q$
		INSERT INTO upsell_eval.ranks (dataset, method, case_id, "rank")
		SELECT %1$L, r.method, c.case_id,
			   CASE WHEN r.sh IS NOT NULL THEN 1 + r.better
					WHEN hc.pop_rank IS NULL THEN NULL
					ELSE r.scored + hc.pop_rank - r.before - cp.n
			   END
		FROM upsell_eval.cases c
		LEFT JOIN upsell_eval.counts hc ON hc.product_id = c.hidden
		-- cart items more popular than the hidden product
		CROSS JOIN LATERAL (SELECT count(*) AS n FROM upsell_eval.counts x
							WHERE x.product_id = ANY (c.cart) AND x.pop_rank < hc.pop_rank) cp
		CROSS JOIN LATERAL (
			SELECT %3$s
			FROM (SELECT s.*, %5$s
				  FROM (SELECT p.other_id AS j, p.pr, %2$s
						FROM upsell_eval.pairs p
						WHERE p.product_id = ANY (c.cart) AND p.other_id <> ALL (c.cart)
						GROUP BY p.other_id, p.pr) s) s) k
		CROSS JOIN LATERAL (VALUES %4$s) r(method, scored, before, better, sh)$q$,
		ds, sums, counts, ranks, hidden);
END
$$;

-- upsell itself: the position of the hidden product in recommend_for_cart(cart, 10),
-- and the widget's promises held on every case, or the run fails: the 10
-- slots filled (on a real catalog), no product of the cart, no substitute
-- of one (a ranking that broke them could only look better here).
CREATE FUNCTION upsell_eval.rank_upsell(ds text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad record;
	-- (a crafted shop of a few products cannot fill 10 slots)
	fills boolean := (SELECT count(*) FROM upsell.product_model m WHERE m.in_stock) >= 100;
BEGIN
	CREATE TEMP TABLE upsell_eval_recs AS
	SELECT c.case_id, c.cart, r.product_id, r."rank"
	FROM upsell_eval.cases c CROSS JOIN LATERAL upsell.recommend_for_cart(c.cart, 10) r;
	INSERT INTO upsell_eval.ranks (dataset, method, case_id, "rank")
	SELECT ds, 'upsell', c.case_id,
		   (SELECT x."rank" FROM upsell_eval_recs x WHERE x.case_id = c.case_id AND x.product_id = c.hidden)
	FROM upsell_eval.cases c;
	SELECT c.case_id, c.cart, count(x.product_id) AS shown,
		   array_agg(x.product_id) FILTER (WHERE x.product_id = ANY (c.cart)
											 OR upsell.is_substitute(0, x.product_id, c.cart)) AS broken
	INTO bad
	FROM upsell_eval.cases c LEFT JOIN upsell_eval_recs x ON x.case_id = c.case_id
	GROUP BY c.case_id, c.cart
	HAVING (fills AND count(x.product_id) < 10)
		OR bool_or(x.product_id = ANY (c.cart) OR upsell.is_substitute(0, x.product_id, c.cart))
	ORDER BY c.case_id
	LIMIT 1;
	DROP TABLE upsell_eval_recs;
	IF FOUND THEN
		RAISE EXCEPTION '%: recommend_for_cart(%, 10) showed % products, among them cart items or substitutes %',
			ds, bad.cart, bad.shown, coalesce(bad.broken, '{}');
	END IF;
END
$$;

CREATE FUNCTION upsell_eval.evaluate(ds text, max_cases int, unseen int DEFAULT 0)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	DELETE FROM upsell_eval.ranks WHERE dataset = ds;
	PERFORM upsell_eval.prepare(ds, max_cases, unseen);
	SET LOCAL client_min_messages = warning;
	CALL upsell.refresh();
	PERFORM upsell_eval.rank_methods(ds);
	PERFORM upsell_eval.rank_upsell(ds);
	-- the models are registered without a tenant column: tenant 0
	UPDATE upsell_eval.ranks k SET substitute = upsell.is_substitute(0, c.hidden, c.cart)
	FROM upsell_eval.cases c WHERE k.dataset = ds AND k.case_id = c.case_id;
	UPDATE upsell_eval.meta SET seconds = extract(epoch FROM clock_timestamp() - t0) WHERE dataset = ds;
END
$$;

-- HR@10 and MRR@10 per dataset and method, and each against the dataset's
-- best baseline: over every case, or (complements_only) over the cases whose
-- hidden product is not a substitute of the cart -- those upsell may find;
-- the others it never offers, by design (README, "Offer quality").
CREATE FUNCTION upsell_eval.scores(complements_only boolean)
RETURNS TABLE (dataset text, method text, cases bigint, hr10 numeric, mrr10 numeric,
			   vs_best_baseline numeric, sort int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH r AS (
		SELECT k.dataset, k.method, m.baseline, coalesce(m.sort, 100) AS sort, count(*) AS cases,
			   avg(CASE WHEN k."rank" <= 10 THEN 1 ELSE 0 END) AS hr10,
			   avg(CASE WHEN k."rank" <= 10 THEN 1.0 / k."rank" ELSE 0 END) AS mrr10
		FROM upsell_eval.ranks k LEFT JOIN upsell_eval.methods m ON m.method = k.method
		WHERE NOT complements_only OR k.substitute IS NOT TRUE
		GROUP BY k.dataset, k.method, m.baseline, m.sort)
	SELECT r.dataset, r.method, r.cases, round(r.hr10, 4), round(r.mrr10, 4),
		   round(r.hr10 / nullif(max(r.hr10) FILTER (WHERE r.baseline) OVER (PARTITION BY r.dataset), 0), 3),
		   r.sort
	FROM r;
END;
CREATE VIEW upsell_eval.results AS SELECT * FROM upsell_eval.scores(false);
CREATE VIEW upsell_eval.complement_results AS SELECT * FROM upsell_eval.scores(true);
