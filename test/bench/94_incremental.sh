#!/usr/bin/env bash
# Benchmark part: incremental refresh (issue 12).
#
# Adds 1% new orders to the generated shop (copies of every 100th order
# under new order ids, one day after the newest order), then times
# CALL upsell.refresh(incremental => true) and, side by side, a full
# CALL upsell.refresh() of the same lines, with the peak private memory of
# the refreshing backend.  Both must give the same models: every model
# table is compared row by row (EXCEPT both ways).  Then one incremental
# refresh more with no new lines (an hour without orders).  The added lines are
# deleted at the end (those of a run killed before then: by scripts/bench.sh,
# before anything is measured).
source "$(dirname "$0")/lib.sh"

# Each refresh is timed on a shop at rest, as an hourly refresh finds it:
# what the refresh, the copies or the new lines before it left for vacuum
# (the replaced model rows, the new lines' hint bits, statistics) taken care
# of first, as autovacuum does within the hour; the vacuum's own time is
# printed.  Left to autovacuum, whose workers then share the two cores with
# the refresh, the full refresh at 10M lines took 80.5 s one morning, and
# 53.8 s at rest (README, Performance, 2026-12-05).
at_rest() {
	local t0
	t0=$(date +%s%3N)
	bq -c "VACUUM (ANALYZE)" >/dev/null
	echo "vacuumed first: $(($(date +%s%3N) - t0)) ms"
}

trap 'drop_added_lines >/dev/null 2>&1 || true' EXIT

# the orders to add: every 100th order, re-numbered after the last one
bq <<-'SQL'
	CREATE TABLE bench.added AS
	SELECT o.order_id + m.max_id AS order_id, o.product_id, o.customer_id,
		   o.ordered_at + (m.max_at - m.min_at) / 3650 + interval '1 day' AS ordered_at,
		   o.quantity, o.unit_price
	FROM bench.order_lines o,
		 (SELECT max(order_id) AS max_id, max(ordered_at) AS max_at, min(ordered_at) AS min_at
		  FROM bench.order_lines) m
	WHERE o.order_id % 100 = 0;
	INSERT INTO bench.order_lines SELECT * FROM bench.added;
SQL
read -r ADDED_LINES ADDED_ORDERS <<<"$(bq -F ' ' -c "SELECT count(*), count(DISTINCT order_id) FROM bench.added")"
echo "added $ADDED_LINES lines in $ADDED_ORDERS new orders"

# BENCH_BOUNDS=1: how far the two largest redesigns left for issue 12 could
# bring this refresh (README, "Where issue 12's targets stand").  The same
# incremental refresh, rolled back, with the bundles, the upgrade lists or
# both kept as they were: their builders swapped for ones that keep the rows,
# their side builds not started.  Those models then stay as they were, which
# is wrong after new orders: each figure bounds what an exact incremental
# build of them could save if it cost nothing; it is not a figure of upsell.
bound_refresh() {
	local label=$1 kept=$2 keep_sql="" m
	for m in $kept; do
		keep_sql="$keep_sql
			CREATE FUNCTION bench_bound.keep_$m(tenant_id bigint, incremental boolean)
			RETURNS bigint LANGUAGE sql SET search_path = pg_catalog, pg_temp
			RETURN upsell._kept_rows('$m', tenant_id);
			UPDATE upsell.model_definitions
			SET builder = 'bench_bound.keep_$m(bigint, boolean)', side_query = NULL WHERE model = '$m';"
	done
	at_rest
	PGOPTIONS='-c client_min_messages=warning' bq -F ' ' <<-SQL | sed 's/^/bound: /'
		BEGIN;
		CREATE SCHEMA bench_bound;
		$keep_sql
		SELECT clock_timestamp() AS t0 \gset
		CALL upsell.refresh(incremental => true);
		SELECT '$label: ' || round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000)
			   || ' ms, backend CPU ' || round(sum(cpu_ms)) || ' ms, side builds'' CPU '
			   || coalesce(round(sum(side_cpu_ms)), 0) || ' ms'
		FROM upsell.models;
		ROLLBACK;
	SQL
}
if [ "${BENCH_BOUNDS:-0}" = 1 ]; then
	bound_refresh "as built" ""
	bound_refresh "bundles kept" "bundle_list_model"
	bound_refresh "upgrade lists kept" "upgrade_list_model"
	bound_refresh "both kept" "bundle_list_model upgrade_list_model"
fi

at_rest
bench_refresh "CALL upsell.refresh(incremental => true)"
INC_MS=$REFRESH_MS
INC_KB=$PEAK_KB
MODE=$(bq -c "SELECT string_agg(DISTINCT mode || coalesce(' (' || reason || ')', ''), ', ') FROM upsell.source_state")
UPGRADE_COUNTS=$(bq -c "SELECT string_agg(DISTINCT counted, ', ') FROM upsell.upgrade_count_model")
BUNDLE_SETS=$(bq -c "SELECT string_agg(DISTINCT counted, ', ') FROM upsell.bundle_set_model")
echo "incremental refresh: $INC_MS ms, backend peak $((INC_KB / 1024)) MiB; tenants refreshed as: $MODE; upgrade counts from: $UPGRADE_COUNTS; bundles' sets from: $BUNDLE_SETS"
bench_model_times

# the incremental result, kept for the comparison
MODELS=$(bq -c "SELECT string_agg(model, ' ' ORDER BY build_order) FROM upsell.models WHERE model <> 'source_state'")
bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_inc CASCADE; CREATE SCHEMA bench_inc" >/dev/null
for m in $MODELS; do
	bq -c "CREATE TABLE bench_inc.$m AS SELECT * FROM upsell.$m" >/dev/null
done

at_rest
bench_refresh "CALL upsell.refresh()"
FULL_MS=$REFRESH_MS
echo "full refresh of the same lines: $FULL_MS ms, backend peak $((PEAK_KB / 1024)) MiB"

# The pair counts of a copy of cooccurrence_chunks as the readers read
# them: each chunk of the base with the delta (chunk -1, which an
# incremental refresh writes beside it) summed in, pair by pair.
summed_pairs() {
	echo "SELECT c.tenant_id, GREATEST(c.max_ordered_at, d.max_ordered_at) AS max_ordered_at,
				 GREATEST(c.max_order_key, d.max_order_key) AS max_order_key,
				 x.product_id, x.other_id, x.together, x.product_count, x.other_count, x.orders
		  FROM $1 c LEFT JOIN $1 d ON d.tenant_id = c.tenant_id AND d.chunk = -1,
			   upsell._cooccurrence_pairs_sum(c.state, d.state, CASE WHEN c.chunk > 0 THEN c.first_product END,
				   (SELECT n.first_product FROM $1 n WHERE n.tenant_id = c.tenant_id AND n.chunk > c.chunk
					ORDER BY n.chunk LIMIT 1), 1) x
		  WHERE c.chunk >= 0 AND x.product_id < x.other_id"
}
DIFFS=""
for m in $MODELS; do
	# built_at-like columns differ by nature, as does what the upgrade
	# counts and the bundles' sets were counted from; compare everything
	# else (the sets' bytes included: the same sets give the same bytes; a pair-count
	# state has no equality operator: compared as text)
	cols=$(bq -c "SELECT string_agg(quote_ident(attname) || CASE WHEN atttypid = 'upsell.cooccurrence'::regtype
				  THEN '::text' ELSE '' END, ', ' ORDER BY attnum) FROM pg_attribute
				  WHERE attrelid = 'upsell.$m'::regclass AND attnum > 0 AND NOT attisdropped
				    AND attname NOT IN ('built_at')
				    AND NOT ('$m' IN ('upgrade_count_model', 'bundle_set_model') AND attname = 'counted')")
	inc="SELECT $cols FROM bench_inc.$m"
	full="SELECT $cols FROM upsell.$m"
	if [ "$m" = cooccurrence_chunks ]; then
		inc=$(summed_pairs bench_inc.$m)
		full=$(summed_pairs upsell.$m)
	fi
	n=$(bq -c "SELECT count(*) FROM (($inc EXCEPT ALL $full) UNION ALL ($full EXCEPT ALL $inc)) d")
	[ "$n" = 0 ] || DIFFS="$DIFFS $m:$n"
done
bq -c "SET client_min_messages = warning; DROP SCHEMA bench_inc CASCADE" >/dev/null
echo "models that differ between incremental and full: ${DIFFS:-none}"

# An hour without orders: the same lines again.  Only what the lines do not
# decide is built again (the models computed from them alone are kept).
at_rest
bench_refresh "CALL upsell.refresh(incremental => true)"
QUIET_MS=$REFRESH_MS
QUIET_MODE=$(bq -c "SELECT string_agg(DISTINCT mode || ', ' || coalesce(new_lines, 0) || ' new lines', '; ') FROM upsell.source_state")
result "incremental refresh with no new lines: $QUIET_MS ms vs full $FULL_MS ms: $(bench_ratio "$FULL_MS" "$QUIET_MS")x ($QUIET_MODE)"
result "incremental refresh after 1% new orders ($ADDED_LINES lines): $INC_MS ms (peak $((INC_KB / 1024)) MiB) vs full $FULL_MS ms: $(bench_ratio "$FULL_MS" "$INC_MS")x; same models: $([ -z "$DIFFS" ] && echo yes || echo "NO ($DIFFS)")"
[ -z "$DIFFS" ]
