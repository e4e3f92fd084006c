#!/usr/bin/env bash
# Benchmark part: post-purchase (issue 6).
#
# 1. Interval statistics per (customer, product) over every registered order
#    line: the GROUP BY with the C aggregate purchase_interval_agg that
#    refresh runs, against the plain SQL a user would write (distinct
#    purchase times, lag() for the gaps, percentile_cont and stddev_samp);
#    same runs each, medians; both must give the same rows.
# 2. replenishment_due for one week, from the stored model, against plain SQL
#    over the raw lines (same consumable products, same window): same rows.
# 3. recommend_for_customer and email_sequence per-call latency (server-side,
#    plpgsql loop with clock_timestamp()), against a plain-SQL "complements of
#    what this customer bought" query over the raw lines.
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-3}
CUSTOMERS=${BENCH_CUSTOMERS:-500}
SQL_CUSTOMERS=${BENCH_SQL_CUSTOMERS:-100}

bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_pp CASCADE; CREATE SCHEMA bench_pp"
trap 'bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_pp CASCADE" >/dev/null 2>&1 || true' EXIT

# (the histories are one row per customer since 1.2: purchase_interval_model
# is a view of purchase_history_model's arrays)
bq -F ' ' -c "SELECT '  model ' || rpad(model, 28) || lpad(row_count::text, 10) || ' rows ' || lpad(round(build_ms::numeric)::text, 8) || ' ms'
			  FROM upsell.models WHERE model IN ('purchase_history_model', 'product_interval_model') ORDER BY build_order"
read -r PHM_ROWS PHM_MS <<<"$(bq -F ' ' -c "SELECT row_count, round(build_ms::numeric) FROM upsell.models WHERE model = 'purchase_history_model'")"
result "purchase_history_model: $PHM_ROWS customers' histories built in $PHM_MS ms by refresh"

# ---- 1. interval statistics ---------------------------------------------------------

UPSELL_IV="SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_pp.upsell_iv;
CREATE UNLOGGED TABLE bench_pp.upsell_iv AS
SELECT customer_id, product_id, (s).purchases, (s).median_gap_days AS median, (s).cv
FROM (SELECT customer_id, product_id, upsell.purchase_interval_agg(ordered_at) AS s
	  FROM bench.order_lines WHERE quantity > 0
	  GROUP BY customer_id, product_id) q"

SQL_IV="SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_pp.sql_iv;
CREATE UNLOGGED TABLE bench_pp.sql_iv AS
WITH buys AS (
	SELECT DISTINCT customer_id, product_id, ordered_at FROM bench.order_lines WHERE quantity > 0),
gaps AS (
	SELECT customer_id, product_id,
		   extract(epoch FROM ordered_at - lag(ordered_at) OVER (PARTITION BY customer_id, product_id ORDER BY ordered_at)) / 86400 AS gap
	FROM buys)
SELECT customer_id, product_id, count(*) AS purchases,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median,
	   stddev_samp(gap) / nullif(avg(gap), 0) AS cv
FROM gaps GROUP BY customer_id, product_id"

echo "interval statistics of every (customer, product): purchases, median gap, CV ($RUNS runs each, median):"
bench_time "plain SQL (lag, percentile_cont, stddev_samp)" "$RUNS" "$SQL_IV"
SQL_MS=$BENCH_MEDIAN_MS
bench_time "upsell.purchase_interval_agg (GROUP BY)" "$RUNS" "$UPSELL_IV"
UPS_MS=$BENCH_MEDIAN_MS
# Equal within 1e-9 (the plain SQL's gaps are numerics, extract() since
# PostgreSQL 14, upsell's doubles): rounding both to 9 places, as this part
# did until 1.12, told 1 pair of 8,656,986 apart at 10M lines, a CV of
# 0.70856912449999972951... against 0.7085691244999998, 3e-17 apart.
IV_DIFFER="FROM bench_pp.sql_iv s FULL JOIN bench_pp.upsell_iv u USING (customer_id, product_id)
			WHERE s.purchases IS DISTINCT FROM u.purchases
			   OR (s.median IS NULL) <> (u.median IS NULL) OR abs(s.median - u.median::numeric) > 1e-9
			   OR (s.cv IS NULL) <> (u.cv IS NULL) OR abs(s.cv - u.cv::numeric) > 1e-9"
read -r NROWS NDIFF <<<"$(bq -F ' ' -c "
	SELECT (SELECT count(*) FROM bench_pp.sql_iv), (SELECT count(*) $IV_DIFFER)")"
[ "$NDIFF" = 0 ] || bq -c "SELECT 'differs: ' || coalesce(s::text, 'none') || ' against ' || coalesce(u::text, 'none') $IV_DIFFER LIMIT 3"
RATIO=$(bench_ratio "$SQL_MS" "$UPS_MS")
echo "rows: $NROWS (customer, product) pairs; rows that differ: $NDIFF; speed-up ${RATIO}x"
result "interval statistics: $NROWS pairs, same in both: $([ "$NDIFF" = 0 ] && echo yes || echo NO); plain SQL $SQL_MS ms, upsell $UPS_MS ms: ${RATIO}x"

# ---- 2. replenishment_due -------------------------------------------------------------

AS_OF=$(bq -c "SELECT (max(ordered_at) - interval '7 days')::date FROM bench.order_lines")
UPSELL_DUE="SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_pp.upsell_due;
CREATE UNLOGGED TABLE bench_pp.upsell_due AS
SELECT customer_id, product_id, next_due FROM upsell.replenishment_due('$AS_OF', '7 days')
WHERE interval_source = 'own'"
# consumable products as the model decided (no merchant rules in the bench)
bq -c "CREATE TABLE bench_pp.consumable AS SELECT product_id FROM upsell.product_interval_model WHERE repeats_consumable"
SQL_DUE="SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_pp.sql_due;
CREATE UNLOGGED TABLE bench_pp.sql_due AS
WITH buys AS (
	SELECT DISTINCT l.customer_id, l.product_id, l.ordered_at
	FROM bench.order_lines l
	JOIN bench_pp.consumable c ON c.product_id = l.product_id
	JOIN bench.products p ON p.product_id = l.product_id AND p.in_stock
	WHERE l.quantity > 0),
gaps AS (
	SELECT customer_id, product_id, ordered_at,
		   extract(epoch FROM ordered_at - lag(ordered_at) OVER (PARTITION BY customer_id, product_id ORDER BY ordered_at)) / 86400 AS gap
	FROM buys),
iv AS (
	SELECT customer_id, product_id, max(ordered_at) AS last_at,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median
	FROM gaps GROUP BY customer_id, product_id HAVING count(*) >= 2)
SELECT customer_id, product_id, last_at + median * interval '1 day' AS next_due
FROM iv
WHERE last_at + median * interval '1 day' >= timestamptz '$AS_OF'
  AND last_at + median * interval '1 day' < timestamptz '$AS_OF' + interval '7 days'"

echo
echo "customers due for a restock in the week from $AS_OF (own interval, consumable products):"
bench_time "plain SQL over the raw order lines" "$RUNS" "$SQL_DUE"
SQL_DUE_MS=$BENCH_MEDIAN_MS
bench_time "upsell.replenishment_due (stored model)" "$RUNS" "$UPSELL_DUE"
UPS_DUE_MS=$BENCH_MEDIAN_MS
read -r NDUE NDUEDIFF <<<"$(bq -F ' ' -c "
	SELECT (SELECT count(*) FROM bench_pp.sql_due),
		   (SELECT count(*) FROM bench_pp.sql_due s FULL JOIN bench_pp.upsell_due u USING (customer_id, product_id)
			WHERE s.next_due IS DISTINCT FROM u.next_due)")"
echo "rows: $NDUE due; rows that differ: $NDUEDIFF; speed-up $(bench_ratio "$SQL_DUE_MS" "$UPS_DUE_MS")x"
result "replenishment_due (a week): $NDUE rows, same in both: $([ "$NDUEDIFF" = 0 ] && echo yes || echo NO); plain SQL $SQL_DUE_MS ms, upsell $UPS_DUE_MS ms: $(bench_ratio "$SQL_DUE_MS" "$UPS_DUE_MS")x"

bench_time "upsell.subscription_candidates()" "$RUNS" "SELECT count(*) FROM upsell.subscription_candidates()"
SUBS=$(bq -c "SELECT count(*) FROM upsell.subscription_candidates()")
result "subscription_candidates: $SUBS rows in $BENCH_MEDIAN_MS ms"

# ---- 3. per-customer latency -----------------------------------------------------------

AT=$(bq -c "SELECT max(ordered_at) FROM bench.order_lines")
LAT=$(bq -F ' ' <<SQL
SET client_min_messages = warning;
SELECT setseed(0.7);
CREATE TABLE bench_pp.customers AS
SELECT row_number() OVER () AS i, customer_id
FROM (SELECT customer_id FROM (SELECT DISTINCT customer_id FROM bench.order_lines ORDER BY 1) d
	  ORDER BY random() LIMIT $CUSTOMERS) c;

CREATE TABLE bench_pp.latency (side text, i int, ms float8, n int);

CREATE FUNCTION bench_pp.sql_customer(c bigint, k int) RETURNS TABLE (product_id bigint, together bigint)
LANGUAGE sql STABLE AS \$f\$
	-- what a user writes: products in orders that contain something the
	-- customer bought, minus what the customer bought
	WITH mine AS (SELECT DISTINCT l.product_id FROM bench.order_lines l WHERE l.customer_id = c)
	SELECT b.product_id, count(DISTINCT b.order_id) AS together
	FROM bench.order_lines a
	JOIN bench.order_lines b ON b.order_id = a.order_id
	JOIN bench.products p ON p.product_id = b.product_id AND p.in_stock
	WHERE a.product_id IN (SELECT m.product_id FROM mine m) AND a.quantity > 0 AND b.quantity > 0
	  AND b.product_id NOT IN (SELECT m.product_id FROM mine m)
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
	FOR c IN SELECT * FROM bench_pp.customers WHERE i <= 50 ORDER BY i LOOP
		PERFORM count(*) FROM upsell.recommend_for_customer(c.customer_id, 5, at => '$AT');
		PERFORM count(*) FROM upsell.email_sequence(c.customer_id, 5, at => '$AT');
		-- (the plain SQL warmed as far as it is timed: at 10M lines a call
		-- takes a second)
		IF c.i <= $SQL_CUSTOMERS THEN
			PERFORM count(*) FROM bench_pp.sql_customer(c.customer_id, 5);
		END IF;
	END LOOP;
	FOR c IN SELECT * FROM bench_pp.customers ORDER BY i LOOP
		t0 := clock_timestamp();
		SELECT count(*) INTO n FROM upsell.recommend_for_customer(c.customer_id, 5, at => '$AT');
		INSERT INTO bench_pp.latency VALUES ('recommend', c.i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
	END LOOP;
	FOR c IN SELECT * FROM bench_pp.customers ORDER BY i LOOP
		t0 := clock_timestamp();
		SELECT count(*) INTO n FROM upsell.email_sequence(c.customer_id, 5, at => '$AT');
		INSERT INTO bench_pp.latency VALUES ('email', c.i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
	END LOOP;
	FOR c IN SELECT * FROM bench_pp.customers WHERE i <= $SQL_CUSTOMERS ORDER BY i LOOP
		t0 := clock_timestamp();
		SELECT count(*) INTO n FROM bench_pp.sql_customer(c.customer_id, 5);
		INSERT INTO bench_pp.latency VALUES ('sql', c.i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
	END LOOP;
END
\$\$;

SELECT side, count(*),
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
	   round(max(ms)::numeric, 3),
	   min(n)
FROM bench_pp.latency GROUP BY side ORDER BY side;
SQL
)
echo
echo "per-customer calls for random customers (server-side, plpgsql loop with clock_timestamp()):"
while read -r side calls p50 p99 max minrows || [ -n "${side:-}" ]; do
	[ -n "$side" ] || continue
	case $side in
		recommend) label="upsell.recommend_for_customer(c, 5)" ;;
		email) label="upsell.email_sequence(c, 5)" ;;
		*) label="plain SQL complements over raw lines" ;;
	esac
	printf '%-40s %5d calls  p50 %8s ms  p99 %8s ms  max %8s ms  (fewest rows %s)\n' "$label" "$calls" "$p50" "$p99" "$max" "$minrows"
	result "$label: p50 $p50 ms, p99 $p99 ms over $calls calls"
	eval "P50_$side=$p50"
done <<<"$LAT"
echo "p50 ratio (plain SQL / recommend_for_customer): $(bench_ratio "${P50_sql:-0}" "${P50_recommend:-0}")x"

[ "$NDIFF" = 0 ] || { echo "FAILED: upsell and plain SQL disagree on the interval statistics" >&2; exit 1; }
[ "$NDUEDIFF" = 0 ] || { echo "FAILED: upsell and plain SQL disagree on who is due" >&2; exit 1; }
