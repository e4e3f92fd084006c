#!/usr/bin/env bash
# Many shops: order lines and catalog distributed by tenant (3 tenants),
# upsell.distribute() makes the models distributed tables colocated with the
# orders, the rules reference tables and the serving functions distributed by
# their tenant argument.  Refresh builds each tenant on the worker holding it
# (no order line reaches the coordinator); per tenant, the models and the
# answers equal those of a single-node install.
source "$(dirname "$0")/lib.sh"

fresh_single_db
cq upsell -c "SET client_min_messages = warning" \
	-c "DROP EXTENSION IF EXISTS upsell CASCADE" -c "CREATE EXTENSION upsell" >/dev/null
load_shop upsell 30000 1000 "
	SELECT create_distributed_table('shop.order_lines', 'tenant_id');
	SELECT create_distributed_table('shop.products', 'tenant_id', colocate_with => 'shop.order_lines');" 3
load_shop upsell_single 30000 1000 "" 3
cq upsell -c "SELECT upsell.distribute()" | sed 's/^/distribute: /'
cq upsell -c "INSERT INTO upsell.exclusions (tenant_id, product_id) SELECT 2, product_id FROM shop.products WHERE tenant_id = 2 ORDER BY product_id LIMIT 3"
cq upsell_single -c "INSERT INTO upsell.exclusions (tenant_id, product_id) SELECT 2, product_id FROM shop.products WHERE tenant_id = 2 ORDER BY product_id LIMIT 3"

# refresh: every byte that crosses loopback while it runs (the nodes talk over
# 127.0.0.1; the order lines are several MB)
lo_bytes() { awk '$1 == "lo:" { print $2 }' /proc/net/dev; }
line_bytes=$(cq upsell -c "SELECT sum(pg_column_size(l)) FROM shop.order_lines l")
b0=$(lo_bytes)
cq upsell -c "SET client_min_messages = warning" -c "CALL upsell.refresh()"
moved=$(( $(lo_bytes) - b0 ))
cq upsell_single -c "SET client_min_messages = warning" -c "CALL upsell.refresh()"
echo "refresh on Citus: $moved bytes over loopback; the order lines hold $line_bytes bytes"
[ "$moved" -lt $(( line_bytes / 2 )) ] || { echo "order lines moved during refresh"; exit 1; }

# a tenant's build runs on its worker: the store's statement for one tenant is
# one task on one node, reading the lines' shard there
plan=$(cq upsell -c "EXPLAIN (COSTS OFF)
	INSERT INTO upsell.cooccurrence_model (tenant_id, state)
	SELECT 2, upsell.cooccurrence_agg(l.order_key, l.product_id, l.quantity)
	FROM upsell.order_lines l WHERE l.tenant_id = 2")
printf '%s\n' "$plan" | grep -E 'Task Count|Node:|Seq Scan' | head -4
printf '%s\n' "$plan" | grep -q 'Task Count: 1' || { echo "a tenant's build is not on one node"; exit 1; }

same_models
for t in 1 2 3; do
	same_answer "tenant $t: recommend_for_cart" "
		SELECT c.cart, r.* FROM (SELECT ARRAY[product_id] cart FROM upsell.product_model
								 WHERE tenant_id = $t ORDER BY popularity_rank LIMIT 10) c,
			 upsell.recommend_for_cart(c.cart, 5, $t) r ORDER BY 1, 2"
	same_answer "tenant $t: upgrade_candidates, downsell_candidates" "
		SELECT p.product_id, 'u', u::text FROM (SELECT product_id FROM upsell.product_model
			WHERE tenant_id = $t AND price > 0 ORDER BY popularity_rank LIMIT 20) p,
			upsell.upgrade_candidates(p.product_id, 3, 1.5, $t) u
		UNION ALL
		SELECT p.product_id, 'd', d::text FROM (SELECT product_id FROM upsell.product_model
			WHERE tenant_id = $t AND price > 0 ORDER BY popularity_rank LIMIT 20) p,
			upsell.downsell_candidates(p.product_id, 3, 0.5, $t) d ORDER BY 1, 2, 3"
	same_answer "tenant $t: bundle_offers" "
		SELECT p.product_id, b::text FROM (SELECT product_id FROM upsell.product_model
			WHERE tenant_id = $t ORDER BY popularity_rank LIMIT 20) p,
			upsell.bundle_offers(p.product_id, 3, 0.10, $t) b ORDER BY 1, 2"
	same_answer "tenant $t: frequently_bought_together" "
		SELECT f::text FROM upsell.frequently_bought_together(3) f WHERE f.tenant_id = $t ORDER BY 1"
done

# a call with a tenant runs on that tenant's worker
cq upsell -c "SELECT f.oid::regprocedure, d.distribution_argument_index, d.colocationid > 0
	FROM pg_dist_object d JOIN pg_proc f ON d.classid = 'pg_proc'::regclass AND d.objid = f.oid
	WHERE d.distribution_argument_index IS NOT NULL ORDER BY 1" | sed 's/^/distributed function: /'
delegated=$(cq upsell -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = notice" \
	-c "SELECT count(*) FROM upsell.recommend_for_cart('{1}', 5, 2)" 2>&1 | grep -c 'issuing SELECT .*recommend_for_cart' || true)
echo "recommend_for_cart(..., tenant 2) sent to the tenant's worker: $delegated call(s)"
[ "$delegated" -ge 1 ] || { echo "recommend_for_cart was not delegated"; exit 1; }
