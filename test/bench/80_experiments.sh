#!/usr/bin/env bash
# Benchmark part: experiments and merchant metrics (issue 8).
#
# 1. upsell.assign for BENCH_UNITS units (C, variants cached per query)
#    against the plain-SQL split a user would write (hashtextextended modulo
#    100 in a CASE): both must split within 1 point of the weights.
# 2. Recording one exposure per unit (INSERT ... SELECT through the trigger
#    that fills in the variant).
# 3. upsell.experiment_results over those units and the registered order
#    lines (30-day conversion window), against the plain SQL a user would
#    write for units, orders and revenue per variant: same figures.
# 4. upsell.metrics('month') against plain SQL for orders, revenue and AOV
#    per month: same figures.
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-3}
UNITS=${BENCH_UNITS:-100000}
EXP=bench_experiment

cleanup() {
	bq <<-SQL >/dev/null 2>&1 || true
		SET client_min_messages = warning;
		DELETE FROM upsell.offer_events WHERE experiment = '$EXP';
		UPDATE upsell.experiments SET ended_at = now() WHERE experiment = '$EXP';
		DELETE FROM upsell.experiments WHERE experiment = '$EXP';
		DROP SCHEMA IF EXISTS bench_exp CASCADE;
	SQL
}
cleanup
trap cleanup EXIT

# The units: the first UNITS customers by id; each is shown the experiment
# once, at a time spread over the day at the middle of the order history.
bq <<-SQL >/dev/null
	CREATE SCHEMA bench_exp;
	CREATE TABLE bench_exp.units AS
	SELECT customer_id, (SELECT min(ordered_at) + (max(ordered_at) - min(ordered_at)) / 2 FROM bench.order_lines)
						+ (customer_id % 1440) * interval '1 minute' AS shown_at
	FROM (SELECT DISTINCT customer_id FROM bench.order_lines ORDER BY customer_id LIMIT $UNITS) c;
	INSERT INTO upsell.experiments (experiment, started_at, conversion_window)
	VALUES ('$EXP', '-infinity', '30 days');
	INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
		('$EXP', 'control', 50, '{}'), ('$EXP', 'cross_sell', 30, '{complement}'),
		('$EXP', 'cross_sell_gap', 20, '{complement,gap_filler}');
SQL
NUNITS=$(bq -c "SELECT count(*) FROM bench_exp.units")

# ---- 1. assignment -----------------------------------------------------------

echo "assignment of $NUNITS units to 3 variants (50/30/20), $RUNS runs each, median:"
bench_time "upsell.assign (FNV-1a + fmix64, C)" "$RUNS" \
	"SELECT count(*) FROM (SELECT upsell.assign('$EXP', customer_id::text) AS v FROM bench_exp.units) s WHERE v IS NOT NULL"
UPS_MS=$BENCH_MEDIAN_MS
SQL_SPLIT="SELECT CASE WHEN b < 50 THEN 'control' WHEN b < 80 THEN 'cross_sell' ELSE 'cross_sell_gap' END AS v
	FROM (SELECT abs(hashtextextended('$EXP' || ':' || customer_id, 0) % 100) AS b FROM bench_exp.units) s"
bench_time "plain SQL: hashtextextended % 100 in a CASE" "$RUNS" "SELECT count(*) FROM ($SQL_SPLIT) s WHERE v IS NOT NULL"
SQL_MS=$BENCH_MEDIAN_MS
SPLITS=$(bq -c "WITH a AS (SELECT upsell.assign('$EXP', customer_id::text) AS v FROM bench_exp.units),
				b AS ($SQL_SPLIT)
			SELECT string_agg(format('%s %s/%s', w.variant, round(100.0 * (SELECT count(*) FROM a WHERE a.v = w.variant) / $NUNITS, 2),
									 round(100.0 * (SELECT count(*) FROM b WHERE b.v = w.variant) / $NUNITS, 2)), ', ' ORDER BY w.variant)
			FROM upsell.experiment_variants w WHERE w.experiment = '$EXP'")
OK=$(bq -c "WITH a AS (SELECT upsell.assign('$EXP', customer_id::text) AS v FROM bench_exp.units),
			 b AS ($SQL_SPLIT)
			SELECT bool_and(abs((SELECT count(*) FROM a WHERE a.v = w.variant)::numeric / $NUNITS - w.weight / 100) < 0.01
						AND abs((SELECT count(*) FROM b WHERE b.v = w.variant)::numeric / $NUNITS - w.weight / 100) < 0.01)
			FROM upsell.experiment_variants w WHERE w.experiment = '$EXP'")
echo "  shares % (upsell/plain SQL): $SPLITS; both within 1 point of the weights: $OK"
[ "$OK" = t ] || { echo "assignment split off its weights"; exit 1; }
result "assign: $NUNITS units in $UPS_MS ms ($(bench_ratio "$(( NUNITS * 1000 ))" "$UPS_MS") units/s); plain SQL split $SQL_MS ms"

# ---- 2. exposures and offer events ---------------------------------------------

t0=$(date +%s%3N)
bq -c "INSERT INTO upsell.exposures (experiment, unit_id, stage, shown_at)
	   SELECT '$EXP', customer_id::text, 'cart', shown_at FROM bench_exp.units" >/dev/null
EXPO_MS=$(( $(date +%s%3N) - t0 ))
# units of the offer variants add one product they then order from an offer
bq <<-SQL >/dev/null
	INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event, stage, experiment, occurred_at)
	SELECT DISTINCT ON (x.unit_id) x.unit_id, 'complement', l.product_id, 'add', 'cart', '$EXP', l.ordered_at - interval '1 minute'
	FROM upsell.exposures x
	JOIN bench.order_lines l ON l.customer_id = x.unit_id::bigint
		AND l.ordered_at > x.shown_at + interval '1 minute' AND l.ordered_at < x.shown_at + interval '30 days'
	WHERE x.experiment = '$EXP' AND x.variant <> 'control' AND x.unit_id::bigint % 3 = 0
	ORDER BY x.unit_id, l.ordered_at, l.product_id;
	ANALYZE upsell.exposures;
	ANALYZE upsell.offer_events;
SQL
NEVENTS=$(bq -c "SELECT count(*) FROM upsell.offer_events WHERE experiment = '$EXP'")
echo "recorded $NUNITS exposures in $EXPO_MS ms (trigger assigns each); $NEVENTS offer adds"
result "exposures: $NUNITS rows inserted in $EXPO_MS ms"

# ---- 3. results -------------------------------------------------------------------

echo "experiment_results over $NUNITS units and their orders ($RUNS runs each, median):"
bench_time "upsell.experiment_results (all figures + tests)" "$RUNS" \
	"SET client_min_messages = error; SELECT count(*) FROM upsell.experiment_results('$EXP')"
UPS_MS=$BENCH_MEDIAN_MS
SQL_RESULTS="WITH u AS (SELECT DISTINCT ON (unit_id) unit_id::bigint AS customer_id, variant, shown_at
		   FROM upsell.exposures WHERE experiment = '$EXP' ORDER BY unit_id, shown_at, exposure_id),
	o AS (SELECT l.customer_id, l.order_id, min(l.ordered_at) AS t, sum(l.quantity * l.unit_price) AS revenue
		  FROM bench.order_lines l WHERE l.customer_id IN (SELECT customer_id FROM u) GROUP BY 1, 2),
	uo AS (SELECT u.variant, u.customer_id, o.revenue FROM u JOIN o ON o.customer_id = u.customer_id
		   AND o.t >= u.shown_at AND o.t < u.shown_at + interval '30 days')
	SELECT v.variant, (SELECT count(*) FROM u WHERE u.variant = v.variant) AS units,
		   (SELECT count(*) FROM uo WHERE uo.variant = v.variant) AS orders,
		   (SELECT coalesce(sum(revenue), 0) FROM uo WHERE uo.variant = v.variant) AS revenue
	FROM (SELECT DISTINCT variant FROM u) v"
bench_time "plain SQL: units, orders, revenue per variant" "$RUNS" "SELECT count(*) FROM ($SQL_RESULTS) s"
SQL_MS=$BENCH_MEDIAN_MS
DIFF=$(bq -c "SET client_min_messages = error;
	SELECT count(*) FROM ($SQL_RESULTS) s FULL JOIN upsell.experiment_results('$EXP') r USING (variant)
	WHERE (s.units, s.orders, s.revenue) IS DISTINCT FROM (r.units, r.orders, r.revenue)")
echo "  per-variant units/orders/revenue differing from plain SQL: $DIFF"
bq -F ' ' -c "SET client_min_messages = error;
	SELECT '  ' || rpad(variant, 15) || lpad(units::text, 7) || ' units' || lpad(round(100 * conversion_rate::numeric, 2)::text, 7) || '% conv'
		|| '  AOV ' || aov || '  RPV ' || revenue_per_visitor || '  attach ' || round(attach_rate::numeric, 3)
		|| coalesce('  conv p ' || round(conversion_p_value::numeric, 4) || '  RPV p ' || round(rpv_p_value::numeric, 4), '')
		|| '  SRM p ' || round(srm_p_value::numeric, 4)
	FROM upsell.experiment_results('$EXP')"
[ "$DIFF" = 0 ] || { echo "experiment_results disagrees with plain SQL"; exit 1; }
result "experiment_results: $NUNITS units in $UPS_MS ms (plain SQL for units/orders/revenue only: $SQL_MS ms); same figures"

# ---- 4. metrics -----------------------------------------------------------------------

echo "metrics('month') over every registered order line ($RUNS runs each, median):"
bench_time "upsell.metrics('month') (all columns, attribution)" "$RUNS" \
	"SELECT count(*) FROM upsell.metrics('month')"
UPS_MS=$BENCH_MEDIAN_MS
SQL_METRICS="SELECT date_trunc('month', t) AS m, count(*) AS orders, sum(revenue) AS revenue, round(avg(revenue), 2) AS aov
	FROM (SELECT order_id, min(ordered_at) AS t, sum(quantity * unit_price) AS revenue FROM bench.order_lines GROUP BY order_id) o
	GROUP BY 1"
bench_time "plain SQL: orders, revenue, AOV per month" "$RUNS" "SELECT count(*) FROM ($SQL_METRICS) s"
SQL_MS=$BENCH_MEDIAN_MS
DIFF=$(bq -c "SELECT count(*) FROM ($SQL_METRICS) s FULL JOIN (SELECT * FROM upsell.metrics('month') WHERE offer_type IS NULL) x
	ON x.period_start = s.m WHERE (s.orders, s.revenue, s.aov) IS DISTINCT FROM (x.orders, x.revenue, x.aov)")
NMONTHS=$(bq -c "SELECT count(*) FROM upsell.metrics('month') WHERE offer_type IS NULL")
echo "  months: $NMONTHS; months differing from plain SQL: $DIFF"
[ "$DIFF" = 0 ] || { echo "metrics disagree with plain SQL"; exit 1; }
result "metrics('month'): $NMONTHS months in $UPS_MS ms (plain SQL for orders/revenue/AOV only: $SQL_MS ms); same figures"
