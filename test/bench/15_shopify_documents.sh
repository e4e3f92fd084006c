#!/usr/bin/env bash
# Benchmark part: the cost of registering Shopify documents instead of flat
# order lines (#16).  The documents are read at every refresh, nothing is
# copied, so this times, on the whole bundled electronics year (185,950
# lines; as order webhooks 24,000-odd per month with re-deliveries,
# refunds and malformed documents, scripts/load_electronics_shopify.sql):
#   1. reading upsell.order_lines: the flat table against the documents;
#   2. a full refresh of the shop from each registration.
# Runs in a database of its own (the bench database stays registered).
source "$(dirname "$0")/lib.sh"

DB=upsell_bench_shopify
bq -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
trap 'bq -d postgres -c "DROP DATABASE IF EXISTS '$DB'" >/dev/null 2>&1 || true' EXIT
cd "$(dirname "$0")/../.."
bq -d $DB -f scripts/load_electronics.sql >/dev/null 2>&1
bq -d $DB -f scripts/demo_setup.sql >/dev/null 2>&1
bq -d $DB -f scripts/load_electronics_shopify.sql >/dev/null 2>&1

# median ms of RUNS executions of a statement, timed server-side
timed() {	# registration: flat|shopify, sql
	bq -d $DB -F ' ' <<SQL
SET client_min_messages = warning;
\o /dev/null
SELECT $( [ "$1" = flat ] &&
	echo "upsell.register_orders('shop.order_lines', order_id => 'order_id', product_id => 'product_id', customer_id => 'customer', ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price'), upsell.register_products('shop.products', product_id => 'product_id', price => 'price', category => 'category', variant_group => 'variant_group', in_stock => 'in_stock', title => 'title')" ||
	echo "upsell.register_shopify_orders('shop.order_webhooks', 'payload'), upsell.register_shopify_products('shop.product_payloads', 'payload')");
\o
CREATE TEMP TABLE t (ms float8);
DO \$\$
DECLARE t0 timestamptz;
BEGIN
	FOR i IN 1..$BENCH_RUNS LOOP
		t0 := clock_timestamp();
		EXECUTE \$q\$$2\$q\$;
		INSERT INTO t VALUES (1000 * extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
END
\$\$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric), round(min(ms)::numeric), round(max(ms)::numeric) FROM t;
SQL
}

read -r DOCS LINES <<<"$(bq -d $DB -F ' ' -c "SELECT (SELECT count(*) FROM shop.order_webhooks), (SELECT count(*) FROM shop.order_lines)")"
echo "electronics year: $LINES flat order lines, $DOCS order documents"
read -r FLAT_READ a b <<<"$(timed flat 'SELECT count(*) FROM upsell.order_lines')"
echo "  read order_lines, flat:       median $FLAT_READ ms (min $a, max $b, $BENCH_RUNS runs)"
read -r DOC_READ a b <<<"$(timed shopify 'SELECT count(*) FROM upsell.order_lines')"
echo "  read order_lines, documents:  median $DOC_READ ms (min $a, max $b, $BENCH_RUNS runs)"
result "Shopify documents: reading the $LINES order lines $DOC_READ ms against $FLAT_READ ms flat ($(bench_ratio "$DOC_READ" "$FLAT_READ")x)"
# refresh is a procedure that commits per tenant: CALL it from psql, timed there
refresh_ms() {	# flat|shopify
	timed "$1" 'SELECT 1' >/dev/null
	bq -d $DB -F ' ' <<'SQL'
SET client_min_messages = warning;
CALL upsell.refresh();
SELECT round(duration_ms) FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1;
SQL
}
FLAT_REFRESH=$(refresh_ms flat)
DOC_REFRESH=$(refresh_ms shopify)
echo "  full refresh, flat:           $FLAT_REFRESH ms"
echo "  full refresh, documents:      $DOC_REFRESH ms"
result "Shopify documents: full refresh of the electronics year $DOC_REFRESH ms against $FLAT_REFRESH ms flat ($(bench_ratio "$DOC_REFRESH" "$FLAT_REFRESH")x)"
