#!/usr/bin/env bash
# Many shops: order lines and catalog distributed by tenant (3 tenants),
# upsell.distribute() makes the models distributed tables colocated with the
# orders, the registrations and rules reference tables, and a tenant's build
# and the serving functions distributed by their tenant argument.  Refresh
# builds each tenant on the worker holding it (its order lines do not reach
# the coordinator); per tenant, the models and the serving answers Citus can
# run equal those of a single-node install.
source "$(dirname "$0")/lib.sh"

fresh_single_db
cq upsell -c "SET client_min_messages = warning" \
	-c "DROP EXTENSION IF EXISTS upsell CASCADE" -c "CREATE EXTENSION upsell" >/dev/null
load_shop upsell 30000 1000 "
	SELECT create_distributed_table('shop.order_lines', 'tenant_id');
	SELECT create_distributed_table('shop.products', 'tenant_id', colocate_with => 'shop.order_lines');" 3
load_shop upsell_single 30000 1000 "" 3
cq upsell -c "SET client_min_messages = warning" -c "SELECT upsell.distribute()" | sed 's/^/distribute: /'
# a rule, made after distribute(): written to every node's copy
for db in upsell upsell_single; do
	cq "$db" -c "INSERT INTO upsell.exclusions (tenant_id, product_id)
		SELECT 2, product_id FROM upsell.catalog WHERE tenant_id = 2 ORDER BY product_id LIMIT 3" >/dev/null
done
[ "$(citus_psql_node 1 -A -t -d upsell -c "SELECT count(*) FROM upsell.exclusions")" = 3 ] ||
	{ echo "the exclusions are not on the worker"; exit 1; }

# refresh: the bytes the coordinator receives from the workers while it
# runs, against the size of the order lines.  The sampler sees a socket only
# while it is open, so both sessions below keep theirs: one connection per
# worker (pool size 1), which Citus caches for the session, and a second's
# sleep before the session ends.  (master_run_on_worker's own connections,
# which carry each tenant's build call and its row count, close at once.)
line_bytes=$(cq upsell -c "SELECT sum(pg_column_size(l)) FROM shop.order_lines l")
with_coordinator_rx cq upsell -o /dev/null -c "SET client_min_messages = warning" \
	-c "SET citus.max_adaptive_executor_pool_size = 1" -c "CALL upsell.refresh()" -c "SELECT pg_sleep(1)"
rx=$RX
cq upsell_single -c "SET client_min_messages = warning" -c "CALL upsell.refresh()"
# what the same count shows when the lines do come: a query reading them all
with_coordinator_rx cq upsell -o /dev/null -c "SET citus.max_adaptive_executor_pool_size = 1" \
	-c "SELECT * FROM upsell.order_lines" -c "SELECT pg_sleep(1)"
echo "refresh on Citus: the coordinator received $rx bytes from the workers (reading the lines: $RX bytes; they hold $line_bytes bytes)"
[ "$RX" -gt $(( line_bytes / 2 )) ] || { echo "the count misses the lines read"; exit 1; }
[ "$rx" -lt $(( line_bytes / 10 )) ] || { echo "order lines reached the coordinator during refresh"; exit 1; }
[ "$(cq upsell -c "SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")" = ok ] ||
	{ echo "refresh did not end ok"; exit 1; }

# where the models are: in the workers' shards, none on the coordinator
placed=$(cq upsell -c "SELECT nodeport, sum(result::bigint) FROM run_command_on_placements('upsell.cart_model',
	'SELECT count(*) FROM %s') GROUP BY 1 ORDER BY 1")
printf '%s\n' "$placed" | sed 's/^/rows of cart_model on the node of port|rows: /'
[ "$(printf '%s\n' "$placed" | awk -F'|' '{ s += $2 } END { print s }')" = \
	"$(cq upsell_single -c "SELECT count(*) FROM upsell.cart_model")" ] || { echo "cart_model's rows are not in the shards"; exit 1; }
printf '%s\n' "$placed" | grep -q "^$CITUS_PORT|" && { echo "cart_model has rows on the coordinator"; exit 1; }
# a tenant's statement reads its lines on one node, as one task
plan=$(cq upsell -c "EXPLAIN (COSTS OFF)
	SELECT upsell.cooccurrence_agg(l.order_key, l.product_id, l.quantity)
	FROM upsell.order_lines l WHERE l.tenant_id = 2")
printf '%s\n' "$plan" | grep -E 'Task Count|Node:' | head -2
printf '%s\n' "$plan" | grep -q 'Task Count: 1' || { echo "a tenant's lines are not on one node"; exit 1; }

same_models

# the serving functions, run on the tenant's worker; each call sent as its
# own statement, as an application sends it
for t in 1 2 3; do
	products=$(cq upsell_single -c "SELECT product_id FROM upsell.product_model
		WHERE tenant_id = $t AND price > 0 ORDER BY orders DESC, product_id LIMIT 15")
	for p in $products; do
		echo "SELECT $p, 'u', u::text FROM upsell.upgrade_candidates($p, 3, 1.5, $t) u;"
		echo "SELECT $p, 'd', d::text FROM upsell.downsell_candidates($p, 3, 0.5, $t) d;"
		echo "SELECT $p, 'b', b::text FROM upsell.bundle_offers($p, 3, 0.10, $t) b;"
		echo "SELECT $p, 'q', q::text FROM upsell.quantity_offer($p, 2, $t) q;"
	done | same_script "tenant $t: upgrade_candidates, downsell_candidates, bundle_offers, quantity_offer"
	# carts and orders: the recent orders' products (the order model of
	# the single node), and a cart of the tenant's bestsellers; the time of
	# the tenant's last order as the post-purchase time, so that both
	# databases count the days to a restock from the same instant
	at=$(cq upsell_single -c "SELECT max(ordered_at) FROM upsell.order_model WHERE tenant_id = $t")
	carts=$(cq upsell_single -c "(SELECT customer_id || ' ' || array_to_string(items, ',')
		FROM upsell.order_model WHERE tenant_id = $t AND cardinality(items) BETWEEN 2 AND 6
		ORDER BY order_key LIMIT 12)
		UNION ALL
		SELECT '0 ' || string_agg(product_id::text, ',' ORDER BY orders DESC, product_id)
		FROM (SELECT product_id, orders FROM upsell.product_model
			  WHERE tenant_id = $t ORDER BY orders DESC, product_id LIMIT 3) b")
	[ "$(printf '%s\n' "$carts" | grep -c .)" -ge 10 ] || { echo "tenant $t: too few orders to serve"; exit 1; }
	{
		printf '%s\n' "$carts" | while read -r customer cart; do
			echo "SELECT '$cart', 'r', r::text FROM upsell.recommend_for_cart('{$cart}', 5, $t) r;"
			echo "SELECT '$cart', 'c', c::text FROM upsell.cart_offers('{$cart}', NULL, $t) c;"
			echo "SELECT '$cart', 'p', o::text FROM upsell.post_purchase_offers('{$cart}', $customer, $t, NULL, NULL, '$at') o;"
			echo "SELECT $customer, 'rc', r::text FROM upsell.recommend_for_customer($customer, 5, $t, '$at') r;"
			echo "SELECT $customer, 'es', e::text FROM upsell.email_sequence($customer, 5, $t, '$at') e;"
		done
		for p in $products; do
			echo "SELECT $p, 'page', o::text FROM upsell.product_page_offers($p, $t) o;"
		done
	} | same_script "tenant $t: recommend_for_cart, cart_offers, post_purchase_offers, recommend_for_customer and email_sequence (carts and orders), product_page_offers"
	same_answer "tenant $t: frequently_bought_together" "
		SELECT f::text FROM upsell.frequently_bought_together(3) f WHERE f.tenant_id = $t ORDER BY 1"
done

# experiments: experiments, variants and exposures are reference tables,
# the offer events distributed by tenant with the order lines
kinds=$(cq upsell -c "SELECT logicalrelid, partmethod, colocationid = (SELECT colocationid FROM pg_dist_partition
	WHERE logicalrelid = 'shop.order_lines'::regclass) FROM pg_dist_partition
	WHERE logicalrelid IN ('upsell.experiments'::regclass, 'upsell.experiment_variants'::regclass,
						   'upsell.exposures'::regclass, 'upsell.offer_events'::regclass) ORDER BY 1")
printf '%s\n' "$kinds" | sed 's/^/experiment table|kind (n: reference, h: hash)|colocated with the order lines: /'
[ "$(printf '%s\n' "$kinds" | tr '\n' ' ')" = \
	"upsell.experiments|n|f upsell.experiment_variants|n|f upsell.exposures|n|f upsell.offer_events|h|t " ] ||
	{ echo "the experiment tables are not distributed as they should be"; exit 1; }
# an experiment of tenant 2 on its cart stage; 40 customers' first orders:
# each shown the cart an hour before (record_exposure assigns the
# variant), and an 'add' of one of its products half an hour before
units=$(cq upsell_single -c "SELECT o.customer_id, o.product_id, o.ordered_at
	FROM (SELECT DISTINCT ON (customer_id) customer_id, product_id, ordered_at FROM shop.order_lines
		  WHERE tenant_id = 2 ORDER BY customer_id, ordered_at, product_id) o
	ORDER BY o.customer_id LIMIT 40" | tr '|' ' ')
{
	echo "INSERT INTO upsell.experiments (experiment, tenant_id, stage, started_at) VALUES ('cart_test', 2, 'cart', '2000-01-01');"
	echo "INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
		('cart_test', 'control', 1, '{}'), ('cart_test', 'complements', 1, '{complement}'),
		('cart_test', 'all', 2, '{complement,upgrade,bundle,gap_filler,quantity_tier}');"
	printf '%s\n' "$units" | while read -r c p d h; do
		echo "SELECT upsell.record_exposure('cart_test', '$c', 'cart', NULL, timestamptz '$d $h' - interval '1 hour');"
		echo "INSERT INTO upsell.offer_events (tenant_id, unit_id, offer_type, product_id, event, stage, experiment, occurred_at)
			VALUES (2, '$c', 'complement', $p, 'add', 'cart', 'cart_test', timestamptz '$d $h' - interval '30 minutes');"
	done
} >"${TMPDIR:-/tmp}/upsell_citus_experiment.sql"
for db in upsell upsell_single; do
	cq "$db" -o /dev/null -f "${TMPDIR:-/tmp}/upsell_citus_experiment.sql"
done
rm -f "${TMPDIR:-/tmp}/upsell_citus_experiment.sql"
same_answer "exposures recorded, with their assigned variants" \
	"SELECT experiment, unit_id, variant, stage, shown_at FROM upsell.exposures ORDER BY unit_id"
same_answer "offer events recorded" \
	"SELECT tenant_id, unit_id, offer_type, product_id, event, experiment, occurred_at FROM upsell.offer_events ORDER BY unit_id"
placed=$(cq upsell -c "SELECT nodeport, sum(result::bigint) FROM run_command_on_placements('upsell.offer_events',
	'SELECT count(*) FROM %s') GROUP BY 1 ORDER BY 1")
printf '%s\n' "$placed" | sed 's/^/offer events on the node of port|rows: /'
[ "$(printf '%s\n' "$placed" | awk -F'|' '{ s += $2 } END { print s }')" = 40 ] || { echo "the offer events are not in the shards"; exit 1; }
printf '%s\n' "$placed" | grep -q "^$CITUS_PORT|" && { echo "offer events on the coordinator"; exit 1; }
# the cart stage shows each unit its variant's offer types; the results
cart=$(cq upsell_single -c "SELECT string_agg(product_id::text, ',' ORDER BY orders DESC, product_id)
	FROM (SELECT product_id, orders FROM upsell.product_model WHERE tenant_id = 2
		  ORDER BY orders DESC, product_id LIMIT 2) b")
printf '%s\n' "$units" | while read -r c p d h; do
	echo "SELECT '$c', upsell.assign('cart_test', '$c'), o::text FROM upsell.cart_offers('{$cart}', NULL, 2, 'cart_test', '$c') o;"
done | same_script "tenant 2: cart_offers per unit of experiment cart_test"
same_answer "experiment_results('cart_test')" "SELECT r::text FROM upsell.experiment_results('cart_test') r"
[ "$(cq upsell -c "SELECT sum(converted_units) > 0 AND count(*) = 3 FROM upsell.experiment_results('cart_test')")" = t ] ||
	{ echo "experiment_results found no conversions"; exit 1; }

# a call with a tenant runs on that tenant's worker
cq upsell -c "SELECT f.oid::regprocedure, d.distribution_argument_index
	FROM pg_dist_object d JOIN pg_proc f ON d.classid = 'pg_proc'::regclass AND d.objid = f.oid
	WHERE d.distribution_argument_index IS NOT NULL ORDER BY 1" | sed 's/^/distributed function: /'
for call in "upgrade_candidates(1, 3, 1.5, 2)" "recommend_for_cart('{1,2}', 5, 2)" "product_page_offers(1, 2)" \
	"cart_offers('{1,2}', NULL, 2)" "post_purchase_offers('{1,2}', 1, 2)" "recommend_for_customer(1, 5, 2)" \
	"email_sequence(1, 5, 2)"; do
	f=${call%%(*}
	delegated=$(cq upsell -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = notice" \
		-c "SELECT count(*) FROM upsell.$call" 2>&1 | grep -c "issuing SELECT .*$f" || true)
	echo "$f(..., tenant 2) sent to the tenant's worker: $delegated call(s)"
	[ "$delegated" -ge 1 ] || { echo "$f was not delegated"; exit 1; }
done
# not delegated (inside a transaction block, Citus runs the call on the
# coordinator): the cart stage says so instead of reading the empty shell
err=$(cq upsell -c "BEGIN" -c "SELECT count(*) FROM upsell.cart_offers('{1,2}', NULL, 2)" -c "ROLLBACK" 2>&1 || true)
printf '%s\n' "$err" | grep -q "is on another node" || { echo "cart_offers on the coordinator: $err"; exit 1; }
echo "cart_offers in a transaction block on the coordinator: $(printf '%s\n' "$err" | grep ERROR)"
