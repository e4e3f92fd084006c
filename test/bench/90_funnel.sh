#!/usr/bin/env bash
# Benchmark part: serving speed of the funnel stages (issue 7).
#
# pgbench, client and server on the same 2-core box, 2 clients, prepared
# statements, BENCH_SECONDS (default 15) per script; per-transaction
# latencies from pgbench's log give p50/p99.  Compared in the same run with a
# primary-key lookup of the catalog.
source "$(dirname "$0")/lib.sh"

SECONDS_PER=${BENCH_SECONDS:-15}
PGBENCH="$(dirname "$PSQL")/pgbench"
[ -x "$PGBENCH" ] || PGBENCH=pgbench
work=$(mktemp -d)
trap 'rm -rf "$work"; bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_f CASCADE" >/dev/null 2>&1 || true' EXIT

# 1000 carts of 5 products drawn from the 1000 most popular, and 1000 products;
# the shop's spend thresholds (as in 50_thresholds), so that carts below them
# get gap fillers
bq <<'SQL'
SET client_min_messages = warning;
DELETE FROM upsell.thresholds WHERE tenant_id = 0 AND reward LIKE 'bench:%';
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES
	('free_shipping', 50, 'bench: free shipping'), ('gift', 80, 'bench: free gift'),
	('discount', 125, 'bench: 15% off');
DROP SCHEMA IF EXISTS bench_f CASCADE;
CREATE SCHEMA bench_f;
CREATE TABLE bench_f.carts AS
SELECT i AS cart_id,
	   ARRAY(SELECT m.product_id FROM upsell.product_model m
			 WHERE m.popularity_rank <= 1000 ORDER BY hashint8(m.product_id * 7919 + i) LIMIT 5) AS items
FROM generate_series(1, 1000) i;
ALTER TABLE bench_f.carts ADD PRIMARY KEY (cart_id);
CREATE TABLE bench_f.pages AS
SELECT row_number() OVER (ORDER BY hashint8(product_id)) AS page_id, product_id
FROM upsell.product_model WHERE popularity_rank <= 20000 ORDER BY hashint8(product_id) LIMIT 1000;
ALTER TABLE bench_f.pages ADD PRIMARY KEY (page_id);
CREATE TABLE bench_f.orders AS
SELECT row_number() OVER () AS n, order_id FROM (
	SELECT DISTINCT order_id FROM bench.order_lines ORDER BY order_id DESC LIMIT 1000) o;
ALTER TABLE bench_f.orders ADD PRIMARY KEY (n);
ANALYZE bench_f.carts, bench_f.pages, bench_f.orders;
SQL
# the models as a shop serves them between refreshes: vacuumed (visibility
# map and hint bits set), not with autovacuum catching up on a fresh build
bq <<'SQL'
SELECT format('VACUUM %s', c.oid::regclass) FROM pg_class c
WHERE c.relnamespace = 'upsell'::regnamespace AND c.relkind = 'r' \gexec
SQL

cat >"$work/pk.sql" <<'EOF2'
\set p random(1, 1000)
SELECT * FROM bench.products WHERE product_id = (SELECT product_id FROM bench_f.pages WHERE page_id = :p);
EOF2
cat >"$work/product_page.sql" <<'EOF2'
\set p random(1, 1000)
SELECT * FROM upsell.product_page_offers WHERE product_id = (SELECT product_id FROM bench_f.pages WHERE page_id = :p);
EOF2
cat >"$work/cart.sql" <<'EOF2'
\set c random(1, 1000)
SELECT * FROM upsell.cart_offers((SELECT items FROM bench_f.carts WHERE cart_id = :c));
EOF2
cat >"$work/post_purchase.sql" <<'EOF2'
\set o random(1, 1000)
SELECT * FROM upsell.post_purchase_offers WHERE order_id = (SELECT order_id::text FROM bench_f.orders WHERE n = :o);
EOF2

run() {	# label script
	local label=$1 script=$2 out tps p50 p99
	rm -f "$work"/pgbench_log.*
	out=$(cd "$work" && "$PGBENCH" -n -M prepared -c 2 -j 2 -T "$SECONDS_PER" -l -f "$script" 2>&1) || {
		printf '%s\n' "$out"; return 1; }
	tps=$(printf '%s\n' "$out" | awk '/^tps = / {printf "%.0f", $3}')
	# log lines: client_id transaction_no time_us script_no epoch epoch_us
	read -r p50 p99 <<<"$(cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n |
		awk '{a[NR] = $1} END {printf "%.3f %.3f", a[int(NR * 0.50)] / 1000, a[int(NR * 0.99)] / 1000}')"
	printf '%-34s %8s TPS   p50 %7s ms   p99 %7s ms\n' "$label" "$tps" "$p50" "$p99"
	LAST_TPS=$tps
	LAST_P99=$p99
}

echo "pgbench, 2 clients, ${SECONDS_PER} s each, prepared statements:"
run "primary-key lookup (baseline)" "$work/pk.sql"
PK_TPS=$LAST_TPS
run "product_page_offers (view)" "$work/product_page.sql"
result "product_page_offers: $LAST_TPS TPS, p99 $LAST_P99 ms, $(bench_ratio "$PK_TPS" "$LAST_TPS")x fewer TPS than a PK lookup ($PK_TPS TPS)"
run "cart_offers (5-item cart)" "$work/cart.sql"
result "cart_offers, 5-item cart: $LAST_TPS TPS, p99 $LAST_P99 ms, $(bench_ratio "$PK_TPS" "$LAST_TPS")x fewer TPS than a PK lookup"
if bq -c "SELECT to_regclass('upsell.post_purchase_offers') IS NOT NULL" | grep -q t; then
	run "post_purchase_offers (by order)" "$work/post_purchase.sql"
	result "post_purchase_offers by order: $LAST_TPS TPS, p99 $LAST_P99 ms"
fi
