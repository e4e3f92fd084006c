#!/usr/bin/env bash
# Benchmark part: frequent itemsets, multi-item rules and bundle offers (issue 5).
#
# 1. FIMI retail.dat (88,162 baskets, bundled in test/data) at min_support
#    0.001 and 0.0005: upsell.frequent_itemsets (FP-growth in C, all sizes)
#    against what a user writes in plain SQL: self-joins for pairs and for
#    triples over the lines of products frequent on their own (triples also
#    joined to the frequent pairs, Apriori's pruning, or they would not finish
#    in minutes).  Both sides must find the same pairs and triples.  Each
#    plain-SQL query runs once and is stopped after BENCH_SQL_TIMEOUT seconds
#    (default 120): at 0.0005 the triples take about 5 minutes.
# 2. The same on the generated shop (bench.order_lines, ~1M lines) at a
#    minimum count of BENCH_ITEMSET_COUNT orders (default 20), itemsets of up
#    to 3 products (the bundle sizes).
# 3. The bundle model's build time (from CALL upsell.refresh()) and
#    bundle_offers latency for popular products, against a plain-SQL
#    "bundles with this product" over the raw order lines.
source "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-3}
SQL_TIMEOUT=${BENCH_SQL_TIMEOUT:-120}	# seconds; the self-joins run once each
MIN_COUNT=${BENCH_ITEMSET_COUNT:-20}
OFFER_CALLS=${BENCH_OFFER_CALLS:-1000}
SQL_OFFER_CALLS=${BENCH_SQL_OFFER_CALLS:-50}
REPO_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FAILED=0

bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_b CASCADE; CREATE SCHEMA bench_b"
trap 'bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_b CASCADE" >/dev/null 2>&1 || true' EXIT

# Plain SQL over (order_id, item_id) lines in bench_b.$1, threshold $2 orders:
# the frequent pairs into bench_b.sql_pairs; then the triples (joined to the
# frequent pairs, Apriori's pruning) into bench_b.sql_triples.
sql_pairs() {
	cat <<-SQL
		SET client_min_messages = warning;
		SET work_mem = '256MB';
		DROP TABLE IF EXISTS bench_b.sql_pairs;
		CREATE UNLOGGED TABLE bench_b.sql_pairs AS
		WITH fl AS MATERIALIZED (
			SELECT order_id, item_id FROM bench_b.$1
			WHERE item_id IN (SELECT item_id FROM bench_b.$1 GROUP BY 1 HAVING count(*) >= $2))
		SELECT a.item_id AS a, b.item_id AS b, count(*) AS n
		FROM fl a JOIN fl b ON b.order_id = a.order_id AND b.item_id > a.item_id
		GROUP BY 1, 2 HAVING count(*) >= $2
	SQL
}
sql_triples() {
	cat <<-SQL
		SET client_min_messages = warning;
		SET work_mem = '256MB';
		DROP TABLE IF EXISTS bench_b.sql_triples;
		CREATE UNLOGGED TABLE bench_b.sql_triples AS
		WITH fl AS MATERIALIZED (
			SELECT order_id, item_id FROM bench_b.$1
			WHERE item_id IN (SELECT item_id FROM bench_b.$1 GROUP BY 1 HAVING count(*) >= $2))
		SELECT a.item_id AS a, b.item_id AS b, d.item_id AS d, count(*) AS n
		FROM fl a
		JOIN fl b ON b.order_id = a.order_id AND b.item_id > a.item_id
		JOIN bench_b.sql_pairs ab ON ab.a = a.item_id AND ab.b = b.item_id
		JOIN fl d ON d.order_id = a.order_id AND d.item_id > b.item_id
		JOIN bench_b.sql_pairs ad ON ad.a = a.item_id AND ad.b = d.item_id
		JOIN bench_b.sql_pairs bd ON bd.a = b.item_id AND bd.b = d.item_id
		GROUP BY 1, 2, 3 HAVING count(*) >= $2
	SQL
}

# Times the plain-SQL side once, stopped after SQL_TIMEOUT seconds: sets
# SQL_STATUS to "ok" or "stopped" and BENCH_MEDIAN_MS.
sql_time() {
	local label=$1 sql=$2 ms
	if ms=$(PGOPTIONS="-c statement_timeout=${SQL_TIMEOUT}s" bq \
			-c "SELECT round(median_ms::numeric, 1) FROM bench.time_runs(\$bench\$$sql\$bench\$, 1)" 2>/dev/null) &&
		[ -n "$ms" ]; then
		SQL_STATUS=ok
		BENCH_MEDIAN_MS=$ms
		printf '%-52s %10s ms  (1 run)\n' "$label" "$ms"
	else
		SQL_STATUS=stopped
		BENCH_MEDIAN_MS=$((SQL_TIMEOUT * 1000))
		printf '%-52s stopped after %s s (statement_timeout; BENCH_SQL_TIMEOUT raises it)\n' "$label" "$SQL_TIMEOUT"
	fi
}

# Times both plain-SQL queries and compares them with bench_b.ups_sets.
sql_side() {
	local lines=$1 c=$2 label=$3 line
	sql_time "  plain SQL self-join, pairs" "$(sql_pairs "$lines" "$c")"
	SQL_PAIRS_MS=$BENCH_MEDIAN_MS
	PAIRS_STATUS=$SQL_STATUS
	SQL_TRIPLES_MS=
	TRIPLES_STATUS=
	if [ "$PAIRS_STATUS" = ok ]; then
		# an empty table stays when the timed query is stopped
		bq -c "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_b.sql_triples;
			   CREATE UNLOGGED TABLE bench_b.sql_triples (a bigint, b bigint, d bigint, n bigint)"
		sql_time "  plain SQL self-joins, triples (pruned by pairs)" "$(sql_triples "$lines" "$c")"
		SQL_TRIPLES_MS=$BENCH_MEDIAN_MS
		TRIPLES_STATUS=$SQL_STATUS
		line=$(bq -F ' ' -c "
			SELECT (SELECT count(*) FROM bench_b.ups_sets WHERE size = 2),
				   (SELECT count(*) FROM bench_b.ups_sets WHERE size = 3),
				   (SELECT count(*) FROM (SELECT ARRAY[a, b], n FROM bench_b.sql_pairs
										  EXCEPT SELECT items, count FROM bench_b.ups_sets WHERE size = 2) d)
				 + (SELECT count(*) FROM (SELECT items, count FROM bench_b.ups_sets WHERE size = 2
										  EXCEPT SELECT ARRAY[a, b], n FROM bench_b.sql_pairs) d),
				   CASE WHEN '$TRIPLES_STATUS' = 'ok' THEN
					   ((SELECT count(*) FROM (SELECT ARRAY[a, b, d], n FROM bench_b.sql_triples
											   EXCEPT SELECT items, count FROM bench_b.ups_sets WHERE size = 3) d)
					  + (SELECT count(*) FROM (SELECT items, count FROM bench_b.ups_sets WHERE size = 3
											   EXCEPT SELECT ARRAY[a, b, d], n FROM bench_b.sql_triples) d))::text
				   ELSE 'not-compared' END,
				   (SELECT string_agg(size || ':' || n, ' ' ORDER BY size)
					FROM (SELECT size, count(*) AS n FROM bench_b.ups_sets GROUP BY 1) s)")
		set -- $line
		local pairs=$1 triples=$2 dp=$3 dt=$4
		shift 4
		printf '  %s: upsell found %s pairs, %s triples (all sizes %s); differences from plain SQL: pairs %s, triples %s\n' \
			"$label" "$pairs" "$triples" "$*" "$dp" "$dt"
		if [ "$dp" != 0 ] || { [ "$TRIPLES_STATUS" = ok ] && [ "$dt" != 0 ]; }; then
			echo "FAILED: upsell and plain SQL disagree on $label" >&2
			FAILED=1
		fi
	fi
}

# ---- 1. retail.dat --------------------------------------------------------------

bq <<-SQL
	SET client_min_messages = warning;
	CREATE TABLE bench_b.retail_raw (order_id bigint GENERATED ALWAYS AS IDENTITY, line text);
	\copy bench_b.retail_raw (line) FROM '$REPO_ROOT/test/data/retail.dat' WITH (FORMAT text, DELIMITER E'\x01')
	CREATE TABLE bench_b.retail AS
	SELECT DISTINCT r.order_id, x::bigint AS item_id
	FROM bench_b.retail_raw r, unnest(string_to_array(trim(r.line), ' ')) AS x WHERE x <> '';
	VACUUM ANALYZE bench_b.retail;
SQL
read -r R_ORDERS R_LINES <<<"$(bq -F ' ' -c "SELECT count(DISTINCT order_id), count(*) FROM bench_b.retail")"
echo "FIMI retail.dat: $R_ORDERS baskets, $R_LINES lines"

for s in 0.001 0.0005; do
	c=$(bq -c "SELECT ceil($s * $R_ORDERS - 1e-9)::int")
	UPS="SET client_min_messages = warning;
		DROP TABLE IF EXISTS bench_b.ups_sets;
		CREATE UNLOGGED TABLE bench_b.ups_sets AS
		SELECT * FROM upsell.frequent_itemsets(query => 'SELECT order_id, item_id FROM bench_b.retail',
			min_support => $s, max_size => 100)"
	echo "min_support $s (>= $c baskets):"
	bench_time "  upsell.frequent_itemsets, all sizes" "$RUNS" "$UPS"
	UPS_MS=$BENCH_MEDIAN_MS
	sql_side retail "$c" "retail at $s"
	NSETS=$(bq -c "SELECT count(*) FROM bench_b.ups_sets")
	result "retail.dat min_support $s: frequent_itemsets $UPS_MS ms ($NSETS itemsets, all sizes); plain SQL pairs $SQL_PAIRS_MS ms ($PAIRS_STATUS), triples ${SQL_TRIPLES_MS:-n/a} ms (${TRIPLES_STATUS:-n/a})"
done

RULES="SELECT count(*) FROM upsell.association_rules(query => 'SELECT order_id, item_id FROM bench_b.retail',
	min_support => 0.001, min_confidence => 0.5, max_size => 100)"
bench_time "  upsell.association_rules 0.001 / 0.5" "$RUNS" "$RULES"
NRULES=$(bq -c "$RULES")
result "retail.dat association_rules support 0.001 confidence 0.5: $NRULES rules in $BENCH_MEDIAN_MS ms"

# ---- 2. the generated shop ------------------------------------------------------

bq <<-SQL
	SET client_min_messages = warning;
	CREATE UNLOGGED TABLE bench_b.shop AS
	SELECT DISTINCT order_id, product_id AS item_id FROM bench.order_lines WHERE quantity > 0;
	VACUUM ANALYZE bench_b.shop;
SQL
read -r S_ORDERS S_LINES <<<"$(bq -F ' ' -c "SELECT count(DISTINCT order_id), count(*) FROM bench_b.shop")"
echo
echo "generated shop: $S_ORDERS orders, $S_LINES distinct (order, product) lines; itemsets in >= $MIN_COUNT orders, up to 3 products:"
UPS="SET client_min_messages = warning;
	DROP TABLE IF EXISTS bench_b.ups_sets;
	CREATE UNLOGGED TABLE bench_b.ups_sets AS
	SELECT * FROM upsell.frequent_itemsets(0, 3, $MIN_COUNT)"
bench_time "  upsell.frequent_itemsets (registered orders)" "$RUNS" "$UPS"
UPS_MS=$BENCH_MEDIAN_MS
sql_side shop "$MIN_COUNT" "generated shop"
NSETS=$(bq -c "SELECT count(*) FROM bench_b.ups_sets")
result "generated shop (>= $MIN_COUNT orders, up to 3 products): frequent_itemsets $UPS_MS ms ($NSETS itemsets); plain SQL pairs $SQL_PAIRS_MS ms ($PAIRS_STATUS), triples ${SQL_TRIPLES_MS:-n/a} ms (${TRIPLES_STATUS:-n/a})"

# ---- 3. the bundle model and bundle_offers ------------------------------------------

# (a row of arrays per product; the view bundle_model has a row per bundle)
read -r B_PRODUCTS B_ROWS B_MS <<<"$(bq -F ' ' -c "SELECT row_count, (SELECT count(*) FROM upsell.bundle_model), round(build_ms) FROM upsell.models WHERE model = 'bundle_list_model'")"
echo
echo "bundle_list_model built by CALL upsell.refresh(): $B_ROWS bundles of $B_PRODUCTS products in $B_MS ms (upsell.bundle_min_count $(bq -c "SELECT coalesce(current_setting('upsell.bundle_min_count', true), '5')"))"
result "bundle model build: $B_ROWS bundles of $B_PRODUCTS products in $B_MS ms"

LAT=$(bq -F ' ' <<-SQL
	SET client_min_messages = warning;
	CREATE TABLE bench_b.anchors AS
	SELECT row_number() OVER (ORDER BY m.orders DESC, m.product_id) AS i, m.product_id
	FROM upsell.product_model m
	WHERE m.product_id IN (SELECT product_id FROM upsell.bundle_list_model)
	ORDER BY m.orders DESC, m.product_id LIMIT $OFFER_CALLS;
	-- what a user writes without the model: the orders with the product, the
	-- other products in them, pairs with counts and lift, best 3
	CREATE FUNCTION bench_b.sql_bundles(p bigint, k int) RETURNS TABLE (items bigint[], lift float8)
	LANGUAGE sql STABLE AS \$\$
		WITH n AS (SELECT count(DISTINCT order_id)::float8 AS orders FROM bench.order_lines),
		with_p AS (SELECT DISTINCT order_id FROM bench.order_lines WHERE product_id = p AND quantity > 0),
		co AS (SELECT l.product_id, count(DISTINCT l.order_id) AS together
			   FROM bench.order_lines l JOIN with_p USING (order_id)
			   WHERE l.product_id <> p AND l.quantity > 0 GROUP BY 1 HAVING count(DISTINCT l.order_id) >= 5),
		pop AS (SELECT product_id, count(DISTINCT order_id) AS c FROM bench.order_lines
				WHERE product_id IN (SELECT product_id FROM co UNION SELECT p) AND quantity > 0 GROUP BY 1)
		SELECT ARRAY[least(p, co.product_id), greatest(p, co.product_id)],
			   (co.together / n.orders) / ((pp.c / n.orders) * (po.c / n.orders)) AS lift
		FROM co, n, pop pp, pop po
		WHERE pp.product_id = p AND po.product_id = co.product_id
		ORDER BY 2 DESC, 1 LIMIT k
	\$\$;
	CREATE TABLE bench_b.latency (side text, i int, ms float8, n int);
	DO \$\$
	DECLARE
		a record;
		t0 timestamptz;
		n int;
	BEGIN
		FOR a IN SELECT * FROM bench_b.anchors WHERE i <= 50 ORDER BY i LOOP
			PERFORM count(*) FROM upsell.bundle_offers(a.product_id, 3);
		END LOOP;
		FOR a IN SELECT * FROM bench_b.anchors ORDER BY i LOOP
			t0 := clock_timestamp();
			SELECT count(*) INTO n FROM upsell.bundle_offers(a.product_id, 3);
			INSERT INTO bench_b.latency VALUES ('upsell', a.i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
		END LOOP;
		FOR a IN SELECT * FROM bench_b.anchors WHERE i <= $SQL_OFFER_CALLS ORDER BY i LOOP
			t0 := clock_timestamp();
			SELECT count(*) INTO n FROM bench_b.sql_bundles(a.product_id, 3);
			INSERT INTO bench_b.latency VALUES ('sql', a.i, extract(epoch FROM clock_timestamp() - t0) * 1000, n);
		END LOOP;
	END
	\$\$;
	SELECT side, count(*),
		   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
		   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
		   round(max(ms)::numeric, 3)
	FROM bench_b.latency GROUP BY side ORDER BY side DESC;
SQL
)
echo "bundle_offers(product, 3) for the most popular products with bundles (server-side, plpgsql loop with clock_timestamp()):"
while read -r side calls p50 p99 max; do
	[ -n "$side" ] || continue
	if [ "$side" = upsell ]; then label="upsell.bundle_offers(product, 3)"; else label="plain SQL pairs over raw order lines"; fi
	printf '%-40s %5d calls  p50 %8s ms  p99 %8s ms  max %8s ms\n' "$label" "$calls" "$p50" "$p99" "$max"
	result "bundle offers, $label: p50 $p50 ms, p99 $p99 ms over $calls calls"
	eval "P50_$side=$p50"
done <<<"$LAT"
echo "p50 ratio (plain SQL / upsell): $(bench_ratio "${P50_sql:-0}" "${P50_upsell:-0}")x"

[ "$FAILED" = 0 ]
