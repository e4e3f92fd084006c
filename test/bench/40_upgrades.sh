#!/usr/bin/env bash
# Benchmark part: upgrade and downsell candidates, volume tiers (issue 3).
#
# 1. The batch build: the upgrade model of the whole bench catalog from all
#    order lines (the builder run again, rolled back), rows
#    and time; the time refresh took for it.
# 2. Per-call latency of upgrade_candidates, downsell_candidates and
#    quantity_offer for sampled products (server-side, clock_timestamp()
#    around each call): p50 / p99.
# 3. The plain-SQL query a user would write for one product's upgrades (the
#    same rules and score, straight from bench.order_lines), timed over the
#    same sample and extrapolated to the catalog; its top 3 compared with
#    upgrade_candidates' top 3 product by product.
source "$(dirname "$0")/lib.sh"

BUILD_RUNS=${BENCH_UPGRADE_BUILD_RUNS:-1}
CALLS=${BENCH_UPGRADE_CALLS:-2000}
SQL_SAMPLE=${BENCH_UPGRADE_SQL_SAMPLE:-30}

bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_u CASCADE; CREATE SCHEMA bench_u"
trap 'bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_u CASCADE; DELETE FROM upsell.volume_tiers WHERE note = '"'"'bench_u'"'"'" >/dev/null 2>&1 || true' EXIT

# ---- 1. batch build ------------------------------------------------------------

read -r NPRODUCTS NLINES <<<"$(bq -F ' ' -c "SELECT (SELECT count(*) FROM upsell.product_model), (SELECT count(*) FROM upsell.order_lines)")"
read -r REFRESH_ROWS REFRESH_MS <<<"$(bq -F ' ' -c "SELECT row_count, round(build_ms) FROM upsell.models WHERE model = 'upgrade_model'")"
echo "upgrade model of $NPRODUCTS products from $NLINES order lines:"
echo "  during refresh: $REFRESH_ROWS rows in $REFRESH_MS ms"
# the builder again (it republishes the tenant's rows), inside a
# subtransaction that is then rolled back
bench_time "rebuild (republished, rolled back)" "$BUILD_RUNS" "
	DO \$\$
	BEGIN
		PERFORM upsell._build_upgrade_model(0, false);
		RAISE EXCEPTION USING ERRCODE = 'UB001';
	EXCEPTION WHEN SQLSTATE 'UB001' THEN
		NULL;
	END \$\$"
BUILD_MS=$BENCH_MEDIAN_MS
read -r UPS DOWNS WITH_PATHS PRODUCTS_WITH <<<"$(bq -F ' ' -c "
	SELECT count(*) FILTER (WHERE kind = 'upgrade'), count(*) FILTER (WHERE kind = 'downsell'),
		   count(*) FILTER (WHERE paths > 0), count(DISTINCT product_id)
	FROM upsell.upgrade_model")"
echo "  $UPS upgrade and $DOWNS downsell candidates stored for $PRODUCTS_WITH products; $WITH_PATHS backed by observed upgrade paths"
result "upgrade model: $NPRODUCTS products, $NLINES lines -> $((UPS + DOWNS)) rows in $BUILD_MS ms (refresh: $REFRESH_MS ms)"

# ---- 2. per-call latency -----------------------------------------------------------

bq <<-'SQL'
	-- per-call wall times of a statement template (%s = product id), in ms
	CREATE FUNCTION bench_u.latency(template text, ids bigint[],
		OUT p50 float8, OUT p99 float8, OUT mean float8, OUT calls int)
	LANGUAGE plpgsql AS $$
	DECLARE
		t0 timestamptz;
		ms float8[] := '{}';
		id bigint;
	BEGIN
		FOREACH id IN ARRAY ids LOOP
			t0 := clock_timestamp();
			EXECUTE format(template, id);
			ms := ms || (extract(epoch FROM clock_timestamp() - t0) * 1000)::float8;
		END LOOP;
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.99) WITHIN GROUP (ORDER BY x),
			   avg(x), count(*)
		INTO p50, p99, mean, calls FROM unnest(ms) x;
	END
	$$;
	-- products with buyers, a fixed pseudo-random sample; and tiers for them
	CREATE TABLE bench_u.sample AS
	SELECT product_id, row_number() OVER (ORDER BY md5(product_id::text)) AS n
	FROM upsell.product_model WHERE orders > 0 AND price > 0;
SQL
bq -c "INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, percent_off, note)
	   SELECT 0, product_id, q, q, 'bench_u' FROM bench_u.sample, (VALUES (3), (6), (12)) v(q) WHERE n <= $CALLS"

lat() {	# label template
	local line
	line=$(bq -F ' ' -c "SELECT round(p50::numeric, 3), round(p99::numeric, 3), round(mean::numeric, 3), calls
		FROM bench_u.latency(\$t\$$2\$t\$, (SELECT array_agg(product_id ORDER BY n) FROM bench_u.sample WHERE n <= $CALLS))")
	set -- $line
	printf '%-44s p50 %8s ms   p99 %8s ms   mean %8s ms  (%s calls)\n' "$LABEL" "$1" "$2" "$3" "$4"
	LAT_P50=$1
	LAT_P99=$2
}
echo "per-call latency over $CALLS sampled products (k = 3):"
LABEL="upsell.upgrade_candidates(p)"
lat x "SELECT * FROM upsell.upgrade_candidates(%s)"
result "upgrade_candidates: p50 $LAT_P50 ms, p99 $LAT_P99 ms"
LABEL="upsell.downsell_candidates(p)"
lat x "SELECT * FROM upsell.downsell_candidates(%s)"
result "downsell_candidates: p50 $LAT_P50 ms, p99 $LAT_P99 ms"
LABEL="upsell.quantity_offer(p, 2)"
lat x "SELECT * FROM upsell.quantity_offer(%s, 2)"
result "quantity_offer: p50 $LAT_P50 ms, p99 $LAT_P99 ms"

# ---- 3. the plain-SQL equivalent -------------------------------------------------------

# The same rules and score from the raw tables (what upsell does, in plain
# SQL, without its limits: every candidate, not the 200 price neighbours per
# pool; the top 3 of all, not of the 10 stored): candidates of the same
# category (or the same group when one has no category), in stock, pricier
# and within the ratio; paths = buyers of p who bought the candidate later;
# popularity = the candidate's buyers / buyers of the pool (the group for a
# same-group candidate, else the category); closeness = price ratio.
bq <<-'SQL'
	CREATE FUNCTION bench_u.sql_upgrades(pid bigint, k int, ratio numeric)
	RETURNS TABLE ("rank" int, candidate_id bigint, score float8)
	LANGUAGE sql STABLE AS $$
	WITH a AS (SELECT * FROM bench.products WHERE product_id = pid AND price > 0),
	cand AS (
		SELECT c.product_id, c.price, coalesce(c.variant_group = a.variant_group, false) AS same_group
		FROM bench.products c, a
		WHERE c.in_stock AND c.price > a.price AND c.price <= a.price * ratio
		  AND (c.category = a.category
			   OR (c.variant_group = a.variant_group AND (a.category IS NULL OR c.category IS NULL)))),
	bought AS NOT MATERIALIZED (SELECT product_id, customer_id, ordered_at FROM bench.order_lines WHERE quantity > 0),
	buyers_a AS (SELECT customer_id, min(ordered_at) AS first FROM bought WHERE product_id = pid GROUP BY 1),
	-- as upsell does, customers with more than 500 distinct products (wholesale
	-- buyers) count as buyers but give no upgrade paths
	path_buyers AS (
		SELECT b.* FROM buyers_a b
		WHERE (SELECT count(DISTINCT l.product_id) FROM bought l WHERE l.customer_id = b.customer_id) <= 500),
	paths AS (
		SELECT l.product_id, count(DISTINCT l.customer_id) AS n
		FROM bought l JOIN path_buyers b ON b.customer_id = l.customer_id AND l.ordered_at > b.first
		WHERE l.product_id IN (SELECT product_id FROM cand) GROUP BY 1),
	cand_buyers AS (
		SELECT product_id, count(DISTINCT customer_id) AS n FROM bought
		WHERE product_id IN (SELECT product_id FROM cand) GROUP BY 1),
	group_buyers AS (
		SELECT count(DISTINCT l.customer_id) AS n FROM bought l
		WHERE l.product_id IN (SELECT p.product_id FROM bench.products p, a
							   WHERE p.variant_group = a.variant_group AND p.price > 0)),
	category_buyers AS (
		SELECT count(DISTINCT l.customer_id) AS n FROM bought l
		WHERE l.product_id IN (SELECT p.product_id FROM bench.products p, a
							   WHERE p.category = a.category AND p.price > 0)),
	scored AS (
		SELECT c.product_id, c.same_group,
			   0.5 * coalesce(pa.n, 0)::float8 / nullif((SELECT count(*) FROM buyers_a), 0)
			   + 0.3 * coalesce(cb.n, 0)::float8 / nullif(CASE WHEN c.same_group THEN gb.n ELSE kb.n END, 0)
			   + 0.2 * (a.price / c.price)::float8 AS score
		FROM cand c CROSS JOIN a CROSS JOIN group_buyers gb CROSS JOIN category_buyers kb
		LEFT JOIN paths pa ON pa.product_id = c.product_id
		LEFT JOIN cand_buyers cb ON cb.product_id = c.product_id)
	SELECT (row_number() OVER (ORDER BY s.same_group DESC, coalesce(s.score, 0) DESC, s.product_id))::int,
		   s.product_id, s.score
	FROM scored s
	ORDER BY s.same_group DESC, coalesce(s.score, 0) DESC, s.product_id
	LIMIT k
	$$;
SQL

echo "plain SQL from the raw order lines, one product at a time ($SQL_SAMPLE sampled products):"
CALLS_SAVED=$CALLS
CALLS=$SQL_SAMPLE
LABEL="plain SQL upgrades of p (k = 3)"
lat x "SELECT * FROM bench_u.sql_upgrades(%s, 3, 1.5)"
SQL_P50=$LAT_P50
CALLS=$CALLS_SAVED
read -r SAME DIFF MISSING <<<"$(bq -F ' ' -c "
	WITH s AS (SELECT product_id FROM bench_u.sample WHERE n <= $SQL_SAMPLE),
	cmp AS (
		SELECT s.product_id,
			   (SELECT array_agg(candidate_id ORDER BY rank) FROM bench_u.sql_upgrades(s.product_id, 3, 1.5)) AS by_sql,
			   (SELECT array_agg(candidate_id ORDER BY rank) FROM upsell.upgrade_candidates(s.product_id, 3, 1.5)) AS by_upsell
		FROM s)
	SELECT count(*) FILTER (WHERE by_sql IS NOT DISTINCT FROM by_upsell),
		   count(*) FILTER (WHERE by_sql IS DISTINCT FROM by_upsell),
		   coalesce(sum(cardinality(by_sql)) - sum((SELECT count(*) FROM unnest(by_upsell) x WHERE x = ANY (by_sql))), 0)
	FROM cmp")"
echo "  same top 3 (ids and order) for $SAME of $SQL_SAMPLE products; differing for $DIFF ($MISSING plain-SQL picks not in upsell's top 3)"
EXTRA_S=$(awk -v ms="$SQL_P50" -v n="$NPRODUCTS" 'BEGIN { printf "%.0f", ms * n / 1000 }')
echo "  the plain SQL for the whole catalog, extrapolated from its p50: ~${EXTRA_S} s (upsell's batch: $(awk -v ms="$BUILD_MS" 'BEGIN { printf "%.1f", ms / 1000 }') s)"
result "plain SQL per product: p50 $SQL_P50 ms (catalog ~${EXTRA_S} s); same top 3 as upsell for $SAME of $SQL_SAMPLE sampled products"
