#!/usr/bin/env bash
# Refresh never disturbs readers (issue #12), on a two-tenant shop:
#  1. pgbench readers of the funnel stages, recommend_for_cart, gap_fillers and
#     upgrade_candidates while 10 refreshes run (5 full, 5 incremental): no failed,
#     empty or changed answer (test/bench/refresh_load.sh);
#  2. a reader during an open refresh transaction (BEGIN; CALL refresh();
#     pg_sleep) gets the full old answers;
#  3. a refresh does not wait for an analyst's session idle in transaction,
#     nor stall the readers after it;
#  4. a refresh cancelled by statement_timeout, or whose session is
#     terminated, is logged (cancelled / interrupted).
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_load
fresh_database $db
export PGDATABASE=$db
q() { psql_q -A -t "$@"; }

q >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION upsell;
CREATE SCHEMA shop;
SELECT setseed(0.42);
CREATE TABLE shop.products AS
	SELECT s AS shop, p AS id, 'c' || p % 6 AS cat, 'g' || p % 15 AS grp,
		   (5 + (p * 37) % 60)::numeric(8,2) AS price, p % 13 <> 0 AS stock
	FROM generate_series(1, 2) s, generate_series(1, 60) p;
-- orders of 1 to 4 products; neighbours (p, p + 1) often go together
CREATE TABLE shop.lines AS
	SELECT DISTINCT ON (shop, order_id, product_id) shop, order_id, product_id,
		   order_id % 150 AS customer, timestamptz '2024-01-01' + order_id * interval '4 hours' AS at,
		   1 + order_id % 3 AS quantity
	FROM (SELECT s AS shop, o AS order_id, b AS base, n
		  FROM generate_series(1, 2) s, generate_series(1, 1000) o,
			   LATERAL (SELECT 1 + floor(random() * 58 + 0 * o)::int AS b, 1 + floor(random() * 4 + 0 * o)::int AS n) r) x,
		 LATERAL (SELECT CASE k WHEN 0 THEN base WHEN 1 THEN base + 1
								ELSE 1 + floor(random() * 60)::int END AS product_id
				  FROM generate_series(0, n - 1) k) p;
SELECT upsell.register_orders('shop.lines', 'order_id', 'product_id', customer_id => 'customer',
	ordered_at => 'at', quantity => 'quantity', tenant_id => 'shop');
SELECT upsell.register_products('shop.products', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', in_stock => 'stock', tenant_id => 'shop');
CALL upsell.refresh();
SQL
echo "shop: $(q -c "SELECT count(*) || ' lines, ' || count(DISTINCT (shop, order_id)) || ' orders' FROM shop.lines")"

fail=0

# ---- 1. readers under load --------------------------------------------------------
PGBIN=$PGBIN REFRESHES=${REFRESHES:-10} BASE_SECONDS=${BASE_SECONDS:-10} SAMPLES=25 \
	bash "$REPO/test/bench/refresh_load.sh" || fail=1

# The answers readers compare: several tactics of tenant 1 as one text.
q >/dev/null <<'SQL'
INSERT INTO upsell.thresholds (tenant_id, kind, amount) VALUES (1, 'free_shipping', 80);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, percent_off) VALUES (1, 5, 3, 10);
CREATE FUNCTION shop.answers() RETURNS text LANGUAGE sql VOLATILE AS $$
	SELECT concat_ws(' | ',
		(SELECT string_agg(product_id::text, ',' ORDER BY rank) FROM upsell.recommend_for_cart('{19,18}', 4, 1)),
		(SELECT string_agg(product_ids::text, ',' ORDER BY rank) FROM upsell.gap_fillers('{19,18}', tenant_id => 1)),
		(SELECT string_agg(candidate_id::text, ',' ORDER BY rank) FROM upsell.upgrade_candidates(19, 3, tenant_id => 1)),
		(SELECT string_agg(items::text, ',' ORDER BY rank) FROM upsell.bundle_offers(19, 3, tenant_id => 1)),
		(SELECT string_agg(next_quantity::text, ',') FROM upsell.quantity_offer(5, 1, 1)),
		(SELECT string_agg(offer_type || product_ids::text, ',' ORDER BY rank) FROM upsell.cart_offers('{19,18}', NULL, 1)),
		(SELECT string_agg(offer_type || product_ids::text, ',' ORDER BY rank) FROM upsell.product_page_offers(19, 1)))
$$;
SQL
before=$(q -c "SELECT shop.answers()")
echo "answers before: $before"
parts=$(awk -F' \\| ' '{ n = 0; for (i = 1; i <= NF; i++) if ($i != "") n++; print n }' <<<"$before")
[ "$parts" = 7 ] || { echo "FAIL: some tactic has no answer before the test ($parts of 7)"; fail=1; }

# waits until a session runs (or idles in transaction on) a query like $1
wait_for() {
	for _ in $(seq 1 200); do
		[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '$1' AND state = '$2'")" -gt 0 ] && return 0
		sleep 0.1
	done
	echo "FAIL: no session $2 on $1"
	return 1
}

# ---- 2. a reader during an open refresh transaction -------------------------------
psql_q -c "SET client_min_messages = warning" -c "BEGIN" -c "CALL upsell.refresh()" -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null &
opener=$!
wait_for '%pg_sleep(4)%' active || fail=1
during=$(q -c "SET statement_timeout = '3s'" -c "SELECT shop.answers()") || { echo "FAIL: reader during an open refresh transaction"; fail=1; }
wait $opener || { echo "FAIL: the open refresh transaction"; fail=1; }
echo "answers during: $during"
[ "$during" = "$before" ] || { echo "FAIL: a reader during an open refresh transaction got other answers"; fail=1; }

# ---- 3. an analyst idle in transaction --------------------------------------------
{ echo "BEGIN; SELECT count(*) FROM upsell.cart_model; SELECT count(*) FROM upsell.pair_model; SELECT count(*) FROM upsell.product_model;"; sleep 40; echo "COMMIT;"; } |
	psql_q >/dev/null &
analyst=$!
wait_for '%product_model%' 'idle in transaction' || fail=1
t0=$(date +%s%3N)
q -c "SET client_min_messages = warning" -c "SET lock_timeout = '3s'" -c "CALL upsell.refresh()" >/dev/null ||
	{ echo "FAIL: refresh with an analyst idle in transaction"; fail=1; }
refresh_ms=$(( $(date +%s%3N) - t0 ))
after=$(q -c "SET statement_timeout = '3s'" -c "SELECT shop.answers()") || { echo "FAIL: reader after that refresh"; fail=1; }
still_idle=$(q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'")
echo "refresh with an analyst idle in transaction ($still_idle still idle): $refresh_ms ms; status $(q -c "SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")"
[ "$(q -c "SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")" = ok ] || { echo "FAIL: that refresh did not end ok"; fail=1; }
[ "$still_idle" -ge 1 ] || { echo "FAIL: the analyst's transaction ended too early to prove anything"; fail=1; }
[ "$after" = "$before" ] || { echo "FAIL: answers after that refresh differ"; fail=1; }
kill $analyst 2>/dev/null || true; wait $analyst 2>/dev/null || true

# ---- 4. cancelled and terminated refreshes are logged ------------------------------
# a session holds tenant 2's refresh lock, so a refresh waits there
{ echo "SELECT pg_advisory_lock(upsell._refresh_lock_class('tenant'), hashint8(2));"; sleep 60; } | psql_q >/dev/null &
holder=$!
wait_for '%pg_advisory_lock%' idle || fail=1
out=$(psql_q -c "SET client_min_messages = warning" -c "SET statement_timeout = '8s'" -c "CALL upsell.refresh()" 2>&1) &&
	{ echo "FAIL: the refresh was not cancelled"; fail=1; }
echo "cancelled: $(grep ERROR <<<"$out")"
q -c "SELECT refresh_id, status, tenants_ok, tenants_failed, error_sqlstate FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1"
[ "$(q -c "SELECT status || ' ' || tenants_ok FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")" = "cancelled 1" ] ||
	{ echo "FAIL: the cancelled refresh is not logged as cancelled after publishing tenant 1"; fail=1; }
psql_q -c "SET client_min_messages = warning" -c "CALL upsell.refresh()" >/dev/null 2>&1 &
victim=$!
for _ in $(seq 1 200); do	# until it waits for tenant 2's lock
	[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL upsell.refresh()' AND wait_event = 'advisory'")" -gt 0 ] && break
	sleep 0.1
done
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'CALL upsell.refresh()' AND state = 'active'" >/dev/null
wait $victim 2>/dev/null && { echo "FAIL: the terminated refresh succeeded"; fail=1; }
kill $holder 2>/dev/null || true; wait $holder 2>/dev/null || true
q -c "SET client_min_messages = warning" -c "CALL upsell.refresh()" >/dev/null
q -c "SELECT refresh_id, status, tenants_ok, left(error, 60) FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 2"
[ "$(q -c "SELECT string_agg(status, ',' ORDER BY refresh_id) FROM (SELECT * FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 2) l")" = "interrupted,ok" ] ||
	{ echo "FAIL: the terminated refresh is not marked interrupted by the next one"; fail=1; }

psql_q -d postgres -c "DROP DATABASE $db" >/dev/null
exit $fail
