#!/usr/bin/env bash
# #16 on the whole bundled electronics year, along the demo's path: the shop
# registered by flat columns (scripts/demo_setup.sql), then the same shop as
# Shopify documents (scripts/demo_shopify.sql: order webhooks and product
# payloads made by load_electronics_shopify.sql, with refunds, a cancelled
# and a test order, re-delivered webhooks, GraphQL ids and malformed
# documents).  Every offer of every stage (every product page, a cart of
# every two products, the thank-you page of the last 300 orders:
# scripts/electronics_all_offers.sql) must be the same, the same lines
# counted, and every kind of skip counted by refresh.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_shopify
fresh_database $db
trap 'psql_q -d postgres -c "DROP DATABASE IF EXISTS '$db'" >/dev/null 2>&1 || true' EXIT
psql_q -d $db -f scripts/load_electronics.sql >/dev/null 2>&1
psql_q -d $db -f scripts/demo_setup.sql >/dev/null 2>&1
demo=$(psql_q -d $db -f scripts/demo_shopify.sql)
printf '%s\n' "$demo"
read -r flat json same <<<"$(printf '%s\n' "$demo" | grep -A2 'offers_flat' | tail -1 | tr -d '|')"
[ "${flat:-0}" -gt 0 ] && [ "$flat" = "$json" ] && [ "$same" = "$flat" ] ||
	{ echo "FAILED: $same of $flat flat offers identical among $json from the documents"; exit 1; }

# (the demo registers the flat tables again at its end: the documents
# once more, for what their refresh counts)
out=$(psql_q -d $db -A -t -F ' ' <<'SQL'
SET client_min_messages = warning;
\o /dev/null
SELECT upsell.register_shopify_orders('shop.order_webhooks', 'payload');
SELECT upsell.register_shopify_products('shop.product_payloads', 'payload');
CALL upsell.refresh();
\o
\i scripts/electronics_all_offers.sql
SELECT 'stages', count(DISTINCT stage) FROM pg_temp.all_offers(40000000000);
SELECT 'lines', (SELECT count(*) FROM shop.order_lines), (SELECT count(*) FROM upsell.order_lines);
SELECT 'bad_rows', pg_catalog.jsonb_object_keys(l.bad_rows -> '0') FROM upsell.refresh_log l
WHERE l.refresh_id = (SELECT max(refresh_id) FROM upsell.refresh_log) ORDER BY 2;
SQL
)
printf '%s\n' "$out"
printf '%s\n' "$out" | grep -qx 'stages 3' || { echo "FAILED: not every stage has offers"; exit 1; }
read -r _ flat_lines json_lines <<<"$(printf '%s\n' "$out" | grep '^lines ')"
[ "$flat_lines" = "$json_lines" ] || { echo "FAILED: $json_lines lines from the documents, $flat_lines flat"; exit 1; }
for reason in 'cancelled order' 'test order' 'earlier delivery of an order' 'line item refunded' \
	'order without an id' 'line item without a variant_id or product_id'; do
	printf '%s\n' "$out" | grep -qx "bad_rows order lines: $reason" ||
		{ echo "FAILED: refresh did not count '$reason'"; exit 1; }
done
echo "ok: $same of $flat offers identical, $json_lines lines"
