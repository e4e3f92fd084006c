#!/usr/bin/env bash
# Benchmark part: frequently bought together and recommend_for_cart (issue 2).
#
# 1. Pair counts and metrics over the registered order lines, upsell against
#    the plain-SQL self-join a user would write over the same lines
#    (quantity > 0, each product once per order, pairs seen in >= 2 orders),
#    same number of runs each, medians; both results must have the same rows.
#    The upsell side again with max_parallel_workers_per_gather 0 and 2.
# 2. recommend_for_cart for 5-item carts of popular products: per-call
#    latency measured server-side (plpgsql loop, clock_timestamp() around each
#    call), p50/p99, against a plain-SQL cart-complements query over the raw
#    order lines.
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-3}
CARTS=${BENCH_CARTS:-2000}
SQL_CARTS=${BENCH_SQL_CARTS:-500}

bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_x CASCADE; CREATE SCHEMA bench_x"
trap 'bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_x CASCADE" >/dev/null 2>&1 || true' EXIT

# ---- 1. pair counts -----------------------------------------------------------

UPSELL_PAIRS="SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_x.upsell_pairs;
CREATE UNLOGGED TABLE bench_x.upsell_pairs AS
SELECT product_id, other_id, together, support, confidence, lift
FROM upsell.frequently_bought_together(min_count => 2)"

# What a user writes: distinct (order, product) of the bought lines, the
# self-join on the order, the counts per product and in total, the formulas.
SQL_PAIRS="SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_x.sql_pairs;
CREATE UNLOGGED TABLE bench_x.sql_pairs AS
WITH lines AS (
	SELECT DISTINCT order_id, product_id FROM bench.order_lines WHERE quantity > 0),
n AS (SELECT count(DISTINCT order_id)::float8 AS orders FROM lines),
product_orders AS (SELECT product_id, count(*) AS cnt FROM lines GROUP BY product_id),
pairs AS (
	SELECT a.product_id, b.product_id AS other_id, count(*) AS together
	FROM lines a
	JOIN lines b ON a.order_id = b.order_id AND a.product_id <> b.product_id
	GROUP BY a.product_id, b.product_id
	HAVING count(*) >= 2)
SELECT p.product_id, p.other_id, p.together,
	   p.together / n.orders AS support,
	   p.together::float8 / pa.cnt AS confidence,
	   (p.together / n.orders) / ((pa.cnt / n.orders) * (pb.cnt / n.orders)) AS lift
FROM pairs p
JOIN product_orders pa ON pa.product_id = p.product_id
JOIN product_orders pb ON pb.product_id = p.other_id
CROSS JOIN n"

echo "pair counts and support/confidence/lift of every pair seen in >= 2 orders ($RUNS runs each, median):"
bq -c "SET max_parallel_workers_per_gather = 2" >/dev/null
bench_time "plain SQL self-join (parallel workers 2)" "$RUNS" "SET max_parallel_workers_per_gather = 2; $SQL_PAIRS"
SQL_MS=$BENCH_MEDIAN_MS
bench_time "upsell.frequently_bought_together (workers 2)" "$RUNS" "SET max_parallel_workers_per_gather = 2; $UPSELL_PAIRS"
UPS_MS=$BENCH_MEDIAN_MS
bench_time "upsell.frequently_bought_together (workers 0)" "$RUNS" "SET max_parallel_workers_per_gather = 0; $UPSELL_PAIRS"
UPS0_MS=$BENCH_MEDIAN_MS

AGG="SELECT upsell.cooccurrence_agg(order_key, product_id, quantity) FROM upsell.order_lines GROUP BY tenant_id"
bench_time "counting alone: cooccurrence_agg (workers 2)" "$RUNS" "SET max_parallel_workers_per_gather = 2; $AGG"
AGG2_MS=$BENCH_MEDIAN_MS
bench_time "counting alone: cooccurrence_agg (workers 0)" "$RUNS" "SET max_parallel_workers_per_gather = 0; $AGG"
AGG0_MS=$BENCH_MEDIAN_MS
WORKERS=$(bq -c "SET max_parallel_workers_per_gather = 2; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $AGG" |
	awk '/Workers Launched/ {print $3}' | head -1)

read -r NROWS ONLY_SQL ONLY_UPS <<<"$(bq -F ' ' -c "
	SELECT (SELECT count(*) FROM bench_x.sql_pairs),
		   (SELECT count(*) FROM (
				SELECT product_id, other_id, together, round(support::numeric, 12), round(confidence::numeric, 12), round(lift::numeric, 8) FROM bench_x.sql_pairs
				EXCEPT
				SELECT product_id, other_id, together, round(support::numeric, 12), round(confidence::numeric, 12), round(lift::numeric, 8) FROM bench_x.upsell_pairs) d),
		   (SELECT count(*) FROM (
				SELECT product_id, other_id, together, round(support::numeric, 12), round(confidence::numeric, 12), round(lift::numeric, 8) FROM bench_x.upsell_pairs
				EXCEPT
				SELECT product_id, other_id, together, round(support::numeric, 12), round(confidence::numeric, 12), round(lift::numeric, 8) FROM bench_x.sql_pairs) d)")"

RATIO=$(bench_ratio "$SQL_MS" "$UPS_MS")
RATIO0=$(bench_ratio "$SQL_MS" "$UPS0_MS")
echo "rows: $NROWS pairs; only in SQL: $ONLY_SQL, only in upsell: $ONLY_UPS"
echo "speed-up over plain SQL: ${RATIO}x (upsell with 2 workers), ${RATIO0}x (upsell with 0 workers)"
echo "parallel counting: ${AGG0_MS} ms with 0 workers, ${AGG2_MS} ms with 2 (${WORKERS:-0} workers launched), $(bench_ratio "$AGG0_MS" "$AGG2_MS")x"
result "pairs (>= 2 orders): $NROWS rows, same in both: $([ "$ONLY_SQL$ONLY_UPS" = 00 ] && echo yes || echo NO)"
result "pairs: plain SQL $SQL_MS ms, upsell $UPS_MS ms (2 workers) / $UPS0_MS ms (0 workers): ${RATIO}x / ${RATIO0}x (target >= 10x)"
result "counting alone (cooccurrence_agg): $AGG0_MS ms (0 workers), $AGG2_MS ms (2 workers)"

# Sanity of the model on the generator's known structure: how many planted
# complements of products with >= 50 orders are among their top 5 in the
# pair model that refresh built.
read -r HIT PLANTED <<<"$(bq -F ' ' -c "
	SELECT count(*) FILTER (WHERE hit), count(*)
	FROM (SELECT EXISTS (SELECT FROM (SELECT pm.other_id FROM upsell.pair_model pm
									  WHERE pm.tenant_id = 0 AND pm.product_id = pl.product_id
									  ORDER BY pm.score DESC, pm.other_id LIMIT 5) t
						 WHERE t.other_id = pl.complement_id) AS hit
		  FROM bench.planted pl
		  JOIN upsell.product_model m ON m.tenant_id = 0 AND m.product_id = pl.product_id
		  WHERE m.orders >= 50) s")"
echo "planted complements of products with >= 50 orders found in their top 5 of upsell.pair_model: $HIT of $PLANTED"
result "planted complements in the top 5 of the pair model: $HIT of $PLANTED"

# ---- 2. recommend_for_cart latency ------------------------------------------------

# Carts: 5 distinct products among the 1000 most popular, drawn in SQL with a
# fixed seed; the same carts for both sides.  Timings are server-side: a
# plpgsql loop with clock_timestamp() around each call (no client round
# trip); the first 50 carts are run once untimed to warm plans and caches.
LAT=$(bq -F ' ' <<SQL
SET client_min_messages = warning;
SELECT setseed(0.42);
CREATE TABLE bench_x.carts AS
SELECT i, ARRAY(SELECT m.product_id FROM upsell.product_popularity m
				WHERE m.tenant_id = 0 AND m.popularity_rank <= 1000 AND i > 0
				ORDER BY random() LIMIT 5) AS cart
FROM generate_series(1, $CARTS) i;

CREATE TABLE bench_x.latency (side text, i int, ms float8, n int);

CREATE FUNCTION bench_x.sql_cart(cart bigint[], k int) RETURNS TABLE (product_id bigint, together bigint)
LANGUAGE sql STABLE AS \$f\$
	-- what a user writes: products in the orders that contain a cart item
	SELECT b.product_id, count(DISTINCT b.order_id) AS together
	FROM bench.order_lines a
	JOIN bench.order_lines b ON b.order_id = a.order_id
	JOIN bench.products p ON p.product_id = b.product_id AND p.in_stock
	WHERE a.product_id = ANY (cart) AND a.quantity > 0 AND b.quantity > 0
	  AND b.product_id <> ALL (cart)
	GROUP BY b.product_id
	ORDER BY together DESC, b.product_id
	LIMIT k
\$f\$;

DO \$\$
DECLARE
	c record;
	t0 timestamptz;
	n int;
BEGIN
	FOR c IN SELECT * FROM bench_x.carts WHERE i <= 50 ORDER BY i LOOP
		PERFORM count(*) FROM upsell.recommend_for_cart(c.cart, 5);
		PERFORM count(*) FROM bench_x.sql_cart(c.cart, 5);
	END LOOP;
	FOR c IN SELECT * FROM bench_x.carts ORDER BY i LOOP
		t0 := clock_timestamp();
		SELECT count(*) INTO n FROM upsell.recommend_for_cart(c.cart, 5);
		INSERT INTO bench_x.latency VALUES ('upsell', c.i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
	END LOOP;
	FOR c IN SELECT * FROM bench_x.carts WHERE i <= $SQL_CARTS ORDER BY i LOOP
		t0 := clock_timestamp();
		SELECT count(*) INTO n FROM bench_x.sql_cart(c.cart, 5);
		INSERT INTO bench_x.latency VALUES ('sql', c.i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
	END LOOP;
END
\$\$;

SELECT side, count(*),
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	   round(max(ms)::numeric, 3),
	   min(n)
FROM bench_x.latency GROUP BY side ORDER BY side DESC;
SQL
)
echo
echo "recommend_for_cart, 5-item carts of products among the 1000 most popular (server-side, plpgsql loop with clock_timestamp()):"
while read -r side calls p50 p99 max minrows; do
	[ -n "$side" ] || continue
	if [ "$side" = upsell ]; then label="upsell.recommend_for_cart(cart, 5)"; else label="plain SQL over raw order lines"; fi
	printf '%-40s %5d calls  p50 %8s ms  p99 %8s ms  max %8s ms  (fewest rows %s)\n' "$label" "$calls" "$p50" "$p99" "$max" "$minrows"
	result "cart of 5, $label: p50 $p50 ms, p99 $p99 ms over $calls calls"
	eval "P50_$side=$p50"
done <<<"$LAT"
echo "p50 ratio (plain SQL / upsell): $(bench_ratio "${P50_sql:-0}" "${P50_upsell:-0}")x"

[ "$ONLY_SQL$ONLY_UPS" = 00 ] || { echo "FAILED: upsell and plain SQL disagree on the pairs" >&2; exit 1; }
