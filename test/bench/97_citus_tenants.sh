#!/usr/bin/env bash
# Many shops on Citus against one node: the same BENCH_LINES generated order
# lines (test/bench/gen_orders) spread over CITUS_TENANTS tenants (order o
# belongs to tenant o % CITUS_TENANTS + 1, every tenant has the whole
# catalog), once in a database distributed by tenant on a coordinator and 2
# workers (upsell.distribute()), once in a database without Citus on the
# coordinator's server.  Measured, for each:
#   - CALL upsell.refresh(): wall time, and the peak private memory (RssAnon)
#     of the coordinator's backend running it (bench_refresh);
#   - the bytes the coordinator's processes receive from the workers while
#     it runs (ss: their TCP sockets to the workers' ports, sampled every
#     0.2 s, over one connection per worker kept open until sampled; only
#     master_run_on_worker's short connections, which carry each tenant's
#     build call and row count, may be missed), and every byte crossing loopback meanwhile (between any
#     nodes, and anything else on 127.0.0.1: an upper bound), next to the
#     size of the order lines;
#   - serving TPS for one tenant: pgbench, 1 client, upgrade_candidates and
#     bundle_offers for random products of tenant 1 (on Citus each call is
#     delegated to the tenant's worker).
# On a 2-core machine the workers share the cores with the coordinator: a
# speedup is not expected; what is compared is where the work runs and what
# moves.  The Citus nodes use the ports UPSELL_PORT+5..+7 and .citus-bench/.
# Skips (exit 0, says why) without the vendored Citus archive.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
export UPSELL_CITUS_PORT=${UPSELL_CITUS_PORT:-$(( ${UPSELL_PORT:-54329} + 5 ))}
export UPSELL_CITUS_DIR=${UPSELL_CITUS_DIR:-$BENCH_DIR/../../.citus-bench}
unset PGHOST PGPORT PGDATABASE
source "$BENCH_DIR/../../scripts/lib.sh"
source "$REPO/scripts/citus.sh"
why=$(citus_unavailable)
if [ -n "$why" ]; then
	echo "$why"
	exit 0
fi
LINES=${BENCH_LINES:-1000000}
TENANTS=${CITUS_TENANTS:-4}
SECONDS_TPS=${CITUS_TPS_SECONDS:-20}
ensure_citus_build_deps
install_citus_copy
make -s PG_CONFIG="$CITUS_PG_CONFIG" test/bench/gen_orders
export CITUS_PG_CONFIG
# (sourced before citus_start: sourcing scripts/citus.sh again forgets the
# nodes started, and citus_stop would stop none)
source "$REPO/test/e2e/citus/lib.sh"
source "$REPO/test/bench/lib.sh"
trap citus_stop EXIT
citus_start 2
PSQL=$CITUS_PGBIN/psql

echo "Citus 12.1.12, coordinator :$CITUS_PORT and 2 workers; $LINES lines, $TENANTS tenants; load: $(cut -d' ' -f1-3 /proc/loadavg)"
fresh_single_db
cq upsell -c "SET client_min_messages = warning" \
	-c "DROP EXTENSION IF EXISTS upsell CASCADE" -c "CREATE EXTENSION upsell" >/dev/null
products=$(( LINES / 300 > 1000 ? LINES / 300 : 1000 ))
load_shop upsell "$LINES" "$products" "
	SELECT create_distributed_table('shop.order_lines', 'tenant_id');
	SELECT create_distributed_table('shop.products', 'tenant_id', colocate_with => 'shop.order_lines');" "$TENANTS"
load_shop upsell_single "$LINES" "$products" "" "$TENANTS"
cq upsell -c "SET client_min_messages = warning" -c "SELECT count(*) FROM upsell.distribute()" >/dev/null
line_bytes=$(cq upsell -c "SELECT sum(pg_column_size(l)) FROM shop.order_lines l")

lo_bytes() { awk '$1 == "lo:" { print $2 }' /proc/net/dev; }
for db in upsell_single upsell; do
	b0=$(lo_bytes)
	# one cached connection per worker, kept a second after the refresh: the
	# sampler counts a socket's bytes only while it is open (test/e2e/citus/20_by_tenant.sh)
	PGDATABASE=$db with_coordinator_rx bench_refresh "SET client_min_messages = warning;
		SET citus.max_adaptive_executor_pool_size = 1; CALL upsell.refresh(); SELECT pg_sleep(1)" 2>/dev/null
	# the refresh's own time, without the pause
	REFRESH_MS=$(cq "$db" -c "SELECT round(duration_ms) FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")
	moved=$(( $(lo_bytes) - b0 ))
	rx=$RX
	status=$(cq "$db" -c "SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")
	[ "$status" = ok ] || { echo "refresh on $db: $status"; exit 1; }
	label=$([ "$db" = upsell ] && echo "Citus (coordinator + 2 workers)" || echo "single node")
	printf '%-34s refresh %8d ms, coordinator backend peak RssAnon %7d kB, received by the coordinator from the workers %10d bytes, loopback %10d bytes (order lines: %d bytes)\n' \
		"$label" "$REFRESH_MS" "$PEAK_KB" "$rx" "$moved" "$line_bytes"
	result "citus_tenants $db: refresh ${REFRESH_MS} ms, peak ${PEAK_KB} kB, to the coordinator ${rx} B, loopback ${moved} B, lines ${line_bytes} B"
done
same_models >/dev/null || { echo "the models differ"; exit 1; }
echo "models equal on both"

# serving TPS for tenant 1: random products of its catalog
ids=$(cq upsell_single -c "SELECT string_agg(product_id::text, ',') FROM (SELECT product_id FROM upsell.product_model
	WHERE tenant_id = 1 AND price > 0 ORDER BY orders DESC, product_id LIMIT 200) p")
script=$(mktemp)
cat >"$script" <<-SQL
	\set i random(1, $(awk -F, '{print NF}' <<<"$ids"))
	SELECT count(*) FROM upsell.upgrade_candidates((('{$ids}'::bigint[])[:i]), 3, 1.5, 1);
	SELECT count(*) FROM upsell.bundle_offers((('{$ids}'::bigint[])[:i]), 3, 0.10, 1);
SQL
for db in upsell_single upsell; do
	tps=$("$CITUS_PGBIN/pgbench" -n -c 1 -T "$SECONDS_TPS" -f "$script" "$db" 2>/dev/null |
		awk '/^tps/ { printf "%.1f", $3 }')
	label=$([ "$db" = upsell ] && echo "Citus (delegated to the worker)" || echo "single node")
	printf '%-34s serving tenant 1: %s transactions/s (upgrade_candidates + bundle_offers, 1 client, %s s)\n' "$label" "$tps" "$SECONDS_TPS"
	result "citus_tenants $db: serving ${tps} tps"
done
rm -f "$script"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
