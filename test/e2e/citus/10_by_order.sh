#!/usr/bin/env bash
# One big shop, its order lines distributed by order id (32 shards over the
# 2 workers), the catalog and the models on the coordinator: refresh builds
# the same models as on a single node, and the serving functions answer the
# same.
source "$(dirname "$0")/lib.sh"

fresh_single_db
cq upsell -c "SET client_min_messages = warning" \
	-c "DROP EXTENSION IF EXISTS upsell CASCADE" -c "CREATE EXTENSION upsell" >/dev/null
load_shop upsell 30000 3000 "
	SELECT create_distributed_table('shop.order_lines', 'order_id');"
load_shop upsell_single 30000 3000 ""
echo "shards of shop.order_lines: $(cq upsell -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'shop.order_lines'::regclass")"

for db in upsell upsell_single; do
	cq "$db" -c "SET client_min_messages = warning" -c "CALL upsell.refresh()"
done
same_models
same_answer "recommend_for_cart" "
	SELECT c.cart, r.* FROM (SELECT ARRAY[product_id] cart FROM upsell.product_model
							 ORDER BY orders DESC, product_id LIMIT 20) c,
		 upsell.recommend_for_cart(c.cart, 5) r ORDER BY 1, 2"
same_answer "frequently_bought_together" \
	"SELECT f::text FROM upsell.frequently_bought_together(min_count => 2) f ORDER BY 1"
same_answer "frequently_bought_together, thresholds" \
	"SELECT f::text FROM upsell.frequently_bought_together(3, 0.0001, 0.05) f ORDER BY 1"

# Pair counting is pushed to the shards: each shard's query is a partial
# aggregate of the sharded counting (worker_partial_agg), whose state (the
# shard's pair counts, as text) the coordinator adds (coord_combine_agg).
plan=$(cq upsell -c "EXPLAIN (VERBOSE, COSTS OFF)
	SELECT l.tenant_id, upsell.cooccurrence_sharded_agg(l.order_key, l.product_id, l.quantity)
	FROM upsell.order_lines l GROUP BY l.tenant_id")
printf '%s\n' "$plan" | grep -E 'coord_combine_agg|worker_partial_agg|Task Count' | head -3
printf '%s\n' "$plan" | grep -q 'worker_partial_agg(.*cooccurrence_sharded_agg' || { echo "shards do not count"; exit 1; }
printf '%s\n' "$plan" | grep -q 'coord_combine_agg' || { echo "the coordinator does not combine"; exit 1; }
[ "$(cq upsell -c "SELECT upsell._orders_sharded()")" = t ] || { echo "not seen as sharded by order"; exit 1; }

# What travels to the coordinator: each shard's pair counts (the text of its
# partial state, what worker_partial_agg returns; Citus cannot EXPLAIN ANALYZE
# a query returning cstring) against the lines that plain counting pulls.
counts=$(cq upsell -c "SELECT sum(result::bigint) FROM run_command_on_shards('shop.order_lines',
	\$\$SELECT octet_length(upsell.cooccurrence_sharded_agg(order_id, product_id, quantity::numeric)::text) FROM %s\$\$)")
lines=$(cq upsell -c "EXPLAIN (ANALYZE, FORMAT JSON)
	SELECT l.tenant_id, upsell.cooccurrence_agg(l.order_key, l.product_id, l.quantity)
	FROM upsell.order_lines l GROUP BY l.tenant_id" |
	grep -o '"Tuple data received from nodes": "[^"]*"' | head -1 | cut -d'"' -f4)
echo "to the coordinator: pair counts $counts bytes from 32 shards; plain counting pulls lines: ${lines:-?}"
[ "${counts:-0}" -gt 0 ] || exit 1
