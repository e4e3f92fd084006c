#!/usr/bin/env bash
# Benchmark part: frequently bought together on long baskets, FIMI retail
# (test/data/retail.dat: 88,162 baskets, 16,470 products, 908,576 lines,
# about 10 products a basket; a shop's cost lies in long baskets).  In its
# own database (upsell_bench_retail, loaded once and reused), registered
# like a shop's order lines:
#
# 1. the analyst's query, SELECT count(*), sum(lift) FROM
#    upsell.frequently_bought_together(min_count => 2), against the plain-SQL
#    self-join with the same metrics, side by side in this run (medians);
#    both must give the same rows and the same sum;
# 2. counting alone (cooccurrence_agg) with 0 and 2 parallel workers, wall
#    and the backend's CPU time (the machine is shared), and that both give
#    the same value;
# 3. listing alone: the 1.8M pair rows of a stored value, streamed (select
#    list) and collected (FROM).
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-3}
SQL_RUNS=${BENCH_RETAIL_SQL_RUNS:-$RUNS}
DB=upsell_bench_retail
MAIN_DB=${PGDATABASE:-upsell_bench}

if ! bq -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
	bq -d postgres -c "CREATE DATABASE $DB"
fi
export PGDATABASE=$DB
# the same timing helpers as the main bench database
bq -c "CREATE SCHEMA IF NOT EXISTS bench; DROP FUNCTION IF EXISTS bench.time_runs(text, int)"
bq -d "$MAIN_DB" -c "SELECT pg_get_functiondef(f) || ';' FROM unnest(ARRAY['bench.backend_cpu_ms()'::regprocedure, 'bench.time_runs(text, int)'::regprocedure]) f" |
	sed 's/^CREATE FUNCTION/CREATE OR REPLACE FUNCTION/' | bq >/dev/null
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- data, loaded once ------------------------------------------------------------
HASH=$(md5sum test/data/retail.dat | cut -c1-32)
if [ "$(bq -c "SELECT hash FROM retail.meta" 2>/dev/null || true)" != "$HASH" ]; then
	echo "loading test/data/retail.dat into $DB"
	bq <<-SQL
		SET client_min_messages = warning;
		DROP SCHEMA IF EXISTS retail CASCADE;
		CREATE SCHEMA retail;
		CREATE TABLE retail.raw (order_id bigint GENERATED ALWAYS AS IDENTITY, line text);
		\\copy retail.raw (line) FROM 'test/data/retail.dat' WITH (FORMAT text, DELIMITER E'\\x01')
		CREATE TABLE retail.order_lines AS
		SELECT r.order_id, x::bigint AS product_id
		FROM retail.raw r, unnest(string_to_array(trim(r.line), ' ')) AS x
		WHERE x <> ''
		ORDER BY 1;
		DROP TABLE retail.raw;
		VACUUM ANALYZE retail.order_lines;
		CREATE TABLE retail.meta AS SELECT '$HASH'::text AS hash;
	SQL
fi
bq <<-'SQL' >/dev/null
	SET client_min_messages = warning;
	DROP EXTENSION IF EXISTS upsell CASCADE;
	CREATE EXTENSION upsell;
	SELECT upsell.register_orders('retail.order_lines', 'order_id', 'product_id');
SQL
read -r NLINES NORDERS NPRODUCTS <<<"$(bq -F ' ' -c "SELECT count(*), count(DISTINCT order_id), count(DISTINCT product_id) FROM retail.order_lines")"
echo "retail: $NLINES lines, $NORDERS orders, $NPRODUCTS products"

# ---- 1. the analyst's query against the plain-SQL self-join ---------------------
UPSELL="TRUNCATE bench.retail_upsell_sum;
INSERT INTO bench.retail_upsell_sum SELECT count(*), sum(lift) FROM upsell.frequently_bought_together(min_count => 2)"
# what a user writes: each product once per order, the self-join, the counts
# per product and in total, the formula of lift
PLAIN="TRUNCATE bench.retail_sql_sum;
INSERT INTO bench.retail_sql_sum
WITH lines AS (SELECT DISTINCT order_id, product_id FROM retail.order_lines),
n AS (SELECT count(DISTINCT order_id)::float8 AS orders FROM lines),
product_orders AS (SELECT product_id, count(*) AS cnt FROM lines GROUP BY product_id),
pairs AS (
	SELECT a.product_id, b.product_id AS other_id, count(*) AS together
	FROM lines a
	JOIN lines b ON a.order_id = b.order_id AND a.product_id <> b.product_id
	GROUP BY a.product_id, b.product_id
	HAVING count(*) >= 2)
SELECT count(*), sum((p.together / n.orders) / ((pa.cnt / n.orders) * (pb.cnt / n.orders)))
FROM pairs p
JOIN product_orders pa ON pa.product_id = p.product_id
JOIN product_orders pb ON pb.product_id = p.other_id
CROSS JOIN n"

bq -c "SET client_min_messages = warning;
	CREATE UNLOGGED TABLE IF NOT EXISTS bench.retail_upsell_sum (n bigint, lift float8);
	CREATE UNLOGGED TABLE IF NOT EXISTS bench.retail_sql_sum (n bigint, lift float8)"
echo "SELECT count(*), sum(lift) FROM upsell.frequently_bought_together(min_count => 2) on retail:"
bench_time "plain SQL self-join (parallel workers 2)" "$SQL_RUNS" "SET max_parallel_workers_per_gather = 2; $PLAIN"
SQL_MS=$BENCH_MEDIAN_MS
bench_time "upsell (parallel workers 2)" "$RUNS" "SET max_parallel_workers_per_gather = 2; $UPSELL"
UPS2_MS=$BENCH_MEDIAN_MS
UPS2_CPU=$BENCH_CPU_MS
bench_time "upsell (parallel workers 0)" "$RUNS" "SET max_parallel_workers_per_gather = 0; $UPSELL"
UPS0_MS=$BENCH_MEDIAN_MS
UPS0_CPU=$BENCH_CPU_MS
# the last timed run of each side left its answer
read -r SAME ROWS <<<"$(bq -F ' ' -c "
	SELECT u.n = s.n AND round(u.lift::numeric, 4) = round(s.lift::numeric, 4), u.n
	FROM bench.retail_upsell_sum u, bench.retail_sql_sum s")"
RATIO2=$(bench_ratio "$SQL_MS" "$UPS2_MS")
RATIO0=$(bench_ratio "$SQL_MS" "$UPS0_MS")
echo "rows: $ROWS, same count and sum of lift on both sides: $SAME"
echo "speed-up over plain SQL: ${RATIO2}x (2 workers), ${RATIO0}x (0 workers)"
result "retail pairs (>= 2 orders): $ROWS rows, same in both: $([ "$SAME" = t ] && echo yes || echo NO)"
result "retail pairs: plain SQL $SQL_MS ms, upsell $UPS2_MS ms (2 workers) / $UPS0_MS ms (0 workers): ${RATIO2}x / ${RATIO0}x (target >= 20x); upsell backend CPU $UPS2_CPU ms / $UPS0_CPU ms; load average $(cut -d' ' -f1 /proc/loadavg)"

# ---- 2. counting alone ------------------------------------------------------------
# (IS NOT NULL: the 28 MB value itself is not copied out of the query)
AGG="SELECT upsell.cooccurrence_agg(order_key, product_id, quantity) IS NOT NULL FROM upsell.order_lines GROUP BY tenant_id"
bench_time "counting alone: cooccurrence_agg (workers 0)" "$RUNS" "SET max_parallel_workers_per_gather = 0; $AGG"
AGG0_MS=$BENCH_MEDIAN_MS
AGG0_CPU=$BENCH_CPU_MS
bench_time "counting alone: cooccurrence_agg (workers 2)" "$RUNS" "SET max_parallel_workers_per_gather = 2; $AGG"
AGG2_MS=$BENCH_MEDIAN_MS
AGG2_CPU=$BENCH_CPU_MS
bench_time "reading the lines alone: count(*)" "$RUNS" "SET max_parallel_workers_per_gather = 0; SELECT count(*) FROM upsell.order_lines"
READ_MS=$BENCH_MEDIAN_MS
READ_CPU=$BENCH_CPU_MS
# the parallel count is the same value as the single one, bit for bit
PAR_SAME=$(bq -c "SET max_parallel_workers_per_gather = 2;
	CREATE TEMP TABLE w2 AS SELECT upsell.cooccurrence_agg(order_key, product_id, quantity) s FROM upsell.order_lines;
	SET max_parallel_workers_per_gather = 0;
	CREATE TEMP TABLE w0 AS SELECT upsell.cooccurrence_agg(order_key, product_id, quantity) s FROM upsell.order_lines;
	SELECT md5(w2.s::text) = md5(w0.s::text) FROM w2, w0")
echo "counting with 2 workers gives the same value as with none: $PAR_SAME"
result "retail counting (cooccurrence_agg): $AGG0_MS ms wall / $AGG0_CPU ms backend CPU (0 workers, target <= 300 ms CPU), $AGG2_MS ms / $AGG2_CPU ms leader CPU (2 workers, same value: $([ "$PAR_SAME" = t ] && echo yes || echo NO)); reading the lines: $READ_MS ms / $READ_CPU ms CPU; load average $(cut -d' ' -f1 /proc/loadavg)"

# ---- 3. listing alone ---------------------------------------------------------------
bq -c "SET client_min_messages = warning; DROP TABLE IF EXISTS bench.retail_state;
	CREATE UNLOGGED TABLE bench.retail_state AS
	SELECT upsell.cooccurrence_agg(order_key, product_id, quantity) AS s FROM upsell.order_lines"
bench_time "listing, streamed (select list)" "$RUNS" \
	"SELECT count(*), sum((p).lift) FROM (SELECT upsell.cooccurrence_pairs(s, 2) AS p FROM bench.retail_state) x"
LIST_MS=$BENCH_MEDIAN_MS
LIST_CPU=$BENCH_CPU_MS
bench_time "listing, collected (FROM)" "$RUNS" \
	"SELECT count(*), sum(p.lift) FROM bench.retail_state, upsell.cooccurrence_pairs(s, 2) p"
LISTF_MS=$BENCH_MEDIAN_MS
result "retail listing of $ROWS pair rows: $LIST_MS ms streamed ($LIST_CPU ms CPU, target <= 400 ms), $LISTF_MS ms collected in FROM; load average $(cut -d' ' -f1 /proc/loadavg)"
bq -c "DROP TABLE bench.retail_state, bench.retail_upsell_sum, bench.retail_sql_sum"

[ "$SAME" = t ] || { echo "FAILED: upsell and plain SQL disagree on retail" >&2; exit 1; }
[ "$PAR_SAME" = t ] || { echo "FAILED: counting with 2 workers differs from counting with none" >&2; exit 1; }
